"""Chunked prefill under a budget (``policy.apply(model, prefill_chunk=C)``, :mod:`windowkv.hf.chunked`)."""

from __future__ import annotations

import pytest
import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from windowkv.errors import ConfigError
from windowkv.hf.chunked import chunk_bounds
from tests.hf.conftest import greedy, prompt, tiny_model

CHUNK = 48


def _physical(layer) -> int:
    return layer.physical_length() if isinstance(layer, CompressedLayer) else layer.keys.shape[-2]


def _record_slots(model):
    """Forward hooks on every attention module, registered before ``apply`` so they run before windowkv's
    eviction: ``seen[l]`` lists layer ``l``'s slots right after each chunk's update."""
    from windowkv.hf.architectures import attention_layers

    seen: dict[int, list[int]] = {}

    def hook(module, args, kwargs, output):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        seen.setdefault(module.layer_idx, []).append(_physical(cache.layers[module.layer_idx]))

    return seen, [m.register_forward_hook(hook, with_kwargs=True) for m in attention_layers(model)]


def test_chunk_bounds_end_aligned():
    assert chunk_bounds(10, 4) == [(0, 2), (2, 6), (6, 10)]
    assert chunk_bounds(8, 4) == [(0, 4), (4, 8)]
    assert chunk_bounds(3, 4) == [(0, 3)]


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "qwen3"])
@pytest.mark.parametrize("preset", ["snapkv", "windowkv", "adakv"])
def test_slots_never_exceed_budget_plus_chunk(family, preset, one_torch_thread):
    model = tiny_model(family)
    ids = prompt(300, seed=1)
    policy = Policy.from_preset(preset, 32)
    seen, hooks = _record_slots(model)
    try:
        with policy.apply(model, task="qa" if preset == "windowkv" else None, prefill_chunk=CHUNK) as handle:
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False,
                                 pad_token_id=0, eos_token_id=None, return_dict_in_generate=True)
    finally:
        for h in hooks:
            h.remove()
    run = handle.last_run
    chunks = len(chunk_bounds(300, CHUNK))
    assert run.padded_length == 300  # the run is planned for the whole prompt
    heads = model.config.num_key_value_heads if preset == "adakv" else 1
    for layer, sizes in seen.items():
        bound = run.kept_bound(layer, heads)
        prefill = sizes[:chunks]
        assert max(prefill) <= bound + CHUNK, (layer, prefill, bound)
        assert max(prefill) < 300
        cached = out.past_key_values.layers[layer]
        assert isinstance(cached, CompressedLayer)
        assert cached.num_slots <= bound
        assert cached.logical_length == 300 + 2


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_chunk_at_least_the_prompt_equals_one_shot(family, one_torch_thread):
    model = tiny_model(family)
    ids = prompt(120, seed=2)
    policy = Policy.from_preset("snapkv", 24)
    with policy.apply(model), torch.no_grad():
        one_shot = model(ids, use_cache=True).past_key_values
    with policy.apply(model, prefill_chunk=120), torch.no_grad():
        chunked = model(ids, use_cache=True).past_key_values
    for a, b in zip(one_shot.layers, chunked.layers):
        assert torch.equal(a.positions, b.positions) and torch.equal(a.valid, b.valid)
        assert torch.equal(a.keys, b.keys) and torch.equal(a.values, b.values)


@pytest.mark.parametrize("family", ["llama", "qwen2", "mistral", "qwen3"])
def test_budget_covering_the_prompt_generates_like_the_uncompressed_model(family, one_torch_thread):
    model = tiny_model(family)
    ids = prompt(150, seed=3)
    expected = greedy(model, ids)
    with Policy.from_preset("snapkv", 1000).apply(model, prefill_chunk=40):
        assert torch.equal(greedy(model, ids), expected)


@pytest.mark.parametrize("family", ["llama", "qwen3"])
def test_kept_slots_keep_their_true_positions(family, one_torch_thread):
    """Layer 0's keys depend only on the token and its rotary position: every kept slot must hold the
    uncompressed prefill's key and value at the slot's position."""
    model = tiny_model(family)
    ids = prompt(200, seed=4)
    with torch.no_grad():
        full = model(ids, use_cache=True).past_key_values.layers[0]
    with Policy.from_preset("snapkv", 16).apply(model, prefill_chunk=32), torch.no_grad():
        layer = model(ids, use_cache=True).past_key_values.layers[0]
    keys, values = layer.dense()
    for head in range(keys.shape[1]):  # snapkv selects per KV head
        valid = layer.valid[0, min(head, layer.valid.shape[1] - 1)]
        pos = layer.positions[0, min(head, layer.positions.shape[1] - 1)][valid]
        assert 0 < pos.numel() < 200 and bool((pos.diff() > 0).all())
        assert pos[-1] == 199  # the suffix is kept
        torch.testing.assert_close(keys[0, head][valid], full.keys[0, head, pos], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(values[0, head][valid], full.values[0, head, pos], rtol=1e-5, atol=1e-5)


def test_budgets_are_planned_on_the_whole_prompt(one_torch_thread):
    """A ratio budget keeps the same number of tokens per layer as the one-shot prefill (not a ratio of a chunk)."""
    model = tiny_model("llama")
    ids = prompt(240, seed=5)
    policy = Policy.from_preset("snapkv", 0.25)
    with policy.apply(model) as one_shot, torch.no_grad():
        model(ids, use_cache=True)
    with policy.apply(model, prefill_chunk=40) as chunked, torch.no_grad():
        model(ids, use_cache=True)
    assert chunked.last_run.kept_tokens() == one_shot.last_run.kept_tokens()


@pytest.mark.parametrize("preset", ["streaming_llm", "corm", "knorm", "tova", "chunkkv", "pyramidkv", "random"])
def test_presets_keep_the_one_shot_counts_when_chunked(preset, one_torch_thread):
    model = tiny_model("qwen2")
    ids = prompt(300, seed=1)
    policy = Policy.from_preset(preset, 32)
    with policy.apply(model) as one_shot:
        greedy(model, ids, new=2)
    with policy.apply(model, prefill_chunk=64) as chunked:
        greedy(model, ids, new=2)
    kept = chunked.last_run.kept_tokens()
    assert all(n[0] <= chunked.last_run.kept_bound(layer) for layer, n in enumerate(kept))
    if preset != "chunkkv":  # whole windows are cut over the slots held, not the prompt: counts may differ
        assert kept == one_shot.last_run.kept_tokens()


def test_a_plain_forward_returns_the_last_chunks_logits(one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(200, seed=8)
    with Policy.from_preset("snapkv", 24).apply(model, prefill_chunk=64), torch.no_grad():
        out = model(ids)  # no cache passed: the handle creates one
    assert out.logits.shape[1] == 64
    assert out.past_key_values.layers[0].logical_length == 200


def test_generate_continues_a_chunked_cache(one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(200, seed=6)
    with Policy.from_preset("snapkv", 24).apply(model, prefill_chunk=50):
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                             pad_token_id=0, eos_token_id=None, return_dict_in_generate=True)
        hist = torch.cat([out.sequences, prompt(5, seed=7)], dim=-1)
        more = model.generate(hist, attention_mask=torch.ones_like(hist), max_new_tokens=3, do_sample=False,
                              pad_token_id=0, eos_token_id=None, past_key_values=out.past_key_values)
    assert more.shape[1] == hist.shape[1] + 3
    assert out.past_key_values.layers[0].logical_length == hist.shape[1] + 2


# ------------------------------------------------------------------ bad input


def test_chunk_smaller_than_the_suffix_is_refused():
    model = tiny_model("llama", layers=2)
    with pytest.raises(ConfigError, match=r"prefill_chunk 16 is smaller than the suffix of 32 tokens"):
        Policy.from_preset("snapkv", 24).apply(model, prefill_chunk=16)
    with pytest.raises(ConfigError, match="positive"):
        Policy.from_preset("snapkv", 24).apply(model, prefill_chunk=0)


def test_a_scorer_needing_the_whole_prompt_is_refused():
    model = tiny_model("llama", layers=2)
    with pytest.raises(ConfigError, match="scorer 'cumulative_attention'"):
        Policy.from_preset("h2o", 24).apply(model, prefill_chunk=64)


def test_stages_after_selection_are_refused():
    model = tiny_model("llama", layers=2)
    policy = Policy.from_config({"preset": "snapkv", "budget": 24, "quantizer": {"type": "uniform"}})
    with pytest.raises(ConfigError, match="quantizer 'uniform'"):
        policy.apply(model, prefill_chunk=64)


def test_a_batch_is_refused(one_torch_thread):
    model = tiny_model("llama", layers=2)
    ids = torch.cat([prompt(100, seed=1), prompt(100, seed=2)])
    mask = torch.ones_like(ids)
    mask[1, :10] = 0
    with Policy.from_preset("snapkv", 24).apply(model, prefill_chunk=40), \
            pytest.raises(ValueError, match="one prompt at a time \\(got a batch of 2\\)"):
        greedy(model, ids, mask)
    # short prompts (one chunk) still take the ordinary path, batched
    with Policy.from_preset("snapkv", 24).apply(model, prefill_chunk=200):
        assert greedy(model, ids, mask, new=2).shape == (2, 2)
