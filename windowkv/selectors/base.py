"""The window-selector contract: token scores + budget -> which review tokens to keep."""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar, Literal

from pydantic import Field
import torch
from torch import Tensor

from windowkv.component import Component
from windowkv.tensor_ops import keep_best, valid_prefix

HeadMode = Literal["shared", "per_kv_head"]


class Selector(Component):
    """Chooses the review tokens to keep in one layer, for every row and KV head at once.

    Rows arrive *aligned*: position ``j`` of row ``b`` is its ``j``-th review token, valid for
    ``j < lengths[b]`` (padding removed), so a selector never deals with padding offsets.

    The base class enforces the contract, whatever :meth:`select` returns: calling the selector clears
    every kept invalid position and **clips each row and head to its budget**, keeping the
    highest-scoring of the tokens :meth:`select` kept (scores averaged over heads for a head-shared
    selection). The caps come from :meth:`budget_caps`; clipping is a tensor comparison, never a
    device sync, so an over-budget plugin selector cannot push the suffix out of the layer's cache.
    ``windowkv.testing.check_selector_contract`` still reports a :meth:`select` that overshoots.
    """

    kind: ClassVar[str] = "selector"

    heads: HeadMode = Field(
        "shared",
        description="'shared': one selection per layer for all KV heads (scores averaged over heads, "
        "the paper's behaviour); 'per_kv_head': each KV head selects its own tokens.",
    )

    def __call__(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        """Check shapes, run :meth:`select` and clear invalid positions.

        Args:
            scores: ``[B, H_kv, R]`` float32 aligned token scores.
            lengths: ``[B]`` long, valid review tokens per row.
            budgets: ``[B]`` long, review tokens each row may keep.

        Returns:
            ``[B, H, R]`` bool keep mask, ``H = 1`` for ``heads="shared"``, else ``H_kv``.
        """
        if scores.dim() != 3 or lengths.shape != scores.shape[:1] or budgets.shape != scores.shape[:1]:
            raise ValueError(
                f"selector {self.name!r} needs scores [B, H, R] and lengths/budgets [B]; got "
                f"{tuple(scores.shape)}, {tuple(lengths.shape)}, {tuple(budgets.shape)}"
            )
        keep = self.select(scores, lengths, budgets)
        heads = 1 if self.heads == "shared" else scores.shape[1]
        if keep.shape != (scores.shape[0], heads, scores.shape[2]):
            raise ValueError(
                f"selector {self.name!r} returned shape {tuple(keep.shape)}; expected "
                f"{[scores.shape[0], heads, scores.shape[2]]}"
            )
        keep = keep & valid_prefix(lengths, scores.shape[2])[:, None, :]
        ranked = scores if heads == scores.shape[1] else scores.mean(dim=1, keepdim=True)
        per_head, per_row = self.budget_caps(lengths, budgets, heads)
        keep = keep_best(keep, ranked, per_head)
        if per_row is not None:
            keep = keep_best(keep.flatten(1), ranked.flatten(1), per_row).view_as(keep)
        return keep

    @abstractmethod
    def select(self, scores: Tensor, lengths: Tensor, budgets: Tensor) -> Tensor:
        """Return the ``[B, H, R]`` bool keep mask: at most ``budgets[b]`` tokens per row and head."""

    def budget_caps(self, lengths: Tensor, budgets: Tensor, heads: int) -> tuple[Tensor, Tensor | None]:
        """``([B] most tokens per head, [B] most tokens per row over its heads or None)``, long tensors.

        The default, ``min(budget, length)`` per head, matches :meth:`max_kept`; a selector that moves
        budget between heads overrides both.
        """
        return torch.minimum(budgets, lengths), None

    def max_kept(self, budget: int, length: int, num_heads: int) -> int:
        """The most review tokens one head may keep for a row with ``length`` review tokens.

        Sizes the layer's cache slots (:meth:`windowkv.run.CompressionRun.kept_bound`). The default,
        ``min(budget, length)``, holds for every selector that respects the budget in each head; a
        head-wise adaptive selector (AdaKV) keeps ``num_heads x budget`` per row in total but more than
        ``budget`` in some heads, and overrides this.
        """
        return min(budget, length)
