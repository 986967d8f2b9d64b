"""Index sharing in fixed groups of consecutive layers (WindowKV, arXiv 2503.17922, Sec. 3.4)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from windowkv.sharing.base import IndexSharing


class GroupSharing(IndexSharing):
    """Layers ``[kG, (k+1)G)`` share one selection; the last group may be partial.

    The paper's leader is the group's first layer. ``leader="last"`` lets the group's last (deepest)
    layer score instead, whose attention tends to locate answers better in small models; the earlier
    layers of the group are evicted once it has run. Scoring cost drops by about ``G x`` either way.
    """

    name: ClassVar[str] = "groups"

    group_size: int = Field(8, ge=1, description="Layers per group (G); the paper uses 8.")
    leader_layer: Literal["first", "last"] = Field(
        "first", description="Which layer of a group scores the prompt: 'first' (the paper) or 'last'."
    )

    def leader(self, layer_idx: int, num_layers: int) -> int:
        first = layer_idx - layer_idx % self.group_size
        if self.leader_layer == "first":
            return first
        return min(first + self.group_size, num_layers) - 1
