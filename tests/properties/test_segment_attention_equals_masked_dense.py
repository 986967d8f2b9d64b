"""Ragged storage: decode attention over packed slots (any lengths per row and KV head, a head with one slot,
empty heads, merged-slot weights, GQA) equals masked attention over the padded grid, and packing round-trips."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv.cache.ragged import pack, unpack
from windowkv.cache.segment_attention import segment_decode_attention

from _scenarios import examples


def _reference(query, keys, values, valid, visible, weights, tail_k, tail_v, tail_visible, scaling):
    """Masked attention over the padded ``[B, H_kv, K0, D]`` grid and the tail, in float64."""
    b, h_q, _, d = query.shape
    groups = h_q // keys.shape[1]
    k = torch.cat([keys, tail_k], -2).double().repeat_interleave(groups, 1)
    v = torch.cat([values, tail_v], -2).double().repeat_interleave(groups, 1)
    logits = query.double() @ k.transpose(-1, -2) * scaling  # [B, H_q, 1, K0 + T]
    bias = torch.log(weights.double()) if weights is not None else torch.zeros(valid.shape, dtype=torch.float64)
    bias = torch.cat([bias, torch.zeros(*bias.shape[:2], tail_k.shape[-2], dtype=torch.float64)], -1)
    seen = torch.cat([valid & visible, tail_visible.expand(b, keys.shape[1], tail_k.shape[-2])], -1)
    logits = (logits + bias.repeat_interleave(groups, 1)[:, :, None]).masked_fill(
        ~seen.repeat_interleave(groups, 1)[:, :, None], float("-inf"))
    return (logits.softmax(-1) @ v).transpose(1, 2)  # [B, 1, H_q, D]


@examples(300)
@given(b=st.integers(1, 3), h_kv=st.integers(1, 3), groups=st.integers(1, 3), width=st.integers(1, 12),
       tail=st.integers(1, 4), merged=st.booleans(), seed=st.integers(0, 2**16), data=st.data())
def test_segment_attention_equals_masked_dense(b, h_kv, groups, width, tail, merged, seed, data):
    g = torch.Generator().manual_seed(seed)
    d = 8
    # per (row, head): any subset of the grid is kept (0 to width slots), one head keeps a single slot
    valid = torch.rand(b, h_kv, width, generator=g) < data.draw(st.floats(0.0, 1.0))
    one = data.draw(st.tuples(st.integers(0, b - 1), st.integers(0, h_kv - 1), st.integers(0, width - 1)))
    valid[one[0], one[1]] = False
    valid[one] = True
    visible = torch.rand(b, h_kv, width, generator=g) < 0.8  # what each row's mask lets the query see
    keys, values = torch.randn(b, h_kv, width, d, generator=g), torch.randn(b, h_kv, width, d, generator=g)
    weights = torch.rand(b, h_kv, width, generator=g) * 4 + 0.5 if merged else None
    query = torch.randn(b, h_kv * groups, 1, d, generator=g)
    tail_k, tail_v = torch.randn(b, h_kv, tail, d, generator=g), torch.randn(b, h_kv, tail, d, generator=g)
    tail_visible = torch.rand(b, 1, 1, tail, generator=g) < 0.7
    tail_visible[..., -1] = True  # the new token sees itself

    slots = pack(keys, values, valid, weights)
    assert slots.keys.shape[0] == int(valid.sum()) and torch.equal(slots.lengths, valid.sum(-1))
    k2, v2, w2 = unpack(slots, b)
    assert torch.equal(k2 * valid[..., None], keys * valid[..., None])
    assert torch.equal(v2 * valid[..., None], values * valid[..., None])
    slot_visible = visible.reshape(-1).index_select(0, slots.index)
    got = segment_decode_attention(query, slots, slot_visible, tail_k, tail_v, tail_visible, d ** -0.5)
    want = _reference(query, keys, values, valid, visible, weights, tail_k, tail_v, tail_visible[:, :, 0], d ** -0.5)
    torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5)
