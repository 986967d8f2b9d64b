"""Result rows are typed: results.jsonl lines read into ResultRow, old files still read, nothing is lost."""

from __future__ import annotations

import json

import pytest

from windowkv.eval import ResultRow
from windowkv.eval.multiturn import summary_table
from windowkv.eval.report import result_table
from windowkv.eval.results import (
    RESULTS,
    CorruptLineWarning,
    RowWriter,
    merge_rank_files,
    rank_file,
    read_rows,
    summarize,
    write_summary,
)

#: a line written by windowkv before rows were typed (runs/needle of a real run, SmolLM2-135M, CPU)
OLD_SCORED = '{"id": "needle-L1024-d0.50-s0", "task": "needle", "policy": "windowkv", "budget": "12% bytes", "budget_kind": "bytes_ratio", "budget_value": "12% bytes", "policy_hash": "0b05e9df4a66", "model": "smollm2", "length": 1024, "depth": 0.5, "metric": "needle_exact", "prompt_tokens": 1064, "prediction": " 100.", "answers": ["1064525"], "score": 0.0, "scores": {"needle_exact": 0.0, "rouge1": 0.6666666666666667}, "task_label": "qa", "kept_tokens": 3680, "full_tokens": 31920, "kept_fraction": 0.11528822055137844, "kept_review_fraction": 0.08785529715762273, "suffix_size": 32, "kept_per_layer": [160, 160, 160, 160, 160, 160, 160, 160, 136, 136, 136, 136, 136, 136, 136, 136, 104, 104, 104, 104, 104, 104, 104, 104, 80, 80, 80, 80, 80, 80], "kv_bytes_kept": 5858304, "kv_bytes_full": 49029120, "kv_bytes_fraction": 0.11948621553884711, "kv_bytes_measured": true, "prefill_seconds": 348.6377, "decode_tokens_per_s": 0.165, "new_tokens": 6, "seconds": 378.864, "peak_memory_bytes": 62398464, "memory_method": "rss_peak", "rank": 0, "seed": 0, "finished_at": 1796140027.628}'
#: a skipped row as the runner writes it (no prediction, score or measurements)
OLD_SKIPPED = ('{"id": "needle-L4096-d0.50-s0", "task": "needle", "policy": "windowkv", "budget": "0.25", '
               '"budget_kind": "ratio", "budget_value": 0.25, "policy_hash": "0b05e9df4a66", "model": "smollm2", '
               '"length": 4096, "depth": 0.5, "metric": "needle_exact", "prompt_tokens": 4161, "skipped": '
               '"prompt of 4161 tokens + 16 new tokens exceeds the model\'s context of 2048 positions"}')
#: a `windowkv multiturn` row (scbench/kv) of a real run
OLD_TURN = '{"id": "scbench_kv-L1024-k4-s0-i0", "task": "scbench/kv", "policy": "full", "budget": "1", "mode": "agnostic", "turn": 0, "kind": "retrieval", "score": 1.0, "prediction": " 9376262.", "answers": ["9376262"], "kv_bytes": 49996800, "context_tokens": 1015, "seconds": 707.53}'


def test_an_old_scored_row_reads_with_the_right_types(tmp_path):
    path = tmp_path / RESULTS
    path.write_text(OLD_SCORED + "\n" + OLD_SKIPPED + "\n")
    scored, skipped = read_rows(path)
    assert isinstance(scored, ResultRow) and scored.key == ("needle-L1024-d0.50-s0", "windowkv", "12% bytes")
    assert scored.budget_kind == "bytes_ratio" and scored.budget_value == "12% bytes"
    assert scored.length == 1024 and isinstance(scored.length, int) and scored.depth == 0.5
    assert scored.score == 0.0 and isinstance(scored.score, float)
    assert scored.scores == {"needle_exact": 0.0, "rouge1": pytest.approx(2 / 3)}
    assert scored.kv_bytes_kept == 5858304 and isinstance(scored.kv_bytes_kept, int)
    assert scored.kept_per_layer is not None and sum(scored.kept_per_layer) == scored.kept_tokens == 3680
    assert scored.kv_bytes_measured is True and scored.peak_memory_bytes == 62398464
    assert scored.decode_tokens_per_s == 0.165 and scored.finished_at == 1796140027.628
    assert scored.kept_review_tokens is None  # written before that field existed
    assert scored.scored and not scored.model_extra
    assert skipped.skipped and "exceeds the model's context" in skipped.skipped
    assert skipped.prediction is None and skipped.score is None and skipped.scores == {} and not skipped.scored
    assert skipped.budget_value == 0.25 and skipped.prompt_tokens == 4161


def test_a_multiturn_row_reads_with_its_turn_fields(tmp_path):
    path = tmp_path / RESULTS
    path.write_text(OLD_TURN + "\n")
    (turn,) = read_rows(path)
    assert (turn.mode, turn.turn, turn.kind) == ("agnostic", 0, "retrieval")
    assert turn.kv_bytes == 49996800 and turn.context_tokens == 1015 and turn.score == 1.0
    assert summary_table([turn]) == [
        {"policy": "full", "budget": "1", "mode": "agnostic", "turns": "all turns", "n": 1, "score": 1.0},
        {"policy": "full", "budget": "1", "mode": "agnostic", "turns": "turn 0 (retrieval)", "n": 1, "score": 1.0}]
    assert json.loads(turn.to_json()) == json.loads(OLD_TURN)


@pytest.mark.parametrize("line", [OLD_SCORED, OLD_SKIPPED], ids=["scored", "skipped"])
def test_a_row_round_trips_through_results_jsonl_unchanged(tmp_path, line):
    path = tmp_path / RESULTS
    path.write_text(line + "\n")
    (row,) = read_rows(path)
    assert row.to_json() == line  # same keys, same order, same values: nulls kept, unset fields not added
    with RowWriter(tmp_path / "again.jsonl") as writer:
        writer.write(row)
    assert (tmp_path / "again.jsonl").read_text() == line + "\n"
    assert read_rows(tmp_path / "again.jsonl") == [row]


def test_a_new_row_writes_only_the_fields_it_was_given(tmp_path):
    row = ResultRow(id="a", task="needle", policy="full", budget="1", score=1.0, decode_tokens_per_s=None)
    assert json.loads(row.to_json()) == {"id": "a", "task": "needle", "policy": "full", "budget": "1",
                                         "score": 1.0, "decode_tokens_per_s": None}
    with pytest.raises(ValueError):
        ResultRow(id="a", task="needle", policy="full", budget="1", score="abc")


def test_unknown_keys_of_a_plugin_survive_read_summary_and_rewrite(tmp_path):
    plugin = json.loads(OLD_SCORED) | {"id": "p1", "judge": {"model": "x", "votes": [1, 0]}, "my_latency_ms": 12}
    (tmp_path / RESULTS).write_text(OLD_SCORED + "\n")
    rank_file(tmp_path, 0).write_text(json.dumps(plugin, ensure_ascii=False) + "\n")
    rows = merge_rank_files(tmp_path, 1)  # read, merged and rewritten
    assert [r.id for r in rows] == ["needle-L1024-d0.50-s0", "p1"]
    assert rows[1].model_extra == {"judge": {"model": "x", "votes": [1, 0]}, "my_latency_ms": 12}
    assert json.loads((tmp_path / RESULTS).read_text().splitlines()[1]) == plugin
    summary = write_summary(tmp_path, read_rows(tmp_path / RESULTS), {})
    (group,) = summary["by_policy"]
    assert group["n"] == 2 and summary["rows"] == 2
    assert result_table(rows).rows[0][:2] == ["windowkv", "12% bytes"]
    assert json.loads((tmp_path / RESULTS).read_text().splitlines()[1]) == plugin  # the summary rewrote nothing


def test_a_line_with_a_wrong_type_is_set_aside_as_corrupt(tmp_path):
    path = tmp_path / RESULTS
    wrong = json.dumps(json.loads(OLD_SCORED) | {"id": "bad", "score": "abc"})
    missing = json.dumps({"task": "needle", "policy": "full", "budget": "1"})  # no id
    path.write_text("\n".join([OLD_SCORED, wrong, OLD_SKIPPED, missing]) + "\n")
    with pytest.warns(CorruptLineWarning) as caught:
        rows = read_rows(path)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and "line 2 is not a valid row (score: " in messages[0]
    assert "line 4 is not a valid row (id: Field required)" in messages[1]
    assert [r.id for r in rows] == ["needle-L1024-d0.50-s0", "needle-L4096-d0.50-s0"]
    with pytest.warns(CorruptLineWarning):
        read_rows(path, repair=True)
    assert path.read_text().splitlines() == [OLD_SCORED, OLD_SKIPPED]  # finished rows kept
    assert (tmp_path / f"{RESULTS}.corrupt").read_text().splitlines() == [wrong, missing]
    assert [(g["n"], g["skipped"]) for g in summarize(read_rows(path))["by_policy"]] == [(1, 0), (0, 1)]
