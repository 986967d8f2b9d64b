"""The generated haystack: deterministic, readable, digit-free, and fitted to token budgets."""

from __future__ import annotations

import re

import pytest

from windowkv.eval.haystack import (
    count_tokens,
    fit_length,
    haystack_sentences,
    haystack_tokens,
    load_data,
    word_list,
)


def test_same_seed_same_text_other_seed_other_text():
    assert haystack_sentences(50, seed=3) == haystack_sentences(50, seed=3)
    assert haystack_sentences(50, seed=3) != haystack_sentences(50, seed=4)


def test_sentences_are_readable_and_contain_no_digits():
    text = haystack_sentences(500, seed=0)
    for sentence in text:
        assert sentence[0].isupper() and sentence.endswith("."), sentence
        assert "{" not in sentence and "}" not in sentence, sentence
        assert not re.search(r"\d", sentence), sentence
        assert not re.search(r"\ba [aeiou]", sentence), sentence  # "an" before vowels
    assert len(set(text)) > 450  # varied


def test_no_sentence_mentions_a_needle_key():
    text = " ".join(haystack_sentences(2000, seed=1))
    assert "magic" not in text and "special" not in text
    assert not [city for city in word_list("cities") if city in text]


@pytest.mark.parametrize("budget", [1, 50, 333, 2000])
def test_haystack_tokens_fills_but_never_exceeds_the_budget(tokenizer, budget):
    text = haystack_tokens(tokenizer, budget, seed=0)
    tokens = count_tokens(tokenizer, text)
    assert tokens <= budget
    one_more = haystack_sentences(len(re.findall(r"\.(?: |$)", text)) + 1, seed=0)
    assert count_tokens(tokenizer, " ".join(one_more)) > budget  # the next sentence would not fit


def test_fit_length_finds_the_largest_fitting_size(tokenizer):
    word = "meadow "
    n, text, tokens = fit_length(lambda k: "intro " + word * k, tokenizer, 100)
    assert tokens <= 100 < count_tokens(tokenizer, "intro " + word * (n + 1))
    assert text == "intro " + word * n
    with pytest.raises(ValueError, match="too short"):
        fit_length(lambda k: "a long fixed prompt " * 50 + word * k, tokenizer, 10)


def test_data_files_are_shipped_and_well_formed():
    grammar = load_data("haystack.json")
    slots = set(re.findall(r"\{(\w+)\}", " ".join(grammar["templates"])))
    assert slots == set(grammar["slots"])
    assert len(word_list("cities")) >= 50 and len(set(word_list("nouns"))) >= 200
    with pytest.raises(KeyError, match="known"):
        word_list("_about")
