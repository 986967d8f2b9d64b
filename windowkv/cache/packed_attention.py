"""Decode attention over slots as they are stored: quantized codes and pruned key channels, never densified.

A compressed layer may store its kept prompt slots quantized (``value = zero + code * scale``, one scale and
zero point per group of ``group_size`` values: :class:`~windowkv.quantizers.base.AffineCodes`) and its keys
with only ``C < D`` kept channels. For one new token per row (a decode step) attention is computed from that
storage directly, without the dense ``[B, H_kv, K0, D]`` keys and values the padded path builds at every step
(the codes are unpacked to float32 once per call; scales and zero points are never expanded per slot):

- **keys grouped per channel over tokens** (``axis=-2``, KIVI/MiniKV keys; token group ``g`` has a scale and
  zero point ``[C]`` per channel): ``q·k_t = q·zero_g + (q * scale_g)·codes_t``: the query scaled once per
  token group, then one batched matmul with the codes;
- **keys grouped per token over channels** (``axis=-1``): ``q·k_t = sum_j zero_tj * sum(q_j) +
  scale_tj * (q_j·codes_tj)`` over channel groups ``j``;
- **values** likewise: ``sum_t p_t v_t`` from the codes, with the probabilities scaled by each token's (or
  token group's) scale and the zero points added per group;
- **pruned key channels** (ThinK): the query's kept channels are gathered per KV head (``[.., G, C]``) and
  multiplied with the stored ``[.., K0, C]`` keys; a pruned channel is zero, so this is the dense result.

Quantized parts are computed in float32 (codes are exact small integers), the softmax in float32 over the
concatenated ``[slot logits, tail logits]`` as the models' eager attention does, and the result is cast to
the query's dtype. Shapes: ``B`` rows, ``H_kv`` KV heads, ``G = H_q / H_kv`` query heads per KV head (GQA),
``K0`` kept slots, ``C`` stored key channels, ``D`` head dim, ``T`` tokens appended since the prefill.
"""

from __future__ import annotations

import torch
from torch import Tensor

from windowkv.quantizers.base import AffineCodes


def unpack_codes(stored: AffineCodes, tokens: int) -> Tensor:
    """The codes of ``stored`` (``[..., K, N]``) as float32 ``[..., tokens, N]``, rows from ``K`` on zero
    (``tokens >= K``: whole token groups)."""
    data, bits = stored.data, stored.bits
    *lead, k, width = data.shape
    per_byte = 8 // bits
    out = data.new_empty((*lead, tokens, width * per_byte), dtype=torch.float32)
    out[..., k:, :] = 0
    if per_byte == 1:
        out[..., :k, :] = data
        return out
    lanes = out.view(*lead, tokens, width, per_byte)[..., :k, :, :]
    for lane in range(per_byte):  # 2 or 4 lanes: one strided write each, no broadcast shift of the bytes
        lanes[..., lane] = (data >> lane * bits) & (2**bits - 1)
    return out


def affine_key_logits(query: Tensor, keys: AffineCodes) -> Tensor:
    """``query @ keys^T`` from the codes: ``query`` ``[..., G, N]`` float32, ``keys`` of ``[..., K, N]`` ->
    ``[..., G, K]`` float32."""
    gs, scale, zero = keys.group_size, keys.scale.float(), keys.zero.float()
    *lead, k, _ = keys.data.shape
    g, n = query.shape[-2:]
    if keys.axis == -1:  # scale [..., K, groups]: q·k_t = sum_j scale_tj (q_j·codes_tj) + zero_tj sum(q_j)
        groups = n // gs
        codes = unpack_codes(keys, k)
        # row (j, g) of the split query keeps only channel group j: one matmul gives every q_j·codes_tj
        own = torch.arange(n, device=query.device).div(gs, rounding_mode="floor") == \
            torch.arange(groups, device=query.device)[:, None]  # [groups, N]
        split = (query[..., None, :, :] * own[:, None, :]).reshape(*lead, groups * g, n)
        per_group = (split @ codes.transpose(-1, -2)).view(*lead, groups, g, k)
        zero_part = query.view(*lead, g, groups, gs).sum(-1) @ zero.transpose(-1, -2)  # [..., G, K]
        return (per_group * scale.transpose(-1, -2)[..., :, None, :]).sum(-3) + zero_part
    # scale [..., groups, N]: q·k_t = q·zero_g + (q * scale_g)·codes_t, the last token group padded with zeros
    groups = scale.shape[-2]
    codes = unpack_codes(keys, groups * gs).view(*lead, groups, gs, n)
    scaled = query[..., None, :, :] * scale[..., :, None, :]  # [..., groups, G, N]
    zero_part = (query @ zero.transpose(-1, -2)).transpose(-1, -2)[..., None]  # [..., groups, G, 1]
    logits = scaled @ codes.transpose(-1, -2) + zero_part  # [..., groups, G, gs]
    return logits.transpose(-3, -2).reshape(*lead, g, groups * gs)[..., :k]


def affine_value_mix(probs: Tensor, values: AffineCodes) -> Tensor:
    """``probs @ values`` from the codes: ``probs`` ``[..., G, K]`` float32, ``values`` of ``[..., K, N]`` ->
    ``[..., G, N]`` float32."""
    gs, scale, zero = values.group_size, values.scale.float(), values.zero.float()
    *lead, k, _ = values.data.shape
    g = probs.shape[-2]
    if values.axis == -1:  # scale [..., K, groups]: out_j = (p * scale_j) @ codes_j + p @ zero_j
        groups = scale.shape[-1]
        codes = unpack_codes(values, k)
        n = codes.shape[-1]
        scaled = (probs[..., None, :, :] * scale.transpose(-1, -2)[..., :, None, :]).reshape(*lead, groups * g, k)
        # one matmul mixes every channel with every group's scaled probabilities; keep each channel's own group
        mixed = (scaled @ codes).view(*lead, groups, g, groups, gs).diagonal(dim1=-4, dim2=-2)  # [..., G, gs, groups]
        return (mixed.transpose(-1, -2) + (probs @ zero)[..., None]).reshape(*lead, g, n)
    # scale [..., groups, N]: out = sum_g scale_g * (p_g @ codes_g) + (sum p_g) * zero_g
    groups = scale.shape[-2]
    codes = unpack_codes(values, groups * gs).view(*lead, groups, gs, -1)
    padded = torch.nn.functional.pad(probs, (0, groups * gs - k)).view(*lead, g, groups, gs)
    mixed = padded.transpose(-3, -2) @ codes  # [..., groups, G, N]
    return (mixed * scale[..., :, None, :]).sum(-3) + padded.sum(-1) @ zero


def _key_logits(query: Tensor, keys: Tensor | AffineCodes) -> Tensor:
    if isinstance(keys, AffineCodes):
        return affine_key_logits(query.float(), keys)
    return (query @ keys.to(query.dtype).transpose(-1, -2)).float()


def _value_mix(probs: Tensor, values: Tensor | AffineCodes) -> Tensor:
    if isinstance(values, AffineCodes):
        return affine_value_mix(probs, values)
    return (probs.to(values.dtype) @ values).float()


def packed_decode_attention(query: Tensor, keys: Tensor | AffineCodes, values: Tensor | AffineCodes,
                            key_channels: Tensor | None, slot_bias: Tensor, tail_keys: Tensor,
                            tail_values: Tensor, tail_visible: Tensor, scaling: float) -> Tensor:
    """Attention of one new token per row over stored slots and the dense tail.

    Args:
        query: ``[B, H_q, 1, D]`` (after RoPE).
        keys: the slots' keys, ``[B, H_kv, K0, C]`` (``C = D`` without ``key_channels``): dense or
            :class:`AffineCodes`.
        values: ``[B, H_kv, K0, D_v]``, dense or :class:`AffineCodes`.
        key_channels: ``[B, H_kv, C]`` long, the channels ``keys`` hold (``None``: all ``D``).
        slot_bias: ``[B, 1 | H_kv, 1, K0]`` float32 added to the slot logits: ``-inf`` for slots the query
            cannot see, ``log(weight)`` of merged slots.
        tail_keys: ``[B, H_kv, T, D]`` tokens appended since the prefill (the new token included).
        tail_values: ``[B, H_kv, T, D_v]``.
        tail_visible: ``[B, 1 | H_kv, 1, T]`` bool.
        scaling: the logits' scale (``D ** -0.5`` for most models).

    Returns:
        ``[B, 1, H_q, D_v]`` in the query's dtype, the layout transformers' attention functions return.
    """
    b, h_q, q_len, d = query.shape
    if q_len != 1:
        raise ValueError(f"packed decode attention takes one query per row (got {q_len})")
    h_kv = tail_keys.shape[1]
    groups = h_q // h_kv
    q = query.view(b, h_kv, groups, d) * scaling
    slot_q = q if key_channels is None else q.gather(-1, key_channels[:, :, None, :].expand(b, h_kv, groups, -1))
    slot_logits = _key_logits(slot_q, keys) + slot_bias  # [B, H_kv, G, K0]
    tail_logits = (q @ tail_keys.transpose(-1, -2)).float().masked_fill(~tail_visible, float("-inf"))
    probs = torch.softmax(torch.cat([slot_logits, tail_logits], dim=-1), dim=-1)
    k0 = slot_logits.shape[-1]
    out = _value_mix(probs[..., :k0], values)
    out = out + (probs[..., k0:].to(tail_values.dtype) @ tail_values).float()
    return out.to(query.dtype).view(b, 1, h_q, -1)  # [B, H_kv, G, D_v] is [B, 1, H_q, D_v] in memory
