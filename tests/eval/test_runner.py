"""The evaluation runner on a tiny random model saved to disk: rows, metrics plumbing, resume, bad input."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from tests.eval.tiny_model import save_tiny_model
from windowkv.errors import ConfigError
from windowkv.eval import get_task, score_example
from windowkv.eval.results import RESULTS, SUMMARY_CSV, SUMMARY_JSON, CorruptLineWarning, read_rows
from windowkv.eval.runner import (
    DEFAULT_BUDGET,
    ResultsMismatchError,
    evaluate,
    limit_new_tokens,
    make_variants,
)
from windowkv.models import load_model


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    path = save_tiny_model(tmp_path_factory.mktemp("tiny") / "model")
    return load_model(path)


@pytest.fixture(scope="module")
def examples(tiny):
    _, tok = tiny
    return limit_new_tokens(get_task("needle")(tokenizer=tok, lengths=[200], depths=[0.0, 0.5, 1.0]), 4)


def run(tiny, examples, variants, out, **kwargs):
    model, tok = tiny
    return evaluate(model, tok, examples, variants, out, model_name="tiny", progress=False, **kwargs)


def test_one_row_per_example_and_variant_with_every_field(tiny, examples, tmp_path):
    variants = make_variants(["full", "windowkv"], ["0.25", "64"])
    assert [v.name for v in variants] == ["full@1", "windowkv@0.25", "windowkv@64"]  # full once
    result = run(tiny, examples, variants, tmp_path)
    rows = read_rows(tmp_path / RESULTS)
    assert result.computed == len(rows) == 9
    assert {(r.id, r.policy, r.budget) for r in rows} == {
        (e.id, v.label, v.budget) for e in examples for v in variants}
    model, _ = tiny
    for row in rows:
        for field in ("prediction", "scores", "score", "prompt_tokens", "kept_tokens", "kept_fraction",
                      "kept_review_fraction", "kv_bytes_kept", "prefill_seconds", "decode_tokens_per_s",
                      "peak_memory_bytes", "memory_method", "task", "length", "depth"):
            assert field in row.model_fields_set, field  # written to results.jsonl
        assert not row.model_extra  # every key the runner writes is a typed field
        assert len(row.kept_per_layer) == model.config.num_hidden_layers
        assert row.kept_tokens == sum(row.kept_per_layer)
        # kept tokens (summed over layers) x 2 KV heads x 16 dims x (K and V) x 4 bytes: what the full cache
        # holds; a compressed cache's bytes are measured from its tensors (slots padded to the fullest head)
        if row.policy == "full":
            assert row.kv_bytes_kept == row.kept_tokens * 2 * 16 * 2 * 4
        else:
            assert row.kv_bytes_measured and row.kv_bytes_kept >= row.kept_tokens * 2 * 16 * 2 * 4
        assert row.new_tokens <= 4 and row.prefill_seconds > 0
    full = [r for r in rows if r.policy == "full"]
    assert all(r.kept_fraction == 1.0 and r.kept_review_fraction == 1.0 for r in full)
    wkv = [r for r in rows if r.policy == "windowkv" and r.budget == "64"]
    for r in wkv:  # the keyword classifier sees a question: qa profile, suffix 32; 64 review tokens on average
        assert r.task_label == "qa" and r.suffix_size == 32
        assert r.kept_tokens <= 2 * (64 + 32) and r.kept_fraction < 1.0
    summary = json.loads((tmp_path / SUMMARY_JSON).read_text())
    assert summary["rows"] == 9 and summary["seed"] == 0
    assert summary["versions"]["torch"] == torch.__version__
    assert "git" in summary["versions"]
    assert any(p["distribution"] == "windowkv" for p in summary["versions"]["plugins"])
    assert {(g["policy"], g["budget"]) for g in summary["by_policy"]} == {(v.label, v.budget) for v in variants}
    assert (tmp_path / SUMMARY_CSV).read_text().startswith("task,policy,budget,length,n,")


def test_scores_are_the_metrics_of_the_prediction(tiny, examples, tmp_path):
    run(tiny, examples, make_variants(["windowkv"], ["0.5"]), tmp_path)
    by_id = {e.id: e for e in examples}
    for row in read_rows(tmp_path / RESULTS):
        expected = score_example(by_id[row.id], row.prediction)
        assert row.scores == expected
        assert row.score == expected["needle_exact"]
        assert set(row.scores) == {"needle_exact", "rouge1"}


def test_budget_above_the_prompt_compresses_nothing(tiny, examples, tmp_path):
    run(tiny, examples, make_variants(["full", "windowkv"], ["100000"]), tmp_path)
    rows = read_rows(tmp_path / RESULTS)
    full = {r.id: r for r in rows if r.policy == "full"}
    for r in (r for r in rows if r.policy == "windowkv"):
        assert r.kept_fraction == 1.0
        assert r.prediction == full[r.id].prediction


def test_resume_skips_finished_rows_and_recomputes_a_truncated_one(tiny, examples, tmp_path):
    variants = make_variants(["windowkv"], ["0.25"])
    run(tiny, examples, variants, tmp_path)
    results = tmp_path / RESULTS
    lines = results.read_text().splitlines()
    assert len(lines) == 3
    (tmp_path / SUMMARY_JSON).unlink()
    (tmp_path / SUMMARY_CSV).unlink()
    results.write_text("\n".join(lines[:2]) + "\n" + lines[2][: len(lines[2]) // 2])  # killed mid-write
    with pytest.warns(CorruptLineWarning):
        again = run(tiny, examples, variants, tmp_path)
    assert again.computed == 1 and again.resumed == 2
    rows = read_rows(results)
    assert [r.id for r in rows] == [json.loads(line)["id"] for line in lines]
    assert results.read_text().splitlines()[:2] == lines[:2]  # finished rows untouched
    assert [r.to_json() for r in rows[:2]] == lines[:2]
    assert (tmp_path / f"{RESULTS}.corrupt").read_text().strip() == lines[2][: len(lines[2]) // 2].strip()
    assert json.loads((tmp_path / SUMMARY_JSON).read_text())["rows"] == 3
    third = run(tiny, examples, variants, tmp_path)
    assert third.computed == 0 and third.resumed == 3


def test_resume_refuses_results_of_another_model_or_policy_config(tiny, examples, tmp_path):
    model, tok = tiny
    variants = make_variants(["windowkv"], ["0.25"])
    run(tiny, examples[:1], variants, tmp_path)
    with pytest.raises(ResultsMismatchError, match="model"):
        evaluate(model, tok, examples[:1], variants, tmp_path, model_name="other", progress=False)
    config = tmp_path / "windowkv.yaml"
    config.write_text("preset: windowkv\nname: windowkv\nbudget: 0.25\nsharing: {type: none}\n")
    with pytest.raises(ResultsMismatchError, match="another configuration"):
        run(tiny, examples[:1], make_variants([str(config)]), tmp_path)
    assert len(read_rows(tmp_path / RESULTS)) == 1


def test_prompt_longer_than_the_context_is_skipped_with_a_reason(tmp_path):
    model, tok = load_model(save_tiny_model(tmp_path / "short", max_positions=220))
    examples = limit_new_tokens(get_task("needle")(tokenizer=tok, lengths=[200], depths=[0.5]), 8)
    result = evaluate(model, tok, examples, make_variants(["windowkv"], ["0.25"]), tmp_path / "out",
                      model_name="short", progress=False)
    (row,) = read_rows(tmp_path / "out" / RESULTS)
    assert "exceeds the model's context of 220 positions" in row.skipped
    assert "prediction" not in row and result.skipped
    assert result.summary["by_policy"][0]["skipped"] == 1 and result.summary["by_policy"][0]["n"] == 0


def test_make_variants_defaults_and_errors(tmp_path):
    (default,) = make_variants(["windowkv"])
    assert default.policy.budget.ratio == DEFAULT_BUDGET
    config = tmp_path / "mine.toml"
    config.write_text('preset = "windowkv"\nbudget = 128\n')
    (from_file,) = make_variants([str(config)])
    assert (from_file.label, from_file.budget) == ("mine", "128")
    assert make_variants([str(config)], ["0.5"])[0].budget == "0.5"
    with pytest.raises(ConfigError, match="unknown policy 'windowvk'.*windowkv"):
        make_variants(["windowvk"])
    with pytest.raises(ConfigError, match="budget"):
        make_variants(["windowkv"], ["-3"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(make_variants(["full"], ["0.1", "0.2", "0.3"])) == 1


def test_a_tokenizer_without_chat_template_gets_plain_prompts(tiny, examples, tmp_path):
    model, tok = tiny
    template, tok.chat_template = tok.chat_template, None
    try:
        result = evaluate(model, tok, examples[:1], make_variants(["windowkv"], ["0.25"]), tmp_path,
                          model_name="tiny", progress=False)
    finally:
        tok.chat_template = template
    (row,) = result.rows
    assert row.prompt_tokens == len(tok(examples[0].prompt + "\n" + examples[0].answer_prefix)["input_ids"])
    assert row.prediction is not None


def test_ignore_eos_generates_every_token(tiny, examples, tmp_path):
    result = run(tiny, examples[:2], make_variants(["full"]), tmp_path, ignore_eos=True)
    assert [r.new_tokens for r in result.rows] == [4, 4]
    assert all(r.decode_tokens_per_s > 0 for r in result.rows)
