"""Many processes, one sweep: ``jax.distributed``, each process's share, and who writes what.

Under ``jax.distributed`` every process trains its own round-robin share of the grid on its
local devices (:func:`share`); process 0 alone opens (and may wipe) the results folder and
writes the manifest, gathering the other processes' outcomes through the coordination
service's key-value store. :class:`PeerWatch` ends a process whose peer was lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import threading
import time

import jax
from jax._src import distributed

from sweepnet.core.errors import SweepnetError
from sweepnet.engine import stop
from sweepnet.store import results
from sweepnet.sweep.spec import Spec


def init_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> tuple[int, int]:
    """Join a multi-process JAX job; returns ``(process_index, process_count)``.

    With no arguments, ``jax.distributed.initialize`` detects Slurm, Open MPI and Cloud TPU
    itself. Must run before anything touches a JAX device.
    """
    if coordinator is not None and not re.fullmatch(r"[^\s:]+:\d{1,5}", coordinator):
        raise SweepnetError(f"--coordinator {coordinator!r}: expected HOST:PORT")
    if num_processes is not None and num_processes < 1:
        raise SweepnetError(f"--num-processes {num_processes}: must be at least 1")
    if process_id is not None and not 0 <= process_id < (num_processes or process_id + 1):
        raise SweepnetError(f"--process-id {process_id}: must be in 0..num_processes-1")
    try:
        jax.distributed.initialize(coordinator, num_processes, process_id)
    except (ValueError, TypeError) as e:  # nothing detected and nothing given
        raise SweepnetError(
            f"--distributed: {str(e).splitlines()[0]} (no Slurm, Open MPI or TPU environment "
            "found; pass --coordinator HOST:PORT --num-processes N --process-id I)"
        ) from None
    except jax.errors.JaxRuntimeError as e:  # coordinator unreachable, timed out, ...
        raise SweepnetError(f"--distributed: cannot join ({str(e).splitlines()[0]})") from None
    return jax.process_index(), jax.process_count()


def coordination_client():
    """The coordination-service client of ``jax.distributed`` (key-value store, barriers)."""
    return distributed.global_state.client


def process_share(shard: tuple[int, int], process: int | None = None) -> tuple[int, int]:
    """A process's slice of the grid: shard ``I/N`` of a job array, then process ``p/P``.

    ``order[I::N][p::P] == order[I + N*p :: N*P]``, so the slice is itself a round-robin shard.
    """
    index, count = shard
    p = jax.process_index() if process is None else process
    return index + count * p, count * jax.process_count()


def share_tag(share: tuple[int, int]) -> str:
    """``s{index}of{count}``: the name a share's parts and manifest entries carry."""
    return f"s{share[0]}of{share[1]}"


HEARTBEAT_S = 3.0  # how often each process of a jax.distributed sweep says it is alive
PEER_TIMEOUT_S = 30.0  # a peer silent this long is lost (jax's own service aborts after 100 s)


def peer_timeout() -> float:
    """Seconds of silence after which a peer is lost: ``SWEEPNET_PEER_TIMEOUT`` (at least two
    heartbeats), else :data:`PEER_TIMEOUT_S`."""
    value = os.environ.get("SWEEPNET_PEER_TIMEOUT", "").strip()
    try:
        return max(2 * HEARTBEAT_S, float(value)) if value else PEER_TIMEOUT_S
    except ValueError:
        raise SweepnetError(f"SWEEPNET_PEER_TIMEOUT={value!r}: expected seconds") from None


class PeerWatch:
    """Under ``jax.distributed``: a thread that beats for this process in the coordination
    service's key-value store and watches the others' beats.

    A peer that has stopped beating (killed, its host gone) ends this process within about
    :func:`peer_timeout` with a one-line error that names it and exit code 2. Every finished
    part is already on disk (written atomically), so running the same command again resumes.
    Without this, process 0 waited for a dead peer's result until jax's service aborted it.
    """

    def __init__(self):
        self.client = coordination_client()
        self.me, self.n = jax.process_index(), jax.process_count()
        self.timeout = peer_timeout()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="sweepnet-peers", daemon=True)

    def __enter__(self):
        self._beat("0")
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()
        self._beat("done")  # finished: its silence from now on is no loss

    def _beat(self, value: str) -> None:
        with contextlib.suppress(Exception):
            self.client.key_value_set(f"sweepnet/alive/{self.me}", value, allow_overwrite=True)

    def _run(self) -> None:
        start = time.monotonic()
        seen = {p: (None, start) for p in range(self.n) if p != self.me}  # last beat, when
        beats = 0
        while not self.stop.wait(HEARTBEAT_S):
            beats += 1
            self._beat(str(beats))
            now = time.monotonic()
            for p, (last, at) in seen.items():
                try:
                    value = self.client.key_value_try_get(f"sweepnet/alive/{p}")
                except Exception:  # not yet written, or the service is gone with process 0
                    value = last
                if value != last:
                    seen[p] = (value, now)
                elif value != "done" and now - at > self.timeout:
                    print(f"sweepnet: error: process {p} of {self.n} was lost (no heartbeat for "
                          f"{now - at:.0f} s); the finished parts are kept, run the same command "
                          "again to resume", file=sys.stderr, flush=True)
                    os._exit(2)  # jax's shutdown would wait for the lost process


def leave() -> None:
    """Leave a ``jax.distributed`` job before ``os._exit`` (skipped, the coordination service
    would abort the peers when they shut down): its shutdown waits for every process, so it
    runs in a thread that a second signal stops."""
    if jax.process_count() > 1:
        stop.in_thread(jax.distributed.shutdown)


def open_store(out: str, spec: Spec, fresh: bool, tag: str, shared: bool) -> results.Store:
    """Open the results folder; under jax.distributed process 0 opens (and wipes) it first."""
    if jax.process_count() == 1:
        return results.Store.open(out, spec, fresh=fresh, tag=tag, shared=shared)
    client = coordination_client()
    if jax.process_index() == 0:
        try:
            store = results.Store.open(out, spec, fresh=fresh, tag=tag, shared=shared)
        except SweepnetError as e:
            client.key_value_set("sweepnet/open", f"error: {e}")
            raise
        client.key_value_set("sweepnet/open", "ok")
        return store
    answer = client.blocking_key_value_get("sweepnet/open", 600_000)
    if answer != "ok":
        raise SweepnetError(answer.removeprefix("error: "))
    return results.Store.open(out, spec, fresh=False, tag=tag, shared=shared)


def wait_for_key(client, key: str, timeout: float | None = None) -> str | None:
    """The value of ``key`` in the key-value store once a peer has set it (None after
    ``timeout`` seconds): polled, not a blocking get, so that Ctrl-C or SIGTERM stops the wait
    at once (a lost peer ends this process through :class:`PeerWatch`)."""
    end = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return client.key_value_try_get(key)
        except Exception:  # not set yet
            if end is not None and time.monotonic() > end:
                return None
            time.sleep(POLL_S)


POLL_S = 0.05  # how often process 0 looks for a peer's outcome
STOPPING_S = 1.0  # how long an interrupted process 0 waits for its peers' outcomes


def finish_manifest(store, full, shard, info, buckets, gather: bool = True) -> None:
    """Record this share's outcome; process 0 gathers every process's and writes the status.

    ``gather=False`` (this process was interrupted): process 0 records the outcomes its peers
    post within :data:`STOPPING_S` (a scheduler's SIGTERM reaches them all at once), and
    no more."""
    mine = share_tag(process_share(shard))
    if jax.process_count() > 1:
        client = coordination_client()
        if jax.process_index() != 0:
            client.key_value_set(f"sweepnet/done/{mine}", json.dumps({**info, "buckets": buckets}))
            return
        end = time.monotonic() + STOPPING_S
        for p in range(1, jax.process_count()):
            peer = share_tag(process_share(shard, p))
            left = None if gather else max(0.0, end - time.monotonic())
            got = wait_for_key(client, f"sweepnet/done/{peer}", left)
            if got is not None:
                got = json.loads(got)
                store.update_manifest(buckets=got.pop("buckets"), shards={peer: got})
    ids = {r.run_id for r in full.runs}
    # under the manifest lock: of two shards finishing at once, the later one sees both (a
    # share with runs pending is partial without a look at the parts); an adaptive sweep
    # (one share) is complete when its search is done, whatever of the grid it left untrained
    status = "complete" if info.get("search") == "done" else "partial" if info["pending"] else (
        lambda _: "complete" if len(store.done_ids() & ids) == len(ids) else "partial")
    store.update_manifest(shards={mine: info}, status=status)
