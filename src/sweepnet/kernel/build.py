"""The fused kernel's build: compile ``fused_grad.cc`` on this machine, keep it, load it.

The source (``fused_grad.cc`` and the headers beside it) is compiled with the system's C++
compiler against the XLA FFI headers shipped in jaxlib (``jax.ffi.include_dir()``), for the
host CPU (``-march=native``, or ``$SWEEPNET_MARCH``: ``x86-64-v3`` shows what an AVX2 machine
gets), and kept in ``$SWEEPNET_CACHE/kernels`` (else ``~/.cache/sweepnet/kernels``) under a
hash of the sources, compiler, flags, jaxlib and CPU. Why not a build step at install: a wheel
built for one CPU would leave AVX-512 unused on another, and the FFI headers must match the
jaxlib that loads the library; the persistent program cache keeps a similar per-host key.

Nobody waits for that build (a minute on a small machine, four on a slow one). The first
sweep that could use the kernel starts it in a detached background process
(``python -m sweepnet.bench.suite '{"kernel": true}'``: :func:`start_build`) and trains with
XLA's gradient meanwhile; ``sweepnet devices --build`` builds in the foreground
(:func:`build`). Importing sweepnet builds nothing. ``SWEEPNET_KERNEL_BUILD=0`` never starts a
background build. A failed build is recorded beside the library and not retried in the
background.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

import jax

from sweepnet.core.host import cache_root, host_cpu, jaxlib_version, new_file
from sweepnet.kernel import ops

FOLDER = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.join(FOLDER, "fused_grad.cc")
FLAGS = ("-O3", "-march=native", "-std=c++17", "-ffp-contract=fast", "-fPIC", "-shared", "-w")
# the values of an environment switch that turn it off / on
OFF, ON = ("0", "false", "no", "off"), ("1", "true", "yes", "on")
# this process's view: the loaded library, the background builder it started, foreground build
# seconds, one answer of `choice.use` per bucket shape, and the warnings already given
STATE: dict = {"loaded": None, "builder": None, "build_s": 0.0, "decisions": {}, "said": set()}


def headers() -> list[str]:
    """The headers :data:`SOURCE` includes: every ``.h`` beside it (all part of the key)."""
    return sorted(glob.glob(os.path.join(FOLDER, "*.h")))


def march() -> str:
    """The ``-march`` the kernel is built for: ``$SWEEPNET_MARCH``, else ``native``."""
    return os.environ.get("SWEEPNET_MARCH", "").strip() or "native"


def flags(target: str | None = None) -> tuple[str, ...]:
    """:data:`FLAGS` for ``-march=target`` (default :func:`march`)."""
    target = target or march()
    return tuple(f"-march={target}" if f.startswith("-march=") else f for f in FLAGS)


def compiler() -> list[str] | None:
    """The C++ compiler's command: ``$CXX``, else ``c++``, ``g++`` or ``clang++``; None if none."""
    cxx = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which(
        "clang++")
    return shlex.split(cxx) if cxx else None


@functools.lru_cache(maxsize=8)
def library_key(cxx: tuple[str, ...], flags: tuple[str, ...]) -> str:
    """The library's hash: the source and its headers, compiler, flags, jaxlib and CPU."""
    try:
        version = subprocess.run([*cxx, "--version"], capture_output=True, text=True,
                                 timeout=60).stdout
    except (OSError, subprocess.SubprocessError):
        version = ""
    h = hashlib.sha256()
    with open(SOURCE, "rb") as f:
        h.update(f.read())
    for path in headers():
        with open(path, "rb") as f:
            h.update(b"\0" + os.path.basename(path).encode() + b"\0" + f.read())
    for part in (version, " ".join(flags), jaxlib_version(), host_cpu()):
        h.update(b"\0" + part.encode())
    return h.hexdigest()[:24]


def kernel_path() -> str | None:
    """Where this machine's kernel library is (or would be) kept; None without a compiler.
    Its verdict (``.json``), build log (``.log``) and failure (``.failed``) sit beside it."""
    cxx = compiler()
    if cxx is None:
        return None
    key = library_key(tuple(cxx), flags())
    return os.path.join(cache_root(), "kernels", f"fused_grad-{key}.so")


def library(wait: bool = False, start: bool = True) -> str | None:
    """Path of the kernel library, loaded and registered with XLA; else None (the gradient is
    XLA's). Never waits for a build unless ``wait``: a missing library is built in a background
    process (``start``) for later programs and runs. A failed build is not retried until
    :func:`build` is called (``sweepnet devices --build``)."""
    if STATE["loaded"]:
        return STATE["loaded"]
    path = kernel_path()
    if path is None:
        return _give_up("no C++ compiler found (set CXX)")
    if not os.path.exists(path):
        if wait:
            return build()
        failed = read(path[:-3] + ".failed")
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
    if STATE["loaded"]:
        return STATE["loaded"]
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
                write(base + ".failed", err)
                return _give_up(err)
        with contextlib.suppress(OSError):
            os.unlink(base + ".failed")
        if _load(path) is None:  # built but unusable: record it, and let a retry rebuild
            write(base + ".failed", f"cannot load {path}")
            with contextlib.suppress(OSError):
                os.unlink(path)
    return STATE["loaded"]


def _compile(path: str) -> str | None:
    """Compile the kernel into ``path`` (atomically); the error, or None. The headers are found
    beside :data:`SOURCE` (quoted includes)."""
    cxx = compiler()
    tmp = new_file(os.path.dirname(path), ".tmp-", ".so")  # the umask's mode: a group's cache
    cmd = [*cxx, *flags(), "-I", jax.ffi.include_dir(), SOURCE, "-o", tmp]
    _say(f"building the fused CPU gradient kernel for -march={march()} (once per machine; "
         "this can take minutes)")
    t = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        err = None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["?"])[-1]
    except (OSError, subprocess.SubprocessError) as e:
        err = str(e)
    seconds = time.perf_counter() - t
    STATE["build_s"] += seconds
    if err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return f"{' '.join(cxx)} failed on {os.path.basename(SOURCE)}: {err}"
    os.replace(tmp, path)  # atomic: a reader sees no library or a whole one
    _say(f"built the fused CPU gradient kernel in {seconds:.0f} s: {path}")
    return None


def _load(path: str) -> str | None:
    try:
        handlers = ops.symbols(path)
    except (OSError, AttributeError) as e:
        return _give_up(f"cannot load {path} ({e})")
    ops.register(handlers)
    STATE["loaded"] = path
    return path


def background_builds() -> bool:
    """False with ``SWEEPNET_KERNEL_BUILD=0`` (the tests): no build starts in the background."""
    return os.environ.get("SWEEPNET_KERNEL_BUILD", "").strip().lower() not in OFF


def start_build() -> bool:
    """Start building (and then measuring) the kernel in a detached process that outlives this
    one; at most once per process, not while another process builds it, and never with
    ``SWEEPNET_KERNEL_BUILD=0``. Returns whether it started one."""
    if STATE["builder"] is not None or not background_builds():
        return False
    path = kernel_path()
    if path is None:
        return False
    base = path[:-3]
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(base + ".lock", "a") as lock:
            if not _try_lock(lock):
                STATE["builder"] = "elsewhere"
                return False
        log = open(base + ".log", "w")  # noqa: SIM115 (the child's)
    except OSError as e:
        _give_up(f"cannot write {os.path.dirname(path)} ({e.strerror})")
        return False
    with log:
        # kept in STATE: a Popen dropped while its child runs warns (ResourceWarning)
        STATE["builder"] = subprocess.Popen(
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


def read(path: str) -> str | None:
    """The text of a file beside the library (stripped); None if it cannot be read."""
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def write(path: str, text: str) -> None:
    """Write ``text`` to a file beside the library, atomically; silent if it cannot."""
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)


def _say(message: str) -> None:
    print(f"sweepnet: {message}", file=sys.stderr, flush=True)


def _give_up(why: str) -> None:
    if why not in STATE["said"]:  # once per process
        STATE["said"].add(why)
        _say(f"warning: fused CPU gradient unavailable, using XLA's: {why}")
    return None
