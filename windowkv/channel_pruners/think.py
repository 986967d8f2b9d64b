"""ThinK: query-driven key channel pruning (Xu et al., arXiv 2407.21018, Sec. 3.2)."""

from __future__ import annotations

from typing import ClassVar

import torch
from torch import Tensor

from windowkv.channel_pruners.base import ChannelPruner


class ThinKPruner(ChannelPruner):
    """Scores channel ``j`` of a KV head by ``||Q[..., j]|| * ||K[..., j]||``: the query norm over the
    suffix queries (ThinK's observation window) of the head's GQA group, times the key norm over the keys
    the layer keeps; keeps the top ones, per KV head and per row.

    ThinK (Sec. 3.2) keeps the channels that minimise ``||Q K^T - Q S K^T||_F`` for a channel selection
    ``S``, solved greedily by this per-channel magnitude. kvpress's ``ThinKPress`` scores
    ``mean(Q_j^2) * mean(K_j^2)``, a monotone function of the same product: the same channels are kept
    (``tests/parity``). Keys are scored after token selection, as ``ComposedPress([SnapKVPress, ThinKPress])``.

    Shapes: queries ``[B, H_kv x G, s, D]``, keys ``[B, H_kv, L, D]`` -> scores ``[B, H_kv, D]``,
    float32. The default keeps 60% of the channels (ThinK prunes 40%).
    """

    name: ClassVar[str] = "think"

    def channel_scores(self, queries: Tensor, keys: Tensor, num_key_value_groups: int) -> Tensor:
        b, h_kv, _, d = keys.shape
        grouped = queries.reshape(b, h_kv, num_key_value_groups * queries.shape[2], d)
        q_norm = torch.linalg.vector_norm(grouped, dim=2, dtype=torch.float32)
        k_norm = torch.linalg.vector_norm(keys, dim=2, dtype=torch.float32)
        return q_norm * k_norm
