"""Drawing helpers shared by the views (the chart kinds, network pictures, explore, the report):
class colours, inline data, facets, the table helpers of the charts (:func:`require_rows`,
:func:`row_facet`, :func:`pooled_note`, :func:`ordinal_sort`, :func:`chance`), the
small-multiples boundary builder, and rendering to files.

It sits below every view and imports none of them, so imports flow one way
(``phase``/``curves``/``minwidth``/``points``/``betti``/``network``/... -> ``drawing``).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import vl_convert as vlc

from sweepnet.core.errors import SweepnetError
from sweepnet.sweep.spec import suggest

# Configuration columns of the runs table that a sweep can vary (``seed`` is the replicate
# axis and is aggregated over, never drawn as an axis of its own).
CONFIG_COLUMNS = (
    "dataset",
    "n_train",
    "n_test",
    "noise",
    "data_seed",
    "arch",
    "width",
    "depth",
    "activation",
    "init_scale",
    "optimizer",
    "learning_rate",
    "steps",
    "batch_size",
)

# Class 0 blue and class 1 orange everywhere (Vega's default category colours), so the
# points of one picture match the boundary colours of another.
CLASS_COLORS = [
    "#4c78a8",
    "#f58518",
    "#54a24b",
    "#e45756",
    "#72b7b2",
    "#b279a2",
    "#ff9da6",
    "#9d755d",
    "#bab0ac",
    "#eeca3b",
]


def prob_color(field: str = "p:Q") -> alt.Color:
    """p(class 1) from light blue (class 0) through white to light orange (class 1): light, so
    that training points in the full class colours stand out on top."""
    return alt.Color(
        field,
        title="p(class 1)",
        legend=alt.Legend(gradientLength=120),
        scale=alt.Scale(
            domain=[0, 0.5, 1], range=["#9ec3e6", "#f7f7f7", "#fdbf86"], interpolate="lab"
        ),
    )


def boundary_fill(binary: bool):
    """``(color, opacity)`` encodings of decision-boundary cells: p(class 1) for a binary
    network, else the predicted class ``cls`` shaded by its confidence ``conf``."""
    if binary:
        return prob_color(), alt.value(1.0)
    color = alt.Color("cls:N", title="predicted class", scale=alt.Scale(range=CLASS_COLORS))
    return color, alt.Opacity("conf:Q", title="confidence", scale=alt.Scale(range=[0.15, 0.6]))


def values(df: pd.DataFrame) -> dict[str, Any]:
    """An aggregated table as inline JSON values (NaN and <NA> become null).

    A plain ``{"values": (...)}`` dict: Altair neither row-limits it nor validates it row by
    row (``alt.InlineData`` is validated, which takes seconds for a few thousand rows). The
    rows are a tuple so that Altair's deep copies, made at every layer and concat, pass them
    by reference instead of copying every row again.
    """
    return {"values": tuple(json.loads(df.to_json(orient="records", double_precision=6)))}


def swept_axes(df: pd.DataFrame, exclude: Sequence[str | None] = ()) -> list[str]:
    """Configuration columns (incl. ``data_<param>``) taking more than one value in ``df``."""
    data_cols = sorted(c for c in df.columns if c.startswith("data_") and c != "data_seed")
    cols = [c for c in (*CONFIG_COLUMNS[:4], *data_cols, *CONFIG_COLUMNS[4:]) if c in df.columns]

    def varies(c: str) -> bool:
        if c.startswith("data_") and "dataset" in df.columns:
            # a dataset's parameters are null in the rows of other datasets: that is no axis
            return bool(df.groupby("dataset")[c].nunique().max() > 1)
        return df[c].nunique(dropna=False) > 1

    return [c for c in cols if c not in exclude and varies(c)]


def field(df: pd.DataFrame, name: str | None, option: str) -> str | None:
    """Resolve a user-named column (``dim`` may stand for ``data_dim``); None or 'none' → None."""
    if name is None or str(name).lower() in ("", "none"):
        return None
    if name in df.columns:
        return name
    if f"data_{name}" in df.columns:
        return f"data_{name}"
    known = ", ".join(swept_axes(df)) or "none"
    raise SweepnetError(
        f"{option} {name!r}: no such column in the runs table{suggest(name, df.columns)} "
        f"(swept here: {known})"
    )


def label(df: pd.DataFrame, fields: Sequence[str]) -> pd.Series:
    """One facet label per row: the value of a single field, or ``"depth=2 · dataset=moons"``."""
    if not fields:
        return pd.Series([""] * len(df), index=df.index)
    if len(fields) == 1:
        return df[fields[0]].map(fmt)
    parts = [f + "=" + df[f].map(fmt) for f in fields]
    out = parts[0]
    for p in parts[1:]:
        out = out + " · " + p
    return out


def title(column: str | None) -> str:
    """A human title for a column name: ``data_turns`` -> ``turns``, ``learning_rate`` ->
    ``learning rate`` (the facet label ``_row`` and None give an empty title)."""
    if not column or column.startswith("_"):
        return ""
    if column.startswith("data_"):
        column = column[len("data_") :]
    return column.replace("_", " ")


def fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "none" if math.isnan(v) else f"{v:g}"
    return str(v)


def facet(
    chart, column: str | None, row: str | None, row_title: str | None, column_type: str = "N"
):
    """``chart`` faceted by ``column`` (columns) and ``row`` (rows); unchanged if neither."""
    facet = {}
    if column:
        facet["column"] = alt.Column(f"{column}:{column_type}", title=title(column))
    if row:
        facet["row"] = alt.Row(
            f"{row}:N", title=row_title, header=alt.Header(labelAngle=0, labelAlign="left")
        )
    return chart.facet(**facet) if facet else chart


def require_rows(df: pd.DataFrame, what: str) -> None:
    """Raise :class:`SweepnetError` naming ``what`` when ``df`` has no rows."""
    if not len(df):
        raise SweepnetError(f"no finished runs to chart ({what})")


def row_facet(
    df: pd.DataFrame, row: str | None, used: Sequence[str | None], pool: bool = False
) -> tuple[pd.DataFrame, str | None, str]:
    """Add a ``_row`` label column: the named ``row`` field, or every other swept axis (none
    with ``pool``: they are pooled)."""
    fields = [row] if row else [] if pool else swept_axes(df, exclude=used)
    if not fields:
        return df, None, ""
    df = df.assign(_row=label(df, fields))
    return df, "_row", " · ".join(fields)


def pooled_note(df: pd.DataFrame, used: Sequence[str | None]) -> str:
    """``"; pooled over a, b"`` naming swept axes that a chart neither draws nor facets."""
    axes = swept_axes(df, exclude=used)
    return f"; pooled over {', '.join(axes)}" if axes else ""


def ordinal_sort(values: pd.Series) -> list:
    """The distinct values of ``values`` in order (nulls left out): an ordinal axis's sort."""
    return sorted(values.dropna().unique().tolist())


def chance(df: pd.DataFrame) -> float:
    """Accuracy of guessing: 1 / the number of classes (0.5 without an ``n_classes`` column)."""
    k = int(df["n_classes"].max()) if "n_classes" in df and len(df) else 2
    return 1.0 / max(k, 2)


PAGE_WIDTH = 1350  # px: the report's page (1,400 px at most, less its margins)


def cell_size(n_x: int, n_y: int, columns: int = 1, row_labels: bool = False,
              width: int = PAGE_WIDTH) -> tuple[int, int]:
    """Width and height (px) of a phase diagram's cell so that ``columns`` facets of ``n_x``
    cells fill ``width`` (less the axes, the legend and the row headers): between 30 and 110
    px wide, two thirds as high (at least 24 px), and never so tall that ``n_y`` rows pass
    700 px."""
    room = width - 160 - (160 if row_labels else 0) - 70 * max(columns, 1)
    w = int(max(30, min(110, room // max(n_x * max(columns, 1), 1))))
    h = int(max(24, min(w * 2 // 3, 700 // max(n_y, 1))))
    return w, h


def representatives(df: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One run per group of ``keys``: the seed with the median test accuracy (ties: lower seed)."""

    def pick(g: pd.DataFrame) -> pd.Series:
        g = g.sort_values(["test_acc", "seed"], kind="stable")
        return g.iloc[(len(g) - 1) // 2]

    rows = [pick(g) for _, g in df.groupby(list(keys), sort=True)]
    return pd.DataFrame(rows).reset_index(drop=True)


def boundary(
    cells: pd.DataFrame,
    points: pd.DataFrame,
    column: str | None = "width",
    row: str | None = "_row",
    row_title: str = "",
    n_classes: int = 2,
    panel: int = 120,
    x_title: str = "input x0",
    y_title: str = "input x1",
) -> alt.TopLevelMixin:
    """Small multiples of decision boundaries.

    ``cells``: one row per grid cell and panel, with ``x0, x1, y0, y1`` (the cell's box),
    ``p`` (probability of class 1, binary) or ``cls`` and ``conf`` (multi-class), and the facet
    fields. ``points``: ``u, v, label`` training points (already projected to the panel's
    plane) with the same facet fields. Built by :func:`sweepnet.views.network.boundary_frames`.
    """
    x_lo, y_hi = float(cells["x0"].min()), float(cells["y1"].max())
    tables = [cells.assign(_layer="cells"), points.assign(_layer="points")]
    if "test_acc" in cells.columns and "run_id" in cells.columns:
        # one caption per panel: the drawn network's test accuracy, in its top left corner
        keys = [k for k in (column, row) if k]
        first = cells.groupby("run_id", sort=False)[[*keys, "test_acc"]].first().reset_index()
        tables.append(
            first.assign(
                _layer="caption",
                u=x_lo,
                v=y_hi + 0.16 * (y_hi - float(cells["y0"].min())),
                caption="test acc " + first["test_acc"].map("{:.3f}".format),
            )
        )
    base = alt.Chart(values(pd.concat(tables, ignore_index=True)))
    xs = alt.Scale(domain=[x_lo, float(cells["x1"].max())], nice=False)
    # a blank band above the domain holds the caption, off the training points
    y_lo = float(cells["y0"].min())
    ys = alt.Scale(domain=[y_lo, y_hi + 0.16 * (y_hi - y_lo)], nice=False)
    fill, opacity = boundary_fill(n_classes == 2)
    rect = (
        base.transform_filter("datum._layer == 'cells'")
        .mark_rect(clip=True)
        .encode(
            x=alt.X("x0:Q", title=x_title, scale=xs),
            x2="x1:Q",
            y=alt.Y("y0:Q", title=y_title, scale=ys),
            y2="y1:Q",
            color=fill,
            opacity=opacity,
        )
    )
    dots = (
        base.transform_filter("datum._layer == 'points'")
        .mark_circle(size=10, opacity=1, stroke="black", strokeWidth=0.3, clip=True)
        .encode(
            x="u:Q",
            y="v:Q",
            fill=alt.Fill("label:N", title="training class", scale=alt.Scale(range=CLASS_COLORS)),
        )
    )
    caption = (
        base.transform_filter("datum._layer == 'caption'")
        .mark_text(align="left", baseline="top", dx=3, dy=3, fontSize=10)
        .encode(x="u:Q", y="v:Q", text="caption:N")
    )
    chart = alt.layer(rect, dots, caption).properties(width=panel, height=panel)
    chart = facet(chart, column, row, row_title, column_type="O")
    return chart


def vl_version() -> str | None:
    mine = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return mine if mine in vlc.get_vegalite_versions() else None


def to_html(chart: alt.TopLevelMixin) -> str:
    """A standalone HTML page with the Vega libraries inlined (works offline)."""
    return vlc.vegalite_to_html(chart.to_dict(), vl_version=vl_version(), bundle=True)


def save(chart: alt.TopLevelMixin, path: str, scale: float = 2.0) -> None:
    """Write ``chart`` to ``path``: .png or .svg (rendered by vl-convert) or .html (offline).

    ``scale`` multiplies the PNG's pixel size (2 gives crisp text on most screens).
    """
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".png", ".svg", ".html"):
        raise SweepnetError(
            f"{path}: unknown chart format {ext or '(none)'!r}; use .png, .svg or .html"
        )
    spec = chart.to_dict()
    version = vl_version()
    try:
        if ext == ".png":
            payload: bytes | str = vlc.vegalite_to_png(spec, vl_version=version, scale=scale)
        elif ext == ".svg":
            payload = vlc.vegalite_to_svg(spec, vl_version=version)
        else:
            payload = vlc.vegalite_to_html(spec, vl_version=version, bundle=True)
    except Exception as e:  # a Vega error while rendering: keep it to one line
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SweepnetError(f"{path}: cannot render chart ({first})") from None
    try:
        d = os.path.dirname(path)
        if d:
            os.makedirs(d, exist_ok=True)
        mode = "wb" if isinstance(payload, bytes) else "w"
        with open(path, mode, **({} if mode == "wb" else {"encoding": "utf-8"})) as f:
            f.write(payload)
    except OSError as e:
        raise SweepnetError(f"{path}: cannot write ({e.strerror})") from None


__all__ = [
    "CLASS_COLORS",
    "CONFIG_COLUMNS",
    "PAGE_WIDTH",
    "boundary",
    "boundary_fill",
    "cell_size",
    "facet",
    "field",
    "fmt",
    "label",
    "prob_color",
    "representatives",
    "save",
    "swept_axes",
    "title",
    "to_html",
    "values",
    "vl_version",
]
