"""Selector behaviour (windowkv/selectors/): which windows or tokens are kept, on hand-made scores.

The contract shared by every registered selector (budget, whole windows, validity) is checked in
tests/test_components.py and tests/properties/; here are the specifics of each built-in.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from typing import ClassVar

from windowkv.selectors import Selector, TokenTopKSelector, WindowAverageSelector, WindowMaxSelector
from windowkv.testing import random_scores


def kept(selector, scores, budget, length=None, head=0, row=0):
    scores = torch.as_tensor(scores, dtype=torch.float32)
    if scores.dim() == 1:
        scores = scores[None, None]
    n = scores.shape[-1] if length is None else length
    b = scores.shape[0]
    keep = selector(scores, torch.full((b,), n), torch.full((b,), budget))
    return keep[row, head].nonzero().flatten().tolist()


def test_window_average_keeps_the_windows_of_highest_mean():
    scores = [0, 0, 0, 0, 5, 5, 5, 5, 1, 1, 1, 9, 2, 2, 2, 2]  # window means 0, 5, 3, 2
    assert kept(WindowAverageSelector(window_size=4), scores, 8) == [4, 5, 6, 7, 8, 9, 10, 11]
    assert kept(WindowAverageSelector(window_size=4), scores, 4) == [4, 5, 6, 7]


def test_window_max_rewards_a_few_very_relevant_tokens():
    """The paper's QA profile: the mean of the top w/2 tokens ranks a window with one spike higher."""
    scores = [3, 3, 3, 3, 0, 0, 9, 8]  # means 3 vs 4.25; top-2 means 3 vs 8.5
    assert kept(WindowAverageSelector(window_size=4), scores, 4) == [4, 5, 6, 7]
    assert kept(WindowMaxSelector(window_size=4), scores, 4) == [4, 5, 6, 7]
    scores = [3, 3, 3, 3, 0, 0, 0, 9]  # means 3 vs 2.25; top-2 means 3 vs 4.5
    assert kept(WindowAverageSelector(window_size=4), scores, 4) == [0, 1, 2, 3]
    assert kept(WindowMaxSelector(window_size=4), scores, 4) == [4, 5, 6, 7]
    assert kept(WindowMaxSelector(window_size=4, top_k=4), scores, 4) == [0, 1, 2, 3]


def test_window_max_default_k_is_half_the_window_at_least_one():
    assert WindowMaxSelector(window_size=8).k == 4
    assert WindowMaxSelector(window_size=3).k == 1
    assert WindowMaxSelector(window_size=1).k == 1
    assert WindowMaxSelector(window_size=8, top_k=2).k == 2


def test_window_max_top_k_must_fit_the_window():
    with pytest.raises(ValidationError, match=r"top_k \(5\) must be <= window_size \(4\)"):
        WindowMaxSelector(window_size=4, top_k=5)


@pytest.mark.parametrize("cls", [WindowAverageSelector, WindowMaxSelector])
@pytest.mark.parametrize("window_size", [0, -3])
def test_window_size_must_be_positive(cls, window_size):
    with pytest.raises(ValidationError, match="window_size"):
        cls(window_size=window_size)


def test_token_topk_keeps_the_best_tokens_per_kv_head():
    scores = torch.tensor([[[5, 1, 4, 0, 3], [0, 9, 0, 8, 0]]], dtype=torch.float32)
    selector = TokenTopKSelector()
    assert selector.heads == "per_kv_head" and selector.window_size == 1
    assert kept(selector, scores, 2, head=0) == [0, 2]
    assert kept(selector, scores, 2, head=1) == [1, 3]
    with pytest.raises(ValidationError, match="window_size"):
        TokenTopKSelector(window_size=2)


def test_shared_heads_rank_windows_by_the_mean_over_heads():
    scores = torch.tensor([[[1, 1, 0, 0], [0, 0, 3, 3]]], dtype=torch.float32)  # head means 0.5 vs 1.5
    shared = WindowAverageSelector(window_size=2)
    per_head = WindowAverageSelector(window_size=2, heads="per_kv_head")
    keep = shared(scores, torch.tensor([4]), torch.tensor([2]))
    assert keep.shape == (1, 1, 4) and keep[0, 0].nonzero().flatten().tolist() == [2, 3]
    keep = per_head(scores, torch.tensor([4]), torch.tensor([2]))
    assert keep.shape == (1, 2, 4)
    assert keep[0, 0].nonzero().flatten().tolist() == [0, 1] and keep[0, 1].nonzero().flatten().tolist() == [2, 3]


def test_short_last_window_is_whole_and_may_be_kept():
    scores = [0, 0, 0, 0, 1, 1, 1, 1, 7, 7]  # windows of 4, 4, 2; the short one ranks first
    assert kept(WindowAverageSelector(window_size=4), scores, 6) == [4, 5, 6, 7, 8, 9]
    assert kept(WindowAverageSelector(window_size=4), scores, 2) == [8, 9]


def test_never_over_budget_even_when_the_short_window_ranks_first():
    """Windows of 8, 8, 3 with the short one ranked first and budget 10: keep the short window only
    (the next, of 8, would overshoot), never 11 tokens."""
    scores = [1] * 8 + [0] * 8 + [5] * 3
    assert kept(WindowAverageSelector(window_size=8), scores, 10) == [16, 17, 18]


def test_ties_go_to_the_earlier_window():
    assert kept(WindowAverageSelector(window_size=2), [1.0] * 8, 4) == [0, 1, 2, 3]


def test_scores_past_a_row_length_are_ignored():
    scores = torch.tensor([[[1, 2, 3, 100, 100, 100]]], dtype=torch.float32)
    keep = WindowAverageSelector(window_size=1)(scores, torch.tensor([3]), torch.tensor([2]))
    assert keep[0, 0].nonzero().flatten().tolist() == [1, 2]


def test_rows_are_independent():
    scores = random_scores(3, 2, 40, seed=1)
    lengths, budgets = torch.tensor([40, 17, 0]), torch.tensor([9, 16, 5])
    selector = WindowMaxSelector(window_size=4)
    batch = selector(scores, lengths, budgets)
    for row in range(3):
        alone = selector(scores[row : row + 1], lengths[row : row + 1], budgets[row : row + 1])
        assert torch.equal(batch[row : row + 1], alone)


@pytest.mark.parametrize("scores, lengths, budgets", [
    (torch.zeros(2, 8), torch.tensor([8, 8]), torch.tensor([4, 4])),
    (torch.zeros(2, 1, 8), torch.tensor([8]), torch.tensor([4, 4])),
    (torch.zeros(2, 1, 8), torch.tensor([8, 8]), torch.tensor(4)),
])
def test_shape_errors_are_clear(scores, lengths, budgets):
    with pytest.raises(ValueError, match=r"needs scores \[B, H, R\] and lengths/budgets \[B\]"):
        WindowAverageSelector()(scores, lengths, budgets)


@given(
    window=st.integers(1, 16), windows=st.integers(1, 30), budget=st.integers(0, 500),
    seed=st.integers(0, 2**16), cls=st.sampled_from([WindowAverageSelector, WindowMaxSelector]),
)
def test_paper_drop_count_with_full_windows(window, windows, budget, seed, cls):
    """With windows of equal size: drop ceil((n - b) / w) windows, keep the rest (WINDOWKV.md, Sec. 3)."""
    n = window * windows
    scores = random_scores(1, 2, n, seed=seed)
    keep = cls(window_size=window)(scores, torch.tensor([n]), torch.tensor([budget]))
    dropped = 0 if budget >= n else math.ceil((n - budget) / window)
    assert int(keep.sum()) == (windows - dropped) * window


# ------------------------------------------------------------------------------ the base class enforces the budget


class KeepEverything(Selector):
    """A plugin selector that ignores its budget (issue 9's example)."""

    name: ClassVar[str] = "keep_everything"

    def select(self, scores, lengths, budgets):
        heads = 1 if self.heads == "shared" else scores.shape[1]
        return torch.ones(scores.shape[0], heads, scores.shape[2], dtype=torch.bool)


def test_an_over_budget_selector_is_clipped_and_the_suffix_is_never_lost():
    """Budget 10, suffix 4, 80-token prompt, fixed classifier, uniform budgets, no sharing: without the
    base class's clip every layer kept 14 review tokens and dropped all 4 suffix positions."""
    from windowkv import Policy, Profile
    from windowkv.allocators import UniformBudget
    from windowkv.classifiers import FixedClassifier
    from windowkv.sharing import NoSharing
    from windowkv.testing import check_layer_selection, run_policy, synthetic_layer

    policy = Policy(10, classifier=FixedClassifier(label="all"), allocator=UniformBudget(), sharing=NoSharing(),
                    profiles={"all": Profile(KeepEverything(), 4)})
    layers = [synthetic_layer([80], kv_heads=2, seed=layer) for layer in range(3)]
    run, selections = run_policy(policy, layers)
    for layer_idx, selection in enumerate(selections):
        kept = selection.positions[0, 0][selection.valid[0, 0]].tolist()
        assert kept[-4:] == [76, 77, 78, 79], f"layer {layer_idx} lost suffix positions: {kept}"
        assert len(kept) == 14
        check_layer_selection(policy, run, layer_idx, selection, kv_heads=2)
        scores = policy.scorer(layers[layer_idx].inputs(layer_idx, 3, suffix_size=4)).mean(1)[0]
        assert set(kept[:10]) == set(scores.topk(10).indices.tolist())  # the best-scoring 10 survive


@pytest.mark.parametrize("heads", ["shared", "per_kv_head"])
def test_clipping_keeps_the_best_scores_per_row_and_head(heads):
    scores = torch.rand(3, 2, 30, generator=torch.Generator().manual_seed(0))
    lengths, budgets = torch.tensor([30, 12, 0]), torch.tensor([5, 20, 3])
    keep = KeepEverything(heads=heads)(scores, lengths, budgets)
    ranked = scores.mean(1, keepdim=True) if heads == "shared" else scores
    for row, (n, b) in enumerate(zip(lengths.tolist(), budgets.tolist())):
        for head in range(keep.shape[1]):
            expected = set(ranked[row, head, :n].topk(min(n, b)).indices.tolist())
            assert set(keep[row, head].nonzero().flatten().tolist()) == expected


def test_the_contract_check_still_reports_a_select_that_overshoots():
    from windowkv.testing import check_selector_contract

    with pytest.raises(AssertionError, match="select\\(\\) proposes"):
        check_selector_contract(KeepEverything())
