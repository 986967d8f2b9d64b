"""The Example record and prompt rendering (chat template, plain fallback, answer prefix)."""

from __future__ import annotations

import json
import warnings

import pytest

from windowkv.eval.examples import Example, has_chat_template, render_prompt, uses_chat_template


def example(**overrides) -> Example:
    fields = dict(id="e1", task="needle", prompt="What is two plus two?", answers=["4"], metric="needle_exact",
                  max_new_tokens=8)
    return Example(**{**fields, **overrides})


def test_metrics_lists_the_primary_metric_first_and_once():
    ex = example(extra_metrics=("rouge1", "needle_exact"))
    assert ex.metrics == ("needle_exact", "rouge1")
    assert ex.gold("needle_exact") == ["4"]
    assert example(references={"rouge1": ["four"]}).gold("rouge1") == ["four"]


@pytest.mark.parametrize("bad", [dict(id=""), dict(answers="4"), dict(answers=[4]), dict(max_new_tokens=0),
                                 dict(max_new_tokens=True)])
def test_invalid_examples_are_rejected(bad):
    with pytest.raises(ValueError):
        example(**bad)


def test_to_dict_is_json_and_round_trips():
    ex = example(extra_metrics=("rouge1",), references={"rouge1": ["x"]}, meta={"length": 10},
                 answer_prefix="It is", use_chat_template=False)
    data = json.loads(json.dumps(ex.to_dict()))
    assert Example.from_dict(data) == ex


def test_render_with_chat_template_adds_generation_prompt_and_prefix(tokenizer):
    ex = example(answer_prefix="The answer is ")
    text = render_prompt(tokenizer, ex)
    assert text == "<|im_start|>user\nWhat is two plus two?<|im_end|>\n<|im_start|>assistant\nThe answer is"
    assert uses_chat_template(tokenizer, ex) and has_chat_template(tokenizer)


def test_render_without_chat_template_falls_back_to_plain_text(plain_tokenizer):
    ex = example(answer_prefix="The answer is")
    with pytest.warns(UserWarning, match="no chat template"):
        text = render_prompt(plain_tokenizer, ex)
    assert text == "What is two plus two?\nThe answer is"
    assert not uses_chat_template(plain_tokenizer, ex)
    assert render_prompt(None, example()) == "What is two plus two?"


def test_raw_text_examples_skip_the_template(tokenizer):
    ex = example(use_chat_template=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert render_prompt(tokenizer, ex) == "What is two plus two?"
    assert not uses_chat_template(tokenizer, ex)


def test_a_broken_chat_template_does_not_crash(plain_tokenizer):
    from copy import deepcopy

    tok = deepcopy(plain_tokenizer)
    tok.chat_template = "{{ raise_exception('no user turns') }}"
    with pytest.warns(UserWarning, match="chat template failed"):
        assert render_prompt(tok, example()) == "What is two plus two?"
