"""Invariant 3: kept positions are unique, sorted over the valid slots and inside the row's real
tokens; windows are whole and aligned to the row's first real token, except the last, shorter window
(DESIGN.md, Budget semantics)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv.testing import check_layer_positions, check_selector_contract, make_component

from _scenarios import COMBOS, REGISTRIES, per_combo, scaled, scenarios


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo()
@given(data=st.data())
def test_invariant_3_positions_unique_sorted_windows_whole(selector, sharing, allocator, data):
    scenario = data.draw(scenarios(selector, sharing, allocator), label="scenario")
    run, selections = scenario.run()
    for layer, selection in enumerate(selections):
        check_layer_positions(scenario.policy, run, layer, selection, scenario.kv_heads)
        if selection is not None:
            # unused slots (valid False) never hide a kept position: valid slots come first
            valid = selection.valid.to(torch.int8)
            assert torch.equal(valid, valid.sort(dim=-1, descending=True, stable=True).values)


@pytest.mark.parametrize("selector", REGISTRIES["selector"].names())
@scaled(2)
@given(window_size=st.integers(1, 16), heads=st.sampled_from(["shared", "per_kv_head"]),
       seed=st.integers(0, 2**16))
def test_invariant_3_selector_alone_keeps_whole_windows(selector, window_size, heads, seed):
    check_selector_contract(
        make_component(REGISTRIES["selector"].get(selector), window_size=window_size, heads=heads), seed=seed
    )
