"""Plots: every figure is a non-empty PNG, drawn from result rows alone (no model)."""

from __future__ import annotations

import math

import pytest

from windowkv.eval.plots import (
    needle_matrix,
    plot_needle_grid,
    plot_needle_heatmap,
    plot_score_vs_budget,
    write_plots,
)
from windowkv.eval.report import display_budget, result_table
from windowkv.eval.rows import ResultRow

PNG = b"\x89PNG\r\n\x1a\n"


def rows():
    out = []
    variants = [("full", "1", "ratio", 1.0), ("windowkv", "0.12", "ratio", 0.2), ("windowkv", "0.25", "ratio", 0.35),
                ("snapkv", "0.12", "ratio", 0.2), ("snapkv", "0.25", "ratio", 0.35)]
    for policy, budget, kind, kept in variants:
        for length in (1024, 2048):
            for depth in (0.0, 0.5, 1.0):
                score = 1.0 if policy == "full" or depth > 0.4 or budget == "0.25" else 0.0
                out.append(ResultRow(id=f"needle-L{length}-d{depth}", task="needle", policy=policy, budget=budget,
                                     budget_kind=kind, length=length, depth=depth, metric="needle_exact",
                                     score=score, scores={"needle_exact": score, "rouge1": 0.5 + score / 2},
                                     kept_fraction=kept, kept_review_fraction=kept - 0.05, prefill_seconds=1.0,
                                     kv_bytes_kept=2**20))
    out.append(ResultRow(id="needle-L4096-d0.5", task="needle", policy="full", budget="1", length=4096, depth=0.5,
                         skipped="too long"))
    return out


def check_png(path):
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


def test_needle_matrix_means_per_cell():
    lengths, depths, grid = needle_matrix([r for r in rows() if r.policy == "windowkv" and r.budget == "0.12"])
    assert lengths == [1024, 2048] and depths == [0.0, 0.5, 1.0]
    assert grid == [[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    _, _, partial = needle_matrix([rows()[0]])
    assert partial == [[1.0]]
    assert math.isnan(needle_matrix(rows()[:1] + rows()[4:5])[2][0][1])


def test_heatmap_grid_and_curves_are_pngs(tmp_path):
    data = rows()
    check_png(plot_needle_heatmap([r for r in data if r.policy == "full"], tmp_path / "h.png"))
    check_png(plot_needle_grid(data, tmp_path / "grid.png"))
    check_png(plot_score_vs_budget(data, tmp_path / "curve.png"))
    check_png(plot_score_vs_budget(data, tmp_path / "rouge.png", metric="rouge1"))


def test_write_plots_names_one_file_per_figure(tmp_path):
    written = write_plots(rows(), tmp_path)
    names = sorted(p.name for p in written)
    assert names == sorted(["needle_heatmap_full_1.png", "needle_heatmap_windowkv_0.12.png",
                            "needle_heatmap_windowkv_0.25.png", "needle_heatmap_snapkv_0.12.png",
                            "needle_heatmap_snapkv_0.25.png", "needle_compare.png", "needle_score_vs_budget.png"])
    for p in written:
        check_png(p)


def test_no_scored_rows_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="no scored"):
        plot_score_vs_budget([rows()[-1]], tmp_path / "x.png")


def test_result_table_full_first_one_column_per_length():
    table = result_table(rows())
    assert table.header[:6] == ["policy", "budget", "L=1024", "L=2048", "L=4096", "mean"]
    assert [r[:2] for r in table.rows] == [["full", "100%"], ["windowkv", "12%"], ["windowkv", "25%"],
                                           ["snapkv", "12%"], ["snapkv", "25%"]]
    assert table.rows[0][4] == "–" and table.rows[0][6] == "6 (+1 skipped)"
    assert table.to_markdown().splitlines()[1].startswith("| :--- | :--- | ---: |")
    assert display_budget("256", "tokens") == "256"


def test_result_table_without_cost_columns():
    table = result_table(rows(), costs=False)
    assert table.header[-4:] == ["KV kept", "review kept", "KV bytes", "KV MiB"]
    assert all(len(r) == len(table.header) for r in table.rows)
