"""The benchmark grid on a tiny random-weight model: bytes held, ratios to the plain model, prompts."""

from __future__ import annotations

import pytest
import torch

from tests.eval.conftest import train_tokenizer
from tests.hf.conftest import tiny_model
from windowkv.bench import REFERENCE, BenchSettings, Sample, bench_prompt, measure_generation, run_bench, summarize
from windowkv.errors import UsageError
from windowkv.eval.variants import make_variants

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LAYERS, KV_HEADS, HEAD_DIM = 4, 2, 16  # tiny_model's geometry
TOKEN_BYTES = LAYERS * 2 * KV_HEADS * HEAD_DIM * 4  # keys + values of one token in every layer, float32


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer()


@pytest.fixture(scope="module")
def model():
    return tiny_model("llama", layers=LAYERS, vocab_size=1024)


def test_prompts_have_exact_lengths_and_are_deterministic(tokenizer):
    for length in (1, 50, 200, 333):
        ids = bench_prompt(tokenizer, length, seed=3)
        assert ids.shape == (1, length) and ids.dtype == torch.long
        assert torch.equal(ids, bench_prompt(tokenizer, length, seed=3))
    assert not torch.equal(bench_prompt(tokenizer, 200, seed=0), bench_prompt(tokenizer, 200, seed=1))


def test_bytes_held_are_those_of_the_kept_tokens(model, tokenizer):
    """Plain model: every prompt token in every layer; snapkv at 64 tokens: 64 review tokens + the suffix."""
    (variant,) = make_variants(["snapkv"], ["64"])
    suffix = next(iter(variant.policy.profiles.values())).suffix_size
    rows = run_bench(model, tokenizer, [variant], BenchSettings((200,), new_tokens=4, repeats=1, warmup=0))
    plain, snap = rows
    assert plain["variant"] == REFERENCE and snap["variant"] == "snapkv@64"
    assert plain["kv_bytes"]["median"] == 200 * TOKEN_BYTES
    assert snap["kv_bytes"]["median"] == (64 + suffix) * TOKEN_BYTES
    assert snap["kv_bytes_ratio"] == pytest.approx((64 + suffix) / 200)
    # the same number as the policy's own record of the run (what evaluation rows report)
    ids = bench_prompt(tokenizer, 200)
    with variant.policy.apply(model, tokenizer) as handle:
        sample = measure_generation(model, ids, 4)
    assert sample.kv_bytes == handle.last_run.kv_nbytes


def test_generates_exactly_new_tokens_and_times_are_positive(model, tokenizer):
    sample = measure_generation(model, bench_prompt(tokenizer, 64), 6)
    assert sample.new_tokens == 6  # EOS suppressed
    assert sample.prefill_seconds > 0 and sample.decode_tokens_per_s > 0


def _sample(prefill: float, decode: float, kv: int) -> Sample:
    return Sample(prefill, decode, kv, None, None, 4)


def test_summary_uses_medians_and_divides_by_the_reference_at_the_same_length():
    (variant,) = make_variants(["snapkv"], ["64"])
    samples = [(100, None, _sample(p, 10.0, 1000)) for p in (1.0, 2.0, 3.0)]
    samples += [(100, variant, _sample(p, d, 250)) for p, d in ((2.0, 30.0), (4.0, 20.0), (100.0, 10.0))]
    samples += [(50, None, _sample(0.5, 20.0, 500)), (50, variant, _sample(0.25, 40.0, 250))]
    rows = summarize(samples)
    assert [(r["length"], r["variant"]) for r in rows] == [(50, "plain"), (50, "snapkv@64"), (100, "plain"),
                                                          (100, "snapkv@64")]
    snap100 = rows[3]
    assert snap100["prefill_seconds"]["median"] == 4.0  # not the mean (35.3)
    assert snap100["prefill_ratio"] == 2.0 and snap100["decode_ratio"] == 2.0 and snap100["kv_bytes_ratio"] == 0.25
    assert rows[1]["prefill_ratio"] == 0.5 and rows[1]["decode_ratio"] == 2.0
    assert snap100["peak_memory_bytes"] is None and snap100["peak_memory_ratio"] is None
    assert (snap100["policy"], snap100["budget"]) == ("snapkv", "64")


def test_a_length_beyond_the_context_is_refused_before_running(tokenizer):
    model = tiny_model("llama", layers=2, vocab_size=1024, max_position_embeddings=256)
    with pytest.raises(UsageError, match="exceeds the model's context of 256 positions; the longest prompt is 248"):
        run_bench(model, tokenizer, [], BenchSettings((100, 250), new_tokens=8, repeats=1, warmup=0))
