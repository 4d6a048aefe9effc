"""``sweepnet`` command line. Parses arguments and calls the library; nothing else."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

from sweepnet.errors import SweepnetError


def _shard(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)/(\d+)", text)
    if not m or int(m[2]) < 1 or int(m[1]) >= int(m[2]):
        raise SweepnetError(f"--shard {text!r}: expected I/N with 0 <= I < N (e.g. 0/4)")
    return int(m[1]), int(m[2])


def _bytes(text: str) -> int:
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?", text.strip(), re.IGNORECASE)
    if not m or float(m[1]) <= 0:
        raise SweepnetError(f"--max-memory {text!r}: expected a size like 512M or 4G")
    return int(float(m[1]) * 1024 ** " KMGT".index(m[2].upper() or " "))


def _count(option: str, text: str | None) -> int | None:
    if text is None:
        return None
    if not re.fullmatch(r"\d+", text.strip()):
        raise SweepnetError(f"{option} {text!r}: expected a whole number")
    return int(text)


def cmd_run(a):
    from sweepnet import engine, spec

    shard = _shard(a.shard)
    max_memory = _bytes(a.max_memory) if a.max_memory else None
    if a.distributed:  # before anything touches a device
        engine.init_distributed(a.coordinator, _count("--num-processes", a.num_processes),
                                _count("--process-id", a.process_id))
    elif a.coordinator or a.num_processes is not None or a.process_id is not None:
        raise SweepnetError("--coordinator, --num-processes and --process-id need --distributed")
    s = spec.load(a.spec, a.set)
    summary = engine.run_sweep(s, a.out, shard=shard, fresh=a.fresh,
                               max_memory=max_memory, progress=not a.quiet)
    print(summary)
    print(f"results: {a.out or engine.default_out(s)}")


def cmd_plan(a):
    import jax

    from sweepnet import bench, plan, spec

    s = spec.load(a.spec, a.set)
    p = plan.make_plan(s, len(jax.local_devices()),
                       _bytes(a.max_memory) if a.max_memory else None)
    t = bench.throughput(refresh=a.calibrate)  # measured once per machine, then cached
    print(plan.describe(p, t["flops_per_s"], t["compile_s"], t["step_s"]))


def cmd_query(a):
    from sweepnet import query

    df = query.query(a.dir, a.sql)
    sys.stdout.write(query.format_frame(df, a.format).rstrip("\n") + "\n")


def _save(chart, out: str):
    from sweepnet import charts

    charts.save(chart, out)
    print(f"wrote {out}")


def cmd_chart(a):
    from sweepnet import charts

    kw = {k: v for k, v in (("x", a.x), ("y", a.y), ("metric", a.metric), ("color", a.color),
                            ("column", a.column), ("row", a.row)) if v is not None}
    chart = charts.from_results(a.dir, a.kind, **kw)
    _save(chart, a.out or os.path.join(a.dir, f"{a.kind}.html"))


def cmd_datasets(a):
    from sweepnet import data

    if a.name is None:
        for name, ds in data.DATASETS.items():
            params = ", ".join(f"{k}={p.default}" for k, p in ds.params.items())
            print(f"{name:16} {ds.doc}" + (f"  [{params}]" if params else ""))
        return
    if a.name not in data.DATASETS:
        raise SweepnetError(f"unknown dataset {a.name!r} (known: {', '.join(data.DATASETS)})")
    from sweepnet import charts, spec

    params = spec.dataset_params(a.name, a.set)
    _save(charts.dataset(a.name, n=a.n, params=params), a.out or f"{a.name}.png")


def cmd_inspect(a):
    from sweepnet import inspect as inspect_lib

    _save(inspect_lib.inspect(a.dir, a.run_id), a.out or f"{a.run_id}.png")


def cmd_topology(a):
    from sweepnet import topology

    df = topology.measure(a.dir, a.where, n_points=a.points, k=a.k, eps=a.eps,
                          workers=a.workers, progress=not a.quiet)
    print(topology.summary(df))
    print(f"wrote {os.path.join(a.dir, topology.PARQUET)}")


def cmd_report(a):
    from sweepnet import report

    out = a.out or os.path.join(a.dir, "report.html")
    report.write_report(a.dir, out)
    print(f"wrote {out}")


def cmd_bench(a):
    from sweepnet import bench

    result = bench.run(quick=a.quick)
    print(json.dumps(result, indent=1) if a.json else bench.format_table(result))


def cmd_devices(a):
    import jax

    from sweepnet import devices

    print(f"backend: {jax.default_backend()}  processes: {jax.process_count()}")
    for d in devices.describe():
        print(f"  device {d['id']}: {d['platform']} ({d['kind']}), process {d['process']}")
    if jax.default_backend() == "cpu":
        from sweepnet import fused

        state = (fused.library() or "unavailable") if fused.enabled() else "off (SWEEPNET_FUSED=0)"
        print(f"fused CPU gradient: {state}")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweepnet", description=__doc__.split("\n")[0] if __doc__
                                else None)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    r = sub.add_parser("run", help="train every network of a sweep spec")
    r.add_argument("spec", help="sweep spec (TOML)")
    r.add_argument("--out", help="results folder (default results/<name>/)")
    r.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec key, e.g. model.width=[2,3] (repeatable)")
    r.add_argument("--shard", default="0/1", metavar="I/N", help="train shard I of N only")
    r.add_argument("--fresh", action="store_true", help="discard existing results and start over")
    r.add_argument("--max-memory", help="memory per call, e.g. 2G (sets the chunk size)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--distributed", action="store_true",
                   help="join a multi-process JAX job (jax.distributed; detects Slurm, Open MPI, "
                   "TPU); each process trains its share on its local devices")
    r.add_argument("--coordinator", metavar="HOST:PORT", help="with --distributed: process 0's "
                   "address")
    r.add_argument("--num-processes", help="with --distributed: number of processes")
    r.add_argument("--process-id", help="with --distributed: this process, 0..N-1")
    r.set_defaults(fn=cmd_run)

    pl = sub.add_parser("plan", help="dry run: buckets, compiles, padding, memory, time")
    pl.add_argument("spec")
    pl.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    pl.add_argument("--max-memory")
    pl.add_argument("--calibrate", action="store_true",
                    help="re-measure this machine's throughput (cached in ~/.cache/sweepnet)")
    pl.set_defaults(fn=cmd_plan)

    q = sub.add_parser("query", help="SQL over results (views: runs, curves, topology)")
    q.add_argument("dir")
    q.add_argument("sql")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table")
    q.set_defaults(fn=cmd_query)

    c = sub.add_parser("chart", help="phase diagram and other charts of a results folder")
    c.add_argument("dir")
    c.add_argument("--kind", choices=("phase", "curves", "minwidth", "boundary"), default="phase")
    c.add_argument("--out", help="FILE.html, .png or .svg (default DIR/<kind>.html)")
    c.add_argument("--x", help="column on the x axis (phase: width)")
    c.add_argument("--y", help="column on the y axis (phase: depth)")
    c.add_argument("--metric", help="what colours the cells (phase: separated share)")
    c.add_argument("--column", help="facet columns by this field (phase: activation)")
    c.add_argument("--row", help="facet rows by this field (phase: any other swept axis)")
    c.add_argument("--color", help="curves only: one line per value of this field (width)")
    c.set_defaults(fn=cmd_chart)

    d = sub.add_parser("datasets", help="list the dataset registry, or draw one dataset")
    d.add_argument("name", nargs="?")
    d.add_argument("--out", help="FILE.png, .svg or .html (default NAME.png)")
    d.add_argument("--n", type=int, default=1024, help="points to draw")
    d.add_argument("--set", action="append", default=[], metavar="PARAM=VALUE",
                   help="dataset parameter, e.g. turns=2 or path=points.csv (repeatable)")
    d.set_defaults(fn=cmd_datasets)

    i = sub.add_parser("inspect", help="decision boundary and layer pictures of one network")
    i.add_argument("dir")
    i.add_argument("run_id")
    i.add_argument("--out", help="FILE.png, .svg or .html (default RUN_ID.png)")
    i.set_defaults(fn=cmd_inspect)

    t = sub.add_parser("topology", help="Betti numbers of each class after each layer")
    t.add_argument("dir")
    t.add_argument("--where", help="SQL condition on the runs view, e.g. \"width = 3\"")
    t.add_argument("--points", type=int, help="points per class (default 1000; 3000 for D-III)")
    t.add_argument("--k", type=int, help="neighbours of the kNN graph (default: calibrated)")
    t.add_argument("--eps", type=int, help="Vietoris-Rips scale in hops (default: calibrated)")
    t.add_argument("--workers", type=int, help="processes (default: one per core)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(fn=cmd_topology)

    rp = sub.add_parser("report", help="one HTML page: phase diagram, curves, networks, spec")
    rp.add_argument("dir")
    rp.add_argument("--out", help="FILE.html (default DIR/report.html)")
    rp.set_defaults(fn=cmd_report)

    b = sub.add_parser("bench", help="throughput against per-network baselines")
    b.add_argument("--quick", action="store_true", help="small workloads (seconds)")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.set_defaults(fn=cmd_bench)

    dv = sub.add_parser("devices", help="what JAX sees")
    dv.set_defaults(fn=cmd_devices)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except SweepnetError as e:
        print(f"sweepnet: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("sweepnet: interrupted (finished parts are kept; re-run to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
