"""Invariant 2: the review tokens kept over all layers never exceed ``num_layers x B`` for any row
(per head, averaged over heads: head-wise adaptive selectors move budget between heads): rounding
never overshoots (DESIGN.md, Budget semantics). Checked through the policy, and on
every registered allocator directly for any ``B``, ``N``, ``G`` and ``beta``."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windowkv.testing import check_layer_budget, make_component

from _scenarios import COMBOS, REGISTRIES, examples, per_combo, scenarios


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(250)
@given(data=st.data())
def test_invariant_2_total_never_exceeds_budget(selector, sharing, allocator, data):
    scenario = data.draw(scenarios(selector, sharing, allocator), label="scenario")
    run, selections = scenario.run()
    totals = [[0] * scenario.kv_heads for _ in scenario.lengths]
    for layer, selection in enumerate(selections):
        kept = check_layer_budget(scenario.policy, run, layer, selection, scenario.kv_heads)
        for row, heads in enumerate(kept):
            for head, n in enumerate(heads):
                totals[row][head] += n
    for group in run.groups:
        for i, row in enumerate(group.rows):
            average = scenario.policy.budget.average(group.review_lengths[i])
            allowed = Fraction(average) * scenario.num_layers * scenario.kv_heads
            total = sum(totals[row])
            assert total <= allowed, (
                f"row {row}: {total} review tokens kept over {scenario.num_layers} layers and "
                f"{scenario.kv_heads} heads > {scenario.num_layers} x {scenario.kv_heads} x {average}"
            )


def allocator_params():
    return st.integers(1, 64).flatmap(
        lambda g: st.fixed_dictionaries({
            "group_size": st.just(g),
            "beta": st.one_of(st.just(14.0), st.floats(g / 2 + 1e-6, 200.0, exclude_min=True)),
        })
    )


@pytest.mark.parametrize("allocator", REGISTRIES["allocator"].names())
@examples(800, len(REGISTRIES["allocator"]))
@given(
    params=allocator_params(),
    average=st.one_of(
        st.floats(0, 10_000, allow_nan=False),
        st.integers(0, 4096).map(float),
        st.fractions(0, 300, max_denominator=1000).map(float),
    ),
    num_layers=st.one_of(st.integers(1, 200), st.sampled_from([1, 7, 8, 9, 30, 32, 80])),
)
def test_invariant_2_allocator_total_never_exceeds_n_times_b(allocator, params, average, num_layers):
    component = make_component(REGISTRIES["allocator"].get(allocator), **params)
    budgets = component(average, num_layers)
    assert len(budgets) == num_layers
    assert all(isinstance(b, int) and b >= 0 for b in budgets), budgets
    assert sum(budgets) <= Fraction(average) * num_layers, (
        f"{component!r}: total {sum(budgets)} > {num_layers} x {average}"
    )
