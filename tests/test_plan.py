import sys
import threading

import jax
import numpy as np
import pandas as pd
import pytest

from conftest import TINY_SPEC
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.store import results
from sweepnet.sweep import spec

SPEC = """
name = "p"
[data]
dataset = "disk_annulus"
[model]
width = [1, 2, 3, 8, 64]
depth = [1, 3]
activation = ["tanh", "relu"]
[train]
steps = 500
seeds = 5
"""


def test_every_run_lands_in_exactly_one_bucket_of_its_family():
    s = spec.loads(SPEC)
    p = plan.make_plan(s, n_devices=2)
    ids = [r.run_id for b in p.buckets for r in b.runs]
    assert sorted(ids) == sorted(r.run_id for r in plan.expand(s))
    assert len(p.buckets) == 1  # width, depth and activation are per-network values
    for b in p.buckets:
        assert all(r.config["width"] <= b.static.width for r in b.runs)
        assert all(r.config["depth"] <= b.static.depth for r in b.runs)
        assert {r.config["activation"] for r in b.runs} == set(b.static.activations)
        assert b.static.width in {r.config["width"] for r in b.runs}  # no wider than needed
        assert b.static.depth in {r.config["depth"] for r in b.runs}  # no deeper than needed


@pytest.mark.parametrize("n_devices", [1, 2, 8])
@pytest.mark.parametrize("n_runs", [1, 5, 64, 128, 1000, 5000])
def test_chunks_shard_evenly_with_little_padding(n_devices, n_runs):
    s = spec.loads(SPEC)
    static = plan.static_of(plan.expand(s)[0].config, 8)
    cfg = plan.expand(s)[0].config  # once: expanding the spec per run cost 10-30 s
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(n_runs)]
    chunk = plan.chunk_size(static, runs, n_devices, plan.DEFAULT_MAX_MEMORY)
    assert chunk % n_devices == 0
    share = chunk // n_devices
    sub = plan.sub_batch(static)
    k = -(-share // sub)
    assert share % k == 0 and share // k <= sub  # k equal sub-batches per device
    calls = -(-n_runs // chunk)
    waste = calls * chunk - n_runs
    # calls of equal size: each wastes less than a lane per sub-batch and device (a short last
    # call padded to a whole chunk would waste up to a chunk)
    assert waste < calls * (n_devices * (k + 1) + 1), (chunk, calls, waste)


def test_a_group_is_cut_into_calls_of_equal_size():
    s = spec.loads(SPEC)
    static = plan.static_of(plan.expand(s)[0].config, 8)
    cfg = plan.expand(s)[0].config  # once: expanding the spec per run cost 10-30 s
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(4096)]
    budget = 900 * cost_lib.bytes_per_network(static)  # room for 900 networks a call
    chunk = plan.chunk_size(static, runs, 2, budget)
    assert chunk * cost_lib.bytes_per_network(static) <= budget
    assert -(-4096 // chunk) == 5 and 5 * chunk - 4096 < 2 * (plan.sub_batch(static) + 2) * 5
    # an accelerator has no sub-batches: calls of equal size, at most a lane per device wasted
    budget = 2040 * cost_lib.bytes_per_network(static)
    chunk = plan.chunk_size(static, runs, 2, budget, "gpu")
    assert -(-4096 // chunk) == 3 and 3 * chunk - 4096 < 2 * 3


def test_chunk_respects_max_memory():
    s = spec.loads(SPEC)
    static = plan.static_of(plan.expand(s)[0].config, 64)
    cfg = plan.expand(s)[0].config  # once: expanding the spec per run cost 10-30 s
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(4000)]
    budget = 64 * cost_lib.bytes_per_network(static)
    chunk = plan.chunk_size(static, runs, 2, budget)
    assert chunk * cost_lib.bytes_per_network(static) <= budget


def test_counts_of_one_are_singular():
    """"1 bucket", never "1 buckets": the run's summary and the plan's text."""
    summary = engine.Summary(total=1, skipped=0, trained=1, buckets=1, compiles=1,
                             compile_s=0.5, wall_s=2.0)
    assert str(summary).startswith("trained 1 network (0 already done, 1 in grid) in 2.0 s: "
                                   "1 bucket, 1 compile (0.5 s), ")
    many = engine.Summary(total=4, skipped=0, trained=4, buckets=2, compiles=2, compile_s=0.5,
                          wall_s=2.0)
    assert str(many).startswith("trained 4 networks (0 already done, 4 in grid) in 2.0 s: "
                                "2 buckets, 2 compiles (0.5 s), ")
    one = spec.loads(TINY_SPEC.replace("width = [2, 3]", "width = 2")
                     .replace("depth = [1, 2]", "depth = 1").replace("seeds = 2", "seeds = 1"))
    text = cost_lib.describe(plan.make_plan(one, n_devices=1))
    assert "'tiny': 1 network in 1 bucket (1 compile) on 1 device\n" in text
    assert "from empty caches (1 compile ~" in text


def test_describe_reports_the_plan():
    p = plan.make_plan(spec.loads(SPEC), n_devices=2)
    text = cost_lib.describe(p)
    assert len(p.buckets) == 1
    assert f"{len(p.runs)} networks in 1 bucket (1 compile) on 2 devices" in text
    assert "padding waste" in text and "estimated time" in text
    assert 0.0 <= p.padding_waste < 1.0


def test_resnet_narrower_than_its_input_is_refused():
    from sweepnet.core.errors import SweepnetError

    text = SPEC.replace("[model]", '[model]\narch = "resnet"')
    with pytest.raises(SweepnetError, match="model.width"):
        plan.make_plan(spec.loads(text), 2)
    ok = plan.make_plan(spec.loads(text, ["model.width=[2,3]"]), 2)
    mlp = plan.make_plan(spec.loads(SPEC, ["model.width=[2,3]"]), 2)
    # two square kernels a block: a resnet step costs more than the mlp's
    step = cost_lib.step_flops
    assert step(ok.buckets[0].static, 3) > step(mlp.buckets[0].static, 3)


# --- the chunk at its memory limit, and a file dataset's sizes (issue 28) ----------------------


@pytest.mark.parametrize("platform", ["cpu", "gpu"])
def test_a_chunk_is_the_fewest_equal_calls_that_fit(platform):
    """For groups of 1-1000 runs, room for 1-1024 networks a call and 1, 2 or 8 devices: the
    chunk is a multiple of the devices, fits the room (or is one network a device, the least
    a call holds), and one call fewer, cut equally, would not fit (so a group that fits in one
    call exactly is one call)."""
    s = spec.loads(SPEC)
    cfg = plan.expand(s)[0].config
    static = plan.static_of(cfg, 8)
    per_net = cost_lib.bytes_per_network(static)
    sub = plan.sub_batch(static) if platform == "cpu" else plan.MAX_CHUNK_ACCEL
    for largest in (1, 7, 8, 50, 64, 100, 333, 1000):
        runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(largest)]
        for room in (1, 3, 8, 16, 50, 64, 200, 1024):
            for n_devices in (1, 2, 8):
                case = (largest, room, n_devices)
                chunk = plan.chunk_size(static, runs, n_devices, room * per_net, platform)
                assert chunk % n_devices == 0, case
                assert chunk <= room or chunk == n_devices, (case, chunk)
                calls = -(-largest // chunk)
                if calls > 1:
                    fewer = plan.whole_lanes(-(-largest // (calls - 1)), n_devices, sub)
                    assert fewer > room, (case, chunk, fewer)
    # room for less than one network: one network a device
    for n_devices in (1, 2, 8):
        assert plan.chunk_size(static, runs, n_devices, per_net // 2, platform) == n_devices
    # a group that fills one call exactly (whole sub-batches): that call
    full = min(sub, 64)
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(full)]
    assert plan.chunk_size(static, runs, 1, full * per_net, platform) == full


def test_a_file_dataset_plans_the_probe_its_rows_allow(tmp_path):
    """A file of 100 points with ``n_train = 60`` and ``n_test = 1000``: every program of the
    plan (made with the default single device) trains on 60 and probes the 40 left."""
    path = tmp_path / "points.csv"
    rng = np.random.default_rng(0)
    pd.DataFrame({"a": rng.normal(size=100), "b": rng.normal(size=100),
                  "label": rng.integers(0, 2, 100)}).to_csv(path, index=False)
    s = spec.loads(f"""
name = "f"
[data]
dataset = "file"
n_train = 60
n_test = 1000
[data.file]
path = "{path}"
[model]
width = [2, 3]
depth = 1
[train]
steps = 10
""")
    p = plan.make_plan(s)
    assert p.n_devices == 1 and len(p.buckets) == 1
    (b,) = p.buckets
    assert (b.static.in_dim, b.static.n_train, b.static.n_test) == (2, 60, 40)
    assert b.chunk >= 1


def _calls_into_the_plan(fn) -> set[tuple[str, str]]:
    """``(caller, callee)`` function names of every call from ``engine/run.py`` into
    ``engine/plan.py`` while ``fn()`` runs."""
    found = set()

    def watch(frame, event, arg):
        caller = frame.f_back
        if (event == "call" and caller is not None
                and frame.f_globals.get("__name__") == plan.__name__
                and caller.f_globals.get("__name__") == engine.__name__):
            found.add((caller.f_code.co_name, frame.f_code.co_name))

    sys.setprofile(watch)
    threading.setprofile(watch)  # the engine dispatches its calls from threads of their own
    try:
        fn()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return found


def test_the_run_loop_carries_the_plan_out_and_never_asks_it_anything(tmp_path, monkeypatch):
    """The sweep asks the plan once for the whole grid (before it touches the folder) and once
    for what is left; the run loop (train_bucket, execute, write_part) never calls into it,
    and a kernel that becomes ready or a call out of memory re-plans through make_plan."""
    s = spec.loads(TINY_SPEC)
    room = 4 * cost_lib.bytes_per_network(plan.make_plan(s, 2).buckets[0].static)
    calls = _calls_into_the_plan(
        lambda: engine.run_sweep(s, str(tmp_path / "a"), progress=False, max_memory=room))
    assert calls == {("sweep", "make_plan"), ("replan", "make_plan")}
    # out of memory at the first call: the bucket is re-planned through make_plan, with a cap
    fail = iter([True])
    real = engine.dispatch

    def oom_once(compiled, *args):
        if next(fail, False):
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: simulated")
        return real(compiled, *args)

    monkeypatch.setattr(engine, "dispatch", oom_once)
    calls = _calls_into_the_plan(
        lambda: engine.run_sweep(s, str(tmp_path / "b"), progress=False, max_memory=room))
    assert calls == {("sweep", "make_plan"), ("replan", "make_plan")}
    assert results.read_manifest(str(tmp_path / "b"))["buckets"]["s0of1-b000"]["chunk"] == 2
