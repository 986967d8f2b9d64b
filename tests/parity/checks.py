"""Assertions of the parity cases (see ``cases.py`` for what each expectation means)."""

from __future__ import annotations

import torch

from tests.parity.harness import Overlap, compare


def check(expectation: str, ours: dict[int, torch.Tensor], theirs: dict[int, torch.Tensor],
          tie_scores: dict[int, torch.Tensor] | None = None) -> Overlap:
    """Assert the expectation on every layer and KV head; return the measured overlap.

    ``tie_scores`` (``{layer: [H_kv, L]}``) lets ``"last_token"`` accept swaps of exactly tied positions.
    """
    overlap = compare(ours, theirs)
    if expectation == "identical":
        assert overlap.identical, f"kept positions differ from kvpress: {overlap}"
    elif expectation == "last_token":
        for layer in theirs:
            a, b = ours[layer], theirs[layer]
            last = a.shape[-1] - 1
            assert torch.equal(a.sum(-1), b.sum(-1)), f"layer {layer}: counts differ {a.sum(-1)} {b.sum(-1)}"
            assert a[:, last].all(), f"layer {layer}: windowkv dropped the last prompt token"
            for head in range(a.shape[0]):
                only_ours = (a[head] & ~b[head])[:last].nonzero().flatten()
                only_theirs = (b[head] & ~a[head]).nonzero().flatten()
                where = f"layer {layer} head {head}: windowkv only {only_ours.tolist()}, kvpress only {only_theirs.tolist()}"
                if only_ours.numel():  # allowed only as exact ties broken the other way
                    assert tie_scores is not None, where
                    s = tie_scores[layer][head]
                    assert set(s[only_ours].tolist()) <= set(s[only_theirs].tolist()), f"{where}: not ties"
                assert only_theirs.numel() <= only_ours.numel() + 1, where
    elif expectation == "rounding":
        assert overlap.max_count_diff <= 1, f"per-layer budgets differ by more than one token: {overlap}"
        for layer in theirs:
            a, b = ours[layer], theirs[layer]
            smaller, larger = (a, b) if a.sum() <= b.sum() else (b, a)
            assert not (smaller & ~larger).any(), f"layer {layer}: the smaller selection is not inside the larger"
    else:
        raise ValueError(f"unknown expectation {expectation!r}")
    return overlap
