"""Size and build time of the olah.toml report page, and a screenshot of it in Chromium.

    python analysis/report_bench.py [--steps 400] [--results DIR] [--out analysis/out]

Trains sweeps/olah.toml shortened to ``--steps`` (4,096 networks; resumed if the folder holds
it), times ``sweepnet report`` on it, measures the page and the share of it that is the
per-network table behind the linked views, and opens it in headless Chromium (Debian's
``chromium``, driven by Playwright) to time the first draw and save
``report-olah.png``. Writes ``report_bench.json`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import time

from sweepnet.engine import run as engine
from sweepnet.sweep import spec
from sweepnet.views import report

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def screenshot(page_path: str, png: str) -> float:
    """Open ``page_path`` in headless Chromium, wait for every chart to draw, save ``png``;
    returns the seconds from navigation to the last chart drawn."""
    from playwright.sync_api import sync_playwright  # optional: the `dev` extra

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("report_bench: no chromium on PATH (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        t = time.perf_counter()
        page.goto("file://" + os.path.abspath(page_path))
        page.wait_for_function("document.querySelectorAll('.vega-embed canvas, .vega-embed svg')"
                               ".length > 0", timeout=120_000)
        page.wait_for_load_state("networkidle")
        drawn = time.perf_counter() - t
        page.screenshot(path=png, full_page=False)
        browser.close()
    return drawn


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--results", default=os.path.join(ROOT, "results", "olah-report"))
    ap.add_argument("--out", default=os.path.join(ROOT, "analysis", "out"))
    a = ap.parse_args(argv)
    s = spec.load(os.path.join(ROOT, "sweeps", "olah.toml"), [f"train.steps={a.steps}"])
    t = time.perf_counter()
    summary = engine.run_sweep(s, a.results, progress=False)
    train_s = time.perf_counter() - t
    page = os.path.join(a.results, "report.html")
    t = time.perf_counter()
    report.write_report(a.results, page)
    build_s = time.perf_counter() - t
    with open(page, encoding="utf-8") as f:
        text = f.read()
    # the per-network table is the largest inline dataset of the page's one Vega-Lite spec
    table = max((len(v) for v in _datasets(text)), default=0)
    os.makedirs(a.out, exist_ok=True)
    drawn = screenshot(page, os.path.join(a.out, "report-olah.png"))
    out = {"spec": "sweeps/olah.toml", "steps": a.steps, "networks": int(summary.total),
           "train_s": round(train_s, 1), "report_build_s": round(build_s, 1),
           "page_mb": round(os.path.getsize(page) / 1e6, 2),
           "largest_dataset_mb": round(table / 1e6, 2), "chromium_draw_s": round(drawn, 1),
           "cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)}
    with open(os.path.join(a.out, "report_bench.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out, indent=1))
    return 0


def _datasets(page: str) -> list[str]:
    """The JSON text of every inline dataset (``"datasets":{name: [...]}``) of every chart."""
    out, decoder = [], json.JSONDecoder()
    for m in re.finditer(r'"datasets":\s*\{', page):
        datasets, _ = decoder.raw_decode(page, m.end() - 1)
        out += [json.dumps(v, separators=(",", ":")) for v in datasets.values()]
    return out


if __name__ == "__main__":
    sys.exit(main())
