"""Invariant 4: layers that share indices keep exactly their leader's positions (with equal budgets),
for the same prompt only: two prompts, or two models, never see each other's selections (DESIGN.md,
Budget semantics; WINDOWKV.md, defects of the reference code)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv import Policy
from windowkv.allocators import ArithmeticGroupBudget, UniformBudget
from windowkv.classifiers import FixedClassifier
from windowkv.sharing import GroupSharing, NoSharing
from windowkv.testing import check_layer_selection, layer_order, make_component, run_policy, synthetic_layer

from _scenarios import COMBOS, REGISTRIES, examples, per_combo, scenarios


def same_selection(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return torch.equal(a.valid, b.valid) and torch.equal(a.positions[a.valid], b.positions[b.valid])


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(250)
@given(data=st.data())
def test_invariant_4_followers_keep_leader_positions(selector, sharing, allocator, data):
    scenario = data.draw(scenarios(selector, sharing, allocator), label="scenario")
    run, selections = scenario.run()
    policy = scenario.policy
    for layer, selection in enumerate(selections):
        leader = policy.sharing(layer, scenario.num_layers)
        if leader == layer or any(g.budgets[layer] != g.budgets[leader] for g in run.groups):
            continue
        assert same_selection(selection, selections[leader]), (
            f"layer {layer} (leader {leader}, equal budgets) keeps other positions than its leader"
        )


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(120)  # four runs per example
@given(data=st.data())
def test_invariant_4_two_prompts_never_share(selector, sharing, allocator, data):
    """Two runs of one policy, interleaved layer by layer, give what each gives alone with a fresh policy."""
    first = data.draw(scenarios(selector, sharing, allocator, max_batch=2), label="first prompt")
    second = data.draw(scenarios(selector, sharing, allocator, policy=first.policy, max_batch=2),
                       label="second prompt")
    policy = first.policy
    config = policy.to_config()
    runs = [first.start(), second.start()]
    got: list[list] = [[None] * first.num_layers, [None] * second.num_layers]
    orders = [layer_order(policy.sharing, first.num_layers), layer_order(policy.sharing, second.num_layers)]
    for step in range(max(first.num_layers, second.num_layers)):
        for i, scenario in enumerate((first, second)):
            if step < scenario.num_layers:
                layer = orders[i][step]
                got[i][layer] = scenario.layers[layer].select(policy, runs[i], layer)
    assert policy.to_config() == config
    for i, scenario in enumerate((first, second)):
        fresh = Policy.from_config(config, REGISTRIES)
        run, alone = scenario.run(fresh)
        for layer, (a, b) in enumerate(zip(got[i], alone)):
            check_layer_selection(policy, runs[i], layer, a, scenario.kv_heads)
            assert same_selection(a, b), f"prompt {i}, layer {layer}: interleaving with another prompt changed it"


@pytest.mark.parametrize("sharing", REGISTRIES["sharing"].names())
@examples(700, len(REGISTRIES["sharing"]))
@given(group_size=st.integers(1, 64), leader_layer=st.sampled_from(["first", "last"]),
       num_layers=st.one_of(st.integers(1, 96), st.sampled_from([1, 7, 8, 9, 30, 32, 80])),
       lengths=st.lists(st.integers(0, 64), min_size=1, max_size=3))
def test_invariant_4_sharing_alone_leaders_lead_and_runs_share_nothing(sharing, group_size, leader_layer,
                                                                       num_layers, lengths):
    """Every layer's leader is a layer that leads itself, the run's leaders are the strategy's, the layer
    order visits each leader before its followers, and two runs of one policy share no state."""
    strategy = make_component(REGISTRIES["sharing"].get(sharing), group_size=group_size, leader_layer=leader_layer)
    leaders = [strategy(layer, num_layers) for layer in range(num_layers)]
    assert all(0 <= leader < num_layers and strategy(leader, num_layers) == leader for leader in leaders)
    seen: set[int] = set()
    for layer in layer_order(strategy, num_layers):
        assert leaders[layer] in seen | {layer}, f"layer {layer} comes before its leader {leaders[layer]}"
        seen.add(layer)
    assert seen == set(range(num_layers))
    policy = Policy(8, sharing=strategy)
    first, second = (policy.start_run(lengths, max(lengths), num_layers, task="qa") for _ in range(2))
    assert first.leaders == second.leaders == leaders
    assert first.shared_scores is not second.shared_scores and first.selections is not second.selections


def reference_defect_policy(allocator) -> Policy:
    return Policy(64, classifier=FixedClassifier(label="other"), allocator=allocator,
                  sharing=GroupSharing(group_size=8))


def test_invariant_4_leader_no_compression_exit_reuses_nothing_stale():
    """The reference defect: after a prompt that compressed, a group leader of the next prompt takes
    the "no compression needed" exit, and its followers reuse the previous prompt's indices."""
    policy = reference_defect_policy(UniformBudget())
    long_layers = [synthetic_layer([300], seed=layer) for layer in range(16)]
    run, selections = run_policy(policy, long_layers)
    assert all(s is not None for s in selections)
    short_layers = [synthetic_layer([70], seed=100 + layer) for layer in range(16)]  # 70 - 16 <= 64
    run, selections = run_policy(policy, short_layers)
    assert not run.active
    assert selections == [None] * 16


def test_invariant_4_follower_compressing_after_leader_exit_uses_its_own_prompt():
    """Budgets that fall inside a sharing group (allocator groups of 2, sharing groups of 8): the
    group's leader keeps everything itself, yet later layers of the group compress from the leader's
    scores of this prompt, never from a previous prompt's."""
    policy = reference_defect_policy(ArithmeticGroupBudget(group_size=2))
    stale_run, stale = run_policy(policy, [synthetic_layer([300], seed=layer) for layer in range(16)])
    layers = [synthetic_layer([100], seed=500 + layer) for layer in range(16)]
    run, selections = run_policy(policy, layers)
    budgets = run.groups[0].budgets
    assert budgets[0][0] >= 84 > budgets[7][0], budgets  # review length 100 - 16 = 84
    assert selections[0] is None and selections[7] is not None
    # a follower selects from its leader's scores with its own budget: as an unshared layer would
    # with the leader's keys and queries
    unshared = Policy(64, classifier=FixedClassifier(label="other"), allocator=policy.allocator,
                      sharing=NoSharing(), profiles=policy.profiles)
    _, expected = run_policy(unshared, [layers[policy.sharing(layer, 16)] for layer in range(16)])
    _, fresh = run_policy(Policy.from_config(policy.to_config(), REGISTRIES), layers)
    for layer in range(16):
        check_layer_selection(policy, run, layer, selections[layer], kv_heads=2)
        assert same_selection(selections[layer], expected[layer]), f"layer {layer}"
        assert same_selection(selections[layer], fresh[layer])
        assert stale[layer] is None or not same_selection(selections[layer], stale[layer])
