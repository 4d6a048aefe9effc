"""Speed of ``sweepnet topology``: 256 networks x 8 layers x 2 classes x 1,000 points.

    python analysis/topology_bench.py [--networks 256] [--workers 2] [--out analysis/out]

The networks are random (tanh of a scaled orthogonal matrix, width 10, 6 hidden layers, so 8
layers with the input and the logits) on D-I; trained ones cost about the same per cloud.
As in ``topology.measure``, the input clouds are measured once (every network shares them),
so the pool computes ``networks x 7 x 2 + 2`` clouds. Times the homology only (the forward
passes take well under a second). Writes topology_bench.json to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def jobs(networks: int, width: int = 10, hidden: int = 6, n_points: int = 1000):
    from sweepnet.measure import topology

    x, y = topology.class_points("naitzat_d1", {}, n_points, 0.0, 0)
    scale = topology.calibrate("naitzat_d1", {}, n_points)
    rng = np.random.default_rng(0)
    out = []
    for net in range(networks):
        h, layers = x, [x]
        for i in range(hidden):
            q, _ = np.linalg.qr(rng.normal(size=(width, width)))
            w = 1.5 * q[:, : h.shape[1]] if i == 0 else 1.5 * q
            h = np.tanh(h @ w.T + 0.1 * rng.normal(size=width))
            layers.append(h)
        layers.append(h @ rng.normal(size=(width, 1)))
        clouds = [(i, c, a[y == c]) for i, a in enumerate(layers) for c in (0, 1)
                  if i > 0 or net == 0]
        out.append((f"net{net}", clouds, scale.k, scale.eps, 1))
    return out, scale


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=256)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=os.path.join(ROOT, "analysis", "out"))
    a = ap.parse_args(argv)
    from sweepnet.measure import topology

    work, scale = jobs(a.networks)
    n_clouds = sum(len(j[1]) for j in work)
    load_before = os.getloadavg()[0]
    t = time.perf_counter()
    clouds = [(k, eps, maxdim, x) for _, layers, k, eps, maxdim in work for _, _, x in layers]
    rows = topology.betti_of_clouds(clouds, a.workers)
    wall = time.perf_counter() - t
    result = {
        "networks": a.networks, "layers": 8, "classes": 2, "points": 1000,
        "k": scale.k, "eps": scale.eps, "workers": a.workers,
        "clouds_computed": n_clouds, "clouds_in_table": a.networks * 16,
        "seconds": round(wall, 1),
        "clouds_per_s": round(n_clouds / wall, 1),
        "table_rows_per_s": round(a.networks * 16 / wall, 1),
        "load_average_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
        "cpus": os.cpu_count(), "rows": len(rows),
    }
    os.makedirs(a.out, exist_ok=True)
    with open(os.path.join(a.out, "topology_bench.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
