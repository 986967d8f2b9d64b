"""Packed decode attention (codes and kept key channels read as stored) equals masked attention over the
dequantized, zero-filled slots, for any rows, KV heads, GQA groups, slot counts (partial token groups), codec,
bits, group size, pruned channels, merge weights and visibility."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv.cache.packed_attention import packed_decode_attention
from windowkv.quantizers import MiniKVQuantizer, UniformQuantizer

from _scenarios import examples


def _reference(query, keys, values, bias, tail_k, tail_v, tail_visible, scaling):
    """Attention over the dense ``[B, H_kv, K0 + T, D]`` keys and values, in float64."""
    groups = query.shape[1] // keys.shape[1]
    k = torch.cat([keys, tail_k], -2).double().repeat_interleave(groups, 1)
    v = torch.cat([values, tail_v], -2).double().repeat_interleave(groups, 1)
    tail_bias = torch.zeros(tail_visible.shape, dtype=torch.float64).masked_fill(~tail_visible, float("-inf"))
    full_bias = torch.cat([bias.double().expand(*keys.shape[:2], 1, -1),
                           tail_bias.expand(*keys.shape[:2], 1, -1)], -1).repeat_interleave(groups, 1)
    logits = query.double() @ k.transpose(-1, -2) * scaling + full_bias  # [B, H_q, 1, K0 + T]
    return (logits.softmax(-1) @ v).transpose(1, 2)  # [B, 1, H_q, D]


@examples(300)
@given(b=st.integers(1, 2), h_kv=st.integers(1, 3), groups=st.integers(1, 3), slots=st.integers(1, 40),
       tail=st.integers(1, 3), codec=st.sampled_from(["none", "minikv", "uniform"]), bits=st.sampled_from([2, 4, 8]),
       group_size=st.sampled_from([4, 8, 16]), pruned=st.booleans(), merged=st.booleans(), shared=st.booleans(),
       seed=st.integers(0, 2**16))
def test_packed_attention_equals_dequantized(b, h_kv, groups, slots, tail, codec, bits, group_size, pruned, merged,
                                             shared, seed):
    g = torch.Generator().manual_seed(seed)
    d, c = 16, 8
    quantizer = {"none": None, "minikv": MiniKVQuantizer(bits=bits, group_size=group_size),
                 "uniform": UniformQuantizer(bits=bits, group_size=min(group_size, c))}[codec]
    keys = torch.randn(b, h_kv, slots, d, generator=g) * 2 + 0.3
    values = torch.randn(b, h_kv, slots, d, generator=g)
    channels = None
    if pruned:
        channels = torch.stack([torch.randperm(d, generator=g)[:c] for _ in range(b * h_kv)]).view(b, h_kv, c)
        keys = keys.gather(-1, channels[:, :, None, :].expand(b, h_kv, slots, c))
    if quantizer is None:
        stored_k, stored_v, dense_k, dense_v = keys, values, keys, values
    else:
        qk = quantizer.quantize_keys(keys)
        qv = quantizer.quantize_values(values)
        stored_k, stored_v = quantizer.affine_codes(qk), quantizer.affine_codes(qv)
        dense_k, dense_v = quantizer.dequantize(qk), quantizer.dequantize(qv)
    if pruned:
        dense_k = torch.zeros(b, h_kv, slots, d).scatter(-1, channels[:, :, None, :].expand(b, h_kv, slots, c), dense_k)
    heads = 1 if shared else h_kv
    seen = torch.rand(b, heads, 1, slots, generator=g) < 0.8
    bias = torch.zeros(b, heads, 1, slots).masked_fill(~seen, float("-inf"))
    if merged:
        bias = bias + torch.log(torch.rand(b, h_kv, 1, slots, generator=g) * 3 + 0.5)
    query = torch.randn(b, h_kv * groups, 1, d, generator=g)
    tail_k, tail_v = torch.randn(b, h_kv, tail, d, generator=g), torch.randn(b, h_kv, tail, d, generator=g)
    tail_visible = torch.rand(b, 1, 1, tail, generator=g) < 0.7
    tail_visible[..., -1] = True  # the new token sees itself

    got = packed_decode_attention(query, stored_k, stored_v, channels, bias, tail_k, tail_v, tail_visible,
                                  d ** -0.5)
    want = _reference(query, dense_k, dense_v, bias, tail_k, tail_v, tail_visible, d ** -0.5)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
