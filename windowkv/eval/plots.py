"""PNG figures of result rows (matplotlib, Agg backend: no display needed).

- :func:`plot_needle_heatmap`: one policy at one budget, prompt length x needle depth, score as colour;
- :func:`plot_needle_grid`: the heatmaps of several policies side by side (``windowkv compare``);
- :func:`plot_score_vs_budget`: mean score against the budget, one line per policy, full cache dashed.

Each function takes result rows (:class:`~windowkv.eval.rows.ResultRow`, as
:func:`~windowkv.eval.results.read_rows` returns them) and a path, and returns the path.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from windowkv.eval.report import budget_sort_key, order_variants
from windowkv.eval.results import group_rows
from windowkv.eval.rows import ResultRow

CMAP = "RdYlGn"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _scored(rows: Sequence[ResultRow]) -> list[ResultRow]:
    return [r for r in rows if r.scored]


def needle_matrix(rows: Sequence[ResultRow], metric: str | None = None
                  ) -> tuple[list[int], list[float], list[list[float]]]:
    """``(lengths, depths, mean score [length][depth])`` (NaN where no row) of needle rows."""
    points = [(r.length, r.depth, r) for r in _scored(rows) if r.length is not None and r.depth is not None]
    lengths = sorted({n for n, _, _ in points})
    depths = sorted({d for _, d, _ in points})
    cells: dict[tuple[int, float], list[float]] = {}
    for n, d, r in points:
        value = r.score if metric is None else r.scores.get(metric)
        if value is not None:
            cells.setdefault((n, d), []).append(float(value))
    grid = [[(sum(cells[(n, d)]) / len(cells[(n, d)])) if (n, d) in cells else math.nan for d in depths]
            for n in lengths]
    return lengths, depths, grid


def _draw_heatmap(ax: Any, rows: Sequence[ResultRow], title: str, metric: str | None,
                  short: bool = False) -> Any:
    lengths, depths, grid = needle_matrix(rows, metric)
    image = ax.imshow(grid, cmap=CMAP, vmin=0.0, vmax=1.0, aspect="auto", origin="lower")
    ax.set_xticks(range(len(depths)), [f"{d * 100:.0f}%" for d in depths])
    ax.set_yticks(range(len(lengths)), [str(n) for n in lengths])
    ax.set_xlabel("needle depth" if short else "needle depth (share of the haystack before it)")
    ax.set_ylabel("prompt length (tokens)")
    ax.set_title(title, fontsize=11)
    for i, row in enumerate(grid):
        for j, value in enumerate(row):
            if not math.isnan(value):
                ax.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize=9,
                        color="black" if 0.25 < value < 0.85 else "white")
    return image


def _metric_name(rows: Sequence[ResultRow], metric: str | None) -> str:
    return metric or next((r.metric for r in rows if r.metric), "score")


def plot_needle_heatmap(rows: Sequence[ResultRow], path: str | Path, *, title: str | None = None,
                        metric: str | None = None) -> Path:
    """Heatmap of one policy at one budget (pass only its rows)."""
    plt = _pyplot()
    rows = list(rows)
    variants = order_variants(rows)
    if title is None:
        title = ", ".join(f"{p} @ {b}" for p, b in variants) or "needle"
    fig, ax = plt.subplots(figsize=(1.2 * max(len(needle_matrix(rows)[1]), 3) + 2.5, 4.2))
    image = _draw_heatmap(ax, rows, title, metric)
    fig.colorbar(image, ax=ax, label=f"mean {_metric_name(rows, metric)}")
    fig.suptitle("Needle in a haystack", fontsize=12, fontweight="bold")
    fig.tight_layout()
    return _save(fig, path, plt)


def plot_needle_grid(rows: Sequence[ResultRow], path: str | Path, *, title: str | None = None,
                     metric: str | None = None, columns: int = 4) -> Path:
    """The heatmaps of every policy x budget in ``rows`` side by side, one shared colour scale."""
    plt = _pyplot()
    variants = order_variants(_scored(rows))
    if not variants:
        raise ValueError("no scored needle rows to plot")
    cols = min(columns, len(variants))
    nrows = math.ceil(len(variants) / cols)
    depths = len(needle_matrix(rows)[1])
    fig, axes = plt.subplots(nrows, cols, figsize=(cols * (0.8 * max(depths, 3) + 1.4) + 1.0, nrows * 2.9 + 0.9),
                             squeeze=False, layout="constrained")
    image = None
    for i, (ax, (policy, budget)) in enumerate(zip(axes.flat, variants)):
        sub = [r for r in rows if r.policy == policy and r.budget == budget]
        label = "full cache" if policy == "full" else f"{policy} @ {_budget_text(budget, sub, short=True)}"
        image = _draw_heatmap(ax, sub, label, metric, short=True)
        if i % cols:
            ax.set_ylabel("")
        if i + cols < len(variants):  # another panel below: its x label says it
            ax.set_xlabel("")
    for ax in list(axes.flat)[len(variants):]:
        ax.set_visible(False)
    fig.colorbar(image, ax=axes.ravel().tolist(), label=f"mean {_metric_name(rows, metric)}", shrink=0.8)
    kinds = {r.budget_kind for r in rows if r.policy != "full"}
    note = " (budget: % of the review tokens kept per layer)" if kinds == {"ratio"} else ""
    fig.suptitle(title or f"Needle in a haystack: policies x budgets{note}", fontsize=13, fontweight="bold")
    return _save(fig, path, plt)


def _budget_text(budget: str, rows: Sequence[ResultRow], short: bool = False) -> str:
    kind = next((r.budget_kind for r in rows if r.budget_kind), None)
    if kind == "ratio":
        return f"{float(budget) * 100:g}%" + ("" if short else " of review")
    if kind == "tokens":
        return f"{budget} tokens"
    return str(budget)


def plot_score_vs_budget(rows: Sequence[ResultRow], path: str | Path, *, title: str | None = None,
                         metric: str | None = None) -> Path:
    """Mean score against the budget, one line per policy.

    Left panel: against the nominal budget (ratio of review tokens in %, or tokens); right panel:
    against the fraction of the full KV cache actually kept (suffix included), which compares policies
    with different suffix sizes fairly. The full cache (a fixed budget) is a dashed horizontal line.
    """
    plt = _pyplot()
    scored = _scored(rows)
    groups = group_rows(scored, ("policy", "budget"))
    if not groups:
        raise ValueError("no scored rows to plot")
    kinds = {r.budget_kind for r in scored if r.policy != "full"}
    value = (lambda g: g["score"]) if metric is None else (lambda g: g["scores"].get(metric))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    policies = list(dict.fromkeys(str(g["policy"]) for g in groups))
    for policy in policies:
        pts = [g for g in groups if g["policy"] == policy]
        if policy == "full" or len(pts) == 1:  # a fixed budget: a reference line
            label = "full cache" if policy == "full" else f"{policy} @ {pts[0]['budget']}"
            style = "--" if policy == "full" else ":"
            for ax in (left, right):
                ax.axhline(value(pts[0]), linestyle=style, color="black" if policy == "full" else None, label=label)
            continue
        pts.sort(key=lambda g: budget_sort_key(g["budget"]))
        xs = [budget_sort_key(g["budget"]) * (100 if kinds <= {"ratio", "bytes_ratio"} else 1) for g in pts]
        left.plot(xs, [value(g) for g in pts], marker="o", label=policy)
        right.plot([_bytes_fraction(g) * 100 for g in pts], [value(g) for g in pts], marker="o", label=policy)
    left.set_xlabel("budget (% of review tokens per layer)" if kinds == {"ratio"} else "budget (tokens per layer)"
                    if kinds == {"tokens"} else "budget (% of the full cache's bytes)" if kinds == {"bytes_ratio"}
                    else "budget (bytes)" if kinds == {"bytes"} else "budget")
    right.set_xlabel("KV cache bytes held (% of the full cache's bytes, measured)")
    name = _metric_name(scored, metric)
    for ax in (left, right):
        ax.set_ylabel(f"mean {name}")
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
    handles, labels = left.get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=9, title="policy")
    left.set_title("score vs budget")
    right.set_title("score vs KV cache bytes")
    lengths = sorted({r.length for r in scored if r.length is not None})
    span = f" ({len(scored)} runs, lengths {lengths[0]}–{lengths[-1]} tokens)" if lengths else ""
    fig.suptitle(title or f"Quality vs budget{span}", fontsize=13, fontweight="bold")
    return _save(fig, path, plt)


def _bytes_fraction(group: Mapping[str, Any]) -> float:
    """Measured bytes held / full cache bytes; rows written before bytes were measured: the tokens kept."""
    value = group["kv_bytes_fraction"]
    return value if value is not None else group["kept_fraction"]


def _save(fig: Any, path: str | Path, plt: Any) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_plots(rows: Sequence[ResultRow], out_dir: str | Path) -> list[Path]:
    """Every plot the rows support, into ``out_dir``: needle heatmaps (one per policy x budget and a
    side-by-side one), and score vs budget when some policy has two budgets or more."""
    out_dir = Path(out_dir)
    written = []
    scored = _scored(rows)
    for task in dict.fromkeys(r.task for r in scored):
        task_rows = [r for r in scored if r.task == task]
        slug = task.replace("/", "_")
        variants = order_variants(task_rows)
        if any(r.depth is not None for r in task_rows):
            for policy, budget in variants:
                sub = [r for r in task_rows if r.policy == policy and r.budget == budget]
                label = policy if policy == "full" else f"{policy} @ {_budget_text(budget, sub)}"
                written.append(plot_needle_heatmap(sub, out_dir / f"{slug}_heatmap_{policy}_{budget}.png",
                                                   title=label))
            if len(variants) > 1:
                written.append(plot_needle_grid(task_rows, out_dir / f"{slug}_compare.png"))
        budgets_per_policy = {p: sum(1 for q, _ in variants if q == p) for p, _ in variants}
        if len(variants) > 1 and max(budgets_per_policy.values()) > 1:
            written.append(plot_score_vs_budget(task_rows, out_dir / f"{slug}_score_vs_budget.png",
                                                title=f"{task}: quality vs budget"))
    return written
