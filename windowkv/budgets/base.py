"""The budget-allocator contract: per-layer review budgets from an average budget."""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import ClassVar

from windowkv.component import Component


class BudgetAllocator(Component):
    """Splits an average per-layer review budget ``B`` over ``N`` layers.

    Guarantees checked on every call: each budget is a non-negative int and
    ``sum(budgets) <= N * B`` (rounding never overshoots).
    """

    kind: ClassVar[str] = "budget"

    def __call__(self, average: float, num_layers: int) -> list[int]:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        if not (average >= 0 and math.isfinite(average)):
            raise ValueError(f"the average budget must be a finite number >= 0 (got {average})")
        budgets = [int(b) for b in self.allocate(average, num_layers)]
        if len(budgets) != num_layers or min(budgets) < 0:
            raise ValueError(f"budget allocator {self.name!r} returned {budgets} for {num_layers} layers")
        if sum(budgets) > num_layers * average + 1e-6:
            raise ValueError(
                f"budget allocator {self.name!r} overshoots: {sum(budgets)} > {num_layers} x {average}"
            )
        return budgets

    @abstractmethod
    def allocate(self, average: float, num_layers: int) -> list[int]:
        """Return ``num_layers`` budgets (tokens) whose sum is at most ``num_layers * average``."""
