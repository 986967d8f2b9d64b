"""The merger contract: what happens to the evicted prompt tokens of one layer.

After selection, a layer keeps ``K`` slots per KV head. A merger builds their keys and values: it either
drops the evicted tokens (``drop``) or merges each into a kept slot (KVMerger, arXiv 2407.08454; KeepKV,
arXiv 2504.09936). A slot's ``weight`` is the number of prompt tokens it stands for; the attention
function adds ``log(weight)`` to its logits, so a slot of ``m`` identical tokens gets the attention
those ``m`` tokens would have had together.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from windowkv.component import Component


@dataclass(frozen=True)
class MergeInputs:
    """One layer's prompt cache and its selection.

    Attributes:
        keys, values: ``[B, H_kv, L, D]`` the full prompt keys and values (padding included).
        positions: ``[B, H, K]`` long kept prompt positions, ``H`` is 1 (head-shared) or ``H_kv``.
        valid: ``[B, H, K]`` bool, False on unused slots.
        key_valid: ``[B, L]`` bool, False on left padding.
    """

    keys: Tensor
    values: Tensor
    positions: Tensor
    valid: Tensor
    key_valid: Tensor


@dataclass(frozen=True)
class MergedSlots:
    """The kept slots of one layer.

    Attributes:
        keys, values: ``[B, H_kv, K, D]``, the model's dtype.
        weights: ``[B, H_kv, K]`` float32, the prompt tokens each slot stands for: 1 for a kept token
            nothing was merged into, ``1 + m`` with ``m`` tokens merged in, 0 for an invalid slot.
    """

    keys: Tensor
    values: Tensor
    weights: Tensor


def check_async(condition: Tensor, message: str) -> None:
    """Raise ``ValueError(message)`` unless ``condition`` (a bool tensor) is true; on an accelerator the
    check is queued (``torch._assert_async``) instead of synchronising with the device."""
    if condition.device.type == "cpu":
        if not bool(condition):
            raise ValueError(message)
    else:
        torch._assert_async(condition, message)


class Merger(Component):
    """Builds a layer's kept slots from its selection; the base class checks shapes and weights.

    Subclasses implement :meth:`merge`. Calling the merger checks the result: shapes ``[B, H_kv, K, *]``,
    float32 weights, 0 on invalid slots and at least 1 on valid ones; for a merger with
    ``merges_all = True`` the weights of each (row, head) sum to the row's valid prompt tokens (no
    token is lost).
    """

    kind: ClassVar[str] = "merger"
    #: whether every evicted token is merged into some slot (the weights then count every prompt token)
    merges_all: ClassVar[bool] = True

    def __call__(self, inputs: MergeInputs) -> MergedSlots:
        """Check the inputs' shapes, run :meth:`merge` and check its result (see the class docstring)."""
        b, h_kv, length, d = inputs.keys.shape
        pos, valid = inputs.positions, inputs.valid
        if (inputs.values.shape != inputs.keys.shape or pos.dim() != 3 or pos.shape[0] != b
                or pos.shape[1] not in (1, h_kv) or valid.shape != pos.shape or inputs.key_valid.shape != (b, length)):
            raise ValueError(
                f"merger {self.name!r} needs keys/values [B, H_kv, L, D], positions/valid [B, 1|H_kv, K] and "
                f"key_valid [B, L]; got {tuple(inputs.keys.shape)}, {tuple(inputs.values.shape)}, "
                f"{tuple(pos.shape)}, {tuple(valid.shape)}, {tuple(inputs.key_valid.shape)}"
            )
        out = self.merge(inputs)
        k = pos.shape[-1]
        if (out.keys.shape != (b, h_kv, k, d) or out.values.shape != (b, h_kv, k, d)
                or out.weights.shape != (b, h_kv, k) or out.weights.dtype != torch.float32):
            raise ValueError(
                f"merger {self.name!r} returned keys {tuple(out.keys.shape)}, values {tuple(out.values.shape)}, "
                f"weights {out.weights.dtype} {tuple(out.weights.shape)}; expected [{b}, {h_kv}, {k}, {d}] and "
                f"float32 [{b}, {h_kv}, {k}]"
            )
        slots = valid.expand(b, h_kv, k)
        ok = ((out.weights == 0) | slots).all() & ((out.weights >= 1) | ~slots).all()
        if self.merges_all:
            tokens = inputs.key_valid.sum(-1, dtype=torch.float32)[:, None]  # [B, 1]
            expected = torch.where(slots.any(-1), tokens, 0.0)
            ok = ok & torch.isclose(out.weights.sum(-1), expected, rtol=0, atol=1e-3).all()
        check_async(ok, f"merger {self.name!r} broke its contract: weights must be 0 on invalid slots, >= 1 on "
                        "valid ones" + (" and sum to the row's valid prompt tokens" if self.merges_all else ""))
        return out

    def incompatibility(self, policy: Any, head_dim: int) -> str | None:
        """Why this merger cannot serve ``policy`` on a model with ``head_dim``, or ``None`` (the default:
        every policy). :meth:`windowkv.Policy.check_stages` turns a reason into an error naming both."""
        return None

    @abstractmethod
    def merge(self, inputs: MergeInputs) -> MergedSlots:
        """Return the kept slots' keys, values and weights (see :class:`MergedSlots`)."""


def gather_slots(x: Tensor, positions: Tensor) -> Tensor:
    """``[B, H_kv, L, D]`` at ``positions`` ``[B, 1|H_kv, K]`` -> ``[B, H_kv, K, D]``."""
    b, h_kv, _, d = x.shape
    idx = positions.expand(b, h_kv, positions.shape[-1])
    return x.gather(2, idx[..., None].expand(b, h_kv, idx.shape[-1], d))
