"""Compress a long context once, then continue the same cache turn by turn (docs/engine.md)."""

import copy

import torch

from windowkv import Policy
from windowkv.cache import CompressedLayer
from windowkv.models import load_model

model, tokenizer = load_model()
document = "The archive opened in 1931. " * 60

# --8<-- [start:turns]
policy = Policy.from_preset("windowkv", budget=0.25)
messages = [{"role": "user", "content": document + "\nWhen did the archive open?"}]
with policy.apply(model, tokenizer) as handle:
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                        return_dict=True)["input_ids"]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=8, do_sample=False,
                         return_dict_in_generate=True)
    cache = out.past_key_values                 # compressed at prefill: one CompressedLayer per layer
    layer = cache.layers[0]
    print(f"seen {cache.get_seq_length()} tokens, layer 0 holds {layer.physical_length()} slots, "
          f"{layer.kv_nbytes()} bytes")
    # the next turn: the whole history plus the new message; generate feeds only what the cache has not seen
    follow_up = tokenizer("\nAnd who opened it?", return_tensors="pt", add_special_tokens=False)["input_ids"]
    history = torch.cat([out.sequences, follow_up], dim=-1)
    second = model.generate(history, attention_mask=torch.ones_like(history), max_new_tokens=8,
                            do_sample=False, past_key_values=copy.deepcopy(cache))
# --8<-- [end:turns]

assert isinstance(layer, CompressedLayer) and layer.physical_length() < cache.get_seq_length()
assert second.shape[1] > history.shape[1]
