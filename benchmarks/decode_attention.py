"""One decode step of one layer over a compressed cache at a fixed byte budget: cache read + attention.

    .venv/bin/python benchmarks/decode_attention.py --length 4096 --budget "12% bytes"

For each policy, builds the compressed layer the policy's stages would hold for a ``--length``-token prompt
of the embedded model's geometry (SmolLM2-135M: 3 KV heads, 9 query heads, head dim 64, float32) at the byte
budget (slots from :func:`windowkv.cache.nbytes.byte_cost`, random keys and values), then times one decode step
of one layer: append a token and attend as windowkv's attention function does (quantized and channel-pruned
slots read as stored; those layers are also timed the way they were read before, dequantized / zero-filled
for ``sdpa``), merge weights included. Policies are timed alternately in one process (``torch.utils.benchmark``,
blocked autorange), so the printed ratios to the full cache hold on a shared machine; end-to-end decode adds
the model's MLPs and projections, which do not depend on the cache.
"""

from __future__ import annotations

import argparse
import json
import math

import torch
from torch.nn.functional import scaled_dot_product_attention
from torch.utils.benchmark import Timer

from windowkv import Policy
from windowkv.cache import CompressedLayer
from windowkv.cache.nbytes import byte_cost

KV_HEADS, Q_HEADS, HEAD_DIM, LAYERS = 3, 9, 64, 30


def build_layer(policy: Policy, length: int) -> CompressedLayer:
    cost = byte_cost(policy, LAYERS, KV_HEADS, HEAD_DIM, torch.float32)
    suffix = max(p.suffix_size for p in policy.profiles.values())
    review = length - suffix
    slots = length if policy.budget.ratio == 1.0 else min(
        length, suffix + math.floor(policy.budget.average(review, suffix_size=suffix, cost=cost)))
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(1, KV_HEADS, slots, HEAD_DIM, generator=g)
    values = torch.randn(1, KV_HEADS, slots, HEAD_DIM, generator=g)
    positions = torch.arange(slots)[None, None]
    valid = torch.ones(1, 1, slots, dtype=torch.bool)
    weights = torch.rand(1, KV_HEADS, slots, generator=g) + 1 if policy.merger is not None else None
    channels = None
    if policy.channel_pruner is not None:
        c = policy.channel_pruner.num_channels(HEAD_DIM)
        channels = torch.arange(c)[None, None].expand(1, KV_HEADS, c)
        keys = keys[..., :c]
    return CompressedLayer(keys, values, positions, valid, length, weights=weights, key_channels=channels,
                           head_dim=HEAD_DIM, codec=policy.quantizer)


def step(layer: CompressedLayer, query: torch.Tensor, new: torch.Tensor, dense: bool = False) -> torch.Tensor:
    """One decode step as windowkv's attention function runs it: slots read as stored when the layer can
    (quantized codes, pruned channels), else (or with ``dense``) dequantized / zero-filled for ``sdpa``."""
    layer.expect_update = True
    keys, values = layer.update(new, new)
    out = None
    if not dense and layer.can_attend_stored(1):
        out = layer.attend_stored(query, None, HEAD_DIM ** -0.5)
    if out is None:
        if layer.stored_keys is not None:
            keys, values = layer.dense()
        mask = layer.attention_mask(None, 1, Q_HEADS, "sdpa", torch.float32)
        out = scaled_dot_product_attention(query, keys, values, attn_mask=mask, enable_gqa=True)
    layer.crop(-1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--budget", default="12% bytes")
    parser.add_argument("--policies", default="full,windowkv,windowkv_keepkv,windowkv_int4,windowkv_int2,windowkv_think")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    layers = {}
    for name in args.policies.split(","):
        policy = Policy.from_preset(name, budget=args.budget)
        if name == "full":
            policy = Policy.from_preset("windowkv", budget=1.0)
        layers[name] = build_layer(policy, args.length)
    query = torch.randn(1, Q_HEADS, 1, HEAD_DIM)
    new = torch.randn(1, KV_HEADS, 1, HEAD_DIM)
    # slots stored quantized or channel-pruned are also timed dequantized for sdpa (the path before packed decode)
    variants = [(name, False) for name in layers]
    variants += [(name, True) for name, layer in layers.items() if layer.stored_keys is not None]
    times: dict[tuple[str, bool], list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds):  # alternate: every variant once per round
        for name, dense in variants:
            timer = Timer("step(layer, query, new, dense)",
                          globals={"step": step, "layer": layers[name], "query": query, "new": new, "dense": dense})
            times[name, dense].append(timer.blocked_autorange(min_run_time=0.5).median)
    base = min(times["full", False]) if ("full", False) in times else None
    for name, dense in variants:
        layer, best = layers[name], min(times[name, dense])
        print(json.dumps({"policy": name, "slots_read": "dense" if dense else "as stored", "length": args.length,
                          "budget": args.budget, "slots": layer.num_slots, "kv_nbytes_layer": layer.kv_nbytes(),
                          "step_ms": round(best * 1e3, 3),
                          "steps_per_s_ratio_to_full": round(base / best, 2) if base else None}), flush=True)


if __name__ == "__main__":
    main()
