"""The stored parameters of trained networks: ``DIR/params/P.npz``, one file per part.

Each file holds the part's padded weights with a leading network axis, under flattened keys
(``params/hidden_0/kernel``), beside ``run_id`` and ``width``. The readers give them back
unpadded to each network's real width and depth (kernels ``(out, in)``: ``W @ h``, see
:mod:`sweepnet.sweep.models`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from flax.traverse_util import unflatten_dict

from sweepnet.core.errors import SweepnetError
from sweepnet.store.folder import part_path
from sweepnet.store.tables import run_row
from sweepnet.sweep.models import unpad


def _read(path: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A params file's run ids ``(n,)`` and its weight arrays, each ``(n, ...)``."""
    try:
        with np.load(path) as f:
            return f["run_id"], {k: f[k] for k in f.files if k not in ("run_id", "width")}
    except Exception as e:
        raise SweepnetError(f"{path}: cannot read parameters ({type(e).__name__})") from None


def _tree(arrays: dict[str, np.ndarray], i: int, row: pd.Series) -> Any:
    # a copy, not a view: a view would keep the whole part's arrays alive
    flat = {tuple(k.split("/")): np.array(a[i]) for k, a in arrays.items()}
    return unpad(unflatten_dict(flat), int(row["width"]), int(row["in_dim"]), int(row["depth"]))


def load_params(root: str, run_id: str) -> tuple[pd.Series, Any]:
    """The runs row of ``run_id`` and its final parameters, unpadded to the real width and
    depth (kernels ``(out, in)``: ``W @ h``, see :mod:`sweepnet.sweep.models`)."""
    row = run_row(root, run_id)
    if row is None:
        raise SweepnetError(f"{root}: no run with id {run_id!r}")
    path = part_path(root, "params", row["part"])
    ids, arrays = _read(path)
    try:
        i = int(np.flatnonzero(ids == run_id)[0])
    except IndexError:
        raise SweepnetError(f"{path}: cannot read parameters (IndexError)") from None
    return row, _tree(arrays, i, row)


def load_params_many(root: str, runs: pd.DataFrame) -> dict[str, Any]:
    """``{run_id: parameters}`` of every run of ``runs`` (rows of :func:`load`: its ``part``,
    ``width``, ``in_dim`` and ``depth`` say where each network is and its real shape),
    unpadded as :func:`load_params` gives them. Each params file is read once, however many
    of its networks are wanted."""
    out: dict[str, Any] = {}
    for part, group in runs.groupby("part", sort=False):
        path = part_path(root, "params", part)
        ids, arrays = _read(path)
        where = {rid: i for i, rid in enumerate(ids.tolist())}
        for _, row in group.iterrows():
            if row["run_id"] not in where:
                raise SweepnetError(f"{path}: no parameters of run {row['run_id']!r}")
            out[row["run_id"]] = _tree(arrays, where[row["run_id"]], row)
    return out
