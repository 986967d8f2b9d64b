"""MiniKV's low-bit storage: 2-bit keys per channel, values per token (Sharma et al., arXiv 2411.18077).

MiniKV (Sec. 4) stores the tokens its selection keeps at 2 bits, quantized the KIVI way (arXiv 2402.02750,
Sec. 3): **keys per channel** (a scale and zero point per channel for each group of ``group_size``
consecutive tokens: key outlier channels get their own range) and **values per token** (a scale and zero
point per group of ``group_size`` consecutive channels). Scales and zero points are stored in float16.
Codes are packed ``8 / bits`` to a byte along the channels, so the stored last dimension (the head dim, or
the key channels a channel pruner keeps) must be a multiple of the packing width (4 at 2 bits).

At 4 bits the same layout is the storage of the token-precision trade-off (arXiv 2412.12706: at a fixed
byte budget, keep more tokens at lower precision).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar, Literal

import torch
from pydantic import Field, model_validator
from torch import Tensor

from windowkv.quantizers.base import AffineCodes, QuantizedTensor, Quantizer

_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


def pack(codes: Tensor, bits: int) -> Tensor:
    """``[..., N]`` integer codes in ``[0, 2^bits)`` -> ``[..., N * bits / 8]`` uint8 (``N`` a multiple of ``8 / bits``)."""
    per_byte = 8 // bits
    lanes = codes.to(torch.uint8).reshape(*codes.shape[:-1], codes.shape[-1] // per_byte, per_byte)
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=codes.device)
    return (lanes << shifts).sum(-1, dtype=torch.uint8)  # the lanes do not overlap: sum == bitwise or


def unpack(data: Tensor, bits: int) -> Tensor:
    """Inverse of :func:`pack`: ``[..., M]`` uint8 -> ``[..., M * 8 / bits]`` uint8 codes."""
    shifts = torch.arange(0, 8, bits, dtype=torch.uint8, device=data.device)
    return ((data[..., None] >> shifts) & (2**bits - 1)).flatten(-2)


def _round(x: Tensor, dtype: torch.dtype, down: bool) -> Tensor:
    """``x`` in ``dtype``, rounded towards -inf (``down``) or +inf instead of to the nearest."""
    y = x.to(dtype)
    if dtype == torch.float32:
        return y
    off = (y.float() > x) if down else (y.float() < x)
    towards = torch.full((), float("-inf") if down else float("inf"), dtype=dtype, device=x.device)
    return torch.where(off, torch.nextafter(y, towards), y)


class MiniKVQuantizer(Quantizer):
    """Asymmetric min/max quantization, keys per channel over token groups, values per token over channel
    groups; float16 scales and zero points.

    Shapes: keys/values ``[..., K, D]`` -> data ``[..., K, D * bits / 8]`` uint8; key scale/zero
    ``[..., ceil(K / group_size), D]``, value scale/zero ``[..., K, D / group_size]``. A value's error is at
    most half its group's step (``scale / 2``) plus the float16 rounding of the scale and zero point.
    """

    name: ClassVar[str] = "minikv"

    bits: Literal[2, 4, 8] = Field(2, description="Bits per stored value: 2 (MiniKV), 4 or 8.")
    group_size: int = Field(16, ge=1, description="Tokens per key scale (per channel) and channels per value "
                                                  "scale (per token).")
    scale_dtype: Literal["float16", "bfloat16", "float32"] = Field(
        "float16", description="Storage dtype of the scales and zero points.")

    @model_validator(mode="after")
    def _groups_pack_whole_bytes(self) -> MiniKVQuantizer:
        return self  # keys group along tokens: only the packing width constrains the channels

    @property
    def packing_width(self) -> int:
        """Values per byte: the stored last dimension must be a multiple of it."""
        return 8 // self.bits

    # ------------------------------------------------------------------ roles

    def quantize_keys(self, x: Tensor) -> QuantizedTensor:
        """Keys ``[..., K, C]``: per channel, one scale per group of ``group_size`` tokens."""
        self._check_packing(x, "keys")
        return self._checked(x, self._encode_along(x, axis=-2))

    def quantize_values(self, x: Tensor) -> QuantizedTensor:
        """Values ``[..., K, D]``: per token, one scale per group of ``group_size`` channels."""
        return self.quantize(x)

    def quantize(self, x: Tensor) -> QuantizedTensor:
        if x.dim() and x.shape[-1] % self.group_size == 0:  # else the base class names group_size
            self._check_packing(x, "values")
        return super().quantize(x)

    def _check_packing(self, x: Tensor, role: str) -> None:
        if x.dim() == 0 or x.shape[-1] % self.packing_width:
            raise ValueError(f"quantizer {self.name!r}: the last dimension ({role}) of {tuple(x.shape)} is not a "
                             f"multiple of the packing width: {self.packing_width} values per byte at {self.bits} "
                             f"bits")

    def _checked(self, x: Tensor, q: QuantizedTensor) -> QuantizedTensor:
        if q.data.dtype != torch.uint8 or q.data.numel() * 8 != x.numel() * self.bits:
            raise ValueError(f"quantizer {self.name!r} packed {x.numel()} values into {q.data.numel()} bytes")
        return q

    # ------------------------------------------------------------------ per-group encoding

    def encode(self, x: Tensor) -> QuantizedTensor:
        return self._encode_along(x, axis=-1)

    def _encode_along(self, x: Tensor, axis: int) -> QuantizedTensor:
        """Groups of ``group_size`` along ``axis`` (-1: channels, -2: tokens; a last partial token group is
        scaled over the tokens it has)."""
        levels = 2**self.bits - 1
        xf = x.float()
        if axis == -1:
            groups = xf.reshape(*x.shape[:-1], x.shape[-1] // self.group_size, self.group_size)
            low, high = groups.amin(-1), groups.amax(-1)  # [..., K, D / G]
        else:
            k = x.shape[-2]
            n = math.ceil(k / self.group_size) if k else 0
            pad = n * self.group_size - k
            grow = torch.nn.functional.pad
            low = grow(xf, (0, 0, 0, pad), value=float("inf")).reshape(*x.shape[:-2], n, self.group_size,
                                                                          x.shape[-1]).amin(-2)
            high = grow(xf, (0, 0, 0, pad), value=float("-inf")).reshape(*x.shape[:-2], n, self.group_size,
                                                                            x.shape[-1]).amax(-2)
        dtype = _DTYPES[self.scale_dtype]
        # stored zero rounded down and scale rounded up: [zero, zero + levels * scale] covers [low, high],
        # so every code is within half a stored step of its value
        zero = _round(low, dtype, down=True)
        scale = _round((high - zero.float()) / levels, dtype, down=False)
        step = self._expand(scale.float(), axis, x.shape)
        base = self._expand(zero.float(), axis, x.shape)
        codes = torch.round((xf - base) / step.clamp(min=torch.finfo(torch.float32).tiny)).clamp(0, levels)
        return QuantizedTensor(pack(codes, self.bits), scale, zero, tuple(x.shape), x.dtype, self.bits,
                               self.group_size, axis)

    def _expand(self, per_group: Tensor, axis: int, shape: tuple[int, ...]) -> Tensor:
        if axis == -1:
            return per_group.repeat_interleave(self.group_size, dim=-1)
        return per_group.repeat_interleave(self.group_size, dim=-2)[..., : shape[-2], :]

    def decode(self, q: QuantizedTensor) -> Tensor:
        codes = unpack(q.data, q.bits).float().reshape(q.shape)
        return self._expand(q.zero.float(), q.axis, q.shape) + codes * self._expand(q.scale.float(), q.axis, q.shape)

    def affine_codes(self, q: QuantizedTensor) -> AffineCodes:
        """The packed codes with their scales and zero points: ``decode`` is their affine map."""
        return AffineCodes(q.data, q.bits, q.scale, q.zero, q.group_size, q.axis)

    # ------------------------------------------------------------------ policy checks

    def incompatibility(self, policy: Any, head_dim: int) -> str | None:
        """The stored key channels and the head dim must be multiples of the packing width (``8 / bits``),
        and the head dim (values) a multiple of ``group_size``."""
        pruner = getattr(policy, "channel_pruner", None)
        key_width = pruner.num_channels(head_dim) if pruner is not None else head_dim
        if head_dim % self.packing_width or key_width % self.packing_width:
            what = (f"head_dim {head_dim}" if head_dim % self.packing_width
                    else f"the {key_width} key channels its channel pruner keeps")
            return (f"{what} is not a multiple of the packing width ({self.packing_width} values per byte at "
                    f"{self.bits} bits)")
        if head_dim % self.group_size:
            return f"head_dim {head_dim} (values, grouped per token) is not a multiple of group_size {self.group_size}"
        return None
