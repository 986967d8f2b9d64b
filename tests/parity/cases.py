"""The parity cases: each kvpress press next to the windowkv policy configured to keep the same tokens.

A case maps a prompt length ``L`` and a compression ratio to ``(press, policy, expectation)``. The
conversions (budgets, PyramidKV's beta, AdaKV's safeguard) are spelled out here and in
``docs/policies.md``; ``expectation`` says what the comparison must show:

- ``"identical"``: every layer and KV head keeps exactly kvpress's positions;
- ``"last_token"``: windowkv always keeps the last prompt token (its suffix, ``s = 1``) where kvpress
  ranks it with the others, so at most one position per head differs, and the counts are equal;
  besides, where two positions score exactly the same (KnormPress: one token twice in layer 0, whose
  keys' norms do not depend on the position), windowkv keeps the earlier and kvpress's ``topk`` either;
- ``"rounding"``: per-layer budgets are rounded differently (kvpress ``round()`` each layer, windowkv
  never exceeds the total), so the counts differ by at most one and the smaller set is inside the larger.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from windowkv import Policy

from tests.parity.harness import n_kept


@dataclass
class Case:
    name: str
    press: Any
    policy: Policy
    expectation: str
    eager: bool = False  # the press reads the attention weights (attn_implementation="eager")
    #: ``[H_kv, L]`` scores of one layer's prefill keys, to recognise exact ties (``None``: no ties expected)
    tie_scores: Callable[[torch.Tensor], torch.Tensor] | None = None


def snapkv(length: int, ratio: float, window: int = 16) -> Case:
    from kvpress import SnapKVPress

    kept = n_kept(length, ratio)
    policy = Policy.from_preset("snapkv", budget=kept - window, profiles={"all": {"suffix_size": window}})
    return Case("snapkv", SnapKVPress(compression_ratio=ratio, window_size=window, kernel_size=5), policy, "identical")


def streaming_llm(length: int, ratio: float) -> Case:
    from kvpress import StreamingLLMPress

    kept = n_kept(length, ratio)  # StreamingLLMPress prunes L - int(L (1 - ratio)) tokens after the sinks
    policy = Policy.from_preset("streaming_llm", budget=kept - 1)
    return Case("streaming_llm", StreamingLLMPress(compression_ratio=ratio, n_sink=4), policy, "identical")


def knorm(length: int, ratio: float) -> Case:
    from kvpress import KnormPress

    policy = Policy.from_preset("knorm", budget=n_kept(length, ratio) - 1)
    return Case("knorm", KnormPress(compression_ratio=ratio), policy, "last_token",
                tie_scores=lambda keys: -torch.linalg.vector_norm(keys, dim=-1, dtype=torch.float32))


def tova(length: int, ratio: float) -> Case:
    from kvpress import TOVAPress

    policy = Policy.from_preset("tova", budget=n_kept(length, ratio) - 1)
    return Case("tova", TOVAPress(compression_ratio=ratio), policy, "identical")


def random(length: int, ratio: float, seed: int = 7) -> Case:
    from kvpress import RandomPress

    policy = Policy.from_preset("random", budget=n_kept(length, ratio) - 1, scorer={"seed": seed})
    return Case("random", RandomPress(compression_ratio=ratio, seed=seed), policy, "last_token")


def h2o(length: int, ratio: float) -> Case:
    from kvpress import ObservedAttentionPress

    policy = Policy.from_preset("h2o", budget=n_kept(length, ratio) - 1, scorer={"normalize": True})
    return Case("h2o", ObservedAttentionPress(compression_ratio=ratio), policy, "last_token", eager=True)


def pyramid_config(length: int, ratio: float, window: int, beta: float = 20.0) -> tuple[float, float]:
    """windowkv's (average review budget, beta) for kvpress's ``PyramidKVPress``.

    kvpress applies the pyramid to the whole kept cache (window included): mean ``n = L (1 - ratio)``,
    last layer ``n / beta``. PyramidKV's own code, and windowkv, apply it to the review tokens with the
    window on top: mean ``n - s``; the same line needs ``beta' = (n - s) / (n / beta - s)``.
    """
    n = length * (1 - ratio)
    low = n / beta
    if not (length - window > 2 * n - low and low >= window):
        raise ValueError("outside kvpress's plain pyramid (its cap or its SnapKV fallback would apply)")
    return n - window, (n - window) / (low - window)


def pyramidkv(length: int, ratio: float, window: int = 4) -> Case:
    from kvpress import PyramidKVPress

    average, beta = pyramid_config(length, ratio, window)
    budget = int(average) if float(average).is_integer() else average / (length - window)
    policy = Policy.from_preset("pyramidkv", budget=budget, allocator={"beta": beta},
                                profiles={"all": {"suffix_size": window}})
    press = PyramidKVPress(compression_ratio=ratio, window_size=window, kernel_size=5, beta=20)
    return Case("pyramidkv", press, policy, "rounding")


def adakv(length: int, ratio: float, window: int = 16, alpha: float = 0.2) -> Case:
    """kvpress reserves ``int(n_kept x alpha)`` tokens per head counting the window (its scores put the
    window first), so ``max(int(n_kept x alpha) - s, 0)`` review tokens; windowkv reserves
    ``floor(alpha' x b)`` of the review budget ``b``: ``alpha'`` is chosen to reserve as many."""
    from kvpress import AdaKVPress, SnapKVPress

    kept = n_kept(length, ratio)
    budget = kept - window
    reserved = max(int(kept * alpha) - window, 0)
    alpha_windowkv = 0.0 if reserved == 0 else (reserved + 0.5) / budget
    policy = Policy.from_preset("adakv", budget=budget, profiles={
        "all": {"selector": {"alpha_safeguard": alpha_windowkv}, "suffix_size": window}})
    press = AdaKVPress(SnapKVPress(compression_ratio=ratio, window_size=window, kernel_size=5), alpha_safeguard=alpha)
    return Case("adakv", press, policy, "identical")


def chunkkv(length: int, ratio: float, chunk: int = 20) -> Case:
    """Chunks of kvpress cover the whole prompt from position 0; with ``L`` and the window ``s`` multiples
    of the chunk length, the window fills whole chunks (ranked first) and the review chunks are
    windowkv's windows. kvpress keeps ``int(n_chunks (1 - ratio))`` chunks, window chunks included."""
    from kvpress import ChunkKVPress, SnapKVPress

    if length % chunk:
        raise ValueError(f"the prompt length must be a multiple of the chunk length {chunk}")
    window = chunk
    kept_chunks = max(1, int(length // chunk * (1 - ratio)))
    policy = Policy.from_preset("chunkkv", budget=(kept_chunks - window // chunk) * chunk,
                                profiles={"all": {"suffix_size": window, "selector": {"window_size": chunk}}})
    press = ChunkKVPress(SnapKVPress(compression_ratio=ratio, window_size=window, kernel_size=5), chunk_length=chunk)
    return Case("chunkkv", press, policy, "identical")


CASES: dict[str, Callable[..., Case]] = {
    "snapkv": snapkv,
    "streaming_llm": streaming_llm,
    "knorm": knorm,
    "tova": tova,
    "random": random,
    "h2o": h2o,
    "pyramidkv": pyramidkv,
    "adakv": adakv,
    "chunkkv": chunkkv,
}
