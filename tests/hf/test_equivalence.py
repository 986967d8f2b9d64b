"""Invariant 5 on real models: a budget >= the prompt generates exactly the uncompressed tokens."""

from __future__ import annotations

import torch

from windowkv import Policy
from tests.hf.conftest import greedy, prompt, tiny_model


def test_full_budget_generates_the_uncompressed_tokens(family, attn):
    model = tiny_model(family, attn)
    ids = prompt(96, seed=1)
    expected = greedy(model, ids)
    for budget in (96, 10_000, 1.0):
        policy = Policy.from_preset("windowkv", budget=budget)
        with policy.apply(model, task="qa") as handle:
            got = greedy(model, ids)
        assert torch.equal(got, expected), (family, attn, budget)
        assert handle.last_run is not None and not handle.last_run.active


def test_full_preset_ignores_the_budget(family):
    model = tiny_model(family)
    ids = prompt(80, seed=2)
    expected = greedy(model, ids)
    policy = Policy.from_preset("full", budget=4)
    with policy.apply(model):
        assert torch.equal(greedy(model, ids), expected)


def test_hooks_are_removed_after_the_context(family):
    model = tiny_model(family)
    ids = prompt(80, seed=3)
    expected = greedy(model, ids)
    with Policy.from_preset("windowkv", budget=8).apply(model, task="qa"):
        compressed = greedy(model, ids)
    assert torch.equal(greedy(model, ids), expected)
    assert compressed.shape == expected.shape
