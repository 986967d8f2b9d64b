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
        queries: ``[B, H_q, s, D]`` the queries of the prompt's last ``s`` tokens (after RoPE), ``H_q`` a
            multiple of ``H_kv``; ``None`` when the caller has none (mergers that need them refuse).
        scaling: the attention scale of ``q . k`` (``None``: ``D ** -0.5``).
    """

    keys: Tensor
    values: Tensor
    positions: Tensor
    valid: Tensor
    key_valid: Tensor
    queries: Tensor | None = None
    scaling: float | None = None

    def suffix_log_attention(self) -> tuple[Tensor, Tensor]:
        """Log-attention of the suffix queries, for mergers that weigh tokens by attention.

        Returns:
            ``log_probs`` ``[B, H_kv, G, s, L]`` float32 (``-inf`` on padding and on keys after a query)
            and ``lse`` ``[B, H_kv, G, s, 1]``, the log normaliser of every query (so that the
            log-probability of any other key ``k`` at a position the query sees is
            ``q . k * scaling - lse``). A query on padding sees nothing: its row is all ``-inf``.
        """
        if self.queries is None:
            raise ValueError("this merger needs the suffix queries (MergeInputs.queries)")
        keys = self.keys.float()
        b, h_kv, length, d = keys.shape
        q = self.queries.float()
        groups, s = q.shape[1] // h_kv, q.shape[2]
        scaling = self.scaling if self.scaling is not None else d ** -0.5
        logits = torch.matmul(q.reshape(b, h_kv, groups * s, d) * scaling, keys.transpose(-1, -2))
        logits = logits.view(b, h_kv, groups, s, length)
        seen = self.key_valid[:, None, None, None, :] & (
            torch.arange(length, device=keys.device) <= torch.arange(length - s, length, device=keys.device)[:, None]
        )[None, None, None]
        logits = logits.masked_fill(~seen, float("-inf"))
        lse = torch.logsumexp(logits, dim=-1, keepdim=True)
        return (logits - lse).nan_to_num(nan=float("-inf")), lse

    def query_visibility(self, positions: Tensor) -> Tensor:
        """``[B, H, 1, s, K]`` bool: which suffix queries see a slot at ``positions`` ``[B, H, K]`` (causality)."""
        length = self.keys.shape[2]
        s = self.queries.shape[2]
        query_pos = torch.arange(length - s, length, device=positions.device)
        return (positions[:, :, None, None, :] <= query_pos[:, None])  # [B, H, 1, s, K]


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
    #: whether the weights count tokens (1 + merged tokens); ``False``: they are positive votes (KeepKV)
    weights_are_counts: ClassVar[bool] = True
    #: whether attention adds ``log(weight)`` of each slot to its logits (kept in the compressed layer)
    weights_bias_attention: ClassVar[bool] = True
    #: whether :meth:`merge` reads ``MergeInputs.queries`` (refused without them)
    needs_queries: ClassVar[bool] = False

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
        if self.needs_queries and (inputs.queries is None or inputs.queries.dim() != 4
                                   or inputs.queries.shape[0] != b or inputs.queries.shape[1] % h_kv
                                   or inputs.queries.shape[-1] != d):
            got = None if inputs.queries is None else tuple(inputs.queries.shape)
            raise ValueError(f"merger {self.name!r} needs the suffix queries [B, H_kv x G, s, D] "
                             f"(B={b}, H_kv={h_kv}, D={d}); got {got}")
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
        least = (out.weights >= 1) if self.weights_are_counts else (out.weights > 0) & out.weights.isfinite()
        ok = ((out.weights == 0) | slots).all() & (least | ~slots).all()
        counts_all = self.merges_all and self.weights_are_counts
        if counts_all:
            tokens = inputs.key_valid.sum(-1, dtype=torch.float32)[:, None]  # [B, 1]
            expected = torch.where(slots.any(-1), tokens, 0.0)
            ok = ok & torch.isclose(out.weights.sum(-1), expected, rtol=0, atol=1e-3).all()
        check_async(ok, f"merger {self.name!r} broke its contract: weights must be 0 on invalid slots, "
                        + (">= 1" if self.weights_are_counts else "finite and > 0") + " on valid ones" + (" and sum to the row's valid prompt tokens" if counts_all else ""))
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


def slot_of_tokens(positions: Tensor, valid: Tensor, length: int) -> Tensor:
    """``[B, H_kv, L]`` long: the slot index of each kept prompt position, ``-1`` for an evicted one.

    Args:
        positions, valid: ``[B, H_kv, K]`` kept positions and their validity (invalid slots own nothing).
    """
    b, h_kv, k = positions.shape
    target = torch.where(valid, positions, length)  # invalid slots are parked at index L
    own = torch.full((b, h_kv, length + 1), -1, dtype=torch.long, device=positions.device)
    own.scatter_(-1, target, torch.arange(k, device=positions.device).expand(b, h_kv, k))
    return own[..., :length]


def scatter_weighted_mean(x: Tensor, slot: Tensor, weight: Tensor, num_slots: int) -> tuple[Tensor, Tensor]:
    """Per slot, the ``weight``-weighted mean of the tokens assigned to it.

    Args:
        x: ``[B, H_kv, L, D]``; slot: ``[B, H_kv, L]`` long in ``[0, num_slots]`` (``num_slots``: no slot);
        weight: ``[B, H_kv, L]`` float32, ``>= 0`` (0 leaves a token out).

    Returns:
        ``[B, H_kv, num_slots, D]`` float32 means (0 for a slot with no weight) and ``[B, H_kv, num_slots]``
        total weights.
    """
    b, h_kv, length, d = x.shape
    contribution = torch.where(weight[..., None] > 0, x.float() * weight[..., None], 0.0)  # padding may be nan
    total = torch.zeros(b, h_kv, num_slots + 1, d, dtype=torch.float32, device=x.device)
    total.scatter_add_(2, slot[..., None].expand(b, h_kv, length, d), contribution)
    mass = torch.zeros(b, h_kv, num_slots + 1, dtype=torch.float32, device=x.device)
    mass.scatter_add_(-1, slot, weight)
    mass = mass[..., :num_slots]
    return total[:, :, :num_slots] / mass.clamp(min=torch.finfo(torch.float32).tiny)[..., None], mass
