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
    keep = WindowMarginSelector(window_size=8, before=4, after=4)(scores, torch.tensor([64]), torch.tensor([16]))
    kept = keep[0, 0].nonzero().flatten().tolist()
    assert kept == list(range(12, 28)) and set(range(13, 20)) <= set(kept)


def test_the_value_after_a_key_is_kept_with_a_margin_after():
    scores = torch.zeros(1, 1, 64)
    scores[0, 0, 8:14] = 1.0  # the key is attended; its value (16-23) is not
    keep = WindowMarginSelector(window_size=8, before=0, after=8)(scores, torch.tensor([64]), torch.tensor([16]))
    assert keep[0, 0].nonzero().flatten().tolist() == list(range(8, 24))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError, match=r"top_k \(9\) must be <= window_size \(8\)"):
        WindowMarginSelector(window_size=8, top_k=9)
    with pytest.raises(ConfigError, match=r"profiles.qa.selector.after: Input should be greater than or equal to 0"):
        Policy.from_config({"preset": "windowkv", "budget": 0.25, "profiles": {
            "qa": {"selector": {"type": "window_margin", "after": -1}, "suffix_size": 32}}})


@settings(max_examples=150, deadline=None)
@given(w=st.integers(1, 12), before=st.integers(0, 8), after=st.integers(0, 12), n=st.integers(0, 90),
       b=st.integers(0, 100), heads=st.sampled_from(["shared", "per_kv_head"]), seed=st.integers(0, 2**16))
def test_kept_set_is_the_window_max_windows_widened_within_budget(w, before, after, n, b, heads, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.rand(2, 3, 96, generator=g)
    lengths, budgets = torch.tensor([n, 96]), torch.tensor([b, b])
    selector = WindowMarginSelector(window_size=w, before=before, after=after, heads=heads)
    keep = selector(scores, lengths, budgets)
    inner = WindowMaxSelector(window_size=w, heads=heads)(scores, lengths, budgets * w // (w + before + after))
    expected = inner.clone()
    for shift in range(1, after + 1):  # the tokens after a kept one
        expected[..., shift:] |= inner[..., :-shift]
    for shift in range(1, before + 1):  # the tokens before a kept one
        expected[..., :-shift] |= inner[..., shift:]
    expected &= torch.arange(96)[None, None, :] < lengths[:, None, None]
    cap = torch.minimum(budgets, lengths)[:, None]
    fits = expected.sum(-1) <= cap  # [2, H]
    # margins of a short last window can overshoot: the base class then clips to the budget by score
    assert torch.equal(keep[fits], expected[fits])
    assert not (keep & ~expected).any() and (keep.sum(-1)[~fits] == cap.expand_as(fits)[~fits]).all()
    assert (keep.sum(-1) <= cap).all()

