"""Summaries of repeated measurements: median and spread, percentiles, ratios."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

DIGITS = 4


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear between closest ranks (numpy's default)."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= q <= 100:
        raise ValueError(f"q: {q} is not between 0 and 100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summary(values: Sequence[float], keep_samples: bool = True) -> dict[str, Any]:
    """Median and spread of ``values`` (seconds, bytes, ...); the samples themselves unless
    there are many (latency distributions keep only their percentiles)."""
    result: dict[str, Any] = {
        "n": len(values),
        "median": round(percentile(values, 50), DIGITS),
        "p25": round(percentile(values, 25), DIGITS),
        "p75": round(percentile(values, 75), DIGITS),
        "p95": round(percentile(values, 95), DIGITS),
        "min": round(min(values), DIGITS),
        "max": round(max(values), DIGITS),
    }
    if keep_samples:
        result["samples"] = [round(v, DIGITS) for v in values]
    return result


def ratio(numerator: float | None, denominator: float | None, digits: int = 2) -> float | None:
    """``numerator / denominator`` rounded, or None when either is missing or zero."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return round(numerator / denominator, digits)
