"""Reading a large folder in bounded memory (issue 27): a finished folder is read without a
table of every run id, the sample ranks its cells a batch at a time, DuckDB's memory is
capped. Each gives the same numbers as the unbounded way."""

import os
import shutil

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from sweepnet.store import query, results, tables
from sweepnet.views import cells


def test_a_finished_folder_is_read_without_a_table_of_every_run_id(tiny_results, monkeypatch):
    want = results.load(tiny_results)[["run_id", "grid_index"]]
    assert tables.trained_positions(tiny_results).all()

    every = tables.grid_ids

    def refuse(root, combos=None):
        if combos is None:  # every run of the grid (a table of combos' first seeds is fine)
            raise AssertionError("a list of every run id of the grid")
        return every(root, combos)

    monkeypatch.setattr(tables, "grid_ids", refuse)
    monkeypatch.setattr(query, "grid_ids", refuse)
    got = query.query(tiny_results, "SELECT run_id, grid_index FROM runs ORDER BY grid_index")
    pd.testing.assert_frame_equal(got, want)
    assert query.query(tiny_results, "SELECT count(*) AS n FROM curves")["n"][0] == 8 * 3
    assert results.progress(tiny_results) == (8, 8) and not len(results.pending(tiny_results))


def test_runs_not_at_their_stored_grid_index_are_matched_by_run_id(tiny_results, tmp_path):
    """A part whose grid_index is not the spec's (as a grown spec leaves them) is read through
    the run ids: the views give every run its index in the current spec."""
    root = str(tmp_path / "moved")
    shutil.copytree(tiny_results, root)
    want = results.load(root)[["run_id", "grid_index"]]
    part = sorted(os.listdir(os.path.join(root, "runs")))[0]
    path = os.path.join(root, "runs", part)
    t = pq.read_table(path).to_pandas()
    t["grid_index"] = t["grid_index"][::-1].to_numpy()  # the same positions, swapped
    t.to_parquet(path, index=False)
    assert tables.trained_positions(root) is None
    got = query.query(root, "SELECT run_id, grid_index FROM runs ORDER BY grid_index")
    pd.testing.assert_frame_equal(got, want)
    assert results.progress(root) == (8, 8)


def test_duckdb_memory_is_capped_and_spills_to_the_temp_folder(tiny_results):
    con = cells.connect(tiny_results)
    limit, spill = con.execute("SELECT current_setting('memory_limit'), "
                               "current_setting('temp_directory')").fetchone()
    assert limit.endswith("MiB") and float(limit.split()[0]) <= 200  # 2 threads: 128 MB
    assert not spill.startswith(".") and os.path.isabs(spill)


def _runs() -> duckdb.DuckDBPyConnection:
    """A runs view of 7 cells (width x a key that is null in some) with ties, NaN and null
    metrics and repeated seeds: every case the sample's order has to break."""
    rng = np.random.default_rng(1)
    n = 3000
    runs = pd.DataFrame({
        "run_id": [f"r{i:05d}" for i in rng.permutation(n)],
        "seed": rng.integers(0, 900, n), "width": rng.integers(1, 4, n),
        "gap": np.where(rng.random(n) < 0.3, None, rng.choice(["a", "b"], n)),
        "test_acc": np.round(rng.random(n), 1), "train_loss": np.round(rng.random(n), 1),
        "steps_to_fit": pd.array(np.where(rng.random(n) < 0.4, None,
                                          rng.integers(0, 4, n) * 50), "Int64")})
    con = duckdb.connect()
    con.register("_runs", runs)
    con.execute("CREATE TABLE runs AS SELECT * REPLACE ("
                "CASE WHEN hash(run_id) % 20 = 0 THEN NULL WHEN hash(run_id) % 23 = 0 "
                "THEN 'nan'::DOUBLE ELSE test_acc END AS test_acc, CASE WHEN hash(run_id) % 17 "
                "= 0 THEN 'nan'::DOUBLE ELSE train_loss END AS train_loss) FROM _runs")
    return con


@pytest.mark.parametrize("size", [1, 2, 6, 64, 5000])
def test_the_sample_ranks_a_batch_of_cells_at_a_time_and_picks_the_same_seeds(
        monkeypatch, size):
    con = _runs()
    keys = ["width", "gap"]
    whole = cells.sample(con, keys, size)  # every cell in one batch
    monkeypatch.setattr(cells, "BATCH", 1)  # one cell a batch
    pd.testing.assert_frame_equal(cells.sample(con, keys, size), whole)
    # the extremes: the best test accuracy of each cell (NaN above every number, null last;
    # ties to the lower seed, then run id) is in its sample
    best = con.execute("SELECT first(run_id ORDER BY test_acc DESC NULLS LAST, seed, run_id) "
                       "FROM runs GROUP BY width, gap").fetchall()
    assert {r for (r,) in best} <= set(whole["run_id"])
