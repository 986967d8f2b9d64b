"""LongBench: tables faithful to LongBench's config, loading, truncation and scoring on fixture files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from windowkv.eval.examples import render_prompt
from windowkv.eval.longbench import (
    DATASET2MAXLEN,
    DATASET2METRIC,
    DATASET2PROMPT,
    LONGBENCH_DATASETS,
    LongBenchDataError,
    build_prompt,
    load_longbench,
    longbench_examples,
    truncate_middle,
)
from windowkv.eval.metrics import METRICS, score_example

FIXTURES = Path(__file__).parent / "fixtures"
DATA = FIXTURES / "longbench"


def test_tables_match_longbench_config_files():
    config = FIXTURES / "longbench_config"
    assert DATASET2PROMPT == json.loads((config / "dataset2prompt.json").read_text(encoding="utf-8"))
    assert DATASET2MAXLEN == json.loads((config / "dataset2maxlen.json").read_text(encoding="utf-8"))
    assert set(DATASET2METRIC) == set(LONGBENCH_DATASETS) and set(DATASET2METRIC.values()) <= set(METRICS)
    # LongBench eval.py's dataset2metric, spot checks of each family
    assert DATASET2METRIC["hotpotqa"] == "qa_f1" and DATASET2METRIC["multifieldqa_zh"] == "qa_f1_zh"
    assert DATASET2METRIC["dureader"] == DATASET2METRIC["vcsum"] == "rouge_zh"
    assert DATASET2METRIC["samsum"] == DATASET2METRIC["gov_report"] == "rouge_score"
    assert DATASET2METRIC["trec"] == DATASET2METRIC["lsht"] == "classification_score"
    assert DATASET2METRIC["lcc"] == DATASET2METRIC["repobench-p"] == "code_sim_score"
    assert DATASET2METRIC["passage_count"] == "count_score"


def test_load_from_a_directory_or_a_file():
    records = load_longbench("hotpotqa", DATA)
    assert [r["_id"] for r in records] == ["hp-001", "hp-002"]
    assert load_longbench("hotpotqa", DATA / "hotpotqa.jsonl") == records


def test_examples_carry_prompt_answers_metric_and_generation_length():
    ex = longbench_examples("hotpotqa", path=DATA)[0]
    assert ex.id == "longbench-hotpotqa-hp-001" and ex.task == "longbench/hotpotqa"
    assert ex.prompt == DATASET2PROMPT["hotpotqa"].format(
        context="Passage 1:\nAda Brook worked at the Larch Mill for forty years.\nPassage 2:\nThe Larch Mill stands "
                "on the bank of the river Tamsin.",
        input="Which river flows past the mill where Ada Brook worked?")
    assert ex.answers == ["Tamsin", "the river Tamsin"] and ex.metric == "qa_f1" and ex.max_new_tokens == 32
    assert ex.use_chat_template and ex.source_length == 31 and "length" not in ex.meta
    assert score_example(ex, "The river Tamsin.") == {"qa_f1": 1.0}


def test_few_shot_and_code_datasets_are_raw_text_and_first_line(tokenizer):
    trec = longbench_examples("trec", path=DATA)[0]
    assert not trec.use_chat_template and trec.postprocess == "first_line"
    assert render_prompt(tokenizer, trec) == trec.prompt
    assert trec.all_classes == ("Individual", "Distance", "City", "Country", "Food")
    # first line "City" -> matches [City] -> 1.0; the second line is ignored
    assert score_example(trec, "City\nCountry") == {"classification_score": 1.0}
    samsum = longbench_examples("samsum", path=DATA)[0]
    assert samsum.stop_strings == ("\n",) and samsum.max_new_tokens == 128
    lcc = longbench_examples("lcc", path=DATA)[0]
    assert lcc.prompt == ("Please complete the code given below. \ndef add(a, b):\n    total = a + b\n"
                          "Next line of code:\n")
    assert score_example(lcc, "    return total\n") == {"code_sim_score": 1.0}


def test_retrieval_count_and_chinese_examples():
    retrieval = longbench_examples("passage_retrieval_en", path=DATA)[0]
    assert score_example(retrieval, "Paragraph 2") == {"retrieval_score": 1.0}
    count = longbench_examples("passage_count", path=DATA)[0]
    assert count.answers == ["2"]  # integers in the file become strings
    assert score_example(count, "2") == {"count_score": 1.0}
    zh = longbench_examples("multifieldqa_zh", path=DATA)[0]
    assert zh.prompt.startswith("阅读以下文字并用中文简短回答") and zh.metric == "qa_f1_zh"
    assert score_example(zh, "松林磨坊")["qa_f1_zh"] == 1.0


def test_truncation_keeps_both_ends(tokenizer):
    record = load_longbench("hotpotqa", DATA)[1]
    prompt = build_prompt("hotpotqa", record)
    total = len(tokenizer(prompt)["input_ids"])
    short, truncated = truncate_middle(tokenizer, prompt, 100)
    assert truncated and total > 100
    assert len(tokenizer(short)["input_ids"]) <= 102  # re-tokenising at the seam may merge or split one token
    assert short.startswith(prompt[:40]) and short.endswith(prompt[-40:])
    assert truncate_middle(tokenizer, prompt, total) == (prompt, False)
    examples = longbench_examples("hotpotqa", path=DATA, tokenizer=tokenizer, max_length=300)
    first = build_prompt("hotpotqa", load_longbench("hotpotqa", DATA)[0])
    assert len(tokenizer(first)["input_ids"]) <= 300 and examples[0].prompt == first
    assert not examples[0].meta["truncated"] and examples[1].meta["truncated"]
    assert examples[1].prompt.endswith("Question: Who built the north bridge?\nAnswer:")


def test_limit():
    assert len(longbench_examples("hotpotqa", path=DATA, limit=1)) == 1


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(LongBenchDataError, match="Did you mean 'hotpotqa'"):
        load_longbench("hotpotq", DATA)
    with pytest.raises(LongBenchDataError, match="no musique.jsonl"):
        load_longbench("musique", DATA)
    with pytest.raises(LongBenchDataError, match="does not exist"):
        load_longbench("hotpotqa", tmp_path / "nowhere.jsonl")
    bad = tmp_path / "trec.jsonl"
    bad.write_text('{"input": "q", "answers": ["x"]}\n', encoding="utf-8")
    with pytest.raises(LongBenchDataError, match=r"trec.jsonl:1: missing field\(s\) context"):
        load_longbench("trec", tmp_path)
    bad.write_text("{not json\n", encoding="utf-8")
    with pytest.raises(LongBenchDataError, match="trec.jsonl:1: not valid JSON"):
        load_longbench("trec", tmp_path)
    with pytest.raises(ValueError, match="tokenizer"):
        longbench_examples("hotpotqa", path=DATA, max_length=100)


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="checks the message without datasets")
def test_without_a_path_or_datasets_the_error_says_to_pass_a_path():
    with pytest.raises(LongBenchDataError, match="pass the directory holding hotpotqa.jsonl"):
        load_longbench("hotpotqa")


def test_longbench_e_names_use_the_base_dataset(tmp_path):
    (tmp_path / "hotpotqa_e.jsonl").write_text((DATA / "hotpotqa.jsonl").read_text(encoding="utf-8"), encoding="utf-8")
    ex = longbench_examples("hotpotqa_e", path=tmp_path)[0]
    assert ex.task == "longbench/hotpotqa_e" and ex.metric == "qa_f1" and ex.max_new_tokens == 32
    with pytest.raises(LongBenchDataError):
        longbench_examples("narrativeqa_e", path=tmp_path)  # not part of LongBench-E
