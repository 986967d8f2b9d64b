"""The index-sharing contract: which layer's scores a layer selects from."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from windowkv.component import Component


class IndexSharing(Component):
    """Decides, per layer, whether it scores its own tokens or reuses a leader layer's scores.

    A follower runs no scorer: it selects from its leader's token scores with its own budget, so with
    equal budgets it keeps exactly the leader's positions (WindowKV, arXiv 2503.17922, Sec. 3.4).
    A leader may come *after* its followers (e.g. the last layer of a group): the transformers
    integration then evicts the followers' caches once the leader has scored the prompt, which is
    possible because a layer's cache is not read again before decoding starts.
    """

    kind: ClassVar[str] = "sharing"

    def __call__(self, layer_idx: int, num_layers: int) -> int:
        leader = self.leader(layer_idx, num_layers)
        if not 0 <= leader < num_layers or self.leader(leader, num_layers) != leader:
            raise ValueError(
                f"sharing {self.name!r} gave leader {leader} for layer {layer_idx} of {num_layers}: a leader "
                "must be a layer of the model that leads itself"
            )
        return leader

    @abstractmethod
    def leader(self, layer_idx: int, num_layers: int) -> int:
        """Index of the layer whose scores layer ``layer_idx`` uses (``layer_idx`` itself: its own)."""

    def order(self, num_layers: int) -> list[int]:
        """Layers in the order their selections can be made: in order, each follower right after its
        leader when the leader comes later."""
        waiting: dict[int, list[int]] = {}
        out: list[int] = []
        for layer in range(num_layers):
            leader = self(layer, num_layers)
            if leader > layer:
                waiting.setdefault(leader, []).append(layer)
                continue
            out.append(layer)
            out.extend(waiting.pop(layer, []))
        return out
