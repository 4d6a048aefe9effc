"""ResNet (residual blocks at the input width, zero-padded to an augmented state)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepnet.sweep import models


def _init(width, real, depth=2, act="tanh", in_dim=2):
    m = models.build("resnet", width, depth, act, 1)
    return m, m.init(jax.random.key(3), jnp.zeros((in_dim, 1)), real, 1.0)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "relu"])
@pytest.mark.parametrize("real", [2, 3])
def test_resnet_padded_equals_unpadded_with_zero_padded_grads(act, real):
    x = jax.random.normal(jax.random.key(1), (2, 33))
    y = (jnp.linalg.norm(x, axis=0) > 1).astype(jnp.float32)
    m_small, small = _init(real, real, act=act)
    m_pad, padded = _init(6, real, act=act)
    jax.tree.map(np.testing.assert_array_equal, models.unpad(padded, real, 2), small)
    np.testing.assert_allclose(
        m_pad.apply(padded, x, real, 1.0), m_small.apply(small, x, real, 1.0), rtol=1e-6, atol=1e-6
    )

    def loss(p, m):
        return jnp.mean((m.apply(p, x, real, 1.0)[0] - y) ** 2)

    g_pad, g_small = jax.grad(loss)(padded, m_pad), jax.grad(loss)(small, m_small)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        models.unpad(g_pad, real, 2),
        g_small,
    )
    total = lambda t: sum(float(jnp.abs(v).sum()) for v in jax.tree.leaves(t))
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
