"""Quantizers: how a layer's kept keys and values are stored (packed low-bit with scales)."""

from windowkv.quantizers.base import QuantizedTensor, Quantizer
from windowkv.quantizers.minikv import MiniKVQuantizer
from windowkv.quantizers.uniform import UniformQuantizer

__all__ = ["Quantizer", "QuantizedTensor", "UniformQuantizer", "MiniKVQuantizer"]
