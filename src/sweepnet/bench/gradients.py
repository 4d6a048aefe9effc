"""The fused CPU kernel's gradient timed against XLA's: the verdict ``sweepnet run`` follows.

:func:`measure_gradients` times both on small real buckets; :func:`prepare_kernel` builds the
kernel if need be and keeps the verdict beside it (what the background builder and
``sweepnet devices --build`` run); :func:`format_verdict` says it in lines.
"""

from __future__ import annotations

import math
import os
import time

import jax

from sweepnet.engine.machine import probe_bucket
from sweepnet.kernel import build as kernel_build
from sweepnet.kernel import verdict
from sweepnet.train.step import make_train


def measure_gradients(shapes=None, steps: int = 300, repeats: int = 7, say=None) -> dict:
    """Time training with the fused CPU kernel against XLA's gradient on small shapes.

    For each ``(width, depth, activation)`` of ``shapes`` (default ``verdict.MEASURED``):
    ``jit(vmap(make_train(static, fused=...)))`` of the networks one device trains at once,
    ``steps`` steps on 512 points, compiled first, then the two programs run in turn
    ``repeats`` times, in alternating order (so that load on the machine weighs on both); the
    best time of each is kept (noise only ever slows a run down). The kernel must be built.
    Returns the verdict ``verdict.save_verdict`` keeps:
    ``{"shapes": [{"width", "depth", "activation", "networks", "fused_s", "xla_s",
    "speedup"}], "steps", "march", "measured", "load"}``.
    """
    say = say or (lambda _: None)
    rows = []
    for width, depth, act in shapes or verdict.MEASURED:
        static, seeds, hyper, data = probe_bucket(width, depth, act, steps=steps, n_test=256)
        fns = {}
        for name in ("fused", "xla"):
            train = make_train(static, fused=name == "fused")
            fns[name] = jax.jit(jax.vmap(lambda k, h, d, t=train: t(jax.random.key(k), h, d),
                                         in_axes=(0, 0, None)))
            jax.block_until_ready(fns[name](seeds, hyper, data))  # compile
        best = {name: math.inf for name in fns}
        for i in range(repeats):
            for name, fn in sorted(fns.items(), reverse=bool(i % 2)):
                t = time.perf_counter()
                jax.block_until_ready(fn(seeds, hyper, data))
                best[name] = min(best[name], time.perf_counter() - t)
        rows.append({"width": width, "depth": depth, "activation": act,
                     "networks": int(len(seeds)), "fused_s": best["fused"], "xla_s": best["xla"],
                     "speedup": best["xla"] / best["fused"]})
        say(f"({width}, {depth}) {act}: fused {best['fused']:.3f} s, XLA {best['xla']:.3f} s "
            f"for {len(seeds)} networks x {steps} steps")
    return {"shapes": rows, "steps": steps, "march": kernel_build.march(),
            "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "load": os.getloadavg()[0]}


def prepare_kernel(say=None) -> dict | None:
    """Build the fused CPU kernel in the foreground if need be, then measure it against XLA's
    gradient (:func:`measure_gradients`) and keep the verdict beside it. What the background
    builder and ``sweepnet devices --build`` run. Returns the verdict, None without a kernel."""
    if kernel_build.build() is None:
        return None
    result = measure_gradients(say=say)
    verdict.save_verdict(result)
    return result


def format_verdict(result: dict | None) -> list[str]:
    """Lines on a verdict of :func:`measure_gradients` (``sweepnet devices``)."""
    if not result:
        return ["  not measured yet: sweeps use XLA's gradient (sweepnet devices --build "
                "measures)"]
    lines = [f"  measured {result.get('measured', '?')} (-march={result.get('march', '?')}, "
             f"{result['steps']} steps, load {result.get('load', 0):.1f}):"]
    for r in result["shapes"]:
        won = "kernel" if r["fused_s"] < r["xla_s"] else "XLA"
        lines.append(f"  ({r['width']:>2}, {r['depth']}) {r['activation']:<5} kernel "
                     f"{r['fused_s']:.3f} s, XLA {r['xla_s']:.3f} s: {won} "
                     f"({max(r['speedup'], 1 / r['speedup']):.2f}x)")
    return lines

