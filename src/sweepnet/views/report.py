"""One self-contained HTML page about a results folder: summary, the explorable phase diagram
(:mod:`sweepnet.views.explore`), minimal width, training curves, a few inspected networks, and the
spec.

The Vega, Vega-Lite and Vega-Embed libraries are inlined once (from vl-convert), so the page
opens offline. Each chart's spec sits in a ``<script type="application/json">`` block and is
drawn by ``vegaEmbed``; a chart that fails to draw shows its error in place and on the console.
"""

from __future__ import annotations

import functools
import html
import json
import os
from collections.abc import Callable
from typing import Any

import duckdb
import pandas as pd
import tomllib
import vl_convert as vlc

from sweepnet.core.errors import SweepnetError
from sweepnet.core.words import plural
from sweepnet.measure import regions, topology
from sweepnet.store import results
from sweepnet.views import cells, charts
from sweepnet.views import network as inspect_lib
from sweepnet.views.curves import curves_cells
from sweepnet.views.drawing import swept_axes, vl_version
from sweepnet.views.explore import explore, explore_table

_STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1.5em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; }
.lede { color: #555; margin-top: 0; }
table.summary { border-collapse: collapse; margin: 1em 0; }
table.summary td { padding: 2px 14px 2px 0; vertical-align: top; }
table.summary td:first-child { color: #666; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 13px; }
.chart { margin: 1em 0; overflow-x: auto; }
.chart-error { color: #b00; white-space: pre-wrap; }
.note { color: #555; font-size: 14px; }
.unfinished { background: #fff4d6; border-left: 4px solid #e0a800; padding: 0.5em 1em; }
.controls { margin: 0.5em 0 0.5em; font-size: 14px; }
.controls .vega-bind { margin-right: 2.5em; display: inline-block; }
.controls select { font-size: 14px; }
"""

# Draws every chart of the page; errors are shown in place and logged, never swallowed.
_DRAW = """
document.querySelectorAll("script.vl-spec").forEach(function (node) {
  var target = document.getElementById(node.dataset.target);
  var spec = JSON.parse(node.textContent);
  var controls = document.getElementById("controls-" + node.dataset.target);
  var options = {renderer: "svg", actions: {export: true, source: false, compiled: false,
                                            editor: false}};
  if (controls) { options.bind = controls; }  // inputs bound to parameters go above
  vegaEmbed(target, spec, options)
    .then(function (result) {
      window.sweepnetViews = window.sweepnetViews || {};
      window.sweepnetViews[node.dataset.target] = result.view;
      target.dataset.rendered = "yes";
    })
    .catch(function (err) {
      target.dataset.rendered = "error";
      target.innerHTML = '<p class="chart-error"></p>';
      target.firstChild.textContent = "chart failed to draw: " + err;
      console.error("sweepnet report: chart " + node.dataset.target + " failed: " + err);
    });
});
"""


def pick_networks(runs: pd.DataFrame, limit: int = 3) -> list[tuple[str, pd.Series]]:
    """Networks worth a closer look: the best run (highest test accuracy, then lowest train
    loss) at the narrowest width where most seeds separate, and at the width just below it;
    without any separating width, the best runs of the narrowest and the widest width."""
    ok = runs[~runs["diverged"]] if "diverged" in runs else runs
    if not len(ok):
        return []
    cfg = [c for c in ("width", "depth", "activation", "dataset") if c in ok.columns]
    shares = ok.groupby(cfg)["separated"].agg(["mean", "size"]).reset_index()

    def best(w: int) -> pd.Series:
        at = ok[ok["width"] == w]
        return at.sort_values(["test_acc", "train_loss"], ascending=[False, True]).iloc[0]

    return choose_networks(shares, best, limit)


def choose_networks(
    shares: pd.DataFrame, best: Callable[[int], pd.Series], limit: int = 3
) -> list[tuple[str, pd.Series]]:
    """:func:`pick_networks` from the share of seeds separated of each configuration
    (``shares``: ``width``, ``mean``, ``size``; diverged seeds left out) and ``best(width)``,
    the best run of a width."""
    size = shares["size"].astype("float64")
    share = (shares["mean"] * size).groupby(shares["width"]).sum() / size.groupby(
        shares["width"]).sum()
    widths = sorted(shares["width"].unique())
    # the narrowest width at which most seeds of some configuration separate
    good = sorted(set(shares.loc[shares["mean"] > 0.5, "width"]))
    picks: list[tuple[str, pd.Series]] = []
    if good:
        w = good[0]
        below = [x for x in widths if x < w]
        if below:
            picks.append((f"best network of width {below[-1]} (the widest where most seeds "
                          "fail)", best(below[-1])))
        picks.append((f"best network of width {w} (the narrowest where most seeds separate)",
                      best(w)))
    else:
        for w in dict.fromkeys([widths[0], widths[-1]]):
            picks.append((f"best network of width {w} (share separated {share[w]:.2f})",
                          best(w)))
    return picks[:limit]


def _picks(con: duckdb.DuckDBPyConnection) -> list[tuple[str, pd.Series]]:
    """:func:`pick_networks` in SQL: a share per configuration and one run a width."""
    cols = cells.columns(con)
    cfg = ", ".join(c for c in ("width", "depth", "activation", "dataset") if c in cols)
    ok = "NOT diverged" if "diverged" in cols else "true"
    shares = con.execute(f"SELECT {cfg}, avg(separated::DOUBLE) AS mean, count(*) AS size "
                         f"FROM runs WHERE {ok} GROUP BY ALL").df()
    if not len(shares):
        return []

    def best(w: int) -> pd.Series:
        return con.execute(f"SELECT * FROM runs WHERE {ok} AND width = ? ORDER BY test_acc "
                           "DESC, train_loss ASC, grid_index LIMIT 1", [int(w)]).df().iloc[0]

    return choose_networks(shares, best)


def summary_lines(root: str, con: duckdb.DuckDBPyConnection,
                  configs: pd.DataFrame) -> list[tuple[str, str]]:
    """The report's summary table: networks, separated, diverged, axes, seeds, versions."""
    manifest = results.read_manifest(root)
    done, total = charts.progress(root)
    n, sep, div, seeds = con.execute(
        "SELECT count(*), sum(separated::INTEGER), sum(diverged::INTEGER), "
        "count(DISTINCT seed) FROM runs").fetchone()
    rows = [
        ("networks", f"{n}" if done >= total else f"{done} of {total} trained"),
        ("separated", f"{int(sep)} ({sep / n:.1%})"),
        ("diverged", f"{int(div)}"),
        ("swept axes", ", ".join(f"{a} ({configs[a].nunique()})" for a in swept_axes(configs))
         or "none"),
        ("seeds", f"{seeds}"),
    ]
    cols = cells.columns(con)
    for key in ("sweepnet_version", "jax_version", "backend", "n_devices"):
        if key in cols:
            found = con.execute(f"SELECT DISTINCT {cells.q(key)} FROM runs").fetchall()
            rows.append((key.replace("_", " "), ", ".join(str(v[0]) for v in found)))
    if manifest.get("updated"):
        rows.append(("last updated", str(manifest["updated"])))
    return rows


EXPLAINED = 100  # violations the report explains one by one (each recomputes one network)
THEOREM_TEXT = {
    "unbounded": "every component of the decision region is unbounded (Beise, Da Cruz & "
                 "Schröder 2021; Johnson 2019)",
    "connected": "the decision region is connected (Nguyen, Mukkamala & Hein 2018)",
}


def theorem_block(root: str, con: duckdb.DuckDBPyConnection) -> str:
    """The section on the narrow-network theorems (the ``theorems`` view): per theorem, the
    networks it applies to and those that violate it, each with its cause
    (:func:`sweepnet.measure.regions.theorem_checks`: the grid's resolution, the box, or a bug);
    empty where no network of the sweep is narrow enough (or its regions were not measured)."""
    counts = con.execute("SELECT theorem, count(*) AS n, count_if(NOT holds) AS bad "
                         "FROM theorems GROUP BY 1 ORDER BY 1").df()
    if not len(counts):
        return ""
    bad = int(counts["bad"].sum())
    causes = regions.theorem_checks(root) if 0 < bad <= EXPLAINED else None
    rows = []
    counts[["n", "bad"]] = counts[["n", "bad"]].astype("int64")
    for t in counts.itertuples():
        statement = html.escape(THEOREM_TEXT.get(t.theorem, t.theorem))
        line = (f"<tr><td>{html.escape(t.theorem)}</td><td>{statement}</td><td>{t.n:,}</td>"
                f"<td>{t.bad:,}</td><td>")
        if causes is not None and t.bad:
            mine = causes[(causes["theorem"] == t.theorem) & ~causes["holds"]]
            line += "; ".join(f"{html.escape(c)}: {len(g)} ({', '.join(g['run_id'][:8])}"
                              f"{', ...' if len(g) > 8 else ''})"
                              for c, g in mine.groupby("cause", sort=True))
        line += "</td></tr>"
        rows.append(line)
    note = ("Each theorem is checked on every network it applies to (hidden layers at most as "
            "wide as the input, 2-D binary data, the activations it covers), on the network's "
            "decision region measured on a 64 x 64 grid over the data's box. A violation is a "
            "bug in sweepnet or the grid's resolution: each is recomputed on a finer grid and a "
            "wider box, and its cause given (mismatch: a bug; resolution or box: the grid's; "
            "unexplained: a bug or a hypothesis the check cannot see).")
    if bad > EXPLAINED:
        note += (f" {bad:,} violations are too many to explain here: "
                 "sweepnet.measure.regions.theorem_checks(DIR) does it.")
    return ("<h2>Theorems about narrow networks</h2>\n"
            f"<p class=\"note\">{html.escape(note)}</p>\n<table class=\"summary\"><tr>"
            "<td>theorem</td><td>statement</td><td>networks</td><td>violations</td>"
            "<td>causes (run ids)</td></tr>" + "".join(rows) + "</table>\n")


def _chart_block(i: int | str, chart: Any, note: str = "", controls: bool = False) -> str:
    spec = json.dumps(chart.to_dict(), separators=(",", ":")).replace("</", "<\\/")
    note_html = f'<p class="note">{html.escape(note)}</p>' if note else ""
    # the chart's sliders and menus (its bound parameters), above it
    controls_html = f'<div class="controls" id="controls-chart-{i}"></div>' if controls else ""
    return (
        f'{note_html}{controls_html}<div class="chart" id="chart-{i}"></div>\n'
        f'<script type="application/json" class="vl-spec" data-target="chart-{i}">'
        f"{spec}</script>\n"
    )


@functools.lru_cache(maxsize=2)
def _bundle(vl_version: str | None) -> str:
    """Vega, Vega-Lite and Vega-Embed as one script (about 1 MB; takes vl-convert seconds)."""
    return vlc.javascript_bundle(vl_version=vl_version)


def build_report(root: str, sample: int = cells.SAMPLE) -> str:
    """The report page of the results folder ``root`` as an HTML string.

    Every section is aggregated in SQL over all networks; the linked view of a clicked cell
    shows at most ``sample`` of its seeds. The page's size is the grid's, not the sweep's.
    """
    results.require_results_dir(root)
    con = cells.connect(root)
    try:
        return _page(root, con, sample)
    finally:
        con.close()


def _page(root: str, con: duckdb.DuckDBPyConnection, sample: int) -> str:
    configs = cells.configurations(con)
    if not len(configs):
        raise SweepnetError(f"{root}: no finished runs to report on")
    spec_text = results.stored_spec_text(root)
    name = str(configs["sweep"].iloc[0])
    blocks: list[str] = []
    n = 0

    def add(title: str, chart: Any, note: str = "", name: str | None = None) -> None:
        nonlocal n
        block = _chart_block(name or n, chart, note, controls=name == "explore")
        blocks.append(f"<h2>{html.escape(title)}</h2>\n" + block)
        n += 1

    pending = charts.pending(root)
    done, total = charts.progress(root)
    if done < total:
        blocks.append(
            f'<p class="unfinished">Unfinished sweep: {done} of {plural(total, "network")} '
            "trained. Cells without a trained network are grey; re-run the spec to finish it.</p>\n"
        )
    table, seeds, info = explore_table(root, con, pending, sample=sample,
                                       separation=charts.separation(root))
    shown = int(table["shown"].sum())
    add(
        "Explore: phase diagram and the seeds of a cell",
        explore(table, seeds, info),
        "Click a cell of the phase diagram: the views below it show that cell's seeds. The "
        "slider moves the threshold t of 'share of seeds with test accuracy >= t'; the menu "
        "switches what colours the cells. Hover for numbers and 95% intervals. The cells "
        f"count all {info['networks']:,} networks; the views of a cell show "
        + ("all its seeds." if shown == info["networks"] else
           f"at most {sample} of its seeds ({shown:,} in all): its extremes and an even "
           "spread in seed order."),
        name="explore",
    )
    if configs["width"].nunique() > 1:
        add("Minimal width", charts.with_progress(charts.minwidth(configs, weight="n"), done,
                                                  total))
    if cells.has_curves(con):
        table = curves_cells(con, configs, color="width", column="activation", row="none")
        summary = charts.curves(configs, None, color="width", column="activation", row="none",
                                table=table)
        add(
            "Training curves",
            charts.with_progress(summary, done, total),
            "Summarised: one line per width, pooled over the other axes (click a cell above "
            "for single seeds).",
        )
    if os.path.exists(results.topology_path(root)):  # after `sweepnet topology`
        topo = topology.load(root)
        con.register("_topo_ids", topo[["run_id"]].drop_duplicates())
        axes = con.execute("SELECT run_id, activation, width, depth FROM runs WHERE run_id IN "
                           "(SELECT run_id FROM _topo_ids)").df()
        topo = topo.merge(axes, on="run_id")
        if len(topo):
            add("Topology through the layers", charts.betti(topo),
                "Mean Betti numbers of each class at the input (layer 0), after each hidden "
                "layer and at the logits (Naitzat et al. 2020: kNN graph, hop distance, "
                f"Vietoris-Rips at one scale; {topology.summary(topo)}).")
    if theorems := theorem_block(root, con):
        blocks.append(theorems)
    for label, row in _picks(con):
        add(
            f"Network {row['run_id']}: {label}",
            inspect_lib.inspect(root, row["run_id"]),
            f"sweepnet inspect {root} {row['run_id']}",
        )
    summary = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in summary_lines(root, con, configs)
    )
    bundle = _bundle(vl_version())
    desc = ""
    try:
        desc = str(tomllib.loads(spec_text).get("description", ""))
    except tomllib.TOMLDecodeError:
        pass
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sweepnet report: {html.escape(name)}</title>
<style>{_STYLE}</style>
<script>{bundle}</script>
</head>
<body>
<h1>sweepnet report: {html.escape(name)}</h1>
<p class="lede">{html.escape(desc)}</p>
<table class="summary">{summary}</table>
{"".join(blocks)}
<h2>Spec</h2>
<pre>{html.escape(spec_text)}</pre>
<script>{_DRAW}</script>
</body>
</html>
"""


def write_report(root: str, out_html: str, sample: int = cells.SAMPLE) -> None:
    """Write the report page of ``root`` to ``out_html`` (works offline); ``sample``: seeds a
    cell's linked view shows at most (:func:`build_report`)."""
    if not out_html.lower().endswith((".html", ".htm")):
        raise SweepnetError(f"{out_html}: a report is an HTML page; name it .html")
    page = build_report(root, sample)
    try:
        d = os.path.dirname(out_html)
        if d:
            os.makedirs(d, exist_ok=True)
        tmp = out_html + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(page)
        os.replace(tmp, out_html)
    except OSError as e:
        raise SweepnetError(f"{out_html}: cannot write ({e.strerror})") from None


__all__ = ["build_report", "choose_networks", "pick_networks", "summary_lines", "write_report"]
