"""Every dataset of the registry trains end to end through the real engine."""

import numpy as np
import pytest

import sweepnet
from sweepnet.engine import run as engine
from sweepnet.sweep import data, spec


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
steps = 300
eval_every = 100
seeds = 1
learning_rate = 0.05
""".replace("'", '"')
    s = spec.loads(text)
    engine.run_sweep(s, str(tmp_path / "out"), progress=False)
    df = sweepnet.load(str(tmp_path / "out"))
    assert sorted(df["dataset"]) == sorted(names)
    assert df.set_index("dataset").loc["gaussians", "n_classes"] == 3
    assert df.set_index("dataset").loc["nested_spheres", "in_dim"] == 3
    # the file holds 80 points: 48 train and the probe gets the other 32 (not the 200 asked),
    # which the runs table records
    mine = df.set_index("dataset").loc["file"]
    assert mine["n_test"] == 32 and mine["test_acc"] > 0.6
    assert np.isfinite(df["train_loss"]).all() and not df["diverged"].any()
    # every dataset is learnt, not guessed (chance: 0.5, gaussians 1/3). 300 steps cost what 30
    # did (the 5 compiles are the cost) and reached train 0.98-1.0, test 0.875-1.0 when set.
    # Naitzat's shapes and balls' (four disks, one an annulus) need more than 48 points to
    # generalise (test 0.55-0.65), so for them the network must fit its training set: train
    # 0.77-0.92, loss 0.34-0.38 (ln 2 = 0.69)
    naitzat = df["dataset"].str.startswith("naitzat") | (df["dataset"] == "balls")
    rest = df[~naitzat]
    assert (rest["train_acc"] >= 0.95).all(), rest[["dataset", "train_acc"]]
    assert (rest["test_acc"] >= 0.8).all(), rest[["dataset", "test_acc"]]
    assert (df.loc[naitzat, "train_acc"] >= 0.7).all()
    assert (df.loc[naitzat, "train_loss"] < 0.5).all()
