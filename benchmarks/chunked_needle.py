"""Needle scores of chunked prefill against one-shot prefill at the same budget (embedded SmolLM2 by default).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/chunked_needle.py --lengths 1024 --depths 0,0.25,0.5,0.75,1

For every needle example (``windowkv.eval.needle``: the model's chat template, the answer prefix) it generates
greedily with the uncompressed model (full), ``policy.apply(model)`` (one shot) and ``policy.apply(model, prefill_chunk=C)`` (chunked) and
prints one JSON line per example: whether each answer contains the needle's number, then the exact-match rate
of each mode.
"""

from __future__ import annotations

import argparse
import json

import torch

from windowkv import Policy
from windowkv.eval.examples import render_prompt
from windowkv.eval.needle import needle_examples
from windowkv.models import load_model


def answer(model, tokenizer, text: str, new: int) -> str:
    """Greedy answer to ``text`` (already rendered), special tokens removed."""
    ids = tokenizer(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new, do_sample=False,
                         pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--lengths", default="1024")
    parser.add_argument("--depths", default="0,0.25,0.5,0.75,1")
    parser.add_argument("--policy", default="snapkv")
    parser.add_argument("--budget", default="128", help="review tokens per layer, or a ratio (0.12)")
    parser.add_argument("--chunk", type=int, default=256)
    parser.add_argument("--new-tokens", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    budget = float(args.budget) if "." in args.budget else int(args.budget)
    model, tokenizer = load_model(args.model)
    policy = Policy.from_preset(args.policy, budget)
    examples = needle_examples(tokenizer, [int(x) for x in args.lengths.split(",")],
                               [float(x) for x in args.depths.split(",")], max_new_tokens=args.new_tokens)
    hits = {"full": 0, "one-shot": 0, "chunked": 0}
    for ex in examples:
        text = render_prompt(tokenizer, ex, warn=False)  # ends with the answer prefix
        row = {"id": ex.id, "needle": ex.answers[0]}
        for mode, chunk in (("full", None), ("one-shot", None), ("chunked", args.chunk)):
            if mode == "full":  # the uncompressed model: what the budget is compared with
                text_out = answer(model, tokenizer, text, args.new_tokens)
            else:
                with policy.apply(model, tokenizer, prefill_chunk=chunk):
                    text_out = answer(model, tokenizer, text, args.new_tokens)
            hit = ex.answers[0] in text_out
            hits[mode] += hit
            row[mode] = {"hit": hit, "answer": text_out.strip()[:40]}
        print(json.dumps(row), flush=True)
    n = len(examples)
    print(json.dumps({"policy": args.policy, "budget": budget, "chunk": args.chunk, "examples": n,
                      **{f"{mode}_exact": round(h / n, 3) for mode, h in hits.items()}}))


if __name__ == "__main__":
    main()
