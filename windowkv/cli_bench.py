"""``windowkv bench``: prefill time, decode speed, KV bytes and peak memory of policies over prompt lengths.

::

    windowkv bench -p windowkv -p snapkv -b 0.12 --lengths 1k,2k,4k --json runs/bench.json
    windowkv bench -p my_policy.yaml --device cuda --dtype bfloat16 --repeats 5

The measuring is :mod:`windowkv.bench`; this module only parses options and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from windowkv.cli import (
    AttnOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    ThreadsOpt,
    _escape,
    _load,
    _user_errors,
    err,
    out,
)
from windowkv.errors import UsageError

DEFAULT_LENGTHS = "1k,2k,4k,8k,16k"


def parse_lengths(values: list[str] | None) -> list[int]:
    """``["1k,2k", "3000"]`` -> ``[1024, 2048, 3000]`` (``k`` = 1024 tokens), sorted, duplicates removed."""
    lengths = set()
    for value in values or []:
        for item in (v.strip().lower() for v in value.split(",")):
            if not item:
                continue
            try:
                lengths.add(int(float(item[:-1]) * 1024) if item.endswith("k") else int(item))
            except ValueError:
                raise UsageError(f"--lengths: expected token counts such as 1024 or 1k (got {item!r})") from None
    return sorted(lengths)


def bench_cmd(
    policy: Annotated[Optional[list[str]], typer.Option(
        "--policy", "-p", help="Preset name or policy config file; repeat for several. Default: windowkv. The "
        "plain model (no windowkv hooks) is always measured as the reference.")] = None,
    budget: Annotated[Optional[list[str]], typer.Option(
        "--budget", "-b", help="Tokens, ratio of the review tokens or bytes; repeat for several. Default: the "
        "config file's or preset's, else 0.25.")] = None,
    lengths: Annotated[Optional[list[str]], typer.Option(
        "--lengths", "-L", help=f"Prompt lengths in tokens, comma separated or repeated; 1k = 1024. Default: "
        f"{DEFAULT_LENGTHS}, those that fit the model's context.")] = None,
    new_tokens: Annotated[int, typer.Option("--new-tokens", min=2, help="Tokens generated per run (greedy, EOS "
                                            "suppressed); decode speed is measured over all but the first.")] = 32,
    repeats: Annotated[int, typer.Option("--repeats", min=1, help="Timed runs per policy and length.")] = 3,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed runs per policy and length first.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the synthetic prompts.")] = 0,
    shared_prefill: Annotated[bool, typer.Option(
        "--shared-prefill", help="Each round, prefill once without windowkv and replay it under every policy: "
        "times the compression on its own (share of the plain prefill) and the decode; no time to first token "
        "or peak memory for the policies.")] = False,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    attn: AttnOpt = "sdpa",
    threads: ThreadsOpt = None,
    json_path: Annotated[Optional[Path], typer.Option(
        "--json", help="Write the environment and every row (all samples) to this JSON file.")] = None,
    plot: Annotated[Optional[Path], typer.Option(
        "--plot", help="Write the PNG plot here. Default: next to --json (same name, .png); none without --json.")]
    = None,
) -> None:
    """Benchmark policies x budgets x prompt lengths against the plain model: time to first token, decode
    tokens/s, KV bytes held after prefill, peak memory (medians of --repeats runs, with their spread)."""
    from windowkv.bench import BenchSettings, run_bench
    from windowkv.bench.plot import plot_bench
    from windowkv.bench.report import bench_table, environment, write_json
    from windowkv.bench.runner import max_prompt_length
    from windowkv.eval.variants import make_variants

    with _user_errors():
        variants = make_variants(policy or ["windowkv"], budget or None)
        wanted = parse_lengths(lengths or [DEFAULT_LENGTHS])
        m, tok, _ = _load(model, device, dtype, attn, None, threads)
        if not lengths:  # the defaults: keep those that fit, say which do not
            longest = max_prompt_length(m, new_tokens)
            dropped = [n for n in wanted if longest is not None and n > longest]
            wanted = [n for n in wanted if n not in dropped]
            if dropped:
                err.print(f"skipping lengths {', '.join(map(str, dropped))}: the model's context leaves room for "
                          f"{longest} prompt tokens (ask for them with --lengths)", highlight=False)
        settings = BenchSettings(tuple(wanted), new_tokens=new_tokens, repeats=repeats, warmup=warmup, seed=seed,
                                 shared_prefill=shared_prefill)
        names = ["plain", *(v.name for v in variants)]
        total = len(wanted) * len(names) * repeats
        done = 0
        with err.status("benchmarking ...") as status:
            def progress(length, variant, sample) -> None:
                nonlocal done
                done += 1
                seconds = sample.prefill_seconds if sample.compress_seconds is None else sample.compress_seconds
                status.update(f"{done}/{total} runs: L={length} {variant.name if variant else 'plain'} "
                              f"{'prefill' if sample.compress_seconds is None else 'compress'} {seconds:.3f} s")

            rows = run_bench(m, tok, variants, settings, progress=progress)
    out.print(bench_table(rows, f"windowkv bench ({next(m.parameters()).device}, {repeats} repeats)"))
    if shared_prefill:
        out.print("medians \\[min-max] of the repeats; one plain prefill per round, replayed under every policy: "
                  "compress s = the policy's hooks on the replayed prefill, % prefill = its share of the plain "
                  "prefill's median; decode x plain: above 1 is faster (see docs/bench.md).", style="dim",
                  highlight=False)
    else:
        out.print("medians \\[min-max] of the repeats; x plain: ratio of medians to the model without windowkv at "
                  "the same length (prefill: the compression overhead; decode: above 1 is faster). Peak memory: "
                  f"{rows[0]['memory_method'] if rows else '–'} (see docs/bench.md).", style="dim", highlight=False)
    if json_path is not None:
        env = environment(m, model, settings, policies=[v.policy.to_config() for v in variants])
        out.print(f"json: {_escape(str(write_json(json_path, rows, env)))}", highlight=False)
        plot = plot or json_path.with_suffix(".png")
    if plot is not None:
        out.print(f"plot: {_escape(str(plot_bench(rows, plot)))}", highlight=False)
