"""The index-sharing contract: which layer's scores a layer selects from."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from windowkv.component import Component


class IndexSharing(Component):
    """Decides, per layer, whether it scores its own tokens or reuses a leader layer's scores.

    A follower runs no scorer: it selects from its leader's token scores with its own budget, so with
    equal budgets it keeps exactly the leader's positions (WindowKV, arXiv 2503.17922, Sec. 3.4).
    """

    kind: ClassVar[str] = "sharing"

    def __call__(self, layer_idx: int, num_layers: int) -> int:
        leader = self.leader(layer_idx, num_layers)
        if not 0 <= leader <= layer_idx:
            raise ValueError(
                f"sharing {self.name!r} gave leader {leader} for layer {layer_idx}: a leader must be "
                "an earlier layer or the layer itself"
            )
        return leader

    @abstractmethod
    def leader(self, layer_idx: int, num_layers: int) -> int:
        """Index of the layer whose scores layer ``layer_idx`` uses (``layer_idx`` itself: its own)."""
