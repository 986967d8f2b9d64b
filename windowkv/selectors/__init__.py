"""Selectors: token scores + per-row budgets -> kept review tokens."""

from windowkv.selectors.base import Selector
from windowkv.selectors.dbudget import DBudgetSelector
from windowkv.selectors.headwise_topk import HeadwiseTopKSelector
from windowkv.selectors.sinks_recent import SinksRecentSelector
from windowkv.selectors.token_topk import TokenTopKSelector
from windowkv.selectors.window import WindowSelector
from windowkv.selectors.window_average import WindowAverageSelector
from windowkv.selectors.window_margin import WindowMarginSelector
from windowkv.selectors.window_max import WindowMaxSelector

__all__ = [
    "Selector",
    "WindowSelector",
    "WindowAverageSelector",
    "WindowMaxSelector",
    "WindowMarginSelector",
    "TokenTopKSelector",
    "SinksRecentSelector",
    "HeadwiseTopKSelector",
    "DBudgetSelector",
]
