"""Percentiles by nearest rank, the one way every figure in the project is taken.

Cases: a histogram's percentile is the smallest value with the fraction at or below it; plain
measurements give the same as their histogram; the top fraction reaches the slowest value; no
measurement gives 0.
"""

from __future__ import annotations

from collections import Counter

import pytest

from common.stats import histogram_percentile, percentile


@pytest.mark.parametrize(
    ("fraction", "expected"), [(0.25, 10.0), (0.5, 10.0), (0.51, 20.0), (0.99, 40.0), (1.0, 40.0)]
)
def test_histogram_percentile_is_the_nearest_rank(fraction: float, expected: float) -> None:
    assert histogram_percentile({10.0: 5, 20.0: 3, 40.0: 2}, fraction) == expected


def test_measurements_give_what_their_histogram_gives() -> None:
    values = [0.3, 0.1, 0.2, 0.1, 0.9, 0.4, 0.2, 0.2]
    for fraction in (0.1, 0.5, 0.9, 0.99):
        assert percentile(values, fraction) == histogram_percentile(Counter(values), fraction)
    assert percentile(values, 0.5) == 0.2  # 4 of 8 at or below 0.2
    assert percentile(range(1, 101), 0.99) == 99.0
    assert percentile(range(1, 101), 1.0) == 100.0


def test_nothing_measured_is_zero() -> None:
    assert percentile([], 0.5) == 0.0
    assert histogram_percentile({}, 0.99) == 0.0
