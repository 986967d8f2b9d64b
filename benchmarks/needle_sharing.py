"""Needle accuracy of WindowKV's index-sharing variants on the embedded SmolLM2 model.

    python benchmarks/needle_sharing.py 1024,2048 0.25,0.12 windowkv,deep_leader,no_sharing

Each line: budget, variant, hits out of lengths x 5 depths (0.1 ... 0.9), greedy, 10 new tokens.
"""

from __future__ import annotations

import sys

import torch

from windowkv import Policy
from windowkv.eval.examples import render_prompt
from windowkv.eval.needle import needle_example
from windowkv.models import load_model

VARIANTS = {
    "windowkv": {},  # the paper: groups of 8 share their first layer's selection
    "deep_leader": {"sharing": {"leader_layer": "last"}},
    "deep_leader_g4": {"sharing": {"leader_layer": "last", "group_size": 4}},
    "no_sharing": {"sharing": {"type": "none"}},
    "chunks": {"sharing": {"type": "none"}, "allocator": {"type": "uniform"},
               "profiles": {"qa": {"selector": {"type": "window_average"}}}},
    "token_topk": {"sharing": {"type": "none"}, "allocator": {"type": "uniform"},
                   "profiles": {"qa": {"selector": {"type": "token_topk"}}}},
}
DEPTHS = (0.1, 0.3, 0.5, 0.7, 0.9)


def main(lengths: str, budgets: str, names: str) -> None:
    model, tokenizer = load_model()
    examples = [needle_example(tokenizer, int(n), d, seed=0) for n in lengths.split(",") for d in DEPTHS]
    inputs = [tokenizer(render_prompt(tokenizer, e), return_tensors="pt", add_special_tokens=False)
              for e in examples]
    for budget in (float(b) for b in budgets.split(",")):
        for name in names.split(","):
            policy = Policy.from_preset("windowkv", budget=budget, **VARIANTS[name])
            hits = 0
            for example, enc in zip(examples, inputs):
                with policy.apply(model, tokenizer), torch.no_grad():
                    out = model.generate(**enc, max_new_tokens=10, do_sample=False)
                hits += example.answers[0] in tokenizer.decode(out[0, enc["input_ids"].shape[1]:])
            print(f"budget {budget} {name:16s} {hits}/{len(examples)}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
