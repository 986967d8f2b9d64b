"""What a kept slot costs in bytes under a policy's storage stages, measured from the tensors they make.

A byte budget (``"1.5MiB"``, ``"12% bytes"``, :mod:`windowkv.budget`) becomes review tokens through the
:class:`~windowkv.budget.ByteCost` of the model and policy. The cost of a slot is not computed from a
formula per quantizer: :func:`byte_cost` stores zeros of whole quantization groups with the policy's own
quantizer and counts the bytes of the tensors it returns, so a plugin quantizer is costed like a built-in.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import Tensor

from windowkv.budget import ByteCost


def storage_nbytes(obj: Any) -> int:
    """Bytes of the tensors ``obj`` holds: a tensor, or the tensor fields of a dataclass (packed storage)."""
    if isinstance(obj, Tensor):
        return obj.numel() * obj.element_size()
    if dataclasses.is_dataclass(obj):
        return sum(storage_nbytes(v) for f in dataclasses.fields(obj) if isinstance(v := getattr(obj, f.name), Tensor))
    return 0


def byte_cost(policy: Any, num_layers: int, kv_heads: int, head_dim: int, dtype: torch.dtype) -> ByteCost:
    """The :class:`ByteCost` of one prompt row under ``policy`` on a model of this geometry.

    A slot costs its keys (``C`` kept channels with a channel pruner) and values in the quantizer's storage
    (amortised over 64 whole groups of ``group_size`` tokens), plus a float32 weight per KV head when the
    merger's weights bias attention; a layer with pruned channels holds their int64 indices.
    """
    element = torch.empty((), dtype=dtype).element_size()
    pruner, quantizer, merger = policy.channel_pruner, policy.quantizer, policy.merger
    key_width = pruner.num_channels(head_dim) if pruner is not None else head_dim
    if quantizer is not None:
        n = 64 * getattr(quantizer, "group_size", 1)
        quantize_keys = getattr(quantizer, "quantize_keys", quantizer.quantize)
        quantize_values = getattr(quantizer, "quantize_values", quantizer.quantize)
        keys = storage_nbytes(quantize_keys(torch.zeros(1, kv_heads, n, key_width, dtype=dtype))) / n
        values = storage_nbytes(quantize_values(torch.zeros(1, kv_heads, n, head_dim, dtype=dtype))) / n
    else:
        keys, values = kv_heads * key_width * element, kv_heads * head_dim * element
    weights = 4 * kv_heads if merger is not None and merger.weights_bias_attention else 0
    layer = 8 * kv_heads * key_width if pruner is not None else 0
    return ByteCost(num_layers, keys + values + weights, 2 * kv_heads * head_dim * element, layer)


def cache_nbytes(cache: Any) -> int:
    """Bytes of key/value storage a transformers cache really holds: ``kv_nbytes()`` of windowkv's compressed
    layers, the keys and values of the others."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        if hasattr(layer, "kv_nbytes"):
            total += layer.kv_nbytes()
        else:
            total += storage_nbytes(getattr(layer, "keys", None)) + storage_nbytes(getattr(layer, "values", None))
    return total
