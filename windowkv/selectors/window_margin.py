"""Window-margin selector: WindowKV's windows, each kept together with its neighbouring windows.

WindowKV (arXiv 2503.17922, Sec. 3.3) keeps whole windows of ``w`` tokens by score. On real prose a
question attends to a fact's *key* ("the special magic number for Shanghai") far more than to its
*value* (the digits after it), so the key's window is kept and the value's dropped, in every layer;
and a run of related tokens (a 7-digit number) split by a window boundary loses one part
(``windowkv inspect`` shows both, ``docs/inspect.md``). This selector ranks windows exactly as
``window_max`` does (top-k mean) and takes them in that order, each with the ``windows_before`` windows
before it and the ``windows_after`` windows after it, as long as the union of everything taken fits the
budget. Windows already taken cost nothing again, so the budget is filled to within one step.

The union is computed without a loop: window ``j`` is first covered at ranking step
``min(rank[i] for i in [j - windows_after, j + windows_before])`` (a min-pool over the ranks); the
budget used after each step is a cumulative sum of the sizes first covered there.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from windowkv.selectors.base import Selector
from windowkv.selectors.window_max import WindowMaxSelector
from windowkv.tensor_ops import window_view


class WindowMarginSelector(Selector):
    """Whole windows ranked by top-k mean, each taken with its neighbouring windows, within the budget.

    Shapes: scores ``[B, H_kv, R]`` -> keep ``[B, H, R]`` (``H`` 1 for ``heads="shared"``). Kept sets are
    unions of whole windows (the last may be shorter) and never exceed the budget.
    """

    name: ClassVar[str] = "window_margin"

    window_size: int = Field(8, ge=1, description="Tokens per window (w); the paper uses 8.")
    top_k: int | None = Field(None, ge=1, description="Tokens averaged per window; default window_size // 2.")
    windows_before: int = Field(0, ge=0, le=8, description="Windows kept before each chosen window.")
    windows_after: int = Field(1, ge=0, le=8, description="Windows kept after each chosen window (a key's value "
                               "follows it).")

    @model_validator(mode="after")
    def _top_k_fits(self) -> "WindowMarginSelector":
        if self.top_k is not None and self.top_k > self.window_size:
            raise ValueError(f"top_k ({self.top_k}) must be <= window_size ({self.window_size})")
        return self

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        windows, token_valid = window_view(scores, lengths, self.window_size)  # [B,H,N,w], [B,1,N,w]
        sizes = token_valid.sum(-1)  # [B, 1, N]
        ranker = WindowMaxSelector(window_size=self.window_size, top_k=self.top_k, heads=self.heads)
        win = ranker.window_scores(windows, token_valid)  # [B, H, N]
        if self.heads == "shared":
            win = win.mean(dim=1, keepdim=True)
        win = win.masked_fill(sizes == 0, float("-inf"))
        b, h, n = win.shape
        if n == 0:  # no review tokens: nothing to keep
            return torch.zeros_like(scores, dtype=torch.bool)[:, :h]
        order = torch.sort(win, dim=-1, descending=True, stable=True).indices
        rank = torch.empty_like(order).scatter_(-1, order, torch.arange(n, device=win.device).expand(b, h, n))
        before, after = self.windows_before, self.windows_after
        # window j is covered by a chosen window i when i - before <= j <= i + after
        padded = F.pad(rank.float().reshape(b * h, 1, n), (after, before), value=float(n))
        first = (-F.max_pool1d(-padded, kernel_size=before + after + 1, stride=1)).view(b, h, n).long()
        added = torch.zeros(b, h, n + 1, dtype=sizes.dtype, device=win.device)
        added.scatter_add_(-1, first, sizes.expand(b, h, n))
        used = added[..., :n].cumsum(-1)  # tokens kept after ranking steps 0..n-1
        steps = (used <= budgets[:, None, None]).sum(-1, keepdim=True)  # [B, H, 1]
        kept = (first < steps) & (sizes > 0)  # [B, H, N]
        keep = (kept[..., None] & token_valid).flatten(-2)
        return keep[..., : scores.shape[-1]]
