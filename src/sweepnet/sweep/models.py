"""Flax models with a width mask, and the activation registry.

Layout: points sit on the last axis, ``h`` is ``(units, points)`` and a layer computes
``W @ h + b``. On CPU this ran several times faster under ``vmap`` than Flax's default
points-first ``Dense``.

A model is built at its bucket's padded width; the real width is an input. Units past the
real width are multiplied by zero after the nonlinearity and their weights start at zero, so
they contribute nothing to the function and receive exactly zero gradient: a padded network
computes the same function, and trains the same way, as the network built at its own width.
Initial weights are drawn entry by entry from threefry of ``(key, row, col)``, so the real
block of a padded kernel equals the kernel of the unpadded network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from jax.extend.random import threefry2x32_p

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "relu": jax.nn.relu,
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, 0.01),
    # TensorFlow's default slope, which Naitzat et al. trained with (the fused CPU kernel
    # lacks it: such networks train with XLA's gradient, in a program of their own)
    "leaky_relu_0.2": lambda x: jax.nn.leaky_relu(x, 0.2),
    "elu": jax.nn.elu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
    "sin": jnp.sin,
    "linear": lambda x: x,
}


def activation_fn(names: str | Sequence[str], which=None) -> Callable[[jax.Array], jax.Array]:
    """The nonlinearity of one network of a program holding the activations ``names``.

    ``which`` (int, may be traced; None for a single activation) indexes ``names``. With more
    than one name every candidate is computed and one is selected, so the result (and its
    gradient, which flows through the selected branch alone) is bit for bit the chosen
    activation's: a network's function does not depend on the mix of its program.
    """
    names = (names,) if isinstance(names, str) else tuple(names)
    fns = [ACTIVATIONS[n] for n in names]
    if len(fns) == 1 or which is None:
        return fns[0]
    return lambda a: lax.select_n(which, *[f(a) for f in fns])


def masked_normal(key, shape, rows, cols, scale):
    """``(R, C)`` kernel: ``N(0, scale^2 / cols)`` in the top-left ``rows x cols`` block, else 0.

    ``rows``, ``cols`` and ``scale`` may be traced. Entry ``(i, j)`` depends only on
    ``(key, i, j)``, never on the padded shape ``(R, C)``: its random bits are threefry of the
    counter ``i * 2^16 + j``. One threefry over all entries (rather than ``fold_in`` entry by
    entry, three nested threefry loops a layer) cut a bucket's compile time by seconds.
    """
    n_rows, n_cols = shape
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    i = jnp.arange(n_rows, dtype=jnp.uint32)[:, None]
    j = jnp.arange(n_cols, dtype=jnp.uint32)[None, :]
    # the primitive, elementwise: jax's threefry_2x32 pairs up entries, so depends on the shape
    count = jnp.broadcast_to(i * jnp.uint32(1 << 16) + j, shape)
    bits, _ = threefry2x32_p.bind(key[0], key[1], count, jnp.zeros(shape, jnp.uint32))
    # as jax.random.normal: uniform on [nextafter(-1, 0), 1) from 23 mantissa bits, then erfinv
    unit = jax.lax.bitcast_convert_type((bits >> 9) | jnp.uint32(0x3F800000), jnp.float32) - 1.0
    lo = jnp.nextafter(jnp.float32(-1.0), jnp.float32(0.0))
    z = jnp.sqrt(2.0) * jax.lax.erf_inv(jnp.maximum(lo, unit * (1.0 - lo) + lo))
    live = (i < rows) & (j < cols)
    std = scale / jnp.sqrt(jnp.asarray(cols, jnp.float32))
    return jnp.where(live, z * std, 0.0).astype(jnp.float32)


@jax.custom_vjp
def linear(w, h):
    """``w (out, in) @ h (in, points) -> (out, points)``.

    A custom VJP fixes the layout of the backward products: ``dw = g @ h^T`` and
    ``dh = w^T @ g``, both points-last. Left to autodiff, the input gradient came out as a
    points-first dot followed by a transpose, which ran 10x slower under ``vmap`` on CPU and
    made the separation certificate a third of a 1000-step run. (Unrolling small products into
    multiply-adds, so XLA fuses them with the activation, was slower in the whole step.)
    """
    return w @ h


def _linear_fwd(w, h):
    return w @ h, (w, h)


def _linear_bwd(res, g):
    w, h = res
    return g @ h.T, w.T @ g


linear.defvjp(_linear_fwd, _linear_bwd)


class Dense(nn.Module):
    """``(in, points) -> (features, points)``: ``W @ h + b``, ``W`` of shape ``(features, in)``.

    ``in_mask (in,)``, if given, multiplies the kernel's columns: inputs past a network's real
    width then add nothing to the output and their columns receive zero gradient.
    """

    features: int

    @nn.compact
    def __call__(self, h, rows, cols, scale, in_mask=None):
        kernel = self.param("kernel", masked_normal, (self.features, h.shape[0]), rows, cols, scale)
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if in_mask is not None:
            kernel = kernel * in_mask[None, :]
        return linear(kernel, h) + bias[:, None]


class MLP(nn.Module):
    """``depth`` hidden layers of ``width`` (padded) units, then a linear read-out.

    ``__call__(x, width, init_scale, real_depth=None, which=None)``: ``x (in_dim, points)`` →
    logits ``(n_out, points)``; ``width`` is the real width (int, may be traced).
    ``activation`` is one name, or the tuple of names a program holds; ``which`` (int, may be
    traced) then picks this network's (see :func:`activation_fn`). ``real_depth`` (int, may be
    traced, ``1 <= real_depth <= depth``; None: ``depth``) is the network's real depth: hidden
    layers past it are exact identities (their input passes through unchanged), so their
    parameters receive exactly zero gradient and their optimizer state never moves.

    The width mask multiplies the *columns of the next layer's kernel* (``(width, width)``
    floats a layer), not the activations (``(width, points)``): a padded unit's activation
    ``act(0)`` then reaches nothing, and the kernel's padded columns, and through them the
    padded unit itself, get exactly zero gradient. That saved an elementwise pass over the
    activations per layer, forward and backward.
    """

    width: int
    depth: int
    n_out: int
    activation: str

    @nn.compact
    def __call__(self, x, width, init_scale, return_hidden: bool = False, real_depth=None,
                 which=None):
        act = activation_fn(self.activation, which)
        mask = (jnp.arange(self.width) < width).astype(x.dtype)
        h, fan_in, in_mask, hidden = x, x.shape[0], None, []
        for i in range(self.depth):
            new = act(Dense(self.width, name=f"hidden_{i}")(h, width, fan_in, init_scale, in_mask))
            # layer 0 is always real (depth >= 1); a padded layer passes its input through
            h = new if i == 0 or real_depth is None else jnp.where(i < real_depth, new, h)
            hidden.append(h * mask[:, None])  # padded units read 0 (only computed if returned)
            fan_in, in_mask = width, mask
        out = Dense(self.n_out, name="out")(h, self.n_out, fan_in, init_scale, in_mask)
        return (out, hidden) if return_hidden else out


class ResNet(nn.Module):
    """Residual blocks on a state of ``width`` units: ``h + f(h)``, zero-padded ("augmented").

    ``width`` is the state width. The input ``x (in_dim, points)`` is zero-padded to it:
    ``h_0 = [x; 0]``, so ``width == in_dim`` is a plain ResNet at the input width and
    ``width > in_dim`` adds ``width - in_dim`` augmented dimensions (as in Augmented Neural
    ODEs). Each of the ``depth`` blocks is a two-layer residual branch with square kernels::

        h_{i+1} = h_i + V_i act(W_i h_i + b_i) + c_i        W_i, V_i: (width, width)

    (parameters ``hidden_i`` = ``(W_i, b_i)`` and ``residual_i`` = ``(V_i, c_i)``), then a linear
    read-out ``out`` of the last state. A width below ``in_dim`` keeps only the first ``width``
    input coordinates (sweeps should not ask for it).

    ``__call__(x, width, init_scale)``: ``x (in_dim, points)`` → logits ``(n_out, points)``;
    ``width`` is the real width (int, may be traced). Units past it are masked after every
    nonlinearity and every residual update, so they stay zero, contribute nothing and get zero
    gradient. ``return_hidden`` also gives the states ``h_1..h_depth``, each ``(width, points)``.
    ``real_depth`` and ``which`` as for :class:`MLP` (a padded block is the identity).
    """

    width: int
    depth: int
    n_out: int
    activation: str

    @nn.compact
    def __call__(self, x, width, init_scale, return_hidden: bool = False, real_depth=None,
                 which=None):
        act = activation_fn(self.activation, which)
        mask = (jnp.arange(self.width) < width).astype(x.dtype)[:, None]
        x = x[: self.width]
        h = jnp.concatenate([x, jnp.zeros((self.width - x.shape[0], x.shape[1]), x.dtype)]) * mask
        hidden = []
        for i in range(self.depth):
            a = act(Dense(self.width, name=f"hidden_{i}")(h, width, width, init_scale)) * mask
            new = h + Dense(self.width, name=f"residual_{i}")(a, width, width, init_scale) * mask
            h = new if i == 0 or real_depth is None else jnp.where(i < real_depth, new, h)
            hidden.append(h)
        out = Dense(self.n_out, name="out")(h, self.n_out, width, init_scale)
        return (out, hidden) if return_hidden else out


ARCHS: dict[str, type[nn.Module]] = {"mlp": MLP, "resnet": ResNet}


def build(arch: str, width: int, depth: int, activation: str | Sequence[str], n_out: int
          ) -> nn.Module:
    """The model at (padded) ``width`` and ``depth``; ``activation``: a name or a program's
    tuple of names (each network then passes ``which``)."""
    if not isinstance(activation, str):
        activation = tuple(activation)
    return ARCHS[arch](width=width, depth=depth, n_out=n_out, activation=activation)


def n_params(arch: str, in_dim: int, width: int, depth: int, n_out: int) -> int:
    """Trainable parameters of the unpadded network."""
    if arch == "mlp":
        return (in_dim + 1) * width + (depth - 1) * (width + 1) * width + (width + 1) * n_out
    if arch == "resnet":
        return depth * 2 * (width + 1) * width + (width + 1) * n_out
    raise ValueError(arch)


def unpad(params, width: int, in_dim: int, depth: int | None = None):
    """Slice a padded parameter tree down to the real ``width`` (kernels are ``(out, in)``)
    and, given ``depth``, drop the padded layers past it (identities in the padded program)."""
    inner = params.get("params", params)
    # a ResNet's first layer reads the width-wide state, not the raw input
    first_in = width if "residual_0" in inner else in_dim
    if depth is not None:
        layer = lambda name: int(name.rsplit("_", 1)[1]) if name != "out" else -1
        inner = {k: v for k, v in inner.items() if layer(k) < depth}
        params = {**params, "params": inner} if "params" in params else inner

    def cut(path, leaf):
        name = "/".join(str(getattr(p, "key", p)) for p in path)
        out_live = leaf.shape[0] if "/out/" in f"/{name}" else width
        if leaf.ndim == 2:
            in_live = first_in if "hidden_0/" in name else width
            return leaf[:out_live, :in_live]
        return leaf[:out_live]

    return jax.tree_util.tree_map_with_path(cut, params)
