"""Cumulative-attention scorer: H2O's "heavy hitters" at prefill, computed in query chunks.

H2O (Zhang et al., arXiv 2306.14048, Sec. 3-4) keeps the tokens with the largest accumulated attention:
the sum, over every query that sees it, of the attention weight a key receives. At prefill that is
every prompt query, so the exact scores need all ``L x L`` weights; this scorer computes them in query
chunks of ``C`` tokens, holding ``C x L`` weights at a time, never ``L x L``. kvpress's
``ObservedAttentionPress`` divides the sum by the number of queries that see the key
(``normalize=True``), so early keys are not favoured for being seen more often.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers.base import Scorer

#: automatic chunks hold about this many float32 attention weights (``B * H_q * C * L``): 64 MB
AUTO_CHUNK_ELEMENTS = 1 << 24


class CumulativeAttentionScorer(Scorer):
    """Attention each review token receives, summed over all later prompt queries (causal), per KV head.

    Shapes: queries ``[B, H_q, C, D]`` per chunk, keys ``[B, H_kv, L, D]`` -> weights
    ``[B, H_kv, G, C, e]`` (keys up to the chunk's end ``e``) -> summed over the chunk's queries and
    accumulated into ``[B, H_kv, G, R]`` -> optionally divided by the number of queries seeing each
    key (``L - j``) -> ``head_reduction`` over the ``G`` query heads -> ``[B, H_kv, R]``. Cost:
    ``O(L^2)`` like the layer's own attention; queries of left padding attend to nothing.
    """

    name: ClassVar[str] = "cumulative_attention"
    #: the sum runs over every prompt query: chunks would see only their own
    chunkable: ClassVar[bool] = False

    normalize: bool = Field(
        False, description="Divide by the number of queries that see each key (kvpress ObservedAttentionPress); "
        "False: the plain sum (H2O)."
    )
    head_reduction: Literal["mean", "sum", "max"] = Field(
        "mean", description="How the query heads sharing one KV head are combined (GQA)."
    )
    chunk_size: int | None = Field(
        None, ge=1, description="Queries per chunk; None: as many as keep a chunk near 2^24 weights."
    )

    def score(self, inputs: LayerInputs) -> Tensor:
        b, h_kv, length, d = inputs.keys.shape
        groups, review = inputs.num_key_value_groups, inputs.review_length
        device = inputs.keys.device
        chunk = self.chunk_size or max(1, AUTO_CHUNK_ELEMENTS // max(b * h_kv * groups * length, 1))
        keys = inputs.keys.float()[:, :, None]  # [B, H_kv, 1, L, D]
        total = torch.zeros(b, h_kv, groups, 1, review, device=device)
        key_invalid = ~inputs.key_valid[:, None, None, None, :]  # [B, 1, 1, 1, L]
        for start in range(0, length if review else 0, chunk):  # C x L weights at a time, never L x L
            end = min(start + chunk, length)
            q = inputs.project_queries(start, end).float().view(b, h_kv, groups, end - start, d) * inputs.scaling
            logits = torch.matmul(q, keys[..., :end, :].transpose(-1, -2))  # [B, H_kv, G, C, e]
            future = torch.ones(end - start, end - start, dtype=torch.bool, device=device).triu(1)
            logits[..., start:end].masked_fill_(future, float("-inf"))  # causal: only the chunk's own block
            if inputs.padded:
                logits.masked_fill_(key_invalid[..., :end], float("-inf"))
            logits.sub_(logits.amax(dim=-1, keepdim=True).clamp(min=torch.finfo(torch.float32).min)).exp_()
            norm = logits.sum(dim=-1, keepdim=True)  # [B, H_kv, G, C, 1]; 0 for a padding query
            inverse = torch.where(norm > 0, norm.reciprocal(), 0.0).transpose(-1, -2)  # [B, H_kv, G, 1, C]
            seen = min(end, review)
            total[..., :seen] += torch.matmul(inverse, logits[..., :seen])  # sum of the chunk's softmax rows
        total = total.squeeze(3)
        if self.normalize:
            total = total / torch.arange(length, length - review, -1, device=device, dtype=torch.float32)
        if self.head_reduction == "mean":
            return total.mean(dim=2)
        if self.head_reduction == "sum":
            return total.sum(dim=2)
        return total.amax(dim=2)
