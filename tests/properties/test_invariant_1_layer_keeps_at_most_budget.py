"""Invariant 1: every layer keeps at most ``min(b_l, L_review)`` review tokens per row and head, and
the whole valid suffix on top; all review tokens when the budget suffices (DESIGN.md, Budget semantics)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windowkv.testing import check_layer_budget

from _scenarios import COMBOS, per_combo, scenarios


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo()
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
