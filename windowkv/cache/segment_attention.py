"""Decode attention over ragged slots (:class:`~windowkv.cache.ragged.RaggedSlots`) plus a dense tail.

One decode step has one query per query head: ``N = B x H_q`` query vectors. The kept prompt slots of all
rows and KV heads sit back to back in ``[S, D]``; the tokens appended since the prefill are dense
``[B, H_kv, T, D]``. Attention is a segment softmax written as two matrix products, without gathering the
queries per slot and without the padded ``[B, H_kv, K0, D]`` tensor:

- slot logits ``[N, S] = queries [N, D] @ keys[S, D]^T``; a query sees only the slots of its own
  segment (its row and KV head: query ``n`` belongs to segment ``n // (H_q / H_kv)``, GQA) that its mask
  allows;
- tail logits ``[B, H_kv, H_q / H_kv, T]`` from the dense tail;
- one softmax over both (float32, as the models' eager attention), then ``probs @ values`` for each part.

The segment structure (and ``log(weight)`` of merged slots) is a ``[N, S]`` additive bias built once per
packing (:func:`segment_bias`); each step adds only the mask's per-slot visibility, fused into ``addmm``.

Keys and values are read once (decode on a CPU is bound by memory traffic); the slot logits cost
``N x S`` multiply-adds of ``D``, i.e. ``B x H_kv`` times those a per-segment kernel would compute, a
small matrix next to the keys while ``B x H_q`` stays well under ``D``. Merged slots add ``log(weight)``.
"""

from __future__ import annotations

import torch
from torch import Tensor

from windowkv.cache.ragged import RaggedSlots


def segment_bias(slots: RaggedSlots, batch: int, num_query_heads: int, dtype: torch.dtype) -> Tensor:
    """``[B x H_q, S]`` additive bias of the slot logits that does not change between decode steps: ``-inf``
    outside each query's own segment (query ``n`` reads segment ``n // (H_q / H_kv)``: its row and KV
    head, GQA), ``log(weight)`` of merged slots inside it. Built once per packing and reused."""
    n = batch * num_query_heads
    groups = num_query_heads // slots.num_heads
    query_segment = torch.arange(n, device=slots.segment.device).div(groups, rounding_mode="floor")
    own = slots.segment[None, :] == query_segment[:, None]
    bias = torch.zeros(own.shape, dtype=dtype, device=own.device).masked_fill(~own, float("-inf"))
    if slots.weights is not None:
        bias = bias + torch.log(slots.weights.clamp(min=1e-30)).to(dtype)
    return bias


def segment_decode_attention(query: Tensor, slots: RaggedSlots, slot_visible: Tensor, tail_keys: Tensor,
                             tail_values: Tensor, tail_visible: Tensor, scaling: float,
                             bias: Tensor | None = None) -> Tensor:
    """Attention of one new token per row over ragged slots and the dense tail.

    Args:
        query: ``[B, H_q, 1, D]`` (after RoPE).
        slots: the layer's ragged prompt slots, ``S`` of them over ``H_kv`` heads.
        slot_visible: ``[S]`` bool, False for slots the row's mask hides.
        tail_keys: ``[B, H_kv, T, D]`` tokens appended since the prefill (the new token included).
        tail_values: ``[B, H_kv, T, D_v]``.
        tail_visible: ``[B, 1 | H_kv, 1, T]`` bool.
        scaling: the logits' scale (``D ** -0.5`` for most models).
        bias: :func:`segment_bias` of ``slots`` (computed here when ``None``).

    Returns:
        ``[B, 1, H_q, D_v]``, the layout transformers' attention functions return.
    """
    b, h_q, q, d = query.shape
    if q != 1:
        raise ValueError(f"segment decode attention takes one query per row (got {q})")
    h_kv, t = slots.num_heads, tail_keys.shape[-2]
    groups = h_q // h_kv
    n = b * h_q
    if bias is None:
        bias = segment_bias(slots, b, h_q, query.dtype)
    hidden = torch.zeros((), dtype=bias.dtype, device=bias.device).masked_fill(~slot_visible, float("-inf"))
    slot_logits = torch.addmm(bias + hidden, query.reshape(n, d), slots.keys.t(), alpha=scaling)  # [N, S]
    tail_logits = torch.matmul(query.view(b, h_kv, groups, d), tail_keys.transpose(-1, -2)) * scaling
    tail_seen = tail_visible.expand(b, h_kv, groups, t).reshape(n, t)
    tail_logits = tail_logits.reshape(n, t).masked_fill(~tail_seen, float("-inf"))
    probs = torch.softmax(torch.cat([slot_logits, tail_logits], dim=-1), dim=-1, dtype=torch.float32)
    probs = probs.to(query.dtype)
    s = slots.keys.shape[0]
    out = torch.matmul(probs[:, :s], slots.values)  # [N, D_v]
    out = out + torch.matmul(probs[:, s:].view(b, h_kv, groups, t), tail_values).reshape(n, -1)
    return out.view(b, 1, h_q, -1)
