import re
from pathlib import Path

import pytest
import tomllib

from sweepnet.core.errors import SweepnetError
from sweepnet.sweep import spec

BASE = """
name = "t"
[data]
dataset = "disk_annulus"
[model]
width = [2, 3]
depth = 1
[train]
seeds = 2
"""


def test_grid_is_the_product_of_list_values():
    s = spec.loads(BASE + "\n", ["model.activation=[\"tanh\",\"relu\"]"])
    grid = s.grid()
    assert len(grid) == 2 * 2 * 2
    assert {(g["width"], g["activation"], g["seed"]) for g in grid} == {
        (w, a, k) for w in (2, 3) for a in ("tanh", "relu") for k in (0, 1)}
    assert all(g["data_inner"] == pytest.approx(1 / 3) for g in grid)


def test_dataset_params_apply_per_dataset():
    text = BASE.replace('dataset = "disk_annulus"', 'dataset = ["disk_annulus", "two_spirals"]')
    s = spec.loads(text + "[data.two_spirals]\nturns = [0.5, 1.0]\n")
    grid = s.grid()
    spirals = [g for g in grid if g["dataset"] == "two_spirals"]
    disks = [g for g in grid if g["dataset"] == "disk_annulus"]
    assert len(spirals) == 2 * 2 * 2 and len(disks) == 2 * 2
    assert {g["data_turns"] for g in spirals} == {0.5, 1.0}
    assert all("data_turns" not in g for g in disks)


def test_run_id_is_stable_and_unique():
    s = spec.loads(BASE)
    ids = [spec.run_id(g) for g in s.grid()]
    assert len(set(ids)) == len(ids)
    g = s.grid()[0]
    assert spec.run_id(dict(reversed(list(g.items())))) == spec.run_id(g)


def test_overrides_parse_toml_and_bare_words():
    s = spec.loads(BASE, ["data.dataset=xor", "train.learning_rate=0.5", "model.depth=[1,2]"])
    assert s.tree["data"]["dataset"] == "xor"
    assert s.tree["train"]["learning_rate"] == 0.5
    assert s.tree["model"]["depth"] == [1, 2]


def test_resolved_spec_round_trips_through_toml():
    s = spec.loads(BASE + "[data.disk_annulus]\ninner = [0.2, 0.3]\n")
    again = spec.loads(s.to_toml())
    assert again.tree == s.tree and again.fingerprint() == s.fingerprint()


@pytest.mark.parametrize("edit, key", [
    (("depth = 1", "depth = 0"), "model.depth"),
    (("depth = 1", 'depth = "deep"'), "model.depth"),
    (("depth = 1", "depth = 1\nwidht = 3"), "model.widht"),
    (('dataset = "disk_annulus"', 'dataset = "donut"'), "data.dataset"),
    (("seeds = 2", "seeds = 0"), "train.seeds"),
    (("seeds = 2", "seeds = 2\nseparation = 1.5"), "train.separation"),
    (("seeds = 2", "seeds = 2\nseparation = [0.9, 1.0]"), "train.separation"),
    (("width = [2, 3]", "width = [2, 2]"), "model.width"),
    (("width = [2, 3]", "width = []"), "model.width"),
    (('name = "t"', 'name = "a b"'), "name"),
    (('name = "t"', ""), "name"),
    (("[train]", "[trian]"), "trian"),
    (("[train]", "[data.two_spirals]\nturns = 1\n[train]"), "data.two_spirals"),
    (("[train]", "[data.disk_annulus]\nradius = 1\n[train]"), "data.disk_annulus.radius"),
    (("[train]", "[data.disk_annulus]\ninner = -1\n[train]"), "data.disk_annulus.inner"),
    (("[model]", "[model]\nactivation = \"swishy\""), "model.activation"),
])
def test_bad_specs_name_the_key(edit, key):
    old, new = edit
    assert old in BASE
    with pytest.raises(SweepnetError) as e:
        spec.loads(BASE.replace(old, new, 1), source="s.toml")
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("s.toml") and key in msg


def test_bad_toml_and_overrides():
    with pytest.raises(SweepnetError, match="invalid TOML"):
        spec.loads("name = ")
    with pytest.raises(SweepnetError, match="KEY=VALUE"):
        spec.loads(BASE, ["model.width"])
    with pytest.raises(SweepnetError, match="model.colour"):
        spec.loads(BASE, ["model.colour=3"])
    with pytest.raises(SweepnetError, match="cannot parse"):
        spec.loads(BASE, ["model.width=[2,"])


def test_missing_spec_file(tmp_path):
    with pytest.raises(SweepnetError, match="nope.toml"):
        spec.load(str(tmp_path / "nope.toml"))


def test_shipped_sweeps_validate():
    import glob

    paths = sorted(glob.glob("sweeps/*.toml"))
    assert "sweeps/quick.toml" in paths and "sweeps/olah.toml" in paths
    for p in paths:
        assert spec.load(p).grid()
    olah = spec.load("sweeps/olah.toml")
    assert len(olah.grid()) == 8 * 8 * 4 * 16


FILE_SPEC = """
name = "mine"
[data]
dataset = "file"
n_train = 30
n_test = 100
[data.file]
path = "pts.csv"
[model]
width = [2, 3]
depth = 1
"""


def _points(path, rows=50):
    path.write_text("a,b,label\n" + "\n".join(f"{i / rows},{-i / rows},{i % 2}"
                                                for i in range(rows)))


def test_a_relative_data_path_is_relative_to_the_spec_folder(tmp_path, monkeypatch):
    """The same spec loads alike from its own folder and from another one (the same
    fingerprint, so a results folder resumes from either), storing the path absolute; a path
    given by --set, or in a spec given as text, is relative to the working directory."""
    (tmp_path / "x").mkdir()
    (tmp_path / "a").mkdir()
    _points(tmp_path / "x" / "pts.csv")
    (tmp_path / "x" / "spec.toml").write_text(FILE_SPEC)
    want = str(tmp_path / "x" / "pts.csv")
    monkeypatch.chdir(tmp_path / "a")
    away = spec.load("../x/spec.toml")
    assert away.tree["data"]["file"]["path"] == want
    assert f'path = "{want}"' in away.to_toml()
    monkeypatch.chdir(tmp_path / "x")
    home = spec.load("spec.toml")
    assert home.fingerprint() == away.fingerprint()
    assert [spec.run_id(c) for c in home.grid()] == [spec.run_id(c) for c in away.grid()]
    _points(tmp_path / "a" / "other.csv")
    monkeypatch.chdir(tmp_path / "a")
    assert spec.load("../x/spec.toml", ["data.file.path=other.csv"]).tree["data"]["file"][
        "path"] == str(tmp_path / "a" / "other.csv")
    assert spec.loads(FILE_SPEC.replace("pts.csv", "other.csv")).tree["data"]["file"][
        "path"] == "other.csv"
    with pytest.raises(SweepnetError, match="no such file"):
        spec.loads(FILE_SPEC)  # text: pts.csv is not in the working directory


@pytest.mark.parametrize("overrides, words", [
    (["data.n_train=50"], ["--set data.n_train: 50 but", "has only 50 points"]),
    (["data.n_train=[10, 60]"], ["--set data.n_train: 60 but"]),
    (["model.arch=resnet", "model.width=[1, 2]"], ["--set model.width", "below the input "
                                                   "dimension 2 of file"]),
])
def test_values_the_data_rule_out_name_set(tmp_path, overrides, words):
    _points(tmp_path / "pts.csv")
    path = tmp_path / "spec.toml"
    path.write_text(FILE_SPEC)
    with pytest.raises(SweepnetError) as e:
        spec.load(str(path), overrides)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    path.write_text(FILE_SPEC.replace("n_train = 30", "n_train = 50"))
    with pytest.raises(SweepnetError, match=f"^{path}: data.n_train: 50 but"):
        spec.load(str(path))  # from the file: the file is named


def test_docs_show_every_default_and_a_file_spec_that_works(tmp_path, monkeypatch):
    """docs/specs.md: the table of keys gives every key's default as the schema has it, and
    the `file` example (its CSV rows repeated to the spec's n_train + n_test) loads from
    another folder."""
    text = (Path(__file__).resolve().parents[1] / "docs" / "specs.md").read_text()
    rows = dict(re.findall(r"^\| `([\w.]+)` \| ([^|]+) \|", text, re.MULTILINE))
    for section, keys in spec.SCHEMA.items():
        for name, key in keys.items():
            dotted = f"{section}.{name}" if section else name
            want = "required" if key.default is None else (
                f"`{spec.dumps_toml({'v': key.default})[4:-1]}`" if isinstance(key.default, str)
                else repr(key.default))
            assert rows.get(dotted, "").strip() == want, (dotted, rows.get(dotted), want)
    own = text.split("### Your own data", 1)[1]
    csv = re.search(r"```csv\n(.*?)```", own, re.DOTALL)[1].splitlines()
    toml = re.search(r"```toml\n(.*?)```", own, re.DOTALL)[1]
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "mine.toml").write_text(toml)
    n = sum(tomllib.loads(toml)["data"][k] for k in ("n_train", "n_test"))
    body = (csv[1:] * n)[:n]
    (tmp_path / "data" / "points.csv").write_text("\n".join([csv[0], *body]) + "\n")
    monkeypatch.chdir(tmp_path)
    loaded = spec.load("data/mine.toml")
    assert loaded.tree["data"]["file"]["path"] == str(tmp_path / "data" / "points.csv")
