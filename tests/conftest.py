"""Test-suite configuration shared by every test directory.

Hypothesis profiles (pick one with ``HYPOTHESIS_PROFILE``, default ``dev``). ``max_examples`` is a
*scale*: a property test asks for a total number of examples at scale 100 (``tests/properties/_scenarios.py``:
``examples(total)`` spreads it over the test's parametrisations), so each invariant draws its total:

- ``ci`` (scale 100): every invariant draws at least 1,000 fresh examples per run, randomised: the run's
  seed is printed in the report header (``WINDOWKV_HYPOTHESIS_SEED=N`` replays a run); a failing
  example is saved in the example database (``.hypothesis/``, git-ignored; keep it between CI runs) and
  replayed first;
- ``dev`` (scale 10): the same, a tenth of the examples, for a quick local run;
- ``thorough`` (scale 500): a hunt before a release (minutes, not seconds).

Every profile disables the per-example deadline: the machine is shared, timings are noisy, and the
property tests bound their own sizes instead.
"""

from __future__ import annotations

import os
import random

import pytest
import torch
from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, print_blob=True,
               suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("dev", max_examples=10, **_COMMON)
settings.register_profile("ci", max_examples=100, **_COMMON)
settings.register_profile("thorough", max_examples=500, **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


#: the run's seed: every hypothesis test draws its own seed from it, in collection order
SEED_ENV = "WINDOWKV_HYPOTHESIS_SEED"


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", BROKEN_PLUGIN_WARNING)
    seed = os.environ.get(SEED_ENV) or str(random.SystemRandom().randrange(2**32))
    config.stash[_SEED] = seed
    # hypothesis draws each test's seed from this generator when no seed is forced; seeding it makes a
    # run reproducible while the example database stays on (``--hypothesis-seed`` turns the database off)
    from hypothesis import core

    if hasattr(getattr(core, "threadlocal", None), "_hypothesis_global_random"):
        core.threadlocal._hypothesis_global_random = random.Random(int(seed))


def _seed_line(config) -> str:
    seed = config.stash.get(_SEED, "?")
    return (f"hypothesis profile {settings.get_current_profile_name()!r}, run seed {seed}: replay the same "
            f"tests with {SEED_ENV}={seed}; failing examples are kept in .hypothesis/ and replayed first")


def pytest_report_header(config):
    return _seed_line(config)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The seed again at the end, where ``-q`` runs (CI) show it too."""
    terminalreporter.write_line(_seed_line(config))


_SEED = pytest.StashKey[str]()


#: the deliberately broken test plugin (plugins/windowkv-broken-plugin) warns in every registry build;
#: tests/test_plugins.py checks that warning with pytest.warns, which records it despite this filter.
BROKEN_PLUGIN_WARNING = (
    "ignore:windowkv plugin 'broken' from distribution 'windowkv-broken-plugin' failed to load"
    ":windowkv.errors.PluginLoadWarning"
)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: tiny models and many small tensor ops run faster
    without the thread hand-off, and the other core stays free on a 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
