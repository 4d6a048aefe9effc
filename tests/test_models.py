import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepnet.sweep import models

ACTS = sorted(models.ACTIVATIONS)


def _compile(fn, *args):
    """``jit(fn)`` compiled for ``args`` at XLA's lowest CPU optimisation level: these programs
    run once, and op by op (eagerly) every new shape of every operation compiled on its own."""
    return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


def _model(width, depth=2, act="tanh"):
    return models.build("mlp", width, depth, act, 1)


@functools.lru_cache
def _init(width, real, depth=2, act="tanh", in_dim=2, scale=1.0):
    """The model and its parameters from ``model.init`` (one compiled program; kept: read
    them, do not write them)."""
    m = _model(width, depth, act)
    x = jnp.zeros((in_dim, 1))
    return m, jax.device_get(_compile(lambda k: m.init(k, x, real, scale), jax.random.key(7))(
        jax.random.key(7)))


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


@pytest.fixture(scope="module")
def padded_pairs():
    """``{act: (out_pad, out_small, g_pad, g_small)}``: the logits at 33 points and the gradient
    of a squared loss, of a width-3 network built at width 8 and at its own width (each from
    ``model.init``, whose parameters no activation changes), for every activation. One
    compiled program for all."""
    x = jax.random.normal(jax.random.key(1), (2, 33))
    y = (jnp.linalg.norm(x, axis=0) > 1).astype(jnp.float32)
    (_, p_pad), (_, p_small) = _init(8, 3), _init(3, 3)

    def all_acts(p_pad, p_small):
        out = {}
        for act in ACTS:
            pair = []
            for m, p in ((_model(8, act=act), p_pad), (_model(3, act=act), p_small)):
                loss = lambda p, m=m: jnp.mean((m.apply(p, x, 3, 1.0)[0] - y) ** 2)
                pair.append((m.apply(p, x, 3, 1.0), jax.grad(loss)(p)))
            (out_pad, g_pad), (out_small, g_small) = pair
            out[act] = (out_pad, out_small, g_pad, g_small)
        return out

    return jax.device_get(_compile(all_acts, p_pad, p_small)(p_pad, p_small))


@pytest.mark.parametrize("act", ACTS)
def test_every_activation_padded_equals_unpadded_with_zero_padded_grads(padded_pairs, act):
    out_pad, out_small, g_pad, g_small = padded_pairs[act]
    np.testing.assert_allclose(out_pad, out_small, rtol=1e-6, atol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 models.unpad(g_pad, 3, 2), g_small)
    for (path, g), c in zip(jax.tree_util.tree_leaves_with_path(g_pad),
                            jax.tree.leaves(models.unpad(g_pad, 3, 2)), strict=True):
        rest = np.array(g)
        rest[tuple(slice(0, n) for n in c.shape)] = 0
        assert not rest.any(), f"padded units received gradient: {jax.tree_util.keystr(path)}"


def test_n_params_counts_the_unpadded_network():
    m = _model(5, depth=3)
    p = jax.eval_shape(m.init, jax.random.key(7), jnp.zeros((2, 1)), 5, 1.0)  # shapes only
    assert models.n_params("mlp", 2, 5, 3, 1) == sum(a.size for a in jax.tree.leaves(p))


def test_return_hidden_gives_each_layer():
    m = _model(4, depth=3)
    x = jnp.ones((2, 5))
    p = jax.eval_shape(m.init, jax.random.key(7), x, 4, 1.0)  # shapes only
    out, hidden = jax.eval_shape(lambda p: m.apply(p, x, 4, 1.0, return_hidden=True), p)
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
    init = lambda k: m.init(k, jnp.zeros((3, 5)), 512, 2.0)
    p = _compile(init, jax.random.key(3))(jax.random.key(3))
    k = np.asarray(p["params"]["hidden_0"]["kernel"])
    assert k.shape == (512, 3)
    np.testing.assert_allclose(k.std(axis=0), 2.0 / np.sqrt(3), rtol=0.1)
