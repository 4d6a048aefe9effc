"""An adaptive sweep (``[search] mode = "boundary"``): seeds go where the phase boundary is in
doubt, through :class:`sweepnet.engine.search.Search`, and each network trains in segments
with its slot refilled when it is done (:mod:`sweepnet.engine.segments`).

The grid's cells are ``(row, width)``: a row is every configuration value but width and seed.
What the search knows is the outcomes: per cell, whether each seed (its place in the spec's
seed list) separated. They come from the results folder (a resumed run replays the search on
them and makes the same choices) and from every part written since. Between two segments,
:meth:`Adaptive.more` asks the search what it wants now and puts the networks it lacks in the
queue of the data group training; what other buckets or groups need waits for their turn, and
:meth:`Adaptive.hold` keeps the plan from training anything the search has not asked for.

A network's result depends only on its configuration and seed, never on the search: the
search only chooses which networks exist in the table. At the end the search's verdicts (a
cell's own, or inferred along width from a decided neighbour, and from which) are written to
``DIR/search.parquet``; the ``cells`` view reads them.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence

import pandas as pd

from sweepnet.engine.plan import Run
from sweepnet.engine.search import Search
from sweepnet.store.folder import atomic_write, search_path
from sweepnet.sweep.spec import SCHEMA, Spec

NOT_ROW = ("width", "seed")  # a cell's row is the rest of a run's configuration
# Slots a CPU device trains at once in an adaptive sweep (one sub-batch): the search asks for
# a few networks at a time, and a call computes every slot, idle or not. On olah.toml (2 CPU
# devices) 16 slots took 18.1 s, 32 took 20.1 s, 64 26.5 s and the plan's 128 40.8 s. On a
# GPU the plan's chunk stands: its calls stay large.
CPU_LANES = 8


def searching(spec: Spec) -> bool:
    """The spec asks for an adaptive sweep."""
    return spec.tree.get("search", {}).get("mode", "grid") == "boundary"


class Adaptive:
    """The search over ``runs`` (the grid, or this shard's share of it) of ``spec``."""

    def __init__(self, spec: Spec, runs: Sequence[Run]):
        t = spec.tree["train"]
        settings = spec.tree.get("search", {})
        self.seeds = list(t["seeds"]) if isinstance(t["seeds"], list) else list(range(t["seeds"]))
        place = {s: i for i, s in enumerate(self.seeds)}
        # a row's coordinates: the configuration keys that vary (a constant tells no row
        # from another), or the dataset where none does
        keys = [k for k in (runs[0].config if runs else {}) if k not in NOT_ROW]
        values = {k: {repr(r.config.get(k)) for r in runs} for k in keys}
        self.axes = [k for k in keys if len(values[k]) > 1] or keys[:1]
        self.cell_of: dict[str, tuple] = {}
        self.runs: dict[tuple, list[Run | None]] = {}
        for r in runs:
            cell = (tuple(r.config.get(k) for k in self.axes), r.config["width"])
            self.cell_of[r.run_id] = (cell, place[r.config["seed"]])
            self.runs.setdefault(cell, [None] * len(self.seeds))[place[r.config["seed"]]] = r
        given = {k: settings.get(k, SCHEMA["search"][k].default)
                 for k in ("looks", "threshold", "confidence")}
        self.search = Search(list(self.runs), **given, max_seeds=len(self.seeds),
                             axes=self.axes)
        self.outcomes: dict[tuple, list[bool | None]] = {
            c: [None] * len(self.seeds) for c in self.runs}
        self.issued: set[str] = set()  # handed to the plan or a queue, not written yet

    def seen(self, runs: pd.DataFrame) -> None:
        """Record the outcomes of written (or stored) runs: ``run_id`` and ``separated``."""
        for rid, sep in zip(runs["run_id"], runs["separated"], strict=True):
            if rid in self.cell_of:
                cell, i = self.cell_of[rid]
                self.outcomes[cell][i] = bool(sep)
                self.issued.discard(rid)

    def wanted(self) -> list[Run]:
        """The networks the search asks for now that are neither trained nor issued."""
        out = []
        for cell, total in self.search.next_round(self.outcomes).items():
            for i, r in enumerate(self.runs[cell][:total]):
                if r is not None and self.outcomes[cell][i] is None \
                        and r.run_id not in self.issued:
                    out.append(r)
        return out

    def hold(self, done: Iterable[str]) -> set[str]:
        """``done`` and every run the search does not ask for now: what a plan must skip. The
        runs it asks for are issued (the plan trains them)."""
        held = set(done)
        asked = {r.run_id for r in self.wanted()} | (self.issued - held)  # and the outstanding
        self.issued |= asked
        held |= {rid for rid in self.cell_of if rid not in asked}
        return held

    def more(self, bucket_runs: set[str], key: tuple, queue: collections.deque[Run]) -> None:
        """Between two segments: the networks of this bucket's data group ``key`` the search
        asks for now, into ``queue`` (the engine's seam, :func:`segments.train_queue`)."""
        for r in self.wanted():
            if r.run_id in bucket_runs and r.data_key() == key:
                queue.append(r)
                self.issued.add(r.run_id)

    def write(self, root: str) -> None:
        """The search's verdicts per cell, ``DIR/search.parquet``: the row's coordinates,
        ``width``, ``n`` and ``k`` (seeds used, separated), ``share``, ``low``, ``high``,
        ``verdict`` and ``inferred_from`` ('' where the cell's own seeds decide)."""
        table = pd.DataFrame(self.search.verdicts(self.outcomes))
        atomic_write(search_path(root), lambda tmp: table.to_parquet(tmp, index=False))


__all__ = ["Adaptive", "searching"]
