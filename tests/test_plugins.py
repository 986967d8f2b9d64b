"""Plugin discovery (windowkv/plugins/): entry points, the example and the broken test distributions,
isolation of failures, conflicts and ``WINDOWKV_DISABLE_PLUGIN_AUTOLOAD``.

The distributions are made visible per test by the fixtures ``example_plugin`` and ``broken_plugin``
(tests/conftest.py), never installed: a user's environment holds no test fixture.
"""

from __future__ import annotations

import warnings
from importlib import metadata

import pytest

import windowkv
from windowkv import ComponentConflictError, ConfigError, Policy, PluginLoadWarning, hookimpl, load_policy
from windowkv.plugins import DISABLE_AUTOLOAD_ENV, ENTRY_POINT_GROUP, build_registries, get_plugin_manager, hookspecs
from windowkv.plugins.manager import HOOKS
from windowkv.registry import KINDS
from windowkv.scorers import Scorer
from windowkv.selectors import WindowAverageSelector
from windowkv.testing import check_layer_selection, check_scorer_contract, fresh_registries, synthetic_layer


def load_all(autoload: bool | None = True):
    """Registries from every discoverable plugin, and the PluginLoadWarnings raised on the way."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always", PluginLoadWarning)
        registries = build_registries(get_plugin_manager(autoload=autoload))
    return registries, [str(w.message) for w in record if issubclass(w.category, PluginLoadWarning)]


def test_the_installed_environment_has_no_failing_plugin():
    """What a user runs prints no plugin warning: no test fixture is installed (scripts/bootstrap.sh)."""
    registries, messages = load_all()
    assert messages == [] and registries.load_errors == [], messages
    installed = {d.metadata["Name"] for d in metadata.distributions()}
    assert "windowkv-broken-plugin" not in installed, "a test fixture is installed: rerun scripts/bootstrap.sh"


# ------------------------------------------------------------------------------ the example plugin


def test_example_plugin_components_are_registered_with_their_distribution(example_plugin):
    name, version = example_plugin
    assert metadata.version(name) == version
    registries, messages = load_all()
    assert messages == []
    scorer = registries["scorer"].entry("value_norm")
    preset = registries["policy"].entry("windowkv_value_norm")
    for entry in (scorer, preset):
        assert (entry.distribution, entry.version) == (name, version)
        assert entry.provider == f"{name} {version}"
    assert issubclass(scorer.obj, Scorer)
    assert registries["scorer"].entry("suffix_attention").distribution == "windowkv"


def test_example_scorer_keeps_the_scorer_contract(example_plugin):
    registries, _ = load_all()
    check_scorer_contract(registries["scorer"].get("value_norm"))


def test_example_scorer_from_a_yaml_file_validates_and_selects(example_plugin, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("preset: windowkv\nbudget: 0.25\nscorer: {type: value_norm, norm_ord: 1.0}\n")
    policy = load_policy(path)
    assert policy.scorer.to_config() == {"type": "value_norm", "norm_ord": 1.0}
    layer = synthetic_layer([120, 90], kv_heads=2, query_groups=2, seed=3)
    loud = slice(40, 48)  # row 0's window of aligned positions 40..47: by far the largest values
    layer.values[0, :, loud] *= 100
    run = policy.start_run(layer.lengths, layer.padded_length, 8, task="qa")
    for layer_idx in range(8):
        selection = layer.select(policy, run, layer_idx)
        assert selection is not None
        check_layer_selection(policy, run, layer_idx, selection, kv_heads=2)
        kept = selection.positions[0, 0][selection.valid[0, 0]].tolist()
        assert set(range(40, 48)) <= set(kept), f"layer {layer_idx} dropped the loudest window"
    assert Policy.from_config(policy.to_config()) == policy


def test_example_preset_resolves(example_plugin):
    policy = Policy.from_preset("windowkv_value_norm", budget=64)
    assert policy.scorer.name == "value_norm"
    assert policy.profiles["qa"].selector.name == "window_max"


def test_example_scorer_parameter_errors_name_the_path(example_plugin):
    with pytest.raises(ConfigError) as info:
        Policy.from_config({"preset": "windowkv", "budget": 8, "scorer": {"type": "value_norm", "norm": 2}})
    message = dict(info.value.errors)["scorer.norm"]
    assert "unknown field" in message and "norm_ord" in message


# ------------------------------------------------------------------------------ the broken plugin


def test_broken_plugin_is_reported_and_the_others_still_load(broken_plugin, example_plugin):
    registries, messages = load_all()
    assert any(f"from distribution {broken_plugin!r} failed to load" in m and "RuntimeError" in m
               for m in messages)
    assert any(broken_plugin in e and "on purpose" in e for e in registries.load_errors)
    assert "value_norm" in registries["scorer"]
    assert {"window_average", "window_max", "token_topk"} <= set(registries["selector"])
    assert "windowkv" in registries["policy"]


def test_a_hook_that_raises_is_reported_and_skipped():
    class Failing:
        __name__ = "failing"

        @hookimpl
        def windowkv_register_scorers(self):
            raise RuntimeError("boom")

        @hookimpl
        def windowkv_register_selectors(self):
            return []

    with pytest.warns(PluginLoadWarning, match=r"plugin 'failing' \(failing-dist\) failed in windowkv_register_scorers: RuntimeError: boom"):
        registries = fresh_registries(Failing(), distributions={"failing": ("failing-dist", "1")})
    assert registries.load_errors and "boom" in registries.load_errors[0]
    assert "suffix_attention" in registries["scorer"]


class Faulty:
    """One plugin object with one fault per hook: a bad name, a wrong kind, a non-component, a valid one."""

    __name__ = "faulty"

    @hookimpl
    def windowkv_register_scorers(self):
        from windowkv.scorers import KeyNormScorer

        class Renamed(KeyNormScorer):
            name = "Bad-Name"

        class Fine(KeyNormScorer):
            name = "faulty_fine"

        return [Renamed, Fine]

    @hookimpl
    def windowkv_register_selectors(self):
        from windowkv.scorers import KeyNormScorer

        return [KeyNormScorer, "not a class"]  # a scorer registered as a selector, and a string


def test_per_plugin_faults_are_warnings_naming_the_distribution_and_the_rest_load():
    with pytest.warns(PluginLoadWarning) as record:
        registries = fresh_registries(Faulty(), distributions={"faulty": ("faulty-dist", "2")})
    messages = [str(w.message) for w in record]
    assert len(messages) == 3 and all("'faulty' (faulty-dist)" in m for m in messages)
    assert any("invalid scorer name 'Bad-Name'" in m for m in messages)
    assert any("KeyNormScorer" in m and "kind 'selector'" in m for m in messages)
    assert any("'not a class'" in m for m in messages)
    assert "faulty_fine" in registries["scorer"] and "key_norm" in registries["scorer"]
    assert len(registries.load_errors) == 3


def test_hooks_are_called_with_the_arguments_they_declare(monkeypatch):
    """pluggy's rule: an implementation receives the hook arguments it names, so hooks can gain some."""
    from windowkv.plugins import manager

    seen = {}

    class Declares:
        __name__ = "declares"

        @hookimpl
        def windowkv_register_scorers(self, windowkv_version):
            seen["version"] = windowkv_version
            return []

    monkeypatch.setattr(manager, "HOOK_ARGUMENTS", {"windowkv_version": "9.9"})
    monkeypatch.setattr(hookspecs, "windowkv_register_scorers", _spec_with_version())
    pm_plugins = get_plugin_manager(autoload=False)
    pm_plugins.pm.register(Declares(), name="declares")
    registries = build_registries(pm_plugins)
    assert seen == {"version": "9.9"}
    assert "suffix_attention" in registries["scorer"]  # the built-in declares no argument and still loads


def _spec_with_version():
    @hookspecs.hookspec
    def windowkv_register_scorers(windowkv_version):
        """A later version of the hook, with an argument."""

    return windowkv_register_scorers


def test_a_hook_declaring_an_unknown_argument_is_a_warning_and_the_rest_load():
    class Unknown:
        __name__ = "unknown_arg"

        @hookimpl
        def windowkv_register_scorers(self, no_such_argument):
            return []

    with pytest.warns(PluginLoadWarning, match=r"(?s)'unknown_arg' \(unknown-dist\).*no_such_argument"):
        registries = fresh_registries(Unknown(), distributions={"unknown_arg": ("unknown-dist", "1")})
    assert "suffix_attention" in registries["scorer"]


# ------------------------------------------------------------------------------ autoload switch


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_disable_autoload_env_loads_builtins_only(broken_plugin, example_plugin, monkeypatch, value):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginLoadWarning)  # the broken plugin is not even imported
        registries = build_registries(get_plugin_manager())
    assert "value_norm" not in registries["scorer"]
    assert "windowkv_value_norm" not in registries["policy"]
    assert registries.load_errors == []
    assert {e.distribution for e in registries.all_entries()} == {"windowkv"}


@pytest.mark.parametrize("value", ["", "0", "false"])
def test_autoload_stays_on_for_falsy_env_values(example_plugin, monkeypatch, value):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, value)
    registries, _ = load_all(autoload=None)
    assert "value_norm" in registries["scorer"]


def test_autoload_argument_overrides_the_environment(example_plugin, monkeypatch):
    monkeypatch.setenv(DISABLE_AUTOLOAD_ENV, "1")
    assert "value_norm" in build_registries(get_plugin_manager(autoload=True))["scorer"]
    monkeypatch.delenv(DISABLE_AUTOLOAD_ENV)
    assert "value_norm" not in build_registries(get_plugin_manager(autoload=False))["scorer"]


# ------------------------------------------------------------------------------ built-ins and conflicts


def test_builtins_are_registered_through_the_entry_point_group():
    eps = [ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP) if ep.dist and ep.dist.name == "windowkv"]
    assert [ep.value for ep in eps] == ["windowkv.plugins.builtins"]


class Duplicate:
    """A plugin registering a selector under a built-in's name."""

    __name__ = "duplicate_plugin"

    @hookimpl
    def windowkv_register_selectors(self):
        class Another(WindowAverageSelector):
            name = "window_average"

        return [Another]


def test_duplicate_component_names_both_distributions():
    with pytest.raises(ComponentConflictError) as info:
        fresh_registries(Duplicate(), distributions={"duplicate_plugin": ("windowkv-dupe", "9.9")})
    message = str(info.value)
    assert "selector 'window_average' is registered twice" in message
    assert f"windowkv {windowkv.__version__}" in message and "windowkv-dupe 9.9" in message


def test_registering_something_of_the_wrong_kind_is_a_warning():
    class WrongKind:
        __name__ = "wrong_kind"

        @hookimpl
        def windowkv_register_sharing(self):
            return [WindowAverageSelector]

    with pytest.warns(PluginLoadWarning, match="returned a bad sharing .* not a Component subclass of kind 'sharing'"):
        registries = fresh_registries(WrongKind())
    assert "window_average" not in registries["sharing"] and "groups" in registries["sharing"]


def test_fresh_registries_without_builtins_are_empty():
    registries = fresh_registries(builtins=False)
    assert registries.all_entries() == []


# ------------------------------------------------------------------------------ hook specifications


def test_every_kind_has_one_prefixed_hook_with_a_docstring():
    specs = {name: getattr(hookspecs, name) for name in dir(hookspecs) if name.startswith("windowkv_")}
    assert sorted(specs) == sorted(HOOKS.values())
    assert sorted(HOOKS) == sorted(KINDS)
    for name, fn in specs.items():
        assert fn.__doc__ and "Return" in fn.__doc__, name
