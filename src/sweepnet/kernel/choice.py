"""Whether a bucket trains with the fused CPU gradient: the questions the engine asks.

The kernel (``fused_grad.cc``, called through :mod:`sweepnet.kernel.ops`) computes the
forward, loss and backward of a training step in one native call. It covers the common case
(:func:`covers`): an ``mlp`` with one output logit (binary labels), an activation of
:data:`~sweepnet.kernel.ops.ACTIVATIONS`, on a CPU mesh. Everything else uses XLA's autodiff,
as does everything when no C++ compiler is found or ``SWEEPNET_FUSED=0``. The optimizer
(optax) is XLA's either way.

Whether the kernel is used is measured, per machine (:mod:`sweepnet.kernel.verdict`): a
bucket uses it where it is built (:mod:`sweepnet.kernel.build`) and was faster on the nearest
measured shape. ``SWEEPNET_FUSED=1`` forces the kernel on (building it in the foreground if
needed), ``SWEEPNET_FUSED=0`` off. While a first build runs in the background, a sweep trains
with XLA's gradient (:func:`pending`) and switches when the kernel is :func:`ready`.

Cross-module calls go through the module (``build.library``, ``verdict.verdict``), so that a
test's ``monkeypatch.setattr(build, "library", ...)`` reaches them.
"""

from __future__ import annotations

import os

from sweepnet.kernel import build, verdict
from sweepnet.kernel.ops import ACTIVATIONS

# A first build and its measurement in the background, niced, beside a sweep on a 2-core CPU:
# 44 s to build and 165 s to time the six shapes (`sweepnet devices --build`: 108 s quiet)
FIRST_BUILD_S = 200.0


def mode() -> str:
    """``"on"`` (``SWEEPNET_FUSED=1``: wherever it covers, built in the foreground if need be),
    ``"off"`` (``SWEEPNET_FUSED=0``) or ``"auto"`` (unset: where measured faster)."""
    value = os.environ.get("SWEEPNET_FUSED", "").strip().lower()
    return "off" if value in build.OFF else "on" if value in build.ON else "auto"


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
    measured faster (:func:`~sweepnet.kernel.verdict.prefers`). A missing kernel is then built
    in the background (``start``) while this bucket trains with XLA's gradient. The answer is
    kept per ``static`` for the process, so a bucket's program and its record agree even if a
    build lands between two questions.
    """
    if not _applies(static, mesh):
        return False
    how = mode()
    key = (static, how, start)
    if key not in build.STATE["decisions"]:
        if how == "off":
            ok = False
        elif how == "on":
            ok = build.library(wait=True) is not None
        else:
            ok = ready(static, start=start)
        build.STATE["decisions"][key] = ok
    return build.STATE["decisions"][key]


def _applies(static, mesh) -> bool:
    """The kernel computes ``static``'s gradient (:func:`covers`) and ``mesh`` is CPUs."""
    return all(d.platform == "cpu" for d in mesh.devices.flat) and covers(static)


def pending(static, mesh) -> bool:
    """Whether the kernel may still come for ``static`` during this run: :func:`use` said no
    only because the kernel is being built or measured (in the background, by this process or
    another one) and the user left the choice to the measurement (``SWEEPNET_FUSED`` unset).
    The engine then trains in shorter calls and asks :func:`ready` after each."""
    builder = build.STATE["builder"]
    running = builder == "elsewhere" or (builder is not None and builder.poll() is None)
    return (running and mode() == "auto" and _applies(static, mesh)
            and (build.library(start=False) is None or verdict.verdict() is None))


def will_build() -> bool:
    """Whether a sweep started now would build and measure the kernel in the background and
    switch to it when ready (``sweepnet plan`` estimates such a first run): a compiler, no
    failed build, the choice left to measurement, background builds allowed, and the kernel not
    yet built and measured."""
    path = build.kernel_path()
    return (path is not None and mode() == "auto" and not build.read(path[:-3] + ".failed")
            and build.background_builds()
            and (not os.path.exists(path) or verdict.verdict() is None))


def ready(static, start: bool = False) -> bool:
    """Whether the kernel is built, loaded and measured faster for ``static`` now (asked
    afresh, unlike :func:`use`): a bucket that started on XLA's gradient switches then.
    ``start``: a missing kernel starts building in the background (see ``build.library``)."""
    return (build.library(start=start) is not None
            and bool(verdict.prefers(*verdict.shape_class(static))))


def build_seconds() -> float:
    """Seconds this process spent building the kernel in the foreground (not compiling)."""
    return build.STATE["build_s"]


def reset() -> None:
    """Forget this process's view (tests): loaded library, decisions, warnings, builder."""
    build.STATE.update(loaded=None, builder=None, build_s=0.0, decisions={}, said=set())
    build.library_key.cache_clear()
