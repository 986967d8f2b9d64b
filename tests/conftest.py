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
import sys
import tomllib
from pathlib import Path

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


ROOT = Path(__file__).resolve().parents[1]
EXAMPLE_PLUGIN_SOURCE = ROOT / "plugins" / "windowkv-example-scorer"
EXAMPLE_TASK_PLUGIN_SOURCE = ROOT / "plugins" / "windowkv-example-task"
#: a plugin that raises on import: windowkv must report it and still load every other plugin. It exists
#: only inside the tests that ask for the ``broken_plugin`` fixture, never in an installed environment.
BROKEN_PLUGIN_CODE = 'raise RuntimeError("windowkv-broken-plugin fails to import on purpose")\n'


def make_distribution(site: Path, name: str, version: str, entry_points: dict[str, str],
                      modules: dict[str, str] | None = None) -> Path:
    """Write an installed-looking distribution into ``site`` (the way pytest's ``pytester`` does):
    ``NAME-VERSION.dist-info`` with ``METADATA`` and ``entry_points.txt`` in the ``windowkv`` group, and
    optional top-level modules (``{"module_name": "source"}``). ``importlib.metadata`` (so windowkv's
    plugin discovery) finds it once ``site`` is on ``sys.path``."""
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "[windowkv]\n" + "".join(f"{key} = {value}\n" for key, value in entry_points.items()))
    for module, source in (modules or {}).items():
        (site / f"{module}.py").write_text(source)
    return site


@pytest.fixture
def add_distribution(tmp_path, monkeypatch):
    """``add_distribution(name, version, entry_points, modules=None, source=None)``: a distribution
    visible to plugin discovery for this test only (``source``: a directory with its packages, put on
    ``sys.path`` too). Afterwards its modules are unimported and the cached registries rebuilt."""
    from windowkv.plugins import default_registries

    roots: list[Path] = []

    def add(name: str, version: str, entry_points: dict[str, str], modules: dict[str, str] | None = None,
            source: Path | None = None) -> Path:
        site = make_distribution(tmp_path / f"site-{name}", name, version, entry_points, modules)
        for root in (source, site):
            if root is not None:
                monkeypatch.syspath_prepend(str(root))
                roots.append(root.resolve())
        default_registries.cache_clear()
        return site

    yield add
    for module_name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if file and any(Path(file).resolve().is_relative_to(root) for root in roots):
            del sys.modules[module_name]
    default_registries.cache_clear()


def _install_source_plugin(add_distribution, source: Path) -> tuple[str, str]:
    project = tomllib.loads((source / "pyproject.toml").read_text())["project"]
    entry_points = project["entry-points"]["windowkv"]
    add_distribution(project["name"], project["version"], entry_points, source=source)
    return project["name"], project["version"]


@pytest.fixture
def example_plugin(add_distribution) -> tuple[str, str]:
    """The example distribution (plugins/windowkv-example-scorer) as if pip-installed, for this test:
    ``(name, version)``."""
    return _install_source_plugin(add_distribution, EXAMPLE_PLUGIN_SOURCE)


@pytest.fixture
def example_task_plugin(add_distribution) -> tuple[str, str]:
    """The example benchmark distribution (plugins/windowkv-example-task) as if pip-installed, for this
    test: ``(name, version)``."""
    return _install_source_plugin(add_distribution, EXAMPLE_TASK_PLUGIN_SOURCE)


@pytest.fixture
def broken_plugin(add_distribution) -> str:
    """``windowkv-broken-plugin``, whose entry point module raises on import, for this test: its name."""
    name = "windowkv-broken-plugin"
    add_distribution(name, "0.1.0", {"broken": "windowkv_broken_plugin"},
                     modules={"windowkv_broken_plugin": BROKEN_PLUGIN_CODE})
    return name


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a test module: tiny models and many small tensor ops run faster
    without the thread hand-off, and the other core stays free on a 2-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
