"""The topology of a trained network's decision region, read off a grid of its predictions.

For 2-D binary data the trained network is evaluated on a ``GRID x GRID`` grid of cell centres
over the training points' bounding box, widened by ``MARGIN`` of its side on every side
(:func:`grid_box`, :func:`grid_points`): a network sees its own box, so the numbers do not
depend on the other runs of its call. The grid's predictions (class 1 where the logit is > 0,
as accuracy counts it) travel back bit-packed in :class:`sweepnet.train.step.Output` and are
labelled on the host, a whole call at once (:func:`region_numbers`, ``scipy.ndimage.label``):

- ``region_b0``: components of the class-1 region (8-connected: cells touching at a corner
  are one component);
- ``region_b1``: holes in it, the components of class 0 (4-connected, the dual connectivity,
  so that the digital Alexander duality holds) that do not touch the box's border;
- ``region_bounded``: class-1 components that do not touch the box's border;
- ``region0_b0``: components of the class-0 region (4-connected), for the theorem that every
  decision region, of either class, is connected.

Other data (1-D, 3-D+, multi-class) gets an empty grid and null columns. Grid size: see
docs/how-it-works.md (a resolution test against a 4x finer grid chose ``GRID``).

The activations each narrow-network theorem covers are listed here too, so that the ``theorems``
view (:mod:`sweepnet.store.query`) and its explanations (:mod:`sweepnet.measure.regions`) agree.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

GRID = 64  # cells per side (see docs/how-it-works.md for the resolution test)
MARGIN = 0.1  # the box: the data's bounding box widened by this share of its side, each side
COLUMNS = ("region_b0", "region_b1", "region_bounded", "region0_b0")

# Beise, Da Cruz & Schröder (2021), Johnson (2019): every component of a decision region of a
# network whose hidden layers are at most as wide as its input is unbounded, for continuous
# strictly monotonic activations (Beise et al.), ReLU (both), and any activation uniformly
# approximable by injective ones (Johnson): every monotonic one in the registry.
UNBOUNDED_ACTIVATIONS = ("tanh", "sigmoid", "softplus", "relu", "leaky_relu", "elu", "linear")
# Nguyen, Mukkamala & Hein (2018): with continuous, strictly monotonic activations onto R and
# no hidden layer wider than the input, every decision region is connected (any depth).
CONNECTED_ACTIVATIONS = ("leaky_relu", "linear")
# ... and with one hidden layer, for any continuous injective activation (their argument: the
# layer maps the plane onto an open box, the read-out's half-space meets the box in a convex
# set). Not at depth 2 and more: a bounded range lets a later layer fold the region in two
# (tests/test_regions.py draws a width-2, depth-2 tanh network with two components).
CONNECTED_ONE_LAYER = ("tanh", "sigmoid", "softplus", "elu")

_EIGHT = np.ones((3, 3), bool)
_FOUR = ndimage.generate_binary_structure(2, 1)


def applies(in_dim: int, n_out: int) -> bool:
    """Whether a program of this input dimension and output count gets a region grid."""
    return in_dim == 2 and n_out == 1


def grid_box(x: np.ndarray, margin: float = MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """``(lo (2,), hi (2,))``: the bounding box of points ``x (n, 2)``, widened by ``margin``
    of its side on each side (a side of 0 becomes 1)."""
    lo, hi = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
    side = np.where(hi > lo, hi - lo, 1.0)
    return lo - margin * side, hi + margin * side


def grid_points(lo: np.ndarray, hi: np.ndarray, res: int = GRID) -> np.ndarray:
    """``(2, res * res)`` float32 cell centres of the box, row ``i // res`` (second
    coordinate, from ``lo``) and column ``i % res`` (first coordinate)."""
    u = lo[0] + (np.arange(res) + 0.5) * (hi[0] - lo[0]) / res
    v = lo[1] + (np.arange(res) + 0.5) * (hi[1] - lo[1]) / res
    gu, gv = np.meshgrid(u, v, indexing="xy")
    return np.stack([gu.ravel(), gv.ravel()]).astype(np.float32)


def _count(labels: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Components per grid, and those touching the border, of ``labels (n, G, G)`` (one
    labelling of the whole stack: labels are numbered in scan order, so grid ``i``'s are a
    contiguous range)."""
    n = labels.shape[0]
    top = labels.reshape(n, -1).max(axis=1)
    total = np.diff(np.concatenate([[0], np.maximum.accumulate(top)]))
    ring = np.concatenate([labels[:, 0], labels[:, -1], labels[:, :, 0], labels[:, :, -1]],
                          axis=1)  # (n, 4G): the border cells of each grid
    touched = np.zeros(n_labels + 1, bool)
    touched[ring.ravel()] = True
    touched[0] = False
    which = np.searchsorted(np.maximum.accumulate(top), np.nonzero(touched)[0])
    border = np.bincount(which, minlength=n)
    return total, border


def region_numbers(pred: np.ndarray) -> dict[str, np.ndarray]:
    """The numbers of each grid of ``pred (n, G, G)`` bool (True: class 1): one int64 array
    ``(n,)`` per name of :data:`COLUMNS`. Each grid is labelled alone (no connection across
    the first axis), all of them in one call per class."""
    pred = np.asarray(pred, bool)
    if pred.shape[0] == 0:
        return {c: np.zeros(0, np.int64) for c in COLUMNS}
    eight = np.zeros((3, 3, 3), bool)
    eight[1] = _EIGHT
    four = np.zeros((3, 3, 3), bool)
    four[1] = _FOUR
    ones, n1 = ndimage.label(pred, structure=eight)
    zeros, n0 = ndimage.label(~pred, structure=four)
    b0, b0_border = _count(ones, n1)
    c0, c0_border = _count(zeros, n0)
    return {"region_b0": b0, "region_b1": c0 - c0_border, "region_bounded": b0 - b0_border,
            "region0_b0": c0}


def unpack(packed) -> np.ndarray:
    """The host side of the grid's bit packing (``jnp.packbits`` in the training program):
    ``(n, G * G / 8)`` uint8 → ``(n, G, G)`` bool."""
    packed = np.asarray(packed, np.uint8)
    n, nbytes = packed.shape
    res = int(round((nbytes * 8) ** 0.5))
    return np.unpackbits(packed, axis=1, count=res * res).reshape(n, res, res).astype(bool)


__all__ = ["COLUMNS", "CONNECTED_ACTIVATIONS", "CONNECTED_ONE_LAYER", "GRID", "MARGIN",
           "UNBOUNDED_ACTIVATIONS", "applies", "grid_box", "grid_points", "region_numbers",
           "unpack"]
