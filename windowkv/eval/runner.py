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
import copy
import hashlib
import json
import platform
import re
import resource
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

import torch

from windowkv.budget import Budget
from windowkv.config import FORMATS, read_config_file, resolve_policy
from windowkv.errors import ConfigError, WindowKVError
from windowkv.eval.distributed import DistContext
from windowkv.eval.examples import Example, has_chat_template, render_prompt, uses_chat_template
from windowkv.eval.metrics import score_example
from windowkv.eval.results import (
    RESULTS,
    RowWriter,
    merge_rank_files,
    merge_rows,
    rank_file,
    read_rows,
    row_key,
    write_summary,
)
from windowkv.policies import Policy

#: the budget used when neither ``--budget`` nor the policy (preset or file) gives one
DEFAULT_BUDGET = 0.25


class ResultsMismatchError(WindowKVError):
    """The output directory holds rows of another model or another configuration of a policy."""


# ---------------------------------------------------------------------------- policies x budgets

@dataclass(frozen=True)
class Variant:
    """One policy at one budget, as rows and tables name it.

    Attributes:
        label: the policy's name in rows (a preset name, or a config file's ``name`` or stem).
        policy: the policy, budget included.
        spec: what the user typed (preset name or file path).
    """

    label: str
    policy: Policy
    spec: str = ""

    @property
    def budget(self) -> str:
        """The budget as rows store it: ``"0.25"`` (ratio of review tokens) or ``"256"`` (tokens)."""
        return budget_label(self.policy.budget)

    @property
    def fingerprint(self) -> str:
        """A short hash of the policy's complete configuration (budget included)."""
        text = json.dumps(self.policy.to_config(), sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @property
    def name(self) -> str:
        return f"{self.label}@{self.budget}"


def budget_label(budget: Budget) -> str:
    return str(budget.tokens) if budget.tokens is not None else f"{budget.ratio:g}"


def _is_file_spec(spec: str) -> bool:
    return Path(spec).suffix.lower() in FORMATS


def _has_own_budget(spec: str) -> bool:
    """Whether the preset or config file ``spec`` sets a budget itself."""
    if _is_file_spec(spec):
        data = read_config_file(spec)
        return "budget" in data or ("preset" in data and _has_own_budget(str(data["preset"])))
    from windowkv.plugins import default_registries

    registry = default_registries()["policy"]
    if spec not in registry:
        return False  # resolve_policy reports the unknown name
    preset = registry.get(spec)
    return preset.budget_locked or "budget" in preset.config


def make_variants(specs: Sequence[str], budgets: Sequence[str | int | float] | None = None) -> list[Variant]:
    """Every policy spec (preset name or config file) at every budget, duplicates removed.

    A preset whose budget is fixed (``full``) appears once whatever the budgets. Without budgets a
    config file keeps its own budget, a preset its own or :data:`DEFAULT_BUDGET`.

    Raises:
        ConfigError: an unknown preset (listing the registered ones), an invalid file or budget.
    """
    variants: list[Variant] = []
    seen: dict[tuple[str, str], Variant] = {}
    for spec in specs:
        spec = str(spec)
        wanted: list[Any] = list(budgets) if budgets else [None]
        for budget in wanted:
            if budget is not None:
                try:
                    Budget.of(budget)
                except ValueError as exc:
                    raise ConfigError([("budget", str(exc))]) from None
            if budget is None and not _has_own_budget(spec):
                budget = DEFAULT_BUDGET
            policy = resolve_policy(spec, budget=budget)
            label = _label(spec, policy)
            variant = Variant(label, policy, spec)
            key = (label, variant.budget)
            if key in seen:
                if seen[key].fingerprint != variant.fingerprint:
                    raise ConfigError([("policy", f"two different policies are both called {label!r} at budget "
                                                  f"{variant.budget}; give one a 'name' in its config file")])
                continue
            seen[key] = variant
            variants.append(variant)
    return variants


def _label(spec: str, policy: Policy) -> str:
    if not _is_file_spec(spec):
        return spec
    data = read_config_file(spec)
    return str(data["name"]) if data.get("name") else Path(spec).stem


# ---------------------------------------------------------------------------- measuring one generation

class _StepTimer:
    """A logits processor that only records when each generation step's logits are ready."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.times.append(time.perf_counter())
        return scores


def _status_kib(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field_name}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) if m else None


class MemoryMeter:
    """Peak memory of one generation above what was in use before it.

    - CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (method ``cuda_allocated``);
    - Linux CPU: the process's peak resident set (``VmHWM``), reset through ``/proc/self/clear_refs``
      before the generation, minus the resident set before it (method ``rss_peak``);
    - elsewhere: the growth of ``getrusage`` max RSS (method ``ru_maxrss``): a lower bound, often 0 once
      an earlier, larger prompt has raised the high-water mark.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.method: str | None = None
        self._base = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda_allocated"
            return
        try:
            Path("/proc/self/clear_refs").write_text("5")
            rss = _status_kib("VmRSS")
            if rss is None:
                raise OSError
            self._base = rss * 1024
            self.method = "rss_peak"
        except OSError:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.method = "ru_maxrss"

    def peak(self) -> int | None:
        """Bytes above the start level at the highest point since :meth:`start`."""
        if self.method == "cuda_allocated":
            return int(torch.cuda.max_memory_allocated(self.device) - self._base)
        if self.method == "rss_peak":
            hwm = _status_kib("VmHWM")
            return None if hwm is None else max(hwm * 1024 - self._base, 0)
        if self.method == "ru_maxrss":
            return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._base, 0)
        return None


@dataclass
class ModelInfo:
    """What the runner needs to know of a model (sizes for KV bytes, context length)."""

    num_layers: int
    kv_heads: int
    head_dim: int
    dtype: str
    bytes_per_token_layer: int  # keys + values of one token in one layer
    max_positions: int | None
    model_type: str | None

    @classmethod
    def of(cls, model: Any) -> ModelInfo:
        from windowkv.hf.architectures import text_config

        config = text_config(model)
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        dtype = next(model.parameters()).dtype
        return cls(config.num_hidden_layers, kv_heads, head_dim, str(dtype).removeprefix("torch."),
                   2 * kv_heads * head_dim * dtype.itemsize, getattr(config, "max_position_embeddings", None),
                   getattr(config, "model_type", None))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Generation:
    """One greedy generation and what it cost."""

    prediction: str
    prompt_tokens: int
    new_tokens: int
    prefill_seconds: float
    decode_tokens_per_s: float | None
    seconds: float
    peak_memory_bytes: int | None
    memory_method: str | None
    kept_per_layer: list[int]
    suffix_size: int | None
    task_label: str | None
    output_ids: list[int] = field(default_factory=list)


def generation_config(model: Any, max_new_tokens: int, pad_token_id: int | None) -> Any:
    """The model's generation config made greedy, with ``max_new_tokens``."""
    config = copy.deepcopy(model.generation_config)
    config.do_sample = False
    for name in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
        if hasattr(config, name):
            setattr(config, name, None)
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    if pad_token_id is not None:
        config.pad_token_id = pad_token_id
    return config


def warm_up(model: Any) -> None:
    """One short forward pass, so that the first measured generation does not pay one-time costs.

    Safetensors weights are memory-mapped: the first forward faults every page in, which would count
    the whole model in that generation's peak memory (and time).
    """
    ids = torch.ones(1, 8, dtype=torch.long, device=model.device)
    with torch.no_grad():
        model(input_ids=ids)


def run_prompt(model: Any, tokenizer: Any, handle: Any, text: str, *, chat: bool, max_new_tokens: int,
               stop_strings: Sequence[str] | None = None, seed: int = 0,
               input_ids: torch.Tensor | None = None, ignore_eos: bool = False) -> Generation:
    """Generate greedily from ``text`` (already rendered) with the policy handle ``handle`` active.

    Args:
        handle: the :class:`~windowkv.hf.apply.CompressionHandle` of the policy, or ``None`` for no policy.
        chat: the text carries the chat template's special tokens (tokenize without adding more).
        input_ids: the tokenized prompt ``[1, L]`` when the caller already has it.
        ignore_eos: always generate ``max_new_tokens`` tokens (throughput measurements).
    """
    from transformers import LogitsProcessorList

    device = model.device
    if input_ids is None:
        input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not chat)["input_ids"]
    input_ids = input_ids.to(device)
    attention_mask = torch.ones_like(input_ids)
    timer = _StepTimer()
    kwargs: dict[str, Any] = {}
    if stop_strings:
        kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)
    config = generation_config(model, max_new_tokens, tokenizer.pad_token_id)
    if ignore_eos:
        config.min_new_tokens = max_new_tokens
    meter = MemoryMeter(device)
    torch.manual_seed(seed)
    if handle is not None:
        handle.last_run = None
    meter.start()
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                             logits_processor=LogitsProcessorList([timer]), **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter()
    peak = meter.peak()
    new_ids = out[0, input_ids.shape[1]:].tolist()
    prompt_tokens = int(input_ids.shape[1])
    times = timer.times
    prefill = (times[0] - start) if times else end - start
    decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    run = handle.last_run if handle is not None else None
    num_layers = ModelInfo.of(model).num_layers
    if run is not None:
        kept = [row[0] for row in run.kept_tokens()]
        suffix = run.groups[0].suffix_size if run.groups else None
        label = run.predictions[0].label if run.predictions else None
    else:
        kept, suffix, label = [prompt_tokens] * num_layers, None, None
    return Generation(
        prediction=tokenizer.decode(new_ids, skip_special_tokens=True),
        prompt_tokens=prompt_tokens, new_tokens=len(new_ids), prefill_seconds=prefill,
        decode_tokens_per_s=decode, seconds=end - start, peak_memory_bytes=peak, memory_method=meter.method,
        kept_per_layer=kept, suffix_size=suffix, task_label=label, output_ids=new_ids,
    )


def cache_stats(gen: Generation, info: ModelInfo) -> dict[str, Any]:
    """Kept KV tokens and bytes, and the fractions of the full cache and of the review tokens kept."""
    layers = len(gen.kept_per_layer)
    kept = sum(gen.kept_per_layer)
    full = gen.prompt_tokens * layers
    suffix = min(gen.suffix_size, gen.prompt_tokens) if gen.suffix_size is not None else 0
    review = gen.prompt_tokens - suffix
    kept_review = sum(max(k - suffix, 0) for k in gen.kept_per_layer)
    return {
        "kept_tokens": kept,
        "full_tokens": full,
        "kept_fraction": kept / full if full else 1.0,
        "kept_review_fraction": kept_review / (review * layers) if review > 0 else 1.0,
        "suffix_size": gen.suffix_size,
        "kept_per_layer": gen.kept_per_layer,
        "kv_bytes_kept": kept * info.bytes_per_token_layer,
        "kv_bytes_full": full * info.bytes_per_token_layer,
    }


# ---------------------------------------------------------------------------- a whole run

@dataclass
class EvalResult:
    """What :func:`evaluate` did (on this rank)."""

    out_dir: Path
    rows: list[dict[str, Any]]  # every row of the run directory (rank 0; this rank's own rows elsewhere)
    computed: int
    resumed: int
    skipped: list[str]
    summary: dict[str, Any] | None


Progress = Callable[[int, str], Any]


def evaluate(model: Any, tokenizer: Any, examples: Sequence[Example], variants: Sequence[Variant],
             out_dir: str | Path, *, model_name: str = "smollm2", seed: int = 0, dist: DistContext | None = None,
             config: Mapping[str, Any] | None = None, progress: bool = True, console: Any = None,
             timings: Mapping[str, float] | None = None, ignore_eos: bool = False) -> EvalResult:
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

    Raises:
        ResultsMismatchError: ``out_dir`` holds rows of another model, or of another configuration of a
            policy under the same name and budget.
    """
    from rich.console import Console

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
    done = {row_key(r) for r in existing}
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
        for variant in variants:
            items = [e for v, e in todo if v is variant]
            if not items:
                continue
            with variant.policy.apply(model, tokenizer) as handle:
                for example in items:
                    advance(0, f"{variant.name} {example.id}")
                    row = run_example(model, tokenizer, handle, example, variant, info, model_name=model_name,
                                      seed=seed, rank=dist.rank, ignore_eos=ignore_eos)
                    writer.write(row)
                    computed += 1
                    if row.get("skipped"):
                        skipped.append(f"{example.id}: {row['skipped']}")
                        console.print(f"[yellow]skipped[/] {example.id} ({variant.name}): {row['skipped']}")
                    advance(1, f"{variant.name} {example.id}")
    dist.barrier()
    summary = None
    rows: list[dict[str, Any]]
    if dist.is_main:
        rows = merge_rank_files(out, dist.world_size) if dist.distributed else read_rows(main_file)
        summary = write_summary(out, rows, _summary_info(
            config, variants, model_name, info, seed, dist, started, len(examples), computed, timings))
    else:
        rows = read_rows(writer_path)
    dist.barrier()
    return EvalResult(out, rows, computed, resumed, skipped, summary)


def run_example(model: Any, tokenizer: Any, handle: Any, example: Example, variant: Variant, info: ModelInfo,
                *, model_name: str, seed: int = 0, rank: int = 0, ignore_eos: bool = False) -> dict[str, Any]:
    """One result row: generate, score and measure ``example`` under ``variant`` (``handle`` active)."""
    chat = uses_chat_template(tokenizer, example)
    text = render_prompt(tokenizer, example, warn=False)
    input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not chat)["input_ids"]
    prompt_tokens = int(input_ids.shape[1])
    row: dict[str, Any] = {
        "id": example.id, "task": example.task, "policy": variant.label, "budget": variant.budget,
        "budget_kind": "tokens" if variant.policy.budget.tokens is not None else "ratio",
        "budget_value": variant.policy.budget.to_config(), "policy_hash": variant.fingerprint,
        "model": model_name, "length": example.meta.get("length"), "depth": example.meta.get("depth"),
        "metric": example.metric, "prompt_tokens": prompt_tokens,
    }
    limit = info.max_positions
    if limit is not None and prompt_tokens + example.max_new_tokens > limit:
        row["skipped"] = (f"prompt of {prompt_tokens} tokens + {example.max_new_tokens} new tokens exceeds the "
                          f"model's context of {limit} positions")
        return row
    gen = run_prompt(model, tokenizer, handle, text, chat=chat, max_new_tokens=example.max_new_tokens,
                     stop_strings=example.meta.get("stop_strings"), seed=seed, input_ids=input_ids,
                     ignore_eos=ignore_eos)
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
    return row


def _check_compatible(rows: Sequence[Mapping[str, Any]], variants: Sequence[Variant], model_name: str) -> None:
    models = sorted({str(r.get("model")) for r in rows if r.get("model") is not None})
    if models and models != [model_name]:
        raise ResultsMismatchError(
            f"the output directory holds results of model {', '.join(models)}, not {model_name}; "
            "use another --out (finished rows are never overwritten)")
    hashes = {(r.get("policy"), str(r.get("budget"))): r.get("policy_hash") for r in rows}
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
    }


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
