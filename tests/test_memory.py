"""Bounded memory: the chunk size follows ``--max-memory``; RESOURCE_EXHAUSTED halves it."""

import os

import jax
import numpy as np
import pandas as pd
import pytest

import sweepnet
from conftest import runs_table
from sweepnet import cli
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.store import results
from sweepnet.sweep import spec

SPEC = """
name = "mem"
[data]
dataset = "disk_annulus"
n_train = 32
n_test = 128
[model]
width = 3
depth = [1, 2]
[train]
learning_rate = 0.05
steps = 40
seeds = 8
eval_every = 20
"""
N_NETS = 16
METRICS = ["train_loss", "train_acc", "test_acc"]



def assert_same_up_to_round_off(out: str, ref: str) -> None:
    """Ids, counts and configurations exactly; metrics and curves to float32 round-off.

    A call of a different size gives XLA other loop shapes, so float sums round differently.
    """
    a, b = runs_table(out), runs_table(ref)
    assert list(a.index) == list(b.index) and a.index.is_unique
    config = [c for c in a.columns if c not in METRICS and a[c].dtype != float]
    pd.testing.assert_frame_equal(a[config], b[config], check_exact=True)
    for c in METRICS:
        np.testing.assert_allclose(a[c], b[c], rtol=1e-5, atol=1e-6)
    ca = sweepnet.load_curves(out).sort_values(["run_id", "step"]).reset_index(drop=True)
    cb = sweepnet.load_curves(ref).sort_values(["run_id", "step"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(ca[["run_id", "step"]], cb[["run_id", "step"]])
    np.testing.assert_allclose(ca["train_loss"], cb["train_loss"], rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("mem-ref"))
    engine.run_sweep(spec.loads(SPEC), out, progress=False)
    chunks = {b["chunk"] for b in results.read_manifest(out)["buckets"].values()}
    assert chunks == {N_NETS}  # one program, one call
    return out


def test_chunk_follows_max_memory():
    s = spec.loads(SPEC)
    static = plan.make_plan(s, 2).buckets[0].static
    per_net = cost_lib.bytes_per_network(static)
    # 16 networks, one program; room for 7 gives three equal calls of 6 (18 lanes), not
    # 7 + 7 + 2 padded to 7 (21 lanes)
    for budget, chunk in ((1, 2), (4 * per_net, 4), (7 * per_net + 1, 6), (10**12, 16)):
        assert plan.make_plan(s, 2, max_memory=budget).buckets[0].chunk == chunk


@pytest.mark.slow
def test_tiny_max_memory_completes_with_the_same_results(tmp_path, reference, capsys):
    path = tmp_path / "mem.toml"
    path.write_text(SPEC)
    out = str(tmp_path / "out")
    assert cli.main(["run", str(path), "--out", out, "--max-memory", "1K", "--quiet"]) == 0
    assert "trained 16 networks" in capsys.readouterr().out
    manifest = results.read_manifest(out)
    assert {b["chunk"] for b in manifest["buckets"].values()} == {2}  # one net per device
    # streamed: every call became its own part on disk (nothing gathered across chunks)
    assert len(os.listdir(os.path.join(out, "runs"))) == N_NETS // 2
    assert len(os.listdir(os.path.join(out, "params"))) == N_NETS // 2
    assert_same_up_to_round_off(out, reference)


def _oom_above(limit: int, calls: list[int]):
    """A stand-in for the compiled call that runs out of memory above ``limit`` networks."""
    real = engine.dispatch

    def call(compiled, seeds, hyper, data):
        calls.append(seeds.shape[0])
        if seeds.shape[0] > limit:
            raise jax.errors.JaxRuntimeError(
                f"RESOURCE_EXHAUSTED: Out of memory while trying to allocate {seeds.shape[0]} "
                "networks' buffers"
            )
        return real(compiled, seeds, hyper, data)

    return call


@pytest.mark.slow
def test_resource_exhausted_halves_the_chunk_and_retries(tmp_path, reference, monkeypatch, capsys):
    calls = []
    monkeypatch.setattr(engine, "dispatch", _oom_above(2, calls))
    out = str(tmp_path / "out")
    summary = engine.run_sweep(spec.loads(SPEC), out, progress=False)
    err = capsys.readouterr().err.splitlines()
    # one program: 16 → 8 → 4 → 2 networks per call, each step warned about
    assert summary.retries == 3 and summary.trained == N_NETS
    assert [line for line in err if "out of device memory" in line] == [
        f"sweepnet: warning: bucket 0: out of device memory at {n} networks per call; "
        f"retrying with {n // 2}"
        for n in (16, 8, 4)
    ]
    assert calls == [16, 8, 4] + [2] * 8
    assert {b["chunk"] for b in results.read_manifest(out)["buckets"].values()} == {2}
    assert results.read_manifest(out)["status"] == "complete"
    assert_same_up_to_round_off(out, reference)


def test_oom_after_some_chunks_keeps_them_and_redoes_only_the_rest(tmp_path, monkeypatch):
    """Call 2 of 2 runs out of memory: call 1's chunk is kept, call 2's is split in two."""
    calls = []
    real = engine.dispatch

    def call(compiled, seeds, hyper, data):
        calls.append(seeds.shape[0])
        if len(calls) == 2:
            raise jax.errors.JaxRuntimeError("RESOURCE_EXHAUSTED: out of memory")
        return real(compiled, seeds, hyper, data)

    monkeypatch.setattr(engine, "dispatch", call)
    s = spec.loads(SPEC.replace("depth = [1, 2]", "depth = 1"))  # one bucket of 8
    out = str(tmp_path / "out")
    per_net = cost_lib.bytes_per_network(plan.make_plan(s, 2).buckets[0].static)
    summary = engine.run_sweep(s, out, progress=False, max_memory=4 * per_net)
    assert calls == [4, 4, 2, 2] and summary.retries == 1
    df = sweepnet.load(out)
    assert len(df) == 8 and df["run_id"].is_unique
    assert sorted(df.groupby("part").size()) == [2, 2, 4]


def test_out_of_memory_at_one_network_per_device_is_an_error_not_a_loop(
    tmp_path, monkeypatch, capsys
):
    monkeypatch.setattr(engine, "dispatch", _oom_above(0, []))
    path = tmp_path / "mem.toml"
    path.write_text(SPEC)
    assert (
        cli.main(
            ["run", str(path), "--out", str(tmp_path / "out"), "--quiet", "--max-memory", "1K"]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of device memory even at one network per device" in err[0]


def test_other_runtime_errors_are_not_swallowed(tmp_path, monkeypatch):
    def call(compiled, seeds, hyper, data):
        raise jax.errors.JaxRuntimeError("INTERNAL: something else broke")

    monkeypatch.setattr(engine, "dispatch", call)
    with pytest.raises(jax.errors.JaxRuntimeError, match="INTERNAL"):
        engine.run_sweep(spec.loads(SPEC), str(tmp_path / "out"), progress=False)
