"""Job arrays: ``--shard I/N`` splits the grid deterministically and in balance, and shards
running at the same time into one folder add up to the whole sweep."""

import os
import shutil
import subprocess

import pandas as pd
import pytest

import sweepnet
from conftest import TINY_MEMORY, runs_table, sweepnet_command
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.store import query, results
from sweepnet.sweep import spec

SPEC = """
name = "array"
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
seeds = 6
eval_every = 20
"""
N_NETS = 24



@pytest.mark.parametrize("count", [2, 3, 5])
def test_shards_are_disjoint_balanced_and_cover_the_grid(count):
    s = spec.loads(SPEC.replace("width = [2, 3]", "width = [1, 2, 3, 5]"))
    p = plan.make_plan(s, 2)
    shards = [plan.shard_runs(p.runs, p.runs, i, count) for i in range(count)]
    ids = [r.run_id for sh in shards for r in sh]
    assert len(ids) == len(set(ids)) == len(p.runs)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    for b in p.buckets:  # balanced inside every bucket too (each shard compiles alike)
        sizes = [sum(r in b.runs for r in sh) for sh in shards]
        assert max(sizes) - min(sizes) <= 1


def test_shards_do_not_depend_on_the_device_count():
    s = spec.loads(SPEC)
    one, four = plan.make_plan(s, 1), plan.make_plan(s, 4)
    for i in range(3):
        a = [r.run_id for r in plan.shard_runs(one.runs, one.runs, i, 3)]
        b = [r.run_id for r in plan.shard_runs(four.runs, four.runs, i, 3)]
        assert a == b
    assert [b.static for b in one.buckets] == [b.static for b in four.buckets]


@pytest.mark.slow
def test_two_shards_at_once_into_one_folder_equal_the_whole_sweep(tmp_path):
    path = tmp_path / "array.toml"
    path.write_text(SPEC)
    out = str(tmp_path / "out")
    cmd = sweepnet_command("run", str(path), "--out", out, "--quiet", "--max-memory",
                           str(TINY_MEMORY), "--fresh")  # --fresh must not wipe the sibling
    procs = [
        subprocess.Popen(
            cmd + ["--shard", f"{i}/2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        assert p.returncode == 0, stderr
        assert f"trained {N_NETS // 2} networks" in stdout

    whole = str(tmp_path / "whole")
    engine.run_sweep(spec.loads(SPEC), whole, progress=False, max_memory=TINY_MEMORY)
    df = sweepnet.load(out)
    assert df["run_id"].is_unique and len(df) == N_NETS
    assert {p.split("-")[0] for p in df["part"]} == {"s0of2", "s1of2"}
    # same chunk size and padding as the whole sweep: bit-for-bit equal
    pd.testing.assert_frame_equal(runs_table(out), runs_table(whole), check_exact=True)
    got = query.query(out, "select count(*) as n, count(distinct run_id) as ids from runs")
    assert got.iloc[0].tolist() == [N_NETS, N_NETS]
    got = query.query(out, "select count(*) as n from curves")
    assert got.iloc[0, 0] == N_NETS * 3
    curves = sweepnet.load_curves(out)
    assert not curves.duplicated(["run_id", "step"]).any()
    manifest = results.read_manifest(out)
    assert manifest["status"] == "complete"
    assert {k: v["status"] for k, v in manifest["shards"].items()} == {
        "s0of2": "complete",
        "s1of2": "complete",
    }


def test_fresh_in_a_job_array_removes_only_its_own_parts(tmp_path, tiny_results):
    out = str(tmp_path / "out")
    shutil.copytree(tiny_results, out)
    with open(os.path.join(out, "spec.toml")) as f:
        s = spec.loads(f.read())
    before = sorted(os.listdir(os.path.join(out, "runs")))
    own = os.path.join(out, "runs", "s1of2-b000-000000000000.parquet")
    shutil.copy(os.path.join(out, "runs", before[0]), own)
    results.Store.open(out, s, fresh=True, tag="s1of2", shared=True)
    assert sorted(os.listdir(os.path.join(out, "runs"))) == before  # siblings' parts kept
    other = spec.loads(spec.dumps_toml({**s.tree, "name": "other"}))
    results.Store.open(out, other, fresh=True, tag="s1of2", shared=True)
    assert os.listdir(os.path.join(out, "runs")) == []  # another spec's results: wiped


def test_a_shard_holds_the_runs_it_held_in_0_5_4():
    """A job array started with one version resumes with the next: shard I of N must deal
    the same runs (these are 0.5.4's, for a grid of two datasets, two activations, one of
    them outside the fused kernel)."""
    s = spec.loads("""
name = "array"
[data]
dataset = ["disk_annulus", "xor"]
[model]
width = [1, 2, 3, 5]
depth = [1, 2]
activation = ["tanh", "elu"]
[train]
steps = 60
seeds = 2
""")
    p = plan.make_plan(s, 2)
    assert sorted(r.index for r in plan.shard_runs(p.runs, p.runs, 0, 3)) == [
        0, 5, 6, 11, 12, 17, 18, 23, 24, 29, 30, 33, 34, 39, 40, 45, 46, 51, 52, 57, 58, 63]
