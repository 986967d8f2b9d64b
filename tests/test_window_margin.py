"""The window-margin selector: window-max windows widened by a margin, never over the budget."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from windowkv import Policy
from windowkv.errors import ConfigError
from windowkv.selectors import WindowMarginSelector, WindowMaxSelector


def test_a_run_split_by_a_window_boundary_is_kept_whole():
    scores = torch.zeros(1, 1, 64)
    scores[0, 0, 13:20] = 1.0  # a 7-token run over the boundary at 16: 3 tokens left of it, 4 right
    plain = WindowMaxSelector(window_size=8)(scores, torch.tensor([64]), torch.tensor([8]))
    assert plain[0, 0].nonzero().flatten().tolist() == list(range(16, 24))  # the 3 left tokens are lost
    keep = WindowMarginSelector(window_size=8, margin=4)(scores, torch.tensor([64]), torch.tensor([16]))
    kept = keep[0, 0].nonzero().flatten().tolist()
    assert kept == list(range(12, 28)) and set(range(13, 20)) <= set(kept)


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match=r"top_k \(9\) must be <= window_size \(8\)"):
        WindowMarginSelector(window_size=8, top_k=9)
    with pytest.raises(ConfigError, match="margin"):
        Policy.from_config({"preset": "windowkv", "budget": 0.25, "profiles": {
            "qa": {"selector": {"type": "window_margin", "margin": -1}, "suffix_size": 32}}})


@settings(max_examples=150, deadline=None)
@given(w=st.integers(1, 12), m=st.integers(0, 8), n=st.integers(0, 90), b=st.integers(0, 100),
       heads=st.sampled_from(["shared", "per_kv_head"]), seed=st.integers(0, 2**16))
def test_kept_set_is_the_window_max_windows_widened_within_budget(w, m, n, b, heads, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(2, 3, 96, generator=g)
    lengths, budgets = torch.tensor([n, 96]), torch.tensor([b, b])
    selector = WindowMarginSelector(window_size=w, margin=m, heads=heads)
    keep = selector(scores, lengths, budgets)
    inner = WindowMaxSelector(window_size=w, heads=heads)(scores, lengths, budgets * w // (w + 2 * m))
    widened = torch.nn.functional.max_pool1d(inner.float().flatten(0, 1)[:, None], 2 * m + 1, 1, m)
    expected = (widened.view_as(inner) > 0) & (torch.arange(96)[None, None, :] < lengths[:, None, None])
    cap = torch.minimum(budgets, lengths)[:, None]
    fits = expected.sum(-1) <= cap  # [2, H]
    # margins of a short last window can overshoot: the base class then clips to the budget by score
    assert torch.equal(keep[fits], expected[fits])
    assert not (keep & ~expected).any() and (keep.sum(-1)[~fits] == cap.expand_as(fits)[~fits]).all()
    assert (keep.sum(-1) <= cap).all()
    assert (keep & ~inner).sum() <= 2 * m * inner.sum().clamp(min=0)
