"""Growing a results folder in place: a changed spec trains only the runs it lacks."""

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest

import sweepnet
from conftest import PROVENANCE, TINY_SPEC
from sweepnet.cli import main
from sweepnet.engine import run as engine
from sweepnet.store import query, results
from sweepnet.sweep import spec

CELLS = ["width", "depth"]  # the tiny sweep's cells: widths 2-3 x depths 1-2


def _spec_file(tmp_path, text=TINY_SPEC):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return str(path)


def _parts(root):
    """Every file of the folder's parts, with its bytes."""
    out = {}
    for sub in results.PARTS:
        for f in sorted(os.listdir(os.path.join(root, sub))):
            with open(os.path.join(root, sub, f), "rb") as fh:
                out[f"{sub}/{f}"] = fh.read()
    return out


def _text(path):
    with open(path) as f:
        return f.read()


def _ids_of(root, files):
    return {i for f in files if f.startswith("runs/")
            for i in pd.read_parquet(os.path.join(root, f))["run_id"]}


@pytest.mark.slow
def test_two_seeds_grown_to_four_train_only_the_new_seeds_and_equal_a_fresh_sweep(
        tiny_results, tmp_path, capsys):
    grown = str(tmp_path / "grown")
    shutil.copytree(tiny_results, grown)
    before = _parts(grown)
    path = _spec_file(tmp_path)
    assert main(["run", path, "--out", grown, "--quiet", "--set", "train.seeds=4"]) == 0
    said = capsys.readouterr()
    assert "trained 8 networks (8 already done, 16 in grid)" in said.out
    assert f"{grown}: spec changed: train.seeds (2 -> 4)" in said.err

    after = _parts(grown)
    assert {k: after[k] for k in before} == before  # every finished part kept, byte for byte
    new = sorted(set(after) - set(before))
    trained = results.load(grown).set_index("run_id").loc[sorted(_ids_of(grown, new))]
    assert sorted(trained["seed"].unique()) == [2, 3]
    assert trained.groupby(CELLS).size().tolist() == [2, 2, 2, 2]  # 2 new seeds per cell

    fresh = str(tmp_path / "fresh")
    assert main(["run", path, "--out", fresh, "--quiet", "--set", "train.seeds=4"]) == 0
    capsys.readouterr()
    a, b = (results.load(d).drop(columns=list(PROVENANCE)) for d in (grown, fresh))
    assert a["run_id"].tolist() == b["run_id"].tolist()  # same rows, same order
    assert a.columns.tolist() == b.columns.tolist()
    numeric = [c for c in a if a[c].dtype.kind == "f"]
    pd.testing.assert_frame_equal(a.drop(columns=numeric), b.drop(columns=numeric))
    np.testing.assert_allclose(a[numeric].to_numpy(float), b[numeric].to_numpy(float),
                               rtol=1e-6, atol=1e-7)
    ca, cb = (results.load_curves(d).sort_values(["run_id", "step"]).reset_index(drop=True)
              for d in (grown, fresh))
    pd.testing.assert_frame_equal(ca, cb, rtol=1e-6, atol=1e-7)

    history = results.read_manifest(grown)["spec_history"]
    assert [h["changed"] for h in history] == [[], ["train.seeds"]]
    assert [h["spec"]["train"]["seeds"] for h in history] == [2, 4]
    assert results.stored_spec(grown).tree["train"]["seeds"] == 4  # DIR/spec.toml is the latest
    assert results.read_manifest(grown)["status"] == "complete"
    assert results.progress(grown) == (16, 16)


def test_which_changes_a_folder_may_grow_through():
    base = spec.loads(TINY_SPEC)
    grows = ["train.seeds=4", "model.width=[2,3,4]", "model.depth=3", "model.activation=relu",
             "train.learning_rate=0.1", "data.disk_annulus.inner=[0.3,0.333]",
             "train.eval_every=30", "data.dataset=[disk_annulus,xor]", 'description="new"']
    for change in grows:
        assert spec.grow_conflicts(base, spec.loads(TINY_SPEC, [change])) == [], change
    assert spec.grow_conflicts(base, spec.loads(TINY_SPEC, ["train.separation=0.9"])) == [
        "train.separation"]
    assert spec.grow_conflicts(base, spec.loads(TINY_SPEC, ["name=other", "model.width=4"])) == [
        "name"]
    # every key of the schema is classified: in the run id, free text, or stored in every row
    for section, keys in spec.SCHEMA.items():
        for name in keys:
            dotted = f"{section}.{name}" if section else name
            assert (spec.in_run_id(dotted) or dotted in spec.FREE_KEYS
                    or dotted in spec.STORED_KEYS), dotted


def test_a_refused_change_names_the_key_and_destroys_nothing(tiny_results, tmp_path, capsys):
    out = str(tmp_path / "r")
    shutil.copytree(tiny_results, out)
    before = _parts(out), _text(os.path.join(out, "spec.toml"))
    manifest = results.read_manifest(out)
    path = _spec_file(tmp_path)
    argv = ["run", path, "--out", out, "--quiet", "--set", "train.separation=0.75",
            "--set", "train.seeds=3"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and out in err
    assert "train.separation (1.0 -> 0.75)" in err and "column separated" in err
    assert "train.seeds" not in err  # a change it may grow through is not blamed
    assert (_parts(out), _text(os.path.join(out, "spec.toml"))) == before
    assert results.read_manifest(out) == manifest


def test_a_shrunk_spec_hides_runs_and_growing_back_shows_them(tiny_results, tmp_path, capsys):
    out = str(tmp_path / "r")
    shutil.copytree(tiny_results, out)
    before = _parts(out)
    path = _spec_file(tmp_path)
    assert main(["run", path, "--out", out, "--quiet", "--set", "model.width=[3]"]) == 0
    assert "trained 0 networks (4 already done, 4 in grid)" in capsys.readouterr().out
    assert _parts(out) == before  # nothing removed
    shown = results.load(out)
    assert len(shown) == 4 and set(shown["width"]) == {3}
    assert shown["grid_index"].tolist() == [0, 1, 2, 3]
    every = results.load(out, all_runs=True)
    assert len(every) == 8 and every["in_spec"].tolist() == [True] * 4 + [False] * 4
    assert every["grid_index"].isna().sum() == 4
    assert set(results.load_curves(out)["run_id"]) == set(shown["run_id"])
    assert len(results.load_curves(out, all_runs=True)) == 8 * 3
    assert results.progress(out) == (4, 4)
    assert main(["query", out, "select count(*) as n from runs", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"n": 4}]
    sql = "select in_spec, count(*) as n from runs group by 1 order by 1"
    assert main(["query", out, sql, "--all", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"in_spec": False, "n": 4},
                                                   {"in_spec": True, "n": 4}]
    assert query.query(out, "select count(*) from curves").iloc[0, 0] == 4 * 3
    row, _ = sweepnet.load_params(out, every["run_id"].iloc[-1])  # a hidden run opens
    assert row["width"] == 2

    assert main(["run", path, "--out", out, "--quiet"]) == 0  # back to widths 2-3
    assert "trained 0 networks (8 already done, 8 in grid)" in capsys.readouterr().out
    assert results.load(out).equals(results.load(tiny_results))


def test_progress_and_pending_of_a_grown_spec_not_yet_trained(tiny_results, tmp_path):
    assert results.progress(tiny_results) == (8, 8)
    none = results.pending(tiny_results)
    assert len(none) == 0 and {"run_id", "width", "depth", "seed"} <= set(none.columns)
    out = str(tmp_path / "r")
    shutil.copytree(tiny_results, out)
    results.Store.open(out, spec.loads(TINY_SPEC, ["train.seeds=3"]))  # as a killed grow leaves it
    assert results.progress(out) == (8, 12)
    todo = results.pending(out)
    assert len(todo) == 4 and set(todo["seed"]) == {2}
    assert sorted(zip(todo["width"], todo["depth"], strict=True)) == [(2, 1), (2, 2), (3, 1),
                                                                      (3, 2)]
    config = [c for c in results.load(out).columns if c in todo.columns]
    assert set(todo.columns) == set(config)  # the runs table's config columns, nothing else
    assert not set(todo["run_id"]) & set(results.load(out)["run_id"])


@pytest.mark.slow
def test_a_job_array_grows_a_folder_shard_by_shard(tiny_results, tmp_path):
    out = str(tmp_path / "r")
    shutil.copytree(tiny_results, out)
    grown = spec.loads(TINY_SPEC, ["model.depth=[1,2,3]"])
    got = [engine.run_sweep(grown, out, shard=(i, 2), progress=False) for i in range(2)]
    assert [g.trained for g in got] == [2, 2] and sum(g.skipped for g in got) == 8
    df = results.load(out)
    assert len(df) == 12 and df["grid_index"].tolist() == list(range(12))
    assert df.groupby("depth").size().tolist() == [4, 4, 4]
    assert results.read_manifest(out)["status"] == "complete"
    assert [h["changed"] for h in results.read_manifest(out)["spec_history"]] == [
        [], ["model.depth"]]  # the second shard saw the spec the first one applied


def test_a_folder_written_before_a_spec_key_existed_still_loads(tiny_results, tmp_path):
    out = str(tmp_path / "r")
    shutil.copytree(tiny_results, out)
    path = os.path.join(out, "spec.toml")
    text = _text(path)
    with open(path, "w") as f:  # as if written before init_scale was a key (its default, 1.0)
        f.write("\n".join(ln for ln in text.splitlines() if not ln.startswith("init_scale")))
    assert results.load(out).equals(results.load(tiny_results))
    assert results.progress(out) == (8, 8)
