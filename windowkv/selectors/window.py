"""Shared machinery of window selectors: cut into windows, score each, keep the best that fit.

WindowKV (arXiv 2503.17922, Sec. 3.3): review tokens are cut into consecutive windows of ``w`` tokens
(the last may be shorter); whole windows are kept or dropped by their score. Every window of every row
and head is scored by one tensor operation.
"""

from __future__ import annotations

from abc import abstractmethod
from pydantic import Field
from torch import Tensor

from windowkv.selectors.base import Selector
from windowkv.tensor_ops import keep_ranked_windows, window_view


class WindowSelector(Selector):
    """Base of selectors that keep whole windows; subclasses define :meth:`window_scores`."""

    window_size: int = Field(8, ge=1, description="Tokens per window (w); the paper uses 8.")

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        windows, token_valid = window_view(scores, lengths, self.window_size)  # [B,H,N,w], [B,1,N,w]
        sizes = token_valid.sum(-1)  # [B, 1, N]
        win = self.window_scores(windows, token_valid)  # [B, H, N]
        if self.heads == "shared":
            win = win.mean(dim=1, keepdim=True)
        win = win.masked_fill(sizes == 0, float("-inf"))
        kept = keep_ranked_windows(win, sizes, budgets)  # [B, H, N]
        keep = (kept[..., None] & token_valid).flatten(-2)
        return keep[..., : scores.shape[-1]]

    @abstractmethod
    def window_scores(self, windows: Tensor, token_valid: Tensor) -> Tensor:
        """``windows`` ``[B, H, N, w]`` (invalid tokens 0), ``token_valid`` ``[B, 1, N, w]`` -> ``[B, H, N]``."""

