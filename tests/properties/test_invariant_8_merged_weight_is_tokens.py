"""Invariant 8 (mergers): a merged slot's weight is the number of prompt tokens it stands for: 0 on an
invalid slot, at least 1 on a valid one, and for a merger that merges every evicted token the weights of
a (row, KV head) sum to the row's valid prompt tokens; a slot nothing was merged into holds its token."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windowkv.testing import check_merged_slots, merge_inputs

from _scenarios import REGISTRIES, examples


@pytest.mark.parametrize("merger", REGISTRIES["merger"].names())
@examples(1000, len(REGISTRIES["merger"]))
@given(lengths=st.lists(st.integers(0, 40), min_size=1, max_size=3), kept=st.integers(0, 16),
       shared=st.booleans(), kv_heads=st.integers(1, 3), head_dim=st.integers(1, 8), seed=st.integers(0, 2**20))
def test_invariant_8_merged_weight_is_tokens(merger, lengths, kept, shared, kv_heads, head_dim, seed):
    component = REGISTRIES["merger"].get(merger)()
    inputs = merge_inputs(lengths, kept, kv_heads=kv_heads, shared=shared, head_dim=head_dim, seed=seed)
    check_merged_slots(component, inputs, component(inputs), f"{component!r} on lengths {lengths}, {kept} slots")
