"""Run a plan: jit + vmap each bucket, shard the network axis, chunk, write, resume.

The engine is the only module that decides on ``jit``, ``vmap`` and sharding. One call of a
compiled bucket trains ``bucket.chunk`` networks on one data group; the next call is
dispatched before the previous one's results are written, so disk I/O overlaps compute.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sweepnet.core.errors import SweepnetError
from sweepnet.core.host import CPU_COMPILER_OPTIONS, __version__
from sweepnet.engine import plan as plan_lib
from sweepnet.engine import programs
from sweepnet.kernel import choice as fused_lib
from sweepnet.store import results
from sweepnet.sweep import data as data_lib
from sweepnet.sweep.spec import Spec
from sweepnet.train.separation import make_probe
from sweepnet.train.step import Data, Hyper, Static, make_data, make_train


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (re-runs skip most compile time)."""
    path = (
        path
        or os.environ.get("SWEEPNET_CACHE")
        or os.path.join(os.path.expanduser("~"), ".cache", "sweepnet", "xla")
    )
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    devices = list(devices or jax.local_devices())
    return jax.sharding.Mesh(np.asarray(devices), ("nets",))


def platform(m: jax.sharding.Mesh) -> str:
    """``"cpu"``, ``"gpu"`` or ``"tpu"``: the platform of the mesh's devices."""
    return next(iter(m.devices.flat)).platform


@functools.lru_cache(maxsize=64)
def bucket_fn(static: Static, m: jax.sharding.Mesh, fused: bool | None = None,
              target: str | None = None):
    """``jit(vmap(train))`` with the network axis sharded over the mesh and data replicated.

    Signature: ``(seeds (N,) uint32, hyper: Hyper of (N,), data: Data) -> Output of (N, ...)``.
    ``fused``: the step's gradient is the fused CPU kernel's (None: ``fused.use(static, m)``).
    On CPU each device trains its share in sub-batches of ``plan.sub_batch(static, fused)``
    networks; on a GPU or TPU the whole share is one vmapped batch, so every layer's dot runs
    over all of the call's networks at once. ``target``: lay the program out for this platform
    instead of the mesh's (``jax.export`` then lowers a GPU program on a CPU-only machine).
    """
    if fused is None:
        fused = fused_lib.use(static, m)
    train = make_train(static, fused=fused)
    per_net = lambda seed, hyper, data: train(jax.random.key(seed), hyper, data)
    nets, repl = NamedSharding(m, P("nets")), NamedSharding(m, P())
    if (target or platform(m)) == "cpu":
        sub = plan_lib.sub_batch(static, fused)

        def local(seeds, hyper, data):
            # each device trains its networks `sub` at a time (vmapped), so that their working
            # set stays in cache: on CPU this was up to 2x faster than all of the chunk at once
            # (a divisor of the device's share: a remainder batch would be compiled a second time)
            n = seeds.shape[0]
            size = max(d for d in range(1, min(sub, n) + 1) if n % d == 0)
            return jax.lax.map(lambda sh: per_net(*sh, data), (seeds, hyper), batch_size=size)
    else:
        def local(seeds, hyper, data):
            return jax.vmap(per_net, in_axes=(0, 0, None))(seeds, hyper, data)

    # check_vma off: train() is written for one network and knows nothing of the mesh axis
    fn = jax.shard_map(local, mesh=m, in_specs=(P("nets"), P("nets"), P()), out_specs=P("nets"),
                       check_vma=False)
    return jax.jit(fn, in_shardings=(nets, nets, repl), out_shardings=nets,
                   compiler_options=compiler_options(m))


MEMORY_SHARE = 0.6  # of an accelerator's memory a call may use (XLA needs room of its own)


def device_memory(m: jax.sharding.Mesh) -> int | None:
    """Bytes one call may use on the mesh's accelerators (``memory_stats()``'s limit times
    :data:`MEMORY_SHARE`, summed over devices); None where the backend does not say (then
    ``--max-memory`` or the planner's default holds)."""
    total = 0
    for d in m.devices.flat:
        try:
            stats = d.memory_stats() or {}
        except Exception:  # a backend without memory statistics
            return None
        if not stats.get("bytes_limit"):
            return None
        total += int(stats["bytes_limit"] * MEMORY_SHARE) - int(stats.get("bytes_in_use", 0))
    return max(total, 1)


def compiler_options(m: jax.sharding.Mesh) -> dict | None:
    """XLA options for a bucket's program on the mesh's platform (None: XLA's defaults)."""
    cpu = all(d.platform == "cpu" for d in m.devices.flat)
    return dict(CPU_COMPILER_OPTIONS) if cpu else None


def run_seed(run_id: str) -> int:
    """The PRNG seed of a run: the first 32 bits of its configuration hash."""
    return int(run_id[:8], 16)


def chunk_inputs(runs: Sequence[plan_lib.Run], size: int, static: Static | None = None
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


def run_cost(static: Static, run: plan_lib.Run, fused: bool) -> float:
    """Relative work of one network in program ``static``: its real FLOPs where the fused
    kernel reads its real shape, else the same padded work for every network."""
    if not fused:
        return 1.0
    return plan_lib.run_step_flops(static, run)


def calls(runs: Sequence[plan_lib.Run], n_calls: int) -> list[list[plan_lib.Run]]:
    """Cut ``runs`` into ``n_calls`` calls of (nearly) equal size, in grid order (the devices'
    work is balanced within each call, by :func:`lanes`)."""
    base, extra = divmod(len(runs), n_calls)
    bounds = np.cumsum([0] + [base + (c < extra) for c in range(n_calls)])
    return [list(runs[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


def lanes(runs: Sequence[plan_lib.Run], size: int, n_dev: int, cost
          ) -> tuple[list[plan_lib.Run], np.ndarray]:
    """Lay one call's ``runs`` out on ``size`` lanes so that every device's contiguous share
    holds about equal work: dearest first, each to the device with the least work so far
    (padding lanes repeat the cheapest run, and cost as much). Returns the lanes and, for each
    of ``runs``, its lane."""
    costs = [cost(r) for r in runs]
    order = sorted(range(len(runs)), key=lambda i: (-costs[i], runs[i].index))
    order += [order[-1]] * (size - len(order))
    share = size // n_dev
    work, slots = [0.0] * n_dev, [[] for _ in range(n_dev)]
    for i in order:
        d = min((d for d in range(n_dev) if len(slots[d]) < share), key=lambda d: work[d])
        slots[d].append(i)
        work[d] += costs[i]
    out: list[plan_lib.Run] = []
    where = np.zeros(len(runs), np.int64)
    placed = set()
    for d in range(n_dev):
        for j, i in enumerate(slots[d]):
            out.append(runs[i])
            if i not in placed:  # a padding lane repeats a run already placed
                placed.add(i)
                where[i] = d * share + j
    return out, where


_COMPILE_EVENTS = (
    "/jax/core/compile/jaxpr_trace_duration",
    "/jax/core/compile/jaxpr_to_mlir_module_duration",
    "/jax/core/compile/backend_compile_duration",
)


@contextlib.contextmanager
def _compile_clock(stats: dict):
    """Add the seconds JAX spends tracing, lowering and compiling inside the block to
    ``stats["compile_s"]`` (the data programs: a cold bucket's data took 1.5 s, mostly this)."""

    def listen(event, seconds, **_):
        if event in _COMPILE_EVENTS:
            stats["compile_s"] += seconds

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)


def load_data(static: Static, run: plan_lib.Run) -> Data:
    c = run.config
    split = data_lib.make_split(
        c["dataset"], run.data_params(), c["n_train"], c["n_test"], c["noise"], c["data_seed"]
    )
    probe = make_probe(c["dataset"], run.data_params(), static.in_dim)  # sweepnet.train.separation
    return make_data(static, *split, probe=probe)


def shard_runs(
    runs: Sequence[plan_lib.Run], plan: plan_lib.Plan, index: int, count: int
) -> list[plan_lib.Run]:
    """Shard ``index`` of ``count``: deal runs round-robin in (bucket family, width, grid) order.

    The order depends on the spec only (not on devices), so shards on different machines
    split the grid into disjoint, balanced parts.
    """
    family = {}
    for r in plan.runs:
        family.setdefault(plan_lib.static_of(r.config, 0), len(family))
    order = sorted(
        plan.runs, key=lambda r: (family[plan_lib.static_of(r.config, 0)], r.config["width"], r.index)
    )
    chosen = {r.run_id for r in order[index::count]}
    return [r for r in runs if r.run_id in chosen]


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

    def __str__(self):
        rate = self.trained / max(self.wall_s, 1e-9)
        cached = f", {self.loaded} from cache" if self.loaded else ""
        build = f", {self.build_s:.1f} s building the CPU kernel" if self.build_s else ""
        return (
            f"trained {self.trained} networks ({self.skipped} already done, {self.total} "
            f"in grid) in {self.wall_s:.1f} s: {self.buckets} buckets, {self.compiles} "
            f"compiles ({self.compile_s:.1f} s{cached}){build}, {_significant(rate)} networks/s"
        )


def _significant(x: float, digits: int = 2) -> str:
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


# --- many hosts -------------------------------------------------------------------------------


def init_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> tuple[int, int]:
    """Join a multi-process JAX job; returns ``(process_index, process_count)``.

    With no arguments, ``jax.distributed.initialize`` detects Slurm, Open MPI and Cloud TPU
    itself. Must run before anything touches a JAX device.
    """
    if coordinator is not None and not re.fullmatch(r"[^\s:]+:\d{1,5}", coordinator):
        raise SweepnetError(f"--coordinator {coordinator!r}: expected HOST:PORT")
    if num_processes is not None and num_processes < 1:
        raise SweepnetError(f"--num-processes {num_processes}: must be at least 1")
    if process_id is not None and not 0 <= process_id < (num_processes or process_id + 1):
        raise SweepnetError(f"--process-id {process_id}: must be in 0..num_processes-1")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (ValueError, TypeError) as e:  # nothing detected and nothing given
        raise SweepnetError(
            f"--distributed: {str(e).splitlines()[0]} (no Slurm, Open MPI or TPU environment "
            "found; pass --coordinator HOST:PORT --num-processes N --process-id I)"
        ) from None
    except jax.errors.JaxRuntimeError as e:  # coordinator unreachable, timed out, ...
        raise SweepnetError(f"--distributed: cannot join ({str(e).splitlines()[0]})") from None
    return jax.process_index(), jax.process_count()


def _client():
    """The coordination-service client of ``jax.distributed`` (key-value store, barriers)."""
    from jax._src import distributed

    return distributed.global_state.client


_LONG_MS = 7 * 24 * 3600 * 1000  # a peer's whole share of the sweep may run this long


def _share(shard: tuple[int, int], process: int | None = None) -> tuple[int, int]:
    """A process's slice of the grid: shard ``I/N`` of a job array, then process ``p/P``.

    ``order[I::N][p::P] == order[I + N*p :: N*P]``, so the slice is itself a round-robin shard.
    """
    index, count = shard
    p = jax.process_index() if process is None else process
    return index + count * p, count * jax.process_count()


def _tag(share: tuple[int, int]) -> str:
    return f"s{share[0]}of{share[1]}"


HEARTBEAT_S = 3.0  # how often each process of a jax.distributed sweep says it is alive
PEER_TIMEOUT_S = 30.0  # a peer silent this long is lost (jax's own service aborts after 100 s)


class _PeerWatch:
    """Under ``jax.distributed``: a thread that beats for this process in the coordination
    service's key-value store and watches the others' beats.

    A peer that has stopped beating (killed, its host gone) ends this process within about
    :data:`PEER_TIMEOUT_S` with a one-line error that names it and exit code 2. Every finished
    part is already on disk (written atomically), so running the same command again resumes.
    Without this, process 0 waited for a dead peer's result until jax's service aborted it.
    """

    def __init__(self):
        self.client, self.me, self.n = _client(), jax.process_index(), jax.process_count()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sweepnet-peers", daemon=True)

    def __enter__(self):
        self._beat("0")
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._beat("done")  # finished: its silence from now on is no loss

    def _beat(self, value: str) -> None:
        with contextlib.suppress(Exception):
            self.client.key_value_set(f"sweepnet/alive/{self.me}", value, allow_overwrite=True)

    def _run(self) -> None:
        start = time.monotonic()
        seen = {p: (None, start) for p in range(self.n) if p != self.me}  # last beat, when
        beats = 0
        while not self.stop.wait(HEARTBEAT_S):
            beats += 1
            self._beat(str(beats))
            now = time.monotonic()
            for p, (last, at) in seen.items():
                try:
                    value = self.client.key_value_try_get(f"sweepnet/alive/{p}")
                except Exception:  # not yet written, or the service is gone with process 0
                    value = last
                if value != last:
                    seen[p] = (value, now)
                elif value != "done" and now - at > PEER_TIMEOUT_S:
                    print(f"sweepnet: error: process {p} of {self.n} was lost (no heartbeat for "
                          f"{now - at:.0f} s); the finished parts are kept, run the same command "
                          "again to resume", file=sys.stderr, flush=True)
                    os._exit(2)  # jax's shutdown would wait for the lost process


# --- the sweep --------------------------------------------------------------------------------


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
    """
    t0 = time.perf_counter()
    out = out or default_out(spec)
    index, count = _share(shard)
    tag = _tag((index, count))
    pid, n_proc = jax.process_index(), jax.process_count()
    m = mesh(jax.local_devices())
    n_dev = m.devices.size
    # Buckets (padded widths) come from the whole grid, never from what is left to do, so a
    # resumed, sharded or multi-process sweep pads every run exactly as a single one would.
    # Planning reads the user's data files, so a bad one is refused before `out` is touched.
    where = platform(m)
    if max_memory is None and where != "cpu":
        max_memory = device_memory(m)
    full = plan_lib.make_plan(spec, n_dev, max_memory, platform=where)
    store = _open_store(out, spec, fresh, tag, shared=shard[1] > 1)
    if cache:
        enable_compilation_cache()
    mine = shard_runs(full.runs, full, index, count) if count > 1 else full.runs
    mine_ids = {r.run_id for r in mine}
    done = store.done_ids()
    # under jax.distributed a lost peer ends the sweep with a one-line error (see _PeerWatch)
    with _PeerWatch() if n_proc > 1 else contextlib.nullcontext():
        todo = []
        built = fused_lib.build_seconds()
        for b in full.buckets:
            share = [r for r in b.runs if r.run_id in mine_ids]
            if runs := [r for r in share if r.run_id not in done]:
                # the first bucket the kernel covers may build it (not a compile: kept apart)
                fused = fused_lib.use(b.static, m)
                # The chunk is cut from this share's whole bucket, not from what is left: XLA's
                # float round-off depends on how many networks a call holds, so a resumed sweep
                # must make calls of the same size to reproduce the uninterrupted one bit for bit.
                chunk = plan_lib.chunk_size(b.static, share, n_dev, full.max_memory, where, fused)
                switch = None
                if not fused and fused_lib.pending(b.static, m):
                    # the kernel is being built: short calls with XLA's gradient until it is
                    # ready, then the rest with it, in the calls a run with the kernel makes
                    chunk = plan_lib.interim_chunk(b.static, chunk, n_dev)
                    switch = functools.partial(plan_lib.chunk_size, b.static, share, n_dev,
                                               full.max_memory, where, True)
                todo.append((b, runs, chunk, fused, switch))
        build_s = fused_lib.build_seconds() - built  # SWEEPNET_FUSED=1 builds in the foreground
        pending = sum(len(rs) for _, rs, *_ in todo)
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
                shards={_tag(_share(shard, p)): {"status": "running"} for p in range(n_proc)},
            )
        bar = _progress(pending, progress)
        stats = {"compiles": 0, "loaded": 0, "compile_s": 0.0, "retries": 0}
        buckets = {}
        for bucket, runs, chunk, fused, switch in todo:
            tb, compiled, loaded = time.perf_counter(), stats["compile_s"], stats["loaded"]
            chunk, on_xla = _train_bucket(store, bucket, runs, chunk, fused, m, spec, provenance,
                                          tag, bar, stats, cache, switch)
            switched = on_xla is not None
            fused = fused or switched
            buckets[f"{tag}-b{bucket.index:03d}"] = {
                "static": dataclasses.asdict(bucket.static),
                "networks": len(runs),
                "chunk": chunk,
                # a bucket that switched to the kernel when it was ready: "xla+fused", and how
                # many networks XLA's gradient trained
                "gradient": "xla+fused" if switched else "fused" if fused else "xla",
                **({"xla_networks": on_xla} if switched else {}),
                "seconds": round(time.perf_counter() - tb, 3),
                # `sweepnet plan` calibrates on these (bench.recorded_runs): the FLOPs of a
                # network-step as this gradient computes them (the kernel: real shapes)
                "compile_s": round(stats["compile_s"] - compiled, 3),
                "loaded": stats["loaded"] > loaded,
                "step_flops": float(np.mean([
                    plan_lib.run_step_flops(bucket.static, r) if fused
                    else plan_lib.step_flops(bucket.static) for r in runs])),
            }
            if pid == 0:
                store.update_manifest(buckets=buckets)
        bar.close()
        finished = len(store.done_ids() & mine_ids)
        info = {
            "status": "complete" if finished == len(mine) else "incomplete",
            "pending": len(mine) - finished,
            "wall_s": round(time.perf_counter() - t0, 3),
        }
        _finish_manifest(store, full, shard, info, buckets)
        return Summary(
            total=len(full.runs),
            skipped=len(mine) - pending,
            trained=pending,
            buckets=len(todo),
            compiles=stats["compiles"],
            compile_s=stats["compile_s"],
            wall_s=time.perf_counter() - t0,
            retries=stats["retries"],
            loaded=stats["loaded"],
            build_s=build_s,
        )


def _open_store(out: str, spec: Spec, fresh: bool, tag: str, shared: bool) -> results.Store:
    """Open the results folder; under jax.distributed process 0 opens (and wipes) it first."""
    if jax.process_count() == 1:
        return results.Store.open(out, spec, fresh=fresh, tag=tag, shared=shared)
    client = _client()
    if jax.process_index() == 0:
        try:
            store = results.Store.open(out, spec, fresh=fresh, tag=tag, shared=shared)
        except SweepnetError as e:
            client.key_value_set("sweepnet/open", f"error: {e}")
            raise
        client.key_value_set("sweepnet/open", "ok")
        return store
    answer = client.blocking_key_value_get("sweepnet/open", 600_000)
    if answer != "ok":
        raise SweepnetError(answer.removeprefix("error: "))
    return results.Store.open(out, spec, fresh=False, tag=tag, shared=shared)


def _finish_manifest(store, full, shard, info, buckets) -> None:
    """Record this share's outcome; process 0 gathers every process's and writes the status."""
    tag = _tag(_share(shard))
    if jax.process_count() > 1:
        client = _client()
        if jax.process_index() != 0:
            client.key_value_set(f"sweepnet/done/{tag}", json.dumps({**info, "buckets": buckets}))
            return
        for p in range(1, jax.process_count()):
            peer = _tag(_share(shard, p))
            got = json.loads(client.blocking_key_value_get(f"sweepnet/done/{peer}", _LONG_MS))
            store.update_manifest(buckets=got.pop("buckets"), shards={peer: got})
    ids = {r.run_id for r in full.runs}
    # under the manifest lock: of two shards finishing at once, the later one sees both
    status = lambda _: "complete" if len(store.done_ids() & ids) == len(ids) else "partial"
    store.update_manifest(shards={tag: info}, status=status)


def _is_oom(e: Exception) -> bool:
    return isinstance(e, jax.errors.JaxRuntimeError) and "RESOURCE_EXHAUSTED" in str(e)


def _call(compiled, seeds, hyper, data):
    """Dispatch one chunk (asynchronously). A seam for tests that simulate device OOM."""
    return compiled(seeds, hyper, data)


class _Switch(Exception):
    """The kernel became ready while a bucket trained with XLA's gradient."""


def _train_bucket(store, bucket, runs, chunk, fused, m, spec, provenance, tag, bar, stats,
                  cache=True, switch=None) -> tuple[int, int]:
    """Train ``runs`` of one bucket in calls of ``chunk`` networks, writing each as one part.

    ``fused``: the fused CPU kernel computes the gradient. ``switch``: while the kernel is being
    built, a function giving the kernel's chunk; before each call, if the kernel is ready
    (``fused.ready``), the runs left train with it in calls of that size. On RESOURCE_EXHAUSTED
    (raised at compile, dispatch or fetch) the chunk is halved, down to one network per device,
    and the calls not yet written are run again. Returns the chunk size that worked last and,
    for a bucket that switched, how many networks XLA's gradient trained (else None). At most
    two calls' outputs are alive at once (one computing, one being written), so memory does
    not grow with the sweep.
    """
    n_dev = m.devices.size
    nets, repl = NamedSharding(m, P("nets")), NamedSharding(m, P())
    written: set[str] = set()
    on_xla = None
    while True:
        fn = bucket_fn(bucket.static, m, fused)
        cost = functools.partial(run_cost, bucket.static, fused=fused)
        left = [r for r in runs if r.run_id not in written]
        compiled, inflight = None, None
        try:
            for group in (
                plan_lib.Bucket(bucket.index, bucket.static, left, chunk).groups().values()
            ):
                with _compile_clock(stats):  # data and probe programs compile per shape
                    data = jax.device_put(load_data(bucket.static, group[0]), repl)
                for part in calls(group, -(-len(group) // chunk)):
                    if switch is not None and not fused and fused_lib.ready(bucket.static):
                        raise _Switch
                    laid, where = lanes(part, chunk, n_dev, cost)
                    seeds, hyper = jax.device_put(chunk_inputs(laid, chunk, bucket.static), nets)
                    if compiled is None:
                        tc = time.perf_counter()
                        compiled, loaded = programs.compile_program(
                            fn, bucket.static, (seeds, hyper, data), cache=cache,
                            variant={"fused": fused})
                        stats["compiles"] += 1
                        stats["loaded"] += loaded
                        stats["compile_s"] += time.perf_counter() - tc
                    result = _call(compiled, seeds, hyper, data)  # async dispatch
                    if inflight is not None:
                        _write(store, bucket, *inflight, spec, provenance, tag, bar, written)
                    inflight = (part, where, result)
            if inflight is not None:
                _write(store, bucket, *inflight, spec, provenance, tag, bar, written)
            return chunk, on_xla
        except _Switch:
            if inflight is not None:
                _write(store, bucket, *inflight, spec, provenance, tag, bar, written)
            fused, chunk, on_xla = True, switch(), len(written)
            print(f"sweepnet: the fused CPU kernel is built and measured faster here: the "
                  f"{len(runs) - len(written)} networks left in bucket {bucket.index} train with "
                  "it", file=sys.stderr, flush=True)
        except jax.errors.JaxRuntimeError as e:
            if not _is_oom(e):
                raise
            if chunk <= n_dev:
                raise SweepnetError(
                    f"bucket {bucket.index} (width {bucket.static.width}, depth "
                    f"{bucket.static.depth}): out of device memory even at one network per "
                    "device; lower data.n_test, data.n_train or train.batch_size"
                ) from None
            if inflight is not None:  # the chunk before the failed one may well be fine
                try:
                    _write(store, bucket, *inflight, spec, provenance, tag, bar, written)
                except jax.errors.JaxRuntimeError as again:
                    if not _is_oom(again):
                        raise
            del inflight, compiled  # free the failed chunk's buffers before retrying
            smaller = max(n_dev, chunk // 2 // n_dev * n_dev)
            warn(
                f"bucket {bucket.index}: out of device memory at {chunk} networks per call; "
                f"retrying with {smaller}"
            )
            chunk = smaller
            stats["retries"] += 1


def _write(store, bucket, runs, where, result, spec, provenance, tag, bar, written):
    """Write one call's networks (``runs``, on lanes ``where``) as one part."""
    out = jax.tree.map(lambda a: np.asarray(a)[where], jax.device_get(result))
    part = hashlib.sha256("".join(r.run_id for r in runs).encode()).hexdigest()[:12]
    name = f"{tag}-b{bucket.index:03d}-{part}"
    frames = results.to_frames(
        bucket.static,
        runs,
        out,
        spec,
        {**provenance, "bucket": bucket.index, "part": name, "bucket_width": bucket.static.width,
         "bucket_depth": bucket.static.depth},
    )
    store.write_part(name, *frames)
    written.update(r.run_id for r in runs)
    bar.update(len(runs))


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

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
    run = plan_lib.Run(0, run_id, spec_config)
    seeds, hyper = chunk_inputs([run], 1, static)
    train = make_train(static, fused=fused_lib.use(static, mesh(jax.local_devices()[:1])),
                       capture=capture)
    data = load_data(static, run)
    one = lambda s, h: train(jax.random.key(s), h, data)
    return jax.device_get(jax.jit(one)(seeds[0], jax.tree.map(lambda a: jnp.asarray(a[0]), hyper)))
