"""Policies x budgets: what ``--policy`` and ``--budget`` expand to, and how rows name them.

::

    make_variants(["full", "windowkv", "my_policy.yaml"], budgets=["0.12", "0.25"])
    # full@1, windowkv@0.12, windowkv@0.25, my_policy@0.12, my_policy@0.25
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from windowkv.budget import Budget
from windowkv.config import FORMATS, read_config_file, resolve_policy
from windowkv.errors import ConfigError
from windowkv.policies import Policy

#: the budget used when neither ``--budget`` nor the policy (preset or file) gives one
DEFAULT_BUDGET = 0.25


@dataclass(frozen=True)
class Variant:
    """One policy at one budget, as rows and tables name it.

    Attributes:
        label: the policy's name in rows (a preset name, or a config file's ``name`` or stem).
        policy: the policy, budget included.
        spec: what the user typed (preset name or file path).
    """

    label: str
    policy: Policy
    spec: str = ""

    @property
    def budget(self) -> str:
        """The budget as rows store it: ``"0.25"`` (ratio of review tokens) or ``"256"`` (tokens)."""
        return budget_label(self.policy.budget)

    @property
    def fingerprint(self) -> str:
        """A short hash of the policy's complete configuration (budget included)."""
        text = json.dumps(self.policy.to_config(), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.label}@{self.budget}"


def budget_label(budget: Budget) -> str:
    if budget.in_bytes:
        return str(budget.to_config())  # "12% bytes", "65536B"
    return str(budget.tokens) if budget.tokens is not None else f"{budget.ratio:g}"


def _is_file_spec(spec: str) -> bool:
    return Path(spec).suffix.lower() in FORMATS


def _has_own_budget(spec: str) -> bool:
    """Whether the preset or config file ``spec`` sets a budget itself."""
    if _is_file_spec(spec):
        data = read_config_file(spec)
        return "budget" in data or ("preset" in data and _has_own_budget(str(data["preset"])))
    from windowkv.plugins import default_registries

    from windowkv.errors import UnknownComponentError
    from windowkv.policies.presets import resolve_preset

    registries = default_registries()
    if spec not in registries["policy"]:
        return False  # resolve_policy reports the unknown name
    try:
        config, locked = resolve_preset(spec, registries)  # a preset may take its budget from the one it extends
    except (UnknownComponentError, ConfigError):
        return False  # a bad chain: resolve_policy reports it
    return locked or "budget" in config


def make_variants(specs: Sequence[str], budgets: Sequence[str | int | float] | None = None) -> list[Variant]:
    """Every policy spec (preset name or config file) at every budget, duplicates removed.

    A preset whose budget is fixed (``full``) appears once whatever the budgets. Without budgets a
    config file keeps its own budget, a preset its own or :data:`DEFAULT_BUDGET`.

    Raises:
        ConfigError: an unknown preset (listing the registered ones), an invalid file or budget.
    """
    variants: list[Variant] = []
    seen: dict[tuple[str, str], Variant] = {}
    for spec in specs:
        spec = str(spec)
        wanted: list[Any] = list(budgets) if budgets else [None]
        for budget in wanted:
            if budget is not None:
                try:
                    Budget.of(budget)
                except ValueError as exc:
                    raise ConfigError([("budget", str(exc))]) from None
            if budget is None and not _has_own_budget(spec):
                budget = DEFAULT_BUDGET
            policy = resolve_policy(spec, budget=budget)
            label = _label(spec, policy)
            variant = Variant(label, policy, spec)
            key = (label, variant.budget)
            if key in seen:
                if seen[key].fingerprint != variant.fingerprint:
                    raise ConfigError([("policy", f"two different policies are both called {label!r} at budget "
                                                  f"{variant.budget}; give one a 'name' in its config file")])
                continue
            seen[key] = variant
            variants.append(variant)
    return variants


def _label(spec: str, policy: Policy) -> str:
    if not _is_file_spec(spec):
        return spec
    data = read_config_file(spec)
    return str(data["name"]) if data.get("name") else Path(spec).stem
