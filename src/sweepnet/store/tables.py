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

import duckdb
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
from sweepnet.sweep.data import sizes
from sweepnet.sweep.models import n_params
from sweepnet.sweep.spec import seeded_ids
from sweepnet.train import regions
from sweepnet.train.separation import KNOWN

# DIR/topology.parquet: one row per (run, cloud, split, layer, class); kind is input, hidden
# or logit; b2 is null for 1-D and 2-D data
# cloud (train, test, grid) and split (true, predicted) say which points were measured (a
# table of 0.6 and older: train, true); grid is the grid's points a side (null for the
# others); stable whether the input's scale was stable (null where known numbers set it).
TOPOLOGY_COLUMNS = ["run_id", "layer", "kind", "class", "b0", "b1", "b2", "n_points", "k", "eps",
                    "cloud", "split", "grid", "stable"]
TOPOLOGY_INTS = ["layer", "class", "b0", "b1", "b2", "n_points", "k", "eps", "grid"]
TOPOLOGY_TEXT = {"kind": None, "cloud": "train", "split": "true"}  # and an old table's value


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
    ``width``, ``depth``, ``activation``, ..., ``seed``), in grid order (a parameter of another
    dataset is NaN). ``n_train`` and ``n_test`` are the sizes used, as in ``runs``.

    Built as columns (a million runs take seconds, not a minute), once per spec in a process
    (a report asks for it several times): a copy of the cached table."""
    spec = stored_spec(root)
    key = (os.path.abspath(spec.source), json.dumps(spec.tree, sort_keys=True, default=str))
    if key not in _GRIDS:
        while len(_GRIDS) >= 2:  # a comparison reads two folders; older grids go
            _GRIDS.pop(next(iter(_GRIDS)))
        _GRIDS[key] = _grid(root)
    return _GRIDS[key].copy()


_GRIDS: dict[tuple[str, str], pd.DataFrame] = {}


def _grid(root: str, first_seeds: bool = False) -> pd.DataFrame:
    """:func:`grid` (``first_seeds``: only each configuration's first seed, a small table
    with the whole grid's columns and types)."""
    spec, combos = _combos(root)
    if first_seeds:
        combos = [(base, seeds[:1]) for base, seeds in combos]
    counts = [len(seeds) for _, seeds in combos]
    keys = list(dict.fromkeys(k for base, _ in combos for k in [*base, "seed"]))
    cols: dict[str, list] = {"run_id": grid_ids(root, combos), "sweep": [spec.name] * sum(counts),
                             "grid_index": list(range(sum(counts)))}
    used: dict[tuple, tuple[int, int]] = {}
    for k in keys:
        col = cols[k] = []
        for (base, seeds), n in zip(combos, counts, strict=True):
            if k in ("n_train", "n_test") and base["dataset"] == "file":  # as to_frames does
                col.extend([_sizes_used(base, used)[k == "n_test"]] * n)
            else:
                col.extend(seeds if k == "seed" else [base.get(k, np.nan)] * n)
    return pd.DataFrame(cols)


def grid_ids(root: str, combos: list | None = None) -> list[str]:
    """The run ids of the folder's current spec, in grid order (``grid(root)["run_id"]``)."""
    combos = _combos(root)[1] if combos is None else combos
    return [i for base, seeds in combos for i in seeded_ids(base, seeds)]


def _combos(root: str) -> tuple[Any, list]:
    spec = stored_spec(root)
    try:
        return spec, spec.combos()
    except (KeyError, TypeError) as e:
        raise SweepnetError(f"{spec.source}: unreadable stored spec ({e!r})") from None


def _sizes_used(config: Mapping[str, Any], cache: dict) -> tuple[int, int]:
    """The train and probe sizes a ``file`` run uses (:func:`sizes`), or the spec's where the
    file cannot tell now (moved, or changed since)."""
    key = (config["data_path"], config.get("data_label", "label"), config["n_train"],
           config["n_test"])
    if key not in cache:
        try:
            cache[key] = sizes("file", {"path": key[0], "label": key[1]}, *key[2:])
        except SweepnetError:
            cache[key] = key[2:]
    return cache[key]


def run_row(root: str, run_id: str) -> pd.Series | None:
    """The runs row of ``run_id`` (any run on disk, in the current spec or not) as
    :func:`load` types it, or None: each part's ``run_id`` column is scanned, and only the
    part that holds the run is read whole, so finding one network does not load them all."""
    require_results_dir(root)
    for p in part_files(root, "runs"):
        try:
            ids = pq.read_table(p, columns=["run_id"]).column(0).to_pylist()
            if run_id not in ids:
                continue
            df = pq.read_table(p).to_pandas()
        except Exception as e:
            raise SweepnetError(f"{p}: unreadable part ({type(e).__name__})") from None
        row = df.iloc[ids.index(run_id)].copy()
        if "steps_to_fit" in row and pd.isna(row["steps_to_fit"]):
            row["steps_to_fit"] = pd.NA
        return row
    return None


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


def sql_text(text: str) -> str:
    """``text`` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def files_key(paths: Iterable[str]) -> tuple:
    """What a cache of something read from ``paths`` is keyed by: each file's absolute path,
    size and modification time (a part rewritten or added changes it)."""
    return tuple((os.path.abspath(p), st.st_size, st.st_mtime_ns)
                 for p in paths for st in [os.stat(p)])


def trained_positions(root: str) -> np.ndarray | None:
    """The grid positions of the folder's current spec that are trained, ``(total,)`` bools,
    where every committed run sits at the ``grid_index`` stored with it (its run id is the
    spec's at that position): then the stored table is the table of the current spec, and
    readers use it as it is, without matching a million run ids. None otherwise (a spec
    changed since, or parts without ``grid_index``): readers match the run ids
    (:func:`grid_ids`).

    Checked on two columns, 65,536 rows at a time (memory does not grow with the sweep),
    once per spec and set of parts in a process; a million networks take about 2 s."""
    require_results_dir(root)
    spec, combos = _combos(root)
    files = part_files(root, "runs")
    key = (json.dumps(spec.tree, sort_keys=True, default=str), files_key(files))
    if key not in _POSITIONS:
        while len(_POSITIONS) >= 2:
            _POSITIONS.pop(next(iter(_POSITIONS)))
        _POSITIONS[key] = _trained_positions(files, combos)
    found = _POSITIONS[key]
    return None if found is None else found.copy()


_POSITIONS: dict[tuple, np.ndarray | None] = {}


def _trained_positions(files: list[str], combos: list) -> np.ndarray | None:
    ends = np.cumsum([len(seeds) for _, seeds in combos], dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    done = np.zeros(total, bool)
    if not files:
        return done
    source = ", ".join(map(sql_text, files))
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    try:  # the two columns of every part, read by DuckDB in batches
        reader = con.sql(f"SELECT run_id, grid_index FROM read_parquet([{source}])"
                         ).to_arrow_reader(65536)
        for batch in reader:
            index = batch.column(1)
            if index.null_count:
                return None
            index = index.to_numpy(zero_copy_only=False).astype(np.int64)
            if not len(index):
                continue
            if index.min() < 0 or index.max() >= total:
                return None
            ids = np.asarray(batch.column(0).to_pylist(), dtype=object)
            which = np.searchsorted(ends, index, side="right")  # each position's combo
            for c in np.unique(which):
                rows = np.flatnonzero(which == c)
                base, seeds = combos[c]
                start = int(ends[c]) - len(seeds)
                if seeded_ids(base, [seeds[i - start] for i in index[rows].tolist()]) \
                        != ids[rows].tolist():
                    return None
            done[index] = True
    except duckdb.Error:  # a part without grid_index (or unreadable: the readers say so)
        return None
    finally:
        con.close()
    return done


def progress(root: str) -> tuple[int, int]:
    """``(done, total)``: runs of the folder's current spec that are trained, and all of them.

    ``done < total`` for an interrupted sweep, or one whose spec has grown since; charts and
    reports say "done of total trained". Runs on disk that the spec no longer holds do not
    count.
    """
    done = trained_positions(root)
    if done is not None:
        return int(done.sum()), len(done)
    ids = grid_ids(root)
    return len(done_ids(root).intersection(ids)), len(ids)


def pending(root: str) -> pd.DataFrame:
    """The runs of the folder's current spec not trained yet, one row each, in grid order.

    Columns are those of :func:`grid`: ``run_id``, ``sweep``, ``grid_index`` and the
    configuration columns of ``runs`` (so a chart can group them into the same cells as the
    finished runs and draw those cells as pending). Empty (with these columns) when done.
    """
    trained = trained_positions(root)
    if trained is not None:
        if trained.all():  # a finished sweep: no table of a million configs
            return _grid(root, first_seeds=True).iloc[:0]
        return grid(root)[~trained].reset_index(drop=True)
    done = done_ids(root)
    if done.issuperset(grid_ids(root)):
        return _grid(root, first_seeds=True).iloc[:0]
    g = grid(root)
    return g[~g["run_id"].isin(done)].reset_index(drop=True)


def load(root: str, all_runs: bool = False) -> pd.DataFrame:
    """The finished runs of a results folder (or of several shards writing into it).

    Only runs that the folder's current spec holds, with their ``grid_index`` in it (a grown
    sweep's table equals a fresh sweep's). ``all_runs=True`` adds the runs a changed spec no
    longer holds, with ``grid_index`` null, and a column ``in_spec``.
    """
    require_results_dir(root)
    df = _read_parts(part_files(root, "runs"))
    if len(df):
        ids = grid_ids(root)
        index = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
        df["grid_index"] = df["run_id"].map(index).astype("Int64")
        if all_runs:
            df["in_spec"] = df["grid_index"].notna()
        else:
            df = df[df["grid_index"].notna()].astype({"grid_index": "int64"})
        df = df.sort_values("grid_index", kind="stable", na_position="last")
        df = df.reset_index(drop=True)
        df["steps_to_fit"] = df["steps_to_fit"].astype("Int64")
        for c in (*regions.COLUMNS, "separated_at", "stopped_at"):  # null for older parts
            if c in df:
                df[c] = df[c].astype("Int64")
        if "certified" in df:
            df["certified"] = df["certified"].astype("boolean")
    return df


def load_curves(root: str, all_runs: bool = False) -> pd.DataFrame:
    """Eval curves: one row per ``(run_id, step)`` of the runs :func:`load` gives."""
    require_results_dir(root)
    df = _read_parts(part_files(root, "curves"))
    if len(df) and not all_runs:
        df = df[df["run_id"].isin(grid_ids(root))].reset_index(drop=True)
    return df


def layer_kinds(layer: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """What each layer is, ``(n,)`` strings: ``input`` (layer 0), ``logit`` (layer depth + 1)
    or ``hidden`` (1..depth), from the layers ``(n,)`` and their networks' depths ``(n,)``."""
    layer, depth = np.asarray(layer, np.int64), np.asarray(depth, np.int64)
    return np.where(layer == 0, "input", np.where(layer == depth + 1, "logit", "hidden"))


def topology_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Rows of a topology table in its columns and types (integers nullable, ``Int64``)."""
    df = df.reindex(columns=TOPOLOGY_COLUMNS)  # a table written before a column: null
    for c in TOPOLOGY_INTS:
        df[c] = df[c].astype("Int64")
    for c, old in TOPOLOGY_TEXT.items():
        df[c] = df[c].astype(object)
        if old is not None:
            df[c] = df[c].where(df[c].notna(), old)
    df["stable"] = df["stable"].astype("boolean")
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


def region_columns(static, packed, n: int) -> dict[str, pd.arrays.IntegerArray]:
    """The decision-region columns (``train.regions.COLUMNS``, Int64) of a call's first ``n``
    lanes from their bit-packed grids ``packed (lanes, GRID**2 / 8)``; null where the program
    ``static`` has no grid (``regions.applies``) or ``packed`` is None."""
    if packed is None or not regions.applies(static.in_dim, static.n_out):
        return {c: pd.array([None] * n, "Int64") for c in regions.COLUMNS}
    numbers = regions.region_numbers(regions.unpack(np.asarray(packed)[:n]))
    return {c: pd.array(numbers[c], "Int64") for c in regions.COLUMNS}


def to_frames(static, runs, out, spec, provenance: Mapping[str, Any]
              ) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, np.ndarray]]:
    """Turn one call's output (numpy, leading axis >= len(runs)) into runs/curves/params.

    ``runs`` are the :class:`~sweepnet.engine.plan.Run` objects of the first ``len(runs)`` lanes;
    lanes past them are padding and are dropped.
    """
    n = len(runs)
    configs = [r.config for r in runs]
    keys = list(configs[0]) if n else []
    if any(list(c) != keys for c in configs):
        raise ValueError("to_frames: one call's runs share their configuration's keys")
    cols: dict[str, Any] = {"run_id": [r.run_id for r in runs], "sweep": [spec.name] * n,
                            "grid_index": [r.index for r in runs]}
    cols.update({k: [c[k] for c in configs] for k in keys})
    # the sizes trained and probed on (a file may hold fewer points than n_test asks)
    cols["n_train"], cols["n_test"] = [static.n_train] * n, [static.n_test] * n
    sizes = {(c["arch"], c["width"], c["depth"]) for c in configs}
    count = {a: n_params(a[0], static.in_dim, a[1], a[2], static.n_out) for a in sizes}
    diverged = np.asarray(out.diverged[:n], bool)
    test_acc = np.asarray(out.test_acc[:n], np.float64)
    steps_to_fit = np.asarray(out.steps_to_fit[:n])
    known = np.asarray([c["dataset"] in KNOWN for c in configs], bool)
    steps = static.eval_steps
    curve_loss = np.asarray(out.curve_loss[:n], np.float64)
    curve_test = np.asarray(out.curve_test_acc[:n], np.float64)
    # the first evaluation that separated (not diverged by then: a finite loss), as the
    # engine's train.stop = "separated" decides it; at every run, stopped or not
    hit = np.isfinite(curve_loss) & (curve_test >= spec.separation)
    separated_at = np.where(hit.any(1), steps[np.argmax(hit, 1)], -1)
    stopped = getattr(out, "stopped_at", None)  # a network trained in segments
    stopped_at = np.full(n, -1) if stopped is None else np.asarray(stopped[:n])
    cols.update({
        "in_dim": [static.in_dim] * n, "n_classes": [max(2, static.n_out)] * n,
        "n_params": [count[(c["arch"], c["width"], c["depth"])] for c in configs],
        "train_loss": np.asarray(out.train_loss[:n], np.float64),
        "train_acc": np.asarray(out.train_acc[:n], np.float64),
        "test_acc": test_acc,
        "separated": ~diverged & (test_acc >= spec.separation),
        "steps_to_fit": pd.array(np.where(steps_to_fit >= 0, steps_to_fit, 0), "Int64"),
        "diverged": diverged,
        "separated_at": pd.array(np.where(separated_at >= 0, separated_at, 0), "Int64"),
        "stopped_at": pd.array(np.where(stopped_at >= 0, stopped_at, 0), "Int64"),
        # separation metrics (train.separation); certified is null without known topology
        "margin": np.asarray(out.margin[:n], np.float64),
        "worst_margin": np.asarray(out.worst_margin[:n], np.float64),
        "certified": pd.array(np.asarray(out.certified[:n], bool), "boolean"),
        "max_grad": np.asarray(out.max_grad[:n], np.float64),
        **{k: [v] * n for k, v in provenance.items()},
    })
    cols["steps_to_fit"][steps_to_fit < 0] = pd.NA
    cols["separated_at"][separated_at < 0] = pd.NA
    cols["stopped_at"][stopped_at < 0] = pd.NA
    cols["certified"][~known] = pd.NA
    cols.update(region_columns(static, getattr(out, "region", None), n))
    runs_df = pd.DataFrame(cols)
    curves_df = pd.DataFrame({
        "run_id": np.repeat([r.run_id for r in runs], len(steps)),
        "step": np.tile(steps, n).astype(np.int32),
        "train_loss": out.curve_loss[:n].reshape(-1).astype(np.float32),
        "train_acc": out.curve_train_acc[:n].reshape(-1).astype(np.float32),
        "test_acc": out.curve_test_acc[:n].reshape(-1).astype(np.float32),
    })
    if (stopped_at >= 0).any():  # a stopped network has no evaluations past its stop
        last = np.where(stopped_at >= 0, stopped_at, steps[-1])
        curves_df = curves_df[np.tile(steps, n) <= np.repeat(last, len(steps))]
        curves_df = curves_df.reset_index(drop=True)
    params = {"/".join(k): np.asarray(v[:n]) for k, v in flatten_dict(out.params).items()}
    params["run_id"] = np.asarray([r.run_id for r in runs])
    params["width"] = np.asarray([r.config["width"] for r in runs], np.int32)
    return runs_df, curves_df, params
