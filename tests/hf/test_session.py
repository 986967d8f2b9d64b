"""Multi-turn sessions: one compressed context, questions appended turn by turn, clear errors."""

from __future__ import annotations

import copy

import pytest
import torch

from windowkv import Policy, Session, WindowKVError
from windowkv.cache import CompressedLayer
from tests.eval.conftest import train_tokenizer
from tests.hf.conftest import tiny_model
from tests.hf.test_oracle import shared_policy


@pytest.fixture(scope="module")
def tok():
    return train_tokenizer()


def _model(tok):
    return tiny_model("llama", layers=2, vocab_size=len(tok), pad_token_id=tok.pad_token_id,
                      eos_token_id=tok.eos_token_id)


CONTEXT = " ".join(["The river town keeps its old bridge in good repair."] * 12)


def test_the_context_is_compressed_once_and_turns_append_to_the_same_cache(tok, one_torch_thread):
    model = _model(tok)
    policy = shared_policy(budget=16)
    with Session(policy, model, tok, context=CONTEXT) as chat:
        cache = chat.cache
        layer = cache.layers[0]
        assert isinstance(layer, CompressedLayer) and layer.prompt_length == chat.context_tokens
        held = layer.physical_length()
        assert held < chat.context_tokens
        first = chat.ask("What does the town keep?", max_new_tokens=5)
        second = chat.ask("And in what state?", max_new_tokens=5)
        assert isinstance(first, str) and isinstance(second, str) and len(chat.turns) == 2
        assert cache.layers[0] is layer and chat.cache is cache  # the same compressed cache, grown
        assert layer.num_slots == held  # the context's slots were not re-selected
        assert cache.get_seq_length() >= chat.history.shape[1] - 1
    with pytest.raises(WindowKVError, match="session was closed"):
        chat.ask("One more?")
    assert chat.cache is None
    assert model.config._attn_implementation == "sdpa"  # the hooks are gone


def test_turns_equal_one_generate_call_on_the_same_history(tok, one_torch_thread):
    model = _model(tok)
    policy = shared_policy(budget=16)
    with Session(policy, model, tok, context=CONTEXT) as chat:
        context_cache = copy.deepcopy(chat.cache)
        context_ids = chat.history
        chat.ask("What does the town keep?", max_new_tokens=6)
        history = chat.history
    # the same turn by hand: the compressed context, then the turn's tokens fed by generate
    turn_start = context_ids.shape[1]
    with policy.apply(model, tok):
        out = model.generate(history[:, : turn_start + (history.shape[1] - turn_start - 6)],
                             attention_mask=torch.ones(1, history.shape[1] - 6, dtype=torch.long),
                             past_key_values=context_cache, max_new_tokens=6, do_sample=False,
                             pad_token_id=tok.pad_token_id)
    assert torch.equal(out, history)


def test_a_cache_compressed_by_another_policy_is_refused(tok, one_torch_thread):
    model = _model(tok)
    with Session(shared_policy(budget=16), model, tok, context=CONTEXT) as chat:
        cache, history = chat.cache, chat.history
        chat.cache = None  # handed over: closing must not end it
    other = Policy.from_preset("snapkv", budget=16)
    with pytest.raises(WindowKVError, match="compressed by policy 'custom'.*cannot be appended with policy 'snapkv'"):
        Session(other, model, tok, cache=cache, history=history)
    assert model.config._attn_implementation == "sdpa"
    with Session(shared_policy(budget=16), model, tok, cache=cache, history=history) as resumed:
        assert isinstance(resumed.ask("What does the town keep?", max_new_tokens=3), str)


def test_bad_arguments(tok):
    model = _model(tok)
    with pytest.raises(ValueError, match="either context="):
        Session(shared_policy(), model, tok)
    with pytest.raises(ValueError, match="needs history="):
        Session(shared_policy(), model, tok, cache=object())
