"""Budget allocators: per-layer review budgets from an average budget."""

from windowkv.allocators.arithmetic_groups import ArithmeticGroupBudget
from windowkv.allocators.base import BudgetAllocator
from windowkv.allocators.pyramid import PyramidBudget
from windowkv.allocators.uniform import UniformBudget

__all__ = ["BudgetAllocator", "UniformBudget", "ArithmeticGroupBudget", "PyramidBudget"]
