"""Window-margin selector: WindowKV's window-max choice, each kept window widened by a margin of tokens.

WindowKV (arXiv 2503.17922, Sec. 3.3) cuts the review tokens into windows at fixed offsets, so a run of
related tokens (the 7 digit tokens of a number, the pieces of a word) is often split between two windows;
when only one of them is kept the model reads part of the number (``windowkv inspect`` shows it,
``docs/inspect.md``). This selector chooses windows exactly as ``window_max`` does, within a reduced
budget ``b * w // (w + 2m)``, then also keeps the ``m`` tokens on each side of every kept window: a run
that spills at most ``m`` tokens over a window boundary survives whole, and a row never keeps more than
``b`` tokens. Kept sets are therefore not whole windows, so it is a :class:`Selector`, not a
:class:`~windowkv.selectors.window.WindowSelector`.
"""

from __future__ import annotations

from typing import ClassVar

import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from windowkv.selectors.base import Selector
from windowkv.selectors.window_max import WindowMaxSelector


class WindowMarginSelector(Selector):
    """Window max over windows of ``w`` tokens, each kept window extended by ``margin`` tokens per side.

    Shapes: scores ``[B, H_kv, R]`` -> keep ``[B, H, R]`` (``H`` 1 for ``heads="shared"``). The windows
    use at most ``b * w // (w + 2 * margin)`` tokens, so with their margins a row keeps at most ``b``.
    """

    name: ClassVar[str] = "window_margin"

    window_size: int = Field(8, ge=1, description="Tokens per window (w); the paper uses 8.")
    top_k: int | None = Field(None, ge=1, description="Tokens averaged per window; default window_size // 2.")
    margin: int = Field(4, ge=0, le=64, description="Tokens kept on each side of a kept window (m).")

    @model_validator(mode="after")
    def _top_k_fits(self) -> "WindowMarginSelector":
        if self.top_k is not None and self.top_k > self.window_size:
            raise ValueError(f"top_k ({self.top_k}) must be <= window_size ({self.window_size})")
        return self

    def _windows(self) -> WindowMaxSelector:
        return WindowMaxSelector(window_size=self.window_size, top_k=self.top_k, heads=self.heads)

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        w, m = self.window_size, self.margin
        keep = self._windows().select(scores, lengths, budgets * w // (w + 2 * m))  # [B, H, R]
        if m == 0 or keep.shape[-1] == 0:
            return keep
        flat = keep.float().reshape(-1, 1, keep.shape[-1])
        widened = F.max_pool1d(flat, kernel_size=2 * m + 1, stride=1, padding=m)
        return widened.view_as(keep) > 0
