"""Drop merger: evicted tokens are simply gone (every eviction method's default)."""

from __future__ import annotations

from typing import ClassVar

import torch

from windowkv.mergers.base import MergedSlots, Merger, MergeInputs, gather_slots


class DropMerger(Merger):
    """Gathers the kept slots; each valid slot stands for its own token (weight 1), invalid slots 0.

    Shapes: keys/values ``[B, H_kv, L, D]`` at positions ``[B, 1|H_kv, K]`` -> ``[B, H_kv, K, D]``.
    """

    name: ClassVar[str] = "drop"
    merges_all: ClassVar[bool] = False
    weights_bias_attention: ClassVar[bool] = False  # weight 1 everywhere: no bias to add

    def merge(self, inputs: MergeInputs) -> MergedSlots:
        b, h_kv, _, _ = inputs.keys.shape
        weights = inputs.valid.expand(b, h_kv, inputs.valid.shape[-1]).to(torch.float32)
        return MergedSlots(gather_slots(inputs.keys, inputs.positions),
                           gather_slots(inputs.values, inputs.positions), weights)
