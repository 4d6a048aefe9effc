"""Ctrl-C and SIGTERM during a sweep: stop at once, keep every call that has finished.

A compiled call blocks the thread that waits for its result, and Python runs a signal handler
only between two bytecodes of the main thread, so a sweep that waited in ``np.asarray`` heard
Ctrl-C only when the call returned (5-15 s on a 2-core CPU, and that call's networks were then
lost). The engine waits with :func:`wait` instead (``is_ready`` and short sleeps), which the
handler's exception interrupts at once, and it compiles and dispatches calls in a thread of
their own (:func:`in_thread`): XLA may hold the thread that dispatches a call until the call
before it is done (on a CPU), and a cold compile takes 10-15 s.

:class:`Signals` holds SIGINT and SIGTERM for the length of a sweep: the first raises
:class:`~sweepnet.core.errors.Interrupted` in the main thread at once, except inside
:meth:`Signals.shield` (a part or the manifest being written: it is finished first, then
raised); a second one raises at once, shield or not (the user insists).
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time

import jax

from sweepnet.core.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
POLL_S = 0.01  # how often a wait looks at its call (a call lasts seconds: the cost is nil)


class Signals:
    """SIGINT and SIGTERM as :class:`Interrupted` (in the main thread only: elsewhere Python
    cannot install handlers, and the signals keep their defaults)."""

    def __init__(self):
        self.got: int | None = None  # the first signal
        self.raised = False  # Interrupted was raised: the sweep is stopping
        self.depth = 0  # nested shields
        self.previous: dict[int, object] = {}

    def __enter__(self) -> Signals:
        if threading.current_thread() is threading.main_thread():
            self.previous = {s: signal.signal(s, self.handle) for s in SIGNALS}
        return self

    def __exit__(self, *exc) -> None:
        for s, handler in self.previous.items():
            signal.signal(s, handler)

    def handle(self, signum: int, frame) -> None:
        del frame
        again = self.got is not None
        self.got = self.got or signum
        if again or not self.depth:
            self.stop()

    def stop(self) -> None:
        """Raise :class:`Interrupted` for the first signal."""
        self.raised = True
        raise Interrupted(self.got)

    @contextlib.contextmanager
    def shield(self):
        """Finish the block before the first signal stops the sweep (a part or the manifest is
        written whole; both are atomic anyway, this keeps the part)."""
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.got is not None and not self.raised:
            self.stop()


def wait(result) -> None:
    """Return when every array of ``result`` (a pytree of dispatched ``jax.Array``, or of host
    arrays: ready) is ready, sleeping in between, so that a signal's handler runs at once."""
    while not ready(result):
        time.sleep(POLL_S)


def ready(result) -> bool:
    """Every array of ``result`` is computed (an abandoned call's are not; a host array is)."""
    return all(a.is_ready() for a in jax.tree.leaves(result) if isinstance(a, jax.Array))


def in_thread(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` in a thread of its own, waited for in short joins, so that a
    signal stops the wait at once (the thread is abandoned: a daemon, it does not hold up exit)."""
    box: dict = {}

    def work():
        try:
            box["value"] = fn(*args, **kwargs)
        except BaseException as e:  # handed to the caller as it is
            box["error"] = e

    thread = threading.Thread(target=work, name="sweepnet-dispatch", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(POLL_S)
    if "error" in box:
        raise box["error"]
    return box["value"]
