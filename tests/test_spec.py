import pytest

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
