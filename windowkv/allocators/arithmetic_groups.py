"""Arithmetically decreasing group budgets (WindowKV, arXiv 2503.17922, Sec. 3.4)."""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field, model_validator

from windowkv.allocators.base import BudgetAllocator


class ArithmeticGroupBudget(BudgetAllocator):
    """Groups of ``G`` consecutive layers get budgets decreasing in equal steps.

    The paper's rule: ``last = B * G / beta``, ``first = 2B - last``. With a partial last group the
    group values are rescaled so the layer-weighted mean is exactly ``B``; every layer then gets the
    floor of its group's value, so the total never exceeds ``N * B`` and all layers of a group get the
    same budget (which lets index sharing reuse one selection).
    """

    name: ClassVar[str] = "arithmetic_groups"

    group_size: int = Field(8, ge=1, description="Layers per group (G); the paper uses 8.")
    beta: float = Field(14.0, gt=0, description="Slope parameter; last group gets B*G/beta.")

    @model_validator(mode="after")
    def _first_group_positive(self) -> "ArithmeticGroupBudget":
        if self.beta <= self.group_size / 2:
            raise ValueError(
                f"beta ({self.beta}) must be > group_size / 2 ({self.group_size / 2}): otherwise the "
                "first group's budget 2B - B*G/beta is not positive"
            )
        return self

    def group_values(self, average: float, num_layers: int) -> list[float]:
        """Un-rounded budget of each group (tokens), with layer-weighted mean ``average``."""
        sizes = [min(self.group_size, num_layers - start) for start in range(0, num_layers, self.group_size)]
        n = len(sizes)
        last = average * self.group_size / self.beta
        first = 2 * average - last
        values = [first + (last - first) * i / (n - 1) for i in range(n)] if n > 1 else [average]
        weighted = sum(v * s for v, s in zip(values, sizes))
        scale = average * num_layers / weighted if weighted > 0 else 0.0
        return [v * scale for v in values]

    def allocate(self, average: float, num_layers: int) -> list[int]:
        values = self.group_values(average, num_layers)
        return [max(math.floor(values[layer // self.group_size]), 0) for layer in range(num_layers)]
