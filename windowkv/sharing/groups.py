"""Index sharing in fixed groups of consecutive layers (WindowKV, arXiv 2503.17922, Sec. 3.4)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from windowkv.sharing.base import IndexSharing


class GroupSharing(IndexSharing):
    """Layers ``[kG, (k+1)G)`` reuse the selection of layer ``kG``; the last group may be partial.

    Scoring cost drops by about ``G x``.
    """

    name: ClassVar[str] = "groups"

    group_size: int = Field(8, ge=1, description="Layers per group (G); the paper uses 8.")

    def leader(self, layer_idx: int, num_layers: int) -> int:
        return layer_idx - layer_idx % self.group_size
