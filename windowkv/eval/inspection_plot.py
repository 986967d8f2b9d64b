"""The picture of an :class:`~windowkv.eval.inspection.Inspection`: what each layer kept, and what it cost.

Four panels in one PNG:

1. layers x prompt positions, kept (white) or evicted (dark; grey for a share of the heads), the needle's
   tokens and the suffix marked with coloured bands;
2. the same, zoomed on the needle (± ``zoom`` tokens), one column per token, window boundaries visible;
3. per layer, the share of the suffix queries' review attention that the kept tokens hold, and whether
   the answer's tokens survived;
4. the Jaccard overlap of the kept review sets between layers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from windowkv.eval.inspection import Inspection


def plot_inspection(result: Inspection, path: str | Path, *, zoom: int = 40, title: str | None = None) -> Path:
    """Draw ``result`` into ``path`` (PNG) and return the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layers, length = result.kept.shape
    fig = plt.figure(figsize=(15, 9), constrained_layout=True)
    grid = fig.add_gridspec(2, 3, width_ratios=[3.2, 1.1, 1.6], height_ratios=[1, 1])
    ax_all = fig.add_subplot(grid[0, :2])
    ax_zoom = fig.add_subplot(grid[1, 0])
    ax_mass = fig.add_subplot(grid[1, 1])
    ax_jac = fig.add_subplot(grid[:, 2])

    extent = (-0.5, length - 0.5, layers - 0.5, -0.5)
    ax_all.imshow(result.kept, aspect="auto", cmap="gray", vmin=0, vmax=1, interpolation="nearest", extent=extent)
    _mark(ax_all, result, alpha=0.35)
    ax_all.set_xlabel("prompt position (token)")
    ax_all.set_ylabel("layer")
    ax_all.set_title("kept KV per layer (white kept, dark evicted); needle red, answer orange, suffix blue")

    centre = result.answer_span or result.needle_span or (result.suffix_start, result.suffix_start)
    lo = max(0, centre[0] - zoom)
    hi = min(length, centre[1] + zoom)
    ax_zoom.imshow(result.kept[:, lo:hi], aspect="auto", cmap="gray", vmin=0, vmax=1, interpolation="nearest",
                   extent=(lo - 0.5, hi - 0.5, layers - 0.5, -0.5))
    _mark(ax_zoom, result, alpha=0.25)
    ax_zoom.set_xlim(lo - 0.5, hi - 0.5)  # the suffix band must not widen the zoom
    ticks = list(range(lo, hi))
    if hi - lo <= 100:
        ax_zoom.set_xticks(ticks)
        ax_zoom.set_xticklabels([_label(result.tokens[i]) for i in ticks], rotation=90, fontsize=6)
    ax_zoom.set_ylabel("layer")
    ax_zoom.set_title(f"around the needle: positions {lo}-{hi - 1}")

    y = np.arange(layers)
    lost = np.array(result.needle_kept) < 1.0
    ax_mass.barh(y, result.review_mass, color=np.where(lost, "tab:red", "tab:green"))
    ax_mass.set_xlim(0, 1)
    ax_mass.invert_yaxis()
    ax_mass.set_xlabel("review attention mass kept")
    ax_mass.set_title("red: lost part of the answer", fontsize=9)
    ax_mass.set_ylim(layers - 0.5, -0.5)

    image = ax_jac.imshow(result.jaccard, cmap="viridis", vmin=0, vmax=1, interpolation="nearest")
    ax_jac.set_title("Jaccard overlap of kept review sets")
    ax_jac.set_xlabel("layer")
    ax_jac.set_ylabel("layer")
    fig.colorbar(image, ax=ax_jac, shrink=0.6)

    verdict = "correct" if result.score == 1.0 else "wrong" if result.score is not None else "unscored"
    fig.suptitle(title or f"{result.policy} @ {result.budget}: answered {result.prediction.strip()[:60]!r} "
                          f"(gold {', '.join(result.answers)}: {verdict}); lost in {len(result.lost_layers)}"
                          f"/{layers} layers")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _mark(ax: Any, result: Inspection, *, alpha: float) -> None:
    if result.needle_span:
        ax.axvspan(result.needle_span[0] - 0.5, result.needle_span[1] - 0.5, color="tab:red", alpha=alpha, lw=0)
    if result.answer_span:
        ax.axvspan(result.answer_span[0] - 0.5, result.answer_span[1] - 0.5, color="tab:orange", alpha=alpha, lw=0)
    ax.axvspan(result.suffix_start - 0.5, result.prompt_tokens - 0.5, color="tab:blue", alpha=alpha, lw=0)


def _label(token: str) -> str:
    return token.replace("Ġ", "␣").replace("Ċ", "⏎")[:8]
