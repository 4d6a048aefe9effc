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
from typing import Any

import pandas as pd
import tomllib
import vl_convert as vlc

from sweepnet.core.errors import SweepnetError
from sweepnet.core.words import plural
from sweepnet.measure import topology
from sweepnet.store import results
from sweepnet.views import charts
from sweepnet.views import network as inspect_lib
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
    best = lambda df: df.sort_values(["test_acc", "train_loss"], ascending=[False, True]).iloc[0]
    share = ok.groupby("width")["separated"].mean()
    widths = sorted(ok["width"].unique())
    # the narrowest width at which most seeds of some configuration separate
    by_cfg = ok.groupby(
        [c for c in ("width", "depth", "activation", "dataset") if c in ok.columns]
    )["separated"].mean()
    good = sorted({k[0] for k, v in by_cfg.items() if v > 0.5})
    picks: list[tuple[str, pd.Series]] = []
    if good:
        w = good[0]
        below = [x for x in widths if x < w]
        if below:
            r = best(ok[ok["width"] == below[-1]])
            picks.append(
                (f"best network of width {below[-1]} (the widest where most seeds fail)", r)
            )
        r = best(ok[ok["width"] == w])
        picks.append((f"best network of width {w} (the narrowest where most seeds separate)", r))
    else:
        for w in dict.fromkeys([widths[0], widths[-1]]):
            picks.append(
                (
                    f"best network of width {w} (share separated {share[w]:.2f})",
                    best(ok[ok["width"] == w]),
                )
            )
    return picks[:limit]


def summary_lines(root: str, runs: pd.DataFrame) -> list[tuple[str, str]]:
    manifest = results.read_manifest(root)
    done, total = charts.progress(root, runs)
    rows = [
        ("networks", f"{len(runs)}" if done >= total else f"{done} of {total} trained"),
        ("separated", f"{int(runs['separated'].sum())} ({runs['separated'].mean():.1%})"),
        ("diverged", f"{int(runs['diverged'].sum())}"),
        ("swept axes", ", ".join(f"{a} ({runs[a].nunique()})" for a in swept_axes(runs)) or "none"),
        ("seeds", f"{runs['seed'].nunique()}"),
    ]
    for key in ("sweepnet_version", "jax_version", "backend", "n_devices"):
        if key in runs.columns:
            rows.append((key.replace("_", " "), ", ".join(map(str, runs[key].unique()))))
    if manifest.get("updated"):
        rows.append(("last updated", str(manifest["updated"])))
    return rows


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


def build_report(root: str) -> str:
    """The report page of the results folder ``root`` as an HTML string."""
    runs = results.load(root)
    if not len(runs):
        raise SweepnetError(f"{root}: no finished runs to report on")
    spec_text = results.stored_spec_text(root)
    name = str(runs["sweep"].iloc[0])
    curves = results.load_curves(root)
    blocks: list[str] = []
    n = 0

    def add(title: str, chart: Any, note: str = "", name: str | None = None) -> None:
        nonlocal n
        block = _chart_block(name or n, chart, note, controls=name == "explore")
        blocks.append(f"<h2>{html.escape(title)}</h2>\n" + block)
        n += 1

    pending = charts.pending(root, runs)
    done, total = charts.progress(root, runs)
    if done < total:
        blocks.append(
            f'<p class="unfinished">Unfinished sweep: {done} of {plural(total, "network")} '
            "trained. Cells without a trained network are grey; re-run the spec to finish it.</p>\n"
        )
    table, info = explore_table(root, runs, curves, pending)
    add(
        "Explore: phase diagram and the seeds of a cell",
        explore(table, info, charts.separation(root), charts.chance(runs)),
        "Click a cell of the phase diagram: the views below it show that cell's seeds. The "
        "slider moves the threshold t of 'share of seeds with test accuracy >= t'; the menu "
        "switches what colours the cells. Hover for numbers.",
        name="explore",
    )
    if runs["width"].nunique() > 1:
        add("Minimal width", charts.with_progress(charts.minwidth(runs), done, total))
    if len(curves):
        summary = charts.curves(runs, curves, color="width", column="activation", row="none")
        add(
            "Training curves",
            charts.with_progress(summary, done, total),
            "Summarised: one line per width, pooled over the other axes (click a cell above "
            "for single seeds).",
        )
    if os.path.exists(results.topology_path(root)):  # after `sweepnet topology`
        topo = topology.load(root).merge(runs[["run_id", "activation", "width", "depth"]],
                                         on="run_id")
        if len(topo):
            add("Topology through the layers", charts.betti(topo),
                "Mean Betti numbers of each class at the input (layer 0), after each hidden "
                "layer and at the logits (Naitzat et al. 2020: kNN graph, hop distance, "
                f"Vietoris-Rips at one scale; {topology.summary(topo)}).")
    for label, row in pick_networks(runs):
        add(
            f"Network {row['run_id']}: {label}",
            inspect_lib.inspect(root, row["run_id"]),
            f"sweepnet inspect {root} {row['run_id']}",
        )
    summary = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
        for k, v in summary_lines(root, runs)
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


def write_report(root: str, out_html: str) -> None:
    """Write the report page of ``root`` to ``out_html`` (works offline)."""
    if not out_html.lower().endswith((".html", ".htm")):
        raise SweepnetError(f"{out_html}: a report is an HTML page; name it .html")
    page = build_report(root)
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


__all__ = ["build_report", "pick_networks", "write_report"]
