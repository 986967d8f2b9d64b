"""Continuing on a compressed cache: a second ``generate``, prefix caching, hand-written loops.

A compressed layer reports the logical length, so ``generate`` feeds only the tokens the cache has
not seen, at their true positions; the result equals the uncompressed model whose attention cannot
see the evicted prompt positions (the oracle of ``test_oracle.py``).
"""

from __future__ import annotations

import copy

import pytest
import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from windowkv.errors import WindowKVError
from tests.hf.conftest import prompt, tiny_model
from tests.hf.test_oracle import shared_policy


def _count_fed_tokens(model):
    fed = []
    hook = model.register_forward_pre_hook(
        lambda m, args, kwargs: fed.append(kwargs["input_ids"].shape[1]), with_kwargs=True)
    return fed, hook


def test_second_generate_feeds_only_the_unseen_tokens(one_torch_thread):
    """The issue's reproduction: 100-token prompt, 5 new tokens, then 6 more user tokens."""
    model = tiny_model("llama")
    ids = prompt(100, seed=1)
    policy = Policy.from_preset("windowkv", 16)
    with policy.apply(model, task="qa"):
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=5, do_sample=False,
                             pad_token_id=0, eos_token_id=None, return_dict_in_generate=True)
        cache = out.past_key_values
        assert cache.get_seq_length() == 104  # the last generated token is not in the cache yet
        assert all(isinstance(layer, CompressedLayer) for layer in cache.layers)
        assert cache.layers[0].physical_length() < 104
        hist = torch.cat([out.sequences, prompt(6, seed=2)], dim=-1)
        fed, hook = _count_fed_tokens(model)
        try:
            model.generate(hist, attention_mask=torch.ones_like(hist), max_new_tokens=1, do_sample=False,
                           pad_token_id=0, eos_token_id=None, past_key_values=cache)
        finally:
            hook.remove()
    assert fed == [7]


def _masked_oracle_logits(model, tokens, visible_prompt, prompt_length):
    """Logits of ``tokens[prompt_length:]`` fed one forward after a full prefill, with the prompt
    positions outside ``visible_prompt`` hidden."""
    mask = torch.ones(1, tokens.shape[1], dtype=torch.long)
    mask[0, :prompt_length] = 0
    mask[0, visible_prompt] = 1
    with torch.no_grad():
        cache = model(tokens[:, :prompt_length], use_cache=True).past_key_values
        pos = torch.arange(prompt_length, tokens.shape[1])[None]
        return model(tokens[:, prompt_length:], attention_mask=mask, position_ids=pos, past_key_values=cache,
                     use_cache=True).logits


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_continuation_equals_the_masked_uncompressed_model(family, attn, one_torch_thread):
    model = tiny_model(family, attn)
    ids = prompt(64, seed=4)
    policy = shared_policy()
    with policy.apply(model) as handle:
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=4, do_sample=False,
                             pad_token_id=0, eos_token_id=None, return_dict_in_generate=True)
        hist = torch.cat([out.sequences, prompt(6, seed=7)], dim=-1)
        cont = model.generate(hist, attention_mask=torch.ones_like(hist), max_new_tokens=1, do_sample=False,
                              pad_token_id=0, eos_token_id=None, past_key_values=out.past_key_values,
                              output_logits=True, return_dict_in_generate=True)
    sel = handle.last_run.selections[0]
    kept = sel.positions[0, 0][sel.valid[0, 0]]
    expected = _masked_oracle_logits(model, hist, kept, ids.shape[1])[:, -1]
    torch.testing.assert_close(cont.logits[0], expected, rtol=1e-4, atol=1e-4)


def test_prefix_cache_copies_continue_independently(one_torch_thread):
    """transformers' prefix-cache pattern: compress a shared prefix once, deep-copy it per question."""
    model = tiny_model("qwen3")
    ids = prompt(80, seed=3)
    policy = shared_policy()
    with policy.apply(model), torch.no_grad():
        prefix_cache = model(ids, use_cache=True).past_key_values
        answers = []
        for seed in (11, 12):
            question = torch.cat([ids, prompt(5, seed=seed)], dim=-1)
            out = model.generate(question, attention_mask=torch.ones_like(question), max_new_tokens=4,
                                 do_sample=False, pad_token_id=0, eos_token_id=None,
                                 past_key_values=copy.deepcopy(prefix_cache))
            answers.append(out[:, question.shape[1]:])
        assert prefix_cache.get_seq_length() == 80  # the shared prefix is untouched
        # the same question on a fresh compression gives the same answer
        question = torch.cat([ids, prompt(5, seed=12)], dim=-1)
        cache = model(ids, use_cache=True).past_key_values
        again = model.generate(question, attention_mask=torch.ones_like(question), max_new_tokens=4,
                               do_sample=False, pad_token_id=0, eos_token_id=None, past_key_values=cache)
    assert torch.equal(again[:, question.shape[1]:], answers[1])


def test_a_cache_compressed_by_another_policy_is_refused(one_torch_thread):
    model = tiny_model("llama")
    ids = prompt(64, seed=4)
    with shared_policy().apply(model), torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    token = ids[:, -1:]
    with shared_policy(budget=30).apply(model), torch.no_grad(), pytest.raises(ValueError, match="another model or policy"):
        model(token, past_key_values=cache, use_cache=True)


def test_a_compressed_cache_without_its_policy_is_refused(one_torch_thread):
    model = tiny_model("llama", "eager")
    ids = prompt(64, seed=4)
    with shared_policy().apply(model), torch.no_grad():
        cache = model(ids, use_cache=True).past_key_values
    with torch.no_grad(), pytest.raises(WindowKVError, match="policy is applied"):
        model(ids[:, -1:], past_key_values=cache, use_cache=True)


def test_the_attention_implementation_is_restored(one_torch_thread):
    model = tiny_model("mistral", "eager")
    with shared_policy().apply(model):
        assert model.config._attn_implementation == "windowkv_eager"
    assert model.config._attn_implementation == "eager"
    assert "generate" not in model.__dict__


def test_a_second_policy_on_the_same_model_is_refused_while_the_first_is_applied(one_torch_thread):
    from windowkv.errors import UnsupportedModelError

    model = tiny_model("llama")
    with shared_policy().apply(model), pytest.raises(UnsupportedModelError, match="already applied"):
        shared_policy(budget=30).apply(model)
    with shared_policy(budget=30).apply(model):  # after the first is removed
        pass
