"""Byte budgets (docs/beyond_eviction.md): equal bytes, more slots at lower precision, measured bytes."""

import torch

# --8<-- [start:bytes]
from windowkv import Policy
from windowkv.models import load_model

model, tokenizer = load_model()
ids = torch.randint(3, 200, (1, 1024))  # a 1024-token prompt
held = {}
for name in ("windowkv", "windowkv_keepkv", "windowkv_think", "windowkv_int4", "windowkv_int2"):
    policy = Policy.from_preset(name, budget="12% bytes")  # 12% of the full cache's bytes
    with policy.apply(model, task="qa") as handle, torch.no_grad():
        model(ids, use_cache=True)
    run = handle.last_run
    held[name] = run.kv_nbytes  # measured from the cache's tensors after the prefill
    print(f"{name:16} layer 0 keeps {sum(run.kept_tokens()[0]):4} prompt slots; the cache holds {run.kv_nbytes} bytes")
# --8<-- [end:bytes]

full = 1024 * 4 * 2 * 2 * 16 * 4  # tokens x layers x (keys, values) x KV heads x head dim x float32
assert all(0.09 * full < b <= 0.121 * full for b in held.values()), {k: v / full for k, v in held.items()}
