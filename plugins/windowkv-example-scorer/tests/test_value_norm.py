"""How a plugin tests itself with windowkv.testing (run: pytest plugins/windowkv-example-scorer/tests)."""

import torch

from windowkv.testing import check_scorer_contract, fresh_registries, synthetic_layer
from windowkv_example_scorer import ValueNormScorer, plugin


def test_value_norm_keeps_the_scorer_contract():
    check_scorer_contract(ValueNormScorer())
    check_scorer_contract(ValueNormScorer(norm_ord=1.0))


def test_value_norm_scores_are_the_norms_of_the_review_values():
    layer = synthetic_layer([10], kv_heads=2)
    scores = ValueNormScorer()(layer.inputs(suffix_size=4))
    assert torch.allclose(scores, layer.values[:, :, :6].norm(dim=-1))


def test_plugin_registers_the_scorer_and_the_preset():
    registries = fresh_registries(plugin)
    assert registries["scorer"].get("value_norm") is ValueNormScorer
    assert registries["policy"].get("windowkv_value_norm").config["scorer"] == {"type": "value_norm"}
