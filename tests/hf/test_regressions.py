"""Regression tests for the reference implementation's defects (WINDOWKV.md)."""

from __future__ import annotations

import torch

from windowkv import Policy
from tests.hf.conftest import greedy, prompt, tiny_model


def test_thirty_layers_with_groups_of_eight():
    """The reference crashes when the layer count is not a multiple of G (SmolLM2: 30 layers)."""
    model = tiny_model("llama", layers=30)
    policy = Policy.from_preset("windowkv", budget=32)
    ids = prompt(300, seed=20)
    with policy.apply(model, task="qa") as handle:
        greedy(model, ids, new=3)
    run = handle.last_run
    budgets = [run.groups[0].budgets[layer][0] for layer in range(30)]
    assert len(set(budgets[0:8])) == len(set(budgets[8:16])) == len(set(budgets[24:30])) == 1
    assert budgets[0] > budgets[8] > budgets[16] > budgets[24]
    assert sum(budgets) <= 30 * 32
    for layer in range(30):  # followers keep exactly their group leader's positions
        leader = layer - layer % 8
        assert torch.equal(run.selections[layer].positions, run.selections[leader].positions)


def test_no_stale_indices_when_the_leader_keeps_everything():
    """Reference defect: a group leader taking the "no compression" exit let followers reuse the
    previous prompt's indices. Here layer 0 (leader) keeps all of the second prompt but layer 1
    (follower) must compress it: the leader scores the second prompt for it, exactly as in a fresh
    run on that prompt alone."""
    model = tiny_model("llama", layers=2)
    shared = Policy.from_config({
        "budget": 40,
        "classifier": {"type": "fixed", "label": "qa"},
        "allocator": {"type": "arithmetic_groups", "group_size": 1, "beta": 2.0},  # 1.5B then 0.5B
        "sharing": {"type": "groups", "group_size": 2},
        "profiles": {"qa": {"selector": {"type": "window_max", "window_size": 4}, "suffix_size": 8}},
    })
    first, second = prompt(200, seed=21), prompt(60, seed=22)  # second: 52 review tokens, budgets 60 / 20
    with shared.apply(model) as handle:
        greedy(model, first, new=2)
        first_sel = handle.last_run.selections[1]
        greedy(model, second, new=2)
        run = handle.last_run
    assert 0 not in run.selections  # the leader kept everything
    with shared.apply(model) as fresh:
        greedy(model, second, new=2)
    assert torch.equal(run.selections[1].positions, fresh.last_run.selections[1].positions)
    assert int(run.selections[1].positions.max()) < 60 <= int(first_sel.positions.max())


def test_one_policy_on_two_models_keeps_their_runs_apart():
    a, b = tiny_model("llama", seed=1), tiny_model("qwen3", seed=2)
    ids_a, ids_b = prompt(150, seed=23), prompt(110, seed=24)
    policy = Policy.from_preset("windowkv", budget=16)
    with policy.apply(a, task="qa"):
        alone_a = greedy(a, ids_a)
    with policy.apply(b, task="qa"):
        alone_b = greedy(b, ids_b)
    with policy.apply(a, task="qa") as ha, policy.apply(b, task="qa") as hb:
        got_b = greedy(b, ids_b)
        got_a = greedy(a, ids_a)
    assert torch.equal(got_a, alone_a) and torch.equal(got_b, alone_b)
    assert ha.last_run is not hb.last_run
    assert ha.last_run.lengths == [150] and hb.last_run.lengths == [110]
