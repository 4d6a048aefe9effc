"""An adaptive sweep (``[search] mode = "boundary"``, issue 26) in the engine: it trains what
its search asks for, each network as it would train in the full grid, and a killed search
resumes to the same table."""

import pandas as pd
import pytest

import sweepnet
from conftest import runs_table
from sweepnet.engine import adaptive
from sweepnet.engine import run as engine
from sweepnet.store import query, results
from sweepnet.sweep import spec

SPEC = """
name = "adaptive"
[data]
dataset = "disk_annulus"
n_train = 64
n_test = 256
[model]
width = [1, 2, 3, 4]
depth = 1
activation = ["tanh", "relu"]
[train]
learning_rate = 0.05
steps = 200
eval_every = 50
seeds = 16
stop = "separated"
"""
SEARCH = SPEC + '[search]\nmode = "boundary"\n'


class Killed(Exception):
    """Stands in for SIGKILL right after a part is committed."""


def adaptive_sweep(out: str, mp: pytest.MonkeyPatch, kill_after: int | None = None):
    parts, write = [], engine.write_part

    def recording(writer, bucket, call, result, written):
        write(writer, bucket, call, result, written)
        parts.append([r.run_id for r in call.runs])
        if len(parts) == kill_after:
            raise Killed

    mp.setattr(engine, "write_part", recording)
    return engine.run_sweep(spec.loads(SEARCH), out, progress=False), parts


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """The full grid (stopping at separation) and the adaptive sweep of the same spec."""
    full, searched = (str(tmp_path_factory.mktemp(n)) for n in ("full", "searched"))
    engine.run_sweep(spec.loads(SPEC), full, progress=False)
    with pytest.MonkeyPatch.context() as mp:
        summary, parts = adaptive_sweep(searched, mp)
    return full, searched, summary, parts


def test_a_search_trains_part_of_the_grid_each_network_as_in_the_full_grid(swept):
    full, searched, summary, _ = swept
    a, b = runs_table(searched), runs_table(full)
    assert 0 < len(a) < len(b) == 128 and summary.trained == len(a)
    assert 0 < summary.network_steps < summary.grid_steps == 128 * 200
    # a network's row depends on its configuration and seed, not on the search or its slot;
    # the search's calls are shorter (adaptive.CPU_LANES a device), and XLA's round-off in
    # the final evaluation depends on a call's size: floats agree to it (the margins, refined
    # by projected gradient descent, to 1e-4), the rest exactly
    b = b.loc[a.index]
    floats = [c for c in a.columns if pd.api.types.is_float_dtype(a[c])]
    pd.testing.assert_frame_equal(a.drop(columns=floats), b.drop(columns=floats),
                                  check_exact=True)
    pd.testing.assert_frame_equal(a[floats], b[floats], rtol=1e-4, atol=1e-4)


def test_the_engine_trains_what_the_search_replayed_on_the_full_grid_asks_for(swept):
    """The search is a pure function of the outcomes: replayed offline on the full grid's, it
    asks for exactly the networks the adaptive sweep trained (each cell's first seeds)."""
    full, searched, _, _ = swept
    s = spec.loads(SEARCH)
    offline = adaptive.Adaptive(s, engine.plan_lib.expand(s))
    offline.seen(sweepnet.load(full)[["run_id", "separated"]])
    counts = offline.search.counts(offline.outcomes)
    asked = {offline.runs[cell][i].run_id for cell, (n, _) in counts.items() for i in range(n)}
    assert asked == set(sweepnet.load(searched)["run_id"])


def test_a_killed_search_resumes_to_the_same_table(tmp_path, monkeypatch, swept):
    _, ref, _, ref_parts = swept
    out = str(tmp_path / "out")
    with pytest.raises(Killed):
        adaptive_sweep(out, monkeypatch, kill_after=2)
    kept = set(sweepnet.load(out)["run_id"])
    summary, _ = adaptive_sweep(out, monkeypatch)
    assert summary.skipped == len(kept) and summary.trained == len(runs_table(ref)) - len(kept)
    pd.testing.assert_frame_equal(runs_table(out), runs_table(ref), check_exact=True)
    assert results.read_manifest(out)["status"] == "complete"


def test_the_cells_view_of_a_search_says_which_cells_were_inferred_and_from_what(swept):
    _, searched, _, _ = swept
    cells = query.query(searched, "select * from cells")
    assert len(cells) == 8  # 4 widths x 2 activations, trained or not
    runs = sweepnet.load(searched)
    trained = runs.groupby(["activation", "width"]).size()
    for c in cells.itertuples():
        n = trained.get((c.activation, c.width), 0)
        assert c.n == n
        assert (c.inferred_from != "") == (n == 0) or c.verdict == "boundary"
        if n == 0:
            assert c.verdict in ("above", "below") and "width" in c.inferred_from
    # width 1 never separates the disk: decided below, from its own seeds or inferred
    assert set(cells.loc[cells["width"] == 1, "verdict"]) == {"below"}


def test_raising_the_seeds_continues_the_search(tmp_path, swept):
    """A search at 8 seeds a cell, then the same spec at 16 (`train.seeds` is the last look):
    the grown folder's search ends with the verdicts of a search run at 16 seeds from the
    start, every network it asks for trained as that one trains it."""
    _, ref, _, _ = swept
    out = str(tmp_path / "grown")
    engine.run_sweep(spec.loads(SEARCH.replace("seeds = 16", "seeds = 8")), out, progress=False)
    small = set(sweepnet.load(out)["run_id"])
    summary = engine.run_sweep(spec.loads(SEARCH), out, progress=False)
    assert summary.skipped == len(small) and summary.trained > 0
    cells = lambda d: query.query(d, "select * exclude (inferred_from) from cells order by all")
    pd.testing.assert_frame_equal(cells(out), cells(ref))
    grown, direct = runs_table(out), runs_table(ref)
    assert set(direct.index) <= set(grown.index)  # and seeds the smaller search asked for
    pd.testing.assert_frame_equal(grown.loc[direct.index], direct, check_exact=True)


def test_search_looks_sets_the_looks_cut_at_the_seeds_and_is_checked():
    s = spec.loads(SEARCH + "looks = [4, 8]\n")
    assert adaptive.Adaptive(s, engine.plan_lib.expand(s)).search.rule.looks == (4, 8, 16)
    default = spec.loads(SEARCH)
    assert adaptive.Adaptive(default, engine.plan_lib.expand(default)).search.rule.looks == (7, 16)
    # a free key: the runs are the same networks, so a folder may grow with new looks
    assert spec.grow_conflicts(default, s) == []
    for bad, word in (("[8, 4]", "increasing"), ("[0, 8]", "out of range"), ('"8"', "int")):
        with pytest.raises(sweepnet.SweepnetError, match=f"search.looks: .*{word}"):
            spec.loads(SEARCH + f"looks = {bad}\n")
