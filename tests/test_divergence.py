"""Divergence is contained: a network whose loss goes non-finite is flagged, and the networks
that share its calls (and devices) are bit-for-bit what they are without it."""

import numpy as np
import pandas as pd
import pytest

import sweepnet
from conftest import runs_table
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.sweep import spec

# A linear network trained by plain SGD at learning rate 1000 overflows to inf, then NaN,
# within a few steps. init_scale is the outer axis and learning_rate the inner one, so the
# grid alternates healthy and diverging networks and every call mixes the two.
SPEC = """
name = "div"
[data]
dataset = "disk_annulus"
n_train = 32
n_test = 128
[model]
width = 3
depth = 2
activation = "linear"
init_scale = [0.5, 0.75, 1.0, 1.25]
[train]
optimizer = "sgd"
learning_rate = [0.01, 1000.0]
steps = 40
seeds = 1
eval_every = 20
"""
HEALTHY = SPEC.replace("learning_rate = [0.01, 1000.0]", "learning_rate = 0.01")


def table(out: str) -> pd.DataFrame:
    return runs_table(out, drop=("grid_index",))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    mixed, healthy = spec.loads(SPEC), spec.loads(HEALTHY)
    static = plan.make_plan(mixed, 2).buckets[0].static
    assert static == plan.make_plan(healthy, 2).buckets[0].static  # same program, no padding
    # four networks per call (two per device) in both sweeps: the same XLA loop shapes
    budget = 4 * cost_lib.bytes_per_network(static)
    outs = {}
    for name, s in (("mixed", mixed), ("healthy", healthy)):
        outs[name] = str(tmp_path_factory.mktemp(name))
        engine.run_sweep(s, outs[name], progress=False, max_memory=budget)
    return outs


@pytest.mark.slow
def test_diverging_networks_are_flagged(swept):
    df = sweepnet.load(swept["mixed"])
    bad = df[df["learning_rate"] == 1000.0]
    assert len(bad) == 4 and bad["diverged"].all() and not bad["separated"].any()
    assert not np.isfinite(bad["train_loss"]).any()
    good = df[df["learning_rate"] == 0.01]
    assert not good["diverged"].any() and np.isfinite(good["train_loss"]).all()
    # every call held diverging and healthy networks side by side
    assert (df.groupby("part")["diverged"].agg(["any", "all"]).to_numpy() == [True, False]).all()
    assert set(df.groupby("part").size()) == {4}


@pytest.mark.slow
def test_neighbours_of_diverging_networks_are_bit_for_bit_unaffected(swept):
    mixed, healthy = table(swept["mixed"]), table(swept["healthy"])
    good = mixed[mixed["learning_rate"] == 0.01]
    assert list(good.index) == list(healthy.index) and len(good) == 4
    pd.testing.assert_frame_equal(good, healthy, check_exact=True)
    cm = sweepnet.load_curves(swept["mixed"]).set_index(["run_id", "step"]).sort_index()
    ch = sweepnet.load_curves(swept["healthy"]).set_index(["run_id", "step"]).sort_index()
    pd.testing.assert_frame_equal(cm.loc[ch.index], ch, check_exact=True)
    for run_id in healthy.index:
        (_, a), (_, b) = (sweepnet.load_params(swept[k], run_id) for k in ("mixed", "healthy"))
        for k in a["params"]:
            for leaf in a["params"][k]:
                np.testing.assert_array_equal(a["params"][k][leaf], b["params"][k][leaf])
