"""One timed greedy generation: time to first token, decode speed, KV bytes held, peak memory.

:func:`measure_generation` runs ``model.generate`` on a prompt of token ids with whatever compression is
active around it (a windowkv policy's handle, a kvpress press, or nothing), so every library is measured
by the same code. Greedy, exactly ``new_tokens`` tokens (``min_new_tokens`` suppresses EOS).
"""

from __future__ import annotations

import gc
from dataclasses import asdict, dataclass
from typing import Any

import torch

from windowkv.bench.clock import StepClock
from windowkv.cache.nbytes import cache_nbytes
from windowkv.eval.measure import MemoryMeter, cache_argument, generation_config


@dataclass(frozen=True)
class Sample:
    """What one generation cost.

    Attributes:
        prefill_seconds: seconds from calling ``generate`` to the first token's logits (time to first
            token: the prompt's forward pass, compression included).
        decode_tokens_per_s: decode forwards per second after the first token (``None`` for one token).
        kv_bytes: bytes of key/value storage the cache holds right after the prefill, summed over the
            cache layers' tensors (:func:`windowkv.cache.nbytes.cache_nbytes`).
        peak_memory_bytes: peak memory above the level before the generation (prefill and decode), in
            bytes, measured by ``memory_method`` (:class:`windowkv.eval.measure.MemoryMeter`); ``None``
            where it cannot be read.
        memory_method: ``cuda_allocated``, ``rss_peak`` (Linux) or ``ru_maxrss`` (a lower bound).
        new_tokens: tokens generated.
        compress_seconds: seconds the policy's hooks took to compress a replayed prefill (``windowkv bench
            --shared-prefill``, :mod:`windowkv.bench.replay`); ``None`` for an ordinary run and the reference.
    """

    prefill_seconds: float
    decode_tokens_per_s: float | None
    kv_bytes: int
    peak_memory_bytes: int | None
    memory_method: str | None
    new_tokens: int
    compress_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def new_cache(model: Any) -> Any:
    """An empty ``DynamicCache`` for ``model`` (the cache every compression method here works on)."""
    from transformers import DynamicCache

    return DynamicCache(config=model.config)


def exact_length_config(model: Any, new_tokens: int) -> Any:
    """A greedy ``GenerationConfig`` that generates exactly ``new_tokens`` tokens (EOS suppressed by
    ``min_new_tokens``), so every run of a benchmark decodes the same number of steps."""
    config = generation_config(model, new_tokens, getattr(model.generation_config, "pad_token_id", None))
    config.min_new_tokens = new_tokens
    if config.pad_token_id is None:
        config.pad_token_id = 0  # silences generate's warning; batch 1 is never padded
    return config


def measure_generation(model: Any, input_ids: torch.Tensor, new_tokens: int) -> Sample:
    """Generate ``new_tokens`` tokens greedily from ``input_ids`` ``[1, L]`` and measure the cost.

    The cache is created here and handed to ``generate``, so its bytes can be read between the first
    and the second step, as the prefill (and any compression at prefill) left them.
    """
    from transformers import LogitsProcessorList

    device = model.device
    input_ids = input_ids.to(device)
    cache = new_cache(model)
    held: list[int] = []
    clock = StepClock(device, on_first_step=lambda: held.append(cache_nbytes(cache)))
    config = exact_length_config(model, new_tokens)
    gc.collect()
    meter = MemoryMeter(device)
    meter.start()
    clock.start()
    with torch.no_grad():
        out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                             generation_config=config, logits_processor=LogitsProcessorList([clock]),
                             **cache_argument(model, cache))
    prefill = clock.prefill_seconds()
    decode = clock.decode_tokens_per_s()  # on CUDA the first read synchronises
    peak = meter.peak()
    if prefill is None or not held:
        raise RuntimeError("generate produced no token: nothing to measure")
    return Sample(prefill, decode, held[0], peak, meter.method, int(out.shape[1] - input_ids.shape[1]))
