"""Which models windowkv drives, and how it recomputes a layer's queries.

windowkv hooks the standard attention modules of transformers decoders instead of copying model
files. With ``sdpa`` no attention weights are returned, so the scorer's queries are recomputed from
the layer's input hidden states exactly as the layer computes them: ``q_proj``, the optional per-head
``q_norm`` (Qwen3) and the model file's own ``apply_rotary_pos_emb``.
"""

from __future__ import annotations

import sys
from typing import Any, Callable

import torch
from torch import Tensor, nn

from windowkv.errors import UnsupportedModelError

#: ``config.model_type`` values whose attention modules windowkv has been tested on
SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
#: ``config._attn_implementation`` values windowkv builds decode masks for
SUPPORTED_ATTENTION = ("eager", "sdpa")


def text_config(model: nn.Module) -> Any:
    config = model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def attention_layers(model: nn.Module) -> list[nn.Module]:
    """The self-attention modules of ``model`` ordered by ``layer_idx``; checks support.

    Raises:
        UnsupportedModelError: unknown architecture, attention implementation, or module layout.
    """
    config = text_config(model)
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            f"windowkv does not support model type {model_type!r} yet; supported: "
            f"{', '.join(SUPPORTED_MODEL_TYPES)}"
        )
    impl = getattr(config, "_attn_implementation", None) or "eager"
    if impl.startswith("windowkv_"):
        raise UnsupportedModelError(
            "a windowkv policy is already applied to this model; remove it (leave its `with` block or call "
            "handle.remove()) before applying another"
        )
    if impl not in SUPPORTED_ATTENTION:
        raise UnsupportedModelError(
            f"attention implementation {impl!r} is not supported; load the model with "
            f"attn_implementation= one of {', '.join(SUPPORTED_ATTENTION)}"
        )
    layers = [m for m in model.modules() if hasattr(m, "layer_idx") and hasattr(m, "q_proj") and hasattr(m, "k_proj")]
    layers.sort(key=lambda m: m.layer_idx)
    expected = getattr(config, "num_hidden_layers", len(layers))
    if not layers or [m.layer_idx for m in layers] != list(range(expected)):
        raise UnsupportedModelError(
            f"found attention modules for layers {[m.layer_idx for m in layers]}, expected 0..{expected - 1}"
        )
    for module in layers:
        rope_fn(module)  # fail early if the model file has no standard rotary function
    return layers


def rope_fn(module: nn.Module) -> Callable[..., tuple[Tensor, Tensor]]:
    """The ``apply_rotary_pos_emb(q, k, cos, sin)`` of the module's own model file."""
    fn = getattr(sys.modules.get(type(module).__module__), "apply_rotary_pos_emb", None)
    if fn is None:
        raise UnsupportedModelError(f"{type(module).__name__} has no standard apply_rotary_pos_emb")
    return fn


def make_query_projector(
    module: nn.Module, hidden_states: Tensor, position_embeddings: tuple[Tensor, Tensor]
) -> Callable[[int, int], Tensor]:
    """``(start, end) -> [B, H_q, end - start, D]``: the layer's queries of prompt positions ``[start, end)``.

    Args:
        hidden_states: ``[B, L, hidden]`` the attention module's input at prefill.
        position_embeddings: ``(cos, sin)``, each ``[B, L, D]``, as passed to the module.
    """
    rope = rope_fn(module)
    cos, sin = position_embeddings

    def project(start: int, end: int) -> Tensor:
        with torch.no_grad():
            h = hidden_states[:, start:end]
            q = module.q_proj(h).view(*h.shape[:-1], -1, module.head_dim)
            q_norm = getattr(module, "q_norm", None)
            if q_norm is not None:
                q = q_norm(q)
            q = q.transpose(1, 2)
            q, _ = rope(q, q, cos[:, start:end], sin[:, start:end])
            return q

    return project
