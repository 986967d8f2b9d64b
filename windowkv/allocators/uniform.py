"""Uniform budgets: every layer keeps the average."""

from __future__ import annotations

import math
from typing import ClassVar

from windowkv.allocators.base import BudgetAllocator


class UniformBudget(BudgetAllocator):
    """Every layer gets ``floor(B)`` review tokens (SnapKV, StreamingLLM)."""

    name: ClassVar[str] = "uniform"

    def allocate(self, average: float, num_layers: int) -> list[int]:
        return [math.floor(average)] * num_layers
