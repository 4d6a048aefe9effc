"""Which devices a sweep runs on, set up before JAX starts.

On a CPU, XLA runs one program on one core, so sweepnet exposes every host core as its own
JAX device (``--xla_force_host_platform_device_count``) and shards the network axis over them.
That flag is read once, when JAX initialises its CPU backend, which is why
``configure_host_devices`` runs when ``sweepnet`` is imported. Set ``SWEEPNET_HOST_DEVICES``
to choose the count (``1`` turns it off); an explicit flag in ``XLA_FLAGS`` always wins.
"""

from __future__ import annotations

import os
import sys

_FLAG = "--xla_force_host_platform_device_count"


def configure_host_devices() -> None:
    if "jax" in sys.modules and _jax_backends_started():
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if _FLAG in flags:
        return
    n = os.environ.get("SWEEPNET_HOST_DEVICES") or str(len(os.sched_getaffinity(0)))
    if int(n) > 1:
        os.environ["XLA_FLAGS"] = f"{flags} {_FLAG}={int(n)}".strip()


def _jax_backends_started() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge._backends)
    except Exception:  # private API moved: assume started, and leave the flags alone
        return True


def describe() -> list[dict[str, str]]:
    """What JAX sees: one dict per device."""
    import jax

    return [{"id": str(d.id), "platform": d.platform, "kind": d.device_kind,
             "process": str(d.process_index)} for d in jax.devices()]
