"""Time and peak memory of reading a large sweep: this tree against a base revision, side by side.

    python analysis/views_memory.py [--base 8b61fc9] [--work /tmp/sweepnet-scale]
                                    [--sizes 65536 262144 1048576] [--repeats 2]
                                    [--steps query phase curves report]

Reads the finished folders ``WORK/scale-N`` (``analysis/scale.py`` trains them; here they are
only read). Each step (``sweepnet query`` grouped by cell, ``chart --kind phase``, ``chart
--kind curves``, ``report``) runs as its own process under ``/usr/bin/time``, the base's
source (``git archive BASE src``) and this tree's in turn, ``--repeats`` times; their outputs
go to a temporary folder and are compared byte for byte. Prints a table: the median wall
seconds and peak resident MB of each, the ratios (this tree / base), whether the outputs are
identical, and the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUERY = ("select width, depth, activation, count(*) as n, avg(separated::int) as share "
         "from runs group by all order by all")


def args_of(step: str, folder: str, out: str) -> list[str]:
    if step == "query":
        return ["query", folder, QUERY]
    if step == "report":
        return ["report", folder, "--out", out + ".html"]
    return ["chart", folder, "--kind", step, "--out", out + ".html"]


def timed(src: str, args: list[str], out: str) -> tuple[float, float]:
    """``sweepnet ARGS`` with ``src`` first on the path: (wall s, peak resident MB); its
    output (a query's text, else the page) stays at ``out``."""
    env = {**os.environ, "PYTHONPATH": src}
    stats = out + ".time"
    cmd = ["/usr/bin/time", "-f", "%e %M", "-o", stats, sys.executable, "-m", "sweepnet", *args]
    with open(out + ".txt", "w") as f:
        done = subprocess.run(cmd, stdout=f, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"views_memory: `sweepnet {' '.join(args)}` failed ({src})")
    with open(stats) as f:
        wall, kb = f.read().split()[-2:]
    return float(wall), int(kb) / 1024


def same(a: str, b: str) -> bool:
    """Whether two runs' outputs are equal byte for byte: the page (a chart's or report's
    text output names its path), else the query's text."""
    ext = ".html" if os.path.exists(a + ".html") else ".txt"
    with open(a + ext, "rb") as f, open(b + ext, "rb") as g:
        return f.read() == g.read()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="8b61fc9", help="the revision to compare with")
    ap.add_argument("--work", default="/tmp/sweepnet-scale")
    ap.add_argument("--sizes", type=int, nargs="+", default=[65536, 262144, 1048576])
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--steps", nargs="+", default=["query", "phase", "curves", "report"])
    a = ap.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="views-memory-")
    base = os.path.join(tmp, "base")
    os.makedirs(base)
    archive = subprocess.run(["git", "archive", a.base, "src"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", base], input=archive, check=True)
    trees = {"base": os.path.join(base, "src"), "now": os.path.join(ROOT, "src")}
    print("| networks | step | base s / MB | now s / MB | time ratio | memory ratio | output |")
    print("|---|---|---|---|---|---|---|")
    for n in a.sizes:
        folder = os.path.join(a.work, f"scale-{n}")
        for step in a.steps:
            runs: dict[str, list] = {"base": [], "now": []}
            for r in range(a.repeats):
                for name in (("base", "now") if r % 2 == 0 else ("now", "base")):
                    out = os.path.join(tmp, f"{name}-{step}-{n}")
                    runs[name].append(timed(trees[name], args_of(step, folder, out), out))
            (bt, bm), (nt, nm) = ((statistics.median(x[0] for x in runs[k]),
                                   statistics.median(x[1] for x in runs[k]))
                                  for k in ("base", "now"))
            ok = same(os.path.join(tmp, f"base-{step}-{n}"), os.path.join(tmp, f"now-{step}-{n}"))
            print(f"| {n:,} | {step} | {bt:.1f} s / {bm:.0f} MB | {nt:.1f} s / {nm:.0f} MB | "
                  f"{nt / bt:.2f} | {nm / bm:.2f} | {'identical' if ok else 'DIFFERENT'} |",
                  flush=True)
    print(f"\n{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at the end; "
          f"outputs in {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
