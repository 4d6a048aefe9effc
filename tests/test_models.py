import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepnet.sweep import models


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


# --- the padded MLP against its formula, computed apart from the model (issue 28) -------------


def test_a_padded_mlp_computes_its_real_network_by_the_formula():
    """A width-2, depth-2 softplus network with non-zero biases, written by hand into a padded
    tree of width 4, depth 3 whose padded entries are noise: the logits and each returned
    hidden layer are ``h_i = softplus(W_i h_{i-1} + b_i)``, ``z = W_o h_2 + b_o`` in numpy
    (each real unit), the padded units of a returned layer read exactly 0, and the layer past
    the real depth returns the last real one."""
    rng = np.random.default_rng(5)
    x = rng.normal(size=(2, 7)).astype(np.float32)  # (in_dim, points)
    w0, b0 = rng.normal(size=(2, 2)), np.array([0.5, -0.7])
    w1, b1 = rng.normal(size=(2, 2)), np.array([-0.3, 0.9])
    wo, bo = rng.normal(size=(1, 2)), np.array([0.4])
    noise = lambda *shape: rng.normal(size=shape)
    k0, k1, k2, ko = noise(4, 2), noise(4, 4), noise(4, 4), noise(1, 4)
    c0, c1, c2 = noise(4), noise(4), noise(4)
    k0[:2], c0[:2], k1[:2, :2], c1[:2], ko[:, :2] = w0, b0, w1, b1, wo
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    params = {"params": {"hidden_0": {"kernel": f32(k0), "bias": f32(c0)},
                         "hidden_1": {"kernel": f32(k1), "bias": f32(c1)},
                         "hidden_2": {"kernel": f32(k2), "bias": f32(c2)},
                         "out": {"kernel": f32(ko), "bias": f32(bo)}}}
    m = models.build("mlp", 4, 3, "softplus", 1)
    z, hidden = m.apply(params, f32(x), 2, 1.0, return_hidden=True, real_depth=2)
    softplus = lambda a: np.logaddexp(0.0, a)
    h1 = softplus(w0 @ x + b0[:, None])
    h2 = softplus(w1 @ h1 + b1[:, None])
    np.testing.assert_allclose(z, wo @ h2 + bo[:, None], rtol=1e-5, atol=1e-5)
    for got, want in zip(hidden, [h1, h2, h2], strict=True):
        np.testing.assert_allclose(got[:2], want, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(got[2:], 0.0)


def test_first_layer_init_scale_is_lecun_on_the_input_dimension():
    """Layer 0's fan-in is the input dimension (3), not the number of points (5): every
    column of its kernel has standard deviation ``scale / sqrt(3)``."""
    m = models.build("mlp", 512, 1, "tanh", 1)
    p = m.init(jax.random.key(3), jnp.zeros((3, 5)), 512, 2.0)
    k = np.asarray(p["params"]["hidden_0"]["kernel"])
    assert k.shape == (512, 3)
    np.testing.assert_allclose(k.std(axis=0), 2.0 / np.sqrt(3), rtol=0.1)
