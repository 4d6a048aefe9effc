"""Which points ``sweepnet topology`` pushes through a network, and how they split into
classes; and whether the input's Betti numbers can be trusted where nobody knows them.

The cloud (``--cloud``):

- ``train`` (the default): each class's points drawn from the run's training key (with
  ``n_points * classes == n_train``, the training points themselves; a ``file``: a fixed
  subsample of its rows);
- ``test``: a fresh draw of the same size from the test key (a ``file``: another subsample);
- ``grid``: for 2-D data, a ``G x G`` grid (``G = 88`` as Naitzat et al.'s released code:
  ``np.arange(-1.1, 1.1, 0.025)``) over the data's square, the box of its points padded by
  10% a side. The grid has no labels, so it is split by the network's prediction only.

The split (``--split``): ``true`` gives each class its points by their labels (the default;
not for the grid); ``predicted`` gives each class the points the network predicts as that
class, so the clouds differ per network, the input (layer 0) included: the input then shows
the topology of the network's decision regions. A class cloud larger than ``n_points`` is a
fixed random subsample of that size (the same points at every layer).

Unknown topology (:func:`stable_scale`): the input's ``k`` and ``eps`` are searched as the
calibration does (:func:`sweepnet.measure.topology.calibrate`), with agreement taking the
place of the known numbers: three consecutive ``k`` that give every class the same Betti
numbers, and the middle ``k`` giving them again on half the points. Where no candidate does,
the input is unstable: the default scale, a warning, and ``stable = false`` in the table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sweepnet.core.errors import SweepnetError
from sweepnet.measure.homology import betti_numbers

CLOUDS = ("train", "test", "grid")
SPLITS = ("true", "predicted")
GRID = 88  # grid points per side: the authors' np.arange(-1.1, 1.1, 0.025)
PAD = 0.1  # the grid's square: the data's box padded by this share of its half side


def check(cloud: str, split: str, grid: int | None, in_dim: int | None = None) -> None:
    """A one-line error for options that do not go together."""
    if cloud not in CLOUDS:
        raise SweepnetError(f"--cloud {cloud}: one of {', '.join(CLOUDS)}")
    if split not in SPLITS:
        raise SweepnetError(f"--split {split}: one of {', '.join(SPLITS)}")
    if grid is not None and grid < 2:
        raise SweepnetError(f"--grid {grid}: need at least 2 points a side")
    if cloud == "grid" and split == "true":
        raise SweepnetError("--split true: the grid has no labels; use --split predicted "
                            "with --cloud grid")
    if grid is not None and cloud != "grid":
        raise SweepnetError(f"--grid {grid}: only with --cloud grid")
    if cloud == "grid" and in_dim is not None and in_dim != 2:
        raise SweepnetError(f"--cloud grid: only for 2-D data (this data is {in_dim}-D); "
                            "use --cloud train or test")


def grid_points(x: np.ndarray, side: int = GRID) -> np.ndarray:
    """``side x side`` points ``(side**2, 2)`` float32 over the square around ``x (n, 2)``:
    centred at the origin, half side ``(1 + PAD) * max |x|`` (D-I: [-1.1, 1.1]^2)."""
    half = (1 + PAD) * max(float(np.abs(x).max()), 1e-3)
    t = np.linspace(-half, half, side, dtype=np.float32)
    u, v = np.meshgrid(t, t, indexing="xy")
    return np.stack([u.ravel(), v.ravel()], axis=1)


def predicted(logits: np.ndarray) -> np.ndarray:
    """The class each point is predicted as, ``(n,)`` int, from logits ``(n_out, n)``."""
    if logits.shape[0] == 1:
        return (logits[0] > 0).astype(np.int64)
    return logits.argmax(axis=0)


def class_index(labels: np.ndarray, classes: Sequence[int], n_points: int, seed: int
                ) -> dict[int, np.ndarray]:
    """The points of each class (``{class: indices}``), at most ``n_points`` of each: a fixed
    random subsample (seeded by ``seed``) where a class has more. A class no point is
    predicted as gets no points (its Betti numbers are then 0)."""
    rng = np.random.default_rng(seed)
    out = {}
    for c in classes:
        idx = np.flatnonzero(labels == c)
        if len(idx) > n_points:
            idx = np.sort(rng.choice(idx, n_points, replace=False))
        out[int(c)] = idx
    return out


# ----------------------------------------------------------------------------- stability


def neighbours(k: int, ks: Sequence[int]) -> tuple[int, int, int]:
    """``k`` between its neighbours among the candidates ``ks`` (or ``k - 2, k, k + 2``)."""
    if k in ks and 0 < ks.index(k) < len(ks) - 1:
        i = ks.index(k)
        return ks[i - 1], k, ks[i + 1]
    return max(1, k - 2), k, k + 2


def _betti(x: np.ndarray, y: np.ndarray, k: int, eps: int, maxdim: int, half: bool
           ) -> dict[int, tuple[int, int, int]]:
    out = {}
    for c in np.unique(y):
        pts = x[y == c]
        out[int(c)] = betti_numbers(pts[::2] if half else pts, k, eps, maxdim)
    return out


def stable_at(x: np.ndarray, y: np.ndarray, k: int, eps: int, maxdim: int,
              ks: Sequence[int], memo: dict | None = None) -> bool:
    """Whether each class of ``x (n, dim)``, ``y (n,)`` has the same Betti numbers at ``k``,
    its two neighbouring ``k`` (:func:`neighbours`), and at ``k`` on half its points; never
    where half of a class has no more than twice the largest of those ``k``."""
    memo = {} if memo is None else memo

    def b(kk: int, half: bool = False):
        if (kk, eps, half) not in memo:
            memo[kk, eps, half] = _betti(x, y, kk, eps, maxdim, half)
        return memo[kk, eps, half]

    # a k near a cloud's size joins (nearly) every pair: every k agrees and proves nothing
    smallest = min(int((y == c).sum()) for c in np.unique(y)) // 2
    if max(neighbours(k, ks)) * 2 >= smallest:
        return False
    return all(b(kk) == b(k) for kk in neighbours(k, ks)) and b(k, True) == b(k)


def stable_scale(x: np.ndarray, y: np.ndarray, maxdim: int, ks: Sequence[int],
                 epsilons: Sequence[int], fixed: tuple[int | None, int | None] = (None, None)
                 ) -> tuple[int, int] | None:
    """The first ``(k, eps)``, cheapest first (eps, then k), at which the input is stable
    (:func:`stable_at`), among the candidates (``fixed``: the user's ``k`` or ``eps``, which
    are then the only ones tried); None if there is none."""
    memo: dict = {}
    for eps in [fixed[1]] if fixed[1] else epsilons:
        for k in [fixed[0]] if fixed[0] else ks[1:-1]:
            if stable_at(x, y, k, eps, maxdim, ks, memo):
                return k, eps
    return None


def warn_unstable(where: str, k: int, eps: int, say: Callable[[str], None]) -> None:
    """The one-line warning of an input whose Betti numbers are not stable."""
    say(f"sweepnet: warning: topology: {where}: the input's Betti numbers change with k or "
        f"the number of points at every scale tried; its numbers (k = {k}, eps = {eps}) may be "
        "noise (column stable = false); more points (--points) may help")


__all__ = ["CLOUDS", "GRID", "SPLITS", "check", "class_index", "grid_points", "neighbours",
           "predicted", "stable_at", "stable_scale", "warn_unstable"]
