"""The command line: typer's CliRunner for every command, real subprocesses for exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.eval.tiny_model import save_tiny_model
from windowkv.cli import app
from windowkv.eval.results import RESULTS, SUMMARY_CSV, SUMMARY_JSON, read_rows

runner = CliRunner()
GOOD = "preset: windowkv\nbudget: 0.12\nsharing: {type: groups, group_size: 4}\n"
BAD = ("preset: windowkv\nbudget: 0.12\nsharing: {type: groups, group_size: 0}\n"
       "profiles:\n  qa: {selector: {type: window_maxx}, suffix_size: 32}\ncolour: blue\n")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("cli") / "model")


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


# ---------------------------------------------------------------------------- plugins, validate

def test_plugins_lists_every_component_with_its_distribution():
    result = invoke("plugins")
    assert result.exit_code == 0
    for text in ("scorer", "suffix_attention", "selector", "window_max", "policy", "windowkv", "full"):
        assert text in result.output
    data = json.loads(invoke("plugins", "--json").output)
    rows = {(c["kind"], c["name"]): c for c in data["components"]}
    assert rows[("policy", "windowkv")]["distribution"] == "windowkv"
    assert rows[("selector", "window_average")]["version"]
    assert isinstance(data["failed"], list)


def test_validate_a_good_file(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    result = invoke("validate", str(path))
    assert result.exit_code == 0
    assert "ok" in result.output and "windowkv" in result.output and '"group_size": 4' in result.output


def test_validate_shows_the_stages_after_selection(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("preset: windowkv_no_sharing\nbudget: 0.25\nmerger: nearest_mean\nquantizer: {type: uniform}\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 0
    assert 'merger: {"type": "nearest_mean"}' in result.output and '"bits": 4' in result.output
    assert "channel_pruner" not in result.output


def test_validate_a_bad_file_names_each_field(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(BAD)
    result = invoke("validate", str(path))
    assert result.exit_code == 1
    assert "sharing.group_size" in result.output
    assert "profiles.qa.selector.type" in result.output and "window_max" in result.output  # lists the choices
    assert "colour: unknown field" in result.output
    assert "Traceback" not in result.output


def test_eval_unknown_policy_lists_the_known_ones_exit_2():
    result = invoke("eval", "needle", "--policy", "windowvk")
    assert result.exit_code == 2
    assert "unknown policy 'windowvk'" in result.output and "windowkv" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("args, expected", [
    (["eval", "ruler", "-t", "vtt"], "Did you mean 'vt'"),
    (["eval", "needles"], "unknown task 'needles'"),
    (["eval", "longbench", "-t", "hotpotqaa"], "hotpotqa"),
    (["eval", "longbench"], "pass --task NAME"),
    (["compare", "needle", "-b", "1.5"], "ratio in (0, 1]"),
    (["eval", "needle", "--depths", "0.5,2"], "depths must lie in [0, 1]"),
    (["eval", "needle_prose", "-O", "question"], "--task-option must be KEY=VALUE (got 'question')"),
])
def test_bad_names_and_values_exit_2_before_loading_a_model(args, expected):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_missing_longbench_data_exit_2(model_dir, tmp_path):
    result = invoke("eval", "longbench", "-t", "hotpotqa", "--data", str(tmp_path), "--model", str(model_dir))
    assert result.exit_code == 2
    assert "hotpotqa.jsonl" in result.output


def test_unloadable_model_exit_1(tmp_path):
    result = invoke("eval", "needle", "--model", str(tmp_path / "nowhere"), "--no-progress")
    assert result.exit_code == 1
    assert "cannot load model" in result.output


# ---------------------------------------------------------------------------- eval, compare, report, generate

def test_compare_writes_rows_summary_plots_and_resumes(model_dir, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", "needle", "--model", str(model_dir), "-p", "full", "-p", "windowkv", "-b", "0.25",
            "-b", "64", "--lengths", "200", "--depths", "0,1", "--max-new-tokens", "3", "--out", str(out),
            "--no-progress"]
    result = invoke(*args)
    assert result.exit_code == 0, result.output
    assert "L=200" in result.output and "25%" in result.output and "windowkv" in result.output
    assert len(read_rows(out / RESULTS)) == 6  # 2 examples x (full, windowkv@0.25, windowkv@64)
    assert (out / SUMMARY_JSON).is_file() and (out / SUMMARY_CSV).is_file()
    for name in ("needle_compare.png", "needle_score_vs_budget.png", "needle_heatmap_windowkv_64.png"):
        assert (out / name).stat().st_size > 5000
    again = invoke(*args, "--no-plots")
    assert again.exit_code == 0 and "6 finished rows found" in again.output

    report = invoke("report", str(out), "--markdown", "--no-plots")
    assert report.exit_code == 0
    assert "| policy | budget | L=200 |" in report.output and "| full | 100% |" in report.output


def test_needle_prose_takes_task_options_and_names_bad_ones(model_dir, tmp_path):
    source = tmp_path / "prose.txt"
    source.write_text("The treaty of April 4, 1908, cost $53,000,000 in 17 ports. " * 40 + "\n\nA new part.\n")
    out = tmp_path / "prose"
    args = ["eval", "needle_prose", "--model", str(model_dir), "--policy", "windowkv", "--lengths", "300",
            "--depths", "0.5", "--max-new-tokens", "2", "--out", str(out), "--no-progress", "--no-plots",
            "-O", f"source={source}"]
    result = invoke(*args, "-O", "question=after", "--task-option", "answer_prefix=true")
    assert result.exit_code == 0, result.output
    (row,) = read_rows(out / RESULTS)
    assert row.id == "needle_prose-L300-d0.50-s0-qafter-prefix" and row.task == "needle_prose"
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert summary["config"]["task_options"] == {"source": str(source), "question": "after", "answer_prefix": True}
    for bad, expected in ((["-O", "colour=red"], "task.needle_prose.colour: unknown field"),
                          (["-O", "question=before"], "task.needle_prose.question"),
                          (["--lengths", "9000"], "too short for length 9000: it gives at most")):
        result = invoke(*args, *bad)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "Traceback" not in result.output


def test_prefill_chunk_runs_chunked_and_a_budget_above_the_prompt_answers_like_full(model_dir, tmp_path):
    out = tmp_path / "chunked"
    args = ["compare", "needle", "--model", str(model_dir), "-p", "full", "-p", "snapkv", "-b", "4096",
            "--lengths", "200", "--depths", "0.5", "--max-new-tokens", "4", "--out", str(out), "--no-progress",
            "--no-plots"]
    result = invoke(*args, "--prefill-chunk", "64")
    assert result.exit_code == 0, result.output
    rows = {r.policy: r for r in read_rows(out / RESULTS)}
    assert rows["snapkv"].prefill_chunk == 64 and rows["snapkv"].prediction == rows["full"].prediction
    assert json.loads((out / SUMMARY_JSON).read_text())["config"]["prefill_chunk"] == 64
    for bad, expected in ((["-p", "h2o", "--prefill-chunk", "64"], "h2o"),
                          (["--prefill-chunk", "64", "--shared-prefill"], "cannot combine with prefill_chunk")):
        result = invoke("eval", "needle", "--model", str(model_dir), "--lengths", "200", "--no-progress",
                        "--out", str(tmp_path / "bad"), *bad)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "Traceback" not in result.output


def test_eval_one_policy_with_a_config_file_and_seed(model_dir, tmp_path):
    config = tmp_path / "g4.toml"
    config.write_text('preset = "windowkv"\nbudget = 0.5\n[sharing]\ntype = "groups"\ngroup_size = 4\n')
    out = tmp_path / "ev"
    result = invoke("eval", "needle", "--model", str(model_dir), "--policy", str(config), "--lengths", "200",
                    "--depths", "0.5", "--max-new-tokens", "2", "--seed", "3", "--out", str(out), "--no-progress",
                    "--no-plots")
    assert result.exit_code == 0, result.output
    (row,) = read_rows(out / RESULTS)
    assert (row.policy, row.budget, row.seed) == ("g4", "0.5", 3)
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert summary["config"]["seeds"] == [3] and summary["config"]["command"] == "eval" and summary["variants"][0]["config"]["sharing"]["group_size"] == 4


def test_generate_shows_the_kept_cache_of_every_layer(model_dir):
    result = invoke("generate", "--needle-length", "300", "--model", str(model_dir), "--policy", "windowkv",
                    "--budget", "32", "--max-new-tokens", "3")
    assert result.exit_code == 0, result.output
    assert "kept KV cache per layer" in result.output
    assert "task profile: qa" in result.output
    # budget 32 review tokens per layer on average + suffix 32; 2 layers
    lines = [line for line in result.output.splitlines() if line.strip().startswith(("│ 0 ", "│ 1 ", "│ all"))]
    assert len(lines) == 3
    assert "prefill" in result.output and "decode" in result.output


def test_generate_needs_exactly_one_prompt(model_dir):
    result = invoke("generate", "hello", "--needle-length", "300", "--model", str(model_dir))
    assert result.exit_code == 2 and "exactly one of PROMPT" in result.output


# ---------------------------------------------------------------------------- real processes

@pytest.fixture(scope="module")
def real_runs(tmp_path_factory):
    """Three real processes started together (each pays the torch import): validate good/bad, plugins."""
    tmp = tmp_path_factory.mktemp("real")
    good, bad = tmp / "good.json", tmp / "bad.yaml"
    good.write_text(json.dumps({"preset": "windowkv", "budget": 256}))
    bad.write_text(BAD)
    script = Path(sys.executable).parent / "windowkv"
    console = [str(script)] if script.exists() else [sys.executable, "-m", "windowkv"]
    commands = {
        "good": [*console, "validate", str(good)],
        "bad": [sys.executable, "-m", "windowkv", "validate", str(bad)],
        "plugins": [*console, "plugins", "--json"],
    }
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = {k: subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for k, c in commands.items()}
    results = {}
    for key, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=180)
        results[key] = subprocess.CompletedProcess(commands[key], proc.returncode, stdout, stderr)
    return results


def test_validate_exit_codes_in_a_real_process(real_runs):
    ok, failed = real_runs["good"], real_runs["bad"]
    assert ok.returncode == 0, ok.stderr
    assert "ok" in ok.stdout and "256 tokens" in ok.stdout
    assert failed.returncode == 1
    assert "sharing.group_size" in failed.stderr and "colour: unknown field" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_validate_missing_file_exit_1(tmp_path):
    result = invoke("validate", str(tmp_path / "missing.yaml"))
    assert result.exit_code == 1 and "cannot read the file" in result.output


def test_plugins_in_a_real_process(real_runs):
    proc = real_runs["plugins"]
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    names = {(c["kind"], c["name"]) for c in data["components"]}
    assert {("policy", "windowkv"), ("policy", "full"), ("scorer", "suffix_attention")} <= names
    # the set-up installs no test fixture: nothing fails to load, nothing warns the user
    assert data["failed"] == [] and "Warning" not in proc.stderr, proc.stderr


def test_eval_ruler_tasks_and_longbench_files_on_a_tiny_model(model_dir, tmp_path):
    ruler = invoke("eval", "ruler", "-t", "vt", "-t", "niah_single", "--model", str(model_dir), "--lengths", "300",
                   "--max-new-tokens", "2", "--out", str(tmp_path / "ruler"), "--no-progress", "--no-plots")
    assert ruler.exit_code == 0, ruler.output
    assert {r.task for r in read_rows(tmp_path / "ruler" / RESULTS)} == {"ruler/vt", "ruler/niah_single"}
    data = Path(__file__).parent / "eval" / "fixtures" / "longbench"
    longbench = invoke("eval", "longbench", "-t", "hotpotqa", "--data", str(data), "--model", str(model_dir),
                       "--max-new-tokens", "2", "--device-map", "auto", "--out", str(tmp_path / "lb"),
                       "--no-progress", "--no-plots")
    assert longbench.exit_code == 0, longbench.output
    rows = read_rows(tmp_path / "lb" / RESULTS)
    assert rows and all(r.task == "longbench/hotpotqa" and r.metric == "qa_f1" for r in rows)
    assert all(r.length is None and "source_length" in r.model_fields_set for r in rows)
    assert all(r.source_length is not None and not r.model_extra for r in rows)
    summary = json.loads((tmp_path / "lb" / SUMMARY_JSON).read_text())
    assert summary["config"]["device_map"] == "auto" and summary["config"]["max_length"] == 1024 - 512


@pytest.mark.parametrize("command", ["eval_cmd", "compare"])
def test_eval_and_compare_options_are_exactly_the_evalspec_fields(command):
    import inspect

    from windowkv import cli
    from windowkv.eval.spec import EvalSpec

    options = inspect.signature(getattr(cli, command)).parameters
    fields = {cli._SPEC_FIELD.get(name, name) for name in options}
    assert fields == set(EvalSpec.model_fields) - {"command"}
