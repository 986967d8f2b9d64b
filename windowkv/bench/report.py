"""The benchmark's outputs: a rich table of medians and ratios, and a JSON file of every sample.

The table shows one line per (prompt length, variant): medians with their ``[min-max]`` spread, and the
ratios of the medians to the plain model's at the same length (``x plain``).
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any, Sequence

from windowkv.bench.runner import REFERENCE

MIB = 2**20


def _fmt(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(stat: dict[str, Any] | None, scale: float = 1.0, digits: int = 2) -> str:
    if not stat:
        return "–"
    text = _fmt(stat["median"] / scale, digits)
    if stat["n"] > 1 and stat["max"] > stat["min"]:
        text += f" [{_fmt(stat['min'] / scale, digits)}-{_fmt(stat['max'] / scale, digits)}]"
    return text


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def bench_table(rows: Sequence[dict[str, Any]], title: str = "windowkv bench") -> Any:
    """A ``rich.table.Table`` of summarised rows (:func:`windowkv.bench.runner.summarize`).

    Rows of a ``--shared-prefill`` run (which carry ``compress_seconds``) get two more columns: the
    compression seconds and their share of the plain prefill (``% prefill``).
    """
    from rich.table import Table

    compress = any(row.get("compress_seconds") for row in rows)
    table = Table(title=title, header_style="bold")
    columns = [("L", "right"), ("policy@budget", "left"), ("prefill s", "right"), ("x plain", "right")]
    if compress:
        columns += [("compress s", "right"), ("% prefill", "right")]
    columns += [("decode tok/s", "right"), ("x plain", "right"), ("KV MiB", "right"), ("x plain", "right"),
                ("peak MiB", "right")]
    for name, justify in columns:
        table.add_column(name, justify=justify)
    previous = None
    for row in rows:
        if previous is not None and row["length"] != previous:
            table.add_section()
        previous = row["length"]
        reference = row["variant"] == REFERENCE
        cells = [str(row["length"]), row["variant"] + (" (reference)" if reference else ""),
                 _cell(row["prefill_seconds"], digits=3), _ratio(row["prefill_ratio"])]
        if compress:
            share = row.get("compress_ratio")
            cells += [_cell(row.get("compress_seconds"), digits=3), "–" if share is None else f"{100 * share:.2f}%"]
        cells += [_cell(row["decode_tokens_per_s"], digits=1), _ratio(row["decode_ratio"]),
                  _cell(row["kv_bytes"], MIB, 2), _ratio(row["kv_bytes_ratio"]), _cell(row["peak_memory_bytes"], MIB, 1)]
        table.add_row(*cells)
    return table


def environment(model: Any, model_name: str | None, settings: Any, **extra: Any) -> dict[str, Any]:
    """Versions, device, threads and load of the machine, recorded next to the rows."""
    import torch
    import transformers

    import windowkv

    param = next(model.parameters())
    return {
        "windowkv": getattr(windowkv, "__version__", None), "torch": torch.__version__,
        "transformers": transformers.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "device": str(param.device), "dtype": str(param.dtype).removeprefix("torch."),
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "model": model_name or "the embedded SmolLM2-135M-Instruct",
        "cuda_device": torch.cuda.get_device_name(param.device) if param.device.type == "cuda" else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "settings": {"lengths": list(settings.lengths), "new_tokens": settings.new_tokens,
                     "repeats": settings.repeats, "warmup": settings.warmup, "seed": settings.seed,
                     "shared_prefill": settings.shared_prefill},
        **extra,
    }


def write_json(path: str | Path, rows: Sequence[dict[str, Any]], env: dict[str, Any]) -> Path:
    """Write ``{"environment": env, "rows": rows}`` to ``path`` (directories created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"environment": env, "rows": list(rows)}, indent=1), encoding="utf-8")
    return path
