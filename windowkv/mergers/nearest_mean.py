"""Nearest-mean merger: each evicted token joins the kept slot whose key it resembles most.

In the spirit of KVMerger (Wang et al., arXiv 2407.08454, Sec. 4: merge similar keys into one state)
and KeepKV (arXiv 2504.09936: a merged slot carries the number of tokens it stands for, so attention
to it is not under-weighted). Similarity is the cosine of the keys, computed in float32; a slot's new
key and value are the mean over the tokens it stands for.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from windowkv.mergers.base import MergedSlots, Merger, MergeInputs, gather_slots


class NearestMeanMerger(Merger):
    """Merges every evicted valid prompt token into the most similar (cosine of keys) valid kept slot of
    its KV head; a slot becomes the mean of its tokens and its weight their count.

    Shapes: keys/values ``[B, H_kv, L, D]``, positions ``[B, 1|H_kv, K]`` -> ``[B, H_kv, K, D]`` and
    weights ``[B, H_kv, K]`` summing to each row's valid prompt tokens. Cost: one ``[L, K]`` similarity
    per KV head; no loop over tokens, no device sync.
    """

    name: ClassVar[str] = "nearest_mean"

    def merge(self, inputs: MergeInputs) -> MergedSlots:
        keys, values = inputs.keys, inputs.values
        b, h_kv, length, d = keys.shape
        k = inputs.positions.shape[-1]
        positions = inputs.positions.expand(b, h_kv, k)
        valid = inputs.valid.expand(b, h_kv, k)
        slot_keys = gather_slots(keys, positions).float()  # [B, H_kv, K, D]
        if k == 0:  # no slot to merge into (shapes are known on the host: no sync)
            empty = torch.zeros(b, h_kv, 0, dtype=torch.float32, device=keys.device)
            return MergedSlots(slot_keys.to(keys.dtype), gather_slots(values, positions), empty)
        # each valid kept position belongs to its own slot; invalid slots are parked at index L
        target = torch.where(valid, positions, length)
        own = torch.full((b, h_kv, length + 1), -1, dtype=torch.long, device=keys.device)
        own.scatter_(-1, target, torch.arange(k, device=keys.device).expand(b, h_kv, k))
        own = own[..., :length]  # [B, H_kv, L]: the slot of a kept token, -1 for an evicted one
        unit = torch.nn.functional.normalize(keys.float(), dim=-1)
        similarity = unit @ torch.nn.functional.normalize(slot_keys, dim=-1).transpose(-1, -2)  # [B, H_kv, L, K]
        nearest = similarity.masked_fill(~valid[:, :, None, :], float("-inf")).argmax(-1)
        slot = torch.where(own >= 0, own, nearest)  # [B, H_kv, L]
        token_weight = (inputs.key_valid[:, None, :] & valid.any(-1, keepdim=True)).to(torch.float32)
        weights = torch.zeros(b, h_kv, k, dtype=torch.float32, device=keys.device)
        weights.scatter_add_(-1, slot, token_weight.expand(b, h_kv, length))
        return MergedSlots(self._mean(keys, slot, token_weight, weights),
                           self._mean(values, slot, token_weight, weights), weights)

    @staticmethod
    def _mean(x: Tensor, slot: Tensor, token_weight: Tensor, weights: Tensor) -> Tensor:
        """Per slot, the mean of ``x`` ``[B, H_kv, L, D]`` over the tokens assigned to it."""
        b, h_kv, _, d = x.shape
        total = torch.zeros(b, h_kv, weights.shape[-1], d, dtype=torch.float32, device=x.device)
        contribution = torch.where(token_weight[..., None] > 0, x.float(), 0.0)  # padding may hold inf/nan
        total.scatter_add_(2, slot[..., None].expand(b, h_kv, slot.shape[-1], d), contribution)
        return (total / weights.clamp(min=1.0)[..., None]).to(x.dtype)
