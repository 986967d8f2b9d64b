"""Data-parallel evaluation: sharding, and a real 2-process gloo run under torchrun on a tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.eval.tiny_model import save_tiny_model
from windowkv.eval.distributed import DistContext
from windowkv.eval.results import RESULTS, SUMMARY_JSON, read_rows


def test_single_process_context_without_a_launcher(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    ctx = DistContext.from_env()
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    ctx.barrier()  # a no-op
    assert ctx.shard(list(range(5))) == [0, 1, 2, 3, 4]
    assert ctx.device("cuda") == "cuda"


def test_rank_r_takes_items_i_mod_world_equal_r():
    items = list(range(7))
    shards = [DistContext(rank=r, world_size=3).shard(items) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert sorted(sum(shards, [])) == items
    assert DistContext(rank=1, world_size=2, local_rank=1).device("cuda") == "cuda:1"
    assert DistContext(rank=1, world_size=2, local_rank=1).device("cpu") == "cpu"


def _torchrun(model, out, *extra):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WINDOWKV_DISABLE_PLUGIN_AUTOLOAD": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "windowkv", "compare", "needle", "--model", str(model), "-p", "full", "-p", "windowkv",
           "-b", "0.25", "--lengths", "200", "--depths", "0,0.5,1", "--max-new-tokens", "3", "--out", str(out),
           "--no-progress", "--no-plots", *extra]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # two torchrun launches of two processes each: ~45 s on 2 shared cores
def test_two_gloo_processes_shard_examples_and_rank0_merges(tmp_path):
    model = save_tiny_model(tmp_path / "model")
    out = tmp_path / "run"
    proc = _torchrun(model, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_rows(out / RESULTS)
    assert len(rows) == 6  # 3 examples x (full, windowkv@0.25)
    assert not list(out.glob("results.rank*.jsonl"))  # merged, then removed
    by_rank = {}
    for r in rows:
        by_rank.setdefault(r.rank, set()).add(r.id)
    assert by_rank == {0: {"needle-L200-d0.00-s0", "needle-L200-d1.00-s0"}, 1: {"needle-L200-d0.50-s0"}}
    summary = json.loads((out / SUMMARY_JSON).read_text())
    assert summary["world_size"] == 2 and summary["rows"] == 6
    assert proc.stdout.count("windowkv") >= 1 and proc.stdout.count("policy") == 1  # rank 0 prints one table

    again = _torchrun(model, out)  # resume: nothing left to compute
    assert again.returncode == 0, again.stderr[-3000:]
    assert "6 finished rows found" in again.stderr
    assert read_rows(out / RESULTS) == rows
