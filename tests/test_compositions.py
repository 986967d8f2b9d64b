"""The presets beyond eviction (merging, low-bit storage, channel pruning): registered, described, documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from windowkv import Policy, load_policy
from windowkv.policies.compositions import COMPOSITION_PRESETS

ROOT = Path(__file__).resolve().parents[1]
NAMES = [p.name for p in COMPOSITION_PRESETS]


@pytest.mark.parametrize("name", NAMES)
def test_every_composition_validates_round_trips_and_has_its_config_file(name):
    policy = Policy.from_preset(name, budget="12% bytes")
    assert Policy.from_config(policy.to_config()) == policy
    assert policy.budget.bytes_ratio == pytest.approx(0.12)
    assert {"merger", "quantizer", "channel_pruner"} & set(policy.to_config())
    assert load_policy(ROOT / "configs" / f"{name}.yaml") == policy


@pytest.mark.parametrize("name", NAMES)
def test_every_composition_has_an_entry_in_the_policy_catalogue(name):
    lines = (ROOT / "docs" / "policies.md").read_text().splitlines()
    assert any(line.startswith("### ") and f"`{name}`" in line for line in lines), "no section"
    assert any(line.startswith("| ") and f"`{name}`" in line.split("|")[1] for line in lines), "no summary row"


def test_compositions_share_their_selection_with_the_eviction_preset_they_extend():
    for name, base in (("keepkv", "snapkv"), ("think", "snapkv"), ("snapkv_int4", "snapkv"),
                       ("windowkv_keepkv", "windowkv"), ("windowkv_int2", "windowkv"), ("windowkv_think", "windowkv")):
        ours, theirs = Policy.from_preset(name, budget=64).to_config(), Policy.from_preset(base, budget=64).to_config()
        assert {k: v for k, v in ours.items() if k in theirs and k != "name"} == {
            k: v for k, v in theirs.items() if k != "name"}, name
