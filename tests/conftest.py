"""Shared test setup: two virtual CPU devices, strict JAX numerics, and a tiny finished sweep."""

import os
import sys

os.environ.setdefault("SWEEPNET_HOST_DEVICES", "2")  # before sweepnet/jax import: 2 devices
# the tests' own caches (programs, XLA's, calibration), whatever SWEEPNET_CACHE a user exported:
# the suite neither fills a user's cache nor trusts what it holds
os.environ["SWEEPNET_CACHE"] = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                            ".xla-cache")
# no background kernel build landing mid-suite (it would change the gradient between two runs
# of one test); tests that need the kernel build it in the foreground (test_fused's fixture)
os.environ.setdefault("SWEEPNET_KERNEL_BUILD", "0")

import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import sweepnet  # noqa: E402, F401  (configures host devices before jax starts)
import sweepnet.sweep.data  # noqa: E402, F401
from sweepnet.store import results  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# columns that say where and how a run was computed, not what it computed
PROVENANCE = ("part", "bucket", "bucket_width", "bucket_depth", "n_devices", "backend",
              "jax_version", "sweepnet_version")


# one network per device per call: many small parts, so that a kill lands between two, and
# every run of a test cuts its calls alike (bit-for-bit comparable)
TINY_MEMORY = 1024


def sweepnet_command(*args: str) -> list[str]:
    """``python -m sweepnet ARGS`` with this interpreter (a sweep in a process of its own)."""
    return [sys.executable, "-m", "sweepnet", *args]


def runs_table(out: str, drop=()):
    """The runs table of ``out`` without provenance (and ``drop``), indexed and sorted by run id."""
    df = sweepnet.load(out)
    gone = [c for c in (*PROVENANCE, *drop) if c in df]
    return df.drop(columns=gone).set_index("run_id").sort_index()


TINY_SPEC = """
name = "tiny"
[data]
dataset = "disk_annulus"
n_train = 64
n_test = 256
[model]
width = [2, 3]
depth = [1, 2]
activation = "tanh"
[train]
learning_rate = 0.05
steps = 60
seeds = 2
eval_every = 20
"""


@pytest.fixture(scope="session")
def tiny_results(tmp_path_factory):
    """A finished 8-network sweep (widths 2-3, depths 1-2, 2 seeds). Read it, do not write it."""
    from sweepnet.engine import cost as cost_lib
    from sweepnet.engine import plan
    from sweepnet.engine import run as engine
    from sweepnet.sweep import spec

    out = str(tmp_path_factory.mktemp("tiny") / "results")
    s = spec.loads(TINY_SPEC)
    per_net = cost_lib.bytes_per_network(plan.make_plan(s, 2).buckets[0].static)
    # one program for the grid; room for 4 networks a call makes two calls, so two parts
    engine.run_sweep(s, out, progress=False, max_memory=4 * per_net)
    return out


def write_params(root: str, run_id: str, layers) -> None:
    """Overwrite the stored parameters of ``run_id`` in ``root`` with ``[(W, b), ...]`` (the
    hidden layers, then the read-out): the real block of each padded array, zeros around it
    (padded units and layers then add nothing, as in a trained network)."""
    row = results.load(root).set_index("run_id").loc[run_id]
    path = os.path.join(root, "params", row["part"] + ".npz")
    with np.load(path) as f:
        arrays = {k: f[k].copy() for k in f.files}
    i = int(np.flatnonzero(arrays["run_id"] == run_id)[0])
    names = [f"hidden_{j}" for j in range(len(layers) - 1)] + ["out"]
    for name, (w, b) in zip(names, layers, strict=True):
        w, b = np.asarray(w, np.float32), np.asarray(b, np.float32)
        kernel, bias = arrays[f"params/{name}/kernel"], arrays[f"params/{name}/bias"]
        kernel[i], bias[i] = 0, 0
        kernel[i, : w.shape[0], : w.shape[1]], bias[i, : b.shape[0]] = w, b
    np.savez(path, **arrays)
