"""Decode tokens/s of a few presets on the embedded model at one prompt length, for before/after checks.

    .venv/bin/python benchmarks/decode_speed.py --length 4096 --policies full,windowkv,snapkv --budget 0.12

Prints one JSON line per policy: the median decode tokens/s over ``--repeats`` greedy generations of
``--new-tokens`` tokens (end of sequence ignored), the prefill seconds and the generated tokens. Run it
with two checkouts (``PYTHONPATH=other/checkout``) in alternation to compare engines on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch

from windowkv import Policy
from windowkv.eval.examples import render_prompt
from windowkv.eval.measure import run_prompt, warm_up
from windowkv.eval.needle import needle_example
from windowkv.models import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--length", type=int, default=4096)
    parser.add_argument("--policies", default="full,windowkv,snapkv")
    parser.add_argument("--budget", default="0.12", help="tokens, ratio or bytes (\"12%% bytes\")")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_model()
    warm_up(model)
    example = needle_example(tokenizer, args.length, 0.5)
    text = render_prompt(tokenizer, example, warn=False)
    for name in args.policies.split(","):
        policy = Policy.from_preset(name, budget=args.budget)
        speeds, prefills, tokens = [], [], None
        for _ in range(args.repeats):
            with policy.apply(model, tokenizer) as handle:
                gen = run_prompt(model, tokenizer, handle, text, chat=True, max_new_tokens=args.new_tokens,
                                 ignore_eos=True)
            speeds.append(gen.decode_tokens_per_s)
            prefills.append(gen.prefill_seconds)
            tokens = gen.output_ids
        print(json.dumps({"policy": name, "length": args.length, "budget": args.budget,
                          "decode_tokens_per_s": round(statistics.median(speeds), 2),
                          "all_decode_tokens_per_s": [round(s, 2) for s in speeds],
                          "prefill_s": round(statistics.median(prefills), 2), "tokens": tokens}), flush=True)


if __name__ == "__main__":
    main()
