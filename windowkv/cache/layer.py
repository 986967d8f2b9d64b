"""windowkv's compressed cache layer: kept prompt slots with their true positions, then appended tokens.

After a prefill eviction, each compressed layer of a transformers ``DynamicCache`` is replaced by a
:class:`CompressedLayer`. It holds

- the kept prompt slots ``[B, H_kv, K0, D]`` and, for each slot, its true position in the prompt
  (``positions``, padded coordinates) and whether it is a real slot (``valid``: False for left
  padding and for unused slots of rows that keep fewer tokens);
- optionally, per-slot weights (a merged slot stands for ``w`` tokens: attention adds ``log w`` to its
  logits), kept key channels (keys stored with ``C < D`` channels) and quantized storage (packed codes +
  scales);
- the tokens appended since the prefill (decode steps, new turns), stored dense.

When the KV heads of a row keep different numbers of slots (head-wise selections such as AdaKV), the
kept slots are stored **ragged** (:mod:`windowkv.cache.ragged`: ``[S, D]`` with per-(row, head) lengths,
no padding to the fullest head) and decode steps attend over them with
:func:`~windowkv.cache.segment_attention.segment_decode_attention`; the appended tokens stay a dense
``[B, H_kv, T, D]`` tail, so appending stays a concatenation. Positions and validity stay on the padded
``[B, H_kv, K0]`` grid (bookkeeping, a few bytes per slot) so masks are built as for padded storage.
Quantized slots and pruned key channels keep the padded layout; a decode step reads them as stored
(:func:`~windowkv.cache.packed_attention.packed_decode_attention`: logits and the value mix from the codes and
scales, the query reduced to the kept key channels), other forwards read :meth:`dense`.

It reports the **logical** length (tokens seen: prompt + appended) to ``get_seq_length`` and
``get_mask_sizes``, so ``generate``, prefix caching and hand-written loops number and slice tokens as
for the uncompressed model; :meth:`physical_length` and :meth:`kv_nbytes` say what is really held.
:func:`windowkv.cache.attention.windowkv_attention` builds each layer's mask from :meth:`attention_mask`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Protocol

import torch
from torch import Tensor
from transformers.cache_utils import DynamicLayer

from windowkv.cache.packed_attention import packed_decode_attention
from windowkv.cache.ragged import RaggedSlots, pack, unpack, wastes_padding
from windowkv.cache.segment_attention import segment_bias, segment_decode_attention
from windowkv.errors import WindowKVError
from windowkv.quantizers.base import AffineCodes

#: storage layouts of the kept slots: ragged when heads keep different counts, or always padded / ragged
LAYOUTS = ("auto", "padded", "ragged")


class Codec(Protocol):
    """Low-bit storage of kept slots (a :class:`windowkv.quantizers.Quantizer` satisfies it).

    An optional ``affine_codes(stored)`` returning :class:`~windowkv.quantizers.base.AffineCodes` (or ``None``)
    lets decode steps read the codes (:meth:`CompressedLayer.packed_attention`); without it, or when it returns
    ``None``, attention reads the dequantized slots."""

    def quantize(self, x: Tensor) -> Any: ...

    def dequantize(self, q: Any) -> Tensor: ...


def _affine_codes(codec: Codec, stored: Any) -> AffineCodes | None:
    """``codec``'s :class:`~windowkv.quantizers.base.AffineCodes` view of ``stored``, or ``None`` (no such view:
    attention reads the dequantized slots)."""
    view = getattr(codec, "affine_codes", None)
    return view(stored) if view is not None else None


def _tensors_of(obj: Any) -> list[Tensor]:
    """The tensors an object holds: itself, or the tensor fields of a dataclass (quantized storage)."""
    if isinstance(obj, Tensor):
        return [obj]
    if dataclasses.is_dataclass(obj):
        return [v for f in dataclasses.fields(obj) if isinstance(v := getattr(obj, f.name), Tensor)]
    return []


def _map_batch(obj: Any, fn: Callable[[Tensor], Tensor]) -> Any:
    """Apply ``fn`` to a tensor or to every batch-leading tensor field of a dataclass."""
    if obj is None:
        return None
    if isinstance(obj, Tensor):
        return fn(obj)
    changes: dict[str, Any] = {f.name: fn(v) for f in dataclasses.fields(obj)
                               if isinstance(v := getattr(obj, f.name), Tensor) and v.dim() > 0}
    shape = getattr(obj, "shape", None)
    if isinstance(shape, tuple) and shape and changes:  # the original shape of packed storage
        changes["shape"] = (next(iter(changes.values())).shape[0], *shape[1:])
    return dataclasses.replace(obj, **changes)


def _quantize(codec: Codec | None, role: str, x: Tensor) -> Any:
    """``x`` stored by ``codec`` (its ``quantize_keys``/``quantize_values`` when it has them), or as is."""
    if codec is None:
        return x
    return getattr(codec, f"quantize_{role}", codec.quantize)(x)


def _nbytes(obj: Any) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors_of(obj))


class CompressedLayer(DynamicLayer):
    """A cache layer holding a compressed prompt and the tokens appended after it.

    Args:
        keys: ``[B, H_kv, K0, D]`` kept prompt keys (after RoPE), or ``[B, H_kv, K0, C]`` with
            ``key_channels``.
        values: ``[B, H_kv, K0, D]`` kept prompt values.
        positions: ``[B, H, K0]`` long, the prompt position of each slot in padded coordinates
            (``H`` is 1 when all KV heads keep the same positions, else ``H_kv``).
        valid: ``[B, H, K0]`` bool, False for padding and unused slots (never attended to).
        prompt_length: ``L``, the padded prompt length (the logical length after the prefill).
        weights: ``[B, H_kv, K0]`` float32, tokens each slot stands for (``None``: 1 everywhere).
        key_channels: ``[B, H_kv, C]`` long, the key channels kept (``None``: all ``D``).
        head_dim: ``D``, needed with ``key_channels``.
        codec: quantizer of the kept slots (``None``: dense storage); keys and values are stored as
            ``codec.quantize_keys(...)`` / ``codec.quantize_values(...)`` (or ``codec.quantize``); a decode
            step reads the codes (``codec.affine_codes``), other forwards the dequantized slots.
        owner: who compressed the layer (model and policy), checked when the cache is continued.
        sliding_window: the model layer's sliding window, if any (eviction cannot combine with it).
        layout: ``"auto"`` (ragged when the slots are stored dense and per KV head, and some row's heads
            keep different numbers of slots or none fills ``K0``; else padded), ``"padded"`` or
            ``"ragged"`` (refused with a quantizer or pruned key channels).
    """

    is_sliding = False
    is_compileable = False
    is_croppable = True

    def __init__(self, keys: Tensor, values: Tensor, positions: Tensor, valid: Tensor, prompt_length: int, *,
                 weights: Tensor | None = None, key_channels: Tensor | None = None, head_dim: int | None = None,
                 codec: Codec | None = None, owner: Any = None, sliding_window: int | None = None,
                 layout: str = "auto") -> None:
        super().__init__()
        if layout not in LAYOUTS:
            raise ValueError(f"unknown cache layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        if layout == "ragged" and (codec is not None or key_channels is not None):
            raise WindowKVError("the ragged cache layout stores dense slots: it cannot hold quantized slots or "
                                "pruned key channels (use layout='auto' or 'padded')")
        if positions.shape != valid.shape or positions.shape[-1] != keys.shape[-2]:
            raise ValueError(f"positions {tuple(positions.shape)}, valid {tuple(valid.shape)} and keys "
                             f"{tuple(keys.shape)} disagree on the number of kept slots")
        if key_channels is not None and head_dim is None:
            raise ValueError("key_channels needs head_dim (the full key width)")
        self.device, self.dtype = keys.device, keys.dtype
        self.positions, self.valid = positions, valid
        self.prompt_length = int(prompt_length)
        self.logical_length = int(prompt_length)
        #: logical position of the first appended token: slots stand for positions before it
        self.slots_end = int(prompt_length)
        #: keep the queries of the last ``query_window`` tokens (for decode-time re-scoring)
        self.query_window = 0
        self.recent_queries: Tensor | None = None  # [B, H_q, <= query_window, D]
        self.scaling: float | None = None
        self.weights = weights
        self.key_channels = key_channels
        self.head_dim = head_dim if head_dim is not None else keys.shape[-1]
        self.codec = codec
        self.owner = owner
        self.sliding_window = sliding_window
        self.expect_update = False
        self.is_initialized = True
        self.num_slots = keys.shape[-2]
        self.layout = layout
        #: the kept slots without padding (``None``: padded storage in ``keys`` or ``stored_keys``)
        self.ragged: RaggedSlots | None = None
        #: ``((B, H_q, dtype), [B x H_q, S])`` segment bias of the ragged slots, built at the first decode step
        self._segment_bias: tuple[Any, Tensor] | None = None
        if key_channels is None and codec is None:
            # dense: one tensor for slots and appended tokens, grown like a DynamicLayer
            self.stored_keys = self.stored_values = None
            self.keys, self.values = keys, values
            self._choose_layout()
        else:
            self.stored_keys = _quantize(codec, "keys", keys)
            self.stored_values = _quantize(codec, "values", values)
            empty = keys.new_zeros(*keys.shape[:2], 0, self.head_dim)
            self.keys, self.values = empty, values.new_zeros(*values.shape[:2], 0, values.shape[-1])

    # ------------------------------------------------------------------ what transformers calls

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:  # pragma: no cover
        raise WindowKVError("a CompressedLayer is created initialised")

    def update(self, key_states: Tensor, value_states: Tensor, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        """Append new tokens; return the keys and values attention reads: dense ``[B, H_kv, K, D]`` slots and
        appended tokens, or only the appended tokens when the slots are stored ragged, quantized or with
        pruned key channels (windowkv's attention function reads those from the layer)."""
        if not self.expect_update:
            raise WindowKVError(
                "this KV cache was compressed by windowkv: continue it only while its policy is applied "
                "(`with policy.apply(model): ...`); windowkv's attention function builds its masks"
            )
        self.expect_update = False
        self.keys = torch.cat([self.keys, key_states], dim=-2)
        self.values = torch.cat([self.values, value_states], dim=-2)
        self.logical_length += key_states.shape[-2]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        """The logical length: prompt tokens (padded) plus appended tokens, as without compression."""
        return self.logical_length

    def get_mask_sizes(self, query: int | Tensor) -> tuple[int, int]:
        """``(kv_length, kv_offset)`` of the logical sequence; ``query`` is the query length (5.2x: the
        queries' ``cache_position``)."""
        query_length = query.shape[0] if isinstance(query, Tensor) else int(query)
        return self.logical_length + query_length, 0

    def get_max_length(self) -> int:
        return -1

    def get_max_cache_shape(self) -> int:  # transformers 5.2.x name of get_max_length
        return -1

    def reset(self) -> None:
        raise WindowKVError("a compressed cache cannot be reset in place; start from a new cache")

    def crop(self, tokens_to_remove: int) -> None:
        """Remove the last ``-tokens_to_remove`` appended tokens (prompt slots cannot be cropped)."""
        if tokens_to_remove > 0:
            raise ValueError("crop takes a negative number of tokens to remove")
        n = -tokens_to_remove
        if n == 0:
            return
        if n > self.appended_length:
            raise WindowKVError(f"cannot crop {n} tokens: only {self.appended_length} were appended after the "
                                "compressed prompt")
        self.keys, self.values = self.keys[..., :-n, :], self.values[..., :-n, :]
        self.logical_length -= n

    def _map_rows(self, fn: Callable[[Tensor], Tensor]) -> None:
        ragged = self.ragged is not None
        if ragged:
            self._to_padded()
        self.keys, self.values = fn(self.keys), fn(self.values)
        self.positions, self.valid = fn(self.positions), fn(self.valid)
        self.recent_queries = _map_batch(self.recent_queries, fn)
        self.weights = _map_batch(self.weights, fn)
        self.key_channels = _map_batch(self.key_channels, fn)
        self.stored_keys = _map_batch(self.stored_keys, fn)
        self.stored_values = _map_batch(self.stored_values, fn)
        if ragged:
            self._choose_layout()

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._map_rows(lambda t: t.repeat_interleave(repeats, dim=0))

    def batch_select_indices(self, indices: Tensor) -> None:
        self._map_rows(lambda t: t[indices, ...])

    def reorder_cache(self, beam_idx: Tensor) -> None:
        self._map_rows(lambda t: t.index_select(0, beam_idx.to(t.device)))

    def offload(self) -> None:
        raise WindowKVError("offloading a compressed cache is not supported")

    # ------------------------------------------------------------------ windowkv's view

    @property
    def appended_length(self) -> int:
        """Tokens appended after the compressed prompt."""
        return self.logical_length - self.slots_end

    def physical_length(self) -> int:
        """Slots held: kept prompt slots plus appended tokens."""
        return self.num_slots + self.appended_length

    def head_lengths(self) -> Tensor:
        """``[B, H]`` valid prompt slots per row and head (``H`` is 1 for head-shared selections)."""
        return self.valid.sum(-1)

    def kv_nbytes(self) -> int:
        """Bytes of key/value storage really held: slots (packed when quantized, with scales), per-slot
        weights, kept-channel indices and appended tokens; position bookkeeping is not counted."""
        slots = (_nbytes(self.stored_keys) + _nbytes(self.stored_values)) if self.stored_keys is not None else 0
        if self.ragged is not None:  # packed slots, their weights and the per-(row, head) lengths
            slots += self.ragged.nbytes()
        return slots + _nbytes(self.keys) + _nbytes(self.values) + _nbytes(self.weights) + _nbytes(self.key_channels)

    def dense(self) -> tuple[Tensor, Tensor]:
        """Every physical slot as dense ``[B, H_kv, K, D]`` keys and values: what attention reads (ragged
        slots are padded to the fullest head here: only for several new tokens at once and re-scoring)."""
        if self.stored_keys is None and self.ragged is None:
            return self.keys, self.values
        slot_keys, slot_values = self.dense_slots()
        return torch.cat([slot_keys, self.keys], dim=-2), torch.cat([slot_values, self.values], dim=-2)

    def dense_slots(self) -> tuple[Tensor, Tensor]:
        """The kept prompt slots as dense ``[B, H_kv, K0, D]`` keys and values (dequantized, pruned key
        channels zero-filled: a zero channel adds nothing to ``q·k``, so attention equals the query
        reduced to the kept channels)."""
        if self.ragged is not None:
            keys, values, _ = unpack(self.ragged, self.keys.shape[0])
            return keys, values
        if self.stored_keys is None:
            return self.keys[..., : self.num_slots, :], self.values[..., : self.num_slots, :]
        keys, values = self.stored_keys, self.stored_values
        if self.codec is not None:
            keys, values = self.codec.dequantize(keys), self.codec.dequantize(values)
        keys, values = keys.to(self.dtype), values.to(self.dtype)
        if self.key_channels is not None:
            full = keys.new_zeros(*keys.shape[:-1], self.head_dim)
            idx = self.key_channels[:, :, None, :].expand(*keys.shape)
            keys = full.scatter(-1, idx, keys)
        return keys, values

    def slot_positions(self) -> tuple[Tensor, Tensor]:
        """True positions and validity of every physical slot, appended tokens included.

        Returns:
            ``positions`` ``[B, H, K]`` long and ``valid`` ``[B, H, K]`` bool, ``K = physical_length()``.
        """
        b, heads, _ = self.positions.shape
        appended = torch.arange(self.slots_end, self.logical_length, device=self.positions.device)
        positions = torch.cat([self.positions, appended[None, None].expand(b, heads, -1)], dim=-1)
        valid = torch.cat([self.valid, self.valid.new_ones(b, heads, appended.numel())], dim=-1)
        return positions, valid

    def record_queries(self, query: Tensor, scaling: float | None) -> None:
        """Keep the last :attr:`query_window` queries ``[B, H_q, q, D]`` (called by the attention function)."""
        recent = query if self.recent_queries is None else torch.cat([self.recent_queries, query], dim=-2)
        self.recent_queries = recent[:, :, -self.query_window:].detach()
        self.scaling = scaling

    def recent_attention(self, reduce: str = "sum") -> Tensor:
        """``[B, H_kv, K]`` float32: attention of the recent queries to every physical slot, summed over the
        queries (``reduce="max"``: its maximum over them, CORM) and averaged over each KV head's query heads
        (a slot a query could not see gets 0).

        Raises:
            WindowKVError: no queries were recorded (set :attr:`query_window` > 0 before decoding).
        """
        if self.recent_queries is None:
            raise WindowKVError("no recent queries recorded: the policy must set recent_query_window > 0")
        keys, _ = self.dense()
        q = self.recent_queries.float()
        b, h_q, w, d = q.shape
        h_kv = keys.shape[1]
        q = q.view(b, h_kv, h_q // h_kv, w, d)
        scaling = self.scaling if self.scaling is not None else d ** -0.5
        logits = torch.einsum("bhgwd,bhkd->bhgwk", q, keys.float()) * scaling
        positions, valid = self.slot_positions()
        query_pos = torch.arange(self.logical_length - w, self.logical_length, device=positions.device)
        seen = valid[:, :, None, :] & (positions[:, :, None, :] <= query_pos[None, None, :, None])  # [B,H,w,K]
        logits = logits.masked_fill(~seen[:, :, None], float("-inf"))
        weights = logits.softmax(-1).nan_to_num(0.0)
        if reduce not in ("sum", "max"):
            raise ValueError(f"reduce must be 'sum' or 'max' (got {reduce!r})")
        return (weights.sum(-2) if reduce == "sum" else weights.amax(-2)).mean(2)

    def retain(self, index: Tensor, valid: Tensor) -> None:
        """Keep only the physical slots ``index`` ``[B, H, K']`` (``H`` 1 or ``H_kv``; ``valid`` marks real
        ones); the kept appended tokens become slots, and later tokens are appended after them.

        Raises:
            WindowKVError: the slots are stored quantized or with pruned key channels.
        """
        if self.stored_keys is not None:
            raise WindowKVError("re-selecting slots stored quantized or with pruned key channels is not supported")
        from windowkv.tensor_ops import gather_positions

        ragged = self.ragged is not None
        if ragged:
            self._to_padded()
        positions, slot_valid = self.slot_positions()
        heads = max(index.shape[1], positions.shape[1])
        b, k = index.shape[0], index.shape[-1]
        idx = index.expand(b, heads, k)
        self.positions = positions.expand(b, heads, -1).gather(-1, idx)
        self.valid = slot_valid.expand(b, heads, -1).gather(-1, idx) & valid.expand(b, heads, k)
        if self.weights is not None:
            ones = self.weights.new_ones(*self.weights.shape[:2], self.appended_length)
            self.weights = torch.cat([self.weights, ones], dim=-1).gather(-1, idx.expand(b, self.weights.shape[1], k))
        self.keys, self.values = gather_positions(self.keys, idx), gather_positions(self.values, idx)
        self.num_slots = k
        self.slots_end = self.logical_length
        if ragged or self.layout == "ragged":
            self._choose_layout()

    def attention_mask(self, logical_mask: Tensor | None, query_length: int, num_query_heads: int,
                       style: str, dtype: torch.dtype) -> Tensor:
        """The mask of this forward's ``query_length`` queries over the layer's slots (after :meth:`update`).

        Args:
            logical_mask: the mask transformers built for the logical sequence, ``[B, 1, q, logical]``
                (bool, True attends, or additive float), or ``None`` (plain causal, no padding).
            num_query_heads: ``H_q``; per-KV-head selections are repeated over their query heads.
            style: ``"sdpa"`` (bool mask, or float when weights add a bias) or ``"eager"`` (additive float).
            dtype: dtype of an additive mask.

        Returns:
            ``[B, 1 | H_q, q, K0 + appended]``: a slot is seen where it is valid and the logical mask lets
            the query see the slot's true position; merged slots add ``log(weight)``.
        """
        slots, new = self._visibility(logical_mask, query_length)
        mask = torch.cat([slots, new], dim=-1)
        heads = mask.shape[1]
        weights = self.weights if self.ragged is None or self.ragged.weights is None else \
            unpack(self.ragged, mask.shape[0])[2]
        if weights is not None:
            return self._weighted(mask, weights, num_query_heads, dtype)
        if heads > 1:
            mask = mask.repeat_interleave(num_query_heads // heads, dim=1)
        if style == "eager":
            return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, torch.finfo(dtype).min)
        return mask

    def _visibility(self, logical_mask: Tensor | None, query_length: int) -> tuple[Tensor, Tensor]:
        """Which slots (``[B, H, q, K0]``) and appended tokens (``[B, H, q, T]``) each query sees (bool)."""
        b, heads, k0 = self.valid.shape
        appended = self.appended_length
        if logical_mask is None:
            slots = self.valid[:, :, None, :].expand(b, heads, query_length, k0)
            new = torch.ones(query_length, appended, dtype=torch.bool, device=self.valid.device)
            new = new.tril(appended - query_length)[None, None].expand(b, heads, query_length, appended)
        else:
            if logical_mask.shape[-1] != self.logical_length or logical_mask.shape[-2] != query_length:
                raise WindowKVError(
                    f"the attention mask covers {logical_mask.shape[-1]} keys for {logical_mask.shape[-2]} queries; "
                    f"the compressed layer has seen {self.logical_length} tokens: pass the attention mask of the "
                    "whole sequence (prompt, earlier turns and new tokens)"
                )
            allowed = logical_mask if logical_mask.dtype == torch.bool else logical_mask == 0
            allowed = allowed[:, :1].expand(b, 1, query_length, allowed.shape[-1])
            idx = self.positions[:, :, None, :].expand(b, heads, query_length, k0)
            slots = allowed.expand(b, heads, query_length, -1).gather(-1, idx) & self.valid[:, :, None, :]
            new = allowed[..., self.slots_end:].expand(b, heads, query_length, appended)
        return slots, new

    # ------------------------------------------------------------------ ragged storage

    def _choose_layout(self) -> None:
        """Pack dense padded slots ragged when the layout asks for it (``"auto"``: some row's KV heads keep
        different counts, or no head fills the padded width: :func:`~windowkv.cache.ragged.wastes_padding`)."""
        if self.stored_keys is not None or self.ragged is not None or self.layout == "padded":
            return
        if self.layout == "auto" and not wastes_padding(self.valid):
            return
        k0 = self.num_slots
        valid = self.valid.expand(self.keys.shape[0], self.keys.shape[1], k0)
        self.ragged = pack(self.keys[..., :k0, :], self.values[..., :k0, :], valid, self.weights)
        self._segment_bias = None
        self.keys, self.values = self.keys[..., k0:, :].clone(), self.values[..., k0:, :].clone()
        self.weights = None

    def _to_padded(self) -> None:
        """Turn ragged slots back into the padded layout (unused slots zero, weight 1, invalid)."""
        keys, values, weights = unpack(self.ragged, self.keys.shape[0])
        self.keys, self.values = torch.cat([keys, self.keys], dim=-2), torch.cat([values, self.values], dim=-2)
        self.weights = weights
        self.ragged = None
        self._segment_bias = None

    def can_attend_stored(self, query_length: int, **kwargs: Any) -> bool:
        """Whether :meth:`attend_stored` may serve this forward: slots stored ragged, quantized or with pruned
        key channels, one new token, no logit soft-capping or attention sinks (those go through the model's
        attention over :meth:`dense`)."""
        return ((self.ragged is not None or self.stored_keys is not None) and query_length == 1
                and kwargs.get("softcap") is None and kwargs.get("s_aux") is None and kwargs.get("sinks") is None)

    def attend_stored(self, query: Tensor, logical_mask: Tensor | None, scaling: float | None) -> Tensor | None:
        """Decode attention over the slots as stored (after :meth:`update`, when :meth:`can_attend_stored`):
        :meth:`ragged_attention` or :meth:`packed_attention`; ``None`` when the codec offers no affine view
        of its codes (the caller then attends over :meth:`dense`)."""
        if self.ragged is not None:
            return self.ragged_attention(query, logical_mask, scaling)
        return self.packed_attention(query, logical_mask, scaling)

    def packed_attention(self, query: Tensor, logical_mask: Tensor | None, scaling: float | None) -> Tensor | None:
        """Decode attention of ``query`` ``[B, H_q, 1, D]`` over the quantized and/or channel-pruned slots and
        the dense tail (after :meth:`update`), read as stored; returns ``[B, 1, H_q, D]``, or ``None`` when the
        codec has no :class:`~windowkv.quantizers.base.AffineCodes` view."""
        keys, values = self.stored_keys, self.stored_values
        if self.codec is not None:
            keys, values = _affine_codes(self.codec, keys), _affine_codes(self.codec, values)
            if keys is None or values is None:
                return None
        slots, new = self._visibility(logical_mask, 1)
        bias = torch.zeros(slots.shape, dtype=torch.float32, device=slots.device).masked_fill(~slots, float("-inf"))
        if self.weights is not None:
            bias = bias + torch.log(self.weights.clamp(min=1e-30)).float()[:, :, None, :]
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        return packed_decode_attention(query, keys, values, self.key_channels, bias, self.keys, self.values, new,
                                       scale)

    def ragged_attention(self, query: Tensor, logical_mask: Tensor | None, scaling: float | None) -> Tensor:
        """Decode attention of ``query`` ``[B, H_q, 1, D]`` over the ragged slots and the dense tail
        (after :meth:`update`); returns ``[B, 1, H_q, D]``."""
        slots, new = self._visibility(logical_mask, 1)
        b, h_kv, k0 = self.keys.shape[0], self.ragged.num_heads, self.num_slots
        slot_visible = slots[:, :, 0].expand(b, h_kv, k0).reshape(-1).index_select(0, self.ragged.index)
        scale = scaling if scaling is not None else query.shape[-1] ** -0.5
        key = (b, query.shape[1], query.dtype)
        if self._segment_bias is None or self._segment_bias[0] != key or self._segment_bias[1].device != query.device:
            self._segment_bias = (key, segment_bias(self.ragged, b, query.shape[1], query.dtype))
        return segment_decode_attention(query, self.ragged, slot_visible, self.keys, self.values, new, scale,
                                        bias=self._segment_bias[1])

    def _weighted(self, mask: Tensor, weights: Tensor, num_query_heads: int, dtype: torch.dtype) -> Tensor:
        """Additive float mask with ``log(weight)`` (``weights`` ``[B, H_kv, K0]``) on the slots (both sdpa
        and eager take it)."""
        h_kv = weights.shape[1]
        mask = mask.expand(mask.shape[0], h_kv, *mask.shape[2:])
        q = mask.shape[2]
        log_w = torch.log(weights.clamp(min=1e-30)).to(dtype)
        bias = torch.cat([log_w[:, :, None, :].expand(-1, -1, q, -1),
                          log_w.new_zeros(*log_w.shape[:2], q, mask.shape[-1] - log_w.shape[-1])], dim=-1)
        out = bias.masked_fill(~mask, torch.finfo(dtype).min)
        return out.repeat_interleave(num_query_heads // h_kv, dim=1)
