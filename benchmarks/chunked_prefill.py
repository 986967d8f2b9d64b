"""Peak memory of a long prefill: full cache, one-shot compressed prefill, chunked prefill under the budget.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/chunked_prefill.py                       # tiny model, 2k tokens
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/chunked_prefill.py --model smollm2 --length 16384 --chunk 1024

Each mode runs in its own child process (peak RSS is per process), on the same random prompt:

- ``full``: the model without compression (``model(ids)``);
- ``one-shot``: ``policy.apply(model)``, the prompt prefilled at once, every layer evicted right after its
  attention (a layer holds the whole prompt before its eviction);
- ``chunked``: ``policy.apply(model, prefill_chunk=C)``, evicted between chunks of ``C`` tokens.

Per mode it prints (one JSON line each, then a table): prefill seconds; ``peak_cache_bytes``, the most key/value
bytes the cache held at any layer's attention during the prefill (summed over layers, read from the cache's
tensors, before that layer's eviction); ``final_cache_bytes`` after the prefill; ``peak_rss_mib``, the process's
peak resident memory during the prefill (``VmHWM`` reset before it; ``ru_maxrss`` when the kernel cannot reset
it) and ``rss_before_mib`` (model loaded and run once on 16 tokens,
so its weights are resident; prompt built). The prefill computes the last token's logits only
(``logits_to_keep=1``), as ``generate`` does.

The default model is a random-weight 4-layer Llama with the embedded SmolLM2-135M's attention geometry (hidden
576, 9 query heads, 3 KV heads, head dim 64, float32); ``--model smollm2`` loads the embedded model itself
(30 layers; its 8192 trained positions are exceeded beyond 8k tokens: memory is what this measures).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

MODES = ("full", "one-shot", "chunked")


def _tiny_model(layers: int):
    import transformers

    config = transformers.LlamaConfig(hidden_size=576, num_attention_heads=9, num_key_value_heads=3, head_dim=64,
                                      num_hidden_layers=layers, intermediate_size=1536, vocab_size=1024,
                                      max_position_embeddings=32768, attn_implementation="sdpa")
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


def _rss_mib(field: str) -> float:
    """``VmRSS`` / ``VmHWM`` of this process from ``/proc/self/status``, MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak_rss() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def measure(args: argparse.Namespace) -> dict:
    """One mode in this process: the prefill's time, peak and final cache bytes, and peak RSS."""
    from transformers import DynamicCache

    from windowkv import Policy
    from windowkv.cache.nbytes import cache_nbytes
    from windowkv.hf.architectures import attention_layers

    torch.set_num_threads(args.threads)
    if args.model == "tiny":
        model = _tiny_model(args.layers)
    else:
        from windowkv.models import load_model

        model, _ = load_model(args.model)
    vocab = model.config.vocab_size
    ids = torch.randint(3, vocab, (1, args.length), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # weights resident (memory-mapped safetensors page in at first use) and a warm-up
        model(ids[:, :16], logits_to_keep=1)
    peak = {"bytes": 0}

    def watch(module, hook_args, kwargs, output):  # registered before apply: runs before the layer's eviction
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        peak["bytes"] = max(peak["bytes"], cache_nbytes(cache))

    hooks = [m.register_forward_hook(watch, with_kwargs=True) for m in attention_layers(model)]
    handle = None
    if args.mode != "full":
        policy = Policy.from_preset(args.policy, args.budget)
        handle = policy.apply(model, prefill_chunk=args.chunk if args.mode == "chunked" else None)
    cache = DynamicCache(config=model.config)
    rss_before = _rss_mib("VmRSS")
    resettable = _reset_peak_rss()
    start = time.perf_counter()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=torch.ones_like(ids), past_key_values=cache, use_cache=True,
              logits_to_keep=1)
    seconds = time.perf_counter() - start
    peak_rss = _rss_mib("VmHWM") if resettable else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if handle is not None:
        handle.remove()
    for h in hooks:
        h.remove()
    return {"mode": args.mode, "model": args.model, "length": args.length, "policy": args.policy,
            "budget": args.budget, "chunk": args.chunk if args.mode == "chunked" else None,
            "prefill_s": round(seconds, 3), "peak_cache_bytes": peak["bytes"],
            "final_cache_bytes": cache_nbytes(cache), "rss_before_mib": round(rss_before, 1),
            "peak_rss_mib": round(peak_rss, 1), "peak_rss_resettable": resettable}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny", help="'tiny' (random weights), 'smollm2' or a model path")
    parser.add_argument("--layers", type=int, default=4, help="layers of the tiny model")
    parser.add_argument("--length", type=int, default=2048, help="prompt tokens")
    parser.add_argument("--chunk", type=int, default=256, help="chunk tokens of the chunked prefill")
    parser.add_argument("--policy", default="snapkv", help="a registered preset")
    parser.add_argument("--budget", default="256", help="review tokens per layer, or a ratio (0.12)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ",".join(MODES))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", help="write the rows to this file")
    parser.add_argument("--mode", help=argparse.SUPPRESS)  # the child process's mode
    args = parser.parse_args()
    args.budget = float(args.budget) if "." in args.budget else int(args.budget)
    if args.mode is not None:
        print(json.dumps(measure(args)))
        return
    rows = []
    for mode in args.modes.split(","):
        if mode not in MODES:
            parser.error(f"unknown mode {mode!r}; choose from {', '.join(MODES)}")
        child = [sys.executable, __file__, *sys.argv[1:], "--mode", mode]
        out = subprocess.run(child, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        print(json.dumps(row), flush=True)
        rows.append(row)
    print(f"\n| mode | L | chunk | prefill s | peak cache MiB | final cache MiB | RSS before MiB | peak RSS MiB | "
          "peak RSS - before MiB |\n|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        mib = 1 << 20
        print(f"| {r['mode']} | {r['length']} | {r['chunk'] or '-'} | {r['prefill_s']:.2f} | "
              f"{r['peak_cache_bytes'] / mib:.2f} | {r['final_cache_bytes'] / mib:.2f} | {r['rss_before_mib']:.0f} | "
              f"{r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - r['rss_before_mib']:.0f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
