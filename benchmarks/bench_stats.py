"""Figures the GUI-thread benchmarks share."""

from __future__ import annotations

import statistics


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile: a value that was measured, not an interpolation between two."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def median_p99_max(values: list[float], unit: str = "ms") -> str:
    return f"{statistics.median(values):.2f} / {percentile(values, 0.99):.2f} / {max(values):.2f} {unit}"
