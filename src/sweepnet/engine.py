"""Run a plan: jit + vmap each bucket, shard the network axis, chunk, write, resume.

The engine is the only module that decides on ``jit``, ``vmap`` and sharding. One call of a
compiled bucket trains ``bucket.chunk`` networks on one data group; the next call is
dispatched before the previous one's results are written, so disk I/O overlaps compute.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import sys
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sweepnet import data as data_lib
from sweepnet import plan as plan_lib
from sweepnet import results
from sweepnet.errors import SweepnetError
from sweepnet.spec import Spec
from sweepnet.separation import make_probe
from sweepnet.train import Data, Hyper, Static, make_data, make_train

__version__ = "0.1.0"


def enable_compilation_cache(path: str | None = None) -> str:
    """Turn on JAX's persistent compilation cache (re-runs skip most compile time)."""
    path = path or os.environ.get("SWEEPNET_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "sweepnet", "xla")
    os.makedirs(path, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", path)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


def mesh(devices: Sequence[jax.Device] | None = None) -> jax.sharding.Mesh:
    devices = list(devices or jax.local_devices())
    return jax.sharding.Mesh(np.asarray(devices), ("nets",))


@functools.lru_cache(maxsize=64)
def bucket_fn(static: Static, m: jax.sharding.Mesh):
    """``jit(vmap(train))`` with the network axis sharded over the mesh, data replicated.

    Signature: ``(seeds (N,) uint32, hyper: Hyper of (N,), data: Data) -> Output of (N, ...)``.
    """
    train = make_train(static)
    per_net = lambda seed, hyper, data: train(jax.random.key(seed), hyper, data)
    nets, repl = NamedSharding(m, P("nets")), NamedSharding(m, P())
    return jax.jit(jax.vmap(per_net, in_axes=(0, 0, None)),
                   in_shardings=(nets, nets, repl), out_shardings=nets)


def run_seed(run_id: str) -> int:
    """The PRNG seed of a run: the first 32 bits of its configuration hash."""
    return int(run_id[:8], 16)


def chunk_inputs(runs: Sequence[plan_lib.Run], size: int) -> tuple[np.ndarray, Hyper]:
    """Per-network inputs of one call, padded to ``size`` lanes by repeating the first run."""
    lanes = list(runs) + [runs[0]] * (size - len(runs))
    seeds = np.asarray([run_seed(r.run_id) for r in lanes], np.uint32)
    hyper = Hyper(width=np.asarray([r.config["width"] for r in lanes], np.int32),
                  learning_rate=np.asarray([r.config["learning_rate"] for r in lanes], np.float32),
                  init_scale=np.asarray([r.config["init_scale"] for r in lanes], np.float32))
    return seeds, hyper


def load_data(static: Static, run: plan_lib.Run) -> Data:
    c = run.config
    split = data_lib.make_split(c["dataset"], run.data_params(), c["n_train"], c["n_test"],
                                c["noise"], c["data_seed"])
    probe = make_probe(c["dataset"], run.data_params(), static.in_dim)  # sweepnet.separation
    return make_data(static, *split, probe=probe)


def shard_runs(runs: Sequence[plan_lib.Run], plan: plan_lib.Plan, index: int, count: int
               ) -> list[plan_lib.Run]:
    """Shard ``index`` of ``count``: deal runs round-robin in (bucket family, width, grid) order.

    The order depends on the spec only (not on devices), so shards on different machines
    split the grid into disjoint, balanced parts.
    """
    family = {}
    for r in plan.runs:
        family.setdefault(plan_lib._static(r.config, 0), len(family))
    order = sorted(plan.runs, key=lambda r: (family[plan_lib._static(r.config, 0)],
                                             r.config["width"], r.index))
    chosen = {r.run_id for r in order[index::count]}
    return [r for r in runs if r.run_id in chosen]


@dataclasses.dataclass
class Summary:
    total: int  # networks in the grid
    skipped: int  # already finished before this call (resume)
    trained: int
    buckets: int
    compiles: int
    compile_s: float
    wall_s: float

    def __str__(self):
        rate = self.trained / max(self.wall_s, 1e-9)
        return (f"trained {self.trained} networks ({self.skipped} already done, {self.total} "
                f"in grid) in {self.wall_s:.1f} s: {self.buckets} buckets, {self.compiles} "
                f"compiles ({self.compile_s:.1f} s), {rate:.0f} networks/s")


def default_out(spec: Spec) -> str:
    return os.path.join("results", spec.name)


def run_sweep(spec: Spec, out: str | None = None, *, shard: tuple[int, int] = (0, 1),
              fresh: bool = False, max_memory: int | None = None, progress: bool = True,
              cache: bool = True) -> Summary:
    """Train every unfinished run of ``spec`` (or of one shard) into results folder ``out``."""
    t0 = time.perf_counter()
    out = out or default_out(spec)
    index, count = shard
    tag = f"s{index}of{count}"
    store = results.Store.open(out, spec, fresh=fresh, tag=tag)
    if cache:
        enable_compilation_cache()
    m = mesh()
    n_dev = m.devices.size
    full = plan_lib.make_plan(spec, n_dev, max_memory)
    done = store.done_ids()
    mine = shard_runs(full.runs, full, index, count) if count > 1 else full.runs
    pending = [r for r in mine if r.run_id not in done]
    plan = plan_lib.make_plan(spec, n_dev, max_memory, runs=pending)
    provenance = {"sweepnet_version": __version__, "jax_version": jax.__version__,
                  "backend": jax.default_backend(), "n_devices": n_dev}
    store.update_manifest(
        sweep=spec.name, spec_fingerprint=spec.fingerprint(), versions={
            "sweepnet": __version__, "jax": jax.__version__, "python": sys.version.split()[0]},
        devices=[str(d) for d in m.devices.flat], backend=jax.default_backend(),
        total_runs=len(full.runs), shards={tag: {"status": "running", "pending": len(pending)}})

    bar = _progress(len(pending), progress)
    compiles, compile_s = 0, 0.0
    for bucket in plan.buckets:
        tb = time.perf_counter()
        fn = bucket_fn(bucket.static, m)
        compiled = None
        inflight = None
        for group in bucket.groups().values():
            data = jax.device_put(load_data(bucket.static, group[0]), NamedSharding(m, P()))
            for start in range(0, len(group), bucket.chunk):
                runs = group[start : start + bucket.chunk]
                seeds, hyper = chunk_inputs(runs, bucket.chunk)
                if compiled is None:
                    tc = time.perf_counter()
                    compiled = fn.lower(seeds, hyper, data).compile()
                    compiles, compile_s = compiles + 1, compile_s + time.perf_counter() - tc
                result = compiled(seeds, hyper, data)  # async dispatch
                if inflight is not None:
                    _write(store, bucket, *inflight, spec, provenance, tag, bar)
                inflight = (runs, result)
        if inflight is not None:
            _write(store, bucket, *inflight, spec, provenance, tag, bar)
        store.update_manifest(buckets={f"{tag}-b{bucket.index:03d}": {
            "static": dataclasses.asdict(bucket.static), "networks": len(bucket.runs),
            "chunk": bucket.chunk, "seconds": round(time.perf_counter() - tb, 3)}})
    bar.close()
    finished = len(store.done_ids() & {r.run_id for r in mine})
    store.update_manifest(shards={tag: {"status": "complete" if finished == len(mine)
                                        else "incomplete", "pending": len(mine) - finished}})
    all_done = len(store.done_ids() & {r.run_id for r in full.runs}) == len(full.runs)
    store.update_manifest(status="complete" if all_done else "partial")
    return Summary(total=len(full.runs), skipped=len(mine) - len(pending), trained=len(pending),
                   buckets=len(plan.buckets), compiles=compiles, compile_s=compile_s,
                   wall_s=time.perf_counter() - t0)


def _write(store, bucket, runs, result, spec, provenance, tag, bar):
    out = jax.device_get(result)
    part = hashlib.sha256("".join(r.run_id for r in runs).encode()).hexdigest()[:12]
    name = f"{tag}-b{bucket.index:03d}-{part}"
    frames = results.to_frames(bucket.static, runs, out, spec,
                               {**provenance, "bucket": bucket.index, "part": name,
                                "bucket_width": bucket.static.width})
    store.write_part(name, *frames)
    bar.update(len(runs))


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="net", disable=not enabled or total == 0, file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)


def train_alone(spec_config: dict, run_id: str, static: Static) -> object:
    """Train one network on its own, unpadded and unsharded (the reference for invariance tests).

    ``static`` must have ``width == spec_config['width']``.
    """
    if static.width != spec_config["width"]:
        raise SweepnetError("train_alone: static width must equal the run's width")
    run = plan_lib.Run(0, run_id, spec_config)
    seeds, hyper = chunk_inputs([run], 1)
    train = make_train(static)
    data = load_data(static, run)
    one = lambda s, h: train(jax.random.key(s), h, data)
    return jax.device_get(jax.jit(one)(seeds[0], jax.tree.map(lambda a: jnp.asarray(a[0]), hyper)))
