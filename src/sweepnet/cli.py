"""``sweepnet`` command line. Parses arguments and calls the library; nothing else."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import textwrap

from sweepnet.core.errors import Interrupted, SweepnetError


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
    from sweepnet.engine import distributed
    from sweepnet.engine import run as engine
    from sweepnet.sweep import spec

    shard = _shard(a.shard)
    max_memory = _bytes(a.max_memory) if a.max_memory else None
    if a.distributed:  # before anything touches a device
        distributed.init_distributed(a.coordinator, _count("--num-processes", a.num_processes),
                                _count("--process-id", a.process_id))
    elif a.coordinator or a.num_processes is not None or a.process_id is not None:
        raise SweepnetError("--coordinator, --num-processes and --process-id need --distributed")
    s = spec.load(a.spec, a.set)
    summary = engine.run_sweep(s, a.out, shard=shard, fresh=a.fresh,
                               max_memory=max_memory, progress=not a.quiet)
    print(summary)
    print(f"results: {a.out or engine.default_out(s)}")


def cmd_plan(a):
    from sweepnet.engine import adaptive, cost, machine, plan, programs
    from sweepnet.kernel import choice
    from sweepnet.sweep import data, spec

    s = spec.load(a.spec, a.set)
    m = programs.mesh()
    n, memory, where = m.devices.size, _bytes(a.max_memory) if a.max_memory else None, \
        programs.platform(m)
    # calls are cut as the run will cut them: by platform, and by the gradient it would use
    kernel = where == "cpu" and all(choice.use(b.static, m, start=False)
                                    for b in plan.make_plan(s, n, memory).buckets)
    p = plan.make_plan(s, n, memory, platform=where, fused=kernel)
    # recorded runs, else a short measurement (said on stderr), cached per machine
    t = machine.throughput(refresh=a.calibrate, results=a.results, say=_say)
    notes, later = data.file_warnings(r.config for r in p.runs), None  # short, far from scale
    if where == "cpu" and not kernel and choice.will_build() and any(
            choice.covers(b.static) for b in p.buckets):
        # a first run trains with XLA's gradient while the kernel builds, then switches to it
        later = plan.make_plan(s, n, memory, platform=where, fused=True)
        notes.append("the fused CPU kernel is not built and measured here yet: a first run does "
                     "it in the background and switches to it when ready (the kernel's work is "
                     "estimated at XLA's rate for real shapes until then)")
    print(cost.describe(p, t["flops_per_s"], t["compile_s"], t["step_s"], load_s=t.get("load_s"),
                        overhead_s=t.get("overhead_s", 0.0) + machine.STARTUP_S,
                        source=t["source"], notes=notes, padded=not kernel, kernel_plan=later,
                        build_s=choice.FIRST_BUILD_S, contention=build_contention()))
    if adaptive.searching(s):  # the search decides how many: a range, the estimate's at most
        few, most = adaptive.Adaptive(s, p.runs).search.estimate()
        print(f"adaptive search (search.mode = \"boundary\"): it trains between {few:,} and "
              f"{most:,} of the {len(p.runs):,} networks (seeds where the boundary is in doubt); "
              "the time above is the whole grid's, so at most that"
              + ("; train.stop = \"separated\" stops each network at its first separated "
                 "evaluation" if s.tree["train"].get("stop") == "separated" else ""))


def build_contention() -> float:
    """How much slower a sweep runs beside the kernel's background build: the build takes one
    of the CPU's cores (2x on 2 cores or fewer, 1.33x on 4)."""
    cpus = os.cpu_count() or 1
    return 2.0 if cpus <= 2 else cpus / (cpus - 1)


def _say(message: str) -> None:
    print(f"sweepnet: {message}", file=sys.stderr, flush=True)


def cmd_query(a):
    from sweepnet.store import query

    df = query.query(a.dir, a.sql, all_runs=a.all, threshold=a.threshold,
                     confidence=a.confidence)
    sys.stdout.write(query.format_frame(df, a.format).rstrip("\n") + "\n")


def _save(chart, out: str):
    from sweepnet.views import charts

    charts.save(chart, out)
    print(f"wrote {out}")


def cmd_chart(a):
    from sweepnet.views import charts

    kw = {k: v for k, v in (("x", a.x), ("y", a.y), ("metric", a.metric), ("color", a.color),
                            ("column", a.column), ("row", a.row)) if v is not None}
    if a.compare:
        if a.dir is not None:
            raise SweepnetError("chart: give either DIR or --compare A B, not both")
        _save(*_compare(a, kw))
        return
    if a.dir is None:
        raise SweepnetError("chart: give a results folder (sweepnet chart DIR), or --compare A B")
    chart = charts.from_results(a.dir, a.kind, **kw)
    _save(chart, a.out or os.path.join(a.dir, f"{a.kind}.html"))


def _compare(a, kw):
    from sweepnet.store import query, results
    from sweepnet.views import charts

    if a.kind != "phase":
        raise SweepnetError(f"--compare draws phase diagrams only (not --kind {a.kind})")
    if "color" in kw:
        raise SweepnetError("--color is not an option of --compare (it takes --x --y --metric "
                            "--column --row)")
    first, second = a.compare
    names = query.labels([results.stored_spec(d).name for d in (first, second)])
    chart = charts.compare_phase(results.load(first), results.load(second), names=names, **kw)
    return chart, a.out or os.path.join(second, f"compare-{names[0]}.html")


def cmd_datasets(a):
    from sweepnet.sweep import data

    if a.name is None:
        for name, ds in data.DATASETS.items():
            params = ", ".join(f"{k}={p.default}" for k, p in ds.params.items())
            print(f"{name:16} {ds.doc}" + (f"  [{params}]" if params else ""))
        return
    from sweepnet.sweep import spec
    from sweepnet.views import charts

    params = spec.dataset_params(a.name, a.set)  # an unknown name: "did you mean"
    _save(charts.dataset(a.name, n=a.n, params=params), a.out or f"{a.name}.png")


def cmd_inspect(a):
    from sweepnet.views import network as inspect_lib

    if a.animate:  # retrains the network: an HTML page with a step slider, and a GIF
        from sweepnet.views import animate

        print("wrote " + " and ".join(animate.write(a.dir, a.run_id, a.out or os.path.join(
            a.dir, f"{a.run_id}-training.html"))))
        return
    out = a.out or os.path.join(a.dir, f"inspect-{a.run_id}.png")
    _save(inspect_lib.inspect(a.dir, a.run_id), out)


def cmd_topology(a):
    from sweepnet.measure import topology
    from sweepnet.store import results

    df = topology.measure(a.dir, a.where, n_points=a.points, k=a.k, eps=a.eps,
                          workers=a.workers, progress=not a.quiet,
                          say=lambda line: print(line, file=sys.stderr, flush=True),
                          cloud=a.cloud, split=a.split, grid=a.grid)
    activation = results.load(a.dir)[["run_id", "activation"]]
    print(topology.summary(df))
    print("mean Betti numbers by kind of layer and activation:")
    print(topology.by_kind(df.merge(activation, on="run_id")).to_string(
        index=False, float_format=lambda v: f"{v:.2f}"))
    print(f"wrote {results.topology_path(a.dir)}")


def cmd_report(a):
    from sweepnet.views import report

    out = a.out or os.path.join(a.dir, "report.html")
    report.write_report(a.dir, out, sample=a.sample)
    print(f"wrote {out}")


def cmd_bench(a):
    from sweepnet.bench import report, suite, workloads

    try:
        shapes = workloads.parse_shapes(a.shapes) if a.shapes else None
    except ValueError as e:
        raise SweepnetError(f"--shapes: {e}") from None
    result = suite.run(quick=a.quick, shapes=shapes, steps=a.steps,
                       progress=None if a.json else lambda line: print(line, file=sys.stderr,
                                                                         flush=True))
    print(json.dumps(result, indent=1) if a.json else report.format_table(result))


def cmd_devices(a):
    import jax

    from sweepnet.core import devices

    print(f"backend: {jax.default_backend()}  processes: {jax.process_count()}")
    for d in devices.describe():
        print(f"  device {d['id']}: {d['platform']} ({d['kind']}), process {d['process']}")
    if jax.default_backend() != "cpu":
        return
    from sweepnet.bench import gradients
    from sweepnet.kernel import build, choice, verdict

    if a.build:  # in the foreground, then measured against XLA's gradient
        if gradients.prepare_kernel(say=lambda m: print(f"  measured {m}", flush=True)) is None:
            raise SweepnetError("the fused CPU gradient kernel did not build (see above)")
    for line in devices.kernel_lines(choice.mode(), build.library(start=False), verdict.verdict(),
                                     gradients.format_verdict):
        print(line)


DESCRIPTION = """\
Train thousands of tiny neural networks at once (JAX) and map where they can and cannot
separate classes: sweep widths, depths, activations, optimizers, seeds and datasets from a
TOML spec, query the results with SQL, and draw phase diagrams (width x depth, coloured by
the share of seeds that separated)."""

EPILOG = """\
examples:
  sweepnet run sweeps/quick.toml                  # 32 networks, seconds; -> results/quick/
  sweepnet query results/quick "select width, avg(separated::int) from runs group by 1"
  sweepnet chart results/quick                    # -> results/quick/phase.html
  sweepnet report results/quick                   # -> results/quick/report.html

Outputs: a command that reads a results folder writes into that folder unless --out says
otherwise (chart, report, inspect; chart --compare A B writes into B). Only `datasets NAME`,
which reads no folder, writes into the current directory.
Run `sweepnet COMMAND --help` for a command's options and examples."""


def _sub(sub, name: str, help: str, examples: str, description: str | None = None):
    text = textwrap.fill(description or help[0].upper() + help[1:] + ".", width=88)
    return sub.add_parser(name, help=help, description=text, epilog="examples:\n" + examples,
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def _set_option(p, what: str = "override a spec key; the value is TOML, a bare word is a "
                "string (repeatable), e.g. --set model.width=[2,3] --set data.dataset=xor"):
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=what)


def parser() -> argparse.ArgumentParser:
    from sweepnet.core.host import __version__

    p = argparse.ArgumentParser(prog="sweepnet", description=DESCRIPTION, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"sweepnet {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND",
                           help="one of these (sweepnet COMMAND --help for its options)")

    r = _sub(sub, "run", "train every network of a sweep spec", """\
  sweepnet run sweeps/quick.toml                       # -> results/quick/
  sweepnet run sweeps/quick.toml --set train.seeds=8   # grow: trains only the new seeds
  sweepnet run sweeps/olah.toml --out /data/olah --max-memory 4G
  sweepnet run sweeps/olah.toml --shard 3/8            # task 3 of a job array of 8""",
             description="Train every network of a sweep spec into a results folder. Runs "
             "already in the folder are skipped (resume); a changed spec trains only the runs "
             "it lacks (grow) and refuses a change that would make finished runs wrong.")
    r.add_argument("spec", help="sweep spec (TOML), e.g. sweeps/quick.toml")
    r.add_argument("--out", metavar="DIR", help="results folder (default results/<spec name>/)")
    _set_option(r)
    r.add_argument("--shard", default="0/1", metavar="I/N",
                   help="train shard I of N only (job arrays; default 0/1), e.g. --shard 0/4")
    r.add_argument("--fresh", action="store_true",
                   help="discard the folder's existing results and start over")
    r.add_argument("--max-memory", metavar="SIZE",
                   help="memory per call, which sets the chunk size, e.g. 512M or 2G")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.add_argument("--distributed", action="store_true",
                   help="join a multi-process JAX job (jax.distributed; detects Slurm, Open MPI, "
                   "TPU); each process trains its share on its local devices")
    r.add_argument("--coordinator", metavar="HOST:PORT", help="with --distributed: process 0's "
                   "address, e.g. node0:1234")
    r.add_argument("--num-processes", metavar="P",
                   help="with --distributed: number of processes, e.g. 4")
    r.add_argument("--process-id", metavar="I", help="with --distributed: this process, 0..P-1")
    r.set_defaults(fn=cmd_run)

    pl = _sub(sub, "plan", "dry run: buckets, compiles, padding, memory, time", """\
  sweepnet plan sweeps/olah.toml
  sweepnet plan sweeps/olah.toml --set model.width=[2,3] --max-memory 1G""")
    pl.add_argument("spec", help="sweep spec (TOML), e.g. sweeps/olah.toml")
    _set_option(pl)
    pl.add_argument("--max-memory", metavar="SIZE", help="memory per call, e.g. 2G")
    pl.add_argument("--calibrate", action="store_true",
                    help="re-measure this machine's throughput (cached in ~/.cache/sweepnet)")
    pl.add_argument("--results", default="results", metavar="DIR",
                    help="folder of results folders whose recorded runs calibrate the estimate "
                    "(default results/)")
    pl.set_defaults(fn=cmd_plan)

    q = _sub(sub, "query", "SQL over results (views: runs, curves, cells, topology)", """\
  sweepnet query results/quick "select width, depth, avg(separated::int) as share
                                from runs group by all order by all"
  sweepnet query results/quick "select width, depth, n, share, low, high, verdict from cells"
  sweepnet query results/quick "select * from curves where step = 0" --format csv
  sweepnet query results/a results/b "select sweep, avg(test_acc) from runs group by sweep"
""", description="DuckDB SQL over one or more results folders. The views are `runs` (one row "
             "per network) and `curves` (one row per network and eval step). Over several "
             "folders they hold all of them, with a `sweep` column naming each. `cells` has one "
             "row per cell (a configuration, all its seeds): n, separated, share, its exact "
             "(Clopper-Pearson) interval low-high, and a verdict at --threshold: above, below or "
             "boundary (undecided). `topology` holds the Betti numbers `sweepnet topology` "
             "measured.")
    q.add_argument("dir", nargs="+", metavar="DIR", help="results folder(s), e.g. results/quick")
    q.add_argument("sql", metavar="SQL", help="the query, e.g. \"select count(*) from runs\"")
    q.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="output format (default table)")
    q.add_argument("--all", action="store_true",
                   help="also the runs a changed spec no longer holds (column in_spec)")
    q.add_argument("--threshold", type=float, default=0.5,
                   help="the share the cells view's verdict is about (default 0.5)")
    q.add_argument("--confidence", type=float, default=0.95,
                   help="the cells view's interval level (default 0.95)")
    q.set_defaults(fn=cmd_query)

    c = _sub(sub, "chart", "phase diagram and other charts of a results folder", """\
  sweepnet chart results/quick                          # -> results/quick/phase.html
  sweepnet chart results/quick --kind curves --out curves.png
  sweepnet chart results/olah --metric test_acc --column activation
  sweepnet chart --compare results/adam results/sgd     # -> results/sgd/compare-adam.html""")
    c.add_argument("dir", nargs="?", help="results folder, e.g. results/quick")
    c.add_argument("--kind", choices=("phase", "curves", "minwidth", "boundary"),
                   default="phase", help="which chart (default phase)")
    c.add_argument("--compare", nargs=2, metavar=("A", "B"),
                   help="difference of two folders' phase diagrams (B - A, per cell)")
    c.add_argument("--out", metavar="FILE",
                   help="FILE.html, .png or .svg (default DIR/<kind>.html; with --compare, "
                   "B/compare-<A's sweep>.html)")
    c.add_argument("--x", help="column on the x axis (phase: width), e.g. --x learning_rate")
    c.add_argument("--y", help="column on the y axis (phase: depth)")
    c.add_argument("--metric",
                   help="what colours the cells (phase: separated share), e.g. --metric test_acc")
    c.add_argument("--column", help="facet columns by this field (phase: activation)")
    c.add_argument("--row", help="facet rows by this field (phase: any other swept axis)")
    c.add_argument("--color", help="curves only: one line per value of this field (width)")
    c.set_defaults(fn=cmd_chart)

    d = _sub(sub, "datasets", "list the dataset registry, or draw one dataset", """\
  sweepnet datasets                                     # the registry and its parameters
  sweepnet datasets two_spirals --set turns=2           # -> two_spirals.png
  sweepnet datasets file --set path=points.csv --out points.svg""")
    d.add_argument("name", nargs="?", help="dataset to draw, e.g. disk_annulus")
    d.add_argument("--out", metavar="FILE",
                   help="FILE.png, .svg or .html (default NAME.png in the current folder)")
    d.add_argument("--n", type=int, default=1024, help="points to draw (default 1024)")
    _set_option(d, "dataset parameter, e.g. turns=2 or path=points.csv (repeatable)")
    d.set_defaults(fn=cmd_datasets)

    i = _sub(sub, "inspect", "decision boundary and layer pictures of one network", """\
  sweepnet query results/quick "select run_id from runs where width = 3 limit 1"
  sweepnet inspect results/quick RUN_ID                 # -> results/quick/inspect-RUN_ID.png
  sweepnet inspect results/quick RUN_ID --out net.svg
  sweepnet inspect results/quick RUN_ID --animate       # -> RUN_ID-training.html and .gif""")
    i.add_argument("dir", help="results folder, e.g. results/quick")
    i.add_argument("run_id", help="a run_id of its runs table (sweepnet query DIR ...)")
    i.add_argument("--out", metavar="FILE",
                   help="FILE.png, .svg or .html (default DIR/inspect-RUN_ID.png)")
    i.add_argument("--animate", action="store_true",
                   help="retrain the network alone and draw it at every eval step: FILE.html "
                   "with a step slider and FILE.gif (default DIR/RUN_ID-training.html)")
    i.set_defaults(fn=cmd_inspect)

    t = _sub(sub, "topology", "Betti numbers of each class after each layer", """\
  sweepnet topology results/naitzat-d1                  # -> results/naitzat-d1/topology.parquet
  sweepnet topology results/olah --where "width = 3 and depth <= 2" --points 500
  sweepnet topology results/naitzat-d1 --cloud grid --split predicted   # the paper's D-I
  sweepnet query results/naitzat-d1 "select layer, avg(b0) from topology group by 1 order by 1"
""", description="Rebuild each selected network from its stored parameters, push each class's "
              "points through it and measure Betti numbers b0, b1 (b2 for 3-D data) at the "
              "input, after every hidden layer and at the logit (Naitzat et al. 2020: kNN "
              "graph, hop distance, Vietoris-Rips at one scale; ripser). Nothing is retrained.")
    t.add_argument("dir", help="results folder, e.g. results/naitzat-d1")
    t.add_argument("--where", help="SQL condition on the runs view, e.g. \"width = 3\"")
    t.add_argument("--points", type=int, help="points per class (default 1000; 3000 for D-III); "
                   "a larger class cloud is a fixed random subsample")
    t.add_argument("--cloud", choices=("train", "test", "grid"), default="train",
                   help="the points: the training points (default), a test draw, or a grid "
                   "over the data's square (2-D data; split by predicted class)")
    t.add_argument("--split", choices=("true", "predicted"), default="true",
                   help="a class's cloud: the points of that label (default) or those the "
                   "network predicts as that class (the input is then the network's own)")
    t.add_argument("--grid", type=int, help="grid points a side with --cloud grid (default 88, "
                   "as the paper)")
    t.add_argument("--k", type=int, help="neighbours of the kNN graph (default: calibrated)")
    t.add_argument("--eps", type=int, help="Vietoris-Rips scale in hops (default: calibrated)")
    t.add_argument("--workers", type=int, help="processes (default: one per core)")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(fn=cmd_topology)

    rp = _sub(sub, "report", "one HTML page: phase diagram, curves, networks, spec", """\
  sweepnet report results/quick                         # -> results/quick/report.html
  sweepnet report results/olah --out olah.html""")
    rp.add_argument("dir", help="results folder, e.g. results/quick")
    rp.add_argument("--out", metavar="FILE", help="FILE.html (default DIR/report.html)")
    rp.add_argument("--sample", type=int, default=64, metavar="N",
                    help="seeds of a clicked cell the page shows at most, its extremes among "
                    "them (default 64; the phase diagram counts every network)")
    rp.set_defaults(fn=cmd_report)

    b = _sub(sub, "bench", "throughput against per-network baselines", """\
  sweepnet bench --quick
  sweepnet bench --shapes 3x2@16384,16x4@2048
  sweepnet bench --json > bench.json""")
    b.add_argument("--quick", action="store_true", help="small workloads (seconds)")
    b.add_argument("--shapes", help="WIDTHxDEPTH[@N+N...], comma-separated (default: "
                   "3x2, 8x4, 16x4 at several sizes)")
    b.add_argument("--steps", type=int, help="training steps per network (default 1000)")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.set_defaults(fn=cmd_bench)

    dv = _sub(sub, "devices", "what JAX sees, and the CPU kernel's measured verdict", """\
  sweepnet devices
  sweepnet devices --build          # build the CPU kernel now and time it against XLA
  JAX_PLATFORMS=cpu sweepnet devices""")
    dv.add_argument("--build", action="store_true",
                    help="build the fused CPU gradient kernel now (else the first sweep builds it "
                    "in the background) and time it against XLA's gradient")
    dv.set_defaults(fn=cmd_devices)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        args.fn(args)
    except SweepnetError as e:
        print(f"sweepnet: error: {e}", file=sys.stderr)
        return 2
    except Interrupted as e:  # a sweep stopped by SIGINT or SIGTERM, its finished parts kept
        print(f"sweepnet: {e.message}", file=sys.stderr, flush=True)
        if argv is None:  # this process is the command: leave now, as XLA would first finish
            sys.stdout.flush()  # the calls in flight (the parts and manifest are synced)
            from sweepnet.engine import distributed  # (imported already: the run raised this)

            try:
                distributed.leave()  # under --distributed: when every process has stopped
            finally:
                os._exit(e.code)
        return e.code
    except KeyboardInterrupt:
        print("sweepnet: interrupted (finished parts are kept; re-run to resume)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
