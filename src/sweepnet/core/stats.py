"""Statistics a sweep's counts need: the exact confidence interval of a share.

A phase diagram's cell is a share of seeds (k of n separated); an adaptive sweep decides from
the same interval whether a cell needs more seeds. Both call :func:`share_interval`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


def share_interval(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The exact (Clopper-Pearson) ``level`` confidence interval of a share ``k / n``.

    ``k`` and ``n`` are counts, scalars or arrays of one shape (broadcast); returns
    ``(lo, hi)`` as float arrays of that shape: ``lo = 0`` where ``k = 0``, ``hi = 1`` where
    ``k = n``, and NaN for both where ``n = 0`` (no seed, no share). The same numbers as
    ``scipy.stats.binomtest(k, n).proportion_ci(level, method="exact")``, for every cell at
    once (beta quantiles).
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    k, n = np.broadcast_arrays(k, n)
    alpha = 1.0 - level
    with np.errstate(invalid="ignore", divide="ignore"):
        lo = np.where(k > 0, stats.beta.ppf(alpha / 2, k, n - k + 1), 0.0)
        hi = np.where(k < n, stats.beta.ppf(1 - alpha / 2, k + 1, n - k), 1.0)
    empty = n <= 0
    lo = np.where(empty, np.nan, lo)
    hi = np.where(empty, np.nan, hi)
    return lo, hi


__all__ = ["share_interval"]
