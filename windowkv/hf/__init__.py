"""The transformers integration: applies a :class:`windowkv.Policy` to a Hugging Face model."""

from windowkv.hf.apply import CompressionHandle
from windowkv.hf.architectures import SUPPORTED_ATTENTION, SUPPORTED_MODEL_TYPES, attention_layers

__all__ = ["CompressionHandle", "SUPPORTED_MODEL_TYPES", "SUPPORTED_ATTENTION", "attention_layers"]
