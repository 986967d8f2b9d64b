"""Run evaluation examples through a model under one or more compression policies; write result rows.

::

    from windowkv.eval.runner import evaluate, make_variants
    model, tok = load_model()
    variants = make_variants(["full", "windowkv"], budgets=["0.12", "0.25"])
    result = evaluate(model, tok, examples, variants, "runs/needle", model_name="smollm2")

Each ``(example, variant)`` pair is one greedy generation: the prompt is rendered with the chat template
(:func:`windowkv.eval.examples.render_prompt`), the policy is active through ``policy.apply(model,
tokenizer)`` (its classifier reads the prompt text), and the row records the prediction, every metric,
the kept KV cache and the cost (prefill time, decode speed, peak memory). Rows are appended to
``results.jsonl`` as they finish; a rerun into the same directory skips the rows it finds.

Prompts longer than the model's context: ``prompt tokens + max_new_tokens > max_position_embeddings``
is not run; the row is written with ``skipped`` giving the reason (and counted as skipped in the summary).
"""

from __future__ import annotations

import contextlib
import platform
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from windowkv.errors import WindowKVError
from windowkv.eval.distributed import DistContext
from windowkv.eval.examples import Example, has_chat_template, render_prompt, uses_chat_template
from windowkv.eval.measure import Generation, ModelInfo, cache_stats, run_prompt, warm_up
from windowkv.eval.metrics import score_example
from windowkv.eval.needle_prose import context_tokens
from windowkv.eval.shared_prefill import SharedPrefill
from windowkv.eval.results import (
    RESULTS,
    RowWriter,
    merge_rank_files,
    merge_rows,
    rank_file,
    read_rows,
    write_summary,
)
from windowkv.eval.rows import ResultRow
from windowkv.eval.variants import DEFAULT_BUDGET, Variant, make_variants

__all__ = ["DEFAULT_BUDGET", "EvalResult", "Generation", "ModelInfo", "ResultsMismatchError", "Variant",
           "cache_stats", "evaluate", "limit_new_tokens", "make_variants", "package_versions", "run_example",
           "run_prompt", "warm_up"]


class ResultsMismatchError(WindowKVError):
    """The output directory holds rows of another model or another configuration of a policy."""


# ---------------------------------------------------------------------------- a whole run

@dataclass
class EvalResult:
    """What :func:`evaluate` did (on this rank)."""

    out_dir: Path
    rows: list[ResultRow]  # every row of the run directory (rank 0; this rank's own rows elsewhere)
    computed: int
    resumed: int
    skipped: list[str]
    summary: dict[str, Any] | None


Progress = Callable[[int, str], Any]


def evaluate(model: Any, tokenizer: Any, examples: Sequence[Example], variants: Sequence[Variant],
             out_dir: str | Path, *, model_name: str = "smollm2", seed: int = 0, dist: DistContext | None = None,
             config: Mapping[str, Any] | None = None, progress: bool = True, console: Any = None,
             timings: Mapping[str, float] | None = None, ignore_eos: bool = False,
             shared_prefill: bool = False, prefill_chunk: int | None = None) -> EvalResult:
    """Run every example under every variant into ``out_dir``; resume from the rows already there.

    Args:
        model, tokenizer: from :func:`windowkv.models.load_model`.
        examples: the examples (one task or several).
        variants: policies x budgets (see :func:`make_variants`).
        out_dir: the run directory (see :mod:`windowkv.eval.results`).
        model_name: how rows and the summary name the model; rows of another model stop the run.
        seed: torch's seed before each generation, recorded in the summary.
        dist: the data-parallel context (default: a single process).
        config: the command's settings, stored in the summary.
        progress: show a rich progress bar (on rank 0).
        console: a ``rich.console.Console`` for messages (default: a new one on stderr).
        timings: extra timings for the summary (e.g. ``{"model_load_seconds": 3.1}``).
        ignore_eos: generate every example's ``max_new_tokens`` tokens (decode-speed measurements).
        shared_prefill: prefill each example once without a policy and replay it under every policy
            (:mod:`windowkv.eval.shared_prefill`): same predictions and kept caches, a fraction of the
            time; rows record the shared prefill's time and no memory or decode speed.
        prefill_chunk: prefill prompts longer than this many tokens in chunks, evicting between chunks
            (``policy.apply(..., prefill_chunk=)``, :mod:`windowkv.hf.chunked`); rows record it.

    Raises:
        ResultsMismatchError: ``out_dir`` holds rows of another model, or of another configuration of a
            policy under the same name and budget.
    """
    from rich.console import Console

    if shared_prefill and prefill_chunk is not None:
        raise ValueError("shared_prefill replays one uncompressed prefill; it cannot combine with prefill_chunk")
    dist = dist or DistContext()
    console = console or Console(stderr=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    main_file = out / RESULTS
    if dist.is_main:
        read_rows(main_file, repair=True)
    dist.barrier()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank 0 already reported (and set aside) broken lines
        existing = merge_rows(read_rows(main_file), *(read_rows(p) for p in sorted(out.glob("results.rank*.jsonl"))))
    _check_compatible(existing, variants, model_name)
    done = {r.key for r in existing}
    if has_chat_template(tokenizer) is False and dist.is_main:
        console.print("[yellow]the tokenizer has no chat template: prompts are plain text[/]")
    info = ModelInfo.of(model)
    mine = dist.shard(list(examples))
    todo = [(v, e) for v in variants for e in mine if (e.id, v.label, v.budget) not in done]
    resumed = sum(1 for v in variants for e in mine) - len(todo)
    if resumed and dist.is_main:
        console.print(f"resuming {out}: {len(existing)} finished rows found, "
                      f"{resumed} of this process's runs are skipped")
    if todo:
        warm_up(model)
    skipped: list[str] = []
    writer_path = rank_file(out, dist.rank) if dist.distributed else main_file
    computed = 0
    with RowWriter(writer_path) as writer, _progress(progress and dist.is_main, len(todo), console) as advance:
        def run_one(handle: Any, example: Example, variant: Variant, prefill: Any = None) -> None:
            nonlocal computed
            advance(0, f"{variant.name} {example.id}")
            row = run_example(model, tokenizer, handle, example, variant, info, model_name=model_name,
                              seed=seed, rank=dist.rank, ignore_eos=ignore_eos, prefill=prefill)
            writer.write(row)
            computed += 1
            if row.skipped:
                skipped.append(f"{example.id}: {row.skipped}")
                console.print(f"[yellow]skipped[/] {example.id} ({variant.name}): {row.skipped}")
            advance(1, f"{variant.name} {example.id}")

        if shared_prefill:  # one prefill per example, replayed under every policy
            for example in {e.id: e for _, e in todo}.values():
                prefill = SharedPrefill(model, tokenizer, example, ignore_eos=ignore_eos)
                prefill.capture()
                for variant in [v for v, e in todo if e is example]:
                    with variant.policy.apply(model, tokenizer) as handle:
                        run_one(handle, example, variant, prefill)
        else:
            for variant in variants:
                items = [e for v, e in todo if v is variant]
                if not items:
                    continue
                with variant.policy.apply(model, tokenizer, prefill_chunk=prefill_chunk) as handle:
                    for example in items:
                        run_one(handle, example, variant)
    dist.barrier()
    summary = None
    rows: list[ResultRow]
    if dist.is_main:
        rows = merge_rank_files(out, dist.world_size) if dist.distributed else read_rows(main_file)
        summary = write_summary(out, rows, _summary_info(
            config, variants, model_name, info, seed, dist, started, len(examples), computed, timings))
    else:
        rows = read_rows(writer_path)
    dist.barrier()
    return EvalResult(out, rows, computed, resumed, skipped, summary)


def run_example(model: Any, tokenizer: Any, handle: Any, example: Example, variant: Variant, info: ModelInfo,
                *, model_name: str, seed: int = 0, rank: int = 0, ignore_eos: bool = False,
                prefill: Any = None) -> ResultRow:
    """One result row: generate, score and measure ``example`` under ``variant`` (``handle`` active).

    With ``prefill`` (a :class:`~windowkv.eval.shared_prefill.SharedPrefill` of ``example``) the policy
    replays the shared prefill instead of running its own.
    """
    chat = uses_chat_template(tokenizer, example)
    text = render_prompt(tokenizer, example, warn=False)
    input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not chat)["input_ids"]
    prompt_tokens = int(input_ids.shape[1])
    # the row's fields are passed only when set, so that its JSON line has the keys rows always had
    row: dict[str, Any] = {
        "id": example.id, "task": example.task, "policy": variant.label, "budget": variant.budget,
        "budget_kind": variant.policy.budget.kind,
        "budget_value": variant.policy.budget.to_config(), "policy_hash": variant.fingerprint,
        "model": model_name, "length": example.length, "depth": example.depth,
        "metric": example.metric, "prompt_tokens": prompt_tokens,
    }
    if example.task.startswith("longbench/"):
        row["source_length"] = example.source_length  # LongBench's own count (words), not a grid length
    limit = info.max_positions
    if limit is not None and prompt_tokens + example.max_new_tokens > limit:
        row["skipped"] = (f"prompt of {prompt_tokens} tokens + {example.max_new_tokens} new tokens exceeds the "
                          f"model's context of {limit} positions")
        return ResultRow(**row)
    if getattr(handle, "prefill_chunk", None) is not None:
        row["prefill_chunk"] = handle.prefill_chunk
    if prefill is not None and prefill.usable(example):
        gen = prefill.generate(handle)
        row["shared_prefill"] = True
    else:
        gen = run_prompt(model, tokenizer, handle, text, chat=chat, max_new_tokens=example.max_new_tokens,
                         stop_strings=list(example.stop_strings) or None, seed=seed, input_ids=input_ids,
                         ignore_eos=ignore_eos, context_tokens=context_tokens(tokenizer, text, example))
    scores = score_example(example, gen.prediction)
    row.update({
        "prediction": gen.prediction, "answers": list(example.answers), "score": scores[example.metric],
        "scores": scores, "task_label": gen.task_label, **cache_stats(gen, info),
        "prefill_seconds": round(gen.prefill_seconds, 4),
        "decode_tokens_per_s": None if gen.decode_tokens_per_s is None else round(gen.decode_tokens_per_s, 3),
        "new_tokens": gen.new_tokens, "seconds": round(gen.seconds, 4),
        "peak_memory_bytes": gen.peak_memory_bytes, "memory_method": gen.memory_method,
        "rank": rank, "seed": seed, "finished_at": round(time.time(), 3),
    })
    return ResultRow(**row)


def _check_compatible(rows: Sequence[ResultRow], variants: Sequence[Variant], model_name: str) -> None:
    models = sorted({r.model for r in rows if r.model is not None})
    if models and models != [model_name]:
        raise ResultsMismatchError(
            f"the output directory holds results of model {', '.join(models)}, not {model_name}; "
            "use another --out (finished rows are never overwritten)")
    hashes = {(r.policy, r.budget): r.policy_hash for r in rows}
    for v in variants:
        old = hashes.get((v.label, v.budget))
        if old is not None and old != v.fingerprint:
            raise ResultsMismatchError(
                f"the output directory holds results of another configuration of policy {v.label!r} at budget "
                f"{v.budget}; use another --out or rename the policy (finished rows are never overwritten)")


@contextlib.contextmanager
def _progress(enabled: bool, total: int, console: Any) -> Iterator[Progress]:
    if not enabled or total == 0:
        yield lambda n, text: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, \
        TimeElapsedColumn, TimeRemainingColumn

    with RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console,
                      transient=False) as bar:
        task = bar.add_task("evaluating", total=total)

        def advance(n: int, text: str) -> None:
            bar.update(task, advance=n, description=text[:60])

        yield advance


def package_versions() -> dict[str, Any]:
    """Python, torch, transformers, windowkv and every plugin's distribution and version."""
    from importlib.metadata import PackageNotFoundError, version

    from windowkv.plugins import default_registries

    def v(name: str) -> str | None:
        try:
            return version(name)
        except PackageNotFoundError:
            return None

    registries = default_registries()
    plugins: dict[str, dict[str, Any]] = {}
    for entry in registries.all_entries():
        item = plugins.setdefault(entry.plugin, {"plugin": entry.plugin, "distribution": entry.distribution,
                                                 "version": entry.version, "components": []})
        item["components"].append(f"{entry.kind}:{entry.name}")
    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
        "transformers": v("transformers"), "windowkv": v("windowkv"), "accelerate": v("accelerate"),
        "plugins": list(plugins.values()), "plugin_load_errors": list(registries.load_errors),
        "git": git_state(),
    }


def git_state() -> dict[str, Any] | None:
    """The commit of the windowkv checkout and whether it has uncommitted changes (None outside git)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "windowkv"],
                                cwd=root, capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "windowkv_modified": bool(status.strip())}


def _summary_info(config: Mapping[str, Any] | None, variants: Sequence[Variant], model_name: str, info: ModelInfo,
                  seed: int, dist: DistContext, started: float, examples: int, computed: int,
                  timings: Mapping[str, float] | None) -> dict[str, Any]:
    return {
        "config": dict(config or {}),
        "model": {"name": model_name, **info.to_dict()},
        "variants": [{"policy": v.label, "budget": v.budget, "spec": v.spec, "hash": v.fingerprint,
                      "config": v.policy.to_config()} for v in variants],
        "seed": seed,
        "versions": package_versions(),
        "world_size": dist.world_size,
        "examples": examples,
        "timings": {"started": round(started, 3), "finished": round(time.time(), 3),
                    "wall_seconds": round(time.time() - started, 3), "computed_rows": computed,
                    **dict(timings or {})},
    }


def limit_new_tokens(examples: Sequence[Example], max_new_tokens: int | None) -> list[Example]:
    """The examples with ``max_new_tokens`` replaced (``None``: unchanged)."""
    if max_new_tokens is None:
        return list(examples)
    return [replace(e, max_new_tokens=max_new_tokens) for e in examples]
