"""Carry out a plan: compile each bucket's program, make its calls, write each call's part.

:func:`run_sweep` plans (:func:`sweepnet.engine.plan.make_plan`), opens the results folder,
plans again for what is left there, and hands each bucket to :func:`train_bucket`, which makes
the bucket's calls exactly as planned and never asks the plan anything. Two events end a
bucket's calls early, and each gets a new plan for what remains from the same function: the
fused CPU kernel became ready while XLA's gradient trained (:class:`KernelReady`), or a call ran
out of device memory (:class:`OutOfMemory`). The next call is dispatched before the previous
one's results are written, so disk I/O overlaps compute.

Ctrl-C or SIGTERM stops a sweep at once (:mod:`sweepnet.engine.stop`): every call that has
finished is written, the manifest says the sweep is incomplete, and
:class:`~sweepnet.core.errors.Interrupted` goes up to the caller; the calls still in flight are
abandoned (their networks train on resume).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import math
import os
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm import tqdm

from sweepnet.core.errors import Interrupted, SweepnetError
from sweepnet.core.host import __version__
from sweepnet.core.words import plural
from sweepnet.engine import adaptive as adaptive_lib
from sweepnet.engine import distributed, programs, segments, stop
from sweepnet.engine import plan as plan_lib
from sweepnet.engine.plan import Bucket, Run
from sweepnet.kernel import choice as fused_lib
from sweepnet.store import results
from sweepnet.sweep import data as data_lib
from sweepnet.sweep.spec import Spec
from sweepnet.train.separation import make_probe
from sweepnet.train.step import Data, Hyper, Static, make_data, make_train


def run_seed(run_id: str) -> int:
    """The PRNG seed of a run: the first 32 bits of its configuration hash."""
    return int(run_id[:8], 16)


def chunk_inputs(runs: Sequence[Run], size: int, static: Static | None = None
                 ) -> tuple[np.ndarray, Hyper]:
    """Per-network inputs of one call, padded to ``size`` lanes by repeating the last run.

    ``static``: the program, whose ``activations`` the runs' activation ids index (default:
    each run alone, as ``plan.static_of(config, width)``).
    """
    lanes = list(runs) + [runs[-1]] * (size - len(runs))
    acts = static.activations if static is not None else (lanes[0].config["activation"],)
    seeds = np.asarray([run_seed(r.run_id) for r in lanes], np.uint32)
    hyper = Hyper(
        width=np.asarray([r.config["width"] for r in lanes], np.int32),
        learning_rate=np.asarray([r.config["learning_rate"] for r in lanes], np.float32),
        init_scale=np.asarray([r.config["init_scale"] for r in lanes], np.float32),
        depth=np.asarray([r.config["depth"] for r in lanes], np.int32),
        activation=np.asarray([acts.index(r.config["activation"]) for r in lanes], np.int32),
    )
    return seeds, hyper


def load_data(static: Static, run: Run) -> Data:
    """The data ``run`` trains on, as program ``static`` takes it."""
    return load_group(static, run.data_key())


def load_group(static: Static, key: tuple) -> Data:
    """The data of a data group (``key``: :meth:`~sweepnet.engine.plan.Run.data_key`)."""
    dataset, params, n_train, n_test, noise, data_seed = key
    params = dict(params)
    split = data_lib.make_split(dataset, params, n_train, n_test, noise, data_seed)
    probe = make_probe(dataset, params, static.in_dim)  # sweepnet.train.separation
    return make_data(static, *split, probe=probe)


COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


@contextlib.contextmanager
def compile_clock(stats: dict):
    """Add the seconds JAX spends tracing, lowering and compiling inside the block to
    ``stats["compile_s"]`` (the data programs: a cold bucket's data took 1.5 s, mostly this)."""

    def listen(event, seconds, **_):
        if event in COMPILE_EVENTS:
            stats["compile_s"] += seconds

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


@dataclasses.dataclass
class Summary:
    total: int  # networks in the grid
    skipped: int  # already finished before this call (resume)
    trained: int
    buckets: int
    compiles: int  # bucket programs built, ``loaded`` of them from the program cache
    compile_s: float  # seconds spent tracing, lowering, compiling or loading programs
    wall_s: float
    retries: int = 0  # chunks halved after RESOURCE_EXHAUSTED
    loaded: int = 0
    build_s: float = 0.0  # seconds spent building the fused CPU kernel (not a compile)
    network_steps: int = 0  # steps the networks trained in segments took (stopped early)
    grid_steps: int = 0  # steps of every network of the grid, each trained to the end

    def __str__(self):
        rate = self.trained / max(self.wall_s, 1e-9)
        cached = f", {self.loaded} from cache" if self.loaded else ""
        build = f", {self.build_s:.1f} s building the CPU kernel" if self.build_s else ""
        steps = (f"; {self.network_steps:,} network-steps, "
                 f"{self.network_steps / self.grid_steps:.1%} of the full grid's "
                 f"{self.grid_steps:,}" if self.network_steps and self.grid_steps else "")
        return (
            f"trained {plural(self.trained, 'network')} ({self.skipped} already done, "
            f"{self.total} in grid) in {self.wall_s:.1f} s: {plural(self.buckets, 'bucket')}, "
            f"{plural(self.compiles, 'compile')} ({self.compile_s:.1f} s{cached}){build}, "
            f"{significant(rate)} networks/s{steps}"
        )


def significant(x: float, digits: int = 2) -> str:
    """``x`` with at least ``digits`` significant digits, never in exponent form (0.13, 4.2,
    57, 1234)."""
    if x <= 0 or not math.isfinite(x):
        return f"{x:.0f}"
    return f"{x:.{max(0, digits - 1 - math.floor(math.log10(x)))}f}"


def default_out(spec: Spec) -> str:
    return os.path.join("results", spec.name)


def warn(message: str) -> None:
    """A one-line warning on stderr (not :mod:`warnings`: the sweep goes on, the user reads it)."""
    print(f"sweepnet: warning: {message}", file=sys.stderr, flush=True)


def run_sweep(
    spec: Spec,
    out: str | None = None,
    *,
    shard: tuple[int, int] = (0, 1),
    fresh: bool = False,
    max_memory: int | None = None,
    progress: bool = True,
    cache: bool = True,
) -> Summary:
    """Train every unfinished run of ``spec`` (or of one shard) into results folder ``out``.

    Resumable: runs already committed in ``out`` are skipped, and chunks are cut the same way
    on every call, so a killed and resumed sweep gives the uninterrupted sweep's table. Under
    ``jax.distributed`` every process trains its own round-robin share on its local devices and
    process 0 alone writes the manifest.

    SIGINT (Ctrl-C) and SIGTERM raise :class:`~sweepnet.core.errors.Interrupted` (in the main
    thread) once every finished call is written and the manifest says the sweep is incomplete;
    the calls in flight are abandoned (a caller that exits should ``os._exit``: XLA would
    finish them first).
    """
    with stop.Signals() as signals:
        return sweep(spec, out, signals, shard=shard, fresh=fresh, max_memory=max_memory,
                     progress=progress, cache=cache)


def sweep(spec: Spec, out: str | None, signals: stop.Signals, *, shard: tuple[int, int],
          fresh: bool, max_memory: int | None, progress: bool, cache: bool) -> Summary:
    """:func:`run_sweep`, with SIGINT and SIGTERM held by ``signals``."""
    t0 = time.perf_counter()
    out = out or default_out(spec)
    mine = distributed.process_share(shard)
    tag = distributed.share_tag(mine)
    pid, n_proc = jax.process_index(), jax.process_count()
    m = programs.mesh(jax.local_devices())
    n_dev = m.devices.size
    where = programs.platform(m)
    if max_memory is None and where != "cpu":
        max_memory = programs.device_memory(m)
    # Planning reads the user's data files, so a bad one is refused before `out` is touched.
    full = plan_lib.make_plan(spec, n_dev, max_memory, platform=where)
    for line in data_lib.file_warnings(r.config for r in full.runs) if pid == 0 else ():
        warn(line)  # a file with fewer points than n_train + n_test: once, before training
    adaptive = None
    if adaptive_lib.searching(spec):
        if shard[1] > 1 or n_proc > 1:
            raise SweepnetError('search.mode = "boundary": a search decides from every cell\'s '
                                "outcomes, so it runs in one process and one shard")
        adaptive = adaptive_lib.Adaptive(spec, full.runs)
    store = distributed.open_store(out, spec, fresh, tag, shared=shard[1] > 1)
    if adaptive is not None and store.done_ids():  # a resumed search replays its outcomes
        adaptive.seen(results.load(out)[["run_id", "separated"]])
    if cache:
        programs.enable_compilation_cache()
    built = fused_lib.build_seconds()

    def replan(done, force=None, max_chunk=None):
        """The plan for this share's runs not in ``done``; ``force``: a gradient per program.
        An adaptive sweep's plan holds only what its search asks for now."""
        ask = lambda static: (force or {}).get(static) or gradient(static, m)
        if adaptive is not None:
            done = adaptive.hold(done)
            if where == "cpu":  # few networks at a time: short calls, no idle slots computed
                cap = n_dev * adaptive_lib.CPU_LANES
                max_chunk = {b.index: min(cap, (max_chunk or {}).get(b.index, cap))
                             for b in full.buckets}
        return plan_lib.make_plan(spec, n_dev, full.max_memory, runs=full.runs, platform=where,
                                  shard=mine, done=done, gradient=ask, max_chunk=max_chunk)

    # the first bucket the kernel covers may build it (not a compile: kept apart)
    plan = replan(store.done_ids())
    build_s = fused_lib.build_seconds() - built  # SWEEPNET_FUSED=1 builds in the foreground
    todo = [b for b in plan.buckets if b.calls]
    pending = sum(len(b.todo) for b in todo)
    mine_ids = {r.run_id for b in plan.buckets for r in b.runs}
    before = len(store.done_ids() & mine_ids)  # finished before this call
    # under jax.distributed a lost peer ends the sweep with a one-line error (see PeerWatch)
    with distributed.PeerWatch() if n_proc > 1 else contextlib.nullcontext():
        provenance = {
            "sweepnet_version": __version__,
            "jax_version": jax.__version__,
            "backend": jax.default_backend(),
            "n_devices": n_dev,
        }
        if pid == 0:
            store.update_manifest(
                sweep=spec.name,
                spec_fingerprint=spec.fingerprint(),
                versions={
                    "sweepnet": __version__,
                    "jax": jax.__version__,
                    "python": sys.version.split()[0],
                },
                devices=[str(d) for d in jax.devices()],
                backend=jax.default_backend(),
                processes=n_proc,
                total_runs=len(full.runs),
                shards={distributed.share_tag(distributed.process_share(shard, p)):
                        {"status": "running"} for p in range(n_proc)},
            )
        bar = progress_bar(None if adaptive else pending, progress)
        writer = Writer(store, spec, provenance, tag, bar, signals, adaptive=adaptive)
        stats = {"compiles": 0, "loaded": 0, "compile_s": 0.0, "retries": 0}
        buckets = {}
        try:
            for bucket in rounds(todo, adaptive, lambda: replan(store.done_ids())):
                tb, compiled, loaded = time.perf_counter(), stats["compile_s"], stats["loaded"]
                last, on_xla = train_bucket(bucket, m, writer, stats, cache, replan)
                switched = on_xla is not None
                key = f"{tag}-b{bucket.index:03d}"  # an adaptive sweep's later passes add up
                earlier = buckets.get(key, {"networks": 0, "seconds": 0.0})
                buckets[key] = {
                    "static": dataclasses.asdict(bucket.static),
                    "networks": len(bucket.todo) + earlier["networks"],
                    "chunk": last.chunk,
                    # a bucket that switched to the kernel when it was ready: "xla+fused", and
                    # how many networks XLA's gradient trained
                    "gradient": "xla+fused" if switched else "fused" if last.fused else "xla",
                    **({"xla_networks": on_xla} if switched else {}),
                    "seconds": round(time.perf_counter() - tb + earlier["seconds"], 3),
                    # `sweepnet plan` calibrates on these (machine.recorded_runs): the FLOPs of
                    # a network-step as this gradient computes them (the kernel: real shapes)
                    "compile_s": round(stats["compile_s"] - compiled, 3),
                    "loaded": stats["loaded"] > loaded,
                    "step_flops": bucket.step_flops[
                        plan_lib.FUSED if last.fused else plan_lib.XLA],
                }
                if pid == 0:
                    with signals.shield():
                        store.update_manifest(buckets=buckets)
            bar.close()
            finished = len(store.done_ids() & mine_ids)
            complete = not adaptive.wanted() if adaptive else finished == len(mine_ids)
            if adaptive is not None:
                with signals.shield():
                    adaptive.write(out)
            info = {
                "status": "complete" if complete else "incomplete",
                "pending": 0 if adaptive and complete else len(mine_ids) - finished,
                **({"search": "done" if complete else "running"} if adaptive else {}),
                "wall_s": round(time.perf_counter() - t0, 3),
            }
            distributed.finish_manifest(store, full, shard, info, buckets)
        except Interrupted as e:
            bar.close()  # before the message, which must be the last line on the terminal
            kept = len(mine_ids) - pending + writer.count
            info = {"status": e.name if kept < len(mine_ids) else "complete",
                    "pending": len(mine_ids) - kept, "wall_s": round(time.perf_counter() - t0, 3)}
            # process 0 records the outcomes its peers post within a second, and no more
            distributed.finish_manifest(store, full, shard, info, buckets, gather=False)
            raise Interrupted(e.signum, (
                f"{e.message}: {kept} of {len(mine_ids)} networks are finished and kept "
                f"({writer.count} trained now); run the same command again to train the other "
                f"{len(mine_ids) - kept}")) from None
        return Summary(
            total=len(full.runs),
            skipped=before,
            trained=writer.count if adaptive else pending,
            buckets=len(todo),
            compiles=stats["compiles"],
            compile_s=stats["compile_s"],
            wall_s=time.perf_counter() - t0,
            retries=stats["retries"],
            loaded=stats["loaded"],
            build_s=build_s,
            network_steps=stats.get("network_steps", 0),
            grid_steps=sum(r.config["steps"] for r in full.runs),
        )


def rounds(todo: list[Bucket], adaptive: adaptive_lib.Adaptive | None, replan):
    """The buckets to train, in order; for an adaptive sweep, again (``replan()``: the plan of
    what its search asks for now) while the search wants networks no bucket has trained."""
    yield from todo
    while adaptive is not None and adaptive.wanted():
        again = [b for b in replan().buckets if b.calls]
        if not again:  # nothing the plan can train (never expected): stop, not spin
            return
        yield from again


def gradient(static: Static, m: jax.sharding.Mesh) -> str:
    """What the kernel says of ``static`` on this machine now: use it, wait for it (it is
    being built: XLA's gradient in shorter calls until it is ready), or XLA's gradient."""
    if fused_lib.use(static, m):
        return plan_lib.FUSED
    return plan_lib.PENDING if fused_lib.pending(static, m) else plan_lib.XLA


class KernelReady(Exception):
    """The kernel became ready while a bucket trained with XLA's gradient."""


class OutOfMemory(Exception):
    """A call ran out of device memory (RESOURCE_EXHAUSTED at compile, dispatch or fetch)."""


def is_oom(e: Exception) -> bool:
    return isinstance(e, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(e)


def dispatch(compiled, seeds, hyper, data):
    """Dispatch one call (asynchronously). A seam for tests that simulate device OOM."""
    return compiled(seeds, hyper, data)


def train_bucket(bucket: Bucket, m, writer: Writer, stats: dict, cache: bool, replan
                 ) -> tuple[Bucket, int | None]:
    """Make ``bucket``'s calls; when the kernel becomes ready or a call runs out of memory,
    ``replan(done, force, max_chunk)`` (:func:`make_plan` for what remains; ``force``: the
    gradient of this program; ``max_chunk``: the cap on its chunk) gives its new decisions.

    On RESOURCE_EXHAUSTED the chunk is halved, down to one network per device. Returns the
    last bucket plan (its chunk is the one that worked) and, for a bucket that switched to the
    kernel, how many networks XLA's gradient trained (else None). At most two calls' outputs
    are alive at once (one computing, one being written), so memory does not grow with the
    sweep.
    """
    n_dev = m.devices.size
    written: set[str] = set()
    on_xla, cap = None, None
    while True:
        try:
            execute(bucket, m, writer, written, stats, cache)
            return bucket, on_xla
        except KernelReady:
            on_xla = len(written)
            left = sum(r.run_id not in written for r in bucket.todo)
            print(f"sweepnet: the fused CPU kernel is built and measured faster here: the "
                  f"{plural(left, 'network')} left in bucket {bucket.index} "
                  f"train{'s' if left == 1 else ''} with it", file=sys.stderr, flush=True)
            how = plan_lib.FUSED
        except OutOfMemory:
            if bucket.chunk <= n_dev:
                raise SweepnetError(
                    f"bucket {bucket.index} (width {bucket.static.width}, depth "
                    f"{bucket.static.depth}): out of device memory even at one network per "
                    "device; lower data.n_test, data.n_train or train.batch_size"
                ) from None
            cap = max(n_dev, bucket.chunk // 2 // n_dev * n_dev)
            warn(f"bucket {bucket.index}: out of device memory at {bucket.chunk} networks per "
                 f"call; retrying with {cap}")
            stats["retries"] += 1
            how = bucket.gradient
        done = writer.store.done_ids() | written
        again = replan(done, {bucket.static: how}, {bucket.index: cap} if cap else None)
        bucket = again.buckets[bucket.index]


def execute(bucket: Bucket, m, writer: Writer, written: set[str], stats: dict, cache: bool
            ) -> None:
    """Make every call of ``bucket`` as planned, writing each as one part (adds its runs to
    ``written``). Raises :class:`KernelReady` before a call when a bucket planned
    ``PENDING`` finds the kernel ready, and :class:`OutOfMemory` after writing what it can."""
    nets, repl = NamedSharding(m, P("nets")), NamedSharding(m, P())
    threshold = segments.stop_threshold(writer.spec)
    more = None
    if writer.adaptive is not None:  # between segments, what the search asks for now
        ids = {r.run_id for r in bucket.runs}
        more = lambda key, queue: writer.adaptive.more(ids, key, queue)
    if threshold is not None or more is not None:  # in segments, slots refilled
        segments.execute(
            bucket, m, threshold,
            load=lambda key: jax.device_put(load_group(bucket.static, key), repl),
            inputs=chunk_inputs,
            write=lambda call, out: write_part(writer, bucket, call, out, written),
            stats=stats, cache=cache, more=more)
        return
    fn = programs.bucket_fn(bucket.static, m, bucket.fused, bucket.sub_batch)
    compiled, inflight, data = None, None, None

    def launch(call: plan_lib.Call):
        """Put ``call``'s inputs on the devices and dispatch it (compiling the program first)."""
        nonlocal compiled, data
        if call.first:
            with compile_clock(stats):  # data and probe programs compile per shape
                data = jax.device_put(load_group(bucket.static, call.data), repl)
        seeds, hyper = jax.device_put(chunk_inputs(call.lanes, bucket.chunk, bucket.static), nets)
        if compiled is None:
            tc = time.perf_counter()
            compiled, loaded = programs.compile_program(
                fn, bucket.static, (seeds, hyper, data), cache=cache,
                variant={"fused": bucket.fused})
            stats["compiles"] += 1
            stats["loaded"] += loaded
            stats["compile_s"] += time.perf_counter() - tc
        return dispatch(compiled, seeds, hyper, data)  # async dispatch

    try:
        for call in bucket.calls:
            if bucket.gradient == plan_lib.PENDING and fused_lib.ready(bucket.static):
                raise KernelReady
            # in a thread of its own: XLA may hold the thread that dispatches a call (on a CPU,
            # until the call before it is done; a cold compile, 10-15 s), and a signal must
            # stop the wait at once
            result = stop.in_thread(launch, call)
            if inflight is not None:
                write_part(writer, bucket, *inflight, written)
            inflight = (call, result)
        if inflight is not None:
            write_part(writer, bucket, *inflight, written)
    except KernelReady:
        if inflight is not None:
            write_part(writer, bucket, *inflight, written)
        raise
    except Interrupted:
        # keep the call that has finished (the signal came as it was about to be written; not
        # one the signal came *during* the write of, which stopped the sweep once it was
        # written); the ones still computing are abandoned, their networks train on resume
        if (inflight is not None and not written.issuperset(r.run_id for r in inflight[0].runs)
                and stop.ready(inflight[1])):
            write_part(writer, bucket, *inflight, written)
        raise
    except jax.errors.JaxRuntimeError as e:
        if not is_oom(e):
            raise
        if inflight is not None:  # the call before the failed one may well be fine
            try:
                write_part(writer, bucket, *inflight, written)
            except jax.errors.JaxRuntimeError as again:
                if not is_oom(again):
                    raise
        raise OutOfMemory from None


@dataclasses.dataclass
class Writer:
    """Where and how a sweep writes each call's part (see :func:`write_part`)."""

    store: results.Store
    spec: Spec
    provenance: dict
    tag: str
    bar: tqdm
    signals: stop.Signals = dataclasses.field(default_factory=stop.Signals)
    count: int = 0  # networks written by this sweep
    adaptive: adaptive_lib.Adaptive | None = None  # an adaptive sweep's search, told each part


def write_part(writer: Writer, bucket: Bucket, call: plan_lib.Call, result, written: set[str]
               ) -> None:
    """Write ``call``'s networks (on lanes ``call.where`` of ``result``) as one part, once the
    call is done (a signal stops the wait at once, and the write is finished first)."""
    stop.wait(result)
    with writer.signals.shield():
        out = jax.tree.map(lambda a: np.asarray(a)[call.where], jax.device_get(result))
        part = hashlib.sha256("".join(r.run_id for r in call.runs).encode()).hexdigest()[:12]
        name = f"{writer.tag}-b{bucket.index:03d}-{part}"
        frames = results.to_frames(
            bucket.static,
            call.runs,
            out,
            writer.spec,
            {**writer.provenance, "bucket": bucket.index, "part": name,
             "bucket_width": bucket.static.width, "bucket_depth": bucket.static.depth},
        )
        writer.store.write_part(name, *frames)
        if writer.adaptive is not None:
            writer.adaptive.seen(frames[0])
        written.update(r.run_id for r in call.runs)
        writer.count += len(call.runs)
        writer.bar.update(len(call.runs))


def progress_bar(total: int, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        unit="net",
        disable=not enabled or total == 0,
        file=sys.stderr,
        dynamic_ncols=True,
        smoothing=0.1,
    )


def train_alone(spec_config: dict, run_id: str, static: Static, capture: bool = False) -> object:
    """Train one network on its own, unpadded and unsharded (the reference for invariance tests),
    with the gradient the engine would use on this machine.

    ``static`` must have ``width == spec_config['width']``. ``capture``: return
    ``(Output, params at every eval step)`` (see ``make_train``).
    """
    if static.width != spec_config["width"]:
        raise SweepnetError("train_alone: static width must equal the run's width")
    run = Run(0, run_id, spec_config)
    seeds, hyper = chunk_inputs([run], 1, static)
    train = make_train(static, fused=fused_lib.use(static, programs.mesh(jax.local_devices()[:1])),
                       capture=capture)
    data = load_data(static, run)
    one = lambda s, h: train(jax.random.key(s), h, data)
    return jax.device_get(jax.jit(one)(seeds[0], jax.tree.map(lambda a: jnp.asarray(a[0]), hyper)))
