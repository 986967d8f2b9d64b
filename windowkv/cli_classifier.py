"""``windowkv classifier``: train and evaluate the task classifiers on windowkv's prompt set.

::

    windowkv classifier train embedding --out runs/head        # MiniLM features + logistic head
    windowkv classifier train encoder --epochs 2               # fine-tune MiniLM (or --base PATH)
    windowkv classifier eval -c keyword -c embedding -c dataset --split test --json runs/cls.json
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

app = typer.Typer(help="Train and evaluate task classifiers on windowkv's labelled prompt set.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False)

DataOpt = Annotated[Optional[Path], typer.Option("--data", help="A prompt set (gzipped JSONL); default: the "
                                                 "one shipped with windowkv.")]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", min=1, help="torch CPU threads.")]


def _track(console: Any):
    from rich.progress import track

    def run(items, description: str = "", total: int | None = None):
        return track(items, description=description, total=total, console=console, transient=True)

    return run


def _setup(threads: int | None) -> None:
    import torch

    from windowkv.cli import _quiet_transformers

    if threads:
        torch.set_num_threads(threads)
    _quiet_transformers()


@app.command()
def train(
    kind: Annotated[str, typer.Argument(help="embedding (logistic head on MiniLM features) or encoder (fine-tune).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder. Default: embedding: "
                                                "runs/embedding-head; encoder: the encoder classifier's default "
                                                "folder (user cache).")] = None,
    base: Annotated[Optional[str], typer.Option("--base", help="Encoder to start from (HF id or folder); "
                                                "default: the offline all-MiniLM-L6-v2.")] = None,
    head_tokens: Annotated[Optional[int], typer.Option("--head-tokens", min=0, help="First tokens read "
                                                       "(default: embedding 32, encoder 256).")] = None,
    tail_tokens: Annotated[Optional[int], typer.Option("--tail-tokens", min=0, help="Last tokens read "
                                                       "(default: embedding 32, encoder 256).")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Fine-tune on at most this many "
                                                 "train prompts (encoder; a quick CPU run).")] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Fine-tuning epochs (encoder).")] = 2,
    lr: Annotated[float, typer.Option("--lr", help="Learning rate (encoder).")] = 5e-5,
    layers: Annotated[int, typer.Option("--layers", min=0, help="Embedding: read the encoder's output after "
                                        "this many layers (0: all); 4 of MiniLM's 6 generalised best.")] = 4,
    data: DataOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Train a classifier on the prompt set's train split (val picks the embedding head's L2);
    weights are written as safetensors + JSON."""
    from windowkv.cli import _user_errors, err, out as stdout
    from windowkv.classifiers.prompt_set import load
    from windowkv.classifiers.training import train_embedding, train_encoder

    with _user_errors():
        if kind not in ("embedding", "encoder"):
            raise ValueError(f"unknown classifier kind {kind!r}; choose embedding or encoder")
        _setup(threads)
        rows = load(path=data)
        default = 32 if kind == "embedding" else 256
        head_tokens = default if head_tokens is None else head_tokens
        tail_tokens = default if tail_tokens is None else tail_tokens
        if kind == "embedding":
            result = train_embedding(rows, out or Path("runs/embedding-head"), encoder=base, head=head_tokens,
                                     tail=tail_tokens, layers=layers or None, track=_track(err))
        else:
            from windowkv.classifiers.encoder import default_encoder_dir

            if limit:  # an even sample of the train split
                train_rows = [r for r in rows if r["split"] == "train"]
                rows = train_rows[:: max(1, len(train_rows) // limit)][:limit]
            result = train_encoder(rows, out or default_encoder_dir(), base=base, head=head_tokens,
                                   tail=tail_tokens, epochs=epochs, lr=lr, track=_track(err))
    stdout.print_json(json.dumps(result))


def _classifier(spec: str) -> Any:
    """A registered classifier from a name or a JSON config (``{"type": "embedding", ...}``)."""
    from windowkv.plugins import default_registries

    config = json.loads(spec) if spec.lstrip().startswith("{") else {"type": spec}
    cls = default_registries()["classifier"].get(config.pop("type"))
    return cls.from_params(config)


@app.command("eval")
def eval_cmd(
    classifier: Annotated[Optional[list[str]], typer.Option(
        "--classifier", "-c", help="Registered name or JSON config; repeatable. `dataset` is the oracle (it knows "
        "each prompt's family). Default: keyword, embedding, dataset.")] = None,
    split: Annotated[str, typer.Option("--split", help="train, val or test (held-out templates).")] = "test",
    latency_tokens: Annotated[int, typer.Option("--latency-tokens", min=0, help="Time one prompt of this many "
                                                "tokens (median of 20 calls); 0 skips.")] = 4096,
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Also write the results here.")] = None,
    data: DataOpt = None,
    threads: ThreadsOpt = None,
) -> None:
    """Accuracy and macro-F1 (qa vs other) per classifier, accuracy per family, and CPU latency."""
    from rich.table import Table

    from windowkv.cli import _user_errors, err, out as stdout
    from windowkv.classifiers.prompt_set import load
    from windowkv.classifiers.text import FAMILIES
    from windowkv.classifiers.training import evaluate, latency

    results = {}
    with _user_errors():
        _setup(threads)
        rows = load(split, path=data)
        for spec in classifier or ["keyword", "embedding", "dataset"]:
            component = _classifier(spec)
            if component.name == "dataset":  # the oracle: one dataset classifier per prompt's family
                component = _Oracle(rows)
            result = evaluate(component, rows, track=_track(err))
            if latency_tokens and not isinstance(component, _Oracle):
                result["latency"] = latency(component, latency_tokens)
                result["median_ms"] = result["latency"]["wall_ms"]
            results[spec] = result
    table = Table(title=f"task classifiers on the {split} split ({len(rows)} prompts)", header_style="bold")
    for column in ("classifier", "accuracy", "macro-F1", *FAMILIES, "ms/prompt", "CPU ms", "x baseline"):
        table.add_column(column, justify="left" if column == "classifier" else "right")
    for spec, r in results.items():
        table.add_row(spec, f"{r['accuracy']:.3f}", f"{r['macro_f1']:.3f}",
                      *(f"{r['families'].get(f, float('nan')):.2f}" for f in FAMILIES),
                      *((f"{r['latency']['wall_ms']:.1f}", f"{r['latency']['cpu_ms']:.1f}",
                         f"{r['latency']['ratio']:.2f}") if "latency" in r else ("–", "–", "–")))
    stdout.print(table)
    timed = [r["latency"] for r in results.values() if "latency" in r]
    if timed:
        stdout.print(f"latency: median of 20 calls on one {latency_tokens}-token prompt after 3 warm-up calls, "
                     f"{timed[0]['threads']} torch thread(s), load average {timed[0]['load']}; CPU ms: CPU time of "
                     f"the process; x baseline: wall time / a fixed {timed[0]['baseline_ms']:.1f} ms matmul workload "
                     "timed alternately (comparable across loads).", style="dim")
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps({"split": split, "results": results}, indent=1) + "\n", encoding="utf-8")


class _Oracle:
    """The dataset classifier given each prompt's true dataset: its family's label."""

    name = "dataset"

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        from windowkv.classifiers.text import FAMILY_LABELS

        self._label = {r["prompt"]: FAMILY_LABELS[r["family"]] for r in rows}

    def __call__(self, prompts: list[str]) -> list[Any]:
        from windowkv.run import TaskPrediction

        return [TaskPrediction(self._label[p], 1.0) for p in prompts]
