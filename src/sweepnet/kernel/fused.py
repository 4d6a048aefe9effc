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

The source is compiled with the system's C++ compiler against the XLA FFI headers shipped in
jaxlib (``jax.ffi.include_dir()``), for the host CPU (``-march=native``, or
``$SWEEPNET_MARCH``: ``x86-64-v3`` shows what an AVX2 machine gets), and kept in
``$SWEEPNET_CACHE/kernels`` (else ``~/.cache/sweepnet/kernels``) under a hash of the source,
compiler, flags, jaxlib and CPU. Why not a build step at install: a wheel built for one CPU
would leave AVX-512 unused on another, and the FFI headers must match the jaxlib that loads
the library; the persistent program cache keeps a similar per-host key.

Nobody waits for that build (a minute on a small machine, four on a slow one). The first
sweep that could use the kernel starts it in a detached background process
(``python -m sweepnet.bench.suite '{"kernel": true}'``) and trains with XLA's gradient meanwhile;
``sweepnet devices --build`` builds in the foreground. Importing sweepnet builds nothing.

Whether the kernel is used is measured, per machine: after building it, the builder times a
training program with the kernel against the same program with XLA's gradient on a few small
shapes (:data:`MEASURED`) and keeps the verdict next to the library (``.json``, same key). A
bucket uses the kernel only where it was faster on the nearest measured shape (width, depth,
activation family). ``SWEEPNET_FUSED=1`` forces the kernel on (building it in the foreground
if needed), ``SWEEPNET_FUSED=0`` off; ``SWEEPNET_KERNEL_BUILD=0`` never starts a background
build.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from sweepnet.core.host import cache_root, host_cpu, jaxlib_version

# activation name -> the kernel's id (enum Act in fused_grad.cc)
ACTIVATIONS = {"tanh": 0, "relu": 1, "leaky_relu": 2, "sigmoid": 3, "linear": 4, "softplus": 5}
TARGETS = {"sweepnet_fused_grad": "SweepnetGrad", "sweepnet_fused_logits": "SweepnetLogits",
           "sweepnet_fused_margin_grad": "SweepnetMarginGrad"}
SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_grad.cc")
FLAGS = ("-O3", "-march=native", "-std=c++17", "-ffp-contract=fast", "-fPIC", "-shared", "-w")


# Shapes the builder times, (width, depth, activation). An activation not measured takes its
# family's verdict: the transcendental ones cost like tanh, the piecewise linear ones like relu.
MEASURED = tuple((w, d, a) for w, d in ((3, 2), (8, 4), (16, 4)) for a in ("tanh", "relu"))
FAMILY = {"tanh": "tanh", "sigmoid": "tanh", "softplus": "tanh", "relu": "relu",
          "leaky_relu": "relu", "linear": "relu"}
_OFF, _ON = ("0", "false", "no", "off"), ("1", "true", "yes", "on")
# this process's view: the loaded library, the background builder it started, foreground build
# seconds, one answer of `use` per bucket shape, and the warnings already given
_state: dict = {"loaded": None, "builder": None, "build_s": 0.0, "decisions": {}, "said": set()}


def mode() -> str:
    """``"on"`` (``SWEEPNET_FUSED=1``: wherever it covers, built in the foreground if need be),
    ``"off"`` (``SWEEPNET_FUSED=0``) or ``"auto"`` (unset: where measured faster)."""
    value = os.environ.get("SWEEPNET_FUSED", "").strip().lower()
    return "off" if value in _OFF else "on" if value in _ON else "auto"


def enabled() -> bool:
    """False when the user turned the kernel off with ``SWEEPNET_FUSED=0``."""
    return mode() != "off"


def covers(static) -> bool:
    """Whether the kernel computes this program's gradient (:class:`~sweepnet.train.step.Static`):
    a binary ``mlp`` whose every activation the kernel knows."""
    return (static.arch == "mlp" and static.n_out == 1 and static.depth >= 1
            and all(a in ACTIVATIONS for a in static.activations))


def use(static, mesh, start: bool = True) -> bool:
    """Use the kernel for ``static`` on ``mesh``: covered, a CPU mesh, and wanted.

    Wanted: with ``SWEEPNET_FUSED=1`` wherever it builds; by default where it is built and
    measured faster (:func:`prefers`). A missing kernel is then built in the background
    (``start``) while this bucket trains with XLA's gradient. The answer is kept per ``static``
    for the process, so a bucket's program and its record agree even if a build lands between
    two questions.
    """
    if not _applies(static, mesh):
        return False
    how = mode()
    key = (static, how, start)
    if key not in _state["decisions"]:
        if how == "off":
            ok = False
        elif how == "on":
            ok = library(wait=True) is not None
        else:
            ok = ready(static, start=start)
        _state["decisions"][key] = ok
    return _state["decisions"][key]


def _applies(static, mesh) -> bool:
    """The kernel computes ``static``'s gradient (:func:`covers`) and ``mesh`` is CPUs."""
    return all(d.platform == "cpu" for d in mesh.devices.flat) and covers(static)


def _background_builds() -> bool:
    """False with ``SWEEPNET_KERNEL_BUILD=0`` (the tests): no build starts in the background."""
    return os.environ.get("SWEEPNET_KERNEL_BUILD", "").strip().lower() not in _OFF


def pending(static, mesh) -> bool:
    """Whether the kernel may still come for ``static`` during this run: :func:`use` said no
    only because the kernel is being built or measured (in the background, by this process or
    another one) and the user left the choice to the measurement (``SWEEPNET_FUSED`` unset).
    The engine then trains in shorter calls and asks :func:`ready` after each."""
    builder = _state["builder"]
    running = builder == "elsewhere" or (builder is not None and builder.poll() is None)
    return (running and mode() == "auto" and _applies(static, mesh)
            and (library(start=False) is None or verdict() is None))


# A first build and its measurement in the background, niced, beside a sweep on a 2-core CPU:
# 44 s to build and 165 s to time the six shapes (`sweepnet devices --build`: 108 s quiet)
FIRST_BUILD_S = 200.0


def will_build() -> bool:
    """Whether a sweep started now would build and measure the kernel in the background and
    switch to it when ready (``sweepnet plan`` estimates such a first run): a compiler, no
    failed build, the choice left to measurement, background builds allowed, and the kernel not
    yet built and measured."""
    path = kernel_path()
    return (path is not None and mode() == "auto" and not _read(path[:-3] + ".failed")
            and _background_builds() and (not os.path.exists(path) or verdict() is None))


def ready(static, start: bool = False) -> bool:
    """Whether the kernel is built, loaded and measured faster for ``static`` now (asked
    afresh, unlike :func:`use`): a bucket that started on XLA's gradient switches then.
    ``start``: a missing kernel starts building in the background (see :func:`library`)."""
    return library(start=start) is not None and bool(prefers(*shape_class(static)))


def shape_class(static) -> tuple[int, int, tuple[str, ...]]:
    """``(width, depth, activations)`` of a bucket, as :func:`prefers` takes them."""
    acts = getattr(static, "activations", None) or (static.activation,)
    names = {v: k for k, v in ACTIVATIONS.items()}
    return static.width, static.depth, tuple(names.get(a, a) for a in acts)


def prefers(width: int, depth: int, activations) -> bool | None:
    """Whether the kernel beat XLA's gradient on this machine at the measured shape nearest to
    ``(width, depth)`` (log scale) of each activation's family; all of ``activations`` must
    agree. None when nothing has been measured yet."""
    rows = (verdict() or {}).get("shapes")
    if not rows:
        return None

    def nearest(act):
        same = [r for r in rows if FAMILY.get(r["activation"]) == FAMILY.get(act, act)] or rows
        return min(same, key=lambda r: abs(math.log(r["width"] / max(width, 1)))
                   + abs(math.log(r["depth"] / max(depth, 1))))

    return all(nearest(a)["fused_s"] < nearest(a)["xla_s"] for a in activations)


def march() -> str:
    """The ``-march`` the kernel is built for: ``$SWEEPNET_MARCH``, else ``native``."""
    return os.environ.get("SWEEPNET_MARCH", "").strip() or "native"


def _flags(target: str | None = None) -> tuple[str, ...]:
    """:data:`FLAGS` for ``-march=target`` (default :func:`march`)."""
    target = target or march()
    return tuple(f"-march={target}" if f.startswith("-march=") else f for f in FLAGS)


def _compiler() -> list[str] | None:
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which(
        "clang++")
    return shlex.split(cxx) if cxx else None


@functools.lru_cache(maxsize=8)
def _library_key(cxx: tuple[str, ...], flags: tuple[str, ...]) -> str:
    try:
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    h = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        h.update(f.read())
    for part in (version, " ".join(flags), jaxlib_version(), host_cpu()):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:24]


def kernel_path() -> str | None:
    """Where this machine's kernel library is (or would be) kept; None without a compiler.
    Its verdict (``.json``), build log (``.log``) and failure (``.failed``) sit beside it."""
    cxx = _compiler()
    if cxx is None:
        return None
    key = _library_key(tuple(cxx), _flags())
    return os.path.join(cache_root(), "kernels", f"fused_grad-{key}.so")


def library(wait: bool = False, start: bool = True) -> str | None:
    """Path of the kernel library, loaded and registered with XLA; else None (the gradient is
    XLA's). Never waits for a build unless ``wait``: a missing library is built in a background
    process (``start``) for later programs and runs. A failed build is not retried until
    :func:`build` is called (``sweepnet devices --build``)."""
    if _state["loaded"]:
        return _state["loaded"]
    path = kernel_path()
    if path is None:
        return _give_up("no C++ compiler found (set CXX)")
    if not os.path.exists(path):
        if wait:
            return build()
        failed = _read(path[:-3] + ".failed")
        if failed:
            return _give_up(f"{failed} (sweepnet devices --build retries)")
        if start:
            start_build()
        return None
    return _load(path)


def build() -> str | None:
    """Build the kernel library in the foreground if it is missing (waiting for a build already
    running elsewhere), and load it. None on failure: the reason goes to stderr and next to the
    library, so that no background build retries it."""
    if _state["loaded"]:
        return _state["loaded"]
    path = kernel_path()
    if path is None:
        return _give_up("no C++ compiler found (set CXX)")
    base, folder = path[:-3], os.path.dirname(path)
    try:
        os.makedirs(folder, exist_ok=True)
        lock = open(base + ".lock", "a")  # noqa: SIM115 (held for the build)
    except OSError as e:
        return _give_up(f"cannot write {folder} ({e.strerror})")
    with lock:
        if not _try_lock(lock):
            _say("waiting for the fused CPU gradient kernel that another process is building")
            fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(path):
            err = _compile(path)
            if err:
                _write(base + ".failed", err)
                return _give_up(err)
        with contextlib.suppress(OSError):
            os.unlink(base + ".failed")
        if _load(path) is None:  # built but unusable: record it, and let a retry rebuild
            _write(base + ".failed", f"cannot load {path}")
            with contextlib.suppress(OSError):
                os.unlink(path)
    return _state["loaded"]


def _compile(path: str) -> str | None:
    """Compile the kernel into ``path`` (atomically); the error, or None."""
    cxx = _compiler()
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".so", dir=os.path.dirname(path))
    os.close(fd)
    cmd = [*cxx, *_flags(), "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp]
    _say(f"building the fused CPU gradient kernel for -march={march()} (once per machine; "
         "this can take minutes)")
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        err = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
    except (OSError, subprocess.SubprocessError) as e:
        err = str(e)
    seconds = time.perf_counter() - t
    _state["build_s"] += seconds
    if err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return f"{' '.join(cxx)} failed on {os.path.basename(SOURCE)}: {err}"
    os.replace(tmp, path)  # atomic: a reader sees no library or a whole one
    _say(f"built the fused CPU gradient kernel in {seconds:.0f} s: {path}")
    return None


def _load(path: str) -> str | None:
    try:
        lib = ctypes.CDLL(path)
        symbols = {target: getattr(lib, symbol) for target, symbol in TARGETS.items()}
    except (OSError, AttributeError) as e:
        return _give_up(f"cannot load {path} ({e})")
    for target, fn in symbols.items():
        jax.ffi.register_ffi_target(target, jax.ffi.pycapsule(fn), platform="cpu")
    _state["loaded"] = path
    return path


def start_build() -> bool:
    """Start building (and then measuring) the kernel in a detached process that outlives this
    one; at most once per process, not while another process builds it, and never with
    ``SWEEPNET_KERNEL_BUILD=0``. Returns whether it started one."""
    if _state["builder"] is not None or not _background_builds():
        return False
    path = kernel_path()
    if path is None:
        return False
    base = path[:-3]
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(base + ".lock", "a") as lock:
            if not _try_lock(lock):
                _state["builder"] = "elsewhere"
                return False
        log = open(base + ".log", "w")  # noqa: SIM115 (the child's)
    except OSError as e:
        _give_up(f"cannot write {os.path.dirname(path)} ({e.strerror})")
        return False
    with log:
        # kept in _state: a Popen dropped while its child runs warns (ResourceWarning)
        _state["builder"] = subprocess.Popen(
            [sys.executable, "-m", "sweepnet.bench.suite", json.dumps({"kernel": True})],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    _say("building the fused CPU gradient kernel in the background (once per machine; "
         f"log: {base}.log); until it is built and measured, sweeps use XLA's gradient")
    return True


def _try_lock(f) -> bool:
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def verdict() -> dict | None:
    """The measured verdict kept beside this machine's kernel (see ``bench.measure_gradients``):
    ``{"shapes": [{"width", "depth", "activation", "fused_s", "xla_s"}, ...], ...}``; None when
    nothing is measured yet."""
    path = kernel_path()
    text = _read(path[:-3] + ".json") if path else None
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def save_verdict(result: dict) -> str:
    """Keep ``result`` (see :func:`verdict`) as this machine's verdict; returns its path."""
    path = kernel_path()[:-3] + ".json"
    _write(path, json.dumps(result, indent=1))
    _state["decisions"].clear()
    return path


def build_seconds() -> float:
    """Seconds this process spent building the kernel in the foreground (not compiling)."""
    return _state["build_s"]


def reset() -> None:
    """Forget this process's view (tests): loaded library, decisions, warnings, builder."""
    _state.update(loaded=None, builder=None, build_s=0.0, decisions={}, said=set())
    _library_key.cache_clear()


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _write(path: str, text: str) -> None:
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)


def _say(message: str) -> None:
    print(f"sweepnet: {message}", file=sys.stderr, flush=True)


def _give_up(why: str) -> None:
    if why not in _state["said"]:  # once per process
        _state["said"].add(why)
        _say(f"warning: fused CPU gradient unavailable, using XLA's: {why}")
    return None


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
