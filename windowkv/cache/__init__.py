"""windowkv's KV-cache engine: the compressed cache layer and the attention function that reads it."""

from windowkv.cache.attention import IMPLEMENTATIONS, LAYER_KWARG, make_attention, register_attention
from windowkv.cache.layer import CompressedLayer

__all__ = ["IMPLEMENTATIONS", "LAYER_KWARG", "CompressedLayer", "make_attention", "register_attention"]
