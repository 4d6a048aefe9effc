"""Every step of a sweep at 65k, 262k and 1M networks: its time and peak memory, and how each grows.

    python analysis/scale.py [--sizes 65536 262144 1048576] [--steps 150] [--work /tmp/scale]
                             [--out analysis/out] [--keep]

One grid (disk_annulus; widths 2-5 x depths 1-2 x tanh/relu, 256 training points, 1,024 test
points), with ``seeds = N / 16`` so that it holds N networks. For each N it runs, each as its own
process under ``/usr/bin/time`` (wall seconds and peak resident memory):

    sweepnet run SPEC --out DIR --quiet
    sweepnet query DIR "select width, depth, activation, count(*) ... group by all"
    sweepnet chart DIR --kind phase
    sweepnet chart DIR --kind curves
    sweepnet report DIR

and records the folder's size on disk and the report's size. Writes ``scale.json`` and
``scale.md`` (the table, with each step's growth from the smallest N to the largest) to
``--out``. A finished folder is trained again only without ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SPEC = """\
name = "scale-{n}"
description = "{n} networks: widths 2-5 x depths 1-2 x tanh/relu x {seeds} seeds."

[data]
dataset = "disk_annulus"
n_train = 256
n_test = 1024

[model]
width = [2, 3, 4, 5]
depth = [1, 2]
activation = ["tanh", "relu"]

[train]
steps = {steps}
seeds = {seeds}
eval_every = 50
"""
CELLS = 16  # widths x depths x activations of SPEC

QUERY = ("select width, depth, activation, count(*) as n, avg(separated::int) as share "
         "from runs group by all order by all")


def timed(args: list[str], log: str) -> tuple[float, float]:
    """Run ``sweepnet ARGS`` under /usr/bin/time: (wall seconds, peak resident MB)."""
    stats = log + ".time"
    cmd = ["/usr/bin/time", "-f", "%e %M", "-o", stats, sys.executable, "-m", "sweepnet", *args]
    with open(log, "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"scale: `sweepnet {' '.join(args)}` failed; see {log}")
    with open(stats) as f:
        wall, kb = f.read().split()[-2:]
    return float(wall), int(kb) / 1024


def folder_mb(path: str) -> float:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path)
               for f in fs) / 1e6


def measure(n: int, steps: int, work: str, keep: bool) -> dict:
    seeds = n // CELLS
    spec = os.path.join(work, f"scale-{n}.toml")
    out = os.path.join(work, f"scale-{n}")
    os.makedirs(work, exist_ok=True)
    with open(spec, "w") as f:
        f.write(SPEC.format(n=n, seeds=seeds, steps=steps))
    logs = os.path.join(work, f"logs-{n}")
    os.makedirs(logs, exist_ok=True)
    row: dict = {"networks": n, "steps": steps}
    done = keep and os.path.exists(os.path.join(out, "manifest.json"))
    if not done:
        shutil.rmtree(out, ignore_errors=True)
        row["run"] = timed(["run", spec, "--out", out, "--quiet"], os.path.join(logs, "run"))
    row["disk_mb"] = round(folder_mb(out), 1)
    row["query"] = timed(["query", out, QUERY], os.path.join(logs, "query"))
    for kind in ("phase", "curves"):
        row[f"chart {kind}"] = timed(["chart", out, "--kind", kind, "--out",
                                      os.path.join(work, f"{kind}-{n}.html")],
                                     os.path.join(logs, kind))
    page = os.path.join(work, f"report-{n}.html")
    row["report"] = timed(["report", out, "--out", page], os.path.join(logs, "report"))
    row["report_mb"] = round(os.path.getsize(page) / 1e6, 2)
    return row


STEPS = ("run", "query", "chart phase", "chart curves", "report")


def table(rows: list[dict]) -> str:
    head = "| networks | " + " | ".join(f"{s} s / MB" for s in STEPS) + " | on disk | report page |"
    lines = [head, "|" + "---|" * (len(STEPS) + 3)]
    for r in rows:
        cells = [f"{r[s][0]:.1f} s / {r[s][1]:.0f} MB" if s in r else "(kept)" for s in STEPS]
        lines.append(f"| {r['networks']:,} | " + " | ".join(cells)
                     + f" | {r['disk_mb']:.0f} MB | {r['report_mb']:.2f} MB |")
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        grow = [f"{b[s][0] / a[s][0]:.1f}x / {b[s][1] / a[s][1]:.1f}x" if s in a and s in b
                else "" for s in STEPS]
        lines.append(f"| growth ({b['networks'] // a['networks']}x networks) | "
                     + " | ".join(grow) + f" | {b['disk_mb'] / a['disk_mb']:.1f}x | "
                     f"{b['report_mb'] / a['report_mb']:.1f}x |")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[65536, 262144, 1048576])
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--work", default="/tmp/sweepnet-scale")
    ap.add_argument("--out", default=os.path.join(ROOT, "analysis", "out"))
    ap.add_argument("--keep", action="store_true", help="reuse finished folders (no training)")
    a = ap.parse_args(argv)
    if any(n % CELLS for n in a.sizes):
        raise SystemExit(f"scale: sizes must be multiples of {CELLS}")
    rows = []
    for n in a.sizes:
        t = time.perf_counter()
        rows.append(measure(n, a.steps, a.work, a.keep))
        print(f"{n:,} networks: {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    md = table(rows)
    os.makedirs(a.out, exist_ok=True)
    meta = {"cpus": os.cpu_count(), "load_average": round(os.getloadavg()[0], 2)}
    with open(os.path.join(a.out, "scale.json"), "w") as f:
        json.dump({"rows": rows, **meta}, f, indent=1)
    with open(os.path.join(a.out, "scale.md"), "w") as f:
        f.write(f"# Every step at scale\n\n`python analysis/scale.py --sizes "
                f"{' '.join(map(str, a.sizes))} --steps {a.steps}` on {meta['cpus']} CPUs "
                f"(load average {meta['load_average']} at the end). Each cell: wall time / "
                "peak resident memory of the step's own process.\n\n" + md + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
