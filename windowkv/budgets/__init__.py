"""Deprecated alias of :mod:`windowkv.allocators` (the component kind is called ``allocator``)."""

import warnings

from windowkv.allocators import *  # noqa: F401,F403
from windowkv.allocators import __all__  # noqa: F401

warnings.warn("windowkv.budgets is deprecated; import from windowkv.allocators", DeprecationWarning, stacklevel=2)
