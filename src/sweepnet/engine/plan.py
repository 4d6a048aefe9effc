"""Grid → runs → compiled programs ("buckets").

A bucket is one compiled program (one :class:`~sweepnet.train.step.Static`). Only what fixes array
shapes or program structure splits programs: the dataset's input dimension and class count,
the arch, the optimizer, the batch mode, the step and eval schedule and the data sizes (a
*family*). Width, depth and activation are per-network values: a family's program is built at
its widest width and deepest depth and holds every activation its networks use (padded units
are masked, padded layers are exact identities; see :mod:`sweepnet.sweep.models`). So a whole grid
is usually one program. Inside a bucket, runs that use the same dataset draw form a *data
group*, and each call of the program trains one chunk of one group.

Calls are sized per platform: on CPU each device's share is trained in cache-sized sub-batches
(:func:`sub_batch`) and a call holds at most :data:`MAX_CHUNK_CPU` networks, so progress and a
killed sweep lose little; on a GPU or TPU a call holds the device's whole share (up to
:data:`MAX_CHUNK_ACCEL` networks, sized from its memory), with no sub-batching.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sweepnet.core.errors import SweepnetError
from sweepnet.kernel.ops import ACTIVATIONS as KERNEL_ACTIVATIONS
from sweepnet.sweep import data as data_lib
from sweepnet.sweep.models import n_params
from sweepnet.sweep.spec import Spec, run_id
from sweepnet.train.step import TEST_BLOCK, Static

# Machine model for choosing buckets: fixed constants (never measured), so that a run's padded
# width does not depend on the machine. Close to `bench.calibrate()` on a 2-core CPU, where a
# network-step costs a fixed ~25 us (elementwise work, loop overhead) plus its FLOPs at ~10
# GFLOP/s per device, and a bucket compiles in ~10 s: padding narrow networks is cheap, compiles
# are not. `sweepnet plan` prints its time estimate with the measured figures instead.
DEFAULT_FLOPS_PER_S = 1e10
DEFAULT_STEP_S = 25e-6
DEFAULT_COMPILE_S = 10.0
DEFAULT_MAX_MEMORY = 2 * 2**30
MAX_CHUNK_CPU = 1024  # networks a CPU call trains (a call is the unit of progress and resume)
MAX_CHUNK_ACCEL = 2**18  # an accelerator wants tens of thousands of networks a call


@dataclasses.dataclass(frozen=True)
class Run:
    """One network to train: its place in the grid, stable id, and flat configuration."""

    index: int
    run_id: str
    config: Mapping[str, Any]

    def data_params(self) -> dict[str, Any]:
        return {k[5:]: v for k, v in self.config.items() if k.startswith("data_")
                and k != "data_seed"}

    def data_key(self) -> tuple:
        """Runs with equal data keys train on the very same points."""
        c = self.config
        return (c["dataset"], tuple(sorted(self.data_params().items())), c["n_train"],
                c["n_test"], c["noise"], c["data_seed"])


@dataclasses.dataclass
class Bucket:
    index: int
    static: Static
    runs: list[Run]
    chunk: int  # networks per call (a multiple of the device count)

    def groups(self) -> dict[tuple, list[Run]]:
        out: dict[tuple, list[Run]] = defaultdict(list)
        for r in self.runs:
            out[r.data_key()].append(r)
        return dict(out)

    @property
    def padded_flops(self) -> float:
        return len(self.runs) * step_flops(self.static) * self.static.steps

    @property
    def real_flops(self) -> float:
        per_step = sum(run_step_flops(self.static, r) for r in self.runs)
        return per_step * self.static.steps


@dataclasses.dataclass
class Plan:
    spec: Spec
    runs: list[Run]
    buckets: list[Bucket]
    n_devices: int
    max_memory: int

    @property
    def padding_waste(self) -> float:
        padded = sum(b.padded_flops for b in self.buckets)
        return 1 - sum(b.real_flops for b in self.buckets) / padded if padded else 0.0

    def estimate_seconds(self, flops_per_s: float = DEFAULT_FLOPS_PER_S,
                         compile_s: float = DEFAULT_COMPILE_S, step_s: float = 0.0,
                         overhead_s: float = 0.0, padded: bool = True) -> float:
        """Compiles plus every call's work plus a run's fixed ``overhead_s``: each network-step
        costs ``step_s`` (fixed, per device) plus its FLOPs at ``flops_per_s`` (see
        ``bench.throughput``). ``compile_s`` is a bucket's program: compiled (a cold run) or
        loaded from the program cache (a warm one). ``padded``: the programs compute at their
        padded shapes (XLA's gradient); else at each network's real shape (the fused CPU
        kernel reads them)."""
        work = 0.0
        for b in self.buckets:
            lanes = b.chunk * sum(math.ceil(len(g) / b.chunk) for g in b.groups().values())
            per_net = (b.padded_flops if padded else b.real_flops) / len(b.runs)  # all steps
            work += lanes * (step_s * b.static.steps + per_net / flops_per_s)
        return work / self.n_devices + compile_s * len(self.buckets) + overhead_s


def _dims(config: Mapping[str, Any]) -> tuple[int, int]:
    """``(in_dim, n_out)`` of a run's dataset (n_out is 1 for binary problems)."""
    ds = data_lib.DATASETS[config["dataset"]]
    params = {k[5:]: v for k, v in config.items() if k.startswith("data_")}
    k = ds.n_classes(params)
    return ds.dim(params), (1 if k == 2 else k)


# An activation and its derivative at one unit, in FLOP-equivalents (a transcendental one is a
# rational or exp/log approximation of a dozen or more multiply-adds, and a division)
ACTIVATION_FLOPS = {"tanh": 20, "sigmoid": 20, "softplus": 30, "elu": 20, "gelu": 30,
                    "silu": 20, "sin": 20, "relu": 2, "leaky_relu": 3, "linear": 0}


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


def run_step_flops(static: Static, run: Run) -> float:
    """:func:`step_flops` of ``run``'s own network (its width, depth and activation), as the
    fused kernel computes it inside program ``static``."""
    return step_flops(static, run.config["width"], run.config["depth"], run.config["activation"])


def bytes_per_network(static: Static) -> int:
    """Estimated peak bytes one network of a chunk needs on the device (float32)."""
    w, d = static.width, static.depth
    n_par = n_params(static.arch, static.in_dim, w, d, static.n_out)
    batch = static.batch_size or static.n_train
    acts = 4 * d * w * max(batch, min(static.n_test, TEST_BLOCK))  # pre/post activations + grads
    curves = 3 * len(static.eval_steps)
    return 4 * (8 * n_par + acts + curves)


def expand(spec: Spec) -> list[Run]:
    return [Run(i, run_id(cfg), cfg) for i, cfg in enumerate(spec.grid())]


def static_of(cfg: Mapping[str, Any], width: int, depth: int | None = None,
            activations: tuple[str, ...] | None = None) -> Static:
    """The program of run configuration ``cfg`` at ``width`` (and ``depth``, ``activations``,
    default the run's own): ``static_of(cfg, cfg["width"])`` is the network alone."""
    in_dim, n_out = _dims(cfg)
    if cfg["arch"] == "resnet" and cfg["width"] < in_dim:
        raise SweepnetError(f"model.width: a resnet's state width {cfg['width']} is below the "
                            f"input dimension {in_dim} of {cfg['dataset']}")
    params = {k[5:]: v for k, v in cfg.items() if k.startswith("data_") and k != "data_seed"}
    n_train, n_test = data_lib.sizes(cfg["dataset"], params, cfg["n_train"], cfg["n_test"])
    return Static(arch=cfg["arch"], in_dim=in_dim, n_out=n_out, width=width,
                  depth=cfg["depth"] if depth is None else depth,
                  activations=activations or (cfg["activation"],),
                  optimizer=cfg["optimizer"], steps=cfg["steps"],
                  eval_every=cfg["eval_every"], batch_size=cfg["batch_size"],
                  n_train=n_train, n_test=n_test)


def family(cfg: Mapping[str, Any]) -> Static:
    """What splits programs: the run's :class:`Static` without width, depth and activation,
    except that activations the fused CPU kernel lacks (elu, gelu, ...) get a program of their
    own, so that they do not take the kernel from the rest of the grid. (This depends on the
    kernel's source, never on whether this machine built it.)"""
    return static_of(cfg, 0, 0, ("" if cfg["activation"] in KERNEL_ACTIVATIONS else "other",))


def make_plan(spec: Spec, n_devices: int = 1, max_memory: int | None = None,
              runs: Sequence[Run] | None = None, platform: str = "cpu",
              fused: bool = False) -> Plan:
    """One bucket per family of ``runs`` (default: the whole grid), and its chunk size.

    ``platform`` (``"cpu"``, ``"gpu"``, ``"tpu"``) and ``fused`` (the CPU kernel trains it)
    choose how calls are cut (:func:`chunk_size`); the buckets themselves depend on the spec
    alone, so every machine pads a run the same way.
    """
    max_memory = max_memory or DEFAULT_MAX_MEMORY
    runs = expand(spec) if runs is None else list(runs)
    families: dict[Static, list[Run]] = defaultdict(list)
    for r in runs:
        families[family(r.config)].append(r)
    buckets: list[Bucket] = []
    for fam, members in families.items():
        static = dataclasses.replace(
            fam, width=max(r.config["width"] for r in members),
            depth=max(r.config["depth"] for r in members),
            activations=tuple(sorted({r.config["activation"] for r in members})))
        buckets.append(Bucket(len(buckets), static, members,
                              chunk_size(static, members, n_devices, max_memory, platform,
                                         fused)))
    return Plan(spec, runs, buckets, n_devices, max_memory)


CACHE_BYTES = 2 * 2**20  # training activations one device keeps hot (about its L2 + some L3)


def sub_batch(static: Static, fused: bool = False) -> int:
    """Networks one CPU device trains at once inside a call (the engine maps over sub-batches).

    XLA's gradient: sized so that their training activations (pre-activations, activations and
    their gradients, ``depth x width x batch`` floats each) fit :data:`CACHE_BYTES`: on a
    2-core CPU 64 (3, 2) networks ran 2x faster per network than 1024, and 16 (16, 4) networks
    1.6x faster than 256. At least 8, so small programs still amortise per-op overhead.
    ``fused``: the kernel keeps activations in registers, and XLA touches only the parameters
    and optimizer state (about 8 floats a parameter), so those must fit; at most 64 (56-256
    (3, 2) networks ran within 5% of each other, 512 was 10% slower).
    """
    if fused:
        n_par = n_params(static.arch, static.in_dim, static.width, static.depth, static.n_out)
        return max(8, min(64, CACHE_BYTES // (32 * n_par)))
    batch = static.batch_size or static.n_train
    per_net = 4 * 3 * static.depth * max(static.width, static.n_out) * batch
    return max(8, min(MAX_CHUNK_CPU, CACHE_BYTES // per_net))


def chunk_size(static: Static, runs: Sequence[Run], n_devices: int, max_memory: int,
               platform: str = "cpu", fused: bool = False) -> int:
    """Networks per call: fits ``max_memory`` (and :data:`MAX_CHUNK_CPU` on CPU,
    :data:`MAX_CHUNK_ACCEL` elsewhere), is a multiple of ``n_devices`` (so the network axis
    shards evenly), on CPU splits each device's share into equal sub-batches of at most
    ``sub_batch(static, fused)`` (see ``engine.bucket_fn``), and divides the largest data group
    into calls of equal size.

    Equal calls matter: a group of 4,096 (8, 4) networks with room for 2,040 a call was cut
    2,040 + 2,040 + 16, and the last call, padded to 2,040 lanes, trained 2,024 copies for
    nothing (a third of the work); it is now three calls of 1,366.
    """
    largest = max(len(g) for g in Bucket(0, static, list(runs), 1).groups().values())
    cpu = platform == "cpu"
    limit = min(max(1, int(max_memory // bytes_per_network(static))),
                MAX_CHUNK_CPU if cpu else MAX_CHUNK_ACCEL)
    sub = sub_batch(static, fused) if cpu else MAX_CHUNK_ACCEL  # no sub-batches off CPU
    calls = -(-largest // limit)
    while True:
        chunk = _lanes(-(-largest // calls), n_devices, sub)
        if chunk <= limit or calls >= largest:
            return chunk
        calls += 1  # rounding up to whole sub-batches overshot the memory limit


INTERIM_CALLS = 16  # while the kernel builds, XLA's calls are this many times shorter


def interim_chunk(static: Static, chunk: int, n_devices: int) -> int:
    """Networks per call with XLA's gradient while the fused kernel is being built: about
    ``chunk / INTERIM_CALLS`` (whole sub-batches on every device), so that the bucket switches
    to the kernel soon after it is ready (a call of 832 (8, 8) networks takes XLA minutes); never
    less than a full sub-batch per device (short buckets keep their calls)."""
    sub = sub_batch(static)
    target = max(chunk // INTERIM_CALLS, n_devices * sub)
    if target >= chunk:
        return chunk
    return min(chunk, _lanes(-(-chunk // -(-chunk // target)), n_devices, sub))


def _lanes(n: int, n_devices: int, sub: int) -> int:
    """The fewest lanes ``>= n`` that give every device ``k`` equal sub-batches of ``<= sub``."""
    share = -(-n // n_devices)
    k = -(-share // sub)
    return n_devices * k * -(-share // k)


def describe(plan: Plan, flops_per_s: float = DEFAULT_FLOPS_PER_S,
             compile_s: float = DEFAULT_COMPILE_S, step_s: float = DEFAULT_STEP_S, *,
             load_s: float | None = None, overhead_s: float = 0.0,
             source: str = "the planner's constants", notes: Sequence[str] = (),
             padded: bool = True, kernel_plan: Plan | None = None,
             build_s: float = 0.0, contention: float = 1.0) -> str:
    """The text `sweepnet plan` prints: buckets, padding, memory, and the time estimate of a
    cold run (and of a warm one, programs loaded from the cache, given ``load_s``) with the
    machine model (see ``bench.throughput``) and where it came from. ``padded``: the work is
    XLA's, at the programs' padded shapes; else the fused kernel's, at the real ones.

    ``kernel_plan``: this is a first run that builds the fused kernel in the background for
    ``build_s`` seconds: XLA's gradient trains until then, slowed ``contention`` times by the
    build beside it (the build takes one of the CPU's cores), and ``kernel_plan`` (the plan
    with the kernel) the rest, with a second compile; its warm re-run is all kernel."""
    lines = [f"sweep {plan.spec.name!r}: {len(plan.runs)} networks in {len(plan.buckets)} "
             f"buckets ({len(plan.buckets)} compiles) on {plan.n_devices} device(s)"]
    lines.append(f"{'bucket':>6} {'nets':>6} {'widths':>9} {'depths':>9} {'activations':>24} "
                 f"{'steps':>6} {'chunk':>6} {'calls':>5} {'mem/call':>9}")
    span = lambda v: f"{min(v)}-{max(v)}" if len(set(v)) > 1 else str(v[0])
    for b in plan.buckets:
        calls = sum(math.ceil(len(g) / b.chunk) for g in b.groups().values())
        mem = b.chunk * bytes_per_network(b.static)
        lines.append(f"{b.index:>6} {len(b.runs):>6} "
                     f"{span([r.config['width'] for r in b.runs]):>9} "
                     f"{span([r.config['depth'] for r in b.runs]):>9} "
                     f"{','.join(b.static.activations):>24} {b.static.steps:>6} {b.chunk:>6} "
                     f"{calls:>5} {mem / 2**20:>7.0f}MB")
    peak = max((b.chunk * bytes_per_network(b.static) for b in plan.buckets), default=0)
    lines.append(f"padding waste {plan.padding_waste:.1%} of FLOPs"
                 f"{'' if padded else ' (XLA only: the fused CPU kernel computes real shapes)'}"
                 f"; peak memory per call "
                 f"~{peak / 2**20:.0f} MB (limit {plan.max_memory / 2**20:.0f} MB)")
    n = len(plan.buckets)
    cold = plan.estimate_seconds(flops_per_s, compile_s, step_s, overhead_s, padded)
    text = f"estimated time {cold:.0f} s from empty caches ({n} compiles ~{compile_s:.1f} s each)"
    if kernel_plan is not None:
        xla = plan.estimate_seconds(flops_per_s, 0.0, step_s, 0.0, padded=True)
        kernel = kernel_plan.estimate_seconds(flops_per_s, 0.0, step_s, 0.0, padded=False)
        first = (compile_s * n + xla) * contention  # all of it beside the build
        if first <= build_s:
            cold = first + overhead_s
            text = (f"estimated time {cold:.0f} s for this first run from empty caches, with "
                    f"XLA's gradient, beside the CPU kernel's build in the background ({n} "
                    f"compiles ~{compile_s:.1f} s each)")
        else:  # XLA trains the share it gets through while the kernel builds
            done = max(0.0, build_s / contention - compile_s * n) / xla
            cold = build_s + (1 - done) * kernel + compile_s * n + overhead_s
            text = (f"estimated time {cold:.0f} s for this first run from empty caches: XLA's "
                    f"gradient for the first ~{build_s:.0f} s while the CPU kernel builds and is "
                    f"measured in the background, then the kernel ({2 * n} compiles "
                    f"~{compile_s:.1f} s each)")
        padded = False  # later runs: the kernel's work
    if load_s is not None:
        warm = (kernel_plan or plan).estimate_seconds(flops_per_s, load_s, step_s, overhead_s,
                                                       padded)
        text += f", {warm:.0f} s with the programs cached (~{load_s:.1f} s each)"
    lines.append(text)
    lines.append(f"  {flops_per_s / 1e9:.1f} GFLOP/s + {step_s * 1e6:.1f} us per network-step "
                 f"per device, {overhead_s:.0f} s a run besides; from {source}")
    lines += [f"  {note}" for note in notes]
    return "\n".join(lines)
