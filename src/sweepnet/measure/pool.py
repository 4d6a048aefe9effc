"""Betti numbers of many clouds at once: a process pool kept for a whole topology run, and
a cache that measures each distinct cloud once (:class:`Measurer`), used by
:func:`sweepnet.measure.topology.measure`.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import multiprocessing
from collections.abc import Callable, Sequence

import numpy as np

from sweepnet.measure.homology import Cloud, measure_clouds

BATCH_CLOUDS = 8  # clouds of one pool task


def _cloud_key(cloud: Cloud) -> tuple:
    """Clouds with the same points and settings have the same Betti numbers: one key."""
    k, eps, maxdim, x = cloud
    x = np.ascontiguousarray(x)
    return k, eps, maxdim, x.shape, x.dtype.str, hashlib.blake2b(x.tobytes(), digest_size=16
                                                                  ).digest()


class Measurer:
    """Betti numbers of clouds: in a process pool kept for the whole run (``workers > 1``) or
    in this process, each distinct cloud once (a cache of every cloud measured).

    The pool starts in a thread of its own: its server imports the homology (ripser imports
    scikit-learn: about 1.5 s) while this process plans and runs the first forward passes,
    instead of waiting for it."""

    def __init__(self, workers: int):
        self._starting = concurrent.futures.ThreadPoolExecutor(1) if workers > 1 else None
        self._started = self._starting.submit(_pool, workers) if self._starting else None
        self.cache: dict[tuple, tuple[int, int, int]] = {}

    @property
    def pool(self) -> concurrent.futures.ProcessPoolExecutor | None:
        """The process pool (once started), or None to measure in this process."""
        return self._started.result() if self._started else None

    def submit(self, clouds: Sequence[Cloud]
               ) -> Callable[[Callable[[int], None] | None], list[tuple[int, int, int]]]:
        """Start measuring ``clouds``; returns ``collect(progress)``, which waits for them and
        gives ``(b0, b1, b2)`` of each, in order, calling ``progress(n)`` as ``n`` are done."""
        keys = [_cloud_key(c) for c in clouds]
        todo: dict[tuple, Cloud] = {}
        for key, cloud in zip(keys, clouds, strict=True):
            if key not in self.cache and key not in todo:
                todo[key] = cloud
        order = list(todo)
        batches = [order[i : i + BATCH_CLOUDS] for i in range(0, len(order), BATCH_CLOUDS)]
        if self.pool is None:  # in this process, now
            futures = {}
            for batch in batches:
                f: concurrent.futures.Future = concurrent.futures.Future()
                f.set_result(measure_clouds([todo[k] for k in batch]))
                futures[f] = batch
        else:
            futures = {self.pool.submit(measure_clouds, [todo[k] for k in batch]): batch
                       for batch in batches}

        def collect(progress: Callable[[int], None] | None = None):
            for f in concurrent.futures.as_completed(futures):
                batch = futures[f]
                self.cache.update(zip(batch, f.result(), strict=True))
                if progress:
                    progress(len(batch))
            if progress:
                progress(len(keys) - len(order))  # repeats and clouds measured before
            return [self.cache[k] for k in keys]

        return collect

    def close(self, cancel: bool = False) -> None:
        """Stop the processes (at once, dropping what waits, with ``cancel``)."""
        if self._started is not None:
            started, self._started = self._started, None
            self._starting.shutdown()
            if started.exception() is None:
                started.result().shutdown(wait=not cancel, cancel_futures=cancel)


def _pool(workers: int) -> concurrent.futures.ProcessPoolExecutor:
    """``workers`` processes, started now (:class:`Measurer` calls this in a thread of its
    own, so that they get ready while the run plans).

    They are forked from a fresh server process that imported the homology once
    (``forkserver``): not forked from this process, whose JAX threads can deadlock a fork, nor
    spawned, which imports sweepnet (and JAX: seconds) again in every worker.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["sweepnet.measure.homology"])
    else:
        context = multiprocessing.get_context("spawn")
    pool = concurrent.futures.ProcessPoolExecutor(workers, mp_context=context)
    for _ in range(workers):
        pool.submit(int)
    return pool


def betti_of_clouds(clouds: Sequence[Cloud], workers: int = 1) -> list[tuple[int, int, int]]:
    """``(b0, b1, b2)`` of each ``(k, eps, maxdim, cloud (n, dim))``, over ``workers``
    processes (b2 is 0 where ``maxdim < 2``)."""
    m = Measurer(workers if len(clouds) > 1 else 1)
    try:
        return m.submit(clouds)(None)
    finally:
        m.close()


__all__ = ["BATCH_CLOUDS", "Measurer", "betti_of_clouds"]
