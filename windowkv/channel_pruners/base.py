"""The channel-pruner contract: which key channels a layer keeps.

ThinK (Xu et al., arXiv 2407.21018) observes that a few channels of the keys carry most of the
attention logits: pruning the others shrinks the key cache by the pruned share at little quality cost.
The attention function then reduces each query to the kept channels of its KV head.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from windowkv.component import Component


class ChannelPruner(Component):
    """Keeps ``C = D - floor((1 - keep_ratio) * D)`` key channels per KV head (at least 1); the base class
    owns the top-k.

    ThinK's pruning ratio is ``1 - keep_ratio``: ``floor`` of the pruned channels matches ThinK's and
    kvpress's ``int(D * ratio)``. Subclasses implement :meth:`channel_scores`; :meth:`select_channels`
    checks the shapes and keeps the ``C`` best channels, sorted, so a pruner always returns the declared
    count. A policy whose pruner would keep every channel of the model's head (``C == D``: nothing
    pruned) is refused at ``apply`` (:meth:`incompatibility`); pruning to 0 channels cannot be configured
    (``keep_ratio > 0`` and ``C >= 1``).
    """

    kind: ClassVar[str] = "channel_pruner"

    keep_ratio: float = Field(0.6, gt=0.0, lt=1.0, description="Share of the key channels kept per KV head.")

    def num_channels(self, head_dim: int) -> int:
        """``C``, the channels kept of ``head_dim``."""
        pruned = math.floor((1.0 - self.keep_ratio) * head_dim + 1e-9)
        return min(head_dim, max(1, head_dim - pruned))

    def select_channels(self, queries: Tensor, keys: Tensor, num_key_value_groups: int) -> Tensor:
        """The kept channel indices.

        Args:
            queries: ``[B, H_q, s, D]`` the suffix queries, ``H_q = H_kv * num_key_value_groups``.
            keys: ``[B, H_kv, L, D]`` the layer's prompt keys.
            num_key_value_groups: query heads per KV head.

        Returns:
            ``[B, H_kv, C]`` long, sorted and unique per KV head.
        """
        b, h_kv, _, d = keys.shape
        if (queries.dim() != 4 or queries.shape[0] != b or queries.shape[1] != h_kv * num_key_value_groups
                or queries.shape[-1] != d):
            raise ValueError(f"channel pruner {self.name!r} needs queries [B, H_kv x G, s, D] and keys "
                             f"[B, H_kv, L, D]; got {tuple(queries.shape)}, {tuple(keys.shape)}, G={num_key_value_groups}")
        scores = self.channel_scores(queries, keys, num_key_value_groups)
        if scores.shape != (b, h_kv, d):
            raise ValueError(f"channel pruner {self.name!r} scored {tuple(scores.shape)}; expected {(b, h_kv, d)}")
        kept = torch.topk(scores.float(), self.num_channels(d), dim=-1, sorted=False).indices
        return kept.sort(dim=-1).values

    def incompatibility(self, policy: Any, head_dim: int) -> str | None:
        """Why this pruner cannot serve ``policy`` on a model with ``head_dim``: it would keep all of the
        head's channels (nothing pruned), or ``None``."""
        if self.num_channels(head_dim) >= head_dim:
            return (f"keep_ratio {self.keep_ratio} keeps all {head_dim} key channels of head_dim {head_dim}: "
                    f"nothing would be pruned; use keep_ratio <= {(head_dim - 1) / head_dim:.4g}")
        return None

    @abstractmethod
    def channel_scores(self, queries: Tensor, keys: Tensor, num_key_value_groups: int) -> Tensor:
        """``[B, H_kv, D]`` importance of each key channel (higher is kept)."""
