"""KVMerger and KeepKV: what their merged slots hold, and what attention over them returns."""

from __future__ import annotations

import pytest
import torch

from windowkv.mergers import DropMerger, KeepKVMerger, KVMergerMerger, MergeInputs, NearestMeanMerger
from windowkv.testing import merge_inputs


def attend(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, scaling: float,
           weights: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, H, q, D]`` output of ``query`` over ``keys``/``values`` ``[B, H, K, D]``, ``log(weights)`` added."""
    logits = query @ keys.transpose(-1, -2) * scaling
    if weights is not None:
        logits = logits + torch.log(weights)[:, :, None, :]
    return logits.softmax(-1) @ values


def _inputs(length=40, kept=(0, 5, 17, 30, 39), heads=2, groups=1, suffix=1, d=16, seed=0) -> MergeInputs:
    g = torch.Generator().manual_seed(seed)
    keys = torch.randn(1, heads, length, d, generator=g, dtype=torch.float64).float()
    values = torch.randn(1, heads, length, d, generator=g)
    queries = torch.randn(1, heads * groups, suffix, d, generator=g)
    positions = torch.tensor(kept)[None, None]
    return MergeInputs(keys, values, positions, torch.ones_like(positions, dtype=torch.bool),
                       torch.ones(1, length, dtype=torch.bool), queries, d ** -0.5)


def test_keepkv_preserves_the_reference_querys_output_exactly():
    inputs = _inputs()
    out = KeepKVMerger()(inputs)
    full = attend(inputs.queries, inputs.keys, inputs.values, inputs.scaling)
    merged = attend(inputs.queries, out.keys, out.values, inputs.scaling, out.weights)
    torch.testing.assert_close(merged, full, rtol=1e-4, atol=1e-5)
    dropped = DropMerger()(inputs)
    assert (attend(inputs.queries, dropped.keys, dropped.values, inputs.scaling) - full).abs().max() > 1e-2


def _close_queries(inputs: MergeInputs, seed: int) -> MergeInputs:
    """The same inputs with a window of queries that vary around one direction (as a prompt's last queries do)."""
    g = torch.Generator().manual_seed(seed)
    q = inputs.queries
    close = q[:, :, :1] + 0.2 * torch.randn(q.shape, generator=g)
    return MergeInputs(inputs.keys, inputs.values, inputs.positions, inputs.valid, inputs.key_valid, close,
                       inputs.scaling)


def test_keepkv_perturbs_a_grouped_window_of_queries_much_less_than_dropping():
    """With several queries per KV head the output is no longer exact (their attention is averaged); it stays
    far closer than dropping. (Against a plain mean of merged tokens the order depends on the data.)"""
    errors = {}
    for merger in (DropMerger(), KeepKVMerger()):
        total = 0.0
        for seed in range(8):
            inputs = _close_queries(_inputs(groups=3, suffix=4, seed=seed), seed)
            out = merger(inputs)
            weights = out.weights if merger.weights_bias_attention else None
            q = inputs.queries.view(1, 2, 3 * 4, -1)  # every query of a KV head's group
            full = attend(q, inputs.keys, inputs.values, inputs.scaling)
            total += float((attend(q, out.keys, out.values, inputs.scaling, weights) - full).norm())
        errors[merger.name] = total
    assert errors["keepkv"] < 0.5 * errors["drop"], errors


def test_keepkv_votes_are_one_on_slots_nothing_merged_into():
    inputs = _inputs(length=6, kept=(0, 1, 2, 3, 4, 5))  # nothing evicted: a documented no-op
    out = KeepKVMerger()(inputs)
    assert torch.equal(out.weights, torch.ones(1, 2, 6))
    assert torch.equal(out.keys, inputs.keys) and torch.equal(out.values, inputs.values)


def _two_sets(length=12, d=8):
    """Keys pointing along e0 for tokens 0-5 and along e1 for tokens 6-11 (two merging sets)."""
    keys = torch.zeros(1, 1, length, d)
    keys[..., :6, 0] = torch.linspace(1.0, 2.0, 6)
    keys[..., 6:, 1] = torch.linspace(1.0, 3.0, 6)
    keys[..., :, 2] = 0.05 * torch.arange(length).float()
    values = torch.arange(length, dtype=torch.float32)[None, None, :, None].expand(1, 1, length, d).clone()
    queries = torch.ones(1, 1, 2, d)
    return keys, values, queries


def test_kvmerger_merges_each_set_into_its_kept_pivot_with_gaussian_weights():
    keys, values, queries = _two_sets()
    positions = torch.tensor([[[2, 9]]])
    inputs = MergeInputs(keys, values, positions, torch.ones(1, 1, 2, dtype=torch.bool),
                         torch.ones(1, 12, dtype=torch.bool), queries, 8 ** -0.5)
    out = KVMergerMerger(similarity_threshold=0.9)(inputs)
    assert out.weights.tolist() == [[[6.0, 6.0]]]  # each pivot stands for its whole set
    # a merged value is a convex combination of its set's values, pulled towards the pivot's own
    assert 0.0 < out.values[0, 0, 0, 0] < 5.0 and 6.0 < out.values[0, 0, 1, 0] < 11.0
    # tokens closer to the pivot weigh more: the merge moves the pivot less than a plain mean would
    assert abs(out.values[0, 0, 0, 0] - 2.0) < abs(2.5 - 2.0) + 1e-6


def test_kvmerger_drops_a_set_that_keeps_no_token_and_adds_no_attention_bias():
    keys, values, queries = _two_sets()
    positions = torch.tensor([[[2, 4]]])  # both kept tokens in the first set
    inputs = MergeInputs(keys, values, positions, torch.ones(1, 1, 2, dtype=torch.bool),
                         torch.ones(1, 12, dtype=torch.bool), queries, 8 ** -0.5)
    out = KVMergerMerger(similarity_threshold=0.9)(inputs)
    assert out.weights.sum() == 6.0  # tokens 6-11 are dropped
    assert not KVMergerMerger.weights_bias_attention and KeepKVMerger.weights_bias_attention


@pytest.mark.parametrize("merger", [KeepKVMerger(), KVMergerMerger()])
def test_mergers_that_weigh_by_attention_refuse_inputs_without_queries(merger):
    inputs = merge_inputs((10,), 3)
    bare = MergeInputs(inputs.keys, inputs.values, inputs.positions, inputs.valid, inputs.key_valid)
    with pytest.raises(ValueError, match=f"merger '{merger.name}' needs the suffix queries"):
        merger(bare)


def test_a_sigma_can_be_given_and_must_be_positive():
    from pydantic import ValidationError

    assert KVMergerMerger(sigma=0.5).sigma == 0.5
    with pytest.raises(ValidationError, match="sigma"):
        KVMergerMerger(sigma=0.0)
