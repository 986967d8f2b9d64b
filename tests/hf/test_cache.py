"""Per-layer cache lengths after compression, and decoding appends normally."""

from __future__ import annotations

import torch

from windowkv import Policy
from tests.hf.conftest import prompt, tiny_model


def test_each_layer_holds_its_kept_review_tokens_plus_suffix(family):
    model = tiny_model(family, layers=6)
    policy = Policy.from_preset("windowkv", budget=24, sharing={"group_size": 2}, allocator={"group_size": 2})
    ids = prompt(200, seed=30)
    with policy.apply(model, task="qa") as handle, torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
        run = handle.last_run
        for layer in range(6):
            budget = run.groups[0].budgets[layer][0]
            sel = run.selections[layer]
            slots = cache.layers[layer].keys.shape[-2]
            assert slots == min(budget, 200 - 32) + 32 == run.kept_bound(layer)
            kept = sel.positions[0, 0][sel.valid[0, 0]]
            review = kept[kept < 168]
            assert review.numel() <= budget and review.numel() % 8 == 0  # whole windows (168 = 21 x 8)
            assert torch.equal(kept[kept >= 168], torch.arange(168, 200))  # the suffix is never evicted
        token = torch.tensor([[5]])
        model(token, past_key_values=cache, use_cache=True)
        for layer in range(6):
            assert cache.layers[layer].keys.shape[-2] == run.kept_bound(layer) + 1


def test_an_explicit_empty_dynamic_cache_is_compressed():
    """``DynamicCache()`` without a config creates its layers lazily, at their first update."""
    from transformers import DynamicCache

    model = tiny_model("llama")
    ids = prompt(120, seed=31)
    policy = Policy.from_preset("windowkv", budget=16)
    with policy.apply(model, task="qa") as handle, torch.no_grad():
        cache = DynamicCache()
        model(ids, past_key_values=cache, use_cache=True)
    assert handle.last_run.active
    assert cache.layers[0].keys.shape[-2] == handle.last_run.kept_bound(0) == 16 + 32
