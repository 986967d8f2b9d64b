"""Quantizers: how a layer's kept keys and values are stored (packed low-bit with scales)."""

from windowkv.quantizers.base import AffineCodes, QuantizedTensor, Quantizer
from windowkv.quantizers.minikv import MiniKVQuantizer
from windowkv.quantizers.uniform import UniformQuantizer

__all__ = ["AffineCodes", "Quantizer", "QuantizedTensor", "UniformQuantizer", "MiniKVQuantizer"]
