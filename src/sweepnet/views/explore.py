"""The report's linked view: a phase diagram whose cells can be clicked, beside the clicked
cell's seeds (training curves, decision boundaries from the stored parameters, separation
metrics), with a threshold slider and a metric menu.

One Vega-Lite spec over two inline tables whose sizes do not grow with the sweep's: one row
per cell, aggregated over every network in SQL (counts, shares with exact 95% intervals, and
each cell's count at every step of the threshold slider), and a bounded sample of each cell's
seeds for the views of the clicked cell (:func:`sweepnet.views.cells.sample`: all of a cell's
seeds up to ``SAMPLE``, else its extremes and an even spread; the page says how many it shows).
Per-network curves are cut to ``EXPLORE_STEPS`` points and decision boundaries to an
``EXPLORE_RES`` x ``EXPLORE_RES`` grid of digits, about 1 kB a sampled network.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import duckdb
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from flax.traverse_util import flatten_dict, unflatten_dict

from sweepnet.core.stats import share_interval
from sweepnet.measure.network import half_side, plane_points, training_points
from sweepnet.store import results
from sweepnet.sweep.models import build
from sweepnet.views import cells as cells_lib
from sweepnet.views.drawing import (
    CLASS_COLORS,
    cell_size,
    chance,
    label,
    swept_axes,
    title,
    values,
)

EXPLORE_RES = 16  # decision-grid cells per side in the linked view (coarse: 4,096 nets fit)
EXPLORE_STEPS = 16  # curve points per network in the linked view (evenly spaced eval steps)
_DIGITS = "0123456789"
THRESHOLD_STEP = 0.001  # the slider's step; each cell holds its count at every step


def _grids(root: str, runs: pd.DataFrame, res: int) -> pd.Series:
    """Each run's coarse decision grid as a string of digits (p(class 1) in tenths, or the
    predicted class): ``res * res`` characters, row by row from the bottom (``res`` for 1-D).

    As :func:`sweepnet.measure.network.decision_grids` draws them, but the networks of one
    architecture and activation go through one program at their largest width and depth,
    zero-padded, their real width and depth traced (as training runs them): two compiles for
    a sweep's sample instead of one per cell."""
    params = results.load_params_many(root, runs)
    out = pd.Series("", index=runs.index, dtype=object)
    family = ["arch", "activation", "n_classes", "in_dim"]
    data = [c for c in ("dataset", "n_train", "noise", "data_seed") if c in runs]
    data += sorted(c for c in runs.columns if c.startswith("data_") and c != "data_seed")
    for _, same_data in runs.groupby(data, dropna=False, sort=False):
        first = same_data.iloc[0]
        x, _ = training_points(first)
        half = half_side(first, x)
        for _, g in same_data.groupby(family, sort=False):
            v = _padded_grids(g, [params[r] for r in g["run_id"]], half, res)
            if int(g["n_classes"].iloc[0]) == 2:
                v = np.clip(np.rint(v * 9), 0, 9)
            digits = np.asarray(v, dtype=np.int64) % 10
            out.loc[g.index] = ["".join(_DIGITS[d] for d in row) for row in digits]
    return out


def _padded_grids(g: pd.DataFrame, params: list[Any], half: float, res: int) -> np.ndarray:
    """:func:`sweepnet.measure.network.decision_grids` of the networks ``g`` (one arch,
    activation and data; any widths and depths): ``(len(g), res * res)`` (``res`` for 1-D)."""
    first = g.iloc[0]
    x = jnp.asarray(plane_points(half, res, int(first["in_dim"])))  # (dim, points)
    n_out = 1 if int(first["n_classes"]) == 2 else int(first["n_classes"])
    width, depth = int(g["width"].max()), int(g["depth"].max())
    model = build(first["arch"], width, depth, first["activation"], n_out)
    shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), x, width, 1.0))
    flat_shapes = flatten_dict(shapes)

    # a padded layer is an identity and padded units read zero: zeros stand in for them
    stacked = {k: np.zeros((len(params), *t.shape), t.dtype) for k, t in flat_shapes.items()}
    for i, tree in enumerate(params):
        for k, a in flatten_dict(tree).items():
            a = np.asarray(a)
            stacked[k][(i, *(slice(0, n) for n in a.shape))] = a
    stacked = unflatten_dict(stacked)
    run = jax.jit(jax.vmap(lambda p, w, d: model.apply(p, x, w, 1.0, real_depth=d)))
    logits = np.asarray(run(stacked, jnp.asarray(g["width"].to_numpy(np.int32)),
                            jnp.asarray(g["depth"].to_numpy(np.int32))))  # (n, n_out, points)
    if n_out == 1:
        return 1 / (1 + np.exp(-np.clip(logits[:, 0], -60, 60)))
    return logits.argmax(axis=1)


def explore_table(
    root: str,
    con: duckdb.DuckDBPyConnection,
    pending: pd.DataFrame | None = None,
    x: str = "width",
    y: str = "depth",
    column: str | None = "activation",
    res: int = EXPLORE_RES,
    max_steps: int = EXPLORE_STEPS,
    sample: int = cells_lib.SAMPLE,
    separation: float = 1.0,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """The linked view's two tables, read from ``root`` through ``con``
    (:func:`sweepnet.views.cells.connect`): their sizes are the grid's, not the sweep's.

    ``cells``: one row per cell of the phase diagram (``cell`` key, the ``x`` and ``y``
    fields, facet labels ``_col`` and ``_row``), aggregated over every network in SQL: ``n``
    finished seeds, ``todo`` pending ones (configurations in ``pending``), shares, means,
    median steps to fit, exact 95% intervals, ``shown`` (how many seeds the sample holds), and
    for the threshold slider ``hits`` (seeds with test accuracy >= ``t_i``, one per slider
    step ``t_i``) with the interval's ends ``hits_lo``/``hits_hi`` in thousandths.

    ``seeds``: the sampled networks (:func:`sweepnet.views.cells.sample`, at most ``sample`` a
    cell, the cell's extremes among them): metrics, curve as arrays (``steps``, ``loss``,
    ``acc``; at most ``max_steps`` points) and decision grid ``grid`` (digits, see
    :func:`_grids`).
    """
    configs = cells_lib.configurations(con)
    todo = pending if pending is not None and len(pending) else None
    everything = configs
    if todo is not None:
        everything = pd.concat([configs, todo[[c for c in todo if c in configs]]],
                               ignore_index=True)
    col = column if column in configs and everything[column].nunique() > 1 else None
    rest = swept_axes(everything, exclude=(x, y, col))
    keys = [c for c in (x, y, col, *rest) if c]
    lo = round(chance(configs), 3)
    count = int(round((1 - lo) / THRESHOLD_STEP)) + 1
    stats = cells_lib.cell_stats(con, keys)
    hits = cells_lib.threshold_hits(con, keys, lo, THRESHOLD_STEP, count)
    stats = stats.merge(hits, on=keys, how="left")
    shown = cells_lib.sample(con, keys, sample)
    table = stats
    if todo is not None:
        waiting = todo.groupby(keys, dropna=False).size().rename("todo").reset_index()
        table = stats.merge(waiting, on=keys, how="outer")
    else:
        table = table.assign(todo=0)
    for c in ("n", "separated", "diverged", "n_fit", "todo"):
        table[c] = table[c].fillna(0).astype("int64")
    counts = shown.groupby(keys, dropna=False).size().rename("shown").reset_index()
    table = table.merge(counts, on=keys, how="left")
    table["shown"] = table["shown"].fillna(0).astype("int64")
    table = table.sort_values(keys, kind="stable").reset_index(drop=True)
    for df in (table, shown):
        df["_col"] = df[col].map(str) if col else ""
        df["_row"] = label(df, rest) if rest else ""
        df["cell"] = label(df, keys)
    n = table["n"].to_numpy()
    empty = [0] * 0
    hit_rows = [list(map(int, h)) if isinstance(h, np.ndarray) else empty for h in table["hits"]]
    table["hits"] = hit_rows
    los, his = [], []
    for h, k in zip(hit_rows, n, strict=True):
        a, b = share_interval(np.asarray(h, np.int64), k) if h else ([], [])
        los.append([int(v) for v in np.rint(np.asarray(a) * 1000)])
        his.append([int(v) for v in np.rint(np.asarray(b) * 1000)])
    table["hits_lo"], table["hits_hi"] = los, his
    done = n > 0
    share = np.where(done, table["separated"] / np.maximum(n, 1), np.nan)
    table["sep_text"] = [
        interval_text(s, a, b) if d else "" for s, a, b, d in
        zip(share, table["sep_lo"], table["sep_hi"], done, strict=True)
    ]
    if "certified" in table and table["n_cert"].fillna(0).gt(0).any():
        k, m = table["certified"].fillna(0), table["n_cert"].fillna(0)
        a, b = share_interval(k, m)
        table["cert"] = np.where(m > 0, k / np.maximum(m, 1), np.nan)
        table["cert_text"] = [
            interval_text(s, u, v) if c > 0 else "" for s, u, v, c in
            zip(table["cert"], a, b, m, strict=True)
        ]
    table["fit_text"] = [
        "" if not d else "none" if not f else f"{s:.0f} ({f} of {k} fit)"
        for d, s, f, k in zip(done, table["steps_to_fit"], table["n_fit"], n, strict=True)
    ]
    keep = ["cell", x, y, "_col", "_row", "n", "todo", "shown", "separated", "sep_text",
            "test_acc", "train_acc", "fit_text", "hits", "hits_lo", "hits_hi"]
    keep += [c for c in ("cert", "cert_text") if c in table]
    cells = table[keep].rename(columns={"test_acc": "acc"})
    seeds = _seed_table(root, con, shown, x, y, res, max_steps)
    info = {
        "x": x,
        "y": y,
        "column": col,
        "rest": rest,
        "res": res,
        "dims": sorted(configs["in_dim"].unique().tolist()),
        "multiclass": bool((configs["n_classes"] > 2).any()),
        "lo": lo,
        "count": count,
        "networks": int(n.sum()),
        "sample": sample,
        "separation": separation,
    }
    return cells, seeds, info


def interval_text(share: float, lo: float, hi: float) -> str:
    """``"0.53 [0.50, 0.56]"``: a share and its 95% interval, as the tooltips show them."""
    return f"{share:.3f} [{lo:.3f}, {hi:.3f}]"


def _seed_table(root: str, con: duckdb.DuckDBPyConnection, shown: pd.DataFrame, x: str,
                y: str, res: int, max_steps: int) -> pd.DataFrame:
    """The sampled networks' rows for the linked view: metrics, grid digits, curve arrays."""
    keep = ["cell", x, y, "_col", "_row", "run_id", "seed", "test_acc", "train_acc",
            "train_loss", "steps_to_fit", "separated", "diverged", "n_classes"]
    keep += [c for c in ("margin", "worst_margin", "certified", "max_grad") if c in shown]
    table = shown[keep].copy()
    table["steps_to_fit"] = table["steps_to_fit"].astype("Float64")
    table["grid"] = _grids(root, shown, res).to_numpy() if len(shown) else []
    if cells_lib.has_curves(con) and len(shown):
        steps = cells_lib.eval_steps(con, max_steps)
        c = cells_lib.curves_of(con, shown["run_id"].tolist(), steps)
        by_run = {
            rid: (
                g["step"].tolist(),
                g["train_loss"].round(4).tolist(),
                g["test_acc"].round(4).tolist(),
            )
            for rid, g in c.groupby("run_id", sort=False)
        }
        arrays = [by_run.get(r, ([], [], [])) for r in table["run_id"]]
        table["steps"] = [a[0] for a in arrays]
        table["loss"] = [a[1] for a in arrays]
        table["acc"] = [a[2] for a in arrays]
    return table.reset_index(drop=True)


def _first_cell(cells: pd.DataFrame, x: str) -> str:
    """The cell shown before any click: the narrowest cell where most seeds separate (where
    something happens), else the cell with the best mean test accuracy."""
    done = cells[cells["n"] > 0].assign(s=lambda d: d["separated"] / d["n"])
    good = done[done["s"] > 0.5]
    if len(good):
        return str(good.sort_values([x, "s"], ascending=[True, False], kind="stable")
                   .iloc[0]["cell"])
    return str(done.loc[done["acc"].idxmax(), "cell"])


def explore(cells: pd.DataFrame, seeds: pd.DataFrame, info: dict[str, Any]) -> alt.TopLevelMixin:
    """The linked view: a phase diagram whose cells can be clicked, with a sample of the
    clicked cell's seeds beside it (training curves, decision grids, separation metrics). A
    slider sets the threshold t of the colour "share with test accuracy >= t"; a menu switches
    the metric.

    ``cells``, ``seeds`` and ``info`` come from :func:`explore_table`: the phase diagram, the
    slider and the menu read the per-cell table (every network counted, with 95% intervals),
    the views of the clicked cell its sampled seeds; one Vega-Lite spec, so they filter each
    other in the browser.
    """
    x, y, res = info["x"], info["y"], info["res"]
    separation, lo, count = info["separation"], info["lo"], info["count"]
    data = values(seeds)  # the sample: written once, every view of the seeds reads it
    seed_cols = set(seeds.columns)
    cell_data = values(cells)
    metrics = [
        ("share", "share of seeds with test accuracy >= t"),
        ("acc", "mean test accuracy"),
        ("train_acc", "mean train accuracy"),
    ]
    if "cert" in cells:
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
            min=lo, max=1, step=THRESHOLD_STEP, name="threshold t (test accuracy): "
        ),
    )
    cell = alt.selection_point(
        name="cell",
        fields=["cell"],
        on="click",
        empty=False,
        clear=False,
        value=[{"cell": _first_cell(cells, x)}],
    )
    xs = sorted(cells[x].dropna().unique().tolist())
    ys = sorted(cells[y].dropna().unique().tolist(), reverse=True)
    value = (
        "metric == 'share' ? datum.share : metric == 'acc' ? datum.acc : "
        "metric == 'train_acc' ? datum.train_acc : datum.cert"
    )
    tips = [
        alt.Tooltip(f"{x}:O", title=title(x)),
        alt.Tooltip(f"{y}:O", title=title(y)),
        alt.Tooltip("value:Q", title="colour", format=".3f"),
        alt.Tooltip("n:Q", title="seeds trained", format=","),
        alt.Tooltip("share_text:N", title="share with test acc >= t [95% CI]"),
        alt.Tooltip("sep_text:N", title=f"separated (test acc >= {separation:g}) [95% CI]"),
        alt.Tooltip("acc:Q", title="mean test accuracy", format=".4f"),
        alt.Tooltip("fit_text:N", title="median steps to fit"),
    ]
    if "cert" in cells:
        tips.append(alt.Tooltip("cert_text:N", title="share certified [95% CI]"))
    if (cells["todo"] > 0).any():
        tips.append(alt.Tooltip("todo:Q", title="seeds pending"))
    # the slider's t picks one of the cell's precomputed counts: hits[i] seeds reach t_i
    index = f"clamp(round((t - {lo!r}) / {THRESHOLD_STEP!r}), 0, {count - 1})"
    phase = (
        alt.Chart(cell_data)
        .transform_calculate(i=index)
        .transform_calculate(
            share="datum.n > 0 ? datum.hits[datum.i] / datum.n : null",
            share_text="datum.n > 0 ? format(datum.hits[datum.i] / datum.n, '.3f') + ' ['"
            " + format(datum.hits_lo[datum.i] / 1000, '.3f') + ', '"
            " + format(datum.hits_hi[datum.i] / 1000, '.3f') + ']' : ''",
        )
        # pending cells get -1, not null: Vega-Lite drops marks whose colour field is null
        .transform_calculate(value=f"datum.n > 0 ? ({value}) : -1")
        .transform_calculate(
            label="datum.n == 0 ? '' : format(datum.value, "
            "metric == 'share' || metric == 'certified' ? '.2f' : '.3f')",
            # white text on the dark lower half of viridis
            dark=f"datum.n > 0 && (metric == 'acc' || metric == 'train_acc' ? "
            f"datum.value < {(lo + 1) / 2:g} : datum.value < 0.5)",
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
                            f"metric == 'acc' || metric == 'train_acc' ? {lo:g} : 0"
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
    w, h = cell_size(len(xs), len(ys), cells["_col"].nunique(), bool(info["rest"]))
    text = phase.mark_text(fontSize=min(13, max(8, w // 5))).encode(
        text="label:N", color=alt.condition("datum.dark", alt.value("white"), alt.value("black"))
    )
    phase = (rect + text).properties(width=alt.Step(w), height=alt.Step(h))
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
    seeds = alt.Chart(data).transform_filter(cell)
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
    fields += [(f, ".3g") for f in ("margin", "worst_margin", "max_grad") if f in seed_cols]
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
    # how many of the cell's seeds the views below show: all of them, or a stated sample
    heading = (
        alt.Chart(cell_data)
        .transform_filter(cell)
        .transform_calculate(
            text="'cell: ' + datum.cell + ' (' + (datum.n == 0 ? 'no seed trained yet' : "
            "datum.shown == datum.n ? 'showing all ' + format(datum.n, ',') + ' seeds' : "
            "'showing ' + format(datum.shown, ',') + ' of ' + format(datum.n, ',') + "
            f"' seeds: the extremes and an even spread in seed order; the phase diagram "
            f"counts all {info['networks']:,} networks') + ')'"
        )
        .mark_text(align="left", fontSize=13, fontWeight="bold")
        .encode(text="text:N", x=alt.value(0))
        .properties(width=900, height=16)
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


__all__ = ["EXPLORE_RES", "EXPLORE_STEPS", "THRESHOLD_STEP", "explore", "explore_table",
           "interval_text"]
