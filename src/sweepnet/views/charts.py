"""Altair charts of a results folder: phase diagrams, curves, minimal width, decision boundaries.

Every builder is a pure function of DataFrames that returns an Altair chart; :func:`save`
writes it. Builders hand Altair only an aggregated table, as inline values, so Altair's row
limit never applies: the chart holds one row per drawn mark, never one per run or per curve
point. Reading a results folder (:func:`from_results`), the phase, curves and minwidth tables
are aggregated in SQL (:mod:`~sweepnet.views.cells`) and the builders get a table of one row
per configuration in place of the runs table, so memory does not grow with the networks.

This module is the charts' front door: ``from_results(dir, kind, **options)`` reads a results
folder and calls the builder of ``kind`` (what ``sweepnet chart`` calls), and every builder is
reachable from here. Each kind lives in its own module: :mod:`~sweepnet.views.phase` (phase
diagrams and their comparison), :mod:`~sweepnet.views.curves`, :mod:`~sweepnet.views.minwidth`,
:mod:`~sweepnet.views.points` (datasets), :mod:`~sweepnet.views.betti` (topology), and
:func:`sweepnet.views.network.boundary_grid` (decision boundaries); the helpers they share sit
in :mod:`~sweepnet.views.drawing`.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.core.words import plural
from sweepnet.store import results
from sweepnet.views import cells as cells_lib
from sweepnet.views import network as inspect_lib
from sweepnet.views.betti import betti
from sweepnet.views.curves import curves, curves_cells, curves_table
from sweepnet.views.drawing import boundary, chance, require_rows, save, swept_axes, to_html
from sweepnet.views.minwidth import minwidth, minwidth_table
from sweepnet.views.phase import PENDING_GREY, compare_phase, phase, phase_cells, phase_table
from sweepnet.views.points import dataset, points_chart

KINDS = ("phase", "curves", "minwidth", "boundary")

# ----------------------------------------------------------------------------- I/O


def from_results(root: str, kind: str = "phase", **options: Any) -> alt.TopLevelMixin:
    """Read the results folder ``root`` and build the chart ``kind`` with ``options``.

    Options by kind: phase (x, y, metric, column, row); curves (color, column, row, metric);
    minwidth (x, metric, column, row); boundary (column, row).
    """
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
    if kind == "boundary":  # one network per configuration, from the runs table
        runs = results.load(root)
        require_rows(runs, root)
        chart = inspect_lib.boundary_grid(root, runs, **options)
        return with_progress(chart, *progress(root, runs))
    # the other kinds aggregate in SQL: the networks stay in DuckDB, never all in pandas
    con = cells_lib.connect(root)
    try:
        configs = cells_lib.configurations(con)
        require_rows(configs, root)
        if kind == "phase":
            todo = pending(root)
            agg = phase_cells(con, configs, **{**_phase_defaults, **options}, pending=todo)
            return phase(configs, separation=separation(root), pending=todo, cells=agg,
                         **options)
        if kind == "curves":
            chart = curves(configs, None, **options, table=curves_cells(con, configs, **{
                **_curves_defaults, **{k: v for k, v in options.items() if k != "metric"}},
                metrics=("train_loss", options.get("metric", "test_acc"))))
        else:
            chart = minwidth(configs, **options, weight="n")
    finally:
        con.close()
    return with_progress(chart, *progress(root))


# the builders' defaults, which the SQL tables behind them must share
_phase_defaults = {"x": "width", "y": "depth", "metric": "separated", "column": "activation",
                   "row": None}
_curves_defaults = {"color": "width", "column": "depth", "row": None}


# ----------------------------------------------------------------------------- progress


def progress(root: str, runs: pd.DataFrame | None = None) -> tuple[int, int]:
    """``(done, total)``: finished networks of the folder's spec, and all of them
    (:func:`sweepnet.store.results.progress`; ``runs`` is accepted for the callers' convenience)."""
    del runs
    return results.progress(root)


def pending(root: str, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The configurations of the folder's spec not trained yet, one row each
    (:func:`sweepnet.store.results.pending`)."""
    del runs
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
    note = f"unfinished sweep: {done} of {plural(total, 'network')} trained"
    return chart.properties(title=alt.Title(text, subtitle=[note, *sub]))


__all__ = [
    "KINDS",
    "PENDING_GREY",
    "betti",
    "boundary",
    "chance",
    "compare_phase",
    "curves",
    "curves_cells",
    "curves_table",
    "dataset",
    "from_results",
    "minwidth",
    "minwidth_table",
    "pending",
    "phase",
    "phase_cells",
    "phase_table",
    "points_chart",
    "progress",
    "save",
    "separation",
    "swept_axes",
    "to_html",
    "with_progress",
]
