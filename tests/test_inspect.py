"""Single-network pictures: stored params reproduce the network, and every view is drawn."""

import numpy as np
import pandas as pd
import pytest

import sweepnet
from sweepnet.core.errors import SweepnetError
from sweepnet.measure import network as measured
from sweepnet.sweep import data
from sweepnet.views import charts
from sweepnet.views import network as inspect_lib


def _titles(spec) -> list[str]:
    out = []
    if isinstance(spec, dict):
        for k, v in spec.items():
            if k == "title" and isinstance(v, str) and v:
                out.append(v)
            out += _titles(v)
    elif isinstance(spec, list):
        for v in spec:
            out += _titles(v)
    return out


def fake_network(in_dim, width, depth, n_classes=2, activation="tanh", dataset="nested_spheres"):
    """A runs row and random params of that shape (``{'params': {'hidden_i', 'out'}}``)."""
    n_out = 1 if n_classes == 2 else n_classes
    rng = np.random.default_rng(0)
    layer = lambda o, i: {
        "kernel": rng.normal(size=(o, i)).astype(np.float32),
        "bias": rng.normal(size=(o,)).astype(np.float32),
    }
    tree = {f"hidden_{i}": layer(width, in_dim if i == 0 else width) for i in range(depth)}
    tree["out"] = layer(n_out, width)
    row = pd.Series(
        dict(
            run_id="fake",
            arch="mlp",
            width=width,
            depth=depth,
            activation=activation,
            n_classes=n_classes,
            in_dim=in_dim,
            init_scale=1.0,
            dataset=dataset,
            data_dim=in_dim,
            n_train=64,
            noise=0.0,
            data_seed=0,
        )
    )
    return row, {"params": tree}


def test_stored_params_reproduce_the_stored_test_accuracy(tiny_results):
    """Data regenerated from the row + stored params + models.build(...).apply = the run."""
    runs = sweepnet.load(tiny_results)
    for _, r in runs.iterrows():
        row, params = sweepnet.load_params(tiny_results, r["run_id"])
        split = data.make_split(
            row["dataset"],
            measured.data_params(row),
            int(row["n_train"]),
            int(row["n_test"]),
            float(row["noise"]),
            int(row["data_seed"]),
        )
        logits, hidden = measured.forward(row, params, split.x_test)
        assert logits.shape == (1, len(split.x_test))
        assert [h.shape for h in hidden] == [(row["width"], len(split.x_test))] * row["depth"]
        acc = np.mean((logits[0] > 0).astype(np.int32) == split.y_test)
        assert abs(acc - row["test_acc"]) <= 1.5 / len(split.x_test), r["run_id"]


def test_training_points_match_the_runs_data(tiny_results):
    row = sweepnet.load(tiny_results).iloc[0]
    x, y = measured.training_points(row)
    assert x.shape == (64, 2) and y.shape == (64,)
    split = data.make_split("disk_annulus", {}, 64, 1, 0.0, 0)
    np.testing.assert_allclose(x, split.x_train)


@pytest.mark.parametrize("width,n_panels", [(1, 1), (2, 1), (3, 3), (5, 1)])
def test_project_views_per_width(width, n_panels):
    rng = np.random.default_rng(0)
    h_pts, h_lines = rng.normal(size=(width, 50)), rng.normal(size=(width, 30))
    views = measured.project(h_pts, h_lines, [f"u{j}" for j in range(width)])
    assert len(views) == n_panels
    for _, _, pts, lines in views:
        assert pts.shape == (50, 2) and lines.shape == (30, 2)
    if width == 3:  # pairwise: the coordinates themselves
        np.testing.assert_array_equal(views[2][2], h_pts[[1, 2]].T)


def test_pca_view_keeps_a_planar_cloud_exactly():
    """Points on a 2-D plane in 5-D: the PCA view holds all the variance, distances kept."""
    rng = np.random.default_rng(1)
    basis = np.linalg.qr(rng.normal(size=(5, 2)))[0]  # orthonormal (5, 2)
    coords = rng.normal(size=(2, 40)) * np.array([[3.0], [1.0]])
    h = basis @ coords + 0.5
    ((xt, yt, pts, _),) = measured.project(h, h[:, :3], list("abcde"))
    assert "100%" in xt or "PC1" in xt
    d_in = np.linalg.norm(h[:, 0] - h[:, 1])
    np.testing.assert_allclose(np.linalg.norm(pts[0] - pts[1]), d_in, rtol=1e-6)


def test_decision_cells_binary_1d_3d_and_multiclass():
    row, params = fake_network(in_dim=2, width=3, depth=1)
    cells = measured.decision_cells(row, params, half=1.0, res=8)
    assert len(cells) == 64 and cells["p"].between(0, 1).all()
    mid = np.array([[(cells.x0[9] + 1.0 / 8), (cells.y0[9] + 1.0 / 8)]], np.float32)
    logit, _ = measured.forward(row, params, mid)
    assert (cells["p"][9] > 0.5) == (logit[0, 0] > 0)
    row1, params1 = fake_network(in_dim=1, width=2, depth=2)
    cells1 = measured.decision_cells(row1, params1, half=1.0, res=10)
    assert len(cells1) == 10 and (cells1.y0 == -1).all()
    row3, params3 = fake_network(in_dim=3, width=4, depth=1)
    assert len(measured.decision_cells(row3, params3, half=1.0, res=5)) == 25
    rowk, paramsk = fake_network(in_dim=2, width=3, depth=1, n_classes=3)
    cellsk = measured.decision_cells(rowk, paramsk, half=1.0, res=4)
    assert {"cls", "conf"} <= set(cellsk) and cellsk["conf"].between(1 / 3, 1).all()


def test_grid_lines_lie_on_the_slice():
    pts, ids = measured.grid_lines(4, half=1.0)
    assert pts.shape[1] == 4 and (pts[:, 2:] == 0).all()
    assert len(np.unique(ids)) == 2 * measured.GRID_LINES
    pts1, ids1 = measured.grid_lines(1, half=2.0)
    assert pts1.shape == (measured.GRID_SAMPLES, 1) and pts1.min() == -2.0


def test_plane_points_of_3d_data_are_the_nearest_to_the_slice():
    x = np.random.default_rng(0).normal(size=(400, 3)).astype(np.float32)
    y = np.zeros(400, np.int32)
    pts = inspect_lib.plane_points(x, y)
    assert len(pts) == 100
    cutoff = np.sort(np.abs(x[:, 2]))[99]
    kept = np.isin(x[:, 0], pts["u"].to_numpy())
    assert np.abs(x[kept, 2]).max() <= cutoff + 1e-6


def test_inspect_draws_boundary_input_layers_and_readout(tiny_results, tmp_path):
    runs = sweepnet.load(tiny_results)
    r = runs[(runs.width == 2) & (runs.depth == 2)].iloc[0]
    chart = inspect_lib.inspect(tiny_results, r["run_id"])
    titles = _titles(chart.to_dict())
    for want in (
        "decision boundary",
        "input space",
        "hidden layer 1: 2 units",
        "hidden layer 2: 2 units",
        "read-out: logit (class 1 where > 0)",
    ):
        assert want in titles, (want, titles)
    charts.save(chart, str(tmp_path / "n.png"))
    assert (tmp_path / "n.png").stat().st_size > 20000
    r3 = runs[(runs.width == 3) & (runs.depth == 1)].iloc[0]
    titles3 = _titles(inspect_lib.inspect(tiny_results, r3["run_id"]).to_dict())
    assert "hidden layer 1: 3 units (pairwise)" in titles3
    assert {"layer 1 unit 0", "layer 1 unit 1", "layer 1 unit 2"} <= set(titles3)


def test_inspect_unknown_run(tiny_results):
    with pytest.raises(SweepnetError, match="no run with id 'nope'"):
        inspect_lib.inspect(tiny_results, "nope")


def test_boundary_grid_one_median_seed_per_configuration(tiny_results):
    runs = sweepnet.load(tiny_results)
    cells, points, info = inspect_lib.boundary_frames(tiny_results, runs)
    assert info["column"] == "width" and info["row_title"] == "depth"
    assert cells["run_id"].nunique() == 4 and points["run_id"].nunique() == 4
    for run_id in cells["run_id"].unique():
        r = runs[runs.run_id == run_id].iloc[0]
        group = runs[(runs.width == r.width) & (runs.depth == r.depth)]
        assert r["test_acc"] == sorted(group["test_acc"])[(len(group) - 1) // 2]
    with pytest.raises(SweepnetError, match="too many"):
        inspect_lib.boundary_frames(tiny_results, runs, max_panels=3)


MIXED_SPEC = """
name = "mixed"
[data]
dataset = ["interval_1d", "nested_spheres"]
n_train = 64
n_test = 64
[data.nested_spheres]
dim = 3
[model]
width = [1, 4]  # 3 units (pairwise) are drawn and checked on the tiny sweep above
depth = 1
[train]
steps = 10
seeds = 1
eval_every = 5
"""


@pytest.mark.slow
def test_inspect_and_boundary_on_1d_and_3d_inputs(tmp_path):
    """1-D inputs draw as strips, 3-D inputs on a slice and pairwise; width 4 layers by PCA."""
    from sweepnet.engine import run as engine
    from sweepnet.sweep import spec

    out = str(tmp_path / "mixed")
    engine.run_sweep(spec.loads(MIXED_SPEC), out, progress=False)
    runs = sweepnet.load(out)
    for _, r in runs.iterrows():
        chart = inspect_lib.inspect(out, r["run_id"])
        titles = _titles(chart.to_dict())
        if r["in_dim"] == 1:
            assert "decision boundary (1-D strip)" in titles
        else:
            assert "decision boundary (slice x2.. = 0)" in titles
            assert any(t.startswith("input space, grid on the slice") for t in titles)
        if r["width"] == 4:
            assert "hidden layer 1: 4 units (PCA)" in titles
    chart = charts.from_results(out, "boundary")
    spec_ = chart.to_dict()
    assert spec_["facet"]["row"]["title"] == "dataset"
    charts.save(chart, str(tmp_path / "b.png"))
    charts.save(inspect_lib.inspect(out, runs.iloc[-1]["run_id"]), str(tmp_path / "i.png"))
