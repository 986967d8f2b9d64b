"""Meta-test: in the ``ci`` profile every invariant's tests draw at least 1,000 examples in total (summed
over their parametrisations), whatever components are registered."""

from __future__ import annotations

import importlib
import math
import pkgutil
from pathlib import Path

import pytest
from hypothesis import settings

HERE = Path(__file__).parent
MODULES = sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name.startswith("test_invariant_"))


def planned_examples(module) -> int:
    """Examples the module's hypothesis tests draw in this profile: max_examples x parametrisations."""
    total = 0
    for name in dir(module):
        fn = getattr(module, name)
        used = getattr(fn, "_hypothesis_internal_use_settings", None)
        if not name.startswith("test_") or used is None:
            continue
        runs = math.prod(len(mark.args[1]) for mark in getattr(fn, "pytestmark", []) if mark.name == "parametrize")
        total += used.max_examples * runs
    return total


@pytest.mark.parametrize("module_name", MODULES)
def test_every_invariant_draws_a_thousand_examples_in_ci(module_name):
    module = importlib.import_module(module_name)
    at_ci_scale = planned_examples(module) * 100 / settings.default.max_examples
    assert at_ci_scale >= 1000, f"{module_name} draws {at_ci_scale:.0f} examples at the ci profile's scale"


def test_there_are_eleven_invariants():
    assert len({m.split("_")[2] for m in MODULES}) == 11
