"""All layers share the first layer's selection."""

from __future__ import annotations

from typing import ClassVar

from windowkv.sharing.base import IndexSharing


class AllLayersSharing(IndexSharing):
    """Layer 0 scores; every other layer reuses its scores (one group spanning the model)."""

    name: ClassVar[str] = "all_layers"

    def leader(self, layer_idx: int, num_layers: int) -> int:
        return 0
