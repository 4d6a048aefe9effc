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

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.measure.network import (
    decision_cells,
    forward,
    grid_lines,
    half_side,
    project,
    training_points,
)
from sweepnet.store import results
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


# ----------------------------------------------------------------------------- points


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
    for i, caption in (betti_captions(root, run_id) if root else {}).items():
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


def betti_captions(root: str, run_id: str) -> dict[int, str]:
    """``{layer: "class 0: b = (1, 1) · class 1: ..."}`` from ``DIR/topology.parquet`` (layer 0
    = input, last = read-out); empty when this run's topology was not measured."""
    df = results.load_topology(root)
    df = df[df["run_id"] == run_id].sort_values(["layer", "class"])
    out: dict[int, list[str]] = {}
    for r in df.rename(columns={"class": "cls"}).itertuples(index=False):
        b = [r.b0, r.b1] + ([] if pd.isna(r.b2) else [r.b2])
        out.setdefault(int(r.layer), []).append(
            f"class {r.cls}: β = ({', '.join(str(int(v)) for v in b)})")
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
    "inspect",
    "network",
    "plane_points",
]
