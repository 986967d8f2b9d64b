"""Value-norm scorer: a review token matters as much as its value vector is large.

Attention mixes value vectors; a token whose value has a small norm contributes little to any output,
whatever its attention weight. Guo et al., "Attention Score is not All You Need for Token Importance
Indicator in KV Cache Reduction: Value Also Matters" (arXiv 2406.12335, Sec. 3) show that value norms
are uneven and informative. This scorer uses the value norm alone: it needs no queries, so it costs
``O(L * D)`` per layer and no attention at all.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from pydantic import Field
from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers import Scorer


class ValueNormScorer(Scorer):
    """Scores each review token by the ``L_p`` norm of its value vector, per KV head.

    Shapes: values ``[B, H_kv, L, D]`` -> scores ``[B, H_kv, L - s]`` (float32). Padding positions get
    a score too; windowkv ignores them (``inputs.key_valid``).
    """

    name: ClassVar[str] = "value_norm"

    norm_ord: float = Field(2.0, gt=0, description="Order p of the norm of each value vector (2: Euclidean).")

    def score(self, inputs: LayerInputs) -> Tensor:
        review = inputs.values[:, :, : inputs.review_length].float()  # [B, H_kv, R, D]
        return torch.linalg.vector_norm(review, ord=self.norm_ord, dim=-1)  # [B, H_kv, R]
