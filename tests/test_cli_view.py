"""The viewing commands from the command line, in-process: query, chart, inspect, datasets,
report, and their errors (exit code 2 and one line on stderr)."""

import json

import pandas as pd
import pytest
from scipy.stats import binomtest

import sweepnet
from sweepnet.cli import main
from sweepnet.sweep.data import DATASETS


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys, *argv, match: str):
    """The command exits with 2 and a single stderr line containing ``match``."""
    code, _, err = run(capsys, *argv)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sweepnet: error:"), err
    assert match in lines[0], lines[0]


@pytest.fixture
def not_results(tmp_path):
    d = tmp_path / "plain"
    d.mkdir()
    (d / "notes.txt").write_text("not a sweep")
    return d


# ----------------------------------------------------------------------------- query


def test_query_formats(tiny_results, capsys):
    sql = "select width, depth, count(*) as n from runs group by all order by width, depth"
    code, out, _ = run(capsys, "query", tiny_results, sql)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["width", "depth", "n"] and len(lines) == 5
    code, out, _ = run(capsys, "query", tiny_results, sql, "--format", "csv")
    assert out.strip().splitlines() == ["width,depth,n", "2,1,2", "2,2,2", "3,1,2", "3,2,2"]
    code, out, _ = run(capsys, "query", tiny_results, sql, "--format", "json")
    assert json.loads(out)[0] == {"width": 2, "depth": 1, "n": 2}


def test_query_curves_view_and_empty_result(tiny_results, capsys):
    code, out, _ = run(
        capsys,
        "query",
        tiny_results,
        "select count(*) as n, max(step) as last from curves",
        "--format",
        "csv",
    )
    assert code == 0 and out.strip().splitlines()[1] == "24,60"  # 8 runs × 3 eval points
    code, out, _ = run(capsys, "query", tiny_results, "select * from runs where width > 99")
    assert code == 0 and out.strip() == "(no rows)"


@pytest.mark.parametrize("threshold", [0.1, 0.5, 0.9])
def test_query_cells_view_gives_each_cell_its_interval_and_verdict(tiny_results, capsys,
                                                                   threshold):
    """A row per (width, depth) cell: its seeds, how many separated, the exact 95% interval
    (scipy's binomtest) and the verdict: above / below where the interval clears the
    threshold, else boundary."""
    code, out, _ = run(capsys, "query", tiny_results, "select * from cells", "--format", "json",
                       "--threshold", str(threshold))
    assert code == 0
    cells = pd.DataFrame(json.loads(out))
    runs = sweepnet.load(tiny_results)
    expect = runs.groupby(["width", "depth"])["separated"].agg(["size", "sum"]).reset_index()
    assert list(cells.columns) == ["dataset", "width", "depth", "n", "separated", "share", "low",
                                   "high", "verdict"]
    got = cells.merge(expect, on=["width", "depth"])
    assert len(got) == len(expect) == 4
    for _, c in got.iterrows():
        assert (c["n"], c["separated"]) == (c["size"], c["sum"])
        ci = binomtest(int(c["sum"]), int(c["size"])).proportion_ci(0.95, method="exact")
        assert c["low"] == pytest.approx(ci.low) and c["high"] == pytest.approx(ci.high)
        verdict = ("above" if ci.low > threshold else "below" if ci.high < threshold
                   else "boundary")
        assert c["verdict"] == verdict
    if threshold == 0.9:  # 0 of 2 seeds: the interval 0-0.84 lies below 0.9
        assert set(cells.loc[cells["separated"] == 0, "verdict"]) <= {"below"}
    fails(capsys, "query", tiny_results, "select * from cells", "--confidence", "1.5",
          match="--confidence")


def test_query_errors(tiny_results, not_results, tmp_path, capsys):
    fails(capsys, "query", tiny_results, "selec width frm runs", match="SQL error")
    fails(capsys, "query", tiny_results, "select nope from runs", match="SQL error")
    fails(capsys, "query", not_results, "select 1", match="not a sweepnet results folder")
    fails(capsys, "query", tmp_path / "missing", "select 1", match="no such results folder")


# ----------------------------------------------------------------------------- chart


@pytest.mark.parametrize("kind", ["phase", "curves", "minwidth", "boundary"])
def test_chart_each_kind(tiny_results, tmp_path, capsys, kind):
    out = tmp_path / f"{kind}.png"
    code, stdout, err = run(capsys, "chart", tiny_results, "--kind", kind, "--out", out)
    assert code == 0, err
    assert stdout.strip() == f"wrote {out}"
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_chart_options_and_html(tiny_results, tmp_path, capsys):
    out = tmp_path / "p.html"
    code, _, err = run(
        capsys,
        "chart",
        tiny_results,
        "--x",
        "depth",
        "--y",
        "width",
        "--metric",
        "test_acc",
        "--column",
        "none",
        "--out",
        out,
    )
    assert code == 0, err
    assert "mean test accuracy" in out.read_text()
    code, _, err = run(
        capsys,
        "chart",
        tiny_results,
        "--kind",
        "curves",
        "--color",
        "depth",
        "--column",
        "width",
        "--metric",
        "train_acc",
        "--out",
        tmp_path / "c.svg",
    )
    assert code == 0, err


def test_chart_errors(tiny_results, not_results, tmp_path, capsys):
    fails(capsys, "chart", not_results, match="not a sweepnet results folder")
    fails(capsys, "chart", tiny_results, "--out", tmp_path / "p.jpg", match="p.jpg")
    fails(capsys, "chart", tiny_results, "--x", "colour", match="--x 'colour'")
    fails(
        capsys,
        "chart",
        tiny_results,
        "--kind",
        "boundary",
        "--metric",
        "test_acc",
        match="--metric is not an option of the boundary chart",
    )
    fails(capsys, "chart", tiny_results, "--kind", "minwidth", "--x", "width", match="--x width")


# ----------------------------------------------------------------------------- inspect


def test_inspect(tiny_results, tmp_path, capsys):
    runs = sweepnet.load(tiny_results)
    run_id = runs[(runs["width"] == 2) & (runs["depth"] == 1)]["run_id"].iloc[0]  # few panels
    out = tmp_path / "net.png"
    code, stdout, err = run(capsys, "inspect", tiny_results, run_id, "--out", out)
    assert code == 0, err
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 20000


def test_inspect_errors(tiny_results, not_results, capsys):
    fails(capsys, "inspect", tiny_results, "0123456789abcdef", match="'0123456789abcdef'")
    fails(capsys, "inspect", not_results, "0123456789abcdef", match="not a sweepnet results folder")


# ----------------------------------------------------------------------------- datasets


def test_datasets_lists_the_registry(capsys):
    code, out, _ = run(capsys, "datasets")
    assert code == 0
    names = [line.split()[0] for line in out.strip().splitlines()]
    assert names == list(DATASETS)


def test_datasets_draws_one(tmp_path, capsys):
    out = tmp_path / "ds.png"
    code, _, err = run(capsys, "datasets", "nested_spheres", "--n", 200, "--out", out)
    assert code == 0, err
    assert out.read_bytes()[:4] == b"\x89PNG"
    fails(capsys, "datasets", "nope", "--out", tmp_path / "x.png", match="unknown dataset 'nope'")
    fails(capsys, "datasets", "moons", "--out", tmp_path / "x.gif", match="x.gif")


# ----------------------------------------------------------------------------- report


def test_report(tiny_results, tmp_path, not_results, capsys):
    out = tmp_path / "report.html"
    code, stdout, err = run(capsys, "report", tiny_results, "--out", out)
    assert code == 0, err
    assert stdout.strip() == f"wrote {out}"
    page = out.read_text()
    assert "Phase diagram" in page and "vegaEmbed" in page
    fails(
        capsys,
        "report",
        not_results,
        "--out",
        tmp_path / "r.html",
        match="not a sweepnet results folder",
    )
