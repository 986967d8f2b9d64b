"""``windowkv inspect``: what one policy kept of one prompt, layer by layer (PNG + JSON).

::

    windowkv inspect --task needle_prose --length 2048 --depth 0.5 -p windowkv -b 0.12 --out runs/inspect
    windowkv inspect --file prompt.txt --answer 1908 -p snapkv -b 0.25
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from windowkv.errors import UsageError
from windowkv.cli import (
    AttnOpt,
    BudgetOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    PolicyOpt,
    GenSeedOpt,
    TaskOptionOpt,
    ThreadsOpt,
    _load,
    _user_errors,
    err,
    out,
    parse_task_options,
)

NEEDLE_TASKS = ("needle_prose", "needle")


def inspect_cmd(
    prompt: Annotated[Optional[str], typer.Argument(help="The prompt (or --file, or --task).")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", "-f", help="Read the prompt from a file.")] = None,
    task: Annotated[Optional[str], typer.Option(
        "--task", help=f"Build the prompt with a needle task: {', '.join(NEEDLE_TASKS)}.")] = None,
    length: Annotated[int, typer.Option("--length", min=1, help="Needle prompt length in tokens (--task).")] = 2048,
    depth: Annotated[float, typer.Option("--depth", min=0.0, max=1.0, help="Needle depth (--task).")] = 0.5,
    index: Annotated[int, typer.Option("--index", min=0, help="Sample of the grid cell (--task).")] = 0,
    answer: Annotated[Optional[str], typer.Option(
        "--answer", help="Gold answer of a PROMPT/--file (marked, and scored by whole-token match).")] = None,
    policy: PolicyOpt = "windowkv",
    budget: BudgetOpt = None,
    model: ModelOpt = None,
    device: DeviceOpt = "cpu",
    dtype: DtypeOpt = "float32",
    attn: AttnOpt = "sdpa",
    seed: GenSeedOpt = 0,
    task_option: TaskOptionOpt = None,
    max_new_tokens: Annotated[Optional[int], typer.Option("--max-new-tokens", min=1)] = None,
    out_dir: Annotated[Path, typer.Option("--out", help="Where inspect.png and inspect.json go.")] = Path("runs/inspect"),
    threads: ThreadsOpt = None,
) -> None:
    """Show what each layer kept of one prompt under one policy: kept positions (needle and suffix marked),
    attention mass retained, Jaccard overlap between layers, layers that lost the needle (PNG + JSON)."""
    from windowkv.eval.examples import Example
    from windowkv.eval.inspection import inspect_prompt, summary_lines
    from windowkv.eval.inspection_plot import plot_inspection
    from windowkv.eval.tasks import get_task
    from windowkv.eval.variants import make_variants

    with _user_errors():
        if sum(x is not None for x in (prompt, file, task)) != 1:
            raise UsageError("give exactly one of PROMPT, --file or --task")
        if task is not None and task not in NEEDLE_TASKS:
            raise UsageError(f"--task must be one of {', '.join(NEEDLE_TASKS)} (got {task!r})")
        if file is not None:
            try:
                prompt = file.read_text(encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot read {file}: {exc.strerror or exc}") from None
        options = parse_task_options(task_option)
        (variant,) = make_variants([policy], [budget] if budget else None)
        m, tok, _ = _load(model, device, dtype, attn, None, threads)
        if task is not None:
            examples = get_task(task)(tokenizer=tok, lengths=[length], depths=[depth], num_examples=index + 1,
                                      seed=seed, **options)
            example = examples[index]
        else:
            example = Example("prompt", "inspect", prompt or "", [answer] if answer else [], "needle_exact",
                              max_new_tokens or 32)
        with err.status(f"running {variant.name} and measuring attention ..."):
            result = inspect_prompt(m, tok, variant.policy, example, max_new_tokens=max_new_tokens,
                                    label=variant.label, budget=variant.budget)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{example.id}_{variant.label}_{variant.budget}")
    data = {"example": example.id, "policy": variant.label, "budget": variant.budget,
            "policy_config": variant.policy.to_config(), **result.to_json()}
    json_path = out_dir / f"{stem}.json"
    json_path.write_text(json.dumps(data), encoding="utf-8")
    png = plot_inspection(result, out_dir / f"{stem}.png")
    for line in summary_lines(result):
        out.print(line, highlight=False)
    out.print(f"wrote {png} and {json_path}", style="dim", highlight=False)
