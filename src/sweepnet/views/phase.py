"""Phase diagrams: ``x`` x ``y`` cells (width x depth by default) coloured by the share of
seeds that separated (:func:`phase`), and the difference of two sweeps' diagrams
(:func:`compare_phase`)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import duckdb
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.core.words import plural
from sweepnet.views import cells as cells_lib
from sweepnet.views.drawing import (
    cell_size,
    chance,
    label,
    ordinal_sort,
    pooled_note,
    require_rows,
    row_facet,
    swept_axes,
    title,
)
from sweepnet.views.drawing import field as _field
from sweepnet.views.drawing import fmt as _fmt
from sweepnet.views.drawing import values as _values

PENDING_GREY = "#d9d9d9"  # cells whose networks are not trained yet

_METRIC_TITLES = {
    "separated": "share of seeds separated",
    "test_acc": "mean test accuracy",
    "train_acc": "mean train accuracy",
    "train_loss": "mean train loss",
    "diverged": "share of seeds diverged",
    "steps_to_fit": "median steps to fit",
}


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
    require_rows(df, "phase")
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
    work, row_key, _ = row_facet(work, row, used=(x, y, column))
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


def phase_cells(
    con: duckdb.DuckDBPyConnection,
    configs: pd.DataFrame,
    x: str = "width",
    y: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
    pending: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """:func:`phase_table` aggregated in SQL over the folder behind ``con``
    (:func:`sweepnet.views.cells.connect`), never holding its networks in pandas: the same
    columns, plus ``sep_lo``/``sep_hi`` (the exact 95% interval of the share separated).
    ``configs`` (:func:`sweepnet.views.cells.configurations`) names the axes."""
    require_rows(configs, "phase")
    x, y = _field(configs, x, "--x"), _field(configs, y, "--y")
    metric = _field(configs, metric, "--metric") or "separated"
    column = _field(configs, column, "--column")
    row = _field(configs, row, "--row")
    if not pd.api.types.is_numeric_dtype(configs[metric]) and configs[metric].dtype != bool:
        raise SweepnetError(f"--metric {metric!r}: not a numeric or boolean column")
    fields = [row] if row else swept_axes(configs, exclude=(x, y, column))
    keys = list(dict.fromkeys(k for k in (x, y, column, *fields) if k))
    agg = cells_lib.cell_stats(con, keys, metric).assign(pending=0)
    if pending is not None and len(pending):
        todo = pending.groupby(keys, dropna=False).size().rename("pending").reset_index()
        agg = agg.drop(columns="pending").merge(todo, on=keys, how="outer")
        for c in ("n", "pending", "separated"):
            agg[c] = agg[c].fillna(0).astype("int64")
    if fields:
        agg["_row"] = label(agg, fields)
    agg = agg.sort_values(keys, kind="stable").reset_index(drop=True)
    return agg.drop(columns=[f for f in fields if f not in (x, y, column)])


def fit_text(median: float, n_fit: int, n: int) -> str:
    """A tooltip's "median steps to fit": ``"none"`` where no seed fit (not NaN)."""
    if n == 0:
        return ""
    return "none" if not n_fit or pd.isna(median) else f"{median:.0f}"


def phase(
    df: pd.DataFrame,
    x: str = "width",
    y: str = "depth",
    metric: str = "separated",
    column: str | None = "activation",
    row: str | None = None,
    separation: float | None = None,
    pending: pd.DataFrame | None = None,
    cells: pd.DataFrame | None = None,
) -> alt.TopLevelMixin:
    """Phase diagram: ``x`` × ``y`` cells coloured by the share of seeds with ``metric``.

    ``df`` is the runs table (one row per network). Cells are faceted in columns by
    ``column`` and in rows by ``row`` (default: every other swept axis, combined); a facet
    field with a single value is named in the subtitle instead. A boolean metric is a share
    on a fixed 0..1 colour scale; an accuracy runs from chance (1 / classes) to 1.
    ``separation``: the test accuracy that counts as separated, stated in the subtitle.
    ``pending``: configurations not trained yet (one row each); their cells are grey.
    ``cells``: the per-cell table, aggregated already (:func:`phase_cells`); ``df`` is then
    one row per configuration with its seeds in ``n`` (:func:`sweepnet.views.cells.
    configurations`), which names the axes and counts the networks.
    """
    x_f, y_f = _field(df, x, "--x"), _field(df, y, "--y")
    metric_f = _field(df, metric, "--metric") or "separated"
    col_f, row_f = _field(df, column, "--column"), _field(df, row, "--row")
    everything = df if pending is None else pd.concat([df, pending], ignore_index=True)
    fixed = []
    if col_f and everything[col_f].nunique() <= 1:  # one value: no facet, say it instead
        fixed.append(f"{title(col_f)} {_fmt(everything[col_f].iloc[0])}")
        col_f = None
    agg = cells if cells is not None else phase_table(df, x_f, y_f, metric_f, col_f, row_f,
                                                      pending)
    networks = int(df["n"].sum()) if cells is not None else len(df)
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
        fit=[fit_text(m, f, n) for m, f, n in zip(
            agg["steps_to_fit"], agg["n_fit"] if "n_fit" in agg else agg["n"], agg["n"],
            strict=True)],
    )
    if "sep_lo" in agg:
        agg = agg.assign(sep_ci=[
            "" if n == 0 else f"[{a:.3f}, {b:.3f}]"
            for n, a, b in zip(agg["n"], agg["sep_lo"], agg["sep_hi"], strict=True)])
        # a cell whose interval holds one half: more seeds would tell whether most separate
        agg["undecided"] = (agg["n"] > 0) & (agg["sep_lo"] <= 0.5) & (agg["sep_hi"] >= 0.5)
        agg["verdict"] = np.where(agg["n"] == 0, "", np.where(
            agg["undecided"], "undecided", np.where(agg["sep_lo"] > 0.5, "most separate",
                                                    "most do not")))
    base = alt.Chart(_values(agg)).encode(
        x=alt.X(
            f"{x_f}:O", title=title(x_f), sort=ordinal_sort(agg[x_f]), axis=alt.Axis(labelAngle=0)
        ),
        y=alt.Y(f"{y_f}:O", title=title(y_f), sort=list(reversed(ordinal_sort(agg[y_f])))),
    )
    tooltip = [
        alt.Tooltip(f"{x_f}:O", title=title(x_f)),
        alt.Tooltip(f"{y_f}:O", title=title(y_f)),
        alt.Tooltip("value:Q", title=m_title, format=fmt),
        alt.Tooltip("n:Q", title="n (seeds)"),
        alt.Tooltip("separated:Q", title="separated"),
        alt.Tooltip("test_acc:Q", title="mean test_acc", format=".4f"),
        alt.Tooltip("fit:N", title="median steps_to_fit"),
    ]
    if "sep_ci" in agg:
        tooltip.insert(5, alt.Tooltip("sep_ci:N", title="share separated, 95% CI"))
        tooltip.insert(6, alt.Tooltip("verdict:N", title="at one half"))
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
    w, h = cell_size(agg[x_f].nunique(), agg[y_f].nunique(),
                     agg[col_f].nunique() if col_f else 1, "_row" in agg.columns)
    layers = [rect, text]
    marked = metric_f == "separated" and "undecided" in agg and bool(agg["undecided"].any())
    if marked:  # a dashed outline on the cells whose seeds leave "most separate" undecided
        layers.append(base.transform_filter("datum.undecided").mark_rect(
            fill=None, stroke="black", strokeWidth=1.5, strokeDash=[3, 2]).encode(
            tooltip=tooltip))
    chart = alt.layer(*layers).properties(width=alt.Step(w), height=alt.Step(h))
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
    head = plural(networks, "network")
    if n_pending:
        head = f"{networks:,} of {networks + n_pending:,} trained; grey cells: pending"
    if fixed:
        head += "; " + ", ".join(fixed)
    if row_f:
        head += pooled_note(df, (x_f, y_f, col_f, row_f))
    subtitle = [head]
    if separation is not None:
        subtitle.append(f"separated: test accuracy >= {separation:g} (train.separation)")
    if marked:
        subtitle.append("dashed: undecided, the share's exact 95% interval holds one half "
                        "(more seeds would tell)")
    return chart.properties(title=alt.Title(f"Phase diagram: {m_title}", subtitle=subtitle))


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
