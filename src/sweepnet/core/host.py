"""This machine and this build: sweepnet's version, its cache folder, fingerprints of the
CPU and jaxlib that compiled code (kernels, programs) is valid for, and the new files that
sweepnet writes (with the umask's mode, so that a group can share a folder).

The bottom of the package: it imports nothing of sweepnet, so every module may use it.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import os
import platform
import secrets

__version__ = "0.7.0"

# XLA options for sweepnet's programs on CPU: LLVM at -O1 instead of XLA's default -O2. Bucket
# compiles took 15-25% less time and the trained programs ran as fast (measured at (3, 2),
# (8, 4) and (16, 4); README); a dataset's draw programs compiled in 30% less time (disk_annulus
# 1.15 -> 0.84 s for its two) and drew the same points bit for bit (tests/test_data.py).
CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 1}

# and for the data's draw programs (data.py), whose run time is nil: XLA's older loop emitters
# on top, which compile them faster still (a whole draw: disk_annulus 1.36 -> 1.08 s,
# naitzat_d1 1.95 -> 1.40 s) and drew every generated dataset's points bit for bit; for the
# bucket programs they cost run time (README, 0.5.3)
DRAW_COMPILER_OPTIONS = {**CPU_COMPILER_OPTIONS, "xla_cpu_use_fusion_emitters": False}


def cache_root() -> str:
    """``$SWEEPNET_CACHE``, else ``~/.cache/sweepnet``: where sweepnet keeps its caches."""
    return os.environ.get("SWEEPNET_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "sweepnet")


def new_file(folder: str, prefix: str, suffix: str = "") -> str:
    """Create an empty file ``folder/<prefix><random><suffix>`` that nobody else has, and
    return its path: a temporary file to fill and rename onto its real name. Its mode is the
    umask's (0644, 0664), not ``tempfile.mkstemp``'s 0600, so that a results folder or cache on
    a shared disk stays readable by the group."""
    while True:
        path = os.path.join(folder, f"{prefix}{secrets.token_hex(4)}{suffix}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            return path
        except FileExistsError:
            continue


def jaxlib_version() -> str:
    try:
        return importlib.metadata.version("jaxlib")
    except importlib.metadata.PackageNotFoundError:
        return ""


@functools.lru_cache(maxsize=1)
def host_cpu() -> str:
    """The host CPU's model and feature flags (a shared cache may serve different machines)."""
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f if ln.startswith(("model name", "flags"))]
        return hashlib.sha256("".join(sorted(set(lines))).encode()).hexdigest()[:16]
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
