"""The benchmark grid: policies x budgets x prompt lengths, each measured against the plain model.

For each prompt length, the reference (:data:`REFERENCE`: the model without windowkv, i.e. transformers'
own cache and attention) and every variant are first run ``warmup`` times untimed, then ``repeats``
rounds follow, each round measuring every variant once in turn: drift of a shared machine's load then
affects all variants alike instead of whichever ran last. One row per (variant, length) summarises its
samples (:func:`windowkv.bench.stats.spread`) and divides its medians by the reference's.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

from windowkv.bench.measure import Sample, measure_generation
from windowkv.bench.prompts import bench_prompt
from windowkv.bench.stats import ratio, spread
from windowkv.errors import UsageError

#: the label of the reference rows: the model without any windowkv hook (its plain KV cache)
REFERENCE = "plain"
#: the metrics of a row, with their units; each is a :class:`~windowkv.bench.stats.Spread` in the JSON
METRICS = {
    "prefill_seconds": "s",
    "decode_tokens_per_s": "tokens/s",
    "kv_bytes": "bytes",
    "peak_memory_bytes": "bytes",
    "compress_seconds": "s",
}


@dataclass(frozen=True)
class BenchSettings:
    """What to measure.

    Attributes:
        lengths: prompt lengths in tokens.
        new_tokens: tokens generated per run (decode speed is measured over the last ``new_tokens - 1``).
        repeats: timed runs per variant and length.
        warmup: untimed runs per variant and length before them.
        seed: seed of the prompts.
        shared_prefill: per round, prefill each length once without windowkv and replay it under every
            policy (:mod:`windowkv.bench.replay`): the compression is timed on its own
            (``compress_seconds``), variants have no time to first token and no peak memory.
    """

    lengths: tuple[int, ...]
    new_tokens: int = 32
    repeats: int = 3
    warmup: int = 1
    seed: int = 0
    shared_prefill: bool = False


def max_prompt_length(model: Any, new_tokens: int) -> int | None:
    """The longest prompt that leaves room for ``new_tokens`` in the model's context
    (``max_position_embeddings``), or ``None`` when the config does not say."""
    from windowkv.hf.architectures import text_config

    positions = getattr(text_config(model), "max_position_embeddings", None)
    return None if positions is None else int(positions) - new_tokens


def check_lengths(model: Any, lengths: Sequence[int], new_tokens: int) -> None:
    """Raise :class:`~windowkv.errors.UsageError` for a length that is not positive or does not fit the
    model's context together with the generated tokens."""
    longest = max_prompt_length(model, new_tokens)
    for length in lengths:
        if length < 1:
            raise UsageError(f"prompt lengths must be positive (got {length})")
        if longest is not None and length > longest:
            raise UsageError(f"prompt length {length} + {new_tokens} new tokens exceeds the model's context of "
                             f"{longest + new_tokens} positions; the longest prompt is {longest} tokens")


def _contexts(model: Any, tokenizer: Any, variants: Sequence[Any]
              ) -> list[tuple[Any, Callable[[], contextlib.AbstractContextManager[Any]]]]:
    """``(variant or None, context factory)``: the reference first, then each variant under its policy."""
    items: list[tuple[Any, Callable[[], Any]]] = [(None, contextlib.nullcontext)]
    for variant in variants:
        items.append((variant, lambda v=variant: v.policy.apply(model, tokenizer)))
    return items


def iter_samples(model: Any, tokenizer: Any, variants: Sequence[Any], settings: BenchSettings
                 ) -> Iterator[tuple[int, Any, Sample]]:
    """``(length, variant or None for the reference, sample)`` for every timed run, in measuring order."""
    check_lengths(model, settings.lengths, settings.new_tokens)
    if settings.shared_prefill:
        from windowkv.bench.replay import iter_replay_samples

        yield from iter_replay_samples(model, tokenizer, variants,
                                       lambda n: bench_prompt(tokenizer, n, seed=settings.seed), settings)
        return
    contexts = _contexts(model, tokenizer, variants)
    for length in settings.lengths:
        ids = bench_prompt(tokenizer, length, seed=settings.seed)
        for _ in range(settings.warmup):
            for _variant, context in contexts:
                with context():
                    measure_generation(model, ids, settings.new_tokens)
        for _ in range(settings.repeats):
            for variant, context in contexts:
                with context():
                    yield length, variant, measure_generation(model, ids, settings.new_tokens)


def summarize(samples: Sequence[tuple[int, Any, Sample]]) -> list[dict[str, Any]]:
    """One row per (variant, length), lengths ascending, the reference first at each length.

    Row fields: ``variant`` (``plain`` or ``policy@budget``), ``policy``, ``budget`` (``None`` for the
    reference), ``length`` (tokens), ``new_tokens``, ``memory_method``, one ``{median, q1, q3, min, max,
    n, samples}`` per metric of :data:`METRICS`, and the ratios of medians to the reference's at the same
    length: ``prefill_ratio`` (time to first token: the compression overhead), ``decode_ratio``
    (tokens/s: above 1 is faster), ``kv_bytes_ratio`` and ``peak_memory_ratio``; and
    ``compress_ratio``: the median compression seconds (``--shared-prefill``) over the reference's median
    prefill seconds, the policy's overhead as a share of a plain prefill.
    """
    groups: dict[tuple[int, str], list[tuple[Any, Sample]]] = {}
    for length, variant, sample in samples:
        name = REFERENCE if variant is None else variant.name
        groups.setdefault((length, name), []).append((variant, sample))
    rows = []
    for (length, name), items in groups.items():
        variant = items[0][0]
        row: dict[str, Any] = {
            "variant": name, "policy": REFERENCE if variant is None else variant.label,
            "budget": None if variant is None else variant.budget, "length": length,
            "new_tokens": items[0][1].new_tokens, "memory_method": items[0][1].memory_method,
        }
        for metric in METRICS:
            found = spread([getattr(s, metric) for _, s in items])
            row[metric] = found.to_dict() if found is not None else None
        rows.append(row)
    reference = {r["length"]: r for r in rows if r["variant"] == REFERENCE}
    for row in rows:
        ref = reference.get(row["length"])
        for metric, key in (("prefill_seconds", "prefill_ratio"), ("decode_tokens_per_s", "decode_ratio"),
                            ("kv_bytes", "kv_bytes_ratio"), ("peak_memory_bytes", "peak_memory_ratio")):
            row[key] = ratio(median(row, metric), median(ref, metric) if ref else None)
        row["compress_ratio"] = ratio(median(row, "compress_seconds"), median(ref, "prefill_seconds") if ref else None)
    rows.sort(key=lambda r: (r["length"], r["variant"] != REFERENCE))
    return rows


def median(row: dict[str, Any] | None, metric: str) -> float | None:
    """The median of ``metric`` in a summarised row, or ``None``."""
    value = (row or {}).get(metric)
    return value["median"] if value else None


def run_bench(model: Any, tokenizer: Any, variants: Sequence[Any], settings: BenchSettings,
              progress: Callable[[int, Any, Sample], None] | None = None) -> list[dict[str, Any]]:
    """Measure every variant (and the reference) at every length; the rows of :func:`summarize`."""
    samples = []
    for item in iter_samples(model, tokenizer, variants, settings):
        samples.append(item)
        if progress is not None:
            progress(*item)
    return summarize(samples)
