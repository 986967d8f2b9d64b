"""Presets beyond dropping tokens: merging, low-bit storage and key-channel pruning on top of a selection.

Each is a composition of registered parts: a selection (SnapKV's or WindowKV's) followed by the stages after
selection (``merger``, ``quantizer``, ``channel_pruner``; see ``docs/policies.md``). They are meant to be
compared at equal bytes: give them a byte budget (``"12% bytes"``) and each keeps as many slots as its
storage affords (``docs/beyond_eviction.md``).
"""

from __future__ import annotations

from windowkv.policies.baselines import SNAPKV_SCORER, TOKEN_TOPK, single_profile, windowkv_variant
from windowkv.policies.presets import Preset

SNAPKV = {"preset": "snapkv"}
KEEPKV_PAPER = "Tian et al., KeepKV: Eliminating Output Perturbation in KV Cache Compression, arXiv 2504.09936 (2025)"
TRADE_OFF_PAPER = ("Zhang et al., More Tokens, Lower Precision: Towards the Optimal Token-Precision Trade-off in KV "
                   "Cache Compression, arXiv 2412.12706 (2024)")
MINIKV_PAPER = ("Sharma et al., MiniKV: Pushing the Limits of LLM Inference via 2-Bit Layer-Discriminative KV Cache, "
                "arXiv 2411.18077 (2024)")
THINK_PAPER = "Xu et al., ThinK: Thinner Key Cache by Query-Driven Pruning, arXiv 2407.21018 (2024)"

COMPOSITION_PRESETS = (
    Preset(
        "kvmerger",
        {**SNAPKV, "merger": {"type": "kvmerger"}},
        "SnapKV selection; evicted tokens merge into the pivotal kept token of their set of similar adjacent keys "
        "(Gaussian-kernel weights).",
        "Wang et al., Model Tells You Where to Merge: Adaptive KV Cache Merging for LLMs on Long-Context Tasks, "
        "arXiv 2407.08454 (2024)",
        ("composition",),
    ),
    Preset(
        "keepkv",
        {**SNAPKV, "merger": {"type": "keepkv"}},
        "SnapKV selection; evicted tokens merge into their most similar kept slot with electoral votes that keep "
        "the observation window's attention output.",
        KEEPKV_PAPER,
        ("composition",),
    ),
    Preset(
        "windowkv_keepkv",
        windowkv_variant(merger={"type": "keepkv"}),
        "WindowKV windows; the dropped windows merge into the kept slots with KeepKV's votes.",
        f"Zuo et al., WindowKV, arXiv 2503.17922 (2025) + {KEEPKV_PAPER}",
        ("composition",),
    ),
    Preset(
        "minikv",
        {**single_profile(SNAPKV_SCORER, TOKEN_TOPK, 32, {"type": "pyramid", "beta": 20.0}),
         "quantizer": {"type": "minikv", "bits": 2, "group_size": 16}},
        "Layer-discriminative (pyramid) SnapKV selection, kept slots stored at 2 bits: keys per channel, values "
        "per token.",
        MINIKV_PAPER,
        ("composition",),
    ),
    Preset(
        "snapkv_int4",
        {**SNAPKV, "quantizer": {"type": "minikv", "bits": 4, "group_size": 16}},
        "SnapKV keeping more tokens at 4 bits (the token-precision trade-off; give a byte budget).",
        TRADE_OFF_PAPER,
        ("composition",),
    ),
    Preset(
        "windowkv_int4",
        windowkv_variant(quantizer={"type": "minikv", "bits": 4, "group_size": 16}),
        "WindowKV keeping more windows at 4 bits (the token-precision trade-off; give a byte budget).",
        f"Zuo et al., WindowKV, arXiv 2503.17922 (2025) + {TRADE_OFF_PAPER}",
        ("composition",),
    ),
    Preset(
        "windowkv_int2",
        windowkv_variant(quantizer={"type": "minikv", "bits": 2, "group_size": 16}),
        "WindowKV keeping more windows at 2 bits, stored as MiniKV does (give a byte budget).",
        f"Zuo et al., WindowKV, arXiv 2503.17922 (2025) + {MINIKV_PAPER}",
        ("composition",),
    ),
    Preset(
        "think",
        {**SNAPKV, "channel_pruner": {"type": "think", "keep_ratio": 0.6}},
        "SnapKV selection; 40% of the key channels pruned per KV head, chosen by the observation window's queries.",
        THINK_PAPER,
        ("composition",),
    ),
    Preset(
        "windowkv_think",
        windowkv_variant(channel_pruner={"type": "think", "keep_ratio": 0.6}),
        "WindowKV windows; 40% of the key channels pruned per KV head (ThinK).",
        f"Zuo et al., WindowKV, arXiv 2503.17922 (2025) + {THINK_PAPER}",
        ("composition",),
    ),
)
