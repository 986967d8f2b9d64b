"""Compression overhead and decode speed from one shared prefill per round (``windowkv bench --shared-prefill``).

What a policy adds to a prefill is the work of its hooks after each layer's attention: classify the prompt,
score, select, gather the kept slots (and quantize, merge or prune them). At 8k tokens the plain prefill of
the embedded model takes a minute on a CPU and that work a fraction of a second, so the difference of two
times to first token drowns in the prefill's own noise. Here each round runs the prompt once without windowkv
(:func:`~windowkv.eval.shared_prefill.capture_prefill`, timed: the plain prefill), replays it under every
policy (:func:`~windowkv.eval.shared_prefill.replay_prefill`: the policy's hooks in the order of a real
forward pass, timed: the compression), then decodes from each resulting cache (timed by the same
:class:`~windowkv.bench.clock.StepClock` as an ordinary run). The plain reference decodes from the
uncompressed cache of the same prefill.

Not included: the per-layer call of windowkv's attention function during a real prefill (a Python wrapper
around the model's own sdpa or eager call) and the memory of a real prefill; ``windowkv bench`` without
``--shared-prefill`` measures those end to end.
"""

from __future__ import annotations

import gc
import time
from typing import Any, Iterator, Sequence

import torch

from windowkv.bench.clock import StepClock
from windowkv.bench.measure import Sample, exact_length_config, new_cache
from windowkv.cache.nbytes import cache_nbytes
from windowkv.eval.measure import cache_argument
from windowkv.eval.shared_prefill import CapturedPrefill, capture_prefill, replay_prefill


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_capture(model: Any, input_ids: torch.Tensor) -> tuple[CapturedPrefill, float]:
    """The plain prefill of ``input_ids`` ``[1, L]`` (no windowkv hook) and its seconds."""
    device = model.device
    gc.collect()
    _sync(device)
    start = time.perf_counter()
    captured = capture_prefill(model, input_ids.to(device))
    _sync(device)
    return captured, time.perf_counter() - start


def plain_cache(model: Any, captured: CapturedPrefill) -> Any:
    """An uncompressed ``DynamicCache`` holding the captured prefill's keys and values (``update``
    concatenates, so the cache holds copies and decoding leaves the captured tensors as they are)."""
    cache = new_cache(model)
    for idx, (keys, values) in enumerate(zip(captured.keys, captured.values)):
        cache.update(keys, values, idx)
    return cache


def decode_from(model: Any, captured: CapturedPrefill, cache: Any, new_tokens: int) -> float | None:
    """Greedy decode of ``new_tokens`` tokens after the captured prefill's first token, on ``cache`` (which
    holds the prompt); decode forwards per second between the first and the last step's logits."""
    from transformers import LogitsProcessorList

    first = captured.first_logits.argmax(-1, keepdim=True).to(captured.input_ids.device)  # [1, 1]
    ids = torch.cat([captured.input_ids, first], dim=-1)
    config = exact_length_config(model, new_tokens)
    clock = StepClock(model.device)
    clock.start()
    with torch.no_grad():
        model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), generation_config=config,
                       logits_processor=LogitsProcessorList([clock]), **cache_argument(model, cache))
    return clock.decode_tokens_per_s()


def measure_replay(model: Any, tokenizer: Any, variant: Any, captured: CapturedPrefill, prefill_seconds: float,
                   new_tokens: int) -> Sample:
    """One sample from a captured prefill: the reference (``variant`` ``None``) decodes from the plain
    cache and carries ``prefill_seconds``; a variant replays the prefill under its policy (timed:
    ``compress_seconds``) and decodes from the compressed cache (its ``prefill_seconds`` is ``None``)."""
    device = model.device
    if variant is None:
        cache = plain_cache(model, captured)
        held = cache_nbytes(cache)
        decode = decode_from(model, captured, cache, new_tokens)
        return Sample(prefill_seconds, decode, held, None, None, new_tokens)
    with variant.policy.apply(model, tokenizer) as handle:
        gc.collect()
        _sync(device)
        start = time.perf_counter()
        with torch.no_grad():
            cache = replay_prefill(handle, model, captured)
        _sync(device)
        compress = time.perf_counter() - start
        held = cache_nbytes(cache)
        decode = decode_from(model, captured, cache, new_tokens)
    return Sample(None, decode, held, None, None, new_tokens, compress_seconds=compress)


def iter_replay_samples(model: Any, tokenizer: Any, variants: Sequence[Any], ids_of: Any, settings: Any
                        ) -> Iterator[tuple[int, Any, Sample]]:
    """``(length, variant or None, sample)``: per length, ``warmup`` untimed rounds then ``repeats`` timed
    rounds; each round captures one plain prefill and measures the reference and every variant on it."""
    for length in settings.lengths:
        ids = ids_of(length)
        for round_ in range(settings.warmup + settings.repeats):
            captured, seconds = timed_capture(model, ids)
            for variant in (None, *variants):
                sample = measure_replay(model, tokenizer, variant, captured, seconds, settings.new_tokens)
                if round_ >= settings.warmup:
                    yield length, variant, sample
            del captured
