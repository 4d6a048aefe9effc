"""Error bars and the adaptive boundary search (issue 26): the exact interval, the sequential
rule's error rate and seed count on simulated cells, and the search on simulated grids:
the boundary it finds, the rows it flags, what it infers and from what, and that its choices
depend only on the outcomes (a kill and resume, or a full grid replayed, choose alike)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from sweepnet.core.errors import SweepnetError
from sweepnet.core.stats import SequentialRule, clopper_pearson, spend, verdict
from sweepnet.engine.search import Search, minimal_width

WIDTHS = (1, 2, 3, 4, 5, 6, 7, 8)
AXES = ("activation", "depth")


def grid(depths=(1, 2, 3, 4), acts=("tanh", "relu")):
    return [((a, d), w) for a in acts for d in depths for w in WIDTHS]


def draw(cells, share, seeds=16, seed=0):
    """Per cell, ``seeds`` outcomes drawn at the cell's true share ``share(row, width)``."""
    rng = np.random.default_rng(seed)
    return {c: list(rng.random(seeds) < share(*c)) for c in cells}


def drive(search, outcomes, kill=None):
    """Train as an engine would: each round, the asked seeds of each asked cell (taken from
    ``outcomes``, the networks' fixed results); ``kill(rng)`` drops a random part of a round,
    as a killed run does, before the next call."""
    seen = {}
    rng = np.random.default_rng(1)
    rounds = 0
    while targets := search.next_round(seen):
        rounds += 1
        assert rounds < 100
        for cell, total in targets.items():
            have = len(seen.get(cell, []))
            stop = total if kill is None else have + int(rng.integers(0, total - have + 1))
            seen[cell] = outcomes[cell][:stop]
    return seen, rounds


# -- the exact interval and the sequential rule ------------------------------------------------


def test_clopper_pearson_exact_values_and_edges():
    low, high = clopper_pearson([0, 8, 4, 0], [8, 8, 8, 0])
    assert low.shape == (4,)
    assert low[0] == 0 and high[0] == pytest.approx(1 - 0.025 ** (1 / 8))
    assert high[1] == 1 and low[1] == pytest.approx(0.025 ** (1 / 8))
    assert (low[2], high[2]) == pytest.approx((1 - high[2], 1 - low[2]))  # k = n/2: symmetric
    assert (low[3], high[3]) == (0.0, 1.0)  # no seeds: no information
    # the textbook value for 13 of 16: the beta quantiles
    lo, hi = clopper_pearson(13, 16, 0.95)
    assert (lo, hi) == pytest.approx((sps.beta.ppf(0.025, 13, 4), sps.beta.ppf(0.975, 14, 3)))
    with pytest.raises(SweepnetError, match="confidence"):
        clopper_pearson(1, 2, 1.5)
    # one look (a fixed grid): 13 of 16 is above a half at 95%, 12 of 16 is not; no seeds: no
    assert list(verdict([13, 12, 3, 4, 0], [16, 16, 16, 16, 0])) == [
        "above", "boundary", "below", "boundary", "boundary"]


def test_spending_and_rule_plan():
    assert spend(2, 0.05) == (0.025, 0.025)
    assert sum(spend(3, 0.05, "late")) == pytest.approx(0.05)
    assert spend(3, 0.05, "late")[2] == pytest.approx(0.025)
    rule = SequentialRule.plan((8, 16, 32), max_seeds=16)  # 32 is cut: 16 is the last look
    assert rule.looks == (8, 16) and rule.alpha == pytest.approx(0.05)
    # 8 agreeing seeds decide at alpha 0.025; at 16, exactly what one 95% look decides
    assert rule.cutoffs() == [(0, 8), (3, 13)]
    assert list(rule.verdict([0, 7, 8, 3, 4, 12, 13], [8, 8, 8, 16, 16, 16, 16])) == [
        "below", "boundary", "above", "below", "boundary", "boundary", "above"]
    assert list(rule.next_seeds([0, 5, 8, 16])) == [8, 8, 16, 16]
    for bad in ({"confidence": 1.0}, {"spending": "sometimes"}, {"spending": (1, 2, 3)}):
        with pytest.raises(SweepnetError):
            SequentialRule.plan(**{"looks": (8, 16), **bad})
    with pytest.raises(SweepnetError, match="increasing"):
        SequentialRule((16, 8), (0.025, 0.025))


def simulate(rule, p, n_cells=20000, seed=0):
    """Run the sequential rule on ``n_cells`` cells of true share ``p``: (verdicts, seeds used,
    interval covers p)."""
    rng = np.random.default_rng(seed)
    hits = rng.random((n_cells, rule.max_seeds)) < p
    verdict = np.full(n_cells, "boundary", dtype=object)
    used = np.zeros(n_cells, dtype=np.int64)
    covers = np.ones(n_cells, dtype=bool)
    live = np.ones(n_cells, dtype=bool)
    for n in rule.looks:
        k = hits[:, :n].sum(axis=1)
        every = np.arange(n + 1)  # the rule on every count once, then looked up
        v = rule.verdict(every, n)[k]
        low, high = (a[k] for a in rule.interval(every, n))
        last = n == rule.max_seeds
        stop = live & ((v != "boundary") | last)
        verdict[stop], used[stop] = v[stop], n
        covers[stop] = (low[stop] <= p) & (p <= high[stop])
        live &= ~stop
    return verdict, used, covers


@pytest.mark.parametrize("p", [0.5, 0.45, 0.55, 0.35])
def test_sequential_rule_error_rate_is_at_most_alpha(p):
    # many looks, so that spending the error over them matters: each look at the full 5%
    # would be wrong about 9% of the time at p = 0.5
    rule = SequentialRule.plan((8, 12, 16, 20, 24, 28, 32), confidence=0.95)
    verdict, used, covers = simulate(rule, p)
    wrong = (verdict == "above") if p <= rule.threshold else (verdict == "below")
    if p == rule.threshold:
        wrong |= verdict == "below"
    assert wrong.mean() <= 0.05  # the error rate asked for
    assert covers.mean() >= 0.95  # the interval reported where a cell stopped holds p
    assert used.max() <= rule.max_seeds


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_a_certain_cell_uses_the_first_look_only(p):
    rule = SequentialRule.plan((8, 16, 32))
    verdict, used, _ = simulate(rule, p, n_cells=100)
    assert set(used) == {8}
    assert set(verdict) == {"above" if p else "below"}


# -- the search ------------------------------------------------------------------------------


def step_rows(edges):
    """A share function: row ``r`` separates every seed from width ``edges[r]`` on, none below."""
    return lambda row, w: float(w >= edges[row])


def test_search_finds_each_rows_boundary_and_infers_the_rest():
    cells = grid()
    edges = {("tanh", 1): 3, ("tanh", 2): 3, ("tanh", 3): 4, ("tanh", 4): 5,
             ("relu", 1): 2, ("relu", 2): 3, ("relu", 3): 3, ("relu", 4): 9}  # 9: none
    outcomes = draw(cells, step_rows(edges))
    search = Search(cells, looks=(8, 16), max_seeds=16, axes=AXES)
    seen, _ = drive(search, outcomes)
    for b in search.boundaries(seen):
        edge = edges[(b["activation"], b["depth"])]
        if edge > WIDTHS[-1]:
            assert (b["low"], b["high"], b["decided"]) == (None, None, True)  # all below
        else:
            assert (b["low"], b["high"], b["decided"]) == (edge, edge, True), b
        assert b["monotone"]
    counts = search.counts(seen)
    # unanimous cells stop at the first look; far cells are not trained
    assert set(n for n, _ in counts.values()) == {8}
    assert sum(n for n, _ in counts.values()) < 0.3 * 16 * len(cells)
    table = search.verdicts(seen)
    assert len(table) == len(cells)
    w1 = next(c for c in table if (c["activation"], c["depth"], c["width"]) == ("tanh", 1, 1))
    assert (w1["n"], w1["verdict"]) == (0, "below")
    assert w1["inferred_from"] == "width 2 at activation tanh, depth 1 (0/8)"
    assert w1["high"] == pytest.approx(1 - 0.0125 ** (1 / 8))  # narrowed by width 2's interval
    w6 = next(c for c in table if (c["activation"], c["depth"], c["width"]) == ("tanh", 1, 6))
    assert (w6["n"], w6["verdict"]) == (0, "above") and w6["inferred_from"].startswith("width ")
    assert all(c["inferred_from"] == "" for c in table if c["n"] and c["verdict"] == "below")


def test_search_on_noisy_monotone_rows_holds_the_true_boundary():
    cells = grid(depths=(1, 2, 3, 4, 5, 6))
    true_edge = {("tanh", d): 3 + (d > 3) for d in range(1, 7)}
    true_edge.update({("relu", d): 4 for d in range(1, 7)})

    def share(row, w):  # steep but not certain: 0.02, ..., 0.25 just below, 0.8 at, 0.97 above
        e = true_edge[row]
        return {e - 1: 0.25, e: 0.8, e + 1: 0.97}.get(w, 0.02 if w < e else 0.97)

    search = Search(cells, looks=(8, 16), max_seeds=16, axes=AXES)
    seen, _ = drive(search, draw(cells, share, seed=3))
    for b in search.boundaries(seen):
        e = true_edge[(b["activation"], b["depth"])]
        hi = b["high"] if b["high"] is not None else np.inf
        assert b["low"] <= e <= hi, b  # the interval holds the truth (p = 0.8 at the edge)
        if b["decided"]:
            assert b["low"] == e


def test_a_row_that_is_not_monotone_is_flagged_and_trained_in_full():
    cells = grid(depths=(1, 2), acts=("tanh",))

    def share(row, w):  # depth 2: widths 3-6 always separate, 7-8 never
        return float(w >= 3 and (row[1] == 1 or w <= 6))

    search = Search(cells, looks=(8, 16), max_seeds=16, axes=AXES)
    seen, _ = drive(search, draw(cells, share))
    table = {(c["depth"], c["width"]): c for c in search.verdicts(seen)}
    assert all(table[(1, w)]["monotone"] for w in WIDTHS)
    assert not any(table[(2, w)]["monotone"] for w in WIDTHS)
    # in the flagged row every cell has its own verdict, nothing inferred, and a cell decided
    # at the first look (here every one: its seeds agree) got no more seeds
    assert all(table[(2, w)]["n"] == 8 and table[(2, w)]["inferred_from"] == "" for w in WIDTHS)
    assert [table[(2, w)]["verdict"] for w in WIDTHS] == ["below"] * 2 + ["above"] * 4 + [
        "below"] * 2
    # without the check the search would never look past width 3
    blind = Search(cells, looks=(8, 16), max_seeds=16, axes=AXES, check=False)
    seen, _ = drive(blind, draw(cells, share))
    assert all(c["monotone"] for c in blind.verdicts(seen))


def test_rows_start_from_a_neighbours_boundary():
    cells = grid(depths=tuple(range(1, 9)), acts=("tanh",))
    search = Search(cells, looks=(8, 16), max_seeds=16, axes=AXES)
    assert len(search.pilots) < len(search.rows) / 2
    seen, _ = drive(search, draw(cells, step_rows({r: 3 for r in search.rows})))
    counts = search.counts(seen)
    for row in search.rows:
        if row not in search.pilots:  # bracketed its neighbour's width 3: widths 2 and 3 only
            assert {w for (r, w) in counts if r == row} == {2, 3, 8}  # 8: the check


def test_choices_depend_only_on_the_outcomes():
    cells = grid()

    def share(row, w):
        return min(1.0, max(0.0, (w - 2) * 0.3 - 0.1 * (row[1] - 1)))

    outcomes = draw(cells, share, seed=5)
    search = Search(cells, looks=(7, 16), max_seeds=16, axes=AXES)
    whole, rounds = drive(search, outcomes)
    killed, killed_rounds = drive(search, outcomes, kill=True)  # partial rounds, resumed
    assert killed_rounds > rounds
    assert search.counts(killed) == search.counts(whole)
    assert pd.DataFrame(search.verdicts(killed)).equals(pd.DataFrame(search.verdicts(whole)))
    # the full grid, every seed trained, replays to the same choices
    assert search.counts(outcomes) == search.counts(whole)
    assert search.replay(outcomes).rounds == search.replay(whole).rounds


def test_estimate_brackets_what_a_search_uses():
    cells = grid()
    search = Search(cells, looks=(8, 16), max_seeds=16, axes=AXES)
    low, high = search.estimate()
    assert high == len(cells) * 16
    seen, _ = drive(search, draw(cells, lambda r, w: 0.6 if w == 3 else float(w > 3)))
    used = sum(n for n, _ in search.counts(seen).values())
    assert low <= used <= high
    assert low >= len(search.rows) * 8  # at least one first look a row


def test_minimal_width_and_bad_input():
    assert minimal_width([1, 2, 3, 4], ["below", "below", "boundary", "above"]) == {
        "low": 3, "high": 4, "decided": False}
    assert minimal_width([1, 2], ["below", "below"]) == {"low": None, "high": None,
                                                          "decided": True}
    assert minimal_width([1, 2], ["above", "above"])["decided"]
    with pytest.raises(SweepnetError, match="start"):
        Search(grid(), start="sideways")
    with pytest.raises(SweepnetError, match="no cells"):
        Search([])
    search = Search(grid(), looks=(8, 16), max_seeds=16)
    first = next(iter(search.next_round({})))
    with pytest.raises(ValueError, match="True, False or None"):
        search.next_round({first: [2] * 8})
