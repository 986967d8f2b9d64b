"""Result files of an evaluation run: per-example rows (JSONL) and the summary (JSON and CSV).

One run directory holds::

    results.jsonl          one JSON object per (example, policy, budget), appended and flushed per row
    results.rank{r}.jsonl  the rows of rank r in a multi-process run, merged into results.jsonl at the end
    summary.json           config, versions, seeds, timings and mean scores by task x policy x budget x length
    summary.csv            the same groups as a flat table

Each line is one :class:`~windowkv.eval.rows.ResultRow` (:meth:`~windowkv.eval.rows.ResultRow.to_json`).
Rows are never rewritten in place. :func:`read_rows` tolerates a truncated or corrupt line (a run killed
while writing, or a line that is not a valid row): the finished rows are kept, the broken text is moved to
``results.jsonl.corrupt`` and the row it belonged to is recomputed by the next run.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from pydantic import ValidationError

from windowkv.eval.rows import ResultRow, _jsonable

RESULTS = "results.jsonl"
SUMMARY_JSON = "summary.json"
SUMMARY_CSV = "summary.csv"
#: what makes a row unique: one example, run with one policy at one budget
KEY_FIELDS = ("id", "policy", "budget")
#: numeric :class:`ResultRow` fields averaged in the summary (besides the scores)
MEAN_FIELDS = ("prompt_tokens", "kept_fraction", "kept_review_fraction", "kv_bytes_kept", "kv_bytes_full",
               "kv_bytes_fraction",
               "prefill_seconds", "decode_tokens_per_s", "peak_memory_bytes", "new_tokens", "seconds")


def row_key(row: ResultRow) -> tuple[str, str, str]:
    """``(example id, policy, budget)``: a row already present under this key is not recomputed."""
    return row.key


def rank_file(out_dir: str | Path, rank: int) -> Path:
    return Path(out_dir) / f"results.rank{rank}.jsonl"


class CorruptLineWarning(UserWarning):
    """A results file held a line that is not a valid row; it was set aside."""


def read_rows(path: str | Path, *, repair: bool = False) -> list[ResultRow]:
    """The rows of a results file; a missing file has none.

    Lines that are not JSON objects, or whose fields do not validate as a :class:`ResultRow` (a missing
    ``id``, a ``score`` that is not a number...), are skipped with a :class:`CorruptLineWarning`. With ``repair``,
    such lines are moved to ``<file>.corrupt`` and the file is rewritten without them (a file that
    ends in the middle of a line, from a killed run, gets its last complete line back), so later
    appends start on a clean line. Finished rows are never dropped.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    rows: list[ResultRow] = []
    good: list[bytes] = []
    bad: list[bytes] = []
    lines = data.split(b"\n")
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            data_row = json.loads(raw.decode("utf-8"))
            if not isinstance(data_row, dict):
                raise ValueError("not an object")
            row = ResultRow.model_validate(data_row)
        except ValidationError as exc:
            where = f"line {number}"
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors()[:3])
            warnings.warn(f"{path}: {where} is not a valid row ({problems}); it is set aside and its row will be "
                          "recomputed", CorruptLineWarning, stacklevel=2)
            bad.append(raw)
            continue
        except (ValueError, UnicodeDecodeError):
            last = number == len(lines) or (number == len(lines) - 1 and not lines[-1])
            where = "last line (truncated?)" if last else f"line {number}"
            warnings.warn(f"{path}: {where} is not a JSON row; it is set aside and its row will be recomputed",
                          CorruptLineWarning, stacklevel=2)
            bad.append(raw)
            continue
        rows.append(row)
        good.append(raw)
    needs_fix = bool(bad) or (data and not data.endswith(b"\n"))
    if repair and needs_fix:
        if bad:
            with open(f"{path}.corrupt", "ab") as handle:
                handle.write(b"\n".join(bad) + b"\n")
        _write_atomic_bytes(path, b"".join(line + b"\n" for line in good))
    return rows


class RowWriter:
    """Appends rows to a JSONL file, one line each, flushed and fsynced so a kill loses at most one row."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        read_rows(self.path, repair=True)  # a truncated last line must not swallow the next row
        self._handle = open(self.path, "a", encoding="utf-8")

    def write(self, row: ResultRow) -> None:
        self._handle.write(row.to_json() + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> RowWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def merge_rows(*sources: Iterable[ResultRow]) -> list[ResultRow]:
    """Rows of several sources, one per key (the first seen wins), in order."""
    seen: set[tuple[str, str, str]] = set()
    out = []
    for rows in sources:
        for row in rows:
            if row.key not in seen:
                seen.add(row.key)
                out.append(row)
    return out


def merge_rank_files(out_dir: str | Path, world_size: int) -> list[ResultRow]:
    """Merge ``results.jsonl`` and every ``results.rank{r}.jsonl`` into ``results.jsonl``.

    The merged file replaces the old one atomically; the rank files are deleted only afterwards, so a
    crash at any moment keeps every finished row in one file or the other.
    """
    out_dir = Path(out_dir)
    main = out_dir / RESULTS
    ranks = sorted(out_dir.glob("results.rank*.jsonl"))
    sources = [read_rows(main, repair=True)] + [read_rows(p, repair=True) for p in ranks]
    rows = merge_rows(*sources)
    _write_atomic_bytes(main, b"".join((r.to_json() + "\n").encode("utf-8") for r in rows))
    for p in ranks:
        p.unlink(missing_ok=True)
    return rows


# ---------------------------------------------------------------------------- summary

def _mean(values: Sequence[float | None]) -> float | None:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return sum(values) / len(values) if values else None


def group_rows(rows: Iterable[ResultRow], by: Sequence[str]) -> list[dict[str, Any]]:
    """Mean scores and measurements of the scored rows grouped by the :class:`ResultRow` fields ``by``.

    Each group (a dict: it is a line of ``summary.json`` and ``summary.csv``) has ``by``'s fields, ``n`` (scored rows), ``skipped`` (rows not run, e.g. too long),
    ``score`` (mean primary metric), ``scores`` (mean of every metric) and the means of
    :data:`MEAN_FIELDS`. Groups keep the order in which they first appear.
    """
    unknown = [k for k in (*by, *MEAN_FIELDS) if k not in ResultRow.model_fields]
    if unknown:
        raise ValueError(f"not ResultRow fields: {', '.join(unknown)}")
    groups: dict[tuple, list[ResultRow]] = defaultdict(list)
    for row in rows:
        groups[tuple(getattr(row, k) for k in by)].append(row)
    out = []
    for key, members in groups.items():
        scored = [r for r in members if not r.skipped]
        metrics: list[str] = []
        for r in scored:
            metrics += [m for m in r.scores if m not in metrics]
        group: dict[str, Any] = dict(zip(by, key))
        group["n"] = len(scored)
        group["skipped"] = len(members) - len(scored)
        group["score"] = _mean([r.score for r in scored])
        group["scores"] = {m: _mean([r.scores.get(m) for r in scored]) for m in metrics}
        for field in MEAN_FIELDS:
            group[field] = _mean([getattr(r, field) for r in scored])
        out.append(group)
    return out


def summarize(rows: Sequence[ResultRow]) -> dict[str, list[dict[str, Any]]]:
    """The summary tables: by task x policy x budget, and by task x policy x budget x length."""
    return {
        "by_policy": group_rows(rows, ("task", "policy", "budget")),
        "by_length": group_rows(rows, ("task", "policy", "budget", "length")),
    }


def write_summary(out_dir: str | Path, rows: Sequence[ResultRow], info: Mapping[str, Any]) -> dict[str, Any]:
    """Write ``summary.json`` (``info`` + the tables of :func:`summarize`) and ``summary.csv``."""
    out_dir = Path(out_dir)
    summary = {**info, "rows": len(rows), **summarize(rows)}
    _write_atomic_bytes(out_dir / SUMMARY_JSON,
                        (json.dumps(summary, indent=2, default=_jsonable) + "\n").encode("utf-8"))
    table = summary["by_length"]
    metrics: list[str] = []
    for g in table:
        metrics += [m for m in g["scores"] if m not in metrics]
    header = ["task", "policy", "budget", "length", "n", "skipped", "score", *metrics, *MEAN_FIELDS]
    tmp = out_dir / f".{SUMMARY_CSV}.tmp"
    with open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for g in table:
            writer.writerow([g["task"], g["policy"], g["budget"], g["length"], g["n"], g["skipped"],
                             _fmt(g["score"]), *(_fmt(g["scores"].get(m)) for m in metrics),
                             *(_fmt(g[f]) for f in MEAN_FIELDS)])
    os.replace(tmp, out_dir / SUMMARY_CSV)
    return summary


def _fmt(value: Any) -> Any:
    return "" if value is None else (round(value, 6) if isinstance(value, float) else value)


def _write_atomic_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
