"""One compiled program for a whole grid (issue 13): width, depth and activation are
per-network values, the planner splits programs only by what fixes shapes, and the accelerator
layout trains every network of a call in one batch."""

import glob
import os
import re

import jax
import numpy as np
import pytest

from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan, programs
from sweepnet.engine import run as engine
from sweepnet.kernel.ops import ACTIVATIONS as KERNEL_ACTIVATIONS
from sweepnet.sweep import spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(ROOT, "sweeps", "*.toml"))))
def test_every_shipped_spec_compiles_one_program_per_shape_family(path):
    s = spec.load(path)
    p = plan.make_plan(s, 2)
    # a family: the shape's data, architecture and optimizer, and whether the fused CPU
    # kernel covers its activations (those it lacks, leaky_relu_0.2, get a program of their
    # own so that they do not take the kernel from the rest: plan.family)
    families = {(b.static.in_dim, b.static.n_out, b.static.arch, b.static.optimizer,
                 all(a in KERNEL_ACTIVATIONS for a in b.static.activations))
                for b in p.buckets}
    assert len(p.buckets) == len(families), [b.static for b in p.buckets]
    if os.path.basename(path) == "olah.toml":
        assert len(p.buckets) == 1
        (b,) = p.buckets
        assert (b.static.width, b.static.depth) == (8, 8)
        assert b.static.activations == ("relu", "sigmoid", "softplus", "tanh")
        assert len(b.runs) == 4096


MIXED = """
name = "mix"
[data]
dataset = ["disk_annulus", "xor"]
[model]
width = [1, 3, 6]
depth = [1, 4]
activation = ["tanh", "relu", "sigmoid"]
[train]
steps = 10
seeds = 2
"""


def test_a_bucket_holds_every_width_depth_and_activation_of_its_family():
    p = plan.make_plan(spec.loads(MIXED), 2)
    assert len(p.buckets) == 1  # both datasets are 2-D and binary: one program, two data groups
    (b,) = p.buckets
    assert len(b.groups()) == 2
    assert b.static.activations == ("relu", "sigmoid", "tanh")
    assert max(r.config["depth"] for r in b.runs) == b.static.depth == 4
    # an activation the CPU kernel lacks gets a program of its own, on every machine
    p = plan.make_plan(spec.loads(MIXED, ['model.activation=["tanh", "elu"]']), 2)
    assert sorted(b.static.activations for b in p.buckets) == [("elu",), ("tanh",)]


def test_lanes_balance_work_across_devices_and_map_back():
    s = spec.loads("""
name = "lanes"
[data]
dataset = "disk_annulus"
[model]
width = [1, 8]
depth = [1, 8]
[train]
seeds = 4
""")
    b = plan.make_plan(s, 2).buckets[0]
    cost = lambda r: cost_lib.run_step_flops(b.static, r)
    naive = [sum(cost(r) for r in b.runs[:8]), sum(cost(r) for r in b.runs[8:])]
    assert max(naive) / min(naive) > 2  # the grid's own order would load one device
    laid, where = plan.lay_out(b.runs, 18, 2, cost)  # 16 networks, 2 padding lanes
    assert [laid[i] for i in where] == b.runs  # every run sits on the lane recorded for it
    work = [sum(cost(r) for r in laid[:9]), sum(cost(r) for r in laid[9:])]
    assert max(work) / min(work) < 1.1, work
    calls = plan.split(b.runs, 3)
    assert [r for c in calls for r in c] == b.runs  # in grid order, each run once
    assert max(len(c) for c in calls) - min(len(c) for c in calls) <= 1


def _inputs(static, n):
    """``(seeds, hyper, data)`` of a call of ``n`` copies of one disk network of ``static``."""
    cfg = {"dataset": "disk_annulus", "arch": "mlp", "width": 3, "depth": 2,
           "activation": "tanh", "optimizer": "adam", "steps": static.steps,
           "eval_every": static.eval_every, "batch_size": 0, "n_train": static.n_train,
           "n_test": static.n_test, "noise": 0.0, "data_seed": 0, "learning_rate": 0.01,
           "init_scale": 1.0, "data_inner": 0.3333, "data_gap": 0.6667, "data_outer": 1.0}
    run = plan.Run(0, "0" * 16, cfg)
    return (*engine.chunk_inputs([run] * n, n, static), engine.load_data(static, run))


def _lowered(fn, platform, *args) -> str:
    """StableHLO of ``fn`` on ``args``, lowered for ``platform`` on this CPU (``jax.export``
    needs no GPU to lower for cuda)."""
    return jax.export.export(fn, platforms=(platform,))(*args).mlir_module()


# a two-activation bucket of depth 3 on the disk (64 training points), 20 steps
EXPORTED = plan.static_of({"dataset": "disk_annulus", "arch": "mlp", "depth": 2,
                           "activation": "tanh", "optimizer": "adam", "steps": 20,
                           "eval_every": 10, "batch_size": 0, "n_train": 64, "n_test": 200},
                          3, depth=3, activations=("relu", "tanh"))


def _exported(static, n, target, platform):
    """StableHLO of the bucket program laid out for ``target``, lowered for ``platform``."""
    fn = programs.bucket_fn(static, programs.mesh(jax.local_devices()[:1]), False,
                            plan.sub_batch(static), target)
    return _lowered(fn, platform, *_inputs(static, n))


def test_the_accelerator_program_batches_every_layer_over_the_whole_call():
    static = EXPORTED
    n = 3000
    gpu = _exported(static, n, "gpu", "cuda")
    dots = [ln for ln in gpu.splitlines() if "stablehlo.dot_general" in ln]
    # every product (layers in training, evaluation, certificate) runs over all n networks at
    # once: its result has an axis of n networks (an operand may be the shared points)
    for ln in dots:
        *args, result = re.findall(r"tensor<([0-9x]+)xf32>", ln.split(" : ", 1)[1])
        assert str(n) in result.split("x"), ln
        assert any(str(n) in a.split("x") for a in args), ln
    layers = [ln for ln in dots if re.search(rf"tensor<{n}x\d+x\d+xf32>", ln)]
    assert len(layers) >= 3 * (static.depth + 1)  # forward, two backward products a layer
    assert "sweepnet_fused" not in gpu
    # no loop over sub-batches of networks: the CPU layout of the same program maps over
    # sub-batches of `sub` networks (arrays with a leading axis of `sub`); the GPU's has none
    sub = max(d for d in range(1, plan.sub_batch(static) + 1) if n % d == 0)
    assert sub < n and sub not in (static.n_train, static.n_test)
    cpu = _exported(static, n, "cpu", "cpu")
    assert f"tensor<{sub}x" in cpu
    assert f"tensor<{sub}x" not in gpu


def _segment_modules(static, n, target, platform):
    """StableHLO of the segment programs (``advance`` over ``n`` slots, ``finish`` over
    ``n // 4`` lanes) laid out for ``target``, lowered for ``platform``."""
    fns = programs.segment_fns(static, programs.mesh(jax.local_devices()[:1]), False,
                               plan.sub_batch(static), 1, 0.9, target)
    seeds, hyper, data = _inputs(static, n)
    state = jax.eval_shape(fns.start, seeds, hyper, data)
    flags, lanes = np.zeros(n, bool), np.zeros(n // 4, np.int32)
    return (_lowered(fns.advance, platform, state, seeds, hyper, flags, flags, data),
            _lowered(fns.finish, platform, state, hyper, lanes, data))


def test_the_accelerator_segment_programs_batch_every_layer_over_the_slots():
    """train.stop = "separated" on a GPU: each segment is one call over all of the slots (and
    a retirement one over the retired lanes), not a loop over sub-batches of networks."""
    static = EXPORTED
    n = 3000
    for module, size in zip(_segment_modules(static, n, "gpu", "cuda"), (n, n // 4),
                            strict=True):
        dots = [ln for ln in module.splitlines() if "stablehlo.dot_general" in ln]
        assert len(dots) >= 2 * (static.depth + 1)
        for ln in dots:  # every product has an axis of all the slots (or retired lanes)
            result = re.findall(r"tensor<([0-9x]+)xf32>", ln.split(" : ", 1)[1])[-1]
            assert str(size) in result.split("x"), ln
        assert "sweepnet_fused" not in module
    # the CPU layout of the same programs maps over sub-batches: no product over all slots
    cpu_advance, _ = _segment_modules(static, n, "cpu", "cpu")
    assert not [ln for ln in cpu_advance.splitlines()
                if "stablehlo.dot_general" in ln and f"{n}x" in ln]


def test_accelerator_calls_hold_the_whole_share():
    static = plan.static_of({"dataset": "disk_annulus", "arch": "mlp", "depth": 2,
                           "activation": "tanh", "optimizer": "adam", "steps": 1000,
                           "eval_every": 100, "batch_size": 0, "n_train": 512,
                           "n_test": 8192}, 3)
    cfg = {"dataset": "d", "n_train": 512, "n_test": 8192, "noise": 0.0, "data_seed": 0}
    runs = [plan.Run(i, f"{i:016x}", cfg) for i in range(65536)]
    assert plan.chunk_size(static, runs, 1, 80 * 2**30, "gpu") == 65536  # one call
    assert plan.chunk_size(static, runs, 2, 80 * 2**30, "cpu") <= plan.MAX_CHUNK_CPU


class _Device:
    platform = "gpu"

    def __init__(self, stats):
        self.stats = stats

    def memory_stats(self):
        return self.stats


class _Mesh:
    def __init__(self, *devices):
        self.devices = np.asarray(devices, dtype=object)


def test_call_memory_comes_from_the_devices():
    gib = 2**30
    two = _Mesh(_Device({"bytes_limit": 80 * gib, "bytes_in_use": gib}),
                _Device({"bytes_limit": 80 * gib, "bytes_in_use": 0}))
    assert programs.device_memory(two) == int(2 * 80 * gib * programs.MEMORY_SHARE) - gib
    assert programs.device_memory(_Mesh(_Device({}))) is None  # no statistics: --max-memory
    assert programs.device_memory(programs.mesh()) is None  # CPU devices report no limit
