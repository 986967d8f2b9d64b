"""Summaries of repeated measurements: the median and the spread (quartiles, min, max).

A benchmark repeats each measurement a few times on a machine that other work may share; the median
is robust to one slow outlier, the quartiles and the extremes say how noisy the measurement was::

    spread([0.31, 0.29, 0.52])   # Spread(median=0.31, q1=0.30, q3=0.415, minimum=0.29, maximum=0.52, n=3)
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class Spread:
    """The median and spread of ``n`` samples of one quantity (in the quantity's own unit).

    Attributes:
        median: the middle sample, or the mean of the two middle samples when ``n`` is even.
        q1: the first quartile, interpolated between the samples (``statistics.quantiles`` with
            ``method="inclusive"``: ``minimum <= q1 <= median``); the only sample when ``n == 1``.
        q3: the third quartile, likewise (``median <= q3 <= maximum``).
        minimum: the smallest sample.
        maximum: the largest sample.
        samples: every sample, in the order measured.
    """

    median: float
    q1: float
    q3: float
    minimum: float
    maximum: float
    samples: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.samples)

    @property
    def iqr(self) -> float:
        """The interquartile range ``q3 - q1``."""
        return self.q3 - self.q1

    def to_dict(self) -> dict[str, Any]:
        return {"median": self.median, "q1": self.q1, "q3": self.q3, "min": self.minimum, "max": self.maximum,
                "n": self.n, "samples": list(self.samples)}


def spread(values: Sequence[float | None]) -> Spread | None:
    """The :class:`Spread` of the finite values in ``values`` (``None`` and NaN are skipped: a measurement
    that could not be taken); ``None`` when no value is left."""
    kept = tuple(float(v) for v in values if v is not None and math.isfinite(v))
    if not kept:
        return None
    ordered = sorted(kept)
    if len(ordered) == 1:
        q1 = q3 = ordered[0]
    else:
        q1, _, q3 = statistics.quantiles(ordered, n=4, method="inclusive")
    return Spread(statistics.median(ordered), q1, q3, ordered[0], ordered[-1], kept)


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the denominator is not positive."""
    if numerator is None or denominator is None or not denominator > 0:
        return None
    return numerator / denominator
