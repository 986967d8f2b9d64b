"""Named policy configurations ("presets"): a policy is a configuration, not a subclass.

Plugins add presets through the ``windowkv_register_policies`` hook.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Preset:
    """A named, complete policy configuration (everything but the budget, which the user gives).

    Attributes:
        name: registry name (``^[a-z][a-z0-9_]*$``).
        config: a policy configuration dict as accepted by :meth:`windowkv.Policy.from_config`.
        description: one sentence for listings.
        paper: reference of the method.
        budget_locked: the preset's own ``budget`` wins over the user's (e.g. ``full``).
    """

    name: str
    config: dict[str, Any]
    description: str = ""
    paper: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)
    budget_locked: bool = False

    def resolved(self) -> dict[str, Any]:
        """A deep copy of the configuration with ``name`` set."""
        return {"name": self.name, **copy.deepcopy(self.config)}


WINDOWKV_CONFIG: dict[str, Any] = {
    "scorer": {"type": "suffix_attention"},
    "classifier": {"type": "embedding"},
    "allocator": {"type": "arithmetic_groups", "group_size": 8, "beta": 14.0},
    "sharing": {"type": "groups", "group_size": 8},
    "profiles": {
        "qa": {"selector": {"type": "window_max", "window_size": 8, "heads": "shared"}, "suffix_size": 32},
        "other": {"selector": {"type": "window_average", "window_size": 8, "heads": "shared"}, "suffix_size": 16},
    },
}

BUILTIN_PRESETS = (
    Preset(
        "windowkv",
        WINDOWKV_CONFIG,
        "Task-adaptive windows, decreasing group budgets and index sharing in groups of 8 layers.",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025)",
        ("reference",),
    ),
    Preset(
        "windowkv_keyword",
        {**WINDOWKV_CONFIG, "classifier": {"type": "keyword"}},
        "WindowKV with the keyword heuristic as task classifier (no model to load; less accurate on "
        "phrasings it was not written for).",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025); classifier: windowkv",
        ("variant",),
    ),
    Preset(
        "windowkv_deep_leader",
        {**WINDOWKV_CONFIG, "sharing": {"type": "groups", "group_size": 8, "leader_layer": "last"}},
        "WindowKV whose layer groups share the selection of their last (deepest) layer instead of the "
        "first; better needle retrieval on small models at the same scoring cost.",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025); leader choice: windowkv",
        ("variant",),
    ),
    Preset(
        "full",
        {
            "budget": 1.0,
            "scorer": {"type": "suffix_attention"},
            "classifier": {"type": "fixed", "label": "all"},
            "allocator": {"type": "uniform"},
            "sharing": {"type": "none"},
            "profiles": {"all": {"selector": {"type": "window_average", "window_size": 1}, "suffix_size": 1}},
        },
        "No compression: the full KV cache (a ratio budget of 1 keeps every token).",
        "",
        ("baseline",),
        budget_locked=True,
    ),
)
