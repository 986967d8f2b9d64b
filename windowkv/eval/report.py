"""Tables of result rows: one line per task x policy x budget, the mean score per prompt length, and the costs.

The same :class:`ResultTable` renders to the terminal (rich) and to Markdown (``docs/report.md``)::

    table = result_table(read_rows("runs/demo/results.jsonl"))
    console.print(table.to_rich("needle, SmolLM2-135M"))
    print(table.to_markdown())
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from windowkv.eval.results import group_rows
from windowkv.eval.rows import ResultRow

MIB = 1024 * 1024


@dataclass
class ResultTable:
    """Header and formatted cells; ``numeric[i]`` right-aligns column ``i``."""

    header: list[str]
    rows: list[list[str]]
    numeric: list[bool]

    def to_markdown(self) -> str:
        align = ["---:" if n else ":---" for n in self.numeric]
        lines = ["| " + " | ".join(self.header) + " |", "| " + " | ".join(align) + " |"]
        lines += ["| " + " | ".join(r) + " |" for r in self.rows]
        return "\n".join(lines)

    def to_rich(self, title: str | None = None) -> Any:
        from rich.table import Table

        table = Table(title=title, header_style="bold")
        for name, num in zip(self.header, self.numeric):
            table.add_column(name, justify="right" if num else "left")
        for r in self.rows:
            table.add_row(*r)
        return table


def _num(value: Any, digits: int = 2, scale: float = 1.0, pct: bool = False) -> str:
    if value is None:
        return "–"
    value = value * scale
    return f"{value * 100:.{digits}f}%" if pct else f"{value:.{digits}f}"


def budget_sort_key(budget: Any) -> float:
    """A budget as rows store it, as a number to sort and plot by (ratios and shares of bytes as fractions)."""
    try:
        return float(budget)
    except (TypeError, ValueError):
        pass
    try:  # byte budgets: "12% bytes" sorts by its share, "65536B" by its bytes
        from windowkv.budget import Budget

        parsed = Budget.of(budget)
        return parsed.bytes_ratio if parsed.bytes_ratio is not None else float(parsed.nbytes or "inf")
    except (TypeError, ValueError):
        return float("inf")


def display_budget(budget: Any, kind: str | None) -> str:
    """``"0.25"`` (a ratio) -> ``"25%"``; token budgets unchanged."""
    if kind == "ratio":
        try:
            return f"{float(budget) * 100:g}%"
        except (TypeError, ValueError):
            pass
    return str(budget)


def order_variants(rows: Sequence[ResultRow]) -> list[tuple[str, str]]:
    """``(policy, budget)`` pairs: full cache first, then policies in order of appearance, budgets ascending."""
    policies: list[str] = []
    budgets: dict[str, set[str]] = {}
    for r in rows:
        if r.policy not in policies:
            policies.append(r.policy)
        budgets.setdefault(r.policy, set()).add(r.budget)
    policies.sort(key=lambda p: p != "full")
    return [(p, b) for p in policies for b in sorted(budgets[p], key=budget_sort_key)]


def result_table(rows: Sequence[ResultRow], *, metric: str | None = None, costs: bool = True) -> ResultTable:
    """Mean score by length (one column per prompt length) and mean costs, per task x policy x budget.

    Args:
        metric: a secondary metric to show next to the primary score (default: the first extra metric,
            e.g. ``rouge1`` for needles).
        costs: include the time and memory columns (prefill s, decode tok/s, peak MiB).
    """
    tasks = list(dict.fromkeys(r.task for r in rows))
    lengths = sorted({r.length for r in rows if r.length is not None})
    by_variant = {(g["task"], g["policy"], g["budget"]): g for g in group_rows(rows, ("task", "policy", "budget"))}
    by_length = {(g["task"], g["policy"], g["budget"], g["length"]): g
                 for g in group_rows(rows, ("task", "policy", "budget", "length"))}
    if metric is None:
        extra = [m for g in by_variant.values() for m in g["scores"]]
        primary = {r.metric for r in rows}
        metric = next((m for m in extra if m not in primary), None)
    many_tasks = len(tasks) > 1
    header = (["task"] if many_tasks else []) + ["policy", "budget"]
    header += [f"L={n}" for n in lengths] + ["mean", "n"]
    header += [metric] if metric else []
    header += ["KV kept", "review kept", "KV bytes", "KV MiB"] + (["prefill s", "decode tok/s", "peak MiB"] if costs else [])
    numeric = [False] * (3 if many_tasks else 2) + [True] * (len(header) - (3 if many_tasks else 2))
    out = []
    for task in tasks:
        task_rows = [r for r in rows if r.task == task]
        for policy, budget in order_variants(task_rows):
            g = by_variant.get((task, policy, budget))
            if g is None:
                continue
            kind = next((r.budget_kind for r in task_rows if r.policy == policy and r.budget == budget), None)
            cells = ([task] if many_tasks else []) + [policy, display_budget(budget, kind)]
            for n in lengths:
                cell = by_length.get((task, policy, budget, n))
                cells.append(_num(cell["score"]) if cell and cell["n"] else "–")
            cells += [_num(g["score"]), str(g["n"]) + (f" (+{g['skipped']} skipped)" if g["skipped"] else "")]
            if metric:
                cells.append(_num(g["scores"].get(metric)))
            cells += [_num(g["kept_fraction"], 1, pct=True), _num(g["kept_review_fraction"], 1, pct=True),
                      _num(g["kv_bytes_fraction"], 1, pct=True), _num(g["kv_bytes_kept"], 1, 1 / MIB)]
            if costs:
                cells += [_num(g["prefill_seconds"], 2), _num(g["decode_tokens_per_s"], 1),
                          _num(g["peak_memory_bytes"], 0, 1 / MIB)]
            out.append(cells)
    return ResultTable(header, out, numeric)


def layer_table(kept_per_layer: Sequence[int], prompt_tokens: int, bytes_per_token_layer: int,
                suffix_size: int | None = None) -> ResultTable:
    """Kept KV tokens per layer (``windowkv generate``)."""
    rows = []
    for layer, kept in enumerate(kept_per_layer):
        rows.append([str(layer), str(kept), f"{kept / prompt_tokens * 100:.1f}%" if prompt_tokens else "–",
                     f"{kept * bytes_per_token_layer / 1024:.1f}"])
    total = sum(kept_per_layer)
    full = prompt_tokens * len(kept_per_layer)
    rows.append(["all", str(total), f"{total / full * 100:.1f}%" if full else "–",
                 f"{total * bytes_per_token_layer / 1024:.1f}"])
    return ResultTable(["layer", "kept tokens", "of prompt", "KV KiB"], rows, [False, True, True, True])
