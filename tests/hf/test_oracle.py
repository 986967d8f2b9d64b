"""Compressed decoding equals attention over the full cache with the evicted positions masked out.

When every layer and head keeps the same positions (index sharing over all layers, uniform budgets,
head-shared selection), the compressed model must produce the logits of the uncompressed model whose
decode steps cannot see the evicted prompt positions. This checks the eviction, the true positions
of new tokens (RoPE) and the decode masks, on every family and attention implementation.
"""

from __future__ import annotations

import pytest
import torch

from windowkv import Policy
from tests.hf.conftest import prompt, tiny_model


def shared_policy(budget=24, selector="window_max", suffix=8):
    return Policy.from_config({
        "budget": budget,
        "classifier": {"type": "fixed", "label": "qa"},
        "allocator": {"type": "uniform"},
        "sharing": {"type": "all_layers"},
        "profiles": {"qa": {"selector": {"type": selector, "window_size": 4}, "suffix_size": suffix}},
    })


@pytest.mark.parametrize("selector", ["window_max", "window_average"])
def test_compressed_decode_matches_masked_full_cache(family, attn, selector):
    model = tiny_model(family, attn)
    ids = prompt(64, seed=4)
    policy = shared_policy(selector=selector)
    with policy.apply(model) as handle:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=6, do_sample=False,
                             pad_token_id=0, eos_token_id=None, output_logits=True, return_dict_in_generate=True)
    run = handle.last_run
    sel = run.selections[0]
    kept = sel.positions[0, 0][sel.valid[0, 0]]
    for layer in range(1, run.num_layers):  # all layers share layer 0's positions
        assert torch.equal(run.selections[layer].positions, sel.positions)
    assert kept.numel() == 24 + 8
    new_tokens = out.sequences[0, ids.shape[1]:]

    # oracle: full prefill, then decode with a 2-D mask hiding the evicted prompt positions
    visible = torch.zeros(ids.shape[1], dtype=torch.long)
    visible[kept] = 1
    with torch.no_grad():
        full = model(ids, use_cache=True)
        cache = full.past_key_values
        torch.testing.assert_close(full.logits[:, -1], out.logits[0], rtol=1e-4, atol=1e-4)
        mask = visible[None]
        for step in range(1, len(new_tokens)):
            mask = torch.cat([mask, torch.ones(1, 1, dtype=torch.long)], dim=-1)
            pos = torch.tensor([[ids.shape[1] + step - 1]])
            logits = model(new_tokens[None, step - 1 : step], attention_mask=mask, position_ids=pos,
                           past_key_values=cache, use_cache=True).logits[:, -1]
            torch.testing.assert_close(logits, out.logits[step], rtol=1e-4, atol=1e-4)


def test_manual_decode_loop_without_positions_uses_true_positions(family):
    """A hand-written loop that passes no position_ids gets the uncompressed model's positions."""
    model = tiny_model(family)
    ids = prompt(64, seed=5)
    policy = shared_policy()
    with policy.apply(model) as handle, torch.no_grad():
        out = model(ids, use_cache=True)
        cache = out.past_key_values
        token = out.logits[:, -1:].argmax(-1)
        compressed = model(token, past_key_values=cache, use_cache=True).logits[:, -1]
    sel = handle.last_run.selections[0]
    visible = torch.zeros(1, ids.shape[1] + 1, dtype=torch.long)
    visible[0, sel.positions[0, 0][sel.valid[0, 0]]] = 1
    visible[0, -1] = 1
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
        expected = model(token, attention_mask=visible, position_ids=torch.tensor([[ids.shape[1]]]),
                         past_key_values=cache, use_cache=True).logits[:, -1]
    torch.testing.assert_close(compressed, expected, rtol=1e-4, atol=1e-4)
