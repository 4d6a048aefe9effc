"""Crash safety: a sweep killed at random moments resumes to the uninterrupted sweep's table.

A resumed sweep makes calls of the same size as the uninterrupted one (the engine cuts chunks
from the whole share, not from what is left) and pads every run to the same width, so the two
are compared bit for bit. (Changing the number of networks per call changes XLA's float
round-off; that case is tested to a tolerance in test_memory.py.)
"""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

import sweepnet
from conftest import runs_table
from sweepnet import engine, results, spec

SPEC = """
name = "crash"
[data]
dataset = "disk_annulus"
n_train = 32
n_test = 128
[model]
width = [2, 3]
depth = [1, 2]
[train]
learning_rate = 0.05
steps = 3000
seeds = 8
eval_every = 500
"""
N_NETS = 32
TINY_MEMORY = 1024  # one network per device: 2-network chunks, 16 parts
N_PARTS = 16


def table(out: str) -> pd.DataFrame:
    return runs_table(out)


def curves(out: str) -> pd.DataFrame:
    return sweepnet.load_curves(out).sort_values(["run_id", "step"]).reset_index(drop=True)


def assert_same_results(out: str, ref: str) -> None:
    """Same run ids, every metric, curve point and weight bit-for-bit equal, no duplicates."""
    a, b = table(out), table(ref)
    assert a.index.is_unique and len(a) == N_NETS
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    ca, cb = curves(out), curves(ref)
    assert not ca.duplicated(["run_id", "step"]).any()
    pd.testing.assert_frame_equal(ca, cb, check_exact=True)
    for run_id in a.index[::5]:
        (_, pa), (_, pb) = sweepnet.load_params(out, run_id), sweepnet.load_params(ref, run_id)
        flat_a, flat_b = _leaves(pa), _leaves(pb)
        assert flat_a.keys() == flat_b.keys()
        for k in flat_a:
            np.testing.assert_array_equal(flat_a[k], flat_b[k])


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return {
            k: v for name, sub in tree.items() for k, v in _leaves(sub, prefix + "/" + name).items()
        }
    return {prefix: np.asarray(tree)}


def n_parts(out: str, sub: str = "runs") -> int:
    d = os.path.join(out, sub)
    return len([f for f in os.listdir(d) if not f.startswith(".")]) if os.path.isdir(d) else 0


def assert_clean(out: str) -> None:
    """One curves and one params file per committed runs part, and no temporary files."""
    for sub in ("runs", "curves", "params"):
        names = os.listdir(os.path.join(out, sub))
        assert not [f for f in names if f.startswith(".tmp-")], sub
        assert n_parts(out, sub) == n_parts(out, "runs")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep, in-process, with the same --max-memory as the killed one."""
    out = str(tmp_path_factory.mktemp("reference"))
    engine.run_sweep(spec.loads(SPEC), out, progress=False, max_memory=TINY_MEMORY)
    assert results.read_manifest(out)["status"] == "complete"
    return out


@pytest.mark.slow
def test_sigkill_three_times_then_resume_equals_uninterrupted(tmp_path, reference):
    rng = random.Random(6)
    path = tmp_path / "crash.toml"
    path.write_text(SPEC)
    out = str(tmp_path / "out")
    cmd = [
        sys.executable,
        "-m",
        "sweepnet",
        "run",
        str(path),
        "--out",
        out,
        "--quiet",
        "--max-memory",
        str(TINY_MEMORY),
    ]
    landed_mid_sweep = 0
    for kill in range(3):
        before = n_parts(out)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # kill 0: a random moment in start-up, compile or the first chunk; kills 1 and 2: a
        # random moment after this attempt committed 1 (then 2) parts of its own
        deadline = time.monotonic() + (rng.uniform(0.2, 4.0) if kill == 0 else 60.0)
        while proc.poll() is None and time.monotonic() < deadline:
            if n_parts(out) >= before + max(kill, 1):
                time.sleep(rng.uniform(0.0, 0.05))
                break
            time.sleep(0.005)
        assert proc.poll() is None, f"attempt {kill} ended before the kill: {proc.stderr.read()}"
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
        proc.stderr.close()
        after = n_parts(out)
        landed_mid_sweep += before < after < N_PARTS
    assert landed_mid_sweep >= 1, "no kill landed after some parts were written"
    assert n_parts(out) < N_PARTS

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert "already done" in resumed.stdout
    assert results.read_manifest(out)["status"] == "complete"
    assert_clean(out)
    assert n_parts(out) == N_PARTS
    assert_same_results(out, reference)


def _damage(out: str, sub: str, how: str) -> str:
    """Truncate or overwrite one part file of ``sub``; returns its stem."""
    d = os.path.join(out, sub)
    name = sorted(f for f in os.listdir(d) if not f.startswith("."))[
        {"runs": 0, "curves": 3, "params": 6}[sub]
    ]
    path = os.path.join(d, name)
    if how == "truncate":
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    else:
        with open(path, "r+b") as f:
            f.seek(os.path.getsize(path) - 64)
            f.write(b"\0garbage" * 8)  # the parquet footer / zip central directory
    return name.split(".")[0]


@pytest.mark.slow
def test_corrupt_parts_of_each_kind_are_reported_quarantined_and_retrained(
    tmp_path, reference, capsys
):
    s, out = spec.loads(SPEC), str(tmp_path / "out")
    engine.run_sweep(s, out, progress=False, max_memory=TINY_MEMORY)
    assert n_parts(out) == N_PARTS
    damaged = {
        _damage(out, "runs", "truncate"),
        _damage(out, "curves", "overwrite"),
        _damage(out, "params", "truncate"),
    }
    assert len(damaged) == 3
    capsys.readouterr()

    summary = engine.run_sweep(s, out, progress=False, max_memory=TINY_MEMORY)
    err = capsys.readouterr().err
    for stem in damaged:  # one warning per damaged part, naming its file
        assert sum(stem in line and "corrupt part" in line for line in err.splitlines()) == 1
    assert summary.trained == 3 * N_NETS // N_PARTS and summary.skipped == N_NETS - 6
    quarantined = os.listdir(os.path.join(out, "corrupt"))
    assert len(quarantined) == 9  # runs, curves and params of each damaged part, kept
    assert {q.split("-", 1)[1].split(".")[0] for q in quarantined} == damaged
    assert_clean(out)
    assert_same_results(out, reference)
    assert results.read_manifest(out)["status"] == "complete"


def test_orphans_of_a_killed_write_are_removed_on_resume(tmp_path, tiny_results):
    """A part killed between its params and its runs file is invisible, then removed."""
    import shutil

    out = str(tmp_path / "out")
    shutil.copytree(tiny_results, out)
    runs_dir = os.path.join(out, "runs")
    victim = sorted(os.listdir(runs_dir))[0]
    os.unlink(os.path.join(runs_dir, victim))  # as if killed just before the commit
    tmp = os.path.join(out, "curves", ".tmp-s0of1-b000-x.parquet.abc")
    open(tmp, "w").close()  # as if killed mid-write
    orphan = victim.split(".")[0]
    n_before = len(sweepnet.load(out))
    assert len(sweepnet.load_curves(out)["run_id"].unique()) == n_before  # orphan not seen
    store = results.Store.open(out, spec.loads(_tiny_spec(out)))
    assert not os.path.exists(tmp)
    assert not [
        f
        for sub in ("curves", "params")
        for f in os.listdir(os.path.join(out, sub))
        if f.startswith(orphan)
    ]
    assert len(store.done_ids()) == n_before


def _tiny_spec(out: str) -> str:
    with open(os.path.join(out, "spec.toml")) as f:
        return f.read()
