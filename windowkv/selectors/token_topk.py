"""Token top-k selector: keep the individually best tokens (SnapKV, arXiv 2404.14469)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from windowkv.selectors.base import HeadMode
from windowkv.selectors.window_average import WindowAverageSelector


class TokenTopKSelector(WindowAverageSelector):
    """Keeps the ``budget`` highest-scoring tokens: a window selector with windows of one token.

    Shapes: scores ``[B, H_kv, R]`` -> keep ``[B, H, R]``; per KV head by default, as in SnapKV.
    """

    name: ClassVar[str] = "token_topk"

    window_size: int = Field(1, ge=1, le=1, description="Always 1: tokens are selected one by one.")
    heads: HeadMode = Field("per_kv_head", description="'per_kv_head' (SnapKV) or 'shared'.")
