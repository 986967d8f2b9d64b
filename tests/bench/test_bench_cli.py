"""``windowkv bench`` end to end on a tiny model saved to disk (typer's CliRunner)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.eval.tiny_model import save_tiny_model
from windowkv.cli import app

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_torch_thread")
ROW_FIELDS = {"variant", "policy", "budget", "length", "new_tokens", "memory_method", "prefill_seconds",
              "decode_tokens_per_s", "kv_bytes", "peak_memory_bytes", "prefill_ratio", "decode_ratio",
              "kv_bytes_ratio", "peak_memory_ratio", "compress_seconds", "compress_ratio"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("bench") / "model", max_positions=512)


def invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_bench_two_policies_two_lengths_writes_json_and_png(model_dir, tmp_path):
    target = tmp_path / "out" / "bench.json"
    result = invoke("bench", "-m", str(model_dir), "-p", "full", "-p", "snapkv", "-b", "48", "-L", "96,160",
                    "--repeats", "1", "--warmup", "0", "--new-tokens", "3", "--json", str(target))
    assert result.exit_code == 0, result.output
    assert "plain (reference)" in result.output and "snapkv@48" in result.output
    data = json.loads(target.read_text())
    rows = data["rows"]
    assert [(r["length"], r["variant"]) for r in rows] == [
        (96, "plain"), (96, "full@1"), (96, "snapkv@48"), (160, "plain"), (160, "full@1"), (160, "snapkv@48")]
    for row in rows:
        assert set(row) == ROW_FIELDS
        assert row["prefill_seconds"]["n"] == 1 and row["prefill_seconds"]["median"] > 0
        assert row["new_tokens"] == 3
    full, snap = rows[4], rows[5]
    assert full["kv_bytes"]["median"] == rows[3]["kv_bytes"]["median"]  # full keeps everything
    assert snap["kv_bytes"]["median"] < full["kv_bytes"]["median"]
    assert data["environment"]["settings"]["lengths"] == [96, 160]
    assert data["environment"]["policies"][1]["name"] == "snapkv"
    png = target.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_shared_prefill_times_the_compression_and_holds_the_same_bytes(model_dir, tmp_path):
    """One plain prefill per round replayed under each policy: the caches hold exactly the bytes of an
    ordinary run, the policies' compression is timed on its own and related to the plain prefill."""
    common = ["bench", "-m", str(model_dir), "-p", "snapkv", "-p", "windowkv_int4", "-b", "48", "-L", "128",
              "--repeats", "2", "--warmup", "1", "--new-tokens", "3"]
    ordinary, shared = tmp_path / "ordinary.json", tmp_path / "shared.json"
    assert invoke(*common, "--json", str(ordinary)).exit_code == 0
    result = invoke(*common, "--shared-prefill", "--json", str(shared))
    assert result.exit_code == 0, result.output
    assert "compress s" in result.output and "% prefill" in result.output
    by_variant = {r["variant"]: r for r in json.loads(shared.read_text())["rows"]}
    for row in json.loads(ordinary.read_text())["rows"]:
        assert by_variant[row["variant"]]["kv_bytes"]["median"] == row["kv_bytes"]["median"]
    plain = by_variant["plain"]
    assert plain["prefill_seconds"]["n"] == 2 and plain["compress_seconds"] is None
    for name in ("snapkv@48", "windowkv_int4@48"):
        row = by_variant[name]
        assert row["prefill_seconds"] is None and row["peak_memory_bytes"] is None
        assert row["compress_seconds"]["n"] == 2 and row["compress_seconds"]["min"] > 0
        assert row["compress_ratio"] == pytest.approx(
            row["compress_seconds"]["median"] / plain["prefill_seconds"]["median"])
        assert row["decode_tokens_per_s"]["median"] > 0
    assert json.loads(shared.read_text())["environment"]["settings"]["shared_prefill"] is True
    assert shared.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unknown_policy_lists_the_registered_ones_exit_2():
    result = invoke("bench", "-p", "snapvk")
    assert result.exit_code == 2
    assert "snapkv" in result.output and "windowkv" in result.output
    assert "Traceback" not in result.output


def test_length_beyond_the_context_is_a_clear_error(model_dir):
    result = invoke("bench", "-m", str(model_dir), "-p", "snapkv", "-L", "1k", "--new-tokens", "4")
    assert result.exit_code == 2
    assert "prompt length 1024 + 4 new tokens exceeds the model's context of 512 positions" in result.output
    assert "Traceback" not in result.output


def test_bad_length_is_a_usage_error():
    result = invoke("bench", "-L", "1k,lots")
    assert result.exit_code == 2 and "'lots'" in result.output
