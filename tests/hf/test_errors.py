"""Bad input to the transformers integration gets a clear error, never a silently wrong cache."""

from __future__ import annotations

import pytest
import torch
import transformers

from windowkv import Policy, UnsupportedModelError
from tests.hf.conftest import greedy, prompt, tiny_model


def test_unsupported_architecture_names_the_supported_ones():
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64)
    model = transformers.GPT2LMHeadModel(config)
    with pytest.raises(UnsupportedModelError, match="supported: llama, mistral, qwen2, qwen3"):
        Policy.from_preset("windowkv", budget=8).apply(model, task="qa")


def test_unsupported_attention_implementation():
    model = tiny_model("llama")
    model.config._attn_implementation = "flex_attention"
    with pytest.raises(UnsupportedModelError, match="eager, sdpa"):
        Policy.from_preset("windowkv", budget=8).apply(model, task="qa")


def test_static_cache_is_refused():
    model = tiny_model("llama")
    with Policy.from_preset("windowkv", budget=8).apply(model, task="qa"):
        with pytest.raises(UnsupportedModelError, match="static"):
            greedy(model, prompt(64), cache_implementation="static")


def test_right_padding_is_refused():
    model = tiny_model("llama")
    ids = torch.cat([prompt(64), prompt(64, seed=1)])
    mask = torch.ones_like(ids)
    mask[1, -10:] = 0
    with Policy.from_preset("windowkv", budget=8).apply(model, task="qa"):
        with pytest.raises(ValueError, match="left padding"):
            with torch.no_grad():
                model(ids, attention_mask=mask, use_cache=True)


def test_text_classifier_without_tokenizer_is_refused():
    model = tiny_model("llama")
    with pytest.raises(ValueError, match="tokenizer"):
        Policy.from_preset("windowkv", budget=8).apply(model)


def test_unknown_task_lists_the_profiles():
    with pytest.raises(ValueError, match="other.*qa"):
        Policy.from_preset("windowkv", budget=8).apply(tiny_model("llama"), task="summary")


@pytest.mark.parametrize("length", [1, 2, 20, 32, 33])
def test_prompts_no_longer_than_the_suffix_are_kept_whole(length):
    model = tiny_model("llama")
    ids = prompt(length, seed=3)
    expected = greedy(model, ids, new=4)
    with Policy.from_preset("windowkv", budget=1).apply(model, task="qa") as handle:
        got = greedy(model, ids, new=4)
    assert torch.equal(got, expected)
    assert not handle.last_run.active
