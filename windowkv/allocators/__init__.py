"""Budget allocators: per-layer review budgets from an average budget."""

from windowkv.budgets.arithmetic_groups import ArithmeticGroupBudget
from windowkv.budgets.base import BudgetAllocator
from windowkv.budgets.pyramid import PyramidBudget
from windowkv.budgets.uniform import UniformBudget

__all__ = ["BudgetAllocator", "UniformBudget", "ArithmeticGroupBudget", "PyramidBudget"]
