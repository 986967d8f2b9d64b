"""A tiny random-weight Llama with a real (small, trained-in-memory) tokenizer, saved to a directory.

The runner and the CLI load models with :func:`windowkv.models.load_model(path)`, so their tests need a
model on disk; this one takes well under a second to build and save.
"""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from tests.eval.conftest import train_tokenizer


def save_tiny_model(path: str | Path, *, layers: int = 2, max_positions: int = 1024, seed: int = 0) -> Path:
    """Write a 2-layer, hidden-64 Llama (4 heads, 2 KV heads) and its ChatML tokenizer to ``path``."""
    path = Path(path)
    tokenizer = train_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=max_positions,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(seed)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
