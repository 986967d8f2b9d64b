"""Needle-in-a-haystack examples: the grid, lengths in tokens, depths, seeds, scoring."""

from __future__ import annotations

import re

import pytest

from windowkv.eval.examples import render_prompt
from windowkv.eval.haystack import count_tokens
from windowkv.eval.metrics import score_example
from windowkv.eval.needle import INTRO, insert_at_depth, needle_examples


@pytest.fixture(scope="module")
def grid(tokenizer):
    return needle_examples(tokenizer, lengths=[256, 512], depths=[0.0, 0.5, 1.0], samples=2, seed=7)


def test_grid_shape_ids_and_order(grid):
    assert len(grid) == 2 * 3 * 2
    assert len({e.id for e in grid}) == len(grid)
    assert grid[0].id == "needle-L256-d0.00-s7" and grid[1].id == "needle-L256-d0.00-s7-r1"
    assert [e.meta["length"] for e in grid] == [256] * 6 + [512] * 6
    assert all(e.task == "needle" and e.metric == "needle_exact" and e.metrics == ("needle_exact", "rouge1")
               for e in grid)


def test_prompts_fit_their_length_closely(grid, tokenizer):
    for e in grid:
        tokens = count_tokens(tokenizer, e.prompt)
        assert tokens == e.prompt_tokens <= e.meta["length"]
        assert tokens >= e.meta["length"] - 40  # one filler sentence of slack at most


def test_needle_is_hidden_once_and_asked_at_the_end(grid):
    for e in grid:
        value, key = e.meta["needle"], e.meta["key"]
        assert re.fullmatch(r"\d{7}", value) and e.answers == [value]
        needle = f"The special magic number for {key} is {value}."
        assert e.prompt.count(needle) == 1 and e.prompt.count(value) == 1
        assert e.prompt.startswith(INTRO)
        assert e.prompt.endswith(f"What is the special magic number for {key} mentioned in the provided text?")
        assert e.references == {"rouge1": [needle]}
        assert key in e.answer_prefix


def test_depth_moves_the_needle_through_the_haystack(grid):
    for e in grid:
        # the needle sits between whole sentences: within one sentence of the asked depth
        slack = 1 / e.meta["haystack_sentences"] + 0.05
        assert abs(e.meta["needle_token_depth"] - e.meta["depth"]) <= slack, e.meta
    for length in (256, 512):
        cells = [e for e in grid if e.meta["length"] == length and e.meta["index"] == 0]
        positions = [e.meta["needle_token_depth"] for e in cells]
        assert positions == sorted(positions) and positions[0] < 0.05 and positions[-1] > 0.95


def test_same_seed_same_examples_and_cells_are_independent(tokenizer, grid):
    again = needle_examples(tokenizer, lengths=[512], depths=[0.5], samples=1, seed=7)
    same = next(e for e in grid if e.id == again[0].id)
    assert again[0] == same
    other = needle_examples(tokenizer, lengths=[512], depths=[0.5], samples=1, seed=8)[0]
    assert other.meta["needle"] != same.meta["needle"]


def test_a_correct_reply_scores_one(grid, tokenizer):
    e = grid[0]
    scores = score_example(e, f" {e.meta['needle']}.")
    assert scores["needle_exact"] == 1.0 and scores["rouge1"] > 0.7
    assert score_example(e, " 1234.")["needle_exact"] == 0.0
    assert render_prompt(tokenizer, e).endswith(e.answer_prefix)


def test_without_prefix(tokenizer):
    e = needle_examples(tokenizer, lengths=[200], depths=[0.5], answer_prefix=False)[0]
    assert e.answer_prefix == "" and not e.score_with_prefix


def test_insert_at_depth_places_between_whole_parts():
    parts = ["aaaa", "bbbb", "cccc", "dddd"]
    assert insert_at_depth(parts, "N", 0.0) == (["N", *parts], 0)
    assert insert_at_depth(parts, "N", 1.0) == ([*parts, "N"], 4)
    assert insert_at_depth(parts, "N", 0.5)[1] == 2
    with pytest.raises(ValueError, match="depth"):
        insert_at_depth(parts, "N", 1.5)


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="tokenizer"):
        needle_examples(None)
    with pytest.raises(ValueError, match="too short"):
        needle_examples(tokenizer, lengths=[10], depths=[0.5])
    with pytest.raises(ValueError, match="samples"):
        needle_examples(tokenizer, samples=0)
