"""Invariant 10 (channel pruners): a pruner keeps exactly its declared number of key channels per KV head
(``num_channels(D)``), as sorted, unique indices inside ``[0, D)``, for any GQA grouping and length."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv.testing import check_pruned_channels, make_component

from _scenarios import REGISTRIES, examples


@pytest.mark.parametrize("pruner", REGISTRIES["channel_pruner"].names())
@examples(1000, len(REGISTRIES["channel_pruner"]))
@given(keep_ratio=st.floats(0.01, 0.99), batch=st.integers(1, 3), kv_heads=st.integers(1, 3),
       groups=st.integers(1, 4), suffix=st.integers(1, 8), length=st.integers(1, 40), head_dim=st.integers(1, 32),
       ties=st.booleans(), seed=st.integers(0, 2**20))
def test_invariant_10_pruned_channels_declared_count(pruner, keep_ratio, batch, kv_heads, groups, suffix, length,
                                                     head_dim, ties, seed):
    component = make_component(REGISTRIES["channel_pruner"].get(pruner), keep_ratio=keep_ratio)
    g = torch.Generator().manual_seed(seed)
    queries = torch.randn(batch, kv_heads * groups, suffix, head_dim, generator=g)
    keys = torch.randn(batch, kv_heads, length, head_dim, generator=g)
    if ties:
        queries, keys = queries.sign(), keys.sign()  # equal channel norms: ties broken deterministically
    check_pruned_channels(component, queries, keys, groups, f"{component!r} on D={head_dim}, G={groups}")
