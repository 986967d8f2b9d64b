"""The plugin module named by the ``windowkv`` entry point: one function per ``windowkv_register_*`` hook."""

from __future__ import annotations

from windowkv import Preset, hookimpl

from windowkv_example_scorer.value_norm import ValueNormScorer


@hookimpl
def windowkv_register_scorers():
    return [ValueNormScorer]


@hookimpl
def windowkv_register_policies():
    return [
        Preset(
            "windowkv_value_norm",
            {"preset": "windowkv", "scorer": {"type": "value_norm"}},  # a preset extends a preset
            "WindowKV's windows, budgets and sharing, scoring tokens by their value norms (no attention).",
            "Guo et al., arXiv 2406.12335 (value norms); Zuo et al., arXiv 2503.17922 (WindowKV)",
            ("example",),
        )
    ]
