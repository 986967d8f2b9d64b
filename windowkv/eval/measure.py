"""One greedy generation under a policy, and what it cost: time, decode speed, memory, kept KV cache.

:func:`run_prompt` is shared by the evaluation runner and ``windowkv generate``. Prefill time ends when
the first token's logits are ready (a logits processor records every step); decode speed is measured
between the first and the last step; memory is described in :class:`MemoryMeter`.
"""

from __future__ import annotations

import copy
import re
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch


class _StepTimer:
    """A logits processor that only records when each generation step's logits are ready."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.times.append(time.perf_counter())
        return scores


def _status_kib(field_name: str) -> int | None:
    try:
        text = Path("/proc/self/status").read_text()
    except OSError:
        return None
    m = re.search(rf"^{field_name}:\s+(\d+)\s+kB", text, re.M)
    return int(m.group(1)) if m else None


def _release_free_heap() -> None:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``; a no-op elsewhere)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class MemoryMeter:
    """Peak memory of one generation above what was in use before it.

    - CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats`` (method ``cuda_allocated``);
    - Linux CPU: the process's peak resident set (``VmHWM``), reset through ``/proc/self/clear_refs``
      before the generation, minus the resident set before it (method ``rss_peak``). glibc's
      ``malloc_trim`` first returns freed heap pages to the system, so memory freed by an earlier
      generation does not hide this one's allocations;
    - elsewhere: the growth of ``getrusage`` max RSS (method ``ru_maxrss``): a lower bound, often 0 once
      an earlier, larger prompt has raised the high-water mark.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.method: str | None = None
        self._base = 0

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device)
            self.method = "cuda_allocated"
            return
        _release_free_heap()
        try:
            Path("/proc/self/clear_refs").write_text("5")
            rss = _status_kib("VmRSS")
            if rss is None:
                raise OSError
            self._base = rss * 1024
            self.method = "rss_peak"
        except OSError:
            self._base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            self.method = "ru_maxrss"

    def peak(self) -> int | None:
        """Bytes above the start level at the highest point since :meth:`start`."""
        if self.method == "cuda_allocated":
            return int(torch.cuda.max_memory_allocated(self.device) - self._base)
        if self.method == "rss_peak":
            hwm = _status_kib("VmHWM")
            return None if hwm is None else max(hwm * 1024 - self._base, 0)
        if self.method == "ru_maxrss":
            return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self._base, 0)
        return None


@dataclass
class ModelInfo:
    """What the runner needs to know of a model (sizes for KV bytes, context length)."""

    num_layers: int
    kv_heads: int
    head_dim: int
    dtype: str
    bytes_per_token_layer: int  # keys + values of one token in one layer
    max_positions: int | None
    model_type: str | None

    @classmethod
    def of(cls, model: Any) -> ModelInfo:
        from windowkv.hf.architectures import text_config

        config = text_config(model)
        heads = config.num_attention_heads
        kv_heads = getattr(config, "num_key_value_heads", None) or heads
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
        dtype = next(model.parameters()).dtype
        return cls(config.num_hidden_layers, kv_heads, head_dim, str(dtype).removeprefix("torch."),
                   2 * kv_heads * head_dim * dtype.itemsize, getattr(config, "max_position_embeddings", None),
                   getattr(config, "model_type", None))

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Generation:
    """One greedy generation and what it cost."""

    prediction: str
    prompt_tokens: int
    new_tokens: int
    prefill_seconds: float
    decode_tokens_per_s: float | None
    seconds: float
    peak_memory_bytes: int | None
    memory_method: str | None
    kept_per_layer: list[int]
    suffix_size: int | None
    task_label: str | None
    output_ids: list[int] = field(default_factory=list)
    #: bytes of key/value storage the cache held right after the prefill, measured from its tensors
    #: (``None`` without a policy: the model's own cache, full)
    kv_nbytes: int | None = None


def generation_config(model: Any, max_new_tokens: int, pad_token_id: int | None) -> Any:
    """The model's generation config made greedy, with ``max_new_tokens``."""
    config = copy.deepcopy(model.generation_config)
    config.do_sample = False
    for name in ("temperature", "top_p", "top_k", "min_p", "typical_p"):
        if hasattr(config, name):
            setattr(config, name, None)
    config.max_new_tokens = max_new_tokens
    config.max_length = None
    if pad_token_id is not None:
        config.pad_token_id = pad_token_id
    return config


def cache_argument(model: Any, cache: Any) -> dict[str, Any]:
    """``{"cache": cache}`` for transformers releases that name the argument so (5.24+), else
    ``{"past_key_values": cache}`` (5.2): the old name warns on new releases."""
    import inspect

    name = "cache" if "cache" in inspect.signature(type(model).forward).parameters else "past_key_values"
    return {name: cache}


def warm_up(model: Any) -> None:
    """One short forward pass, so that the first measured generation does not pay one-time costs.

    Safetensors weights are memory-mapped: the first forward faults every page in, which would count
    the whole model in that generation's peak memory (and time).
    """
    ids = torch.ones(1, 8, dtype=torch.long, device=model.device)
    with torch.no_grad():
        model(input_ids=ids)


def run_prompt(model: Any, tokenizer: Any, handle: Any, text: str, *, chat: bool, max_new_tokens: int,
               stop_strings: Sequence[str] | None = None, seed: int = 0,
               input_ids: torch.Tensor | None = None, ignore_eos: bool = False,
               context_tokens: int | None = None) -> Generation:
    """Generate greedily from ``text`` (already rendered) with the policy handle ``handle`` active.

    Args:
        handle: the :class:`~windowkv.hf.apply.CompressionHandle` of the policy, or ``None`` for no policy.
        chat: the text carries the chat template's special tokens (tokenize without adding more).
        input_ids: the tokenized prompt ``[1, L]`` when the caller already has it.
        ignore_eos: always generate ``max_new_tokens`` tokens (throughput measurements).
        context_tokens: compress only the first ``context_tokens`` tokens at prefill (one forward pass),
            then let ``generate`` append the rest of the prompt to the compressed cache (a question asked
            after compression). None: the whole prompt is the prefill.
    """
    from transformers import LogitsProcessorList

    device = model.device
    if input_ids is None:
        input_ids = tokenizer(text, return_tensors="pt", add_special_tokens=not chat)["input_ids"]
    input_ids = input_ids.to(device)
    attention_mask = torch.ones_like(input_ids)
    timer = _StepTimer()
    kwargs: dict[str, Any] = {}
    if stop_strings:
        kwargs.update(stop_strings=list(stop_strings), tokenizer=tokenizer)
    config = generation_config(model, max_new_tokens, tokenizer.pad_token_id)
    if ignore_eos:
        config.min_new_tokens = max_new_tokens
    meter = MemoryMeter(device)
    torch.manual_seed(seed)
    if handle is not None:
        handle.last_run = None
    meter.start()
    start = time.perf_counter()
    with torch.no_grad():
        if context_tokens is not None and 0 < context_tokens < input_ids.shape[1]:
            from transformers import DynamicCache

            cache = DynamicCache(config=model.config)
            model(input_ids=input_ids[:, :context_tokens], attention_mask=attention_mask[:, :context_tokens],
                  use_cache=True, **cache_argument(model, cache))
            kwargs.update(cache_argument(model, cache))
        out = model.generate(input_ids=input_ids, attention_mask=attention_mask, generation_config=config,
                             logits_processor=LogitsProcessorList([timer]), **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    end = time.perf_counter()
    peak = meter.peak()
    new_ids = out[0, input_ids.shape[1]:].tolist()
    prompt_tokens = int(input_ids.shape[1])
    times = timer.times
    prefill = (times[0] - start) if times else end - start
    decode = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    run = handle.last_run if handle is not None else None
    return Generation(
        prediction=tokenizer.decode(new_ids, skip_special_tokens=True),
        prompt_tokens=prompt_tokens, new_tokens=len(new_ids), prefill_seconds=prefill,
        decode_tokens_per_s=decode, seconds=end - start, peak_memory_bytes=peak, memory_method=meter.method,
        output_ids=new_ids, **run_outcome(run, prompt_tokens, ModelInfo.of(model).num_layers),
    )


def run_outcome(run: Any, prompt_tokens: int, num_layers: int) -> dict[str, Any]:
    """What a compression run kept, as :class:`Generation` fields: tokens per layer (row 0), suffix size,
    task label and the KV bytes measured from the cache after the prefill; with no run (no policy), the
    whole prompt in every layer and nothing measured."""
    if run is None:
        return {"kept_per_layer": [prompt_tokens] * num_layers, "suffix_size": None, "task_label": None,
                "kv_nbytes": None}
    return {"kept_per_layer": [row[0] for row in run.kept_tokens()],
            "suffix_size": run.groups[0].suffix_size if run.groups else None,
            "task_label": run.predictions[0].label if run.predictions else None, "kv_nbytes": run.kv_nbytes}


def cache_stats(gen: Generation, info: ModelInfo) -> dict[str, Any]:
    """Kept KV tokens and bytes, and the fractions of the full cache and of the review tokens kept.

    ``kv_bytes_kept`` is measured from the cache's tensors after the prefill (``kv_bytes_measured``: packed
    low-bit slots with their scales, pruned key channels, merge weights) when a policy ran; without one it
    is the full cache's bytes.
    """
    layers = len(gen.kept_per_layer)
    kept = sum(gen.kept_per_layer)
    full = gen.prompt_tokens * layers
    suffix = min(gen.suffix_size, gen.prompt_tokens) if gen.suffix_size is not None else 0
    review = gen.prompt_tokens - suffix
    kept_review = sum(max(k - suffix, 0) for k in gen.kept_per_layer)
    return {
        "kept_tokens": kept,
        "full_tokens": full,
        "kept_fraction": kept / full if full else 1.0,
        "kept_review_fraction": kept_review / (review * layers) if review > 0 else 1.0,
        # the review budget actually used (chosen per prompt by dynamic-budget selectors such as dbudget)
        "kept_review_tokens": kept_review / layers if layers else 0.0,
        "suffix_size": gen.suffix_size,
        "kept_per_layer": gen.kept_per_layer,
        "kv_bytes_kept": gen.kv_nbytes if gen.kv_nbytes is not None else kept * info.bytes_per_token_layer,
        "kv_bytes_full": full * info.bytes_per_token_layer,
        "kv_bytes_fraction": ((gen.kv_nbytes if gen.kv_nbytes is not None else kept * info.bytes_per_token_layer)
                              / (full * info.bytes_per_token_layer) if full else 1.0),
        "kv_bytes_measured": gen.kv_nbytes is not None,
    }
