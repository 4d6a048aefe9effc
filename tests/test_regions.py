"""The topology of each network's decision region (train.regions, the runs columns region_*) and
the narrow-network theorems checked on every network (the ``theorems`` view,
measure.regions.theorem_checks)."""

import os
import shutil

import jax.numpy as jnp
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

import sweepnet
from sweepnet.measure import regions as measure_regions
from sweepnet.store import query, results
from sweepnet.store.tables import region_columns
from sweepnet.sweep import models
from sweepnet.train import regions
from sweepnet.train.step import Static

BOX = (np.array([-2.0, -2.0]), np.array([2.0, 2.0]))
STAR = np.array([[np.cos(a), np.sin(a)] for a in np.pi / 2 + 2 * np.pi * np.arange(3) / 3])


def layer(kernel, bias):
    return {"kernel": jnp.asarray(kernel, jnp.float32), "bias": jnp.asarray(bias, jnp.float32)}


def net(*layers):
    """A parameter tree: hidden layers, then the read-out (kernels ``(out, in)``)."""
    tree = {f"hidden_{i}": lay for i, lay in enumerate(layers[:-1])}
    return {"params": {**tree, "out": layers[-1]}}


def numbers(params, width, depth, activation, box=BOX, res=regions.GRID):
    model = models.build("mlp", width, depth, activation, 1)
    z = model.apply(params, jnp.asarray(regions.grid_points(*box, res)), width, 1.0)
    got = regions.region_numbers(np.asarray(z[0] > 0).reshape(1, res, res))
    return tuple(int(got[c][0]) for c in regions.COLUMNS)


# hand-set networks whose regions are known: (b0, b1, bounded, class-0 components)
TRIANGLE = (net(layer(STAR, [0, 0, 0]), layer([[-1, -1, -1]], [1])), 3, 1, "relu")
HALF_PLANE = (net(layer([[1, 0]], [0]), layer([[1]], [0])), 1, 1, "tanh")
# relu(s - 0.5) - 2 relu(s - 1) - 0.05 > 0 for 0.55 < s < 1.45, s the triangle's gauge
RING = (net(layer(STAR, [0, 0, 0]), layer([[1, 1, 1], [1, 1, 1], [0, 0, 0]], [-0.5, -1, 0]),
            layer([[1, -2, 0]], [-0.05])), 3, 2, "relu")
# tanh(2 x1) - 1.5 tanh(x1): rank-1 first layer; the strip 0 < x1 < 0.66 and x1 < -0.66
TWO_STRIPS = (net(layer([[1, 0], [2, 0]], [0, 0]), layer([[-1.5, 1]], [0])), 2, 1, "tanh")
KNOWN = [(TRIANGLE, (1, 0, 1, 1)), (HALF_PLANE, (1, 0, 0, 1)), (RING, (1, 1, 1, 2)),
         (TWO_STRIPS, (2, 0, 0, 2))]


@pytest.mark.parametrize(("network", "expected"), KNOWN, ids=["triangle", "half-plane", "ring",
                                                                "two-strips"])
def test_hand_set_networks_have_their_known_regions(network, expected):
    params, width, depth, act = network
    assert numbers(params, width, depth, act) == expected


def test_the_labelling_is_per_grid_and_dual():
    """A stack is labelled grid by grid (a component does not run into the next grid), class 1
    8-connected and class 0 4-connected: a diagonal pair of cells is one class-1 component
    and leaves two class-0 ones, and a diagonal ring of class 1 encloses a hole."""
    g = np.zeros((3, 8, 8), bool)
    g[0, 2, 2] = g[0, 3, 3] = True  # a diagonal pair, inside
    g[1, 0, :] = True  # a border row
    g[2, 2:5, 2:5] = True
    g[2, 3, 3] = False  # a one-cell hole
    got = regions.region_numbers(g)
    assert got["region_b0"].tolist() == [1, 1, 1]
    assert got["region_bounded"].tolist() == [1, 0, 1]
    assert got["region_b1"].tolist() == [0, 0, 1]
    assert got["region0_b0"].tolist() == [1, 1, 2]


def test_the_engine_stores_the_region_of_each_stored_network(tiny_results):
    """The engine's columns (its grid evaluated inside the training program, bit-packed, labelled
    on the host) equal the region recomputed from each stored, unpadded network: the width-2
    networks were trained padded to width 3, so this is the padded-unit invariance too."""
    runs = sweepnet.load(tiny_results)
    assert all(runs[c].dtype == "Int64" and runs[c].notna().all() for c in regions.COLUMNS)
    runs = runs[runs["width"] == 2]  # trained padded to width 3 (two compiles, not four)
    again = measure_regions.region_table(tiny_results, runs)
    stored = runs.set_index("run_id")[list(regions.COLUMNS)].astype("int64")
    pd.testing.assert_frame_equal(again.loc[stored.index], stored, check_dtype=False)


def test_regions_are_null_off_2d_binary_data():
    three_d = Static(arch="mlp", in_dim=3, n_out=1, width=2, depth=1, activations="tanh",
                     optimizer="adam", steps=1, eval_every=1, batch_size=0, n_train=4, n_test=4)
    cols = region_columns(three_d, np.zeros((3, 1), np.uint8), 2)
    assert set(cols) == set(regions.COLUMNS) and all(pd.isna(v).all() for v in cols.values())
    assert regions.applies(2, 1) and not regions.applies(3, 1) and not regions.applies(2, 3)


def test_connectedness_is_not_claimed_for_tanh_past_one_layer():
    """Why the ``connected`` theorem's view lists bounded activations at depth 1 only: a
    width-2, depth-2 tanh network with full-rank weights whose region has two components,
    on the engine's box and on one 8 times wider (tanh's range lets the second layer fold)."""
    params = net(layer(np.eye(2) / 4, [0, 0]), layer([[3, 0], [6, 0.1]], [0, 0]),
                 layer([[-1.5, 1]], [0]))
    assert numbers(params, 2, 2, "tanh")[0] == 2
    assert numbers(params, 2, 2, "tanh", box=(BOX[0] * 8, BOX[1] * 8), res=256)[0] == 2


def _set_network(root: str, run_id: str, params) -> None:
    """Replace a stored network's parameters: each array's top-left block (the stored ones are
    padded to the program's width and depth; the rest is zeroed)."""
    row = sweepnet.load(root).set_index("run_id").loc[run_id]
    path = os.path.join(root, "params", f"{row['part']}.npz")
    with np.load(path) as f:
        arrays = dict(f)
    i = int(np.flatnonzero(arrays["run_id"] == run_id)[0])
    for name, lay in params["params"].items():
        for k, v in lay.items():
            v = np.asarray(v)
            arrays[f"params/{name}/{k}"][i] = 0
            arrays[f"params/{name}/{k}"][i][tuple(slice(0, n) for n in v.shape)] = v
    np.savez(path, **arrays)


def _set_columns(root: str, values: dict[str, dict[str, int]]) -> None:
    """Write region numbers into the runs parts (as if the engine had measured them)."""
    for path in results.part_files(root, "runs"):
        df = pq.read_table(path).to_pandas()
        for run_id, cols in values.items():
            for c, v in cols.items():
                df.loc[df["run_id"] == run_id, c] = v
        df.to_parquet(path, index=False)


def test_theorem_checks_flag_violations_and_explain_them(tiny_results, tmp_path):
    """The tiny sweep's width-2 tanh networks (both theorems apply at depth 1, unboundedness at
    depth 2), three of them changed: a half-plane (holds), the rank-1 two strips (disconnected
    on every grid and box: ``unexplained``: its weights miss the theorem's full-rank
    hypothesis), and a trained network whose stored numbers were tampered with (``mismatch``:
    they are not the stored network's, a bug)."""
    root = str(tmp_path / "r")
    shutil.copytree(tiny_results, root)
    runs = sweepnet.load(root)
    narrow = runs[runs["width"] == 2].sort_values(["depth", "seed"])
    good, strips, tampered, trained = narrow["run_id"]
    half_plane = net(layer([[1, 0], [0, 0]], [0, 0]), layer([[1, 0]], [0]))
    _set_network(root, good, half_plane)
    _set_network(root, strips, TWO_STRIPS[0])
    measured = measure_regions.region_table(root, narrow)
    numbers_of = {i: measured.loc[i].to_dict() for i in narrow["run_id"]}
    numbers_of[tampered] = {**numbers_of[tampered], "region_bounded": 1}
    _set_columns(root, numbers_of)
    view = query.query(root, "SELECT theorem, run_id FROM theorems")
    assert sorted(view["theorem"]) == ["connected"] * 2 + ["unbounded"] * 4
    checks = measure_regions.theorem_checks(root).set_index(["theorem", "run_id"])
    assert checks.loc[("connected", good), "holds"] and checks.loc[("unbounded", good), "holds"]
    assert pd.isna(checks.loc[("connected", good), "cause"])
    assert not checks.loc[("connected", strips), "holds"]
    assert checks.loc[("connected", strips), "cause"] == "unexplained"
    assert checks.loc[("unbounded", strips), "holds"]  # two components, both unbounded
    assert not checks.loc[("unbounded", tampered), "holds"]
    assert checks.loc[("unbounded", tampered), "cause"] == "mismatch"
    assert checks.loc[("unbounded", trained), "holds"]


def test_the_theorems_view_is_empty_for_older_folders():
    old = os.path.join(os.path.dirname(__file__), "data", "results-0.5.4")
    assert len(query.query(old, "SELECT * FROM theorems")) == 0
    assert len(query.query(old, "SELECT * FROM runs")) == 8
