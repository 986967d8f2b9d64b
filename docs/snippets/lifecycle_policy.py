"""A policy that acts after prefill and every 16 decode steps (docs/engine.md)."""

from typing import ClassVar

import torch

from windowkv import Policy
from windowkv.models import load_model

model, tokenizer = load_model()


# --8<-- [start:hooks]
class CountingPolicy(Policy):
    """WindowKV that reports the cache it holds while decoding."""

    decode_interval: ClassVar[int | None] = 16          # on_decode_step every 16 new tokens

    def on_prefill_end(self, run, cache):
        print("kept prompt tokens per layer:", [row[0] for row in run.kept_tokens()])

    def on_decode_step(self, run, cache, step):
        held = sum(layer.physical_length() for layer in cache.layers)
        print(f"step {step}: {cache.get_seq_length()} tokens seen, {held} slots held over all layers")


policy = CountingPolicy.from_config({"preset": "windowkv", "budget": 0.25})
# --8<-- [end:hooks]

ids = tokenizer("word " * 400, return_tensors="pt")["input_ids"]
with policy.apply(model, task="other"):
    model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=33, do_sample=False)
