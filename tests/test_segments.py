"""Training in segments (``train.stop = "separated"``, issue 26): a segmented network is the
network ``make_train`` trains, a stopped one is that network at its stop, and refilling a slot
changes nobody's result."""

import collections
import dataclasses
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from jax.flatten_util import ravel_pytree
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import sweepnet
from conftest import PROVENANCE, TINY_SPEC
from sweepnet.core.errors import SweepnetError
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan, programs, segments
from sweepnet.engine import run as engine
from sweepnet.engine.plan import Run
from sweepnet.sweep import spec
from sweepnet.sweep.models import build
from sweepnet.train.segments import Evals, State, float32_at_least, make_segments
from sweepnet.train.step import Output, network

# width 1 never reaches 0.8 on the disk; width 4 does, between steps 30 and 60 of 95 (the
# last block 5 steps: the rest of its segment is discarded); minibatches
SPEC = """
name = "seg"
[data]
dataset = "disk_annulus"
n_train = 64
n_test = 256
[model]
width = [1, 4]
depth = 1
activation = "tanh"
[train]
learning_rate = 0.1
steps = 95
seeds = 4
eval_every = 10
separation = 0.8
batch_size = 16
"""


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """SPEC trained in full (``make_train``) and with stopping (in segments), four networks a
    call: four slots for eight networks (refills)."""
    outs = {}
    for stop in ("never", "separated"):
        s = spec.loads(SPEC, [f"train.stop={stop}"])
        budget = 4 * cost_lib.bytes_per_network(plan.make_plan(s, 2).buckets[0].static)
        outs[stop] = str(tmp_path_factory.mktemp(stop))
        engine.run_sweep(s, outs[stop], progress=False, max_memory=budget)
    return outs


def _table(out):
    df = sweepnet.load(out)
    return df.drop(columns=[c for c in PROVENANCE if c in df]).set_index("run_id").sort_index()


def test_a_stopped_network_is_the_full_network_at_its_stop(both):
    """Bit for bit (CPU): a segmented network's every evaluation is make_train's, and one
    that never stopped has make_train's row."""
    full, stopped = _table(both["never"]), _table(both["separated"])
    assert list(full.index) == list(stopped.index)  # stopping keeps run ids (and seeds)
    assert full["stopped_at"].isna().all()
    hit = stopped["stopped_at"].notna()
    assert hit.sum() == 4 and (stopped.loc[hit, "width"] == 4).all()
    # it stopped at its first separated evaluation, which the full run's table records too
    assert (stopped.loc[hit, "stopped_at"] == full.loc[hit, "separated_at"]).all()
    assert (stopped.loc[hit, "stopped_at"] < 95).all() and stopped.loc[hit, "separated"].all()
    # the others trained every step: their rows are the full run's
    pd.testing.assert_frame_equal(stopped[~hit], full[~hit], check_exact=True)
    a = sweepnet.load_curves(both["never"]).set_index(["run_id", "step"]).sort_index()
    b = sweepnet.load_curves(both["separated"]).set_index(["run_id", "step"]).sort_index()
    assert len(b) < len(a)  # no evaluations past a stop
    pd.testing.assert_frame_equal(a.loc[b.index], b, check_exact=True)
    for run_id, row in stopped[hit].iterrows():  # its final numbers: the curve's at its stop
        at = a.loc[(run_id, int(row["stopped_at"]))]
        assert row["test_acc"] == at["test_acc"] and row["train_acc"] == at["train_acc"]


def test_a_stopped_network_equals_it_trained_alone_to_its_stop(both):
    """Trained alone: another program (one network, unsharded), so to float round-off."""
    row = _table(both["separated"]).query("stopped_at.notna()").iloc[0]
    run_id = row.name
    config = next(r for r in spec.loads(SPEC, ["train.stop=separated"]).grid()
                  if spec.run_id(r) == run_id)
    static = dataclasses.replace(plan.static_of(config, config["width"]),
                                 steps=int(row["stopped_at"]))
    alone = engine.train_alone(config, run_id, static)
    np.testing.assert_allclose(alone.train_loss, row["train_loss"], rtol=1e-5, atol=1e-6)
    assert row["test_acc"] == pytest.approx(float(alone.test_acc), abs=2 / 256)
    assert row["stopped_at"] == alone.steps_to_fit or pd.isna(row["steps_to_fit"])
    _, stored = sweepnet.load_params(both["separated"], run_id)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 stored, alone.params)


def test_refilled_slots_give_the_results_of_one_network_per_slot(both):
    """Four slots, eight networks: refilled as they stop, or four and four (never refilled),
    and cut into segments of one block or of three: the same numbers, bit for bit."""
    s = spec.loads(SPEC, ["train.stop=separated"])
    m = programs.mesh()
    static = plan.make_plan(s, m.devices.size).buckets[0].static
    budget = 4 * cost_lib.bytes_per_network(static)  # as `both`: its programs, from the cache
    bucket = plan.make_plan(s, m.devices.size, budget).buckets[0]
    assert segments.segment_blocks(bucket.static) == 1 and bucket.chunk == 4
    runs = list(bucket.runs)
    data = jax.device_put(engine.load_data(bucket.static, runs[0]), NamedSharding(m, P()))

    def train(queues, blocks):
        progs = segments.Programs(bucket.static, m, False, bucket.sub_batch, blocks, 0.8)
        got = {}
        for q in queues:
            segments.train_queue(progs, m, 4, collections.deque(q), data, engine.chunk_inputs,
                                 lambda rs, out: got.update(
                                     {r.run_id: jax.tree.map(lambda a, i=i: a[i], out)
                                      for i, r in enumerate(rs)}))
        assert progs.stats["rounds"] >= 1
        return got, progs.stats

    # width 1 (never stops) and width 4 (stops) alternate, so stopped slots take new ones
    mixed = [runs[i] for i in (0, 4, 1, 5, 2, 6, 3, 7)]
    refilled, stats = train([mixed], 1)
    alone, _ = train([mixed[:4], mixed[4:]], 3)
    assert refilled.keys() == alone.keys() == {r.run_id for r in runs}
    # the four width-4 networks stopped early: fewer steps than 8 x 100
    assert stats["network_steps"] < 8 * 95
    for run_id in refilled:
        for a, b in zip(jax.tree.leaves(refilled[run_id]), jax.tree.leaves(alone[run_id]),
                        strict=True):
            np.testing.assert_array_equal(a, b, err_msg=run_id)


def test_whole_blocks_are_make_train_s_steps_and_a_decided_lane_keeps_its_state():
    """``steps`` a multiple of ``eval_every``: a block keeps every step and one select at its
    end discards a decided lane's (no select a step). Bit for bit (CPU): a live lane's
    evaluations and parameters are those of make_train's scan of the same steps; a lane
    marked done keeps its state."""
    s = spec.loads(SPEC, ["train.steps=40", "model.width=4", "train.seeds=2"])
    runs = [Run(i, spec.run_id(c), c) for i, c in enumerate(s.grid())]
    static = plan.static_of(runs[0].config, 4)
    assert static.steps % static.eval_every == 0
    data = engine.load_data(static, runs[0])
    seeds, hyper = engine.chunk_inputs(runs, 2, static)
    model = build(static.arch, static.width, static.depth, static.activations, static.n_out)

    def scanned(seed, h):  # make_train's loop, without its separation metrics (a long compile)
        k_init, k_batch = jax.random.split(jax.random.key(seed))
        params, unravel = ravel_pytree(model.init(k_init, data.x_train[:, :1], h.width,
                                                  h.init_scale))
        net = network(static, model, False, h, data, unravel, k_batch)

        def block(carry, ts):
            carry, _ = jax.lax.scan(net.step, carry, ts)
            return carry, net.evaluate(carry[0])

        carry = (params, net.tx.init(params), jnp.asarray(False))
        carry, evals = jax.lax.scan(block, carry, jnp.arange(40).reshape(4, 10))
        return carry[0], jnp.stack(evals)

    seg = make_segments(static)

    def segmented(seed, h):  # two segments of two blocks; lane 1 decided before the first
        state = seg.init(jax.random.key(seed), h, data)
        state = state._replace(done=seed == seeds[1])
        first, ev1 = seg.advance(state, h, data, 2)
        last, ev2 = seg.advance(first, h, data, 2)
        return state, last, jax.tree.map(lambda a, b: jnp.concatenate([a, b]), ev1, ev2)

    want_params, want_curves = jax.device_get(jax.jit(jax.vmap(scanned))(seeds, hyper))
    start, end, ev = jax.device_get(jax.jit(jax.vmap(segmented))(seeds, hyper))
    assert ev.live[0].all() and not ev.live[1].any()
    np.testing.assert_array_equal(np.stack([ev.loss[0], ev.train_acc[0], ev.test_acc[0]]),
                                  want_curves[0])
    np.testing.assert_array_equal(end.params[0], want_params[0])
    assert end.t[0] == 40
    for a, b in zip(jax.tree.leaves(start), jax.tree.leaves(end), strict=True):
        np.testing.assert_array_equal(a[1], b[1])  # the decided lane is untouched


class FakePrograms:
    """A stand-in for :class:`segments.Programs` on the host: network ``r`` is decided at step
    ``r.config["decide"]`` (or trains all ``steps``), ``every`` steps a block."""

    def __init__(self, steps=50, every=10, blocks=2):
        self.static = plan.static_of(spec.loads(TINY_SPEC).grid()[0], 2)
        self.static = dataclasses.replace(self.static, steps=steps, eval_every=every)
        self.blocks, self.stats, self.calls = blocks, {}, []
        self.decide = None

    def empty_state(self, seeds, hyper, data, sharding):
        n = len(seeds)
        return State(np.zeros(n), np.zeros(n), np.zeros(n, bool), np.zeros(n),
                     np.zeros(n, np.int32), np.zeros(n, bool))

    def __call__(self, name, *args):
        self.calls.append(name)
        if name == "advance":  # a refill, then the blocks
            state, seeds, _, fresh, park, _ = map(jax.device_get, args)
            state = state._replace(params=np.where(fresh, seeds, state.params),
                                   t=np.where(fresh, 0, state.t),
                                   done=np.where(fresh, False, state.done) | park)
            decide = np.asarray([self.decide[int(s)] for s in state.params])
            rows, t, done = [], state.t.copy(), state.done.copy()
            for _ in range(self.blocks):
                live = ~done & (t < self.static.steps)
                t = np.where(live, np.minimum(t + self.static.eval_every, self.static.steps), t)
                done |= live & (t >= decide)
                rows.append((t.astype(np.float32), live))
            evals = Evals(*(np.stack([r[0] for r in rows], 1),) * 3,
                          np.stack([r[1] for r in rows], 1))
            return state._replace(t=t, done=done), evals
        raise AssertionError(name)

    def finish(self, state, hyper, data, lanes, chunk):
        self.calls.append("finish")
        state = jax.device_get(state)  # an Output-like of the retired lanes' states
        return [make_output(jax.tree.map(lambda a: np.asarray(a)[list(lanes)], state))]


def make_output(state):
    n = len(state.t)
    z = np.zeros(n, np.float32)
    return Output(params={"seed": state.params}, train_loss=z, train_acc=z,
                           test_acc=z, steps_to_fit=z, diverged=np.zeros(n, bool),
                           curve_loss=z, curve_train_acc=z, curve_test_acc=z, margin=z,
                           worst_margin=z, certified=np.zeros(n, bool), max_grad=z,
                           stopped_at=state.t)


def test_the_loop_retires_decided_networks_refills_slots_and_takes_more_runs():
    progs = FakePrograms()
    decide = {i: d for i, d in enumerate([10, 50, 20, 999, 30, 10, 40])}  # 999: never
    progs.decide = decide
    runs = [Run(i, f"r{i}", {"seed": i}, key=(), kind=()) for i in range(5)]

    def inputs(rs, size, static):
        return np.asarray([r.index for r in rs], np.uint32), np.zeros(size, np.float32)

    asked = []

    def more(queue):  # an adaptive search feeding the queue between rounds
        asked.append(len(queue))
        if len(asked) == 3:
            queue.extend(Run(i, f"r{i}", {"seed": i}, key=(), kind=()) for i in (5, 6))

    retired = []
    segments.train_queue(progs, programs.mesh(), 2, collections.deque(runs), None, inputs,
                         lambda rs, out: retired.extend(
                             (r.index, int(s)) for r, s in zip(rs, out.stopped_at,
                                                               strict=True)),
                         more=more)
    # every run once, stopped at its decision (rounded up to an evaluation), or at 50: -1
    want = {i: (-1 if d >= 50 else d) for i, d in decide.items()}
    assert dict(retired) == want and len(retired) == 7
    assert progs.stats["network_steps"] == sum(min(d, 50) for d in decide.values())
    assert progs.calls.count("advance") == progs.stats["rounds"] == len(asked) - 1
    assert progs.calls.count("finish") <= progs.stats["rounds"]


def test_retired_networks_are_written_behind_the_next_segments():
    """The host's work on retired networks (a part's write: tens of milliseconds) runs while
    the next segments compute, in order; its error stops the loop."""
    later = threading.Event()  # the loop has dispatched two rounds after the first retirement

    class Watched(FakePrograms):
        def __call__(self, name, *args):
            if self.calls.count("advance") >= 3:
                later.set()
            return super().__call__(name, *args)

    progs = Watched()  # 50 steps, 10 a block, 2 blocks a segment: 3 rounds a network
    progs.decide = {0: 10, 1: 999, 2: 999, 3: 10}
    runs = [Run(i, f"r{i}", {"seed": i}, key=(), kind=()) for i in range(4)]
    inputs = lambda rs, size, static: (np.asarray([r.index for r in rs], np.uint32),
                                       np.zeros(size, np.float32))
    retired = []

    def retire(rs, out):
        assert later.wait(5), "the loop waited for the write of its retired networks"
        retired.extend(r.index for r in rs)

    segments.train_queue(progs, programs.mesh(), 2, collections.deque(runs), None, inputs,
                         retire)
    assert retired == [0, 1, 2, 3] and progs.stats["rounds"] >= 3

    def broken(rs, out):
        raise OSError("disk full")

    progs.calls.clear()
    with pytest.raises(OSError, match="disk full"):
        segments.train_queue(progs, programs.mesh(), 2, collections.deque(runs), None, inputs,
                             broken)


def test_stop_is_optional_in_the_spec_and_not_in_the_run_id():
    base = spec.loads(TINY_SPEC)
    never, stop = (spec.loads(TINY_SPEC, [f"train.stop={v}"]) for v in ("never", "separated"))
    assert "stop" not in base.tree["train"] and never.tree == base.tree
    assert never.fingerprint() == base.fingerprint() and stop.tree["train"]["stop"] == "separated"
    ids = [spec.run_id(c) for c in base.grid()]
    assert [spec.run_id(c) for c in stop.grid()] == ids  # the same networks, seeds and all
    assert segments.stop_threshold(base) is None and segments.stop_threshold(stop) == 1.0
    assert spec.grow_conflicts(base, stop) == ["train.stop"]
    with pytest.raises(SweepnetError, match="train.stop.*'sometimes'"):
        spec.loads(TINY_SPEC, ["train.stop=sometimes"])
    with pytest.raises(SweepnetError, match="train.stop"):
        spec.loads(TINY_SPEC, ["train.stop=[never,separated]"])
    # the device compares float32 accuracies with the float64 threshold's float32 ceiling
    up = float32_at_least(0.9)
    assert float(up) >= 0.9 > float(np.nextafter(up, np.float32(0)))
    assert float32_at_least(0.75) == np.float32(0.75)


def test_a_diverged_network_stops_at_the_evaluation_that_saw_it(tmp_path):
    """Plain SGD at rate 1000 overflows within a few steps (tests/test_divergence.py): the
    network is decided there (it can no longer change) and stops at the first evaluation."""
    s = spec.loads(SPEC, ["train.stop=separated", "train.optimizer=sgd",
                          "train.learning_rate=[0.01, 1000.0]", "model.width=3",
                          "model.activation=linear", "train.seeds=1"])
    engine.run_sweep(s, str(tmp_path), progress=False)
    df = sweepnet.load(str(tmp_path)).set_index("learning_rate")
    assert df.loc[1000.0, "diverged"] and df.loc[1000.0, "stopped_at"] == 10
    assert not df.loc[0.01, "diverged"] and pd.isna(df.loc[0.01, "stopped_at"])
