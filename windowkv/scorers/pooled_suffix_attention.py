"""Pooled suffix-attention scorer: SnapKV's observation-window attention, smoothed by 1-D average pooling.

SnapKV (Li et al., arXiv 2404.14469, Sec. 4.2 "clustering via pooling") scores a prefix token by the
attention the last ``s`` prompt queries give it, then smooths the scores with a 1-D pooling so that a
kept token keeps its neighbours (the information around a relevant token). PyramidKV, AdaKV and ChunkKV
reuse these scores. Only ``s x L`` attention weights are computed, never ``L x L``.

:func:`avg_pool_scores` is the smoother on its own, for plugins that want it on other scores.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers.base import Scorer
from windowkv.scorers.suffix_attention import suffix_attention


def avg_pool_scores(scores: Tensor, kernel_size: int) -> Tensor:
    """1-D average pooling along the last axis, stride 1, zero padding ``kernel_size // 2`` on both sides.

    Each output is the sum of the ``kernel_size`` neighbours divided by ``kernel_size`` (positions
    outside the axis count as 0), as ``F.avg_pool1d(..., padding=k // 2)`` in SnapKV and kvpress.

    Args:
        scores: ``[..., R]`` float scores; padding positions must hold 0 so that they do not leak.
        kernel_size: odd ``k >= 1``; 1 returns the scores unchanged.

    Returns:
        ``[..., R]``, same dtype.
    """
    if kernel_size % 2 != 1:
        raise ValueError(f"kernel_size must be odd to keep the length (got {kernel_size})")
    if kernel_size == 1 or scores.shape[-1] == 0:
        return scores
    flat = scores.reshape(-1, 1, scores.shape[-1])
    pooled = F.avg_pool1d(flat, kernel_size=kernel_size, stride=1, padding=kernel_size // 2)
    return pooled.view(scores.shape)


class PooledSuffixAttentionScorer(Scorer):
    """Mean attention of the suffix queries over each review token, average-pooled along the positions.

    Shapes: queries ``[B, H_q, s, D]``, keys ``[B, H_kv, L, D]`` -> weights ``[B, H_kv, G, s, L]`` ->
    mean over the ``s`` queries ``[B, H_kv, G, R]`` -> pooled per query head (kernel ``k``, zero
    padding at both ends of the review part) -> ``head_reduction`` over the ``G`` query heads of each
    KV head -> ``[B, H_kv, R]``. The order (mean, pool, then GQA mean) is SnapKV's as implemented by
    kvpress's ``SnapKVPress``. Padding keys get weight 0, so a padded row scores as it would alone.
    """

    name: ClassVar[str] = "pooled_suffix_attention"

    kernel_size: int = Field(5, ge=1, le=255, description="Odd pooling width (SnapKV: 5); 1 = no pooling.")
    head_reduction: Literal["mean", "sum", "max"] = Field(
        "mean", description="How the query heads sharing one KV head are combined (GQA; SnapKV: mean)."
    )

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 != 1:
            raise ValueError("must be odd, so that pooling keeps every position centred")
        return value

    def score(self, inputs: LayerInputs) -> Tensor:
        weights = suffix_attention(inputs)[..., : inputs.review_length]  # [B, H_kv, G, s, R]
        pooled = avg_pool_scores(weights.mean(dim=3), self.kernel_size)  # [B, H_kv, G, R]
        if self.head_reduction == "mean":
            return pooled.mean(dim=2)
        if self.head_reduction == "sum":
            return pooled.sum(dim=2)
        return pooled.amax(dim=2)
