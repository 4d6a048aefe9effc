"""SQL over results folders with DuckDB: the views ``runs``, ``curves`` and ``topology``.

Over one folder the views hold the runs its current spec holds (``all_runs``: every run on
disk, with a column ``in_spec``). Over several folders they are the union of each folder's
views, and ``sweep`` (in both views) names the folder's sweep, made unique where two folders
share a name (``quick``, ``quick-2``). ``topology`` holds each folder's
``topology.parquet`` (``sweepnet topology``); typed and empty until measured.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from sweepnet.core.errors import SweepnetError
from sweepnet.store.folder import part_files, require_results_dir, topology_path
from sweepnet.store.tables import TOPOLOGY_COLUMNS, grid


def labels(names: Sequence[str]) -> list[str]:
    """Sweep names made unique in order: the second ``quick`` becomes ``quick-2``."""
    out: list[str] = []
    for name in names:
        label, k = name, 1
        while label in out:
            k += 1
            label = f"{name}-{k}"
        out.append(label)
    return out


def _sql_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _read(root: str, view: str) -> str:
    files = part_files(root, view)
    if not files:
        return ""
    return f"read_parquet([{', '.join(map(_sql_text, files))}], union_by_name = true)"


_TOPOLOGY_TYPES = [(c, "VARCHAR" if c in ("run_id", "kind") else "BIGINT")
                   for c in TOPOLOGY_COLUMNS]


def _old_topology(topo: str) -> bool:
    """A ``topology.parquet`` written before its ``kind`` column (0.6 and older)."""
    try:
        return "kind" not in pq.read_schema(topo).names
    except Exception as e:
        raise SweepnetError(f"{topo}: unreadable ({type(e).__name__})") from None


def _kind(root: str, topo: str) -> tuple[str, str]:
    """The ``kind`` column an old topology table lacks, from its runs' depths: the column to
    select and the join that gives the depths (both empty for a table that has it)."""
    if not _old_topology(topo) or not (source := _read(root, "runs")):
        return "", ""
    return (", CASE WHEN t.layer = 0 THEN 'input' WHEN t.layer = d.depth + 1 THEN 'logit' "
            "ELSE 'hidden' END AS kind",
            f" LEFT JOIN (SELECT run_id, depth FROM {source}) d ON t.run_id = d.run_id")


def connect(roots: str | Sequence[str], all_runs: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views ``runs``, ``curves`` and ``topology`` over
    the folders."""
    roots = [roots] if isinstance(roots, str) else list(roots)
    for root in roots:
        require_results_dir(root)
    grids = [grid(root) for root in roots]
    names = labels([g["sweep"].iloc[0] for g in grids])
    several = len(roots) > 1
    con = duckdb.connect()
    runs, curves, topology = [], [], []
    for i, (root, g, name) in enumerate(zip(roots, grids, names, strict=True)):
        if os.path.exists(topo := topology_path(root)):
            label = f"{_sql_text(name)} AS sweep, " if several else ""
            kind, depths = _kind(root, topo)
            topology.append(f"SELECT {label}t.*{kind} FROM read_parquet({_sql_text(topo)}) t"
                            f"{depths}")
        con.register(f"_grid{i}", g[["run_id", "grid_index"]])
        if source := _read(root, "runs"):
            join, flag = ("LEFT JOIN", ", g.run_id IS NOT NULL AS in_spec") if all_runs else (
                "JOIN", "")
            # grid_index from the current spec: a grown sweep's table equals a fresh one's
            runs.append(f"SELECT r.* REPLACE (g.grid_index AS grid_index, {_sql_text(name)} "
                        f"AS sweep){flag} FROM {source} r {join} _grid{i} g "
                        "ON r.run_id = g.run_id")
        if source := _read(root, "curves"):
            label = f"{_sql_text(name)} AS sweep, " if several else ""
            where = "" if all_runs else f" WHERE c.run_id IN (SELECT run_id FROM _grid{i})"
            curves.append(f"SELECT {label}c.* FROM {source} c{where}")
    for view, selects in (("runs", runs), ("curves", curves)):
        if selects:
            con.execute(f"CREATE VIEW {view} AS " + " UNION ALL BY NAME ".join(selects))
        else:  # an empty sweep still answers queries (with no rows)
            con.execute(f"CREATE VIEW {view} AS SELECT NULL::VARCHAR AS run_id WHERE false")
    if topology:
        con.execute("CREATE VIEW topology AS " + " UNION ALL BY NAME ".join(topology))
    else:  # typed and empty until `sweepnet topology` measured a folder
        cols = ", ".join(f"NULL::{t} AS \"{c}\"" for c, t in _TOPOLOGY_TYPES)
        con.execute(f"CREATE VIEW topology AS SELECT {cols} WHERE false")
    return con


def query(roots: str | Sequence[str], sql: str, all_runs: bool = False) -> pd.DataFrame:
    """Run ``sql`` against the results in ``roots`` (one folder or several); a DataFrame."""
    con = connect(roots, all_runs)
    try:
        return con.execute(sql).df()
    except duckdb.Error as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise SweepnetError(f"SQL error: {first}") from None
    finally:
        con.close()


def format_frame(df: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=1)
    with pd.option_context("display.max_rows", 200, "display.max_columns", 50,
                           "display.width", 200):
        return df.to_string(index=False) if len(df) else "(no rows)"
