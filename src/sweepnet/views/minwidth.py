"""Minimal width: the smallest tested width at which most seeds separate, against depth or a
data parameter."""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.core.stats import share_interval
from sweepnet.core.words import plural
from sweepnet.views.drawing import CLASS_COLORS, pooled_note, require_rows, row_facet, title
from sweepnet.views.drawing import facet as _facet
from sweepnet.views.drawing import field as _field
from sweepnet.views.drawing import fmt as _fmt
from sweepnet.views.drawing import values as _values


def minwidth_table(
    df: pd.DataFrame,
    x: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
    majority: float = 0.5,
    weight: str | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The smallest width whose share of separated seeds exceeds ``majority``, per ``x`` value
    (and facet). ``found`` is False where no tested width makes it; ``minwidth`` is then NaN.

    Where the metric is a share of seeds, each width's exact 95% interval bounds the answer:
    ``minwidth_low`` is the smallest width whose interval reaches above ``majority`` (the
    smallest it could be), ``minwidth_high`` the smallest whose interval lies wholly above it
    (NaN where none does), and ``decided`` says the two agree (or no width could reach it).

    ``weight``: a column of seed counts when ``df`` is aggregated already, one row per
    configuration whose ``metric`` is its mean (:func:`sweepnet.views.cells.configurations`)."""
    require_rows(df, "minwidth")
    x = _field(df, x, "--x")
    metric = _field(df, metric, "--metric") or "separated"
    column = _field(df, column, "--column")
    row = _field(df, row, "--row")
    if x == "width":
        raise SweepnetError(
            "--x width: minwidth searches over width; choose depth or a data parameter such as dim"
        )
    df, row_key, row_title = row_facet(df, row, used=(x, "width", column))
    keys = [k for k in (x, column, row_key) if k]
    w = df[weight].astype("float64") if weight else 1.0
    sums = (
        df.assign(_v=df[metric].astype("float64") * w, _w=w)
        .groupby([*keys, "width"], sort=True)[["_v", "_w"]]
        .sum()
    )
    share = pd.DataFrame({"mean": sums["_v"] / sums["_w"], "size": sums["_w"].astype("int64")})
    share = share.reset_index()
    ok = share[share["mean"] > majority]
    best = ok.groupby(keys)["width"].min().rename("minwidth")
    tested = share.groupby(keys).agg(max_width=("width", "max"), n=("size", "sum"))
    table = tested.join(best).reset_index()
    table["found"] = table["minwidth"].notna()
    table["minwidth"] = table["minwidth"].astype("float64")
    hits = sums["_v"].to_numpy()
    if np.allclose(hits, np.round(hits)):  # a share of seeds: its interval bounds the width
        low, high = share_interval(np.round(hits), share["size"].to_numpy())
        share["maybe"], share["surely"] = high > majority, low > majority
        for name, flag in (("minwidth_low", "maybe"), ("minwidth_high", "surely")):
            first = share[share[flag]].groupby(keys)["width"].min().rename(name)
            table = table.merge(first.reset_index(), on=keys, how="left")
            table[name] = table[name].astype("float64")
        # decided: every width below the estimate is surely below, and the estimate surely above
        table["decided"] = (table["minwidth_low"] == table["minwidth_high"]) | (
            table["minwidth_low"].isna() & table["minwidth_high"].isna())
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
    weight: str | None = None,
) -> alt.TopLevelMixin:
    """Smallest width at which most (> 50 %) seeds separate, against ``x`` (depth or a data
    parameter such as ``data_dim``). Only tested widths are on the axis. Where the narrowest
    tested width already separates, the truth is "at most that width", drawn as a downward
    triangle at "<= w"; where no tested width gets there, an upward triangle sits at "none".
    ``weight``: see :func:`minwidth_table`."""
    col_f = _field(df, column, "--column")
    fixed = ""
    if col_f and df[col_f].nunique() <= 1:  # one value: no facet, say it instead
        fixed = f"; {title(col_f)} {_fmt(df[col_f].iloc[0])}"
        column = "none"
    table, f = minwidth_table(df, x, metric, column, row, weight=weight)
    networks = int(df[weight].sum()) if weight else len(df)
    widths = sorted(int(w) for w in df["width"].unique())
    lo, top = widths[0], widths[-1]
    at_most = f"at most width {lo} (the narrowest tested)"
    found = "most seeds separate"
    none = f"none up to width {top}"
    table = table.assign(
        y=table["minwidth"].where(table["found"], top + 1),
        status=np.where(~table["found"], none, np.where(table["minwidth"] <= lo, at_most, found)),
    )
    bounded = "decided" in table
    if bounded:  # the 95% interval of an undecided answer, drawn as a bar
        table = table.assign(y_low=table["minwidth_low"].fillna(top + 1),
                             y_high=table["minwidth_high"].fillna(top + 1))
        table["between"] = [
            "decided at 95%" if d else
            f"{_fmt(a)}-{_fmt(b) if b <= top else 'none'} at 95%"
            for d, a, b in zip(table["decided"], table["y_low"], table["y_high"], strict=True)]
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
        *([alt.Tooltip("between:N", title="interval")] if bounded else []),
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
    layers = [line, points]
    if bounded:
        bars = base.transform_filter("!datum.decided").mark_rule(
            color=CLASS_COLORS[0], strokeWidth=2, opacity=0.45).encode(
            y="y_low:Q", y2="y_high:Q", tooltip=tips)
        layers.insert(0, bars)
    chart = alt.layer(*layers).properties(width=220, height=180)
    chart = _facet(chart, f["column"], f["row"], f["row_title"])
    return chart.properties(
        title=alt.Title(
            "Minimal width that separates",
            subtitle=[
                "smallest tested width at which more than half of the seeds separate"
                + ("; a bar: the 95% interval where the seeds leave it undecided"
                   if bounded and not table["decided"].all() else ""),
                f"{plural(networks, 'network')}, widths {', '.join(map(str, widths))}{fixed}"
                + (
                    pooled_note(df, (f["x"], "width", f["column"], _field(df, row, "--row")))
                    if row
                    else ""
                ),
            ],
        )
    )
