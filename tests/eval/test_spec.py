"""EvalSpec: one validated description of a run, from which the CLI commands are built."""

from __future__ import annotations

from pathlib import Path

import pytest

from windowkv.errors import ConfigError, UnknownComponentError
from windowkv.eval.spec import EvalSpec, default_policies

DATA = Path(__file__).parent / "fixtures" / "longbench"


def test_defaults_describe_a_compare_run():
    spec = EvalSpec()
    assert (spec.command, spec.task, spec.seeds, spec.budget_specs()) == ("compare", "needle", [0], ["0.12", "0.25"])
    assert spec.policy_specs() == default_policies() and spec.policy_specs()[:2] == ["full", "windowkv"]
    assert spec.out_dir() == Path("runs/compare-needle")


def test_eval_is_compare_with_one_policy_and_one_budget():
    spec = EvalSpec(command="eval", policies=["snapkv"], budgets=["64"])
    assert [v.name for v in spec.variants()] == ["snapkv@64"]
    assert [v.name for v in EvalSpec(command="eval", policies=["snapkv"]).variants()] == ["snapkv@0.25"]
    with pytest.raises(ConfigError, match="eval runs one policy at one budget"):
        EvalSpec.of(command="eval", policies=["snapkv", "full"])
    with pytest.raises(ConfigError, match="eval runs one policy at one budget"):
        EvalSpec.of(command="eval", policies=["snapkv"], budgets=["64", "0.5"])


def test_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"depths: .*\[0, 1\]"):
        EvalSpec.of(depths=[0.5, 1.5])
    with pytest.raises(ConfigError, match=r"num_examples"):
        EvalSpec.of(num_examples=0)
    with pytest.raises(ConfigError, match=r"colour: unknown field"):
        EvalSpec.of(colour="blue")


def test_task_resolution_lives_in_the_spec():
    assert EvalSpec(task="ruler", subtasks=["vt", "cwe"]).task_names() == ["ruler/vt", "ruler/cwe"]
    assert EvalSpec(task="needle, ruler/niah_*").task_names()[:2] == ["needle", "ruler/niah_single"]
    assert set(EvalSpec(task="longbench", data=DATA).task_names()) >= {"longbench/hotpotqa", "longbench/trec"}
    with pytest.raises(UnknownComponentError, match="Did you mean 'vt'"):
        EvalSpec(task="ruler", subtasks=["vtt"]).task_names()
    with pytest.raises(ConfigError, match="needle has no sub-tasks"):
        EvalSpec(task="needle", subtasks=["x"]).task_names()
    with pytest.raises(ConfigError, match="--data"):
        EvalSpec(task="longbench").task_names()


def test_the_dump_round_trips():
    spec = EvalSpec(command="compare", task="ruler", subtasks=["vt"], policies=["full", "snapkv"], budgets=["0.5"],
                    lengths=[512], seeds=[1, 2], data=DATA, out=Path("runs/x"))
    dumped = spec.model_dump(mode="json")
    assert dumped["seeds"] == [1, 2] and dumped["data"] == str(DATA)
    assert EvalSpec.model_validate(dumped) == spec


def test_several_seeds_give_their_own_examples(tokenizer):
    from windowkv.eval.spec import build_spec_examples

    spec = EvalSpec(task="needle", lengths=[300], depths=[0.5], seeds=[0, 1])
    examples, failures = build_spec_examples(spec, spec.task_names(), tokenizer)
    assert [e.id for e in examples] == ["needle-L300-d0.50-s0", "needle-L300-d0.50-s1"] and not failures
