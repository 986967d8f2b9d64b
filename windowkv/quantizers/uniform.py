"""Uniform (asymmetric min/max) quantization per group, as in KIVI (arXiv 2402.02750, Sec. 3) and MiniKV."""

from __future__ import annotations

from typing import ClassVar, Literal

import torch
from pydantic import Field
from torch import Tensor

from windowkv.quantizers.base import AffineCodes, QuantizedTensor, Quantizer


class UniformQuantizer(Quantizer):
    """Each group of ``group_size`` values maps ``[min, max]`` onto ``2^bits`` evenly spaced levels.

    Shapes: ``[..., N]`` -> data ``[..., N * bits / 8]`` uint8, scale/zero ``[..., N / group_size]``
    float32. The error of every value is at most ``scale / 2`` of its group (plus float rounding).
    """

    name: ClassVar[str] = "uniform"

    bits: Literal[2, 4, 8] = Field(4, description="Bits per stored value: 2, 4 or 8.")

    def encode(self, x: Tensor) -> QuantizedTensor:
        levels = 2**self.bits - 1
        n = x.shape[-1]
        groups = x.float().reshape(*x.shape[:-1], n // self.group_size, self.group_size)
        low = groups.amin(-1)
        scale = (groups.amax(-1) - low) / levels
        q = torch.round((groups - low[..., None]) / scale.clamp(min=torch.finfo(torch.float32).tiny)[..., None])
        per_byte = 8 // self.bits
        q = q.clamp(0, levels).to(torch.uint8).reshape(*x.shape[:-1], n // per_byte, per_byte)
        shifts = torch.arange(0, 8, self.bits, dtype=torch.uint8, device=x.device)
        data = (q << shifts).sum(-1, dtype=torch.uint8)  # the lanes do not overlap: sum == bitwise or
        return QuantizedTensor(data, scale, low, tuple(x.shape), x.dtype, self.bits, self.group_size)

    def decode(self, q: QuantizedTensor) -> Tensor:
        shifts = torch.arange(0, 8, q.bits, dtype=torch.uint8, device=q.data.device)
        levels = (q.data[..., None] >> shifts) & (2**q.bits - 1)  # [..., N * bits / 8, 8 / bits]
        groups = levels.reshape(*q.shape[:-1], q.shape[-1] // q.group_size, q.group_size).float()
        return (q.zero[..., None] + groups * q.scale[..., None]).reshape(q.shape)

    def affine_codes(self, q: QuantizedTensor) -> AffineCodes:
        """The packed codes with their scales and zero points: ``decode`` is their affine map."""
        return AffineCodes(q.data, q.bits, q.scale, q.zero, q.group_size, -1)

