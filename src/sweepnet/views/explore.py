"""The report's linked view: a phase diagram whose cells can be clicked, beside the clicked
cell's seeds (training curves, decision boundaries from the stored parameters, separation
metrics), with a threshold slider and a metric menu.

One Vega-Lite spec over one inline table of one row per network (and per pending
configuration), so the views filter each other in the browser and the page stays one
offline file: per-network curves are cut to ``EXPLORE_STEPS`` points and decision
boundaries to a ``EXPLORE_RES`` x ``EXPLORE_RES`` grid of digits, about 1 kB a network.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from sweepnet.measure.network import decision_grids, half_side, training_points
from sweepnet.store import results
from sweepnet.views.drawing import CLASS_COLORS, label, swept_axes, title, values

EXPLORE_RES = 16  # decision-grid cells per side in the linked view (coarse: 4,096 nets fit)
EXPLORE_STEPS = 16  # curve points per network in the linked view (evenly spaced eval steps)
_DIGITS = "0123456789"


def _grids(root: str, runs: pd.DataFrame, res: int) -> pd.Series:
    """Each run's coarse decision grid as a string of digits (p(class 1) in tenths, or the
    predicted class): ``res * res`` characters, row by row from the bottom (``res`` for 1-D)."""
    params = results.load_params_many(root, runs)
    out = pd.Series("", index=runs.index, dtype=object)
    arch = ["arch", "width", "depth", "activation", "n_classes", "in_dim"]
    data = [c for c in ("dataset", "n_train", "noise", "data_seed") if c in runs]
    data += sorted(c for c in runs.columns if c.startswith("data_") and c != "data_seed")
    for _, same_data in runs.groupby(data, dropna=False, sort=False):
        first = same_data.iloc[0]
        x, _ = training_points(first)
        half = half_side(first, x)
        for _, g in same_data.groupby(arch, sort=False):
            rows = [r for _, r in g.iterrows()]
            v = decision_grids(rows, [params[r["run_id"]] for r in rows], half, res)
            if int(first["n_classes"]) == 2:
                v = np.clip(np.rint(v * 9), 0, 9)
            digits = np.asarray(v, dtype=np.int64) % 10
            out.loc[g.index] = ["".join(_DIGITS[d] for d in row) for row in digits]
    return out


def explore_table(
    root: str,
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    pending: pd.DataFrame | None = None,
    x: str = "width",
    y: str = "depth",
    column: str | None = "activation",
    res: int = EXPLORE_RES,
    max_steps: int = EXPLORE_STEPS,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """One row per network (and per pending configuration, ``done`` 0) for the linked view:
    its cell (``cell`` key and the ``x``, ``y``, ``_col``, ``_row`` fields), its metrics, its
    curve as arrays (``steps``, ``loss``, ``acc``; at most ``max_steps`` points) and its
    decision grid ``grid`` (digits, see :func:`_grids`)."""
    everything = (
        runs
        if pending is None or not len(pending)
        else pd.concat(
            [runs, pending[[c for c in pending.columns if c in runs.columns]]], ignore_index=True
        )
    )
    col = column if column in runs and everything[column].nunique() > 1 else None
    rest = swept_axes(everything, exclude=(x, y, col))
    df = runs.copy()
    df["done"] = 1
    if pending is not None and len(pending):
        todo = pending[[c for c in pending.columns if c in runs.columns]].assign(done=0)
        df = pd.concat([df, todo], ignore_index=True)
    df["_col"] = df[col].map(str) if col else ""
    df["_row"] = label(df, rest) if rest else ""
    df["cell"] = label(df, [c for c in (x, y, col, *rest) if c])
    keep = [
        "cell",
        x,
        y,
        "_col",
        "_row",
        "done",
        "run_id",
        "seed",
        "test_acc",
        "train_acc",
        "train_loss",
        "steps_to_fit",
        "separated",
        "diverged",
        "n_classes",
    ]
    keep += [c for c in ("margin", "worst_margin", "certified", "max_grad") if c in df]
    table = df[keep].copy()
    table["steps_to_fit"] = table["steps_to_fit"].astype("Float64")
    done = table["done"] == 1
    table.loc[done, "grid"] = _grids(root, runs, res).to_numpy()
    if len(curves):
        steps = np.sort(curves["step"].unique())
        if len(steps) > max_steps:
            steps = steps[np.unique(np.linspace(0, len(steps) - 1, max_steps).round().astype(int))]
        c = curves[curves["step"].isin(steps)].sort_values(["run_id", "step"])
        by_run = {
            rid: (
                g["step"].tolist(),
                g["train_loss"].round(4).tolist(),
                g["test_acc"].round(4).tolist(),
            )
            for rid, g in c.groupby("run_id", sort=False)
        }
        empty = ([], [], [])
        arrays = [
            by_run.get(r, empty) if d else empty for r, d in zip(table["run_id"], done, strict=True)
        ]
        table["steps"] = [a[0] for a in arrays]
        table["loss"] = [a[1] for a in arrays]
        table["acc"] = [a[2] for a in arrays]
    info = {
        "x": x,
        "y": y,
        "column": col,
        "rest": rest,
        "res": res,
        "dims": sorted(runs["in_dim"].unique().tolist()),
        "multiclass": bool((runs["n_classes"] > 2).any()),
    }
    return table, info


def _first_cell(table: pd.DataFrame, x: str) -> str:
    """The cell shown before any click: the narrowest cell where most seeds separate (where
    something happens), else the cell with the best mean test accuracy."""
    done = table[table["done"] == 1]
    share = done.groupby("cell").agg(
        s=("separated", "mean"), a=("test_acc", "mean"), w=(x, "first")
    )
    good = share[share["s"] > 0.5]
    if len(good):
        return str(good.sort_values(["w", "s"], ascending=[True, False]).index[0])
    return str(share["a"].idxmax())


def explore(
    table: pd.DataFrame, info: dict[str, Any], separation: float = 1.0, chance: float = 0.5
) -> alt.TopLevelMixin:
    """The linked view: a phase diagram whose cells can be clicked, with the clicked cell's
    seeds beside it (training curves, decision grids, separation metrics). A slider sets the
    threshold t of the colour "share with test accuracy >= t"; a menu switches the metric.

    ``table`` and ``info`` come from :func:`explore_table`; everything is one Vega-Lite spec
    over one inline table, so the views filter each other in the browser.
    """
    x, y, res = info["x"], info["y"], info["res"]
    data = values(table)  # one inline table: Altair writes it once, every view reads it
    metrics = [
        ("share", "share of seeds with test accuracy >= t"),
        ("acc", "mean test accuracy"),
        ("train_acc", "mean train accuracy"),
    ]
    if "certified" in table and table["certified"].notna().any():
        metrics.append(("certified", "share certified (margin > 0 on both class regions)"))
    metric = alt.param(
        name="metric",
        value="share",
        bind=alt.binding_select(
            options=[m for m, _ in metrics],
            labels=[t for _, t in metrics],
            name="colour cells by: ",
        ),
    )
    threshold = alt.param(
        name="t",
        value=float(separation),
        bind=alt.binding_range(
            min=round(chance, 3), max=1, step=0.001, name="threshold t (test accuracy): "
        ),
    )
    cell = alt.selection_point(
        name="cell",
        fields=["cell"],
        on="click",
        empty=False,
        clear=False,
        value=[{"cell": _first_cell(table, x)}],
    )
    xs = sorted(table[x].dropna().unique().tolist())
    ys = sorted(table[y].dropna().unique().tolist(), reverse=True)
    cert = "datum.certified ? 1 : 0" if "certified" in table else "0"
    value = (
        "metric == 'share' ? datum.share : metric == 'acc' ? datum.acc : "
        "metric == 'train_acc' ? datum.train_acc : datum.certified"
    )
    tips = [
        alt.Tooltip(f"{x}:O", title=title(x)),
        alt.Tooltip(f"{y}:O", title=title(y)),
        alt.Tooltip("value:Q", title="colour", format=".3f"),
        alt.Tooltip("n:Q", title="seeds trained"),
        alt.Tooltip("share:Q", title="share with test acc >= t", format=".2f"),
        alt.Tooltip("sep:Q", title=f"separated (test acc >= {separation:g})"),
        alt.Tooltip("acc:Q", title="mean test accuracy", format=".4f"),
        alt.Tooltip("fit:Q", title="median steps to fit", format=".0f"),
    ]
    phase = (
        alt.Chart(data)
        .transform_calculate(
            hit="datum.done && datum.test_acc >= t ? 1 : 0",
            cert=cert,
        )
        .transform_aggregate(
            n="sum(done)",
            hits="sum(hit)",
            acc="mean(test_acc)",
            train_acc="mean(train_acc)",
            certs="sum(cert)",
            sep="sum(separated)",
            fit="median(steps_to_fit)",
            groupby=["cell", x, y, "_col", "_row"],
        )
        .transform_calculate(
            share="datum.n > 0 ? datum.hits / datum.n : null",
            certified="datum.n > 0 ? datum.certs / datum.n : null",
        )
        # pending cells get -1, not null: Vega-Lite drops marks whose colour field is null
        .transform_calculate(value=f"datum.n > 0 ? ({value}) : -1")
        .transform_calculate(
            label="datum.n == 0 ? '' : format(datum.value, "
            "metric == 'share' || metric == 'certified' ? '.2f' : '.3f')",
            # white text on the dark lower half of viridis
            dark=f"datum.n > 0 && (metric == 'acc' || metric == 'train_acc' ? "
            f"datum.value < {(chance + 1) / 2:g} : datum.value < 0.5)",
        )
        .encode(
            x=alt.X(f"{x}:O", title=title(x), sort=xs, axis=alt.Axis(labelAngle=0)),
            y=alt.Y(f"{y}:O", title=title(y), sort=ys),
            tooltip=tips,
        )
    )
    rect = (
        phase.mark_rect()
        .encode(
            color=alt.condition(
                "datum.n == 0",
                alt.value("#d9d9d9"),
                alt.Color(
                    "value:Q",
                    title="colour (menu above)",
                    scale=alt.Scale(
                        scheme="viridis",
                        domainMax=1,
                        domainMin=alt.ExprRef(
                            f"metric == 'acc' || metric == 'train_acc' ? {chance:g} : 0"
                        ),
                        clamp=True,
                    ),
                    legend=alt.Legend(orient="right", format=".2f", gradientLength=140),
                ),
            ),
            stroke=alt.condition(cell, alt.value("#e4002b"), alt.value("white")),
            strokeWidth=alt.condition(cell, alt.value(3), alt.value(0.5)),
        )
        .add_params(cell, metric, threshold)
    )
    # a click on a label selects its cell too: the label's datum carries the cell key
    text = phase.mark_text(fontSize=8).encode(
        text="label:N", color=alt.condition("datum.dark", alt.value("white"), alt.value("black"))
    )
    phase = (rect + text).properties(width=alt.Step(32), height=alt.Step(22))
    facet = {}
    if info["column"]:
        facet["column"] = alt.Column(
            "_col:N",
            title=title(info["column"]),
            header=alt.Header(labelFontSize=12, titleFontSize=12),
        )
    if info["rest"]:
        facet["row"] = alt.Row(
            "_row:N",
            title=" · ".join(title(r) for r in info["rest"]),
            header=alt.Header(labelAngle=0, labelAlign="left"),
        )
    if facet:
        phase = phase.facet(**facet)
    phase = phase.properties(
        title=alt.Title(
            "Phase diagram: click a cell",
            subtitle=[
                f"separated: test accuracy >= {separation:g} (train.separation); "
                "grey: not trained yet",
                "the slider's t recolours 'share with test accuracy >= t'",
            ],
            anchor="start",
        )
    )
    seeds = alt.Chart(data).transform_filter(cell).transform_filter("datum.done == 1")
    # curves: one line per seed, coloured by whether it separated
    sep_color = alt.Color(
        "separated:N",
        title="separated",
        scale=alt.Scale(domain=[False, True], range=[CLASS_COLORS[3], CLASS_COLORS[0]]),
    )
    flat = seeds.transform_flatten(["steps", "loss", "acc"])
    curve_tips = [
        alt.Tooltip("seed:O"),
        alt.Tooltip("steps:Q", title="step"),
        alt.Tooltip("loss:Q", title="train loss", format=".4f"),
        alt.Tooltip("acc:Q", title="test accuracy", format=".4f"),
    ]
    loss = (
        flat.mark_line(strokeWidth=1.2, opacity=0.8)
        .encode(
            x=alt.X("steps:Q", title="step"),
            y=alt.Y("loss:Q", title="train loss"),
            detail="seed:N",
            color=sep_color,
            tooltip=curve_tips,
        )
        .properties(width=250, height=140, title="training loss (each seed)")
    )
    acc = (
        flat.mark_line(strokeWidth=1.2, opacity=0.8)
        .encode(
            x=alt.X("steps:Q", title="step"),
            y=alt.Y("acc:Q", title="test accuracy", scale=alt.Scale(zero=False)),
            detail="seed:N",
            color=sep_color,
            tooltip=curve_tips,
        )
        .properties(width=250, height=140, title="test accuracy (each seed)")
    )
    # decision grids: one small panel per seed, the digits expanded into cells
    if info["multiclass"]:
        fill = alt.Color("v:N", title="predicted class", scale=alt.Scale(range=CLASS_COLORS))
        expr_v = "toNumber(datum.g)"
    else:
        fill = alt.Color(
            "v:Q",
            title="p(class 1)",
            scale=alt.Scale(
                domain=[0, 0.5, 1], range=["#9ec3e6", "#f7f7f7", "#fdbf86"], interpolate="lab"
            ),
            legend=alt.Legend(gradientLength=80),
        )
        expr_v = "toNumber(datum.g) / 9"
    rows_1d = max(info["dims"]) == 1
    grids = (
        seeds.transform_calculate(g="split(datum.grid, '')")
        .transform_flatten(["g"])
        .transform_window(i="row_number()", groupby=["run_id"])
        .transform_calculate(
            v=expr_v,
            ix=f"(datum.i - 1) % {res}",
            iy=f"floor((datum.i - 1) / {res})",
            acc_label="'seed ' + datum.seed + ': ' + format(datum.test_acc, '.3f')",
        )
        .mark_rect()
        .encode(
            x=alt.X("ix:O", axis=None),
            y=alt.Y("iy:O", axis=None, sort="descending"),
            color=fill,
            tooltip=[alt.Tooltip("seed:O"), alt.Tooltip("test_acc:Q", format=".4f")],
        )
        .properties(width=64, height=16 if rows_1d else 64)
        .facet(
            facet=alt.Facet(
                "acc_label:N",
                title=None,
                sort=alt.SortField("seed"),
                header=alt.Header(labelFontSize=10, labelPadding=2),
            ),
            columns=8,
            spacing=6,
        )
        .properties(
            title=alt.Title(
                "decision boundary of each seed (from stored parameters)",
                subtitle=f"{res}x{res} grid of the input square"
                + (" on the slice x2.. = 0" if max(info["dims"]) >= 3 else "")
                + "; header: seed and test accuracy",
                anchor="start",
            )
        )
    )
    # separation metrics of each seed, as a small table
    fields = [("test_acc", ".4f"), ("train_loss", ".4g"), ("steps_to_fit", ".0f")]
    fields += [(f, ".3g") for f in ("margin", "worst_margin", "max_grad") if f in table]
    table_view = (
        seeds.transform_fold([f for f, _ in fields], as_=["metric", "raw"])
        .transform_calculate(
            text=" + ".join(
                [
                    f"(datum.metric == '{f}' ? (isValid(datum.raw) ? format(datum.raw, '{fm}') "
                    f": '-') : '')"
                    for f, fm in fields
                ]
            )
        )
        .mark_text(fontSize=11, align="right")
        .encode(
            x=alt.X(
                "metric:N",
                sort=[f for f, _ in fields],
                title=None,
                axis=alt.Axis(orient="top", labelAngle=0, domain=False, ticks=False),
            ),
            y=alt.Y("seed:O", title="seed", axis=alt.Axis(domain=False, ticks=False)),
            text="text:N",
            color=alt.condition("datum.separated", alt.value("#222"), alt.value(CLASS_COLORS[3])),
        )
        .properties(
            width=alt.Step(86),
            height=alt.Step(15),
            title=alt.Title("separation metrics of each seed (red: not separated)", anchor="start"),
        )
    )
    heading = (
        alt.Chart(data)
        .transform_filter(cell)
        .transform_aggregate(n="sum(done)", groupby=["cell"])
        .transform_calculate(text="'cell: ' + datum.cell + ' (' + datum.n + ' seeds trained)'")
        .mark_text(align="left", fontSize=13, fontWeight="bold")
        .encode(text="text:N", x=alt.value(0))
        .properties(width=600, height=16)
    )
    linked = alt.vconcat(
        heading,
        alt.hconcat(loss, acc, table_view, spacing=24),
        grids,
    ).properties(title=alt.Title("The clicked cell's seeds", anchor="start"))
    return (
        alt.vconcat(phase, linked, spacing=28)
        .resolve_scale(color="independent")
        .configure_view(stroke=None)
    )


__all__ = ["EXPLORE_RES", "EXPLORE_STEPS", "explore", "explore_table"]
