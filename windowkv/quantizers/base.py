"""The quantizer contract: how a layer's kept keys and values are stored.

Low-bit storage of the kept slots (MiniKV, arXiv 2411.18077; KIVI, arXiv 2402.02750): values are packed
``bits`` to a byte-lane of ``uint8``, with a scale and a zero point per group of ``group_size``
consecutive values along the last dimension. A cache's size in bytes is read from the tensors a
:class:`QuantizedTensor` holds (:attr:`QuantizedTensor.nbytes`).
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from pydantic import Field, model_validator
from torch import Tensor

from windowkv.component import Component


@dataclass(frozen=True)
class QuantizedTensor:
    """A packed low-bit tensor.

    Attributes:
        data: ``uint8``, ``bits`` bits per value: ``[..., N * bits / 8]`` for an original ``[..., N]``.
        scale, zero: ``[..., N / group_size]`` float32, one per group of ``group_size`` values along the
            last dimension; a value is ``zero + q * scale``.
        shape: the original shape; dtype: the original dtype.
        bits: bits per value; group_size: values per scale.
        axis: the axis a group runs along: ``-1`` (channels, the default) or ``-2`` (tokens: a scale per
            channel for each group of ``group_size`` tokens, as KIVI/MiniKV store keys); the codes are always
            packed along the last dimension.
    """

    data: Tensor
    scale: Tensor
    zero: Tensor
    shape: tuple[int, ...]
    dtype: torch.dtype
    bits: int
    group_size: int
    axis: int = -1

    @property
    def nbytes(self) -> int:
        """Bytes of the tensors held: packed data, scales and zero points."""
        return sum(t.numel() * t.element_size() for t in (self.data, self.scale, self.zero))


@dataclass(frozen=True)
class AffineCodes:
    """A stored ``[..., K, N]`` tensor read as ``value = zero + code * scale`` per group: what windowkv's decode
    attention reads instead of the dequantized tensor (:mod:`windowkv.cache.packed_attention`).

    Attributes:
        data: ``[..., K, N * bits / 8]`` uint8, the integer codes packed ``8 / bits`` to a byte along the last
            dimension, lowest bits first (channel ``i * 8 / bits + l`` is lane ``l`` of byte ``i``).
        bits: bits per code (1, 2, 4 or 8).
        scale, zero: one per group of ``group_size`` values along ``axis`` (any float dtype):
            ``[..., K, N / group_size]`` for ``axis=-1`` (channels), ``[..., ceil(K / group_size), N]`` for
            ``axis=-2`` (tokens; the last token group may be partial), the :class:`QuantizedTensor` layout.
        group_size: values per scale; axis: ``-1`` or ``-2``.
    """

    data: Tensor
    bits: int
    scale: Tensor
    zero: Tensor
    group_size: int
    axis: int


class Quantizer(Component):
    """Packs a tensor to ``bits`` bits per value and back; the base class checks shapes and packing.

    Subclasses implement :meth:`encode` and :meth:`decode`. :meth:`quantize` refuses a last dimension
    that is not a multiple of ``group_size`` and checks that the data is packed exactly
    (``data.numel() * 8 == numel(x) * bits``); :meth:`dequantize` restores shape and dtype.
    """

    kind: ClassVar[str] = "quantizer"

    bits: int = Field(4, ge=1, le=8, description="Bits per stored value.")
    group_size: int = Field(32, ge=1, description="Values per scale and zero point, along the last dimension.")

    @model_validator(mode="after")
    def _groups_pack_whole_bytes(self) -> Quantizer:
        per_byte = 8 // self.bits if 8 % self.bits == 0 else 0
        if per_byte == 0 or self.group_size % per_byte:
            raise ValueError(f"group_size {self.group_size} must be a multiple of the {8 // math.gcd(8, self.bits)} "
                             f"values that fill whole bytes at {self.bits} bits")
        return self

    def quantize(self, x: Tensor) -> QuantizedTensor:
        """``x`` ``[..., N]`` (``N`` a multiple of ``group_size``) -> packed :class:`QuantizedTensor`."""
        if x.dim() == 0 or x.shape[-1] % self.group_size:
            raise ValueError(f"quantizer {self.name!r}: the last dimension of {tuple(x.shape)} is not a multiple of "
                             f"group_size {self.group_size} (the packing width at {self.bits} bits is "
                             f"{8 // self.bits} values per byte)")
        q = self.encode(x)
        if q.data.dtype != torch.uint8 or q.data.numel() * 8 != x.numel() * self.bits:
            raise ValueError(f"quantizer {self.name!r} packed {x.numel()} values at {self.bits} bits into "
                             f"{q.data.numel()} {q.data.dtype} elements; expected {x.numel() * self.bits // 8} uint8")
        return q

    def quantize_keys(self, x: Tensor) -> QuantizedTensor:
        """Keys ``[..., K, C]``; the default stores them like any tensor (:meth:`quantize`)."""
        return self.quantize(x)

    def quantize_values(self, x: Tensor) -> QuantizedTensor:
        """Values ``[..., K, D]``; the default stores them like any tensor (:meth:`quantize`)."""
        return self.quantize(x)

    def dequantize(self, q: QuantizedTensor) -> Tensor:
        """The approximate original tensor, in its shape and dtype."""
        x = self.decode(q)
        if tuple(x.shape) != tuple(q.shape):
            raise ValueError(f"quantizer {self.name!r} decoded shape {tuple(x.shape)}, expected {tuple(q.shape)}")
        return x.to(q.dtype)

    def affine_codes(self, q: QuantizedTensor) -> AffineCodes | None:
        """``q`` as codes plus per-group scale and zero point, without dequantizing, or ``None``.

        windowkv's decode attention (one new token per row) computes logits and the value mix from this view
        (:mod:`windowkv.cache.packed_attention`). The default, ``None``, says the codec does not store that
        affine form (non-uniform levels, another layout): attention then reads the slots through
        :meth:`dequantize`, as for several new tokens at once. Override it only when ``dequantize(q)`` equals
        ``zero + codes * scale`` with ``scale`` and ``zero`` laid out per :class:`AffineCodes`.
        """
        return None

    def incompatibility(self, policy: Any, head_dim: int) -> str | None:
        """Why this quantizer cannot serve ``policy`` on a model with ``head_dim``: the stored last
        dimension (``head_dim``, or the kept channels of the policy's channel pruner) must be a multiple
        of ``group_size``."""
        pruner = getattr(policy, "channel_pruner", None)
        stored = pruner.num_channels(head_dim) if pruner is not None else head_dim
        if stored % self.group_size:
            kept = f"the {stored} key channels its channel pruner keeps" if pruner is not None else f"head_dim {head_dim}"
            return f"{kept} is not a multiple of group_size {self.group_size}"
        return None

    @abstractmethod
    def encode(self, x: Tensor) -> QuantizedTensor:
        """Pack ``x`` (its last dimension is a multiple of ``group_size``)."""

    @abstractmethod
    def decode(self, q: QuantizedTensor) -> Tensor:
        """Unpack ``q`` to a tensor of ``q.shape``."""
