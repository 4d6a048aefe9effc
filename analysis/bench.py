"""Run the full `sweepnet bench` and write analysis/out/bench.json and analysis/out/bench.md.

Usage: python analysis/bench.py [--quick] [--shapes 3x2,16x4] [--sizes 1024,65536] [--steps 1000]
                                [--rerun sweeps/olah.toml] [--out DIR]
A shape may carry its own sizes: ``--shapes 3x2@16384,16x4@2048`` (``@N+N`` for several).
The PyTorch ``torch.func`` baseline runs where torch is installed (``pip install torch``).
(the full bench takes tens of minutes on a 2-core CPU; its progress goes to stderr).
``--rerun SPEC`` also trains SPEC cold (empty caches) and then again warm, and reports the wall
times, compile counts and the warm run's share of the cold compile time (olah: ~10 minutes).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from sweepnet.bench import report, suite, workers, workloads

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "out")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--shapes", help="comma-separated WIDTHxDEPTH[@N+N...], e.g. 3x2,16x4@2048")
    p.add_argument("--sizes", help="comma-separated network counts")
    p.add_argument("--steps", type=int, help="training steps per network (default 1000)")
    p.add_argument("--rerun", metavar="SPEC", help="also time a cold run and a warm re-run")
    p.add_argument("--no-bench", action="store_true", help="only the --rerun measurement")
    p.add_argument("--out", default=OUT)
    a = p.parse_args(argv)
    shapes = workloads.parse_shapes(a.shapes) if a.shapes else None
    sizes = [int(n) for n in a.sizes.split(",")] if a.sizes else None
    os.makedirs(a.out, exist_ok=True)
    if a.rerun:
        again = workers.rerun(a.rerun)
        with open(os.path.join(a.out, "rerun.json"), "w") as f:
            json.dump(again, f, indent=1)
        with open(os.path.join(a.out, "rerun.md"), "w") as f:
            f.write("# sweepnet: cold run and warm re-run\n\n```\n" + report.format_rerun(again)
                    + "\n```\n")
        print(report.format_rerun(again))
    if a.no_bench:
        return 0
    result = suite.run(quick=a.quick, shapes=shapes, sizes=sizes, steps=a.steps,
                       progress=lambda line: print(line, file=sys.stderr, flush=True))
    with open(os.path.join(a.out, "bench.json"), "w") as f:
        json.dump(result, f, indent=1)
    with open(os.path.join(a.out, "bench.md"), "w") as f:
        f.write("# sweepnet bench\n\n```\n" + report.format_table(result) + "\n```\n")
    print(report.format_table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
