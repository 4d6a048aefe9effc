"""Engine runs timed for the bench, each in a fresh Python process where it must be.

The engine trains a real sweep (``engine.run_sweep`` into a temporary folder: data, plan,
compile, training, evals, separation metrics and parquet writes all included) in a fresh
subprocess, so that compile time is cold and peak memory (``ru_maxrss``) is that workload's own
(:func:`engine_subprocess`); the baselines run in fresh, plain JAX processes
(:func:`baseline_subprocess`, :func:`torch_subprocess`). :func:`worker` starts such a process:
``python -m sweepnet.bench.suite JOB`` (see :func:`sweepnet.bench.suite.main`).
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile

import jax

from sweepnet.engine import run as engine
from sweepnet.engine.machine import workload_spec
from sweepnet.store.results import read_manifest
from sweepnet.sweep import spec


def engine_run(width: int, depth: int, n: int, steps: int, eval_every: int, n_test: int,
               cache: bool = False) -> dict:
    """Train an ``n``-network sweep of one shape with the engine; time it.

    Returns ``{"wall_s", "compile_s", "compiles", "devices", "maxrss_mb", "gradient"}``
    (``maxrss_mb`` is this process's peak so far; ``gradient`` the one the run chose, as its
    manifest records it).
    """
    s = spec.loads(workload_spec(width, depth, n, steps, eval_every, n_test))
    with tempfile.TemporaryDirectory(prefix="sweepnet-bench-") as out:
        summary = engine.run_sweep(s, out, fresh=True, progress=False, cache=cache)
        used = {b.get("gradient", "xla") for b in read_manifest(out)["buckets"].values()}
    if summary.trained != n:
        raise RuntimeError(f"bench: trained {summary.trained} of {n} networks")
    return {"wall_s": summary.wall_s, "compile_s": summary.compile_s,
            "compiles": summary.compiles, "devices": len(jax.local_devices()),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "gradient": "+".join(sorted(used))}


def worker(job: dict, devices: int | None = None, plain: bool = False,
           env: dict | None = None) -> dict:
    """Run ``job`` (see :func:`sweepnet.bench.suite.main`) in a fresh Python; returns its JSON
    answer.

    ``devices``: the host device count there. ``plain``: JAX's own CPU setup, as a user's script
    has it (one device, XLA's default vector width), for the baselines. ``env``: more variables.
    """
    env = {**os.environ, **(env or {})}
    # the device count is fixed when jax starts: drop any inherited flag, let sweepnet set it
    flags = re.sub(r"--xla_force_host_platform_device_count=\S+", "", env.get("XLA_FLAGS", ""))
    if plain:
        flags = re.sub(r"--xla_cpu_prefer_vector_width=\S+", "", flags)
        flags += " --xla_cpu_prefer_vector_width=256"  # XLA's default; sweepnet leaves it
        devices = 1
    env["XLA_FLAGS"] = flags.strip()
    if devices is not None:
        env["SWEEPNET_HOST_DEVICES"] = str(devices)
    proc = subprocess.run([sys.executable, "-m", "sweepnet.bench.suite", json.dumps(job)],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def engine_subprocess(width: int, depth: int, n: int, steps: int, eval_every: int, n_test: int,
                      devices: int | None = None, gradient: str | None = None) -> dict:
    """:func:`engine_run` in a fresh Python (cold compile, own peak memory, own device count).
    ``gradient``: None for the shipped default (what ``sweepnet run`` picks here), ``"fused"``
    or ``"xla"`` to force one (``SWEEPNET_FUSED=1`` or ``0``)."""
    env = {"SWEEPNET_FUSED": {"fused": "1", "xla": "0"}[gradient]} if gradient else {}
    env["SWEEPNET_KERNEL_BUILD"] = "0"  # the bench builds it first, or not at all
    return worker({"engine": [width, depth, n, steps, eval_every, n_test]}, devices, env=env)


def rerun(spec_path: str) -> dict:
    """Train ``spec_path`` twice, each time in a fresh process with the same, initially empty
    cache folder (``SWEEPNET_CACHE``) and a new results folder: a cold run, then a warm re-run.

    Returns ``{"cold": ..., "warm": ..., "warm_compile_share"}``; each run gives ``wall_s``,
    ``compile_s`` (tracing, lowering, compiling or loading programs, data programs included),
    ``compiles`` and ``loaded`` (programs taken from the program cache).
    """
    with tempfile.TemporaryDirectory(prefix="sweepnet-rerun-") as tmp:
        cache = os.path.join(tmp, "cache")
        cold, warm = (worker({"sweep": [spec_path, os.path.join(tmp, name)]},
                             env={"SWEEPNET_CACHE": cache}) for name in ("cold", "warm"))
    return {"spec": spec_path, "cold": cold, "warm": warm,
            "warm_compile_share": warm["compile_s"] / max(cold["compile_s"], 1e-9)}


def sweep_run(spec_path: str, out: str) -> dict:
    """``sweepnet run SPEC --out OUT`` in this process (the :func:`rerun` worker's job)."""
    summary = engine.run_sweep(spec.load(spec_path), out, fresh=True, progress=False)
    return {"networks": summary.trained, "wall_s": summary.wall_s,
            "compile_s": summary.compile_s, "compiles": summary.compiles,
            "loaded": summary.loaded}


def baseline_subprocess(kind: str, width: int, depth: int, steps: int, nets: int, n_test: int,
                        repeats: int = 3) -> dict:
    """A baseline (``"loop"`` or ``"scan"``) in a fresh, plain JAX process: the best rate of
    ``repeats`` runs (noise only ever slows a run down, so the best is the fair figure) and the
    first run's compile seconds."""
    return worker({"baseline": [kind, width, depth, steps, nets, n_test, repeats]}, plain=True)


def torch_subprocess(width: int, depth: int, steps: int, nets: int, n_test: int) -> dict | None:
    """:func:`~sweepnet.bench.baselines.baseline_torch` in a fresh process (torch and JAX do
    not share one)."""
    return worker({"torch": [width, depth, steps, nets, n_test]}, plain=True)
