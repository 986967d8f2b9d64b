"""Window-max selector: a window scores the mean of its top-k token scores (WindowKV, QA tasks)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field, model_validator
from torch import Tensor

from windowkv.selectors.window import WindowSelector


class WindowMaxSelector(WindowSelector):
    """Keeps the windows whose ``k`` best tokens score highest on average (``k = w // 2`` by default).

    Rewards a window holding a few very relevant tokens, such as the answer of a QA prompt. Shapes:
    scores ``[B, H_kv, R]`` -> keep ``[B, H, R]``. A window shorter than ``k`` averages all its tokens.
    """

    name: ClassVar[str] = "window_max"

    top_k: int | None = Field(
        None, ge=1, description="Tokens averaged per window; default window_size // 2 (at least 1)."
    )

    @model_validator(mode="after")
    def _top_k_fits(self) -> "WindowMaxSelector":
        if self.top_k is not None and self.top_k > self.window_size:
            raise ValueError(f"top_k ({self.top_k}) must be <= window_size ({self.window_size})")
        return self

    @property
    def k(self) -> int:
        return self.top_k or max(self.window_size // 2, 1)

    def window_scores(self, windows: Tensor, token_valid: Tensor) -> Tensor:
        masked = windows.masked_fill(~token_valid, float("-inf"))
        top = masked.topk(self.k, dim=-1).values  # [B, H, N, k]
        finite = torch.isfinite(top)
        return torch.where(finite, top, 0.0).sum(-1) / finite.sum(-1).clamp(min=1)
