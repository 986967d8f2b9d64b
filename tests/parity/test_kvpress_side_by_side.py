"""``benchmarks/kvpress_side_by_side.py`` on a tiny random Llama: kept positions match, ratios are numbers.

Runs only where kvpress is importable (``.venv-parity``)::

    .venv-parity/bin/python -m pytest -m parity tests/parity/test_kvpress_side_by_side.py
"""

from __future__ import annotations

import math

import pytest

pytestmark = [pytest.mark.parity, pytest.mark.usefixtures("one_torch_thread")]
pytest.importorskip("kvpress", reason="kvpress is not installed: run the parity suite in .venv-parity")

from benchmarks.kvpress_side_by_side import side_by_side, table  # noqa: E402
from tests.hf.conftest import prompt, tiny_model  # noqa: E402


def test_side_by_side_two_presses_match_positions_and_give_finite_ratios():
    model = tiny_model("llama", layers=2)
    rows = side_by_side(model, lambda n: prompt(n, seed=5), [160], ["snapkv", "chunkkv"], compression_ratio=0.5,
                        new_tokens=4, repeats=1, warmup=0)
    assert [(r["press"], r["length"]) for r in rows] == [("snapkv", 160), ("chunkkv", 160)]
    for row in rows:
        assert row["match"] and row["identical"], row["detail"]
        for key in ("prefill_ratio", "decode_time_ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row[key])
        # both sides hold the same kept tokens, so the same bytes
        assert row["windowkv_kv_bytes"]["median"] == row["kvpress_kv_bytes"]["median"]
    assert "| snapkv | 160 |" in table(rows)
