"""Grid → runs → compiled programs ("buckets") → calls: every decision a sweep takes.

A bucket is one compiled program (one :class:`~sweepnet.train.step.Static`). Only what fixes
array shapes or program structure splits programs: the dataset's input dimension and class
count, the arch, the optimizer, the batch mode, the step and eval schedule and the data sizes
(a *family*). Width, depth and activation are per-network values: a family's program is built
at its widest width and deepest depth and holds every activation its networks use (padded units
are masked, padded layers are exact identities; see :mod:`sweepnet.sweep.models`). So a whole
grid is usually one program. Inside a bucket, runs that use the same dataset draw form a *data
group*, and each call of the program trains one chunk of one group.

:func:`make_plan` decides, per bucket: the gradient (XLA's, or the fused CPU kernel's), the
networks per call (the *chunk*), the sub-batch a CPU device trains at once, every call (its
runs and how they lie on the devices' lanes) and the memory a call needs. The engine
(:mod:`sweepnet.engine.run`) carries a plan out and never asks it anything. When something
changes mid-run (the kernel became ready, a call ran out of memory) the engine makes a new plan
for what remains with this same function.

Calls are sized per platform: on CPU each device's share is trained in cache-sized sub-batches
(:func:`sub_batch`) and a call holds at most :data:`MAX_CHUNK_CPU` networks and :data:`CALL_S`
seconds of work by the cost model (or one sub-batch per device), so progress and a killed or
interrupted sweep lose little; on a GPU or TPU a call holds the device's whole share (up to
:data:`MAX_CHUNK_ACCEL` networks, sized from its memory), with no sub-batching.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import numpy as np

from sweepnet.core.errors import SweepnetError
from sweepnet.engine import cost
from sweepnet.kernel.ops import ACTIVATIONS as KERNEL_ACTIVATIONS
from sweepnet.sweep import data as data_lib
from sweepnet.sweep.models import n_params
from sweepnet.sweep.spec import DEFAULTS, Spec, seeded_ids
from sweepnet.train.step import Static

DEFAULT_MAX_MEMORY = 2 * 2**30
MAX_CHUNK_CPU = 1024  # networks a CPU call trains (a call is the unit of progress and resume)
MAX_CHUNK_ACCEL = 2**18  # an accelerator wants tens of thousands of networks a call
CACHE_BYTES = 2 * 2**20  # training activations one device keeps hot (about its L2 + some L3)
INTERIM_CALLS = 16  # while the kernel builds, XLA's calls are this many times shorter
# A CPU call lasts at most this long by the cost model (cost.network_seconds; on a 2-core CPU
# XLA's calls took about as long, the kernel's a sixth), or holds one sub-batch per device:
# Ctrl-C abandons the call in flight. Each call costs ~20 ms of CPU besides (olah.toml: 32
# calls instead of 5 cost 1% or less)
CALL_S = 5.0

XLA, FUSED, PENDING = "xla", "fused", "pending"  # gradients; PENDING: XLA's until the kernel


# the configuration keys a bucket's networks may differ in (and a run's seed)
PER_NETWORK = ("width", "depth", "activation", "learning_rate", "init_scale", "seed")


@dataclasses.dataclass(frozen=True)
class Run:
    """One network to train: its place in the grid, stable id, and flat configuration."""

    index: int
    run_id: str
    config: Mapping[str, Any]
    # Computed once (a grid of a million runs asks them several times a plan), and shared by
    # the runs of one configuration that differ only in seed (:func:`expand`):
    # the data group (:meth:`data_key`), and the configuration without its per-network values
    # (:data:`PER_NETWORK`), which with the activation decides the run's family (:func:`family`).
    key: tuple = dataclasses.field(default=None, repr=False, compare=False)
    kind: tuple = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        c = self.config
        if self.key is None:
            object.__setattr__(self, "key", (
                c["dataset"], tuple(sorted(self.data_params().items())),
                c["n_train"], c["n_test"], c["noise"], c["data_seed"]))
        if self.kind is None:
            object.__setattr__(self, "kind", tuple(sorted(
                (k, v) for k, v in c.items() if k not in PER_NETWORK)))

    def data_params(self) -> dict[str, Any]:
        return {k[5:]: v for k, v in self.config.items() if k.startswith("data_")
                and k != "data_seed"}

    def data_key(self) -> tuple:
        """Runs with equal data keys train on the very same points."""
        return self.key


@dataclasses.dataclass(frozen=True)
class Call:
    """One call of a bucket's program: ``runs`` (in grid order: the part it writes) on the
    call's ``lanes`` (``chunk`` of them, each device's share contiguous, padding lanes repeat a
    run), ``where[i]`` the lane of ``runs[i]``. ``data`` is the data group's key (dataset, its
    parameters, sizes, noise, data seed: :meth:`Run.data_key`); ``first`` marks the first call
    of a data group (the engine loads that group's data there)."""

    runs: tuple[Run, ...]
    lanes: tuple[Run, ...]
    where: np.ndarray
    data: tuple
    first: bool


@dataclasses.dataclass
class Bucket:
    """One program and the decisions for its runs (``runs``: this plan's share of the bucket,
    finished ones included; ``todo``: the unfinished ones, which ``calls`` train). The
    decisions are plain values: the engine reads them and asks nothing back."""

    index: int
    static: Static
    runs: list[Run]
    chunk: int = 0  # networks per call (a multiple of the device count)
    gradient: str = XLA  # XLA, FUSED, or PENDING (XLA's until the kernel is ready)
    fused: bool = False  # the fused CPU kernel computes the gradient (gradient == FUSED)
    sub_batch: int = 0  # networks a CPU device trains at once (0: the whole share, off CPU)
    calls: list[Call] = dataclasses.field(default_factory=list)
    todo: list[Run] = dataclasses.field(default_factory=list)
    memory_per_call: int = 0  # bytes a call needs on the device (estimated)
    # mean FLOPs of a network-step of ``todo`` as each gradient computes it (the kernel at each
    # network's real shape, XLA's at the padded one): {"xla": ..., "fused": ...}
    step_flops: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def n_calls(self) -> int:
        return len(self.calls)

    def groups(self) -> dict[tuple, list[Run]]:
        return groups(self.runs)

    @property
    def padded_flops(self) -> float:
        return len(self.runs) * cost.step_flops(self.static) * self.static.steps

    @property
    def real_flops(self) -> float:
        per_step = sum(cost.run_step_flops(self.static, r) for r in self.runs)
        return per_step * self.static.steps


@dataclasses.dataclass
class Plan:
    spec: Spec
    runs: list[Run]  # the whole grid
    buckets: list[Bucket]
    n_devices: int
    max_memory: int
    platform: str = "cpu"
    shard: tuple[int, int] = (0, 1)

    @property
    def padding_waste(self) -> float:
        padded = sum(b.padded_flops for b in self.buckets)
        return 1 - sum(b.real_flops for b in self.buckets) / padded if padded else 0.0

    def estimate_seconds(self, *args, **kwargs) -> float:
        """:func:`sweepnet.engine.cost.estimate_seconds` of this plan."""
        return cost.estimate_seconds(self, *args, **kwargs)


def groups(runs: Sequence[Run]) -> dict[tuple, list[Run]]:
    """``runs`` by data group, in order of first appearance."""
    out: dict[tuple, list[Run]] = defaultdict(list)
    for r in runs:
        out[r.key].append(r)
    return dict(out)


def dims(config: Mapping[str, Any]) -> tuple[int, int]:
    """``(in_dim, n_out)`` of a run's dataset (n_out is 1 for binary problems)."""
    ds = data_lib.DATASETS[config["dataset"]]
    params = {k[5:]: v for k, v in config.items() if k.startswith("data_")}
    k = ds.n_classes(params)
    return ds.dim(params), (1 if k == 2 else k)


def expand(spec: Spec) -> list[Run]:
    """The runs of ``spec``'s grid, in grid order; the seeds of one configuration share its
    data key and kind."""
    runs: list[Run] = []
    for base, seeds in spec.combos():
        first = None
        for seed, rid in zip(seeds, seeded_ids(base, seeds), strict=True):
            cfg = {**base, "seed": seed}
            if first is None:
                first = Run(len(runs), rid, cfg)
                runs.append(first)
            else:
                runs.append(Run(len(runs), rid, cfg, first.key, first.kind))
    return runs


def static_of(cfg: Mapping[str, Any], width: int, depth: int | None = None,
              activations: tuple[str, ...] | None = None) -> Static:
    """The program of run configuration ``cfg`` at ``width`` (and ``depth``, ``activations``,
    default the run's own): ``static_of(cfg, cfg["width"])`` is the network alone."""
    in_dim, n_out = dims(cfg)
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
                  n_train=n_train, n_test=n_test,
                  lr_decay=cfg.get("lr_decay", DEFAULTS["lr_decay"]),
                  lr_decay_every=cfg.get("lr_decay_every", DEFAULTS["lr_decay_every"]))


def family(cfg: Mapping[str, Any]) -> Static:
    """What splits programs: the run's :class:`Static` without width, depth and activation,
    except that activations the fused CPU kernel lacks (elu, gelu, ...) get a program of their
    own, so that they do not take the kernel from the rest of the grid. (This depends on the
    kernel's source, never on whether this machine built it.)"""
    own = cfg["activation"] in KERNEL_ACTIVATIONS
    return static_by_kind(cfg, depth=0, activations=("" if own else "other",))


def family_of(run: Run) -> Static:
    """:func:`family` of ``run.config``, cached by the run's kind."""
    width = run.config["width"] if run.config["arch"] == "resnet" else None
    try:
        return _family_of_kind(run.kind, width, run.config["activation"] in KERNEL_ACTIVATIONS)
    except TypeError:  # an unhashable value (never from a spec): not cached
        return family(run.config)


@functools.lru_cache(maxsize=1024)
def _family_of_kind(kind: tuple, width: int | None, own: bool) -> Static:
    return static_of({**dict(kind), "width": width or 0}, 0, 0, ("" if own else "other",))



def static_by_kind(cfg: Mapping[str, Any], depth: int | None = None,
                   activations: tuple[str, ...] | None = None) -> Static:
    """``static_of(cfg, 0, depth, activations)``, computed once per kind of run: runs that
    differ only in per-network values (:data:`PER_NETWORK`) share it, except the depth and
    activation it takes from ``cfg`` when not given (a grid of a million runs asks it of every
    run, in every plan)."""
    keep = {"depth"} if depth is None else set()
    keep |= {"activation"} if activations is None else set()
    key = tuple(sorted((k, v) for k, v in cfg.items() if k not in PER_NETWORK or k in keep))
    width = cfg["width"] if cfg["arch"] == "resnet" else None  # a resnet's width is checked
    try:
        return _static_of_kind(key, width, depth, activations)
    except TypeError:  # an unhashable value (never from a spec): not cached
        return static_of(cfg, 0, depth, activations)


@functools.lru_cache(maxsize=1024)
def _static_of_kind(key: tuple, width: int | None, depth: int | None,
                    activations: tuple[str, ...] | None) -> Static:
    return static_of({**dict(key), "width": width or 0}, 0, depth, activations)


def shard_runs(runs: Sequence[Run], grid: Sequence[Run], index: int, count: int) -> list[Run]:
    """Shard ``index`` of ``count`` of ``runs``: deal the ``grid`` round-robin in (bucket
    family, width, grid) order and keep the runs dealt to ``index``.

    The order depends on the spec only (not on devices), so shards on different machines
    split the grid into disjoint, balanced parts.
    """
    fam: dict[Static, int] = {}
    of = {r.run_id: static_by_kind(r.config) for r in grid}  # static_of(r.config, 0)
    for r in grid:
        fam.setdefault(of[r.run_id], len(fam))
    order = sorted(grid, key=lambda r: (fam[of[r.run_id]], r.config["width"], r.index))
    chosen = {r.run_id for r in order[index::count]}
    return [r for r in runs if r.run_id in chosen]


def make_plan(spec: Spec, n_devices: int = 1, max_memory: int | None = None,
              runs: Sequence[Run] | None = None, platform: str = "cpu", fused: bool = False, *,
              shard: tuple[int, int] = (0, 1), done: Collection[str] = (),
              gradient: Callable[[Static], str] | None = None,
              max_chunk: Mapping[int, int] | None = None) -> Plan:
    """Every decision for training ``runs`` (default: the whole grid) of ``spec``.

    Buckets depend on the spec alone (the whole grid's families, their widest width and
    deepest depth), so every machine, shard and resumed run pads a network the same way.
    Per bucket, the plan decides for this ``shard`` (``(index, count)`` of a job array, see
    :func:`shard_runs`):

    - the gradient: ``gradient(static)`` (:data:`XLA`, :data:`FUSED` or :data:`PENDING`, asked
      only of buckets with runs to train), or without it :data:`FUSED` if ``fused`` else
      :data:`XLA` for every bucket;
    - the chunk (networks per call, :func:`chunk_size`), cut from the shard's whole bucket,
      finished runs included: XLA's round-off depends on how many networks a call holds, so a
      resumed sweep must make calls of the same size to reproduce the uninterrupted one bit for
      bit. :data:`PENDING`: shorter calls (:func:`interim_chunk`). ``max_chunk[bucket]`` caps it
      (the engine halves it after running out of device memory);
    - the sub-batch on CPU (:func:`sub_batch`);
    - the calls that train the runs not in ``done``, laid out on the devices (:func:`lay_out`).
    """
    max_memory = max_memory or DEFAULT_MAX_MEMORY
    grid = expand(spec) if runs is None else list(runs)
    index, count = shard
    mine = {r.run_id for r in shard_runs(grid, grid, index, count)} if count > 1 else None
    families: dict[Static, list[Run]] = defaultdict(list)
    for r in grid:
        families[family_of(r)].append(r)
    done = set(done)
    buckets: list[Bucket] = []
    for fam, members in families.items():
        static = dataclasses.replace(
            fam, width=max(r.config["width"] for r in members),
            depth=max(r.config["depth"] for r in members),
            activations=tuple(sorted({r.config["activation"] for r in members})))
        share = members if mine is None else [r for r in members if r.run_id in mine]
        bucket = Bucket(len(buckets), static, share)
        buckets.append(bucket)
        todo = [r for r in share if r.run_id not in done]
        if not todo:
            continue
        how = gradient(static) if gradient else FUSED if fused else XLA
        cap = (max_chunk or {}).get(bucket.index)
        decide(bucket, todo, how, n_devices, max_memory, platform, cap)
    return Plan(spec, grid, buckets, n_devices, max_memory, platform, shard)


def decide(bucket: Bucket, todo: Sequence[Run], how: str, n_devices: int, max_memory: int,
           platform: str, cap: int | None = None) -> None:
    """Fill in ``bucket``'s gradient, chunk, sub-batch and the calls that train ``todo``."""
    fused = how == FUSED
    chunk = chunk_size(bucket.static, bucket.runs, n_devices, max_memory, platform, fused,
                       CALL_S)
    if how == PENDING:
        chunk = interim_chunk(bucket.static, chunk, n_devices)
    if cap is not None:
        chunk = min(chunk, cap)
    bucket.gradient, bucket.fused, bucket.chunk, bucket.todo = how, fused, chunk, list(todo)
    bucket.sub_batch = sub_batch(bucket.static, fused) if platform == "cpu" else 0
    bucket.memory_per_call = chunk * cost.bytes_per_network(bucket.static)
    bucket.step_flops = {
        XLA: float(cost.step_flops(bucket.static)),
        FUSED: float(np.mean([cost.run_step_flops(bucket.static, r) for r in todo]))}
    work = (lambda r: cost.run_step_flops(bucket.static, r)) if fused else (lambda r: 1.0)
    for key, group in groups(todo).items():
        for i, part in enumerate(split(group, -(-len(group) // chunk))):
            lanes, where = lay_out(part, chunk, n_devices, work)
            bucket.calls.append(Call(tuple(part), tuple(lanes), where, key, i == 0))


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
               platform: str = "cpu", fused: bool = False, call_s: float | None = None) -> int:
    """Networks per call: fits ``max_memory`` (and :data:`MAX_CHUNK_CPU` on CPU,
    :data:`MAX_CHUNK_ACCEL` elsewhere), is a multiple of ``n_devices`` (so the network axis
    shards evenly), on CPU splits each device's share into equal sub-batches of at most
    ``sub_batch(static, fused)``, and divides the largest data group into calls of equal size.
    ``call_s`` (CPU): a call takes at most that many seconds by the cost model
    (:func:`~sweepnet.engine.cost.network_seconds`), or holds one sub-batch per device.

    Equal calls matter: a group of 4,096 (8, 4) networks with room for 2,040 a call was cut
    2,040 + 2,040 + 16, and the last call, padded to 2,040 lanes, trained 2,024 copies for
    nothing (a third of the work); it is now three calls of 1,366.
    """
    largest = max(len(g) for g in groups(runs).values())
    cpu = platform == "cpu"
    sub = sub_batch(static, fused) if cpu else MAX_CHUNK_ACCEL  # no sub-batches off CPU
    limit = MAX_CHUNK_CPU if cpu else MAX_CHUNK_ACCEL
    if cpu and call_s is not None:  # whole sub-batches: smaller ones train slower a network
        fit = int(call_s * n_devices / cost.network_seconds(static, runs, fused))
        limit = min(limit, max(fit, n_devices * sub))
    limit = min(max(1, int(max_memory // cost.bytes_per_network(static))), limit)
    calls = -(-largest // limit)
    while True:
        chunk = whole_lanes(-(-largest // calls), n_devices, sub)
        if chunk <= limit or calls >= largest:
            return chunk
        calls += 1  # rounding up to whole sub-batches overshot the memory limit


def interim_chunk(static: Static, chunk: int, n_devices: int) -> int:
    """Networks per call with XLA's gradient while the fused kernel is being built: about
    ``chunk / INTERIM_CALLS`` (whole sub-batches on every device), so that the bucket switches
    to the kernel soon after it is ready (a call of 832 (8, 8) networks takes XLA minutes); never
    less than a full sub-batch per device (short buckets keep their calls)."""
    sub = sub_batch(static)
    target = max(chunk // INTERIM_CALLS, n_devices * sub)
    if target >= chunk:
        return chunk
    return min(chunk, whole_lanes(-(-chunk // -(-chunk // target)), n_devices, sub))


def whole_lanes(n: int, n_devices: int, sub: int) -> int:
    """The fewest lanes ``>= n`` that give every device ``k`` equal sub-batches of ``<= sub``."""
    share = -(-n // n_devices)
    k = -(-share // sub)
    return n_devices * k * -(-share // k)


def split(runs: Sequence[Run], n_calls: int) -> list[list[Run]]:
    """Cut ``runs`` into ``n_calls`` calls of (nearly) equal size, in grid order (the devices'
    work is balanced within each call, by :func:`lay_out`)."""
    base, extra = divmod(len(runs), n_calls)
    bounds = np.cumsum([0] + [base + (c < extra) for c in range(n_calls)])
    return [list(runs[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def lay_out(runs: Sequence[Run], size: int, n_dev: int, work: Callable[[Run], float]
            ) -> tuple[list[Run], np.ndarray]:
    """Lay one call's ``runs`` out on ``size`` lanes so that every device's contiguous share
    holds about equal ``work``: dearest first, each to the device with the least work so far
    (padding lanes repeat the cheapest run, and cost as much). Returns the lanes and, for each
    of ``runs``, its lane."""
    costs = [work(r) for r in runs]
    order = sorted(range(len(runs)), key=lambda i: (-costs[i], runs[i].index))
    order += [order[-1]] * (size - len(order))
    share = size // n_dev
    load, slots = [0.0] * n_dev, [[] for _ in range(n_dev)]
    for i in order:
        d = min((d for d in range(n_dev) if len(slots[d]) < share), key=lambda d: load[d])
        slots[d].append(i)
        load[d] += costs[i]
    out: list[Run] = []
    where = np.zeros(len(runs), np.int64)
    placed = set()
    for d in range(n_dev):
        for j, i in enumerate(slots[d]):
            out.append(runs[i])
            if i not in placed:  # a padding lane repeats a run already placed
                placed.add(i)
                where[i] = d * share + j
    return out, where
