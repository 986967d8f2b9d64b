"""The state of one compression run: one prompt batch through one model.

Nothing here lives at class or module level. A :class:`CompressionRun` is created by
:meth:`windowkv.Policy.start_run` at the start of a prefill and dropped with its KV cache, so two
prompts, or two models, never see each other's indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor


@dataclass(frozen=True)
class TaskPrediction:
    """A task classifier's answer for one prompt."""

    label: str
    confidence: float = 1.0


@dataclass(frozen=True)
class LayerInputs:
    """What a :class:`~windowkv.scorers.Scorer` sees of one layer at prefill (rows of one profile).

    Attributes:
        layer_idx: index of the layer, ``0 <= layer_idx < num_layers``.
        num_layers: number of attention layers of the model.
        keys: ``[B, H_kv, L, D]`` cached keys (after RoPE and key norms), model dtype.
        values: ``[B, H_kv, L, D]`` cached values.
        key_valid: ``[B, L]`` bool, False for padding positions (left padding).
        suffix_size: ``s``, the number of last prompt positions always kept (the observation window).
        scaling: attention scale of the layer (usually ``D ** -0.5``).
        num_key_value_groups: query heads per KV head (GQA group size).
        project_queries: ``(start, end) -> [B, H_q, end - start, D]``, the queries of prompt positions
            ``[start, end)`` exactly as the layer computes them (projection, norms, RoPE).
        padded: whether some row has left padding (when False, ``key_valid`` is all True and scorers
            may skip masking).
    """

    layer_idx: int
    num_layers: int
    keys: Tensor
    values: Tensor
    key_valid: Tensor
    suffix_size: int
    scaling: float
    num_key_value_groups: int
    project_queries: Callable[[int, int], Tensor]
    padded: bool = True

    @property
    def length(self) -> int:
        """``L``, the padded prompt length."""
        return self.keys.shape[2]

    @property
    def review_length(self) -> int:
        """``R = L - s``, the positions that may be evicted (padded coordinates)."""
        return max(self.length - self.suffix_size, 0)

    def suffix_queries(self) -> Tensor:
        """``[B, H_q, s, D]``, the queries of the suffix."""
        return self.project_queries(self.length - min(self.suffix_size, self.length), self.length)


@dataclass(frozen=True)
class LayerSelection:
    """The cache kept by one layer.

    Attributes:
        positions: ``[B, H, K]`` long prompt positions kept (``H`` is 1 when heads share a selection),
            increasing along ``K`` over the valid slots; ``None`` when the layer kept everything.
        valid: ``[B, H, K]`` bool; False marks padding and unused slots, never attended to.
    """

    positions: Tensor | None
    valid: Tensor


@dataclass
class ProfileGroup:
    """The rows of a batch that share one task profile, and their per-layer budgets.

    Attributes:
        label: the task label of the rows.
        rows: indices of the rows in the batch.
        suffix_size: the profile's ``s``.
        review_lengths: ``L_r - s`` (at least 0) per row, tokens.
        budgets: ``budgets[l][i]``, review tokens layer ``l`` may keep for row ``rows[i]``.
        max_kept: ``(budget, review_length, num_heads) -> int``, the most review tokens one head of the
            profile's selector may keep (:meth:`windowkv.selectors.Selector.max_kept`); ``None`` means
            ``min(budget, review_length)``. Head-wise adaptive selectors (AdaKV) keep more in some heads.
    """

    label: str
    rows: list[int]
    suffix_size: int
    review_lengths: list[int]
    budgets: list[list[int]]
    max_kept: Callable[[int, int, int], int] | None = None

    def compresses(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` must evict anything for some row of the group."""
        return any(b < n for b, n in zip(self.budgets[layer_idx], self.review_lengths))

    def needs_scores(self, layer_idx: int, leaders: list[int]) -> bool:
        """Whether layer ``layer_idx`` scores the group's prompts: it evicts, or leads a layer that does.

        A leader scores whenever one of its followers evicts, even if it keeps everything itself, so a
        row's selection never depends on the other rows of the batch.
        """
        return any(self.compresses(layer) for layer, leader in enumerate(leaders) if leader == layer_idx)


@dataclass
class CompressionRun:
    """State of one prefill compression of one prompt batch.

    Attributes:
        lengths: true (unpadded) prompt length of each row, tokens.
        padded_length: ``L``, the prompt length including left padding.
        num_layers: attention layers of the model.
        groups: rows grouped by task profile.
        predictions: the classifier's prediction per row.
        leaders: the index-sharing leader of each layer.
        shared_scores: aligned token scores ``[B_g, H_kv, R]`` per ``(layer, group index)``, computed by
            a sharing leader and reused by its followers.
        selections: the kept cache of each layer, once compressed.
        kv_nbytes: bytes of key/value storage the cache holds right after the prefill, measured from its
            layers' tensors (:func:`windowkv.cache.nbytes.cache_nbytes`), for the whole batch.
    """

    lengths: list[int]
    padded_length: int
    num_layers: int
    groups: list[ProfileGroup]
    predictions: list[TaskPrediction]
    leaders: list[int]
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    shared_scores: dict[tuple[int, int], Tensor] = field(default_factory=dict)
    selections: dict[int, LayerSelection] = field(default_factory=dict)
    kv_nbytes: int | None = None

    @property
    def active(self) -> bool:
        """Whether any layer evicts anything for any row (False: the run is a no-op)."""
        return any(g.compresses(layer) for g in self.groups for layer in range(self.num_layers))

    def layer_compresses(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` evicts anything for any row."""
        return any(g.compresses(layer_idx) for g in self.groups)

    def layer_needs_scores(self, layer_idx: int) -> bool:
        """Whether layer ``layer_idx`` has work at prefill: it evicts or scores for a follower."""
        return any(g.needs_scores(layer_idx, self.leaders) for g in self.groups)

    def kept_bound(self, layer_idx: int, num_heads: int = 1) -> int:
        """Cache slots of layer ``layer_idx``: the largest ``min(b, L_r - s) + min(s, L_r)`` over rows.

        With ``num_heads`` KV heads selecting separately, a group's ``max_kept`` replaces
        ``min(b, L_r - s)`` (a head-wise adaptive selector may give one head more than ``b``).
        """
        bound = 0
        for g in self.groups:
            for i, row in enumerate(g.rows):
                suffix = min(g.suffix_size, self.lengths[row])
                budget, length = g.budgets[layer_idx][i], g.review_lengths[i]
                review = min(budget, length) if g.max_kept is None else g.max_kept(budget, length, num_heads)
                bound = max(bound, review + suffix)
        return bound

    def offsets(self) -> list[int]:
        """Leading padding positions of each row."""
        return [self.padded_length - n for n in self.lengths]

    def kept_tokens(self) -> list[list[int]]:
        """Valid kept prompt tokens per layer and row (averaged over heads); syncs with the device."""
        out = []
        for layer in range(self.num_layers):
            sel = self.selections.get(layer)
            if sel is None or sel.positions is None:
                out.append(list(self.lengths))
            else:
                out.append(sel.valid.float().sum(-1).mean(-1).round().long().tolist())
        return out
