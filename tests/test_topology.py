"""sweepnet.topology: Betti numbers by layer (Naitzat et al. 2020's kNN / hop distance / VR)."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest

from sweepnet import cli, data, query, topology
from sweepnet.errors import SweepnetError

KNOWN = [n for n in data.DATASETS if n != "file" and data.betti(n, {}) is not None]
THREE_D = {n for n in KNOWN if data.DATASETS[n].dim(data.default_params(n)) >= 3}


def test_known_topology_covers_the_shapes_the_design_names():
    assert {"interval_1d", "disk_annulus", "nested_spheres", "hopf_link", "unlinked_rings",
            "naitzat_d1", "naitzat_d2", "naitzat_d3"} <= set(KNOWN)
    assert data.betti("disk_annulus", {"inner": 0.7}) is None  # radii that overlap
    assert data.betti("nested_spheres", {"dim": 2}) == data.betti("disk_annulus", {})
    assert data.betti("file", {"path": "x.csv"}) is None


def test_betti_numbers_of_hand_made_clouds():
    t = np.linspace(0, 2 * np.pi, 120, endpoint=False)
    circle = np.stack([np.cos(t), np.sin(t)], 1)
    assert topology.betti_numbers(circle, 4, 1) == (1, 1, 0)
    # a layer that maps many points onto one (ReLU): one point, not a clique of false cycles
    piled = np.concatenate([circle, np.repeat(circle[:1], 300, axis=0)])
    assert topology.betti_numbers(piled, 4, 2) == (1, 1, 0)
    two = np.concatenate([circle, circle + 5])
    assert topology.betti_numbers(two, 4, 2) == (2, 2, 0)
    # a scale past the circle's size fills it in (here: 2-NN graph of a 12-gon, hops >= 6)
    assert topology.betti_numbers(circle[::10], 2, 6)[1] == 0
    rng = np.random.default_rng(0)
    sphere = rng.normal(size=(400, 3))
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    assert topology.betti_numbers(sphere, 14, 2, maxdim=2) == (1, 0, 1)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in THREE_D
                                  else n for n in KNOWN])
def test_input_gives_the_known_betti_numbers_for_three_data_seeds(name):
    scale = topology.calibrate(name, {})  # the stored setting of the default configuration
    known = data.betti(name, {})
    for seed in (0, 1, 2):
        n = topology.default_points(name)
        x, y = topology.class_points(name, {}, n, 0.0, seed)
        assert np.bincount(y).tolist() == [n] * 2
        got = topology.input_betti(x, y, scale, topology.maxdim_of(x.shape[1]))
        assert got == known, (name, seed, scale, got)


def test_calibration_searches_and_fails_loudly():
    s = topology.calibrate("disk_annulus", {"inner": 0.3}, n_points=400, use_table=False)
    assert s.source == "calibrated" and s.k in topology.KS and s.eps in topology.EPSILONS
    x, y = topology.class_points("disk_annulus", {"inner": 0.3}, 400, 0.0, 7)
    assert topology.input_betti(x, y, s, 1) == {0: (1, 1, 0), 1: (1, 0, 0)}
    assert topology.calibrate("moons", {}).source == "default"  # topology unknown
    with pytest.raises(SweepnetError, match="naitzat_d1"):  # 9 disks from 8 points
        topology.calibrate("naitzat_d1", {}, n_points=8, use_table=False)


def test_an_invertible_layer_keeps_the_betti_numbers():
    """tanh(W x + b) with an orthogonal W at moderate scale is a homeomorphism onto its image,
    so the disk and the annulus keep theirs; a layer that folds the plane does not."""
    scale = topology.calibrate("disk_annulus", {})
    x, y = topology.class_points("disk_annulus", {}, topology.DEFAULT_POINTS, 0.0, 0)
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(2, 2)))
    h = np.tanh(x @ (1.5 * q).T + np.array([0.2, -0.1]))
    assert topology.input_betti(h, y, scale, 1) == {0: (1, 1, 0), 1: (1, 0, 0)}
    folded = np.abs(x)  # folds the annulus onto a quarter: its hole is gone
    assert topology.input_betti(folded, y, scale, 1)[0][1] == 0


@pytest.fixture(scope="module")
def measured(tiny_results, tmp_path_factory):
    """A copy of the tiny sweep with its topology measured through the CLI."""
    out = str(tmp_path_factory.mktemp("topo") / "results")
    shutil.copytree(tiny_results, out)
    assert cli.main(["topology", out, "--points", "300", "--where", "depth = 2",
                     "--workers", "2", "--quiet"]) == 0
    return out


def test_cli_writes_the_table_and_the_query_view(measured, capsys):
    df = pd.read_parquet(os.path.join(measured, "topology.parquet"))
    assert list(df.columns) == topology.COLUMNS
    runs = query.query(measured, "SELECT run_id, depth FROM runs")
    assert set(df["run_id"]) == set(runs[runs["depth"] == 2]["run_id"])  # --where
    # input, two hidden layers, logit; two classes each
    assert sorted(df.groupby("run_id").size().unique()) == [8]
    assert set(df["layer"]) == {0, 1, 2, 3} and set(df["class"]) == {0, 1}
    assert (df["n_points"] == 300).all() and df["b2"].isna().all()  # 2-D data: no b2
    inputs = df[df["layer"] == 0].drop_duplicates(["class", "b0", "b1"])
    assert sorted(zip(inputs["class"], inputs["b0"], inputs["b1"], strict=True)) == [
        (0, 1, 1), (1, 1, 0)]
    assert cli.main(["query", measured, "SELECT layer, avg(b0) AS b0 FROM topology "
                     "GROUP BY layer ORDER BY layer", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "layer,b0" and len(lines) == 5


def test_cli_k_and_eps_override_and_rows_of_other_runs_stay(measured, tmp_path):
    out = str(tmp_path / "results")
    shutil.copytree(measured, out)
    assert cli.main(["topology", out, "--points", "300", "--where", "depth = 1 AND width = 3",
                     "--k", "7", "--eps", "1", "--workers", "1", "--quiet"]) == 0
    df = pd.read_parquet(os.path.join(out, "topology.parquet"))
    new = df[df["k"] == 7]
    assert len(new) and (new["eps"] == 1).all() and new["run_id"].nunique() == 2
    assert len(df) == len(new) + len(pd.read_parquet(os.path.join(measured, "topology.parquet")))


def test_unmeasured_folder_has_an_empty_topology_view(tiny_results):
    df = query.query(tiny_results, "SELECT * FROM topology")
    assert list(df.columns) == topology.COLUMNS and len(df) == 0


def test_bad_topology_input_is_a_one_line_error(measured, capsys):
    assert cli.main(["topology", measured, "--where", "width = 99", "--quiet"]) == 2
    assert "no finished runs match" in capsys.readouterr().err
    assert cli.main(["topology", measured, "--points", "2", "--quiet"]) == 2
    assert "--points" in capsys.readouterr().err
    assert cli.main(["topology", measured, "--where", "nonsense ~~", "--quiet"]) == 2


@pytest.mark.slow
def test_a_file_dataset_gets_measured_input_and_layers(tmp_path):
    from sweepnet import engine, spec

    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 600)
    ring = np.stack([np.cos(t), np.sin(t)], 1) + 0.03 * rng.normal(size=(600, 2))
    blob = 0.3 * rng.normal(size=(600, 2))
    x = np.concatenate([ring, blob]).astype(np.float32)
    y = np.repeat([0, 1], 600)
    np.savez(tmp_path / "mine.npz", x=x, y=y)
    s = spec.loads(f"""
name = "mine"
[data]
dataset = "file"
n_train = 800
n_test = 200
[data.file]
path = "{tmp_path / 'mine.npz'}"
[model]
width = 3
depth = 2
activation = "tanh"
[train]
learning_rate = 0.05
steps = 60
seeds = 1
eval_every = 30
""")
    out = str(tmp_path / "results")
    engine.run_sweep(s, out, progress=False)
    df = topology.measure(out, n_points=500, workers=1)
    assert (df["k"] == topology.DEFAULT_SCALE.k).all()  # unknown topology: the default
    first = df[df["layer"] == 0].set_index("class")
    assert (first.loc[0, "b0"], first.loc[0, "b1"]) == (1, 1)  # the ring, measured
    assert (first.loc[1, "b0"], first.loc[1, "b1"]) == (1, 0)  # the blob
    assert set(df["layer"]) == {0, 1, 2, 3} and (df["n_points"] == 500).all()


def test_betti_chart_inspect_captions_and_report_panel(measured):
    import json

    from sweepnet import charts, report, results
    from sweepnet import inspect as inspect_lib

    runs = results.load(measured)
    df = topology.load(measured).merge(runs[["run_id", "activation", "width", "depth"]],
                                       on="run_id")
    spec = charts.betti(df).to_dict()
    assert spec["facet"]["column"]["field"] == "width"  # one depth measured: facet by width
    rows = spec["data"]["values"] if "values" in spec.get("data", {}) else \
        next(iter(spec["datasets"].values()))
    assert {r["betti"] for r in rows} == {"b0", "b1"}  # no b2 for 2-D data
    run_id = df["run_id"].iloc[0]
    text = json.dumps(inspect_lib.inspect(measured, run_id).to_dict(), ensure_ascii=False)
    captions = inspect_lib._betti_captions(measured, run_id)
    assert sorted(captions) == [0, 1, 2, 3]  # input, two hidden layers, read-out
    assert all(c in text for c in captions.values())  # each written into the picture
    assert captions[0] == "class 0: β = (1, 1)  ·  class 1: β = (1, 0)"
    other = runs[~runs["run_id"].isin(df["run_id"])]["run_id"].iloc[0]
    assert "β = (" not in json.dumps(inspect_lib.inspect(measured, other).to_dict(),
                                     ensure_ascii=False)
    assert "Topology through the layers" in report.build_report(measured)


def test_claims_report_runs_on_measured_results(measured, tmp_path):
    import importlib.util

    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "analysis",
                        "naitzat2020.py")
    mod_spec = importlib.util.spec_from_file_location("naitzat2020", path)
    script = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(script)
    assert script.main(["--no-run", "--results", measured, "--out", str(tmp_path)]) == 0
    md = (tmp_path / "naitzat2020.md").read_text()
    rows = [r for r in md.splitlines() if r.startswith("| ")]
    # one activation and one depth here: those claims are not measured, and say so
    assert any("ReLU" in r and r.rstrip(" |").endswith("not measured") for r in rows)
    assert any("shallow" in r and "one depth only" in r for r in rows)
    assert any("narrower" in r and r.rstrip(" |").endswith(("agrees", "DISAGREES")) for r in rows)
    assert (tmp_path / "naitzat2020.html").exists()
