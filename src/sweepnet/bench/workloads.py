"""The bench's workloads and the least time they can take on this machine.

Workloads: ``disk_annulus``, tanh, Adam, full batch of :data:`BATCH` points, at (width, depth)
in :data:`SHAPES` and network counts :data:`SIZES` (:data:`FULL`; :data:`QUICK` is a tiny one
for tests). The machine bound is measured in the same run: the in-cache throughput of ``tanh``
and the matmul peak, each over all devices at once (:func:`machine_bound`); the workload's
arithmetic (:func:`workload_ops`: matmuls of forward, backward and evals, Adam, and its
``tanh`` evaluations) divided by those rates is the least time it can take
(:func:`min_seconds`).
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sweepnet.engine.machine import BATCH

SHAPES = ((3, 2), (8, 4), (16, 4))
SIZES = (256, 1024, 4096, 16384, 65536)  # for the first shape
WIDE_SIZES = (256, 1024, 2048)  # for the others (a (16, 4) net-step costs 15x a (3, 2) one)
N_TEST = 8192  # the spec default probe
STEPS = 1000  # sweeps train 600-3000 steps; a network's one-off costs weigh less the longer
EVAL_EVERY = 100
LOOP_NETS, SCAN_NETS = 2, 8  # the baselines' slice of the work
REF_N = 16384  # network count at which end-to-end ratios are reported (first shape)
WIDE_REF_N = 2048  # ... and for the others
REPEAT_N = 4096  # engine runs up to this many (and at the reference size): twice, best kept

QUICK = {"shapes": ((3, 2),), "sizes": (64,), "steps": 20, "eval_every": 10,
         "n_test": 1024, "loop_nets": 1, "scan_nets": 2, "ref_n": 64, "wide_ref_n": 64,
         "devices_n": 64}
FULL = {"shapes": SHAPES, "sizes": SIZES, "wide_sizes": WIDE_SIZES, "steps": STEPS,
        "eval_every": EVAL_EVERY,
        "n_test": N_TEST, "loop_nets": LOOP_NETS, "scan_nets": SCAN_NETS, "ref_n": REF_N,
        "wide_ref_n": WIDE_REF_N, "devices_n": 4096, "wide_gradient_n": 1024}


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


def parse_shapes(text: str) -> list[tuple]:
    """``"3x2,16x4@2048"`` -> ``[(3, 2), (16, 4, (2048,))]`` (``@N+N`` gives several sizes).
    Raises ValueError naming the bad entry."""
    out = []
    for item in text.split(","):
        shape, at, sizes = item.strip().partition("@")
        try:
            w, d = (int(v) for v in shape.split("x"))
            ns = tuple(int(n) for n in sizes.split("+")) if at else ()
        except ValueError:
            raise ValueError(
                f"bad shape {item!r}: expected WIDTHxDEPTH[@N+N...], e.g. 3x2@16384") from None
        if min((w, d, *ns)) < 1:
            raise ValueError(f"bad shape {item!r}: widths, depths and sizes are positive")
        out.append((w, d, ns) if ns else (w, d))
    return out


