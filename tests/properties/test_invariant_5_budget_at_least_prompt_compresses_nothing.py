"""Invariant 5: a budget at least the prompt length (tokens), or a ratio of 1, compresses nothing:
every layer keeps its whole cache (``select_layer`` returns None) and the run is inactive (DESIGN.md,
Budget semantics; the generation-level equivalence is tested with real models in tests/hf/)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windowkv import Policy
from windowkv.allocators import ArithmeticGroupBudget
from windowkv.classifiers import FixedClassifier

from _scenarios import COMBOS, REGISTRIES, examples, per_combo, scenarios, selector_cases


def covered(data, selector: str, sharing: str, allocator: str):
    """A drawn scenario whose policy's budget covers every row: a ratio of 1, or tokens >= the longest."""
    scenario = data.draw(scenarios(selector, sharing, allocator), label="scenario")
    longest = max(scenario.lengths)
    budget = data.draw(st.one_of(st.just(1.0), st.integers(max(longest, 1), 4 * longest + 1)), label="budget")
    return dataclasses.replace(scenario, policy=scenario.policy.with_budget(budget))


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(250)
@given(data=st.data())
def test_invariant_5_budget_at_least_prompt_compresses_nothing(selector, sharing, allocator, data):
    scenario = covered(data, selector, sharing, allocator)
    run, selections = scenario.run()
    assert not run.active
    assert selections == [None] * scenario.num_layers


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(500)
@given(data=st.data())
def test_invariant_5_plan_of_a_budget_at_least_prompt_evicts_nowhere(selector, sharing, allocator, data):
    """The run's plan alone (no layer selected): no layer of any row compresses."""
    scenario = covered(data, selector, sharing, allocator)
    run = scenario.start()
    assert not run.active and not any(run.layer_needs_scores(layer) for layer in range(scenario.num_layers))


@pytest.mark.parametrize("selector", REGISTRIES["selector"].names())
@examples(300, len(REGISTRIES["selector"]))
@given(case=st.data())
def test_invariant_5_selector_alone_with_budget_at_least_length_keeps_everything(selector, case):
    component, scores, lengths, budgets = case.draw(selector_cases(selector), label="case")
    budgets = lengths + budgets  # every budget covers its row
    keep = component(scores, lengths, budgets)
    for row, n in enumerate(lengths.tolist()):
        assert keep[row, :, :n].all() and not keep[row, :, n:].any(), f"row {row} of length {n}"


@pytest.mark.parametrize("budget", [100, 84, 1.0])
def test_invariant_5_windowkv_preset_budget_equal_to_prompt_length(budget):
    """Regression: with WindowKV's defaults, a 100-token prompt (review 84 with s=16) and budget 100,
    84 or 100%, the arithmetic groups gave layers 24-31 floor(B * 8 / 14) < 84 tokens, which evicted."""
    policy = Policy(budget, classifier=FixedClassifier(label="other"), allocator=ArithmeticGroupBudget())
    run = policy.start_run([100], 100, num_layers=32)
    assert not run.active, f"layer budgets {[b[0] for b in run.groups[0].budgets]} for 84 review tokens"
