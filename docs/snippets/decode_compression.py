"""Bound the KV cache while generating: decode-time compression as policy configuration (docs/lifecycle.md)."""

import torch

from windowkv import Policy
from windowkv.models import load_model

model, tokenizer = load_model()
ids = tokenizer("word " * 300, return_tensors="pt")["input_ids"]

# --8<-- [start:decode]
# WindowKV at prefill, then R-KV-style budget + buffer while generating: every 64 new tokens, the
# last 16 queries re-score each layer's slots and it is evicted back to 256 slots per KV head
policy = Policy.from_config({"preset": "windowkv", "budget": 0.25,
                             "decode": {"budget": 256, "interval": 64, "window": 16}})
# CORM: a key stays while any of the last 16 queries attended to it; evicts at every step
corm = Policy.from_preset("corm", budget=240)          # 240 + 16 suffix = 256 slots per KV head

with policy.apply(model, task="other"):
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=400, min_new_tokens=400,
                         do_sample=False, return_dict_in_generate=True)
held = [layer.physical_length() for layer in out.past_key_values.layers]
print(f"{out.past_key_values.get_seq_length()} tokens seen, at most {max(held)} slots held per layer")
# --8<-- [end:decode]

assert max(held) <= 256 + 64
assert corm.decode.reduce == "max" and corm.decode_interval == 1
