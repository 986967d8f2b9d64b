"""Medians, quartiles and ratios of repeated benchmark samples."""

from __future__ import annotations

import math

import pytest

from windowkv.bench.stats import ratio, spread


def test_odd_count_median_is_the_middle_sample_and_quartiles_interpolate():
    s = spread([3.0, 1.0, 2.0])
    assert (s.median, s.q1, s.q3, s.minimum, s.maximum) == (2.0, 1.5, 2.5, 1.0, 3.0)
    assert s.samples == (3.0, 1.0, 2.0)  # measuring order kept
    assert s.iqr == 1.0


def test_even_count_median_is_the_mean_of_the_middle_two():
    s = spread([10.0, 1.0, 4.0, 2.0])
    assert s.median == 3.0
    assert s.minimum <= s.q1 <= s.median <= s.q3 <= s.maximum


def test_median_is_robust_to_one_outlier():
    assert spread([0.30, 0.31, 0.29, 9.0, 0.32]).median == pytest.approx(0.31)


def test_one_sample():
    s = spread([0.5])
    assert (s.median, s.q1, s.q3, s.minimum, s.maximum, s.n) == (0.5, 0.5, 0.5, 0.5, 0.5, 1)


def test_missing_values_are_skipped():
    assert spread([None, 2.0, math.nan, 4.0]).median == 3.0
    assert spread([None, math.nan]) is None
    assert spread([]) is None


def test_to_dict_has_the_documented_fields():
    assert set(spread([1.0, 2.0]).to_dict()) == {"median", "q1", "q3", "min", "max", "n", "samples"}


def test_ratio():
    assert ratio(3.0, 2.0) == 1.5
    assert ratio(1.0, 0.0) is None and ratio(None, 1.0) is None and ratio(1.0, None) is None
