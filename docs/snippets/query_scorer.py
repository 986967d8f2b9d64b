"""A scorer that needs queries: attention of the prompt's last query (docs/tutorials/write-a-scorer.md)."""

# --8<-- [start:last_query]
from typing import ClassVar

from torch import Tensor

from windowkv.run import LayerInputs
from windowkv.scorers import Scorer


class LastQueryScorer(Scorer):
    """Scores each review token by the attention the prompt's last query gives it (TOVA-style).

    Shapes: keys ``[B, H_kv, L, D]``, last query ``[B, H_q, 1, D]`` -> scores ``[B, H_kv, L - s]``;
    the ``H_q / H_kv`` query heads of each KV head are averaged.
    """

    name: ClassVar[str] = "last_query"

    def score(self, inputs: LayerInputs) -> Tensor:
        length = inputs.length
        queries = inputs.project_queries(length - 1, length).float()  # [B, H_q, 1, D], RoPE applied
        keys = inputs.keys.float()  # [B, H_kv, L, D]
        b, h_kv, _, d = keys.shape
        queries = queries.view(b, h_kv, inputs.num_key_value_groups, 1, d)  # query heads by KV head
        logits = (queries @ keys[:, :, None].transpose(-1, -2)).squeeze(-2) * inputs.scaling  # [B, H_kv, G, L]
        logits = logits.masked_fill(~inputs.key_valid[:, None, None, :], float("-inf"))  # hide left padding
        weights = logits.softmax(dim=-1).nan_to_num(0.0).mean(dim=2)  # [B, H_kv, L]
        return weights[..., : inputs.review_length]  # [B, H_kv, L - s]
# --8<-- [end:last_query]

# --8<-- [start:check]
from windowkv.testing import check_scorer_contract

check_scorer_contract(LastQueryScorer())  # shape, float32, determinism, padding never leaks
# --8<-- [end:check]
