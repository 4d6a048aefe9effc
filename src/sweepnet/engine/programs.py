"""Compiled bucket programs: built for a mesh of devices, and kept on disk so that a re-run
neither traces nor compiles.

:func:`bucket_fn` is a bucket's program: ``jit(vmap(train))`` with the network axis sharded over
the mesh. It is the only place that decides on ``jit``, ``vmap`` and sharding.

JAX's persistent compilation cache (``enable_compilation_cache``) skips XLA's compile on a
re-run, but every bucket is still traced and lowered to find its cache key: about 1 s a bucket
on a 2-core CPU, a fifth of a cold compile. This module stores the compiled executable itself
(``jax.experimental.serialize_executable``), keyed by everything that shapes the program
without tracing it: the bucket's :class:`~sweepnet.train.step.Static`, the shapes, dtypes and
shardings of the arguments, the devices, the JAX and sweepnet versions, ``XLA_FLAGS``, and a
hash of sweepnet's own source files (so an edited checkout never loads a stale program).
A program that cannot be stored or loaded is simply compiled.

Files: ``$SWEEPNET_CACHE/programs/<key>.pkl`` (else ``~/.cache/sweepnet/programs``), and XLA's
in ``xla/`` beside it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import pickle
import threading
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import serialize_executable
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sweepnet.core.host import (
    CPU_COMPILER_OPTIONS,
    __version__,
    cache_root,
    host_cpu,
    jaxlib_version,
    new_file,
)
from sweepnet.train.segments import make_segments
from sweepnet.train.step import Static, make_train

MEMORY_SHARE = 0.6  # of an accelerator's memory a call may use (XLA needs room of its own)


def xla_cache() -> str:
    """``xla/`` of the cache folder (``$SWEEPNET_CACHE``, else ``~/.cache/sweepnet``): JAX's
    persistent compilation cache, thousands of ``jit_*`` files beside ``programs/``."""
    return os.path.join(cache_root(), "xla")


def enable_compilation_cache(path: str | None = None) -> str | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`xla_cache`):
    re-runs skip most compile time. None, and no cache, where the folder cannot be made (an
    unusable cache costs the cache, never the sweep)."""
    path = path or xla_cache()
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    devices = list(devices or jax.local_devices())
    return jax.sharding.Mesh(np.asarray(devices), ("nets",))


def platform(m: jax.sharding.Mesh) -> str:
    """``"cpu"``, ``"gpu"`` or ``"tpu"``: the platform of the mesh's devices."""
    return next(iter(m.devices.flat)).platform


def device_memory(m: jax.sharding.Mesh) -> int | None:
    """Bytes one call may use on the mesh's accelerators (``memory_stats()``'s limit times
    :data:`MEMORY_SHARE`, summed over devices); None where the backend does not say (then
    ``--max-memory`` or the planner's default holds)."""
    total = 0
    for d in m.devices.flat:
        try:
            stats = d.memory_stats() or {}
        except Exception:  # a backend without memory statistics
            return None
        if not stats.get("bytes_limit"):
            return None
        total += int(stats["bytes_limit"] * MEMORY_SHARE) - int(stats.get("bytes_in_use", 0))
    return max(total, 1)


def compiler_options(m: jax.sharding.Mesh) -> dict | None:
    """XLA options for a bucket's program on the mesh's platform (None: XLA's defaults)."""
    cpu = all(d.platform == "cpu" for d in m.devices.flat)
    return dict(CPU_COMPILER_OPTIONS) if cpu else None


@functools.lru_cache(maxsize=64)
def bucket_fn(static: Static, m: jax.sharding.Mesh, fused: bool = False, sub_batch: int = 0,
              target: str | None = None):
    """``jit(vmap(train))`` with the network axis sharded over the mesh and data replicated.

    Signature: ``(seeds (N,) uint32, hyper: Hyper of (N,), data: Data) -> Output of (N, ...)``.
    ``fused``: the step's gradient is the fused CPU kernel's. ``sub_batch`` (the plan's): on
    CPU each device trains its share this many networks at a time; 0 (a GPU or TPU) makes the
    whole share one vmapped batch, so every layer's dot runs over all of the call's networks at
    once. ``target``: lay the program out for this platform instead of the mesh's
    (``jax.export`` then lowers a GPU program on a CPU-only machine).
    """
    train = make_train(static, fused=fused)
    per_net = lambda seed, hyper, data: train(jax.random.key(seed), hyper, data)
    return sharded(per_net, m, 2, sub_batch, target)


def sharded(per_net, m: jax.sharding.Mesh, n_args: int, sub_batch: int = 0,
            target: str | None = None, gather: bool = False):
    """``jit`` of ``per_net(*per_network_args, data)`` over a leading network axis of its
    first ``n_args`` arguments (pytrees), sharded over the mesh, the last argument (the data)
    replicated: vmapped, or on CPU with ``sub_batch`` mapped ``sub_batch`` networks at a time
    (see :func:`bucket_fn`). ``gather``: the program takes ``lanes (F,) int32`` before the
    data and runs on those networks of its arguments only (gathered across devices)."""
    nets, repl = NamedSharding(m, P("nets")), NamedSharding(m, P())
    if (target or platform(m)) == "cpu" and sub_batch:

        def local(*args):
            # each device trains its networks `sub_batch` at a time (vmapped), so that their
            # working set stays in cache: on CPU this was up to 2x faster than all of the chunk
            # at once (a divisor of the device's share: a remainder batch would be compiled a
            # second time)
            *mine, data = args
            n = jax.tree.leaves(mine[0])[0].shape[0]
            size = max(d for d in range(1, min(sub_batch, n) + 1) if n % d == 0)
            return jax.lax.map(lambda sh: per_net(*sh, data), tuple(mine), batch_size=size)
    else:
        def local(*args):
            return jax.vmap(per_net, in_axes=(0,) * n_args + (None,))(*args)

    # check_vma off: train() is written for one network and knows nothing of the mesh axis
    fn = jax.shard_map(local, mesh=m, in_specs=(P("nets"),) * n_args + (P(),),
                       out_specs=P("nets"), check_vma=False)
    shardings = (nets,) * n_args + (repl,)
    if gather:
        on_lanes = fn

        def fn(*args):
            *mine, lanes, data = args
            return on_lanes(*jax.tree.map(lambda a: a[lanes], tuple(mine)), data)

        shardings = (nets,) * n_args + (repl, repl)
    return jax.jit(fn, in_shardings=shardings, out_shardings=nets,
                   compiler_options=compiler_options(m))


class SegmentPrograms(NamedTuple):
    """:func:`segment_fns`'s programs (``start``: ``(seeds, hyper, data) -> State``, traced for
    the state's shapes and never compiled by the engine)."""

    start: Any
    advance: Any
    finish: Any


@functools.lru_cache(maxsize=64)
def segment_fns(static: Static, m: jax.sharding.Mesh, fused: bool = False, sub_batch: int = 0,
                blocks: int = 1, threshold: float | None = None, target: str | None = None
                ) -> SegmentPrograms:
    """A bucket's programs for training in segments (:mod:`sweepnet.engine.segments`), each
    sharded as :func:`bucket_fn` is, one compile per ``static`` and segment length:

    - ``start(seeds, hyper, data) -> State``: every lane starts its network;
    - ``advance(state, seeds (N,), hyper, fresh (N,) bool, park (N,) bool, data) -> (State,
      Evals)``: first the lanes ``fresh`` start their network (seeded as :func:`bucket_fn`'s),
      the lanes ``park`` are marked done (idle: they hold no network), the others keep
      ``state``; then ``blocks`` eval blocks a lane (one call a round: on CPU a dispatch
      costs about a millisecond);
    - ``finish(state, hyper, lanes (F,) int32, data) -> Output`` of ``F`` lanes (gathered
      across the devices first: only retired networks pay for their separation metrics).

    ``threshold``: :func:`sweepnet.train.segments.make_segments`'s (``train.stop``).
    """
    seg = make_segments(static, fused=fused, threshold=threshold)
    start = lambda seed, hyper, data: seg.init(jax.random.key(seed), hyper, data)

    def advance(state, seed, hyper, fresh, park, data):
        new = start(seed, hyper, data)
        kept = jax.tree.map(lambda a, b: jnp.where(fresh, a, b), new, state)
        return seg.advance(kept._replace(done=kept.done | park), hyper, data, blocks)

    return SegmentPrograms(sharded(start, m, 2, sub_batch, target),
                           sharded(advance, m, 5, sub_batch, target),
                           sharded(seg.finish, m, 2, sub_batch, target, gather=True))


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
        compiled_here[key] = False
    elif _BACKEND_COMPILE in events:
        compiled_here[key] = True
    if compiled_here.get(key, False):
        _store(path, compiled)
    return compiled, False


_XLA_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_BACKEND_COMPILE = "/jax/core/compile/backend_compile_duration"
compiled_here: dict[str, bool] = {}  # program key -> XLA compiled it (not loaded it) here


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
        tmp = new_file(os.path.dirname(path), ".tmp-")  # the umask's mode: a group's cache
    except OSError:  # a read-only or unusable cache folder: run without the cache
        return
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)  # atomic: concurrent shards may store the same program
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
