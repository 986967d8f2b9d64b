"""windowkv's attention functions, registered with transformers' ``AttentionInterface``.

``policy.apply(model)`` switches the model to ``windowkv_sdpa`` (or ``windowkv_eager``) and back on
``remove()``. The function is the model's own ``sdpa``/``eager`` attention, except on a
:class:`~windowkv.cache.layer.CompressedLayer`: there it replaces the mask transformers built for the
logical sequence with the layer's own (:meth:`CompressedLayer.attention_mask`: kept slots at their true
positions, unused slots hidden, ``log(weight)`` of merged slots); a decode step over ragged slots (KV heads
keeping different counts) is the layer's own segment attention (:meth:`CompressedLayer.ragged_attention`),
which never builds the padded keys; a decode step over quantized or channel-pruned slots reads the codes and
kept channels as stored (:meth:`CompressedLayer.packed_attention`), without dequantizing them. The compressed
layer is handed over by the attention module's pre-hook as the keyword argument :data:`LAYER_KWARG`; without
it (prefill, uncompressed layers) the call is exactly the underlying implementation's.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

from torch import Tensor, nn

from windowkv.cache.layer import CompressedLayer

#: the keyword argument that carries the layer's :class:`CompressedLayer` into the attention function
LAYER_KWARG = "windowkv_cache_layer"
#: ``attn_implementation`` names: the model's implementation -> windowkv's
IMPLEMENTATIONS = {"sdpa": "windowkv_sdpa", "eager": "windowkv_eager"}


def _eager_of(module: nn.Module) -> Callable[..., tuple[Tensor, Any]]:
    """The ``eager_attention_forward`` of the module's own model file (GQA repeat, softmax in float32)."""
    fn = getattr(sys.modules.get(type(module).__module__), "eager_attention_forward", None)
    if fn is None:
        raise RuntimeError(f"{type(module).__name__}'s model file has no eager_attention_forward")
    return fn


def make_attention(style: str) -> Callable[..., tuple[Tensor, Any]]:
    """The windowkv attention function over the ``style`` (``"sdpa"`` or ``"eager"``) implementation."""
    if style not in IMPLEMENTATIONS:
        raise ValueError(f"unknown attention style {style!r}; choose one of {', '.join(IMPLEMENTATIONS)}")

    def windowkv_attention(module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
                           attention_mask: Tensor | None, **kwargs: Any) -> tuple[Tensor, Any]:
        """Attention over a compressed layer: ``query`` ``[B, H_q, q, D]``, ``key``/``value`` ``[B, H_kv, K, D]``."""
        layer = kwargs.pop(LAYER_KWARG, None)
        if isinstance(layer, CompressedLayer):
            if layer.query_window:
                layer.record_queries(query, kwargs.get("scaling"))
            if layer.ragged is not None or layer.stored_keys is not None:
                if layer.can_attend_stored(query.shape[-2], **kwargs) and not module.training:
                    out = layer.attend_stored(query, attention_mask, kwargs.get("scaling"))
                    if out is not None:
                        return out, None
                key, value = layer.dense()  # several new tokens (or a codec without codes): padded slots, masked
            attention_mask = layer.attention_mask(attention_mask, query.shape[-2], query.shape[1], style,
                                                  query.dtype)
        if style == "sdpa":
            from transformers.integrations.sdpa_attention import sdpa_attention_forward

            return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
        return _eager_of(module)(module, query, key, value, attention_mask, **kwargs)

    windowkv_attention.__name__ = f"windowkv_{style}_attention"
    return windowkv_attention


_REGISTERED = False


def register_attention() -> None:
    """Register ``windowkv_sdpa`` and ``windowkv_eager`` (attention and mask functions); idempotent."""
    global _REGISTERED
    if _REGISTERED:
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    for style, name in IMPLEMENTATIONS.items():
        AttentionInterface.register(name, make_attention(style))
        # masks for the logical sequence are built exactly as for the underlying implementation
        ALL_MASK_ATTENTION_FUNCTIONS.register(name, ALL_MASK_ATTENTION_FUNCTIONS[style])
    _REGISTERED = True
