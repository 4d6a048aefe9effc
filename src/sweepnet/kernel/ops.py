"""The fused kernel's operations, as jax sees them: XLA FFI calls into ``fused_grad.cc``.

On CPU, XLA runs a small network's training step as a dozen tiny kernels a layer (batched
3x3 dots, reductions over points, elementwise passes), and their per-call overhead, not
arithmetic, set the pace: a (3, 2) step reached a third of the machine's bound. The kernel
``fused_grad.cc`` takes 16 points at a time (8 such blocks interleaved) forward through every
layer, through the loss and back, in registers, and sums the weight gradients lane by lane.
Two more entry points serve the evaluations (logits) and the separation metrics (signed
margins and their gradients by the input).

:func:`grad`, :func:`logits` and :func:`margin_and_grad` are those three calls, for a network
whose real shape is a :class:`Net`; :func:`symbols` and :func:`register` hand a built library's
handlers to XLA under the names of :data:`TARGETS` (``kernel.build`` does, when it loads one).
"""

from __future__ import annotations

import ctypes
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

# activation name -> the kernel's id (enum Act in simd.h)
ACTIVATIONS = {"tanh": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "linear": 4, "softplus": 5}
# XLA FFI target -> the library's handler symbol (fused_grad.cc)
TARGETS = {"sweepnet_fused_grad": "SweepnetGrad", "sweepnet_fused_logits": "SweepnetLogits",
           "sweepnet_fused_margin_grad": "SweepnetMarginGrad"}


def symbols(path: str) -> dict:
    """The handlers of the library at ``path``, by target (:data:`TARGETS`); raises OSError or
    AttributeError when it does not load or lacks one."""
    lib = ctypes.CDLL(path)
    return {target: getattr(lib, symbol) for target, symbol in TARGETS.items()}


def register(handlers: dict) -> None:
    """Register ``handlers`` (:func:`symbols`) with XLA's CPU platform."""
    for target, fn in handlers.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(fn), platform="cpu")


class Net(NamedTuple):
    """One network's real shape inside its program, as the kernel reads it (int32 scalars,
    vmapped like the network): ``width``, ``depth`` and the kernel's ``activation`` id."""

    width: jax.Array
    depth: jax.Array
    activation: jax.Array

    @classmethod
    def of(cls, static, width, depth=None, which=None) -> Net:
        """From a program's ``static`` and a network's :class:`~sweepnet.train.step.Hyper` values
        (``depth`` None: the program's; ``which`` None: its first activation)."""
        ids = jnp.asarray([ACTIVATIONS[a] for a in static.activations], jnp.int32)
        return cls(jnp.asarray(width, jnp.int32),
                   jnp.asarray(static.depth if depth is None else depth, jnp.int32),
                   ids[0] if which is None else ids[which])

    def info(self) -> jax.Array:
        """``(3,)`` int32: the kernel's ``info`` operand."""
        return jnp.stack([self.width, self.depth, self.activation])


def _layers(tree) -> tuple[list[str], list[jax.Array]]:
    """The padded layers' names and ``(kernel, bias)`` operands, hidden layers then ``out``."""
    p = tree["params"]
    depth = sum(1 for k in p if k.startswith("hidden_"))
    names = [f"hidden_{i}" for i in range(depth)] + ["out"]
    return names, [a for name in names for a in (p[name]["kernel"], p[name]["bias"])]


def grad(tree, x, y, net: Net):
    """Gradient of the mean binary cross-entropy of an ``mlp`` (:class:`sweepnet.sweep.models.MLP`).

    ``tree``: its padded parameter tree (``{"params": {"hidden_i"/"out": {"kernel", "bias"}}}``,
    kernels ``(out, in)``); ``x (in_dim, points)``; ``y (points,)`` int labels; ``net`` the
    network's real width, depth and activation. Returns ``(grads, finite)``: a tree like
    ``tree``, and a bool, False if a logit was not finite. Padded units and padded layers get
    exactly zero gradient, as under autodiff. Works under ``vmap`` (the kernel loops over the
    batch).
    """
    names, layers = _layers(tree)
    shapes = [jax.ShapeDtypeStruct(o.shape, o.dtype) for o in layers]
    call = jax.ffi.ffi_call("sweepnet_fused_grad",
                            (*shapes, jax.ShapeDtypeStruct((), jnp.float32)),
                            vmap_method="expand_dims")
    out = call(x, y.astype(jnp.float32), net.info(), *layers, depth=np.int64(len(names) - 1))
    grads = {name: {"kernel": out[2 * i], "bias": out[2 * i + 1]}
             for i, name in enumerate(names)}
    return {"params": grads}, out[-1] > 0


def logits(tree, x, net: Net):
    """``(1, points)`` logits of an ``mlp`` at ``x (in_dim, points)``, as ``MLP.apply`` (no
    gradient: evaluations only). Arguments as for :func:`grad`; works under ``vmap``."""
    names, layers = _layers(tree)
    call = jax.ffi.ffi_call("sweepnet_fused_logits",
                            jax.ShapeDtypeStruct(x.shape[-1:], jnp.float32),
                            vmap_method="expand_dims")
    z = call(x, net.info(), *layers, depth=np.int64(len(names) - 1))
    return z[None, :]


def margin_and_grad(tree, x, y, net: Net):
    """Signed margins ``(points,)`` (``(2y - 1) z``) at ``x (in_dim, points)`` and their input
    gradients ``(in_dim, points)``, as ``separation.margin_and_grad`` computes them
    for a binary ``mlp``. Arguments as for :func:`grad`; works under ``vmap``."""
    names, layers = _layers(tree)
    call = jax.ffi.ffi_call("sweepnet_fused_margin_grad",
                            (jax.ShapeDtypeStruct(x.shape[-1:], jnp.float32),
                             jax.ShapeDtypeStruct(x.shape, jnp.float32)),
                            vmap_method="expand_dims")
    return call(x, y.astype(jnp.float32), net.info(), *layers,
                depth=np.int64(len(names) - 1))
