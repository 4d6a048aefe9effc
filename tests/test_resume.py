"""Crash safety: a sweep killed at random moments resumes to the uninterrupted sweep's table.

A resumed sweep makes calls of the same size as the uninterrupted one (the engine cuts chunks
from the whole share, not from what is left) and pads every run to the same width, so the two
are compared bit for bit. (Changing the number of networks per call changes XLA's float
round-off; that case is tested to a tolerance in test_memory.py.)

Every resume is also counted exactly: it trains the runs that were missing and no others (its
summary, and which run ids land in which part files), in the calls the uninterrupted sweep made
for them (the parts' run ids and each call's lanes), and leaves every finished part file as it
was (inode, mtime and bytes).
"""

import hashlib
import os
import random
import re
import shutil
import signal
import subprocess
import time
from collections import Counter

import jax
import numpy as np
import pandas as pd
import pytest

import sweepnet
from conftest import TINY_MEMORY, runs_table, sweepnet_command
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.store import results
from sweepnet.sweep import spec

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
N_PARTS = 16



def curves(out: str) -> pd.DataFrame:
    return sweepnet.load_curves(out).sort_values(["run_id", "step"]).reset_index(drop=True)


def assert_same_results(out: str, ref: str) -> None:
    """Same run ids, every metric, curve point and weight bit-for-bit equal, no duplicates."""
    a, b = runs_table(out), runs_table(ref)
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


def part_ids(out: str) -> dict[str, list[str]]:
    """Run ids of every committed part, by part name (``s0of1-b000-<hash>``)."""
    return {os.path.basename(p).split(".")[0]: pd.read_parquet(p, columns=["run_id"])[
        "run_id"].tolist() for p in results.part_files(out, "runs")}


def snapshot(out: str) -> dict[str, tuple[int, int, str]]:
    """Every file of every committed part: ``sub/name -> (inode, mtime_ns, sha256)``. A part
    written again, even with the same bytes, gets a new inode (written to a temporary name,
    then renamed) and a new mtime."""
    files = {}
    for sub in results.PARTS:
        for path in results.part_files(out, sub):
            st = os.stat(path)
            with open(path, "rb") as f:
                digest = hashlib.sha256(f.read()).hexdigest()
            files[f"{sub}/{os.path.basename(path)}"] = (st.st_ino, st.st_mtime_ns, digest)
    return files


def assert_parts_of_a_resume(out: str, ref: str, before: dict[str, list[str]],
                             files: dict[str, tuple[int, int, str]]) -> None:
    """After a resume of ``out`` (whose parts were ``before`` and their files ``files``): the
    uninterrupted sweep's parts, each run in exactly one, the finished ones untouched, and
    every bucket the resume trained cut into calls of the uninterrupted sweep's size."""
    after, grid = part_ids(out), set(results.grid(out)["run_id"])
    count = Counter(i for ids in after.values() for i in ids)
    assert max(count.values()) == 1, "a run in two parts"
    assert set(count) == grid
    assert after.keys() == part_ids(ref).keys()  # a part's name is its bucket and run ids
    assert {k: after[k] for k in before} == before
    now = snapshot(out)
    assert {k: now[k] for k in files} == files, "a finished part was written again"
    done = set().union(*before.values())
    trained = results.read_manifest(out).get("buckets", {})  # none if it trained nothing
    reference = results.read_manifest(ref)["buckets"]
    for name, bucket in trained.items():  # the buckets this resume wrote (or an attempt did)
        assert bucket["chunk"] == reference[name]["chunk"], name
    if grid - done:  # one bucket: the resume trained every missing run in it
        assert trained["s0of1-b000"]["networks"] == len(grid - done)


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
    cmd = sweepnet_command("run", str(path), "--out", out, "--quiet",
                           "--max-memory", str(TINY_MEMORY))
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
    parts_before, files_before = part_ids(out), snapshot(out)
    done = set().union(*parts_before.values())
    assert 0 < len(done) < N_NETS

    resumed = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    said = re.search(r"trained (\d+) networks \((\d+) already done, (\d+) in grid\)",
                     resumed.stdout)
    assert said, resumed.stdout
    assert tuple(map(int, said.groups())) == (N_NETS - len(done), len(done), N_NETS)
    assert results.read_manifest(out)["status"] == "complete"
    assert_clean(out)
    assert n_parts(out) == N_PARTS
    assert_parts_of_a_resume(out, reference, parts_before, files_before)
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


# --- a kill between two parts, in-process: cheap, deterministic, exact -------------------------

CUT_SPEC = """
name = "cut"
[data]
dataset = "disk_annulus"
n_train = 32
n_test = 64
[model]
width = [2, 3]
depth = 1
[train]
learning_rate = 0.05
steps = 40
seeds = 7
eval_every = 20
"""
CUT_NETS = 14
# Room for 6 networks a call: the 14 runs (one bucket, one data group) are cut into calls of
# 5, 5 and 4 networks, each on 6 lanes. After a kill past two parts the 4 runs left would fit
# calls of 4 lanes; the engine must still make the 6-lane call of the uninterrupted sweep.
CUT_ROOM = 6
CUT_CALLS = [5, 5, 4]


class Killed(Exception):
    """Stands in for SIGKILL right after a part is committed (before the next one is)."""


def cut_sweep(out: str, mp: pytest.MonkeyPatch, kill_after: int | None = None):
    """Run the CUT_SPEC sweep into ``out`` in-process, killed (:class:`Killed`) once
    ``kill_after`` parts are written. Returns its summary and its calls, in order:
    ``(bucket index, run ids, lanes)`` for each part written."""
    s = spec.loads(CUT_SPEC)
    per_net = cost_lib.bytes_per_network(plan.make_plan(s, 2).buckets[0].static)
    calls, write = [], engine.write_part

    def recording(writer, bucket, call, result, written):
        write(writer, bucket, call, result, written)
        lanes = {leaf.shape[0] for leaf in jax.tree.leaves(result)}  # (lanes, ...) each
        assert len(lanes) == 1
        calls.append((bucket.index, tuple(r.run_id for r in call.runs), lanes.pop()))
        if len(calls) == kill_after:
            raise Killed

    mp.setattr(engine, "write_part", recording)
    summary = engine.run_sweep(s, out, progress=False, max_memory=CUT_ROOM * per_net)
    return summary, calls


@pytest.fixture(scope="module")
def cut_reference(tmp_path_factory):
    """The uninterrupted CUT_SPEC sweep and its calls."""
    out = str(tmp_path_factory.mktemp("cut-reference"))
    with pytest.MonkeyPatch.context() as mp:
        summary, calls = cut_sweep(out, mp)
    assert (summary.trained, summary.skipped) == (CUT_NETS, 0)
    assert [len(ids) for _, ids, _ in calls] == CUT_CALLS  # the case this file is built on
    assert {lanes for *_, lanes in calls} == {CUT_ROOM}
    assert results.read_manifest(out)["buckets"]["s0of1-b000"]["chunk"] == CUT_ROOM
    return out, calls


@pytest.mark.parametrize("kill_after", [1, 2, 3])
def test_a_sweep_killed_between_parts_resumes_exactly_the_missing_runs(
        tmp_path, monkeypatch, cut_reference, kill_after):
    ref, ref_calls = cut_reference
    out = str(tmp_path / "out")
    with pytest.raises(Killed):
        cut_sweep(out, monkeypatch, kill_after)
    before, files = part_ids(out), snapshot(out)
    # the kill kept the first parts, whole: those of the uninterrupted sweep's first calls
    assert sorted(map(tuple, before.values())) == sorted(ids for _, ids, _ in
                                                         ref_calls[:kill_after])
    done = set().union(*before.values())
    assert len(done) == sum(CUT_CALLS[:kill_after])

    summary, calls = cut_sweep(out, monkeypatch)
    assert (summary.total, summary.skipped, summary.trained) == (
        CUT_NETS, len(done), CUT_NETS - len(done))
    # the uninterrupted sweep's calls for the runs left: the same runs, in the same order,
    # each call on as many lanes (so XLA's round-off is the same, bit for bit)
    assert calls == ref_calls[kill_after:]
    assert {i for _, ids, _ in calls for i in ids} == set(results.grid(out)["run_id"]) - done
    assert_parts_of_a_resume(out, ref, before, files)
    assert results.read_manifest(out)["status"] == "complete"
    pd.testing.assert_frame_equal(runs_table(out), runs_table(ref), check_exact=True)
    pd.testing.assert_frame_equal(curves(out), curves(ref), check_exact=True)


def test_a_finished_sweep_run_again_trains_nothing_and_touches_no_part(
        tmp_path, monkeypatch, cut_reference):
    ref, _ = cut_reference
    out = str(tmp_path / "out")
    shutil.copytree(ref, out)
    before, files = part_ids(out), snapshot(out)
    summary, calls = cut_sweep(out, monkeypatch)
    assert (summary.skipped, summary.trained, summary.buckets, calls) == (CUT_NETS, 0, 0, [])
    assert part_ids(out) == before
    assert snapshot(out) == files


# --- a job array in one folder, a mismatched part, stray files (issue 28) ----------------------


def test_a_job_array_shares_its_folder_and_a_fresh_single_run_wipes_it(tmp_path):
    """Two shards of a job array, each started with ``fresh`` (as a job array's tasks are):
    the second keeps its sibling's parts and its own status says "complete" (its runs are
    done, whatever the sibling's are); a fresh run of the whole sweep then wipes both shards'
    parts and trains every run itself. ``results.done_ids`` (read-only) sees every run."""
    s, out = spec.loads(CUT_SPEC), str(tmp_path / "out")
    engine.run_sweep(s, out, shard=(1, 2), fresh=True, progress=False)
    sibling = sorted(os.listdir(os.path.join(out, "runs")))
    assert sibling and all(f.startswith("s1of2-") for f in sibling)

    theirs = {i for ids in part_ids(out).values() for i in ids}
    summary = engine.run_sweep(s, out, shard=(0, 2), fresh=True, progress=False)
    assert (summary.trained, summary.skipped) == (CUT_NETS - len(theirs), 0)
    names = sorted(os.listdir(os.path.join(out, "runs")))
    assert [f for f in names if f.startswith("s1of2-")] == sibling  # the sibling's, kept
    assert {f.split("-")[0] for f in names} == {"s0of2", "s1of2"}
    manifest = results.read_manifest(out)
    for tag in ("s0of2", "s1of2"):
        assert manifest["shards"][tag]["status"] == "complete", (tag, manifest["shards"])
        assert manifest["shards"][tag]["pending"] == 0
    assert manifest["status"] == "complete"
    ids = set(results.grid(out)["run_id"])
    assert len(ids) == CUT_NETS
    assert results.done_ids(out) == set(sweepnet.load(out)["run_id"]) == ids

    summary = engine.run_sweep(s, out, fresh=True, progress=False)
    assert (summary.trained, summary.skipped) == (CUT_NETS, 0)
    assert {f.split("-")[0] for f in os.listdir(os.path.join(out, "runs"))} == {"s0of1"}
    assert results.done_ids(out) == ids


def test_a_part_whose_files_disagree_is_reported_with_its_reason(tmp_path, cut_reference, capsys):
    """A part whose curves file holds another part's runs (each file readable on its own) is
    quarantined, with a warning that names the part and says why."""
    ref, _ = cut_reference
    out = str(tmp_path / "out")
    shutil.copytree(ref, out)
    first, second = sorted(part_ids(out))[:2]
    shutil.copy(os.path.join(out, "curves", second + ".parquet"),
                os.path.join(out, "curves", first + ".parquet"))
    capsys.readouterr()
    done = results.Store.open(out, spec.loads(CUT_SPEC)).done_ids()
    (line,) = [x for x in capsys.readouterr().err.splitlines() if "corrupt part" in x]
    assert f"{first}.parquet: corrupt part (ValueError: curves part does not match its runs " \
           "part); moved to corrupt/" in line
    assert len(done) == CUT_NETS - CUT_CALLS[0]
    assert first not in part_ids(out) and len(os.listdir(os.path.join(out, "corrupt"))) == 3


def test_part_files_skip_hidden_files(tmp_path):
    """An AppleDouble file (``._NAME``, what macOS writes beside each file on a foreign disk)
    and a temporary file are not parts, whatever their names end with."""
    root = str(tmp_path)
    for sub in ("runs", "curves"):
        os.makedirs(os.path.join(root, sub))
        for name in ("s0of1-b000-aaa.parquet", "._s0of1-b000-aaa.parquet",
                     ".tmp-s0of1-b000-bbb.parquet"):
            open(os.path.join(root, sub, name), "w").close()
    for sub in ("runs", "curves"):
        assert results.part_files(root, sub) == [
            os.path.join(root, sub, "s0of1-b000-aaa.parquet")]
