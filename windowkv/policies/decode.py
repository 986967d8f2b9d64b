"""Compression while decoding: a per-layer slot budget kept during generation (R-KV's budget + buffer, CORM).

A policy's ``decode`` field (``None`` by default: the cache grows with every generated token) bounds each
compressed layer during generation. Every ``interval`` new tokens (the buffer), each layer holding more
than ``budget`` slots is re-scored with the queries of its last ``window`` tokens
(:meth:`windowkv.cache.CompressedLayer.recent_attention`) and evicted back to ``budget`` slots
(:meth:`~windowkv.cache.CompressedLayer.retain`). The prompt's suffix (the question) and the last
``window`` tokens are never evicted. At the end of the prefill the prompt is evicted to the same budget
(scored by the prompt's last ``window`` queries), so a layer never holds more than ``budget + interval``
slots per row and KV head at any step.

Scores (``reduce``): ``"sum"`` adds the attention of the recent queries (R-KV, H2O-style accumulation
over a window); ``"max"`` keeps a key if any recent query attended to it strongly (CORM, Dai et al.,
arXiv 2404.15949: similar queries attend to similar keys, so recent queries predict the next ones).
"""

from __future__ import annotations

from typing import Any, Literal, Optional, Sequence

import torch
from pydantic import BaseModel, ConfigDict, Field


from windowkv.cache import CompressedLayer


class DecodeCompression(BaseModel):
    """How a policy bounds the KV cache while it generates.

    Attributes:
        budget: slots each layer keeps per row and KV head after an eviction (prompt slots + generated
            tokens); ``None``: the policy's budget plus its largest suffix (a ratio budget: that ratio of
            each row's review tokens plus the suffix).
        interval: evict every this many new tokens (the buffer: a layer holds at most ``budget +
            interval`` slots).
        window: recent tokens whose queries score the slots; they are never evicted.
        reduce: ``"sum"`` (R-KV) or ``"max"`` (CORM) of the recent queries' attention to a slot.
        heads: ``"per_kv_head"``: each KV head keeps its own slots; ``"shared"``: one choice per layer
            (scores averaged over KV heads).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: Optional[int] = Field(None, ge=1, strict=True, description="Slots kept per layer, row and KV "
                                  "head after each eviction; null: the policy's budget + its largest suffix.")
    interval: int = Field(16, ge=1, strict=True, description="Evict every this many new tokens (the buffer).")
    window: int = Field(16, ge=1, strict=True, description="Recent tokens whose queries score the slots; "
                        "never evicted.")
    reduce: Literal["sum", "max"] = Field("sum", description="'sum' of the recent queries' attention (R-KV) "
                                          "or its 'max' (CORM).")
    heads: Literal["per_kv_head", "shared"] = Field("per_kv_head", description="'per_kv_head' or 'shared' "
                                                    "(one choice per layer, scores averaged over KV heads).")

    def row_budgets(self, policy_budget: Any, suffix_size: int, lengths: list[int]) -> list[int]:
        """Slots each row keeps per layer and KV head after an eviction.

        ``budget`` when given; else the policy's token budget plus ``suffix_size``; else (a ratio budget)
        the ratio of each row's review tokens plus ``suffix_size``, never below the protected
        ``suffix_size + window``.

        Args:
            policy_budget: the policy's :class:`~windowkv.budget.Budget`.
            suffix_size: the policy's largest suffix, tokens.
            lengths: each row's prompt length, tokens.
        """
        if self.budget is not None:
            return [self.budget] * len(lengths)
        if policy_budget.tokens is not None:
            return [policy_budget.tokens + suffix_size] * len(lengths)
        floor = protected_tokens(self, suffix_size)
        return [max(int(policy_budget.average(max(n - suffix_size, 0))) + suffix_size, floor) for n in lengths]


def evict_layer(layer: CompressedLayer, budgets: Sequence[int], window: int, reduce: str, heads: str,
                protected_from: int) -> None:
    """Evict ``layer`` back to ``budgets[b]`` slots in row ``b`` (no-op when it holds no more).

    The layer keeps ``max(budgets)`` physical slots; in a row with a smaller budget the extra slots are
    marked invalid (never attended to). Ties and ranks are per row: a row keeps what it keeps alone.

    Args:
        layer: a dense compressed layer with recent queries recorded.
        budgets: slots each row keeps per KV head (at least the protected tokens), one per row.
        window: the last ``window`` tokens (logical positions) are kept.
        reduce: ``"sum"`` or ``"max"`` over the recent queries.
        heads: ``"per_kv_head"`` or ``"shared"``.
        protected_from: prompt positions ``>= protected_from`` (the suffix, padded coordinates) are kept.
    """
    k = max(budgets)
    if layer.physical_length() <= k:
        return
    scores = layer.recent_attention(reduce=reduce)  # [B, H_kv, K]
    if heads == "shared":
        scores = scores.mean(1, keepdim=True)
    positions, valid = layer.slot_positions()  # [B, 1 | H_kv, K]
    b, h = scores.shape[0], max(scores.shape[1], positions.shape[1])
    scores, positions, valid = (t.expand(b, h, t.shape[-1]) for t in (scores, positions, valid))
    recent_from = layer.logical_length - window
    protected = ((positions >= protected_from) & (positions < layer.prompt_length)) | (positions >= recent_from)
    scores = scores.masked_fill(protected, float("inf")).masked_fill(~valid, float("-inf"))
    top = scores.topk(k, dim=-1).indices  # [B, H, k], best first
    in_budget = torch.arange(k, device=top.device)[None, None, :] < torch.tensor(list(budgets), device=top.device)[:, None, None]
    index, order = top.sort(-1)  # slot order (= position order)
    layer.retain(index, valid.gather(-1, index) & in_budget.expand(b, h, k).gather(-1, order))


def evict_cache(config: DecodeCompression, cache: Any, budgets: list[int], suffix_size: int) -> None:
    """Evict every compressed layer of ``cache`` back to ``budgets[b]`` slots per row (see :func:`evict_layer`)."""
    for layer in getattr(cache, "layers", ()):
        if isinstance(layer, CompressedLayer):
            evict_layer(layer, budgets, config.window, config.reduce, config.heads,
                        layer.prompt_length - suffix_size)


def protected_tokens(config: DecodeCompression, suffix_size: int) -> int:
    """Slots an eviction can never free: the prompt suffix and the recent window."""
    return suffix_size + config.window


def budget_error(config: DecodeCompression, policy_budget: Any, suffix_size: int) -> str | None:
    """Why ``config`` cannot serve a policy with ``policy_budget`` and ``suffix_size`` (``None`` if it can)."""
    budget = config.budget
    if budget is None and policy_budget.tokens is not None:
        budget = policy_budget.tokens + suffix_size
    if budget is not None and budget < protected_tokens(config, suffix_size):
        given = "decode.budget" if config.budget is not None else f"the policy's budget + suffix"
        return (f"{given} {budget} is smaller than the tokens decoding never evicts: the suffix "
                f"({suffix_size}) + decode.window ({config.window}) = {protected_tokens(config, suffix_size)}")
    return None


__all__ = ["DecodeCompression", "budget_error", "evict_cache", "evict_layer", "protected_tokens"]
