"""Altair charts of a results folder: phase diagrams, curves, minimal width, decision boundaries.

Every builder is a pure function of DataFrames that returns an Altair chart; :func:`save`
writes it. Builders aggregate in pandas first and hand Altair only the aggregated table, as
inline values, so Altair's row limit never applies: the chart holds one row per drawn mark,
never one per run or per curve point.

``from_results(dir, kind, **options)`` reads a results folder and calls the builder of
``kind``; it is what ``sweepnet chart`` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.store import results
from sweepnet.views.drawing import (
    CLASS_COLORS,
    boundary,
    save,
    swept_axes,
    title,
    to_html,
)
from sweepnet.views.drawing import facet as _facet
from sweepnet.views.drawing import field as _field
from sweepnet.views.drawing import fmt as _fmt
from sweepnet.views.drawing import label as _label
from sweepnet.views.drawing import values as _values

KINDS = ("phase", "curves", "minwidth", "boundary")

PENDING_GREY = "#d9d9d9"  # cells whose networks are not trained yet

_METRIC_TITLES = {
    "separated": "share of seeds separated",
    "test_acc": "mean test accuracy",
    "train_acc": "mean train accuracy",
    "train_loss": "mean train loss",
    "diverged": "share of seeds diverged",
    "steps_to_fit": "median steps to fit",
}


# ----------------------------------------------------------------------------- helpers


def _require_rows(df: pd.DataFrame, what: str) -> None:
    if not len(df):
        raise SweepnetError(f"no finished runs to chart ({what})")


def _row_facet(
    df: pd.DataFrame, row: str | None, used: Sequence[str | None], pool: bool = False
) -> tuple[pd.DataFrame, str | None, str]:
    """Add a ``_row`` label column: the named ``row`` field, or every other swept axis (none
    with ``pool``: they are pooled)."""
    fields = [row] if row else [] if pool else swept_axes(df, exclude=used)
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
    pending: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per cell: ``value`` (share or mean of ``metric``), ``n`` (finished seeds),
    ``pending`` (seeds not yet trained, from the configurations in ``pending``), mean test
    accuracy, median steps to fit, and the facet labels ``_col``/``_row`` where faceted. A cell
    with no finished seed has a null ``value``."""
    _require_rows(df, "phase")
    x, y = _field(df, x, "--x"), _field(df, y, "--y")
    metric = _field(df, metric, "--metric") or "separated"
    column = _field(df, column, "--column")
    row = _field(df, row, "--row")
    if not pd.api.types.is_numeric_dtype(df[metric]) and df[metric].dtype != bool:
        raise SweepnetError(f"--metric {metric!r}: not a numeric or boolean column")
    work = df.assign(
        _v=df[metric].astype("float64"),
        _fit=df["steps_to_fit"].astype("Float64").astype("float64"),
        _sep=df["separated"].astype("float64"),
        _acc=df["test_acc"].astype("float64"),
        _done=1,
    )
    if pending is not None and len(pending):
        cols = [c for c in pending.columns if c in df.columns]
        work = pd.concat([work, pending[cols].assign(_done=0)], ignore_index=True)
    work, row_key, _ = _row_facet(work, row, used=(x, y, column))
    keys = [k for k in (x, y, column, row_key) if k]
    agg = (
        work.groupby(keys, dropna=False, sort=True)
        .agg(
            n=("_done", "sum"),
            pending=("_done", lambda d: int((d == 0).sum())),
            value=("_v", "median" if metric == "steps_to_fit" else "mean"),
            test_acc=("_acc", "mean"),
            steps_to_fit=("_fit", "median"),
            separated=("_sep", "sum"),
        )
        .reset_index()
    )
    return agg


def chance(df: pd.DataFrame) -> float:
    """Accuracy of guessing: 1 / the number of classes (0.5 without an ``n_classes`` column)."""
    k = int(df["n_classes"].max()) if "n_classes" in df and len(df) else 2
    return 1.0 / max(k, 2)


def phase(
    df: pd.DataFrame,
    x: str = "width",
    y: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
    separation: float | None = None,
    pending: pd.DataFrame | None = None,
) -> alt.TopLevelMixin:
    """Phase diagram: ``x`` × ``y`` cells coloured by the share of seeds with ``metric``.

    ``df`` is the runs table (one row per network). Cells are faceted in columns by
    ``column`` and in rows by ``row`` (default: every other swept axis, combined); a facet
    field with a single value is named in the subtitle instead. A boolean metric is a share
    on a fixed 0..1 colour scale; an accuracy runs from chance (1 / classes) to 1.
    ``separation``: the test accuracy that counts as separated, stated in the subtitle.
    ``pending``: configurations not trained yet (one row each); their cells are grey.
    """
    x_f, y_f = _field(df, x, "--x"), _field(df, y, "--y")
    metric_f = _field(df, metric, "--metric") or "separated"
    col_f, row_f = _field(df, column, "--column"), _field(df, row, "--row")
    everything = df if pending is None else pd.concat([df, pending], ignore_index=True)
    fixed = []
    if col_f and everything[col_f].nunique() <= 1:  # one value: no facet, say it instead
        fixed.append(f"{title(col_f)} {_fmt(everything[col_f].iloc[0])}")
        col_f = None
    agg = phase_table(df, x_f, y_f, metric_f, col_f, row_f, pending)
    row_title = " · ".join(
        title(f) for f in ([row_f] if row_f else swept_axes(everything, exclude=(x_f, y_f, col_f)))
    )
    m_title = _METRIC_TITLES.get(metric_f, f"mean {metric_f}")
    done = agg[agg["n"] > 0]
    if metric_f in ("test_acc", "train_acc"):
        lo = chance(df)
        scale = alt.Scale(domain=[lo, 1], scheme="viridis", clamp=True)
        unit_range, mid = True, (lo + 1) / 2
        fmt = ".3f"
    else:
        unit_range = metric_f in ("separated", "diverged") or (
            done["value"].min() >= 0 and done["value"].max() <= 1
        )
        scale = (
            alt.Scale(domain=[0, 1], scheme="viridis")
            if unit_range
            else alt.Scale(scheme="viridis", zero=False)
        )
        mid = 0.5 if unit_range else done["value"].median()
        fmt = ".2f" if unit_range else ".3g"
    agg = agg.assign(
        label=[
            "pending" if n == 0 else ("" if pd.isna(v) else format(v, fmt))
            for n, v in zip(agg["n"], agg["value"], strict=True)
        ],
        dark=(agg["value"] < mid) & (agg["n"] > 0),
        # what the colour reads: never null (Vega-Lite drops a mark whose colour is null), the
        # pending cells' -1 is overridden by grey
        fill=agg["value"].fillna(-1.0),
    )
    base = alt.Chart(_values(agg)).encode(
        x=alt.X(
            f"{x_f}:O", title=title(x_f), sort=_ordinal_sort(agg[x_f]), axis=alt.Axis(labelAngle=0)
        ),
        y=alt.Y(f"{y_f}:O", title=title(y_f), sort=list(reversed(_ordinal_sort(agg[y_f])))),
    )
    tooltip = [
        alt.Tooltip(f"{x_f}:O", title=title(x_f)),
        alt.Tooltip(f"{y_f}:O", title=title(y_f)),
        alt.Tooltip("value:Q", title=m_title, format=fmt),
        alt.Tooltip("n:Q", title="n (seeds)"),
        alt.Tooltip("separated:Q", title="separated"),
        alt.Tooltip("test_acc:Q", title="mean test_acc", format=".4f"),
        alt.Tooltip("steps_to_fit:Q", title="median steps_to_fit", format=".0f"),
    ]
    if pending is not None and len(pending):
        tooltip.append(alt.Tooltip("pending:Q", title="seeds pending"))
    if col_f:
        tooltip.insert(0, alt.Tooltip(f"{col_f}:N", title=title(col_f)))
    rect = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.condition(
            "datum.n == 0",
            alt.value(PENDING_GREY),
            alt.Color(
                "fill:Q",
                title=m_title,
                scale=scale,
                legend=alt.Legend(orient="right", format=fmt, gradientLength=160),
            ),
        ),
        tooltip=tooltip,
    )
    text = base.mark_text(fontSize=11).encode(
        text="label:N",
        # white on dark cells, grey on pending ones, else black (a second colour scale would
        # split the legend per facet)
        color={
            "condition": [
                {"test": "datum.dark", "value": "white"},
                {"test": "datum.n == 0", "value": "#777777"},
            ],
            "value": "black",
        },
        size=alt.condition("datum.n == 0", alt.value(8), alt.value(11)),
        tooltip=tooltip,
    )
    chart = (rect + text).properties(width=alt.Step(36), height=alt.Step(30))
    facet = {}
    if col_f:
        facet["column"] = alt.Column(
            f"{col_f}:N", title=title(col_f), header=alt.Header(labelFontSize=12, titleFontSize=12)
        )
    if "_row" in agg.columns:
        facet["row"] = alt.Row(
            "_row:N",
            title=row_title,
            header=alt.Header(labelFontSize=11, titleFontSize=12, labelAngle=0, labelAlign="left"),
        )
    if facet:
        chart = chart.facet(**facet)
    n_pending = int(agg["pending"].sum())
    head = f"{len(df)} networks"
    if n_pending:
        head = f"{len(df)} of {len(df) + n_pending} trained; grey cells: pending"
    if fixed:
        head += "; " + ", ".join(fixed)
    if row_f:
        head += _pooled(df, (x_f, y_f, col_f, row_f))
    subtitle = [head]
    if separation is not None:
        subtitle.append(f"separated: test accuracy >= {separation:g} (train.separation)")
    return chart.properties(title=alt.Title(f"Phase diagram: {m_title}", subtitle=subtitle))


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
    # --row none: pool the other axes instead of facetting them
    pool = row is not None and str(row).lower() == "none"
    color = _field(runs, color, "--color")
    column = _field(runs, column, "--column")
    row = _field(runs, row, "--row")
    for m in metrics:
        if m not in curves.columns:
            raise SweepnetError(f"--metric {m!r}: curves have {', '.join(curves.columns[2:])}")
    runs, row_key, row_title = _row_facet(runs, row, used=(color, column), pool=pool)
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
    fixed = ""
    col_f = _field(runs, column, "--column")
    if col_f and runs[col_f].nunique() <= 1:  # one value: no facet, say it instead
        fixed = f"; {title(col_f)} {_fmt(runs[col_f].iloc[0])}"
        column = "none"
    agg, f = curves_table(runs, curves_df, color, column, row, metrics)
    n_colors = agg[f["color"]].nunique() if f["color"] else 1
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
                title=title(f["color"]),
                # distinct hues while they last; a sequential scale past ten groups
                scale=alt.Scale(scheme="tableau10" if n_colors <= 10 else "turbo"),
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
        tips += [
            alt.Tooltip(f"{k}:N", title=title(k) or f["row_title"])
            for k in (f["color"], f["column"], f["row"])
            if k
        ]
        line = base.mark_line(strokeWidth=1.6).encode(
            y=alt.Y("median:Q", title=titles.get(m, m)), tooltip=tips
        )
        chart = (band + line).properties(width=170, height=120)
        chart = _facet(chart, f["column"], f["row"], f["row_title"], column_type="O")
        panels.append(chart.properties(title=titles.get(m, m)))
    row_f = _field(runs, row, "--row")
    pooled = _pooled(runs, (f["color"], f["column"], row_f)) if row else ""
    return alt.vconcat(*panels).properties(
        title=alt.Title(
            "Training curves",
            subtitle=f"line: median across seeds; band: 25th to 75th percentile{fixed}{pooled}",
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
    parameter such as ``data_dim``). Only tested widths are on the axis. Where the narrowest
    tested width already separates, the truth is "at most that width", drawn as a downward
    triangle at "<= w"; where no tested width gets there, an upward triangle sits at "none"."""
    col_f = _field(df, column, "--column")
    fixed = ""
    if col_f and df[col_f].nunique() <= 1:  # one value: no facet, say it instead
        fixed = f"; {title(col_f)} {_fmt(df[col_f].iloc[0])}"
        column = "none"
    table, f = minwidth_table(df, x, metric, column, row)
    widths = sorted(int(w) for w in df["width"].unique())
    lo, top = widths[0], widths[-1]
    at_most = f"at most width {lo} (the narrowest tested)"
    found = "most seeds separate"
    none = f"none up to width {top}"
    table = table.assign(
        y=table["minwidth"].where(table["found"], top + 1),
        status=np.where(~table["found"], none, np.where(table["minwidth"] <= lo, at_most, found)),
    )
    x_f = f["x"]
    x_type = "O" if table[x_f].nunique() <= 12 else "Q"
    base = alt.Chart(_values(table)).encode(
        x=alt.X(f"{x_f}:{x_type}", title=title(x_f), axis=alt.Axis(labelAngle=0)),
        y=alt.Y(
            "y:Q",
            title="smallest separating width",
            scale=alt.Scale(domain=[lo - 0.5, top + 1.5], nice=False),
            axis=alt.Axis(
                values=[*widths, top + 1],
                labelExpr=f"datum.value > {top} ? 'none' : datum.value == {lo} ? "
                f"'<= {lo}' : datum.label",
            ),
        ),
    )
    tips = [
        alt.Tooltip(f"{x_f}:{x_type}", title=title(x_f)),
        alt.Tooltip("status:N", title="smallest width"),
        alt.Tooltip("minwidth:Q", title="min width"),
        alt.Tooltip("max_width:Q", title="widest tested"),
        alt.Tooltip("n:Q", title="runs"),
    ]
    domain = [found, at_most, none]
    line = base.transform_filter("datum.found").mark_line(color=CLASS_COLORS[0])
    points = base.mark_point(size=90, filled=True).encode(
        shape=alt.Shape(
            "status:N",
            title=None,
            scale=alt.Scale(domain=domain, range=["circle", "triangle-down", "triangle-up"]),
        ),
        color=alt.Color(
            "status:N",
            title=None,
            legend=alt.Legend(labelLimit=320),
            scale=alt.Scale(
                domain=domain, range=[CLASS_COLORS[0], CLASS_COLORS[4], CLASS_COLORS[3]]
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
                "smallest tested width at which more than half of the seeds separate",
                f"{len(df)} networks, widths {', '.join(map(str, widths))}{fixed}"
                + (
                    _pooled(df, (f["x"], "width", f["column"], _field(df, row, "--row")))
                    if row
                    else ""
                ),
            ],
        )
    )


# ----------------------------------------------------------------------------- boundary


# ----------------------------------------------------------------------------- datasets


def dataset(
    name: str, n: int = 1024, params: dict[str, Any] | None = None, seed: int = 0
) -> alt.TopLevelMixin:
    """Draw ``n`` points of a registry dataset coloured by class.

    1-D data as a strip (jittered vertically), 2-D as a scatter, 3-D and wider as the three
    pairwise projections of the first three coordinates.
    """
    from sweepnet.sweep import data as data_lib

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
    from sweepnet.store import results

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
        return phase(runs, separation=separation(root), pending=pending(root, runs), **options)
    if kind == "curves":
        chart = curves(runs, results.load_curves(root), **options)
    elif kind == "minwidth":
        chart = minwidth(runs, **options)
    else:
        from sweepnet.views import network as inspect_lib

        chart = inspect_lib.boundary_grid(root, runs, **options)
    return with_progress(chart, *progress(root, runs))


# ----------------------------------------------------------------------------- progress


def progress(root: str, runs: pd.DataFrame | None = None) -> tuple[int, int]:
    """``(done, total)``: finished networks of the folder's spec, and all of them
    (:func:`sweepnet.store.results.progress`; ``runs`` is accepted for the callers' convenience)."""
    del runs
    from sweepnet.store import results

    return results.progress(root)


def pending(root: str, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The configurations of the folder's spec not trained yet, one row each
    (:func:`sweepnet.store.results.pending`)."""
    del runs
    from sweepnet.store import results

    return results.pending(root)


def separation(root: str) -> float:
    """The folder's separation threshold on test accuracy (``train.separation``, default 1)."""
    try:
        return float(results.stored_spec_tree(root).get("train", {}).get("separation", 1.0))
    except (SweepnetError, TypeError, ValueError):
        return 1.0


def with_progress(chart: alt.TopLevelMixin, done: int, total: int) -> alt.TopLevelMixin:
    """``chart`` with "done of total trained" first in its subtitle when the sweep is unfinished."""
    if done >= total:
        return chart
    t = chart.title
    text = t.text if isinstance(t, alt.Title) else (t if isinstance(t, str) else "")
    sub = t.subtitle if isinstance(t, alt.Title) and t.subtitle is not alt.Undefined else []
    sub = [sub] if isinstance(sub, str) else list(sub)
    note = f"unfinished sweep: {done} of {total} networks trained"
    return chart.properties(title=alt.Title(text, subtitle=[note, *sub]))


__all__ = [
    "KINDS",
    "PENDING_GREY",
    "boundary",
    "compare_phase",
    "chance",
    "curves",
    "dataset",
    "from_results",
    "minwidth",
    "pending",
    "phase",
    "points_chart",
    "progress",
    "save",
    "separation",
    "swept_axes",
    "to_html",
    "with_progress",
]


def compare_phase(
    a_df: pd.DataFrame,
    b_df: pd.DataFrame,
    x: str = "width",
    y: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
    names: Sequence[str] = ("A", "B"),
) -> alt.TopLevelMixin:
    """Difference of two phase diagrams: per ``x`` × ``y`` cell, the share of seeds with
    ``metric`` (or its mean) in sweep B minus that in sweep A, on a diverging scale centred at
    0 (blue: B higher, red: A higher). Cells that only one sweep has are grey, marked "A"/"B".

    ``a_df``, ``b_df``: runs tables. Facets by ``column`` and ``row`` where both tables have
    them; every other axis is pooled within a cell.
    """
    for df, name in ((a_df, names[0]), (b_df, names[1])):
        if not len(df):
            raise SweepnetError(f"{name}: no finished runs to compare")
        for f in (x, y, metric):
            if f not in df:
                raise SweepnetError(f"--compare: {name} has no column {f!r}")
    keys = [k for k in (x, y, column, row) if k and k in a_df and k in b_df]

    def share(df: pd.DataFrame) -> pd.DataFrame:
        return (df.assign(_v=df[metric].astype("float64")).groupby(keys, dropna=False)
                .agg(value=("_v", "mean"), n=("_v", "size")).reset_index())

    cells = share(a_df).merge(share(b_df), on=keys, how="outer", suffixes=("_a", "_b"))
    cells["diff"] = cells["value_b"] - cells["value_a"]
    cells["label"] = [
        format(d, "+.2f") if pd.notna(d) else (names[1] if pd.notna(b) else names[0])
        for d, b in zip(cells["diff"], cells["value_b"], strict=True)
    ]
    for k in keys:  # Vega-Lite needs plain JSON values
        cells[k] = cells[k].astype(str) if cells[k].dtype == object else cells[k]
    records = cells.astype(object).where(cells.notna(), None).to_dict("records")
    order = lambda f: sorted(cells[f].dropna().unique().tolist())
    base = alt.Chart(alt.Data(values=records)).encode(
        x=alt.X(f"{x}:O", title=x, sort=order(x), axis=alt.Axis(labelAngle=0)),
        y=alt.Y(f"{y}:O", title=y, sort=list(reversed(order(y)))),
    )
    title = f"{metric}: {names[1]} − {names[0]}"
    tooltip = [alt.Tooltip(f"{k}:N") for k in keys] + [
        alt.Tooltip("value_a:Q", title=f"{names[0]}", format=".3f"),
        alt.Tooltip("value_b:Q", title=f"{names[1]}", format=".3f"),
        alt.Tooltip("diff:Q", title="difference", format="+.3f"),
        alt.Tooltip("n_a:Q", title=f"n ({names[0]})"),
        alt.Tooltip("n_b:Q", title=f"n ({names[1]})"),
    ]
    # a share's difference spans -1..1; a mean's scale is symmetric about 0, as wide as needed
    boolean = all(pd.api.types.is_bool_dtype(df[metric]) for df in (a_df, b_df))
    what = "share of seeds" if boolean else f"mean {metric}"
    reach = float(cells["diff"].abs().max()) if cells["diff"].notna().any() else 0.0
    reach = reach if reach > 0 else 1.0
    # grey under every cell; the coloured layer leaves out the cells without a difference
    grey = base.mark_rect(stroke="white", strokeWidth=1, color="#d0d0d0").encode(tooltip=tooltip)
    rect = base.mark_rect(stroke="white", strokeWidth=1).encode(
        color=alt.Color("diff:Q", title=title, scale=alt.Scale(
            scheme="redblue", domainMid=0,
            domain=[-1, 1] if boolean else [-reach, reach])),
        tooltip=tooltip,
    )
    text = base.mark_text(fontSize=11).encode(
        text="label:N", tooltip=tooltip,
        color=alt.condition(f"abs(datum['diff']) > {0.6 * reach}", alt.value("white"),
                            alt.value("black")))
    chart = (grey + rect + text).properties(width=alt.Step(34), height=alt.Step(28))
    facet = {}
    if column in keys and cells[column].nunique() > 1:
        facet["column"] = alt.Column(f"{column}:N", title=column)
    if row in keys and cells[row].nunique() > 1:
        facet["row"] = alt.Row(f"{row}:N", title=row)
    chart = chart.facet(**facet) if facet else chart
    return chart.properties(title=alt.TitleParams(
        title, subtitle=f"{what} per cell, {names[1]} minus {names[0]}; grey: only one has it"))


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
