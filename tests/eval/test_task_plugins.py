"""Tasks and metrics are components: every registered one keeps its contract, a plugin adds one with a hook,
and a task that breaks while building its examples is reported with its traceback while the others run."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from windowkv.errors import ConfigError, UnknownComponentError
from windowkv.eval import get_task, score_example
from windowkv.eval.tasks import TaskFailureWarning, build_task_examples, task_names
from windowkv.plugins import default_registries
from windowkv.testing import check_metric_contract, check_task_contract

DATA = Path(__file__).parent / "fixtures" / "longbench"
BROKEN_TASK = '''
from typing import ClassVar

import windowkv
from windowkv.eval.tasks import Task


class ExplodingTask(Task):
    name: ClassVar[str] = "exploding"
    description: ClassVar[str] = "raises while building its examples"
    needs_tokenizer: ClassVar[bool] = False

    def examples(self, *, seed: int):
        return [1 / 0]


@windowkv.hookimpl
def windowkv_register_tasks():
    return [ExplodingTask]
'''


def _synthetic() -> list[str]:
    return [n for n in task_names() if not n.startswith("longbench/")]


@pytest.mark.parametrize("name", _synthetic())
def test_every_synthetic_task_keeps_the_task_contract(name, tokenizer):
    check_task_contract(get_task(name), tokenizer=tokenizer, lengths=[700], depths=[0.5], num_examples=2)


@pytest.mark.parametrize("name", ["longbench/hotpotqa", "longbench/trec", "longbench/samsum"])
def test_longbench_tasks_keep_the_task_contract(name):
    check_task_contract(get_task(name), data_path=DATA)


@pytest.mark.parametrize("name", default_registries()["metric"].names())
def test_every_metric_keeps_the_metric_contract(name):
    check_metric_contract(default_registries()["metric"].get(name)())


def test_every_example_metric_is_registered(tokenizer):
    metrics = default_registries()["metric"]
    for name in _synthetic():
        for example in get_task(name)(tokenizer=tokenizer, lengths=[700], depths=[0.5]):
            assert all(m in metrics for m in example.metrics)


def test_task_names_may_carry_a_family_but_nothing_else():
    from windowkv.registry import Registry

    registry = Registry("task")
    registry.add("ruler/vt", object, "p")
    registry.add("longbench/repobench-p", object, "p")
    for bad in ("Ruler/vt", "a/b/c", "/vt", "needle prose"):
        with pytest.raises(ValueError, match="names must match"):
            registry.add(bad, object, "p")
    with pytest.raises(ValueError, match="names must match"):
        Registry("scorer").add("ruler/vt", object, "p")  # other kinds keep the plain pattern


def test_task_options_are_validated_fields_with_their_path():
    needle = get_task("needle").with_options(answer_prefix=False, max_new_tokens=8)
    assert needle.to_config() == {"type": "needle", "answer_prefix": False, "max_new_tokens": 8}
    with pytest.raises(ConfigError, match=r"task.ruler/niah_single.haystack: .*'essay', 'noise' or 'needle'"):
        get_task("ruler/niah_single").with_options(haystack="prose")


def test_the_example_task_plugin_registers_a_task_and_a_metric(example_task_plugin, tokenizer):
    name, version = example_task_plugin
    registries = default_registries()
    entry = registries["task"].entry("kv_retrieval")
    assert (entry.distribution, entry.version) == (name, version)
    assert registries["metric"].entry("value_exact").distribution == name
    (example,) = get_task("kv_retrieval")(tokenizer=tokenizer, lengths=[300], depth=0.0)
    assert example.metric == "value_exact" and example.depth == 0.0
    assert score_example(example, f" {example.answers[0]}\n") == {"value_exact": 1.0}
    result = CliRunner().invoke(__import__("windowkv.cli", fromlist=["app"]).app, ["tasks"])
    assert "kv_retrieval" in result.output and name in result.output


def test_a_task_that_raises_is_reported_with_its_traceback_and_the_others_build(add_distribution, tokenizer):
    add_distribution("windowkv-exploding-task", "0.2.0", {"exploding": "windowkv_exploding_task"},
                     modules={"windowkv_exploding_task": BROKEN_TASK})
    with pytest.warns(TaskFailureWarning, match="exploding"):
        built = build_task_examples(["exploding", "needle"], tokenizer=tokenizer, lengths=[300], depths=[0.5])
    assert [e.task for e in built.examples] == ["needle"]
    (failure,) = built.failures
    assert failure.task == "exploding" and failure.provider == "windowkv-exploding-task 0.2.0"
    assert failure.error.startswith("ZeroDivisionError") and "1 / 0" in failure.traceback


def test_windowkvs_own_errors_are_not_task_failures(tokenizer):
    with pytest.raises(UnknownComponentError, match="Did you mean 'needle'"):
        build_task_examples(["needles"], tokenizer=tokenizer)
    with pytest.raises(ConfigError, match="tokenizer"):
        build_task_examples(["ruler/vt"], tokenizer=None)


def test_the_cli_runs_the_other_tasks_and_shows_the_traceback(add_distribution, tmp_path):
    from tests.eval.tiny_model import save_tiny_model
    from windowkv.cli import app
    from windowkv.eval.results import read_rows

    add_distribution("windowkv-exploding-task", "0.2.0", {"exploding": "windowkv_exploding_task"},
                     modules={"windowkv_exploding_task": BROKEN_TASK})
    model = save_tiny_model(tmp_path / "model")
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["compare", "exploding,needle", "-p", "full", "--model", str(model),
                                      "--lengths", "200", "--depths", "0.5", "--max-new-tokens", "2", "--out",
                                      str(out), "--no-progress", "--no-plots"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "task exploding failed" in result.output and "ZeroDivisionError" in result.output
    assert "Traceback" in result.output
    assert {r.task for r in read_rows(out / "results.jsonl")} == {"needle"}


def test_the_example_task_plugins_own_tests_pass(example_task_plugin):
    """plugins/windowkv-example-task/tests, run here with the distribution installed by the fixture."""
    import runpy

    from tests.conftest import EXAMPLE_TASK_PLUGIN_SOURCE

    tests = runpy.run_path(str(EXAMPLE_TASK_PLUGIN_SOURCE / "tests" / "test_kv_retrieval.py"))
    ran = [name for name, fn in tests.items() if name.startswith("test_") and callable(fn) and fn() is None]
    assert len(ran) == 3
