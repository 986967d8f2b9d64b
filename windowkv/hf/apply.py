"""Hooks that make a transformers model compress its KV cache at prefill.

``policy.apply(model)`` registers three hooks and returns a :class:`CompressionHandle`:

- a forward pre-hook on the model stages the prompt's token ids (for the task classifier);
- a forward pre-hook on every attention module detects the layer's prefill (its cache layer is
  empty) and, at the first layer, starts a :class:`~windowkv.run.CompressionRun` for that cache;
  at decode time it replaces the attention mask with one built from the layer's kept slots;
- a forward hook on every attention module evicts, right after the prefill attention, the positions
  the policy drops from the layer's cache.

Prefill is recognised from what every supported transformers release passes: the hidden states and
the cache object (``cache`` in 5.2x, ``past_key_values`` before), never ``cache_position``.
New tokens keep their true positions (``generate`` derives them from the 2-D mask, which windowkv does
not shorten); the decode mask matches each layer's compressed length.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from windowkv.errors import UnsupportedModelError
from windowkv.hf.architectures import attention_layers, make_query_projector, text_config
from windowkv.hf.masks import decode_mask, key_validity
from windowkv.run import CompressionRun
from windowkv.tensor_ops import gather_positions


@dataclass
class _CacheState:
    """What the hooks remember about one cache object between forwards."""

    run: CompressionRun
    key_valid: Tensor  # [B, L] bool
    prefill_inputs: dict[int, tuple[Tensor, tuple[Tensor, Tensor]]] = field(default_factory=dict)
    prompt_slots: dict[int, int] = field(default_factory=dict)  # layer -> K0
    validity: dict[int, Tensor] = field(default_factory=dict)  # layer -> [B, H, K0]
    deferred: dict[int, list[nn.Module]] = field(default_factory=dict)  # leader -> followers waiting
    deferred_layers: set[int] = field(default_factory=set)


def _cache_of(kwargs: dict[str, Any]) -> Any:
    cache = kwargs.get("cache")
    return cache if cache is not None else kwargs.get("past_key_values")


def _cache_layer(cache: Any, layer_idx: int) -> Any | None:
    layers = getattr(cache, "layers", None)
    if layers is None:
        raise UnsupportedModelError(
            f"windowkv needs a transformers DynamicCache with per-layer storage; got {type(cache).__name__}"
        )
    if layer_idx >= len(layers):
        return None  # a DynamicCache() built without a config creates its layers at their first update
    layer = layers[layer_idx]
    if not hasattr(layer, "keys") or getattr(layer, "is_compileable", False) or "Static" in type(layer).__name__:
        raise UnsupportedModelError(
            f"cache layer {type(layer).__name__} has a fixed size and cannot be compressed; use the default "
            "dynamic cache (do not pass cache_implementation='static')"
        )
    return layer


def _physical_length(layer: Any) -> int:
    if layer is None:
        return 0
    keys = getattr(layer, "keys", None)
    if not getattr(layer, "is_initialized", keys is not None) or keys is None or keys.numel() == 0:
        return 0
    return keys.shape[-2]


class CompressionHandle:
    """Compresses ``model``'s KV cache with ``policy`` at every prefill until :meth:`remove`.

    Use as a context manager::

        with policy.apply(model, tokenizer) as handle:
            out = model.generate(**inputs, max_new_tokens=32)
        handle.last_run.kept_tokens()  # kept prompt tokens per layer and row

    Args:
        policy: the compression policy.
        model: a transformers causal LM (see :data:`windowkv.hf.SUPPORTED_MODEL_TYPES`).
        tokenizer: decodes the prompt for classifiers that read text.
        task: force this task label (skips the classifier).
    """

    def __init__(self, policy: Any, model: nn.Module, tokenizer: Any = None, task: str | None = None):
        self.policy = policy
        self.model = model
        self.tokenizer = tokenizer
        self.task = task
        if task is not None and task not in policy.profiles:
            raise ValueError(f"unknown task {task!r}; the policy's profiles: {sorted(policy.profiles)}")
        if task is None and policy.classifier.needs_text and tokenizer is None:
            raise ValueError(
                f"classifier {policy.classifier.name!r} reads the prompt text: pass tokenizer= (or task=) to apply()"
            )
        self.layers = attention_layers(model)
        config = text_config(model)
        self.num_layers = len(self.layers)
        self.num_query_heads = config.num_attention_heads
        self.attn_style = "eager" if config._attn_implementation == "eager" else "sdpa"
        self.last_run: CompressionRun | None = None
        self._states: weakref.WeakKeyDictionary[Any, _CacheState] = weakref.WeakKeyDictionary()
        self._pending_ids: Tensor | None = None
        self._hooks = [model.register_forward_pre_hook(self._model_pre_hook, with_kwargs=True)]
        for module in self.layers:
            self._hooks.append(module.register_forward_pre_hook(self._attention_pre_hook, with_kwargs=True))
            self._hooks.append(module.register_forward_hook(self._attention_post_hook, with_kwargs=True))

    # ------------------------------------------------------------------ lifecycle

    def remove(self) -> None:
        """Remove the hooks; the model behaves as before ``apply``."""
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def __enter__(self) -> CompressionHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    # ------------------------------------------------------------------ hooks

    def _model_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]):
        cache = _cache_of(kwargs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        if cache is None or cache.get_seq_length() == 0:
            self._pending_ids = ids if isinstance(ids, Tensor) else None
            return None
        state = self._states.get(cache)
        if state is None or not state.run.active or kwargs.get("position_ids") is not None or 0 not in state.prompt_slots:
            return None
        # Without explicit positions the model would number new tokens from the (compressed) cache
        # length; give them the positions the uncompressed model would use.
        new = (ids if isinstance(ids, Tensor) else kwargs["inputs_embeds"]).shape[1]
        start = state.run.padded_length + _physical_length(_cache_layer(cache, 0)) - state.prompt_slots[0]
        positions = torch.arange(start, start + new, device=state.key_valid.device)
        kwargs["position_ids"] = positions[None].expand(state.key_valid.shape[0], new)
        return args, kwargs

    def _attention_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]):
        cache = _cache_of(kwargs)
        if cache is None:
            return None
        idx = module.layer_idx
        layer = _cache_layer(cache, idx)
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        physical = _physical_length(layer)
        if physical == 0:  # this layer's prefill
            if idx == 0:
                self._start_run(cache, hidden, kwargs.get("attention_mask"))
            state = self._states.get(cache)
            if state is not None and (state.run.layer_compresses(idx) or state.run.layer_needs_scores(idx)):
                state.prefill_inputs[idx] = (hidden, kwargs["position_embeddings"])
            return None
        state = self._states.get(cache)
        if state is None or not state.run.active:
            return None
        if getattr(layer, "is_sliding", False) and physical + hidden.shape[1] >= layer.sliding_window:
            raise UnsupportedModelError(
                f"layer {idx} uses a sliding window of {layer.sliding_window} tokens; windowkv does not "
                "combine eviction with sliding-window truncation yet (keep prompt + generation shorter)"
            )
        slots = state.prompt_slots[idx]
        kwargs["attention_mask"] = decode_mask(
            state.validity[idx], physical - slots, hidden.shape[1], self.num_query_heads, self.attn_style,
            hidden.dtype,
        )
        return args, kwargs

    def _attention_post_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        cache = _cache_of(kwargs)
        state = self._states.get(cache) if cache is not None else None
        idx = module.layer_idx
        if state is None or idx in state.prompt_slots or idx in state.deferred_layers:
            return None
        leader = state.run.leaders[idx]
        if leader > idx and idx in state.prefill_inputs:
            # the leader scores later: this layer's cache is evicted right after the leader's
            state.deferred.setdefault(leader, []).append(module)
            state.deferred_layers.add(idx)
            return None
        self._evict(state, cache, module)
        for follower in state.deferred.pop(idx, []):
            self._evict(state, cache, follower)
            state.deferred_layers.discard(follower.layer_idx)
        return None

    def _evict(self, state: _CacheState, cache: Any, module: nn.Module) -> None:
        """Select the kept positions of ``module``'s layer and shrink its cache layer to them."""
        idx = module.layer_idx
        layer = _cache_layer(cache, idx)
        inputs = state.prefill_inputs.pop(idx, None)
        key_valid = state.key_valid.to(layer.keys.device)  # layers may sit on several devices (device_map)
        selection = None
        if inputs is not None:
            hidden, position_embeddings = inputs
            selection = self.policy.select_layer(
                state.run, idx, layer.keys, layer.values, key_valid,
                make_query_projector(module, hidden, position_embeddings),
                module.scaling, module.num_key_value_groups,
            )
        if selection is None:
            state.prompt_slots[idx] = _physical_length(layer)
            state.validity[idx] = key_valid[:, None, :]
        else:
            layer.keys = gather_positions(layer.keys, selection.positions)
            layer.values = gather_positions(layer.values, selection.positions)
            state.prompt_slots[idx] = selection.positions.shape[-1]
            state.validity[idx] = selection.valid
            state.run.selections[idx] = selection

    # ------------------------------------------------------------------ runs

    def _start_run(self, cache: Any, hidden: Tensor, attention_mask: Tensor | None) -> None:
        batch, length = hidden.shape[:2]
        key_valid = key_validity(attention_mask, batch, length, hidden.device)
        # one device sync per prompt (not per layer or window): row lengths size the per-layer caches
        lengths, left_padded = torch.stack(
            [key_valid.sum(-1), (key_valid == key_valid.cummax(-1).values).all(-1)]
        ).tolist()
        if not all(left_padded):
            raise ValueError("windowkv needs left padding (tokenizer.padding_side = 'left') for batched prompts")
        texts = None
        if self.task is None and self.policy.classifier.needs_text:
            texts = self._prompt_texts(key_valid, length)
        run = self.policy.start_run(lengths, length, self.num_layers, texts=texts, task=self.task,
                                    device=hidden.device)
        self._states[cache] = _CacheState(run, key_valid)
        self.last_run = run
        self._pending_ids = None

    def _prompt_texts(self, key_valid: Tensor, length: int) -> list[str]:
        ids = self._pending_ids
        if ids is None or ids.shape[-1] != length:
            raise ValueError(
                f"classifier {self.policy.classifier.name!r} needs the prompt's input_ids (got embeddings only); "
                "pass task= to apply()"
            )
        return [self.tokenizer.decode(row[mask], skip_special_tokens=True) for row, mask in zip(ids, key_valid)]
