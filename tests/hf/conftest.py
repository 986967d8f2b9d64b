"""Tiny random-weight decoders of every supported family, built in memory."""

from __future__ import annotations

import pytest
import torch
import transformers

FAMILIES = {
    "llama": (transformers.LlamaConfig, transformers.LlamaForCausalLM),
    "mistral": (transformers.MistralConfig, transformers.MistralForCausalLM),
    "qwen2": (transformers.Qwen2Config, transformers.Qwen2ForCausalLM),
    "qwen3": (transformers.Qwen3Config, transformers.Qwen3ForCausalLM),
}
VOCAB = 256


def tiny_model(family: str = "llama", attn: str = "sdpa", layers: int = 4, seed: int = 0, **overrides):
    """A random-weight model: hidden 64, 4 query heads, 2 KV heads (GQA), head dim 16."""
    config_cls, model_cls = FAMILIES[family]
    kwargs = dict(
        hidden_size=64, num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=128, vocab_size=VOCAB, head_dim=16, max_position_embeddings=4096,
        attn_implementation=attn, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    kwargs.update(overrides)
    torch.manual_seed(seed)
    return model_cls(config_cls(**kwargs)).eval()


def prompt(length: int, seed: int = 0) -> torch.Tensor:
    """``[1, length]`` random token ids that avoid the special tokens 0-2."""
    return torch.randint(3, VOCAB, (1, length), generator=torch.Generator().manual_seed(seed))


def greedy(model, ids, mask=None, new=12, **kwargs):
    mask = torch.ones_like(ids) if mask is None else mask
    out = model.generate(ids, attention_mask=mask, max_new_tokens=new, do_sample=False, pad_token_id=0,
                         eos_token_id=None, **kwargs)
    return out[:, ids.shape[1]:]


@pytest.fixture(params=sorted(FAMILIES))
def family(request):
    return request.param


@pytest.fixture(params=["eager", "sdpa"])
def attn(request):
    return request.param
