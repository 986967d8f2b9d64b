"""What a budget counts, and its parsing.

A policy's budget is the **average number of review tokens kept per layer** (the paper's
``max_capacity_prompt``), given either as tokens or as a ratio of each prompt's review tokens:

- ``Budget.of(256)`` (an ``int``): on average over layers, each layer keeps at most 256 review tokens;
- ``Budget.of(0.25)`` (a ``float`` in ``(0, 1]``): on average each layer keeps at most 25% of the row's
  review tokens ``L - s``.

The suffix (the last ``s`` prompt tokens) is always kept on top of the budget. A budget at least as
large as the review part compresses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Budget:
    """An average per-layer review budget: exactly one of ``tokens`` and ``ratio`` is set."""

    tokens: int | None = None
    ratio: float | None = None

    def __post_init__(self) -> None:
        if (self.tokens is None) == (self.ratio is None):
            raise ValueError("a budget is either a token count or a ratio, not both or neither")
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
        """Parse ``256``, ``0.25``, ``"256"``, ``"0.25"`` or ``"25%"``; ints are tokens, floats ratios."""
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
            if m := re.fullmatch(r"(\d+(?:\.\d+)?)\s*%", text):
                return cls(ratio=float(m.group(1)) / 100)
            if re.fullmatch(r"[+-]?\d+", text):
                return cls(tokens=int(text))
            try:
                return cls.of(float(text))
            except ValueError:
                pass
        raise ValueError(
            f"a budget must be a token count (int >= 1), a ratio in (0, 1] or a percentage (got {value!r})"
        )

    def average(self, review_length: int) -> float:
        """The average per-layer review budget (tokens, possibly fractional) for one prompt row."""
        if self.tokens is not None:
            return float(self.tokens)
        return self.ratio * review_length  # type: ignore[operator]

    def to_config(self) -> int | float:
        return self.tokens if self.tokens is not None else self.ratio  # type: ignore[return-value]

    def __str__(self) -> str:
        return f"{self.tokens} tokens" if self.tokens is not None else f"{self.ratio:.4g} of review"
