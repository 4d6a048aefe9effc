"""The HTML report: its content, that it needs no network, and that a real browser draws it."""

import json
import re
import shutil
import subprocess

import duckdb
import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest

import sweepnet
from conftest import TINY_SPEC
from sweepnet.core.errors import SweepnetError
from sweepnet.core.stats import share_interval
from sweepnet.engine import run as engine
from sweepnet.sweep import spec
from sweepnet.views import cells, charts, explore, report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
try:
    from playwright.sync_api import sync_playwright
except ImportError:  # the dev extra installs it
    sync_playwright = None


def open_in_browser(path, tmp_path) -> tuple[str, list[str]]:
    """Load ``path`` in headless Chromium; returns the DOM after scripts ran and the console
    messages that look like errors (uncaught exceptions and ``console.error`` output)."""
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=30000",
        "--dump-dom",
        f"file://{path}",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    errors = [line for line in console if re.search(r"Uncaught|Error|failed", line)]
    return done.stdout, errors


def test_pick_networks_best_below_and_at_the_minimal_width():
    rows = []
    for w in (1, 2, 3, 4):
        for s in range(3):
            rows.append(
                dict(
                    run_id=f"w{w}s{s}",
                    width=w,
                    depth=1,
                    activation="tanh",
                    dataset="d",
                    seed=s,
                    diverged=False,
                    separated=w >= 3,
                    test_acc=0.5 + 0.1 * w + 0.01 * s,
                    train_loss=1.0 / w,
                )
            )
    picks = report.pick_networks(pd.DataFrame(rows))
    assert [r["run_id"] for _, r in picks] == ["w2s2", "w3s2"]
    assert "width 2" in picks[0][0] and "width 3" in picks[1][0]
    none = pd.DataFrame(rows).assign(separated=False)
    assert [r["run_id"] for _, r in report.pick_networks(none)] == ["w1s2", "w4s2"]


@pytest.fixture(scope="module")
def written(tiny_results, tmp_path_factory):
    """The report of the tiny sweep, written once (into a folder write_report makes) for the
    tests below that read it or open it in a browser. Read it, do not write it."""
    out = tmp_path_factory.mktemp("report") / "r" / "report.html"
    report.write_report(tiny_results, str(out))
    return out


@pytest.mark.slow
def test_report_page_content_and_offline(tiny_results, written):
    page = written.read_text()
    assert "sweepnet report: tiny" in page and "Phase diagram: click a cell" in page
    assert "Training curves" in page and "Spec" in page
    assert "dataset = &quot;disk_annulus&quot;" in page  # the resolved spec, escaped
    assert "<script src" not in page.replace(" ", "") and "<link" not in page
    specs = re.findall(
        r'<script type="application/json" class="vl-spec" '
        r'data-target="(chart-[\w-]+)">(.*?)</script>',
        page,
        re.S,
    )
    runs = sweepnet.load(tiny_results)
    n_nets = len(report.pick_networks(runs))
    assert n_nets >= 1 and len(specs) == 3 + n_nets  # explore, minwidth, curves, networks
    assert specs[0][0] == "chart-explore"
    for _, text in specs:
        assert "$schema" in json.loads(text)


def test_report_errors(tiny_results, tmp_path):
    with pytest.raises(SweepnetError, match="report.txt"):
        report.write_report(tiny_results, str(tmp_path / "report.txt"))
    with pytest.raises(SweepnetError, match="not a sweepnet results folder"):
        report.write_report(str(tmp_path), str(tmp_path / "r.html"))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_report_opens_in_a_browser_without_script_errors(written, tmp_path):
    dom, errors = open_in_browser(written, tmp_path)
    assert errors == []
    n_charts = len(re.findall(r'<div[^>]*id="chart-[\w-]+"', dom))
    assert n_charts >= 4
    assert dom.count('data-rendered="yes"') == n_charts, "a chart did not draw"
    assert dom.count("<svg") >= n_charts


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_the_browser_check_catches_script_errors(written, tmp_path):
    """The check above can fail: a thrown error and a chart that cannot draw are both seen
    (in one page, one browser start: a report with a broken chart and a script that throws)."""
    page = written.read_text()
    # a chart spec vegaEmbed rejects: the page logs that and marks the chart
    broken = re.sub(
        r'(data-target="chart-1">).*?</script>',
        r'\1{"mark": "nosuchmark", "data": {"values": []}}</script>',
        page,
        count=1,
        flags=re.S,
    )
    assert broken != page
    # and an uncaught error, in a script of its own after the report's
    head, tail = broken.rsplit("</body>", 1)
    broken = head + "<script>notDefinedAnywhere();</script>\n</body>" + tail
    assert "notDefinedAnywhere" not in page
    path = tmp_path / "broken.html"
    path.write_text(broken)
    dom, errors = open_in_browser(path, tmp_path)
    assert any("Uncaught" in e and "notDefinedAnywhere" in e for e in errors), errors
    assert any("chart chart-1 failed" in e for e in errors), errors
    assert 'data-rendered="error"' in dom


def _unfinished(tiny_results, tmp_path):
    """A copy of the tiny sweep whose spec asks for twice the seeds: 8 of 16 trained."""
    root = tmp_path / "half"
    shutil.copytree(tiny_results, root)
    text = (root / "spec.toml").read_text()
    (root / "spec.toml").write_text(text.replace("seeds = 2", "seeds = 4"))
    return str(root)


def test_explore_tables_cells_count_every_network_and_seeds_hold_the_sample(
    tiny_results, tmp_path
):
    runs = sweepnet.load(tiny_results)
    con = cells.connect(tiny_results)
    table, seeds, info = explore.explore_table(tiny_results, con, max_steps=2, res=6)
    assert info["column"] is None  # one activation: no facet
    assert len(table) == 4 and table["n"].eq(2).all() and table["shown"].eq(2).all()
    assert len(seeds) == len(runs) and seeds["cell"].nunique() == 4  # 2 a cell: all shown
    assert seeds["grid"].str.fullmatch(r"[0-9]{36}").all()
    assert seeds["steps"].map(len).eq(2).all() and seeds["acc"].map(len).eq(2).all()
    # the slider's counts: hits[i] seeds of the cell reach t_i = lo + i * step
    assert table["hits"].map(len).eq(info["count"]).all()
    for _, c in table.iterrows():
        mine = runs[runs["width"].eq(c["width"]) & runs["depth"].eq(c["depth"])]["test_acc"]
        for i in (0, 250, info["count"] - 1):
            t = round(info["lo"] + i * explore.THRESHOLD_STEP, 3)
            assert c["hits"][i] == int((mine >= t).sum())
        lo, hi = share_interval(np.asarray(c["hits"]), 2)
        assert c["hits_lo"] == [int(v) for v in np.rint(lo * 1000)]
        assert c["hits_hi"] == [int(v) for v in np.rint(hi * 1000)]
    # the grid is the stored network's: its digits follow decision_cells' p(class 1)
    from sweepnet.measure import network as measured

    for k in (0, len(seeds) - 1):  # the narrowest and the widest, shallowest and deepest
        row, params = sweepnet.load_params(tiny_results, seeds["run_id"].iloc[k])
        x, _ = measured.training_points(row)
        got = measured.decision_cells(row, params, measured.half_side(row, x), res=6)
        digits = [int(c) for c in seeds["grid"].iloc[k]]
        np.testing.assert_allclose(digits, np.clip(np.rint(got["p"] * 9), 0, 9))
    pending = charts.pending(_unfinished(tiny_results, tmp_path), runs)
    table, seeds, _ = explore.explore_table(tiny_results, con, pending)
    assert table["todo"].sum() == 8 and len(seeds) == len(runs)


def test_share_interval_is_clopper_pearson():
    k = np.array([0, 1, 7, 20, 20, 512])
    n = np.array([20, 20, 20, 20, 1024, 1024])
    lo, hi = share_interval(k, n)
    for a, b, kk, nn in zip(lo, hi, k, n, strict=True):
        ci = binomtest(int(kk), int(nn)).proportion_ci(0.95, method="exact")
        assert a == pytest.approx(ci.low, abs=1e-12) and b == pytest.approx(ci.high, abs=1e-12)
    assert lo[0] == 0 and hi[3] == 1
    assert np.isnan(share_interval(0, 0)[0])  # no seed: no share


def _synthetic(n_big=300, n_small=5):
    """A runs view in DuckDB of two cells: width 2 with ``n_big`` seeds, width 3 with
    ``n_small``; one seed of width 2 never fits."""
    rng = np.random.default_rng(0)
    w = [2] * n_big + [3] * n_small
    seed = list(range(n_big)) + list(range(n_small))
    fit = pd.array(rng.integers(10, 500, len(w)), dtype="Int64")
    fit[7] = pd.NA
    runs = pd.DataFrame({"run_id": [f"r{i:04d}" for i in range(len(w))], "width": w,
                         "seed": seed, "test_acc": rng.random(len(w)),
                         "train_loss": rng.random(len(w)), "steps_to_fit": fit})
    con = duckdb.connect()
    con.register("runs", runs)
    return con, runs


def test_the_sample_is_bounded_deterministic_and_keeps_the_extremes():
    con, runs = _synthetic()
    s = cells.sample(con, ["width"], 16)
    big, small = s[s["width"] == 2], s[s["width"] == 3]
    assert len(big) == 16 and big["shown"].eq(16).all() and big["cell_n"].eq(300).all()
    assert len(small) == 5 and small["cell_n"].eq(5).all()  # few: all of them
    every = runs[runs["width"] == 2]
    ids = set(big["run_id"])
    for field, pick in (("test_acc", "idxmax"), ("test_acc", "idxmin"),
                        ("train_loss", "idxmin"), ("train_loss", "idxmax"),
                        ("steps_to_fit", "idxmin"), ("steps_to_fit", "idxmax")):
        assert every.loc[getattr(every[field].astype("float64"), pick)(), "run_id"] in ids
    # the rest spread evenly over the seeds, not the first few
    assert big["seed"].max() > 250 and big["seed"].min() < 40
    assert big["seed"].is_monotonic_increasing and not big["run_id"].duplicated().any()
    pd.testing.assert_frame_equal(s, cells.sample(con, ["width"], 16))  # deterministic
    assert len(cells.sample(con, ["width"], 3).query("width == 2")) == 3
    with pytest.raises(SweepnetError, match="--sample 0"):
        cells.sample(con, ["width"], 0)


@pytest.mark.slow
def test_report_of_an_unfinished_sweep_says_so(tiny_results, tmp_path):
    page = report.build_report(_unfinished(tiny_results, tmp_path))
    assert "Unfinished sweep: 8 of 16 networks trained" in page
    assert "<td>8 of 16 trained</td>" in page


def _browser_page(p):
    b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
    page = b.new_page(viewport={"width": 1400, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return b, page, errors


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None or sync_playwright is None, reason="no chromium/playwright")
def test_clicking_a_phase_cell_shows_its_seeds_in_chromium(tiny_results, written):
    runs = sweepnet.load(tiny_results)
    with sync_playwright() as p:
        browser, page, errors = _browser_page(p)
        page.goto(f"file://{written}")
        page.wait_for_function(
            "[...document.querySelectorAll('.chart')].every(d => d.dataset.rendered)",
            timeout=120_000,
        )
        assert errors == []
        view = "sweepnetViews['chart-explore']"
        selected = lambda: page.evaluate(f"{view}.data('cell_store')[0].values[0]")
        linked = lambda: page.evaluate(
            "[...document.querySelectorAll('#chart-explore g.mark-text text')]"
            ".map(t => t.textContent).join('|')"
        )
        phase = page.locator('#chart-explore g.mark-rect path[aria-label^="width: "]')
        assert phase.count() == 4  # 2 widths x 2 depths, one activation
        before, text_before = selected(), linked()
        w0, d0 = (int(part.split("=")[1]) for part in before.split(" · "))
        for acc in runs[(runs["width"] == w0) & (runs["depth"] == d0)]["test_acc"]:
            assert f"{acc:.4f}" in text_before  # the linked table shows the cell's seeds
        w1, d1 = 5 - w0, 3 - d0  # the opposite corner of the 2 x 2 grid
        # a user's click lands on the cell's label, drawn on top of the cell: force clicks
        # there (the centre of the cell) instead of waiting for the rect to be uncovered
        page.locator(
            f'#chart-explore g.mark-rect path[aria-label^="width: {w1}; depth: {d1};"]'
        ).click(force=True)
        page.wait_for_function(f"{view}.data('cell_store')[0].values[0] !== '{before}'")
        assert selected() == f"width={w1} · depth={d1}"
        page.wait_for_timeout(300)
        text_after = linked()
        assert text_after != text_before
        for acc in runs[(runs["width"] == w1) & (runs["depth"] == d1)]["test_acc"]:
            assert f"{acc:.4f}" in text_after
        # the threshold slider recolours the phase diagram: at t = chance every seed counts
        fills = lambda: [phase.nth(i).get_attribute("fill") for i in range(4)]
        colours = fills()
        page.locator("#controls-chart-explore input[type=range]").fill("0.5")
        page.wait_for_timeout(300)
        assert fills() != colours
        assert len(set(fills())) == 1  # every cell: share 1
        assert errors == []
        browser.close()


def test_the_report_holds_a_sample_not_every_network(tiny_results, tmp_path):
    """The page's size does not grow with the networks: the linked view's table holds at most
    ``sample`` seeds a cell, and the page says how many it shows of how many."""
    small = report.build_report(tiny_results, sample=1)
    full = report.build_report(tiny_results, sample=64)
    assert len(small) < len(full)
    assert "at most 1 of its seeds (4 in all)" in small and "all its seeds." in full
    assert "'showing ' + format(datum.shown" in small


@pytest.fixture(scope="module")
def many_seeds(tmp_path_factory):
    """The tiny grid with 256 seeds a cell (1,024 networks) and its report with a sample of 8
    seeds a cell: large enough that the linked view shows a sample, not every seed."""
    out = tmp_path_factory.mktemp("many") / "results"
    engine.run_sweep(spec.loads(TINY_SPEC.replace("seeds = 2", "seeds = 256")), str(out),
                     progress=False)
    page = out / "report.html"
    report.write_report(str(out), str(page), sample=8)
    return str(out), page


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None or sync_playwright is None, reason="no chromium/playwright")
def test_clicking_a_cell_of_a_large_report_shows_its_sample_and_counts(many_seeds):
    root, written = many_seeds
    runs = sweepnet.load(root)
    with sync_playwright() as p:
        browser, page, errors = _browser_page(p)
        page.goto(f"file://{written}")
        page.wait_for_function(
            "[...document.querySelectorAll('.chart')].every(d => d.dataset.rendered)",
            timeout=120_000,
        )
        view = "sweepnetViews['chart-explore']"
        texts = lambda: page.evaluate(
            "[...document.querySelectorAll('#chart-explore g.mark-text text')]"
            ".map(t => t.textContent).join('|')"
        )
        phase = page.locator('#chart-explore g.mark-rect path[aria-label^="width: "]')
        assert phase.count() == 4
        box = phase.first.bounding_box()
        assert box["width"] > 100  # cells sized to the page, not 32 px
        before = page.evaluate(f"{view}.data('cell_store')[0].values[0]")
        w0, d0 = (int(part.split("=")[1]) for part in before.split(" · "))
        page.locator(
            f'#chart-explore g.mark-rect path[aria-label^="width: {5 - w0}; depth: {3 - d0};"]'
        ).click(force=True)
        page.wait_for_function(f"{view}.data('cell_store')[0].values[0] !== '{before}'")
        page.wait_for_timeout(300)
        shown = texts()
        assert f"cell: width={5 - w0} · depth={3 - d0} (showing 8 of 256 seeds" in shown
        mine = runs[(runs["width"] == 5 - w0) & (runs["depth"] == 3 - d0)]
        # the sample holds the cell's extremes: its best and worst test accuracy
        for acc in (mine["test_acc"].max(), mine["test_acc"].min()):
            assert f"{acc:.4f}" in shown
        # one decision-boundary panel a sampled seed, headed "seed S: accuracy"
        heads = page.evaluate(
            "[...document.querySelectorAll('#chart-explore text')]"
            ".filter(t => /^seed \\d+: /.test(t.textContent)).length")
        assert heads == 8
        # the tooltip's counts cover every network, with the interval
        page.locator(
            f'#chart-explore g.mark-rect path[aria-label^="width: {5 - w0}; depth: {3 - d0};"]'
        ).hover(force=True)
        label = phase.nth(0).get_attribute("aria-label")
        assert "seeds trained: 256" in label and "95% CI" in label
        assert errors == []
        browser.close()


def test_report_states_the_theorems_on_every_network_they_apply_to(tiny_results):
    """The tiny sweep's width-2 networks are as narrow as their 2-D input: the unboundedness
    theorem applies to all four, connectedness (tanh) to the two with one hidden layer. The
    section counts them as the ``theorems`` view does, and names every violation's cause."""
    con = cells.connect(tiny_results)
    page = report.theorem_block(tiny_results, con)
    counts = con.execute("SELECT theorem, count(*), count_if(NOT holds) FROM theorems "
                         "GROUP BY 1").fetchall()
    con.close()
    assert {t: n for t, n, _ in counts} == {"unbounded": 4, "connected": 2}
    assert "Theorems about narrow networks" in page
    for theorem, n, bad in counts:
        assert re.search(rf"<td>{theorem}</td><td>[^<]+</td><td>{n}</td><td>{bad}</td>", page)
    assert "Theorems about narrow networks" in report.build_report(tiny_results)
