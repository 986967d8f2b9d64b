"""Policy configuration: dicts and YAML/TOML/JSON files, presets with overrides, and error messages
that name the field path and what would have been accepted (windowkv/config.py, Policy.from_config)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from windowkv import ConfigError, PluginLoadWarning, Policy, PolicyConfig, Preset, hookimpl, load_policy, resolve_policy
from windowkv.config import read_config_file
from windowkv.plugins import default_registries
from windowkv.testing import fresh_registries, make_component

REGISTRIES = default_registries()


def errors_of(config) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        Policy.from_config(config, REGISTRIES)
    return dict(info.value.errors)


# ------------------------------------------------------------------------------ error messages


def test_bad_selector_parameter_names_its_path():
    errors = errors_of({"preset": "windowkv", "budget": 64, "profiles": {
        "qa": {"selector": {"type": "window_max", "window_size": 0}, "suffix_size": 32}}})
    assert list(errors) == ["profiles.qa.selector.window_size"]
    assert "greater than or equal to 1" in errors["profiles.qa.selector.window_size"]


def test_unknown_selector_parameter_lists_the_allowed_fields():
    errors = errors_of({"preset": "windowkv", "budget": 64, "profiles": {
        "qa": {"selector": {"type": "window_max", "windw_size": 4}, "suffix_size": 32}}})
    message = errors["profiles.qa.selector.windw_size"]
    assert "unknown field" in message
    for field in ("window_size", "top_k", "heads"):
        assert field in message


def test_bad_literal_lists_the_allowed_values():
    errors = errors_of({"preset": "windowkv", "budget": 64, "profiles": {
        "other": {"selector": {"type": "window_average", "heads": "per_head"}, "suffix_size": 16}}})
    message = errors["profiles.other.selector.heads"]
    assert "'shared'" in message and "'per_kv_head'" in message and "per_head" in message


def test_unknown_component_type_lists_registered_ones_with_did_you_mean():
    errors = errors_of({"preset": "windowkv", "budget": 64, "profiles": {
        "qa": {"selector": {"type": "window_maxx"}, "suffix_size": 32}}})
    message = errors["profiles.qa.selector.type"]
    assert "Did you mean 'window_max'?" in message
    for name in REGISTRIES["selector"].names():
        assert name in message


@pytest.mark.parametrize("field, kind", [("scorer", "scorer"), ("sharing", "sharing"),
                                         ("allocator", "allocator"), ("classifier", "classifier")])
def test_unknown_type_of_every_component_field(field, kind):
    errors = errors_of({"budget": 64, field: {"type": "nope"}})
    assert f"{field}.type" in errors
    assert all(name in errors[f"{field}.type"] for name in REGISTRIES[kind].names())


def test_every_error_is_reported_at_once_with_its_path():
    errors = errors_of({
        "budget": 0, "sharing": {"type": "groups", "group_size": 0}, "colour": "blue",
        "profiles": {"qa": {"selector": {"type": "window_max"}, "suffix_size": 0, "extra": 1}},
    })
    assert {"budget", "sharing.group_size", "colour", "profiles.qa.suffix_size", "profiles.qa.extra"} <= set(errors)
    assert "allowed fields: preset, name, budget" in errors["colour"]


def test_missing_budget_says_what_to_give():
    errors = errors_of({"scorer": {"type": "suffix_attention"}})
    assert "tokens" in errors["budget"] and "ratio" in errors["budget"]


def test_unknown_preset_lists_presets():
    errors = errors_of({"preset": "windowkvv", "budget": 4})
    assert "Did you mean 'windowkv'?" in errors["preset"] and "full" in errors["preset"]


def test_classifier_label_without_profile_is_an_error():
    errors = errors_of({"preset": "windowkv", "budget": 4, "classifier": {"type": "fixed", "label": "code"}})
    assert "code" in errors["profiles"]


@pytest.mark.parametrize("config", [[], "windowkv", 3])
def test_non_mapping_config_is_an_error(config):
    with pytest.raises(ConfigError, match="mapping"):
        Policy.from_config(config, REGISTRIES)


def test_config_error_is_a_value_error_with_source():
    with pytest.raises(ValueError, match=r"in my\.yaml"):
        Policy.from_config({"budget": -1}, REGISTRIES, source="my.yaml")


# ------------------------------------------------------------------------------ presets and overrides


def test_windowkv_preset_has_the_paper_defaults():
    config = Policy.from_preset("windowkv", budget=128).to_config()
    allocator, sharing = config["allocator"], config["sharing"]
    assert (allocator["type"], allocator["group_size"], allocator["beta"]) == ("arithmetic_groups", 8, 14.0)
    assert (sharing["type"], sharing["group_size"]) == ("groups", 8)
    assert config["profiles"]["qa"]["suffix_size"] == 32 and config["profiles"]["other"]["suffix_size"] == 16
    assert config["profiles"]["qa"]["selector"]["type"] == "window_max"
    assert config["profiles"]["other"]["selector"]["type"] == "window_average"
    assert config["profiles"]["qa"]["selector"]["window_size"] == 8
    assert config["classifier"]["type"] == "embedding"  # learned; Policy()'s default stays the keyword heuristic
    assert {**Policy(128).to_config(), "name": "windowkv", "classifier": config["classifier"]} == config


def test_preset_overrides_merge_component_parameters():
    policy = Policy.from_preset("windowkv", budget=0.25, sharing={"group_size": 4})
    assert (policy.sharing.name, policy.sharing.group_size) == ("groups", 4)
    assert policy.allocator.to_config()["group_size"] == 8
    assert Policy.from_config({"preset": "windowkv", "budget": 4, "name": "mine"}, REGISTRIES).name == "mine"


def test_preset_name_override_through_from_preset():
    assert Policy.from_preset("windowkv", budget=0.25, name="mine").name == "mine"


def test_preset_override_with_another_type_replaces_the_component():
    policy = Policy.from_preset("windowkv", budget=64, sharing={"type": "none"})
    assert policy.sharing.name == "none"


def test_preset_override_of_a_profile_replaces_that_profile_only():
    policy = Policy.from_preset("windowkv", budget=64, profiles={
        "qa": {"selector": {"type": "token_topk"}, "suffix_size": 8}})
    assert policy.profiles["qa"].suffix_size == 8
    assert policy.profiles["other"].suffix_size == 16


def test_preset_override_of_a_profile_parameter_merges_into_it():
    policy = Policy.from_preset("windowkv", budget=64, profiles={"qa": {"selector": {"window_size": 16}}})
    assert policy.profiles["qa"].selector.to_config()["window_size"] == 16
    assert policy.profiles["qa"].selector.name == "window_max" and policy.profiles["qa"].suffix_size == 32


def test_full_preset_keeps_its_budget():
    assert Policy.from_preset("full", budget=16).budget.ratio == 1.0


def test_preset_bad_override_names_its_path():
    with pytest.raises(ConfigError) as info:
        Policy.from_preset("windowkv", budget=64, allocator={"beta": -1})
    assert "allocator.beta" in dict(info.value.errors)


# ------------------------------------------------------------------------------ round trips


@st.composite
def policies(draw) -> Policy:
    """Any policy of registered components, with drawn parameters."""
    def component(kind: str):
        cls = REGISTRIES[kind].get(draw(st.sampled_from(REGISTRIES[kind].names())))
        group = draw(st.integers(1, 16))
        return make_component(
            cls, window_size=draw(st.integers(1, 16)), heads=draw(st.sampled_from(["shared", "per_kv_head"])),
            group_size=group, beta=draw(st.floats(group / 2 + 0.5, 50)), head_reduction=draw(
                st.sampled_from(["mean", "sum", "max"])), top_k=draw(st.none() | st.integers(1, 4)),
            label="qa", edge_chars=draw(st.integers(1, 2000)), norm_ord=draw(st.sampled_from([1.0, 2.0, 3.5])),
        )

    classifier = component("classifier")
    labels = set(classifier.labels()) | set(draw(st.lists(st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True),
                                                          max_size=2)))
    from windowkv import Profile

    profiles = {label: Profile(component("selector"), draw(st.integers(1, 64))) for label in sorted(labels)}
    return Policy(
        draw(st.one_of(st.integers(1, 4096), st.floats(0, 1, exclude_min=True))),
        scorer=component("scorer"), classifier=classifier, allocator=component("allocator"),
        sharing=component("sharing"), profiles=profiles,
        name=draw(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)),
    )


@given(policy=policies())
def test_policy_round_trips_through_its_config(policy):
    config = policy.to_config()
    assert Policy.from_config(config, REGISTRIES) == policy
    assert Policy.from_config(config, REGISTRIES).to_config() == config
    assert json.loads(json.dumps(config)) == config


def write_config_file(config, path):
    """Write ``config`` as YAML or JSON (windowkv reads configs; it has no writer)."""
    import yaml

    text = json.dumps(config) if path.suffix == ".json" else yaml.safe_dump(config, sort_keys=False)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("fmt", ["yaml", "json"])
@given(policy=policies())
def test_policy_round_trips_through_files(fmt, policy, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / f"policy.{fmt}"
    write_config_file(policy.to_config(), path)
    assert load_policy(path) == policy


@pytest.mark.parametrize("fmt", ["yaml", "json"])
def test_windowkv_preset_round_trips_through_files(fmt, tmp_path):
    policy = Policy.from_preset("windowkv", budget=0.25)
    write_config_file(policy.to_config(), tmp_path / f"p.{fmt}")
    assert load_policy(tmp_path / f"p.{fmt}") == policy


# ------------------------------------------------------------------------------ files


@pytest.mark.parametrize("fmt, text", [
    ("yaml", "preset: windowkv\nbudget: 0.25\nsharing: {group_size: 4}\n"),
    ("toml", 'preset = "windowkv"\nbudget = 0.25\n[sharing]\ngroup_size = 4\n'),
    ("json", '{"preset": "windowkv", "budget": 0.25, "sharing": {"group_size": 4}}'),
    ("yaml", "policy:\n  preset: windowkv\n  budget: 0.25\n  sharing: {group_size: 4}\n"),
])
def test_hand_written_files_of_every_format(fmt, text, tmp_path):
    path = tmp_path / f"policy.{fmt}"
    path.write_text(text)
    assert load_policy(path) == Policy.from_preset("windowkv", budget=0.25, sharing={"group_size": 4})


def test_file_errors_name_the_file_and_field_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("preset: windowkv\nbudget: 64\nprofiles:\n  qa:\n    selector: {type: window_max, window_size: -2}\n")
    with pytest.raises(ConfigError) as info:
        load_policy(path)
    assert str(path) in str(info.value)
    assert "profiles.qa.selector.window_size" in str(info.value)


@pytest.mark.parametrize("name, text, message", [
    ("p.ini", "x=1", "unsupported file type '.ini'"),
    ("p.yaml", "budget: [1, 2", "not valid YAML"),
    ("p.toml", "budget = ", "not valid TOML"),
    ("p.json", "{budget: 1}", "not valid JSON"),
    ("p.yaml", "- 1\n- 2\n", "expected a mapping at the top level, got list"),
    ("p.yaml", "policy: {budget: 4}\nother: 1\n", "unknown top-level key"),
])
def test_unreadable_files_are_config_errors(name, text, message, tmp_path):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        read_config_file(path)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_policy(tmp_path / "nope.yaml")


def test_load_policy_overrides_replace_file_keys(tmp_path):
    path = tmp_path / "p.json"
    path.write_text('{"preset": "windowkv", "budget": 0.25}')
    assert load_policy(path, budget=64).budget.tokens == 64
    assert load_policy(path, budget=None).budget.ratio == 0.25


def test_resolve_policy_takes_a_preset_or_a_file(tmp_path):
    path = tmp_path / "p.yml"
    path.write_text("preset: windowkv\nbudget: 0.5\n")
    assert resolve_policy(path) == Policy.from_preset("windowkv", budget=0.5)
    assert resolve_policy(str(path), budget=32) == Policy.from_preset("windowkv", budget=32)
    assert resolve_policy("windowkv", budget="25%") == Policy.from_preset("windowkv", budget=0.25)


# ------------------------------------------------------------------------------ presets extend presets


class Chain:
    """Presets extending presets: ``b`` extends ``windowkv``, ``c`` extends ``b``; ``x``/``y`` form a
    cycle and ``self_loop`` extends itself."""

    __name__ = "chain"

    @hookimpl
    def windowkv_register_policies(self):
        return [
            Preset("b", {"preset": "windowkv", "sharing": {"type": "none"}}),
            Preset("c", {"preset": "b", "allocator": {"type": "uniform"}, "name": "sea"}),
            Preset("x", {"preset": "y"}),
            Preset("y", {"preset": "x"}),
            Preset("self_loop", {"preset": "self_loop"}),
        ]


CHAIN = fresh_registries(Chain())


def test_a_preset_extends_a_preset_recursively():
    policy = Policy.from_config({"preset": "c", "budget": 16}, CHAIN)
    assert (policy.sharing.name, policy.allocator.name, policy.name) == ("none", "uniform", "sea")
    assert policy.profiles == Policy(16).profiles
    assert CHAIN["policy"].get("c").resolved(CHAIN)["sharing"] == {"type": "none"}


@pytest.mark.parametrize("name, cycle", [("x", "x -> y -> x"), ("self_loop", "self_loop -> self_loop")])
def test_a_preset_cycle_is_an_error_naming_it(name, cycle):
    with pytest.raises(ConfigError) as info:
        Policy.from_config({"preset": name, "budget": 16}, CHAIN)
    assert dict(info.value.errors)["preset"] == f"presets extend each other in a cycle: {cycle}"


def test_the_ablation_presets_extend_the_windowkv_preset():
    registries = default_registries()
    assert registries["policy"].get("windowkv_no_sharing").config["preset"] == "windowkv"
    deep = Policy.from_preset("windowkv_deep_leader", budget=8)
    assert (deep.sharing.group_size, deep.sharing.leader_layer) == (8, "last")


# ------------------------------------------------------------------------------ one pydantic model


def test_policy_is_the_pydantic_config_model():
    config = {"preset": "windowkv", "budget": 32, "sharing": {"type": "none"}}
    assert Policy.model_validate(config) == Policy.from_config(config)
    assert isinstance(Policy.model_validate(config), PolicyConfig)
    assert PolicyConfig.model_validate(config).to_config() == Policy.from_config(config).to_config()
    assert Policy.from_config(config).model_dump(mode="json")["sharing"] == {"type": "none"}


def test_defaults_come_from_the_windowkv_preset():
    from windowkv.policies.presets import paper_defaults

    config = Policy(64).to_config()
    for key, value in paper_defaults().items():
        assert Policy.from_config({"budget": 64, key: value}).to_config() == config


def test_optional_stages_are_left_out_of_the_config_when_unset():
    config = Policy(64).to_config()
    assert not {"merger", "quantizer", "channel_pruner"} & set(config)
    policy = Policy(64, merger="nearest_mean", quantizer={"type": "uniform", "bits": 2},
                    channel_pruner={"type": "think", "keep_ratio": 0.5})
    config = policy.to_config()
    assert config["merger"] == {"type": "nearest_mean"}
    assert config["quantizer"] == {"type": "uniform", "bits": 2, "group_size": 32}
    assert Policy.from_config(config) == policy


def test_bad_optional_stage_names_its_path_and_the_registered_names():
    errors = errors_of({"budget": 8, "quantizer": {"type": "uniform", "bits": 3}, "merger": "nope"})
    assert "2" in errors["quantizer.bits"] and "8" in errors["quantizer.bits"]
    assert "drop" in errors["merger.type"] and "nearest_mean" in errors["merger.type"]


def test_json_schema_lists_every_registered_component_by_type():
    from windowkv import policy_json_schema

    schema = policy_json_schema(REGISTRIES)
    scorer_types = {m["properties"]["type"]["const"] for m in schema["properties"]["scorer"]["oneOf"]}
    assert scorer_types == set(REGISTRIES["scorer"].names())
    assert schema["properties"]["scorer"]["discriminator"] == {"propertyName": "type"}
    assert set(schema["properties"]["preset"]["enum"]) == set(REGISTRIES["policy"].names())
    json.dumps(schema)


# ------------------------------------------------------------------------------ whole methods


class EveryTenth:
    """A whole method that fits no slot: keeps every tenth prompt position (a plugin's ``method``)."""

    name = "every_tenth"

    def __init__(self, budget, name="every_tenth", stride=10):
        from windowkv import Budget

        self.budget, self.stride, self.label = Budget.of(budget), stride, name

    def to_config(self):
        return {"method": {"type": "every_tenth", "stride": self.stride}, "budget": self.budget.to_config()}

    start_run = select_layer = apply = Policy.apply
    on_prefill_end = on_decode_step = on_new_turn = on_request_end = Policy.on_request_end


class Methods:
    __name__ = "methods"

    @hookimpl
    def windowkv_register_methods(self):
        return [EveryTenth]

    @hookimpl
    def windowkv_register_policies(self):
        return [Preset("tenth", {"method": {"type": "every_tenth", "stride": 7}, "budget": 3})]


def test_a_registered_method_is_built_from_a_config_or_a_preset():
    from windowkv import LayerPolicy

    registries = fresh_registries(Methods())
    method = Policy.from_config({"method": {"type": "every_tenth", "stride": 5}, "budget": 12}, registries)
    assert isinstance(method, EveryTenth) and isinstance(method, LayerPolicy)
    assert (method.stride, method.budget.tokens) == (5, 12)
    assert Policy.from_config({"preset": "tenth"}, registries).stride == 7
    assert isinstance(Policy(8), LayerPolicy)
    errors = dict(pytest.raises(ConfigError, Policy.from_config, {"method": {"type": "every_tenh"}}, registries)
                  .value.errors)
    assert "Did you mean 'every_tenth'?" in errors["method.type"]


def test_a_method_class_missing_a_hook_is_a_warning():
    class Incomplete:
        name = "incomplete"

        def start_run(self):
            pass

    class Plugin:
        __name__ = "incomplete_plugin"

        @hookimpl
        def windowkv_register_methods(self):
            return [Incomplete]

    with pytest.warns(PluginLoadWarning, match="LayerPolicy"):
        registries = fresh_registries(Plugin())
    assert "incomplete" not in registries["method"]


def test_a_stage_that_cannot_serve_the_policy_is_an_error_naming_both():
    policy = Policy(64, name="mine", quantizer={"type": "uniform", "group_size": 32},
                    channel_pruner={"type": "think", "keep_ratio": 0.6})
    policy.check_stages(head_dim=160)  # keeps 96 channels: 3 groups of 32
    with pytest.raises(ConfigError) as info:
        policy.check_stages(head_dim=64)  # keeps 39 channels (25 pruned: int(64 x 0.4), as ThinK)
    assert dict(info.value.errors)["quantizer"] == (
        "quantizer 'uniform' cannot serve policy 'mine': the 39 key channels its channel pruner keeps is not a "
        "multiple of group_size 32")
    with pytest.raises(ConfigError, match="head_dim 48 is not a multiple of group_size 32"):
        Policy(64, quantizer="uniform").check_stages(head_dim=48)
    Policy(64).check_stages(head_dim=48)  # no stage, nothing to check


def test_profile_budget_scale_scales_that_labels_budget_only():
    config = {"preset": "windowkv", "budget": 100, "classifier": {"type": "fixed", "label": "qa"},
              "profiles": {"other": {"selector": {"type": "window_average", "window_size": 8},
                                     "suffix_size": 16, "budget_scale": 0.5}}}
    policy = Policy.from_config(config)
    qa = policy.start_run([1000], 1000, 4, task="qa").groups[0]
    other = policy.start_run([1000], 1000, 4, task="other").groups[0]
    assert sum(b[0] for b in qa.budgets) == 4 * 100
    assert sum(b[0] for b in other.budgets) == 4 * 50
    # a scale past the whole review keeps everything, never more than the prompt
    bigger = Policy.from_config({**config, "profiles": {"other": {**config["profiles"]["other"], "budget_scale": 40}}})
    run = bigger.start_run([1000], 1000, 4, task="other")
    assert [b[0] for b in run.groups[0].budgets] == [1000 - 16] * 4


def test_profile_budget_scale_must_be_positive_and_unit_scale_is_left_out_of_configs():
    with pytest.raises(ConfigError, match=r"profiles\.qa\.budget_scale"):
        Policy.from_config({"preset": "windowkv", "budget": 0.2, "profiles": {"qa": {"budget_scale": 0}}})
    config = Policy.from_preset("windowkv", budget=0.2).to_config()
    assert all("budget_scale" not in p for p in config["profiles"].values())
    scaled = Policy.from_config({**config, "profiles": {**config["profiles"], "other": {
        **config["profiles"]["other"], "budget_scale": 0.5}}})
    assert scaled.to_config()["profiles"]["other"]["budget_scale"] == 0.5
    assert Policy.from_config(scaled.to_config()) == scaled


def test_a_path_given_as_a_config_points_to_load_policy(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("preset: snapkv\nbudget: 0.2\n")
    for given in (path, str(path)):
        with pytest.raises(ConfigError, match=r"load_policy\(path\)"):
            Policy.from_config(given)
    assert load_policy(path) == Policy.from_preset("snapkv", budget=0.2)


def test_every_experiment_config_validates():
    """The configs behind docs' measured tables (configs/experiments/) stay valid policies."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "configs" / "experiments"
    paths = sorted(folder.glob("*.yaml"))
    assert paths
    for path in paths:
        policy = load_policy(path, budget=0.12)
        assert policy.name != "custom", f"{path.name} names its policy for result tables"
