"""sweepnet: train thousands of tiny neural networks at once and map where they separate.

The package is a stack of layers, lowest first. A module imports from its own layer and
the layers above it in this list, never from one below it (``tests/test_imports.py``):

    core      errors, the host machine, its devices, words (plurals), stats (error bars)
    sweep     what a sweep is: the spec, the datasets, the models, the optimizers
    kernel    the fused CPU gradient: C++ built on this machine, called through XLA's FFI
    train     one network's training step, its separation certificate, its decision region
    store     the results folder: every path in it, its writer and its readers
    engine    the plan and its execution: buckets, calls, compiled programs, many hosts,
              the adaptive search
    measure   the numbers of one trained network: forward passes, grids, topology, regions
    views     what a user looks at: charts, pictures, the report, explore, animate
    bench     benchmarks against per-network baselines and the machine's limits
    cli       the command line

The public API is what this module exports (``__all__``):

- :func:`load_spec` reads a TOML spec into a :class:`Spec`;
- :func:`make_plan` cuts a spec into compiled programs and calls (``sweepnet plan``);
- :func:`run_sweep` trains a spec into a results folder (``sweepnet run``);
- :func:`load`, :func:`load_curves` and :func:`load_params` read a results folder back: the
  runs table, the learning curves, one network's parameters;
- :class:`SweepnetError` is every error a user can fix (the CLI prints it on one line and
  exits with 2).
"""

import importlib

from sweepnet.core.devices import configure_host_devices

configure_host_devices()  # must precede the first `import jax` (see sweepnet.core.devices)

from sweepnet.core.errors import SweepnetError  # noqa: E402
from sweepnet.core.host import __version__  # noqa: E402

# The rest of the public API is imported on first use (PEP 562), so that importing sweepnet
# imports no JAX: `sweepnet --version` and `--help` answer at once (tests/test_cli_help.py).
_LAZY = {"make_plan": ("sweepnet.engine.plan", "make_plan"),
         "run_sweep": ("sweepnet.engine.run", "run_sweep"),
         "load": ("sweepnet.store.results", "load"),
         "load_curves": ("sweepnet.store.results", "load_curves"),
         "load_params": ("sweepnet.store.results", "load_params"),
         "Spec": ("sweepnet.sweep.spec", "Spec"),
         "load_spec": ("sweepnet.sweep.spec", "load")}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'sweepnet' has no attribute {name!r}")
    module, attr = _LAZY[name]
    value = globals()[name] = getattr(importlib.import_module(module), attr)
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = ["Spec", "SweepnetError", "__version__", "load", "load_curves", "load_params",
           "load_spec", "make_plan", "run_sweep"]
