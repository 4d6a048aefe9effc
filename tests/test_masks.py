"""A padded network inside its program computes the network built at its own shape.

A program (bucket) is built at its widest width and deepest depth and holds every activation
its networks use; one network of it has a real width, depth and activation (sweepnet.sweep.models).
Here a network of width 3, depth 2 is embedded in a padded tree of width 7, depth 4, and must
give the same logits, hidden layers and gradient on its real entries as at its own shape, and
exactly zero gradient on every padded entry and padded layer: under the model (XLA's gradient,
in a program holding every activation of the registry, each selected) and under the fused CPU
kernel (which reads the network's real width, depth and activation). The engine-level check,
training included, is tests/test_invariance.py.

Two fillings of the padded entries: ``zeros``, as ``model.init`` and training leave them (there
only an activation with ``act(0) != 0``, sigmoid or softplus, tells a missing mask), and
``noise``, where anything the masks let through shows for every activation.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepnet.kernel import build, ops
from sweepnet.sweep import models
from sweepnet.train.step import loss_and_acc

ACTS = sorted(models.ACTIVATIONS)
KERNEL_ACTS = sorted(ops.ACTIVATIONS)
WIDTH, DEPTH, IN_DIM = 3, 2, 2  # the network
PAD_WIDTH, PAD_DEPTH = 7, 4  # its program
FILLS = ("zeros", "noise")


def _points(n=41):
    """``x (2, n)``, labels ``y (n,)`` int32: inside / outside a circle (41 points: not a
    multiple of the kernel's blocks of points)."""
    x = 1.5 * jax.random.normal(jax.random.key(11), (IN_DIM, n))
    return x, (jnp.linalg.norm(x, axis=0) > 1.2).astype(jnp.int32)


def _network():
    """The network's parameters at its own shape (``{"params": {"hidden_i": {"kernel" (out,
    in), "bias" (out,)}, "out": ...}}``), random, biases included (as after training)."""
    rng = np.random.default_rng(4)
    shapes = [("hidden_0", WIDTH, IN_DIM)] + [(f"hidden_{i}", WIDTH, WIDTH)
                                              for i in range(1, DEPTH)] + [("out", 1, WIDTH)]
    normal = lambda *shape: (rng.normal(size=shape) / np.sqrt(shape[-1])).astype(np.float32)
    return {"params": {name: {"kernel": normal(o, i), "bias": normal(o)}
                       for name, o, i in shapes}}


def _embed(small, fill):
    """``small`` written into the top-left blocks of a padded parameter tree (width
    ``PAD_WIDTH``, depth ``PAD_DEPTH``), every other entry ``fill``. Returns the tree, and a
    tree of bools: True on the network's real entries."""
    model = models.build("mlp", PAD_WIDTH, PAD_DEPTH, "tanh", 1)
    shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((IN_DIM, 1)), WIDTH, 1.0)
    leaves, tree = jax.tree.flatten(shapes)
    rng = np.random.default_rng(5)
    base = jax.tree.unflatten(tree, [
        np.zeros(s.shape, np.float32) if fill == "zeros"
        else rng.normal(size=s.shape).astype(np.float32) for s in leaves])
    real = jax.tree.map(lambda s: np.zeros(s.shape, bool), shapes)
    for name, layer in small["params"].items():
        for leaf, value in layer.items():
            block = tuple(slice(0, n) for n in value.shape)
            base["params"][name][leaf][block] = value
            real["params"][name][leaf][block] = True
    return base, real


def _bce(model, x, y, **kw):
    """The training loss (mean binary cross-entropy) of ``model`` at ``x (2, n)``, labels
    ``y (n,)``, as a function of its parameters."""
    return lambda p: loss_and_acc(model.apply(p, x, WIDTH, 1.0, **kw), y, 1)[0].mean()


def _assert_padded_grad(g_pad, g_small, real, exact=False):
    """The real block of ``g_pad`` equals ``g_small`` (bit for bit if ``exact``); every padded
    entry, and every layer past the real depth, is exactly zero."""
    for (path, a), m in zip(jax.tree_util.tree_leaves_with_path(g_pad), jax.tree.leaves(real),
                            strict=True):
        name = jax.tree_util.keystr(path)
        a = np.asarray(a)
        assert not a[~m].any(), f"{name}: padded entries got gradient {a[~m][a[~m] != 0]}"
        layer = path[1].key
        if layer in g_small["params"]:
            want = np.asarray(g_small["params"][layer][path[2].key])
            got = a[tuple(slice(0, n) for n in want.shape)]
            if exact:
                np.testing.assert_array_equal(got, want, err_msg=name)
            else:
                np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)


def _compile(fn, *args):
    """``jit(fn)`` compiled for ``args`` at XLA's lowest CPU optimisation level: these programs
    run once, and compiling them took half the time it did at the default level."""
    return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


@pytest.fixture(scope="module")
def selected():
    """For every activation: ``(chosen, own)``, the value and derivative at 33 points of the
    activation a program holding every activation selects for it, and of the activation
    itself (one compiled program for all)."""
    a = jnp.linspace(-4.0, 4.0, 33)

    def both(a):
        d = lambda f: jax.vmap(jax.grad(f))(a)
        out = {}
        for i, act in enumerate(ACTS):
            chosen = models.activation_fn(tuple(ACTS), jnp.int32(i))
            own = models.ACTIVATIONS[act]
            out[act] = ((chosen(a), d(chosen)), (own(a), d(own)))
        return out

    return jax.device_get(_compile(both, a)(a))


@pytest.mark.parametrize("act", ACTS)
def test_a_mixed_program_selects_each_activation_exactly(selected, act):
    (value, slope), (want_value, want_slope) = selected[act]
    np.testing.assert_array_equal(value, want_value)
    # the derivative to round-off: compiled in one program with the other candidates, XLA
    # fused gelu's derivative differently (up to 6e-8 apart; eagerly it is bit for bit)
    np.testing.assert_allclose(slope, want_slope, rtol=1e-5, atol=1e-7)


@pytest.fixture(scope="module")
def model_pairs():
    """``{(act, fill): (padded, alone, real)}``: logits, hidden layers and loss gradient of the
    network in the padded program holding every activation (width 7, depth 4, ``which`` its
    activation, ``real_depth`` 2), of the network at its own shape (width 3, depth 2, its
    activation alone), and the tree of its real entries. Two compiled programs for all."""
    x, y = _points()
    small = _network()
    m_pad = models.build("mlp", PAD_WIDTH, PAD_DEPTH, tuple(ACTS), 1)
    cases = [(act, fill) for act in ACTS for fill in FILLS]
    trees = {fill: _embed(small, fill) for fill in FILLS}
    stacked = jax.tree.map(lambda *a: np.stack(a), *[trees[f][0] for _, f in cases])
    which = jnp.asarray([ACTS.index(a) for a, _ in cases], jnp.int32)

    @jax.vmap
    def padded(p, which):
        kw = {"real_depth": jnp.int32(DEPTH), "which": which}
        z, h = m_pad.apply(p, x, WIDTH, 1.0, return_hidden=True, **kw)
        return z, h, jax.grad(_bce(m_pad, x, y, **kw))(p)

    def alone(p):
        out = {}
        for act in ACTS:
            m = models.build("mlp", WIDTH, DEPTH, act, 1)
            z, h = m.apply(p, x, WIDTH, 1.0, return_hidden=True)
            out[act] = (z, h, jax.grad(_bce(m, x, y))(p))
        return out

    got = jax.device_get(_compile(padded, stacked, which)(stacked, which))
    want = jax.device_get(_compile(alone, small)(small))
    return {(act, fill): (jax.tree.map(lambda a, i=i: a[i], got), want[act], trees[fill][1])
            for i, (act, fill) in enumerate(cases)}


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("act", ACTS)
def test_padded_mixed_mlp_equals_the_network_at_its_own_shape(model_pairs, act, fill):
    (z_pad, h_pad, g_pad), (z_small, h_small, g_small), real = model_pairs[act, fill]
    np.testing.assert_allclose(z_pad, z_small, rtol=1e-6, atol=1e-6)
    assert len(h_pad) == PAD_DEPTH
    for i in range(PAD_DEPTH):
        # a layer past the real depth passes the last real one through
        want = h_small[min(i, DEPTH - 1)]
        np.testing.assert_allclose(h_pad[i][:WIDTH], want, rtol=1e-6, atol=1e-6)
        assert not h_pad[i][WIDTH:].any(), f"hidden_{i}: padded units read non-zero"
    _assert_padded_grad(g_pad, g_small, real)


@pytest.fixture(scope="module")
def kernel():
    """The fused CPU kernel, built in the foreground if need be (as tests/test_fused.py does)."""
    if build.library(wait=True) is None:
        pytest.skip("the fused CPU kernel does not build here")


@pytest.fixture(scope="module")
def kernel_pairs(kernel):
    """``{(act, fill): (padded, alone, real)}`` for every kernel activation: the kernel's
    gradient, finite flag, logits and signed margins with their input gradients, of the network
    in a padded tree (its real width, depth and activation in ``Net``), and of the network at
    its own shape; and the tree of its real entries. Two compiled programs for all."""
    x, y = _points()
    small = _network()
    cases = [(act, fill) for act in KERNEL_ACTS for fill in FILLS]
    trees = {fill: _embed(small, fill) for fill in FILLS}
    stacked = jax.tree.map(lambda *a: np.stack(a), *[trees[f][0] for _, f in cases])
    ids = jnp.asarray([ops.ACTIVATIONS[a] for a, _ in cases], jnp.int32)

    def run(tree, act):
        net = ops.Net(jnp.int32(WIDTH), jnp.int32(DEPTH), act)
        return (*ops.grad(tree, x, y, net), ops.logits(tree, x, net),
                ops.margin_and_grad(tree, x, y, net))

    padded = jax.vmap(run)
    alone = jax.vmap(run, in_axes=(None, 0))
    got = jax.device_get(_compile(padded, stacked, ids)(stacked, ids))
    want = jax.device_get(_compile(alone, small, ids)(small, ids))
    pick = lambda tree, i: jax.tree.map(lambda a: a[i], tree)
    return {case: (pick(got, i), pick(want, i), trees[case[1]][1])
            for i, case in enumerate(cases)}


@pytest.mark.parametrize("fill", FILLS)
@pytest.mark.parametrize("act", KERNEL_ACTS)
def test_fused_kernel_reads_only_the_real_network_of_a_padded_tree(kernel_pairs, model_pairs,
                                                                   act, fill):
    """The kernel on a padded tree: the gradient, logits and margins of the network at its own
    shape bit for bit, exact zeros on every padded entry and layer; and the model's logits."""
    (g_pad, ok_pad, z_pad, margins_pad), (g_small, ok_small, z_small, margins_small), real = (
        kernel_pairs[act, fill])
    assert ok_pad and ok_small
    _assert_padded_grad(g_pad, g_small, real, exact=True)
    np.testing.assert_array_equal(z_pad, z_small)
    for a, b in zip(margins_pad, margins_small, strict=True):
        np.testing.assert_array_equal(a, b)
    z_model = model_pairs[act, fill][1][0]  # MLP.apply at the network's own shape
    np.testing.assert_allclose(z_pad, z_model, rtol=1e-5, atol=1e-5)
