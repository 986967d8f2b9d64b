"""Invariant 7: in a left-padded batch of prompts of different lengths (and different task profiles),
each row keeps exactly the positions it keeps alone, shifted by its padding (DESIGN.md, Budget
semantics). Padding-only rows (length 0) have no "alone" and are checked to keep nothing."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv import Policy
from windowkv.allocators import ArithmeticGroupBudget
from windowkv.classifiers import FixedClassifier
from windowkv.sharing import AllLayersSharing
from windowkv.testing import kept_positions, make_component, run_policy, synthetic_layer

from _scenarios import COMBOS, REGISTRIES, examples, per_combo, scenarios, selector_cases


def check_rows_match_alone(scenario) -> None:
    run, selections = scenario.run()
    for row, n in enumerate(scenario.lengths):
        offset = scenario.padded_length - n
        if n == 0:
            assert all(s is None or not s.valid[row].any() for s in selections), f"padding-only row {row} keeps tokens"
            continue
        alone = scenario.row_alone(row)
        alone_run, alone_selections = alone.run()
        assert alone_run.predictions[0] == run.predictions[row]
        for layer, (batched, single) in enumerate(zip(selections, alone_selections)):
            for head in range(scenario.kv_heads):
                got = [p - offset for p in kept_positions(batched, row, head, scenario.padded_length)]
                if batched is None:
                    got = list(range(n))
                want = kept_positions(single, 0, head, n)
                assert got == want, (
                    f"layer {layer}, row {row} (length {n}, offset {offset}, {scenario.labels[row]}), head {head}: "
                    f"batched keeps {got}, alone {want}"
                )


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(150)
@given(data=st.data())
def test_invariant_7_batch_rows_match_rows_alone(selector, sharing, allocator, data):
    scenario = data.draw(scenarios(selector, sharing, allocator, max_batch=3), label="scenario")
    check_rows_match_alone(scenario)


@pytest.mark.parametrize("scorer", REGISTRIES["scorer"].names())
@examples(200, len(REGISTRIES["scorer"]))
@given(data=st.data())
def test_invariant_7_every_scorer_batch_rows_match_rows_alone(scorer, data):
    """Padding must not leak into any registered scorer's scores (WindowKV profiles, no sharing)."""
    scenario = data.draw(scenarios("window_max", "none", "arithmetic_groups"), label="scenario")
    policy = scenario.policy
    scenario.policy = type(policy)(
        policy.budget, scorer=make_component(REGISTRIES["scorer"].get(scorer)), classifier=policy.classifier,
        allocator=policy.allocator, sharing=policy.sharing, profiles=policy.profiles,
    )
    check_rows_match_alone(scenario)


def test_invariant_7_lazy_leader_regression():
    """Regression (found by the test above): rows of 40 and 100 tokens (s=16), budget 64, arithmetic groups of 4 (109, 79, 48, 18 tokens),
    all layers sharing layer 0's scores. Layer 0 evicts nothing; layer 4 evicts for the long row. Shared
    scores used to come from the first layer that evicted for *some* row (layer 4 in the batch, layer 12
    for the short row alone), so the short row kept other positions in the batch than alone."""
    policy = Policy(64, classifier=FixedClassifier(label="other"), allocator=ArithmeticGroupBudget(group_size=4),
                    sharing=AllLayersSharing())
    layers = [synthetic_layer([40, 100], seed=layer) for layer in range(16)]
    _, batched = run_policy(policy, layers)
    _, alone = run_policy(policy, [layer.row(0) for layer in layers])
    for layer in range(16):
        got = [p - 60 for p in kept_positions(batched[layer], 0, 0, 100)] if batched[layer] is not None else list(range(40))
        assert got == kept_positions(alone[layer], 0, 0, 40), f"layer {layer}"


@pytest.mark.parametrize("selector", REGISTRIES["selector"].names())
@examples(700, len(REGISTRIES["selector"]))
@given(case=st.data())
def test_invariant_7_selector_alone_rows_match_rows_alone(selector, case):
    """A selector treats every aligned row on its own: a row of the batch keeps what it keeps alone."""
    component, scores, lengths, budgets = case.draw(selector_cases(selector), label="case")
    keep = component(scores, lengths, budgets)
    for row in range(scores.shape[0]):
        n = int(lengths[row])
        alone = component(scores[row : row + 1, :, :n], lengths[row : row + 1], budgets[row : row + 1])
        assert torch.equal(keep[row, :, :n], alone[0]), f"row {row} (length {n}, budget {int(budgets[row])})"
