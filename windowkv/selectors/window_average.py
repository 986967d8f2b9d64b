"""Window-average selector: a window scores the mean of its token scores (WindowKV, non-QA tasks)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor

from windowkv.selectors.window import WindowSelector


class WindowAverageSelector(WindowSelector):
    """Keeps the windows of highest mean token score.

    Shapes: scores ``[B, H_kv, R]`` -> keep ``[B, H, R]``. The paper's profile for information
    aggregation tasks (summaries, few-shot, code), with a suffix of 16.
    """

    name: ClassVar[str] = "window_average"

    def window_scores(self, windows: Tensor, token_valid: Tensor) -> Tensor:
        return windows.sum(-1) / token_valid.sum(-1).clamp(min=1)
