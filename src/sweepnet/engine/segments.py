"""Train a bucket in segments with a fixed number of slots, retiring a network when its outcome
is decided and giving its slot to the next one (``train.stop = "separated"``; issue 26).

Under ``vmap`` a finished network is masked but still computed (``lax.cond`` becomes
``select``), so stopping one inside a whole-training program saves nothing. Here a call trains
``chunk`` *slots* for one segment (``blocks`` eval blocks, :func:`sweepnet.train.segments.
make_segments`); between segments, on the host, every slot whose network is decided
(separated or diverged: the device froze it at that evaluation) or has trained all its steps
is retired (its :class:`~sweepnet.train.step.Output` from ``finish``, written by the engine's
callback) and refilled from the queue of runs still to train, written into the batched state
on device with a select. The batch keeps its shape: one compile per program and segment length.
Slots left without a run when the queue runs dry are parked (marked done, computed, ignored).

A network's result depends only on its configuration and seed: not on its slot, its
neighbours, the segment length or a refill (tests/test_segments.py).

The queue may grow between rounds (``more``): an adaptive search can feed it what its last look
asked for. It is a :class:`collections.deque` of :class:`~sweepnet.engine.plan.Run` of one data
group (the data is an argument every slot of a call shares).
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import itertools
import math
import time
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sweepnet.engine import programs, stop
from sweepnet.engine.plan import Bucket, Call, Run
from sweepnet.train.segments import State
from sweepnet.train.step import Output, Static

SEGMENTS = 16  # a network's steps are cut into about this many segments


def segment_blocks(static: Static, segments: int = SEGMENTS) -> int:
    """Eval blocks a segment holds: about ``1 / segments`` of the training, so that a network
    decided early waits at most that long for its slot to be refilled, and a round's host
    work (a sync, a ``finish`` over the slots) stays small beside its steps."""
    return max(1, math.ceil(len(static.eval_steps) / segments))


def stop_threshold(spec) -> float | None:
    """The test accuracy that decides a network under ``train.stop = "separated"`` (the spec's
    ``train.separation``), or None (``"never"``: every network trains all its steps)."""
    train = spec.tree["train"]
    return train["separation"] if train.get("stop", "never") == "separated" else None


@dataclasses.dataclass
class Lane:
    """One slot's network on the host: its run, the steps it has taken, its curve so far."""

    run: Run
    t: int = 0
    curve: np.ndarray | None = None  # (3, n_evals): loss, train_acc, test_acc; NaN: not yet


class Parts:
    """Retired networks gathered into parts of about ``size`` runs (a part per network would
    be thousands of tiny files): ``write(runs, out)`` with ``out`` an Output of numpy arrays,
    leading axis ``len(runs)``, runs in grid order."""

    def __init__(self, size: int, write: Callable[[list[Run], Output], None]):
        self.size, self.write = size, write
        self.runs: list[Run] = []
        self.outs: list[Output] = []

    def add(self, runs: list[Run], out: Output) -> None:
        self.runs += runs
        self.outs.append(out)
        if len(self.runs) >= self.size:
            self.flush()

    def flush(self) -> None:
        if not self.runs:
            return
        order = np.argsort([r.index for r in self.runs], kind="stable")
        out = jax.tree.map(lambda *a: np.concatenate(a)[order], *self.outs)
        runs = [self.runs[i] for i in order]
        self.runs, self.outs = [], []
        self.write(runs, out)


class Programs:
    """A bucket's segment programs (:func:`sweepnet.engine.programs.segment_fns`), each
    compiled (or loaded from the program cache) on its first call, across data groups."""

    def __init__(self, static: Static, m, fused: bool, sub_batch: int, blocks: int,
                 threshold: float | None, cache: bool = True, stats: dict | None = None):
        self.static, self.cache, self.stats = static, cache, stats if stats is not None else {}
        self.fns = programs.segment_fns(static, m, fused, sub_batch, blocks, threshold)
        self.variant = {"fused": fused, "blocks": blocks, "threshold": threshold}
        self.compiled: dict[str, object] = {}
        self.repl = NamedSharding(m, P())
        self.n_dev = m.devices.size

    def __call__(self, name: str, *args):
        if name not in self.compiled:
            tc = time.perf_counter()
            self.compiled[name], loaded = programs.compile_program(
                getattr(self.fns, name), self.static, args, cache=self.cache,
                variant={**self.variant, "program": f"segment-{name}"})
            for k, v in (("compiles", 1), ("loaded", int(loaded)),
                         ("compile_s", time.perf_counter() - tc)):
                self.stats[k] = self.stats.get(k, 0) + v
        return self.compiled[name](*args)

    def finish(self, state: State, hyper, data, lanes: Sequence[int], chunk: int) -> list:
        """``finish`` of the lanes ``lanes`` of ``state``: a list of Outputs (dispatched, not
        fetched), each of ``finish_size(chunk)`` lanes, ``lanes`` in order and then padding."""
        size = self.finish_batch(chunk)
        outs = []
        for at in range(0, len(lanes), size):
            some = list(lanes[at:at + size])
            idx = jax.device_put(np.asarray(some + some[-1:] * (size - len(some)), np.int32),
                                 self.repl)
            outs.append(self("finish", state, hyper, idx, data))
        return outs

    def finish_batch(self, chunk: int) -> int:
        """Lanes a ``finish`` call takes: its separation metrics (a probe, gradient descent on
        the margin) cost tens of steps a network, so only retired lanes get them; a quarter
        of the slots (a multiple of the devices), so a round that retires many makes few
        calls."""
        n = self.n_dev
        return max(n, chunk // 4 // n * n)

    def empty_state(self, seeds, hyper, data, sharding) -> State:
        """A state of the call's shapes with every lane parked-to-be (zeros)."""
        shape = jax.eval_shape(self.fns.start, seeds, hyper, data)
        return jax.tree.map(lambda s: jax.device_put(np.zeros(s.shape, s.dtype), sharding),
                            shape)


class Behind:
    """The retired networks' host work (``finish``'s results fetched, the curves and the part
    written: tens of milliseconds a part, several segments' compute) on a thread of its own,
    in order, while the next segments compute; in the loop, the device would wait for it.

    A job's error is raised in the caller's thread by :meth:`check` or :meth:`wait`. A signal's
    :class:`~sweepnet.core.errors.Interrupted` is raised in the main thread (the waits are
    short joins), or, where it came during a part's write (shielded), by the job after the
    write: :meth:`check` hands it on. On the way out (:meth:`close`) a job that has started is
    finished and the ones still queued are dropped (their networks train on resume)."""

    def __init__(self):
        self.pool = concurrent.futures.ThreadPoolExecutor(1, "sweepnet-retire")
        self.jobs: list[tuple[int, concurrent.futures.Future]] = []  # (round, job), in order

    def submit(self, at: int, fn, *args) -> None:
        self.jobs.append((at, self.pool.submit(fn, *args)))

    def check(self) -> None:
        while self.jobs and self.jobs[0][1].done():
            self.jobs.pop(0)[1].result()  # raises the job's error

    def wait(self, upto: int | None = None) -> None:
        """Until the jobs of rounds ``upto`` and before (default: every job) are done."""
        while True:
            self.check()
            if not self.jobs or upto is not None and self.jobs[0][0] > upto:
                return
            concurrent.futures.wait([self.jobs[0][1]], timeout=stop.POLL_S)

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def train_queue(progs: Programs, m: jax.sharding.Mesh, chunk: int,
                queue: collections.deque[Run], data, inputs, retire,
                more: Callable[[collections.deque[Run]], None] | None = None) -> None:
    """Train every run of ``queue`` (and whatever ``more`` adds) in ``chunk`` slots.

    ``data``: the group's :class:`~sweepnet.train.step.Data`, placed replicated; ``inputs(runs,
    size, static) -> (seeds, hyper)``: :func:`sweepnet.engine.run.chunk_inputs`;
    ``retire(runs, out)``: each round's retired networks (``out``: numpy, leading axis
    ``len(runs)``; a stopped network's curves are NaN past its last evaluation), called in
    order on a thread of its own (:class:`Behind`) while the next rounds compute; every call
    has returned when this returns. ``more(queue)``: called before every round; it may extend
    the queue; it sees what ``retire`` was given up to two rounds before (as if ``retire``
    ran in the loop). Adds ``rounds`` and ``network_steps`` (the steps the retired networks
    took) to ``progs.stats``.
    """
    static, stats = progs.static, progs.stats
    for k in ("rounds", "network_steps"):
        stats.setdefault(k, 0)
    nets = NamedSharding(m, P("nets"))
    lanes: list[Lane | None] = [None] * chunk
    state = None
    # every lane's evaluations so far (a lane's are a prefix: ``count`` of them), kept as
    # arrays: a round's bookkeeping is a few numpy operations, not a Python loop over lanes
    n_evals = len(static.eval_steps)
    curves = np.full((chunk, 3, n_evals), np.nan, np.float32)
    count = np.zeros(chunk, np.int64)
    behind, held = Behind(), None
    try:
        for at in itertools.count():
            behind.check()
            if more is not None:  # it sees the rounds before the last, as the loop wrote them
                behind.wait(at - 2)
                more(queue)
            if held is not None:
                behind.submit(*held)
                held = None
            fresh = np.zeros(chunk, bool)
            for i in range(chunk):
                if lanes[i] is None and queue:
                    lanes[i], fresh[i] = Lane(queue.popleft()), True
            curves[fresh], count[fresh] = np.nan, 0
            live = [i for i in range(chunk) if lanes[i] is not None]
            if not live:
                break
            if state is None or fresh.any():  # else the inputs and state stand as they are
                # a lane without a network (the queue ran dry) repeats a live run's inputs and
                # is parked (done); a retired one is frozen already (done, or at its last step)
                park = np.asarray([lane is None for lane in lanes])
                runs = [lanes[i].run if lanes[i] is not None else lanes[live[0]].run
                        for i in range(chunk)]
                seeds, hyper = inputs(runs, chunk, static)
                seeds, hyper, fresh_d, park_d = jax.device_put((seeds, hyper, fresh, park), nets)
                if state is None:
                    state = progs.empty_state(seeds, hyper, data, nets)
                    idle = jax.device_put(np.zeros(chunk, bool), nets)
            else:  # no lane starts: parked lanes stay done, as they are
                fresh_d = park_d = idle
            state, evals = progs("advance", state, seeds, hyper, fresh_d, park_d, data)
            stats["rounds"] += 1
            t, done, ev = jax.device_get((state.t, state.done, evals))
            rows, blocks = np.nonzero(ev.live)  # a lane's live blocks come first (then it froze)
            at_eval = count[rows] + blocks
            for k, values in enumerate((ev.loss, ev.train_acc, ev.test_acc)):
                curves[rows, k, at_eval] = values[rows, blocks]
            count += ev.live.sum(1)
            has = np.asarray([lane is not None for lane in lanes])
            ended = []
            for i in np.flatnonzero(has & (done | (t >= static.steps))):
                lanes[i].t, lanes[i].curve = int(t[i]), curves[i].copy()
                ended.append((int(i), lanes[i]))
            if ended:  # fetched and written behind the next rounds
                outs = progs.finish(state, hyper, data, [i for i, _ in ended], chunk)
                held = (at, lambda outs=outs, ended=ended: retire(*outputs(outs, ended, static)))
                if more is None:  # else after the next round's ``more``
                    behind.submit(*held)
                    held = None
                for i, lane in ended:
                    stats["network_steps"] += lane.t
                    lanes[i] = None
        behind.wait()
    finally:
        behind.close()


def outputs(outs: list, ended: Sequence[tuple[int, Lane]], static: Static
            ) -> tuple[list[Run], Output]:
    """The retired lanes' rows of ``finish``'s ``outs`` (:meth:`Programs.finish`), with the
    curves the host gathered, ``steps_to_fit`` from them, and ``stopped_at`` (-1: trained every
    step)."""
    n = len(ended)
    out = jax.tree.map(lambda *a: np.concatenate(a)[:n], *jax.device_get(outs))
    curves = np.stack([lane.curve for _, lane in ended], 1)  # (3, n, n_evals)
    fit = curves[1] >= 1.0
    steps_to_fit = np.where(fit.any(1), static.eval_steps[np.argmax(fit, 1)], -1)
    t = np.asarray([lane.t for _, lane in ended], np.int32)
    out = out._replace(curve_loss=curves[0], curve_train_acc=curves[1], curve_test_acc=curves[2],
                       steps_to_fit=steps_to_fit.astype(np.int32),
                       stopped_at=np.where(t < static.steps, t, -1).astype(np.int32))
    return [lane.run for _, lane in ended], out


def execute(bucket: Bucket, m: jax.sharding.Mesh, threshold: float | None, load, inputs,
            write: Callable[[Call, Output], None], stats: dict, cache: bool = True,
            more: Callable[[tuple, collections.deque[Run]], None] | None = None,
            blocks: int | None = None) -> None:
    """Train ``bucket``'s calls' runs in segments, ``bucket.chunk`` slots, one data group at a
    time, and write them in parts of about ``bucket.chunk`` runs.

    ``threshold``: :func:`stop_threshold`'s. ``load(data_key) -> Data`` placed replicated;
    ``inputs``: :func:`sweepnet.engine.run.chunk_inputs`; ``write(call, out)``: one part
    (``call.runs`` on lanes ``call.where`` of ``out``, numpy: ``engine.run.write_part``'s
    arguments); ``stats``: the run's (``compiles``, ``loaded``, ``compile_s``, and here
    ``rounds`` and ``network_steps``). ``more(data_key, queue)``: a seam for an adaptive
    search (see :func:`train_queue`). ``blocks``: eval blocks a segment (default
    :func:`segment_blocks`).
    """
    blocks = blocks or segment_blocks(bucket.static)
    progs = Programs(bucket.static, m, bucket.fused, bucket.sub_batch, blocks, threshold,
                     cache, stats)
    groups: dict[tuple, list[Run]] = {}
    for call in bucket.calls:
        groups.setdefault(call.data, []).extend(call.runs)
    for key, runs in groups.items():
        data = load(key)

        def part(rs: list[Run], out: Output, key=key) -> None:
            write(Call(tuple(rs), tuple(rs), np.arange(len(rs)), key, False), out)

        parts = Parts(bucket.chunk, part)
        train_queue(progs, m, bucket.chunk, collections.deque(runs), data, inputs, parts.add,
                    None if more is None else lambda q, key=key: more(key, q))
        parts.flush()
