"""The fused kernel's verdict: where it measured faster than XLA's gradient on this machine.

After building the kernel, the builder (``bench.suite.measure_gradients``) times a training
program with the kernel against the same program with XLA's gradient on a few small shapes
(:data:`MEASURED`) and keeps the verdict next to the library (``.json``, same key:
:func:`save_verdict`). A bucket uses the kernel only where it was faster on the nearest
measured shape (width, depth, activation family): :func:`prefers`.
"""

from __future__ import annotations

import json
import math

from sweepnet.kernel.build import STATE, kernel_path, read, write
from sweepnet.kernel.ops import ACTIVATIONS

# Shapes the builder times, (width, depth, activation). An activation not measured takes its
# family's verdict: the transcendental ones cost like tanh, the piecewise linear ones like relu.
MEASURED = tuple((w, d, a) for w, d in ((3, 2), (8, 4), (16, 4)) for a in ("tanh", "relu"))
FAMILY = {"tanh": "tanh", "sigmoid": "tanh", "softplus": "tanh", "relu": "relu",
          "leaky_relu": "relu", "linear": "relu"}


def verdict() -> dict | None:
    """The measured verdict kept beside this machine's kernel (see ``bench.measure_gradients``):
    ``{"shapes": [{"width", "depth", "activation", "fused_s", "xla_s"}, ...], ...}``; None when
    nothing is measured yet."""
    path = kernel_path()
    text = read(path[:-3] + ".json") if path else None
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def save_verdict(result: dict) -> str:
    """Keep ``result`` (see :func:`verdict`) as this machine's verdict; returns its path. The
    answers ``choice.use`` kept are forgotten."""
    path = kernel_path()[:-3] + ".json"
    write(path, json.dumps(result, indent=1))
    STATE["decisions"].clear()
    return path


def shape_class(static) -> tuple[int, int, tuple[str, ...]]:
    """``(width, depth, activations)`` of a bucket, as :func:`prefers` takes them."""
    acts = getattr(static, "activations", None) or (static.activation,)
    names = {v: k for k, v in ACTIVATIONS.items()}
    return static.width, static.depth, tuple(names.get(a, a) for a in acts)


def prefers(width: int, depth: int, activations) -> bool | None:
    """Whether the kernel beat XLA's gradient on this machine at the measured shape nearest to
    ``(width, depth)`` (log scale) of each activation's family; all of ``activations`` must
    agree. None when nothing has been measured yet."""
    rows = (verdict() or {}).get("shapes")
    if not rows:
        return None

    def nearest(act):
        same = [r for r in rows if FAMILY.get(r["activation"]) == FAMILY.get(act, act)] or rows
        return min(same, key=lambda r: abs(math.log(r["width"] / max(width, 1)))
                   + abs(math.log(r["depth"] / max(depth, 1))))

    return all(nearest(a)["fused_s"] < nearest(a)["xla_s"] for a in activations)
