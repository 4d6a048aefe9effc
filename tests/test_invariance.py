"""A network's result depends only on its own configuration and seed (Contract 2)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sweepnet
from sweepnet import engine, plan, spec
from sweepnet.optimizers import OPTIMIZERS
from sweepnet.train import Hyper, make_data, make_train

SPEC = """
name = "inv"
[data]
dataset = "disk_annulus"
n_train = 48
n_test = 300
[model]
width = [2, 3, 5]
depth = [1, 3]
activation = ["tanh", "relu"]
[train]
learning_rate = [0.02, 0.05]
steps = 40
seeds = 3
eval_every = 15
"""


@pytest.fixture(scope="module", params=["fused", "xla"])
def swept(request, tmp_path_factory):
    """The sweep trained with the fused CPU kernel's gradient and with XLA's: one program holds
    every width, depth and activation (padded units, identity layers, selected activations)."""
    from sweepnet import fused

    if request.param == "fused" and fused.library(wait=True) is None:
        pytest.skip("the fused CPU kernel does not build here")
    out = str(tmp_path_factory.mktemp("inv"))
    s = spec.loads(SPEC)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPNET_FUSED", "1" if request.param == "fused" else "0")
        # a tiny memory budget forces several chunks per bucket, with a padded last chunk
        engine.run_sweep(s, out, progress=False, max_memory=200_000)
        yield s, out, request.param


def test_sweep_really_pads_shards_and_chunks(swept):
    s, out, gradient = swept
    assert len(jax.devices()) == 2
    p = plan.make_plan(s, 2, max_memory=200_000)
    assert len(p.buckets) == 1, "one program for the grid"
    (b,) = p.buckets
    assert len({r.config["width"] for r in b.runs}) > 1, "no width padding"
    assert len({r.config["depth"] for r in b.runs}) > 1, "no depth padding"
    assert len(b.static.activations) == 2, "no mixed activations"
    assert b.chunk < len(b.runs), "no chunking"
    with open(f"{out}/manifest.json") as f:
        import json

        assert {v["gradient"] for v in json.load(f)["buckets"].values()} == {gradient}


def test_padded_vmapped_sharded_run_equals_the_network_trained_alone(swept):
    s, out, _ = swept
    df = sweepnet.load(out)
    assert len(df) == len(s.grid()) == 72
    curves = sweepnet.load_curves(out)
    padded = df[(df["bucket_width"] > df["width"]) & (df["bucket_depth"] > df["depth"])]
    assert len(padded) >= 16
    picked = padded.groupby("activation").sample(3, random_state=0)  # both activations
    for _, row in picked.iterrows():
        cfg = next(g for g in s.grid() if spec.run_id(g) == row["run_id"])
        static = plan._static(cfg, cfg["width"])
        alone = engine.train_alone(cfg, row["run_id"], static)
        np.testing.assert_allclose(row["train_loss"], alone.train_loss, rtol=1e-5, atol=1e-6)
        assert row["train_acc"] == pytest.approx(float(alone.train_acc), abs=1e-6)
        assert row["test_acc"] == pytest.approx(float(alone.test_acc), abs=2 / 300)
        c = curves[curves["run_id"] == row["run_id"]].sort_values("step")
        np.testing.assert_allclose(c["train_loss"], alone.curve_loss, rtol=1e-5, atol=1e-6)
        _, stored = sweepnet.load_params(out, row["run_id"])
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                     stored, alone.params)


def test_result_does_not_depend_on_grid_order(swept, tmp_path):
    s, out, _ = swept
    reordered = SPEC.replace("[2, 3, 5]", "[5, 3, 2]").replace('["tanh", "relu"]',
                                                               '["relu", "tanh"]')
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPNET_FUSED", "1" if swept[2] == "fused" else "0")
        engine.run_sweep(spec.loads(reordered), str(tmp_path), progress=False)
    a = sweepnet.load(out).set_index("run_id").sort_index()
    b = sweepnet.load(str(tmp_path)).set_index("run_id").sort_index()
    assert list(a.index) == list(b.index)
    for col in ("train_loss", "train_acc", "test_acc"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-5, atol=1e-6)


def test_seeds_give_different_networks(swept):
    _, out, _ = swept
    df = sweepnet.load(out)
    # a dead relu network's loss is log 2 whatever its seed: compare the weights instead
    for _, g in df[(df["width"] == 3) & (df["depth"] == 3)].groupby(
            ["activation", "learning_rate"]):
        kernels = [sweepnet.load_params(out, r)[1]["params"]["hidden_1"]["kernel"]
                   for r in g["run_id"]]
        assert len(kernels) == 3
        assert len({k.tobytes() for k in kernels}) == 3


def _bucket_call(static, n):
    from sweepnet import data

    split = data.make_split("disk_annulus", data.default_params("disk_annulus"), 48, 300)
    d = make_data(static, *split)
    # typed arrays, as the engine passes them (a weakly typed Python float would recompile)
    hyper = Hyper(width=np.full(n, 3, np.int32), learning_rate=np.full(n, 0.05, np.float32),
                  init_scale=np.ones(n, np.float32))
    keys = jax.vmap(jax.random.key)(jnp.arange(n, dtype=jnp.uint32))
    return d, hyper, keys


def test_a_second_call_with_new_values_does_not_recompile():
    static = plan._static({"dataset": "disk_annulus", "arch": "mlp", "depth": 1,
                           "activation": "tanh", "optimizer": "adam", "steps": 10,
                           "eval_every": 5, "batch_size": 0, "n_train": 48, "n_test": 300}, 4)
    fn = jax.jit(jax.vmap(make_train(static), in_axes=(0, 0, None)))
    d, hyper, keys = _bucket_call(static, 4)
    fn(keys, hyper, d)
    other = hyper.replace(width=np.asarray([1, 2, 3, 4], np.int32),
                          learning_rate=np.asarray([0.1, 0.2, 0.3, 0.4], np.float32))
    fn(keys, other, d)
    assert fn._cache_size() == 1


@pytest.mark.parametrize("opt", sorted(OPTIMIZERS))
def test_loss_falls_with_every_optimizer(opt):
    static = plan._static({"dataset": "disk_annulus", "arch": "mlp", "depth": 1,
                           "activation": "tanh", "optimizer": opt, "steps": 150,
                           "eval_every": 50, "batch_size": 0, "n_train": 48, "n_test": 300}, 4)
    d, hyper, keys = _bucket_call(static, 2)
    lr = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.3, "lion": 0.02}
    hyper = hyper.replace(learning_rate=np.full(2, lr.get(opt, 0.03), np.float32))
    out = jax.jit(jax.vmap(make_train(static), in_axes=(0, 0, None)))(keys, hyper, d)
    loss = np.asarray(out.curve_loss)
    assert (loss[:, -1] < 0.8 * loss[:, 0]).all(), loss
    assert not np.asarray(out.diverged).any()


def test_minibatch_training_runs_and_learns():
    static = plan._static({"dataset": "xor", "arch": "mlp", "depth": 1,
                           "activation": "tanh", "optimizer": "adam", "steps": 300,
                           "eval_every": 100, "batch_size": 16, "n_train": 64, "n_test": 300}, 8)
    from sweepnet import data

    d = make_data(static, *data.make_split("xor", {"margin": 0.1}, 64, 300))
    hyper = Hyper(width=jnp.full(2, 8, jnp.int32), learning_rate=jnp.full(2, 0.05),
                  init_scale=jnp.ones(2))
    keys = jax.vmap(jax.random.key)(jnp.arange(2, dtype=jnp.uint32))
    out = jax.jit(jax.vmap(make_train(static), in_axes=(0, 0, None)))(keys, hyper, d)
    assert (np.asarray(out.test_acc) > 0.9).all()
