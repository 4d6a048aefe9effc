"""ResNet (residual blocks at the input width, zero-padded to an augmented state)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepnet.sweep import models


def _init(width, real, depth=2, act="tanh", in_dim=2):
    m = models.build("resnet", width, depth, act, 1)
    return m, m.init(jax.random.key(3), jnp.zeros((in_dim, 1)), real, 1.0)


ACTS = ["tanh", "sigmoid", "softplus", "relu"]
REALS = [2, 3]


@pytest.fixture(scope="module")
def padded_pairs():
    """``{(act, real): (padded, small)}``: for a resnet of real width ``real`` padded to 6 and
    the same network built at its own width, each ``{"params", "out", "grad"}`` (initial
    parameters, logits at 33 points, gradient of a squared loss). One compiled program for
    every case (op by op, the eight cases took three times as long)."""
    x = jax.random.normal(jax.random.key(1), (2, 33))
    y = (jnp.linalg.norm(x, axis=0) > 1).astype(jnp.float32)

    def one(width, real, act):
        m, p = _init(width, real, act=act)
        loss = lambda p: jnp.mean((m.apply(p, x, real, 1.0)[0] - y) ** 2)
        return {"params": p, "out": m.apply(p, x, real, 1.0), "grad": jax.grad(loss)(p)}

    every = lambda: {(act, real): (one(6, real, act), one(real, real, act))
                     for act in ACTS for real in REALS}
    # run once: XLA's lowest CPU optimisation level compiles it in two thirds of the time
    quick = {"xla_backend_optimization_level": 0}
    return jax.device_get(jax.jit(every, compiler_options=quick)())


@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("real", REALS)
def test_resnet_padded_equals_unpadded_with_zero_padded_grads(padded_pairs, act, real):
    padded, small = padded_pairs[act, real]
    jax.tree.map(np.testing.assert_array_equal, models.unpad(padded["params"], real, 2),
                 small["params"])
    np.testing.assert_allclose(padded["out"], small["out"], rtol=1e-6, atol=1e-6)
    g_pad, g_small = padded["grad"], small["grad"]
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        models.unpad(g_pad, real, 2),
        g_small,
    )
    total = lambda t: sum(float(np.abs(v).sum()) for v in jax.tree.leaves(t))
    assert total(g_pad) == pytest.approx(total(models.unpad(g_pad, real, 2)), rel=1e-6)
    assert total(g_small) > 0


def test_resnet_is_residual_and_counts_its_params():
    m, p = _init(4, 4, depth=3)
    assert models.n_params("resnet", 2, 4, 3, 1) == sum(a.size for a in jax.tree.leaves(p))
    # zero residual branches: the state is the zero-padded input, read out linearly
    zero = jax.tree.map(jnp.zeros_like, p)
    zero["params"]["out"]["kernel"] = jnp.array([[1.0, 2.0, 3.0, 4.0]])
    x = jnp.array([[0.5, -1.0], [2.0, 0.25]])
    out, hidden = m.apply(zero, x, 4, 1.0, return_hidden=True)
    np.testing.assert_allclose(out, [[4.5, -0.5]])
    assert [h.shape for h in hidden] == [(4, 2)] * 3


@pytest.mark.slow
def test_resnet_trains_on_the_disk():
    from sweepnet.engine import plan
    from sweepnet.engine import run as engine
    from sweepnet.sweep import spec

    s = spec.loads("""
name = "rn"
[data]
dataset = "disk_annulus"
n_train = 256
n_test = 1024
[model]
arch = "resnet"
width = 3
depth = 2
[train]
learning_rate = 0.02
steps = 600
seeds = 1
eval_every = 100
""")
    run = plan.expand(s)[0]
    static = plan.static_of(run.config, 3)
    out = engine.train_alone(run.config, run.run_id, static)
    assert out.curve_loss[-1] < 0.5 * out.curve_loss[0]
    assert out.test_acc > 0.95
