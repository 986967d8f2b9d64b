"""Head-wise adaptive top-k selector: AdaKV's budget allocation across the KV heads of a layer.

AdaKV (Feng et al., arXiv 2407.11550, Sec. 4): heads do not need the same number of tokens. With a
layer budget of ``b`` per head, AdaKV keeps the ``H x b`` best (head, token) pairs of the layer,
ranking all heads' scores together, so a head with concentrated attention gives budget to a head with
dispersed attention. A safeguard first reserves each head's ``floor(alpha x b)`` best tokens
(kvpress's ``AdaKVPress`` ``alpha_safeguard``). SnapKV's pooled scores are the paper's input.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from windowkv.selectors.base import HeadMode, Selector
from windowkv.tensor_ops import ranks, valid_prefix


class HeadwiseTopKSelector(Selector):
    """Keeps the ``H x min(b, n)`` best (head, token) pairs of each row, at least ``floor(alpha x b)`` per head.

    Shapes: scores ``[B, H_kv, R]`` -> keep ``[B, H_kv, R]``; per row, the counts over heads sum to
    ``H_kv x min(b, n)``, a single head keeping up to ``min(n, H_kv x b - (H_kv - 1) x safeguard)``
    (:meth:`max_kept`). Scores are compared across heads, so they must share a scale (attention
    weights do). With ``heads="shared"`` the scores are averaged over heads and this is a token top-k.

    The cache stays rectangular: a layer holds ``max_kept`` slots per head, unused slots masked.
    """

    name: ClassVar[str] = "headwise_topk"

    heads: HeadMode = Field("per_kv_head", description="'per_kv_head' (AdaKV) or 'shared' (plain top-k).")
    alpha_safeguard: float = Field(
        0.2, ge=0.0, le=1.0, description="Share of the per-head budget each head keeps at least (AdaKV: 0.2)."
    )

    def safeguard(self, budget: Tensor | int) -> Tensor | int:
        """Tokens reserved per head: ``floor(alpha x b)``, at least 1 when ``alpha > 0`` and ``b > 0``."""
        if isinstance(budget, Tensor):
            safe = torch.floor(budget.to(torch.float64) * self.alpha_safeguard).long()
            return torch.where(budget > 0, safe.clamp(min=1), 0) if self.alpha_safeguard > 0 else safe
        safe = math.floor(budget * self.alpha_safeguard)
        return max(safe, 1) if self.alpha_safeguard > 0 and budget > 0 else safe

    def max_kept(self, budget: int, length: int, num_heads: int) -> int:
        kept = min(budget, length)
        if self.heads == "shared" or num_heads <= 1:
            return kept
        return min(length, num_heads * kept - (num_heads - 1) * self.safeguard(kept))

    def budget_caps(self, lengths: Tensor, budgets: Tensor, heads: int) -> tuple[Tensor, Tensor | None]:
        kept = torch.minimum(budgets, lengths)
        if heads <= 1:
            return kept, None
        per_head = torch.minimum(lengths, heads * kept - (heads - 1) * self.safeguard(kept))
        return per_head, heads * kept

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        b, _, r = scores.shape
        valid = valid_prefix(lengths, r)[:, None, :]  # [B, 1, R]
        scores = scores.masked_fill(~valid, float("-inf"))
        if self.heads == "shared":
            scores = scores.mean(dim=1, keepdim=True)
        h = scores.shape[1]
        kept = torch.minimum(budgets, lengths)  # [B] per head, on average
        reserved = (ranks(scores) < self.safeguard(kept)[:, None, None]) & valid  # [B, H, R]
        boosted = scores.masked_fill(reserved, float("inf")).reshape(b, h * r)
        keep = ranks(boosted) < (h * kept)[:, None]  # the best H x b pairs of the row
        return keep.view(b, h, r)
