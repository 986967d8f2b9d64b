"""Scorers: per-token importance of the review tokens ``[batch, kv_heads, L_review]``."""

from windowkv.scorers.base import Scorer
from windowkv.scorers.cumulative_attention import CumulativeAttentionScorer
from windowkv.scorers.key_norm import KeyNormScorer
from windowkv.scorers.pooled_suffix_attention import PooledSuffixAttentionScorer, avg_pool_scores
from windowkv.scorers.position import PositionScorer
from windowkv.scorers.random import RandomScorer
from windowkv.scorers.suffix_attention import SuffixAttentionScorer

__all__ = [
    "Scorer",
    "SuffixAttentionScorer",
    "PooledSuffixAttentionScorer",
    "CumulativeAttentionScorer",
    "KeyNormScorer",
    "PositionScorer",
    "RandomScorer",
    "avg_pool_scores",
]
