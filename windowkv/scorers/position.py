"""Position scorer: a token's score is its position in the prompt (recency), no attention computed.

StreamingLLM (Xiao et al., arXiv 2309.17453, Sec. 3.2) keeps the attention sinks and a window of the
most recent tokens: a rule on positions, not on attention. This scorer gives each review token its
position within its row (padding removed), so a token top-k keeps the most recent tokens, and costs
nothing; the ``sinks_recent`` selector, which ignores scores, pairs with it for StreamingLLM.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers.base import Scorer


class PositionScorer(Scorer):
    """Scores review token ``j`` of a row by its position counted from the row's first real token.

    Shapes: ``key_valid`` ``[B, L]`` -> scores ``[B, H_kv, L - s]`` float32, equal across heads
    (``0, 1, 2, ...`` along each row's real tokens; padding scores ``-1``). Later = higher.
    """

    name: ClassVar[str] = "position"

    def score(self, inputs: LayerInputs) -> Tensor:
        valid = inputs.key_valid[:, : inputs.review_length]  # [B, R]
        position = valid.to(torch.float32).cumsum(-1) - 1.0
        position = position.masked_fill(~valid, -1.0)
        return position[:, None, :].expand(-1, inputs.keys.shape[1], -1)
