"""``sweepnet bench``: engine throughput against per-network baselines, on this machine.

The workloads (:mod:`sweepnet.bench.workloads`): ``disk_annulus``, tanh, Adam, full batch of
512 points, at (width, depth) in ``SHAPES`` and network counts ``SIZES``. For each, the engine
trains a real sweep (``engine.run_sweep`` into a temporary folder: data, plan, compile,
training, evals, separation metrics and parquet writes all included) in a fresh subprocess, so
that compile time is cold and peak memory (``ru_maxrss``) is that workload's own
(:mod:`sweepnet.bench.workers`). Two baselines train a slice of the same work
(:mod:`sweepnet.bench.baselines`):

- ``loop``: what users write first, a Python loop over networks and steps calling a jitted
  optax step on a points-first ``flax.linen.Dense`` MLP;
- ``scan``: one jitted ``lax.scan`` of the whole training, called once per network.

The engine runs with what ``sweepnet run`` picks on this machine (the fused CPU kernel where
it measured faster, see :mod:`sweepnet.kernel.choice`); the full bench first builds and measures the
kernel if need be, and at one size per shape also trains with each gradient forced, so it
prints which gradient won and whether the default took it.

The machine bound is measured in the same run: the in-cache throughput of ``tanh`` and the
matmul peak, each over all devices at once; the workload's arithmetic (matmuls of forward,
backward and evals, Adam, and its ``tanh`` evaluations) divided by those rates is the least
time it can take. Figures are wall clock; other load on the machine lowers them, so compare
ratios taken in one run.

``python -m sweepnet.bench.suite JOB`` runs one job of the bench in a worker process
(:func:`main`).
"""

from __future__ import annotations

import json
import os
import sys

import jax

from sweepnet.bench.baselines import baseline_torch, best_of
from sweepnet.bench.gradients import prepare_kernel
from sweepnet.bench.report import gradient_line
from sweepnet.bench.workers import (
    baseline_subprocess,
    engine_run,
    engine_subprocess,
    sweep_run,
    torch_subprocess,
)
from sweepnet.bench.workloads import (
    BATCH,
    FULL,
    QUICK,
    REPEAT_N,
    machine_bound,
    min_seconds,
    workload_ops,
)
from sweepnet.core.words import plural
from sweepnet.kernel import build as kernel_build
from sweepnet.kernel import choice, verdict


def run(quick: bool = False, shapes=None, sizes=None, progress=None,
        steps: int | None = None) -> dict:
    """Run the bench; returns a JSON-able dict (see
    :func:`~sweepnet.bench.report.format_table` for the fields).

    ``quick``: tiny sizes and few steps (seconds; for tests). ``shapes``/``sizes``/``steps``
    override the workloads (a network's one-off costs, init, evals and the separation
    certificate, weigh less the more steps it trains); a shape may carry its own sizes,
    ``(width, depth, (n, ...))``. End-to-end ratios are taken at the reference size
    (``workloads.REF_N``, ``WIDE_REF_N``) where it is measured, else at the shape's largest.
    ``progress``: callable taking a line of text, or None.
    """
    cfg = dict(QUICK if quick else FULL)
    shapes = tuple(tuple(s) for s in (shapes or cfg["shapes"]))
    own = {s[:2]: tuple(s[2]) for s in shapes if len(s) > 2}
    shapes = tuple(s[:2] for s in shapes)
    given = tuple(sizes) if sizes else None
    steps, every, n_test = steps or cfg["steps"], cfg["eval_every"], cfg["n_test"]
    say = progress or (lambda _: None)
    load = os.getloadavg()[0]
    # built and measured before anything is timed (the full bench; a one-off per machine, as
    # `sweepnet devices --build` does it); the quick bench takes the machine as it is
    cpu = jax.default_backend() == "cpu" and choice.enabled()
    missing = kernel_build.library(start=False) is None or verdict.verdict() is None
    if cpu and not quick and missing:
        say("building the fused CPU kernel and timing it against XLA's gradient first")
        prepare_kernel(say=say)
    kernel = kernel_build.library(start=False) if cpu else None
    bound = machine_bound(0.1 if quick else 0.5)
    say(f"bound: {bound['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s matmul, "
        f"{bound['tanh_per_s'] / 1e9:.2f} Gtanh/s over {plural(bound['devices'], 'device')}")
    workloads = []
    for k, (width, depth) in enumerate(shapes):
        sizes = own.get((width, depth)) or given or (
            cfg["sizes"] if k == 0 else cfg.get("wide_sizes", cfg["sizes"]))
        ref_n = cfg["ref_n"] if k == 0 else cfg["wide_ref_n"]
        ref_n = ref_n if ref_n in sizes else max(sizes)
        ops = workload_ops(width, depth, steps, every, n_test)
        per_net_min = min_seconds(ops, bound)
        # quick mode measures in this process; the full bench in fresh, plain JAX processes
        # (measured here, after the bound's sharded programs, the loop ran up to 2x slower)
        loop, scan = (
            best_of(k, width, depth, steps, cfg[f"{k}_nets"], n_test, 1) if quick
            else baseline_subprocess(k, width, depth, steps, cfg[f"{k}_nets"], n_test)
            for k in ("loop", "scan"))
        # PyTorch's ensembling trains all ref_n networks at once (its rate grows with them)
        torch = (baseline_torch(width, depth, steps, ref_n, n_test, seconds=2.0) if quick
                 else torch_subprocess(width, depth, steps, ref_n, n_test))
        say(f"w{width} d{depth}: loop {loop['net_steps_per_s']:.0f}, scan "
            f"{scan['net_steps_per_s']:.0f}, torch.func "
            + (f"{torch['net_steps_per_s']:.0f} ({ref_n} networks)" if torch
               else "not installed") + " net-steps/s")
        rows = []
        for n in sizes:
            # quick mode trains in this process (no cold start per size: it must take seconds)
            # the full bench repeats the shorter runs (N <= REPEAT_N, seconds each) and the
            # reference size whose end-to-end ratios it reports, and keeps the fastest, as it
            # keeps the best of three for the baselines: noise only ever slows a run down
            e = (engine_run(width, depth, n, steps, every, n_test) if quick else
                 min((engine_subprocess(width, depth, n, steps, every, n_test)
                      for _ in range(2 if n <= REPEAT_N or n == ref_n else 1)),
                     key=lambda e: e["wall_s"] - e["compile_s"]))
            train_s = max(e["wall_s"] - e["compile_s"], 1e-9)
            rate = n * steps / train_s
            rows.append({"n": n, "gradient": e.get("gradient"), "wall_s": e["wall_s"],
                         "compile_s": e["compile_s"],
                         "compiles": e["compiles"], "net_steps_per_s": rate,
                         "net_steps_per_s_e2e": n * steps / e["wall_s"],
                         "vs_loop": rate / loop["net_steps_per_s"],
                         "vs_scan": rate / scan["net_steps_per_s"],
                         "bound_fraction": n * per_net_min / train_s,
                         "maxrss_mb": e["maxrss_mb"]})
            say(f"w{width} d{depth} n{n}: {rate:.0f} net-steps/s, compile "
                f"{e['compile_s']:.1f} s, {rows[-1]['bound_fraction']:.1%} of bound")
        gradients = None
        if kernel and not quick:  # the default against each gradient forced, at one size
            gradients = forced_gradients(rows, width, depth, steps, every, n_test,
                                   cfg["devices_n"] if k == 0 else cfg["wide_gradient_n"])
            say(gradient_line(gradients))
        ref = next(r for r in rows if r["n"] == ref_n)
        # each baseline's time for the reference work: its one-off plus its training steps
        e2e = lambda b, n=ref_n: b["compile_s"] + n * steps / b["net_steps_per_s"]
        workloads.append({
            "width": width, "depth": depth, "ops_per_net": ops, "min_s_per_net": per_net_min,
            "loop": loop, "scan": scan, "torch": torch, "sizes": rows, "ref_n": ref_n,
            "gradients": gradients,
            "e2e_vs_loop": e2e(loop) / ref["wall_s"], "e2e_vs_scan": e2e(scan) / ref["wall_s"],
            "e2e_vs_torch": e2e(torch) / ref["wall_s"] if torch else None,
            "spread": _spread([r["net_steps_per_s"] for r in rows if r["n"] >= 1024])})
    dn = cfg["devices_n"]
    w, d = shapes[0]
    one = engine_subprocess(w, d, dn, steps, every, n_test, devices=1)
    many_devices = max(2, len(jax.local_devices()))
    # quick mode: this process's own devices, so that one cold start is enough
    two = (engine_run(w, d, dn, steps, every, n_test) if quick else
           engine_subprocess(w, d, dn, steps, every, n_test, devices=many_devices))
    many_devices = two["devices"]
    rate = lambda e: dn * steps / max(e["wall_s"] - e["compile_s"], 1e-9)
    devices = {"width": w, "depth": d, "n": dn, "one": rate(one), "many": rate(two),
               "many_devices": many_devices, "speedup": rate(two) / rate(one)}
    say(f"devices: 1 → {rate(one):.0f}, {many_devices} → {rate(two):.0f} net-steps/s")
    return {"quick": quick, "steps": steps, "eval_every": every, "batch": BATCH,
            "n_test": n_test, "jax": jax.__version__, "backend": jax.default_backend(),
            "devices": len(jax.local_devices()), "cpus": os.cpu_count(),
            "load_before": load, "load_after": os.getloadavg()[0], "bound": bound,
            "gradient": result_gradient(workloads),
            "workloads": workloads, "device_scaling": devices}


def forced_gradients(rows, width, depth, steps, every, n_test, n) -> dict:
    """The default run at ``n`` networks (from ``rows``, or run now) against the same workload
    with each gradient forced: ``{"n", "default", "default_rate", "fused", "xla", "won"}``."""
    rate = lambda e: n * steps / max(e["wall_s"] - e["compile_s"], 1e-9)
    row = next((r for r in rows if r["n"] == n), None)
    if row is None:
        e = engine_subprocess(width, depth, n, steps, every, n_test)
        row = {"gradient": e["gradient"], "net_steps_per_s": rate(e)}
    forced = {g: rate(engine_subprocess(width, depth, n, steps, every, n_test, gradient=g))
              for g in ("fused", "xla")}
    return {"n": n, "default": row["gradient"], "default_rate": row["net_steps_per_s"],
            **forced, "won": max(forced, key=forced.get)}


def result_gradient(workloads: list[dict]) -> str:
    """The gradient ``sweepnet run`` picked in the bench's runs (``fused``, ``xla`` or both)."""
    used = {g for wl in workloads for r in wl["sizes"] for g in (r.get("gradient") or "xla")
            .split("+")}
    return "+".join(sorted(used))


def _spread(rates: list[float]) -> float | None:
    """``max/min - 1`` of throughputs (None with fewer than two)."""
    return max(rates) / min(rates) - 1 if len(rates) > 1 else None


def main(job: dict) -> None:
    """Run one ``job`` in this process and print its JSON answer (the worker's entry point):

    ``{"engine": [w, d, n, steps, every, n_test]}``, ``{"sweep": [spec_path, out]}``,
    ``{"baseline": [kind, w, d, steps, nets, n_test, repeats]}``,
    ``{"torch": [w, d, steps, nets, n_test]}``, ``{"env": true}`` (what a worker sees, for
    tests) or ``{"kernel": true}`` (the background kernel builder).
    """
    if "kernel" in job:  # in the background, beside the user's sweep: let the sweep go first
        os.nice(10)
        print(json.dumps(prepare_kernel(say=lambda m: print(m, flush=True))))
    elif "engine" in job:
        print(json.dumps(engine_run(*job["engine"])))
    elif "sweep" in job:
        print(json.dumps(sweep_run(*job["sweep"])))
    elif "env" in job:  # what a worker sees (tests)
        print(json.dumps({"devices": len(jax.local_devices()),
                          "xla_flags": os.environ.get("XLA_FLAGS", "")}))
    elif "torch" in job:
        print(json.dumps(baseline_torch(*job["torch"])))
    else:
        print(json.dumps(best_of(*job["baseline"])))


if __name__ == "__main__":
    # worker: python -m sweepnet.bench.suite '{"engine": [w, d, n, steps, every, n_test]}'
    main(json.loads(sys.argv[1]))
