"""MiniKV storage: keys per channel, values per token, really packed, refused where it cannot pack."""

from __future__ import annotations

import pytest
import torch

from windowkv import Policy
from windowkv.errors import ConfigError
from windowkv.quantizers import MiniKVQuantizer, UniformQuantizer


def _keys(k=37, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(1, 3, k, d, generator=g)
    keys[..., 5] *= 100.0  # an outlier channel, as real keys have
    return keys


def test_two_bit_keys_are_packed_four_to_a_byte_with_float16_scales_per_channel_and_token_group():
    keys = _keys()
    q = MiniKVQuantizer().quantize_keys(keys)
    assert q.data.dtype == torch.uint8 and q.data.shape == (1, 3, 37, 16)
    assert q.scale.dtype == q.zero.dtype == torch.float16 and q.scale.shape == (1, 3, 3, 64)  # ceil(37 / 16)
    assert q.nbytes == 3 * 37 * 16 + 2 * 3 * 3 * 64 * 2
    values = MiniKVQuantizer().quantize_values(keys)
    assert values.data.shape == (1, 3, 37, 16) and values.scale.shape == (1, 3, 37, 4)


def test_every_key_stays_within_half_a_step_of_its_channel_group():
    keys = _keys()
    quantizer = MiniKVQuantizer()
    q = quantizer.quantize_keys(keys)
    error = (quantizer.dequantize(q) - keys).abs()
    step = q.scale.float().repeat_interleave(16, dim=-2)[..., :37, :]
    assert (error <= step / 2 + 1e-4).all()


def test_per_channel_keys_isolate_an_outlier_channel_that_per_token_groups_smear():
    keys = _keys()
    per_channel = MiniKVQuantizer(bits=4)
    per_token = UniformQuantizer(bits=4, group_size=16)
    normal = torch.ones(64, dtype=torch.bool)
    normal[5] = False
    err_channel = (per_channel.dequantize(per_channel.quantize_keys(keys)) - keys)[..., normal].abs().mean()
    err_token = (per_token.dequantize(per_token.quantize(keys)) - keys)[..., normal].abs().mean()
    assert err_channel < err_token / 5


def test_a_head_dim_that_does_not_fill_whole_bytes_is_refused_naming_the_packing_width():
    with pytest.raises(ValueError, match="not a multiple of the packing width: 4 values per byte at 2 bits"):
        MiniKVQuantizer(group_size=2).quantize_keys(torch.randn(1, 1, 8, 6))
    policy = Policy.from_preset("snapkv", budget=0.25, quantizer={"type": "minikv", "group_size": 2})
    with pytest.raises(ConfigError, match="quantizer 'minikv' cannot serve policy .*head_dim 6 is not a multiple of "
                                          "the packing width"):
        policy.check_stages(6)
    pruned = Policy.from_preset("snapkv", budget=0.25, quantizer={"type": "minikv"},
                                channel_pruner={"type": "think", "keep_ratio": 0.6})
    with pytest.raises(ConfigError, match="the 10 key channels its channel pruner keeps"):
        pruned.check_stages(16)


def test_an_empty_selection_quantizes_to_empty_storage():
    q = MiniKVQuantizer().quantize_keys(torch.randn(1, 2, 0, 8))
    assert q.data.shape == (1, 2, 0, 2) and MiniKVQuantizer().dequantize(q).shape == (1, 2, 0, 8)
