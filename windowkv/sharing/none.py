"""No index sharing: every layer scores and selects its own tokens."""

from __future__ import annotations

from typing import ClassVar

from windowkv.sharing.base import IndexSharing


class NoSharing(IndexSharing):
    """Every layer is its own leader."""

    name: ClassVar[str] = "none"

    def leader(self, layer_idx: int, num_layers: int) -> int:
        return layer_idx
