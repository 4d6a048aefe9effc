"""The science tier: real training through the engine gives the answers sweepnet exists to draw.

Two small sweeps, trained once for the module (a cold start costs two compiles, about 15 s of
one core; the XLA cache in tests/.xla-cache makes a re-run take a second or two):

- ``disk``: Olah's disk inside an annulus, tanh, widths 1-4, depths 1-2, 4 seeds. A network no
  wider than its 2-D input cannot separate the disk (its decision regions are unbounded;
  Johnson 2019), width 3 can, and at this budget every width-3 and width-4 seed does: 96 of 96
  networks over 24 seeds when this was tuned, the narrowest certificate margin 0.26.
- ``line``: Olah's 1-D case, tanh and softplus, widths 1-4, depths 1-2, 8 seeds. Width 1 is a
  monotone function of x, so it is right on one side of the middle interval at most (about
  75 % of the probe, checked exactly against the probe's own points); width 2 can make a bump,
  and 7 or 8 of 8 seeds do. Softplus is not 0 at 0, so a padded unit that leaks (the width
  mask gone) shows here: width 1 then separates.

Every number below is a value the theory fixes or a wide margin around what training gives,
never the shape of a table. Both sweeps run with the fused CPU kernel off, so their numbers do
not depend on whether this machine built and measured it (the kernel has its own tests).
"""

import types

import numpy as np
import pandas as pd
import pytest

import sweepnet
from sweepnet import cli
from sweepnet.engine import run as engine
from sweepnet.store import query, results
from sweepnet.sweep import data, spec
from sweepnet.views import cells as cells_lib
from sweepnet.views import charts, report

COMMON = """
[model]
width = [1, 2, 3, 4]
depth = [1, 2]
activation = {activation}
[train]
learning_rate = 0.05
steps = 300
seeds = {seeds}
eval_every = 100
"""

DISK_SPEC = """
name = "science-disk"
[data]
dataset = "disk_annulus"
n_train = 512
n_test = 512
""" + COMMON.format(activation='"tanh"', seeds=4)

LINE_SPEC = """
name = "science-line"
[data]
dataset = "interval_1d"
n_train = 512
n_test = 512
""" + COMMON.format(activation='["tanh", "softplus"]', seeds=8)

ACT = {"tanh": np.tanh, "softplus": lambda a: np.logaddexp(0.0, a)}


def _sweep(tmp_path_factory, name: str, text: str) -> types.SimpleNamespace:
    folder = str(tmp_path_factory.mktemp("science") / name)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPNET_FUSED", "0")  # XLA's gradient wherever this runs (see above)
        engine.run_sweep(spec.loads(text), folder, progress=False)
    return types.SimpleNamespace(folder=folder, runs=sweepnet.load(folder))


@pytest.fixture(scope="module")
def disk(tmp_path_factory):
    """The ``disk`` sweep (see the module docstring): its finished results ``folder`` and its
    runs table ``runs`` (32 rows). Read them, do not write. Apart from ``line``, so that a run
    of the disk's tests alone (tests/test_mutants.py) trains only this one."""
    return _sweep(tmp_path_factory, "disk", DISK_SPEC)


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """The ``line`` sweep: ``folder`` and ``runs`` (128 rows), as ``disk``."""
    return _sweep(tmp_path_factory, "line", LINE_SPEC)


@pytest.fixture(scope="module")
def science(disk, line):
    """Both sweeps: folders ``disk`` and ``line``, runs tables ``disk_runs`` and ``line_runs``."""
    return types.SimpleNamespace(disk=disk.folder, disk_runs=disk.runs, line=line.folder,
                                 line_runs=line.runs)


def forward(params, x: np.ndarray, activation: str) -> np.ndarray:
    """Logits ``(n,)`` of an unpadded binary MLP at points ``x (d, n)``, in numpy.

    Written apart from :mod:`sweepnet.sweep.models` on purpose: it checks what the engine stored.
    """
    p, act = params["params"], ACT[activation]
    h = np.asarray(x, np.float64)
    for i in range(sum(k.startswith("hidden_") for k in p)):
        h = act(np.asarray(p[f"hidden_{i}"]["kernel"]) @ h + np.asarray(p[f"hidden_{i}"]["bias"])
                [:, None])
    return (np.asarray(p["out"]["kernel"]) @ h + np.asarray(p["out"]["bias"])[:, None])[0]


def best_ray_accuracy(x: np.ndarray, y: np.ndarray) -> float:
    """Best accuracy on points ``x (n,)``, labels ``y (n,)`` of any classifier "class c where
    x > t" (every t, both c): the most a monotone function of x can score."""
    ys = y[np.argsort(x)]
    n = len(ys)
    # predicting 1 on the k largest points: right on the 1s among them and the 0s below them
    ones_top = np.concatenate([[0], np.cumsum(ys[::-1])])
    k = np.arange(n + 1)
    right = ones_top + (n - k) - (ys.sum() - ones_top)
    return float(max(right.max(), n - right.min()) / n)


def cells(runs: pd.DataFrame, column: str, keys=("width", "depth")) -> dict:
    """``{(width, depth): mean of column}`` (keys as given)."""
    return runs.groupby(list(keys))[column].mean().to_dict()


# ----------------------------------------------------------------------------- disk


def test_disk_separates_from_width_3_and_never_below(disk):
    runs = disk.runs
    assert len(runs) == 32 and not runs["diverged"].any()
    assert cells(runs, "separated") == {(w, d): float(w >= 3) for w in (1, 2, 3, 4) for d in (1, 2)}
    wide, narrow = runs[runs["width"] >= 3], runs[runs["width"] <= 2]
    assert (wide["test_acc"] == 1.0).all() and (wide["train_acc"] == 1.0).all()
    # width 1 is a monotone function of one projection, so a half-plane: about 0.7 at best
    assert runs.loc[runs["width"] == 1, "test_acc"].max() < 0.75
    # width 2 bends but cannot close a curve around the disk (0.95 at most when tuned)
    assert narrow["test_acc"].max() < 0.99


def test_disk_certificates_hold_from_width_3_only(disk):
    runs = disk.runs
    cert = runs["certified"].astype(bool)
    assert (cert == (runs["width"] >= 3)).all()
    assert (runs.loc[cert, "worst_margin"] > 0).all()
    assert (runs.loc[~cert, "worst_margin"] < 0).all()
    # a certified network classifies every test point right, with room to spare
    assert cert.sum() == 16
    assert (runs.loc[cert, "test_acc"] == 1.0).all() and (runs.loc[cert, "margin"] > 0).all()
    assert (runs["worst_margin"] <= runs["margin"] + 1e-6).all()


def _disk_regions() -> tuple[np.ndarray, np.ndarray]:
    """Dense polar grid of both class regions: points ``(2, n)`` and labels ``(n,)``."""
    parts, labels = [], []
    for lo, hi, n_r, n_a, label in ((2 / 3, 1.0, 48, 2048, 0), (0.0, 1 / 3, 24, 1024, 1)):
        r, a = np.meshgrid(np.linspace(lo, hi, n_r), 2 * np.pi * np.arange(n_a) / n_a)
        parts.append(np.stack([(r * np.cos(a)).ravel(), (r * np.sin(a)).ravel()]))
        labels.append(np.full(r.size, label))
    return np.concatenate(parts, 1), np.concatenate(labels)


def test_certificates_agree_with_a_dense_grid(disk):
    """Each disk network's worst margin against the smallest margin over a dense polar grid
    of both class regions, computed apart from the engine: the certificate never claims more
    room than the grid finds, finds as little as the grid (it searched for the worst point:
    within 1e-4 of the grid on every network when tuned), and certifies exactly the networks
    that are right on the whole grid."""
    runs = disk.runs
    x, y = _disk_regions()
    sign = 2 * y - 1
    params_of = results.load_params_many(disk.folder, runs)
    for _, row in runs.iterrows():
        grid_min = (sign * forward(params_of[row["run_id"]], x, "tanh")).min()
        worst, tol = row["worst_margin"], 1e-3 * max(1.0, abs(grid_min))
        assert grid_min - 0.01 <= worst <= grid_min + tol, (row["run_id"], worst, grid_min)
        assert bool(row["certified"]) == (grid_min > 0), row["run_id"]


def test_stored_accuracies_are_the_networks_own(science):
    """Every network's stored train/test accuracy, recomputed from its stored parameters on
    the points the engine drew: the table is about the networks it saved."""
    for folder, runs, name in ((science.disk, science.disk_runs, "disk_annulus"),
                               (science.line, science.line_runs, "interval_1d")):
        split = data.make_split(name, {}, 512, 512)
        params_of = results.load_params_many(folder, runs)
        assert sorted(params_of) == sorted(runs["run_id"])
        for _, row in runs.iterrows():
            params = params_of[row["run_id"]]
            for x, y, col in ((split.x_train, split.y_train, "train_acc"),
                              (split.x_test, split.y_test, "test_acc")):
                acc = np.mean((forward(params, x.T, row["activation"]) > 0) == (y == 1))
                assert acc == pytest.approx(row[col], abs=1.5 / len(y)), (row["run_id"], col)


# ----------------------------------------------------------------------------- 1-D


def test_interval_width_1_is_monotone_and_width_2_separates(science):
    runs = science.line_runs
    assert len(runs) == 128 and not runs["diverged"].any()
    split = data.make_split("interval_1d", {}, 512, 512)
    bound = best_ray_accuracy(split.x_test[:, 0], split.y_test)
    assert 0.7 < bound < 0.8  # a ray holds the middle interval and one side: about 3/4
    one = runs[runs["width"] == 1]
    assert not one["separated"].any() and not one["certified"].any()
    assert (one["test_acc"] <= bound + 1e-9).all()
    assert (one["train_acc"] <= best_ray_accuracy(split.x_train[:, 0], split.y_train) + 1e-9).all()
    share = cells(runs, "separated", ("activation", "width", "depth"))
    for act in ("tanh", "softplus"):
        for d in (1, 2):
            assert share[(act, 1, d)] == 0.0
            assert share[(act, 2, d)] > 0.5, (act, d)  # 7 or 8 of 8 when tuned
            assert share[(act, 4, d)] == 1.0, (act, d)
    sep = runs[runs["separated"]]
    assert sep["certified"].all() and (sep["worst_margin"] > 0).all()


# ----------------------------------------------------------------------------- tables


def test_phase_table_shares(science):
    t = charts.phase_table(science.disk_runs).set_index(["width", "depth"])
    assert t["value"].to_dict() == {(w, d): float(w >= 3) for w in (1, 2, 3, 4) for d in (1, 2)}
    assert (t["n"] == 4).all() and (t["pending"] == 0).all()
    assert t["separated"].to_dict() == {(w, d): 4.0 * (w >= 3) for w in (1, 2, 3, 4)
                                        for d in (1, 2)}
    assert (t.loc[[3, 4], "test_acc"] == 1.0).all() and (t.loc[[1, 2], "test_acc"] < 0.99).all()
    # what the chart draws: the inline table's labels
    spec_ = charts.phase(science.disk_runs).to_dict()
    (rows,) = spec_["datasets"].values()
    assert {(r["width"], r["depth"]): r["label"] for r in rows} == {
        (w, d): "1.00" if w >= 3 else "0.00" for w in (1, 2, 3, 4) for d in (1, 2)}
    line = charts.phase_table(science.line_runs).set_index(["activation", "width", "depth"])
    assert (line.loc[(slice(None), 1), "value"] == 0.0).all()
    assert (line.loc[(slice(None), 2), "value"] > 0.5).all()


def test_minwidth_is_3_for_the_disk_and_2_for_the_interval(science):
    disk, _ = charts.minwidth_table(science.disk_runs)
    assert disk.set_index("depth")["minwidth"].to_dict() == {1: 3.0, 2: 3.0}
    assert disk["found"].all()
    line, _ = charts.minwidth_table(science.line_runs)
    assert line.set_index(["depth", "activation"])["minwidth"].to_dict() == {
        (d, a): 2.0 for d in (1, 2) for a in ("softplus", "tanh")}
    # the minimal-width chart puts its marks at width 3, reading "most seeds separate"
    (rows,) = charts.minwidth(science.disk_runs).to_dict()["datasets"].values()
    assert {(r["depth"], r["y"], r["status"]) for r in rows} == {
        (1, 3.0, "most seeds separate"), (2, 3.0, "most seeds separate")}


def test_report_states_the_numbers(disk):
    runs = disk.runs
    con = cells_lib.connect(disk.folder)
    summary = dict(report.summary_lines(disk.folder, con, cells_lib.configurations(con)))
    con.close()
    assert summary["networks"] == "32"
    assert summary["separated"] == "16 (50.0%)" and summary["diverged"] == "0"
    assert summary["swept axes"] == "width (4), depth (2)" and summary["seeds"] == "4"
    picks = report.pick_networks(runs)
    assert [int(r["width"]) for _, r in picks] == [2, 3]
    assert "widest where most seeds fail" in picks[0][0]
    assert "narrowest where most seeds separate" in picks[1][0]
    assert not picks[0][1]["separated"] and picks[1][1]["separated"]
    assert bool(picks[1][1]["certified"]) and picks[1][1]["test_acc"] == 1.0


@pytest.mark.slow  # the page inspects two networks and draws the explorer: 13 s of compiles
def test_report_page_carries_the_numbers(disk):
    page = report.build_report(disk.folder)
    assert "<td>separated</td><td>16 (50.0%)</td>" in page
    assert "best network of width 2 (the widest where most seeds fail)" in page
    assert "best network of width 3 (the narrowest where most seeds separate)" in page


def test_query_counts_what_separated(science):
    df = query.query(science.disk, "select width, avg(separated::int) as share, "
                     "bool_and(certified) as all_cert, bool_or(certified) as any_cert, "
                     "min(test_acc) as worst from runs group by width order by width")
    assert df["share"].tolist() == [0.0, 0.0, 1.0, 1.0]
    assert df["all_cert"].tolist() == [False, False, True, True]
    assert df["any_cert"].tolist() == [False, False, True, True]
    assert df.loc[df["width"] >= 3, "worst"].eq(1.0).all()
    both = query.query([science.disk, science.line],
                       "select sweep, width, count(*) filter (where separated) as s from runs "
                       "where width <= 2 group by all order by all")
    s = {(r.sweep, r.width): r.s for r in both.itertuples()}
    assert s[("science-disk", 1)] == s[("science-disk", 2)] == s[("science-line", 1)] == 0
    assert s[("science-line", 2)] > 16  # of 32: tanh and softplus, 2 depths, 8 seeds


def test_cli_query_prints_the_shares(disk, capsys):
    sql = "select width, count(*) filter (where separated) as s from runs group by 1 order by 1"
    assert cli.main(["query", disk.folder, sql, "--format", "csv"]) == 0
    assert capsys.readouterr().out == "width,s\n1,0\n2,0\n3,8\n4,8\n"
