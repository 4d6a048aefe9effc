"""The HTML report: its content, that it needs no network, and that a real browser draws it."""

import json
import re
import shutil
import subprocess

import pandas as pd
import pytest

import sweepnet
from sweepnet import report
from sweepnet.errors import SweepnetError

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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


@pytest.mark.slow
def test_report_page_content_and_offline(tiny_results, tmp_path):
    out = tmp_path / "r" / "report.html"
    report.write_report(tiny_results, str(out))
    page = out.read_text()
    assert "sweepnet report: tiny" in page and "Phase diagram" in page
    assert "Training curves" in page and "Spec" in page
    assert "dataset = &quot;disk_annulus&quot;" in page  # the resolved spec, escaped
    assert "<script src" not in page.replace(" ", "") and "<link" not in page
    specs = re.findall(
        r'<script type="application/json" class="vl-spec" '
        r'data-target="(chart-\d+)">(.*?)</script>',
        page,
        re.S,
    )
    runs = sweepnet.load(tiny_results)
    n_nets = len(report.pick_networks(runs))
    assert n_nets >= 1 and len(specs) == 3 + n_nets  # phase, minwidth, curves, networks
    for _, text in specs:
        assert "$schema" in json.loads(text)


def test_report_errors(tiny_results, tmp_path):
    with pytest.raises(SweepnetError, match="report.txt"):
        report.write_report(tiny_results, str(tmp_path / "report.txt"))
    with pytest.raises(SweepnetError, match="not a sweepnet results folder"):
        report.write_report(str(tmp_path), str(tmp_path / "r.html"))


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_report_opens_in_a_browser_without_script_errors(tiny_results, tmp_path):
    out = tmp_path / "report.html"
    report.write_report(tiny_results, str(out))
    dom, errors = open_in_browser(out, tmp_path)
    assert errors == []
    n_charts = len(re.findall(r'<div[^>]*id="chart-\d+"', dom))
    assert n_charts >= 4
    assert dom.count('data-rendered="yes"') == n_charts, "a chart did not draw"
    assert dom.count("<svg") >= n_charts


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium installed")
def test_the_browser_check_catches_script_errors(tiny_results, tmp_path):
    """The check above can fail: a thrown error and a chart that cannot draw are both seen."""
    thrown = tmp_path / "thrown.html"
    thrown.write_text("<html><body><script>notDefinedAnywhere();</script></body></html>")
    _, errors = open_in_browser(thrown, tmp_path)
    assert errors and "notDefinedAnywhere" in errors[0]
    # a report whose chart spec is broken: vegaEmbed rejects it and the page logs that
    page = report.build_report(tiny_results)
    broken = re.sub(
        r'(data-target="chart-0">).*?</script>',
        r'\1{"mark": "nosuchmark", "data": {"values": []}}</script>',
        page,
        count=1,
        flags=re.S,
    )
    assert broken != page
    path = tmp_path / "broken.html"
    path.write_text(broken)
    dom, errors = open_in_browser(path, tmp_path)
    assert any("chart chart-0 failed" in e for e in errors)
    assert 'data-rendered="error"' in dom
