"""The long-answer task: every record is in the prompt, in order; scores are exact."""

from __future__ import annotations

import pytest

from windowkv.eval.haystack import count_tokens
from windowkv.eval.long_answer import list_exact, list_recall, list_records_example
from windowkv.eval.metrics import score_example
from windowkv.eval.tasks import build_examples


def test_records_are_in_the_prompt_in_order_and_the_length_fits(tokenizer):
    e = list_records_example(tokenizer, 1024, num_items=12, seed=4)
    assert e.task == "long/list_records" and len(e.answers) == 12
    positions = [e.prompt.index(a) for a in e.answers]
    assert positions == sorted(positions)
    tokens = count_tokens(tokenizer, e.prompt)
    assert tokens == e.prompt_tokens and 0.8 * 1024 <= tokens <= 1024
    assert e.max_new_tokens == 14 * 12
    assert list_records_example(tokenizer, 1024, num_items=12, seed=4) == e


def test_a_perfect_copy_scores_one_and_a_partial_one_exactly(tokenizer):
    e = list_records_example(tokenizer, 600, num_items=5, seed=1)
    full = "\n".join(e.answers)
    reply = full[len(e.answer_prefix):]  # the model continues the answer prefix
    assert score_example(e, reply) == {"list_recall": 1.0, "list_exact": 1.0}
    three = "\n".join(e.answers[:3])[len(e.answer_prefix):]
    assert score_example(e, three) == {"list_recall": 0.6, "list_exact": 0.0}
    wrong = full.replace(e.answers[1][-5:-1], "0000" if e.answers[1][-5:-1] != "0000" else "1111")
    assert list_recall(wrong, e.answers) == 0.8 and list_exact(wrong, e.answers) == 0.0
    assert list_recall("  RECORD 1:  the " + e.answers[0].split("the ", 1)[1].upper(), e.answers[:1]) == 1.0


def test_registered_as_a_task_and_bad_sizes_are_refused(tokenizer):
    examples = build_examples("long/list_records", tokenizer=tokenizer, lengths=[700], num_examples=2, num_items=4)
    assert [e.id for e in examples] == ["list_records-L700-n4-s0-i0", "list_records-L700-n4-s0-i1"]
    with pytest.raises(ValueError, match="num_items must be in"):
        list_records_example(tokenizer, 700, num_items=0)
    with pytest.raises(ValueError, match="too short"):
        list_records_example(tokenizer, 100, num_items=40)
