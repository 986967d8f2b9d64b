"""Ragged storage of kept prompt slots: each (row, KV head) holds only its own slots, no padding.

A head-wise selection (AdaKV's ``headwise_topk``) keeps a different number of slots per KV head. Padded
storage ``[B, H_kv, K0, D]`` sizes every head by the fullest one (``K0``), so most of it can be unused
slots. :class:`RaggedSlots` stores the kept slots of all rows and heads back to back, row-major then
head-major (segment ``b * H_kv + h``), as ``[S, D]`` keys and values with ``S`` the total of kept slots:

::

    keys   [S, D]   = row 0 head 0 | row 0 head 1 | ... | row B-1 head H_kv-1
    lengths [B, H_kv]               slots of each segment
    index  [S]                      where each slot sits in the padded grid [B * H_kv * K0]

``index`` links a slot to the padded bookkeeping the layer keeps (its true position and validity,
``[B, H_kv, K0]``, a few bytes per padded slot): masks are built on that grid as for padded storage and
gathered at ``index``. One flat tensor (rather than one per head) lets decode attention read all heads
with two matrix products (:mod:`windowkv.cache.segment_attention`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class RaggedSlots:
    """Kept prompt slots of one layer, without padding.

    Attributes:
        keys: ``[S, D]`` kept keys, segments in (row, head) order, each segment in slot order.
        values: ``[S, D]``.
        lengths: ``[B, H_kv]`` long, slots of each (row, head).
        index: ``[S]`` long, flat index of each slot in the padded grid ``[B, H_kv, width]``.
        segment: ``[S]`` long, ``b * H_kv + h`` of each slot.
        weights: ``[S]`` float32 tokens each slot stands for (merged slots), or ``None``.
        width: ``K0``, slots of the padded grid (the fullest head).
    """

    keys: Tensor
    values: Tensor
    lengths: Tensor
    index: Tensor
    segment: Tensor
    weights: Tensor | None
    width: int

    @property
    def num_heads(self) -> int:
        return self.lengths.shape[1]

    def nbytes(self) -> int:
        """Bytes of the slots' keys, values and weights plus the per-segment lengths (the offsets)."""
        tensors = [self.keys, self.values, self.lengths] + ([self.weights] if self.weights is not None else [])
        return sum(t.numel() * t.element_size() for t in tensors)


def wastes_padding(valid: Tensor) -> bool:
    """Whether per-KV-head slots ``valid`` ``[B, H, K0]`` leave padding that ragged storage frees: some row's
    heads keep different numbers of slots, or no head fills the padded width ``K0`` (a head-wise selector
    sizes the grid for the most one head may keep).

    One host sync: the layout of a layer is decided once, when it is compressed.
    """
    if valid.dim() != 3 or valid.shape[1] <= 1 or valid.shape[0] == 0:
        return False
    lengths = valid.sum(-1)
    return bool((lengths != lengths[:, :1]).any() | (lengths.max() < valid.shape[-1]))


def pack(keys: Tensor, values: Tensor, valid: Tensor, weights: Tensor | None = None) -> RaggedSlots:
    """The valid slots of padded ``keys``/``values`` ``[B, H_kv, K0, D]`` (``valid`` ``[B, H_kv, K0]``), packed.

    Slots keep their order inside each head, so each segment stays sorted by position.
    """
    b, h, width, d = keys.shape
    flat_valid = valid.expand(b, h, width).reshape(-1)
    index = flat_valid.nonzero().squeeze(-1)  # sizes the storage: one host sync
    return RaggedSlots(
        keys=keys.reshape(-1, d).index_select(0, index),
        values=values.reshape(-1, values.shape[-1]).index_select(0, index),
        lengths=valid.expand(b, h, width).sum(-1),
        index=index,
        segment=torch.div(index, max(width, 1), rounding_mode="floor"),
        weights=None if weights is None else weights.reshape(-1).index_select(0, index),
        width=width,
    )


def unpack(slots: RaggedSlots, batch: int) -> tuple[Tensor, Tensor, Tensor | None]:
    """Padded ``[B, H_kv, K0, D]`` keys and values (unused slots zero) and ``[B, H_kv, K0]`` weights (unused
    slots 1) of ``slots``: for the paths that read every slot at once (several new tokens, re-scoring)."""
    h, width = slots.num_heads, slots.width

    def scatter(flat: Tensor, fill: float) -> Tensor:
        grid = flat.new_full((batch * h * width, *flat.shape[1:]), fill)
        grid.index_copy_(0, slots.index, flat)
        return grid.view(batch, h, width, *flat.shape[1:])

    weights = None if slots.weights is None else scatter(slots.weights, 1.0)
    return scatter(slots.keys, 0.0), scatter(slots.values, 0.0), weights
