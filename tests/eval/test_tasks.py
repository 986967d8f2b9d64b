"""The task registry: names, errors with suggestions, one calling convention for every task."""

from __future__ import annotations

from pathlib import Path

import pytest

from windowkv.errors import ConfigError, UnknownComponentError
from windowkv.eval import TASKS, build_examples, expand_tasks, get_task, task_names
from windowkv.eval.longbench import LONGBENCH_DATASETS, LONGBENCH_E_DATASETS
from windowkv.eval.ruler import RULER_TASKS

DATA = Path(__file__).parent / "fixtures" / "longbench"
COMMON = dict(lengths=[700], depths=[0.0, 1.0], num_examples=1, seed=0, data_path=DATA, max_length=None)


def test_registry_holds_every_task():
    names = task_names()
    assert names[:2] == ["needle", "needle_prose"]
    assert {f"ruler/{n}" for n in RULER_TASKS} <= set(names)
    assert {f"longbench/{d}" for d in LONGBENCH_DATASETS} <= set(names)
    assert {f"longbench/{d}_e" for d in LONGBENCH_E_DATASETS} <= set(names)
    lifecycle = {"long/list_records", "scbench/kv"}  # long-answer and multi-turn tasks (windowkv.eval.long_answer, .multiturn)
    assert lifecycle <= set(names)
    assert len(names) == 2 + len(lifecycle) + len(RULER_TASKS) + len(LONGBENCH_DATASETS) + len(LONGBENCH_E_DATASETS)
    assert all(TASKS[n].name == n and TASKS[n].description for n in names)


def test_unknown_names_get_a_suggestion_and_the_list():
    with pytest.raises(UnknownComponentError, match="Did you mean 'ruler/niah_single'") as info:
        get_task("ruler/niah_singel")
    assert "longbench/hotpotqa" in str(info.value)
    with pytest.raises(KeyError, match="Did you mean 'needle'"):
        get_task("needles")


def test_expand_families_globs_and_lists():
    assert expand_tasks("ruler") == [f"ruler/{n}" for n in RULER_TASKS]
    assert len(expand_tasks("longbench")) == len(LONGBENCH_DATASETS)
    assert expand_tasks("needle, ruler/niah_*,needle") == ["needle", "ruler/niah_single", "ruler/niah_multikey",
                                                           "ruler/niah_multivalue", "ruler/niah_multiquery"]
    assert expand_tasks(["longbench/*_e"]) == [f"longbench/{d}_e" for d in LONGBENCH_E_DATASETS]
    with pytest.raises(UnknownComponentError, match="Did you mean"):
        expand_tasks("rular/vt")


def test_every_synthetic_task_takes_the_same_arguments(tokenizer):
    for name in ["needle", *expand_tasks("ruler")]:
        examples = get_task(name)(tokenizer=tokenizer, **COMMON)
        expected = 2 if name == "needle" else 1  # depths only matter to the needle grid
        assert len(examples) == expected and all(e.task == name for e in examples)
        assert all(e.prompt_tokens <= 700 for e in examples)


def test_longbench_tasks_read_the_data_path_and_need_no_tokenizer():
    examples = build_examples("longbench/hotpotqa", **COMMON)
    assert [e.meta["_id"] for e in examples] == ["hp-001", "hp-002"]


def test_limit_and_num_examples(tokenizer):
    assert len(get_task("needle")(tokenizer=tokenizer, lengths=[300], depths=[0.5], num_examples=3)) == 3
    assert len(get_task("needle")(tokenizer=tokenizer, lengths=[300], depths=[0.5], num_examples=3, limit=2)) == 2
    assert len(build_examples("longbench/hotpotqa", data_path=DATA, limit=1)) == 1
    with pytest.raises(ValueError, match="limit"):
        get_task("needle")(tokenizer=tokenizer, limit=-1)


def test_task_options_pass_through_and_unknown_ones_are_named(tokenizer):
    e = get_task("ruler/vt")(tokenizer=tokenizer, lengths=[400], num_hops=2)[0]
    assert len(e.answers) == 3
    e = get_task("needle")(tokenizer=tokenizer, lengths=[300], depths=[0.5], answer_prefix=False)[0]
    assert e.answer_prefix == ""
    with pytest.raises(ConfigError, match=r"task.ruler/vt.num_hop: unknown field; allowed fields: .*num_hops"):
        get_task("ruler/vt")(tokenizer=tokenizer, lengths=[400], num_hop=2)
    with pytest.raises(ConfigError, match=r"task.longbench/trec.answer_prefix: unknown field"):
        get_task("longbench/trec")(data_path=DATA, answer_prefix=False)
    with pytest.raises(ConfigError, match=r"task.needle.max_new_tokens"):
        get_task("needle").with_options(max_new_tokens=0)


def test_synthetic_tasks_need_a_tokenizer():
    with pytest.raises(ValueError, match="needs the model's tokenizer"):
        get_task("ruler/cwe")(lengths=[400])
