"""What a network costs: FLOPs of a training step, bytes on the device, and a plan's time.

The plan sizes its calls with :func:`bytes_per_network` and balances devices with
:func:`run_step_flops`; ``sweepnet plan`` prints :func:`describe`, whose time estimate uses the
machine model of :mod:`sweepnet.engine.machine` (or the fixed constants below).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from sweepnet.core.words import plural
from sweepnet.sweep.models import n_params
from sweepnet.sweep.spec import settings
from sweepnet.train.step import TEST_BLOCK, Static

# Machine model for choosing buckets: fixed constants (never measured), so that a run's padded
# width does not depend on the machine. Close to `machine.calibrate()` on a 2-core CPU, where a
# network-step costs a fixed ~25 us (elementwise work, loop overhead) plus its FLOPs at ~10
# GFLOP/s per device, and a bucket compiles in ~10 s: padding narrow networks is cheap, compiles
# are not. `sweepnet plan` prints its time estimate with the measured figures instead.
DEFAULT_FLOPS_PER_S = 1e10
DEFAULT_STEP_S = 25e-6
DEFAULT_COMPILE_S = 10.0

# An activation and its derivative at one unit, in FLOP-equivalents (a transcendental one is a
# rational or exp/log approximation of a dozen or more multiply-adds, and a division)
ACTIVATION_FLOPS = {"tanh": 20, "sigmoid": 20, "softplus": 30, "elu": 20, "gelu": 30,
                    "silu": 20, "sin": 20, "relu": 2, "leaky_relu": 3, "leaky_relu_0.2": 3,
                    "linear": 0}


def step_flops(static: Static, width: int | None = None, depth: int | None = None,
               activation: str | None = None) -> float:
    """Approximate FLOPs of one training step of one network (forward + backward ≈ 3x forward)
    of ``width``, ``depth`` and ``activation`` (default: the program's padded shape, which
    computes every activation it holds at every unit: XLA's gradient selects one afterwards)."""
    width = static.width if width is None else width
    depth = static.depth if depth is None else depth
    acts = (activation,) if activation else static.activations
    batch = static.batch_size or static.n_train
    macs = n_params(static.arch, static.in_dim, width, depth, static.n_out)  # ≈ MACs
    act = sum(ACTIVATION_FLOPS.get(a, 20) for a in acts)
    per_point = 2 * macs + (4 + act) * depth * width  # matmuls + activations, derivatives
    eval_share = (static.n_train + static.n_test) / static.eval_every * 2 * macs
    return 3 * per_point * batch + eval_share


def run_step_flops(static: Static, run) -> float:
    """:func:`step_flops` of ``run``'s own network (its width, depth and activation), as the
    fused kernel computes it inside program ``static``."""
    c = run.config
    return _shape_flops(static, c["width"], c["depth"], c["activation"])


@functools.lru_cache(maxsize=4096)
def _shape_flops(static: Static, width: int, depth: int, activation: str) -> float:
    return step_flops(static, width, depth, activation)  # cached: a grid has few shapes


def network_seconds(static: Static, runs: Sequence, fused: bool = False) -> float:
    """Seconds one device takes to train one network of ``runs`` (their mean) in program
    ``static``, all its steps, by the fixed constants above: never measured, so that a plan cuts
    its calls alike on every machine. ``fused``: the kernel computes each network at its real
    shape; else XLA's gradient at the program's padded one."""
    if fused:
        flops = sum(run_step_flops(static, r) for r in runs) / max(1, len(runs))
    else:
        flops = step_flops(static)
    return static.steps * (DEFAULT_STEP_S + flops / DEFAULT_FLOPS_PER_S)


def bytes_per_network(static: Static) -> int:
    """Estimated peak bytes one network of a call needs on the device (float32)."""
    w, d = static.width, static.depth
    n_par = n_params(static.arch, static.in_dim, w, d, static.n_out)
    batch = static.batch_size or static.n_train
    acts = 4 * d * w * max(batch, min(static.n_test, TEST_BLOCK))  # pre/post activations + grads
    curves = 3 * len(static.eval_steps)
    return 4 * (8 * n_par + acts + curves)


def estimate_seconds(plan, flops_per_s: float = DEFAULT_FLOPS_PER_S,
                     compile_s: float = DEFAULT_COMPILE_S, step_s: float = 0.0,
                     overhead_s: float = 0.0, padded: bool = True) -> float:
    """Seconds to train ``plan`` (a :class:`~sweepnet.engine.plan.Plan`, which imports this
    module): compiles plus every call's work plus a run's fixed ``overhead_s``: each network-step
    costs ``step_s`` (fixed, per device) plus its FLOPs at ``flops_per_s`` (see
    ``machine.throughput``). ``compile_s`` is a bucket's program: compiled (a cold run) or
    loaded from the program cache (a warm one). ``padded``: the programs compute at their
    padded shapes (XLA's gradient); else at each network's real shape (the fused CPU kernel
    reads them)."""
    work = 0.0
    for b in plan.buckets:
        if not b.runs:
            continue
        lanes = b.chunk * b.n_calls
        per_net = (b.padded_flops if padded else b.real_flops) / len(b.runs)  # all steps
        work += lanes * (step_s * b.static.steps + per_net / flops_per_s)
    return work / plan.n_devices + compile_s * len(plan.buckets) + overhead_s


def describe(plan, flops_per_s: float = DEFAULT_FLOPS_PER_S,
             compile_s: float = DEFAULT_COMPILE_S, step_s: float = DEFAULT_STEP_S, *,
             load_s: float | None = None, overhead_s: float = 0.0,
             source: str = "the planner's constants", notes: Sequence[str] = (),
             padded: bool = True, kernel_plan=None,
             build_s: float = 0.0, contention: float = 1.0) -> str:
    """The text `sweepnet plan` prints: buckets, padding, memory, and the time estimate of a
    cold run (and of a warm one, programs loaded from the cache, given ``load_s``) with the
    machine model (see ``machine.throughput``) and where it came from. ``padded``: the work is
    XLA's, at the programs' padded shapes; else the fused kernel's, at the real ones.

    ``kernel_plan``: this is a first run that builds the fused kernel in the background for
    ``build_s`` seconds: XLA's gradient trains until then, slowed ``contention`` times by the
    build beside it (the build takes one of the CPU's cores), and ``kernel_plan`` (the plan
    with the kernel) the rest, with a second compile; its warm re-run is all kernel."""
    n = len(plan.buckets)
    lines = [f"sweep {plan.spec.name!r}: {plural(len(plan.runs), 'network')} in "
             f"{plural(n, 'bucket')} ({plural(n, 'compile')}) on "
             f"{plural(plan.n_devices, 'device')}"]
    lines += [f"  {settings(plan.spec, section)}" for section in ("data", "train")]
    lines.append(f"{'bucket':>6} {'nets':>6} {'widths':>9} {'depths':>9} {'activations':>24} "
                 f"{'steps':>6} {'chunk':>6} {'calls':>5} {'mem/call':>9}")
    span = lambda v: f"{min(v)}-{max(v)}" if len(set(v)) > 1 else str(v[0])
    for b in plan.buckets:
        lines.append(f"{b.index:>6} {len(b.runs):>6} "
                     f"{span([r.config['width'] for r in b.runs]):>9} "
                     f"{span([r.config['depth'] for r in b.runs]):>9} "
                     f"{','.join(b.static.activations):>24} {b.static.steps:>6} {b.chunk:>6} "
                     f"{b.n_calls:>5} {b.memory_per_call / 2**20:>7.0f}MB")
    peak = max((b.memory_per_call for b in plan.buckets), default=0)
    lines.append(f"padding waste {plan.padding_waste:.1%} of FLOPs"
                 f"{'' if padded else ' (XLA only: the fused CPU kernel computes real shapes)'}"
                 f"; peak memory per call "
                 f"~{peak / 2**20:.0f} MB (limit {plan.max_memory / 2**20:.0f} MB)")
    cold = estimate_seconds(plan, flops_per_s, compile_s, step_s, overhead_s, padded)
    text = (f"estimated time {cold:.0f} s from empty caches ({plural(n, 'compile')} "
            f"~{compile_s:.1f} s each)")
    if kernel_plan is not None:
        xla = estimate_seconds(plan, flops_per_s, 0.0, step_s, 0.0, padded=True)
        kernel = estimate_seconds(kernel_plan, flops_per_s, 0.0, step_s, 0.0, padded=False)
        first = (compile_s * n + xla) * contention  # all of it beside the build
        if first <= build_s:
            cold = first + overhead_s
            text = (f"estimated time {cold:.0f} s for this first run from empty caches, with "
                    f"XLA's gradient, beside the CPU kernel's build in the background "
                    f"({plural(n, 'compile')} ~{compile_s:.1f} s each)")
        else:  # XLA trains the share it gets through while the kernel builds
            done = max(0.0, build_s / contention - compile_s * n) / xla
            cold = build_s + (1 - done) * kernel + compile_s * n + overhead_s
            text = (f"estimated time {cold:.0f} s for this first run from empty caches: XLA's "
                    f"gradient for the first ~{build_s:.0f} s while the CPU kernel builds and is "
                    f"measured in the background, then the kernel ({2 * n} compiles "
                    f"~{compile_s:.1f} s each)")
        padded = False  # later runs: the kernel's work
    if load_s is not None:
        warm = estimate_seconds(kernel_plan or plan, flops_per_s, load_s, step_s, overhead_s,
                                padded)
        text += f", {warm:.0f} s with the programs cached (~{load_s:.1f} s each)"
    lines.append(text)
    lines.append(f"  {flops_per_s / 1e9:.1f} GFLOP/s + {step_s * 1e6:.1f} us per network-step "
                 f"per device, {overhead_s:.0f} s a run besides; from {source}")
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)

