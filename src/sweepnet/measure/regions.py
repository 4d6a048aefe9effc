"""Decision regions recomputed from stored parameters, and the narrow-network theorems checked.

The engine measures each 2-D binary network's decision region on a ``GRID x GRID`` grid as it
trains (:mod:`sweepnet.train.regions`; the ``runs`` columns ``region_*``). This module
recomputes them from ``DIR/params`` on any grid (:func:`region_table`: finer, or over a wider
box) and checks the theorems on every network they apply to (:func:`theorem_checks`, over the
``theorems`` view of :mod:`sweepnet.store.query`).

A violation is either the grid's (a channel or a gap narrower than a cell; a component that
leaves the box and comes back, for connectedness) or a bug. :func:`theorem_checks` tells them
apart by recomputing each violating network: on the engine's own grid (numbers that differ
from the stored ones: ``mismatch``, a bug in sweepnet), on a grid ``FINER`` times finer over
the same box (the violation vanishes: ``resolution``), and on boxes ``WIDER`` times wider
(it vanishes on one: ``box``; for connectedness only, since a component
that does not reach the border of the box is bounded in the whole plane); what survives all
of them is ``unexplained``. A region that is connected only far outside the box is what a
nearly singular first layer gives (trained depth-1 networks of condition number 100-5,000
connected in boxes 16-256 times wider on olah.toml: docs/results.md).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import numpy as np
import pandas as pd

from sweepnet.measure.network import training_points
from sweepnet.store import query, results
from sweepnet.sweep.models import build
from sweepnet.train import regions

FINER = 4  # the finer grid's cells per side, as a multiple of the engine's GRID
WIDER = (4, 16, 64, 256)  # the wider boxes' sides, as multiples of the engine's box, tried in
# turn until the violation vanishes. Each keeps the finer grid over the engine's box and adds
# cells GROWTH times longer than the last outwards, so that the box's own features stay
# resolved (a thin strip in the box must not vanish in a coarse wide grid)
GROWTH = 1.05
POINTS = 1 << 22  # grid points evaluated at once, over all networks (bounds memory)

# what each theorem says of a network's region numbers (the `holds` of the theorems view)
HOLDS: dict[str, Callable[[pd.DataFrame], pd.Series]] = {
    "unbounded": lambda df: (df["region_bounded"] == 0) & (df["region_b1"] == 0),
    "connected": lambda df: (df["region_b0"] <= 1) & (df["region0_b0"] <= 1),
}


@functools.lru_cache(maxsize=64)
def _logits(arch: str, width: int, depth: int, activation: str):
    """``jit(vmap(apply))``: ``(params of (n, ...), x (2, points))`` → logits ``(n, points)``
    of binary networks of one architecture."""
    model = build(arch, width, depth, activation, 1)
    one = lambda p, x: model.apply(p, x, width, 1.0)[0]
    return jax.jit(jax.vmap(one, in_axes=(0, None)))


def axis(lo: float, hi: float, res: int, widen: float = 1.0) -> np.ndarray:
    """Cell centres along one axis: ``res`` even cells over ``[lo, hi]`` and, past it, cells
    ``GROWTH`` times longer than the last out to ``widen`` times the half side about the
    middle."""
    edges = np.linspace(lo, hi, res + 1)
    step, half, out = (hi - lo) / res, (hi - lo) / 2, []
    reach = 0.0
    while reach < (widen - 1) * half - 1e-9:
        step *= GROWTH
        reach = min(reach + step, (widen - 1) * half)
        out.append(reach)
    ext = np.asarray(out)
    edges = np.concatenate([lo - ext[::-1], edges, hi + ext])
    return (edges[:-1] + edges[1:]) / 2


def region_table(root: str, runs: pd.DataFrame, res: int = regions.GRID,
                 widen: float = 1.0) -> pd.DataFrame:
    """The region numbers (``train.regions.COLUMNS``) of ``runs`` (rows of ``results.load``:
    2-D binary networks), recomputed from their stored parameters on a ``res x res`` grid over
    the engine's box (``widen`` > 1: with cells growing outwards to a box ``widen`` times as
    wide about its centre, :func:`axis`). Indexed by ``run_id``."""
    params = results.load_params_many(root, runs)
    out = []
    data_keys = ["dataset", *[c for c in runs if c.startswith("data_")], "n_train", "noise"]
    arch_keys = ["arch", "width", "depth", "activation"]
    for _, group in runs.groupby(data_keys, sort=False, dropna=False):
        lo, hi = regions.grid_box(training_points(group.iloc[0])[0])
        u, v = (axis(lo[k], hi[k], res, widen) for k in (0, 1))
        gu, gv = np.meshgrid(u, v, indexing="xy")
        x = np.stack([gu.ravel(), gv.ravel()]).astype(np.float32)  # as regions.grid_points
        shape = (len(v), len(u))
        for key, rows in group.groupby(arch_keys, sort=False):
            fn = _logits(*key[:3], str(key[3]))
            ids = rows["run_id"].tolist()
            batch = max(1, POINTS // len(x[0]))
            for at in range(0, len(ids), batch):
                chunk = ids[at:at + batch]
                stacked = jax.tree.map(lambda *a: np.stack(a), *[params[i] for i in chunk])
                z = np.asarray(fn(stacked, x))
                numbers = regions.region_numbers(z.reshape(len(chunk), *shape) > 0)
                out.append(pd.DataFrame({"run_id": chunk, **numbers}))
    if not out:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in regions.COLUMNS},
                            index=pd.Index([], name="run_id"))
    return pd.concat(out, ignore_index=True).set_index("run_id")


def theorem_checks(root: str, finer: int = FINER, wider: tuple[int, ...] = WIDER
                   ) -> pd.DataFrame:
    """Every (theorem, run) the ``theorems`` view holds, with its verdict explained.

    Columns: those of the view (``theorem``, ``run_id``, ``width``, ``depth``, ``activation``,
    the region numbers, ``holds``), then for violations only (else null) ``finer_holds`` (on a
    ``finer`` times finer grid), ``wider_at`` (the first factor of ``wider`` whose box makes it
    hold, its cells growing outwards from the finer grid's; null if none does), and ``cause``:
    ``mismatch`` (the stored numbers are not those of the stored network on the same grid: a
    bug), ``resolution``, ``box`` (connected outside the box) or ``unexplained`` (a bug, or a
    hypothesis the view cannot check, such
    as full-rank weights: see docs/results.md).
    """
    checks = query.query(root, "SELECT * FROM theorems ORDER BY theorem, run_id")
    checks["holds"] = checks["holds"].astype(bool)
    checks["finer_holds"] = pd.array([None] * len(checks), "boolean")
    checks["wider_at"] = pd.array([None] * len(checks), "Int64")
    checks["cause"] = pd.Series([None] * len(checks), dtype="object")
    bad = checks[~checks["holds"]]
    if not len(bad):
        return checks
    runs = results.load(root)
    runs = runs[runs["run_id"].isin(bad["run_id"])]
    same = region_table(root, runs)
    stored = runs.set_index("run_id")[list(regions.COLUMNS)]
    res = finer * regions.GRID
    fine = region_table(root, runs, res)
    wider_at: dict[tuple[str, str], int] = {}
    left = bad
    for factor in wider:  # each box only for the violations the smaller ones left
        if not len(left):
            break
        wide = region_table(root, runs[runs["run_id"].isin(left["run_id"])], res, widen=factor)
        ok = [bool(HOLDS[t](wide.loc[[r]]).iloc[0]) for t, r in zip(left["theorem"],
                                                                     left["run_id"], strict=True)]
        wider_at.update({(t, r): factor for t, r, o in zip(left["theorem"], left["run_id"], ok,
                                                            strict=True) if o})
        left = left[[not o for o in ok]]
    for i, row in bad.iterrows():
        finer_ok = bool(HOLDS[row["theorem"]](fine.loc[[row["run_id"]]]).iloc[0])
        wider_ok = wider_at.get((row["theorem"], row["run_id"]))
        checks.loc[i, "finer_holds"] = finer_ok
        checks.loc[i, "wider_at"] = wider_ok
        if not same.loc[row["run_id"]].equals(stored.loc[row["run_id"]].astype("int64")):
            checks.loc[i, "cause"] = "mismatch"
        elif finer_ok:
            checks.loc[i, "cause"] = "resolution"
        elif wider_ok is not None and row["theorem"] == "connected":
            checks.loc[i, "cause"] = "box"
        else:
            checks.loc[i, "cause"] = "unexplained"
    return checks


__all__ = ["FINER", "GROWTH", "HOLDS", "POINTS", "WIDER", "axis", "region_table",
           "theorem_checks"]
