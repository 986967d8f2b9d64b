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

    kind: ClassVar[str] = "allocator"

    def __call__(self, average: float, num_layers: int, review_length: int | None = None) -> list[int]:
        """Per-layer budgets; ``review_length`` (the prompt row's review tokens, when known) lets an
        allocator move budget that a layer cannot use (``b_l > L - s``) to other layers."""
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1 (got {num_layers})")
        if not (average >= 0 and math.isfinite(average)):
            raise ValueError(f"the average budget must be a finite number >= 0 (got {average})")
        if review_length is None:
            budgets = [int(b) for b in self.allocate(average, num_layers)]
        else:
            budgets = [int(b) for b in self.allocate_for_prompt(average, num_layers, review_length)]
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

    def allocate_for_prompt(self, average: float, num_layers: int, review_length: int) -> list[int]:
        """Budgets for a prompt row with ``review_length`` review tokens; default: :meth:`allocate`.

        Override to cap layers at ``review_length`` and give the excess to the others (PyramidKV).
        The same guarantee holds: the sum is at most ``num_layers * average``.
        """
        return self.allocate(average, num_layers)
