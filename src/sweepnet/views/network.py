"""Pictures of single trained networks, from their stored parameters (nothing is retrained).

``inspect(dir, run_id)`` draws one network in the manner of Olah's "Neural Networks,
Manifolds, and Topology": its decision boundary over the input domain with the training
points, then, for every hidden layer, where that layer moves the training points and a grid of
lines of the input space.

How each space is drawn (the same rule for the input, every hidden layer and a multi-class
read-out, so a picture of width ``w`` always means the same thing):

- 1 coordinate: a strip (the value on x, the points jittered on y);
- 2 coordinates: directly;
- 3 coordinates: the three pairwise coordinate projections;
- 4 or more: projected onto the first two principal axes (PCA of that space's activations
  of the training points; the axis titles give the share of variance).

The grid is ``GRID_LINES`` lines each way across the square ``[-e, e]^2`` of the first two
input coordinates (for 3-D+ inputs it lies on the slice ``x2 = x3 = ... = 0``), and each
layer shows where the network carries it. The decision boundary is drawn over the same
square: as a strip for 1-D inputs, directly for 2-D, and on that slice for 3-D+, with the
quarter of the training points nearest the slice projected onto it. A binary network's
read-out is its logit as a strip with the threshold at 0; where its last hidden layer has 2
units, that panel also shows the read-out's line ``w . h + b = 0``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import altair as alt
import jax
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.store import results
from sweepnet.sweep.data import DATASETS, extent, make_split
from sweepnet.sweep.models import build
from sweepnet.views.drawing import (
    CLASS_COLORS,
    boundary,
    boundary_fill,
    representatives,
    swept_axes,
)
from sweepnet.views.drawing import field as _field
from sweepnet.views.drawing import label as _label
from sweepnet.views.drawing import values as _values

MAX_POINTS = 600  # training points drawn per panel (a fixed subsample beyond that)
GRID_LINES = 11  # grid lines per direction of the input plane
GRID_SAMPLES = 60  # points along each grid line


# ----------------------------------------------------------------------------- numerics


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


def _subsample(n: int, k: int) -> np.ndarray:
    return np.arange(n) if n <= k else np.sort(np.random.default_rng(0).choice(n, k, False))


def plane_points(x: np.ndarray, y: np.ndarray, limit: int = MAX_POINTS) -> pd.DataFrame:
    """Training points as drawn on the input plane: ``u, v, label`` (see the module doc)."""
    dim = x.shape[1]
    if dim == 1:
        v = np.random.default_rng(0).uniform(-0.8, 0.8, len(x))
        keep = _subsample(len(x), limit)
        return pd.DataFrame({"u": x[keep, 0], "v": v[keep], "label": y[keep]})
    keep = np.arange(len(x))
    if dim >= 3:  # the quarter of the points nearest the slice x2.. = 0
        dist = np.linalg.norm(x[:, 2:], axis=1)
        keep = np.argsort(dist, kind="stable")[: max(30, len(x) // 4)]
    keep = keep[_subsample(len(keep), limit)]
    return pd.DataFrame({"u": x[keep, 0], "v": x[keep, 1], "label": y[keep]})


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
    dim = int(row["in_dim"])
    edges = np.linspace(-half, half, res + 1)
    mids = ((edges[:-1] + edges[1:]) / 2).astype(np.float32)
    if dim == 1:
        uv = np.stack([mids, np.zeros_like(mids)], axis=1)
    else:
        gu, gv = np.meshgrid(mids, mids, indexing="xy")
        uv = np.stack([gu.ravel(), gv.ravel()], axis=1)
    x = lift(uv, dim).T  # (dim, points)
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


# ----------------------------------------------------------------------------- charts


def _square_scale(*arrays: np.ndarray) -> alt.Scale:
    """One domain for both axes, covering the points (lines may be clipped)."""
    vals = np.concatenate([a.ravel() for a in arrays if a.size])
    vals = vals[np.isfinite(vals)]
    lo, hi = (float(vals.min()), float(vals.max())) if vals.size else (-1.0, 1.0)
    pad = max((hi - lo) * 0.08, 1e-3)
    return alt.Scale(domain=[lo - pad, hi + pad], nice=False, zero=False)


def _classes() -> alt.Fill:
    # Points use the fill channel everywhere, so one "class" legend serves every panel.
    return alt.Fill("label:N", title="class", scale=alt.Scale(range=CLASS_COLORS))


def _layer_panel(
    title: str,
    x_title: str,
    y_title: str,
    pts: np.ndarray,
    labels: np.ndarray,
    lines: np.ndarray | None,
    line_ids: np.ndarray | None,
    size: int,
    readout: tuple[np.ndarray, float] | None = None,
    threshold: float | None = None,
) -> alt.TopLevelMixin:
    """One panel: grid lines (grey), points by class, and optionally the read-out's line."""
    strip = y_title == ""
    if strip:  # 1-D: jitter the points so they do not all sit on one line
        pts = np.stack([pts[:, 0], np.random.default_rng(1).uniform(-0.8, 0.8, len(pts))], 1)
    if strip:
        xs, ys = _square_scale(pts[:, 0]), alt.Scale(domain=[-1, 1])
    else:  # one domain both ways, so distances read the same both ways
        xs = ys = _square_scale(pts)
    layers = []
    if lines is not None and not strip:
        ldf = pd.DataFrame(
            {"a": lines[:, 0], "b": lines[:, 1], "line": line_ids, "order": np.arange(len(lines))}
        )
        layers.append(
            alt.Chart(_values(ldf))
            .mark_line(color="#888888", strokeWidth=0.7, opacity=0.6, clip=True)
            .encode(
                x=alt.X("a:Q", scale=xs, title=x_title),
                y=alt.Y("b:Q", scale=ys, title=y_title),
                detail="line:N",
                order="order:Q",
            )
        )
    pdf = pd.DataFrame({"a": pts[:, 0], "b": pts[:, 1], "label": labels})
    layers.append(
        alt.Chart(_values(pdf))
        .mark_circle(size=14, opacity=0.8, clip=True)
        .encode(
            x=alt.X("a:Q", scale=xs, title=x_title),
            y=alt.Y(
                "b:Q",
                scale=ys,
                title=y_title or "(jitter)",
                axis=alt.Axis(labels=not strip, ticks=not strip),
            ),
            fill=_classes(),
        )
    )
    if readout is not None:  # the read-out's line w·h + b = 0 in a 2-D last layer
        (w0, w1), b = readout
        lo, hi = xs.domain
        if abs(w1) >= abs(w0):
            a = np.linspace(lo, hi, 50)
            seg = np.stack([a, -(b + w0 * a) / w1], 1)
        else:
            c = np.linspace(lo, hi, 50)
            seg = np.stack([-(b + w1 * c) / w0, c], 1)
        sdf = pd.DataFrame(
            {
                "a": seg[:, 0],
                "b": seg[:, 1],
                "order": np.arange(len(seg)),
                "what": "read-out boundary",
            }
        )
        layers.append(
            alt.Chart(_values(sdf))
            .mark_line(color="black", strokeDash=[5, 3], strokeWidth=1.5, clip=True)
            .encode(x="a:Q", y="b:Q", order="order:Q", tooltip=alt.Tooltip("what:N", title="line"))
        )
    if threshold is not None:
        tdf = pd.DataFrame({"a": [threshold], "what": ["threshold (logit 0)"]})
        layers.append(
            alt.Chart(_values(tdf))
            .mark_rule(color="black", strokeDash=[5, 3])
            .encode(x="a:Q", tooltip="what:N")
        )
    return alt.layer(*layers).properties(
        title=title, width=size, height=size if not strip else int(size * 0.45)
    )


def _boundary_panel(
    row: pd.Series, params: Any, x: np.ndarray, y: np.ndarray, half: float, size: int
) -> alt.TopLevelMixin:
    dim = int(row["in_dim"])
    cells = decision_cells(row, params, half, res=60)
    pts = plane_points(x, y)
    scale = alt.Scale(domain=[-half, half], nice=False)
    y_scale = alt.Scale(domain=[-1, 1], nice=False) if dim == 1 else scale
    x_title = "x0" if dim < 3 else "x0 (slice x2.. = 0)"
    y_title = "(jitter)" if dim == 1 else "x1"
    color, opacity = boundary_fill("p" in cells)
    if "p" in cells:
        tip = [alt.Tooltip("p:Q", title="p(class 1)", format=".3f")]
    else:
        tip = [alt.Tooltip("cls:N", title="class"), alt.Tooltip("conf:Q", format=".3f")]
    rect = (
        alt.Chart(_values(cells))
        .mark_rect(clip=True)
        .encode(
            x=alt.X("x0:Q", scale=scale, title=x_title),
            x2="x1:Q",
            y=alt.Y("y0:Q", scale=y_scale, title=y_title),
            y2="y1:Q",
            color=color,
            opacity=opacity,
            tooltip=tip,
        )
    )
    dots = (
        alt.Chart(_values(pts))
        .mark_circle(size=16, opacity=1, stroke="black", strokeWidth=0.4, clip=True)
        .encode(x=alt.X("u:Q", scale=scale), y=alt.Y("v:Q", scale=y_scale), fill=_classes())
    )
    note = "" if dim == 2 else (" (1-D strip)" if dim == 1 else " (slice x2.. = 0)")
    return alt.layer(rect, dots).properties(
        title=f"decision boundary{note}", width=size, height=size if dim > 1 else int(size * 0.45)
    )


def inspect(root: str, run_id: str, size: int = 220, ncol: int = 3) -> alt.TopLevelMixin:
    """Decision boundary and layer-by-layer pictures of the stored network ``run_id``.

    Panels in reading order (``ncol`` a row): decision boundary, input space with its grid,
    each hidden layer, the read-out. See the module doc for how each space is drawn.
    """
    row, params = results.load_params(root, run_id)
    return network(row, params, size, ncol, root=root)


def network(
    row: pd.Series, params: Any, size: int = 220, ncol: int = 3, title: str | None = None,
    root: str | None = None,
) -> alt.TopLevelMixin:
    """The pictures of :func:`inspect` for the network ``params`` of the runs row ``row`` (the
    stored one, or a snapshot during training: ``test_acc``, ``train_loss`` and ``separated``
    of ``row`` are what the subtitle states). ``root``: its results folder, whose
    ``topology.parquet`` (if any) puts Betti numbers under the layers' pictures."""
    run_id = row["run_id"]
    x, y = training_points(row)
    dim, width = int(row["in_dim"]), int(row["width"])
    half = half_side(row, x)
    keep = _subsample(len(x), MAX_POINTS)
    xs, ys = x[keep], y[keep]
    line_x, line_ids = grid_lines(dim, half)
    logits_p, hidden_p = forward(row, params, xs)
    logits_l, hidden_l = forward(row, params, line_x)
    binary = logits_p.shape[0] == 1

    sections: list[list[alt.TopLevelMixin]] = []  # input, each hidden layer, read-out

    def add_views(
        label: str, h_pts: np.ndarray, h_lines: np.ndarray, names: Sequence[str], readout=None
    ) -> None:
        views = project(h_pts, h_lines, names)
        n = h_pts.shape[0]
        how = "" if n <= 2 else " (pairwise)" if n == 3 else " (PCA)"
        sections.append(
            [
                _layer_panel(
                    f"{label}{how}" if k == 0 else "",
                    xt,
                    yt,
                    pts,
                    ys,
                    lines,
                    line_ids,
                    size,
                    readout=readout,
                )
                for k, (xt, yt, pts, lines) in enumerate(views)
            ]
        )

    if dim >= 2:  # 1-D inputs: the boundary strip already is the input space
        grid_note = "" if dim == 2 else ", grid on the slice x2.. = 0"
        add_views(f"input space{grid_note}", xs.T, line_x.T, [f"x{j}" for j in range(dim)])
    else:
        sections.append([])
    for i, (hp, hl) in enumerate(zip(hidden_p, hidden_l, strict=True)):
        readout = None
        if i == len(hidden_p) - 1 and binary and width == 2:
            kernel = np.asarray(params["params"]["out"]["kernel"])[0]
            readout = (
                (float(kernel[0]), float(kernel[1])),
                float(np.asarray(params["params"]["out"]["bias"])[0]),
            )
        add_views(
            f"hidden layer {i + 1}: {width} unit{'s' * (width > 1)}",
            hp,
            hl,
            [f"layer {i + 1} unit {j}" for j in range(width)],
            readout,
        )
    if binary:
        sections.append(
            [
                _layer_panel(
                    "read-out: logit (class 1 where > 0)",
                    "logit",
                    "",
                    logits_p[0][:, None],
                    ys,
                    None,
                    None,
                    size,
                    threshold=0.0,
                )
            ]
        )
    else:
        add_views(
            "read-out: logits", logits_p, logits_l, [f"logit {j}" for j in range(logits_p.shape[0])]
        )
    for i, caption in (_betti_captions(root, run_id) if root else {}).items():
        if i < len(sections) and sections[i]:
            sections[i][0] = alt.vconcat(sections[i][0], _caption(caption, size), spacing=2)
    # The boundary opens the input's row. Layers drawn in one panel each flow on in rows of
    # ``ncol``; layers drawn in several panels (3 units) get a row each.
    rows = [[_boundary_panel(row, params, x, y, half, size), *sections[0]]]
    rest = sections[1:]
    if all(len(sec) == 1 for sec in rest):
        flat = [p for sec in rest for p in sec]
        if len(rows[0]) < ncol:  # fill the first row up
            take = ncol - len(rows[0])
            rows[0] += flat[:take]
            flat = flat[take:]
        rows += [flat[i : i + ncol] for i in range(0, len(flat), ncol)]
    else:
        rows += rest
    rows = [alt.hconcat(*r) for r in rows if r]
    sep = "separated" if bool(row["separated"]) else "not separated"
    subtitle = (
        f"{row['dataset']}, width {width}, depth {int(row['depth'])}, "
        f"{row['activation']}, seed {int(row['seed'])}: test accuracy "
        f"{float(row['test_acc']):.4f} ({sep}), train loss {float(row['train_loss']):.4g}."
        " Grey: lines of the input space, carried through each layer."
    )
    return (
        alt.vconcat(*rows)
        .properties(title=alt.Title(title or f"Network {run_id}", subtitle=subtitle))
        .configure_axis(labelFontSize=10, titleFontSize=11, grid=False)
        .configure_title(fontSize=14, anchor="start")
    )


def _betti_captions(root: str, run_id: str) -> dict[int, str]:
    """``{layer: "class 0: b = (1, 1) · class 1: ..."}`` from ``DIR/topology.parquet`` (layer 0
    = input, last = read-out); empty when this run's topology was not measured."""
    path = os.path.join(root, "topology.parquet")
    if not os.path.exists(path):
        return {}
    df = pd.read_parquet(path)
    df = df[df["run_id"] == run_id].sort_values(["layer", "class"])
    out: dict[int, list[str]] = {}
    for r in df.itertuples(index=False):
        b = [r.b0, r.b1] + ([] if pd.isna(r.b2) else [r.b2])
        out.setdefault(int(r.layer), []).append(
            f"class {r[2]}: β = ({', '.join(str(int(v)) for v in b)})")
    return {k: "  ·  ".join(v) for k, v in out.items()}


def _caption(text: str, size: int) -> alt.Chart:
    """A line of text under a panel."""
    return (alt.Chart(_values(pd.DataFrame({"t": [text]})))
            .mark_text(align="left", x=0, fontSize=11, color="#333")
            .encode(text="t:N").properties(width=size, height=14))


# ----------------------------------------------------------------------------- small multiples


def boundary_frames(
    root: str,
    runs: pd.DataFrame,
    column: str | None = "width",
    row: str | None = None,
    max_panels: int = 120,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Cells and points of one representative run per configuration (the seed with the median
    test accuracy), for ``drawing.boundary``. Panels are columns by ``column`` and
    rows by ``row`` followed by every other swept axis."""
    column = _field(runs, column, "--column")
    row = _field(runs, row, "--row")
    axes = swept_axes(runs)
    rest = [a for a in axes if a not in (column, row)]
    row_fields = ([row] if row else []) + rest
    keys = [k for k in (column, *row_fields) if k]
    reps = representatives(runs, keys) if keys else runs.iloc[[0]]
    if len(reps) > max_panels:
        raise SweepnetError(
            f"boundary: {len(reps)} panels (one per configuration) is too many "
            f"to draw (at most {max_panels}); use `sweepnet inspect` on single "
            "runs or chart a smaller sweep"
        )
    res = int(np.clip(np.sqrt(20000 / len(reps)), 12, 40))  # rects are slow to render
    reps = reps.assign(_row=_label(reps, row_fields))
    cell_frames, point_frames = [], []
    for _, r in reps.iterrows():
        stored, params = results.load_params(root, r["run_id"])
        x, y = training_points(stored)
        half = half_side(stored, x)
        facet = {k: r[k] for k in ([column] if column else [])}
        facet["_row"] = r["_row"]
        facet["run_id"], facet["test_acc"] = r["run_id"], float(r["test_acc"])
        cell_frames.append(decision_cells(stored, params, half, res).assign(**facet))
        point_frames.append(plane_points(x, y, limit=150).assign(**facet))
    dims = sorted(reps["in_dim"].unique().tolist())
    info = {
        "column": column,
        "row": "_row" if row_fields else None,
        "row_title": " · ".join(row_fields),
        "dims": dims,
        "n_classes": int(reps["n_classes"].max()),
    }
    return (
        pd.concat(cell_frames, ignore_index=True),
        pd.concat(point_frames, ignore_index=True),
        info,
    )


def boundary_grid(
    root: str, runs: pd.DataFrame, column: str | None = "width", row: str | None = None
) -> alt.TopLevelMixin:
    """Small multiples of decision boundaries of a results folder (``sweepnet chart --kind
    boundary``)."""
    cells, points, info = boundary_frames(root, runs, column, row)
    panel = 120 if len(cells) < 40000 else 90
    dims = info["dims"]
    x_title = "input x0" + (" (slice x2.. = 0)" if max(dims) >= 3 else "")
    y_title = "input x1" if min(dims) >= 2 else ("(jitter)" if max(dims) == 1 else "x1 or jitter")
    chart = boundary(
        cells,
        points,
        info["column"],
        info["row"],
        info["row_title"],
        n_classes=info["n_classes"],
        panel=panel,
        x_title=x_title,
        y_title=y_title,
    )
    how = {1: "1-D inputs as strips", 2: "2-D inputs", 3: "3-D+ inputs on the slice x2.. = 0"}
    note = "; ".join(how[min(d, 3)] for d in dims)
    return chart.properties(
        title=alt.Title(
            "Decision boundaries",
            subtitle=f"one network per panel (the median seed by test "
            f"accuracy); {note}; dots: training points",
        )
    )


__all__ = [
    "boundary_frames",
    "boundary_grid",
    "data_params",
    "decision_cells",
    "decision_grids",
    "forward",
    "grid_lines",
    "inspect",
    "network",
    "project",
    "training_points",
]
