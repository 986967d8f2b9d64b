"""Contract tests over every registered component (built-ins and installed plugins), timm-style: a new
component is tested here without editing this file. The checks are ``windowkv.testing``'s, the same a
plugin author runs."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from windowkv import Policy, Profile
from windowkv.allocators import UniformBudget
from windowkv.classifiers import ClassifierLoadError, FixedClassifier, KeywordClassifier
from windowkv.component import NAME_PATTERN
from windowkv.plugins import default_registries
from windowkv.scorers import SuffixAttentionScorer
from windowkv.selectors import WindowAverageSelector
from windowkv.sharing import NoSharing
from windowkv.testing import (
    check_allocator_contract,
    check_channel_pruner_contract,
    check_classifier_contract,
    check_merger_contract,
    check_quantizer_contract,
    check_component_config,
    check_layer_selection,
    check_scorer_contract,
    check_selector_contract,
    check_sharing_contract,
    make_component,
    synthetic_layer,
)

REGISTRIES = default_registries()
COMPONENTS = [
    pytest.param(kind, name, id=f"{kind}-{name}")
    for kind in ("scorer", "classifier", "selector", "sharing", "allocator", "merger", "quantizer", "channel_pruner")
    for name in REGISTRIES[kind].names()
]


def component_cls(kind, name):
    return REGISTRIES[kind].get(name)


@pytest.mark.parametrize("kind, name", COMPONENTS)
def test_component_is_named_documented_and_strict(kind, name):
    cls = component_cls(kind, name)
    assert cls.name == name and NAME_PATTERN.match(name) and cls.kind == kind
    assert cls.__doc__ and cls.__doc__.strip()
    for field, info in cls.model_fields.items():
        assert info.description, f"{cls.__name__}.{field} has no description"
    component = cls()
    check_component_config(component)
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        cls(not_a_parameter=1)
    for field in cls.model_fields:
        with pytest.raises(ValidationError, match="frozen"):
            setattr(component, field, getattr(component, field))


@pytest.mark.parametrize("name", REGISTRIES["scorer"].names())
def test_scorer_contract(name):
    check_scorer_contract(component_cls("scorer", name))


@pytest.mark.parametrize("heads", ["shared", "per_kv_head"])
@pytest.mark.parametrize("window_size", [1, 3, 8])
@pytest.mark.parametrize("name", REGISTRIES["selector"].names())
def test_selector_contract(name, window_size, heads):
    check_selector_contract(make_component(component_cls("selector", name), window_size=window_size, heads=heads))


@pytest.mark.parametrize("group_size", [1, 3, 8])
@pytest.mark.parametrize("name", REGISTRIES["sharing"].names())
def test_sharing_contract(name, group_size):
    check_sharing_contract(make_component(component_cls("sharing", name), group_size=group_size))


@pytest.mark.parametrize("group_size, beta", [(1, 14.0), (8, 14.0), (8, 4.5), (16, 30.0)])
@pytest.mark.parametrize("name", REGISTRIES["allocator"].names())
def test_allocator_contract(name, group_size, beta):
    check_allocator_contract(make_component(component_cls("allocator", name), group_size=group_size, beta=beta))


@pytest.mark.parametrize("name", REGISTRIES["classifier"].names())
def test_classifier_contract(name):
    try:
        check_classifier_contract(component_cls("classifier", name))
    except ClassifierLoadError as exc:  # a classifier whose weights are trained by the user (encoder)
        pytest.skip(f"{name}: {exc}")


@pytest.mark.parametrize("name", REGISTRIES["policy"].names())
def test_every_preset_builds_a_policy_that_round_trips(name):
    preset = REGISTRIES["policy"].get(name)
    assert preset.name == name and preset.description
    policy = Policy.from_preset(name, budget=0.5)
    assert policy.name == name
    assert Policy.from_config(policy.to_config(), REGISTRIES) == policy


# ------------------------------------------------------------------------------ built-in specifics


def test_keyword_classifier_tells_localisation_from_aggregation():
    classifier = KeywordClassifier()
    got = classifier(["Answer the question: who wrote it?", "Summarize the meeting.", "Write a poem."])
    assert [p.label for p in got] == ["qa", "other", "other"]
    with pytest.raises(ValueError, match="needs the prompt text"):
        classifier([None])


def test_keyword_classifier_reads_only_the_edges():
    middle = " what? " * 500
    prompt = "Summarize this." + "." * 700 + middle + "." * 700
    assert KeywordClassifier(edge_chars=600)([prompt])[0].label == "other"


def naive_suffix_scores(layer, suffix, reduction):
    """Full causal attention of every query over every key (L x L), then the suffix rows summed."""
    q = layer.queries.float()
    k = layer.keys.float().repeat_interleave(layer.num_key_value_groups, dim=1)
    logits = q @ k.transpose(-1, -2) * layer.scaling
    length = q.shape[2]
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    logits = logits.masked_fill(~(causal[None, None] & layer.key_valid[:, None, None, :]), float("-inf"))
    weights = torch.softmax(logits, -1).nan_to_num(0.0)[:, :, length - suffix :, : length - suffix]
    per_head = weights.sum(2)  # [B, H_q, R]
    b, hq, r = per_head.shape
    grouped = per_head.view(b, hq // layer.num_key_value_groups, layer.num_key_value_groups, r)
    return {"mean": grouped.mean(2), "sum": grouped.sum(2), "max": grouped.amax(2)}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "max"])
@pytest.mark.parametrize("groups", [1, 3])
def test_suffix_attention_matches_full_attention(reduction, groups):
    """GQA-aware and causal inside the suffix; padding keys get no weight; the valid scores equal those
    of a naive L x L attention."""
    layer = synthetic_layer([50, 31, 12], kv_heads=2, query_groups=groups, head_dim=8, seed=4)
    scores = SuffixAttentionScorer(head_reduction=reduction)(layer.inputs(suffix_size=8))
    expected = naive_suffix_scores(layer, 8, reduction)
    valid = layer.key_valid[:, None, :42].expand_as(scores)
    assert scores.dtype == torch.float32
    assert torch.allclose(scores[valid], expected[valid], atol=1e-5)
    assert float(scores[~valid].abs().max()) == 0.0


def test_suffix_attention_scores_in_float32_for_half_precision_inputs():
    layer = synthetic_layer([40], kv_heads=1, query_groups=2, seed=2)
    half = type(layer)(layer.keys.bfloat16(), layer.values.bfloat16(), layer.queries.bfloat16(),
                       layer.key_valid, layer.lengths, layer.num_key_value_groups)
    scores = SuffixAttentionScorer()(half.inputs(suffix_size=4))
    assert scores.dtype == torch.float32
    assert torch.allclose(scores, SuffixAttentionScorer()(layer.inputs(suffix_size=4)), atol=0.05)


# ------------------------------------------------------------------------------ the checks can fail


class GreedySelector(WindowAverageSelector):
    """Broken on purpose: keeps one token more than the budget."""

    name = "greedy"

    def select(self, scores, lengths, budgets):
        return super().select(scores, lengths, budgets + 1)


class ShiftedWindowSelector(WindowAverageSelector):
    """Broken on purpose: windows aligned to padded position 1 instead of the row's first token."""

    name = "shifted"

    def select(self, scores, lengths, budgets):
        keep = super().select(scores, lengths, budgets)
        return torch.roll(keep, 1, dims=-1)


class LeakyScorer(SuffixAttentionScorer):
    """Broken on purpose: adds the sum of all keys of the row, padding included."""

    name = "leaky"

    def score(self, inputs):
        return super().score(inputs) + inputs.keys.float().sum(dim=(2, 3))[..., None]


class ChainSharing(NoSharing):
    """Broken on purpose: every layer follows the previous one, so leaders do not lead themselves."""

    name = "chain"

    def leader(self, layer_idx, num_layers):
        return max(layer_idx - 1, 0)


def test_selector_check_catches_a_selector_over_budget():
    with pytest.raises(AssertionError, match="budget"):
        check_selector_contract(GreedySelector(window_size=1))


def test_layer_checks_catch_misaligned_windows_in_a_policy():
    policy = Policy(24, classifier=FixedClassifier(label="p"), sharing=NoSharing(), allocator=UniformBudget(),
                    profiles={"p": Profile(ShiftedWindowSelector(window_size=4), 4)})
    layer = synthetic_layer([60, 45])
    run = policy.start_run(layer.lengths, layer.padded_length, 1)
    with pytest.raises(AssertionError, match="window"):
        check_layer_selection(policy, run, 0, layer.select(policy, run, 0), kv_heads=2)


def test_scorer_check_catches_padding_leaks():
    with pytest.raises(AssertionError, match="padding leaks"):
        check_scorer_contract(LeakyScorer())


def test_sharing_check_catches_leader_chains():
    # the base class may refuse the chain itself (ValueError) or let the check find it (AssertionError)
    with pytest.raises((AssertionError, ValueError), match="lead"):
        check_sharing_contract(ChainSharing())


@pytest.mark.parametrize("name", REGISTRIES["merger"].names())
def test_merger_contract(name):
    check_merger_contract(component_cls("merger", name))


@pytest.mark.parametrize("bits, group_size", [(2, 8), (4, 32), (8, 4)])
@pytest.mark.parametrize("name", REGISTRIES["quantizer"].names())
def test_quantizer_contract(name, bits, group_size):
    check_quantizer_contract(make_component(component_cls("quantizer", name), bits=bits, group_size=group_size))


@pytest.mark.parametrize("keep_ratio", [0.1, 0.6, 0.99])
@pytest.mark.parametrize("name", REGISTRIES["channel_pruner"].names())
def test_channel_pruner_contract(name, keep_ratio):
    check_channel_pruner_contract(make_component(component_cls("channel_pruner", name), keep_ratio=keep_ratio))
