"""The policy's lifecycle hooks: after prefill, every N decode steps, at a new turn, at request end."""

from __future__ import annotations

from typing import ClassVar

import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from tests.hf.conftest import prompt, tiny_model
from tests.hf.test_oracle import shared_policy


class RecordingPolicy(Policy):
    """Policies are stateless configurations: the calls go to a class-level log the tests clear."""

    decode_interval: ClassVar[int | None] = 3
    calls: ClassVar[list[tuple]] = []

    def on_prefill_end(self, run, cache):
        self.calls.append(("prefill_end", run is not None, sum(isinstance(l, CompressedLayer) for l in cache.layers)))

    def on_decode_step(self, run, cache, step):
        self.calls.append(("decode_step", step, cache.get_seq_length()))

    def on_new_turn(self, run, cache, num_new_tokens):
        self.calls.append(("new_turn", num_new_tokens, cache.get_seq_length()))

    def on_request_end(self, run, cache):
        self.calls.append(("request_end", cache.get_seq_length()))


def test_hooks_are_called_in_order_with_the_run_and_cache(one_torch_thread):
    model = tiny_model("llama")
    policy = RecordingPolicy.from_config(shared_policy().to_config())
    policy.calls.clear()
    ids = prompt(64, seed=4)
    with policy.apply(model):
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=7, do_sample=False,
                             pad_token_id=0, eos_token_id=None, return_dict_in_generate=True)
        assert policy.calls == [("prefill_end", True, 4), ("decode_step", 3, 66), ("decode_step", 6, 69),
                                ("request_end", 70)]
        policy.calls.clear()
        hist = torch.cat([out.sequences, prompt(4, seed=9)], dim=-1)
        model.generate(hist, attention_mask=torch.ones_like(hist), max_new_tokens=2, do_sample=False,
                       pad_token_id=0, eos_token_id=None, past_key_values=out.past_key_values)
    assert policy.calls == [("new_turn", 5, 70), ("request_end", 76)]


def test_an_uncompressed_run_calls_no_decode_hooks(one_torch_thread):
    model = tiny_model("llama")
    policy = RecordingPolicy.from_config(shared_policy(budget=10_000).to_config())
    policy.calls.clear()
    ids = prompt(32, seed=4)
    with policy.apply(model):
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                       pad_token_id=0, eos_token_id=None)
    assert policy.calls == [("prefill_end", True, 0), ("request_end", 35)]
