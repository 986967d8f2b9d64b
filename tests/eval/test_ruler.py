"""RULER-style tasks: every answer is recoverable from the prompt, lengths fit, seeds reproduce."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from windowkv.eval.haystack import count_tokens
from windowkv.eval.metrics import score_example
from windowkv.eval.ruler import RULER_TASKS, ruler_examples, zeta

LENGTH = 1024


@pytest.fixture(scope="module")
def examples(tokenizer):
    return {task: ruler_examples(task, tokenizer, [LENGTH], samples=2, seed=3) for task in RULER_TASKS}


def test_every_task_fits_its_length_and_is_scored_like_ruler(examples, tokenizer):
    for task, exs in examples.items():
        assert len(exs) == 2 and exs[0].id != exs[1].id
        for e in exs:
            tokens = count_tokens(tokenizer, e.prompt)
            assert tokens == e.prompt_tokens and 0.8 * LENGTH <= tokens <= LENGTH, (task, tokens)
            assert e.task == f"ruler/{task}" and e.metric == "string_match_all"
            assert e.postprocess == "ruler" and e.length == LENGTH and e.answer_prefix
            assert score_example(e, " " + ", ".join(e.answers))["string_match_all"] == 1.0
            half = e.answers[: len(e.answers) // 2]
            assert score_example(e, " ".join(half))["string_match_all"] == pytest.approx(len(half) / len(e.answers))


def test_same_seed_same_examples(tokenizer, examples):
    for task in ("niah_multikey", "vt", "cwe", "fwe"):
        assert ruler_examples(task, tokenizer, [LENGTH], samples=2, seed=3) == examples[task]
        other = ruler_examples(task, tokenizer, [LENGTH], samples=1, seed=4)[0]
        assert other.answers != examples[task][0].answers


def test_niah_variants(examples):
    single, = examples["niah_single"][:1]
    assert single.prompt.startswith("A special magic number is hidden")
    assert single.answer_prefix.endswith("mentioned in the provided text is")
    assert re.fullmatch(r"\d{7}", single.answers[0]) and single.prompt.count(single.answers[0]) == 1
    multikey = examples["niah_multikey"][0]
    assert multikey.prompt.count("One of the special magic numbers for") == 4 and len(multikey.answers) == 1
    key = multikey.meta["keys"][0]
    assert f"One of the special magic numbers for {key} is: {multikey.answers[0]}." in multikey.prompt
    multivalue = examples["niah_multivalue"][0]
    assert len(multivalue.answers) == 4 and multivalue.prompt.startswith("Some special magic numbers")
    assert all(f"for {multivalue.meta['keys'][0]} is: {v}." in multivalue.prompt for v in multivalue.answers)
    multiquery = examples["niah_multiquery"][0]
    assert len(multiquery.answers) == 4 and len(multiquery.meta["keys"]) == 4
    assert ", and " in multiquery.prompt.splitlines()[-1]


@pytest.mark.parametrize("haystack", ["noise", "needle"])
def test_niah_other_haystacks_and_key_types(tokenizer, haystack):
    e = ruler_examples("niah_single", tokenizer, [512], haystack=haystack, key_type="uuids")[0]
    key = e.meta["keys"][0]
    assert re.fullmatch(r"[0-9a-f-]{36}", key)
    assert f"One of the special magic numbers for {key} is: {e.answers[0]}." in e.prompt
    if haystack == "noise":
        assert "The grass is green." in e.prompt
    else:
        assert e.prompt.count("One of the special magic numbers for") > 3  # distractor needles


def test_vt_answers_are_exactly_the_variables_holding_the_value(examples, tokenizer):
    for e in examples["vt"]:
        main = e.prompt.split("Memorize and track")[-1]  # skip the worked example
        value = e.meta["value"]
        holders, changed = set(), True
        assignments = re.findall(r"VAR (\w+) = (VAR \w+|\d+)", main)
        while changed:
            changed = False
            for name, source in assignments:
                if name not in holders and (source == value or source.removeprefix("VAR ") in holders):
                    holders.add(name)
                    changed = True
        assert holders == set(e.answers) and len(e.answers) == 5
        assert e.prompt.count("Memorize and track") == 1 + e.meta["fewshot"]  # worked example, question
    assert ruler_examples("vt", tokenizer, [LENGTH], fewshot=True)[0].prompt.count("Memorize and track") == 2


def test_cwe_common_words_are_the_most_frequent(examples, tokenizer):
    for e in examples["cwe"]:
        main = e.prompt.split("Memorize the ones that appear most often.\n")[-1]
        counts = Counter(re.findall(r"\d+\. ([a-z-]+)", main))
        assert {w: counts[w] for w in e.answers} == {w: 6 for w in e.answers}  # RULER's short setting: 6x vs 1x
        assert set(counts.values()) == {1, 6}
    with_shot = ruler_examples("cwe", tokenizer, [LENGTH], fewshot=True)[0]
    assert with_shot.meta["fewshot"] and with_shot.prompt.count("Below is a numbered list") == 2
    # automatic: the worked example only when it takes at most a third of the length
    assert not ruler_examples("cwe", tokenizer, [700])[0].meta["fewshot"]
    assert ruler_examples("cwe", tokenizer, [3000])[0].meta["fewshot"]


def test_fwe_answers_follow_the_noise_word(examples):
    for e in examples["fwe"]:
        words = e.prompt.split("coded words. ")[1].split("\nQuestion")[0].split()
        ranked = [w for w, _ in Counter(words).most_common()]
        assert ranked[0] == "..." and set(ranked[1:4]) == set(e.answers)


def test_zeta():
    assert zeta(2.0) == pytest.approx(3.14159265358979 ** 2 / 6, rel=1e-9)
    with pytest.raises(ValueError):
        zeta(1.0)


def test_bad_arguments(tokenizer):
    with pytest.raises(KeyError, match="known"):
        ruler_examples("niah", tokenizer, [512])
    with pytest.raises(ValueError, match="tokenizer"):
        ruler_examples("vt", None, [512])
    with pytest.raises(ValueError, match="haystack"):
        ruler_examples("niah_single", tokenizer, [512], haystack="essays")
    with pytest.raises(ValueError, match="needle type"):
        ruler_examples("niah_single", tokenizer, [512], value_type="colours")
    with pytest.raises(ValueError, match="too short"):
        ruler_examples("vt", tokenizer, [50])
