import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepnet import models


def _init(width, real, depth=2, act="tanh", in_dim=2, scale=1.0):
    m = models.build("mlp", width, depth, act, 1)
    x = jnp.zeros((in_dim, 1))
    return m, m.init(jax.random.key(7), x, real, scale)


def test_padded_init_holds_the_unpadded_weights_and_zeros():
    _, small = _init(3, 3)
    _, padded = _init(8, 3)
    cut = models.unpad(padded, 3, 2)
    jax.tree.map(np.testing.assert_array_equal, cut, small)
    k = padded["params"]["hidden_1"]["kernel"]
    assert k.shape == (8, 8) and not np.any(k[3:]) and not np.any(k[:, 3:])
    assert not np.any(padded["params"]["out"]["kernel"][:, 3:])


def test_init_scale_is_lecun_on_the_real_fan_in():
    _, p = _init(64, 64, depth=2, scale=2.0)
    k = np.asarray(p["params"]["hidden_1"]["kernel"])
    assert abs(k.std() - 2.0 / np.sqrt(64)) < 0.02


@pytest.mark.parametrize("act", sorted(models.ACTIVATIONS))
def test_every_activation_padded_equals_unpadded_with_zero_padded_grads(act):
    x = jax.random.normal(jax.random.key(1), (2, 33))
    y = (jnp.linalg.norm(x, axis=0) > 1).astype(jnp.float32)
    m_small, small = _init(3, 3, act=act)
    m_pad, padded = _init(6, 3, act=act)
    out_small = m_small.apply(small, x, 3, 1.0)
    out_pad = m_pad.apply(padded, x, 3, 1.0)
    np.testing.assert_allclose(out_pad, out_small, rtol=1e-6, atol=1e-6)

    def loss(p, m):
        z = m.apply(p, x, 3, 1.0)[0]
        return jnp.mean((z - y) ** 2)

    g_pad = jax.grad(loss)(padded, m_pad)
    g_small = jax.grad(loss)(small, m_small)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 models.unpad(g_pad, 3, 2), g_small)
    zero_pad = jax.tree.map(lambda g, c: float(jnp.abs(g).sum() - jnp.abs(c).sum()),
                            g_pad, models.unpad(g_pad, 3, 2))
    assert all(v == 0.0 for v in jax.tree.leaves(zero_pad)), "padded units received gradient"


def test_n_params_counts_the_unpadded_network():
    _, p = _init(5, 5, depth=3, in_dim=2)
    assert models.n_params("mlp", 2, 5, 3, 1) == sum(a.size for a in jax.tree.leaves(p))


def test_return_hidden_gives_each_layer():
    m, p = _init(4, 4, depth=3)
    out, hidden = m.apply(p, jnp.ones((2, 5)), 4, 1.0, return_hidden=True)
    assert out.shape == (1, 5) and [h.shape for h in hidden] == [(4, 5)] * 3
