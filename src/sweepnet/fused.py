"""The fused CPU gradient: one native kernel for the forward, loss and backward of a training step.

On CPU, XLA runs a small network's training step as a dozen tiny kernels a layer (batched
3x3 dots, reductions over points, elementwise passes), and their per-call overhead, not
arithmetic, set the pace: a (3, 2) step reached a third of the machine's bound. The kernel
``fused_grad.cc`` takes 16 points at a time (8 such blocks interleaved) forward through every
layer, through the loss and back, in registers, and sums the weight gradients lane by lane.
Two more entry points serve the evaluations (logits) and the separation metrics (signed
margins and their gradients by the input).

It covers the common case: an ``mlp`` with one output logit (binary labels), an activation of
:data:`ACTIVATIONS`, on a CPU mesh. Everything else uses XLA's autodiff, as does everything
when no C++ compiler is found or ``SWEEPNET_FUSED=0``. The optimizer (optax) is XLA's
either way.

The source is compiled on first use with the system's C++ compiler against the XLA FFI
headers shipped in jaxlib (``jax.ffi.include_dir()``), for the host CPU (``-march=native``),
and kept in ``$SWEEPNET_CACHE/kernels`` (else ``~/.cache/sweepnet/kernels``) under a hash of
the source, compiler, flags, jaxlib and CPU. Why not a build step at install: a wheel built
for one CPU would leave AVX-512 unused on another, and the FFI headers must match the jaxlib
that loads the library; the persistent program cache keeps a similar per-host key.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sweepnet.host import cache_root, host_cpu, jaxlib_version

# activation name -> the kernel's id (enum Act in fused_grad.cc)
ACTIVATIONS = {"tanh": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "linear": 4, "softplus": 5}
TARGETS = {"sweepnet_fused_grad": "SweepnetGrad", "sweepnet_fused_logits": "SweepnetLogits",
           "sweepnet_fused_margin_grad": "SweepnetMarginGrad"}
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_grad.cc")
FLAGS = ("-O3", "-march=native", "-std=c++17", "-ffp-contract=fast", "-fPIC", "-shared", "-w")


def enabled() -> bool:
    """False when the user turned the kernel off with ``SWEEPNET_FUSED=0``."""
    return os.environ.get("SWEEPNET_FUSED", "1").strip().lower() not in ("0", "false", "no", "off")


def covers(static) -> bool:
    """Whether the kernel computes this program's gradient (:class:`~sweepnet.train.Static`):
    a binary ``mlp`` whose every activation the kernel knows."""
    return (static.arch == "mlp" and static.n_out == 1 and static.depth >= 1
            and all(a in ACTIVATIONS for a in static.activations))


def use(static, mesh) -> bool:
    """Use the kernel for ``static`` on ``mesh``: covered, enabled, CPU, and the library built."""
    cpu = all(d.platform == "cpu" for d in mesh.devices.flat)
    return cpu and covers(static) and enabled() and library() is not None


def _compiler() -> list[str] | None:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which(
        "clang++")
    return shlex.split(cxx) if cxx else None


def _library_key(cxx: list[str]) -> str:
    try:
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    h = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        h.update(f.read())
    for part in (version, " ".join(FLAGS), jaxlib_version(), host_cpu()):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:24]


@functools.lru_cache(maxsize=1)
def library() -> str | None:
    """Path of the built kernel library, registered with XLA; None (with one warning on stderr)
    when it cannot be built or loaded, and the gradient falls back to XLA's autodiff."""
    cxx = _compiler()
    if cxx is None:
        return _give_up("no C++ compiler found (set CXX)")
    folder = os.path.join(cache_root(), "kernels")
    path = os.path.join(folder, f"fused_grad-{_library_key(cxx)}.so")
    if not os.path.exists(path):
        try:
            os.makedirs(folder, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".so", dir=folder)
            os.close(fd)
        except OSError as e:
            return _give_up(f"cannot write {folder} ({e.strerror})")
        cmd = [*cxx, *FLAGS, "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp]
        print("sweepnet: building the fused CPU gradient kernel (once per machine, about 30 s)",
              file=sys.stderr, flush=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as e:
            proc = None
            err = str(e)
        if proc is None or proc.returncode != 0:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            err = err if proc is None else (proc.stderr.strip().splitlines() or ["?"])[-1]
            return _give_up(f"{' '.join(cxx)} failed on {os.path.basename(SOURCE)}: {err}")
        os.replace(tmp, path)  # atomic: concurrent processes may build the same library
    try:
        lib = ctypes.CDLL(path)
        for target, symbol in TARGETS.items():
            jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(getattr(lib, symbol)),
                                        platform="cpu")
    except (OSError, AttributeError) as e:
        return _give_up(f"cannot load {path} ({e})")
    return path


def _give_up(why: str) -> None:
    print(f"sweepnet: warning: fused CPU gradient unavailable, using XLA's: {why}",
          file=sys.stderr, flush=True)
    return None


class Net(NamedTuple):
    """One network's real shape inside its program, as the kernel reads it (int32 scalars,
    vmapped like the network): ``width``, ``depth`` and the kernel's ``activation`` id."""

    width: jax.Array
    depth: jax.Array
    activation: jax.Array

    @classmethod
    def of(cls, static, width, depth=None, which=None) -> Net:
        """From a program's ``static`` and a network's :class:`~sweepnet.train.Hyper` values
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
    """Gradient of the mean binary cross-entropy of an ``mlp`` (:class:`sweepnet.models.MLP`).

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
    gradients ``(in_dim, points)``, as :func:`sweepnet.separation.margin_and_grad` computes them
    for a binary ``mlp``. Arguments as for :func:`grad`; works under ``vmap``."""
    names, layers = _layers(tree)
    call = jax.ffi.ffi_call("sweepnet_fused_margin_grad",
                            (jax.ShapeDtypeStruct(x.shape[-1:], jnp.float32),
                             jax.ShapeDtypeStruct(x.shape, jnp.float32)),
                            vmap_method="expand_dims")
    return call(x, y.astype(jnp.float32), net.info(), *layers,
                depth=np.int64(len(names) - 1))
