"""``sweepnet bench``: engine throughput against per-network baselines, on this machine.

Workloads: ``disk_annulus``, tanh, Adam, full batch of 512 points, at (width, depth) in
:data:`SHAPES` and network counts :data:`SIZES`. For each, the engine trains a real sweep
(``engine.run_sweep`` into a temporary folder: data, plan, compile, training, evals, separation
metrics and parquet writes all included) in a fresh subprocess, so that compile time is cold and
peak memory (``ru_maxrss``) is that workload's own. Two baselines train a slice of the same
work in this process:

- ``loop``: what users write first, a Python loop over networks and steps calling a jitted
  optax step on a points-first ``flax.linen.Dense`` MLP;
- ``scan``: one jitted ``lax.scan`` of the whole training, called once per network.

The machine bound is measured in the same run: the in-cache throughput of ``tanh`` and the
matmul peak, each over all devices at once; the workload's arithmetic (matmuls of forward,
backward and evals, Adam, and its ``tanh`` evaluations) divided by those rates is the least
time it can take. Figures are wall clock; other load on the machine lowers them, so compare
ratios taken in one run.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

SHAPES = ((3, 2), (8, 4), (16, 4))
SIZES = (256, 1024, 4096, 16384, 65536)  # for the first shape
WIDE_SIZES = (256, 1024, 4096)  # for the others (a (16, 4) net-step costs 15x a (3, 2) one)
BATCH = 512  # full batch: n_train
N_TEST = 8192  # the spec default probe
STEPS = 1000  # sweeps train 600-3000 steps; a network's one-off costs weigh less the longer
EVAL_EVERY = 100
LOOP_NETS, SCAN_NETS = 2, 8  # the baselines' slice of the work
REF_N = 16384  # network count at which end-to-end ratios are reported
REPEAT_N = 4096  # engine runs up to this many networks are measured twice (best kept)

QUICK = {"shapes": ((3, 2),), "sizes": (64,), "steps": 20, "eval_every": 10,
         "n_test": 1024, "loop_nets": 1, "scan_nets": 2, "ref_n": 64, "devices_n": 64}
FULL = {"shapes": SHAPES, "sizes": SIZES, "wide_sizes": WIDE_SIZES, "steps": STEPS,
        "eval_every": EVAL_EVERY,
        "n_test": N_TEST, "loop_nets": LOOP_NETS, "scan_nets": SCAN_NETS, "ref_n": REF_N,
        "devices_n": 4096}


# --------------------------------------------------------------------------- arithmetic


def workload_ops(width: int, depth: int, steps: int, eval_every: int, n_test: int,
                 in_dim: int = 2, n_out: int = 1, batch: int = BATCH) -> dict[str, float]:
    """Least arithmetic of training one network: ``{"flops", "tanh"}`` over all ``steps``.

    Matmuls: forward ``2*macs`` per point, backward ``2*macs`` for the weight gradients and
    ``2*(macs - in_dim*width)`` for the hidden gradients; evals are forward only, on the
    train set and the probe. Elementwise work besides ``tanh`` (biases, ``1 - t^2``, the loss)
    and Adam (about 12 FLOPs a parameter) are added as FLOPs. ``tanh`` counts evaluations.
    """
    macs = in_dim * width + (depth - 1) * width * width + width * n_out
    n_par = (in_dim + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * n_out
    per_step = (6 * macs - 2 * in_dim * width) * batch + 4 * depth * width * batch + 12 * n_par
    evals = -(-steps // eval_every)
    eval_points = evals * (batch + n_test)
    flops = steps * per_step + eval_points * 2 * macs
    tanh = steps * depth * width * batch + eval_points * depth * width
    return {"flops": float(flops), "tanh": float(tanh)}


def machine_bound(seconds: float = 0.5) -> dict[str, float]:
    """Measured peaks over all devices: ``{"matmul_flops_per_s", "tanh_per_s", "devices"}``.

    Each device works on its own in-cache block at the same time (the arrays are sharded one
    block per device), repeated in a ``fori_loop`` so dispatch does not count.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    devs = jax.local_devices()
    m = jax.sharding.Mesh(np.asarray(devs), ("d",))
    shard = NamedSharding(m, P("d"))
    n = len(devs)

    def rate(body, x, work_per_iter):
        iters = 8
        while True:
            f = jax.jit(lambda x, k=iters: jax.lax.fori_loop(0, k, lambda _, v: body(v), x),
                        in_shardings=shard, out_shardings=shard)
            jax.block_until_ready(f(x))
            t = time.perf_counter()
            jax.block_until_ready(f(x))
            dt = time.perf_counter() - t
            if dt > seconds or iters > 2**22:
                return work_per_iter * iters / dt
            iters *= max(2, int(seconds / max(dt, 1e-4)))

    size = 256  # 256x256 f32 = 256 KiB: stays in L2
    a = jax.device_put(np.random.default_rng(0).normal(size=(n, size, size)).astype(np.float32)
                       / np.sqrt(size), shard)
    mm = rate(lambda v: jnp.einsum("dij,djk->dik", v, v) * 0.5 + v * 0.5, a,
              2 * n * size**3 + 3 * n * size**2)
    x = jax.device_put(np.random.default_rng(1).uniform(-2, 2, size=(n, 64 * 1024))
                       .astype(np.float32), shard)
    th = rate(lambda v: jnp.tanh(v) * 2.0, x, n * 64 * 1024)
    return {"matmul_flops_per_s": mm, "tanh_per_s": th, "devices": n}


def min_seconds(ops: dict[str, float], bound: dict[str, float]) -> float:
    """Least time for ``ops`` (from :func:`workload_ops`) on a machine with ``bound``."""
    return ops["flops"] / bound["matmul_flops_per_s"] + ops["tanh"] / bound["tanh_per_s"]


# --------------------------------------------------------------------------- engine runs


def _spec_text(width: int, depth: int, n: int, steps: int, eval_every: int, n_test: int) -> str:
    return f"""
name = "bench-w{width}-d{depth}-n{n}"
[data]
dataset = "disk_annulus"
n_train = {BATCH}
n_test = {n_test}
[model]
width = {width}
depth = {depth}
activation = "tanh"
[train]
optimizer = "adam"
learning_rate = 0.01
steps = {steps}
seeds = {n}
eval_every = {eval_every}
"""


def engine_run(width: int, depth: int, n: int, steps: int, eval_every: int, n_test: int,
               cache: bool = False) -> dict:
    """Train an ``n``-network sweep of one shape with the engine; time it.

    Returns ``{"wall_s", "compile_s", "compiles", "devices", "maxrss_mb"}`` (``maxrss_mb`` is
    this process's peak so far).
    """
    import jax

    from sweepnet import engine, spec

    s = spec.loads(_spec_text(width, depth, n, steps, eval_every, n_test))
    with tempfile.TemporaryDirectory(prefix="sweepnet-bench-") as out:
        summary = engine.run_sweep(s, out, fresh=True, progress=False, cache=cache)
    if summary.trained != n:
        raise RuntimeError(f"bench: trained {summary.trained} of {n} networks")
    return {"wall_s": summary.wall_s, "compile_s": summary.compile_s,
            "compiles": summary.compiles, "devices": len(jax.local_devices()),
            "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def _worker(job: dict, devices: int | None = None, plain: bool = False,
            env: dict | None = None) -> dict:
    """Run ``job`` (see the ``__main__`` block) in a fresh Python; returns its JSON answer.

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
    proc = subprocess.run([sys.executable, "-m", "sweepnet.bench", json.dumps(job)], env=env,
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"bench worker failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def engine_subprocess(width: int, depth: int, n: int, steps: int, eval_every: int, n_test: int,
                      devices: int | None = None, fused: bool = True) -> dict:
    """:func:`engine_run` in a fresh Python (cold compile, own peak memory, own device count);
    ``fused=False``: with XLA's autodiff gradient instead of the fused CPU kernel."""
    return _worker({"engine": [width, depth, n, steps, eval_every, n_test]}, devices,
                   env=None if fused else {"SWEEPNET_FUSED": "0"})


def rerun(spec_path: str) -> dict:
    """Train ``spec_path`` twice, each time in a fresh process with the same, initially empty
    cache folder (``SWEEPNET_CACHE``) and a new results folder: a cold run, then a warm re-run.

    Returns ``{"cold": ..., "warm": ..., "warm_compile_share"}``; each run gives ``wall_s``,
    ``compile_s`` (tracing, lowering, compiling or loading programs, data programs included),
    ``compiles`` and ``loaded`` (programs taken from the program cache).
    """
    with tempfile.TemporaryDirectory(prefix="sweepnet-rerun-") as tmp:
        cache = os.path.join(tmp, "cache")
        cold, warm = (_worker({"sweep": [spec_path, os.path.join(tmp, name)]},
                              env={"SWEEPNET_CACHE": cache}) for name in ("cold", "warm"))
    return {"spec": spec_path, "cold": cold, "warm": warm,
            "warm_compile_share": warm["compile_s"] / max(cold["compile_s"], 1e-9)}


def sweep_run(spec_path: str, out: str) -> dict:
    """``sweepnet run SPEC --out OUT`` in this process (the :func:`rerun` worker)."""
    from sweepnet import engine, spec

    summary = engine.run_sweep(spec.load(spec_path), out, fresh=True, progress=False)
    return {"networks": summary.trained, "wall_s": summary.wall_s,
            "compile_s": summary.compile_s, "compiles": summary.compiles,
            "loaded": summary.loaded}


def baseline_subprocess(kind: str, width: int, depth: int, steps: int, nets: int, n_test: int,
                        repeats: int = 3) -> dict:
    """A baseline (``"loop"`` or ``"scan"``) in a fresh, plain JAX process: the best rate of
    ``repeats`` runs (noise only ever slows a run down, so the best is the fair figure) and the
    first run's compile seconds."""
    return _worker({"baseline": [kind, width, depth, steps, nets, n_test, repeats]}, plain=True)


def _best_of(kind: str, width: int, depth: int, steps: int, nets: int, n_test: int,
             repeats: int) -> dict:
    fn = {"loop": baseline_loop, "scan": baseline_scan}[kind]
    runs = [fn(width, depth, steps, nets, n_test) for _ in range(repeats)]
    return {"net_steps_per_s": max(r["net_steps_per_s"] for r in runs),
            "compile_s": runs[0]["compile_s"]}


# --------------------------------------------------------------------------- baselines


def _user_model(width: int, depth: int):
    """The MLP a user writes first: flax ``Dense`` layers, points first ``(points, 2)``."""
    import flax.linen as nn
    import jax.numpy as jnp

    class UserMLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            for _ in range(depth):
                x = jnp.tanh(nn.Dense(width)(x))
            return nn.Dense(1)(x)[:, 0]

    return UserMLP()


def _user_data(n_test: int):
    from sweepnet import data as data_lib

    params = data_lib.default_params("disk_annulus")
    split = data_lib.make_split("disk_annulus", params, BATCH, n_test, 0.0, 0)
    return split.x_train, split.y_train.astype("float32")


def baseline_loop(width: int, depth: int, steps: int, nets: int, n_test: int) -> dict:
    """Python loop over ``nets`` networks and their steps, one jitted optax step per call.

    Returns ``{"net_steps_per_s", "compile_s"}`` (compile: the first call of the step).
    """
    import jax
    import optax

    model = _user_model(width, depth)
    tx = optax.adam(0.01)
    x, y = _user_data(n_test)

    @jax.jit
    def step(params, opt_state, x, y):
        def loss_fn(p):
            return optax.sigmoid_binary_cross_entropy(model.apply(p, x), y).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    params = model.init(jax.random.key(0), x)
    t = time.perf_counter()
    jax.block_until_ready(step(params, tx.init(params), x, y))
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(nets):
        params = model.init(jax.random.key(i), x)
        opt_state = tx.init(params)
        for _ in range(steps):
            params, opt_state, loss = step(params, opt_state, x, y)
        float(loss)  # the user reads the final loss
    return {"net_steps_per_s": nets * steps / (time.perf_counter() - t), "compile_s": compile_s}


def baseline_scan(width: int, depth: int, steps: int, nets: int, n_test: int) -> dict:
    """One jitted ``lax.scan`` of the whole training, called once per network."""
    import jax
    import optax

    model = _user_model(width, depth)
    tx = optax.adam(0.01)
    x, y = _user_data(n_test)

    @jax.jit
    def train(key, x, y):
        params = model.init(key, x)

        def step(carry, _):
            p, s = carry
            loss, g = jax.value_and_grad(
                lambda p: optax.sigmoid_binary_cross_entropy(model.apply(p, x), y).mean())(p)
            u, s = tx.update(g, s, p)
            return (optax.apply_updates(p, u), s), loss

        _, losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
        return losses[-1]

    t = time.perf_counter()
    jax.block_until_ready(train(jax.random.key(0), x, y))
    compile_s = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(nets):
        float(train(jax.random.key(i), x, y))
    return {"net_steps_per_s": nets * steps / (time.perf_counter() - t), "compile_s": compile_s}


# --------------------------------------------------------------------------- plan's model

CALIBRATION_SHAPES = ((3, 2), (16, 4))  # a cheap and a matmul-heavy network


def calibrate(steps: int = 200) -> dict[str, float]:
    """Time two small buckets with the engine's program; fit the cost of a network-step.

    Model (per device): ``seconds = step_s + flops / flops_per_s`` per network-step, with
    ``flops`` from ``plan.step_flops``; ``compile_s`` is the mean compile of the two. Returns
    ``{"step_s", "flops_per_s", "compile_s", "devices", "backend"}``.
    """
    import jax
    import numpy as np
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from sweepnet import data as data_lib
    from sweepnet import engine
    from sweepnet import plan as plan_lib
    from sweepnet.train import Hyper, Static

    m = engine.mesh()
    n_dev = m.devices.size
    points, compiles = [], []
    for width, depth in CALIBRATION_SHAPES:
        static = Static(arch="mlp", in_dim=2, n_out=1, width=width, depth=depth,
                        activations="tanh", optimizer="adam", steps=steps, eval_every=100,
                        batch_size=0, n_train=BATCH, n_test=2048)
        n = 2 * n_dev * plan_lib.sub_batch(static)
        cfg = {"dataset": "disk_annulus", "n_train": BATCH, "n_test": 2048, "noise": 0.0,
               "data_seed": 0, **{f"data_{k}": v for k, v in
                                  data_lib.default_params("disk_annulus").items()}}
        data = jax.device_put(engine.load_data(static, plan_lib.Run(0, "0" * 16, cfg)),
                              NamedSharding(m, P()))
        seeds = jax.device_put(np.arange(n, dtype=np.uint32), NamedSharding(m, P("nets")))
        hyper = Hyper(width=np.full(n, width, np.int32),
                      learning_rate=np.full(n, 0.01, np.float32),
                      init_scale=np.ones(n, np.float32))
        t = time.perf_counter()
        fn = engine.bucket_fn(static, m).lower(seeds, hyper, data).compile()
        compiles.append(time.perf_counter() - t)
        jax.block_until_ready(fn(seeds, hyper, data))
        t = time.perf_counter()
        jax.block_until_ready(fn(seeds, hyper, data))
        per_step = (time.perf_counter() - t) / (n / n_dev * steps)
        points.append((plan_lib.step_flops(static, width), per_step))
    (f0, t0), (f1, t1) = points
    slope = max((t1 - t0) / (f1 - f0), 1e-15)
    step_s = max(t0 - slope * f0, 0.0)
    return {"step_s": step_s, "flops_per_s": 1 / slope, "compile_s": sum(compiles) / 2,
            "devices": n_dev, "backend": jax.default_backend()}


def throughput(refresh: bool = False) -> dict[str, float]:
    """:func:`calibrate`, cached per machine setup in ``throughput.json`` of ``$SWEEPNET_CACHE``
    (else ``~/.cache/sweepnet/``)."""
    import jax

    from sweepnet import engine
    from sweepnet.programs import cache_root

    path = os.path.join(cache_root(), "throughput.json")
    key = (f"{jax.default_backend()}-{len(jax.local_devices())}-{os.cpu_count()}-"
           f"jax{jax.__version__}-sweepnet{engine.__version__}")
    try:
        with open(path) as f:
            known = json.load(f)
    except (OSError, ValueError):
        known = {}
    if refresh or key not in known:
        known[key] = calibrate()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(known, f, indent=1)
        os.replace(tmp, path)
    return known[key]


# --------------------------------------------------------------------------- the bench


def run(quick: bool = False, shapes=None, sizes=None, progress=None,
        steps: int | None = None) -> dict:
    """Run the bench; returns a JSON-able dict (see :func:`format_table` for the fields).

    ``quick``: tiny sizes and few steps (seconds; for tests). ``shapes``/``sizes``/``steps``
    override the workloads (a network's one-off costs, init, evals and the separation
    certificate, weigh less the more steps it trains). ``progress``: callable taking a line of
    text, or None.
    """
    import jax

    cfg = dict(QUICK if quick else FULL)
    shapes = tuple(tuple(s) for s in (shapes or cfg["shapes"]))
    given = tuple(sizes) if sizes else None
    steps, every, n_test = steps or cfg["steps"], cfg["eval_every"], cfg["n_test"]
    say = progress or (lambda _: None)
    load = os.getloadavg()[0]
    from sweepnet import fused

    # built (or found in the cache) before anything is timed: a one-off per machine, as an
    # install is; each sweep's compile time counts it where it happens
    kernel = fused.library() if fused.enabled() and jax.default_backend() == "cpu" else None
    bound = machine_bound(0.1 if quick else 0.5)
    say(f"bound: {bound['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s matmul, "
        f"{bound['tanh_per_s'] / 1e9:.2f} Gtanh/s over {bound['devices']} devices")
    workloads = []
    for k, (width, depth) in enumerate(shapes):
        sizes = given or (cfg["sizes"] if k == 0 else cfg.get("wide_sizes", cfg["sizes"]))
        ops = workload_ops(width, depth, steps, every, n_test)
        per_net_min = min_seconds(ops, bound)
        # quick mode measures in this process; the full bench in fresh, plain JAX processes
        # (measured here, after the bound's sharded programs, the loop ran up to 2x slower)
        loop, scan = (
            _best_of(k, width, depth, steps, cfg[f"{k}_nets"], n_test, 1) if quick
            else baseline_subprocess(k, width, depth, steps, cfg[f"{k}_nets"], n_test)
            for k in ("loop", "scan"))
        say(f"w{width} d{depth}: loop {loop['net_steps_per_s']:.0f}, scan "
            f"{scan['net_steps_per_s']:.0f} net-steps/s")
        rows = []
        for n in sizes:
            # quick mode trains in this process (no cold start per size: it must take seconds)
            # the full bench repeats the shorter runs (N <= REPEAT_N, seconds each) and keeps
            # the fastest, as it does for the baselines: noise only ever slows a run down
            e = (engine_run(width, depth, n, steps, every, n_test) if quick else
                 min((engine_subprocess(width, depth, n, steps, every, n_test)
                      for _ in range(2 if n <= REPEAT_N else 1)),
                     key=lambda e: e["wall_s"] - e["compile_s"]))
            train_s = max(e["wall_s"] - e["compile_s"], 1e-9)
            rate = n * steps / train_s
            rows.append({"n": n, "wall_s": e["wall_s"], "compile_s": e["compile_s"],
                         "compiles": e["compiles"], "net_steps_per_s": rate,
                         "net_steps_per_s_e2e": n * steps / e["wall_s"],
                         "vs_loop": rate / loop["net_steps_per_s"],
                         "vs_scan": rate / scan["net_steps_per_s"],
                         "bound_fraction": n * per_net_min / train_s,
                         "maxrss_mb": e["maxrss_mb"]})
            say(f"w{width} d{depth} n{n}: {rate:.0f} net-steps/s, compile "
                f"{e['compile_s']:.1f} s, {rows[-1]['bound_fraction']:.1%} of bound")
        xla = None
        if kernel and k == 0 and not quick:  # the same workload with XLA's gradient
            n = cfg["devices_n"]
            e = engine_subprocess(width, depth, n, steps, every, n_test, fused=False)
            fast = next((r for r in rows if r["n"] == n), None)
            rate = n * steps / max(e["wall_s"] - e["compile_s"], 1e-9)
            xla = {"n": n, "net_steps_per_s": rate,
                   "fused_speedup": fast["net_steps_per_s"] / rate if fast else None}
            say(f"w{width} d{depth} n{n} with XLA's gradient: {rate:.0f} net-steps/s")
        ref = next((r for r in rows if r["n"] == cfg["ref_n"]), rows[-1])
        loop_e2e = loop["compile_s"] + ref["n"] * steps / loop["net_steps_per_s"]
        scan_e2e = scan["compile_s"] + ref["n"] * steps / scan["net_steps_per_s"]
        workloads.append({
            "width": width, "depth": depth, "ops_per_net": ops, "min_s_per_net": per_net_min,
            "loop": loop, "scan": scan, "sizes": rows, "ref_n": ref["n"], "xla_gradient": xla,
            "e2e_vs_loop": loop_e2e / ref["wall_s"], "e2e_vs_scan": scan_e2e / ref["wall_s"],
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
            "gradient": "fused" if kernel else "xla",
            "workloads": workloads, "device_scaling": devices}


def _spread(rates: list[float]) -> float | None:
    """``max/min - 1`` of throughputs (None with fewer than two)."""
    return max(rates) / min(rates) - 1 if len(rates) > 1 else None


def format_rerun(result: dict) -> str:
    """A few lines on :func:`rerun`'s result."""
    c, w = result["cold"], result["warm"]
    return "\n".join([
        f"{result['spec']}: {c['networks']} networks",
        f"  cold run (empty caches): {c['wall_s']:.0f} s wall, {c['compiles']} compiles, "
        f"{c['compile_s']:.1f} s compiling",
        f"  warm re-run (new results folder): {w['wall_s']:.0f} s wall, {w['compiles']} programs "
        f"({w['loaded']} loaded from the program cache), {w['compile_s']:.1f} s compiling = "
        f"{result['warm_compile_share']:.1%} of the cold compile time"])


def format_table(result: dict) -> str:
    """A plain-text table of :func:`run`'s result."""
    b = result["bound"]
    lines = [
        f"sweepnet bench ({'quick' if result['quick'] else 'full'}): disk_annulus, tanh, adam, "
        f"full batch {result['batch']}, {result['steps']} steps, eval every "
        f"{result['eval_every']} on {result['n_test']} probe points",
        f"{result['backend']}, {result['devices']} devices, {result['cpus']} cpus, jax "
        f"{result['jax']}; load average {result['load_before']:.1f} before, "
        f"{result['load_after']:.1f} after",
        f"machine bound: matmul {b['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s, tanh "
        f"{b['tanh_per_s'] / 1e9:.2f} G/s (all devices, in cache)",
        f"training gradient: {result.get('gradient', 'xla')}",
        "",
        f"{'w':>3} {'d':>2} {'N':>6} {'net-steps/s':>12} {'e2e':>10} {'compile':>8} "
        f"{'x loop':>7} {'x scan':>7} {'bound':>6} {'peak MB':>8}",
    ]
    for wl in result["workloads"]:
        for r in wl["sizes"]:
            lines.append(
                f"{wl['width']:>3} {wl['depth']:>2} {r['n']:>6} {r['net_steps_per_s']:>12.4g} "
                f"{r['net_steps_per_s_e2e']:>10.4g} {r['compile_s']:>7.1f}s "
                f"{r['vs_loop']:>7.1f} {r['vs_scan']:>7.1f} {r['bound_fraction']:>6.1%} "
                f"{r['maxrss_mb']:>8.0f}")
        spread = wl["spread"]
        lines.append(
            f"{'':>6} baselines: loop {wl['loop']['net_steps_per_s']:.4g}, scan "
            f"{wl['scan']['net_steps_per_s']:.4g} net-steps/s; end to end at N={wl['ref_n']} "
            f"(compile included): {wl['e2e_vs_loop']:.1f}x loop, {wl['e2e_vs_scan']:.1f}x scan"
            + (f"; throughput spread N>=1024 {spread:.1%}" if spread is not None else ""))
        if x := wl.get("xla_gradient"):
            lines.append(
                f"{'':>6} with XLA's gradient (SWEEPNET_FUSED=0) at N={x['n']}: "
                f"{x['net_steps_per_s']:.4g} net-steps/s"
                + (f"; fused {x['fused_speedup']:.2f}x" if x["fused_speedup"] else ""))
    dv = result["device_scaling"]
    lines.append("")
    lines.append(f"devices (w{dv['width']} d{dv['depth']}, N={dv['n']}): 1 device "
                 f"{dv['one']:.4g}, {dv['many_devices']} devices {dv['many']:.4g} net-steps/s "
                 f"= {dv['speedup']:.2f}x")
    return "\n".join(lines)


if __name__ == "__main__":
    # worker: python -m sweepnet.bench '{"engine": [w, d, n, steps, every, n_test]}'
    #                               or '{"sweep": [spec_path, out]}'
    #                               or '{"baseline": [kind, w, d, steps, nets, n_test, repeats]}'
    _job = json.loads(sys.argv[1])
    if "engine" in _job:
        print(json.dumps(engine_run(*_job["engine"])))
    elif "sweep" in _job:
        print(json.dumps(sweep_run(*_job["sweep"])))
    elif "env" in _job:  # what a worker sees (tests)
        import jax

        print(json.dumps({"devices": len(jax.local_devices()),
                          "xla_flags": os.environ.get("XLA_FLAGS", "")}))
    else:
        print(json.dumps(_best_of(*_job["baseline"])))
