"""Decode attention over quantized and channel-pruned slots read as stored equals attention over the dense,
dequantized slots (the path several new tokens at once take), to float32 tolerance.

Covered: both built-in codecs at 2/4/8 bits, keys grouped per channel over tokens (MiniKV, a partial last token
group, fewer slots than one group) and per token over channels (uniform), pruned key channels with and without
quantization, merge weights, left padding through the logical mask, per-head and shared validity, batch 2, GQA.
"""

from __future__ import annotations

import pytest
import torch

from windowkv.cache import CompressedLayer, make_attention
from windowkv.cache.packed_attention import affine_key_logits, affine_value_mix, unpack_codes
from windowkv.quantizers import MiniKVQuantizer, QuantizedTensor, Quantizer, UniformQuantizer
from tests.hf.conftest import tiny_model

B, H_KV, H_Q, D, C = 2, 2, 4, 16, 8
CODECS = {
    "none": None,
    **{f"minikv{bits}-g{gs}": MiniKVQuantizer(bits=bits, group_size=gs) for bits in (2, 4, 8) for gs in (4, 16)},
    **{f"uniform{bits}": UniformQuantizer(bits=bits, group_size=8) for bits in (2, 4, 8)},
}


@pytest.fixture(scope="module")
def module():
    return tiny_model("llama").model.layers[0].self_attn


def _layer(codec, slots: int, pruned: bool, merged: bool, per_head: bool, seed: int = 0,
           dtype: torch.dtype = torch.float32) -> CompressedLayer:
    """A layer over a 40-token prompt whose row 1 is left-padded by 5, keeping ``slots`` positions."""
    g = torch.Generator().manual_seed(seed)
    heads = H_KV if per_head else 1
    positions = torch.stack([torch.randperm(40, generator=g)[:slots].sort().values for _ in range(B * heads)])
    positions = positions.view(B, heads, slots)
    valid = torch.rand(B, heads, slots, generator=g) < 0.9
    valid[1] &= positions[1] >= 5  # left padding of row 1
    keys = torch.randn(B, H_KV, slots, D, generator=g) * 2 + 0.5
    values = torch.randn(B, H_KV, slots, D, generator=g)
    kwargs = {}
    if pruned:
        channels = torch.stack([torch.randperm(D, generator=g)[:C].sort().values for _ in range(B * H_KV)])
        kwargs.update(key_channels=channels.view(B, H_KV, C), head_dim=D)
        keys = keys.gather(-1, kwargs["key_channels"][:, :, None, :].expand(B, H_KV, slots, C))
    if merged:
        kwargs["weights"] = torch.rand(B, H_KV, slots, generator=g) * 3 + 1
    return CompressedLayer(keys.to(dtype), values.to(dtype), positions, valid, 40, codec=codec, **kwargs)


def _logical_mask(length: int) -> torch.Tensor:
    mask = torch.ones(B, 1, 1, length, dtype=torch.bool)
    mask[1, ..., :5] = False
    return mask


def _step(layer, module, style, query, seed):
    """One decode step; returns (packed path, dense path) outputs ``[B, 1, H_q, D]``."""
    g = torch.Generator().manual_seed(seed)
    layer.expect_update = True
    tail_k, tail_v = layer.update(torch.randn(B, H_KV, 1, D, generator=g), torch.randn(B, H_KV, 1, D, generator=g))
    assert tail_k.shape[-2] == layer.appended_length  # only the appended tokens: the slots stay packed
    mask = _logical_mask(layer.logical_length)
    attention = make_attention(style)
    assert layer.can_attend_stored(1)
    packed, _ = attention(module, query, tail_k, tail_v, mask, scaling=D ** -0.5, dropout=0.0,
                          windowkv_cache_layer=layer)
    if layer.codec is None or type(layer.codec).affine_codes is not Quantizer.affine_codes:
        direct = layer.attend_stored(query, mask, D ** -0.5)  # the attention function took this path
        assert direct is not None and torch.equal(direct, packed)
    keys, values = layer.dense()
    dense_mask = layer.attention_mask(mask, 1, H_Q, style, query.dtype)
    dense, _ = attention(module, query, keys, values, dense_mask, scaling=D ** -0.5, dropout=0.0)
    return packed, dense


@pytest.mark.parametrize("codec", sorted(CODECS))
@pytest.mark.parametrize("pruned", [False, True], ids=["all-channels", "pruned"])
@pytest.mark.parametrize("slots", [13, 37])
def test_packed_decode_equals_dense_attention(module, codec, pruned, slots):
    if codec == "none" and not pruned:
        pytest.skip("dense slots are stored as one tensor with the appended tokens")
    layer = _layer(CODECS[codec], slots, pruned, merged=slots == 37, per_head=slots == 13)
    g = torch.Generator().manual_seed(1)
    for step in range(3):  # the tail grows: 1, 2, 3 appended tokens
        query = torch.randn(B, H_Q, 1, D, generator=g)
        packed, dense = _step(layer, module, "sdpa", query, seed=10 + step)
        torch.testing.assert_close(packed, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("style", ["sdpa", "eager"])
def test_packed_decode_with_merge_weights_equals_both_attention_styles(module, style):
    layer = _layer(MiniKVQuantizer(bits=4), 29, pruned=True, merged=True, per_head=True, seed=3)
    packed, dense = _step(layer, module, style, torch.randn(B, H_Q, 1, D), seed=4)
    torch.testing.assert_close(packed, dense, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("codec", [MiniKVQuantizer(bits=2, group_size=4), UniformQuantizer(bits=4, group_size=8)])
@pytest.mark.parametrize("axis", [-1, -2])
@pytest.mark.parametrize("tokens", [3, 8, 21])
def test_affine_logits_and_value_mix_equal_the_dequantized_products(codec, axis, tokens):
    g = torch.Generator().manual_seed(tokens)
    x = torch.randn(2, 3, tokens, D, generator=g)
    if axis == -2 and isinstance(codec, UniformQuantizer):
        pytest.skip("the uniform codec groups along channels only")
    stored = codec.quantize_keys(x) if axis == -2 else codec.quantize(x)
    assert stored.axis == axis
    view, dense = codec.affine_codes(stored), codec.dequantize(stored)
    codes = unpack_codes(view, tokens + 3)
    assert codes.shape == (2, 3, tokens + 3, D) and not codes[..., tokens:, :].any()
    assert codes.max() <= 2**codec.bits - 1 and torch.equal(codes, codes.round())
    query, probs = torch.randn(2, 3, 5, D, generator=g), torch.rand(2, 3, 5, tokens, generator=g)
    torch.testing.assert_close(affine_key_logits(query, view), query @ dense.transpose(-1, -2), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(affine_value_mix(probs, view), probs @ dense, rtol=1e-5, atol=1e-5)


class _OpaqueCodec(Quantizer):
    """A codec without an affine view of its codes (stores the values as 8-bit floats' bytes, say)."""

    name = "opaque_test_codec"
    bits: int = 8
    group_size: int = 1

    def encode(self, x):
        return UniformQuantizer(bits=8, group_size=8).encode(x)

    def decode(self, q: QuantizedTensor):
        return UniformQuantizer(bits=8, group_size=8).decode(q)


def test_a_codec_without_an_affine_view_falls_back_to_dense_attention(module):
    layer = _layer(_OpaqueCodec(), 16, pruned=False, merged=False, per_head=False)
    assert layer.packed_attention(torch.randn(B, H_Q, 1, D), None, None) is None
    packed, dense = _step(layer, module, "sdpa", torch.randn(B, H_Q, 1, D), seed=5)
    torch.testing.assert_close(packed, dense, rtol=0, atol=0)


def test_several_new_tokens_and_soft_capping_read_the_dense_slots():
    layer = _layer(MiniKVQuantizer(bits=4), 16, pruned=True, merged=False, per_head=False)
    assert layer.can_attend_stored(1)
    assert not layer.can_attend_stored(2) and not layer.can_attend_stored(1, softcap=30.0)


@pytest.mark.parametrize("codec", [None, MiniKVQuantizer(bits=4)], ids=["pruned", "minikv4-pruned"])
def test_a_bfloat16_layer_attends_in_float32_and_returns_bfloat16(module, codec):
    layer = _layer(codec, 21, pruned=True, merged=True, per_head=True, dtype=torch.bfloat16)
    layer.expect_update = True
    new = torch.randn(B, H_KV, 1, D).bfloat16()
    layer.update(new, new)
    query = torch.randn(B, H_Q, 1, D).bfloat16()
    out = layer.attend_stored(query, None, D ** -0.5)
    keys, values = (t.float() for t in layer.dense())
    mask = layer.attention_mask(None, 1, H_Q, "eager", torch.float32)
    want, _ = make_attention("eager")(module, query.float(), keys, values, mask, scaling=D ** -0.5, dropout=0.0)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), want, rtol=2e-2, atol=2e-2)
