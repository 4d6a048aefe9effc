"""SQL over a results folder with DuckDB: the views ``runs``, ``curves`` and ``topology``."""

from __future__ import annotations

import os

import duckdb
import pandas as pd

from sweepnet.errors import SweepnetError
from sweepnet.results import part_files, require_results_dir


def connect(root: str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with views ``runs`` and ``curves`` over ``root``'s parts
    and ``topology`` over ``root/topology.parquet``."""
    require_results_dir(root)
    con = duckdb.connect()
    for view in ("runs", "curves"):
        files = part_files(root, view)
        if files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE VIEW {view} AS SELECT * FROM "
                        f"read_parquet([{listing}], union_by_name = true)")
        else:  # an empty sweep still answers queries (with no rows)
            con.execute(f"CREATE VIEW {view} AS SELECT NULL::VARCHAR AS run_id WHERE false")
    # Betti numbers by layer (``sweepnet topology``); typed and empty until measured.
    topo = os.path.join(root, "topology.parquet")
    if os.path.exists(topo):
        path = topo.replace("'", "''")
        con.execute(f"CREATE VIEW topology AS SELECT * FROM read_parquet('{path}')")
    else:
        cols = ", ".join(f"NULL::{t} AS \"{c}\"" for c, t in _TOPOLOGY_COLUMNS)
        con.execute(f"CREATE VIEW topology AS SELECT {cols} WHERE false")
    return con


_TOPOLOGY_COLUMNS = [("run_id", "VARCHAR"), ("layer", "BIGINT"), ("class", "BIGINT"),
                     ("b0", "BIGINT"), ("b1", "BIGINT"), ("b2", "BIGINT"),
                     ("n_points", "BIGINT"), ("k", "BIGINT"), ("eps", "BIGINT")]


def query(root: str, sql: str) -> pd.DataFrame:
    """Run ``sql`` against the results in ``root``; returns a pandas DataFrame."""
    con = connect(root)
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
