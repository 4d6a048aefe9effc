"""sweepnet topology's clouds (--cloud, --split, --grid) and the stability of an input whose
topology nobody knows (sweepnet.measure.clouds)."""

import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import write_params
from sweepnet import cli
from sweepnet.core.errors import SweepnetError
from sweepnet.measure import clouds, topology
from sweepnet.store import query, results


@pytest.fixture(scope="module")
def hand_set(tiny_results, tmp_path_factory):
    """A copy of the tiny sweep (disk_annulus) whose two width-2 depth-1 networks are set by
    hand: ``half`` predicts class 1 right of x0 = 0, ``none`` predicts class 0 everywhere."""
    out = str(tmp_path_factory.mktemp("clouds") / "results")
    shutil.copytree(tiny_results, out)
    runs = results.load(out)
    ids = sorted(runs[(runs["width"] == 2) & (runs["depth"] == 1)]["run_id"])
    identity = (np.eye(2), [0.0, 0.0])
    write_params(out, ids[0], [identity, ([[1.0, 0.0]], [0.0])])
    write_params(out, ids[1], [identity, ([[0.0, 0.0]], [-1.0])])
    return out, {"half": ids[0], "none": ids[1]}


def _by_layer(df: pd.DataFrame, run_id: str) -> dict:
    one = df[df["run_id"] == run_id]
    return {(int(r.layer), int(r["class"])): (int(r.b0), int(r.b1)) for _, r in one.iterrows()}


def test_grid_cloud_is_split_by_the_networks_prediction(hand_set):
    out, ids = hand_set
    where = "width = 2 AND depth = 1"
    df = topology.measure(out, where, workers=1, cloud="grid", split="predicted", grid=40)
    assert (df["cloud"] == "grid").all() and (df["split"] == "predicted").all()
    assert (df["grid"] == 40).all() and df["stable"].isna().all()  # known topology: null
    half, none = _by_layer(df, ids["half"]), _by_layer(df, ids["none"])
    # the input is each network's own: two half squares, or the whole square and nothing
    assert half[0, 0] == half[0, 1] == (1, 0)
    assert none[0, 0] == (1, 0) and all(none[layer, 1] == (0, 0) for layer in (0, 1, 2))
    assert set(df["layer"]) == {0, 1, 2}
    # the same networks on the training points split by label: the annulus has its hole
    true = topology.measure(out, where, workers=1)
    assert _by_layer(true, ids["half"])[0, 0] == _by_layer(true, ids["none"])[0, 0] == (1, 1)
    # both measurements stay in the table, a query tells them apart
    got = query.query(out, "SELECT cloud, split, grid, count(*) AS n FROM topology "
                      "GROUP BY ALL ORDER BY cloud")
    assert got[["cloud", "split"]].values.tolist() == [["grid", "predicted"], ["train", "true"]]
    assert got["n"].tolist() == [12, 12] and pd.isna(got["grid"].iloc[1])


def test_a_class_cloud_larger_than_points_is_a_subsample_and_grid_side_counts(hand_set):
    out, ids = hand_set
    x = np.zeros((10, 2), np.float32)
    x[0] = [1.0, -0.5]
    g = clouds.grid_points(x, 88)
    assert g.shape == (88 * 88, 2) and np.isclose(g.min(), -1.1) and np.isclose(g.max(), 1.1)
    idx = clouds.class_index(np.array([0] * 30 + [1] * 5), [0, 1, 2], 10, 0)
    assert len(idx[0]) == 10 and set(idx[0]) <= set(range(30))
    assert idx[1].tolist() == [30, 31, 32, 33, 34] and len(idx[2]) == 0
    df = topology.measure(out, f"run_id = '{ids['none']}'", n_points=300, workers=1,
                          cloud="grid", split="predicted", grid=20, k=8, eps=1)
    assert (df["n_points"] == 300).all() and (df["grid"] == 20).all()


def test_test_cloud_and_predicted_split_are_their_own_measurements(hand_set):
    """A killed train-cloud run's part does not pass for a test-cloud measurement."""
    out, ids = hand_set
    where = f"run_id = '{ids['half']}'"
    train = topology.measure(out, where, workers=1)
    results.save_topology_part(out, train)  # as if a train run had been killed here
    test = topology.measure(out, where, workers=1, cloud="test")
    assert len(test) == 6 and (test["cloud"] == "test").all()
    assert _by_layer(test, ids["half"])[0, 0] == (1, 1)  # a fresh draw of the annulus
    predicted = topology.measure(out, where, workers=1, split="predicted")
    assert (predicted["split"] == "predicted").all()
    # predicted class 0: the left halves of the annulus and of the disk, apart
    assert _by_layer(predicted, ids["half"])[0, 0] == (2, 0)
    table = topology.load(out)
    mine = table[table["run_id"] == ids["half"]]
    assert {("train", "true"), ("test", "true"), ("train", "predicted")} <= set(
        zip(mine["cloud"], mine["split"], strict=True))


def test_grid_with_labels_and_grid_of_3d_data_are_one_line_errors(hand_set, capsys):
    out, _ = hand_set
    with pytest.raises(SweepnetError, match="--split true: the grid has no labels"):
        topology.measure(out, cloud="grid", split="true")
    assert cli.main(["topology", out, "--cloud", "grid", "--split", "true", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--split" in err
    with pytest.raises(SweepnetError, match="--cloud grid: only for 2-D data"):
        clouds.check("grid", "predicted", None, 3)
    with pytest.raises(SweepnetError, match="--grid 40: only with --cloud grid"):
        topology.measure(out, grid=40)


def _ring_and_blob(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 2 * np.pi, n)
    ring = np.stack([np.cos(t), np.sin(t)], 1) + 0.03 * rng.normal(size=(n, 2))
    blob = 0.3 * rng.normal(size=(n, 2))
    return np.concatenate([ring, blob]).astype(np.float32), np.repeat([0, 1], n)


def test_unknown_topology_gets_a_stable_scale_or_none():
    x, y = _ring_and_blob(600)
    found = clouds.stable_scale(x, y, 1, topology.KS, topology.EPSILONS)
    assert found is not None
    k, eps = found
    assert topology.betti_numbers(x[y == 0], k, eps) == (1, 1, 0)  # the ring's hole
    assert topology.betti_numbers(x[y == 1], k, eps) == (1, 0, 0)
    assert clouds.stable_at(x, y, k, eps, 1, topology.KS)
    # a tiny sample: every k joins (nearly) every pair, which proves nothing
    small, sy = _ring_and_blob(12)
    assert clouds.stable_scale(small, sy, 1, topology.KS, topology.EPSILONS) is None
    # sparse noise: the numbers change with k
    rng = np.random.default_rng(1)
    noise = rng.uniform(-1, 1, size=(120, 2)).astype(np.float32)
    assert not clouds.stable_at(noise, np.repeat([0, 1], 60), 6, 1, 1, topology.KS)
    said = []
    clouds.warn_unstable("mine.csv", 14, 2, said.append)
    assert said[0].startswith("sweepnet: warning: topology: mine.csv:") and "stable = false" in \
        said[0] and len(said[0].splitlines()) == 1
