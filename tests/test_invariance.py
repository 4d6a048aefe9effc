"""A network's result depends only on its own configuration and seed (Contract 2): never on
the other runs of its program, its padding (width, depth), the mix of activations, the number
of devices or how the calls are cut. The model and the fused kernel alone: tests/test_masks.py.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sweepnet
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.kernel import build, ops
from sweepnet.sweep import models, spec
from sweepnet.sweep.optimizers import OPTIMIZERS
from sweepnet.train import regions
from sweepnet.train.step import Hyper, make_data, make_train

ACTS = sorted(models.ACTIVATIONS)
KERNEL_ACTS = [a for a in ACTS if a in ops.ACTIVATIONS]
SPEC = f"""
name = "inv"
[data]
dataset = "disk_annulus"
n_train = 48
n_test = 128
[model]
width = [2, 5]
depth = [2, 3]
activation = {json.dumps(ACTS)}
[train]
learning_rate = 0.05
steps = 30
seeds = 2
eval_every = 10
"""
MAX_MEMORY = 200_000  # a tiny budget: several calls per bucket (chunking)
# the network compared with itself trained alone, one per activation: narrow in a wide bucket
# (padded units: a missing mask shows with sigmoid and softplus, which are not 0 at 0) and one
# layer short of it (a padded identity layer after a real hidden-to-hidden one)
SAMPLE = {"width": 2, "depth": 2, "seed": 0}
# Each network trained alone is a program of its own (about 5 s of compile on a 2-core CPU), so
# the quick tier compares only the activations a missing width mask moves (not 0 at 0: the
# padded units' act(0) reaches the next layer; these also check depth padding and selection),
# and one of the program of the activations the fused kernel lacks; the slow tier compares one
# activation of each family, on both gradients. The engine's code is one for every activation
# of a program (it selects the network's activation by its index: tests/test_masks.py checks
# that selection for every activation, tests/test_fused.py the kernel's gradient of each, and
# test_result_does_not_depend_on_grid_order every network of the sweep), so a family's other
# members take the same path: tanh as sigmoid (smooth, saturating: tanh(x) = 2 sigmoid(2x) - 1),
# leaky_relu and linear as relu (piecewise linear), gelu as silu (x times a smooth gate).
QUICK = {a for a in ACTS if float(models.ACTIVATIONS[a](jnp.float32(0.0))) != 0.0}
QUICK.add(min(a for a in ACTS if a not in KERNEL_ACTS))
SAME_FAMILY = {"tanh": "sigmoid", "leaky_relu": "relu", "linear": "relu", "gelu": "silu"}
ALONE = [a for a in ACTS if a not in SAME_FAMILY]
assert set(SAME_FAMILY.values()) <= set(ALONE)
slow = pytest.mark.slow
GRADIENTS = ["xla", pytest.param("fused", marks=slow)]


def _sweep(tmp_path_factory, gradient):
    """The sweep trained with XLA's gradient or with the fused CPU kernel's (where it covers:
    the elu, gelu, silu and sin networks, a program of their own, are XLA's either way).

    Every activation of the registry, widths 2 and 5, depths 2 and 3, 2 seeds: two programs
    (the kernel's activations, the rest), each padded in width and depth, mixed in activation,
    sharded over the 2 devices and cut into several calls (``MAX_MEMORY``)."""
    out = str(tmp_path_factory.mktemp(f"inv-{gradient}"))
    s = spec.loads(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPNET_FUSED", "1" if gradient == "fused" else "0")
        engine.run_sweep(s, out, progress=False, max_memory=MAX_MEMORY)
    return s, out


@pytest.fixture(scope="module")
def swept_xla(tmp_path_factory):
    return _sweep(tmp_path_factory, "xla")


@pytest.fixture(scope="module")
def swept_fused(tmp_path_factory):
    if build.library(wait=True) is None:
        pytest.skip("the fused CPU kernel does not build here")
    return _sweep(tmp_path_factory, "fused")


@pytest.fixture
def swept(request, monkeypatch):
    """``(spec, results folder, gradient)`` of the sweep with the gradient ``request.param``,
    which the test then uses too (``train_alone`` takes the gradient the engine would)."""
    gradient = request.param
    monkeypatch.setenv("SWEEPNET_FUSED", "1" if gradient == "fused" else "0")
    return (*request.getfixturevalue(f"swept_{gradient}"), gradient)


@pytest.mark.parametrize("swept", GRADIENTS, indirect=True)
def test_sweep_really_pads_shards_and_chunks(swept):
    s, out, gradient = swept
    assert len(jax.devices()) == 2
    p = plan.make_plan(s, 2, max_memory=MAX_MEMORY)
    others = tuple(a for a in ACTS if a not in KERNEL_ACTS)
    assert {b.static.activations for b in p.buckets} == {tuple(KERNEL_ACTS), others}
    for b in p.buckets:
        assert (b.static.width, b.static.depth) == (5, 3)
        assert {(r.config["width"], r.config["depth"]) for r in b.runs} == {
            (2, 2), (2, 3), (5, 2), (5, 3)}, "no width and depth padding"
        assert b.chunk < len(b.runs), "no chunking"
    with open(f"{out}/manifest.json") as f:
        grads = {tuple(v["static"]["activations"]): v["gradient"]
                 for v in json.load(f)["buckets"].values()}
    assert grads == {tuple(KERNEL_ACTS): gradient, others: "xla"}
    df = sweepnet.load(out)
    assert len(df) == len(s.grid()) == len(ACTS) * 4 * 2  # activations x (width, depth) x seeds
    assert set(df["n_devices"]) == {2}
    assert df.groupby("bucket")["part"].nunique().min() > 1, "one call a bucket"


CASES = [pytest.param("xla", a, marks=() if a in QUICK else slow, id=f"xla-{a}")
         for a in ALONE]
CASES += [pytest.param("fused", a, marks=slow, id=f"fused-{a}")
          for a in KERNEL_ACTS if a in ALONE]


@pytest.mark.parametrize("swept,act", CASES, indirect=["swept"])
def test_padded_mixed_sharded_chunked_run_equals_the_network_trained_alone(swept, act):
    """The network of ``SAMPLE``'s shape with activation ``act``, trained in its padded, mixed,
    sharded and chunked program, equals ``engine.train_alone``'s: the network at its own width
    and depth, alone in a program of its own, on one device (the same gradient)."""
    s, out, _ = swept
    row = sweepnet.load(out).query(
        "activation == @act and width == {width} and depth == {depth} and seed == {seed}"
        .format(**SAMPLE)).iloc[0]
    assert row["bucket_width"] > row["width"] and row["bucket_depth"] > row["depth"]
    cfg = next(g for g in s.grid() if spec.run_id(g) == row["run_id"])
    alone = engine.train_alone(cfg, row["run_id"], plan.static_of(cfg, cfg["width"]))
    np.testing.assert_allclose(row["train_loss"], alone.train_loss, rtol=1e-5, atol=1e-6)
    assert row["train_acc"] == pytest.approx(float(alone.train_acc), abs=1e-6)
    assert row["test_acc"] == pytest.approx(float(alone.test_acc), abs=2 / 128)
    curves = sweepnet.load_curves(out)
    c = curves[curves["run_id"] == row["run_id"]].sort_values("step")
    assert len(c) == 3
    np.testing.assert_allclose(c["train_loss"], alone.curve_loss, rtol=1e-5, atol=1e-6)
    _, stored = sweepnet.load_params(out, row["run_id"])
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 stored, alone.params)
    # its decision region: the padded network's grid is the one trained alone's
    own = regions.region_numbers(regions.unpack(np.asarray(alone.region)[None]))
    assert {c: int(row[c]) for c in regions.COLUMNS} == {c: int(v[0]) for c, v in own.items()}


@pytest.mark.parametrize("swept", GRADIENTS, indirect=True)
def test_result_does_not_depend_on_grid_order(swept, tmp_path):
    s, out, _ = swept
    reordered = SPEC.replace("[2, 5]", "[5, 2]").replace(json.dumps(ACTS),
                                                         json.dumps(ACTS[::-1]))
    assert reordered != SPEC
    engine.run_sweep(spec.loads(reordered), str(tmp_path), progress=False,
                     max_memory=MAX_MEMORY)
    a = sweepnet.load(out).set_index("run_id").sort_index()
    b = sweepnet.load(str(tmp_path)).set_index("run_id").sort_index()
    assert list(a.index) == list(b.index)
    for col in ("train_loss", "train_acc", "test_acc"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("swept", GRADIENTS, indirect=True)
def test_seeds_give_different_networks(swept):
    _, out, _ = swept
    df = sweepnet.load(out)
    # a dead relu network's loss is log 2 whatever its seed: compare the weights instead
    for _, g in df[(df["width"] == 5) & (df["depth"] == 3)
                   & df["activation"].isin(["relu", "sigmoid"])].groupby("activation"):
        kernels = [sweepnet.load_params(out, r)[1]["params"]["hidden_1"]["kernel"]
                   for r in g["run_id"]]
        assert len(kernels) == 2
        assert len({k.tobytes() for k in kernels}) == 2


def _bucket_call(static, n):
    from sweepnet.sweep import data

    split = data.make_split("disk_annulus", data.default_params("disk_annulus"), 48, 300)
    d = make_data(static, *split)
    # typed arrays, as the engine passes them (a weakly typed Python float would recompile)
    hyper = Hyper(width=np.full(n, 3, np.int32), learning_rate=np.full(n, 0.05, np.float32),
                  init_scale=np.ones(n, np.float32))
    keys = jax.vmap(jax.random.key)(jnp.arange(n, dtype=jnp.uint32))
    return d, hyper, keys


# these programs run once, for a property that no compiler optimisation moves: compiled at
# XLA's lowest CPU optimisation level, they compile in about half the time
QUICK_COMPILE = {"xla_backend_optimization_level": 0}


def test_a_second_call_with_new_values_does_not_recompile():
    static = plan.static_of({"dataset": "disk_annulus", "arch": "mlp", "depth": 1,
                           "activation": "tanh", "optimizer": "adam", "steps": 10,
                           "eval_every": 5, "batch_size": 0, "n_train": 48, "n_test": 300}, 4)
    fn = jax.jit(jax.vmap(make_train(static), in_axes=(0, 0, None)),
                 compiler_options=QUICK_COMPILE)
    d, hyper, keys = _bucket_call(static, 4)
    fn(keys, hyper, d)
    other = hyper.replace(width=np.asarray([1, 2, 3, 4], np.int32),
                          learning_rate=np.asarray([0.1, 0.2, 0.3, 0.4], np.float32))
    fn(keys, other, d)
    assert fn._cache_size() == 1


LEARNING_RATES = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.3, "lion": 0.02}


@pytest.fixture(scope="module")
def by_optimizer():
    """``{optimizer: Output}``: two width-4 tanh networks trained 150 steps on the disk with
    each optimizer, at its learning rate. One compiled program holds the nine trainings (side
    by side, nothing shared but the data): one compile instead of nine, a quarter of the time."""
    trains, hypers = {}, {}
    for opt in sorted(OPTIMIZERS):
        static = plan.static_of({"dataset": "disk_annulus", "arch": "mlp", "depth": 1,
                                 "activation": "tanh", "optimizer": opt, "steps": 150,
                                 "eval_every": 50, "batch_size": 0, "n_train": 48,
                                 "n_test": 300}, 4)
        d, hyper, keys = _bucket_call(static, 2)
        trains[opt] = jax.vmap(make_train(static), in_axes=(0, 0, None))
        hypers[opt] = hyper.replace(
            learning_rate=np.full(2, LEARNING_RATES.get(opt, 0.03), np.float32))
    every = lambda keys, hypers, d: {o: train(keys, hypers[o], d) for o, train in trains.items()}
    return jax.device_get(jax.jit(every, compiler_options=QUICK_COMPILE)(keys, hypers, d))


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_loss_falls_with_every_optimizer(by_optimizer, opt):
    out = by_optimizer[opt]
    loss = np.asarray(out.curve_loss)
    assert (loss[:, -1] < 0.8 * loss[:, 0]).all(), loss
    assert not np.asarray(out.diverged).any()


def test_minibatch_training_runs_and_learns():
    static = plan.static_of({"dataset": "xor", "arch": "mlp", "depth": 1,
                           "activation": "tanh", "optimizer": "adam", "steps": 300,
                           "eval_every": 100, "batch_size": 16, "n_train": 64, "n_test": 300}, 8)
    from sweepnet.sweep import data

    d = make_data(static, *data.make_split("xor", {"margin": 0.1}, 64, 300))
    hyper = Hyper(width=jnp.full(2, 8, jnp.int32), learning_rate=jnp.full(2, 0.05),
                  init_scale=jnp.ones(2))
    keys = jax.vmap(jax.random.key)(jnp.arange(2, dtype=jnp.uint32))
    out = jax.jit(jax.vmap(make_train(static), in_axes=(0, 0, None)),
                  compiler_options=QUICK_COMPILE)(keys, hyper, d)
    assert (np.asarray(out.test_acc) > 0.9).all()
