"""The machine model ``sweepnet plan`` estimates time with: seconds a network-step and a compile.

Recorded runs come first: the buckets that finished runs on this machine setup record in their
manifests (:func:`recorded_runs`, fitted by :func:`fit_recorded`). Failing those,
:func:`calibrate` times two small buckets with the engine's own program, once per machine
setup, and :func:`throughput` keeps that calibration in ``throughput.json`` of the cache folder.
:func:`probe_bucket` makes the small real buckets such measurements time (the benchmarks'
workload: disk_annulus, full batch, Adam), as a sweep makes its buckets.
"""

from __future__ import annotations

import glob
import json
import math
import os
import time

import jax
import numpy as np
from jax.experimental import serialize_executable
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sweepnet.core.host import __version__, cache_root
from sweepnet.engine import cost, programs
from sweepnet.engine import plan as plan_lib
from sweepnet.engine import run as engine
from sweepnet.kernel import choice
from sweepnet.store.results import read_manifest
from sweepnet.sweep import spec
from sweepnet.train.step import Static

BATCH = 512  # full batch: n_train
CALIBRATION_SHAPES = ((3, 2), (16, 4))  # a cheap and a matmul-heavy network
MODEL_VERSION = 2  # calibrations older than this may have counted a kernel build as a compile
POISONED = 10  # a cached compile figure this many times the recorded compiles is refreshed
STARTUP_S = 3.0  # a run's process start: importing JAX and sweepnet, before run_sweep


def workload_spec(width: int, depth: int, n: int, steps: int, eval_every: int, n_test: int,
                  activation: str = "tanh") -> str:
    """The spec (TOML text) of the benchmarks' workload: ``n`` networks of one shape trained on
    disk_annulus (:data:`BATCH` points, full batch) with Adam."""
    return f"""
name = "bench-w{width}-d{depth}-n{n}"
[data]
dataset = "disk_annulus"
n_train = {BATCH}
n_test = {n_test}
[model]
width = {width}
depth = {depth}
activation = "{activation}"
[train]
optimizer = "adam"
learning_rate = 0.01
steps = {steps}
seeds = {n}
eval_every = {eval_every}
"""


def probe_bucket(width: int, depth: int, activation: str = "tanh", n: int | None = None, *,
                 steps: int = 200, n_test: int = 2048, share: int = 1):
    """A small real bucket to time: ``(static, seeds (n,), hyper, data)``, ``n`` networks of one
    shape trained on disk_annulus (512 points, full batch, Adam) and evaluated twice; ``n``
    defaults to ``share`` times what one device trains at once (``plan.sub_batch``).

    The one place that makes a ``Static`` and a ``Hyper`` for a measurement, and it makes them
    as a sweep does: from a spec, through the planner and the engine's inputs.
    """

    def bucket(count):
        s = spec.loads(workload_spec(width, depth, count, steps, max(1, steps // 2), n_test,
                                     activation))
        (b,) = plan_lib.make_plan(s, 1).buckets
        return b

    b = bucket(1)
    n = n or share * plan_lib.sub_batch(b.static)
    b = bucket(n)
    seeds, hyper = engine.chunk_inputs(b.runs, n, b.static)
    return b.static, seeds, hyper, engine.load_data(b.static, b.runs[0])


def calibrate(steps: int = 200) -> dict[str, float]:
    """Time two small buckets with the engine's program; fit the cost of a network-step.

    Model (per device): ``seconds = step_s + flops / flops_per_s`` per network-step, with
    ``flops`` from ``cost.step_flops``; ``compile_s`` is the mean compile of the two. Never
    builds the fused kernel (a build is not a compile): the gradient is whatever a sweep would
    use now. Returns ``{"step_s", "flops_per_s", "compile_s", "devices", "backend"}``.
    """
    m = programs.mesh()
    n_dev = m.devices.size
    points, compiles, loads = [], [], []
    held = os.environ.get("SWEEPNET_KERNEL_BUILD")
    os.environ["SWEEPNET_KERNEL_BUILD"] = "0"  # no background build racing the clock
    try:
        for width, depth in CALIBRATION_SHAPES:
            static, seeds, hyper, data = probe_bucket(width, depth, steps=steps, share=2 * n_dev)
            n = len(seeds)
            data = jax.device_put(data, NamedSharding(m, P()))
            seeds = jax.device_put(seeds, NamedSharding(m, P("nets")))
            built = choice.build_seconds()
            t = time.perf_counter()
            fast = choice.use(static, m)  # the gradient a sweep would use now
            fn = programs.bucket_fn(static, m, fast, plan_lib.sub_batch(static, fast))
            fn = fn.lower(seeds, hyper, data).compile()
            compiles.append(time.perf_counter() - t - (choice.build_seconds() - built))
            loads.append(_load_seconds(fn))
            jax.block_until_ready(fn(seeds, hyper, data))
            t = time.perf_counter()
            jax.block_until_ready(fn(seeds, hyper, data))
            per_step = (time.perf_counter() - t) / (n / n_dev * steps)
            points.append((cost.step_flops(static, width), per_step))
    finally:
        if held is None:
            os.environ.pop("SWEEPNET_KERNEL_BUILD")
        else:
            os.environ["SWEEPNET_KERNEL_BUILD"] = held
    (f0, t0), (f1, t1) = points
    slope = max((t1 - t0) / (f1 - f0), 1e-15)
    step_s = max(t0 - slope * f0, 0.0)
    return {"step_s": step_s, "flops_per_s": 1 / slope, "compile_s": sum(compiles) / 2,
            "load_s": None if None in loads else sum(loads) / 2,
            "devices": n_dev, "backend": jax.default_backend(), "model": MODEL_VERSION}


def _load_seconds(compiled) -> float | None:
    """Seconds to load ``compiled`` back from its serialized form, as a warm run loads its
    programs from the program cache; None where the backend cannot serialize it."""
    try:
        payload, in_tree, out_tree = serialize_executable.serialize(compiled)
        t = time.perf_counter()
        serialize_executable.deserialize_and_load(payload, in_tree, out_tree,
                                                  execution_devices=jax.local_devices())
    except Exception:  # not serializable here: no warm estimate
        return None
    return time.perf_counter() - t


def recorded_runs(folder: str = "results", n_devices: int | None = None,
                  backend: str | None = None, version: str | None = None) -> list[dict]:
    """Buckets of finished runs recorded in the manifests under ``folder`` (``*/manifest.json``)
    on a machine setup like this one (backend, device count, sweepnet version; default: this
    process's), as ``{"static", "networks", "chunk", "seconds", "compile_s", "loaded",
    "overhead_s"}``. Only manifests that record compile time per bucket count."""
    if n_devices is None or backend is None or version is None:
        n_devices = n_devices or len(jax.devices())
        backend = backend or jax.default_backend()
        version = version or __version__
    out = []
    for path in sorted(glob.glob(os.path.join(folder, "*", "manifest.json"))):
        try:
            m = read_manifest(os.path.dirname(path))
        except Exception:  # a broken results folder says nothing about speed
            continue
        if (m.get("backend") != backend or len(m.get("devices", ())) != n_devices
                or m.get("processes", 1) != 1 or m.get("versions", {}).get("sweepnet") != version):
            continue
        # a bucket that switched gradients mid-way ("xla+fused") fits neither rate
        buckets = [b for b in m.get("buckets", {}).values()
                   if "compile_s" in b and "+" not in b.get("gradient", "")]
        # a run's time besides its buckets' (planning, opening the results, the manifest)
        walls = [s["wall_s"] for s in m.get("shards", {}).values() if "wall_s" in s]
        overhead = max(0.0, sum(walls) - sum(b["seconds"] for b in buckets))
        for b in buckets:
            try:
                static = Static(**b["static"])
            except TypeError:  # recorded by another engine
                continue
            out.append({"static": static, "networks": b["networks"], "chunk": b["chunk"],
                        "step_flops": b.get("step_flops"),
                        "seconds": b["seconds"], "compile_s": b["compile_s"],
                        "loaded": bool(b.get("loaded")), "overhead_s": overhead if walls else 0.0})
    return out


def fit_recorded(buckets: list[dict], n_devices: int, prior: dict | None = None) -> dict | None:
    """The plan's machine model fitted to recorded buckets (see :func:`recorded_runs`):
    ``{"step_s", "flops_per_s", "compile_s", "load_s", "overhead_s", "buckets"}``.

    Each bucket's training time (its seconds less its compile) is its padded network-steps per
    device times ``step_s + flops / flops_per_s``; both are fitted by least squares when the
    buckets' shapes differ enough, else ``prior``'s (a synthetic calibration, or the planner's
    constants) are scaled to fit. ``compile_s``/``load_s``: the median bucket compile when
    compiled / loaded from the program cache (None when none was).
    """
    if not buckets:
        return None
    rows = []
    for b in buckets:
        st = b["static"]
        lanes = b["chunk"] * math.ceil(b["networks"] / b["chunk"])
        # the FLOPs the bucket's gradient computed (the kernel: real shapes), else padded
        flops = b.get("step_flops") or cost.step_flops(st, st.width)
        rows.append((lanes * st.steps / n_devices, flops,
                     max(b["seconds"] - b["compile_s"], 0.0)))
    ns, flops, secs = (np.asarray(c, float) for c in zip(*rows, strict=True))
    step_s = flops_per_s = None
    if np.ptp(flops) > 0.5 * flops.mean():
        (a, b), *_ = np.linalg.lstsq(np.stack([ns, ns * flops], 1), secs, rcond=None)
        if a >= 0 and b > 0:
            step_s, flops_per_s = float(a), float(1 / b)
    if step_s is None:
        prior = prior or {"step_s": cost.DEFAULT_STEP_S,
                          "flops_per_s": cost.DEFAULT_FLOPS_PER_S}
        predicted = float(np.sum(ns * (prior["step_s"] + flops / prior["flops_per_s"])))
        scale = float(secs.sum()) / max(predicted, 1e-12)
        step_s, flops_per_s = prior["step_s"] * scale, prior["flops_per_s"] / scale
    median = lambda xs: float(np.median(xs)) if xs else None
    return {"step_s": step_s, "flops_per_s": flops_per_s,
            "compile_s": median([b["compile_s"] for b in buckets if not b["loaded"]]),
            "load_s": median([b["compile_s"] for b in buckets if b["loaded"]]),
            "overhead_s": median([b["overhead_s"] for b in buckets]) or 0.0,
            "buckets": len(buckets)}


def throughput(refresh: bool = False, results: str = "results", say=None) -> dict[str, float]:
    """The machine model ``sweepnet plan`` estimates with: ``{"step_s", "flops_per_s",
    "compile_s", "load_s", "overhead_s", "source"}``.

    Recorded runs on this machine setup (the manifests under ``results``, see
    :func:`recorded_runs`) come first: they are the real thing. Failing a recorded compile,
    :func:`calibrate` measures two small programs (``say`` is told first), once per machine
    setup, cached in ``throughput.json`` of ``$SWEEPNET_CACHE`` (else ``~/.cache/sweepnet/``).
    A cached calibration older than :data:`MODEL_VERSION` (it may have counted a kernel build
    as a compile), or whose compile time is :data:`POISONED` times the recorded compiles, is
    thrown away; ``refresh`` measures again.
    """
    say = say or (lambda _: None)
    n_dev = len(jax.local_devices())
    recorded = fit_recorded(recorded_runs(results), n_dev)
    path = os.path.join(cache_root(), "throughput.json")
    key = calibration_key()
    try:
        with open(path) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    cached = known.get(key)
    if cached and (cached.get("model", 0) < MODEL_VERSION or (
            recorded and recorded["compile_s"]
            and cached["compile_s"] > POISONED * recorded["compile_s"])):
        say(f"dropping a cached calibration of this machine ({cached['compile_s']:.0f} s a "
            "compile) that recorded runs or its age say is wrong")
        del known[key]
        cached = None
        _save_json(path, known)
    if recorded and recorded["compile_s"] is not None and not refresh:
        return {**recorded, "source": f"{recorded['buckets']} recorded buckets in {results}/"}
    if refresh or cached is None:
        say(f"measuring this machine for the estimate: compiling and timing two small programs "
            f"(once; kept in {path})")
        known[key] = cached = calibrate()
        _save_json(path, known)
    model = {"load_s": None, "overhead_s": 0.0, **cached, "source": "a synthetic calibration"}
    if recorded:  # runs that only loaded programs: their step figures, the calibration's compile
        model.update({k: recorded[k] for k in ("step_s", "flops_per_s", "load_s", "overhead_s")},
                     source=f"{recorded['buckets']} recorded buckets in {results}/ and a "
                     "synthetic compile time")
    return model


def calibration_key() -> str:
    """The machine setup a cached calibration holds for (``throughput.json``'s keys)."""
    return (f"{jax.default_backend()}-{len(jax.local_devices())}-{os.cpu_count()}-"
            f"jax{jax.__version__}-sweepnet{__version__}")


def _save_json(path: str, value) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


