"""Points of a dataset coloured by class: a 1-D strip, a 2-D scatter, or the pairwise
projections of three coordinates (``sweepnet datasets NAME``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.sweep import data as data_lib
from sweepnet.views.drawing import CLASS_COLORS
from sweepnet.views.drawing import fmt as _fmt
from sweepnet.views.drawing import values as _values


def dataset(
    name: str, n: int = 1024, params: dict[str, Any] | None = None, seed: int = 0
) -> alt.TopLevelMixin:
    """Draw ``n`` points of a registry dataset coloured by class.

    1-D data as a strip (jittered vertically), 2-D as a scatter, 3-D and wider as the three
    pairwise projections of the first three coordinates.
    """
    if name not in data_lib.DATASETS:
        raise SweepnetError(f"unknown dataset {name!r} (known: {', '.join(data_lib.DATASETS)})")
    if n < 2:
        raise SweepnetError(f"--n {n}: need at least 2 points")
    p = data_lib.default_params(name)
    p.update(params or {})
    if name == "file" and not p.get("path"):
        raise SweepnetError("dataset 'file' needs a path parameter (it draws the user's points)")
    rows = data_lib.read_points(p["path"], p.get("label", "label")) if name == "file" else None
    if rows is not None and n >= len(rows[1]):  # a file holds what it holds: all of it
        x, y = rows
    else:  # (a file's n points: a training set of its shuffle, as a sweep draws it)
        split = data_lib.make_split(name, p, n, 1, 0.0, seed)
        x, y = split.x_train, split.y_train
    desc = ", ".join(f"{k}={_fmt(v)}" for k, v in p.items()) or "no parameters"
    title = alt.Title(f"{name}: {len(x)} points", subtitle=desc, anchor="start")
    return points_chart(x, y, title=title)


def points_chart(
    x: np.ndarray,
    y: np.ndarray,
    title: Any = None,
    size: int = 260,
    names: Sequence[str] | None = None,
) -> alt.TopLevelMixin:
    """Scatter of points ``x (n, dim)`` with labels ``y (n,)``: 1-D strip, 2-D, or pairs of 3."""
    dim = x.shape[1]
    names = list(names or [f"x{i}" for i in range(dim)])
    classes = alt.Color("class:N", title="class", scale=alt.Scale(range=CLASS_COLORS))
    if dim == 1:
        jitter = np.random.default_rng(0).uniform(-1, 1, len(x))
        df = pd.DataFrame({names[0]: x[:, 0], "jitter": jitter, "class": y})
        chart = (
            alt.Chart(_values(df))
            .mark_circle(size=14, opacity=0.8)
            .encode(
                x=alt.X(f"{names[0]}:Q", title=names[0]),
                y=alt.Y(
                    "jitter:Q",
                    title="(jitter)",
                    scale=alt.Scale(domain=[-1.25, 1.25]),
                    axis=alt.Axis(labels=False, ticks=False, grid=False),
                ),
                color=classes,
            )
            .properties(width=size * 1.6, height=size * 0.35)
        )
    else:
        pairs = [(0, 1)] if dim == 2 else [(0, 1), (0, 2), (1, 2)]
        lim = float(np.abs(x).max()) * 1.05 or 1.0
        scale = alt.Scale(domain=[-lim, lim], nice=False)
        panels = []
        for a, b in pairs:
            df = pd.DataFrame({"u": x[:, a], "v": x[:, b], "class": y})
            panels.append(
                alt.Chart(_values(df))
                .mark_circle(size=12, opacity=0.75)
                .encode(
                    x=alt.X("u:Q", title=names[a], scale=scale),
                    y=alt.Y("v:Q", title=names[b], scale=scale),
                    color=classes,
                )
                .properties(width=size, height=size)
            )
        chart = panels[0] if len(panels) == 1 else alt.hconcat(*panels)
    return chart.properties(title=title) if title is not None else chart
