"""Many hosts: ``sweepnet run --distributed`` with two processes on this machine (a coordinator
on 127.0.0.1, two CPU devices per process) gives the table of one process."""

import os
import socket
import subprocess

import pandas as pd
import pytest

import sweepnet
from conftest import TINY_MEMORY, runs_table, sweepnet_command
from sweepnet.engine import run as engine
from sweepnet.store import results
from sweepnet.sweep import spec

SPEC = """
name = "hosts"
[data]
dataset = "disk_annulus"
n_train = 32
n_test = 128
[model]
width = [2, 3]
depth = [1, 2]
[train]
learning_rate = 0.05
steps = 60
seeds = 4
eval_every = 20
"""
N_NETS = 16
def table(out: str) -> pd.DataFrame:
    return runs_table(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_give_the_table_of_one(tmp_path):
    path = tmp_path / "hosts.toml"
    path.write_text(SPEC)
    out = str(tmp_path / "out")
    port = free_port()
    procs = [_launch(path, out, port, i) for i in range(2)]  # each: its own 2 CPU devices
    logs = [p.communicate(timeout=150) for p in procs]
    for p, (stdout, stderr) in zip(procs, logs, strict=True):
        assert p.returncode == 0, stderr[-3000:]
        assert f"trained {N_NETS // 2} networks" in stdout

    one = str(tmp_path / "one")
    engine.run_sweep(spec.loads(SPEC), one, progress=False, max_memory=TINY_MEMORY)
    df = sweepnet.load(out)
    assert df["run_id"].is_unique and len(df) == N_NETS
    assert {p.split("-")[0] for p in df["part"]} == {"s0of2", "s1of2"}
    assert set(df["n_devices"]) == {2}  # each process used its own local devices only
    pd.testing.assert_frame_equal(table(out), table(one), check_exact=True)

    manifest = results.read_manifest(out)  # written by process 0 alone, with both shares
    assert manifest["processes"] == 2 and len(manifest["devices"]) == 4
    assert manifest["status"] == "complete"
    assert {k: v["status"] for k, v in manifest["shards"].items()} == {
        "s0of2": "complete",
        "s1of2": "complete",
    }
    assert {k.split("-")[0] for k in manifest["buckets"]} == {"s0of2", "s1of2"}


@pytest.mark.slow  # CLI processes that wait for a coordinator: 7 s
def test_distributed_without_a_cluster_or_coordinator_is_a_one_line_error(tmp_path):
    """Outside Slurm / Open MPI / TPU, jax finds no coordinator: exit 2, one line, no folder.

    (A fresh process: jax.distributed must start before any device is touched.)
    """
    path = tmp_path / "hosts.toml"
    path.write_text(SPEC)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "OMPI_", "PMI_", "JAX_COORDINATOR"))
    }
    out = tmp_path / "out"
    got = subprocess.run(
        sweepnet_command("run", str(path), "--out", str(out), "--distributed"),
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    lines = got.stderr.strip().splitlines()
    assert got.returncode == 2 and len(lines) == 1, got.stderr
    assert lines[0].startswith("sweepnet: error: --distributed") and "--coordinator" in lines[0]
    assert not out.exists()


def _launch(path, out, port, i, memory=TINY_MEMORY, **extra):
    env = {**os.environ, "SWEEPNET_HOST_DEVICES": "2", **extra}
    env["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
    return subprocess.Popen(
        sweepnet_command("run", str(path), "--out", out, "--quiet",
         "--max-memory", str(memory), "--distributed", "--coordinator", f"127.0.0.1:{port}",
         "--num-processes", "2", "--process-id", str(i)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


@pytest.mark.slow
def test_a_lost_peer_stops_process_0_with_a_one_line_error_and_the_parts_resume(tmp_path):
    import glob
    import time

    # many small calls (one network per device), so that process 1 is killed mid-sweep
    long = SPEC.replace("steps = 60", "steps = 1500").replace("seeds = 4", "seeds = 100")
    total = 4 * 100
    path = tmp_path / "hosts.toml"
    path.write_text(long)
    out = str(tmp_path / "out")
    port = free_port()
    # a peer silent 8 s is lost (30 s by default): the test waits that long after the kill
    procs = [_launch(path, out, port, i, SWEEPNET_PEER_TIMEOUT="8") for i in range(2)]
    try:
        deadline = time.monotonic() + 240
        while not glob.glob(os.path.join(out, "runs", "s1of2-*.parquet")):
            assert time.monotonic() < deadline, "process 1 wrote nothing"
            assert procs[0].poll() is None and procs[1].poll() is None, procs[1].stderr.read()
            time.sleep(0.5)
        procs[1].kill()  # its host is gone
        killed = time.monotonic()
        _, err = procs[0].communicate(timeout=120)
        waited = time.monotonic() - killed
    finally:
        for p in procs:
            p.kill()
            p.communicate()  # closes its pipes
    lines = err.strip().splitlines()
    assert procs[0].returncode == 2, err[-3000:]
    assert waited < 40, waited  # the timeout counts from the last beat seen, up to 3 s before
    assert len(lines) == 1 and "process 1 of 2 was lost" in lines[0], err[-3000:]
    # the finished parts are kept, and the same sweep run again trains only the rest
    kept = len(sweepnet.load(out))
    assert 2 <= kept < total
    # (in calls of the default size: how the rest is cut does not matter here)
    summary = engine.run_sweep(spec.loads(long), out, progress=False)
    assert summary.skipped == kept and summary.trained == total - kept
    df = sweepnet.load(out)
    assert df["run_id"].is_unique and len(df) == total
