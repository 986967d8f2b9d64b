"""Sinks + recent selector: StreamingLLM's attention sinks and recent window (scores are ignored).

StreamingLLM (Xiao et al., arXiv 2309.17453, Sec. 3.2): the first few tokens act as "attention sinks"
and must stay in the cache; with them and a window of the most recent tokens a model keeps its
quality. kvpress's ``StreamingLLMPress`` keeps the first ``n_sink`` tokens and the last
``n_kept - n_sink``. Here the suffix is always kept on top, so the recent window is the last
``budget - sinks`` review tokens followed by the suffix.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from windowkv.selectors.base import Selector


class SinksRecentSelector(Selector):
    """Keeps the first ``min(sinks, budget)`` review tokens and the last ``budget - sinks`` of each row.

    Shapes: scores ``[B, H_kv, R]`` (only the shape is read) -> keep ``[B, H, R]``, the same positions in
    every head. Positions are counted from each row's first real token, so padding never shifts them.
    """

    name: ClassVar[str] = "sinks_recent"

    sinks: int = Field(4, ge=0, description="Attention sinks: first review tokens always kept (StreamingLLM: 4).")

    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        b, h, r = scores.shape
        heads = 1 if self.heads == "shared" else h
        kept = torch.minimum(budgets, lengths)  # [B]
        sinks = kept.clamp(max=self.sinks)
        recent_start = lengths - (kept - sinks)  # first index of the recent window
        j = torch.arange(r, device=scores.device)[None, :]
        keep = (j < sinks[:, None]) | ((j >= recent_start[:, None]) & (j < lengths[:, None]))
        return keep[:, None, :].expand(b, heads, r)
