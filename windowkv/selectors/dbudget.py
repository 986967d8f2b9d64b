"""DBudgetKV selector: the budget is decided per prompt, layer and row by an attention-based stopping signal.

Ni et al., DBudgetKV: Dynamic Budget in KV Cache Compression for Ensuring Optimal Performance, arXiv
2502.16886 (2025): rank the prompt tokens by importance, prune from the least important, and stop when an
attention-based signal says the rest could no longer match the full cache. Here the signal is the norm of
the layer's token scores (the scorer's attention of the observation window, ``[B, H_kv, R]``): the kept
tokens are the fewest best-ranked ones whose scores keep at least ``norm_ratio`` of the full norm
(``norm="fro"``: the Frobenius (L2) norm, as the paper compares attention matrices; ``"mass"``: the L1
mass). The paper's exact ranking (position bias plus attention) is replaced by the scorer's ranking.

The policy's budget becomes a **ceiling**: a row never keeps more than its layer budget, and the signal
usually stops well below it, so give a generous budget (e.g. ``0.9``); a budget covering the whole review
part compresses nothing, as for every selector. The budget chosen is what each layer keeps
(``run.kept_tokens()``, ``kept_review_tokens`` in result rows).
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from windowkv.selectors.base import Selector
from windowkv.tensor_ops import ranks, valid_prefix


class DBudgetSelector(Selector):
    """Keeps the fewest best tokens whose scores hold ``norm_ratio`` of the norm, at most the budget.

    Shapes: scores ``[B, H_kv, R]`` -> keep ``[B, H, R]``; each row (and KV head with
    ``heads="per_kv_head"``) stops on its own.
    """

    name: ClassVar[str] = "dbudget"

    norm_ratio: float = Field(0.99, gt=0.0, le=1.0, description="Stop pruning when the kept tokens' scores "
                              "would hold less than this fraction of the full norm.")
    norm: Literal["fro", "mass"] = Field("fro", description="'fro': Frobenius (L2) norm of the scores; "
                                         "'mass': their sum (L1).")

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        ranked = scores if self.heads == "per_kv_head" else scores.mean(dim=1, keepdim=True)  # [B, H, R]
        valid = valid_prefix(lengths, scores.shape[-1])[:, None, :]
        energy = ranked.float().clamp(min=0).masked_fill(~valid, 0.0)
        target = self.norm_ratio
        if self.norm == "fro":
            energy, target = energy.square(), target ** 2
        cumulative = energy.sort(dim=-1, descending=True).values.cumsum(-1)
        needed = (cumulative < target * cumulative[..., -1:]).sum(-1, keepdim=True) + 1  # [B, H, 1]
        # a budget covering the row keeps it whole (as for every selector); otherwise it is only a ceiling
        needed = torch.minimum(needed, budgets[:, None, None])
        needed = torch.where((budgets >= lengths)[:, None, None], lengths[:, None, None], needed)
        return (ranks(ranked.masked_fill(~valid, float("-inf"))) < needed) & valid
