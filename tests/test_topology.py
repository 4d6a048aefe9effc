"""sweepnet.measure.topology: Betti numbers by layer (Naitzat et al. 2020)."""

import importlib.util
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_SPEC, write_params
from sweepnet import cli
from sweepnet.core.errors import SweepnetError
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.measure import pool, topology
from sweepnet.measure.network import forward
from sweepnet.store import query, results
from sweepnet.sweep import data, spec
from sweepnet.views import charts, report
from sweepnet.views import network as inspect_lib

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


# unlinked_rings is hopf_link with its two rings moved apart along x: each class's cloud is
# hopf_link's, translated. betti_numbers is a function of the kNN graph of a cloud's distinct
# points (with k, eps, maxdim), so where the two graphs are equal and the stored settings and
# known numbers are too, hopf_link's case has computed unlinked_rings' Betti numbers already:
# its case checks that, instead of running ripser (b2: seconds a cloud) on the same complex.
TRANSLATED = {"unlinked_rings": "hopf_link"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in THREE_D
                                  else n for n in KNOWN])
def test_input_gives_the_known_betti_numbers_for_three_data_seeds(name):
    scale = topology.calibrate(name, {})  # the stored setting of the default configuration
    known = data.betti(name, {})
    twin = TRANSLATED.get(name)
    if twin:
        assert topology.calibrate(twin, {}) == scale and data.betti(twin, {}) == known
    for seed in (0, 1, 2):
        n = topology.default_points(name)
        x, y = topology.class_points(name, {}, n, 0.0, seed)
        assert np.bincount(y).tolist() == [n] * 2
        if twin:
            xt, yt = topology.class_points(twin, {}, n, 0.0, seed)
            for c in (0, 1):
                ours = topology.knn_graph(np.unique(x[y == c], axis=0), scale.k)
                theirs = topology.knn_graph(np.unique(xt[yt == c], axis=0), scale.k)
                assert ours.shape == theirs.shape and (ours != theirs).nnz == 0, (seed, c)
            continue
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


# --------------------------------------------------------------------------- known maps
# Networks written by hand, so every layer's topology is known: a layer tanh(W h + b) with an
# invertible W is a homeomorphism onto its image (tanh is strictly increasing in each
# coordinate), so it keeps each class's Betti numbers; a W of rank 1 maps the plane onto a
# monotone arc (a fold): every cycle dies and the components that overlap along the arc merge.


def _rot(t: float) -> np.ndarray:
    """The rotation ``(2, 2)`` by ``t`` radians."""
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])


def _tree(layers) -> dict:
    """A parameter tree (as ``results.load_params`` gives) from ``[(W (out, in), b (out,)),
    ...]``: the hidden layers in order, then the read-out."""
    names = [f"hidden_{i}" for i in range(len(layers) - 1)] + ["out"]
    return {"params": {n: {"kernel": np.asarray(w, np.float32), "bias": np.asarray(b, np.float32)}
                       for n, (w, b) in zip(names, layers, strict=True)}}


def _row(width: int, depth: int) -> pd.Series:
    """The runs-row fields ``measure.network.forward`` reads, for a binary tanh MLP."""
    return pd.Series({"arch": "mlp", "width": width, "depth": depth, "activation": "tanh",
                      "n_classes": 2})


def _reference(layers, x: np.ndarray) -> list[np.ndarray]:
    """The clouds of a tanh MLP ``[(W, b), ...]`` in numpy: ``x (n, in)``, each hidden layer
    ``(n, width)``, the logits ``(n, n_out)``."""
    clouds, h = [x], np.asarray(x, np.float64)
    for w, b in layers[:-1]:
        h = np.tanh(h @ np.asarray(w).T + np.asarray(b))
        clouds.append(h)
    w, b = layers[-1]
    return [*clouds, h @ np.asarray(w).T + np.asarray(b)]


def _two_rings_and_one() -> tuple[np.ndarray, np.ndarray]:
    """Class 0: two annuli around (-1.2, 0) and (1.2, 0), Betti (2, 2); class 1: one small
    annulus at the origin, (1, 1). 250 points each; ``x (750, 2)``, ``y (750,)``."""
    rng = np.random.default_rng(0)

    def ring(cx, r0, r1):
        t = rng.uniform(0, 2 * np.pi, 250)
        r = np.sqrt(rng.uniform(r0**2, r1**2, 250))  # uniform over the annulus
        return np.stack([cx + r * np.cos(t), r * np.sin(t)], 1)

    x = np.concatenate([ring(-1.2, 0.35, 0.5), ring(1.2, 0.35, 0.5), ring(0.0, 0.2, 0.3)])
    return x.astype(np.float32), np.repeat([0, 0, 1], 250)


def _apart(h: np.ndarray) -> np.ndarray:
    """The unit direction from the first ring's image to the second's, ``h (750, 2)``."""
    d = h[250:500].mean(0) - h[:250].mean(0)
    return d / np.linalg.norm(d)


def _hand_networks(x: np.ndarray) -> dict[str, tuple[list, dict[int, list[tuple[int, int]]]]]:
    """Four width-2, depth-2 tanh networks and the (b0, b1) of class 0 and class 1 that each
    layer must give (layer 0 the input, 1-2 hidden, 3 the logit)."""
    first = (_rot(0.3) @ np.diag([0.8, 1.1]), [0.1, -0.1])  # invertible
    second = (_rot(-0.4) @ np.diag([1.1, 0.9]), [0.0, 0.1])  # invertible
    d1 = _apart(_reference([first, first], x)[1])  # the rings' offset after layer 1
    d2 = _apart(_reference([first, second, second], x)[2])  # ... after layer 2
    across = lambda d: np.array([-d[1], d[0]])  # noqa: E731
    out = ([[1.0, 0.5]], [0.1])
    kept = [(2, 2), (1, 1)]
    return {
        # a fold along the rings' offset: two arcs, holes gone (b1 2 -> 0, b0 stays 2)
        "fold apart": ([first, (np.outer([1.2, -0.7], d1), [0.1, 0.0]), out],
                       {0: kept, 1: kept, 2: [(2, 0), (1, 0)], 3: [(2, 0), (1, 0)]}),
        # a fold across it: both rings land on one arc (b0 2 -> 1)
        "fold across": ([first, (np.outer([1.2, -0.7], across(d1)), [0.1, 0.0]), out],
                        {0: kept, 1: kept, 2: [(1, 0), (1, 0)], 3: [(1, 0), (1, 0)]}),
        # both hidden layers invertible; the 1-D logit is the only fold: two intervals ...
        "logit apart": ([first, second, ([d2], [0.0])],
                        {0: kept, 1: kept, 2: kept, 3: [(2, 0), (1, 0)]}),
        # ... or one
        "logit across": ([first, second, ([across(d2)], [0.0])],
                         {0: kept, 1: kept, 2: kept, 3: [(1, 0), (1, 0)]}),
    }


@pytest.mark.parametrize("name", ["fold apart", "fold across", "logit apart", "logit across"])
def test_every_layer_of_a_known_map_has_its_known_betti_numbers(name):
    """layer_clouds and the pool's measurement (betti_of_clouds) on networks written by hand:
    (b0, b1) of each class after each layer, the logit included, exactly."""
    x, y = _two_rings_and_one()
    layers, want = _hand_networks(x)[name]
    clouds = topology.layer_clouds(_row(2, 2), _tree(layers), x)
    assert [c.shape for c in clouds] == [(750, 2), (750, 2), (750, 2), (750, 1)]
    scale = topology.DEFAULT_SCALE
    which = [(i, c) for i in range(len(clouds)) for c in (0, 1)]
    betti = topology.betti_of_clouds([(scale.k, scale.eps, 1, clouds[i][y == c])
                                      for i, c in which], workers=1)
    got = {}
    for (i, _), b in zip(which, betti, strict=True):
        got.setdefault(i, []).append(b[:2])
    assert got == want, name


def test_layer_k_cloud_is_the_kth_hidden_activation(tiny_results):
    """A stored network's clouds: the input, then forward's hidden layers in order, then its
    logits, and each the tanh layers computed here in numpy (so neither a shuffle of the
    layers nor the input passed for a layer goes unseen)."""
    runs = results.load(tiny_results)
    run_id = runs[(runs["width"] == 3) & (runs["depth"] == 2)]["run_id"].iloc[0]
    row, params = results.load_params(tiny_results, run_id)
    x, _ = topology.class_points("disk_annulus", {}, 150, 0.0, 0)
    clouds = topology.layer_clouds(row, params, x)
    logits, hidden = forward(row, params, x)
    assert len(clouds) == len(hidden) + 2 == 4
    np.testing.assert_array_equal(clouds[0], x)
    for k, h in enumerate(hidden, 1):
        np.testing.assert_array_equal(clouds[k], h.T)
    np.testing.assert_array_equal(clouds[-1], logits.T)
    p = params["params"]
    layers = [(p[n]["kernel"], p[n]["bias"]) for n in ("hidden_0", "hidden_1", "out")]
    for got, want in zip(clouds, _reference(layers, x), strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    # the layers differ, so any mix-up of them shows above
    assert not np.allclose(clouds[1], clouds[2], atol=1e-2)


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
    assert (df["kind"] == df["layer"].map({0: "input", 1: "hidden", 2: "hidden", 3: "logit"})).all()
    assert (df["n_points"] == 300).all() and df["b2"].isna().all()  # 2-D data: no b2
    inputs = df[df["layer"] == 0].drop_duplicates(["class", "b0", "b1"])
    assert sorted(zip(inputs["class"], inputs["b0"], inputs["b1"], strict=True)) == [
        (0, 1, 1), (1, 1, 0)]
    assert cli.main(["query", measured, "SELECT layer, avg(b0) AS b0 FROM topology "
                     "GROUP BY layer ORDER BY layer", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0] == "layer,b0" and len(lines) == 5


def test_measure_gives_each_layer_of_stored_known_maps_its_betti_numbers(measured, tmp_path):
    """``measure`` on a results folder whose parameters are written by hand: disk_annulus
    (class 0 the annulus (1, 1), class 1 the disk (1, 0)) through known maps. Every row, per
    network, layer (0 input, 1..depth hidden, depth + 1 logit) and class, exactly."""
    out = str(tmp_path / "results")
    shutil.copytree(measured, out)  # its topology.json holds the 300-point scale already
    runs = results.load(out).sort_values("run_id")
    pick = lambda w, d, n=0: runs[(runs["width"] == w) & (runs["depth"] == d)]["run_id"].iloc[n]  # noqa: E731
    invertible = (1.2 * _rot(0.5) @ np.diag([1.0, 0.6]), [0.1, -0.2])
    fold = (np.outer([1.5, -0.8], [0.6, 0.8]), [0.1, 0.2])  # rank 1: the plane onto an arc
    logit = ([[1.0, 0.5]], [0.1])
    ring, disk, arc = (1, 1), (1, 0), (1, 0)
    nets = {  # run_id: (layers, [(class 0, class 1) per layer])
        pick(2, 2, 0): ([invertible, (0.9 * _rot(-1.1) @ np.diag([1.3, 0.8]), [-0.1, 0.05]),
                         logit], [(ring, disk), (ring, disk), (ring, disk), (arc, arc)]),
        pick(2, 2, 1): ([invertible, fold, logit],
                        [(ring, disk), (ring, disk), (arc, arc), (arc, arc)]),
        # width 3: the fold first (all three units read one projection), then invertible
        pick(3, 2): ([(np.outer([1.5, -0.8, 1.0], [0.6, 0.8]), [0.1, 0.2, 0.0]),
                      ([[1.0, 0.3, 0.0], [0.0, 1.0, 0.4], [0.2, 0.0, 1.0]], [0.0] * 3),
                      ([[1.0, 0.5, -0.3]], [0.0])],
                     [(ring, disk), (arc, arc), (arc, arc), (arc, arc)]),
        pick(2, 1): ([invertible, logit], [(ring, disk), (ring, disk), (arc, arc)]),
    }
    for run_id, (layers, _) in nets.items():
        write_params(out, run_id, layers)
    where = "run_id IN (" + ", ".join(f"'{r}'" for r in nets) + ")"
    new = topology.measure(out, where=where, n_points=300, workers=1)
    table = topology.load(out)
    for df in (new, table[table["run_id"].isin(nets)]):
        assert (df["n_points"] == 300).all() and df["b2"].isna().all()
        got = {r: {} for r in nets}
        for r, layer, c, b0, b1 in zip(*(df[k] for k in ("run_id", "layer", "class", "b0", "b1")),
                                       strict=True):
            got[r].setdefault(layer, {})[c] = (b0, b1)
        want = {r: {layer: {0: a, 1: b} for layer, (a, b) in enumerate(per_layer)}
                for r, (_, per_layer) in nets.items()}
        assert got == want
    # the last layer is the logit (depth + 1) of each network, not a hidden one
    depth = runs.set_index("run_id")["depth"]
    assert {r: int(new[new["run_id"] == r]["layer"].max()) for r in nets} == \
        {r: int(depth[r]) + 1 for r in nets}


def test_cli_k_and_eps_override_and_rows_of_other_runs_stay(measured, tmp_path, capsys):
    out = str(tmp_path / "results")
    shutil.copytree(measured, out)
    assert cli.main(["topology", out, "--points", "300", "--where", "depth = 1 AND width = 3",
                     "--k", "7", "--eps", "1", "--workers", "1", "--quiet"]) == 0
    df = pd.read_parquet(os.path.join(out, "topology.parquet"))
    new = df[df["k"] == 7]
    assert len(new) and (new["eps"] == 1).all() and new["run_id"].nunique() == 2
    assert len(df) == len(new) + len(pd.read_parquet(os.path.join(measured, "topology.parquet")))
    # before it starts: the clouds it will measure and a time; at the end: means by kind
    captured = capsys.readouterr()
    assert re.search(r"^topology: 12 clouds of 2 networks to measure, about \d+ (s|min) on 1 "
                     r"process$", captured.err, re.M), captured.err
    table = [line.split() for line in captured.out.splitlines()]
    assert ["kind", "activation", "networks", "clouds", "b0", "b1"] in table
    assert [r[:4] for r in table if r and r[0] in ("input", "hidden", "logit")] == [
        ["input", "tanh", "2", "4"], ["hidden", "tanh", "2", "4"], ["logit", "tanh", "2", "4"]]
    # layer 2 is the logit of a depth-1 network and a hidden layer of a depth-2 one
    depth = results.load(out).set_index("run_id")["depth"]
    two = df[df["layer"] == 2]
    assert set(two["kind"]) == {"logit", "hidden"}
    assert (two["kind"] == np.where(two["run_id"].map(depth) == 1, "logit", "hidden")).all()
    got = query.query(out, "SELECT kind, count(DISTINCT run_id) AS n FROM topology "
                           "WHERE layer = 2 GROUP BY kind ORDER BY kind")
    assert got.values.tolist() == [["hidden", 4], ["logit", 2]]


def test_a_table_written_before_kind_reads_with_kind(measured, tmp_path):
    """0.6's topology.parquet has no ``kind``: the loader and the query view derive it."""
    out = str(tmp_path / "results")
    shutil.copytree(measured, out)
    path = os.path.join(out, "topology.parquet")
    now = pd.read_parquet(path)
    now.drop(columns=["kind"]).to_parquet(path, index=False)
    assert topology.load(out)["kind"].tolist() == now["kind"].tolist()
    got = query.query(out, "SELECT run_id, layer, class, kind FROM topology")
    want = now[["run_id", "layer", "class", "kind"]]
    key = ["run_id", "layer", "class"]
    assert got.sort_values(key, ignore_index=True)["kind"].tolist() == \
        want.sort_values(key, ignore_index=True)["kind"].tolist()


def test_a_killed_run_resumes_without_measuring_finished_networks(measured, tmp_path,
                                                                   monkeypatch):
    """Killed after two parts (one network a part here), a run measures only the networks
    those parts lack, and its table equals one run's."""
    once, killed = str(tmp_path / "once"), str(tmp_path / "killed")
    for folder in (once, killed):  # the scale of 300 points is in topology.json already
        shutil.copytree(measured, folder, ignore=shutil.ignore_patterns("topology.parquet"))
    where = "depth = 2"  # 4 networks, 4 layers, 2 classes
    topology.measure(once, where=where, n_points=300, workers=1)
    monkeypatch.setattr(topology, "CHUNK_CLOUDS", 8)
    save = results.save_topology_part

    def killed_after_two(root, rows):
        if len(results.topology_part_files(root)) == 2:
            raise KeyboardInterrupt
        return save(root, rows)

    monkeypatch.setattr(results, "save_topology_part", killed_after_two)
    with pytest.raises(KeyboardInterrupt):
        topology.measure(killed, where=where, n_points=300, workers=1)
    assert not os.path.exists(os.path.join(killed, "topology.parquet"))
    assert len(results.topology_part_files(killed)) == 2
    monkeypatch.setattr(results, "save_topology_part", save)
    clouds, lines = [], []
    real = pool.measure_clouds
    monkeypatch.setattr(pool, "measure_clouds", lambda jobs: clouds.extend(jobs) or real(jobs))
    new = topology.measure(killed, where=where, n_points=300, workers=1, say=lines.append)
    assert len(clouds) == 2 * 3 * 2  # two networks' hidden layers and logits, per class
    assert lines[0].startswith("topology: 16 clouds of 2 networks to measure (2 measured "
                               "before, kept), about ")
    assert results.topology_part_files(killed) == []
    key = ["run_id", "layer", "class"]
    one = topology.load(once).sort_values(key, ignore_index=True)
    pd.testing.assert_frame_equal(topology.load(killed).sort_values(key, ignore_index=True), one)
    pd.testing.assert_frame_equal(new, one)


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
def test_a_file_dataset_gets_measured_input_and_layers(tiny_results, tmp_path):
    """A sweep of a ``file`` of one's own points (a ring and a blob): its input is measured at
    the first stable scale (unknown topology) and its layers with it; a tiny sample of it is
    unstable (a warning and ``stable = false``). The sweep has the tiny sweep's
    grid, budget and memory limit, so it runs the program that ``tiny_results`` compiled."""
    rng = np.random.default_rng(0)
    t = rng.uniform(0, 2 * np.pi, 600)
    ring = np.stack([np.cos(t), np.sin(t)], 1) + 0.03 * rng.normal(size=(600, 2))
    blob = 0.3 * rng.normal(size=(600, 2))
    x = np.concatenate([ring, blob]).astype(np.float32)
    y = np.repeat([0, 1], 600)
    path = tmp_path / "mine.npz"
    np.savez(path, x=x, y=y)
    s = spec.loads(TINY_SPEC.replace('"disk_annulus"', '"file"').replace(
        "[model]", f'[data.file]\npath = "{path}"\n[model]'))
    per_net = cost_lib.bytes_per_network(plan.make_plan(s, 2).buckets[0].static)
    out = str(tmp_path / "results")
    engine.run_sweep(s, out, progress=False, max_memory=4 * per_net)
    said = []
    df = topology.measure(out, where="width = 3 AND depth = 2 AND seed = 0", n_points=500,
                          workers=1, say=said.append)
    # unknown topology: the first scale where the input is stable, and no warning
    assert df["stable"].all() and not [s for s in said if "warning" in s]
    assert [v["stable"] for v in results.load_topology_scales(out).values()] == [True]
    first = df[df["layer"] == 0].set_index("class")
    assert (first.loc[0, "b0"], first.loc[0, "b1"]) == (1, 1)  # the ring, measured
    assert (first.loc[1, "b0"], first.loc[1, "b1"]) == (1, 0)  # the blob
    assert set(df["layer"]) == {0, 1, 2, 3} and (df["n_points"] == 500).all()
    # a tiny sample is unstable: a one-line warning, stable = false, the default scale
    said.clear()
    tiny = topology.measure(out, where="width = 3 AND depth = 2 AND seed = 0", n_points=6,
                            workers=1, say=said.append)
    warned = [s for s in said if s.startswith("sweepnet: warning: topology:")]
    assert len(warned) == 1 and str(path) in warned[0] and "\n" not in warned[0]
    assert (~tiny["stable"]).all() and (tiny["k"] == topology.DEFAULT_SCALE.k).all()


@pytest.mark.slow  # renders a chart, an inspect picture and a report: 5-17 s
def test_betti_chart_inspect_captions_and_report_panel(measured):
    runs = results.load(measured)
    df = topology.load(measured).merge(runs[["run_id", "activation", "width", "depth"]],
                                       on="run_id")
    chart = charts.betti(df).to_dict()
    assert chart["facet"]["column"]["field"] == "width"  # one depth measured: facet by width
    rows = chart["data"]["values"] if "values" in chart.get("data", {}) else \
        next(iter(chart["datasets"].values()))
    assert {r["betti"] for r in rows} == {"b0", "b1"}  # no b2 for 2-D data
    run_id = df["run_id"].iloc[0]
    text = json.dumps(inspect_lib.inspect(measured, run_id).to_dict(), ensure_ascii=False)
    captions = inspect_lib.betti_captions(measured, run_id)
    assert sorted(captions) == [0, 1, 2, 3]  # input, two hidden layers, read-out
    assert all(c in text for c in captions.values())  # each written into the picture
    assert captions[0] == "class 0: β = (1, 1)  ·  class 1: β = (1, 0)"
    other = runs[~runs["run_id"].isin(df["run_id"])]["run_id"].iloc[0]
    assert "β = (" not in json.dumps(inspect_lib.inspect(measured, other).to_dict(),
                                     ensure_ascii=False)
    assert "Topology through the layers" in report.build_report(measured)


def test_claims_report_runs_on_measured_results(measured, tmp_path):
    path = os.path.join(os.path.dirname(os.path.dirname(__file__)), "analysis",
                        "naitzat2020.py")
    mod_spec = importlib.util.spec_from_file_location("naitzat2020", path)
    script = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(script)
    out = str(tmp_path / "results")
    shutil.copytree(measured, out)  # the script measures the grid clouds into it
    # a 60-step sweep: every network counts (the paper's protocol keeps training accuracy 1)
    assert script.main(["--no-run", "--results", out, "--out", str(tmp_path), "--accept",
                        "0"]) == 0
    md = (tmp_path / "naitzat2020.md").read_text()
    rows = [r for r in md.splitlines() if r.startswith("| ")]
    # one activation here: that claim is not measured, and says so; the script measured the
    # grid clouds of every network, both depths
    assert any("ReLU" in r and r.rstrip(" |").endswith("not measured") for r in rows)
    assert any("shallow" in r and r.rstrip(" |").endswith(("agrees", "DISAGREES")) for r in rows)
    assert set(topology.load(out)["cloud"]) == {"grid", "train"}
    assert any("narrower" in r and r.rstrip(" |").endswith(("agrees", "DISAGREES")) for r in rows)
    assert (tmp_path / "naitzat2020.html").exists()


# --- tiny clouds and measure's arguments (issue 28) --------------------------------------------


def test_betti_numbers_of_clouds_too_small_for_a_cycle():
    """One, two and three distinct points (a ReLU layer can map a class onto that few): no
    cycle and no void, whatever the maximal dimension asked for."""
    for n in (1, 2, 3):
        x = np.stack([np.arange(n, dtype=float), np.arange(n, dtype=float) ** 2], 1)
        assert topology.betti_numbers(x, 4, 2, maxdim=2) == (1, 0, 0), n
    piled = np.repeat([[0.5, -1.0], [2.0, 3.0]], 50, axis=0)  # 100 points, 2 distinct
    assert topology.betti_numbers(piled, 4, 2, maxdim=2)[1:] == (0, 0)


@pytest.mark.parametrize("kwargs,message", [
    ({"n_points": 3}, "--points 3: need at least 4 points per class"),
    ({"k": 0}, "--k 0: must be a positive whole number"),
    ({"eps": 0}, "--eps 0: must be a positive whole number"),
    ({"k": -2, "eps": 3}, "--k -2: must be a positive whole number"),
])
def test_measure_refuses_bad_arguments_before_reading_the_folder(kwargs, message):
    with pytest.raises(SweepnetError, match=f"^{message}$"):
        topology.measure("/no/such/folder", **kwargs)


def test_measure_names_a_selection_that_matches_nothing(tiny_results):
    with pytest.raises(SweepnetError, match=r"no finished runs match 'width = 99'$"):
        topology.measure(tiny_results, where="width = 99", n_points=4, k=1, eps=1)
    assert not os.path.exists(os.path.join(tiny_results, "topology.parquet"))
