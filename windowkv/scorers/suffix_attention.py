"""Suffix-attention scorer: how much the prompt's last ``s`` queries attend to each review token.

WindowKV (arXiv 2503.17922, Sec. 3.2) and SnapKV (arXiv 2404.14469) score a token by the attention it
receives from the observation window. Only ``s x L`` weights are computed, never ``L x L``.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers.base import Scorer


def suffix_attention(inputs: LayerInputs) -> Tensor:
    """Softmax attention of the suffix queries over all keys, per query head.

    Returns:
        ``[B, H_kv, G, s, L]`` float32 weights (``G`` query heads per KV head); padding keys and keys
        after a query (causality inside the suffix) get weight 0. Extra memory: ``O(s * L)`` per head.
    """
    queries = inputs.suffix_queries().float() * inputs.scaling  # [B, H_q, s, D], scaled before the matmul
    keys = inputs.keys.float()  # [B, H_kv, L, D]
    b, h_kv, length, d = keys.shape
    s, groups = queries.shape[2], inputs.num_key_value_groups
    # one matmul per KV head for all its query heads: no copy of the keys per query head
    logits = torch.matmul(queries.reshape(b, h_kv, groups * s, d), keys.transpose(-1, -2))
    logits = logits.view(b, h_kv, groups, s, length)
    after = torch.ones(s, s, dtype=torch.bool, device=keys.device).triu(1)  # key after the query
    logits[..., length - s :].masked_fill_(after, float("-inf"))
    if not inputs.padded:
        return torch.softmax(logits, dim=-1)
    logits.masked_fill_(~inputs.key_valid[:, None, None, None, :], float("-inf"))
    return torch.softmax(logits, dim=-1).nan_to_num_(0.0)  # queries on padding see no key at all


class SuffixAttentionScorer(Scorer):
    """Sum over the suffix queries of each review token's attention weight.

    Shapes: queries ``[B, H_q, s, D]``, keys ``[B, H_kv, L, D]`` -> scores ``[B, H_kv, L - s]``.
    With grouped-query attention the query heads of a KV head are aggregated by ``head_reduction``.
    """

    name: ClassVar[str] = "suffix_attention"

    head_reduction: Literal["mean", "sum", "max"] = Field(
        "mean", description="How the query heads sharing one KV head are combined (GQA)."
    )

    def score(self, inputs: LayerInputs) -> Tensor:
        weights = suffix_attention(inputs)[..., : inputs.review_length]  # [B, H_kv, G, s, R]
        per_query_head = weights.sum(dim=3)  # [B, H_kv, G, R]
        if self.head_reduction == "mean":
            return per_query_head.mean(dim=2)
        if self.head_reduction == "sum":
            return per_query_head.sum(dim=2)
        return per_query_head.amax(dim=2)
