"""The statistics the views compute, written out in plain Python for the tests to compare against."""

from __future__ import annotations

import math

#: The 97.5% normal quantile of the 95% Wilson intervals.
Z = 1.959964


def wilson(p: float | None, n: int) -> tuple[float | None, float | None]:
    """The 95% Wilson score interval of a rate `p` observed over `n` trials; None for a mean outside
    [0, 1] (not a rate), bounds clamped so that 0 <= low <= p <= high <= 1."""
    if p is None or n == 0 or not 0 <= p <= 1:
        return None, None
    centre, margin = p + Z * Z / (2 * n), Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return min(p, max(0.0, (centre - margin) / (1 + Z * Z / n))), max(p, min(1.0, (centre + margin) / (1 + Z * Z / n)))


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
