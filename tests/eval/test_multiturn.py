"""scbench/kv: every turn is answerable from the context; the runner answers turns both ways."""

from __future__ import annotations

import json

import pytest

from windowkv.eval.haystack import count_tokens
from windowkv.eval.metrics import string_match_all
from windowkv.eval.multiturn import KINDS, kv_example, run_multiturn, summary_table
from windowkv.eval.tasks import build_examples
from windowkv.eval.variants import make_variants


def test_keys_values_and_the_pointer_are_in_the_context(tokenizer):
    e = kv_example(tokenizer, 900, num_keys=4, seed=2)
    assert [t.kind for t in e.turns] == ["retrieval", "retrieval", "multi_hop", "aggregation"]
    assert set(t.kind for t in e.turns) == set(KINDS)
    values = e.turns[3].answers
    assert len(values) == 4 and all(f"is {v}." in e.context for v in values)
    hop = e.turns[2]
    pointer = hop.question.split("Key ", 1)[1].split(" ", 1)[0]
    target = e.context.split(f"Key {pointer} refers to key ", 1)[1].split(".", 1)[0]
    assert f"The value of key {target} is {hop.answers[0]}." in e.context
    for turn in e.turns[:2]:
        key = turn.question.split("key ", 1)[1].split("?", 1)[0]
        assert f"The value of key {key} is {turn.answers[0]}." in e.context
    assert count_tokens(tokenizer, e.context) == e.context_tokens <= 900
    assert kv_example(tokenizer, 900, num_keys=4, seed=2) == e
    assert [t.kind for t in kv_example(tokenizer, 900, num_keys=2).turns] == ["retrieval", "multi_hop", "aggregation"]
    with pytest.raises(ValueError, match="num_keys must be >= 2"):
        kv_example(tokenizer, 900, num_keys=1)


def test_registered_task_gives_the_query_aware_turns(tokenizer):
    examples = build_examples("scbench/kv", tokenizer=tokenizer, lengths=[800], num_examples=1)
    assert [e.id for e in examples] == [f"scbench_kv-L800-k4-s0-i0-t{i}" for i in range(4)]
    assert all(e.prompt.endswith(e2.question) for e, e2 in zip(examples, kv_example(tokenizer, 800).turns))
    assert string_match_all("values: " + ", ".join(examples[3].answers), examples[3].answers) == 1.0


def test_run_multiturn_writes_one_row_per_turn_and_mode_and_resumes(tokenizer, tmp_path):
    from tests.hf.conftest import tiny_model

    model = tiny_model("llama", layers=2, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    examples = [kv_example(tokenizer, 400, num_keys=3)]
    variants = make_variants(["snapkv"], ["0.25"])
    out = tmp_path / "rows.jsonl"
    rows = run_multiturn(model, tokenizer, examples, variants, out)
    assert len(rows) == 2 * len(examples[0].turns)
    assert {(r.mode, r.turn) for r in rows} == {(m, t) for m in ("agnostic", "aware") for t in range(4)}
    assert all(r.score is not None and 0.0 <= r.score <= 1.0 and r.kv_bytes and r.kv_bytes > 0 for r in rows)
    assert all(r.context_tokens == examples[0].context_tokens for r in rows)
    again = run_multiturn(model, tokenizer, examples, variants, out)  # resumes: nothing recomputed
    assert len(again) == len(rows) == len(out.read_text().splitlines())
    table = summary_table(rows)
    assert {r["mode"] for r in table} == {"agnostic", "aware"}
    assert json.loads(out.read_text().splitlines()[0])["policy"] == variants[0].label
    with pytest.raises(ValueError, match="unknown mode 'both'"):
        run_multiturn(model, tokenizer, examples, variants, out, modes=["both"])
