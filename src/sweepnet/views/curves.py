"""Training curves: loss and accuracy against step, the median across seeds of each group
over a band from the 25th to the 75th percentile."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import duckdb
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.views import cells as cells_lib
from sweepnet.views.drawing import (
    CLASS_COLORS,
    label,
    pooled_note,
    require_rows,
    row_facet,
    swept_axes,
    title,
)
from sweepnet.views.drawing import facet as _facet
from sweepnet.views.drawing import field as _field
from sweepnet.views.drawing import fmt as _fmt
from sweepnet.views.drawing import values as _values


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
    require_rows(runs, "curves")
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
    runs, row_key, row_title = row_facet(runs, row, used=(color, column), pool=pool)
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


def curves_cells(
    con: duckdb.DuckDBPyConnection,
    configs: pd.DataFrame,
    color: str | None = "width",
    column: str | None = "depth",
    row: str | None = None,
    metrics: Sequence[str] = ("train_loss", "test_acc"),
    max_steps: int = 200,
) -> pd.DataFrame:
    """:func:`curves_table` aggregated in SQL over the folder behind ``con``
    (:func:`sweepnet.views.cells.connect`): the same rows, without reading the curves into
    pandas. ``configs`` (:func:`sweepnet.views.cells.configurations`) names the axes."""
    require_rows(configs, "curves")
    if not cells_lib.has_curves(con):
        raise SweepnetError("no curves stored in this results folder")
    pool = row is not None and str(row).lower() == "none"
    color = _field(configs, color, "--color")
    column = _field(configs, column, "--column")
    row = _field(configs, row, "--row")
    known = [c for c in cells_lib.columns(con, "curves") if c not in ("run_id", "step", "sweep")]
    for m in metrics:
        if m not in known:
            raise SweepnetError(f"--metric {m!r}: curves have {', '.join(known)}")
    fields = [row] if row else [] if pool else swept_axes(configs, exclude=(color, column))
    keys = list(dict.fromkeys(k for k in (color, column, *fields) if k))
    agg = cells_lib.curve_quantiles(con, keys, metrics, cells_lib.eval_steps(con, max_steps))
    if fields:
        agg["_row"] = label(agg, fields)
        agg = agg.drop(columns=[f for f in fields if f not in (color, column)])
    return agg


def curves(
    runs: pd.DataFrame,
    curves_df: pd.DataFrame,
    color: str | None = "width",
    column: str | None = "depth",
    row: str | None = None,
    metric: str = "test_acc",
    table: pd.DataFrame | None = None,
) -> alt.TopLevelMixin:
    """Training loss and ``metric`` (an accuracy) against step: a line per group (the median
    across seeds) over a band from the 25th to the 75th percentile. ``runs`` is the runs table and
    ``curves_df`` the curves table ``(run_id, step, train_loss, train_acc, test_acc)``; or
    ``runs`` one row per configuration (:func:`sweepnet.views.cells.configurations`) and
    ``table`` the aggregate already made (:func:`curves_cells`), ``curves_df`` unused."""
    metrics = ("train_loss", metric)
    fixed = ""
    col_f = _field(runs, column, "--column")
    if col_f and runs[col_f].nunique() <= 1:  # one value: no facet, say it instead
        fixed = f"; {title(col_f)} {_fmt(runs[col_f].iloc[0])}"
        column = "none"
    if table is None:
        agg, f = curves_table(runs, curves_df, color, column, row, metrics)
    else:
        agg = table
        pool = row is not None and str(row).lower() == "none"
        f = {"color": _field(runs, color, "--color"), "column": _field(runs, column, "--column")}
        row_f = _field(runs, row, "--row")
        fields = [row_f] if row_f else [] if pool else swept_axes(runs, exclude=tuple(f.values()))
        f["row"], f["row_title"] = ("_row", " · ".join(fields)) if fields else (None, "")
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
    pooled = pooled_note(runs, (f["color"], f["column"], row_f)) if row else ""
    return alt.vconcat(*panels).properties(
        title=alt.Title(
            "Training curves",
            subtitle=f"line: median across seeds; band: 25th to 75th percentile{fixed}{pooled}",
        )
    )
