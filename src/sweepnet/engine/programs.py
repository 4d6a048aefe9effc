"""Compiled bucket programs, kept on disk so that a re-run neither traces nor compiles.

JAX's persistent compilation cache (``enable_compilation_cache``) skips XLA's compile on a
re-run, but every bucket is still traced and lowered to find its cache key: about 1 s a bucket
on a 2-core CPU, a fifth of a cold compile. This module stores the compiled executable itself
(``jax.experimental.serialize_executable``), keyed by everything that shapes the program
without tracing it: the bucket's :class:`~sweepnet.train.step.Static`, the shapes, dtypes and
shardings of the arguments, the devices, the JAX and sweepnet versions, ``XLA_FLAGS``, and a
hash of sweepnet's own source files (so an edited checkout never loads a stale program).
A program that cannot be stored or loaded is simply compiled.

Files: ``$SWEEPNET_CACHE/programs/<key>.pkl`` (else ``~/.cache/sweepnet/programs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import pickle
import tempfile
import threading

import jax
from jax.experimental import serialize_executable

from sweepnet.core.host import __version__, cache_root, host_cpu, jaxlib_version


@functools.lru_cache(maxsize=1)
def _source_hash() -> str:
    """Hash of every source file (``.py``, ``.cc``, ``.h``) of the installed sweepnet package."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    h = hashlib.sha256()
    for folder, dirs, names in sorted(os.walk(root)):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "__")))
        for name in sorted(names):
            if name.endswith((".py", ".cc", ".h")):
                path = os.path.join(folder, name)
                with open(path, "rb") as f:
                    h.update(os.path.relpath(path, root).encode() + b"\0" + f.read())
    return h.hexdigest()


def program_key(static, args, variant: dict | None = None) -> str:
    """Cache key of the bucket program for ``static`` called on ``args`` (placed jax arrays);
    ``variant``: anything else that chose how the program was built (e.g. the fused gradient)."""
    leaves, tree = jax.tree.flatten(args)
    devices = jax.local_devices()
    described = {
        "static": dataclasses.asdict(static),
        "tree": str(tree),
        "args": [(tuple(a.shape), str(a.dtype), str(a.sharding)) for a in leaves],
        "devices": [(d.id, d.platform, d.device_kind) for d in devices],
        "process": [jax.process_index(), jax.process_count()],
        "platform": devices[0].client.platform_version,
        "host": host_cpu(),  # a CPU executable uses the instruction set it was compiled for
        "versions": [__version__, jax.__version__, jaxlib_version()],
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
        "source": _source_hash(),
        "variant": variant or {},
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:32]


def compile_program(fn, static, args, cache: bool = True,
                    variant: dict | None = None) -> tuple[object, bool]:
    """``fn.lower(*args).compile()``, or the same executable loaded from disk.

    Returns ``(compiled, loaded)``; ``loaded`` is True when nothing was traced or compiled.
    With ``cache=False`` the program is always compiled and nothing is stored.
    """
    if not cache:
        return fn.lower(*args).compile(), False
    key = program_key(static, args, variant)
    path = os.path.join(cache_root(), "programs", f"{key}.pkl")
    compiled = _load(path, args)
    if compiled is not None:
        return compiled, True
    events, me = [], threading.get_ident()
    # listeners are process-wide: keep only the events of this thread's compile
    listen = lambda event, *_, **__: threading.get_ident() == me and events.append(event)
    jax.monitoring.register_event_listener(listen)
    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        compiled = fn.lower(*args).compile()
    finally:
        jax.monitoring.unregister_event_listener(listen)
        jax.monitoring.unregister_event_duration_listener(listen)
    # An executable that XLA took from its own persistent cache serializes without its kernels
    # ("Function ... not found" when the copy runs): store only what XLA compiled in this
    # process. A compile that emits neither event came from JAX's in-memory cache, and is
    # whatever the first compile of this key was.
    if _XLA_CACHE_HIT in events:
        _compiled_here[key] = False
    elif _BACKEND_COMPILE in events:
        _compiled_here[key] = True
    if _compiled_here.get(key, False):
        _store(path, compiled)
    return compiled, False


_XLA_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
_compiled_here: dict[str, bool] = {}  # program key -> XLA compiled it (not loaded it) here


def _load(path: str, args):
    try:
        with open(path, "rb") as f:
            payload, out_example = pickle.load(f)
        in_tree = jax.tree.structure((tuple(args), {}))
        out_tree = jax.tree.structure(out_example)
        return serialize_executable.deserialize_and_load(
            payload, in_tree, out_tree, execution_devices=jax.local_devices())
    except FileNotFoundError:
        return None
    except Exception:  # damaged, or written by an incompatible build: compile instead
        with contextlib.suppress(OSError):
            os.unlink(path)
        return None


def _store(path: str, compiled) -> None:
    try:
        payload, _, out_tree = serialize_executable.serialize(compiled)
        # the output structure is stored as an example tree (PyTreeDefs do not pickle)
        out_example = jax.tree.unflatten(out_tree, [0] * out_tree.num_leaves)
        data = pickle.dumps((payload, out_example))
    except Exception:  # this backend or program cannot be serialized: just don't cache it
        return
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    except OSError:  # a read-only or unusable cache folder: run without the cache
        return
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: concurrent shards may store the same program
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
