"""Invariant 6: any number of layers, group size, window size, suffix and prompt length (prompts
shorter than the suffix, length 1, padding-only rows) gives a valid result or a clear error
(DESIGN.md, Budget semantics). A padding-only row (length 0) is accepted and keeps nothing.

Configurations go through ``Policy.from_config``, so a bad value must come back as a ConfigError naming
its field path; a valid configuration must then give valid selections for every layer."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from hypothesis import given
from hypothesis import strategies as st

from windowkv import ConfigError, Policy
from windowkv.component import join_loc
from windowkv.testing import check_layer_selection, run_policy, synthetic_layer

from _scenarios import COMBOS, REGISTRIES, Scenario, TEXTS, mostly, per_combo


def _fields(kind: str, name: str) -> set[str]:
    return set(REGISTRIES[kind].get(name).model_fields)


def _valid_budget(budget) -> bool:
    if isinstance(budget, str):
        return budget == "25%"
    if isinstance(budget, bool) or budget is None:
        return False
    if isinstance(budget, int):
        return budget >= 1
    return 0 < budget <= 1


def _rejected(kind: str, spec: dict, loc: str) -> set[str]:
    """Paths of the parameters the component itself rejects (a plugin may be stricter than our rules)."""
    params = {k: v for k, v in spec.items() if k != "type"}
    try:
        REGISTRIES[kind].get(spec["type"]).model_validate(params)
    except ValidationError as exc:
        return {join_loc(loc, *e["loc"]) for e in exc.errors()}
    return set()


@st.composite
def configs(draw, selector: str, sharing: str, allocator: str):
    """A config with values inside and outside the valid ranges; returns (config, expected bad paths).

    The expected bad paths are those our rules name (window, group and suffix sizes >= 1, known head
    modes, beta > G/2, budgets) plus any a component's own validation rejects.
    """
    bad: set[str] = set()
    if draw(st.booleans()):  # a valid configuration, of any shape
        window = draw(st.integers(1, 70))
        heads = draw(st.sampled_from(["shared", "per_kv_head"]))
        group = draw(st.integers(1, 50))
        alloc_group = draw(st.one_of(st.just(group), st.integers(1, 50)))
        beta = draw(st.floats(alloc_group / 2, 60.0, exclude_min=True))
        suffix = draw(st.integers(1, 400))
        budget = draw(st.one_of(st.integers(1, 500), st.floats(0.0, 1.0, exclude_min=True), st.just("25%")))
    else:  # values inside and outside the valid ranges
        window = draw(st.integers(-1, 70))
        heads = draw(st.sampled_from(["shared", "per_kv_head", "per_query_head"]))
        group = draw(st.integers(-1, 50))
        alloc_group = draw(st.one_of(st.just(group), st.integers(-1, 50)))
        beta = draw(st.one_of(st.just(14.0), st.floats(0.1, 40.0)))
        suffix = draw(st.integers(-1, 400))
        budget = draw(st.one_of(
            st.integers(-5, 500), st.floats(-0.5, 1.5, allow_nan=False),
            st.sampled_from(["25%", "0", "abc", 0, 1.0, 2.0, True, None]),
        ))
    sel: dict = {"type": selector}
    if "window_size" in _fields("selector", selector) and draw(st.booleans()):
        sel["window_size"] = window
        if window < 1:
            bad.add("profiles.p.selector.window_size")
    if "heads" in _fields("selector", selector):
        sel["heads"] = heads
        if heads not in ("shared", "per_kv_head"):
            bad.add("profiles.p.selector.heads")
    shr: dict = {"type": sharing}
    if "group_size" in _fields("sharing", sharing):
        shr["group_size"] = group
        if group < 1:
            bad.add("sharing.group_size")
    alc: dict = {"type": allocator}
    fields = _fields("allocator", allocator)
    if "group_size" in fields:
        alc["group_size"] = alloc_group
        if alloc_group < 1:
            bad.add("allocator.group_size")
    if "beta" in fields:
        alc["beta"] = beta
        if "group_size" in fields and alloc_group >= 1 and beta <= alloc_group / 2:
            bad.add("allocator")
    if suffix < 1:
        bad.add("profiles.p.suffix_size")
    if not _valid_budget(budget):
        bad.add("budget")
    bad |= _rejected("selector", sel, "profiles.p.selector") | _rejected("sharing", shr, "sharing")
    bad |= _rejected("allocator", alc, "allocator")
    config = {
        "budget": budget, "classifier": {"type": "fixed", "label": "p"}, "sharing": shr, "allocator": alc,
        "profiles": {"p": {"selector": sel, "suffix_size": suffix}},
    }
    if budget is None:
        del config["budget"]
    return config, bad


def validate(config: dict, bad: set[str]) -> Policy | None:
    """The policy of a valid config; for an invalid one, check that the ConfigError names every bad path
    (and nothing outside the config) and return None."""
    drawn_paths = {"budget", "sharing", "allocator", "profiles.p.suffix_size", "profiles.p.selector"}
    try:
        policy = Policy.from_config(config, REGISTRIES)
    except ConfigError as exc:
        reported = {loc for loc, _ in exc.errors}
        assert bad, f"a valid config was rejected: {exc}"
        assert bad <= {loc for loc in reported} | {loc.rsplit(".", 1)[0] for loc in reported}, str(exc)
        for loc in reported:
            assert any(loc == p or loc.startswith(p + ".") for p in drawn_paths), f"error outside the config: {loc}"
            assert loc in str(exc)
        return None
    assert not bad, f"invalid values {sorted(bad)} were accepted: {policy.to_config()}"
    return policy


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(800)
@given(data=st.data())
def test_invariant_6_any_config_is_a_policy_or_a_clear_error(selector, sharing, allocator, data):
    """The configuration alone: cheap, so it explores the value ranges widely."""
    validate(*data.draw(configs(selector, sharing, allocator), label="config"))


@pytest.mark.parametrize("selector, sharing, allocator", COMBOS)
@per_combo(250)
@given(data=st.data())
def test_invariant_6_any_shape_valid_or_clear_error(selector, sharing, allocator, data):
    config, bad = data.draw(configs(selector, sharing, allocator), label="config")
    policy = validate(config, bad)
    if policy is None:
        return

    num_layers = data.draw(mostly(st.integers(0, 6), st.one_of(st.just(30), st.integers(0, 40))), label="num_layers")
    batch = data.draw(st.integers(1, 4), label="batch")
    s = config["profiles"]["p"]["suffix_size"]
    lengths = tuple(data.draw(st.lists(
        st.one_of(mostly(st.integers(0, 96), st.integers(0, 300)), st.sampled_from([0, 1, max(s - 1, 0), s, s + 1])),
        min_size=batch, max_size=batch), label="lengths"))
    padded = max(lengths) + data.draw(st.sampled_from([0, 0, 2]), label="extra padding")
    if num_layers < 1:
        with pytest.raises(ValueError, match="num_layers"):
            policy.start_run(lengths, padded, num_layers)
        return
    scenario = Scenario(policy, lengths, padded, ("other",) * batch, num_layers, kv_heads=2, query_groups=2,
                        seed=data.draw(st.integers(0, 2**16), label="seed"))
    run = policy.start_run(lengths, padded, num_layers)
    for layer, data_layer in enumerate(scenario.layers):
        selection = data_layer.select(policy, run, layer)
        check_layer_selection(policy, run, layer, selection, kv_heads=2)
        for row, n in enumerate(lengths):
            if n == 0 and selection is not None:
                assert not selection.valid[row].any(), f"padding-only row {row} keeps positions"


@pytest.mark.parametrize("texts", [[TEXTS["qa"]], [TEXTS["other"]], [TEXTS["qa"], TEXTS["other"]]])
def test_invariant_6_windowkv_30_layers_group_8(texts):
    """The reference code crashes with 30 layers and G=8 (its budget list is too short)."""
    policy = Policy.from_preset("windowkv", budget=64)
    lengths = [260, 180][: len(texts)]
    layers = [synthetic_layer(lengths, kv_heads=3, query_groups=3, seed=layer) for layer in range(30)]
    run, selections = run_policy(policy, layers, texts=texts)
    assert all(len(g.budgets) == 30 for g in run.groups)
    assert all(s is not None for s in selections)
    for layer, selection in enumerate(selections):
        check_layer_selection(policy, run, layer, selection, kv_heads=3)


@pytest.mark.parametrize("lengths, padded", [([5, -1], 5), ([5, 7], 6)])
def test_invariant_6_impossible_row_lengths_are_rejected(lengths, padded):
    policy = Policy.from_preset("windowkv", budget=0.5)
    with pytest.raises(ValueError, match=r"row lengths .* must lie in \[0, "):
        policy.start_run(lengths, padded, 4, task="qa")


def test_invariant_6_empty_batch_compresses_nothing():
    policy = Policy.from_preset("windowkv", budget=0.5)
    run = policy.start_run([], 0, 4, texts=[])
    assert not run.active and run.kept_tokens() == [[]] * 4


@pytest.mark.parametrize("layer_idx", [4, 40])
def test_invariant_6_layer_index_outside_the_run_is_a_clear_error(layer_idx):
    policy = Policy.from_preset("windowkv", budget=16)
    run = policy.start_run([100, 50], 100, 4, task="qa")
    with pytest.raises(ValueError, match="layer"):
        synthetic_layer([100, 50]).select(policy, run, layer_idx)


@pytest.mark.parametrize("lengths, padded", [([100, 50], 120), ([100, 50, 3], 100)], ids=["longer", "more-rows"])
def test_invariant_6_keys_that_do_not_match_the_run_are_a_clear_error(lengths, padded):
    """A cache longer than the planned prompt (e.g. a prefill after a cached prefix) or another batch
    must not be compressed with the run's padding offsets (it was silently wrong, or a torch error)."""
    policy = Policy.from_preset("windowkv", budget=16)
    run = policy.start_run([100, 50], 100, 4, task="qa")
    with pytest.raises(ValueError, match="run"):
        synthetic_layer(lengths, padded_length=padded).select(policy, run, 0)
