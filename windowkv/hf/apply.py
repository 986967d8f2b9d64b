"""Hooks that make a transformers model compress its KV cache, and the lifecycle of a compressed cache.

``policy.apply(model)`` switches the model's attention to windowkv's function (registered with
transformers' ``AttentionInterface``, :mod:`windowkv.cache.attention`), registers three hooks and
returns a :class:`CompressionHandle`:

- a forward pre-hook on the model stages the prompt's token ids (for the task classifier) and, on a
  cache that is already compressed, calls the policy's lifecycle hooks (decode steps, new turns);
- a forward pre-hook on every attention module detects the layer's prefill (its cache layer is
  empty) and, at the first layer, starts a :class:`~windowkv.run.CompressionRun` for that cache; on a
  compressed layer it hands the layer to the attention function, which builds the layer's mask;
- a forward hook on every attention module replaces, right after the prefill attention, the layer's
  cache by a :class:`~windowkv.cache.CompressedLayer` holding the positions the policy keeps.

Prefill is recognised from what every supported transformers release passes: the hidden states and
the cache object (``cache`` in 5.2x, ``past_key_values`` before), never ``cache_position``. A
compressed layer reports the logical length (tokens seen), so ``generate`` numbers new tokens at their
true positions and a continuation (second ``generate`` on the returned cache, prefix caching with
``copy.deepcopy``) feeds only the tokens the cache has not seen.
"""

from __future__ import annotations

import inspect
import json
import weakref
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from windowkv.cache import IMPLEMENTATIONS, LAYER_KWARG, CompressedLayer, register_attention
from windowkv.cache.layer import LAYOUTS
from windowkv.cache.nbytes import byte_cost, cache_nbytes
from windowkv.errors import ConfigError, UnsupportedModelError
from windowkv.hf.architectures import attention_layers, make_query_projector, text_config
from windowkv.hf.chunked import ChunkedPrefill, check_chunking, chunk_bounds, chunk_run, recompress_layer, \
    slice_forward_kwargs
from windowkv.hf.masks import key_validity
from windowkv.hf.stages import build_compressed_layer
from windowkv.run import CompressionRun


@dataclass
class _CacheState:
    """What the hooks remember about one cache object between forwards.

    ``run`` is ``None`` for a compressed cache this handle did not prefill (e.g. a ``copy.deepcopy``
    of one): it decodes and continues correctly, and lifecycle hooks receive ``run=None``.
    """

    run: CompressionRun | None
    key_valid: Tensor | None = None
    prefill_inputs: dict[int, tuple[Tensor, tuple[Tensor, Tensor]]] = field(default_factory=dict)
    deferred: dict[int, list[nn.Module]] = field(default_factory=dict)  # leader -> followers waiting
    deferred_layers: set[int] = field(default_factory=set)
    done_layers: set[int] = field(default_factory=set)  # layers the prefill has finished with
    decode_steps: int = 0


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
    if isinstance(layer, CompressedLayer):
        return layer
    if not hasattr(layer, "keys") or getattr(layer, "is_compileable", False) or "Static" in type(layer).__name__:
        raise UnsupportedModelError(
            f"cache layer {type(layer).__name__} has a fixed size and cannot be compressed; use the default "
            "dynamic cache (do not pass cache_implementation='static')"
        )
    return layer


def _physical_length(layer: Any) -> int:
    if layer is None:
        return 0
    if isinstance(layer, CompressedLayer):
        return layer.physical_length()
    keys = getattr(layer, "keys", None)
    if not getattr(layer, "is_initialized", keys is not None) or keys is None or keys.numel() == 0:
        return 0
    return keys.shape[-2]


def _compressed_layers(cache: Any) -> list[CompressedLayer]:
    return [layer for layer in getattr(cache, "layers", ()) if isinstance(layer, CompressedLayer)]


class CompressionHandle:
    """Compresses ``model``'s KV cache with ``policy`` at every prefill until :meth:`remove`.

    Use as a context manager::

        with policy.apply(model, tokenizer) as handle:
            out = model.generate(**inputs, max_new_tokens=32)
        handle.last_run.kept_tokens()  # kept prompt tokens per layer and row

    While the handle is active the model's ``config._attn_implementation`` is ``windowkv_sdpa`` (or
    ``windowkv_eager``); :meth:`remove` restores it.

    Args:
        policy: the compression policy.
        model: a transformers causal LM (see :data:`windowkv.hf.SUPPORTED_MODEL_TYPES`).
        tokenizer: decodes the prompt for classifiers that read text.
        task: force this task label (skips the classifier).
        layout: storage of the kept slots (:data:`windowkv.cache.layer.LAYOUTS`): ``"auto"`` stores a
            layer ragged when its KV heads keep different numbers of slots (no padding to the fullest
            head), ``"padded"`` always pads (the reference layout), ``"ragged"`` always packs.
        prefill_chunk: prefill prompts longer than this many tokens in chunks, compressing the cache
            between chunks (:mod:`windowkv.hf.chunked`); ``None`` prefills in one shot.
    """

    def __init__(self, policy: Any, model: nn.Module, tokenizer: Any = None, task: str | None = None,
                 layout: str = "auto", prefill_chunk: int | None = None):
        if prefill_chunk is not None:
            check_chunking(policy, prefill_chunk)
        self.prefill_chunk = prefill_chunk
        self._chunking: ChunkedPrefill | None = None
        if layout not in LAYOUTS:
            raise ValueError(f"unknown cache layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
        if layout == "ragged" and (policy.quantizer is not None or policy.channel_pruner is not None):
            raise ConfigError([("layout", "the ragged layout stores dense slots: it cannot combine with a "
                                          "quantizer or a channel pruner (use 'auto' or 'padded')")])
        self.layout = layout
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
        _refuse_unservable_stages(policy, model)
        self.layers = attention_layers(model)
        config = text_config(model)
        self.num_layers = len(self.layers)
        self.num_query_heads = config.num_attention_heads
        self.attn_style = "eager" if config._attn_implementation == "eager" else "sdpa"
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        policy.check_stages(head_dim)
        #: what a kept slot costs in bytes (byte budgets become review tokens with it)
        self.byte_cost = byte_cost(policy, self.num_layers, getattr(config, "num_key_value_heads", None)
                                   or config.num_attention_heads, head_dim, _kv_dtype(model))
        if policy.budget.nbytes is not None:  # refuse a byte budget the suffix alone exceeds, before any prompt
            try:
                policy.budget.average(0, suffix_size=max(p.suffix_size for p in policy.profiles.values()),
                                      cost=self.byte_cost)
            except ValueError as exc:
                raise ConfigError([("budget", str(exc))]) from None
        #: who compressed a cache: a continuation by another model or policy is refused
        self.owner = (id(model), json.dumps(policy.to_config(), sort_keys=True, default=str))
        #: decode-time compression: layers keep the prompt's last queries to score the first eviction
        self._seeds_queries = bool(getattr(policy, "keeps_compressed_layers", False)) and policy.recent_query_window > 0
        self.last_run: CompressionRun | None = None
        self._states: weakref.WeakKeyDictionary[Any, _CacheState] = weakref.WeakKeyDictionary()
        self._pending_ids: Tensor | None = None
        self._request_caches: list[Any] | None = None
        register_attention()
        self._restore_attn = config._attn_implementation
        _set_attn_implementation(model, IMPLEMENTATIONS[self.attn_style])
        self._hooks = [model.register_forward_pre_hook(self._model_pre_hook, with_kwargs=True)]
        for module in self.layers:
            self._hooks.append(module.register_forward_pre_hook(self._attention_pre_hook, with_kwargs=True))
            self._hooks.append(module.register_forward_hook(self._attention_post_hook, with_kwargs=True))
        self._wrap_generate()

    # ------------------------------------------------------------------ lifecycle

    def remove(self) -> None:
        """Remove the hooks; the model behaves as before ``apply``."""
        if not self._hooks:
            return
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()
        _set_attn_implementation(self.model, self._restore_attn)
        if self.model.__dict__.get("generate") is self._generate:
            del self.model.__dict__["generate"]

    def __enter__(self) -> CompressionHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def end_request(self, cache: Any) -> None:
        """Tell the policy that the request using ``cache`` is over (``generate`` does it by itself)."""
        state = self._states.get(cache)
        if state is not None or _compressed_layers(cache):
            self.policy.on_request_end(state.run if state is not None else None, cache)

    def _wrap_generate(self) -> None:
        """Call the policy's ``on_request_end`` when a ``model.generate`` call returns."""
        original = self.model.generate

        def generate(*args: Any, **kwargs: Any) -> Any:
            outer = self._request_caches
            self._request_caches = []
            try:
                return original(*args, **kwargs)
            finally:
                caches, self._request_caches = self._request_caches, outer
                for cache in caches:
                    self.end_request(cache)

        self._generate = generate
        self.model.__dict__["generate"] = generate

    # ------------------------------------------------------------------ hooks

    def _model_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]):
        cache = _cache_of(kwargs)
        ids = kwargs.get("input_ids", args[0] if args else None)
        if cache is None or cache.get_seq_length() == 0:
            if self._chunking is not None and self._chunking.cache is cache:
                self._pending_ids = ids if isinstance(ids, Tensor) else None  # the first chunk of a chunked prefill
                return None
            self._chunking = None  # a new prefill (a chunked one that raised is over)
            tokens = ids if isinstance(ids, Tensor) else kwargs.get("inputs_embeds")
            if self.prefill_chunk is not None and tokens is not None and tokens.shape[1] > self.prefill_chunk:
                return self._prefill_in_chunks(args, kwargs, cache)
            self._pending_ids = ids if isinstance(ids, Tensor) else None
            return None
        if self._chunking is not None and self._chunking.cache is cache:
            return None  # a later chunk: no lifecycle hooks inside the prefill
        compressed = _compressed_layers(cache)
        if not compressed:
            return None
        self._check_owner(compressed[0])
        state = self._states.get(cache)
        if state is None:  # a compressed cache this handle did not prefill (a deep copy, another handle)
            state = self._states[cache] = _CacheState(run=None)
        if self._request_caches is not None and all(c is not cache for c in self._request_caches):
            self._request_caches.append(cache)
        new = (ids if isinstance(ids, Tensor) else kwargs["inputs_embeds"]).shape[1]
        if new > 1:
            self.policy.on_new_turn(state.run, cache, new)
        else:
            state.decode_steps += 1
            interval = self.policy.decode_interval
            if interval and state.decode_steps % interval == 0:
                self.policy.on_decode_step(state.run, cache, state.decode_steps)
        return None

    def _check_owner(self, layer: CompressedLayer) -> None:
        if layer.owner != self.owner:
            raise ValueError(
                "this KV cache was compressed by another model or policy; continue it with the policy and "
                f"model that compressed it (this handle: policy {self.policy.name!r})"
            )

    def _attention_pre_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]):
        cache = _cache_of(kwargs)
        if cache is None:
            return None
        idx = module.layer_idx
        layer = _cache_layer(cache, idx)
        hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]
        chunking = self._chunking
        if chunking is not None and chunking.cache is cache and _physical_length(layer) > 0:
            chunking.inputs[idx] = (hidden, kwargs["position_embeddings"])  # a later chunk: recompressed after
        if isinstance(layer, CompressedLayer):
            self._check_owner(layer)
            if layer.sliding_window is not None and layer.physical_length() + hidden.shape[1] >= layer.sliding_window:
                raise UnsupportedModelError(
                    f"layer {idx} uses a sliding window of {layer.sliding_window} tokens; windowkv does not "
                    "combine eviction with sliding-window truncation yet (keep prompt + generation shorter)"
                )
            layer.expect_update = True
            kwargs[LAYER_KWARG] = layer
            return args, kwargs
        if _physical_length(layer) == 0:  # this layer's prefill
            if idx == 0:
                self._start_run(cache, hidden, kwargs.get("attention_mask"))
            state = self._states.get(cache)
            if state is not None and (state.run.layer_compresses(idx) or state.run.layer_needs_scores(idx)
                                      or self.policy.channel_pruner is not None or self._seeds_queries):
                state.prefill_inputs[idx] = (hidden, kwargs["position_embeddings"])
        return None

    def _attention_post_hook(self, module: nn.Module, args: tuple, kwargs: dict[str, Any], output: Any) -> None:
        cache = _cache_of(kwargs)
        idx = module.layer_idx
        chunking = self._chunking
        if chunking is not None and chunking.cache is cache and idx in chunking.inputs:
            self._recompress(chunking, cache, module)
            return None
        state = self._states.get(cache) if cache is not None else None
        if state is None or state.run is None or idx in state.done_layers or idx in state.deferred_layers:
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
        if len(state.done_layers) == self.num_layers and not (chunking is not None and chunking.cache is cache):
            state.run.kv_nbytes = cache_nbytes(cache)
            self.policy.on_prefill_end(state.run, cache)
        return None

    def _evict(self, state: _CacheState, cache: Any, module: nn.Module) -> None:
        """Select the kept positions of ``module``'s layer and replace its cache layer by a compressed one."""
        idx = module.layer_idx
        state.done_layers.add(idx)
        layer = _cache_layer(cache, idx)
        inputs = state.prefill_inputs.pop(idx, None)
        key_valid = state.key_valid.to(layer.keys.device)  # layers may sit on several devices (device_map)
        project = make_query_projector(module, *inputs) if inputs is not None else None
        selection = None
        if project is not None:
            selection = self.policy.select_layer(state.run, idx, layer.keys, layer.values, key_valid, project,
                                                 module.scaling, module.num_key_value_groups)
        if (not state.run.active and self.policy.quantizer is None and self.policy.channel_pruner is None
                and not getattr(self.policy, "keeps_compressed_layers", False)):
            return  # nothing is evicted anywhere: the model's own cache and masks stay
        sliding = getattr(layer, "sliding_window", None) if getattr(layer, "is_sliding", False) else None
        suffix = max(g.suffix_size for g in state.run.groups)
        compressed = build_compressed_layer(self.policy, layer.keys, layer.values, key_valid, selection, project,
                                            suffix, module.num_key_value_groups, module.scaling, owner=self.owner,
                                            sliding_window=sliding, layout=self.layout)
        if selection is not None:
            state.run.selections[idx] = selection
        compressed.query_window = self.policy.recent_query_window
        if self._seeds_queries and project is not None:  # the prompt's last queries score the first eviction
            length = layer.keys.shape[-2]
            compressed.record_queries(project(max(length - compressed.query_window, 0), length), module.scaling)
        cache.layers[idx] = compressed

    # ------------------------------------------------------------------ chunked prefill

    def _prefill_in_chunks(self, args: tuple, kwargs: dict[str, Any], cache: Any) -> tuple[tuple, dict[str, Any]]:
        """Run every chunk but the last through the model (compressing between them), then hand the model's
        forward the last chunk's inputs: its logits are the prompt's last tokens'."""
        if args:
            if len(args) > 1:
                raise ValueError("chunked prefill needs the model's inputs as keyword arguments (input_ids=...)")
            kwargs = {**kwargs, "input_ids": args[0]}
        if cache is None:
            if kwargs.get("use_cache") is False:
                raise ValueError("chunked prefill needs a KV cache: do not pass use_cache=False")
            from transformers import DynamicCache

            cache = DynamicCache(config=self.model.config)
            forward = inspect.signature(self.model.forward).parameters
            kwargs["cache" if "cache" in forward and "past_key_values" not in kwargs else "past_key_values"] = cache
        tokens = kwargs["input_ids"] if kwargs.get("input_ids") is not None else kwargs["inputs_embeds"]
        batch, length = tokens.shape[:2]
        mask = kwargs.get("attention_mask")
        if batch != 1:
            raise ValueError(f"chunked prefill serves one prompt at a time (got a batch of {batch}); prefill "
                             "rows one by one, or pass prefill_chunk=None")
        if mask is not None and (mask.dim() != 2 or not bool(mask.all())):  # one sync per prompt
            raise ValueError("chunked prefill needs an all-ones 2-D attention mask (no padding)")
        key_valid = torch.ones(1, length, dtype=torch.bool, device=tokens.device)
        self._pending_ids = kwargs.get("input_ids")
        run = self._plan_run(key_valid, length, tokens.device)
        bounds = chunk_bounds(length, self.prefill_chunk)
        self._chunking = ChunkedPrefill(run, cache, many=len(bounds) > 1)
        try:
            with torch.no_grad():
                for start, end in bounds[:-1]:
                    self._chunking.done.clear()
                    self.model(**{**slice_forward_kwargs(kwargs, start, end), "logits_to_keep": 1, "use_cache": True})
        except BaseException:
            self._chunking = None
            raise
        self._chunking.final = True
        self._chunking.done.clear()
        start, end = bounds[-1]
        return (), slice_forward_kwargs(kwargs, start, end)

    def _recompress(self, chunking: ChunkedPrefill, cache: Any, module: nn.Module) -> None:
        """Evict ``module``'s layer back to its budget right after a later chunk's attention."""
        idx = module.layer_idx
        hidden, position_embeddings = chunking.inputs.pop(idx)
        project = make_query_projector(module, hidden, position_embeddings)
        layer = cache.layers[idx]
        sliding = layer.sliding_window if isinstance(layer, CompressedLayer) else (
            getattr(layer, "sliding_window", None) if getattr(layer, "is_sliding", False) else None)
        compressed = recompress_layer(self.policy, chunking, idx, layer, project, hidden.shape[1], module.scaling,
                                      module.num_key_value_groups, owner=self.owner, sliding_window=sliding,
                                      layout=self.layout)
        if compressed is not None:
            compressed.query_window = self.policy.recent_query_window
            if self._seeds_queries:  # the prompt's last queries score the first decode-time eviction
                chunk = hidden.shape[1]
                compressed.record_queries(project(max(chunk - compressed.query_window, 0), chunk), module.scaling)
            cache.layers[idx] = compressed
        chunking.done.add(idx)
        if chunking.final and len(chunking.done) == self.num_layers:
            self._finish_chunks(chunking, cache)

    def _finish_chunks(self, chunking: ChunkedPrefill, cache: Any) -> None:
        """The last chunk is compressed: the whole-prompt run becomes the cache's, and the prefill ends."""
        self._chunking = None
        run = chunking.run
        state = self._states.get(cache)
        if state is None:
            state = self._states[cache] = _CacheState(run)
            if self._request_caches is not None:
                self._request_caches.append(cache)
        state.run = run
        state.key_valid = None
        self.last_run = run
        run.kv_nbytes = cache_nbytes(cache)
        if _compressed_layers(cache):
            self.policy.on_prefill_end(run, cache)

    # ------------------------------------------------------------------ runs

    def _start_run(self, cache: Any, hidden: Tensor, attention_mask: Tensor | None) -> None:
        batch, length = hidden.shape[:2]
        key_valid = key_validity(attention_mask, batch, length, hidden.device)
        chunking = self._chunking
        if chunking is not None and chunking.cache is cache:  # the first chunk, planned with the whole prompt
            run = chunk_run(chunking.run, length, chunking.many)
        else:
            run = self._plan_run(key_valid, length, hidden.device)
        self._states[cache] = _CacheState(run, key_valid)
        if self._request_caches is not None:
            self._request_caches.append(cache)
        self.last_run = run
        self._pending_ids = None

    def _plan_run(self, key_valid: Tensor, length: int, device: torch.device) -> CompressionRun:
        """Classify the prompt batch (``key_valid`` ``[B, L]``) and plan its compression."""
        # one device sync per prompt (not per layer or window): row lengths size the per-layer caches
        lengths, left_padded = torch.stack(
            [key_valid.sum(-1), (key_valid == key_valid.cummax(-1).values).all(-1)]
        ).tolist()
        if not all(left_padded):
            raise ValueError("windowkv needs left padding (tokenizer.padding_side = 'left') for batched prompts")
        texts = None
        if self.task is None and self.policy.classifier.needs_text:
            texts = self._prompt_texts(key_valid, length)
        return self.policy.start_run(lengths, length, self.num_layers, texts=texts, task=self.task,
                                     device=device, cost=self.byte_cost)

    def _prompt_texts(self, key_valid: Tensor, length: int) -> list[str]:
        ids = self._pending_ids
        if ids is None or ids.shape[-1] != length:
            raise ValueError(
                f"classifier {self.policy.classifier.name!r} needs the prompt's input_ids (got embeddings only); "
                "pass task= to apply()"
            )
        return [self.tokenizer.decode(row[mask], skip_special_tokens=True) for row, mask in zip(ids, key_valid)]


def _refuse_unservable_stages(policy: Any, model: nn.Module) -> None:
    """Name both the stage and the attention implementation when the model's attention cannot read the
    compressed layer's features (merge weights, pruned channels, packed slots)."""
    impl = getattr(text_config(model), "_attn_implementation", None) or "eager"
    if impl in IMPLEMENTATIONS or impl.startswith("windowkv_"):
        return
    stages = [f"{key} {getattr(policy, key).name!r}" for key in ("merger", "channel_pruner", "quantizer")
              if getattr(policy, key, None) is not None]
    if stages:
        raise UnsupportedModelError(
            f"attention implementation {impl!r} cannot read a compressed cache with {', '.join(stages)} "
            f"(per-slot weights, pruned key channels or packed slots); load the model with "
            f"attn_implementation= one of {', '.join(IMPLEMENTATIONS)}"
        )


def _kv_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the model's cache stores keys and values in (its floating-point parameters')."""
    for param in model.parameters():
        if param.is_floating_point():
            return param.dtype
    return torch.float32


def _set_attn_implementation(model: nn.Module, name: str) -> None:
    """Switch the model's attention implementation (and its sub-models') to ``name``."""
    setter = getattr(model, "set_attn_implementation", None)
    if setter is not None:
        setter(name)
    else:  # pragma: no cover - transformers releases without the setter
        text_config(model)._attn_implementation_internal = name
    if text_config(model)._attn_implementation != name:
        raise UnsupportedModelError(f"{type(model).__name__} does not let windowkv set its attention implementation "
                                    f"to {name!r}")
