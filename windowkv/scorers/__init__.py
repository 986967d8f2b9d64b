"""Scorers: per-token importance of the review tokens ``[batch, kv_heads, L_review]``."""

from windowkv.scorers.base import Scorer
from windowkv.scorers.suffix_attention import SuffixAttentionScorer

__all__ = ["Scorer", "SuffixAttentionScorer"]
