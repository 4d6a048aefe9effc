"""The real entry point on tiny configurations, called in-process."""

import json
import os

import pytest

import sweepnet
from conftest import TINY_SPEC
from sweepnet.cli import main
from sweepnet.store import results


@pytest.fixture
def spec_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    return str(path)


def test_run_then_resume_then_fresh(spec_file, tmp_path, capsys):
    out = str(tmp_path / "res")
    assert main(["run", spec_file, "--out", out, "--quiet"]) == 0
    assert "trained 8 networks" in capsys.readouterr().out
    first = sweepnet.load(out)
    assert len(first) == 8 and first["run_id"].is_unique
    assert set(os.listdir(out)) >= {"spec.toml", "manifest.json", "runs", "curves", "params"}
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["status"] == "complete" and manifest["total_runs"] == 8

    assert main(["run", spec_file, "--out", out, "--quiet"]) == 0
    assert "trained 0 networks (8 already done" in capsys.readouterr().out
    assert sweepnet.load(out).equals(first)

    # a third seed grows the folder: only the 4 new networks train
    assert main(["run", spec_file, "--out", out, "--quiet", "--set", "train.seeds=3"]) == 0
    assert "trained 4 networks (8 already done, 12 in grid" in capsys.readouterr().out
    assert len(sweepnet.load(out)) == 12

    assert main(["run", spec_file, "--out", out, "--quiet", "--fresh",
                 "--set", "train.seeds=3"]) == 0
    assert "trained 12 networks" in capsys.readouterr().out
    assert len(sweepnet.load(out)) == 12


def test_science_of_the_tiny_sweep(tiny_results):
    df = sweepnet.load(tiny_results)
    assert not df[df.width == 2]["separated"].any()
    assert df["steps_to_fit"].dtype == "Int64"
    assert len(sweepnet.load_curves(tiny_results)) == 8 * 3


@pytest.mark.slow  # calibrates the machine model on a cold cache: 15-25 s
def test_plan_prints_buckets_and_estimates(spec_file, capsys):
    assert main(["plan", spec_file]) == 0
    out = capsys.readouterr().out
    assert "8 networks" in out and "padding waste" in out and "estimated time" in out


def test_query_formats(tiny_results, capsys):
    sql = "select width, count(*) as n from runs group by width order by width"
    assert main(["query", tiny_results, sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"width": 2, "n": 4}, {"width": 3, "n": 4}]
    assert main(["query", tiny_results, sql, "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == ["width,n", "2,4", "3,4"]


def test_datasets_and_devices_list(capsys):
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in sweepnet.sweep.data.DATASETS)
    assert main(["devices"]) == 0
    assert "device 1: cpu" in capsys.readouterr().out


def test_bad_spec_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY_SPEC.replace("depth = [1, 2]", "depth = [1, -2]"))
    assert main(["run", str(bad), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "model.depth" in err and str(bad) in err
    assert not os.path.exists(tmp_path / "r")


def test_datasets_draws_with_parameters(tmp_path, capsys):
    out = str(tmp_path / "spiral.png")
    assert main(["datasets", "two_spirals", "--set", "turns=2.5", "--n", "200", "--out", out]) == 0
    assert os.path.getsize(out) > 1000
    pts = tmp_path / "pts.csv"
    pts.write_text("a,b,label\n" + "\n".join(f"{i},{-i},{i % 2}" for i in range(30)))
    assert main(["datasets", "file", "--set", f"path={pts}", "--out", out]) == 0
    for bad, key in ((["two_spirals", "--set", "twists=2"], "twists"),
                     (["two_spirals", "--set", "turns=-1"], "turns"),
                     (["file"], "path")):
        assert main(["datasets", *bad, "--out", out]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and key in err


FILE_SPEC = """
name = "mine"
[data]
dataset = "file"
n_train = 30
[data.file]
path = "pts.csv"
[model]
width = 2
depth = 1
[train]
steps = 20
eval_every = 10
seeds = 2
"""


def test_a_file_sweep_from_another_folder_records_the_sizes_it_used(tmp_path, monkeypatch,
                                                                     capsys):
    """A spec beside its 50-point file (n_train 30, n_test the default 8192) runs from another
    folder: the probe is the 20 points left, the runs table (and the grid) say so, one warning
    names the file; the spec from its own folder, and the stored spec from a third, resume."""
    (tmp_path / "x").mkdir()
    (tmp_path / "a").mkdir()
    (tmp_path / "x" / "pts.csv").write_text("a,b,label\n" + "\n".join(
        f"{i / 50},{(i * 7 % 50) / 50},{int(i > 25)}" for i in range(50)))
    (tmp_path / "x" / "spec.toml").write_text(FILE_SPEC)
    out = str(tmp_path / "res")
    monkeypatch.chdir(tmp_path / "a")
    assert main(["run", "../x/spec.toml", "--out", out, "--quiet"]) == 0
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if line.startswith("sweepnet: warning:")]
    assert len(warnings) == 1 and str(tmp_path / "x" / "pts.csv") in warnings[0], err
    assert "leaves 20 for the test probe, not data.n_test = 8192" in warnings[0]
    df = sweepnet.load(out)
    assert (df["n_train"] == 30).all() and (df["n_test"] == 20).all()
    assert ((df["test_acc"] * 20).round(4) % 1 == 0).all()  # probed on 20 points
    assert (results.grid(out)["n_test"] == 20).all()
    monkeypatch.chdir(tmp_path / "x")
    assert main(["run", "spec.toml", "--out", out, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "trained 0 networks (2 already done" in captured.out
    assert "spec changed" not in captured.err
    monkeypatch.chdir(tmp_path)
    assert main(["run", os.path.join(out, "spec.toml"), "--out", out, "--quiet"]) == 0
    assert "trained 0 networks (2 already done" in capsys.readouterr().out


def test_query_errors_keep_duckdbs_hints(tiny_results, capsys):
    for sql, hint in (("select * from run", 'Did you mean "runs"?'),
                      ("select widht from runs", 'Candidate bindings: "width"')):
        assert main(["query", tiny_results, sql]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith("sweepnet: error: SQL error: "), err
        assert hint in err and "LINE 1" not in err, err
