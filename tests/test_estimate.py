"""`sweepnet plan`'s time estimate: calibrated on recorded runs (manifests), never on a kernel
build, and a poisoned cached calibration is thrown away. Fake manifests stand in for runs."""

import dataclasses
import json
import os
import re

import jax
import pytest

from sweepnet import cli
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import machine, plan
from sweepnet.engine import run as engine
from sweepnet.sweep import spec

SPEC = """
name = "est"
[data]
dataset = "disk_annulus"
n_train = 128
n_test = 256
[model]
width = [2, 8, 16]
depth = [1, 3]
activation = "tanh"
[train]
steps = 300
seeds = 5
eval_every = 100
"""
STEP_S, FLOPS_PER_S, COMPILE_S, OVERHEAD_S = 20e-6, 4e9, 5.0, 2.0


def _record(folder, p, compile_s=COMPILE_S, loaded=False, version=None, name="fake"):
    """A manifest as the engine writes it, for plan ``p`` trained by the linear machine model
    above (each bucket's seconds: its compile plus its padded network-steps' cost)."""
    n_dev = p.n_devices
    buckets = {}
    for b in p.buckets:
        lanes = b.chunk * -(-len(b.runs) // b.chunk)
        train = lanes * b.static.steps / n_dev * (
            STEP_S + cost_lib.step_flops(b.static, b.static.width) / FLOPS_PER_S)
        buckets[f"0of1-b{b.index:03d}"] = {
            "static": dataclasses.asdict(b.static), "networks": len(b.runs), "chunk": b.chunk,
            "gradient": "xla", "seconds": train + compile_s, "compile_s": compile_s,
            "loaded": loaded}
    wall = sum(b["seconds"] for b in buckets.values()) + OVERHEAD_S
    manifest = {"backend": jax.default_backend(), "devices": [str(d) for d in jax.devices()],
                "processes": 1, "versions": {"sweepnet": version or engine.__version__},
                "buckets": buckets, "shards": {"0of1": {"status": "complete", "wall_s": wall}}}
    os.makedirs(folder / name)
    (folder / name / "manifest.json").write_text(json.dumps(manifest))
    return wall


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPNET_CACHE", str(tmp_path / "cache"))

    def refuse(*_, **__):
        raise AssertionError("measured the machine although recorded runs were there")

    monkeypatch.setattr(machine, "calibrate", refuse)
    return tmp_path / "cache"


def _shape(width, depth):
    return SPEC.replace("[2, 8, 16]", str(width)).replace("[1, 3]", str(depth))


def test_recorded_runs_are_the_calibration(tmp_path, fresh_cache):
    n_dev = len(jax.local_devices())
    # two sweeps of very different shapes: they tell the fixed and the FLOP cost apart
    small, wide = (plan.make_plan(spec.loads(_shape(w, d)), n_dev) for w, d in ((2, 1), (16, 3)))
    _record(tmp_path / "results", small, name="small")
    wall = _record(tmp_path / "results", wide, name="wide")
    _record(tmp_path / "results", wide, compile_s=50.0, version="0.0.1", name="old")  # ignored
    t = machine.throughput(results=str(tmp_path / "results"))
    assert t["step_s"] == pytest.approx(STEP_S, rel=1e-6)
    assert t["flops_per_s"] == pytest.approx(FLOPS_PER_S, rel=1e-6)
    assert t["compile_s"] == COMPILE_S and t["load_s"] is None
    assert t["overhead_s"] == pytest.approx(OVERHEAD_S)
    assert f"{len(small.buckets) + len(wide.buckets)} recorded buckets" in t["source"]
    est = wide.estimate_seconds(t["flops_per_s"], t["compile_s"], t["step_s"], t["overhead_s"])
    assert est == pytest.approx(wall, rel=1e-6)


def test_one_recorded_shape_scales_the_prior(tmp_path, fresh_cache):
    p = plan.make_plan(spec.loads(_shape(3, 2)), len(jax.local_devices()))
    wall = _record(tmp_path / "results", p)
    t = machine.throughput(results=str(tmp_path / "results"))
    ratio = cost_lib.DEFAULT_FLOPS_PER_S * cost_lib.DEFAULT_STEP_S  # the prior's shape, kept
    assert t["flops_per_s"] * t["step_s"] == pytest.approx(ratio, rel=1e-6)
    est = p.estimate_seconds(t["flops_per_s"], t["compile_s"], t["step_s"], t["overhead_s"])
    assert est == pytest.approx(wall, rel=1e-6)


def test_a_poisoned_cached_calibration_is_thrown_away(tmp_path, fresh_cache):
    p = plan.make_plan(spec.loads(SPEC), len(jax.local_devices()))
    _record(tmp_path / "results", p)
    os.makedirs(fresh_cache)
    cache = fresh_cache / "throughput.json"
    poisoned = {"step_s": 1e-5, "flops_per_s": 1e10, "compile_s": 224.0, "model": 2}
    cache.write_text(json.dumps({machine.calibration_key(): poisoned, "other": poisoned}))
    said = []
    t = machine.throughput(results=str(tmp_path / "results"), say=said.append)
    assert t["compile_s"] == COMPILE_S
    assert json.loads(cache.read_text()) == {"other": poisoned}  # gone for good
    assert any("dropping a cached calibration" in s for s in said)


def test_a_calibration_from_before_is_measured_again(tmp_path, fresh_cache, monkeypatch):
    n_dev = len(jax.local_devices())
    for w, d in ((2, 1), (16, 3)):  # two warm runs (no compile) of different shapes
        p = plan.make_plan(spec.loads(_shape(w, d)), n_dev)
        _record(tmp_path / "results", p, compile_s=0.5, loaded=True, name=f"w{w}")
    os.makedirs(fresh_cache)
    old = {"step_s": 1e-5, "flops_per_s": 1e10, "compile_s": 224.0}  # no model version
    (fresh_cache / "throughput.json").write_text(json.dumps({machine.calibration_key(): old}))
    measured = {"step_s": 1e-6, "flops_per_s": 1e9, "compile_s": 7.0, "load_s": 0.3,
                "model": machine.MODEL_VERSION}
    monkeypatch.setattr(machine, "calibrate", lambda: dict(measured))
    said = []
    t = machine.throughput(results=str(tmp_path / "results"), say=said.append)
    assert any(s.startswith("measuring this machine") for s in said)
    # the compile is the measurement's; the rest is the recorded run's
    assert t["compile_s"] == 7.0 and t["load_s"] == 0.5
    assert t["step_s"] == pytest.approx(STEP_S, rel=1e-6)
    assert "recorded buckets" in t["source"] and "synthetic compile" in t["source"]


def test_sweepnet_plan_estimates_cold_and_warm_from_recorded_runs(tmp_path, fresh_cache,
                                                                  capsys):
    p = plan.make_plan(spec.loads(SPEC), len(jax.local_devices()))
    cold = _record(tmp_path / "results", p, name="cold")
    warm = _record(tmp_path / "results", p, compile_s=0.4, loaded=True, name="warm")
    path = tmp_path / "est.toml"
    path.write_text(SPEC)
    assert cli.main(["plan", str(path), "--results", str(tmp_path / "results")]) == 0
    out = capsys.readouterr().out
    m = re.search(r"estimated time (\d+) s from empty caches .*, (\d+) s with the programs "
                  r"cached", out)
    est_cold, est_warm = float(m[1]), float(m[2])
    # the fit is exact on runs of the linear model; the estimate adds a process's start
    assert est_cold == pytest.approx(cold + machine.STARTUP_S, abs=1)
    assert est_warm == pytest.approx(warm + machine.STARTUP_S, abs=1)
    assert f"{2 * len(p.buckets)} recorded buckets" in out


def test_a_real_run_calibrates_its_own_estimate(tiny_results):
    """The engine's manifest carries what the fit needs, and the estimate of the run it came
    from lands within 1.5x of its wall time."""
    from conftest import TINY_SPEC
    from sweepnet.store.results import read_manifest

    recorded = machine.recorded_runs(os.path.dirname(tiny_results))
    assert len(recorded) == 1 and all(r["compile_s"] >= 0 for r in recorded)  # one program
    assert recorded[0]["step_flops"] > 0
    n_dev = len(jax.local_devices())
    t = machine.fit_recorded(recorded, n_dev)
    compile_s = t["compile_s"] if t["compile_s"] is not None else t["load_s"]
    p = plan.make_plan(spec.loads(TINY_SPEC), n_dev)
    est = p.estimate_seconds(t["flops_per_s"], compile_s, t["step_s"], t["overhead_s"])
    (shard,) = read_manifest(tiny_results)["shards"].values()
    assert shard["wall_s"] / 1.5 < est < shard["wall_s"] * 1.5


def test_a_first_run_is_estimated_with_xla_until_the_kernel_is_built_then_the_kernel():
    """On a machine without the kernel, a first run trains with XLA's gradient while the kernel
    builds in the background, then switches: the plan says so and estimates that run."""
    s = spec.loads(SPEC)
    xla = plan.make_plan(s, 2, platform="cpu", fused=False)
    kernel = plan.make_plan(s, 2, platform="cpu", fused=True)
    model = dict(flops_per_s=FLOPS_PER_S, compile_s=COMPILE_S, step_s=STEP_S)
    work_xla = xla.estimate_seconds(FLOPS_PER_S, 0.0, STEP_S, padded=True)
    work_kernel = kernel.estimate_seconds(FLOPS_PER_S, 0.0, STEP_S, padded=False)
    n = len(xla.buckets)
    # the build slows what runs beside it 2x; it ends a quarter of the way through XLA's work
    build_s = 2 * (n * COMPILE_S + work_xla / 4)
    text = cost_lib.describe(xla, **model, load_s=0.5, overhead_s=OVERHEAD_S, padded=True,
                         kernel_plan=kernel, build_s=build_s, contention=2.0)
    m = re.search(r"estimated time (\d+) s for this first run from empty caches: XLA's "
                  r"gradient for the first ~\d+ s while the CPU kernel builds .*, (\d+) s with "
                  r"the programs cached", text)
    assert float(m[1]) == pytest.approx(
        build_s + 0.75 * work_kernel + n * COMPILE_S + OVERHEAD_S, abs=1)
    assert float(m[2]) == pytest.approx(work_kernel + n * 0.5 + OVERHEAD_S, abs=1)  # all kernel
    # a run shorter than the build never gets to the kernel: XLA's gradient throughout
    text = cost_lib.describe(xla, **model, overhead_s=OVERHEAD_S, kernel_plan=kernel,
                         build_s=5 * work_xla + 2 * n * COMPILE_S, contention=2.0)
    cold = float(re.search(r"estimated time (\d+) s for this first run from empty caches, "
                           r"with XLA's gradient", text)[1])
    assert cold == pytest.approx(2 * (work_xla + n * COMPILE_S) + OVERHEAD_S, abs=1)


def test_the_background_build_takes_one_core(monkeypatch):
    for cpus, slower in ((1, 2.0), (2, 2.0), (4, 4 / 3), (16, 16 / 15)):
        monkeypatch.setattr(os, "cpu_count", lambda n=cpus: n)
        assert cli.build_contention() == pytest.approx(slower)
