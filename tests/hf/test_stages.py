"""Merging, key-channel pruning and low-bit storage inside ``model.generate``, through the compressed layer."""

from __future__ import annotations

import pytest
import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from windowkv.errors import ConfigError
from tests.hf.conftest import greedy, prompt, tiny_model
from tests.hf.test_oracle import shared_policy


def _policy(**stages):
    return Policy.from_config({**shared_policy().to_config(), **stages})


def _generate(model, policy, ids):
    with policy.apply(model), torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=0, eos_token_id=None, return_dict_in_generate=True)
    return out.sequences[:, ids.shape[1]:], out.past_key_values


def test_the_drop_merger_generates_what_plain_eviction_generates(family, one_torch_thread):
    model = tiny_model(family)
    ids = prompt(64, seed=4)
    plain, _ = _generate(model, shared_policy(), ids)
    dropped, cache = _generate(model, _policy(merger={"type": "drop"}), ids)
    assert torch.equal(plain, dropped)
    assert cache.layers[0].weights is None


def test_merged_slots_carry_the_tokens_they_stand_for(one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(64, seed=4)
    _, cache = _generate(model, _policy(merger={"type": "nearest_mean"}), ids)
    layer = cache.layers[0]
    assert isinstance(layer, CompressedLayer) and layer.weights is not None
    # every prompt token is kept or merged into exactly one kept slot
    assert layer.weights.sum(-1).tolist() == [[64.0, 64.0]]


def test_pruned_channels_and_quantized_slots_are_really_smaller(one_torch_thread):
    model = tiny_model("qwen3")
    ids = prompt(96, seed=2)
    _, plain = _generate(model, shared_policy(), ids)
    _, pruned = _generate(model, _policy(channel_pruner={"type": "think", "keep_ratio": 0.5}), ids)
    _, packed = _generate(model, _policy(quantizer={"type": "uniform", "bits": 4, "group_size": 8}), ids)
    slots = plain.layers[0].num_slots
    assert pruned.layers[0].key_channels.shape == (1, 2, 8)
    assert pruned.layers[0].stored_keys.shape == (1, 2, slots, 8)
    dense_slot_bytes = 2 * 2 * slots * 16 * 4  # keys and values, 2 KV heads, head dim 16, float32
    index_bytes = 2 * 8 * 8  # the kept channel indices (long) are counted too
    assert plain.layers[0].kv_nbytes() - pruned.layers[0].kv_nbytes() == dense_slot_bytes // 4 - index_bytes
    packed_slot_bytes = packed.layers[0].kv_nbytes() - (plain.layers[0].kv_nbytes() - dense_slot_bytes)
    values = dense_slot_bytes // 4
    assert packed_slot_bytes == values * 4 // 8 + 2 * (values // 8) * 4  # 4 bits a value, a float32 scale and zero per 8


def test_eight_bit_storage_stays_close_to_the_dense_cache(one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(64, seed=4)
    with torch.no_grad():
        logits = []
        for policy in (shared_policy(), _policy(quantizer={"type": "uniform", "bits": 8, "group_size": 16})):
            with policy.apply(model):
                cache = model(ids, use_cache=True).past_key_values
                logits.append(model(ids[:, -1:], past_key_values=cache, use_cache=True).logits)
    torch.testing.assert_close(logits[1], logits[0], rtol=0.05, atol=0.02)


def test_a_stage_that_cannot_serve_the_model_is_refused_at_apply(one_torch_thread):
    model = tiny_model("llama")  # head_dim 16
    policy = _policy(quantizer={"type": "uniform", "bits": 4, "group_size": 32})
    with pytest.raises(ConfigError, match="quantizer 'uniform' cannot serve policy"):
        policy.apply(model)


def test_an_attention_implementation_that_cannot_read_the_stages_is_named_with_them(one_torch_thread):
    from windowkv.errors import UnsupportedModelError

    model = tiny_model("llama")
    model.config._attn_implementation = "flash_attention_2"
    with pytest.raises(UnsupportedModelError, match="'flash_attention_2' cannot read a compressed cache with "
                                                    "merger 'nearest_mean'"):
        _policy(merger={"type": "nearest_mean"}).apply(model)


@pytest.mark.parametrize("merger", ["keepkv", "kvmerger"])
def test_attention_weighing_mergers_merge_the_dropped_windows_inside_generate(merger, one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(64, seed=4)
    _, plain = _generate(model, shared_policy(), ids)
    tokens, merged = _generate(model, _policy(merger={"type": merger, **({"similarity_threshold": 0.0}
                                                                         if merger == "kvmerger" else {})}), ids)
    layer, before = merged.layers[0], plain.layers[0]
    assert tokens.shape == (1, 6)
    assert layer.num_slots == before.num_slots and torch.equal(layer.positions, before.positions)
    assert not torch.equal(layer.dense_slots()[1], before.dense_slots()[1])  # evicted values were merged in
    if merger == "keepkv":  # votes reach attention as log(vote) on every slot
        assert layer.weights is not None and (layer.weights[layer.valid.expand_as(layer.weights)] > 0).all()
        assert (layer.weights != 1).any()
        mask = layer.attention_mask(None, 1, model.config.num_attention_heads, "sdpa", torch.float32)
        assert torch.allclose(mask[0, 0, 0, : layer.num_slots], torch.log(layer.weights[0, 0]))
    else:  # KVMerger adds no attention bias
        assert layer.weights is None


def test_a_merger_is_a_no_op_when_nothing_is_evicted(one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(24, seed=4)
    plain, _ = _generate(model, Policy.from_preset("full"), ids)
    policy = Policy.from_config({**shared_policy().to_config(), "budget": 1.0, "merger": {"type": "keepkv"}})
    merged, cache = _generate(model, policy, ids)
    assert torch.equal(plain, merged) and not any(isinstance(layer, CompressedLayer) for layer in cache.layers)


def test_minikv_stores_two_bit_keys_per_channel_and_values_per_token_inside_generate(one_torch_thread):
    model = tiny_model("llama")  # 2 KV heads, head dim 16, float32
    ids = prompt(64, seed=4)
    _, plain = _generate(model, shared_policy(), ids)
    tokens, packed = _generate(model, _policy(quantizer={"type": "minikv"}), ids)
    layer, slots = packed.layers[0], plain.layers[0].num_slots
    assert tokens.shape == (1, 6)
    assert layer.stored_keys.axis == -2 and layer.stored_values.axis == -1
    assert layer.stored_keys.data.shape == layer.stored_values.data.shape == (1, 2, slots, 4)
    groups = -(-slots // 16)
    slot_bytes = 2 * 2 * slots * 16 // 4 + 2 * 2 * groups * 16 * 2 + 2 * 2 * slots * 1 * 2
    appended = plain.layers[0].kv_nbytes() - 2 * 2 * slots * 16 * 4
    assert layer.kv_nbytes() == slot_bytes + appended
    assert layer.kv_nbytes() < plain.layers[0].kv_nbytes() / 4


def test_storage_stages_apply_even_when_the_budget_evicts_nothing(one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(24, seed=4)
    policy = Policy.from_config({**shared_policy().to_config(), "budget": 1.0, "quantizer": {"type": "minikv",
                                                                                            "bits": 4}})
    _, cache = _generate(model, policy, ids)
    layer = cache.layers[0]
    assert isinstance(layer, CompressedLayer) and layer.num_slots == 24 and layer.stored_keys.bits == 4


def test_think_keeps_fewer_key_channels_per_kv_head_chosen_by_the_suffix_queries(one_torch_thread):
    model = tiny_model("qwen3")  # head dim 16
    ids = prompt(96, seed=2)
    _, cache = _generate(model, _policy(channel_pruner={"type": "think", "keep_ratio": 0.6}), ids)
    layer = cache.layers[0]
    assert layer.key_channels.shape == (1, 2, 10)  # 16 - int(16 x 0.4) channels per KV head
    assert layer.stored_keys.shape[-1] == 10 and layer.stored_values.shape[-1] == 16
    assert not torch.equal(layer.key_channels[0, 0], layer.key_channels[0, 1])  # chosen per KV head


@pytest.mark.parametrize("ratio, message", [(0.99, "keeps all 16 key channels of head_dim 16: nothing would be "
                                                      "pruned"),
                                            (0.0, "greater than 0")])
def test_pruning_every_channel_or_none_is_refused_naming_the_ratio(ratio, message, one_torch_thread):
    model = tiny_model("llama")
    with pytest.raises(ConfigError, match=message):
        _policy(channel_pruner={"type": "think", "keep_ratio": ratio}).apply(model)


def _prefill_bytes(model, policy, ids):
    with policy.apply(model) as handle, torch.no_grad():
        model(ids, use_cache=True)
    return handle.last_run


def test_a_share_of_the_full_cache_bytes_holds_measured_and_buys_more_tokens_at_lower_precision(one_torch_thread):
    model = tiny_model("llama")  # 4 layers, 2 KV heads, head dim 16, float32: 256 bytes a token and layer
    ids = prompt(512, seed=4)
    full = 512 * 4 * 256
    runs = {name: _prefill_bytes(model, Policy.from_preset("snapkv", budget="12% bytes", **stages), ids)
            for name, stages in (("dense", {}), ("4-bit", {"quantizer": {"type": "minikv", "bits": 4}}),
                                 ("2-bit", {"quantizer": {"type": "minikv", "bits": 2}}))}
    for name, run in runs.items():
        assert run.selections and 0.1 * full < run.kv_nbytes <= 0.12 * full * 1.02, (name, run.kv_nbytes / full)
    kept = {name: sum(run.kept_tokens()[0]) for name, run in runs.items()}
    assert kept["4-bit"] > 3 * kept["dense"] and kept["2-bit"] > kept["4-bit"]


def test_a_byte_budget_below_the_suffix_is_refused_naming_both(one_torch_thread):
    model = tiny_model("llama")
    with pytest.raises(ConfigError, match="byte budget 4096 bytes is below the suffix's bytes: the 32 suffix tokens"):
        Policy.from_preset("snapkv", budget="4KiB").apply(model)
    ids = prompt(256, seed=4)
    with pytest.raises(ValueError, match="below the suffix's bytes"):
        _prefill_bytes(model, Policy.from_preset("snapkv", budget="5% bytes"), ids)  # 12.8 tokens < 32
