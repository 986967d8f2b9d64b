"""The window-margin selector: window-max windows taken with their neighbours, never over the budget."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from windowkv import Policy
from windowkv.errors import ConfigError
from windowkv.selectors import WindowMarginSelector, WindowMaxSelector
from windowkv.tensor_ops import window_view


def test_the_value_after_a_key_is_kept_with_the_next_window():
    scores = torch.zeros(1, 1, 64)
    scores[0, 0, 8:14] = 1.0  # the key is attended; its value (16-23) is not
    plain = WindowMaxSelector(window_size=8)(scores, torch.tensor([64]), torch.tensor([16]))
    assert plain[0, 0].nonzero().flatten().tolist() == list(range(0, 16))  # the value (16-23) is dropped
    keep = WindowMarginSelector(window_size=8, windows_after=1)(scores, torch.tensor([64]), torch.tensor([16]))
    assert keep[0, 0].nonzero().flatten().tolist() == list(range(8, 24))


def test_a_run_split_by_a_window_boundary_is_kept_whole():
    scores = torch.zeros(1, 1, 64)
    scores[0, 0, 13:20] = 1.0  # a 7-token run over the boundary at 16: 3 tokens left of it, 4 right
    keep = WindowMarginSelector(window_size=8, windows_before=1, windows_after=0)(
        scores, torch.tensor([64]), torch.tensor([16]))
    assert keep[0, 0].nonzero().flatten().tolist() == list(range(8, 24))


def test_taken_windows_cost_nothing_again_so_the_budget_fills():
    scores = torch.zeros(1, 1, 64)
    scores[0, 0, 0:8], scores[0, 0, 8:16], scores[0, 0, 40:48] = 3.0, 2.0, 1.0  # ranks 0, 1, 2
    keep = WindowMarginSelector(window_size=8, windows_after=1)(scores, torch.tensor([64]), torch.tensor([40]))
    # step 0 takes windows 0+1 (16), step 1 adds window 2 (24), step 2 adds 5 and 6 (40)
    assert keep[0, 0].nonzero().flatten().tolist() == list(range(0, 24)) + list(range(40, 56))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match=r"top_k \(9\) must be <= window_size \(8\)"):
        WindowMarginSelector(window_size=8, top_k=9)
    with pytest.raises(ConfigError, match=r"profiles.qa.selector.windows_after: Input should be greater than or"):
        Policy.from_config({"preset": "windowkv", "budget": 0.25, "profiles": {
            "qa": {"selector": {"type": "window_margin", "windows_after": -1}, "suffix_size": 32}}})


def _reference(scores, lengths, budgets, w, before, after, heads):
    """The greedy definition, one row and head at a time with Python loops (the test oracle)."""
    windows, valid = window_view(scores, lengths, w)
    sizes = valid.sum(-1)[:, 0]  # [B, N]
    win = WindowMaxSelector(window_size=w, heads=heads).window_scores(windows, valid)
    if heads == "shared":
        win = win.mean(dim=1, keepdim=True)
    b, h, n = win.shape
    keep = torch.zeros(b, h, scores.shape[-1], dtype=torch.bool)
    for row in range(b):
        for head in range(h):
            s = win[row, head].masked_fill(sizes[row] == 0, float("-inf"))
            order = torch.sort(s, descending=True, stable=True).indices.tolist()
            taken: set[int] = set()
            for i in order:
                new = taken | {j for j in range(i - before, i + after + 1) if 0 <= j < n and sizes[row, j] > 0}
                if sum(int(sizes[row, j]) for j in new) > int(budgets[row]):
                    break
                taken = new
            for j in taken:
                keep[row, head, j * w: j * w + int(sizes[row, j])] = True
    return keep


@settings(max_examples=150, deadline=None)
@given(w=st.integers(1, 12), before=st.integers(0, 2), after=st.integers(0, 3), n=st.integers(0, 90),
       b=st.integers(0, 100), heads=st.sampled_from(["shared", "per_kv_head"]), seed=st.integers(0, 2**16))
def test_kept_set_equals_the_greedy_union_of_windows_within_budget(w, before, after, n, b, heads, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(2, 3, 96, generator=g)
    lengths, budgets = torch.tensor([n, 96]), torch.tensor([b, b])
    selector = WindowMarginSelector(window_size=w, windows_before=before, windows_after=after, heads=heads)
    keep = selector(scores, lengths, budgets)
    assert torch.equal(keep, _reference(scores, lengths, budgets, w, before, after, heads))
    assert (keep.sum(-1) <= torch.minimum(budgets, lengths)[:, None]).all()
