"""SQL over results folders with DuckDB: the views ``runs``, ``curves``, ``topology`` and
``theorems``.

Over one folder the views hold the runs its current spec holds (``all_runs``: every run on
disk, with a column ``in_spec``). Over several folders they are the union of each folder's
views, and ``sweep`` (in both views) names the folder's sweep, made unique where two folders
share a name (``quick``, ``quick-2``). ``topology`` holds each folder's
``topology.parquet`` (``sweepnet topology``); typed and empty until measured. ``theorems``
has one row per (narrow-network theorem, run it applies to), with ``holds`` (see
:data:`THEOREMS_SQL`; empty for runs without the decision-region columns).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from duckdb import sqltypes

from sweepnet.core.errors import SweepnetError
from sweepnet.core.stats import share_interval
from sweepnet.store.folder import (
    part_files,
    require_results_dir,
    search_path,
    stored_spec,
    topology_path,
)
from sweepnet.store.tables import (
    TOPOLOGY_COLUMNS,
    files_key,
    grid_ids,
    sql_text,
    trained_positions,
)
from sweepnet.train import regions


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


def _read(root: str, view: str) -> str:
    files = part_files(root, view)
    if not files:
        return ""
    # parts of one schema (one version wrote them) are read without union_by_name, which
    # holds every part's reader open: about 100 kB a part, 110 MB for a million networks
    union = "" if _one_schema(files) else ", union_by_name = true"
    return f"read_parquet([{', '.join(map(sql_text, files))}]{union})"


def _one_schema(files: Sequence[str]) -> bool:
    """Whether the parquet ``files`` have one schema (the same columns, in the same order,
    of the same types); each file's footer is read, one at a time, once in a process."""
    key = files_key(files)
    if key not in _SCHEMAS:
        while len(_SCHEMAS) >= 8:  # runs and curves of a few folders
            _SCHEMAS.pop(next(iter(_SCHEMAS)))
        try:
            first = pq.read_schema(files[0]).remove_metadata()
            _SCHEMAS[key] = all(pq.read_schema(p).remove_metadata().equals(first)
                                for p in files[1:])
        except Exception:  # an unreadable part: DuckDB's reader says which
            _SCHEMAS[key] = False
    return _SCHEMAS[key]


_SCHEMAS: dict[tuple, bool] = {}


def _names(names: Sequence[str]) -> str:
    return ", ".join(map(sql_text, names))


# A network a theorem applies to: a binary mlp on 2-D data (its region measured), finite, every
# hidden layer at most as wide as the input. The activation lists: sweepnet.train.regions. A
# `leaky_relu...` variant of another slope is leaky ReLU too.
_NARROW = ("region_b0 IS NOT NULL AND arch = 'mlp' AND width <= in_dim AND NOT diverged")
_LEAKY = "activation LIKE 'leaky_relu%'"
_REGION_COLUMNS = ("region_b0, region_b1, region_bounded, region0_b0")
THEOREMS_SQL = f"""
SELECT 'unbounded' AS theorem, sweep, run_id, dataset, width, depth, activation,
       {_REGION_COLUMNS}, region_bounded = 0 AND region_b1 = 0 AS holds
FROM runs WHERE {_NARROW}
  AND (activation IN ({_names(regions.UNBOUNDED_ACTIVATIONS)}) OR {_LEAKY})
UNION ALL
SELECT 'connected' AS theorem, sweep, run_id, dataset, width, depth, activation,
       {_REGION_COLUMNS}, region_b0 <= 1 AND region0_b0 <= 1 AS holds
FROM runs WHERE {_NARROW}
  AND (activation IN ({_names(regions.CONNECTED_ACTIVATIONS)}) OR {_LEAKY}
       OR (depth = 1 AND activation IN ({_names(regions.CONNECTED_ONE_LAYER)})))
"""
_THEOREMS_TYPES = [("theorem", "VARCHAR"), ("sweep", "VARCHAR"), ("run_id", "VARCHAR"),
                   ("dataset", "VARCHAR"), ("width", "BIGINT"), ("depth", "BIGINT"),
                   ("activation", "VARCHAR"), *[(c, "BIGINT") for c in regions.COLUMNS],
                   ("holds", "BOOLEAN")]


_TOPOLOGY_TYPES = [(c, "VARCHAR" if c in ("run_id", "kind", "cloud", "split") else
                    "BOOLEAN" if c == "stable" else "BIGINT") for c in TOPOLOGY_COLUMNS]


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


def connect(roots: str | Sequence[str], all_runs: bool = False, threshold: float = 0.5,
            confidence: float = 0.95) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views ``runs``, ``curves``, ``cells`` and
    ``topology`` over the folders (``cells``: its verdicts at ``threshold`` and
    ``confidence``)."""
    roots = [roots] if isinstance(roots, str) else list(roots)
    for root in roots:
        require_results_dir(root)
    names = labels([stored_spec(root).name for root in roots])
    several = len(roots) > 1
    con = duckdb.connect()
    runs, curves, topology = [], [], []
    for i, (root, name) in enumerate(zip(roots, names, strict=True)):
        if os.path.exists(topo := topology_path(root)):
            label = f"{sql_text(name)} AS sweep, " if several else ""
            kind, depths = _kind(root, topo)
            topology.append(f"SELECT {label}t.*{kind} FROM read_parquet({sql_text(topo)}) t"
                            f"{depths}")
        # every run at its stored grid_index in the current spec: the parts as they are (no
        # join with a table of every run id, whose memory grows with the sweep)
        aligned = trained_positions(root) is not None
        if not aligned:
            ids = grid_ids(root)
            con.register(f"_grid{i}", pa.table({
                "run_id": ids, "grid_index": pa.array(range(len(ids)), pa.int64())}))
        if source := _read(root, "runs"):
            if aligned:
                flag = ", true AS in_spec" if all_runs else ""
                runs.append(f"SELECT r.* REPLACE ({sql_text(name)} AS sweep){flag} "
                            f"FROM {source} r")
            else:
                join, flag = ("LEFT JOIN", ", g.run_id IS NOT NULL AS in_spec") if all_runs \
                    else ("JOIN", "")
                # grid_index from the current spec: a grown sweep's table equals a fresh one's
                runs.append(f"SELECT r.* REPLACE (g.grid_index AS grid_index, "
                            f"{sql_text(name)} AS sweep){flag} FROM {source} r {join} "
                            f"_grid{i} g ON r.run_id = g.run_id")
        if source := _read(root, "curves"):
            label = f"{sql_text(name)} AS sweep, " if several else ""
            where = "" if all_runs or aligned else (
                f" WHERE c.run_id IN (SELECT run_id FROM _grid{i})")
            curves.append(f"SELECT {label}c.* FROM {source} c{where}")
    for view, selects in (("runs", runs), ("curves", curves)):
        if selects:
            con.execute(f"CREATE VIEW {view} AS " + " UNION ALL BY NAME ".join(selects))
        else:  # an empty sweep still answers queries (with no rows)
            con.execute(f"CREATE VIEW {view} AS SELECT NULL::VARCHAR AS run_id WHERE false")
    cell_view(con, roots, several, threshold, confidence)
    if topology:
        con.execute("CREATE VIEW topology AS " + " UNION ALL BY NAME ".join(topology))
    else:  # typed and empty until `sweepnet topology` measured a folder
        cols = ", ".join(f"NULL::{t} AS \"{c}\"" for c, t in _TOPOLOGY_TYPES)
        con.execute(f"CREATE VIEW topology AS SELECT {cols} WHERE false")
    have = set(con.execute("SELECT * FROM runs LIMIT 0").df().columns)
    if have.issuperset({*regions.COLUMNS, "arch", "in_dim", "diverged", "sweep", "dataset"}):
        con.execute("CREATE VIEW theorems AS " + THEOREMS_SQL)
    else:  # runs of versions before the decision-region columns: no row applies
        cols = ", ".join(f"NULL::{t} AS \"{c}\"" for c, t in _THEOREMS_TYPES)
        con.execute(f"CREATE VIEW theorems AS SELECT {cols} WHERE false")
    return con


def cell_view(con: duckdb.DuckDBPyConnection, roots: Sequence[str], several: bool,
              threshold: float, confidence: float) -> None:
    """The view ``cells``: a row per cell (a configuration, every seed of it) of ``runs``: its
    swept configuration columns (and ``dataset``), ``n`` seeds, ``separated`` of them,
    ``share``, the exact (Clopper-Pearson) interval ``low``-``high`` at ``confidence``, and
    ``verdict``: ``above`` or ``below`` where the interval lies wholly above or below
    ``threshold``, else ``boundary`` (undecided: more seeds would tell)."""
    if not 0 < confidence < 1 or not 0 <= threshold <= 1:
        raise SweepnetError(f"--confidence {confidence} / --threshold {threshold}: need "
                            "0 < confidence < 1 and 0 <= threshold <= 1")
    bases = [base for root in roots for base, _ in stored_spec(root).combos()]
    values: dict[str, set] = {}
    for base in bases:
        for k, v in base.items():
            values.setdefault(k, set()).add(repr(v))
    # the swept axes (and the dataset): a constant of every run says nothing of a cell
    keys = (["sweep"] if several else []) + [
        k for k, v in values.items() if k == "dataset" or len(v) > 1
        or sum(k in b for b in bases) < len(bases)]
    present = {r[0] for r in con.execute("DESCRIBE runs").fetchall()}
    keys = [k for k in keys if k in present]
    if not several and os.path.exists(search := search_path(roots[0])):
        # an adaptive sweep: the search's verdicts, inferred cells (and from what) included
        con.execute(f"""CREATE VIEW cells AS SELECT * EXCLUDE (k, monotone), k AS separated,
                        monotone FROM read_parquet({sql_text(search)}) ORDER BY ALL""")
        return
    if "separated" not in present:  # an empty sweep: a typed, empty view
        con.execute("CREATE VIEW cells AS SELECT NULL::BIGINT AS n WHERE false")
        return

    def bound(k, n, upper):
        lo, hi = share_interval(k.to_numpy(), n.to_numpy(), confidence)
        return pa.array(hi if upper.to_numpy()[0] else lo, pa.float64())

    con.create_function("share_bound", bound, [sqltypes.BIGINT, sqltypes.BIGINT,
                                               sqltypes.BOOLEAN], sqltypes.DOUBLE,
                        type="arrow", side_effects=False)
    cols = ", ".join(f'"{k}"' for k in keys)
    con.execute(f"""CREATE VIEW cells AS
        WITH c AS (SELECT {cols}{', ' if cols else ''}count(*) AS n,
                          count_if(separated)::BIGINT AS separated FROM runs GROUP BY ALL),
             b AS (SELECT *, separated / n AS share, share_bound(separated, n, false) AS low,
                          share_bound(separated, n, true) AS high FROM c)
        SELECT *, CASE WHEN low > {threshold} THEN 'above' WHEN high < {threshold} THEN 'below'
                       ELSE 'boundary' END AS verdict
        FROM b ORDER BY ALL""")


def query(roots: str | Sequence[str], sql: str, all_runs: bool = False, threshold: float = 0.5,
          confidence: float = 0.95) -> pd.DataFrame:
    """Run ``sql`` against the results in ``roots`` (one folder or several); a DataFrame."""
    con = connect(roots, all_runs, threshold, confidence)
    try:
        return con.execute(sql).df()
    except duckdb.Error as e:
        raise SweepnetError(f"SQL error: {sql_message(e)}") from None
    finally:
        con.close()


def sql_message(e: Exception) -> str:
    """DuckDB's error on one line, with its hints (``Did you mean "runs"?``, ``Candidate
    bindings: "width"``) and without the echo of the query under it (``LINE 1: ...``)."""
    lines = []
    for line in str(e).strip().splitlines():
        if line.startswith("LINE "):
            break
        if line.strip():
            lines.append(line.strip())
    return "; ".join(lines) or type(e).__name__


def format_frame(df: pd.DataFrame, fmt: str) -> str:
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=1)
    with pd.option_context("display.max_rows", 200, "display.max_columns", 50,
                           "display.width", 200):
        return df.to_string(index=False) if len(df) else "(no rows)"
