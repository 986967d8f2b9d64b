"""windowkv next to kvpress: the same method on the same prompt, prefill and decode time, kept positions.

Run in the parity environment (``scripts/parity_env.sh`` builds ``.venv-parity``: transformers 5.2.x and
kvpress 0.5.x)::

    .venv-parity/bin/python benchmarks/kvpress_side_by_side.py --lengths 1k,2k --repeats 1 --json out.json
    .venv-parity/bin/python benchmarks/kvpress_side_by_side.py --model path/to/model --presses snapkv,tova

For each press and prompt length, the windowkv preset and the kvpress press are built by the parity
cases (``tests/parity/cases.py``: the budget conversions that make both keep the same tokens). Both are
timed by the same code (``windowkv.bench.measure_generation``: one greedy ``model.generate`` with the
method active around it: ``policy.apply(model)`` or ``with press(model)``), in alternation, after
warm-up runs. Kept positions are read and compared by the parity harness (``tests/parity/harness.py``,
``tests/parity/checks.py``) with the case's documented expectation (``identical`` for most presses;
``last_token`` for Knorm: windowkv always keeps the last prompt token).

Ratios are windowkv's time divided by kvpress's (prefill: time to first token; decode: seconds per
token), so below 1.0 windowkv is faster. ChunkKV needs a prompt length that is a multiple of its chunk
length (20): its prompt is the last ``L - L % 20`` tokens.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # the parity harness lives in tests/parity

from tests.parity.cases import CASES  # noqa: E402
from tests.parity.checks import check  # noqa: E402
from tests.parity.harness import compare, kvpress_kept, prefill_keys, windowkv_kept  # noqa: E402
from windowkv.bench import measure_generation, ratio, spread  # noqa: E402

PRESSES = ("snapkv", "streaming_llm", "tova", "knorm", "chunkkv")
CHUNK = 20  # ChunkKV's chunk length in the parity case


def kept_positions(model: Any, case: Any, ids: torch.Tensor) -> dict[str, Any]:
    """Compare the positions kept by both sides on ``ids`` ``[1, L]``: ``{match, expectation, overlap, detail}``."""
    full = prefill_keys(model, ids)
    theirs = kvpress_kept(model, case.press, ids, full)
    ours = windowkv_kept(model, case.policy, ids)
    ties = {i: case.tie_scores(k) for i, k in enumerate(full)} if case.tie_scores else None
    try:
        overlap, detail = check(case.expectation, ours, theirs, ties), ""
        match = True
    except AssertionError as exc:
        overlap, detail, match = compare(ours, theirs), str(exc).splitlines()[0], False
    return {"match": match, "expectation": case.expectation, "identical": overlap.identical,
            "min_overlap": overlap.min_overlap, "detail": detail}


def time_both(model: Any, case: Any, ids: torch.Tensor, new_tokens: int, repeats: int, warmup: int
              ) -> dict[str, list[Any]]:
    """Samples of both sides, measured in alternation (windowkv, kvpress, windowkv, ...) after ``warmup``
    untimed rounds."""
    sides: dict[str, Callable[[], Any]] = {"windowkv": lambda: case.policy.apply(model),
                                          "kvpress": lambda: case.press(model)}
    samples: dict[str, list[Any]] = {name: [] for name in sides}
    for round_ in range(warmup + repeats):
        for name, context in sides.items():
            with context():
                sample = measure_generation(model, ids, new_tokens)
            if round_ >= warmup:
                samples[name].append(sample)
    return samples


def side_by_side(model: Any, prompts: Callable[[int], torch.Tensor], lengths: Sequence[int],
                 presses: Sequence[str] = PRESSES, *, compression_ratio: float = 0.75, new_tokens: int = 16,
                 repeats: int = 1, warmup: int = 1) -> list[dict[str, Any]]:
    """One row per (press, length): medians of both sides (seconds, tokens/s, bytes), the time ratios
    windowkv / kvpress, and the kept-position comparison.

    Args:
        prompts: ``length -> [1, length]`` token ids (the same prompt for both sides).
        compression_ratio: kvpress's ``compression_ratio`` (share of the prompt evicted); windowkv's budget
            is converted by the parity case.
    """
    rows = []
    for length in lengths:
        for name in presses:
            n = length - length % CHUNK if name == "chunkkv" else length
            ids = prompts(length)[:, length - n:]
            case = CASES[name](n, compression_ratio)
            positions = kept_positions(model, case, ids)
            samples = time_both(model, case, ids, new_tokens, repeats, warmup)
            row: dict[str, Any] = {"press": name, "length": n, "compression_ratio": compression_ratio, **positions}
            for side, items in samples.items():
                for metric in ("prefill_seconds", "decode_tokens_per_s", "kv_bytes"):
                    found = spread([getattr(s, metric) for s in items])
                    row[f"{side}_{metric}"] = found.to_dict() if found else None
            def med(key: str) -> float | None:
                return (row.get(key) or {}).get("median")

            row["prefill_ratio"] = ratio(med("windowkv_prefill_seconds"), med("kvpress_prefill_seconds"))
            # seconds per decoded token, windowkv / kvpress = kvpress tokens/s / windowkv tokens/s
            row["decode_time_ratio"] = ratio(med("kvpress_decode_tokens_per_s"), med("windowkv_decode_tokens_per_s"))
            rows.append(row)
    return rows


def table(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table of the rows."""
    head = ("| press | L | windowkv prefill s | kvpress prefill s | prefill ratio | windowkv tok/s | kvpress tok/s "
            "| decode time ratio | windowkv KV MiB | kvpress KV MiB | positions |")
    lines = [head, "|---" * 11 + "|"]

    def m(row: dict[str, Any], key: str, scale: float = 1.0, digits: int = 3) -> str:
        value = (row.get(key) or {}).get("median")
        return "–" if value is None else f"{value / scale:.{digits}f}"

    def r(value: float | None) -> str:
        return "–" if value is None else f"{value:.2f}x"

    for row in rows:
        verdict = ("match" if row["match"] else "DIFFER") + f" ({row['expectation']})"
        lines.append(f"| {row['press']} | {row['length']} | {m(row, 'windowkv_prefill_seconds')} | "
                     f"{m(row, 'kvpress_prefill_seconds')} | {r(row['prefill_ratio'])} | "
                     f"{m(row, 'windowkv_decode_tokens_per_s', digits=1)} | "
                     f"{m(row, 'kvpress_decode_tokens_per_s', digits=1)} | {r(row['decode_time_ratio'])} | "
                     f"{m(row, 'windowkv_kv_bytes', 2**20, 2)} | {m(row, 'kvpress_kv_bytes', 2**20, 2)} | {verdict} |")
    return "\n".join(lines)


def _length(text: str) -> int:
    text = text.strip().lower()
    return int(float(text[:-1]) * 1024) if text.endswith("k") else int(text)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default=None, help="model id or directory (default: the embedded SmolLM2)")
    parser.add_argument("--lengths", default="1k,2k", help="prompt lengths in tokens (1k = 1024)")
    parser.add_argument("--presses", default=",".join(PRESSES), help=f"comma separated, of {', '.join(PRESSES)}")
    parser.add_argument("--compression-ratio", type=float, default=0.75, help="kvpress's share of evicted tokens")
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--json", type=Path, default=None, help="write the rows and the environment here")
    args = parser.parse_args(argv)
    presses = [p.strip() for p in args.presses.split(",") if p.strip()]
    unknown = sorted(set(presses) - set(PRESSES))
    if unknown:
        parser.error(f"unknown press {', '.join(unknown)}; choose from {', '.join(PRESSES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    from windowkv.bench import bench_prompt
    from windowkv.models import load_model

    model, tokenizer = load_model(args.model, dtype=args.dtype, device="cpu", attn_implementation="sdpa")
    lengths = [_length(x) for x in args.lengths.split(",") if x.strip()]
    env = {"torch": torch.__version__, "transformers": transformers.__version__,
           "kvpress": importlib.metadata.version("kvpress"), "threads": torch.get_num_threads(),
           "model": args.model or "the embedded SmolLM2-135M-Instruct", "dtype": args.dtype,
           "loadavg_start": list(os.getloadavg()), "settings": vars(args) | {"json": str(args.json)}}
    rows = side_by_side(model, lambda n: bench_prompt(tokenizer, n), lengths, presses,
                        compression_ratio=args.compression_ratio, new_tokens=args.new_tokens,
                        repeats=args.repeats, warmup=args.warmup)
    env["loadavg_end"] = list(os.getloadavg())
    print(table(rows))
    print(f"# load average (1 min) at start {env['loadavg_start'][0]:.2f}, at end {env['loadavg_end'][0]:.2f} on "
          f"{os.cpu_count()} CPUs; ratios are windowkv / kvpress (below 1.0: windowkv is faster)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"environment": env, "rows": rows}, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
