"""Invariant 1: every layer keeps at most ``min(b_l, L_review)`` review tokens per row and head, and
the whole valid suffix on top; all review tokens when the budget suffices (DESIGN.md, Budget semantics)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windowkv.testing import check_layer_budget, max_kept

from _scenarios import COMBOS, REGISTRIES, examples, per_combo, scenarios, selector_cases


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(250)
@given(data=st.data())
def test_invariant_1_layer_keeps_at_most_budget(selector, sharing, allocator, data):
    scenario = data.draw(scenarios(selector, sharing, allocator), label="scenario")
    run, selections = scenario.run()
    evicted = False
    for layer, selection in enumerate(selections):
        kept = check_layer_budget(scenario.policy, run, layer, selection, scenario.kv_heads)
        evicted |= any(k < n for row, n in enumerate(_review_lengths(run)) for k in kept[row])
    # a layer returning positions must have evicted something for some row, or kept the budgets' bound
    assert evicted == run.active


def _review_lengths(run):
    out = [0] * len(run.lengths)
    for group in run.groups:
        for i, row in enumerate(group.rows):
            out[row] = group.review_lengths[i]
    return out


@pytest.mark.parametrize("selector", REGISTRIES["selector"].names())
@examples(800, len(REGISTRIES["selector"]))
@given(case=st.data())
def test_invariant_1_selector_alone_keeps_at_most_budget(selector, case):
    """Whatever its parameters and inputs, a selector keeps at most ``min(b, n)`` of a row's ``n`` valid
    tokens per head (a head-wise selector: ``max_kept`` per head and ``H x min(b, n)`` per row), all of
    them when the budget suffices, none beyond the row's length."""
    component, scores, lengths, budgets = case.draw(selector_cases(selector), label="case")
    keep = component(scores, lengths, budgets)
    heads = keep.shape[1]
    counts = keep.sum(-1)  # [B, H]
    for row, (n, b) in enumerate(zip(lengths.tolist(), budgets.tolist())):
        assert not keep[row, :, n:].any(), f"row {row} keeps positions beyond its length {n}"
        assert counts[row].max() <= max_kept(component, b, n, heads), (row, counts[row].tolist(), b, n)
        assert counts[row].sum() <= heads * min(b, n), (row, counts[row].tolist(), b, n)
        if b >= n:
            assert (counts[row] == n).all(), f"row {row}: budget {b} >= {n} but kept {counts[row].tolist()}"
