"""The padding of a prompt, read from the mask a layer receives at prefill.

Decode masks of compressed layers are built by :meth:`windowkv.cache.CompressedLayer.attention_mask`.
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
