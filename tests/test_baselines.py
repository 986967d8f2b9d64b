"""Behaviour of the baseline components and presets (the budget invariants over every registered component
live in tests/properties/; the comparison with kvpress in tests/parity/)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from windowkv import Policy, Profile, load_policy
from windowkv.allocators import PyramidBudget, UniformBudget
from windowkv.classifiers import FixedClassifier
from windowkv.policies.baselines import BASELINE_PRESETS
from windowkv.policies.windowkv_family import WINDOWKV_FAMILY_PRESETS
from windowkv.policies.presets import BUILTIN_PRESETS
from windowkv.plugins import default_registries
from windowkv.scorers import (
    CumulativeAttentionScorer,
    KeyNormScorer,
    PooledSuffixAttentionScorer,
    PositionScorer,
    RandomScorer,
    SuffixAttentionScorer,
    avg_pool_scores,
)
from windowkv.selectors import HeadwiseTopKSelector, SinksRecentSelector, TokenTopKSelector
from windowkv.sharing import NoSharing
from windowkv.testing import kept_positions, random_scores, run_policy, synthetic_layer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
REGISTRIES = default_registries()


def kept(mask: torch.Tensor) -> list[int]:
    return mask.nonzero().flatten().tolist()


# ------------------------------------------------------------------------------ sinks + recent


def test_sinks_recent_keeps_exactly_the_sinks_and_the_most_recent_tokens():
    selector = SinksRecentSelector(sinks=4)
    scores = random_scores(3, 2, 50)
    keep = selector(scores, torch.tensor([50, 30, 6]), torch.tensor([10, 10, 10]))
    assert keep.shape == (3, 1, 50)
    assert kept(keep[0, 0]) == [0, 1, 2, 3, *range(44, 50)]
    assert kept(keep[1, 0]) == [0, 1, 2, 3, *range(24, 30)]
    assert kept(keep[2, 0]) == list(range(6))  # the budget covers the row


def test_sinks_recent_with_a_budget_below_the_sinks_keeps_the_first_tokens():
    keep = SinksRecentSelector(sinks=4)(random_scores(1, 1, 20), torch.tensor([20]), torch.tensor([3]))
    assert kept(keep[0, 0]) == [0, 1, 2]


def test_sinks_recent_ignores_the_scores_and_repeats_per_head():
    selector = SinksRecentSelector(sinks=2, heads="per_kv_head")
    a = selector(random_scores(1, 3, 40, seed=1), torch.tensor([40]), torch.tensor([8]))
    b = selector(random_scores(1, 3, 40, seed=2), torch.tensor([40]), torch.tensor([8]))
    assert torch.equal(a, b) and a.shape == (1, 3, 40)
    assert all(kept(a[0, h]) == [0, 1, *range(34, 40)] for h in range(3))


def test_streaming_llm_preset_counts_positions_from_each_rows_first_token():
    policy = Policy.from_preset("streaming_llm", budget=12)
    layers = [synthetic_layer([60, 45], seed=3)]
    run, (selection,) = run_policy(policy, layers)
    assert kept_positions(selection, 0, 0, 60) == [0, 1, 2, 3, *range(51, 60)]
    assert kept_positions(selection, 1, 0, 60) == [15, 16, 17, 18, *range(51, 60)]  # 15 padding positions


# ------------------------------------------------------------------------------ key norm, position, random


def test_knorm_keeps_the_lowest_norm_keys_per_head():
    layer = synthetic_layer([40], kv_heads=2, seed=4)
    policy = Policy.from_preset("knorm", budget=10)
    _, (selection,) = run_policy(policy, [layer])
    norms = layer.keys[0, :, :39].norm(dim=-1)  # review tokens (suffix 1)
    for head in range(2):
        expected = sorted(norms[head].argsort()[:10].tolist()) + [39]
        assert kept_positions(selection, 0, head, 40) == expected


def test_key_norm_scores_are_minus_the_float32_norm():
    layer = synthetic_layer([20], seed=5)
    scores = KeyNormScorer()(layer.inputs(suffix_size=4))
    torch.testing.assert_close(scores, -layer.keys[:, :, :16].float().norm(dim=-1))


def test_position_scorer_makes_token_topk_keep_the_most_recent_tokens():
    policy = Policy(5, scorer=PositionScorer(), classifier=FixedClassifier(label="a"), allocator=UniformBudget(),
                    sharing=NoSharing(), profiles={"a": Profile(TokenTopKSelector(), 2)})
    _, (selection,) = run_policy(policy, [synthetic_layer([30, 12], seed=6)])
    assert kept_positions(selection, 0, 1, 30) == list(range(23, 30))
    assert kept_positions(selection, 1, 1, 30) == list(range(23, 30))


def test_random_scorer_reproduces_a_seeded_generator_and_depends_on_the_seed():
    layer = synthetic_layer([25], kv_heads=3, seed=7)
    scores = RandomScorer(seed=9)(layer.inputs(suffix_size=5))
    expected = torch.rand(1, 3, 25, generator=torch.Generator().manual_seed(9))[..., :20]
    assert torch.equal(scores, expected)  # kvpress RandomPress's numbers for this prompt alone
    assert torch.equal(scores, RandomScorer(seed=9)(layer.inputs(suffix_size=5)))
    assert not torch.equal(scores, RandomScorer(seed=10)(layer.inputs(suffix_size=5)))


# ------------------------------------------------------------------------------ pooled suffix attention


def test_avg_pool_scores_equals_zero_padded_average_pooling():
    scores = torch.rand(2, 3, 17)
    torch.testing.assert_close(avg_pool_scores(scores, 5), F.avg_pool1d(scores, 5, stride=1, padding=2))
    manual = F.pad(scores, (2, 2)).unfold(-1, 5, 1).sum(-1) / 5
    torch.testing.assert_close(avg_pool_scores(scores, 5), manual)
    assert torch.equal(avg_pool_scores(scores, 1), scores)
    with pytest.raises(ValueError, match="odd"):
        avg_pool_scores(scores, 4)


def test_pooled_scorer_rejects_even_kernels_with_the_field_path():
    from windowkv import ConfigError

    with pytest.raises(ConfigError, match=r"scorer.kernel_size.*odd"):
        Policy.from_preset("snapkv", budget=8, scorer={"kernel_size": 4})


@pytest.mark.parametrize("reduction", ["mean", "sum", "max"])
def test_pooled_scorer_pools_the_suffix_attention_of_each_query_head(reduction):
    layer = synthetic_layer([70, 50], kv_heads=2, query_groups=3, seed=8)
    inputs = layer.inputs(suffix_size=8)
    pooled = PooledSuffixAttentionScorer(kernel_size=7, head_reduction=reduction)(inputs)
    plain = PooledSuffixAttentionScorer(kernel_size=1, head_reduction=reduction)(inputs)
    reference = SuffixAttentionScorer(head_reduction=reduction)(inputs) / 8  # sum over 8 queries -> mean
    torch.testing.assert_close(plain, reference)
    if reduction != "max":  # mean and sum commute with the (linear) pooling
        torch.testing.assert_close(pooled, avg_pool_scores(reference, 7))


# ------------------------------------------------------------------------------ cumulative attention (H2O)


def dense_cumulative(layer, suffix: int, normalize: bool) -> torch.Tensor:
    """L x L reference: causal attention of every query, summed over queries, mean over query heads."""
    q = layer.queries.float()
    k = layer.keys.float().repeat_interleave(layer.num_key_value_groups, dim=1)
    length = q.shape[2]
    logits = q @ k.transpose(-1, -2) * layer.scaling
    allowed = torch.ones(length, length, dtype=torch.bool).tril()[None, None] & layer.key_valid[:, None, None, :]
    weights = torch.softmax(logits.masked_fill(~allowed, float("-inf")), -1).nan_to_num(0.0)
    total = weights.sum(2)  # [B, H_q, L]
    if normalize:
        total = total / torch.arange(length, 0, -1)
    b, hq, _ = total.shape
    return total.view(b, hq // layer.num_key_value_groups, layer.num_key_value_groups, length).mean(2)[..., : length - suffix]


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 7, 64, None])
def test_h2o_chunked_scores_equal_the_dense_reference(chunk_size, normalize):
    layer = synthetic_layer([64, 41], kv_heads=2, query_groups=2, seed=9)
    scorer = CumulativeAttentionScorer(chunk_size=chunk_size, normalize=normalize)
    got = scorer(layer.inputs(suffix_size=5))
    torch.testing.assert_close(got, dense_cumulative(layer, 5, normalize), rtol=1e-5, atol=1e-6)


def test_h2o_never_holds_more_than_one_chunk_of_weights():
    """The scorer asks for the queries chunk by chunk: never all L at once (no L x L weights)."""
    layer = synthetic_layer([100], seed=10)
    asked = []

    def project(start, end):
        asked.append(end - start)
        return layer.project_queries(start, end)

    inputs = layer.inputs(suffix_size=4)
    inputs = type(inputs)(**{**inputs.__dict__, "project_queries": project})
    CumulativeAttentionScorer(chunk_size=16)(inputs)
    assert max(asked) == 16 and sum(asked) == 100


# ------------------------------------------------------------------------------ AdaKV


def test_adakv_per_head_counts_sum_to_heads_times_budget():
    selector = HeadwiseTopKSelector(alpha_safeguard=0.2)
    scores = random_scores(3, 4, 60, seed=11)
    scores[:, 0] *= 10  # head 0 concentrates the attention mass: it gets more of the budget
    lengths, budgets = torch.tensor([60, 45, 10]), torch.tensor([12, 12, 30])
    keep = selector(scores, lengths, budgets)
    counts = keep.sum(-1)
    assert counts.sum(-1).tolist() == [4 * 12, 4 * 12, 4 * 10]
    assert counts[0, 0] > 12 and (counts[:2] >= math.floor(0.2 * 12)).all()
    for row, (n, b) in enumerate(zip(lengths.tolist(), budgets.tolist())):
        assert counts[row].max() <= selector.max_kept(b, n, 4)


def test_adakv_keeps_the_best_pairs_of_the_layer_after_the_safeguard():
    scores = torch.tensor([[[9.0, 8.0, 7.0, 6.0], [0.1, 0.2, 0.3, 0.4]]])
    keep = HeadwiseTopKSelector(alpha_safeguard=0.0)(scores, torch.tensor([4]), torch.tensor([2]))
    assert keep[0].sum(-1).tolist() == [4, 0]
    keep = HeadwiseTopKSelector(alpha_safeguard=0.5)(scores, torch.tensor([4]), torch.tensor([2]))
    assert kept(keep[0, 0]) == [0, 1, 2] and kept(keep[0, 1]) == [3]


def test_adakv_shared_is_a_token_topk_of_the_head_mean():
    scores = random_scores(2, 3, 30, seed=12)
    lengths, budgets = torch.tensor([30, 22]), torch.tensor([7, 7])
    ada = HeadwiseTopKSelector(heads="shared")(scores, lengths, budgets)
    top = TokenTopKSelector(heads="shared")(scores, lengths, budgets)
    assert torch.equal(ada, top)


def test_adakv_cache_slots_fit_the_largest_head():
    policy = Policy.from_preset("adakv", budget=10, profiles={"all": {"suffix_size": 4}})
    layer = synthetic_layer([80, 50], kv_heads=4, query_groups=2, seed=13)
    run, (selection,) = run_policy(policy, [layer])
    valid = selection.valid.sum(-1)  # [B, H] kept incl. suffix
    assert valid.sum(-1).tolist() == [4 * (10 + 4), 4 * (10 + 4)]
    assert selection.positions.shape[-1] == run.kept_bound(0, 4) >= int(valid.max())
    assert run.kept_bound(0, 1) == 10 + 4  # one head: no adaptivity, the plain bound


# ------------------------------------------------------------------------------ pyramid budgets


def test_pyramid_budgets_decrease_linearly_with_mean_b():
    budgets = PyramidBudget(beta=20)(100, 5)
    assert budgets == [195, 148, 100, 52, 5]  # 147.5 and 52.5: the spare token goes to the earlier layer
    values = PyramidBudget(beta=20).values(100, 5)
    assert values[0] == pytest.approx(195) and values[-1] == pytest.approx(5)
    assert sum(values) == pytest.approx(500)
    assert sum(budgets) == 500 and all(abs(b - v) < 1 for b, v in zip(budgets, values))


def test_pyramid_caps_the_first_layer_at_the_review_length():
    allocator = PyramidBudget(beta=20)
    assert allocator(80, 4) == [156, 105, 55, 4]  # 2B - B/beta = 156 > 100 review tokens: ...
    assert allocator(80, 4, review_length=100) == [100, 87, 73, 60]  # ... capped, the rest moved down
    assert allocator(150, 4, review_length=100) == [100, 133, 167, 200]  # B >= R: no layer evicts


@pytest.mark.parametrize("average, layers", [(0.3, 7), (64, 30), (1000.5, 3), (7, 1), (0, 4)])
def test_pyramid_never_exceeds_the_total(average, layers):
    from fractions import Fraction

    for review in (None, 1, 50, 5000):
        budgets = PyramidBudget()(average, layers, review_length=review)
        assert len(budgets) == layers and min(budgets) >= 0
        assert sum(budgets) <= Fraction(average) * layers


def test_pyramidkv_preset_keeps_the_layer_budgets():
    policy = Policy.from_preset("pyramidkv", budget=20, profiles={"all": {"suffix_size": 4}})
    layers = [synthetic_layer([200], seed=20 + i) for i in range(4)]
    run, selections = run_policy(policy, layers)
    budgets = [run.groups[0].budgets[i][0] for i in range(4)]
    assert budgets[0] > budgets[1] > budgets[2] > budgets[3] and sum(budgets) == 80
    for i, selection in enumerate(selections):
        assert int(selection.valid[0].sum(-1).min()) == budgets[i] + 4


# ------------------------------------------------------------------------------ presets and config files

BASELINES = [p.name for p in BASELINE_PRESETS]


@pytest.mark.parametrize("name", BASELINES)
def test_every_baseline_is_registered_and_validates(name):
    assert name in REGISTRIES["policy"]
    preset = REGISTRIES["policy"].get(name)
    assert preset.description and preset.paper
    policy = Policy.from_config({"preset": name, "budget": 64})
    assert Policy.from_config(policy.to_config()) == policy


@pytest.mark.parametrize("name", [p.name for p in (*BUILTIN_PRESETS, *BASELINE_PRESETS, *WINDOWKV_FAMILY_PRESETS)])
def test_config_file_describes_the_preset(name):
    path = CONFIGS / f"{name}.yaml"
    assert path.exists(), f"configs/{name}.yaml is missing"
    from_file = load_policy(path, budget=128 if name != "full" else None)
    assert from_file == Policy.from_preset(name, budget=128)


def test_windowkv_ablations_change_one_part_each():
    base = Policy.from_preset("windowkv", budget=64).to_config()
    changed = {
        "windowkv_fixed_profile": {"classifier"},
        "windowkv_no_sharing": {"sharing"},
        "windowkv_uniform_budget": {"allocator"},
        "windowkv_token_topk": {"profiles"},
    }
    for name, fields in changed.items():
        config = Policy.from_preset(name, budget=64).to_config()
        assert {k for k in base if k != "name" and config[k] != base[k]} == fields, name


@pytest.mark.parametrize("name", BASELINES)
def test_baseline_compresses_a_tiny_model_and_keeps_the_budget(name):
    from tests.hf.conftest import greedy, prompt, tiny_model

    model = tiny_model("llama", layers=3)
    ids = prompt(150, seed=21)
    policy = Policy.from_preset(name, budget=24)
    task = "qa" if name.startswith("windowkv") and name != "windowkv_fixed_profile" else None
    with policy.apply(model, task=task) as handle:
        out = greedy(model, ids, new=3)
    assert out.shape == (1, 3)
    run = handle.last_run
    for layer, selection in run.selections.items():
        group = run.groups[0]
        budget, suffix = group.budgets[layer][0], group.suffix_size
        counts = selection.valid[0].sum(-1)  # per head (or shared)
        if name == "adakv":
            assert int(counts.sum()) == counts.numel() * (budget + suffix)
        else:
            assert (counts <= budget + suffix).all() and (counts >= min(budget, 1) + suffix).all()
