"""Attention masks for a compressed cache.

After eviction each layer holds ``K0`` prompt slots (some invalid: padding or unused) followed by the
tokens appended since. The model's own mask is built for the prompt length and layer 0, so windowkv
gives every layer its own mask, built from the kept slots' validity.
"""

from __future__ import annotations

import torch
from torch import Tensor


def key_validity(attention_mask: Tensor | None, batch: int, length: int, device: torch.device) -> Tensor:
    """``[B, L]`` bool: which prompt keys are real tokens, read from the mask the layer received at prefill.

    The last query of a left-padded prompt sees every real key and no padding key, so its mask row is
    the padding mask, whatever the mask format (None, 4-D bool, or 4-D additive float).
    """
    if attention_mask is None:
        return torch.ones(batch, length, dtype=torch.bool, device=device)
    if attention_mask.dim() == 2:
        return attention_mask[:, -length:].bool()
    row = attention_mask[:, 0, -1, -length:]
    return row if row.dtype == torch.bool else row == 0


def decode_mask(valid: Tensor, appended: int, query_length: int, num_query_heads: int,
                style: str, dtype: torch.dtype) -> Tensor:
    """The mask of ``query_length`` new tokens over a compressed layer.

    Args:
        valid: ``[B, H, K0]`` bool, validity of the kept prompt slots (``H`` is 1 or the KV heads).
        appended: tokens appended to the layer since the prefill, before these queries.
        query_length: new tokens in this forward.
        num_query_heads: ``H_q``; per-KV-head validity is repeated for the query heads of each group.
        style: ``"sdpa"`` (bool, True attends) or ``"eager"`` (additive float, ``dtype``).

    Returns:
        ``[B, 1 | H_q, query_length, K0 + appended + query_length]``.
    """
    b, h, _ = valid.shape
    if h > 1:
        valid = valid.repeat_interleave(num_query_heads // h, dim=1)
    prompt = valid[:, :, None, :].expand(b, valid.shape[1], query_length, valid.shape[-1])
    new = torch.ones(query_length, appended + query_length, dtype=torch.bool, device=valid.device).tril(appended)
    new = new[None, None].expand(b, valid.shape[1], query_length, appended + query_length)
    mask = torch.cat([prompt, new], dim=-1)
    if style == "eager":
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
    return mask
