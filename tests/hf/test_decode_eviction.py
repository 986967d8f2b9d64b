"""Eviction while decoding through the lifecycle hooks: recent queries, re-scoring and ``retain``."""

from __future__ import annotations

from typing import ClassVar

import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from tests.hf.conftest import prompt, tiny_model
from tests.hf.test_oracle import shared_policy


class DropOldAppendedPolicy(Policy):
    """Every 3 steps, forget the tokens appended since the last call but the last 2 (the same positions in
    every layer); kept ones become slots."""

    decode_interval: ClassVar[int | None] = 3

    def on_decode_step(self, run, cache, step):
        for layer in cache.layers:
            positions, _ = layer.slot_positions()
            keep = torch.arange(layer.physical_length())
            keep = keep[(keep < layer.num_slots) | (keep >= layer.physical_length() - 2)]
            layer.retain(keep[None, None].expand(positions.shape[0], 1, -1),
                         torch.ones(positions.shape[0], 1, keep.numel(), dtype=torch.bool))


def test_decode_eviction_equals_the_masked_uncompressed_model(family, one_torch_thread):
    model = tiny_model(family)
    ids = prompt(48, seed=4)
    policy = DropOldAppendedPolicy.from_config(shared_policy().to_config())
    with policy.apply(model) as handle:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                             pad_token_id=0, eos_token_id=None, output_logits=True, return_dict_in_generate=True)
    sel = handle.last_run.selections[0]
    kept = set(sel.positions[0, 0][sel.valid[0, 0]].tolist())
    tokens = out.sequences
    n = ids.shape[1]
    # oracle: full cache, 2-D mask showing what the compressed cache holds at each step
    with torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
        slots, appended = set(kept), []
        for step in range(1, 10):
            pos = n + step - 1  # the token fed at this step
            if step % 3 == 0:  # the hook runs before this decode step's forward: the last 2 appended stay
                slots |= set(appended[-2:])
                appended = []
            appended.append(pos)
            mask = torch.zeros(1, pos + 1, dtype=torch.long)
            mask[0, sorted(slots | set(appended))] = 1
            logits = model(tokens[:, pos:pos + 1], attention_mask=mask, position_ids=torch.tensor([[pos]]),
                           past_key_values=cache, use_cache=True).logits[:, -1]
            torch.testing.assert_close(logits, out.logits[step], rtol=1e-4, atol=1e-4)


class RecentAttentionBudgetPolicy(Policy):
    """R-KV-style: every 4 steps, keep the 24 slots the last 4 queries attended to most (per KV head)."""

    decode_interval: ClassVar[int | None] = 4
    recent_query_window: ClassVar[int] = 4
    budget_slots: ClassVar[int] = 24

    def on_decode_step(self, run, cache, step):
        for layer in cache.layers:
            scores = layer.recent_attention()  # [B, H_kv, K]
            _, valid = layer.slot_positions()
            scores = scores.masked_fill(~valid.expand_as(scores), -1.0)
            k = min(self.budget_slots, scores.shape[-1])
            top = scores.topk(k, dim=-1).indices.sort(-1).values
            layer.retain(top, torch.ones_like(top, dtype=torch.bool))


def _cache(kwargs):
    return kwargs.get("cache") if kwargs.get("cache") is not None else kwargs["past_key_values"]


def test_the_decode_budget_holds_at_every_step(one_torch_thread):
    model = tiny_model("qwen2")
    ids = torch.cat([prompt(60, seed=1), prompt(60, seed=2)])
    mask = torch.ones_like(ids)
    mask[1, :20] = 0
    policy = RecentAttentionBudgetPolicy.from_config(shared_policy(budget=16).to_config())
    held = []
    with policy.apply(model) as handle:
        hook = model.register_forward_pre_hook(
            lambda m, a, kw: held.append([l.physical_length() for l in _cache(kw).layers
                                          if isinstance(l, CompressedLayer)]), with_kwargs=True)
        out = model.generate(ids, attention_mask=mask, max_new_tokens=40, do_sample=False, pad_token_id=0,
                             eos_token_id=None, return_dict_in_generate=True)
        hook.remove()
    assert out.sequences.shape[1] == 60 + 40
    held = [h for h in held if h]  # decode forwards
    assert max(max(h) for h in held) <= 24 + 4  # budget + one interval of new tokens
    cache = out.past_key_values
    assert cache.get_seq_length() == 60 + 39
    layer = cache.layers[0]
    positions, valid = layer.slot_positions()
    assert positions.shape[1] == 2  # per KV head after re-scoring
    assert bool((positions[valid] < 60 + 39).all())
    assert handle.last_run is not None
