"""KeepKV: merging with electoral votes and zero inference-perturbation (Tian et al., arXiv 2504.09936).

KeepKV (Sec. 3) gives every cache entry a vote count ``p`` (1 for a fresh token) and attends with
``p_i exp(q . k_i)`` instead of ``exp(q . k_i)``; windowkv's attention function does exactly that by adding
``log p`` of each slot to its logits. An evicted entry merges into its most similar retained entry
(cosine of the keys); the merged entry is chosen so that, for the reference query, the attention output
does not change at all ("zero inference-perturbation merging", Sec. 3.3): with ``s_i`` the attention
probability of token ``i`` and ``S`` the tokens a slot stands for,

- ``w_i = p_i s_i / sum_S p_j s_j`` (attention-weighted shares),
- ``k_r = sum_S w_i k_i`` and ``v_r = sum_S w_i v_i``,
- ``p_r = sum_S p_j s_j / s_r``, ``s_r`` the probability the same query gives ``k_r``,

so ``p_r exp(q . k_r) v_r = sum_S p_i exp(q . k_i) v_i`` and the softmax normaliser is unchanged.
The reference "query" is the prompt's suffix (the observation window): ``s`` is averaged over its queries
and over the query heads of each KV head (GQA), so the output is exactly preserved for a single query per
KV head and closely for more.
"""

from __future__ import annotations

import math
from typing import ClassVar

import torch

from windowkv.mergers.base import (
    MergedSlots,
    Merger,
    MergeInputs,
    gather_slots,
    scatter_weighted_mean,
    slot_of_tokens,
)


def nearest_slot(keys: torch.Tensor, slot_keys: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``[B, H_kv, L]`` long: for each token, the valid slot whose key has the highest cosine similarity.

    ``keys`` ``[B, H_kv, L, D]``, ``slot_keys`` ``[B, H_kv, K, D]``, ``valid`` ``[B, H_kv, K]``. A token's own norm
    does not change which slot it is closest to, so only the slot keys are normalised. Invalid slots are ruled
    out inside the one ``[L, K]`` product: keys get an extra channel of 1 and slot keys one of 0 (valid) or
    ``-1e30`` (invalid), so no pass over the ``[L, K]`` similarities is spent on masking.
    """
    b, h_kv, length, d = keys.shape
    k = slot_keys.shape[-2]
    unit_slots = torch.nn.functional.normalize(slot_keys.float(), dim=-1)
    veto = torch.zeros(b, h_kv, k, 1, device=keys.device).masked_fill(~valid[..., None], -1e30)
    slots = torch.cat([unit_slots, veto], dim=-1).reshape(b * h_kv, k, d + 1)
    tokens = torch.cat([keys.float(), keys.new_ones(b, h_kv, length, 1, dtype=torch.float32)], dim=-1)
    similarity = torch.bmm(tokens.reshape(b * h_kv, length, d + 1), slots.transpose(-1, -2))
    return similarity.argmax(-1).view(b, h_kv, length)


class KeepKVMerger(Merger):
    """Every evicted valid token merges into the most similar valid kept slot of its KV head (cosine of
    keys); merged slots are attention-weighted means with a vote ``p_r`` that preserves their attention.

    Shapes: keys/values ``[B, H_kv, L, D]``, positions ``[B, 1|H_kv, K]``, queries ``[B, H_q, s, D]`` ->
    keys/values ``[B, H_kv, K, D]`` and votes ``[B, H_kv, K]`` (1 for a slot nothing merged into, whose key
    and value are its token's; 0 on invalid slots). Cost: one ``[L, K]`` similarity and the ``[s, L]``
    suffix attention per KV head; no loop over tokens, no device sync.
    """

    name: ClassVar[str] = "keepkv"
    weights_are_counts: ClassVar[bool] = False
    needs_queries: ClassVar[bool] = True

    def merge(self, inputs: MergeInputs) -> MergedSlots:
        keys, values = inputs.keys, inputs.values
        b, h_kv, length, d = keys.shape
        k = inputs.positions.shape[-1]
        positions = inputs.positions.expand(b, h_kv, k)
        valid = inputs.valid.expand(b, h_kv, k)
        slot_keys, slot_values = gather_slots(keys, positions), gather_slots(values, positions)
        if k == 0:
            return MergedSlots(slot_keys, slot_values, torch.zeros(b, h_kv, 0, device=keys.device))
        own = slot_of_tokens(positions, valid, length)
        nearest = nearest_slot(keys, slot_keys, valid)  # [B, H_kv, L]
        usable = inputs.key_valid[:, None, :] & valid.any(-1, keepdim=True)  # [B, H_kv, L]
        slot = torch.where(own >= 0, own, nearest).masked_fill(~usable, k)  # k: no slot

        log_probs, lse = inputs.suffix_log_attention()  # [B, H_kv, G, s, L]
        n_queries = log_probs.shape[2] * log_probs.shape[3]
        log_s = torch.logsumexp(log_probs.flatten(2, 3), dim=2) - math.log(n_queries)  # [B, H_kv, L]
        log_s = log_s.masked_fill(~usable, float("-inf"))
        # shares inside each slot's group, in log space (attention probabilities underflow)
        peak = torch.full((b, h_kv, k + 1), float("-inf"), device=keys.device)
        peak = peak.scatter_reduce(-1, slot, log_s, "amax")
        share = torch.where(usable, torch.exp(log_s - peak.gather(-1, slot)), 0.0)  # [B, H_kv, L], 1 at the peak
        merged_keys, mass = scatter_weighted_mean(keys, slot, share, k)
        merged_values, _ = scatter_weighted_mean(values, slot, share, k)
        count = torch.zeros(b, h_kv, k + 1, device=keys.device).scatter_add_(-1, slot, usable.float())[..., :k]

        # s_r: what the same queries give the merged key, at the slot's position (causality)
        q = inputs.queries.float()
        groups, s = q.shape[1] // h_kv, q.shape[2]
        scaling = inputs.scaling if inputs.scaling is not None else d ** -0.5
        logits = torch.matmul(q.reshape(b, h_kv, groups * s, d) * scaling, merged_keys.transpose(-1, -2))
        log_r = logits.view(b, h_kv, groups, s, k) - lse
        log_r = log_r.masked_fill(~inputs.query_visibility(positions), float("-inf")).nan_to_num(nan=float("-inf"))
        log_s_r = torch.logsumexp(log_r.flatten(2, 3), dim=2) - math.log(n_queries)  # [B, H_kv, K]
        log_vote = peak[..., :k] + torch.log(mass.clamp(min=torch.finfo(torch.float32).tiny)) - log_s_r
        merged = valid & (count > 1)
        votes = torch.where(merged, torch.exp(log_vote), valid.float())
        return MergedSlots(torch.where(merged[..., None], merged_keys.to(keys.dtype), slot_keys),
                           torch.where(merged[..., None], merged_values.to(values.dtype), slot_values),
                           votes.float())
