"""The generic registry (windowkv/registry.py): names, lookups, did-you-mean and conflicts."""

from __future__ import annotations

import pytest

from windowkv import ComponentConflictError, UnknownComponentError
from windowkv.registry import KINDS, Registries, Registry
from windowkv.selectors import WindowAverageSelector, WindowMaxSelector


def registry() -> Registry:
    reg = Registry("selector")
    reg.add("window_average", WindowAverageSelector, "builtins", "windowkv", "0.1.0")
    reg.add("window_max", WindowMaxSelector, "builtins", "windowkv", "0.1.0")
    return reg


def test_lookup_returns_the_object_with_its_provenance():
    reg = registry()
    assert reg.get("window_max") is WindowMaxSelector
    entry = reg.entry("window_max")
    assert (entry.kind, entry.name, entry.plugin, entry.provider) == ("selector", "window_max", "builtins", "windowkv 0.1.0")
    assert "window_max" in reg and "nope" not in reg
    assert len(reg) == 2 and list(reg) == reg.names() == ["window_average", "window_max"]


def test_unknown_name_lists_registered_names_and_suggests_the_closest():
    with pytest.raises(UnknownComponentError) as info:
        registry().get("window_mx")
    message = str(info.value)
    assert message == ("unknown selector 'window_mx'. Did you mean 'window_max'? "
                       "Registered selectors: window_average, window_max")
    assert info.value.choices == ["window_average", "window_max"]
    assert isinstance(info.value, KeyError)


def test_unknown_name_without_close_match_has_no_suggestion():
    with pytest.raises(UnknownComponentError) as info:
        registry().get("zzz")
    assert "Did you mean" not in str(info.value)
    assert "window_average, window_max" in str(info.value)


def test_unknown_name_in_an_empty_registry():
    with pytest.raises(UnknownComponentError, match=r"Registered scorers: \(none\)"):
        Registry("scorer").get("x")


@pytest.mark.parametrize("name", [None, 3, ["window_max"]])
def test_lookup_of_a_non_string_is_an_unknown_component(name):
    with pytest.raises(UnknownComponentError):
        registry().get(name)


def test_duplicate_name_names_both_providers():
    reg = registry()
    with pytest.raises(ComponentConflictError) as info:
        reg.add("window_max", WindowAverageSelector, "fancy", "windowkv-fancy", "2.3")
    message = str(info.value)
    assert "selector 'window_max' is registered twice" in message
    assert "windowkv 0.1.0 (plugin 'builtins')" in message
    assert "windowkv-fancy 2.3 (plugin 'fancy')" in message
    assert reg.get("window_max") is WindowMaxSelector  # the first registration stands


def test_provider_without_distribution_is_the_plugin_name():
    reg = Registry("scorer")
    reg.add("mine", object, "my_module")
    assert reg.entry("mine").provider == "my_module"
    with pytest.raises(ComponentConflictError, match="by my_module .* by other_module"):
        reg.add("mine", object, "other_module")


@pytest.mark.parametrize("name", ["", "Window", "window-max", "1window", "_x", "wïndow", " window", None])
def test_invalid_names_are_rejected_with_the_pattern(name):
    with pytest.raises(ValueError, match=r"names must match \^\[a-z\]"):
        Registry("selector").add(name, object, "plugin_x")


def test_registries_have_one_registry_per_kind():
    regs = Registries()
    assert [regs[k].kind for k in KINDS] == list(KINDS)
    with pytest.raises(KeyError, match="unknown component kind 'scorers'; kinds: scorer, classifier"):
        regs["scorers"]


def test_all_entries_go_by_kind_then_name():
    regs = Registries()
    regs["selector"].add("b", object, "p")
    regs["selector"].add("a", object, "p")
    regs["scorer"].add("z", object, "p")
    assert [(e.kind, e.name) for e in regs.all_entries()] == [("scorer", "z"), ("selector", "a"), ("selector", "b")]
