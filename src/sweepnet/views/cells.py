"""A results folder's networks summed up in SQL: per-cell counts, shares and their intervals,
curve quantiles, and a bounded sample of each cell's seeds.

The views read the parquet parts through DuckDB (:func:`sweepnet.store.query.connect`) and get
back tables whose size is that of the grid, never that of the sweep: one row per cell (or per
configuration), per cell and threshold, per group and eval step, or per sampled network. So a
chart or a report of a million networks holds what it draws, and DuckDB, not pandas, holds
the rows while it aggregates them (its memory capped by :data:`DUCKDB_MEMORY`; what does not
fit spills to disk).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence

import duckdb
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.core.stats import share_interval
from sweepnet.store import query as query_lib
from sweepnet.store.tables import sql_text
from sweepnet.views.drawing import CONFIG_COLUMNS

# DuckDB's memory in MB, at least (DUCKDB_THREAD more a thread where it has many): its joins,
# sorts and aggregates spill to disk past it, so a chart's or a report's memory does not grow
# with the sweep (a million networks: 0.7 GB in all, as 65,536 take)
DUCKDB_MEMORY = 128
DUCKDB_THREAD = 16
BATCH = 1 << 18  # rows :func:`sample` ranks at once (more where one cell holds more)
SAMPLE = 64  # seeds of a cell the report's linked view shows (all of them up to this many)
# per-network metrics of the runs table that a cell aggregates (means, counts, a median)
METRICS = ("test_acc", "train_acc", "train_loss", "steps_to_fit", "separated", "diverged",
           "margin", "worst_margin", "certified", "max_grad")


def connect(root: str) -> duckdb.DuckDBPyConnection:
    """The folder's ``runs`` and ``curves`` views (:func:`sweepnet.store.query.connect`), with
    DuckDB's memory capped."""
    con = query_lib.connect(root)
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    con.execute(f"SET memory_limit = '{max(DUCKDB_MEMORY, DUCKDB_THREAD * threads)}MB'")
    # what does not fit is spilled to the system's temporary folder (DuckDB's default is
    # ./.tmp, in the user's folder); DuckDB removes it
    spill = os.path.join(tempfile.gettempdir(), f"sweepnet-duckdb-{os.getpid()}")
    con.execute(f"SET temp_directory = {sql_text(spill)}")
    return con


def q(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def columns(con: duckdb.DuckDBPyConnection, view: str = "runs") -> list[str]:
    """The columns of the view ``view`` (``runs`` or ``curves``)."""
    return [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]


def configurations(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per configuration (every configuration column, ``in_dim`` and ``n_classes``;
    the seed pooled): its finished seeds ``n`` and the mean of each metric (a boolean's mean
    is its share). A stand-in for the runs table wherever a chart asks only which axes vary,
    their values and the classes (:func:`~sweepnet.views.drawing.swept_axes`,
    :func:`~sweepnet.views.drawing.chance`): its size is the grid's, not the sweep's."""
    described = con.execute("DESCRIBE runs").fetchall()
    cols = [r[0] for r in described]
    keys = [c for c in cols if c in CONFIG_COLUMNS or c in ("in_dim", "n_classes", "sweep")
            or c.startswith("data_")]
    numeric = ("BOOLEAN", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "FLOAT",
               "DOUBLE", "UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT")
    means = [f"avg({q(c)}::DOUBLE) AS {q(c)}" for c, t, *_ in described
             if c not in keys and c != "seed" and (t in numeric or t.startswith("DECIMAL"))]
    sql = (f"SELECT {', '.join(map(q, keys))}, count(*) AS n, {', '.join(means)} FROM runs "
           f"GROUP BY ALL ORDER BY ALL")
    return con.execute(sql).df()


def _where_finite(field: str) -> str:
    # DuckDB orders NaN above every number: a NaN accuracy must not count as a hit
    return f"({q(field)} IS NOT NULL AND NOT isnan({q(field)}))"


def cell_stats(
    con: duckdb.DuckDBPyConnection, keys: Sequence[str], metric: str = "separated",
    level: float = 0.95,
) -> pd.DataFrame:
    """One row per cell (distinct values of ``keys``), sorted by them: ``n`` (finished seeds),
    ``separated`` (how many), ``sep_lo``/``sep_hi`` (the exact ``level`` interval of the share
    separated, :func:`sweepnet.core.stats.share_interval`), ``diverged``, ``test_acc`` and
    ``train_acc`` (means), ``steps_to_fit`` (the median over the seeds that fit; null where none
    did), ``n_fit``, ``certified`` and ``n_cert`` (seeds certified, seeds with a verdict) where
    the table has them, and ``value``: the mean of ``metric`` (a share for a boolean; the
    median for ``steps_to_fit``)."""
    cols = columns(con)
    keys = list(keys)
    agg = "median" if metric == "steps_to_fit" else "avg"
    parts = [
        "count(*) AS n",
        "sum(separated::INTEGER) AS separated",
        "sum(diverged::INTEGER) AS diverged",
        "avg(test_acc) AS test_acc",
        "avg(train_acc) AS train_acc",
        "median(steps_to_fit) AS steps_to_fit",
        "count(steps_to_fit) AS n_fit",
        f"{agg}({q(metric)}::DOUBLE) AS value",
    ]
    if "certified" in cols:
        parts += ["sum(certified::INTEGER) AS certified", "count(certified) AS n_cert"]
    group = ", ".join(map(q, keys))
    sql = (f"SELECT {group}, {', '.join(parts)} FROM runs GROUP BY {group} "
           f"ORDER BY {group}")
    try:
        df = con.execute(sql).df()
    except duckdb.Error as e:
        raise SweepnetError(f"--metric {metric!r}: {str(e).splitlines()[0]}") from None
    df["sep_lo"], df["sep_hi"] = share_interval(df["separated"], df["n"], level)
    for c in ("n", "separated", "diverged", "n_fit"):
        df[c] = df[c].fillna(0).astype("int64")
    return df


def threshold_hits(
    con: duckdb.DuckDBPyConnection, keys: Sequence[str], lo: float, step: float, count: int
) -> pd.DataFrame:
    """How many seeds of each cell reach each threshold ``t_i = lo + i * step`` (``i < count``)
    of test accuracy: one row per cell (``keys``, sorted) with ``hits``, an int array of
    ``count`` counts (non-increasing in ``i``). The histogram is made in SQL, one row per cell
    and threshold bin; the counts are its cumulative sums from the top."""
    group = ", ".join(map(q, keys))
    # the last threshold a network reaches (a small slack: t_i is a rounded decimal)
    top = f"least(floor((test_acc - {lo!r}) / {step!r} + 1e-6), {count - 1})::BIGINT"
    sql = (f"SELECT {group}, {top} AS bin, count(*) AS k FROM runs "
           f"WHERE {_where_finite('test_acc')} AND test_acc >= {lo!r} - 1e-9 "
           f"GROUP BY ALL")
    bins = con.execute(sql).df()
    cells = con.execute(f"SELECT DISTINCT {group} FROM runs ORDER BY {group}").df()
    index = {k: i for i, k in enumerate(cells.itertuples(index=False, name=None))}
    hist = np.zeros((len(cells), count), np.int64)
    for row in bins.itertuples(index=False, name=None):
        hist[index[tuple(row[: len(keys)])], int(row[-2])] += int(row[-1])
    # reaching threshold i means a last bin >= i: a cumulative sum from the top
    hits = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]
    cells["hits"] = list(hits)
    return cells


def _first_by(field: str, descending: bool) -> str:
    """A struct whose minimum over a cell is its first row in the order ``field DESC|ASC
    NULLS LAST, seed, run_id`` (DuckDB's: NaN above every number), as an aggregate can take
    it: no window, no sort of the cell's rows."""
    v = f"{q(field)}::DOUBLE"
    plain = f"CASE WHEN {v} IS NULL OR isnan({v}) THEN 0 ELSE {'-' if descending else ''}{v} END"
    nan = f"coalesce({'NOT ' if descending else ''}isnan({v}), false)"
    return (f"min(struct_pack(n := {v} IS NULL, x := {nan}, v := {plain}, s := seed, "
            "r := run_id)).r")


def sample(
    con: duckdb.DuckDBPyConnection, keys: Sequence[str], size: int = SAMPLE
) -> pd.DataFrame:
    """A deterministic sample of each cell's seeds: every one of a cell with at most ``size``;
    otherwise exactly ``size``: the cell's extremes (best and worst test accuracy, lowest and
    highest train loss, fastest and slowest to fit, ties to the lower seed; the first
    ``size`` of them where fewer fit) and, to fill ``size``, seeds evenly spaced in seed
    order. DuckDB finds them; only the chosen ones come back: full runs rows, sorted by
    cell and seed, with ``cell_n`` (the cell's finished seeds) and ``shown`` (how many of
    them the sample holds).

    Memory does not grow with the sweep: the extremes are aggregates, and the even spread
    ranks the cells' seeds a batch of cells (:data:`BATCH` rows) at a time."""
    if size < 1:
        raise SweepnetError(f"--sample {size}: show at least 1 seed of a cell")
    part = ", ".join(map(q, keys))
    extremes = [("test_acc", True), ("test_acc", False), ("train_loss", False),
                ("train_loss", True), ("steps_to_fit", False), ("steps_to_fit", True)]
    firsts = ", ".join(_first_by(f, d) for f, d in extremes[:min(size, len(extremes))])
    found = con.execute(f"SELECT hash({part}), count(*), [{firsts}] FROM runs GROUP BY ALL "
                        "ORDER BY ALL").fetchall()
    extreme = pd.DataFrame({"run_id": list(dict.fromkeys(r for c in found for r in c[2]))},
                           dtype=object)
    # the rest evenly spaced in seed order: of n rows, those at positions r with
    # (r * m) % n < m are exactly m, spread evenly
    sql = f"""
        WITH marked AS (
            SELECT run_id, seed, {part}, count(*) OVER (PARTITION BY {part}) AS cell_n,
                run_id IN (SELECT run_id FROM _extreme) AS extreme
            FROM runs WHERE hash({part}) IN ({{cells}})),
        counted AS (
            SELECT *, sum(extreme::INTEGER) OVER (PARTITION BY {part}) AS n_extreme
            FROM marked),
        rest AS (
            SELECT run_id, cell_n, n_extreme,
                row_number() OVER (PARTITION BY {part} ORDER BY seed, run_id) - 1 AS pos,
                count(*) OVER (PARTITION BY {part}) AS n_rest
            FROM counted WHERE NOT extreme)
        SELECT run_id, cell_n FROM counted WHERE extreme OR cell_n <= {size}
        UNION ALL
        SELECT run_id, cell_n FROM rest WHERE cell_n > {size}
            AND (pos * ({size} - n_extreme)) % n_rest < {size} - n_extreme"""
    batches: list[list[int]] = []
    rows = BATCH
    for h, n, _ in found:  # whole cells, up to BATCH rows a batch
        if rows + n > BATCH:
            batches.append([])
            rows = 0
        batches[-1].append(h)
        rows += n
    con.register("_extreme", extreme)
    try:
        chosen = [row for batch in batches for row in con.execute(
            sql.format(cells=", ".join(map(str, batch)))).fetchall()]
        # a cell is ranked whole in its batch; one whose hash another's shares is ranked
        # in both, the same way: once is enough
        chosen = pd.DataFrame(list(dict.fromkeys(chosen)), columns=["run_id", "cell_n"])
        con.register("_chosen", chosen.astype({"run_id": object, "cell_n": "int64"}))
        df = con.execute(
            f"""SELECT r.*, c.cell_n FROM runs r JOIN _chosen c USING (run_id)
                ORDER BY {", ".join(f"r.{q(k)}" for k in keys)}, r.seed, r.run_id""").df()
    finally:
        con.unregister("_extreme")
        con.unregister("_chosen")
    df["shown"] = df.groupby(list(keys), dropna=False)["run_id"].transform("size")
    if "steps_to_fit" in df:
        df["steps_to_fit"] = df["steps_to_fit"].astype("Int64")
    return df


def eval_steps(con: duckdb.DuckDBPyConnection, max_steps: int) -> list[int]:
    """The curves' eval steps, at most ``max_steps`` of them evenly spaced (the last kept)."""
    steps = np.asarray(
        [r[0] for r in con.execute("SELECT DISTINCT step FROM curves ORDER BY step").fetchall()]
    )
    if len(steps) > max_steps:
        steps = steps[np.unique(np.linspace(0, len(steps) - 1, max_steps).round().astype(int))]
    return [int(s) for s in steps if s is not None]


def has_curves(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the folder stores curves (an empty view has no ``step`` column)."""
    return "step" in columns(con, "curves")


def curves_of(
    con: duckdb.DuckDBPyConnection, run_ids: Sequence[str], steps: Sequence[int]
) -> pd.DataFrame:
    """The curves rows of ``run_ids`` at ``steps`` (``run_id, step, train_loss, train_acc,
    test_acc``), sorted by run and step."""
    con.register("_wanted", pd.DataFrame({"run_id": list(run_ids)}))
    wanted = ", ".join(str(int(s)) for s in steps) or "NULL"
    try:
        return con.execute(
            "SELECT * FROM curves WHERE run_id IN (SELECT run_id FROM _wanted) AND step IN "
            f"({wanted}) ORDER BY run_id, step"
        ).df()
    finally:
        con.unregister("_wanted")


EXACT_MAX = 1024  # seeds a group and step up to which curve quantiles are exact
BINS = 2048  # histogram bins of a larger group's curve quantiles (error <= range / BINS)


def curve_quantiles(
    con: duckdb.DuckDBPyConnection, keys: Sequence[str], metrics: Sequence[str],
    steps: Sequence[int], exact_max: int = EXACT_MAX, bins: int = BINS,
) -> pd.DataFrame:
    """Median, quartiles, mean and count across seeds of each metric, per group of ``keys``
    (fields of the runs table) and eval step in ``steps``: long format, one row per group,
    metric and step (the columns of :func:`sweepnet.views.curves.curves_table`).

    Exact quantiles hold every value of a group in memory, so they are exact only where no
    group and step has more than ``exact_max`` seeds. Past that they come from a histogram of
    ``bins`` bins between the step's minimum and maximum (over all groups), counted in SQL:
    memory bounded by the grid, whatever the seeds, and each quantile within (max - min) /
    ``bins`` of the exact one. Means and counts are exact; NaN and infinite values are left
    out."""
    wanted = ", ".join(str(int(s)) for s in steps) or "NULL"  # a list: no join to hold
    group = [f"r.{q(k)}" for k in keys]
    frames = []
    for m in metrics:
        v = f"c.{q(m)}"
        # finite values only (NaN is above +inf in DuckDB; an isnan() here would cost a plan
        # that holds the whole join in memory)
        finite = f"{v} > '-infinity'::DOUBLE AND {v} < 'infinity'::DOUBLE"
        source = f"FROM curves c JOIN runs r USING (run_id) WHERE c.step IN ({wanted}) AND {finite}"
        head = f"SELECT {', '.join([*group, ''])}'{m}' AS metric, c.step"
        bounds = con.execute(f"{head}, min({v}) AS vmin, max({v}) AS vmax, avg({v}) AS mean, "
                             f"count({v}) AS n {source} GROUP BY ALL").df()
        if not len(bounds) or bounds["n"].max() <= exact_max:
            exact = con.execute(f"{head}, median({v}) AS median, quantile_cont({v}, 0.25) AS "
                                f"lo, quantile_cont({v}, 0.75) AS hi {source} GROUP BY ALL").df()
            frames.append(bounds.merge(exact, on=[*keys, "metric", "step"], how="left"))
            continue
        # one range a step, across groups, written into the query: no join to hold
        span = bounds.groupby("step").agg(a=("vmin", "min"), b=("vmax", "max"))
        lo = " ".join(f"WHEN {int(t)} THEN {float(r.a)!r}" for t, r in span.iterrows())
        width = " ".join(f"WHEN {int(t)} THEN {max(float(r.b - r.a), 1e-300) / bins!r}"
                         for t, r in span.iterrows())
        reader = con.sql(
            f"{head}, least(floor(({v} - CASE c.step {lo} END) / CASE c.step {width} END), "
            f"{bins - 1})::BIGINT AS bin, count(*) AS k {source} GROUP BY ALL"
        ).to_arrow_reader(65536)  # up to groups x steps x bins rows: read in batches
        bounds = bounds.reset_index(names="g")
        counts = np.zeros((len(bounds), bins), np.int64)
        for batch in reader:
            hist = batch.to_pandas().merge(bounds[[*keys, "step", "g"]], on=[*keys, "step"])
            np.add.at(counts, (hist["g"].to_numpy(), hist["bin"].to_numpy(np.int64)),
                      hist["k"].to_numpy())
        a = bounds["step"].map(span["a"]).to_numpy()
        b = bounds["step"].map(span["b"]).to_numpy()
        for name, frac in (("lo", 0.25), ("median", 0.5), ("hi", 0.75)):
            bounds[name] = np.clip(_binned_quantile(counts, a, b, frac), bounds["vmin"],
                                   bounds["vmax"])
        frames.append(bounds.drop(columns="g"))
    df = pd.concat(frames, ignore_index=True).drop(columns=["vmin", "vmax"])
    df = df[[*keys, "metric", "step", "median", "lo", "hi", "mean", "n"]]
    return df.sort_values([*keys, "metric", "step"]).reset_index(drop=True)


def _binned_quantile(counts: np.ndarray, vmin: np.ndarray, vmax: np.ndarray,
                     frac: float) -> np.ndarray:
    """The ``frac`` quantile (``quantile_cont``'s rank ``(n - 1) * frac``) of each row of
    ``counts (groups, bins)``, a histogram of equal bins from ``vmin`` to ``vmax``: the values
    of a bin taken as spread evenly across it."""
    n = counts.sum(axis=1)
    rank = (n - 1) * frac + 0.5  # the middle of the rank-th value's share of its bin
    cum = np.cumsum(counts, axis=1)
    b = np.minimum((cum <= rank[:, None]).sum(axis=1), counts.shape[1] - 1)
    before = np.take_along_axis(cum, b[:, None], axis=1)[:, 0] - counts[np.arange(len(b)), b]
    inside = (rank - before) / np.maximum(counts[np.arange(len(b)), b], 1)
    width = (vmax - vmin) / counts.shape[1]
    return np.clip(vmin + (b + inside) * width, vmin, vmax)


__all__ = ["BATCH", "BINS", "DUCKDB_MEMORY", "DUCKDB_THREAD", "EXACT_MAX", "METRICS", "SAMPLE",
           "cell_stats", "columns", "configurations", "connect", "curve_quantiles", "curves_of",
           "eval_steps", "has_curves", "q", "sample", "threshold_hits"]
