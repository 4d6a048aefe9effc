"""Decision regions recomputed from stored parameters, and the narrow-network theorems checked.

The engine measures each 2-D binary network's decision region on a ``GRID x GRID`` grid as it
trains (:mod:`sweepnet.train.regions`; the ``runs`` columns ``region_*``). This module
recomputes them from ``DIR/params`` on any grid (:func:`region_table`: finer, or over a wider
box) and checks the theorems on every network they apply to (:func:`theorem_checks`, over the
``theorems`` view of :mod:`sweepnet.store.query`).

A violation is either the grid's (a channel or a gap narrower than a cell; a component that
leaves the box and comes back, for connectedness) or a bug. :func:`theorem_checks` tells them
apart by recomputing each violating network on a grid ``FINER`` times finer over the same box
(the violation vanishes: ``resolution``) and on a box ``WIDER`` times wider with as many cells
(it vanishes: ``box``, for connectedness only: a component that does not reach the
border of the box is bounded in the whole plane); what survives both is ``unexplained``.
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
WIDER = 4  # the wider box's side, as a multiple of the engine's box (FINER x GRID cells too)
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


def region_table(root: str, runs: pd.DataFrame, res: int = regions.GRID,
                 widen: float = 1.0) -> pd.DataFrame:
    """The region numbers (``train.regions.COLUMNS``) of ``runs`` (rows of ``results.load``:
    2-D binary networks), recomputed from their stored parameters on a ``res x res`` grid over
    the engine's box, widened ``widen`` times about its centre. Indexed by ``run_id``."""
    params = results.load_params_many(root, runs)
    out = []
    data_keys = ["dataset", *[c for c in runs if c.startswith("data_")], "n_train", "noise"]
    arch_keys = ["arch", "width", "depth", "activation"]
    for _, group in runs.groupby(data_keys, sort=False, dropna=False):
        lo, hi = regions.grid_box(training_points(group.iloc[0])[0])
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * widen
        x = regions.grid_points(mid - half, mid + half, res)
        for key, rows in group.groupby(arch_keys, sort=False):
            fn = _logits(*key[:3], str(key[3]))
            ids = rows["run_id"].tolist()
            batch = max(1, POINTS // len(x[0]))
            for at in range(0, len(ids), batch):
                chunk = ids[at:at + batch]
                stacked = jax.tree.map(lambda *a: np.stack(a), *[params[i] for i in chunk])
                z = np.asarray(fn(stacked, x))
                numbers = regions.region_numbers(z.reshape(len(chunk), res, res) > 0)
                out.append(pd.DataFrame({"run_id": chunk, **numbers}))
    if not out:
        return pd.DataFrame({c: pd.Series(dtype="int64") for c in regions.COLUMNS},
                            index=pd.Index([], name="run_id"))
    return pd.concat(out, ignore_index=True).set_index("run_id")


def theorem_checks(root: str, finer: int = FINER, wider: int = WIDER) -> pd.DataFrame:
    """Every (theorem, run) the ``theorems`` view holds, with its verdict explained.

    Columns: those of the view (``theorem``, ``run_id``, ``width``, ``depth``, ``activation``,
    the region numbers, ``holds``), then for violations only (else null) ``finer_holds`` (on a
    ``finer`` times finer grid), ``wider_holds`` (on a ``wider`` times wider box, with as many
    cells as the finer grid), and ``cause``: ``resolution``, ``box`` (connectedness
    outside the box) or ``unexplained`` (a bug, or a hypothesis the view cannot check, such
    as full-rank weights: see docs/results.md).
    """
    checks = query.query(root, "SELECT * FROM theorems ORDER BY theorem, run_id")
    checks["holds"] = checks["holds"].astype(bool)
    for c in ("finer_holds", "wider_holds"):
        checks[c] = pd.array([None] * len(checks), "boolean")
    checks["cause"] = pd.Series([None] * len(checks), dtype="object")
    bad = checks[~checks["holds"]]
    if not len(bad):
        return checks
    runs = results.load(root)
    runs = runs[runs["run_id"].isin(bad["run_id"])]
    res = finer * regions.GRID
    fine = region_table(root, runs, res)
    wide = region_table(root, runs, res, widen=wider)
    for i, row in bad.iterrows():
        ok = HOLDS[row["theorem"]]
        finer_ok = bool(ok(fine.loc[[row["run_id"]]]).iloc[0])
        wider_ok = bool(ok(wide.loc[[row["run_id"]]]).iloc[0])
        checks.loc[i, ["finer_holds", "wider_holds"]] = [finer_ok, wider_ok]
        if finer_ok:
            checks.loc[i, "cause"] = "resolution"
        elif wider_ok and row["theorem"] == "connected":
            checks.loc[i, "cause"] = "box"
        else:
            checks.loc[i, "cause"] = "unexplained"
    return checks


__all__ = ["FINER", "HOLDS", "POINTS", "WIDER", "region_table", "theorem_checks"]
