"""Summary statistics for dataset runs.

Example::

    >>> mean_ci([1.0, 2.0, 3.0, float("nan")])  # doctest: +ELLIPSIS
    (2.0, -0.48..., 4.48...)
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
from scipy import stats

from ..errors import InputError


def mean_ci(values: Iterable[float | None], level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its Student-t confidence interval.

    Definition: over the finite values ``x_1..x_n`` (NaN and ``None`` are ignored),
    ``mean +- t_{(1+level)/2, n-1} * s / sqrt(n)`` with ``s`` the sample standard deviation
    (``ddof=1``). With ``n = 1`` the interval is undefined: ``(x_1, nan, nan)``; with
    ``n = 0`` everything is NaN. Reference: the textbook t-interval (Student 1908).
    """
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = len(x)
    if n == 0:
        return (math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if n == 1:
        return (mean, math.nan, math.nan)
    half = float(stats.t.ppf((1 + level) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return (mean, mean - half, mean + half)


def wilson_ci(successes: int, n: int, level: float = 0.95) -> tuple[float, float, float]:
    """``(share, low, high)``: the share ``successes / n`` and its Wilson score interval.

    Definition: with ``p = k / n`` and ``z`` the ``(1+level)/2`` normal quantile,
    ``(p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``. Unlike the normal
    (Wald) interval it stays inside [0, 1] and does not collapse to a point at ``p = 0``
    or ``1``. Reference: Wilson, "Probable inference, the law of succession, and
    statistical inference" (JASA 1927). ``n = 0`` gives NaN everywhere.
    """
    if not 0 < level < 1:
        raise InputError(f"level must be in (0, 1), got {level}")
    if n < 0 or not 0 <= successes <= n:
        raise InputError(f"need 0 <= successes <= n, got {successes} of {n}")
    if n == 0:
        return (math.nan, math.nan, math.nan)
    p = successes / n
    z = float(stats.norm.ppf((1 + level) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (p, max(0.0, centre - half), min(1.0, centre + half))
