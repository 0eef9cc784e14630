"""Percentiles, computed one way everywhere (nearest rank: a value that was measured)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping


def histogram_percentile(histogram: Mapping[float, int], fraction: float) -> float:
    """The smallest value with at least ``fraction`` of all counts at or below it (0.0 for an
    empty histogram). ``histogram`` maps each value to how often it was seen."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    needed = fraction * total
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= needed:
            return float(value)
    return float(max(histogram))


def percentile(values: Iterable[float], fraction: float) -> float:
    """``histogram_percentile`` of plain measurements (0.0 when there are none)."""
    return histogram_percentile(Counter(values), fraction)
