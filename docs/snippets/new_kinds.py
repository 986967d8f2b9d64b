"""Components of the stages after selection: a merger, checked and registered (docs/tutorials/write-a-scorer.md)."""

# --8<-- [start:merger]
from typing import ClassVar

import torch

from windowkv.mergers import MergedSlots, Merger, MergeInputs
from windowkv.mergers.base import gather_slots


class FirstSlotMerger(Merger):
    """Merges every evicted token of a row into its first kept slot (a toy: shapes only).

    Shapes: keys/values ``[B, H_kv, L, D]``, positions ``[B, 1 | H_kv, K]`` -> ``[B, H_kv, K, D]``,
    weights ``[B, H_kv, K]`` summing to the row's valid prompt tokens.
    """

    name: ClassVar[str] = "first_slot"

    def merge(self, inputs: MergeInputs) -> MergedSlots:
        b, h_kv, _, _ = inputs.keys.shape
        k = inputs.positions.shape[-1]
        weights = inputs.valid.expand(b, h_kv, k).to(torch.float32)
        evicted = inputs.key_valid.sum(-1, dtype=torch.float32)[:, None] - weights.sum(-1)  # [B, H_kv]
        weights[..., 0] += torch.where(weights[..., 0] > 0, evicted, 0.0)
        return MergedSlots(gather_slots(inputs.keys, inputs.positions),
                           gather_slots(inputs.values, inputs.positions), weights)
# --8<-- [end:merger]

# --8<-- [start:check]
import windowkv
from windowkv import Policy
from windowkv.testing import check_merger_contract, fresh_registries


class MyPlugin:
    @windowkv.hookimpl
    def windowkv_register_mergers(self):
        return [FirstSlotMerger]


check_merger_contract(FirstSlotMerger)  # raises AssertionError naming the broken rule
registries = fresh_registries(MyPlugin())
policy = Policy.from_config({"preset": "windowkv", "budget": 64, "merger": {"type": "first_slot"}}, registries)
assert policy.to_config()["merger"] == {"type": "first_slot"}
# --8<-- [end:check]
