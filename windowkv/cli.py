"""The ``windowkv`` command line: evaluate, compare and inspect KV-cache compression policies.

::

    windowkv plugins                                  # every registered component and its distribution
    windowkv validate policy.yaml                     # check a policy config file
    windowkv eval needle --policy windowkv --budget 0.25 --lengths 1024,2048
    windowkv compare needle -p full -p windowkv -b 0.12 -b 0.25 --out runs/cmp
    windowkv generate "Summarise: ..." --policy windowkv --budget 0.12
    windowkv report runs/cmp --markdown
    windowkv bench -p windowkv -p snapkv --lengths 1k,2k,4k --json runs/bench.json
    windowkv classifier eval -c keyword -c embedding      # task classifiers on the held-out prompts

Exit codes: 0 success; 1 a runtime failure (model cannot be loaded, unsupported model) or an invalid
file for ``validate``; 2 a usage error (unknown policy, task or dataset name, invalid budget or config,
results of another run in ``--out``). Errors are one clear message, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterator, Optional

import typer
from rich.console import Console

from windowkv.cli_classifier import app as classifier_app
from windowkv.errors import ConfigError, UnknownComponentError, UnsupportedModelError, UsageError

if TYPE_CHECKING:
    from windowkv.eval.rows import ResultRow

app = typer.Typer(
    name="windowkv",
    help="KV-cache compression at prefill for Hugging Face transformers models (WindowKV and baselines).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    rich_markup_mode="rich",
)
app.add_typer(classifier_app, name="classifier")
def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr)
    # tables are wide: do not squeeze them into 80 columns when writing to a file or a pipe
    return console if console.is_terminal else Console(stderr=stderr, width=160)


out = _console()
err = _console(stderr=True)

USAGE_ERROR = 2
RUNTIME_ERROR = 1
TASK_FAMILIES = ("needle", "ruler", "longbench")


# ---------------------------------------------------------------------------- shared options

PolicyOpt = Annotated[str, typer.Option("--policy", "-p", help="A preset name (see `windowkv plugins`) or a "
                                        "policy config file (.yaml/.toml/.json).")]
PoliciesOpt = Annotated[Optional[list[str]], typer.Option(
    "--policy", "-p", help="Preset name or config file; repeat for several. Default: full, windowkv and every "
    "preset tagged baseline.")]
BudgetOpt = Annotated[Optional[str], typer.Option(
    "--budget", "-b", help="Tokens (256) or a ratio of the review tokens (0.25 or 25%). Default: the "
    "config file's, else 0.25.")]
BudgetsOpt = Annotated[Optional[list[str]], typer.Option(
    "--budget", "-b", help="Tokens, ratio, bytes (\"1.5MiB\") or a share of the full cache's bytes (\"12% bytes\"); repeat "
         "for several. Default: 0.12 and 0.25.")]
ModelOpt = Annotated[Optional[str], typer.Option(
    "--model", "-m", help="Hugging Face model id or local directory. Default: the embedded SmolLM2-135M-Instruct.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="cpu, cuda, cuda:1, mps ...")]
DtypeOpt = Annotated[str, typer.Option("--dtype", help="float32, bfloat16, float16 or auto.")]
AttnOpt = Annotated[str, typer.Option("--attn", help="Attention implementation: sdpa or eager.")]
DeviceMapOpt = Annotated[Optional[str], typer.Option(
    "--device-map", help="Passed to from_pretrained (e.g. auto: shard a large model over the devices).")]
LimitOpt = Annotated[Optional[int], typer.Option("--limit", min=0, help="At most this many examples per task.")]
SeedOpt = Annotated[list[int], typer.Option("--seed", help="Seed of the synthetic data (repeat for several: each "
                                            "gives its own examples); the first also seeds torch.")]
GenSeedOpt = Annotated[int, typer.Option("--seed", help="Seed of torch (and of the needle prompt).")]
OutOpt = Annotated[Optional[Path], typer.Option(
    "--out", "-o", help="Run directory; rerunning into it resumes. Default: runs/<command>-<task>.")]
LengthsOpt = Annotated[Optional[list[str]], typer.Option(
    "--lengths", "-L", help="Prompt lengths in tokens, comma separated or repeated (needle, ruler).")]
DepthsOpt = Annotated[Optional[list[str]], typer.Option(
    "--depths", "-D", help="Needle depths in [0, 1], comma separated or repeated (needle).")]
NumOpt = Annotated[int, typer.Option("--num-examples", "-n", min=1, help="Examples per length (x depth).")]
SubtaskOpt = Annotated[Optional[list[str]], typer.Option(
    "--task", "-t", help="RULER tasks (e.g. vt, niah_single_1) or LongBench datasets (e.g. hotpotqa); repeatable.")]
DataOpt = Annotated[Optional[Path], typer.Option("--data", help="LongBench JSONL file or directory.")]
MaxLengthOpt = Annotated[Optional[int], typer.Option(
    "--max-length", help="LongBench: truncate longer prompts in the middle (default: the model's context - 512).")]
MaxNewOpt = Annotated[Optional[int], typer.Option("--max-new-tokens", min=1,
                                                  help="Override every example's generation length.")]
IgnoreEosOpt = Annotated[bool, typer.Option("--ignore-eos", help="Always generate --max-new-tokens tokens "
                                            "(for decode-speed measurements).")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="torch CPU threads.")]
SharedPrefillOpt = Annotated[bool, typer.Option(
    "--shared-prefill", help="Prefill each prompt once without a policy and replay it under every policy: the "
    "same answers and caches in a fraction of the time (no per-policy prefill time, memory or decode speed).")]
PrefillChunkOpt = Annotated[Optional[int], typer.Option(
    "--prefill-chunk", min=1, help="Prefill prompts longer than this many tokens in chunks, evicting to the budget "
    "between chunks: a layer never holds more than budget + suffix + chunk slots (one prompt at a time).")]
TaskOptionOpt = Annotated[Optional[list[str]], typer.Option(
    "--task-option", "-O", help="A task option KEY=VALUE, repeatable (e.g. needle_prose: question=after, "
    "answer_prefix=true, source=1910-Taft-1).")]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
PlotsOpt = Annotated[bool, typer.Option("--plots/--no-plots", help="Write PNG plots into the run directory.")]


def main() -> None:
    """Entry point of the ``windowkv`` console script (and ``python -m windowkv``)."""
    warnings.formatwarning = _format_warning
    app()


def _format_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    return f"warning ({category.__name__}): {message}\n"


@contextlib.contextmanager
def _user_errors(usage_code: int = USAGE_ERROR) -> Iterator[None]:
    """Turn windowkv's deliberate errors into one message and an exit code, without a traceback.

    Only windowkv's own errors (:class:`windowkv.errors.WindowKVError`) are the user's to fix; any other
    exception (a bug in windowkv, a plugin or a task) keeps its traceback.
    """
    from windowkv.errors import WindowKVError
    from windowkv.models import ModelLoadError

    try:
        yield
    except (ModelLoadError, UnsupportedModelError) as exc:
        err.print("[bold red]error:[/] " + _escape(str(exc)), highlight=False)
        raise typer.Exit(RUNTIME_ERROR) from None
    except WindowKVError as exc:
        err.print("[bold red]error:[/] " + _escape(str(exc)))
        raise typer.Exit(usage_code) from None


def _escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


def parse_task_options(values: list[str] | None) -> dict[str, Any]:
    """``["question=after", "answer_prefix=true"]`` -> ``{"question": "after", "answer_prefix": True}``.

    Values ``true``/``false`` become booleans, integers and floats numbers, anything else stays a string.
    """
    options: dict[str, Any] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip().isidentifier():
            raise UsageError(f"--task-option must be KEY=VALUE (got {item!r})")
        value: Any = raw.strip()
        if value.lower() in ("true", "false"):
            value = value.lower() == "true"
        else:
            for kind in (int, float):
                try:
                    value = kind(value)
                    break
                except ValueError:
                    pass
        options[key.strip()] = value
    return options


def _split(values: list[str] | None, kind: type) -> list[Any] | None:
    if not values:
        return None
    items = [v.strip() for value in values for v in value.split(",") if v.strip()]
    try:
        return [kind(v) for v in items]
    except ValueError:
        raise typer.BadParameter(f"expected comma-separated {kind.__name__} values, got {', '.join(values)}") \
            from None


def _quiet_transformers() -> None:
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # logging is cosmetic
        pass


def _load(model: str | None, device: str, dtype: str, attn: str, device_map: str | None,
          threads: int | None) -> tuple[Any, Any, float]:
    import torch

    from windowkv.models import load_model

    if threads:
        torch.set_num_threads(threads)
    _quiet_transformers()
    start = time.perf_counter()
    with err.status(f"loading {model or 'the embedded SmolLM2-135M-Instruct'} ..."):
        m, tok = load_model(model, dtype=dtype, device=device, attn_implementation=attn, device_map=device_map)
    return m, tok, time.perf_counter() - start


# ---------------------------------------------------------------------------- plugins, validate, tasks

@app.command()
def plugins(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """List every registered component: kind, name, providing distribution and version; and failed plugins."""
    from rich.table import Table

    from windowkv.plugins import default_registries

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # failed plugins are listed below instead
        registries = default_registries()
    entries = registries.all_entries()
    if as_json:
        data = {"components": [{"kind": e.kind, "name": e.name, "plugin": e.plugin, "distribution": e.distribution,
                                "version": e.version} for e in entries],
                "failed": list(registries.load_errors)}
        out.print_json(json.dumps(data))
        return
    table = Table(title="windowkv components", header_style="bold")
    for column in ("kind", "name", "distribution", "version", "plugin"):
        table.add_column(column)
    for e in entries:
        table.add_row(e.kind, e.name, e.distribution or "–", e.version or "–", e.plugin)
    out.print(table)
    if registries.load_errors:
        err.print(f"[bold red]{len(registries.load_errors)} plugin(s) failed to load:[/]")
        for message in registries.load_errors:
            err.print(f"  [red]✗[/] {_escape(message)}")


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="A policy config file: YAML, TOML or JSON.")],
    budget: BudgetOpt = None,
) -> None:
    """Validate a policy config file: exit 0 with a summary, or 1 listing each bad field and why."""
    from windowkv.config import load_policy

    try:
        policy = load_policy(file, budget=budget)
    except ConfigError as exc:
        err.print(f"[bold red]invalid:[/] {_escape(str(file))}")
        for loc, message in exc.errors:
            err.print(f"  {_escape(loc or '<root>')}: {_escape(message)}", highlight=False)
        raise typer.Exit(RUNTIME_ERROR) from None
    cfg = policy.to_config()
    out.print(f"[bold green]ok[/] {_escape(str(file))}: policy [bold]{policy.name}[/], budget {policy.budget}")
    for key in ("method", "scorer", "classifier", "allocator", "sharing", "merger", "quantizer", "channel_pruner"):
        if key in cfg:
            out.print(f"  {key}: {_escape(json.dumps(cfg[key]))}", highlight=False)
    for label, profile in cfg.get("profiles", {}).items():
        out.print(f"  profile {label}: {_escape(json.dumps(profile))}", highlight=False)


@app.command()
def tasks() -> None:
    """List the evaluation tasks (needle, ruler/*, longbench/* and every plugin's) with their distribution."""
    from rich.table import Table

    from windowkv.plugins import default_registries

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # `windowkv plugins` lists failed plugins
        registry = default_registries()["task"]
    table = Table(title="windowkv evaluation tasks", header_style="bold")
    for column in ("task", "description", "distribution"):
        table.add_column(column)
    for name in registry.registration_order():
        entry = registry.entry(name)
        table.add_row(name, entry.obj.description, entry.provider)
    out.print(table)


# ---------------------------------------------------------------------------- eval and compare

#: option name of ``eval``/``compare`` -> :class:`~windowkv.eval.spec.EvalSpec` field, where they differ
_SPEC_FIELD = {"policy": "policies", "budget": "budgets", "seed": "seeds", "out_dir": "out",
               "task_option": "task_options"}


def _run_options(command: str, options: dict[str, Any]) -> None:
    """Run ``eval`` or ``compare`` from its parsed options (the command function's ``locals()``): one
    mapping from options to :class:`~windowkv.eval.spec.EvalSpec` fields for both commands."""
    with _user_errors():
        fields = {_SPEC_FIELD.get(name, name): value for name, value in options.items()}
        fields.update(policies=fields["policies"] or None, budgets=fields["budgets"] or None,
                      subtasks=fields["subtasks"] or [], lengths=_split(fields["lengths"], int),
                      depths=_split(fields["depths"], float), task_options=parse_task_options(fields["task_options"]))
    _run({"command": command, **fields})


def _run(spec_fields: dict[str, Any]) -> None:
    """Build the :class:`~windowkv.eval.spec.EvalSpec` of a command's options and run it."""
    from windowkv.eval.distributed import DistContext
    from windowkv.eval.spec import EvalSpec, run_spec

    with _user_errors():
        spec = EvalSpec.of(**spec_fields)
        spec.variants()
        names = spec.task_names()  # unknown names and bad budgets fail before the model loads
    dist = DistContext.from_env()
    try:
        with _user_errors():
            loaded = _load(spec.model, dist.device(spec.device), spec.dtype, spec.attn, spec.device_map, spec.threads)
            run = run_spec(spec, console=err, dist=dist, loaded=loaded[:2], load_seconds=loaded[2])
        for failure in run.failures:
            err.print(f"[bold red]task {_escape(failure.task)} failed[/] ({_escape(failure.provider)}); "
                      "the other tasks ran:")
            err.print(_escape(failure.traceback), highlight=False)
        if dist.is_main:
            _print_results(run.result.rows, names, spec.out_dir(), spec.plots)
    finally:
        dist.close()


def _print_results(rows: list[ResultRow], names: list[str], out_dir: Path, plots: bool) -> None:
    from windowkv.eval.plots import write_plots
    from windowkv.eval.report import result_table

    wanted = set(names)
    rows = [r for r in rows if r.task in wanted]
    out.print(result_table(rows).to_rich(f"{', '.join(names[:4])}{' ...' if len(names) > 4 else ''}"))
    out.print("score: mean primary metric (needle: exact match). KV kept: share of the full KV cache kept "
              "(suffix included); review kept: share of the prompt minus suffix kept (what a ratio budget counts).",
              style="dim")
    written = write_plots(rows, out_dir) if plots else []
    out.print(f"rows: {out_dir / 'results.jsonl'}  summary: {out_dir / 'summary.json'}, {out_dir / 'summary.csv'}")
    for path in written:
        out.print(f"plot: {path}")


TaskArg = Annotated[str, typer.Argument(help="needle, ruler or longbench, or a task name such as ruler/vt "
                                        "(see `windowkv tasks`).")]


@app.command("eval")
def eval_cmd(
    task: TaskArg,
    policy: PolicyOpt = "windowkv",
    budget: BudgetOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    attn: AttnOpt = "sdpa",
    device_map: DeviceMapOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = [0],  # noqa: B006 (typer reads the default)
    out_dir: OutOpt = None,
    lengths: LengthsOpt = None,
    depths: DepthsOpt = None,
    num_examples: NumOpt = 1,
    subtasks: SubtaskOpt = None,
    data: DataOpt = None,
    max_length: MaxLengthOpt = None,
    max_new_tokens: MaxNewOpt = None,
    ignore_eos: IgnoreEosOpt = False,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
    plots: PlotsOpt = True,
    task_option: TaskOptionOpt = None,
    shared_prefill: SharedPrefillOpt = False,
    prefill_chunk: PrefillChunkOpt = None,
) -> None:
    """Evaluate one policy at one budget on a task; rows, summary and plots go to --out (resumable)."""
    _run_options("eval", {**locals(), "policy": [policy], "budget": [budget] if budget else None})


@app.command()
def compare(
    task: TaskArg = "needle",
    policy: PoliciesOpt = None,
    budget: BudgetsOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    attn: AttnOpt = "sdpa",
    device_map: DeviceMapOpt = None,
    limit: LimitOpt = None,
    seed: SeedOpt = [0],  # noqa: B006 (typer reads the default)
    out_dir: OutOpt = None,
    lengths: LengthsOpt = None,
    depths: DepthsOpt = None,
    num_examples: NumOpt = 1,
    subtasks: SubtaskOpt = None,
    data: DataOpt = None,
    max_length: MaxLengthOpt = None,
    max_new_tokens: MaxNewOpt = None,
    ignore_eos: IgnoreEosOpt = False,
    threads: ThreadsOpt = None,
    progress: ProgressOpt = True,
    plots: PlotsOpt = True,
    task_option: TaskOptionOpt = None,
    shared_prefill: SharedPrefillOpt = False,
    prefill_chunk: PrefillChunkOpt = None,
) -> None:
    """Compare several policies x budgets in one run: one table, side-by-side heatmaps, score vs budget."""
    _run_options("compare", locals())


@app.command()
def multiturn(
    policy: PoliciesOpt = None,
    budget: BudgetsOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    attn: AttnOpt = "sdpa",
    seed: GenSeedOpt = 0,
    out_dir: OutOpt = None,
    lengths: LengthsOpt = None,
    num_examples: NumOpt = 1,
    num_keys: Annotated[int, typer.Option("--num-keys", min=2, help="Keys hidden in each context.")] = 4,
    mode: Annotated[Optional[list[str]], typer.Option(
        "--mode", help="agnostic (one compressed context, questions appended turn by turn) and/or aware (each "
        "question inside its own compressed prompt). Default: both.")] = None,
    threads: ThreadsOpt = None,
) -> None:
    """SCBench-style multi-turn task (scbench/kv): per-turn scores, query-agnostic vs query-aware."""
    from rich.table import Table

    from windowkv.eval.multiturn import kv_examples, run_multiturn, summary_table
    from windowkv.eval.variants import make_variants

    with _user_errors():
        variants = make_variants(policy or ["full", "windowkv"], budget or ["0.25"])
        length_values = _split(lengths, int) or [1024]
        modes = mode or ["agnostic", "aware"]
        m, tok, _ = _load(model, device, dtype, attn, None, threads)
        examples = kv_examples(tok, length_values, samples=num_examples, seed=seed, num_keys=num_keys)
        target = (out_dir or Path("runs") / "multiturn-scbench_kv") / "results.jsonl"
        err.print(f"{len(examples)} contexts x {len(examples[0].turns)} turns x {len(variants)} policy/budget "
                  f"pairs x {len(modes)} modes -> {target}")
        rows = run_multiturn(m, tok, examples, variants, target, modes=modes, progress=lambda text: err.print(text))
    table = Table(title="scbench/kv: mean string_match_all per turn", header_style="bold")
    for column in ("policy", "budget", "mode", "turns", "n", "score"):
        table.add_column(column)
    for r in summary_table(rows):
        table.add_row(r["policy"], str(r["budget"]), r["mode"], r["turns"], str(r["n"]), f"{r['score']:.2f}")
    out.print(table)
    out.print(f"rows: {target}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A run directory (holding results.jsonl).")],
    markdown: Annotated[bool, typer.Option("--markdown", help="Print a Markdown table.")] = False,
    costs: Annotated[bool, typer.Option("--costs/--no-costs", help="Show the time and memory columns.")] = True,
    plots: PlotsOpt = True,
) -> None:
    """Print the table of a finished (or partial) run and redraw its plots."""
    from windowkv.eval.plots import write_plots
    from windowkv.eval.report import result_table
    from windowkv.eval.results import RESULTS, merge_rows, read_rows

    files = [run_dir / RESULTS, *sorted(run_dir.glob("results.rank*.jsonl"))]
    rows = merge_rows(*(read_rows(f) for f in files))
    if not rows:
        err.print(f"[bold red]error:[/] no result rows in {_escape(str(run_dir))}")
        raise typer.Exit(USAGE_ERROR)
    table = result_table(rows, costs=costs)
    if markdown:
        print(table.to_markdown())
    else:
        out.print(table.to_rich(str(run_dir)))
    for path in write_plots(rows, run_dir) if plots else []:
        err.print(f"plot: {path}")


# ---------------------------------------------------------------------------- generate

@app.command()
def generate(
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt (or use --file / --needle-length).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read the prompt from a file.")] = None,
    needle_length: Annotated[Optional[int], typer.Option(
        "--needle-length", help="Use a needle-in-a-haystack prompt of this many tokens.")] = None,
    depth: Annotated[float, typer.Option("--depth", min=0.0, max=1.0, help="Needle depth (with --needle-length).")] = 0.5,
    policy: PolicyOpt = "windowkv",
    budget: BudgetOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    attn: AttnOpt = "sdpa",
    device_map: DeviceMapOpt = None,
    seed: GenSeedOpt = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1)] = 64,
    chat: Annotated[bool, typer.Option("--chat/--no-chat", help="Wrap the prompt in the chat template.")] = True,
    task_label: Annotated[Optional[str], typer.Option(
        "--task-label", help="Force the policy's task profile (e.g. qa) instead of the classifier.")] = None,
    ignore_eos: IgnoreEosOpt = False,
    threads: ThreadsOpt = None,
    prefill_chunk: PrefillChunkOpt = None,
) -> None:
    """Generate from one prompt under a policy; show the answer and the kept KV cache of every layer."""
    from windowkv.eval.examples import Example, render_prompt, uses_chat_template
    from windowkv.eval.report import layer_table
    from windowkv.eval.measure import ModelInfo, cache_stats, run_prompt, warm_up
    from windowkv.eval.variants import make_variants

    with _user_errors():
        given = sum(x is not None for x in (prompt, file, needle_length))
        if given != 1:
            raise ConfigError([("prompt", "give exactly one of PROMPT, --file or --needle-length")])
        if file is not None:
            try:
                prompt = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError([("file", f"cannot read {file}: {exc.strerror or exc}")]) from None
        (variant,) = make_variants([policy], [budget] if budget else None)
        if task_label is not None and task_label not in variant.policy.profiles:
            raise ConfigError([("task_label", f"unknown task profile {task_label!r}; the policy's profiles: "
                                              f"{', '.join(sorted(variant.policy.profiles))}")])
        m, tok, _ = _load(model, device, dtype, attn, device_map, threads)
        if needle_length is not None:
            from windowkv.eval.needle import needle_example

            example = needle_example(tok, needle_length, depth, seed=seed, max_new_tokens=max_new_tokens)
            out.print(f"needle prompt: {example.prompt_tokens} tokens, answer {example.answers[0]}",
                      style="dim")
        else:
            example = Example("prompt", "generate", prompt or "", [], "needle_exact", max_new_tokens,
                              use_chat_template=chat)
        use_chat = uses_chat_template(tok, example)
        text = render_prompt(tok, example)
        info = ModelInfo.of(m)
        warm_up(m)
        with variant.policy.apply(m, tok, task=task_label, prefill_chunk=prefill_chunk) as handle:
            gen = run_prompt(m, tok, handle, text, chat=use_chat, max_new_tokens=max_new_tokens, seed=seed,
                             ignore_eos=ignore_eos)
    stats = cache_stats(gen, info)
    out.print(f"[bold]{variant.name}[/] (task profile: {gen.task_label or '–'})")
    out.print(layer_table(gen.kept_per_layer, gen.prompt_tokens, info.bytes_per_token_layer, gen.suffix_size)
              .to_rich("kept KV cache per layer"))
    decode = f"{gen.decode_tokens_per_s:.1f}" if gen.decode_tokens_per_s else "–"
    memory = f"{gen.peak_memory_bytes / 2**20:.0f} MiB" if gen.peak_memory_bytes is not None else "–"
    out.print(f"prompt {gen.prompt_tokens} tokens; KV kept {stats['kept_fraction'] * 100:.1f}% of the full cache "
              f"({stats['kv_bytes_kept'] / 2**20:.2f} of {stats['kv_bytes_full'] / 2**20:.2f} MiB), review kept "
              f"{stats['kept_review_fraction'] * 100:.1f}%; prefill {gen.prefill_seconds:.2f} s, decode {decode} "
              f"tokens/s, peak memory +{memory} ({gen.memory_method})", highlight=False)
    out.rule("output")
    out.print(_escape((example.answer_prefix + " " if example.answer_prefix else "") + gen.prediction),
              highlight=False)


from windowkv.cli_inspect import inspect_cmd  # noqa: E402  (it imports this module's options)

app.command("inspect")(inspect_cmd)

from windowkv.cli_bench import bench_cmd  # noqa: E402  (it imports this module's options)

app.command("bench")(bench_cmd)


if __name__ == "__main__":  # pragma: no cover
    main()
