"""windowkv's built-in components, registered as an ordinary plugin (entry point ``builtins``)."""

from __future__ import annotations

from windowkv.budgets import ArithmeticGroupBudget, UniformBudget
from windowkv.classifiers import FixedClassifier, KeywordClassifier
from windowkv.plugins.hookspecs import hookimpl
from windowkv.scorers import SuffixAttentionScorer
from windowkv.selectors import TokenTopKSelector, WindowAverageSelector, WindowMaxSelector
from windowkv.sharing import AllLayersSharing, GroupSharing, NoSharing


@hookimpl
def windowkv_register_scorers():
    return [SuffixAttentionScorer]


@hookimpl
def windowkv_register_classifiers():
    return [FixedClassifier, KeywordClassifier]


@hookimpl
def windowkv_register_selectors():
    return [WindowAverageSelector, WindowMaxSelector, TokenTopKSelector]


@hookimpl
def windowkv_register_sharing():
    return [NoSharing, GroupSharing, AllLayersSharing]


@hookimpl
def windowkv_register_budgets():
    return [UniformBudget, ArithmeticGroupBudget]


@hookimpl
def windowkv_register_policies():
    from windowkv.policies.presets import BUILTIN_PRESETS

    return list(BUILTIN_PRESETS)
