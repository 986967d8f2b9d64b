"""Named policy configurations ("presets"): a policy is a configuration, not a subclass.

Plugins add presets through the ``windowkv_register_policies`` hook. A preset's configuration may
start from another preset (``{"preset": "windowkv", "sharing": {"type": "none"}}``); the chain is
resolved recursively and a cycle is an error naming it. The ``windowkv`` preset holds the paper's
hyperparameters, the defaults of every policy field a configuration leaves out.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from windowkv.errors import ConfigError

if TYPE_CHECKING:
    from windowkv.registry import Registries


@dataclass(frozen=True)
class Preset:
    """A named, complete policy configuration (everything but the budget, which the user gives).

    Attributes:
        name: registry name (``^[a-z][a-z0-9_]*$``).
        config: a policy configuration dict as accepted by :meth:`windowkv.Policy.from_config`; it may
            extend another preset with ``preset: NAME``.
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

    def resolved(self, registries: Registries | None = None) -> dict[str, Any]:
        """The complete configuration with ``name`` set, the presets it extends resolved through
        ``registries`` (default: the installed plugins)."""
        config = copy.deepcopy(self.config)
        if "preset" in config:
            if registries is None:
                from windowkv.plugins import default_registries

                registries = default_registries()
            base, _ = resolve_preset(config.pop("preset"), registries, (self.name,))
            config = merge_config(base, config)
        return {"name": self.name, **config}


def resolve_preset(name: str, registries: Registries, chain: tuple[str, ...] = ()) -> tuple[dict[str, Any], bool]:
    """The configuration of preset ``name`` with the presets it extends merged in, and whether its
    budget is locked.

    Raises:
        UnknownComponentError: ``name`` (or a preset it extends) is not registered.
        ConfigError: the presets extend each other in a cycle (the message names it: ``a -> b -> a``).
    """
    if name in chain:
        cycle = " -> ".join([*chain[chain.index(name):], name])
        raise ConfigError([("preset", f"presets extend each other in a cycle: {cycle}")])
    preset = registries["policy"].get(name)
    config = copy.deepcopy(preset.config)
    if "preset" in config:
        base, _ = resolve_preset(config.pop("preset"), registries, (*chain, name))
        config = merge_config(base, config)
    return config, preset.budget_locked


def merge_config(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Override ``base`` with ``override`` recursively; a dict with a new ``type`` replaces the old one."""
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        old = out.get(key)
        if isinstance(old, dict) and isinstance(value, Mapping) and value.get("type", old.get("type")) == old.get("type"):
            out[key] = merge_config(old, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def paper_defaults() -> dict[str, Any]:
    """The ``windowkv`` preset's configuration: the value of every field a policy config leaves out."""
    return _WINDOWKV.config


_WINDOWKV_CONFIG: dict[str, Any] = {
    "scorer": {"type": "suffix_attention"},
    "classifier": {"type": "embedding"},
    "allocator": {"type": "arithmetic_groups", "group_size": 8, "beta": 14.0},
    "sharing": {"type": "groups", "group_size": 8},
    "profiles": {
        "qa": {"selector": {"type": "window_max", "window_size": 8, "heads": "shared"}, "suffix_size": 32},
        "other": {"selector": {"type": "window_average", "window_size": 8, "heads": "shared"}, "suffix_size": 16},
    },
}

_WINDOWKV = Preset(
    "windowkv",
    _WINDOWKV_CONFIG,
    "Task-adaptive windows, decreasing group budgets and index sharing in groups of 8 layers.",
    "Zuo et al., WindowKV, arXiv 2503.17922 (2025)",
    ("reference",),
)

BUILTIN_PRESETS = (
    _WINDOWKV,
    Preset(
        "windowkv_keyword",
        {"preset": "windowkv", "classifier": {"type": "keyword"}},
        "WindowKV with the keyword heuristic as task classifier (no model to load; less accurate on "
        "phrasings it was not written for).",
        "Zuo et al., WindowKV, arXiv 2503.17922 (2025); classifier: windowkv",
        ("variant",),
    ),
    Preset(
        "windowkv_deep_leader",
        {"preset": "windowkv", "sharing": {"leader_layer": "last"}},
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
