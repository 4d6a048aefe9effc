"""The numbers of one trained network, from its runs row and stored parameters: its training
points, its forward pass over any points of its input space, its decision over a grid of
the input plane, and the views of a layer's activations. Nothing is retrained, and nothing
here draws: :mod:`sweepnet.views.network` makes the pictures, :mod:`sweepnet.measure.topology`
the Betti numbers, and the report and explore the small decision grids.

The input plane is the square ``[-half, half]^2`` of the first two input coordinates
(:func:`half_side`): a segment for 1-D inputs, and the slice ``x2 = x3 = ... = 0`` through the
origin for 3-D+ inputs (:func:`lift`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import pandas as pd

from sweepnet.sweep.data import DATASETS, extent, make_split
from sweepnet.sweep.models import build

GRID_LINES = 11  # grid lines per direction of the input plane
GRID_SAMPLES = 60  # points along each grid line


def data_params(row: pd.Series) -> dict[str, Any]:
    """The dataset parameters of a runs row (``data_<param>`` columns, cast to their kind)."""
    out = {}
    for k, p in DATASETS[row["dataset"]].params.items():
        v = row.get(f"data_{k}")
        if v is None or (isinstance(v, float) and np.isnan(v)):
            continue
        out[k] = p.kind(v) if p.kind in (int, float, str) else v
    return out


def training_points(row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The run's training set, regenerated from its config.

    Returns ``x (n_train, dim)`` float32 and ``y (n_train,)`` int32.
    """
    p = data_params(row)
    return _training_points(
        row["dataset"],
        tuple(sorted(p.items())),
        int(row["n_train"]),
        float(row["noise"]),
        int(row["data_seed"]),
    )


@functools.lru_cache(maxsize=16)
def _training_points(name, params, n_train, noise, data_seed):
    # Cached: the runs of a sweep share a handful of data configurations.
    split = make_split(name, dict(params), n_train, 1, noise, data_seed)
    return split.x_train, split.y_train


def forward(row: pd.Series, params: Any, x: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Apply the stored network to points ``x (points, in_dim)``.

    Returns logits ``(n_out, points)`` and the hidden activations, one ``(width, points)``
    array per layer (numpy).
    """
    n_out = 1 if int(row["n_classes"]) == 2 else int(row["n_classes"])
    apply = _apply(row["arch"], int(row["width"]), int(row["depth"]), row["activation"], n_out)
    n = len(x)
    size = max(256, 1 << (n - 1).bit_length())  # few distinct shapes → few compiles
    padded = np.zeros((x.shape[1], size), np.float32)
    padded[:, :n] = x.T
    logits, hidden = apply(params, padded)
    return np.asarray(logits)[:, :n], [np.asarray(h)[:, :n] for h in hidden]


def shape_of(row: pd.Series) -> tuple[str, int, int, int]:
    """``(arch, width, depth, n_out)`` of a runs row: the networks :func:`forward_many`
    passes in one call (one output unit for two classes)."""
    n_out = 1 if int(row["n_classes"]) == 2 else int(row["n_classes"])
    return row["arch"], int(row["width"]), int(row["depth"]), n_out


def forward_many(rows: Sequence[pd.Series], params: Sequence[Any], x: np.ndarray
                 ) -> list[tuple[np.ndarray, list[np.ndarray]]]:
    """:func:`forward` of many networks on the same points ``x (points, in_dim)``, in order.

    The networks of one shape (arch, width, depth, classes) go through one vmapped call, each
    with its own activation (the model selects it per network, bit for bit its own: see
    :func:`sweepnet.sweep.models.activation_fn`), so a sweep's networks take one compile per
    shape instead of a call, and a compile, per network and activation.
    """
    n = len(x)
    size = max(256, 1 << (n - 1).bit_length())  # few distinct shapes → few compiles
    padded = np.zeros((x.shape[1], size), np.float32)
    padded[:, :n] = x.T
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(rows):
        groups.setdefault(shape_of(row), []).append(i)
    out: list[Any] = [None] * len(rows)
    for (arch, width, depth, n_out), members in groups.items():
        names = tuple(sorted({rows[i]["activation"] for i in members}))
        apply = _apply_many(arch, width, depth, names, n_out)
        stacked = jax.tree.map(lambda *a: np.stack(a), *[params[i] for i in members])
        which = np.asarray([names.index(rows[i]["activation"]) for i in members], np.int32)
        logits, hidden = apply(stacked, padded, which)
        logits, hidden = np.asarray(logits), [np.asarray(h) for h in hidden]
        for j, i in enumerate(members):
            out[i] = (logits[j, :, :n], [h[j, :, :n] for h in hidden])
    return out


@functools.lru_cache(maxsize=64)
def _apply_many(arch: str, width: int, depth: int, activations: tuple[str, ...], n_out: int):
    """``jit(vmap(model.apply))`` of one shape: ``(params (N, ...), x (in_dim, points),
    which (N,))`` → ``(logits (N, n_out, points), hidden)``."""
    model = build(arch, width, depth, activations, n_out)
    one = lambda p, x, w: model.apply(p, x, width, 1.0, return_hidden=True,  # noqa: E731
                                      which=w if len(activations) > 1 else None)
    return jax.jit(jax.vmap(one, in_axes=(0, None, 0)))


@functools.lru_cache(maxsize=64)
def _apply(arch: str, width: int, depth: int, activation: str, n_out: int):
    """``jit(model.apply)`` of one architecture: ``(params, x (in_dim, points))`` →
    ``(logits, hidden)``. One compile per architecture instead of one per operation."""
    model = build(arch, width, depth, activation, n_out)
    # init_scale only shapes the initial weights, so any value gives the same function here.
    return jax.jit(lambda params, x: model.apply(params, x, width, 1.0, return_hidden=True))


def half_side(row: pd.Series, x: np.ndarray) -> float:
    """Half side of the square drawn around the input domain."""
    return max(extent(row["dataset"], data_params(row)), float(np.abs(x).max()) * 1.05, 1e-3)


def lift(uv: np.ndarray, dim: int) -> np.ndarray:
    """Points ``(m, 2)`` of the drawing plane to inputs ``(m, dim)``: 1-D keeps ``u`` only,
    3-D+ puts zeros in coordinates 2 and up (the slice through the origin)."""
    if dim == 1:
        return uv[:, :1]
    return np.concatenate([uv, np.zeros((len(uv), dim - 2), uv.dtype)], axis=1)


def plane_points(half: float, res: int, dim: int) -> np.ndarray:
    """The centres of a ``res × res`` grid of cells over the square ``[-half, half]^2`` (``res``
    cells on the line for 1-D), lifted to inputs (:func:`lift`): ``(dim, points)`` float32,
    point ``i`` at column ``i % res`` and row ``i // res`` from the bottom left."""
    edges = np.linspace(-half, half, res + 1)
    mids = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
    if dim == 1:
        uv = np.stack([mids, np.zeros_like(mids)], axis=1)
    else:
        gu, gv = np.meshgrid(mids, mids, indexing="xy")
        uv = np.stack([gu.ravel(), gv.ravel()], axis=1)
    return lift(uv, dim).T


def decision_cells(row: pd.Series, params: Any, half: float, res: int = 48) -> pd.DataFrame:
    """The network's prediction on a ``res × res`` grid of the input plane (``res`` cells for
    1-D). Columns ``x0, x1, y0, y1`` (cell box), ``p`` = p(class 1) for binary networks, or
    ``cls`` and ``conf`` for multi-class ones."""
    dim = int(row["in_dim"])
    edges = np.linspace(-half, half, res + 1)
    mids = (edges[:-1] + edges[1:]) / 2
    if dim == 1:
        uv = np.stack([mids, np.zeros_like(mids)], axis=1)
        box = dict(x0=edges[:-1], x1=edges[1:], y0=np.full(res, -1.0), y1=np.full(res, 1.0))
    else:
        gu, gv = np.meshgrid(mids, mids, indexing="xy")
        uv = np.stack([gu.ravel(), gv.ravel()], axis=1)
        iu, iv = np.meshgrid(np.arange(res), np.arange(res), indexing="xy")
        iu, iv = iu.ravel(), iv.ravel()
        box = dict(x0=edges[iu], x1=edges[iu + 1], y0=edges[iv], y1=edges[iv + 1])
    logits, _ = forward(row, params, lift(uv.astype(np.float32), dim))
    df = pd.DataFrame(box)
    # Each cell reaches a third of a cell into its right and upper neighbours (drawn later,
    # on top), which hides the hairline seams antialiasing leaves between abutting rects.
    grow = (edges[1] - edges[0]) / 3
    df["x1"] = np.where(df["x1"] < edges[-1], df["x1"] + grow, df["x1"])
    if dim > 1:
        df["y1"] = np.where(df["y1"] < edges[-1], df["y1"] + grow, df["y1"])
    if logits.shape[0] == 1:
        df["p"] = 1 / (1 + np.exp(-np.clip(logits[0], -60, 60)))
    else:
        z = logits - logits.max(axis=0, keepdims=True)
        prob = np.exp(z) / np.exp(z).sum(axis=0, keepdims=True)
        df["cls"], df["conf"] = prob.argmax(axis=0), prob.max(axis=0)
    return df


def decision_grids(rows: Sequence[pd.Series], params: Sequence[Any], half: float, res: int = 16):
    """Coarse decision grids of several networks of one architecture, for the report.

    ``rows`` and ``params`` are runs rows and their trees (same arch, width, depth, activation
    and classes). Returns ``(len(rows), res * res)`` values (``res`` for 1-D inputs), the cell
    at column ``i % res`` and row ``i // res`` from the bottom left of the square ``[-half,
    half]^2`` (on the slice x2.. = 0 for 3-D+): p(class 1) for binary networks, else the
    predicted class.
    """
    row = rows[0]
    x = plane_points(half, res, int(row["in_dim"]))  # (dim, points)
    n_out = 1 if int(row["n_classes"]) == 2 else int(row["n_classes"])
    apply = _apply(row["arch"], int(row["width"]), int(row["depth"]), row["activation"], n_out)
    stacked = jax.tree.map(lambda *a: np.stack(a), *params)
    logits = np.asarray(jax.vmap(lambda p: apply(p, x)[0])(stacked))  # (n, n_out, points)
    if n_out == 1:
        return 1 / (1 + np.exp(-np.clip(logits[:, 0], -60, 60)))
    return logits.argmax(axis=1)


def grid_lines(dim: int, half: float) -> tuple[np.ndarray, np.ndarray]:
    """Lines of the input plane: points ``(m, dim)`` and the id of the line of each point.

    1-D: the segment itself, as one line; else ``GRID_LINES`` lines each way (a slice
    through the origin for 3-D+).
    """
    t = np.linspace(-half, half, GRID_SAMPLES)
    if dim == 1:
        return t[:, None].astype(np.float32), np.zeros(len(t), np.int64)
    levels = np.linspace(-half, half, GRID_LINES)
    uv, ids = [], []
    for i, c in enumerate(levels):
        uv.append(np.stack([np.full_like(t, c), t], axis=1))
        uv.append(np.stack([t, np.full_like(t, c)], axis=1))
        ids += [np.full(len(t), 2 * i), np.full(len(t), 2 * i + 1)]
    return lift(np.concatenate(uv).astype(np.float32), dim), np.concatenate(ids)


def project(
    h_points: np.ndarray, h_lines: np.ndarray, names: Sequence[str]
) -> list[tuple[str, str, np.ndarray, np.ndarray]]:
    """Views of one layer. ``h_points (width, n)`` and ``h_lines (width, m)``.

    Returns ``(x_title, y_title, pts (n, 2), lines (m, 2))`` per panel: width 1 gives one
    strip (second coordinate 0), 2 one direct view, 3 three pairwise views, more a PCA view.
    """
    w = h_points.shape[0]
    if w == 1:
        return [
            (
                names[0],
                "",
                np.stack([h_points[0], np.zeros_like(h_points[0])], 1),
                np.stack([h_lines[0], np.zeros_like(h_lines[0])], 1),
            )
        ]
    if w <= 3:
        pairs = [(0, 1)] if w == 2 else [(0, 1), (0, 2), (1, 2)]
        return [(names[a], names[b], h_points[[a, b]].T, h_lines[[a, b]].T) for a, b in pairs]
    mean = h_points.mean(axis=1, keepdims=True)
    _, s, vt = np.linalg.svd((h_points - mean).T, full_matrices=False)
    share = s**2 / max(float((s**2).sum()), 1e-30)
    basis = vt[:2]  # (2, width)
    return [
        (
            f"PC1 ({share[0]:.0%} of variance)",
            f"PC2 ({share[1]:.0%})",
            ((h_points - mean).T @ basis.T),
            ((h_lines - mean).T @ basis.T),
        )
    ]


__all__ = ["GRID_LINES", "GRID_SAMPLES", "data_params", "decision_cells", "decision_grids",
           "forward", "forward_many", "grid_lines", "half_side", "lift", "project",
           "shape_of", "training_points"]
