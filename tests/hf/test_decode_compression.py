"""Compression while decoding as policy configuration (``decode``): budget + buffer, CORM, bad input."""

from __future__ import annotations

import pytest
import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from windowkv.errors import ConfigError
from tests.hf.conftest import greedy, prompt, tiny_model


def _cache(kwargs):
    return kwargs.get("cache") if kwargs.get("cache") is not None else kwargs["past_key_values"]


def snap(budget=16, prefill_heads="per_kv_head", **decode):
    """SnapKV-like prefill (token top-k, suffix 8) with decode-time compression."""
    profile = {"selector": {"heads": prefill_heads}, "suffix_size": 8}
    return Policy.from_config({"preset": "snapkv", "budget": budget, "profiles": {"all": profile},
                               "decode": {"interval": 8, "window": 4, **decode}})


def _watch(model, log):
    """Record, before every decode forward (after the policy's hooks), each compressed layer's slots."""
    def hook(module, args, kwargs):
        layers = [l for l in _cache(kwargs).layers if isinstance(l, CompressedLayer)] if _cache(kwargs) else []
        if layers:
            log.append([(l.physical_length(), *l.slot_positions(), l.logical_length) for l in layers])
    return model.register_forward_pre_hook(hook, with_kwargs=True)


def test_the_budget_holds_at_every_step_of_a_2000_token_generation(one_torch_thread):
    model = tiny_model("llama", layers=2)
    ids = prompt(100, seed=3)
    policy = snap(budget=24, interval=32, window=8)  # decode budget: 24 + 8 slots
    log = []
    with policy.apply(model):
        watch = _watch(model, log)
        out = greedy(model, ids, new=2000)
        watch.remove()
    assert out.shape == (1, 2000) and len(log) == 1999
    budget, interval = 24 + 8, 32
    for step, layers in enumerate(log, start=1):
        for physical, positions, valid, logical in layers:
            assert physical <= budget + interval
            assert logical == 100 + step - 1  # tokens seen before this step's token
            assert bool((positions[valid] < logical).all())
            for head_positions, head_valid in zip(positions[0], valid[0]):
                row = head_positions[head_valid]
                assert bool((row[1:] > row[:-1]).all())  # unique, and slots stay in position order
                assert row.numel() <= budget + interval
                assert set(range(92, 100)) <= set(row.tolist())  # the prompt's suffix is never evicted
                recent = set(range(max(logical - 8, 100), logical))
                assert recent <= set(row.tolist())  # nor the recent window


def test_true_positions_stay_right_against_the_masked_uncompressed_model(one_torch_thread):
    model = tiny_model("qwen2", layers=1)
    ids = prompt(40, seed=5)
    policy = snap(budget=8, prefill_heads="shared", interval=3, window=2, heads="shared")
    log = []
    with policy.apply(model):
        watch = _watch(model, log)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                             pad_token_id=0, eos_token_id=None, output_logits=True, return_dict_in_generate=True)
        watch.remove()
    tokens, n = out.sequences, ids.shape[1]
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
        for step in range(1, 20):
            pos = n + step - 1
            _, positions, valid, _ = log[step - 1][0]
            kept = positions[0, 0][valid[0, 0]].tolist()
            mask = torch.zeros(1, pos + 1, dtype=torch.long)
            mask[0, kept + [pos]] = 1
            logits = model(tokens[:, pos:pos + 1], attention_mask=mask, position_ids=torch.tensor([[pos]]),
                           past_key_values=cache, use_cache=True).logits[:, -1]
            torch.testing.assert_close(logits, out.logits[step], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("budget", [16, 0.5])
def test_batched_rows_decode_as_they_do_alone(budget, one_torch_thread):
    model = tiny_model("mistral", layers=2)
    a, b = prompt(70, seed=11), prompt(50, seed=12)
    policy = snap(budget=budget, interval=5, window=4)
    batch = torch.cat([a, torch.cat([torch.zeros(1, 20, dtype=torch.long), b], -1)])
    mask = torch.ones_like(batch)
    mask[1, :20] = 0
    with policy.apply(model):
        together = greedy(model, batch, mask, new=40)
        alone = [greedy(model, a, new=40), greedy(model, b, new=40)]
    assert torch.equal(together[0], alone[0][0]) and torch.equal(together[1], alone[1][0])


def test_decode_compression_starts_a_compressed_cache_even_when_the_prefill_keeps_everything(one_torch_thread):
    model = tiny_model("llama", layers=2)
    ids = prompt(20, seed=1)
    policy = Policy.from_config({"preset": "full", "decode": {"budget": 24, "interval": 4, "window": 4}})
    with policy.apply(model):
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=30, do_sample=False,
                             pad_token_id=0, eos_token_id=None, return_dict_in_generate=True)
    layers = out.past_key_values.layers
    assert all(isinstance(l, CompressedLayer) for l in layers)
    assert max(l.physical_length() for l in layers) <= 24 + 4


def test_corm_preset_keeps_budget_plus_suffix_per_kv_head(one_torch_thread):
    model = tiny_model("qwen3", layers=2)
    ids = prompt(120, seed=2)
    policy = Policy.from_preset("corm", budget=32)
    assert policy.decode.reduce == "max" and policy.decode_interval == 1
    log = []
    with policy.apply(model):
        watch = _watch(model, log)
        greedy(model, ids, new=50)
        watch.remove()
    assert all(physical <= 32 + 16 + 1 for layers in log for physical, *_ in layers)
    _, positions, valid, _ = log[-1][0]
    assert positions.shape[1] == 2  # per KV head
    assert Policy.from_config(policy.to_config()) == policy


def test_a_policy_without_decode_has_the_same_config_as_before():
    config = Policy.from_preset("windowkv", budget=64).to_config()
    assert "decode" not in config
    assert Policy.from_preset("windowkv", budget=64).decode_interval is None


@pytest.mark.parametrize("decode, budget, fragment", [
    ({"interval": 0}, 64, "decode.interval"),
    ({"window": 0}, 64, "decode.window"),
    ({"budget": 10, "window": 4}, 64, "smaller than the tokens decoding never evicts: the suffix (8) + "
                                      "decode.window (4) = 12"),
    ({"window": 16}, 4, "the policy's budget + suffix 12 is smaller"),
    ({"reduce": "mean"}, 64, "decode.reduce"),
    ({"buffer": 3}, 64, "decode.buffer"),
])
def test_bad_decode_settings_are_refused_naming_the_field(decode, budget, fragment):
    with pytest.raises(ConfigError) as err:
        Policy.from_config({"preset": "snapkv", "budget": budget, "profiles": {"all": {"suffix_size": 8}},
                            "decode": decode})
    assert fragment in str(err.value)
