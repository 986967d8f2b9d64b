"""Pyramid budgets: layer budgets decreasing linearly from the first layer to the last (PyramidKV).

PyramidKV (Cai et al., arXiv 2406.02069, Sec. 3.3, and KVCache-Factory's ``PyramidKVCluster``): lower
layers attend broadly and get more cache, higher layers concentrate and get less. With an average
review budget ``B``: the last layer gets ``B / beta``, the first ``2B - B / beta``, equal steps in
between (mean ``B``). When the first layer's budget exceeds the prompt's review tokens ``R``, it is
capped at ``R`` and the last layer gets ``2B - R`` (PyramidKV's rule; kvpress's ``PyramidKVPress``).
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import ClassVar

from pydantic import Field

from windowkv.allocators.base import BudgetAllocator


def round_total(values: list[float], total: int) -> list[int]:
    """Integers close to ``values`` (each the floor or the ceiling) summing to at most ``total``.

    Floors first; the tokens left up to ``total`` go to the largest fractional parts (ties to earlier
    layers), one each; a float error that lets the floors overshoot is taken back from the largest.
    """
    out = [max(math.floor(v), 0) for v in values]
    order = sorted(range(len(values)), key=lambda i: (-(values[i] - math.floor(values[i])), i))
    for i in order[: max(total - sum(out), 0)]:
        out[i] += 1
    while sum(out) > total:
        out[max(range(len(out)), key=lambda i: out[i])] -= 1
    return out


class PyramidBudget(BudgetAllocator):
    """Layer ``l`` of ``N`` gets ``max - l x (max - min) / (N - 1)`` with ``min = B / beta``, ``max = 2B - min``.

    Rounding keeps every layer within one token of its real value and the total at most ``N x B``
    (exactly ``floor(N x B)`` unless capped). One layer gets ``B``.
    """

    name: ClassVar[str] = "pyramid"

    beta: float = Field(20.0, ge=1.0, description="Steepness: the last layer gets B / beta (PyramidKV: 20).")

    def values(self, average: float, num_layers: int, review_length: int | None = None) -> list[float]:
        """Un-rounded budget of each layer (tokens)."""
        if num_layers == 1:
            return [average]
        low = average / self.beta
        high = 2 * average - low
        if review_length is not None and high >= review_length:
            high, low = float(review_length), 2 * average - review_length
        step = (high - low) / (num_layers - 1)
        return [high - layer * step for layer in range(num_layers)]

    def allocate(self, average: float, num_layers: int) -> list[int]:
        return round_total(self.values(average, num_layers), math.floor(Fraction(average) * num_layers))

    def allocate_for_prompt(self, average: float, num_layers: int, review_length: int) -> list[int]:
        return round_total(self.values(average, num_layers, review_length),
                           math.floor(Fraction(average) * num_layers))
