"""The adaptive boundary search: which cells of a grid to train next, and how many seeds.

A sweep's grid is a set of *rows* (everything but width: data, depth, activation ...) times
the widths. The question is where along width a row starts to separate: the smallest width
whose share of separated seeds is above a threshold. A full grid answers it by training every
seed of every cell; :class:`Search` answers it with the cells and seeds that can change it.

- Seeds come in planned looks (:class:`sweepnet.core.stats.SequentialRule`): a cell decided
  at a look ("above" or "below" the threshold at that look's confidence) gets no more seeds.
- Along width a row is taken to be monotone (wider separates at least as often), so a cell
  decided "below" makes every narrower cell "below", and one decided "above" every wider cell
  "above": those are *inferred*, never trained, and the table says from which cell. A row's
  search narrows the gap between its widest "below" and narrowest "above" cell until every
  cell in the gap is decided or undecided with every seed ("boundary").
- A row starts from a neighbouring row's boundary (rows that differ in one coordinate by one
  step: depth 3 and depth 4, or two activations next to each other in the spec). A few
  *pilot* rows, chosen so that every row is one or neighbours one, search from the middle
  width; every other row waits for its *leader* (the first pilot among its neighbours) to
  finish, then first trains the two widths around the leader's narrowest "above" width.
  Neighbouring rows have near boundaries, so this saves most of a bisection.
- A sparse check for rows that are not monotone: once a row has a width decided "above", its
  widest cell gets one look. If that look does not contradict the row (its share is at least
  the threshold) it stands; otherwise the cell goes on to its verdict, and if that ends
  "below", or undecided with a share under the threshold, the row is flagged ``monotone =
  False``: every cell of it is trained to its own verdict and nothing in it is inferred.

The state is plain data, the outcomes: ``{(row, width): [separated, ...]}``, one entry a
seed in seed order (position in the spec's seed list; ``None`` or a short list: not trained
yet). Every method replays the search from the start on them, row by row: a row's first
round is what it asks for with no outcomes; a round whose seeds are all there is taken (a look
at ``n`` seeds uses a cell's *first* ``n``), and the first that is not is what
:meth:`Search.next_round` asks of that row. So the choices are a pure
function of the networks' outcomes, which depend only on each network's configuration and
seed: a run killed at any moment and resumed, a grid trained in full and replayed offline,
and a run whose maximum seeds grew (a new rule, replayed on the same seeds) all make the
choices an uninterrupted search on those seeds makes. Pure Python and numpy: no JAX.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from sweepnet.core.errors import SweepnetError
from sweepnet.core.stats import SequentialRule

Cell = tuple[Hashable, int]
"""A grid cell: ``(row, width)``; ``row`` is a tuple of coordinate values (see ``axes``)."""
Outcomes = Mapping[Cell, Sequence["bool | None"]]
"""Per cell, whether each seed separated, in seed order (``None``: not trained yet)."""
Counts = dict[Cell, tuple[int, int]]
"""Per cell, ``(n, k)``: the first ``n`` seeds the search used, ``k`` of them separated."""

STARTS = ("neighbours", "middle")


@dataclass(frozen=True)
class Progress:
    """The search replayed on some outcomes (:meth:`Search.replay`).

    ``counts``: ``{cell: (n, k)}`` used so far; ``rounds``: per row, its rounds' targets in
    order (the last one maybe unfinished); ``missing``: what the rows' current rounds still
    need (:meth:`Search.next_round`); ``states``: per row, its :class:`RowState` after the
    counts; ``depth``: the longest chain of rounds (a leader's then its row's), the number of
    times an engine that refills slots at once must wait for a round to finish.
    """

    counts: dict
    rounds: dict
    missing: dict
    states: dict
    depth: int


@dataclass(frozen=True)
class RowState:
    """What a row's outcomes say, by position ``i`` along its widths (``W`` of them).

    ``lo``: the widest position decided "below" (-1 if none); ``hi``: the narrowest decided
    "above" (``W`` if none); ``monotone``: no decided cell contradicts the order and the check
    did not fail; ``targets``: ``{i: seeds to have in total}`` for this round (empty: done).
    """

    n: np.ndarray  # (W,) seeds trained
    k: np.ndarray  # (W,) seeds separated
    own: np.ndarray  # (W,) the cell's own verdict from its counts
    lo: int
    hi: int
    monotone: bool
    targets: dict[int, int]


class Search:
    """The boundary search over a grid of cells (see the module docstring).

    ``cells``: ``(row, width)`` pairs, rows as tuples of coordinate values (named by ``axes``
    in messages), in the order a user reads them; each row's widths are the widths it has.
    ``looks``, ``threshold``, ``confidence``, ``spending``, ``max_seeds``: the sequential rule
    (:meth:`SequentialRule.plan`; ``max_seeds``, from ``train.seeds``, is the last look).
    ``start``: ``"neighbours"`` (pilot rows search from the middle, the others start from a
    neighbour's boundary) or ``"middle"`` (every row bisects from the middle at once: fewer
    rounds, more networks). ``check``: the sparse monotonicity check at the widest width.

    Driving it (the engine; offline, pass a finished grid's outcomes)::

        search = Search(cells, looks=(8, 16), max_seeds=16)
        while targets := search.next_round(outcomes):   # {cell: seeds to have in total}
            ...train each cell's first `total` seeds, record outcomes[cell][seed]
        table = search.verdicts(outcomes)                # one dict a cell
    """

    def __init__(
        self,
        cells: Iterable[Cell],
        looks: Sequence[int] = (7, 16, 32),
        threshold: float = 0.5,
        confidence: float = 0.95,
        spending: str | Sequence[float] = "equal",
        max_seeds: int | None = None,
        axes: Sequence[str] = (),
        start: str = "neighbours",
        check: bool = True,
    ):
        if start not in STARTS:
            raise SweepnetError(f'search.start: one of {", ".join(STARTS)}; got "{start}"')
        self.rule = SequentialRule.plan(looks, threshold, confidence, spending, max_seeds)
        self._table = _Table(self.rule)
        self.axes = tuple(axes)
        self.start, self.check = start, bool(check)
        widths: dict[Hashable, set[int]] = {}
        for row, width in cells:
            row = _as_row(row)
            if self.axes and len(row) != len(self.axes):
                raise SweepnetError(f"search: row {row} has {len(row)} values for axes {self.axes}")
            widths.setdefault(row, set()).add(int(width))
        if not widths:
            raise SweepnetError("search: the grid has no cells")
        self.rows: tuple[tuple, ...] = tuple(widths)
        self.widths: dict[tuple, tuple[int, ...]] = {r: tuple(sorted(w)) for r, w in widths.items()}
        self.cells: tuple[Cell, ...] = tuple((r, w) for r in self.rows for w in self.widths[r])
        self.neighbours = _neighbours(self.rows)
        self.pilots = (
            frozenset(self.rows) if start == "middle" else _pilots(self.rows, self.neighbours)
        )
        # each other row starts from one fixed neighbour, the first pilot among its neighbours,
        # so that its choices depend only on its own and its leader's outcomes
        self.leaders: dict[tuple, tuple] = {
            row: next(r for r in self.neighbours[row] if r in self.pilots)
            for row in self.rows if row not in self.pilots
        }

    # -- the policy -----------------------------------------------------------------------------

    def next_round(self, outcomes: Outcomes) -> dict[Cell, int]:
        """``{cell: seeds it should have in total}``: each row's current round, where its seeds
        are not all in ``outcomes`` (a cell's seeds ``0 .. total-1``); empty when the search is
        done. A pure function of ``outcomes``; rows move on independently (a row waits only
        for its leader), so an engine may ask again whenever it has free slots."""
        return self.replay(outcomes).missing

    def counts(self, outcomes: Outcomes) -> Counts:
        """``{cell: (n, k)}`` for the cells the search has used so far (seeds in ``outcomes``
        beyond what it asked for are not counted)."""
        return self.replay(outcomes).counts

    def replay(self, outcomes: Outcomes) -> Progress:
        """The search from the start on ``outcomes``, row by row: pilots first, then each other
        row once its leader is done, starting from the leader's boundary. A row's round whose
        seeds are all there is taken; the first that is not is what the row still needs."""
        counts: Counts = {}
        rounds: dict[tuple, list[dict[Cell, int]]] = {}
        missing: dict[Cell, int] = {}
        states: dict[tuple, RowState] = {}
        done: set = set()
        for row in sorted(self.rows, key=lambda r: r not in self.pilots):  # stable: pilots first
            W = len(self.widths[row])
            n, k = np.zeros(W, dtype=np.int64), np.zeros(W, dtype=np.int64)
            rounds[row] = []
            lead = self.leaders.get(row)
            if lead is not None and lead not in done:  # waits for its leader
                states[row] = self._state(n, k, guess=None, wait=True)
                continue
            guess = None if lead is None else self._guess(row, lead, states[lead])
            while targets := self._state(n, k, guess).targets:  # each a later look: this ends
                rounds[row].append(
                    {(row, self.widths[row][i]): t for i, t in sorted(targets.items())})
                short = False
                for i, total in sorted(targets.items()):
                    cell = (row, self.widths[row][i])
                    seeds = _known(outcomes.get(cell, ()), cell)
                    if len(seeds) >= total:
                        n[i], k[i] = total, sum(seeds[:total])
                        counts[cell] = (total, int(k[i]))
                    else:
                        missing[cell], short = total, True
                if short:
                    break
            else:
                done.add(row)
            states[row] = self._state(n, k, guess)
        order = {cell: i for i, cell in enumerate(self.cells)}
        return Progress(
            counts=dict(sorted(counts.items(), key=lambda c: order[c[0]])),
            rounds={row: rounds[row] for row in self.rows},
            missing=dict(sorted(missing.items(), key=lambda c: order[c[0]])),
            states={row: states[row] for row in self.rows},
            depth=max(len(rounds[r]) + (len(rounds[self.leaders[r]]) if r in self.leaders else 0)
                      for r in self.rows),
        )

    def _guess(self, row, other, state: RowState) -> int:
        """Position in ``row`` of the neighbour's narrowest "above" width (W if it has none)."""
        widths = self.widths[row]
        if state.hi >= len(self.widths[other]):
            return len(widths)
        return int(np.searchsorted(widths, self.widths[other][state.hi]))

    def _state(self, n, k, guess: int | None, wait: bool = False) -> RowState:
        """A row's state after the counts ``n``, ``k`` (by width position) and what it trains
        next: ``guess`` is where its leader's boundary is (None: a pilot, from the middle)."""
        rule = self.rule
        W = len(n)
        own, _, _ = self._table(k, n)
        final = (own != "boundary") | (n >= rule.max_seeds)
        below, above = np.flatnonzero(own == "below"), np.flatnonzero(own == "above")
        lo = int(below.max()) if below.size else -1
        hi = int(above.min()) if above.size else W
        targets: dict[int, int] = {}
        more = rule.next_seeds(n)

        def go(i):
            targets[i] = int(more[i])

        monotone = lo < hi and not self._suspect(n, k, own, final, lo, hi)
        if not monotone:  # every cell to its verdict: no inference in this row
            for i in np.flatnonzero(~final):
                go(int(i))
        elif wait:
            pass
        elif not n.any():  # a row's first probes
            if guess is None:
                go((W - 1) // 2)
            else:
                for i in {guess - 1, guess} & set(range(W)):
                    go(i)
        else:
            gap = range(lo + 1, hi)
            running = [i for i in gap if n[i] > 0 and not final[i]]
            for i in running:
                go(i)
            untested = [i for i in gap if n[i] == 0]
            if not running and untested:
                for i in _probes(lo, hi, W, [i for i in gap if n[i] > 0], untested):
                    go(i)
            if self.check and hi < W - 1:
                c = W - 1  # the sparse check: the widest cell, one look unless it disagrees
                if n[c] == 0 or (not final[c] and k[c] < rule.threshold * n[c]):
                    go(c)
        return RowState(n, k, own, lo, hi, monotone, targets)

    def _suspect(self, n, k, own, final, lo, hi) -> bool:
        """A cell beyond the row's boundary that ended undecided with its share on the wrong
        side of the threshold (the check did not pass): the row may not be monotone, so
        nothing in it is inferred. (A decided contradiction, ``lo > hi``, is caught before.)"""
        t = self.rule.threshold
        return any(
            final[i] and own[i] == "boundary" and n[i] > 0
            and ((i > hi and k[i] < t * n[i]) or (i < lo and k[i] > t * n[i]))
            for i in range(len(n))
        )

    # -- what it found --------------------------------------------------------------------------

    def verdicts(self, outcomes: Outcomes) -> list[dict[str, Any]]:
        """One dict a cell (in ``self.cells`` order): the row's coordinates (by ``axes``, else
        ``row``), ``width``, ``n``, ``k``, ``share`` (NaN untrained), ``low``, ``high``,
        ``verdict`` and ``inferred_from`` ("" where the cell's own seeds decide), ``monotone``.

        An inferred cell's interval is its own narrowed by monotonicity: below a "below" cell
        ``high`` is at most that cell's; above an "above" cell ``low`` is at least that cell's.
        """
        out = []
        states = self.replay(outcomes).states
        for row in self.rows:
            st = states[row]
            _, low, high = self._table(st.k, st.n)
            W = len(st.n)
            for i, w in enumerate(self.widths[row]):
                verdict, source, lo_i, hi_i = st.own[i], "", float(low[i]), float(high[i])
                if verdict == "boundary" and st.monotone and i < st.lo:
                    verdict, source = "below", self.describe(row, st.lo, st)
                    hi_i = min(hi_i, float(high[st.lo]))
                elif verdict == "boundary" and st.monotone and st.hi < i < W:
                    verdict, source = "above", self.describe(row, st.hi, st)
                    lo_i = max(lo_i, float(low[st.hi]))
                n, k = int(st.n[i]), int(st.k[i])
                out.append({
                    **self._coords(row),
                    "width": w,
                    "n": n,
                    "k": k,
                    "share": k / n if n else float("nan"),
                    "low": lo_i,
                    "high": hi_i,
                    "verdict": str(verdict),
                    "inferred_from": source,
                    "monotone": st.monotone,
                })
        return out

    def boundaries(self, outcomes: Outcomes) -> list[dict[str, Any]]:
        """Per row, the minimal width above the threshold as an interval of tested widths.

        ``low``: the narrowest width not "below"; ``high``: the narrowest "above" (None: no
        tested width is above, the boundary may lie beyond the widest); ``decided``: ``low ==
        high``, or no width above and every width below (then both are None)."""
        table = self.verdicts(outcomes)
        out = []
        for row in self.rows:
            cells = [c for c in table if self._row_of(c) == row]
            out.append({**self._coords(row), **minimal_width(
                [c["width"] for c in cells], [c["verdict"] for c in cells]),
                "monotone": cells[0]["monotone"]})
        return out

    def describe(self, row, i: int, state: RowState) -> str:
        """``width 2 at depth 3, activation tanh (0/8)``: the cell an inference comes from."""
        where = ", ".join(f"{a} {v}" for a, v in self._coords(row).items())
        return f"width {self.widths[row][i]} at {where} ({state.k[i]}/{state.n[i]})"

    def _coords(self, row) -> dict[str, Any]:
        return dict(zip(self.axes, row, strict=True)) if self.axes else {"row": row}

    def _row_of(self, cell: dict) -> tuple:
        return tuple(cell[a] for a in self.axes) if self.axes else cell["row"]

    # -- what it may cost -----------------------------------------------------------------------

    def estimate(self) -> tuple[int, int]:
        """(fewest, most) networks the search can train. Fewest: every cell's seeds agree at
        the first look and every row's boundary sits where the search finds it soonest (one
        boundary width for the whole grid, the best one); most: the full grid (every row
        found not monotone and every cell undecided to the last look)."""
        m = self.rule.max_seeds
        most = len(self.cells) * m
        widths = sorted({w for ws in self.widths.values() for w in ws})
        fewest = most
        for edge in [*widths, widths[-1] + 1]:
            steps = {c: [c[1] >= edge] * m for c in self.cells}
            fewest = min(fewest, sum(n for n, _ in self.counts(steps).values()))
        return fewest, most


def minimal_width(widths: Sequence[int], verdicts: Sequence[str]) -> dict[str, Any]:
    """The minimal width above the threshold from one row's verdicts (widths increasing):
    ``{"low", "high", "decided"}`` as in :meth:`Search.boundaries`."""
    not_below = [w for w, v in zip(widths, verdicts, strict=True) if v != "below"]
    above = [w for w, v in zip(widths, verdicts, strict=True) if v == "above"]
    low = not_below[0] if not_below else None
    high = above[0] if above else None
    return {"low": low, "high": high, "decided": low == high}


def _known(seeds: Sequence, cell: Cell) -> list[bool]:
    """The leading trained seeds of a cell (up to its first ``None``), as bools."""
    out = []
    for x in seeds:
        if x is None:
            break
        if x not in (True, False):  # 0, 1, numpy bools compare equal
            raise ValueError(f"search: outcome of {cell} must be True, False or None, got {x!r}")
        out.append(bool(x))
    return out


class _Table:
    """The rule's verdict and interval for every (k, n) up to its last look, computed once:
    a search asks for the same few counts thousands of times."""

    def __init__(self, rule: SequentialRule):
        self.rule = rule
        m = rule.max_seeds
        n, k = np.meshgrid(np.arange(m + 1), np.arange(m + 1), indexing="ij")
        k = np.minimum(k, n)
        self.verdict = rule.verdict(k, n)
        self.low, self.high = rule.interval(k, n)

    def __call__(self, k: np.ndarray, n: np.ndarray):
        """(verdict, low, high) arrays for counts ``k`` of ``n`` (shape ``(W,)``)."""
        if n.size and n.max() > self.rule.max_seeds:  # more seeds than planned: compute
            return (self.rule.verdict(k, n), *self.rule.interval(k, n))
        return self.verdict[n, k], self.low[n, k], self.high[n, k]


def _as_row(row) -> tuple:
    return row if isinstance(row, tuple) else (row,)


def _neighbours(rows: Sequence[tuple]) -> dict[tuple, list[tuple]]:
    """Rows that differ in one coordinate, by one step of that coordinate's order (the order
    its values first appear in ``rows``), in ``rows`` order."""
    order = [{} for _ in rows[0]]
    for row in rows:
        for a, v in enumerate(row):
            order[a].setdefault(v, len(order[a]))
    out = {}
    for row in rows:
        out[row] = [
            other for other in rows
            if len(other) == len(row)
            and sum(x != y for x, y in zip(row, other, strict=True)) == 1
            and all(abs(order[a][x] - order[a][y]) == 1
                    for a, (x, y) in enumerate(zip(row, other, strict=True)) if x != y)
        ]
    return out


def _pilots(rows: Sequence[tuple], neighbours: Mapping[tuple, list[tuple]]) -> frozenset:
    """A small set of rows that every row is or neighbours (greedy, in ``rows`` order: the
    first row not yet covered brings in whichever of itself and its neighbours covers most)."""
    covered: set = set()
    pilots = set()
    for row in rows:
        if row in covered:
            continue
        best = max([row, *neighbours[row]],
                   key=lambda r: len({r, *neighbours[r]} - covered))
        pilots.add(best)
        covered |= {best, *neighbours[best]}
    return frozenset(pilots)


def _probes(lo: int, hi: int, width_count: int, tried: Sequence[int],
            untested: Sequence[int]) -> list[int]:
    """The next untested positions in the gap ``(lo, hi)`` (``lo = -1``, ``hi = W``: no
    decided cell on that side). Next to each undecided cell in the gap (the boundary is near
    it); else, with a decided cell on one side only, next to it (the row came from there);
    else the middle of the gap."""
    out = set()
    for t in tried:
        below = [i for i in untested if i < t]
        above = [i for i in untested if i > t]
        if below:
            out.add(below[-1])
        if above:
            out.add(above[0])
    if tried:
        return sorted(out)
    if (lo < 0) != (hi >= width_count):  # one side decided: step from it
        return [untested[-1]] if lo < 0 else [untested[0]]
    mid = (lo + hi) // 2
    return [mid] if mid in untested else [untested[len(untested) // 2]]
