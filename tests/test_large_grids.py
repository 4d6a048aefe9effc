"""What makes a million-network grid fast to plan and write keeps every id and number: run ids
from a seed template, run keys shared along seeds, and a call's table built as columns."""

import os
import random

import numpy as np
import pandas as pd
import pytest

from sweepnet.engine import plan
from sweepnet.store import tables
from sweepnet.sweep import models, spec
from sweepnet.train.step import Output

GRID = """
name = "g"
[data]
dataset = ["disk_annulus", "xor", "two_spirals"]
noise = [0.0, 0.05]
[data.two_spirals]
turns = [1.0, 1.5]
[model]
width = [1, 3]
depth = [1, 2]
activation = ["tanh", "relu"]
[train]
learning_rate = [0.01, 0.1]
seeds = 7
"""


def test_grid_ids_and_shared_keys_equal_the_ones_computed_alone():
    s = spec.loads(GRID)
    runs = plan.expand(s)
    assert [r.config for r in runs] == s.grid()
    assert [r.index for r in runs] == list(range(len(runs)))
    for r in random.Random(0).sample(runs, 200):
        alone = plan.Run(r.index, spec.run_id(r.config), r.config)
        assert (r.run_id, r.key, r.kind) == (alone.run_id, alone.key, alone.kind)
        assert plan.family_of(r) == plan.family(r.config)


@pytest.mark.parametrize("base", [
    {"dataset": "xor", "learning_rate": 0.1, "noise": 0.0, "flag": True, "none": None},
    {"seed_like": -7_364_921_850_123_457, "text": '"seed": 1'},  # the template's own marks
])
def test_seeded_ids_equal_run_id(base):
    seeds = [0, 1, 17, 2**40, -3, "5", 2.0]
    assert spec.seeded_ids(base, seeds) == [spec.run_id({**base, "seed": s}) for s in seeds]


def fake_output(n: int, lanes: int, n_evals: int) -> Output:
    rng = np.random.default_rng(0)
    f = lambda *shape: rng.random((lanes, *shape), np.float32)
    return Output(params={"w": f(2, 3)}, train_loss=f(), train_acc=f(), test_acc=f(),
                  steps_to_fit=np.array([100, -1, 0, 300][:lanes], np.int32),
                  diverged=np.array([False, False, True, False][:lanes]),
                  curve_loss=f(n_evals), curve_train_acc=f(n_evals), curve_test_acc=f(n_evals),
                  margin=f(), worst_margin=f(), certified=np.array([True, False, True, True]),
                  max_grad=f())


@pytest.mark.parametrize("dataset", ["disk_annulus", "xor"])  # known topology, and not
def test_a_calls_table_holds_each_networks_values(dataset):
    s = spec.loads(GRID.replace('["disk_annulus", "xor", "two_spirals"]', f'"{dataset}"')
                   .replace("[data.two_spirals]\nturns = [1.0, 1.5]\n", ""))
    runs = [r for r in plan.expand(s) if r.config["noise"] == 0.0][:3]
    static = plan.static_of(runs[0].config, 3, 2)
    out = fake_output(3, 4, len(static.eval_steps))
    out = out._replace(test_acc=np.array([1.0, 1.0, 1.0, 0.5], np.float32))
    df, curves, params = tables.to_frames(static, runs, out, s, {"part": "p0", "bucket": 1})
    assert list(df["run_id"]) == [r.run_id for r in runs]
    assert list(df["grid_index"]) == [r.index for r in runs]
    assert list(df["seed"]) == [r.config["seed"] for r in runs]
    assert list(df["train_loss"]) == [float(v) for v in out.train_loss[:3]]
    assert df["steps_to_fit"].dtype == "Int64" and df["steps_to_fit"].isna().tolist() == [
        False, True, False]
    assert df["steps_to_fit"].iloc[0] == 100 and df["steps_to_fit"].iloc[2] == 0
    assert df["separated"].tolist() == [True, True, False]  # the diverged one did not separate
    assert df["certified"].dtype == "boolean"
    if dataset == "disk_annulus":
        assert df["certified"].tolist() == [True, False, True]
    else:
        assert df["certified"].isna().all()
    assert df["n_params"].tolist() == [models.n_params("mlp", 2, 1, 1, 1)] * 3  # width 1, depth 1
    assert (df["part"] == "p0").all() and (df["bucket"] == 1).all()
    assert list(df.columns[:3]) == ["run_id", "sweep", "grid_index"]
    assert len(curves) == 3 * len(static.eval_steps) and params["w"].shape == (3, 2, 3)


def test_a_folders_grid_table_is_its_specs_grid_row_by_row(tmp_path):
    s = spec.loads(GRID)
    root = str(tmp_path / "r")
    os.makedirs(os.path.join(root, "runs"))
    with open(os.path.join(root, "spec.toml"), "w") as f:
        f.write(s.to_toml())
    rows = pd.DataFrame([{"run_id": spec.run_id(c), "sweep": s.name, "grid_index": i, **c}
                         for i, c in enumerate(s.grid())])  # the definition, a dict a run
    got = tables.grid(root)
    pd.testing.assert_frame_equal(got, rows)
    assert tables.grid_ids(root) == list(rows["run_id"])
