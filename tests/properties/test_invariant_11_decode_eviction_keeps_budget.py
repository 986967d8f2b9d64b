"""Invariant 11 (decode-time compression): an eviction leaves each row at most its budget of valid slots per
KV head, never drops the prompt suffix, the recent window or a valid slot for padding while the budget has
room, keeps slots unique and in position order, and a row's kept positions do not depend on the other rows."""

from __future__ import annotations

import copy

import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv.cache import CompressedLayer
from windowkv.policies.decode import evict_layer

from _scenarios import examples


def _layer(lengths, prompt, appended, heads, window, seed, slots=None):
    """A dense compressed layer: rows left-padded to ``prompt`` tokens, ``appended`` tokens decoded since."""
    g = torch.Generator().manual_seed(seed)
    b, d, h_q = len(lengths), 8, 2 * heads
    pos = torch.arange(prompt)[None, None].expand(b, 1, prompt)
    valid = pos >= torch.tensor([prompt - n for n in lengths])[:, None, None]
    keys = torch.randn(b, heads, prompt + appended, d, generator=g)
    layer = CompressedLayer(keys[..., :prompt, :], keys[..., :prompt, :].clone(), pos.clone(), valid, prompt)
    layer.query_window = window
    for _ in range(appended):  # decode steps: one key and one query each
        layer.expect_update = True
        layer.update(torch.randn(b, heads, 1, d, generator=g), torch.randn(b, heads, 1, d, generator=g))
        layer.record_queries(torch.randn(b, h_q, 1, d, generator=g), None)
    return layer


@examples(1000)
@given(lengths=st.lists(st.integers(1, 40), min_size=1, max_size=3), appended=st.integers(1, 12),
       heads=st.sampled_from([1, 2]), window=st.integers(1, 4), suffix=st.integers(1, 6),
       extra=st.integers(0, 30), reduce=st.sampled_from(["sum", "max"]),
       mode=st.sampled_from(["per_kv_head", "shared"]), seed=st.integers(0, 2**16))
def test_invariant_11_decode_eviction_keeps_budget(lengths, appended, heads, window, suffix, extra, reduce, mode,
                                                   seed):
    prompt = max(lengths)
    budget = suffix + window + extra
    layer = _layer(lengths, prompt, appended, heads, window, seed)
    rows = []
    for b in range(len(lengths)):  # each row alone, before the eviction
        row = copy.deepcopy(layer)
        row.batch_select_indices(torch.tensor([b]))
        rows.append(row)
    logical = layer.logical_length
    evict_layer(layer, [budget] * len(lengths), window, reduce, mode, prompt - suffix)
    positions, valid = layer.slot_positions()
    assert layer.physical_length() <= max(budget, prompt + appended)
    for b, n in enumerate(lengths):
        real = set(range(prompt - n, prompt)) | set(range(prompt, logical))
        protected = {p for p in real if prompt - suffix <= p < prompt} | {p for p in real if p >= logical - window}
        evict_layer(rows[b], [budget], window, reduce, mode, prompt - suffix)
        alone_positions, alone_valid = rows[b].slot_positions()
        for h in range(positions.shape[1]):
            kept = positions[b, h][valid[b, h]].tolist()
            assert kept == sorted(set(kept)) and set(kept) <= real
            assert len(kept) <= budget
            assert protected <= set(kept)
            assert len(kept) == min(budget, len(real))  # padding never takes a real token's place
            assert kept == alone_positions[0, h][alone_valid[0, h]].tolist()  # as the row alone
