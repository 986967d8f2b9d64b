"""Invariant 3: kept positions are unique, sorted over the valid slots and inside the row's real
tokens; windows are whole and aligned to the row's first real token, except the last, shorter window
(DESIGN.md, Budget semantics)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv.selectors import WindowSelector
from windowkv.testing import check_layer_positions, check_selector_contract, make_component

from _scenarios import COMBOS, REGISTRIES, examples, per_combo, scenarios, selector_cases


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(250)
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
@examples(100, len(REGISTRIES["selector"]))
@given(window_size=st.integers(1, 16), heads=st.sampled_from(["shared", "per_kv_head"]),
       seed=st.integers(0, 2**16))
def test_invariant_3_selector_contract_with_drawn_parameters(selector, window_size, heads, seed):
    check_selector_contract(
        make_component(REGISTRIES["selector"].get(selector), window_size=window_size, heads=heads), seed=seed
    )


@pytest.mark.parametrize("selector", REGISTRIES["selector"].names())
@examples(700, len(REGISTRIES["selector"]))
@given(case=st.data())
def test_invariant_3_selector_alone_keeps_whole_windows(selector, case):
    """A window selector keeps whole windows of the aligned row (the last may be shorter) and fills its
    budget to within one window; every selector's mask is deterministic."""
    component, scores, lengths, budgets = case.draw(selector_cases(selector), label="case")
    keep = component(scores, lengths, budgets)
    assert torch.equal(keep, component(scores.clone(), lengths.clone(), budgets.clone()))
    if not isinstance(component, WindowSelector):
        return
    w = component.window_size
    for row, (n, b) in enumerate(zip(lengths.tolist(), budgets.tolist())):
        for head in range(keep.shape[1]):
            kept = keep[row, head, :n]
            r = -(-n // w) * w
            windows = torch.nn.functional.pad(kept, (0, r - n), value=False).view(-1, w)  # [N, w]
            sizes = torch.clamp(n - torch.arange(0, r, w), max=w)
            whole = windows.sum(-1)
            assert ((whole == 0) | (whole == sizes)).all(), f"row {row} head {head}: a window kept partially"
            assert int(kept.sum()) >= min(b, n) - (w - 1), f"row {row} head {head}: budget {b} under-filled"
