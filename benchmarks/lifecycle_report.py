"""Measurements of docs/lifecycle.md: decode-time compression, DBudgetKV budgets, multi-turn sessions.

Each sub-command runs the embedded model (SmolLM2-135M-Instruct) and appends JSON lines to its output:

    python benchmarks/lifecycle_report.py long OUT.jsonl --policy full --policy rkv512 --policy corm496
    python benchmarks/lifecycle_report.py table --long OUT.jsonl --runs RUN_DIR ... --multiturn ROWS.jsonl

(DBudgetKV and multi-turn rows come from ``windowkv compare`` and ``windowkv multiturn``; ``table`` prints
the report's Markdown tables from them.)

``long``: one ``long/list_records`` example (140 records, ~2,400 prompt tokens), exactly 2,000 generated
tokens (EOS suppressed); the row has the peak KV bytes held over the generation (read from the cache
tensors after every forward), the final bytes and the record recall.
"""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

import torch

#: the policies of the ``long`` command, by name
LONG_POLICIES: dict[str, dict[str, Any]] = {
    "full": {"preset": "full"},
    "rkv512": {"preset": "full", "decode": {"budget": 512, "interval": 64, "window": 16}},
    "corm496": {"preset": "corm", "budget": 496},
    # a decode budget above the prompt (~2,430 tokens): every record is in the cache when the answer starts
    "rkv2560": {"preset": "full", "decode": {"budget": 2560, "interval": 64, "window": 16}},
    "corm2560": {"preset": "corm", "budget": 2560},
    "windowkv0.25+rkv512": {"preset": "windowkv", "budget": 0.25,
                            "decode": {"budget": 512, "interval": 64, "window": 16}},
}


def kv_bytes(cache: Any) -> int:
    """Key/value bytes a cache holds, read from its tensors (compressed layers report their own)."""
    total = 0
    for layer in getattr(cache, "layers", ()):
        if hasattr(layer, "kv_nbytes"):
            total += layer.kv_nbytes()
        elif getattr(layer, "keys", None) is not None and layer.keys.numel():
            total += layer.keys.numel() * layer.keys.element_size() + layer.values.numel() * layer.values.element_size()
    return total


def _cache(kwargs: dict[str, Any]) -> Any:
    return kwargs.get("cache") if kwargs.get("cache") is not None else kwargs.get("past_key_values")


def long_generation(model: Any, tok: Any, name: str, new_tokens: int, num_items: int, length: int) -> dict[str, Any]:
    from windowkv import Policy
    from windowkv.eval.examples import render_prompt
    from windowkv.eval.long_answer import list_records_example
    from windowkv.eval.metrics import score_example

    example = list_records_example(tok, length, num_items=num_items, max_new_tokens=new_tokens)
    ids = tok(render_prompt(tok, example), return_tensors="pt", add_special_tokens=False)["input_ids"]
    policy = Policy.from_config({"name": name, **LONG_POLICIES[name]})
    peak = [0]

    def after_forward(module, args, kwargs, output):
        peak[0] = max(peak[0], kv_bytes(output.past_key_values))

    started = time.time()
    with policy.apply(model, tok):
        hook = model.register_forward_hook(after_forward, with_kwargs=True)
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, return_dict_in_generate=True)
        hook.remove()
    prediction = tok.decode(out.sequences[0, ids.shape[1]:], skip_special_tokens=True)
    scores = score_example(example, prediction)
    return {"command": "long", "policy": name, "config": policy.to_config(), "prompt_tokens": ids.shape[1],
            "new_tokens": out.sequences.shape[1] - ids.shape[1], "peak_kv_bytes": peak[0],
            "final_kv_bytes": kv_bytes(out.past_key_values), "scores": scores, "seconds": round(time.time() - started, 1),
            "prediction_head": prediction[:300]}


def _rows(path: str) -> list[dict[str, Any]]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def markdown_tables(long: list[str], runs: list[str], multiturn: list[str]) -> str:
    """The report's tables from the rows the commands wrote."""
    out: list[str] = []
    if long:
        out += ["| policy | new tokens | peak KV MiB | final KV MiB | record recall | exact list |",
                "|---|---|---|---|---|---|"]
        for path in long:
            for r in _rows(path):
                out.append(f"| {r['policy']} | {r['new_tokens']} | {r['peak_kv_bytes'] / 2**20:.1f} | "
                           f"{r['final_kv_bytes'] / 2**20:.1f} | {r['scores']['list_recall']:.2f} | "
                           f"{r['scores']['list_exact']:.0f} |")
        out.append("")
    if runs or multiturn:
        from windowkv.eval.multiturn import summary_table
        from windowkv.eval.results import read_rows
    if runs:
        out += ["| task family | policy | budget | chosen review kept | kept review tokens / layer | score | n |",
                "|---|---|---|---|---|---|---|"]
        groups: dict[tuple, list[Any]] = {}
        for run in runs:
            for r in read_rows(f"{run}/results.jsonl"):
                if r.skipped:
                    continue
                family = r.task.split("/")[0] if r.task.startswith("needle") else r.task
                groups.setdefault((family, r.policy, r.budget), []).append(r)
        for (family, policy, budget), rows in sorted(groups.items()):
            n = len(rows)
            out.append(f"| {family} | {policy} | {budget} | "
                       f"{sum(r.kept_review_fraction for r in rows) / n:.1%} | "
                       f"{sum(r.kept_review_tokens or 0.0 for r in rows) / n:.0f} | "
                       f"{sum(r.score for r in rows) / n:.2f} | {n} |")
        out.append("")
    if multiturn:
        turns = [r for path in multiturn for r in read_rows(path) if r.mode is not None and r.score is not None]
        kinds = {r.turn: r.kind for r in turns}
        cells: dict[tuple, list[float]] = {}
        for r in turns:
            cells.setdefault((r.policy, r.budget, r.mode), []).append(r.score)
            cells.setdefault((r.policy, r.budget, r.mode, r.turn), []).append(r.score)
        out += ["| policy | budget | mode | " + " | ".join(f"turn {t} ({kinds[t]})" for t in sorted(kinds))
                + " | mean | KV MiB after the last turn |", "|---|---|---|" + "---|" * (len(kinds) + 2)]
        for key in sorted(k for k in cells if len(k) == 3):
            last = [r.kv_bytes for r in turns if (r.policy, r.budget, r.mode) == key and r.turn == max(kinds)]
            out.append(f"| {' | '.join(map(str, key))} | "
                       + " | ".join(f"{_mean(cells[(*key, t)]):.2f}" for t in sorted(kinds))
                       + f" | {_mean(cells[key]):.2f} | {_mean(last) / 2**20:.1f} |")
        out.append(f"\n(scores are means over {len({r.id for r in turns})} contexts)")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    long = sub.add_parser("long")
    long.add_argument("out")
    long.add_argument("--policy", action="append", choices=sorted(LONG_POLICIES))
    long.add_argument("--new-tokens", type=int, default=2000)
    long.add_argument("--num-items", type=int, default=140)
    long.add_argument("--length", type=int, default=2400)
    table = sub.add_parser("table", help="Markdown tables of finished rows: long JSONL files, run directories "
                           "of `windowkv compare` (DBudgetKV), multiturn JSONL files")
    table.add_argument("--long", nargs="*", default=[])
    table.add_argument("--runs", nargs="*", default=[])
    table.add_argument("--multiturn", nargs="*", default=[])
    args = parser.parse_args()
    if args.command == "table":
        print(markdown_tables(args.long, args.runs, args.multiturn))
        return
    torch.set_num_threads(1)
    from windowkv.models import load_model

    model, tok = load_model()
    if args.command == "long":
        for name in args.policy or list(LONG_POLICIES):
            row = long_generation(model, tok, name, args.new_tokens, args.num_items, args.length)
            with open(args.out, "a") as f:
                f.write(json.dumps(row) + "\n")
            print(json.dumps({k: row[k] for k in ("policy", "peak_kv_bytes", "scores", "seconds")}), flush=True)


if __name__ == "__main__":
    main()
