"""DBudgetKV: the budget each row keeps is decided by its own scores, under the policy's ceiling."""

from __future__ import annotations

import torch

from windowkv import Policy
from windowkv.selectors import DBudgetSelector
from tests.hf.conftest import greedy, prompt, tiny_model


def test_concentrated_scores_keep_few_tokens_and_diffuse_ones_keep_many():
    peaked = torch.full((1, 1, 100), 0.01)
    peaked[0, 0, [3, 50, 77]] = 5.0
    flat = torch.rand(1, 1, 100, generator=torch.Generator().manual_seed(0)) + 1.0
    scores = torch.cat([peaked, flat])  # two rows, one head
    keep = DBudgetSelector(norm_ratio=0.99)(scores, torch.tensor([100, 100]), torch.tensor([90, 90]))
    assert keep[0, 0].nonzero().flatten().tolist() == [3, 50, 77]
    assert 80 <= int(keep[1].sum()) <= 90  # the ceiling binds the diffuse row


def test_the_kept_tokens_are_the_best_and_reach_the_norm_ratio():
    scores = torch.rand(3, 2, 64, generator=torch.Generator().manual_seed(1)) ** 4
    lengths = torch.tensor([64, 40, 10])
    for norm, power in (("fro", 2), ("mass", 1)):
        selector = DBudgetSelector(norm_ratio=0.9, norm=norm, heads="per_kv_head")
        keep = selector(scores, lengths, torch.tensor([60, 30, 5]))
        for b, n in enumerate(lengths.tolist()):
            for h in range(2):
                s = scores[b, h, :n]
                kept = keep[b, h, :n]
                assert not keep[b, h, n:].any()
                if int(kept.sum()) < [60, 30, 5][b]:  # stopped by the signal, not the ceiling
                    assert (s[kept] ** power).sum() >= 0.9 ** power * (s ** power).sum() - 1e-6
                    assert s[kept].min() >= s[~kept].max()
                    smaller = s.sort(descending=True).values[: int(kept.sum()) - 1]
                    assert (smaller ** power).sum() < 0.9 ** power * (s ** power).sum()


def test_rows_choose_their_budget_alone_and_the_run_records_it(one_torch_thread):
    model = tiny_model("llama", layers=2)
    a, b = prompt(80, seed=1), prompt(50, seed=2)
    policy = Policy.from_preset("dbudgetkv", budget=0.9, profiles={"all": {"suffix_size": 8}})
    batch = torch.cat([a, torch.cat([torch.zeros(1, 30, dtype=torch.long), b], -1)])
    mask = torch.ones_like(batch)
    mask[1, :30] = 0
    with policy.apply(model) as handle:
        together = greedy(model, batch, mask, new=5)
        run = handle.last_run
        kept_together = run.kept_tokens()
        alone = []
        for ids in (a, b):
            alone.append((greedy(model, ids, new=5), handle.last_run.kept_tokens()))
    for row in range(2):
        assert torch.equal(together[row], alone[row][0][0])
        assert [layer[row] for layer in kept_together] == [layer[0] for layer in alone[row][1]]
    assert all(8 <= layer[0] <= 8 + int(0.9 * 72) for layer in kept_together)
