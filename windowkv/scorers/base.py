"""The scorer contract: per-token importance of the review tokens of one layer."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

from torch import Tensor

from windowkv.component import Component
from windowkv.run import LayerInputs


class Scorer(Component):
    """Scores the review tokens of one layer from its cached keys and the prompt's queries.

    Subclasses implement :meth:`score`; calling the scorer checks the result's shape and returns it
    in float32. Scores are only compared within one row and head: their scale is free.
    """

    kind: ClassVar[str] = "scorer"
    #: whether the scores can be computed from the last queries of a chunk over the slots kept so far
    #: (chunked prefill, :mod:`windowkv.hf.chunked`); False for scorers that need every prompt query
    chunkable: ClassVar[bool] = True

    def __call__(self, inputs: LayerInputs) -> Tensor:
        scores = self.score(inputs)
        b, h_kv = inputs.keys.shape[:2]
        expected = (b, h_kv, inputs.review_length)
        if tuple(scores.shape) != expected:
            raise ValueError(
                f"scorer {self.name!r} returned shape {tuple(scores.shape)}; expected "
                f"[batch, kv_heads, L_review] = {list(expected)}"
            )
        return scores.float()

    @abstractmethod
    def score(self, inputs: LayerInputs) -> Tensor:
        """Return ``[B, H_kv, L - s]`` scores of the review positions (higher = more important).

        Scores of padding positions (``inputs.key_valid`` False) are ignored.
        """
