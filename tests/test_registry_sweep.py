"""Every dataset of the registry trains end to end through the real engine."""

import numpy as np
import pytest

import sweepnet
from sweepnet import data, engine, spec


@pytest.mark.slow
def test_every_dataset_trains_through_the_engine(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(80, 2)).astype(np.float32)
    np.savez(tmp_path / "mine.npz", x=x, y=(x[:, 0] > 0).astype(np.int32))
    names = [n for n in data.DATASETS if n != "file"] + ["file"]
    text = f"""
name = "registry"
[data]
dataset = {names!r}
n_train = 48
n_test = 200
[data.gaussians]
classes = 3
[data.file]
path = "{tmp_path / 'mine.npz'}"
[model]
width = 4
depth = 1
[train]
steps = 30
eval_every = 10
seeds = 1
learning_rate = 0.05
""".replace("'", '"')
    s = spec.loads(text)
    engine.run_sweep(s, str(tmp_path / "out"), progress=False)
    df = sweepnet.load(str(tmp_path / "out"))
    assert sorted(df["dataset"]) == sorted(names)
    assert df.set_index("dataset").loc["gaussians", "n_classes"] == 3
    assert df.set_index("dataset").loc["nested_spheres", "in_dim"] == 3
    # the file holds 80 points: 48 train and the probe gets the other 32 (not the 200 asked)
    mine = df.set_index("dataset").loc["file"]
    assert mine["n_test"] == 200 and mine["test_acc"] > 0.6
    assert np.isfinite(df["train_loss"]).all() and not df["diverged"].any()
    assert (df["train_acc"] > 0.4).all() and (df["test_acc"] > 0.3).all()
