"""``sweepnet topology`` against an earlier version on the same clouds: clouds per second and
identical Betti numbers.

    python analysis/topology_ab.py [--results DIR] [--where SQL] [--base main] [--workers 2]
    python analysis/topology_ab.py --olah [--olah-seeds 1]     # + olah.toml's full time

With ``--workers 1`` each side runs in one process, and its CPU time (which other jobs on a
shared machine move far less than the wall clock) is printed and compared too.

Each side is a whole ``topology.measure`` call (load the networks, forward passes, the
homology, the table written) in a fresh process, on its own copy of the results folder: the
new one from this tree, the old one ``src/sweepnet/measure/topology.py`` as of ``--base``
(``git show``), run against this tree's other modules. Without ``--results`` it trains a
small sweep first (disk_annulus; widths 2, 3, 5, 8; depths 1, 2, 4; tanh and relu; 4 seeds;
300 steps: 96 networks). It asserts that both tables hold the same rows and the same b0, b1,
b2, and prints the rates.

``--olah`` also trains olah.toml with ``--olah-seeds`` seeds instead of 16 (every width,
depth and activation: 256 networks a seed), measures every layer of every network with the
new code alone, and scales the time to olah's 16 seeds (the seeds are alike in cost).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = """
name = "topology-ab"
[data]
dataset = "disk_annulus"
n_train = 512
n_test = 1024
[model]
width = [2, 3, 5, 8]
depth = [1, 2, 4]
activation = ["tanh", "relu"]
[train]
learning_rate = 0.02
steps = 300
seeds = 4
eval_every = 100
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.path.join(ROOT, "src")}


def _sweepnet(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "sweepnet", *args], check=True, env=_env(),
                   cwd=ROOT)


def side(which: str, base: str, folder: str, where: str | None, workers: int) -> None:
    """In a fresh process: one ``measure`` call; prints ``{"seconds": .., "rows": ..}``."""
    if which == "old":
        text = subprocess.run(["git", "show", f"{base}:src/sweepnet/measure/topology.py"],
                              check=True, capture_output=True, text=True, cwd=ROOT).stdout
        folder_of_old = tempfile.mkdtemp()
        with open(os.path.join(folder_of_old, "old_topology.py"), "w") as f:
            f.write(text)
        sys.path.insert(0, folder_of_old)  # its pool's processes import it by name too
        topology = importlib.import_module("old_topology")
        topology.COLUMNS = [c for c in topology.COLUMNS if c != "kind"]  # its own columns
    else:
        from sweepnet.measure import topology
    t, cpu = time.perf_counter(), time.process_time()
    df = topology.measure(folder, where, workers=workers)
    # cpu_seconds: this process's CPU time (all of it with one worker, which runs in here)
    print(json.dumps({"seconds": time.perf_counter() - t, "rows": len(df),
                      "cpu_seconds": time.process_time() - cpu}))


def run_side(which: str, base: str, folder: str, where: str | None, workers: int) -> dict:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, "--side", which, "--base", base,
                          "--results", folder, "--workers", str(workers)]
                         + (["--where", where] if where else []),
                         check=True, capture_output=True, text=True, cwd=ROOT,
                         # each side compiles from scratch (no persistent cache of earlier runs)
                         env={**_env(), "SWEEPNET_CACHE": tempfile.mkdtemp(prefix="xla-")})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - t
    return result


def betti_table(folder: str):
    import pandas as pd

    df = pd.read_parquet(os.path.join(folder, "topology.parquet"))
    cols = ["run_id", "layer", "class", "b0", "b1", "b2", "n_points", "k", "eps"]
    df = df[cols].astype({c: "Int64" for c in cols[1:]})
    return df.sort_values(cols[:3], ignore_index=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", help="a trained results folder (default: train a small one)")
    ap.add_argument("--where", help="SQL condition on its runs (default: all)")
    ap.add_argument("--base", default="main", help="git revision of the old topology.py")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--olah", action="store_true", help="also estimate olah.toml's full time")
    ap.add_argument("--olah-seeds", type=int, default=1)
    ap.add_argument("--side", choices=["old", "new"], help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.side:
        side(a.side, a.base, a.results, a.where, a.workers)
        return 0
    work = tempfile.mkdtemp(prefix="topology-ab-")
    source = a.results
    if source is None:
        spec = os.path.join(work, "ab.toml")
        with open(spec, "w") as f:
            f.write(SPEC)
        source = os.path.join(work, "sweep")
        _sweepnet("run", spec, "--out", source, "--quiet")
    load = os.getloadavg()[0]
    got = {}
    for which in ("old", "new"):
        folder = os.path.join(work, which)
        shutil.copytree(source, folder, ignore=shutil.ignore_patterns("topology*"))
        got[which] = run_side(which, a.base, folder, a.where, a.workers)
    old, new = betti_table(os.path.join(work, "old")), betti_table(os.path.join(work, "new"))
    assert len(old) == len(new) and old.equals(new), "the Betti numbers differ"
    rows = len(new)
    print(f"{new['run_id'].nunique()} networks, {rows} clouds, {a.workers} workers, load "
          f"average {load:.1f} -> {os.getloadavg()[0]:.1f}")
    for which in ("old", "new"):
        r = got[which]
        print(f"  {which} ({a.base if which == 'old' else 'this tree'}): measure "
              f"{r['seconds']:.1f} s = {rows / r['seconds']:.1f} clouds/s; whole process "
              f"{r['process_seconds']:.1f} s = {rows / r['process_seconds']:.1f} clouds/s"
              + (f"; {r['cpu_seconds']:.1f} CPU s = {rows / r['cpu_seconds']:.1f} clouds per "
                 "CPU s" if a.workers == 1 else ""))
    print(f"  speed-up {got['old']['seconds'] / got['new']['seconds']:.1f}x (measure), "
          f"{got['old']['process_seconds'] / got['new']['process_seconds']:.1f}x (process)"
          + (f", {got['old']['cpu_seconds'] / got['new']['cpu_seconds']:.1f}x (CPU time)"
             if a.workers == 1 else "") + "; b0, b1, b2 identical on every cloud")
    if a.olah:
        olah = os.path.join(work, "olah")
        _sweepnet("run", os.path.join(ROOT, "sweeps", "olah.toml"), "--out", olah, "--quiet",
                  "--set", f"train.seeds={a.olah_seeds}")
        # one worker: the whole measurement runs in one process, so its CPU time is all of
        # it, and the estimate for 2 cores holds whatever else the machine runs meanwhile
        r = run_side("new", a.base, olah, None, 1)
        scale = 16 / a.olah_seeds
        print(f"olah.toml, {a.olah_seeds} seed(s) of 16, one process: {r['rows']} clouds in "
              f"{r['seconds']:.0f} s, {r['cpu_seconds']:.0f} CPU s "
              f"({r['rows'] / r['cpu_seconds']:.1f} clouds per CPU s); all 16 seeds: "
              f"{r['rows'] * scale:.0f} clouds, about {r['cpu_seconds'] * scale / 60:.1f} CPU "
              f"min, {r['cpu_seconds'] * scale / 2 / 60:.1f} min on 2 cores")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
