"""Key-norm scorer: a key with a lower L2 norm is more important (no attention computed at all).

Devoto et al., "A Simple and Effective L2 Norm-Based Strategy for KV Cache Compression", arXiv
2406.11430 (Sec. 3): keys with a low norm attract high attention, so keeping the lowest-norm keys
approximates attention-based eviction without computing any attention. kvpress's ``KnormPress``.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers.base import Scorer


class KeyNormScorer(Scorer):
    """Scores each review token by minus the L2 norm of its cached key, per KV head.

    Shapes: keys ``[B, H_kv, L, D]`` (after RoPE and key norms, as cached) -> scores
    ``[B, H_kv, L - s]`` = ``-||k||_2``, accumulated in float32 so that bf16/fp16 caches do not tie
    distinct positions. Cost: one pass over the keys, no queries.
    """

    name: ClassVar[str] = "key_norm"

    def score(self, inputs: LayerInputs) -> Tensor:
        keys = inputs.keys[:, :, : inputs.review_length]
        return -torch.linalg.vector_norm(keys, dim=-1, dtype=torch.float32)
