"""Result files: tolerant reading, per-row appends, merging rank files, summaries."""

from __future__ import annotations

import csv
import json

import pytest

from windowkv.eval.results import (
    RESULTS,
    SUMMARY_CSV,
    SUMMARY_JSON,
    CorruptLineWarning,
    RowWriter,
    group_rows,
    merge_rank_files,
    merge_rows,
    rank_file,
    read_rows,
    row_key,
    write_summary,
)
from windowkv.eval.rows import ResultRow


def row(i: int, policy: str = "windowkv", budget: str = "0.25", score: float = 1.0, length: int = 1024,
        **extra) -> ResultRow:
    return ResultRow(id=f"ex{i}", task="needle", policy=policy, budget=budget, length=length, score=score,
                     scores={"needle_exact": score, "rouge1": score / 2}, prefill_seconds=1.0, kept_fraction=0.3,
                     **extra)


def test_missing_file_has_no_rows(tmp_path):
    assert read_rows(tmp_path / "nothing.jsonl") == []


def test_writer_appends_one_flushed_line_per_row(tmp_path):
    path = tmp_path / RESULTS
    with RowWriter(path) as writer:
        writer.write(row(0))
        assert read_rows(path) == [row(0)]  # visible before close: flushed per row
        writer.write(row(1))
    with RowWriter(path) as writer:  # a second run appends
        writer.write(row(2))
    assert [r.id for r in read_rows(path)] == ["ex0", "ex1", "ex2"]


def test_truncated_last_line_is_set_aside_and_the_next_row_starts_clean(tmp_path):
    path = tmp_path / RESULTS
    path.write_text(row(0).to_json() + "\n" + row(1).to_json()[:20])
    with pytest.warns(CorruptLineWarning, match="last line"):
        with RowWriter(path) as writer:
            writer.write(row(2))
    assert [r.id for r in read_rows(path)] == ["ex0", "ex2"]
    assert (tmp_path / f"{RESULTS}.corrupt").read_text() == row(1).to_json()[:20] + "\n"


def test_corrupt_middle_line_keeps_every_finished_row(tmp_path):
    path = tmp_path / RESULTS
    path.write_text("\n".join([row(0).to_json(), "{not json", "[1, 2]", row(1).to_json()]) + "\n")
    with pytest.warns(CorruptLineWarning):
        rows = read_rows(path)
    assert [r.id for r in rows] == ["ex0", "ex1"]
    assert "{not json" in path.read_text()  # reading alone never rewrites
    with pytest.warns(CorruptLineWarning):
        read_rows(path, repair=True)
    assert [r.id for r in read_rows(path)] == ["ex0", "ex1"]
    assert (tmp_path / f"{RESULTS}.corrupt").read_text().splitlines() == ["{not json", "[1, 2]"]


def test_a_file_without_final_newline_is_completed_on_repair(tmp_path):
    path = tmp_path / RESULTS
    path.write_text(row(0).to_json())
    assert read_rows(path, repair=True) == [row(0)]
    assert path.read_text().endswith("\n")


def test_merge_keeps_the_first_row_of_each_key():
    a, b = row(0, score=1.0), row(0, score=0.0)
    assert merge_rows([a], [b, row(1)]) == [a, row(1)]
    assert row_key(a) == ("ex0", "windowkv", "0.25")
    assert row_key(row(0, budget="64")) != row_key(a)


def test_merge_rank_files_into_results_and_remove_them(tmp_path):
    (tmp_path / RESULTS).write_text(row(0).to_json() + "\n")
    for rank, ids in ((0, [1, 3]), (1, [2, 0])):
        rank_file(tmp_path, rank).write_text("".join(row(i).to_json() + "\n" for i in ids))
    rows = merge_rank_files(tmp_path, 2)
    assert [r.id for r in rows] == ["ex0", "ex1", "ex3", "ex2"]
    assert read_rows(tmp_path / RESULTS) == rows
    assert not list(tmp_path.glob("results.rank*"))


def test_group_means_ignore_skipped_rows():
    rows = [row(0, score=1.0), row(1, score=0.0), row(2, score=1.0, length=2048),
            ResultRow(id="ex3", task="needle", policy="windowkv", budget="0.25", length=2048, skipped="too long")]
    (g,) = group_rows(rows, ("policy", "budget"))
    assert g["n"] == 3 and g["skipped"] == 1
    assert g["score"] == pytest.approx(2 / 3)
    assert g["scores"]["rouge1"] == pytest.approx(1 / 3)
    by_length = group_rows(rows, ("policy", "length"))
    assert [(x["length"], x["n"], x["score"]) for x in by_length] == [(1024, 2, 0.5), (2048, 1, 1.0)]


def test_write_summary_json_and_csv(tmp_path):
    rows = [row(0), row(1, policy="full", budget="1", score=0.5)]
    summary = write_summary(tmp_path, rows, {"seed": 3, "config": {"task": "needle"}})
    on_disk = json.loads((tmp_path / SUMMARY_JSON).read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["seed"] == 3 and on_disk["rows"] == 2
    table = list(csv.DictReader((tmp_path / SUMMARY_CSV).open()))
    assert [(t["policy"], t["length"], float(t["score"]), float(t["rouge1"])) for t in table] == [
        ("windowkv", "1024", 1.0, 0.5), ("full", "1024", 0.5, 0.25)]
