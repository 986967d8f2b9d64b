"""A PNG of the benchmark: each metric against the prompt length, one line per policy@budget.

Four panels (time to first token, decode speed, KV bytes held, peak memory; with ``--shared-prefill`` the
compression seconds instead of the peak memory, which that mode does not measure); markers at the medians,
error bars from the minimum to the maximum sample; the plain model dashed black. Lengths on a log-2 axis.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from windowkv.bench.runner import REFERENCE
from windowkv.eval.plots import _pyplot

PANELS = (
    ("prefill_seconds", "time to first token (s)", 1.0),
    ("decode_tokens_per_s", "decode speed (tokens/s)", 1.0),
    ("kv_bytes", "KV cache held after prefill (MiB)", 2.0**20),
    ("peak_memory_bytes", "peak memory above start (MiB)", 2.0**20),
)
#: the fourth panel of a ``--shared-prefill`` run, which measures no peak memory
COMPRESS_PANEL = ("compress_seconds", "compression of a replayed prefill (s)", 1.0)


def plot_bench(rows: Sequence[dict[str, Any]], path: str | Path, title: str = "windowkv bench") -> Path:
    """Draw the summarised rows (:func:`windowkv.bench.runner.summarize`) to ``path``; return it."""
    plt = _pyplot()
    names = list(dict.fromkeys(r["variant"] for r in rows))
    panels = PANELS if any(r.get("peak_memory_bytes") for r in rows) or not any(
        r.get("compress_seconds") for r in rows) else (*PANELS[:3], COMPRESS_PANEL)
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), squeeze=False)
    for ax, (metric, label, scale) in zip(axes.flat, panels):
        for name in names:
            points = sorted((r["length"], r[metric]) for r in rows if r["variant"] == name and r.get(metric))
            if not points:
                continue
            xs = [x for x, _ in points]
            ys = [s["median"] / scale for _, s in points]
            err = [[(s["median"] - s["min"]) / scale for _, s in points],
                   [(s["max"] - s["median"]) / scale for _, s in points]]
            style = dict(color="black", linestyle="--", zorder=3) if name == REFERENCE else {}
            ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=name, **style)
        ax.set_xscale("log", base=2)
        lengths = sorted({r["length"] for r in rows})
        ax.set_xticks(lengths, [str(n) for n in lengths])
        ax.set_xlabel("prompt length (tokens)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
