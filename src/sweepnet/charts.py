"""Altair charts of a results folder: phase diagrams, curves, minimal width, decision boundaries.

Every builder is a pure function of DataFrames that returns an Altair chart; :func:`save`
writes it. Builders aggregate in pandas first and hand Altair only the aggregated table, as
inline values, so Altair's row limit never applies: the chart holds one row per drawn mark,
never one per run or per curve point.

``from_results(dir, kind, **options)`` reads a results folder and calls the builder of
``kind``; it is what ``sweepnet chart`` calls.
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

from sweepnet.errors import SweepnetError

KINDS = ("phase", "curves", "minwidth", "boundary")

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


_METRIC_TITLES = {
    "separated": "share of seeds separated",
    "test_acc": "mean test accuracy",
    "train_acc": "mean train accuracy",
    "train_loss": "mean train loss",
    "diverged": "share of seeds diverged",
    "steps_to_fit": "median steps to fit",
}


# ----------------------------------------------------------------------------- helpers



def boundary_fill(binary: bool):
    """``(color, opacity)`` encodings of decision-boundary cells: p(class 1) for a binary
    network, else the predicted class ``cls`` shaded by its confidence ``conf``."""
    if binary:
        return prob_color(), alt.value(1.0)
    color = alt.Color("cls:N", title="predicted class", scale=alt.Scale(range=CLASS_COLORS))
    return color, alt.Opacity("conf:Q", title="confidence", scale=alt.Scale(range=[0.15, 0.6]))

def _values(df: pd.DataFrame) -> dict[str, Any]:
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


def _field(df: pd.DataFrame, name: str | None, option: str) -> str | None:
    """Resolve a user-named column (``dim`` may stand for ``data_dim``); None or 'none' → None."""
    if name is None or str(name).lower() in ("", "none"):
        return None
    if name in df.columns:
        return name
    if f"data_{name}" in df.columns:
        return f"data_{name}"
    known = ", ".join(swept_axes(df)) or "none"
    raise SweepnetError(
        f"{option} {name!r}: no such column in the runs table (swept here: {known})"
    )


def _label(df: pd.DataFrame, fields: Sequence[str]) -> pd.Series:
    """One facet label per row: the value of a single field, or ``"depth=2 · dataset=moons"``."""
    if not fields:
        return pd.Series([""] * len(df), index=df.index)
    if len(fields) == 1:
        return df[fields[0]].map(_fmt)
    parts = [f + "=" + df[f].map(_fmt) for f in fields]
    out = parts[0]
    for p in parts[1:]:
        out = out + " · " + p
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return "none" if math.isnan(v) else f"{v:g}"
    return str(v)


def _require_rows(df: pd.DataFrame, what: str) -> None:
    if not len(df):
        raise SweepnetError(f"no finished runs to chart ({what})")


def _row_facet(
    df: pd.DataFrame, row: str | None, used: Sequence[str | None]
) -> tuple[pd.DataFrame, str | None, str]:
    """Add a ``_row`` label column: the named ``row`` field, or every other swept axis."""
    fields = [row] if row else swept_axes(df, exclude=used)
    if not fields:
        return df, None, ""
    df = df.assign(_row=_label(df, fields))
    return df, "_row", " · ".join(fields)


def _pooled(df: pd.DataFrame, used: Sequence[str | None]) -> str:
    """``"; pooled over a, b"`` naming swept axes that a chart neither draws nor facets."""
    axes = swept_axes(df, exclude=used)
    return f"; pooled over {', '.join(axes)}" if axes else ""


def _ordinal_sort(values: pd.Series) -> list:
    return sorted(values.dropna().unique().tolist())


# ----------------------------------------------------------------------------- phase


def phase_table(
    df: pd.DataFrame,
    x: str = "width",
    y: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
) -> pd.DataFrame:
    """One row per cell: ``value`` (share or mean of ``metric``), ``n``, mean test accuracy,
    median steps to fit, and the facet labels ``_col``/``_row`` where faceted."""
    _require_rows(df, "phase")
    x, y = _field(df, x, "--x"), _field(df, y, "--y")
    metric = _field(df, metric, "--metric") or "separated"
    column = _field(df, column, "--column")
    row = _field(df, row, "--row")
    if not pd.api.types.is_numeric_dtype(df[metric]) and df[metric].dtype != bool:
        raise SweepnetError(f"--metric {metric!r}: not a numeric or boolean column")
    df, row_key, _ = _row_facet(df, row, used=(x, y, column))
    keys = [k for k in (x, y, column, row_key) if k]
    work = df.assign(
        _v=df[metric].astype("float64"), _fit=df["steps_to_fit"].astype("Float64").astype("float64")
    )
    agg = (
        work.groupby(keys, dropna=False, sort=True)
        .agg(
            n=("_v", "size"),
            value=("_v", "median" if metric == "steps_to_fit" else "mean"),
            test_acc=("test_acc", "mean"),
            steps_to_fit=("_fit", "median"),
            separated=("separated", "sum"),
        )
        .reset_index()
    )
    return agg



def _facet(chart, column: str | None, row: str | None, row_title: str | None,
           column_type: str = "N"):
    """``chart`` faceted by ``column`` (columns) and ``row`` (rows); unchanged if neither."""
    facet = {}
    if column:
        facet["column"] = alt.Column(f"{column}:{column_type}", title=column)
    if row:
        facet["row"] = alt.Row(
            f"{row}:N", title=row_title, header=alt.Header(labelAngle=0, labelAlign="left")
        )
    return chart.facet(**facet) if facet else chart


def phase(
    df: pd.DataFrame,
    x: str = "width",
    y: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
) -> alt.TopLevelMixin:
    """Phase diagram: ``x`` × ``y`` cells coloured by the share of seeds with ``metric``.

    ``df`` is the runs table (one row per network). Cells are faceted in columns by
    ``column`` and in rows by ``row`` (default: every other swept axis, combined). A boolean
    metric is shown as a share on a fixed 0..1 colour scale; accuracies also use 0..1.
    """
    x_f, y_f = _field(df, x, "--x"), _field(df, y, "--y")
    metric_f = _field(df, metric, "--metric") or "separated"
    col_f, row_f = _field(df, column, "--column"), _field(df, row, "--row")
    agg = phase_table(df, x_f, y_f, metric_f, col_f, row_f)
    row_title = " · ".join([row_f] if row_f else swept_axes(df, exclude=(x_f, y_f, col_f)))
    title = _METRIC_TITLES.get(metric_f, f"mean {metric_f}")
    unit_range = metric_f in ("separated", "diverged", "test_acc", "train_acc") or (
        agg["value"].min() >= 0 and agg["value"].max() <= 1
    )
    scale = (
        alt.Scale(domain=[0, 1], scheme="viridis")
        if unit_range
        else alt.Scale(scheme="viridis", zero=False)
    )
    fmt = ".2f" if unit_range else ".3g"
    agg = agg.assign(
        label=agg["value"].map(lambda v: "" if pd.isna(v) else format(v, fmt)),
        dark=agg["value"] < (0.5 if unit_range else agg["value"].median()),
    )
    base = alt.Chart(_values(agg)).encode(
        x=alt.X(f"{x_f}:O", title=x_f, sort=_ordinal_sort(agg[x_f]), axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y_f}:O", title=y_f, sort=list(reversed(_ordinal_sort(agg[y_f])))),
    )
    tooltip = [
        alt.Tooltip(f"{x_f}:O"),
        alt.Tooltip(f"{y_f}:O"),
        alt.Tooltip("value:Q", title=title, format=fmt),
        alt.Tooltip("n:Q", title="n (seeds)"),
        alt.Tooltip("separated:Q", title="separated"),
        alt.Tooltip("test_acc:Q", title="mean test_acc", format=".4f"),
        alt.Tooltip("steps_to_fit:Q", title="median steps_to_fit", format=".0f"),
    ]
    if col_f:
        tooltip.insert(0, alt.Tooltip(f"{col_f}:N"))
    rect = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color(
            "value:Q",
            title=title,
            scale=scale,
            legend=alt.Legend(orient="right", format=fmt, gradientLength=160),
        ),
        tooltip=tooltip,
    )
    text = base.mark_text(fontSize=11).encode(
        text="label:N",
        color=alt.condition("datum.dark", alt.value("white"), alt.value("black")),
        tooltip=tooltip,
    )
    chart = (rect + text).properties(width=alt.Step(42), height=alt.Step(34))
    facet = {}
    if col_f:
        facet["column"] = alt.Column(
            f"{col_f}:N", title=col_f, header=alt.Header(labelFontSize=12, titleFontSize=12)
        )
    if "_row" in agg.columns:
        facet["row"] = alt.Row(
            "_row:N",
            title=row_title,
            header=alt.Header(labelFontSize=11, titleFontSize=12, labelAngle=0, labelAlign="left"),
        )
    if facet:
        chart = chart.facet(**facet)
    return chart.properties(
        title=alt.Title(
            f"Phase diagram: {title}",
            subtitle=f"{len(df)} networks{_pooled(df, (x_f, y_f, col_f, row_f))}"
            if row_f
            else f"{len(df)} networks",
        )
    )


# ----------------------------------------------------------------------------- curves


def curves_table(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    color: str | None = "width",
    column: str | None = "depth",
    row: str | None = None,
    metrics: Sequence[str] = ("train_loss", "test_acc"),
    max_steps: int = 200,
) -> tuple[pd.DataFrame, dict[str, str | None]]:
    """Median, quartiles and mean across seeds of each metric, per group and eval step (long
    format: one row per group, metric and step).

    Groups are the distinct values of ``color``, ``column`` and ``row`` (default: every other
    swept axis); everything else is pooled as a replicate. At most ``max_steps`` evenly spaced
    eval steps are kept.
    """
    _require_rows(runs, "curves")
    if not len(curves):
        raise SweepnetError("no curves stored in this results folder")
    color = _field(runs, color, "--color")
    column = _field(runs, column, "--column")
    row = _field(runs, row, "--row")
    for m in metrics:
        if m not in curves.columns:
            raise SweepnetError(f"--metric {m!r}: curves have {', '.join(curves.columns[2:])}")
    runs, row_key, row_title = _row_facet(runs, row, used=(color, column))
    keys = [k for k in (color, column, row_key) if k]
    steps = np.sort(curves["step"].unique())
    if len(steps) > max_steps:
        steps = steps[np.unique(np.linspace(0, len(steps) - 1, max_steps).round().astype(int))]
        curves = curves[curves["step"].isin(steps)]
    merged = curves.merge(runs[["run_id", *keys]], on="run_id", how="inner")
    long = merged.melt(
        id_vars=[*keys, "step"], value_vars=list(metrics), var_name="metric", value_name="v"
    )
    g = long.groupby([*keys, "metric", "step"], sort=True)["v"]
    agg = pd.DataFrame(
        {
            "median": g.median(),
            "lo": g.quantile(0.25),
            "hi": g.quantile(0.75),
            "mean": g.mean(),
            "n": g.size(),
        }
    ).reset_index()
    return agg, {"color": color, "column": column, "row": row_key, "row_title": row_title}


def curves(
    runs: pd.DataFrame,
    curves_df: pd.DataFrame,
    color: str | None = "width",
    column: str | None = "depth",
    row: str | None = None,
    metric: str = "test_acc",
) -> alt.TopLevelMixin:
    """Training loss and ``metric`` (an accuracy) against step: a line per group (the median
    across seeds) over a band from the 25th to the 75th percentile. ``runs`` is the runs table and
    ``curves_df`` the curves table ``(run_id, step, train_loss, train_acc, test_acc)``."""
    metrics = ("train_loss", metric)
    agg, f = curves_table(runs, curves_df, color, column, row, metrics)
    titles = {
        "train_loss": "train loss",
        "train_acc": "train accuracy",
        "test_acc": "test accuracy",
    }
    panels = []
    for m in metrics:
        part = agg[agg["metric"] == m]
        enc_color = (
            alt.Color(
                f"{f['color']}:O",
                title=f["color"],
                scale=alt.Scale(scheme="viridis"),
                legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=3, symbolOpacity=1),
            )
            if f["color"]
            else alt.value(CLASS_COLORS[0])
        )
        base = alt.Chart(_values(part)).encode(x=alt.X("step:Q", title="step"), color=enc_color)
        y_scale = alt.Scale(zero=True) if m == "train_loss" else alt.Scale(zero=False, domainMax=1)
        band = base.mark_area(opacity=0.15).encode(
            y=alt.Y("lo:Q", title=titles.get(m, m), scale=y_scale), y2="hi:Q"
        )
        tips = [
            alt.Tooltip("step:Q"),
            alt.Tooltip("median:Q", format=".4f"),
            alt.Tooltip("lo:Q", title="25th percentile", format=".4f"),
            alt.Tooltip("hi:Q", title="75th percentile", format=".4f"),
            alt.Tooltip("mean:Q", format=".4f"),
            alt.Tooltip("n:Q", title="seeds"),
        ]
        tips += [alt.Tooltip(f"{k}:N") for k in (f["color"], f["column"], f["row"]) if k]
        line = base.mark_line(strokeWidth=1.6).encode(
            y=alt.Y("median:Q", title=titles.get(m, m)), tooltip=tips
        )
        chart = (band + line).properties(width=170, height=120)
        chart = _facet(chart, f["column"], f["row"], f["row_title"], column_type="O")
        panels.append(chart.properties(title=titles.get(m, m)))
    row_f = _field(runs, row, "--row")
    pooled = _pooled(runs, (f["color"], f["column"], row_f)) if row_f else ""
    return alt.vconcat(*panels).properties(
        title=alt.Title(
            "Training curves",
            subtitle=f"line: median across seeds; band: 25th to 75th percentile{pooled}",
        )
    )


# ----------------------------------------------------------------------------- minwidth


def minwidth_table(
    df: pd.DataFrame,
    x: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
    majority: float = 0.5,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The smallest width whose share of separated seeds exceeds ``majority``, per ``x`` value
    (and facet). ``found`` is False where no tested width makes it; ``minwidth`` is then NaN."""
    _require_rows(df, "minwidth")
    x = _field(df, x, "--x")
    metric = _field(df, metric, "--metric") or "separated"
    column = _field(df, column, "--column")
    row = _field(df, row, "--row")
    if x == "width":
        raise SweepnetError(
            "--x width: minwidth searches over width; choose depth or a data parameter such as dim"
        )
    df, row_key, row_title = _row_facet(df, row, used=(x, "width", column))
    keys = [k for k in (x, column, row_key) if k]
    share = (
        df.assign(_v=df[metric].astype("float64"))
        .groupby([*keys, "width"], sort=True)["_v"]
        .agg(["mean", "size"])
        .reset_index()
    )
    ok = share[share["mean"] > majority]
    best = ok.groupby(keys)["width"].min().rename("minwidth")
    tested = share.groupby(keys).agg(max_width=("width", "max"), n=("size", "sum"))
    table = tested.join(best).reset_index()
    table["found"] = table["minwidth"].notna()
    table["minwidth"] = table["minwidth"].astype("float64")
    return table, {
        "x": x,
        "column": column,
        "row": row_key,
        "row_title": row_title,
        "metric": metric,
    }


def minwidth(
    df: pd.DataFrame,
    x: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
) -> alt.TopLevelMixin:
    """Smallest width at which most (> 50 %) seeds separate, against ``x`` (depth or a data
    parameter such as ``data_dim``). Where no tested width gets there, a hollow triangle sits
    one above the widest tested width."""
    table, f = minwidth_table(df, x, metric, column, row)
    top = int(table["max_width"].max())
    table = table.assign(
        y=table["minwidth"].where(table["found"], top + 1),
        status=np.where(table["found"], "most seeds separate", f"none up to width {top}"),
    )
    x_f = f["x"]
    x_type = "O" if table[x_f].nunique() <= 12 else "Q"
    base = alt.Chart(_values(table)).encode(
        x=alt.X(f"{x_f}:{x_type}", title=x_f, axis=alt.Axis(labelAngle=0)),
        y=alt.Y(
            "y:Q",
            title="smallest separating width",
            scale=alt.Scale(domain=[0.5, top + 1.5], nice=False),
            axis=alt.Axis(
                values=list(range(1, top + 2)),
                labelExpr=f"datum.value > {top} ? 'none' : datum.label",
            ),
        ),
    )
    tips = [
        alt.Tooltip(f"{x_f}:{x_type}"),
        alt.Tooltip("minwidth:Q", title="min width"),
        alt.Tooltip("max_width:Q", title="widest tested"),
        alt.Tooltip("n:Q", title="runs"),
    ]
    line = base.transform_filter("datum.found").mark_line(color=CLASS_COLORS[0])
    points = base.mark_point(size=90, filled=True).encode(
        shape=alt.Shape(
            "status:N",
            title=None,
            scale=alt.Scale(
                domain=["most seeds separate", f"none up to width {top}"],
                range=["circle", "triangle-up"],
            ),
        ),
        color=alt.Color(
            "status:N",
            title=None,
            scale=alt.Scale(
                domain=["most seeds separate", f"none up to width {top}"],
                range=[CLASS_COLORS[0], CLASS_COLORS[3]],
            ),
        ),
        tooltip=tips,
    )
    chart = (line + points).properties(width=220, height=180)
    chart = _facet(chart, f["column"], f["row"], f["row_title"])
    return chart.properties(
        title=alt.Title(
            "Minimal width that separates",
            subtitle=[
                "smallest width at which more than half of the seeds separate",
                f"{len(df)} networks, widths up to {top}; 'none': no tested width does"
                + (
                    _pooled(df, (f["x"], "width", f["column"], _field(df, row, "--row")))
                    if row
                    else ""
                ),
            ],
        )
    )


# ----------------------------------------------------------------------------- boundary


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
    plane) with the same facet fields. Built by :func:`sweepnet.inspect.boundary_frames`.
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
                v=y_hi,
                caption="test acc " + first["test_acc"].map("{:.3f}".format),
            )
        )
    base = alt.Chart(_values(pd.concat(tables, ignore_index=True)))
    xs = alt.Scale(domain=[x_lo, float(cells["x1"].max())], nice=False)
    ys = alt.Scale(domain=[float(cells["y0"].min()), y_hi], nice=False)
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
    chart = _facet(chart, column, row, row_title, column_type="O")
    return chart


# ----------------------------------------------------------------------------- datasets


def dataset(
    name: str, n: int = 1024, params: dict[str, Any] | None = None, seed: int = 0
) -> alt.TopLevelMixin:
    """Draw ``n`` points of a registry dataset coloured by class.

    1-D data as a strip (jittered vertically), 2-D as a scatter, 3-D and wider as the three
    pairwise projections of the first three coordinates.
    """
    from sweepnet import data as data_lib

    if name not in data_lib.DATASETS:
        raise SweepnetError(f"unknown dataset {name!r} (known: {', '.join(data_lib.DATASETS)})")
    if n < 2:
        raise SweepnetError(f"--n {n}: need at least 2 points")
    p = data_lib.default_params(name)
    p.update(params or {})
    if name == "file" and not p.get("path"):
        raise SweepnetError("dataset 'file' needs a path parameter (it draws the user's points)")
    if name == "file":  # a file holds what it holds: draw all but the one probe point
        n = min(n, len(data_lib.read_points(p["path"], p.get("label", "label"))[1]) - 1)
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


# ----------------------------------------------------------------------------- I/O


def from_results(root: str, kind: str = "phase", **options: Any) -> alt.TopLevelMixin:
    """Read the results folder ``root`` and build the chart ``kind`` with ``options``.

    Options by kind: phase (x, y, metric, column, row); curves (color, column, row, metric);
    minwidth (x, metric, column, row); boundary (column, row).
    """
    from sweepnet import results

    allowed = {
        "phase": {"x", "y", "metric", "column", "row"},
        "curves": {"color", "column", "row", "metric"},
        "minwidth": {"x", "metric", "column", "row"},
        "boundary": {"column", "row"},
    }
    if kind not in allowed:
        raise SweepnetError(f"--kind {kind!r}: choose one of {', '.join(KINDS)}")
    extra = sorted(set(options) - allowed[kind])
    if extra:
        raise SweepnetError(
            f"--{extra[0]} is not an option of the {kind} chart "
            f"(it takes {', '.join('--' + o for o in sorted(allowed[kind]))})"
        )
    runs = results.load(root)
    _require_rows(runs, root)
    if kind == "phase":
        return phase(runs, **options)
    if kind == "curves":
        return curves(runs, results.load_curves(root), **options)
    if kind == "minwidth":
        return minwidth(runs, **options)
    from sweepnet import inspect as inspect_lib

    return inspect_lib.boundary_grid(root, runs, **options)


def _vl_version() -> str | None:
    import vl_convert as vlc

    mine = ".".join(alt.SCHEMA_VERSION.lstrip("v").split(".")[:2])
    return mine if mine in vlc.get_vegalite_versions() else None


def to_html(chart: alt.TopLevelMixin) -> str:
    """A standalone HTML page with the Vega libraries inlined (works offline)."""
    import vl_convert as vlc

    return vlc.vegalite_to_html(chart.to_dict(), vl_version=_vl_version(), bundle=True)


def save(chart: alt.TopLevelMixin, path: str, scale: float = 2.0) -> None:
    """Write ``chart`` to ``path``: .png or .svg (rendered by vl-convert) or .html (offline).

    ``scale`` multiplies the PNG's pixel size (2 gives crisp text on most screens).
    """
    import vl_convert as vlc

    ext = os.path.splitext(path)[1].lower()
    if ext not in (".png", ".svg", ".html"):
        raise SweepnetError(
            f"{path}: unknown chart format {ext or '(none)'!r}; use .png, .svg or .html"
        )
    spec = chart.to_dict()
    version = _vl_version()
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
    "KINDS",
    "boundary",
    "curves",
    "dataset",
    "from_results",
    "minwidth",
    "phase",
    "points_chart",
    "save",
    "swept_axes",
    "to_html",
]


def betti(df: pd.DataFrame, column: str | None = None) -> alt.Chart:
    """Mean Betti numbers by layer (``sweepnet topology``), a line per activation.

    ``df``: the topology table joined with the runs columns ``activation``, ``width`` and
    ``depth`` (one row per run, layer and class). Rows of the chart: b0, b1 (b2 where
    measured); columns: ``column`` (default depth where it varies, so a facet's layers line
    up, else width); dashes: the class. Layer 0 is the input, depth + 1 the logits.
    """
    _require_rows(df, "topology rows")
    if column is None:
        column = "depth" if df["depth"].nunique() > 1 else "width"
    numbers = [b for b in ("b0", "b1", "b2") if b in df and df[b].notna().any()]
    long = df.melt(id_vars=["layer", "class", "activation", column], value_vars=numbers,
                   var_name="betti", value_name="value").dropna(subset=["value"])
    long["value"] = long["value"].astype(float)
    agg = (long.groupby(["betti", column, "activation", "class", "layer"], as_index=False)
           .agg(mean=("value", "mean"), n=("value", "size")))
    return (
        alt.Chart(_values(agg))
        .mark_line(point=True)
        .encode(
            x=alt.X("layer:O", title="layer (0 = input, last = logits)"),
            y=alt.Y("mean:Q", title="mean Betti number"),
            color=alt.Color("activation:N"),
            strokeDash=alt.StrokeDash("class:N"),
            tooltip=["betti:N", f"{column}:O", "activation:N", "class:N", "layer:O",
                     alt.Tooltip("mean:Q", format=".2f"), "n:Q"],
        )
        .properties(width=180, height=140)
        .facet(row=alt.Row("betti:N", title=None), column=alt.Column(f"{column}:O"))
        .resolve_scale(x="independent", y="independent")
    )
