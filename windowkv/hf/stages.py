"""The stages after selection: merging, key-channel pruning and low-bit storage of one layer's kept slots.

::

    selection ──► merger (evicted tokens → kept slots, weights) ──► channel pruner ──► quantizer
              ──► CompressedLayer (read by windowkv's attention function at every later step)

Each stage is optional (a policy's ``merger``, ``channel_pruner`` and ``quantizer`` default to ``None``);
with none of them the layer holds the gathered keys and values, exactly as plain eviction.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from windowkv.cache import CompressedLayer
from windowkv.mergers import MergeInputs
from windowkv.run import LayerSelection
from windowkv.tensor_ops import gather_positions


def build_compressed_layer(
    policy: Any,
    keys: Tensor,
    values: Tensor,
    key_valid: Tensor,
    selection: LayerSelection | None,
    project_queries: Callable[[int, int], Tensor] | None,
    suffix_size: int,
    num_key_value_groups: int,
    scaling: float | None = None,
    **layer_kwargs: Any,
) -> CompressedLayer:
    """One layer's compressed cache from its prefill keys and the policy's selection.

    Args:
        policy: the policy (its ``merger``, ``channel_pruner`` and ``quantizer`` may be ``None``).
        keys: ``[B, H_kv, L, D]`` the layer's prompt keys (after RoPE).
        values: ``[B, H_kv, L, D]``.
        key_valid: ``[B, L]`` bool, False on left padding.
        selection: the kept positions, or ``None`` when the layer keeps every prompt token.
        project_queries: ``(start, end) -> [B, H_q, end - start, D]``, the layer's queries (``None``
            when they were not kept: no channel pruning then).
        suffix_size: queries of the last ``suffix_size`` prompt tokens choose the kept key channels.
        num_key_value_groups: query heads per KV head.
        scaling: the layer's attention scale (mergers weighing tokens by attention read it).
        layer_kwargs: passed to :class:`CompressedLayer` (owner, sliding window).
    """
    batch, _, length, head_dim = keys.shape
    weights = None
    suffix_queries = None
    if project_queries is not None:
        s = min(suffix_size, length)
        suffix_queries = project_queries(length - s, length)
    if selection is None:
        positions = torch.arange(length, device=keys.device)[None, None].expand(batch, 1, length)
        valid = key_valid[:, None, :]
        kept_keys, kept_values = keys, values
    else:
        positions, valid = selection.positions, selection.valid
        merger = policy.merger
        if merger is not None:
            merged = merger(MergeInputs(keys, values, positions, valid, key_valid, suffix_queries, scaling))
            kept_keys, kept_values = merged.keys, merged.values
            if merger.weights_bias_attention:  # e.g. drop and KVMerger add no bias
                weights = merged.weights
        else:
            kept_keys, kept_values = gather_positions(keys, positions), gather_positions(values, positions)
    channels = None
    if policy.channel_pruner is not None and suffix_queries is not None:
        # channels are scored on the keys the layer keeps (ThinK after token eviction), padding excluded
        slot_valid = valid.expand(batch, kept_keys.shape[1], valid.shape[-1])
        scored = torch.where(slot_valid[..., None], kept_keys, torch.zeros((), dtype=kept_keys.dtype))
        channels = policy.channel_pruner.select_channels(suffix_queries, scored, num_key_value_groups)
        kept_keys = kept_keys.gather(-1, channels[:, :, None, :].expand(*kept_keys.shape[:-1], channels.shape[-1]))
    return CompressedLayer(kept_keys, kept_values, positions, valid, length, weights=weights, key_channels=channels,
                           head_dim=head_dim, codec=policy.quantizer, **layer_kwargs)
