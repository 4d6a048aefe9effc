"""A results folder written by sweepnet 0.5.4 (``tests/data/results-0.5.4``: 8 networks, XLA's
gradient) still loads, grows and charts, and this version trains its networks to the same
numbers. Columns added since (the decision region's, ``ADDED``) are null on the old rows; every
old column keeps its values."""

import os
import shutil

import numpy as np
import pandas as pd
import pytest

import sweepnet
from conftest import PROVENANCE
from sweepnet.engine import run as engine
from sweepnet.store import results
from sweepnet.sweep import spec
from sweepnet.train import regions
from sweepnet.views import charts

OLD = os.path.join(os.path.dirname(__file__), "data", "results-0.5.4")
# runs columns since 0.5.4 (0.7.0: the decision region's, and when a network separated or
# stopped)
ADDED = {*regions.COLUMNS, "separated_at", "stopped_at"}


@pytest.fixture
def old(tmp_path, monkeypatch):
    monkeypatch.setenv("SWEEPNET_FUSED", "0")  # the gradient 0.5.4 trained it with
    out = tmp_path / "old"
    shutil.copytree(OLD, out)
    return str(out)


def _table(df: pd.DataFrame) -> pd.DataFrame:
    return df.drop(columns=[c for c in PROVENANCE if c in df]).set_index("run_id").sort_index()


def test_a_0_5_4_folder_loads_grows_and_charts(old):
    before = sweepnet.load(old)
    assert len(before) == 8 and set(before["sweepnet_version"]) == {"0.5.4"}
    assert before["separated"].dtype == bool
    s = spec.load(os.path.join(old, "spec.toml"), ["train.seeds=3"])  # grow: a third seed
    summary = engine.run_sweep(s, old, progress=False)
    assert (summary.trained, summary.skipped, summary.total) == (4, 8, 12)
    after = sweepnet.load(old)
    assert len(after) == 12 and after["run_id"].is_unique
    kept = after[after["run_id"].isin(before["run_id"])]
    assert set(after.columns) - set(before.columns) == ADDED
    assert kept[list(ADDED)].isna().all().all()  # the old runs were not measured
    new = ~after["run_id"].isin(before["run_id"])
    assert after.loc[new, list(regions.COLUMNS)].notna().all().all()
    # the old rows, untouched (grid_index: a run's place in the grown grid)
    pd.testing.assert_frame_equal(_table(kept[list(before.columns)]).drop(columns="grid_index"),
                                  _table(before).drop(columns="grid_index"))
    assert results.progress(old) == (12, 12)
    spec_dict = charts.from_results(old, "phase").to_dict()
    assert len(spec_dict["datasets"] if "datasets" in spec_dict else spec_dict["data"]) > 0


def test_this_version_trains_0_5_4s_networks_to_the_same_numbers(old, tmp_path):
    """Bit for bit on the machine that wrote the folder; within float round-off elsewhere (a
    CPU with another instruction set rounds XLA's sums differently)."""
    s = spec.load(os.path.join(old, "spec.toml"))
    fresh = str(tmp_path / "fresh")
    engine.run_sweep(s, fresh, progress=False)
    a, b = _table(sweepnet.load(old)), _table(sweepnet.load(fresh))
    assert b["stopped_at"].isna().all()  # the spec does not stop networks
    assert set(b.columns) - set(a.columns) == ADDED
    b = b[list(a.columns)]
    assert list(a.index) == list(b.index) and list(a.columns) == list(b.columns)
    for c in a.columns:
        if pd.api.types.is_float_dtype(a[c]):
            np.testing.assert_allclose(a[c], b[c], rtol=1e-5, atol=1e-6, err_msg=c)
        else:
            assert a[c].equals(b[c]), c
