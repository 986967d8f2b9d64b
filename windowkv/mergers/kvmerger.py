"""KVMerger: adaptive merging of similar adjacent keys with Gaussian-kernel weights (Wang et al., arXiv 2407.08454).

KVMerger observes that adjacent tokens' keys are highly similar (Sec. 3) and merges them:

1. **Merging sets** (Sec. 4.1): consecutive tokens form one set while the cosine similarity of each key
   with the previous token's key stays at least ``similarity_threshold``; a set never crosses a drop
   below the threshold (the paper's constrained clustering of adjacent states).
2. **Pivotal state**: in each set, the token with the highest attention score from the observation window
   (the prompt's suffix queries) among the tokens the selector keeps.
3. **Gaussian-kernel weighted merging** (Sec. 4.2): the evicted tokens of a set merge into its pivot with
   weights ``g_i = exp(-||k_i - k_p||^2 / (2 sigma^2))`` (``g_p = 1``), normalised over the set; keys and
   values are merged with the same weights.

Evicted tokens of a set without a kept token are dropped (KVMerger keeps a merged set as one state; in
windowkv the selector decides which states are kept, so the budget holds). Merged slots get no attention
bias: KVMerger has no per-state count (that is KeepKV's addition); the returned weights count the tokens.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field

from windowkv.mergers.base import (
    MergedSlots,
    Merger,
    MergeInputs,
    gather_slots,
    scatter_weighted_mean,
    slot_of_tokens,
)


class KVMergerMerger(Merger):
    """Merges each evicted token into the pivotal kept token of its merging set (adjacent keys with cosine
    similarity ``>= similarity_threshold``), with Gaussian-kernel weights around the pivot's key.

    Shapes: keys/values ``[B, H_kv, L, D]``, positions ``[B, 1|H_kv, K]``, queries ``[B, H_q, s, D]`` ->
    keys/values ``[B, H_kv, K, D]`` and counts ``[B, H_kv, K]`` (tokens each slot stands for; not used as an
    attention bias). Cost: ``O(L D)`` for the sets and the ``[s, L]`` suffix attention per KV head.
    """

    name: ClassVar[str] = "kvmerger"
    merges_all: ClassVar[bool] = False
    weights_bias_attention: ClassVar[bool] = False
    needs_queries: ClassVar[bool] = True

    similarity_threshold: float = Field(
        0.75, ge=-1.0, le=1.0, description="Adjacent keys with at least this cosine similarity share a merging set.")
    sigma: float | None = Field(
        None, gt=0.0, description="Gaussian kernel width (key distance); None: per set, the root mean square "
                                  "distance of its merged keys to the pivot (scale-free).")

    def merge(self, inputs: MergeInputs) -> MergedSlots:
        keys, values = inputs.keys, inputs.values
        b, h_kv, length, d = keys.shape
        k = inputs.positions.shape[-1]
        positions = inputs.positions.expand(b, h_kv, k)
        valid = inputs.valid.expand(b, h_kv, k)
        slot_keys, slot_values = gather_slots(keys, positions), gather_slots(values, positions)
        counts = valid.float()
        if k == 0 or length < 2:
            return MergedSlots(slot_keys, slot_values, counts)
        device = keys.device
        token_ok = inputs.key_valid[:, None, :].expand(b, h_kv, length)
        # 1. merging sets: a new set starts where the key turns away from its predecessor (or at padding edges)
        unit = torch.nn.functional.normalize(keys.float(), dim=-1)
        adjacent = (unit[..., 1:, :] * unit[..., :-1, :]).sum(-1)  # [B, H_kv, L-1]
        starts = torch.cat([torch.ones_like(adjacent[..., :1], dtype=torch.bool),
                            (adjacent < self.similarity_threshold) | (token_ok[..., 1:] != token_ok[..., :-1])], -1)
        set_id = starts.long().cumsum(-1) - 1  # [B, H_kv, L] in [0, L)
        # 2. pivot of each set: its best-scored kept token (ties: the earliest)
        own = slot_of_tokens(positions, valid, length)
        kept = own >= 0
        log_probs, _ = inputs.suffix_log_attention()
        score = torch.logsumexp(log_probs.flatten(2, 3), dim=2)  # [B, H_kv, L], log of summed attention
        candidate = torch.where(kept, score, float("-inf"))
        best = torch.full((b, h_kv, length), float("-inf"), device=device).scatter_reduce(-1, set_id, candidate, "amax")
        arange = torch.arange(length, device=device).expand(b, h_kv, length)
        is_best = kept & (candidate == best.gather(-1, set_id))
        pivot_pos = torch.full((b, h_kv, length), length, device=device).scatter_reduce(
            -1, set_id, torch.where(is_best, arange, length), "amin")
        pivot_of_token = pivot_pos.gather(-1, set_id)  # [B, H_kv, L], L when the set keeps nothing
        has_pivot = pivot_of_token < length
        pivot_slot = own.gather(-1, pivot_of_token.clamp(max=length - 1))
        merges = ~kept & token_ok & has_pivot  # evicted tokens that join a pivot
        slot = torch.where(kept, own, torch.where(merges, pivot_slot, k))
        member = kept | merges
        # 3. Gaussian-kernel weights around the pivot's key
        pivot_key = keys.float().gather(2, pivot_of_token.clamp(max=length - 1)[..., None].expand(b, h_kv, length, d))
        distance2 = ((keys.float() - pivot_key) ** 2).sum(-1).masked_fill(~merges, 0.0)  # [B, H_kv, L]
        if self.sigma is not None:
            two_sigma2 = torch.full((b, h_kv, k + 1), 2 * self.sigma**2, device=device)
        else:
            n = torch.zeros(b, h_kv, k + 1, device=device).scatter_add_(-1, slot, merges.float())
            total = torch.zeros(b, h_kv, k + 1, device=device).scatter_add_(-1, slot, distance2)
            two_sigma2 = 2 * total / n.clamp(min=1)
        gauss = torch.exp(-distance2 / two_sigma2.gather(-1, slot).clamp(min=torch.finfo(torch.float32).tiny))
        weight = torch.where(member, torch.where(merges, gauss, 1.0), 0.0)
        merged_keys, _ = scatter_weighted_mean(keys, slot, weight, k)
        merged_values, _ = scatter_weighted_mean(values, slot, weight, k)
        counts = torch.zeros(b, h_kv, k + 1, device=device).scatter_add_(-1, slot, member.float())[..., :k]
        counts = torch.where(valid, counts, 0.0)
        merged = valid & (counts > 1)
        return MergedSlots(torch.where(merged[..., None], merged_keys.to(keys.dtype), slot_keys),
                           torch.where(merged[..., None], merged_values.to(values.dtype), slot_values), counts)
