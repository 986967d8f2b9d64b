"""Fingerprints of every registered preset: kept positions and generated tokens, to compare refactors.

A refactor of the engine or the config must keep what every preset keeps and generates. This script
records, for every registered preset and budget, the kept prompt positions of every layer (per row and
head) and the greedy output tokens, then compares two recordings:

    .venv/bin/python benchmarks/preset_fingerprint.py record before.json                 # tiny models
    .venv/bin/python benchmarks/preset_fingerprint.py record before-smollm2.json --model smollm2
    ... change the code ...
    .venv/bin/python benchmarks/preset_fingerprint.py record after.json
    .venv/bin/python benchmarks/preset_fingerprint.py compare before.json after.json

``--model tiny`` (default) runs random-weight Llama, Mistral, Qwen2 and Qwen3 decoders (eager and sdpa)
on a single prompt and a left-padded batch of two; ``--model smollm2`` runs the embedded model on the
needle set of the README's main job (lengths 1024, 2048; depths 0.1, 0.5, 0.9; 32 new tokens).
``compare`` prints one line per preset with the number of identical cases and exits 1 on any change.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import warnings
from typing import Any

import torch

FAMILIES = ("llama", "mistral", "qwen2", "qwen3")


def _tiny_model(family: str, attn: str) -> Any:
    import transformers

    classes = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2", "qwen3": "Qwen3"}[family]
    config_cls = getattr(transformers, f"{classes}Config")
    model_cls = getattr(transformers, f"{classes}ForCausalLM")
    torch.manual_seed(0)
    config = config_cls(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                        intermediate_size=128, vocab_size=256, head_dim=16, max_position_embeddings=4096,
                        attn_implementation=attn, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    return model_cls(config).eval()


def _positions_digest(run: Any) -> dict[str, Any]:
    """Per layer: a digest of the kept positions (invalid slots as -1) and the kept count per row."""
    out: dict[str, Any] = {}
    if run is None:
        return out
    for layer, sel in sorted(run.selections.items()):
        if sel.positions is None:
            continue
        pos = torch.where(sel.valid, sel.positions, torch.full_like(sel.positions, -1)).cpu()
        rows = []
        for row in pos:  # [H, K]; sort each head's valid positions so slot order does not matter
            heads = [sorted(p for p in head.tolist() if p >= 0) for head in row]
            rows.append(heads)
        blob = json.dumps(rows).encode()
        out[str(layer)] = {"sha": hashlib.sha256(blob).hexdigest()[:16],
                           "kept": [sum(len(h) for h in r) for r in rows]}
    return out


def _task_for(policy: Any) -> str | None:
    return next(iter(policy.profiles)) if policy.classifier.needs_text else None


def record_tiny(presets: list[str], budgets: list[float]) -> dict[str, Any]:
    from windowkv import Policy

    gen = torch.Generator().manual_seed(0)
    single = torch.randint(3, 256, (1, 200), generator=gen)
    batch = torch.randint(3, 256, (2, 160), generator=gen)
    mask = torch.ones_like(batch)
    batch[1, :40] = 0
    mask[1, :40] = 0
    cases: dict[str, Any] = {}
    for family in FAMILIES:
        for attn in ("eager", "sdpa"):
            model = _tiny_model(family, attn)
            for preset in presets:
                for budget in budgets:
                    policy = Policy.from_preset(preset, budget=budget)
                    for label, ids, am in (("single", single, torch.ones_like(single)), ("batch", batch, mask)):
                        with policy.apply(model, task=_task_for(policy)) as handle, torch.no_grad():
                            out = model.generate(ids, attention_mask=am, max_new_tokens=8, do_sample=False,
                                                 pad_token_id=0, eos_token_id=None)
                        key = f"{preset}|{budget}|{family}|{attn}|{label}"
                        cases[key] = {"tokens": out[:, ids.shape[1]:].tolist(),
                                      "positions": _positions_digest(handle.last_run)}
            print(f"  {family}/{attn}: {len(presets) * len(budgets) * 2} cases", file=sys.stderr)
    return cases


def record_smollm2(presets: list[str], budgets: list[float], lengths: list[int], depths: list[float],
                   new_tokens: int) -> dict[str, Any]:
    from windowkv import Policy
    from windowkv.eval.examples import render_prompt
    from windowkv.eval.needle import needle_examples
    from windowkv.models import load_model

    torch.set_num_threads(1)
    model, tokenizer = load_model()
    examples = needle_examples(tokenizer, lengths, depths)
    cases: dict[str, Any] = {}
    for ex in examples:
        ids = tokenizer(render_prompt(tokenizer, ex, warn=False), return_tensors="pt",
                        add_special_tokens=False)["input_ids"]
        for preset in presets:
            for budget in budgets:
                policy = Policy.from_preset(preset, budget=budget)
                with policy.apply(model, tokenizer) as handle, torch.no_grad():
                    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                         do_sample=False, pad_token_id=tokenizer.pad_token_id)
                cases[f"{preset}|{budget}|{ex.id}"] = {"tokens": out[:, ids.shape[1]:].tolist(),
                                                       "positions": _positions_digest(handle.last_run)}
        print(f"  {ex.id}: done", file=sys.stderr)
    return cases


def compare(before: dict[str, Any], after: dict[str, Any]) -> int:
    by_preset: dict[str, list[int]] = {}
    changed = []
    for key, case in before["cases"].items():
        preset = key.split("|")[0]
        stats = by_preset.setdefault(preset, [0, 0, 0, 0])  # cases, same positions, same tokens, missing
        stats[0] += 1
        other = after["cases"].get(key)
        if other is None:
            stats[3] += 1
            changed.append(f"missing: {key}")
            continue
        same_pos = other["positions"] == case["positions"]
        same_tok = other["tokens"] == case["tokens"]
        stats[1] += same_pos
        stats[2] += same_tok
        if not (same_pos and same_tok):
            changed.append(f"changed: {key} (positions {'same' if same_pos else 'DIFFER'}, "
                           f"tokens {'same' if same_tok else 'DIFFER'})")
    print(f"| preset | cases | same kept positions | same generated tokens |\n|---|---|---|---|")
    for preset, (n, pos, tok, _) in sorted(by_preset.items()):
        print(f"| {preset} | {n} | {pos}/{n} | {tok}/{n} |")
    for line in changed:
        print(line)
    return 1 if changed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out")
    rec.add_argument("--model", choices=("tiny", "smollm2"), default="tiny")
    rec.add_argument("--budgets", default="0.12,0.25")
    rec.add_argument("--presets", default="", help="comma-separated; default: every registered preset")
    rec.add_argument("--lengths", default="1024,2048")
    rec.add_argument("--depths", default="0.1,0.5,0.9")
    rec.add_argument("--max-new-tokens", type=int, default=32)
    cmp = sub.add_parser("compare")
    cmp.add_argument("before")
    cmp.add_argument("after")
    args = parser.parse_args(argv)
    if args.command == "compare":
        with open(args.before) as a, open(args.after) as b:
            return compare(json.load(a), json.load(b))
    warnings.simplefilter("ignore")
    from windowkv.plugins import default_registries

    registered = default_registries()["policy"].names()
    presets = [p for p in args.presets.split(",") if p] or list(registered)
    budgets = [float(b) for b in args.budgets.split(",")]
    if args.model == "tiny":
        cases = record_tiny(presets, budgets)
    else:
        cases = record_smollm2(presets, budgets, [int(n) for n in args.lengths.split(",")],
                               [float(d) for d in args.depths.split(",")], args.max_new_tokens)
    with open(args.out, "w") as f:
        json.dump({"model": args.model, "presets": presets, "budgets": budgets, "cases": cases}, f, indent=1)
    print(f"{len(cases)} cases -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
