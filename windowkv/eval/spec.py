"""One evaluation spec: what ``windowkv eval`` and ``windowkv compare`` run, and what the summary records.

::

    spec = EvalSpec(task="ruler", subtasks=["vt"], policies=["full", "snapkv"], budgets=["0.12"], lengths=[1024])
    spec.task_names()          # ['ruler/vt']         (task resolution lives here, not in the CLI)
    spec.variants()            # full@1, snapkv@0.12  (policies x budgets)
    run_spec(spec)             # load the model, build the examples, evaluate into spec.out_dir()

The CLI builds an :class:`EvalSpec` from its options (``eval`` is ``compare`` with one policy and at most one
budget) and the run's ``summary.json`` stores ``spec.model_dump(mode="json")`` under ``config``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from windowkv.component import pydantic_errors
from windowkv.errors import ConfigError


class EvalSpec(BaseModel):
    """Everything one evaluation run needs, validated: task, policies x budgets, grid, model, seeds, output."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    command: Literal["eval", "compare"] = Field("compare", description="eval: one policy at one budget.")
    task: str = Field("needle", description="needle, a family (ruler, longbench), a task name or a glob.")
    subtasks: list[str] = Field(default_factory=list, description="Tasks of the family (vt, hotpotqa ...).")
    policies: list[str] | None = Field(None, description="Preset names or policy files; None: full, windowkv and "
                                                         "every preset tagged baseline.")
    budgets: list[str] | None = Field(None, description="Tokens or ratios; None: eval keeps the policy's (else "
                                                        "0.25), compare runs 0.12 and 0.25.")
    model: str | None = Field(None, description="Hub id or directory; None: the embedded SmolLM2-135M-Instruct.")
    device: str = Field("cpu", description="cpu, cuda, cuda:1, mps ...")
    dtype: str = Field("float32", description="float32, bfloat16, float16 or auto.")
    attn: str = Field("sdpa", description="Attention implementation: sdpa or eager.")
    device_map: str | None = Field(None, description="Passed to from_pretrained (e.g. auto).")
    lengths: list[int] | None = Field(None, description="Prompt lengths in tokens (synthetic tasks).")
    depths: list[float] | None = Field(None, description="Needle depths in [0, 1].")
    num_examples: int = Field(1, ge=1, description="Examples per length (x depth).")
    limit: int | None = Field(None, ge=0, description="At most this many examples per task.")
    seeds: list[int] = Field(default_factory=lambda: [0], min_length=1,
                             description="Data seeds: each gives its own synthetic examples; the first seeds torch.")
    data: Path | None = Field(None, description="LongBench JSONL file or directory.")
    max_length: int | None = Field(None, ge=2, description="Truncate longer LongBench prompts (None: context - 512).")
    max_new_tokens: int | None = Field(None, ge=1, description="Override every example's generation length.")
    ignore_eos: bool = Field(False, description="Always generate max_new_tokens tokens.")
    task_options: dict[str, Any] = Field(default_factory=dict,
                                         description="Options of every task of the run (its fields, e.g. "
                                                     "question=after for needle_prose); validated by each task.")
    shared_prefill: bool = Field(False, description="Prefill each example once without a policy and replay it "
                                                    "under every policy (same answers, a fraction of the time).")
    prefill_chunk: int | None = Field(None, ge=1, description="Prefill prompts longer than this many tokens in "
                                      "chunks, evicting between chunks (None: one-shot prefill).")
    threads: int | None = Field(None, ge=1, description="torch CPU threads.")
    out: Path | None = Field(None, description="Run directory (None: runs/<command>-<task>).")
    progress: bool = Field(True, description="Show progress bars.")
    plots: bool = Field(True, description="Write PNG plots into the run directory.")

    @field_validator("depths")
    @classmethod
    def _depths_in_range(cls, value: list[float] | None) -> list[float] | None:
        if value and any(not 0 <= d <= 1 for d in value):
            raise ValueError(f"depths must lie in [0, 1] (got {value})")
        return value

    @field_validator("lengths")
    @classmethod
    def _positive_lengths(cls, value: list[int] | None) -> list[int] | None:
        if value and any(n < 1 for n in value):
            raise ValueError(f"lengths must be >= 1 token (got {value})")
        return value

    @model_validator(mode="after")
    def _chunks_are_not_replayed(self) -> EvalSpec:
        if self.shared_prefill and self.prefill_chunk is not None:
            raise ValueError("shared_prefill replays one uncompressed prefill; it cannot combine with prefill_chunk")
        return self

    @model_validator(mode="after")
    def _eval_is_one_variant(self) -> EvalSpec:
        if self.command == "eval" and (self.policies is None or len(self.policies) != 1 or len(self.budgets or []) > 1):
            raise ValueError("eval runs one policy at one budget; use compare for several")
        return self

    @classmethod
    def of(cls, **fields: Any) -> EvalSpec:
        """Validate ``fields``; errors are a :class:`ConfigError` naming each field."""
        try:
            return cls(**fields)
        except ValidationError as exc:
            raise ConfigError(pydantic_errors(exc)) from None

    # ------------------------------------------------------------------ what the spec resolves to

    def policy_specs(self) -> list[str]:
        return list(self.policies) if self.policies is not None else default_policies()

    def budget_specs(self) -> list[str] | None:
        if self.budgets:
            return list(self.budgets)
        return None if self.command == "eval" else ["0.12", "0.25"]

    def variants(self) -> list[Any]:
        """Policies x budgets (:func:`windowkv.eval.variants.make_variants`)."""
        from windowkv.eval.variants import make_variants

        return make_variants(self.policy_specs(), self.budget_specs())

    def task_names(self) -> list[str]:
        """The task names this spec runs (:func:`windowkv.eval.tasks.resolve_tasks`)."""
        from windowkv.eval.tasks import resolve_tasks

        return resolve_tasks(self.task, self.subtasks or None, self.data)

    def out_dir(self) -> Path:
        return self.out or Path("runs") / f"{self.command}-{self.task.replace('/', '_').replace('*', 'all')}"

    def model_name(self) -> str:
        return self.model or "smollm2"


def default_policies() -> list[str]:
    """``full``, ``windowkv`` and every preset tagged ``baseline`` (ablations and examples only on request)."""
    import warnings

    from windowkv.plugins import default_registries

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        entries = default_registries()["policy"].entries()
    names = [e.name for e in entries if e.name in ("full", "windowkv") or "baseline" in e.obj.tags]
    return sorted(names, key=lambda n: (n != "full", n != "windowkv", n))


@dataclass
class SpecRun:
    """What :func:`run_spec` did: the resolved spec (as stored), the task names, the run and task failures."""

    spec: EvalSpec
    names: list[str]
    result: Any
    failures: list[Any]


def build_spec_examples(spec: EvalSpec, names: list[str], tokenizer: Any) -> tuple[list[Any], list[Any]]:
    """The examples of every task and seed of ``spec`` (each id once) and the tasks that failed to build."""
    from windowkv.eval.runner import limit_new_tokens
    from windowkv.eval.tasks import build_task_examples

    examples: dict[str, Any] = {}
    failures: list[Any] = []
    for seed in spec.seeds:
        built = build_task_examples(names, tokenizer=tokenizer, lengths=spec.lengths, depths=spec.depths,
                                    num_examples=spec.num_examples, limit=spec.limit, seed=seed,
                                    data_path=spec.data, max_length=spec.max_length, options=spec.task_options)
        failures += [f for f in built.failures if f.task not in {g.task for g in failures}]
        for example in built.examples:
            examples.setdefault(example.id, example)
    if not examples:
        raise ConfigError([("task", f"no examples for {', '.join(names)} (check limit, data and the failures above)")])
    return limit_new_tokens(list(examples.values()), spec.max_new_tokens), failures


def _check_chunking(variants: list[Any], chunk: int) -> None:
    """Refuse, before the model loads, a variant that cannot prefill in chunks of ``chunk`` (naming it)."""
    from windowkv.hf.chunked import check_chunking

    errors = []
    for variant in variants:
        try:
            check_chunking(variant.policy, chunk)
        except ConfigError as exc:
            errors += [(f"{variant.name}: {loc}", msg) for loc, msg in exc.errors]
    if errors:
        raise ConfigError(errors)


def run_spec(spec: EvalSpec, *, console: Any = None, dist: Any = None, loaded: tuple[Any, Any] | None = None,
             load_seconds: float | None = None) -> SpecRun:
    """Resolve, load the model (unless ``loaded`` gives ``(model, tokenizer)``), build examples, evaluate.

    Raises:
        ConfigError, UnknownComponentError: a bad spec (before the model loads when possible).
        ModelLoadError: the model cannot be loaded.
    """
    from windowkv.eval.distributed import DistContext
    from windowkv.eval.measure import ModelInfo
    from windowkv.eval.runner import evaluate

    variants = spec.variants()
    names = spec.task_names()
    if spec.prefill_chunk is not None:
        _check_chunking(variants, spec.prefill_chunk)
    dist = dist or DistContext()
    start = time.perf_counter()
    if loaded is None:
        import torch

        from windowkv.models import load_model

        if spec.threads:
            torch.set_num_threads(spec.threads)
        model, tokenizer = load_model(spec.model, dtype=spec.dtype, device=dist.device(spec.device),
                                      attn_implementation=spec.attn, device_map=spec.device_map)
    else:
        model, tokenizer = loaded
    load_seconds = time.perf_counter() - start if load_seconds is None else load_seconds
    if spec.max_length is None and any(n.startswith("longbench/") for n in names):
        ctx = ModelInfo.of(model).max_positions
        spec = spec.model_copy(update={"max_length": max(ctx - 512, 256) if ctx else None})
    examples, failures = build_spec_examples(spec, names, tokenizer)
    if console is not None and dist.is_main:
        console.print(f"{len(examples)} examples x {len(variants)} policy/budget pairs "
                      f"({', '.join(v.name for v in variants)}) -> {spec.out_dir()}"
                      + (f" on {dist.world_size} processes" if dist.distributed else ""))
    config = {**spec.model_dump(mode="json"), "tasks": names,
              "task_failures": [f.task for f in failures]}
    result = evaluate(model, tokenizer, examples, variants, spec.out_dir(), model_name=spec.model_name(),
                      seed=spec.seeds[0], dist=dist, config=config, progress=spec.progress, console=console,
                      timings={"model_load_seconds": round(load_seconds, 3)}, ignore_eos=spec.ignore_eos,
                      shared_prefill=spec.shared_prefill, prefill_chunk=spec.prefill_chunk)
    return SpecRun(spec, names, result, failures)
