"""Invariant 7: in a left-padded batch of prompts of different lengths (and different task profiles),
each row keeps exactly the positions it keeps alone, shifted by its padding (DESIGN.md, Budget
semantics). Padding-only rows (length 0) have no "alone" and are checked to keep nothing."""

from __future__ import annotations

import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

from windowkv import Policy
from windowkv.budgets import ArithmeticGroupBudget
from windowkv.classifiers import FixedClassifier
from windowkv.policies.policy import windowkv_profiles
from windowkv.sharing import AllLayersSharing
from windowkv.testing import kept_positions, make_component, run_policy, synthetic_layer

from _scenarios import COMBOS, REGISTRIES, scenarios

#: Policy.select_layer scores a sharing group at the first layer that compresses for *some row* of the
#: batch (stored under the leader's key), not at the leader: a row then reuses scores of another
#: layer than it would alone. Needs budgets that vary inside a sharing group (arithmetic_groups with
#: all_layers, or groups of another size); the hypothesis combos do not always draw such a batch,
#: so their mark is not strict: test_invariant_7_lazy_leader_reproducer is.
LAZY_LEADER_BUG = "bug: shared scores come from the first layer compressing for any row, not the leader"


def _marks(sharing: str, allocator: str):
    if allocator == "arithmetic_groups" and sharing in ("all_layers", "groups"):
        return [pytest.mark.xfail(strict=False, reason=LAZY_LEADER_BUG)]
    return []


COMBOS_7 = [pytest.param(*p.values, id=p.id, marks=_marks(*p.values[1:])) for p in COMBOS]


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


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS_7)
@settings(phases=[Phase.explicit, Phase.reuse, Phase.generate])  # shrinking the known bug's cases is slow
@given(data=st.data())
def test_invariant_7_batch_rows_match_rows_alone(selector, sharing, allocator, data):
    scenario = data.draw(scenarios(selector, sharing, allocator, max_batch=3), label="scenario")
    check_rows_match_alone(scenario)


@pytest.mark.parametrize("scorer", REGISTRIES["scorer"].names())
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


@pytest.mark.xfail(strict=True, reason=LAZY_LEADER_BUG)
def test_invariant_7_lazy_leader_reproducer():
    """Rows of 40 and 100 tokens (s=16), budget 64, arithmetic groups of 4 (109, 79, 48, 18 tokens),
    all layers sharing layer 0's scores. Layer 0 evicts nothing; layer 4 evicts for the long row and
    scores both rows with layer 4's keys; the short row first evicts at layer 12, from layer 4's scores
    in the batch but from layer 12's alone."""
    policy = Policy(64, classifier=FixedClassifier(label="other"), allocator=ArithmeticGroupBudget(group_size=4),
                    sharing=AllLayersSharing(), profiles=windowkv_profiles())
    layers = [synthetic_layer([40, 100], seed=layer) for layer in range(16)]
    _, batched = run_policy(policy, layers)
    _, alone = run_policy(policy, [layer.row(0) for layer in layers])
    for layer in range(16):
        got = [p - 60 for p in kept_positions(batched[layer], 0, 0, 100)] if batched[layer] is not None else list(range(40))
        assert got == kept_positions(alone[layer], 0, 0, 40), f"layer {layer}"
