"""Invariant 9 (quantizers): quantized bytes match the declared bits: the data holds exactly ``bits`` bits
per value (``data.numel() * 8 == numel * bits``), ``nbytes`` counts the tensors held, and dequantizing
restores shape and dtype within half a quantization step."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from windowkv.testing import check_quantized, make_component

from _scenarios import REGISTRIES, examples

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


@pytest.mark.parametrize("quantizer", REGISTRIES["quantizer"].names())
@examples(1000, len(REGISTRIES["quantizer"]))
@given(bits=st.sampled_from([1, 2, 4, 8]), per_group=st.integers(1, 8), groups=st.integers(1, 4),
       prefix=st.lists(st.integers(1, 3), max_size=3), dtype=st.sampled_from(DTYPES),
       spread=st.sampled_from([0.0, 1e-3, 1.0, 100.0]), seed=st.integers(0, 2**20))
def test_invariant_9_quantized_bytes_match_bits(quantizer, bits, per_group, groups, prefix, dtype, spread, seed):
    component = make_component(REGISTRIES["quantizer"].get(quantizer), bits=bits)
    component = make_component(type(component), bits=component.bits,
                               group_size=per_group * (8 // component.bits))  # groups fill whole bytes
    g = torch.Generator().manual_seed(seed)
    x = (torch.randn(*prefix, groups * component.group_size, generator=g) * spread + 3.0).to(dtype)
    check_quantized(component, x, f"{component!r} on {dtype} {tuple(x.shape)}")
