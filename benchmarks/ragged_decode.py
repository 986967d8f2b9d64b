"""Decode speed of ragged head-wise storage against the padded layout (same slots, same policy).

    .venv/bin/python benchmarks/ragged_decode.py --length 4096 --budget 0.12

Two measurements, each timing the two layouts alternately in one process (``torch.utils.benchmark``,
blocked autorange, ``--rounds`` rounds), in CPU time of the (single) compute thread by default
(``--clock wall`` for elapsed time), so the printed ratio holds on a shared machine:

- ``op``: one decode step of one layer through windowkv's attention function (append a token, build the
  mask, attend) at the embedded model's geometry (SmolLM2-135M: 9 query heads, 3 KV heads, head dim 64,
  float32). The three KV heads keep AdaKV-like shares of the budget (0.4x, 0.9x, 1.7x the per-head
  budget, plus the 32-token suffix), the padded layout sizes all three by the fullest;
- ``model``: ``--steps`` decode steps (per step) of a random-weight 4-layer Llama of that
  attention geometry after an ``adakv``
  prefill of a ``--length``-token prompt (``policy.apply(model, layout=...)``), MLPs and projections
  included.

Prints one JSON line per measurement with ``ragged_over_padded`` = ragged tokens/s / padded tokens/s (of the
best steps) and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch
import transformers
from torch.utils.benchmark import Timer

from windowkv import Policy
from windowkv.cache import CompressedLayer, make_attention

KV_HEADS, Q_HEADS, HEAD_DIM, SUFFIX = 3, 9, 64, 32
SHARES = (0.4, 0.9, 1.7)  # per-head share of the per-head budget (sums to 3: the layer's total is unchanged)


def _config(layers: int) -> transformers.LlamaConfig:
    return transformers.LlamaConfig(hidden_size=Q_HEADS * HEAD_DIM, num_attention_heads=Q_HEADS,
                                    num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM, num_hidden_layers=layers,
                                    intermediate_size=1536, vocab_size=256, max_position_embeddings=8192,
                                    attn_implementation="sdpa")


def headwise_layer(length: int, budget: float, layout: str, appended: int) -> CompressedLayer:
    """A layer whose KV heads keep ``SHARES`` of ``budget x (length - SUFFIX)`` review slots, plus the suffix."""
    review = length - SUFFIX
    counts = [min(review, round(s * budget * review)) + SUFFIX for s in SHARES]
    width = max(counts)
    g = torch.Generator().manual_seed(0)
    keys = torch.randn(1, KV_HEADS, width, HEAD_DIM, generator=g)
    values = torch.randn(1, KV_HEADS, width, HEAD_DIM, generator=g)
    valid = torch.arange(width)[None, None] < torch.tensor(counts)[None, :, None]
    positions = torch.arange(width)[None, None].expand(1, KV_HEADS, width).clone()
    layer = CompressedLayer(keys, values, positions, valid, length, layout=layout)
    for _ in range(appended):  # tokens decoded before the timed step
        layer.expect_update = True
        layer.update(torch.randn(1, KV_HEADS, 1, HEAD_DIM, generator=g), torch.randn(1, KV_HEADS, 1, HEAD_DIM))
    return layer


def op_step(attention, module, layer: CompressedLayer, query: torch.Tensor, new: torch.Tensor) -> torch.Tensor:
    layer.expect_update = True
    keys, values = layer.update(new, new)
    out, _ = attention(module, query, keys, values, None, scaling=HEAD_DIM ** -0.5, dropout=0.0,
                       windowkv_cache_layer=layer)
    layer.crop(-1)
    return out


CLOCK = time.thread_time  # CPU time of this thread (one intra-op thread): waiting for a core is not counted


def best(stmt: str, rounds: int, **env) -> list[float]:
    return [Timer(stmt, globals=env, timer=CLOCK).blocked_autorange(min_run_time=0.5).median for _ in range(rounds)]


def measure_op(args: argparse.Namespace) -> dict:
    module = transformers.models.llama.modeling_llama.LlamaAttention(_config(1), 0).eval()
    attention = make_attention("sdpa")
    query, new = torch.randn(1, Q_HEADS, 1, HEAD_DIM), torch.randn(1, KV_HEADS, 1, HEAD_DIM)
    layers = {layout: headwise_layer(args.length, args.budget, layout, args.appended) for layout in ("padded", "auto")}
    assert layers["auto"].ragged is not None
    times = {k: [] for k in layers}
    for _ in range(args.rounds):  # alternate the layouts
        for layout, layer in layers.items():
            times[layout] += best("op_step(attention, module, layer, query, new)", 1, op_step=op_step,
                                  attention=attention, module=module, layer=layer, query=query, new=new)
    return {"measure": "op", "length": args.length, "budget": args.budget, **_ratios(times),
            "kv_nbytes_padded": layers["padded"].kv_nbytes(), "kv_nbytes_ragged": layers["auto"].kv_nbytes()}


def _ratios(times: dict[str, list[float]]) -> dict:
    """Best step of each layout, and the ratio of tokens/s (ragged over padded): of the best steps, and the
    median of the per-round ratios (each round times both layouts back to back: robust to load drift)."""
    padded, ragged = times["padded"], times["auto"]
    per_round = sorted(p / r for p, r in zip(padded, ragged))
    return {"padded_step_ms": round(min(padded) * 1e3, 3), "ragged_step_ms": round(min(ragged) * 1e3, 3),
            "ragged_over_padded": round(min(padded) / min(ragged), 3),
            "ragged_over_padded_median_of_rounds": round(per_round[len(per_round) // 2], 3)}


def measure_model(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(_config(4)).eval()
    ids = torch.randint(3, 256, (1, args.length), generator=torch.Generator().manual_seed(1))
    policy = Policy.from_preset("adakv", budget=args.budget)
    caches, handles = {}, {}
    for layout in ("padded", "auto"):
        handles[layout] = policy.apply(model, layout=layout)
        with torch.no_grad():
            caches[layout] = model(ids, attention_mask=torch.ones_like(ids)).past_key_values
        handles[layout].remove()
    token = torch.tensor([[5]])

    def decode(layout: str) -> float:
        """Seconds of ``--steps`` decode steps on a fresh copy of the compressed cache (copy not timed)."""
        cache = copy.deepcopy(caches[layout])
        with policy.apply(model, layout=layout), torch.no_grad():
            start = CLOCK()
            for _ in range(args.steps):
                model(token, past_key_values=cache, use_cache=True)
            return CLOCK() - start

    decode("padded"), decode("auto")  # warm-up
    times = {"padded": [], "auto": []}
    for _ in range(args.rounds):  # alternate the layouts
        for layout in times:
            times[layout].append(decode(layout))
    ragged_layers = sum(isinstance(x, CompressedLayer) and x.ragged is not None for x in caches["auto"].layers)
    times = {k: [t / args.steps for t in v] for k, v in times.items()}
    return {"measure": "model", "length": args.length, "budget": args.budget, "steps": args.steps,
            "ragged_layers": ragged_layers, **_ratios(times)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--budget", type=float, default=0.12, help="ratio of the review tokens kept per head")
    parser.add_argument("--appended", type=int, default=64, help="tokens decoded before the timed step (op)")
    parser.add_argument("--steps", type=int, default=16, help="decode steps per timed run (model)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--only", choices=("op", "model"), default=None)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                        help="cpu: this thread's CPU time (robust on a shared machine); wall: elapsed time")
    args = parser.parse_args()
    global CLOCK
    CLOCK = time.thread_time if args.clock == "cpu" else time.perf_counter
    torch.set_num_threads(1)
    for name, fn in (("op", measure_op), ("model", measure_model)):
        if args.only in (None, name):
            print(json.dumps(fn(args)), flush=True)


if __name__ == "__main__":
    main()
