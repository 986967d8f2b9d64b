"""Baseline presets: the classic KV-cache compression methods and WindowKV ablations, as configurations.

Every baseline is a composition of registered components (see ``docs/policies.md``): one profile
(``all``) chosen by a fixed classifier, no index sharing, uniform budgets unless the method allocates
budgets itself. The budget keeps its meaning: the average review tokens kept per layer; the suffix
(``suffix_size``) is kept on top. Methods with an observation window use ``s = 32`` (SnapKV, and
WindowKV's QA profile); methods without one keep only the last prompt token (``s = 1``).
"""

from __future__ import annotations

from typing import Any

from windowkv.policies.presets import Preset

#: SnapKV's scores (arXiv 2404.14469): observation window attention, mean over the window, pooled (k=5)
SNAPKV_SCORER = {"type": "pooled_suffix_attention", "kernel_size": 5, "head_reduction": "mean"}


def single_profile(scorer: dict[str, Any], selector: dict[str, Any], suffix_size: int,
                   allocator: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-profile policy configuration: fixed label ``all``, no index sharing, uniform by default."""
    return {
        "scorer": scorer,
        "classifier": {"type": "fixed", "label": "all"},
        "allocator": allocator or {"type": "uniform"},
        "sharing": {"type": "none"},
        "profiles": {"all": {"selector": selector, "suffix_size": suffix_size}},
    }


def windowkv_variant(**changes: Any) -> dict[str, Any]:
    """The ``windowkv`` preset with some top-level entries overridden (merged like user overrides)."""
    return {"preset": "windowkv", **changes}


TOKEN_TOPK = {"type": "token_topk", "heads": "per_kv_head"}

BASELINE_PRESETS = (
    Preset(
        "streaming_llm",
        single_profile({"type": "position"}, {"type": "sinks_recent", "sinks": 4, "heads": "shared"}, 1),
        "Attention sinks (first 4 tokens) and the most recent tokens; no scoring.",
        "Xiao et al., Efficient Streaming Language Models with Attention Sinks, arXiv 2309.17453 (2023)",
        ("baseline",),
    ),
    Preset(
        "snapkv",
        single_profile(SNAPKV_SCORER, TOKEN_TOPK, 32),
        "Observation-window attention pooled over 5 positions; top-k tokens per KV head.",
        "Li et al., SnapKV: LLM Knows What You are Looking for Before Generation, arXiv 2404.14469 (2024)",
        ("baseline",),
    ),
    Preset(
        "pyramidkv",
        single_profile(SNAPKV_SCORER, TOKEN_TOPK, 32, {"type": "pyramid", "beta": 20.0}),
        "SnapKV selection with budgets decreasing linearly from the first layer to the last.",
        "Cai et al., PyramidKV: Dynamic KV Cache Compression based on Pyramidal Information Funneling, "
        "arXiv 2406.02069 (2024)",
        ("baseline",),
    ),
    Preset(
        "h2o",
        single_profile({"type": "cumulative_attention", "normalize": False}, TOKEN_TOPK, 1),
        "Heavy hitters at prefill: attention accumulated over every prompt query (chunked), top-k per KV head.",
        "Zhang et al., H2O: Heavy-Hitter Oracle for Efficient Generative Inference of LLMs, arXiv 2306.14048 (2023)",
        ("baseline",),
    ),
    Preset(
        "knorm",
        single_profile({"type": "key_norm"}, TOKEN_TOPK, 1),
        "Keys with the lowest L2 norm are kept, per KV head; no attention computed.",
        "Devoto et al., A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression, "
        "arXiv 2406.11430 (2024)",
        ("baseline",),
    ),
    Preset(
        "tova",
        single_profile({"type": "suffix_attention", "head_reduction": "mean"},
                       {"type": "token_topk", "heads": "shared"}, 1),
        "The last token's attention, averaged over all heads; one top-k for the layer.",
        "Oren et al., Transformers are Multi-State RNNs (TOVA), arXiv 2401.06104 (2024)",
        ("baseline",),
    ),
    Preset(
        "random",
        single_profile({"type": "random", "seed": 0}, TOKEN_TOPK, 1),
        "Seeded uniform random scores: the floor any policy should beat.",
        "kvpress RandomPress (NVIDIA, github.com/NVIDIA/kvpress)",
        ("baseline",),
    ),
    Preset(
        "adakv",
        single_profile(SNAPKV_SCORER, {"type": "headwise_topk", "alpha_safeguard": 0.2, "heads": "per_kv_head"}, 32),
        "SnapKV scores with budgets adapted across KV heads (the best head-token pairs of the layer).",
        "Feng et al., Ada-KV: Optimizing KV Cache Eviction by Adaptive Budget Allocation, arXiv 2407.11550 (2024)",
        ("baseline",),
    ),
    Preset(
        "chunkkv",
        single_profile(SNAPKV_SCORER, {"type": "window_average", "window_size": 20, "heads": "shared"}, 32),
        "SnapKV scores; whole chunks of 20 tokens kept by mean score, shared by all heads.",
        "Liu et al., ChunkKV: Semantic-Preserving KV Cache Compression, arXiv 2502.00299 (2025)",
        ("baseline",),
    ),
    Preset(
        "corm",
        {**single_profile({"type": "suffix_attention"}, TOKEN_TOPK, 16),
         "decode": {"interval": 1, "window": 16, "reduce": "max", "heads": "per_kv_head"}},
        "Keeps the keys recent queries attended to, evicting at every decode step to budget + suffix slots "
        "per KV head (the last 16 queries score; a key stays if any of them attended to it).",
        "Dai et al., CORM: Cache Optimization with Recent Message for Large Language Model Inference, "
        "arXiv 2404.15949 (2024)",
        ("baseline", "decode"),
    ),
    Preset(
        "dbudgetkv",
        single_profile(SNAPKV_SCORER, {"type": "dbudget", "norm_ratio": 0.99, "norm": "fro", "heads": "shared"}, 32),
        "Budget decided per prompt, layer and row: prune the lowest-scored tokens until the kept scores would "
        "hold less than 99% of the full norm; the policy's budget is only a ceiling.",
        "Ni et al., DBudgetKV: Dynamic Budget in KV Cache Compression for Ensuring Optimal Performance, "
        "arXiv 2502.16886 (2025)",
        ("baseline", "dynamic-budget"),
    ),
    Preset(
        "windowkv_fixed_profile",
        windowkv_variant(classifier={"type": "fixed", "label": "qa"}),
        "WindowKV ablation: no task classifier, every prompt gets the QA profile (window max, s=32).",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025)",
        ("ablation",),
    ),
    Preset(
        "windowkv_no_sharing",
        windowkv_variant(sharing={"type": "none"}),
        "WindowKV ablation: every layer scores and selects its own windows (no index sharing).",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025)",
        ("ablation",),
    ),
    Preset(
        "windowkv_uniform_budget",
        windowkv_variant(allocator={"type": "uniform"}),
        "WindowKV ablation: every layer gets the average budget (no decreasing group budgets).",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025)",
        ("ablation",),
    ),
    Preset(
        "windowkv_token_topk",
        windowkv_variant(profiles={
            "qa": {"selector": {"type": "token_topk", "heads": "shared"}, "suffix_size": 32},
            "other": {"selector": {"type": "token_topk", "heads": "shared"}, "suffix_size": 16},
        }),
        "WindowKV ablation: tokens selected one by one (head-shared top-k) instead of windows.",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025)",
        ("ablation",),
    ),
)
