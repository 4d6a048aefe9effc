"""The Naitzat protocol's pieces (issue 23): a leaky ReLU of slope 0.2, a decaying learning
rate, and run ids that stay what they were for every spec without them; and a user's file
standardized, or warned about when far from unit scale."""

import hashlib
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import TINY_SPEC
from sweepnet.cli import main
from sweepnet.core.errors import SweepnetError
from sweepnet.engine import plan
from sweepnet.kernel import choice
from sweepnet.sweep import data, models, optimizers, spec
from sweepnet.train.step import Hyper, Static, make_data, make_train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_leaky_relu_0_2_has_slope_0_2_and_trains_with_xlas_gradient():
    x = jnp.array([-2.0, -0.5, 0.0, 1.5])
    np.testing.assert_allclose(models.ACTIVATIONS["leaky_relu_0.2"](x), [-0.4, -0.1, 0.0, 1.5])
    np.testing.assert_allclose(models.ACTIVATIONS["leaky_relu"](x)[:2], [-0.02, -0.005])
    s = spec.loads(TINY_SPEC, ["model.activation=[leaky_relu, leaky_relu_0.2]"])
    buckets = plan.make_plan(s, 1).buckets
    acts = sorted(b.static.activations for b in buckets)
    assert acts == [("leaky_relu",), ("leaky_relu_0.2",)]  # the kernel lacks 0.2: apart
    assert [choice.covers(b.static) for b in buckets] == [
        b.static.activations == ("leaky_relu",) for b in buckets]


def test_the_decayed_rate_at_steps_0_2499_2500_and_5000():
    """SGD on f(p) = p: each update is minus the step size, so the updates are the rates."""
    tx = optimizers.make("sgd", jnp.float32(0.1), 0.5, 2500)

    def step(state, _):
        update, state = tx.update(jnp.ones(1), state)
        return state, -update[0]

    _, rates = jax.lax.scan(step, tx.init(jnp.zeros(1)), None, length=5001)
    np.testing.assert_allclose(np.asarray(rates)[[0, 2499, 2500, 4999, 5000]],
                               [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)
    assert optimizers.schedule(0.1) == 0.1  # no decay: the constant itself


def test_a_spec_without_the_new_keys_keeps_its_ids_and_one_with_them_trains_apart():
    plain = spec.loads(TINY_SPEC)
    same = spec.loads(TINY_SPEC, ["train.lr_decay=1.0", "train.lr_decay_every=1000"])
    assert same.tree == plain.tree and same.fingerprint() == plain.fingerprint()
    assert [r.run_id for r in plan.expand(same)] == [r.run_id for r in plan.expand(plain)]
    assert "lr_decay" not in same.to_toml()
    decayed = plan.expand(spec.loads(TINY_SPEC, ["train.lr_decay=[1.0, 0.5]"]))
    assert [r.run_id for r in decayed if "lr_decay" not in r.config] == [
        r.run_id for r in plan.expand(plain)]
    assert sorted(r.config.get("lr_decay", 1.0) for r in decayed) == [0.5] * 8 + [1.0] * 8
    every = spec.loads(TINY_SPEC, ["train.lr_decay=[1.0, 0.5]", "train.lr_decay_every=20"])
    assert {r.config["lr_decay_every"] for r in plan.expand(every)} == {20}
    assert sorted((b.static.lr_decay, b.static.lr_decay_every)
                  for b in plan.make_plan(every, 1).buckets) == [(0.5, 20), (1.0, 20)]
    with pytest.raises(SweepnetError, match=r"^--set train\.lr_decay: must be above 0"):
        spec.loads(TINY_SPEC, ["train.lr_decay=0.0"])


# digests of the run ids of shipped sweeps, as 0.6 computed them (the ids of a results
# folder: a change here makes every finished run train again)
SHIPPED_IDS = {"quick.toml": "30f59dc6adfe", "olah-1d.toml": "a5c7e1aab21a",
               "olah-disk.toml": "2d3c9740230e", "resnet-disk.toml": "339897b6a044",
               "minwidth-dims.toml": "a43fb170972d"}


@pytest.mark.parametrize("name", sorted(SHIPPED_IDS))
def test_the_shipped_sweeps_keep_their_run_ids(name):
    ids = [r.run_id for r in plan.expand(spec.load(os.path.join(ROOT, "sweeps", name)))]
    assert hashlib.sha256("".join(ids).encode()).hexdigest()[:12] == SHIPPED_IDS[name]


def test_training_follows_the_schedule():
    """Halving the rate after 3 of 6 SGD steps: the first 3 steps are those of the constant
    rate bit for bit, the next 3 are not."""
    split = data.make_split("disk_annulus", {}, 32, 16)
    base = dict(arch="mlp", in_dim=2, n_out=1, width=3, depth=1, activations=("tanh",),
                optimizer="sgd", steps=6, eval_every=3, batch_size=0, n_train=32, n_test=16)
    hyper = Hyper(width=jnp.int32(3), learning_rate=jnp.float32(0.5),
                  init_scale=jnp.float32(1.0))
    curves = []
    for decay in (1.0, 0.5):
        static = Static(**base, lr_decay=decay, lr_decay_every=3)
        d, key = make_data(static, *split), jax.random.key(0)
        train = jax.jit(make_train(static)).lower(key, hyper, d).compile(
            {"xla_backend_optimization_level": 0})
        curves.append(np.asarray(train(key, hyper, d).curve_loss))
    assert curves[0][0] == curves[1][0] and curves[0][1] != curves[1][1]


def _points(path, scale):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2)) * scale + 3 * scale
    lines = [f"{a},{b},{int(a * a + b * b > 0)}" for a, b in x]
    path.write_text("a,b,label\n" + "\n".join(lines) + "\n")
    return str(path)


def test_standardize_rescales_a_file_by_its_training_points(tmp_path):
    path = _points(tmp_path / "big.csv", 100.0)
    raw = data.make_split("file", {"path": path}, 300, 100, 0.0, 2)
    s = data.make_split("file", {"path": path, "standardize": True}, 300, 100, 0.0, 2)
    np.testing.assert_allclose(s.x_train.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(s.x_train.std(0), 1, atol=1e-5)
    mean, std = raw.x_train.mean(0), raw.x_train.std(0)
    np.testing.assert_allclose(s.x_test, (raw.x_test - mean) / std, rtol=1e-4, atol=1e-5)
    assert (s.y_test == raw.y_test).all()
    mine = spec.loads(TINY_SPEC, ["data.dataset=file", f"data.file.path={path}",
                                  "data.standardize=true"])
    assert {c["data_standardize"] for c in mine.grid()} == {True}
    plain = spec.loads(TINY_SPEC, ["data.dataset=file", f"data.file.path={path}"])
    assert all("data_standardize" not in c for c in plain.grid())
    with pytest.raises(SweepnetError, match=r"^--set data\.standardize: rescales a file"):
        spec.loads(TINY_SPEC, ["data.standardize=true"])


def test_a_file_far_from_unit_scale_gets_one_warning_at_run(tmp_path, capsys):
    path = _points(tmp_path / "big.csv", 100.0)
    (tmp_path / "s.toml").write_text(TINY_SPEC)
    args = ["run", str(tmp_path / "s.toml"), "--quiet", "--set", "data.dataset=file",
            "--set", f"data.file.path={path}", "--set", "data.n_test=100", "--set",
            "model.width=2", "--set", "model.depth=1", "--set", "train.seeds=1"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    warnings = [w for w in capsys.readouterr().err.splitlines()
                if w.startswith("sweepnet: warning:")]
    assert len(warnings) == 1 and path in warnings[0], warnings
    assert "far from unit scale" in warnings[0] and "data.standardize = true" in warnings[0]
    assert data.file_warnings([{"dataset": "file", "data_path": _points(
        tmp_path / "unit.csv", 1.0), "n_train": 64, "n_test": 100}]) == []
    assert main([*args, "--set", "data.standardize=true", "--out", str(tmp_path / "b")]) == 0
    assert "warning" not in capsys.readouterr().err
