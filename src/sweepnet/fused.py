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

import jax
import jax.numpy as jnp
import numpy as np

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
    """Whether the kernel computes this bucket's gradient (:class:`~sweepnet.train.Static`)."""
    return (static.arch == "mlp" and static.n_out == 1 and static.depth >= 1
            and static.activation in ACTIVATIONS)


def use(static, mesh) -> bool:
    """Use the kernel for ``static`` on ``mesh``: covered, enabled, CPU, and the library built."""
    cpu = all(d.platform == "cpu" for d in mesh.devices.flat)
    return cpu and covers(static) and enabled() and library() is not None


def _compiler() -> list[str] | None:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which(
        "clang++")
    return shlex.split(cxx) if cxx else None


def _library_key(cxx: list[str]) -> str:
    from sweepnet.programs import _host_cpu, _jaxlib_version

    try:
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    h = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        h.update(f.read())
    for part in (version, " ".join(FLAGS), _jaxlib_version(), _host_cpu()):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:24]


@functools.lru_cache(maxsize=1)
def library() -> str | None:
    """Path of the built kernel library, registered with XLA; None (with one warning on stderr)
    when it cannot be built or loaded, and the gradient falls back to XLA's autodiff."""
    from sweepnet.programs import cache_root

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


def _layers(tree, width, depth: int):
    """The layers' ``(kernel, bias)`` in order, the kernels' padded input columns zeroed."""
    p = tree["params"]
    names = [f"hidden_{i}" for i in range(depth)] + ["out"]
    mask = (jnp.arange(p["hidden_0"]["kernel"].shape[0]) < width).astype(jnp.float32)
    ops = []
    for i, name in enumerate(names):
        kernel = p[name]["kernel"]
        ops += [kernel * mask[None, :] if i else kernel, p[name]["bias"]]
    return names, mask, ops


def grad(tree, x, y, width, depth: int, activation: str):
    """Gradient of the mean binary cross-entropy of an ``mlp`` (:class:`sweepnet.models.MLP`).

    ``tree``: its padded parameter tree (``{"params": {"hidden_i"/"out": {"kernel", "bias"}}}``,
    kernels ``(out, in)``); ``x (in_dim, points)``; ``y (points,)`` int labels; ``width`` the
    real width (may be traced). Returns ``(grads, finite)``: a tree like ``tree``, and a bool,
    False if a logit was not finite. Padded units get exactly zero gradient, as under autodiff:
    the width mask multiplies the kernels' columns going in and their gradients coming out.
    Works under ``vmap`` (the kernel loops over the batch).
    """
    names, mask, layers = _layers(tree, width, depth)
    shapes = [jax.ShapeDtypeStruct(o.shape, o.dtype) for o in layers]
    call = jax.ffi.ffi_call("sweepnet_fused_grad",
                            (*shapes, jax.ShapeDtypeStruct((), jnp.float32)),
                            vmap_method="expand_dims")
    out = call(x, y.astype(jnp.float32), *layers, depth=np.int64(depth),
               activation=np.int64(ACTIVATIONS[activation]))
    grads = {}
    for i, name in enumerate(names):
        kernel = out[2 * i] * mask[None, :] if i else out[2 * i]
        grads[name] = {"kernel": kernel, "bias": out[2 * i + 1]}
    return {"params": grads}, out[-1] > 0


def logits(tree, x, width, depth: int, activation: str):
    """``(1, points)`` logits of an ``mlp`` at ``x (in_dim, points)``, as ``MLP.apply`` (no
    gradient: evaluations only). Arguments as for :func:`grad`; works under ``vmap``."""
    _, _, layers = _layers(tree, width, depth)
    call = jax.ffi.ffi_call("sweepnet_fused_logits",
                            jax.ShapeDtypeStruct(x.shape[-1:], jnp.float32),
                            vmap_method="expand_dims")
    z = call(x, *layers, depth=np.int64(depth), activation=np.int64(ACTIVATIONS[activation]))
    return z[None, :]


def margin_and_grad(tree, x, y, width, depth: int, activation: str):
    """Signed margins ``(points,)`` (``(2y - 1) z``) at ``x (in_dim, points)`` and their input
    gradients ``(in_dim, points)``, as :func:`sweepnet.separation.margin_and_grad` computes them
    for a binary ``mlp``. Arguments as for :func:`grad`; works under ``vmap``."""
    _, _, layers = _layers(tree, width, depth)
    call = jax.ffi.ffi_call("sweepnet_fused_margin_grad",
                            (jax.ShapeDtypeStruct(x.shape[-1:], jnp.float32),
                             jax.ShapeDtypeStruct(x.shape, jnp.float32)),
                            vmap_method="expand_dims")
    return call(x, y.astype(jnp.float32), *layers, depth=np.int64(depth),
                activation=np.int64(ACTIVATIONS[activation]))
