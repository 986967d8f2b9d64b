"""Test-suite configuration shared by every test directory.

Hypothesis profiles (pick one with ``HYPOTHESIS_PROFILE``, default ``dev``):

- ``dev``: random exploration, a few more examples, the example database on (failures replay first);
- ``ci``: fewer examples, ``derandomize=True`` (the same examples on every run), no database;
- ``thorough``: ``dev`` with 100 examples per test, for a hunt before a release (minutes, not seconds).

Both disable the per-example deadline: the machine is shared, timings are noisy, and the property tests
bound their own sizes instead.
"""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile(
    "dev",
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "ci",
    max_examples=4,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("thorough", parent=settings.get_profile("dev"), max_examples=100)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

#: the deliberately broken test plugin (plugins/windowkv-broken-plugin) warns in every registry build;
#: tests/test_plugins.py checks that warning with pytest.warns, which records it despite this filter.
BROKEN_PLUGIN_WARNING = (
    "ignore:windowkv plugin 'broken' from distribution 'windowkv-broken-plugin' failed to load"
    ":windowkv.errors.PluginLoadWarning"
)


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", BROKEN_PLUGIN_WARNING)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: tiny models and many small tensor ops run faster
    without the thread hand-off, and the other core stays free on a 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
