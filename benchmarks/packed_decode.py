"""End-to-end decode speed with quantized / channel-pruned slots read as stored against dequantized.

    .venv/bin/python benchmarks/packed_decode.py --length 2048 --new-tokens 16 --rounds 4

For each policy: one prefill of a ``--length``-token prompt on the embedded model (SmolLM2-135M, float32,
``sdpa``, one thread), then ``--new-tokens`` greedy tokens decoded from a copy of the compressed cache,
``--rounds`` times per mode, the modes alternating (so a shared machine slows both alike): ``packed``
(:meth:`~windowkv.cache.layer.CompressedLayer.packed_attention`) and ``dense`` (the slots dequantized /
zero-filled for the model's ``sdpa``, the path before packed decode). Prints tokens/s per run, whether both
modes generated the same tokens, and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
from transformers import DynamicCache

from windowkv import Policy
from windowkv.bench.prompts import bench_prompt
from windowkv.cache import CompressedLayer
from windowkv.models import load_model

READ_AS_STORED = CompressedLayer.can_attend_stored


def _dense_slots(layer: CompressedLayer, query_length: int, **kwargs) -> bool:
    """``can_attend_stored`` for ragged slots only: quantized and pruned slots go through ``dense()``."""
    return layer.ragged is not None and READ_AS_STORED(layer, query_length, **kwargs)


def decode(model, cache, first: torch.Tensor, steps: int) -> tuple[float, list[int]]:
    """Tokens/s and the tokens of ``steps`` greedy steps from a copy of ``cache``."""
    cache, token, tokens = copy.deepcopy(cache), first, []
    start = time.perf_counter()
    for _ in range(steps):
        token = model(token, past_key_values=cache, use_cache=True).logits[:, -1].argmax(-1, keepdim=True)
        tokens.append(int(token))
    return steps / (time.perf_counter() - start), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=2048)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--budget", default="12% bytes")
    parser.add_argument("--policies", default="windowkv_int4,windowkv_int2,windowkv_think")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, tokenizer = load_model(None, dtype="float32", device="cpu", attn_implementation="sdpa")
    ids = bench_prompt(tokenizer, args.length)
    for name in args.policies.split(","):
        policy = Policy.from_preset(name, budget=args.budget)
        speeds: dict[str, list[float]] = {"packed": [], "dense": []}
        tokens: dict[str, list[int]] = {}
        with policy.apply(model, tokenizer=tokenizer), torch.no_grad():
            cache = DynamicCache(config=model.config)
            first = model(ids, past_key_values=cache, use_cache=True).logits[:, -1].argmax(-1, keepdim=True)
            try:
                for r in range(args.rounds):
                    for mode in ("packed", "dense") if r % 2 == 0 else ("dense", "packed"):
                        CompressedLayer.can_attend_stored = READ_AS_STORED if mode == "packed" else _dense_slots
                        speed, tokens[mode] = decode(model, cache, first, args.new_tokens)
                        speeds[mode].append(speed)
            finally:
                CompressedLayer.can_attend_stored = READ_AS_STORED
        ratios = sorted(p / d for p, d in zip(speeds["packed"], speeds["dense"]))
        print(json.dumps({"policy": name, "length": args.length, "budget": args.budget, "tokens_per_s": speeds,
                          "same_tokens": tokens["packed"] == tokens["dense"],
                          "packed_over_dense": round(ratios[len(ratios) // 2], 3)}), flush=True)


if __name__ == "__main__":
    main()
