"""The compressed cache layer and windowkv's attention function, on a real attention module.

Per-slot weights, pruned key channels, crop and batch operations are checked against plain attention
over the equivalent uncompressed keys.
"""

from __future__ import annotations

import copy

import pytest
import torch

from windowkv.cache import CompressedLayer, make_attention
from windowkv.errors import WindowKVError
from tests.hf.conftest import tiny_model

B, H_KV, H_Q, D = 2, 2, 4, 16


@pytest.fixture(scope="module")
def module():
    return tiny_model("llama").model.layers[0].self_attn


def _kv(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, H_KV, n, D, generator=g), torch.randn(B, H_KV, n, D, generator=g)


def _layer(keys, values, **kwargs):
    n = keys.shape[-2]
    positions = torch.arange(n)[None, None].expand(B, 1, n)
    return CompressedLayer(keys, values, positions, torch.ones(B, 1, n, dtype=torch.bool), n, **kwargs)


def _attend(module, style, layer, query, new_k, new_v):
    layer.expect_update = True
    keys, values = layer.update(new_k, new_v)
    out, _ = make_attention(style)(module, query, keys, values, None, scaling=D ** -0.5, dropout=0.0,
                                   windowkv_cache_layer=layer)
    return out


def _plain(module, style, query, keys, values):
    return make_attention(style)(module, query, keys, values, None, scaling=D ** -0.5, dropout=0.0)[0]


@pytest.mark.parametrize("style", ["sdpa", "eager"])
def test_a_slot_of_weight_m_attends_like_m_copies(module, style):
    keys, values = _kv(6)
    new_k, new_v = _kv(1, seed=1)
    query = torch.randn(B, H_Q, 1, D)
    weights = torch.ones(B, H_KV, 6)
    weights[:, :, 2] = 3.0  # slot 2 stands for three identical tokens
    weighted = _attend(module, style, _layer(keys, values, weights=weights), query, new_k, new_v)
    dup = [0, 1, 2, 2, 2, 3, 4, 5]
    expected = _plain(module, style, query, torch.cat([keys[:, :, dup], new_k], -2),
                      torch.cat([values[:, :, dup], new_v], -2))
    torch.testing.assert_close(weighted, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("style", ["sdpa", "eager"])
def test_pruned_key_channels_attend_like_the_query_reduced_to_them(module, style):
    keys, values = _kv(6)
    new_k, new_v = _kv(1, seed=1)
    query = torch.randn(B, H_Q, 1, D)
    channels = torch.stack([torch.randperm(D, generator=torch.Generator().manual_seed(i))[:10].sort().values
                            for i in range(B * H_KV)]).view(B, H_KV, 10)
    pruned = keys.gather(-1, channels[:, :, None, :].expand(B, H_KV, 6, 10))
    layer = _layer(pruned, values, key_channels=channels, head_dim=D)
    out = _attend(module, style, layer, query, new_k, new_v)
    zeroed = torch.zeros_like(keys).scatter(-1, channels[:, :, None, :].expand(B, H_KV, 6, 10), pruned)
    expected = _plain(module, style, query, torch.cat([zeroed, new_k], -2), torch.cat([values, new_v], -2))
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert layer.kv_nbytes() < _layer(*_kv(6)).kv_nbytes() + new_k.numel() * 8  # pruned keys are really smaller


def test_lengths_bytes_crop_and_batch_operations():
    keys, values = _kv(5)
    valid = torch.ones(B, 1, 5, dtype=torch.bool)
    valid[1, 0, 3:] = False  # row 1 keeps 3 slots
    layer = CompressedLayer(keys, values, torch.tensor([0, 3, 4, 8, 9])[None, None].expand(B, 1, 5), valid, 10)
    assert (layer.get_seq_length(), layer.physical_length()) == (10, 5)
    assert layer.head_lengths().tolist() == [[5], [3]]
    for _ in range(3):
        layer.expect_update = True
        layer.update(*_kv(1))
    assert (layer.get_seq_length(), layer.physical_length(), layer.appended_length) == (13, 8, 3)
    assert layer.get_mask_sizes(2) == (15, 0)
    assert layer.kv_nbytes() == 2 * B * H_KV * 8 * D * 4
    layer.crop(-2)
    assert (layer.get_seq_length(), layer.physical_length()) == (11, 6)
    with pytest.raises(WindowKVError, match="only 1 were appended"):
        layer.crop(-2)
    twin = copy.deepcopy(layer)
    twin.batch_select_indices(torch.tensor([1]))
    assert twin.keys.shape[0] == twin.positions.shape[0] == twin.valid.shape[0] == 1
    assert twin.head_lengths().tolist() == [[3]]
    layer.batch_repeat_interleave(2)
    assert layer.keys.shape[0] == 2 * B and layer.head_lengths().tolist() == [[5], [5], [3], [3]]


def test_an_update_without_windowkvs_attention_is_refused():
    layer = _layer(*_kv(4))
    with pytest.raises(WindowKVError, match="policy is applied"):
        layer.update(*_kv(1))


def test_the_mask_follows_the_logical_mask_at_the_slots_true_positions():
    keys, values = _kv(3)
    layer = CompressedLayer(keys, values, torch.tensor([1, 4, 6])[None, None].expand(B, 1, 3),
                            torch.ones(B, 1, 3, dtype=torch.bool), 8)
    layer.expect_update = True
    layer.update(*_kv(2))  # two new tokens at logical positions 8 and 9
    logical = torch.ones(B, 1, 2, 10, dtype=torch.bool).tril(8)
    logical[0, :, :, 4] = False  # row 0 cannot see position 4
    mask = layer.attention_mask(logical, 2, H_Q, "sdpa", torch.float32)
    assert mask.shape == (B, 1, 2, 5)
    assert mask[0, 0].tolist() == [[True, False, True, True, False], [True, False, True, True, True]]
    assert mask[1, 0].tolist() == [[True, True, True, True, False], [True, True, True, True, True]]
    with pytest.raises(WindowKVError, match="covers 9 keys"):
        layer.attention_mask(logical[..., :9], 2, H_Q, "sdpa", torch.float32)


def test_recent_attention_is_the_softmax_of_the_recorded_queries(module):
    keys, values = _kv(5)
    layer = _layer(keys, values)
    layer.query_window = 2
    queries = torch.randn(B, H_Q, 3, D)
    for i in range(3):  # three decode steps; the window keeps the last two queries
        _attend(module, "sdpa", layer, queries[:, :, i:i + 1], *_kv(1, seed=10 + i))
    assert layer.recent_queries.shape == (B, H_Q, 2, D)
    all_keys = layer.keys.repeat_interleave(H_Q // H_KV, dim=1)  # [B, H_q, 8, D]
    expected = torch.zeros(B, H_Q, 8)
    for q_idx, visible in [(1, 7), (2, 8)]:  # query 1 sees 7 slots, query 2 all 8
        logits = torch.einsum("bhd,bhkd->bhk", queries[:, :, q_idx], all_keys[:, :, :visible]) * D ** -0.5
        expected[..., :visible] += logits.softmax(-1)
    expected = expected.view(B, H_KV, H_Q // H_KV, 8).mean(2)
    torch.testing.assert_close(layer.recent_attention(), expected, rtol=1e-5, atol=1e-6)


def test_retain_turns_kept_appended_tokens_into_slots():
    keys, values = _kv(4)
    weights = torch.tensor([1.0, 2.0, 1.0, 3.0])[None, None].expand(B, H_KV, 4).clone()
    layer = CompressedLayer(keys, values, torch.tensor([0, 2, 5, 7])[None, None].expand(B, 1, 4),
                            torch.ones(B, 1, 4, dtype=torch.bool), 9, weights=weights)
    for _ in range(2):
        layer.expect_update = True
        layer.update(*_kv(1))
    assert layer.slot_positions()[0][0, 0].tolist() == [0, 2, 5, 7, 9, 10]
    keep = torch.tensor([1, 3, 5])[None, None].expand(B, H_KV, 3)
    layer.retain(keep, torch.ones(B, 1, 3, dtype=torch.bool))
    assert layer.positions.shape == (B, H_KV, 3) and layer.positions[0, 0].tolist() == [2, 7, 10]
    assert layer.weights[0, 0].tolist() == [2.0, 3.0, 1.0]
    assert (layer.num_slots, layer.appended_length, layer.get_seq_length()) == (3, 0, 11)
    layer.expect_update = True
    layer.update(*_kv(1))
    assert layer.slot_positions()[0][0, 0].tolist() == [2, 7, 10, 11]
