"""The tables of a results folder, and the one place where arrays become DataFrames.

Readers: the grid the folder's spec holds, the finished runs (:func:`load`), their curves
(:func:`load_curves`), progress, and the topology table. Writer's side: :func:`to_frames`
turns one call's output into the three frames of a part (``Store.write_part`` writes them).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
from flax.traverse_util import flatten_dict

from sweepnet.core.errors import SweepnetError
from sweepnet.store.folder import (
    atomic_write,
    new_topology_part_path,
    part_files,
    require_results_dir,
    stored_spec,
    topology_part_files,
    topology_parts_dir,
    topology_path,
    topology_scales_path,
    write_text,
)
from sweepnet.sweep.models import n_params
from sweepnet.sweep.spec import run_id
from sweepnet.train.separation import KNOWN

# DIR/topology.parquet: one row per (run, layer, class); kind is input, hidden or logit; b2 is
# null for 1-D and 2-D data
TOPOLOGY_COLUMNS = ["run_id", "layer", "kind", "class", "b0", "b1", "b2", "n_points", "k", "eps"]
TOPOLOGY_INTS = ["layer", "class", "b0", "b1", "b2", "n_points", "k", "eps"]


def _read_parts(paths: Iterable[str]) -> pd.DataFrame:
    frames = []
    for p in paths:
        try:
            frames.append(pq.read_table(p).to_pandas())
        except Exception as e:
            raise SweepnetError(f"{p}: unreadable part ({type(e).__name__})") from None
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def grid(root: str) -> pd.DataFrame:
    """Every run the folder's current spec holds, done or not: ``run_id``, ``sweep``,
    ``grid_index`` and the configuration columns of ``runs`` (``dataset``, ``data_<param>``,
    ``width``, ``depth``, ``activation``, ..., ``seed``), in grid order."""
    spec = stored_spec(root)
    try:
        configs = spec.grid()
    except (KeyError, TypeError) as e:
        raise SweepnetError(f"{spec.source}: unreadable stored spec ({e!r})") from None
    return pd.DataFrame([{"run_id": run_id(c), "sweep": spec.name, "grid_index": i, **c}
                         for i, c in enumerate(configs)])


def done_ids(root: str) -> set[str]:
    """Run ids of every committed run in the folder, in its current spec or not (read-only)."""
    require_results_dir(root)
    ids: set[str] = set()
    for p in part_files(root, "runs"):
        try:
            ids.update(pq.read_table(p, columns=["run_id"]).column(0).to_pylist())
        except Exception as e:
            raise SweepnetError(f"{p}: unreadable part ({type(e).__name__})") from None
    return ids


def progress(root: str) -> tuple[int, int]:
    """``(done, total)``: runs of the folder's current spec that are trained, and all of them.

    ``done < total`` for an interrupted sweep, or one whose spec has grown since; charts and
    reports say "done of total trained". Runs on disk that the spec no longer holds do not
    count.
    """
    ids = grid(root)["run_id"]
    return int(ids.isin(done_ids(root)).sum()), len(ids)


def pending(root: str) -> pd.DataFrame:
    """The runs of the folder's current spec not trained yet, one row each, in grid order.

    Columns are those of :func:`grid`: ``run_id``, ``sweep``, ``grid_index`` and the
    configuration columns of ``runs`` (so a chart can group them into the same cells as the
    finished runs and draw those cells as pending). Empty (with these columns) when done.
    """
    g = grid(root)
    return g[~g["run_id"].isin(done_ids(root))].reset_index(drop=True)


def load(root: str, all_runs: bool = False) -> pd.DataFrame:
    """The finished runs of a results folder (or of several shards writing into it).

    Only runs that the folder's current spec holds, with their ``grid_index`` in it (a grown
    sweep's table equals a fresh sweep's). ``all_runs=True`` adds the runs a changed spec no
    longer holds, with ``grid_index`` null, and a column ``in_spec``.
    """
    require_results_dir(root)
    df = _read_parts(part_files(root, "runs"))
    if len(df):
        index = grid(root).set_index("run_id")["grid_index"]
        df["grid_index"] = df["run_id"].map(index).astype("Int64")
        if all_runs:
            df["in_spec"] = df["grid_index"].notna()
        else:
            df = df[df["grid_index"].notna()].astype({"grid_index": "int64"})
        df = df.sort_values("grid_index", kind="stable", na_position="last")
        df = df.reset_index(drop=True)
        df["steps_to_fit"] = df["steps_to_fit"].astype("Int64")
        if "certified" in df:
            df["certified"] = df["certified"].astype("boolean")
    return df


def load_curves(root: str, all_runs: bool = False) -> pd.DataFrame:
    """Eval curves: one row per ``(run_id, step)`` of the runs :func:`load` gives."""
    require_results_dir(root)
    df = _read_parts(part_files(root, "curves"))
    if len(df) and not all_runs:
        df = df[df["run_id"].isin(grid(root)["run_id"])].reset_index(drop=True)
    return df


def layer_kinds(layer: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """What each layer is, ``(n,)`` strings: ``input`` (layer 0), ``logit`` (layer depth + 1)
    or ``hidden`` (1..depth), from the layers ``(n,)`` and their networks' depths ``(n,)``."""
    layer, depth = np.asarray(layer, np.int64), np.asarray(depth, np.int64)
    return np.where(layer == 0, "input", np.where(layer == depth + 1, "logit", "hidden"))


def topology_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of a topology table in its columns and types (integers nullable, ``Int64``)."""
    df = df[TOPOLOGY_COLUMNS].copy()
    for c in TOPOLOGY_INTS:
        df[c] = df[c].astype("Int64")
    df["kind"] = df["kind"].astype(object)
    return df.reset_index(drop=True)


def _with_kind(root: str, df: pd.DataFrame) -> pd.DataFrame:
    """A table written before ``kind`` existed (0.6 and older), given it from the runs' depth."""
    if "kind" in df or not len(df):
        return df if "kind" in df else df.assign(kind=pd.Series(dtype=object))
    depth = load(root, all_runs=True).set_index("run_id")["depth"]
    return df.assign(kind=layer_kinds(df["layer"], df["run_id"].map(depth).fillna(-2)))


def load_topology(root: str) -> pd.DataFrame:
    """``DIR/topology.parquet`` (an empty frame with :data:`TOPOLOGY_COLUMNS` if not measured
    yet). A table from before ``kind`` gets it (from the runs' depths)."""
    path = topology_path(root)
    if not os.path.exists(path):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in TOPOLOGY_COLUMNS})
    try:
        df = pd.read_parquet(path)
    except Exception as e:
        raise SweepnetError(f"{path}: unreadable ({type(e).__name__})") from None
    return topology_frame(_with_kind(root, df))


def load_topology_parts(root: str) -> pd.DataFrame:
    """The rows of ``DIR/topology/part-*.parquet`` (a topology run not merged yet), in the
    order the parts were written; empty, with the columns, if there are none."""
    frames = _read_parts(topology_part_files(root))
    if not len(frames):
        return topology_frame(pd.DataFrame({c: pd.Series(dtype="object")
                                            for c in TOPOLOGY_COLUMNS}))
    return topology_frame(frames)


def save_topology_part(root: str, rows: pd.DataFrame) -> str:
    """Write the rows of a chunk of networks as a new part under ``DIR/topology/``
    (atomically); returns its path."""
    path = new_topology_part_path(root)
    atomic_write(path, lambda tmp: topology_frame(rows).to_parquet(tmp, index=False))
    return path


def remove_topology_parts(root: str) -> None:
    """Remove ``DIR/topology/`` once its parts are merged into ``topology.parquet``."""
    shutil.rmtree(topology_parts_dir(root), ignore_errors=True)


def load_topology_scales(root: str) -> dict[str, Any]:
    """``DIR/topology.json``: the scale of each data configuration measured (empty if none)."""
    path = topology_scales_path(root)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise SweepnetError(f"{path}: unreadable ({e})") from None


def save_topology(root: str, table: pd.DataFrame, scales: Mapping[str, Any]) -> None:
    """Replace ``DIR/topology.parquet`` with ``table`` and ``DIR/topology.json`` with
    ``scales``, each atomically."""
    atomic_write(topology_path(root), lambda tmp: table.to_parquet(tmp, index=False))
    write_text(topology_scales_path(root), json.dumps(scales, indent=1))


def to_frames(static, runs, out, spec, provenance: Mapping[str, Any]
              ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Turn one call's output (numpy, leading axis >= len(runs)) into runs/curves/params.

    ``runs`` are the :class:`~sweepnet.engine.plan.Run` objects of the first ``len(runs)`` lanes;
    lanes past them are padding and are dropped.
    """
    n = len(runs)
    steps_to_fit = out.steps_to_fit[:n]
    rows = []
    for i, r in enumerate(runs):
        c = r.config
        diverged = bool(out.diverged[i])
        rows.append({
            "run_id": r.run_id, "sweep": spec.name, "grid_index": r.index, **c,
            "in_dim": static.in_dim, "n_classes": max(2, static.n_out),
            "n_params": n_params(c["arch"], static.in_dim, c["width"], c["depth"], static.n_out),
            "train_loss": float(out.train_loss[i]), "train_acc": float(out.train_acc[i]),
            "test_acc": float(out.test_acc[i]),
            "separated": (not diverged) and float(out.test_acc[i]) >= spec.separation,
            "steps_to_fit": int(steps_to_fit[i]) if steps_to_fit[i] >= 0 else None,
            "diverged": diverged,
            # separation metrics (train.separation); certified is null without known topology
            "margin": float(out.margin[i]), "worst_margin": float(out.worst_margin[i]),
            "certified": bool(out.certified[i]) if c["dataset"] in KNOWN else None,
            "max_grad": float(out.max_grad[i]), **provenance,
        })
    runs_df = pd.DataFrame(rows)
    runs_df["steps_to_fit"] = runs_df["steps_to_fit"].astype("Int64")
    runs_df["certified"] = runs_df["certified"].astype("boolean")
    steps = static.eval_steps
    curves_df = pd.DataFrame({
        "run_id": np.repeat([r.run_id for r in runs], len(steps)),
        "step": np.tile(steps, n).astype(np.int32),
        "train_loss": out.curve_loss[:n].reshape(-1).astype(np.float32),
        "train_acc": out.curve_train_acc[:n].reshape(-1).astype(np.float32),
        "test_acc": out.curve_test_acc[:n].reshape(-1).astype(np.float32),
    })
    params = {"/".join(k): np.asarray(v[:n]) for k, v in flatten_dict(out.params).items()}
    params["run_id"] = np.asarray([r.run_id for r in runs])
    params["width"] = np.asarray([r.config["width"] for r in runs], np.int32)
    return runs_df, curves_df, params
