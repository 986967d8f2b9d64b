"""Window-margin selector: WindowKV's window-max choice, each kept window widened by a margin of tokens.

WindowKV (arXiv 2503.17922, Sec. 3.3) cuts the review tokens into windows at fixed offsets, so a run of
related tokens (the 7 digit tokens of a number, the pieces of a word) is often split between two windows;
when only one of them is kept the model reads part of the number (``windowkv inspect`` shows it,
``docs/inspect.md``). Worse, a question attends to the *key* of a fact ("the special magic number for
Shanghai") more than to its *value* (the digits that follow), so the window after the key is dropped.
This selector chooses windows exactly as ``window_max`` does, within a reduced budget
``b * w // (w + before + after)``, then also keeps ``before`` tokens before and ``after`` tokens after
every kept window: a run that spills over a window boundary, or a value that follows its key, survives
whole, and a row never keeps more than ``b`` tokens. Kept sets are therefore not whole windows, so it is a :class:`Selector`, not a
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
    """Window max over windows of ``w`` tokens, each kept window extended by margins before and after.

    Shapes: scores ``[B, H_kv, R]`` -> keep ``[B, H, R]`` (``H`` 1 for ``heads="shared"``). The windows
    use at most ``b * w // (w + before + after)`` tokens, so with their margins a row keeps at most ``b``
    (the base class clips the rare overshoot of a short last window, by score).
    """

    name: ClassVar[str] = "window_margin"

    window_size: int = Field(8, ge=1, description="Tokens per window (w); the paper uses 8.")
    top_k: int | None = Field(None, ge=1, description="Tokens averaged per window; default window_size // 2.")
    before: int = Field(4, ge=0, le=64, description="Tokens kept before each kept window.")
    after: int = Field(4, ge=0, le=64, description="Tokens kept after each kept window (a key's value follows it).")

    @model_validator(mode="after")
    def _top_k_fits(self) -> "WindowMarginSelector":
        if self.top_k is not None and self.top_k > self.window_size:
            raise ValueError(f"top_k ({self.top_k}) must be <= window_size ({self.window_size})")
        return self

    def _windows(self) -> WindowMaxSelector:
        return WindowMaxSelector(window_size=self.window_size, top_k=self.top_k, heads=self.heads)

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        w, before, after = self.window_size, self.before, self.after
        keep = self._windows().select(scores, lengths, budgets * w // (w + before + after))  # [B, H, R]
        if before + after == 0 or keep.shape[-1] == 0:
            return keep
        # position q is kept when a kept token lies in [q - after, q + before]
        flat = F.pad(keep.float().reshape(-1, 1, keep.shape[-1]), (after, before))
        widened = F.max_pool1d(flat, kernel_size=before + after + 1, stride=1)
        return widened.view_as(keep) > 0
