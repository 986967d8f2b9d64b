"""The whole-method escape hatch: what the transformers integration needs from any policy.

:class:`windowkv.Policy` (score, then select, per task profile) is one way to satisfy
:class:`LayerPolicy`. A method that fits no slot of it (a decode-time evictor, a method with its own
cache logic) implements the protocol itself and is registered through ``windowkv_register_methods``;
a config builds it with ``{method: {type: NAME, ...params}}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from windowkv.budget import Budget
    from windowkv.run import CompressionRun, LayerSelection

#: the methods a registered method class must define (``name`` and ``budget`` are attributes)
METHODS = ("start_run", "select_layer", "apply", "to_config", "on_prefill_end", "on_decode_step",
           "on_new_turn", "on_request_end")


@runtime_checkable
class LayerPolicy(Protocol):
    """A KV-cache compression method, as the transformers integration drives it.

    Attributes:
        name: a name for tables and result files.
        budget: the average review tokens kept per layer (see :mod:`windowkv.budget`).
    """

    name: str
    budget: Budget

    def start_run(self, lengths: Sequence[int], padded_length: int, num_layers: int,
                  texts: Sequence[str | None] | None = None, task: str | None = None,
                  device: torch.device | str = "cpu") -> CompressionRun:
        """Plan one prefill of one prompt batch (see :meth:`windowkv.Policy.start_run`)."""

    def select_layer(self, run: CompressionRun, layer_idx: int, keys: Tensor, values: Tensor,
                     key_valid: Tensor, project_queries: Callable[[int, int], Tensor], scaling: float,
                     num_key_value_groups: int) -> LayerSelection | None:
        """The prompt positions one layer keeps (see :meth:`windowkv.Policy.select_layer`)."""

    def apply(self, model: Any, tokenizer: Any = None, task: str | None = None) -> Any:
        """Compress ``model``'s KV cache while the returned handle is active."""

    def to_config(self) -> dict[str, Any]:
        """The complete description of the method (a config that rebuilds it)."""

    def on_prefill_end(self, run: CompressionRun, cache: Any) -> None:
        """Called once the prompt's cache is compressed."""

    def on_decode_step(self, run: CompressionRun | None, cache: Any, step: int) -> None:
        """Called every ``decode_interval`` decode steps (see :meth:`windowkv.Policy.on_decode_step`)."""

    def on_new_turn(self, run: CompressionRun | None, cache: Any, num_new_tokens: int) -> None:
        """Called before a new turn of ``num_new_tokens`` tokens is appended to a compressed cache."""

    def on_request_end(self, run: CompressionRun | None, cache: Any) -> None:
        """Called when the request ends (the cache is about to be dropped)."""


def is_method_class(obj: object) -> bool:
    """Whether ``obj`` is a class a plugin may register as a method: a registry ``name`` and every
    method of :class:`LayerPolicy`."""
    return (isinstance(obj, type) and isinstance(getattr(obj, "name", None), str)
            and all(callable(getattr(obj, m, None)) for m in METHODS))
