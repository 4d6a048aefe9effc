"""A share of seeds with an error bar, and the sequential rule that decides it in planned looks.

A cell of a sweep (one configuration, many seeds) has a true probability ``p`` that a seed
separates; ``k`` of its first ``n`` seeds did. :func:`clopper_pearson` is the exact interval
for ``p``. :class:`SequentialRule` decides whether ``p`` is above or below a threshold (0.5 for
"most seeds separate") by looking at the seeds in planned steps (8, then 16, then 32 ...),
so that a cell whose seeds all agree stops early and a cell near the threshold gets every seed.

Numpy and scipy only: the engine plans with it, the views and queries report with it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from sweepnet.core.errors import SweepnetError

VERDICTS = ("below", "boundary", "above")
"""A cell's verdict at a threshold: its interval is wholly below it, holds it, or is above it."""


def clopper_pearson(k, n, confidence: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The exact (Clopper-Pearson) two-sided interval for a share: ``k`` of ``n`` seeds.

    ``k`` and ``n`` broadcast (ints or integer arrays); returns ``(low, high)`` float arrays of
    the broadcast shape (0-d for scalars). ``n = 0`` gives ``(0, 1)``. The interval holds the
    true share with probability at least ``confidence`` whatever it is (the binomial's tails
    are each at most ``(1 - confidence) / 2``), so it is conservative, never liberal.
    """
    if not 0.0 < confidence < 1.0:
        raise SweepnetError(f"confidence: must be between 0 and 1 (exclusive), got {confidence}")
    k, n = np.broadcast_arrays(np.asarray(k, dtype=np.int64), np.asarray(n, dtype=np.int64))
    if np.any(n < 0) or np.any(k < 0) or np.any(k > n):
        raise ValueError("clopper_pearson: need 0 <= k <= n")
    tail = (1.0 - confidence) / 2.0
    # beta.ppf is nan at a zero shape parameter: evaluate at a safe value, then overwrite
    low = np.where(k > 0, sps.beta.ppf(tail, np.maximum(k, 1), n - k + 1), 0.0)
    high = np.where(k < n, sps.beta.ppf(1.0 - tail, k + 1, np.maximum(n - k, 1)), 1.0)
    return low.astype(np.float64), high.astype(np.float64)


def verdict(k, n, threshold: float = 0.5, confidence: float = 0.95) -> np.ndarray:
    """One look at each cell's seeds (a fixed grid: the ``cells`` view): ``"above"`` where the
    interval of ``k`` of ``n`` lies wholly above ``threshold``, ``"below"`` wholly below, else
    ``"boundary"`` (``n = 0`` included). Object array of the broadcast shape."""
    low, high = clopper_pearson(k, n, confidence)
    out = np.full(low.shape, "boundary", dtype=object)
    out[low > threshold] = "above"
    out[high < threshold] = "below"
    return out


def share_interval(k, n, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clopper_pearson` for a table of cells, NaN for both bounds where ``n = 0`` (no
    seed, no share): the views' error bars. ``k`` and ``n`` are counts (ints or floats that
    hold whole numbers), scalars or arrays that broadcast."""
    k, n = np.broadcast_arrays(np.asarray(k, dtype=np.float64), np.asarray(n, dtype=np.float64))
    low, high = clopper_pearson(np.rint(k).astype(np.int64), np.rint(n).astype(np.int64), level)
    empty = n <= 0
    return np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def spend(n_looks: int, alpha: float, spending: str | Sequence[float] = "equal") -> tuple:
    """The error rate each look may spend: ``alpha`` split over ``n_looks`` looks.

    ``"equal"`` splits it evenly (Bonferroni over the looks, as Pocock's boundaries do);
    ``"late"`` gives look ``j`` (1-based) a weight ``j``, so the last, largest look keeps most
    of it and its interval is nearly as narrow as a single look's; a sequence of positive
    weights (one a look) is normalised to sum to ``alpha``.
    """
    if spending == "equal":
        weights = np.ones(n_looks)
    elif spending == "late":
        weights = np.arange(1, n_looks + 1, dtype=np.float64)
    elif isinstance(spending, str):
        raise SweepnetError(
            f'spending: "equal", "late" or a list of weights, one a look; got "{spending}"'
        )
    else:
        weights = np.asarray(spending, dtype=np.float64)
        if weights.shape != (n_looks,) or np.any(weights <= 0) or not np.all(np.isfinite(weights)):
            raise SweepnetError(
                f"spending: need {n_looks} positive weights (one a look), got {list(spending)}"
            )
    return tuple(round(float(a), 12) for a in alpha * weights / weights.sum())


@dataclass(frozen=True)
class SequentialRule:
    """Planned looks at a cell's seeds, each with its share of the error rate.

    ``looks``: increasing seed counts (``(8, 16)``); ``alphas``: the error rate spent at each
    look (summing to ``1 - confidence``); ``threshold``: the share a verdict is about.

    At look ``j`` the cell's first ``looks[j]`` seeds give the Clopper-Pearson interval at
    confidence ``1 - alphas[j]``. The verdict is ``"above"`` when that interval lies wholly above
    the threshold, ``"below"`` when wholly below, else ``"boundary"``. A decided cell gets no
    more seeds; an undecided one goes on to the next look; after the last look it stays
    ``"boundary"`` with its interval.

    Why the overall error rate is at most ``alpha = sum(alphas)``: let ``I_j`` be the interval at
    look ``j``; Clopper-Pearson gives ``P(p not in I_j) <= alphas[j]`` for each ``j`` on its
    own. Whatever rule chooses the look ``J`` at which a cell stops (here: the first decided
    one), the interval reported, ``I_J``, misses ``p`` only if some ``I_j`` does, so by the union
    bound ``P(p not in I_J) <= sum_j alphas[j] = alpha``. A wrong verdict ("above" while
    ``p <= threshold``, or "below" while ``p >= threshold``) needs ``I_J`` to miss ``p``, so it too
    has probability at most ``alpha``. The bound needs no independence between looks (they
    share seeds) and holds for any ``p``; it is conservative (the union bound and the exact
    interval both overcount), which the Monte Carlo test in tests/test_search.py measures.

    A count between two looks (a grid grown by hand) is judged at the last look it reached,
    with that look's confidence; one beyond the last look at the last look's.
    """

    looks: tuple[int, ...] = (8, 16)
    alphas: tuple[float, ...] = (0.025, 0.025)
    threshold: float = 0.5

    def __post_init__(self):
        looks = tuple(int(n) for n in self.looks)
        if not looks or looks[0] < 1 or any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
            raise SweepnetError(f"looks: need increasing seed counts >= 1, got {list(self.looks)}")
        if len(self.alphas) != len(looks) or not all(0 < a < 1 for a in self.alphas):
            raise SweepnetError(f"looks: one error rate in (0, 1) a look, got {list(self.alphas)}")
        if not 0.0 < self.threshold < 1.0:
            raise SweepnetError(f"threshold: must be between 0 and 1, got {self.threshold}")
        object.__setattr__(self, "looks", looks)
        object.__setattr__(self, "alphas", tuple(float(a) for a in self.alphas))

    @classmethod
    def plan(
        cls,
        looks: Sequence[int] = (7, 16, 32),
        threshold: float = 0.5,
        confidence: float = 0.95,
        spending: str | Sequence[float] = "equal",
        max_seeds: int | None = None,
    ) -> SequentialRule:
        """The rule for ``looks`` (cut at ``max_seeds``, which becomes the last look) with
        ``1 - confidence`` split over them by ``spending`` (see :func:`spend`)."""
        if not 0.0 < confidence < 1.0:
            raise SweepnetError(
                f"confidence: must be between 0 and 1 (exclusive), got {confidence}"
            )
        seeds = sorted({int(n) for n in looks})
        if max_seeds is not None:
            if max_seeds < 1:
                raise SweepnetError(f"seeds: need at least 1, got {max_seeds}")
            seeds = sorted({n for n in seeds if n < max_seeds} | {int(max_seeds)})
        return cls(tuple(seeds), spend(len(seeds), 1.0 - confidence, spending), threshold)

    @property
    def alpha(self) -> float:
        """The overall error rate: the sum over the looks."""
        return float(sum(self.alphas))

    @property
    def max_seeds(self) -> int:
        return self.looks[-1]

    def look(self, n) -> np.ndarray:
        """Index of the last look ``n`` seeds reached (-1 before the first), elementwise."""
        return np.searchsorted(np.asarray(self.looks), np.asarray(n), side="right") - 1

    def next_seeds(self, n) -> np.ndarray:
        """The seed count of the next look after ``n`` (``n`` itself at or past the last)."""
        n = np.asarray(n, dtype=np.int64)
        nxt = np.asarray((*self.looks, self.looks[-1]))[np.minimum(self.look(n) + 1,
                                                                   len(self.looks))]
        return np.maximum(nxt, n)

    def interval(self, k, n) -> tuple[np.ndarray, np.ndarray]:
        """The interval for ``k`` of ``n`` seeds at the confidence of the look ``n`` reached
        (the first look's before it: an interval, never a verdict)."""
        j = np.clip(self.look(n), 0, len(self.looks) - 1)
        confidence = 1.0 - np.asarray(self.alphas)[j]
        k, n = np.broadcast_arrays(np.asarray(k), np.asarray(n))
        low, high = np.zeros(k.shape), np.ones(k.shape)
        for c in np.unique(confidence):  # one confidence per look: a few vectorised calls
            at = np.broadcast_to(confidence == c, k.shape)
            low[at], high[at] = clopper_pearson(k[at], n[at], float(c))
        return low, high

    def verdict(self, k, n) -> np.ndarray:
        """``"above"``, ``"below"`` or ``"boundary"`` per cell (object array of the broadcast
        shape); a cell short of the first look is ``"boundary"``."""
        low, high = self.interval(k, n)
        reached = np.broadcast_to(self.look(n) >= 0, low.shape)
        out = np.full(low.shape, "boundary", dtype=object)
        out[reached & (low > self.threshold)] = "above"
        out[reached & (high < self.threshold)] = "below"
        return out  # as verdict() at each look's confidence, and undecided before the first

    def decided(self, k, n) -> np.ndarray:
        """True where a cell needs no more seeds: decided, or at the last look."""
        return (self.verdict(k, n) != "boundary") | (np.asarray(n) >= self.max_seeds)

    def cutoffs(self) -> list[tuple[int, int]]:
        """Per look, ``(most separated seeds that still decide "below", fewest that decide
        "above")``: -1 or ``n + 1`` where no count decides (a look too small for its error)."""
        out = []
        for n in self.looks:
            v = self.verdict(np.arange(n + 1), n)
            below, above = np.flatnonzero(v == "below"), np.flatnonzero(v == "above")
            out.append((int(below.max()) if below.size else -1,
                        int(above.min()) if above.size else n + 1))
        return out
