"""Chunked prefill under a budget: a long prompt prefilled ``C`` tokens at a time, compressed between chunks.

``policy.apply(model, prefill_chunk=C)`` makes every prefill longer than ``C`` tokens run as chunks
(:class:`~windowkv.hf.apply.CompressionHandle` drives them from the model's forward pre-hook, so
``model.generate`` and plain ``model(...)`` calls need no change). Chunk boundaries are aligned to the
**end** of the prompt (:func:`chunk_bounds`): the first chunk is the shorter one, every later chunk holds
``C`` tokens, and the last chunk always holds the whole suffix (the question).

- the first chunk is an ordinary prefill, compressed with the plan of the **whole** prompt (budgets from
  its length, task from its text) and the chunk's own last ``suffix_size`` tokens as observation window;
- every later chunk is appended to the compressed cache; right after a layer's attention the layer's slots
  (kept slots, then the chunk) are scored with the chunk's last ``suffix_size`` queries and evicted back to
  the layer's budget (:func:`recompress_layer`). Slots keep their true positions, so RoPE stays right;
- the final chunk's suffix is the prompt's suffix: it scores every kept slot, as in a one-shot prefill.

So a layer never holds more than ``kept_bound + C`` slots (budget + suffix + chunk), instead of the prompt.
With more than one chunk every layer scores its own slots (index sharing is not applied: after the first
eviction the layers hold different slots, so a leader's scores would name another layer's tokens).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import torch
from torch import Tensor

from windowkv.cache import CompressedLayer
from windowkv.errors import ConfigError
from windowkv.run import CompressionRun, LayerSelection, ProfileGroup
from windowkv.tensor_ops import gather_positions


def check_chunking(policy: Any, chunk: int) -> None:
    """Refuse a chunk size or a policy chunked prefill cannot serve, before any prompt.

    Raises:
        ConfigError: ``chunk`` < 1 or smaller than a profile's suffix (naming both numbers); a scorer that
            needs every prompt query (H2O's ``cumulative_attention``); a whole-method policy; a merger,
            quantizer or channel pruner (intermediate evictions drop slots; stored slots cannot be re-selected).
    """
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigError([("prefill_chunk", f"prefill_chunk must be a positive number of tokens (got {chunk!r})")])
    scorer = getattr(policy, "scorer", None)
    profiles = getattr(policy, "profiles", None)
    if scorer is None or profiles is None or not hasattr(policy, "select_layer"):
        raise ConfigError([("prefill_chunk", f"chunked prefill needs a composed windowkv Policy (scorer + selector); "
                                             f"{getattr(policy, 'name', type(policy).__name__)!r} is a whole method")])
    errors = []
    suffix = max(p.suffix_size for p in profiles.values())
    if chunk < suffix:
        errors.append(("prefill_chunk", f"prefill_chunk {chunk} is smaller than the suffix of {suffix} tokens: the "
                                        "last chunk must hold the whole suffix (use a chunk of at least "
                                        f"{suffix} tokens)"))
    if not getattr(scorer, "chunkable", True):
        errors.append(("scorer", f"scorer {scorer.name!r} needs every prompt query at once (accumulated attention); "
                                 "it cannot score chunk by chunk: prefill in one shot or use a suffix-attention "
                                 "scorer"))
    for key in ("merger", "quantizer", "channel_pruner"):
        stage = getattr(policy, key, None)
        if stage is not None:
            errors.append((key, f"{key} {stage.name!r} cannot combine with chunked prefill (intermediate "
                                "evictions drop slots; stored slots cannot be re-selected)"))
    if errors:
        raise ConfigError(errors)


def chunk_bounds(length: int, chunk: int) -> list[tuple[int, int]]:
    """``[start, end)`` token ranges of a ``length``-token prompt in chunks of ``chunk``, aligned to the end.

    The first range is the shorter one (``length % chunk`` tokens, or a whole chunk); every later range has
    ``chunk`` tokens, so the last one holds the prompt's suffix whenever ``chunk >= suffix_size``.
    """
    first = length - chunk * ((length - 1) // chunk) if length > 0 else 0
    bounds = [(0, first)]
    bounds += [(start, start + chunk) for start in range(first, length, chunk)]
    return bounds


def chunk_run(full: CompressionRun, length: int, many: bool) -> CompressionRun:
    """The run that compresses ``length`` slots of one layer (batch of one row) with ``full``'s plan.

    Args:
        full: the run planned for the whole prompt (its per-layer budgets, task groups, predictions).
        length: slots the layer holds now (kept slots + the chunk), counted as a prompt of that length.
        many: the prompt runs as more than one chunk (then every layer leads itself: no index sharing).

    Returns:
        A run whose review length is ``length - suffix`` and whose budgets are ``full``'s, capped at it.
    """
    groups = []
    for g in full.groups:
        review = [max(length - g.suffix_size, 0) for _ in g.rows]
        budgets = [[min(b, r) for b, r in zip(layer_budgets, review)] for layer_budgets in g.budgets]
        groups.append(ProfileGroup(g.label, g.rows, g.suffix_size, review, budgets, g.max_kept))
    leaders = list(range(full.num_layers)) if many else list(full.leaders)
    return CompressionRun([length] * len(full.lengths), length, full.num_layers, groups, full.predictions,
                          leaders, full.device)


@dataclasses.dataclass
class ChunkedPrefill:
    """State of one chunked prefill (one cache), kept by the handle while its chunks run.

    Attributes:
        run: the run planned for the whole prompt; it becomes the cache's run when the prefill ends.
        cache: the cache being filled.
        many: more than one chunk.
        final: the last chunk is running.
        inputs: per layer, the chunk's attention inputs ``(hidden [1, c, hidden], (cos, sin))``.
        done: layers compressed in the current chunk.
    """

    run: CompressionRun
    cache: Any
    many: bool
    final: bool = False
    inputs: dict[int, tuple[Tensor, tuple[Tensor, Tensor]]] = dataclasses.field(default_factory=dict)
    done: set[int] = dataclasses.field(default_factory=set)


def layer_slots(layer: Any) -> tuple[Tensor, Tensor, Tensor, Tensor, int]:
    """Every physical slot of a cache layer: ``keys``, ``values`` ``[B, H_kv, P, D]``, true ``positions``
    and ``valid`` ``[B, H, P]`` (``H`` 1 or ``H_kv``), and the logical length (tokens seen)."""
    if isinstance(layer, CompressedLayer):
        keys, values = layer.dense()
        positions, valid = layer.slot_positions()
        return keys, values, positions, valid, layer.logical_length
    keys, values = layer.keys, layer.values
    b, length = keys.shape[0], keys.shape[-2]
    positions = torch.arange(length, device=keys.device)[None, None].expand(b, 1, length)
    return keys, values, positions, torch.ones(b, 1, length, dtype=torch.bool, device=keys.device), length


def recompress_layer(
    policy: Any,
    state: ChunkedPrefill,
    layer_idx: int,
    layer: Any,
    project_chunk: Callable[[int, int], Tensor],
    chunk_length: int,
    scaling: float,
    num_key_value_groups: int,
    **layer_kwargs: Any,
) -> CompressedLayer | None:
    """Score a layer's slots with the chunk's last queries and keep the layer's budget of them.

    Args:
        policy: the policy (its scorer, selector and profiles; no merger, quantizer or channel pruner).
        state: the chunked prefill (its whole-prompt run gives the budgets).
        layer_idx: the layer.
        layer: its cache layer after the chunk's update: kept slots then the ``chunk_length`` new tokens.
        project_chunk: ``(start, end) -> [B, H_q, end - start, D]`` queries of chunk tokens ``[start, end)``.
        chunk_length: tokens of this chunk.
        scaling: the layer's attention scale.
        num_key_value_groups: query heads per KV head.
        layer_kwargs: passed to :class:`CompressedLayer` (owner, sliding window, layout).

    Returns:
        The new compressed layer (kept slots at their true positions, logical length unchanged), or
        ``None`` when the layer keeps every slot (the layer stays as it is).
    """
    keys, values, positions, valid, logical = layer_slots(layer)
    b, h_kv, length, _ = keys.shape
    run = chunk_run(state.run, length, state.many)
    offset = length - chunk_length  # physical index of the chunk's first token
    key_valid = valid.any(1)  # [B, P]; per-head unused slots stay invalid after the gather below
    selection = policy.select_layer(run, layer_idx, keys, values, key_valid,
                                    lambda start, end: project_chunk(start - offset, end - offset),
                                    scaling, num_key_value_groups)
    if selection is None:
        return None
    index = selection.positions  # [B, H, K] physical slots, sorted
    heads = max(index.shape[1], positions.shape[1])
    k = index.shape[-1]
    idx = index.expand(b, heads, k)
    kept_positions = positions.expand(b, heads, length).gather(-1, idx)
    kept_valid = valid.expand(b, heads, length).gather(-1, idx) & selection.valid.expand(b, heads, k)
    state.run.selections[layer_idx] = LayerSelection(kept_positions, kept_valid)
    return CompressedLayer(gather_positions(keys, idx), gather_positions(values, idx), kept_positions, kept_valid,
                           logical, **layer_kwargs)


def slice_forward_kwargs(kwargs: dict[str, Any], start: int, end: int) -> dict[str, Any]:
    """The model-forward kwargs of prompt tokens ``[start, end)``: ids, embeddings, position ids and cache
    positions sliced, the 2-D attention mask cut to the ``end`` tokens seen so far."""
    out = dict(kwargs)
    for key in ("input_ids", "inputs_embeds"):
        if out.get(key) is not None:
            out[key] = out[key][:, start:end]
    if out.get("position_ids") is not None:
        out["position_ids"] = out["position_ids"][..., start:end]
    if out.get("cache_position") is not None:
        out["cache_position"] = out["cache_position"][start:end]
    if out.get("attention_mask") is not None:
        out["attention_mask"] = out["attention_mask"][:, :end]
    return out
