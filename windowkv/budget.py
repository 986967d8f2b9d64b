"""What a budget counts, and its parsing.

A policy's budget is the **average number of review tokens kept per layer** (the paper's
``max_capacity_prompt``), given either as tokens or as a ratio of each prompt's review tokens:

- ``Budget.of(256)`` (an ``int``): on average over layers, each layer keeps at most 256 review tokens;
- ``Budget.of(0.25)`` (a ``float`` in ``(0, 1]``): on average each layer keeps at most 25% of the row's
  review tokens ``L - s``.

The suffix (the last ``s`` prompt tokens) is always kept on top of the budget. A budget at least as
large as the review part compresses nothing.

A budget may also be given in **bytes of the compressed prompt cache of one prompt** (all layers, suffix
included, in the storage the policy uses: packed low-bit slots with their scales, pruned key channels,
merge weights):

- ``Budget.of("1.5MiB")`` / ``"800KB"`` / ``"65536B"``: at most that many bytes per prompt;
- ``Budget.of("12% bytes")``: at most 12% of the bytes the uncompressed cache of the prompt holds.

A byte budget becomes an average review budget once the cost of a kept slot is known
(:class:`ByteCost`, from the model and the policy's stages): ``(bytes per layer - fixed bytes per layer) /
slot bytes - s``. A byte budget below what the suffix alone costs is an error naming both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


@dataclass(frozen=True)
class ByteCost:
    """What the compressed cache of one prompt costs, to turn a byte budget into review tokens.

    Attributes:
        num_layers: attention layers.
        slot_nbytes: bytes of one kept slot in one layer (keys and values of every KV head in the policy's
            storage, scales and merge weights included), amortised over whole quantization groups.
        token_nbytes: bytes of one prompt token in one layer of the uncompressed cache.
        layer_nbytes: fixed bytes of one layer (e.g. the kept key channel indices).
    """

    num_layers: int
    slot_nbytes: float
    token_nbytes: float
    layer_nbytes: float = 0.0


@dataclass(frozen=True)
class Budget:
    """A budget: exactly one of ``tokens``, ``ratio`` (average review tokens per layer, or their share of
    the review part), ``nbytes`` or ``bytes_ratio`` (bytes of one prompt's compressed cache, or their share
    of the uncompressed cache's bytes) is set."""

    tokens: int | None = None
    ratio: float | None = None
    nbytes: int | None = None
    bytes_ratio: float | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.tokens, self.ratio, self.nbytes, self.bytes_ratio)) != 1:
            raise ValueError("a budget is exactly one of a token count, a ratio, bytes or a share of bytes, not both or neither")
        if self.nbytes is not None and (isinstance(self.nbytes, bool) or not isinstance(self.nbytes, int)
                                        or self.nbytes < 1):
            raise ValueError(f"a byte budget must be an integer >= 1 (got {self.nbytes!r})")
        if self.bytes_ratio is not None and not (0.0 < self.bytes_ratio <= 1.0):
            raise ValueError(f"a share of the full cache's bytes must be in (0, 1] (got {self.bytes_ratio!r})")
        if self.nbytes is not None or self.bytes_ratio is not None:
            return
        if self.tokens is not None and (
            isinstance(self.tokens, bool) or not isinstance(self.tokens, int) or self.tokens < 1
        ):
            raise ValueError(f"a token budget must be an integer >= 1 (got {self.tokens!r})")
        if self.ratio is not None:
            if isinstance(self.ratio, bool) or not isinstance(self.ratio, (int, float)):
                raise ValueError(f"a ratio budget must be a number in (0, 1] (got {self.ratio!r})")
            object.__setattr__(self, "ratio", float(self.ratio))
        if self.ratio is not None and not (0.0 < self.ratio <= 1.0):
            raise ValueError(f"a ratio budget must be in (0, 1] (got {self.ratio!r})")

    @classmethod
    def of(cls, value: Any) -> Budget:
        """Parse ``256``, ``0.25``, ``"256"``, ``"0.25"`` or ``"25%"`` (ints are tokens, floats ratios), and byte
        budgets ``"1.5MiB"``, ``"800KB"``, ``"65536B"`` or ``"12% bytes"`` (a share of the full cache's bytes)."""
        if isinstance(value, Budget):
            return value
        if isinstance(value, bool):
            raise ValueError(f"a budget must be a token count or a ratio (got {value!r})")
        if isinstance(value, int):
            return cls(tokens=value)
        if isinstance(value, float):
            if value.is_integer() and value > 1:
                raise ValueError(
                    f"a float budget is a ratio in (0, 1] (got {value!r}); write {int(value)} for tokens"
                )
            return cls(ratio=value)
        if isinstance(value, str):
            text = value.strip()
            if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*%\s*(?:of\s+)?bytes", text):
                return cls(bytes_ratio=float(m.group(1)) / 100)
            if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)", text):
                return cls(nbytes=int(float(m.group(1)) * _UNITS[m.group(2)]))
            if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text):
                return cls(ratio=float(m.group(1)) / 100)
            if re.fullmatch(r"[+-]?\d+", text):
                return cls(tokens=int(text))
            try:
                return cls.of(float(text))
            except ValueError:
                pass
        raise ValueError(
            f"a budget must be a token count (int >= 1), a ratio in (0, 1], a percentage, bytes (e.g. \"1.5MiB\", "
            f"\"800KB\", \"65536B\") or a share of the full cache's bytes (e.g. \"12% bytes\") (got {value!r})"
        )

    @property
    def in_bytes(self) -> bool:
        """Whether the budget counts bytes (``nbytes`` or ``bytes_ratio``)."""
        return self.nbytes is not None or self.bytes_ratio is not None

    @property
    def kind(self) -> str:
        """``"tokens"``, ``"ratio"``, ``"bytes"`` or ``"bytes_ratio"``."""
        return next(k for k, v in (("tokens", self.tokens), ("ratio", self.ratio), ("bytes", self.nbytes),
                                   ("bytes_ratio", self.bytes_ratio)) if v is not None)

    def average(self, review_length: int, *, suffix_size: int = 0, cost: ByteCost | None = None) -> float:
        """The average per-layer review budget (tokens, possibly fractional) for one prompt row.

        Args:
            review_length: the row's review tokens.
            suffix_size: the row's kept suffix tokens (byte budgets pay for them first).
            cost: what a kept slot costs (needed by byte budgets).

        Raises:
            ValueError: a byte budget without ``cost``, or below the bytes of the suffix alone.
        """
        if self.tokens is not None:
            return float(self.tokens)
        if self.ratio is not None:
            return self.ratio * review_length
        if cost is None:
            raise ValueError(f"a byte budget ({self}) needs the cost of a kept slot: apply the policy to a model")
        if self.nbytes is not None:
            per_layer = self.nbytes / cost.num_layers
        else:
            per_layer = self.bytes_ratio * (review_length + suffix_size) * cost.token_nbytes  # type: ignore[operator]
        suffix_bytes = cost.layer_nbytes + suffix_size * cost.slot_nbytes
        if per_layer < suffix_bytes:
            raise ValueError(
                f"byte budget {self} is below the suffix's bytes: the {suffix_size} suffix tokens cost "
                f"{suffix_bytes * cost.num_layers:.0f} bytes over {cost.num_layers} layers "
                f"({cost.slot_nbytes:.1f} bytes a slot per layer"
                + (f", {cost.layer_nbytes:.0f} fixed bytes per layer" if cost.layer_nbytes else "")
                + f"), the budget allows {per_layer * cost.num_layers:.0f}")
        return (per_layer - suffix_bytes) / cost.slot_nbytes

    def to_config(self) -> int | float | str:
        if self.nbytes is not None:
            return f"{self.nbytes}B"
        if self.bytes_ratio is not None:
            return f"{self.bytes_ratio * 100:.10g}% bytes"
        return self.tokens if self.tokens is not None else self.ratio  # type: ignore[return-value]

    def __str__(self) -> str:
        if self.nbytes is not None:
            return f"{self.nbytes} bytes"
        if self.bytes_ratio is not None:
            return f"{self.bytes_ratio:.4g} of the full cache's bytes"
        return f"{self.tokens} tokens" if self.tokens is not None else f"{self.ratio:.4g} of review"
