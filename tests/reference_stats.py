"""The statistics the views compute, written out in plain Python for the tests to compare against."""

from __future__ import annotations

import math

#: The 97.5% normal quantile of the 95% Wilson intervals.
Z = 1.959964


def wilson(p: float | None, n: int) -> tuple[float | None, float | None]:
    """The 95% Wilson score interval of a rate `p` observed over `n` trials (p clamped to [0, 1])."""
    if p is None or n == 0:
        return None, None
    p = min(max(p, 0.0), 1.0)
    centre, margin = p + Z * Z / (2 * n), Z * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return (centre - margin) / (1 + Z * Z / n), (centre + margin) / (1 + Z * Z / n)


def mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None
