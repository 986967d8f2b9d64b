"""windowkv's built-in components, registered as an ordinary plugin (entry point ``builtins``)."""

from __future__ import annotations

from windowkv.allocators import ArithmeticGroupBudget, PyramidBudget, UniformBudget
from windowkv.channel_pruners import ThinKPruner
from windowkv.classifiers import (
    DatasetClassifier,
    EmbeddingClassifier,
    EncoderClassifier,
    FixedClassifier,
    KeywordClassifier,
)
from windowkv.mergers import DropMerger, NearestMeanMerger
from windowkv.plugins.hookspecs import hookimpl
from windowkv.scorers import (
    CumulativeAttentionScorer,
    KeyNormScorer,
    PooledSuffixAttentionScorer,
    PositionScorer,
    RandomScorer,
    SuffixAttentionScorer,
)
from windowkv.selectors import (
    DBudgetSelector,
    HeadwiseTopKSelector,
    SinksRecentSelector,
    TokenTopKSelector,
    WindowAverageSelector,
    WindowMaxSelector,
)
from windowkv.quantizers import UniformQuantizer
from windowkv.sharing import AllLayersSharing, GroupSharing, NoSharing


@hookimpl
def windowkv_register_scorers():
    return [SuffixAttentionScorer, PooledSuffixAttentionScorer, CumulativeAttentionScorer, KeyNormScorer,
            PositionScorer, RandomScorer]


@hookimpl
def windowkv_register_classifiers():
    return [FixedClassifier, KeywordClassifier, EmbeddingClassifier, EncoderClassifier, DatasetClassifier]


@hookimpl
def windowkv_register_selectors():
    return [WindowAverageSelector, WindowMaxSelector, TokenTopKSelector, SinksRecentSelector, HeadwiseTopKSelector,
            DBudgetSelector]


@hookimpl
def windowkv_register_sharing():
    return [NoSharing, GroupSharing, AllLayersSharing]


@hookimpl
def windowkv_register_allocators():
    return [UniformBudget, ArithmeticGroupBudget, PyramidBudget]


@hookimpl
def windowkv_register_mergers():
    return [DropMerger, NearestMeanMerger]


@hookimpl
def windowkv_register_quantizers():
    return [UniformQuantizer]


@hookimpl
def windowkv_register_channel_pruners():
    return [ThinKPruner]


@hookimpl
def windowkv_register_policies():
    from windowkv.policies.baselines import BASELINE_PRESETS
    from windowkv.policies.presets import BUILTIN_PRESETS

    return [*BUILTIN_PRESETS, *BASELINE_PRESETS]
