"""An adaptive sweep against the full grid of the same spec: the minimal width per row.

    python analysis/adaptive_vs_grid.py GRID_DIR SEARCH_DIR [--out analysis/out/adaptive_vs_grid.md]

GRID_DIR: the spec trained whole (`sweepnet run SPEC`); SEARCH_DIR: the same spec with
`--set 'search.mode="boundary"'` (and `train.stop`). Per (depth, activation, ...) row: the full
grid's minimal width (the narrowest width whose share of seeds separated is above one half)
and whether its 95% intervals decide it (`minwidth_table`: minwidth_low == minwidth_high), and
the search's (from its cells view: the narrowest width not "below" to the narrowest "above").
The issue's targets: the same width on every row the full grid decides; elsewhere the search's
range holds the full grid's value. Also the networks and network-steps each trained.
"""

from __future__ import annotations

import argparse
import os
import sys

import pandas as pd

import sweepnet
from sweepnet.store import query
from sweepnet.views.minwidth import minwidth_table


def search_rows(root: str, keys: list[str]) -> pd.DataFrame:
    cells = query.query(root, "SELECT * FROM cells")
    out = []
    for row, g in cells.groupby(keys):
        g = g.sort_values("width")
        low = g.loc[g["verdict"] != "below", "width"].min()
        high = g.loc[g["verdict"] == "above", "width"].min()
        out.append({**dict(zip(keys, row if isinstance(row, tuple) else (row,), strict=True)),
                    "search_low": low, "search_high": high,
                    "search_networks": int(g["n"].sum())})
    return pd.DataFrame(out)


def compare(grid: str, search: str) -> tuple[pd.DataFrame, dict]:
    runs = sweepnet.load(grid)
    table, _ = minwidth_table(runs)
    keys = ["depth", "activation"]
    both = table.merge(search_rows(search, keys), on=keys)

    def met(r) -> bool:
        if r["decided"]:
            return r["search_low"] == r["search_high"] == r["minwidth"]
        lo, hi = r["search_low"], r["search_high"]
        return (pd.isna(r["minwidth"]) and pd.isna(hi)) or (
            lo <= r["minwidth"] and (pd.isna(hi) or r["minwidth"] <= hi))

    both["target met"] = both.apply(met, axis=1)
    searched = sweepnet.load(search)
    steps = lambda df: int(df["stopped_at"].fillna(df["steps"]).sum()) \
        if "stopped_at" in df else int(df["steps"].sum())
    totals = {"grid networks": len(runs), "search networks": len(searched),
              "grid network-steps": steps(runs), "search network-steps": steps(searched)}
    return both, totals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("grid")
    ap.add_argument("search")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "out", "adaptive_vs_grid.md"))
    a = ap.parse_args(argv)
    both, totals = compare(a.grid, a.search)
    fmt = lambda v: "none" if pd.isna(v) else f"{int(v)}"
    lines = ["| depth | activation | full grid | decided at 95% | search | target met |",
             "|---:|---|---:|---|---|---|"]
    for r in both.itertuples():
        rng = fmt(r.search_low) if r.search_low == r.search_high else \
            f"{fmt(r.search_low)}-{fmt(r.search_high)}"
        met = "yes" if both.loc[r.Index, "target met"] else "no"
        lines.append(f"| {r.depth} | {r.activation} | {fmt(r.minwidth)} | "
                     f"{'yes' if r.decided else 'no'} | {rng} | {met} |")
    decided = both["decided"]
    head = (f"Rows: {len(both)}; the full grid decides {int(decided.sum())}; the search gives "
            f"the same width on {int((both['target met'] & decided).sum())} of them, and a "
            f"range holding the grid's on {int((both['target met'] & ~decided).sum())} of the "
            f"other {int((~decided).sum())}. Networks: {totals['search networks']:,} of "
            f"{totals['grid networks']:,}; network-steps: {totals['search network-steps']:,} "
            f"of {totals['grid network-steps']:,} "
            f"({totals['search network-steps'] / totals['grid network-steps']:.1%}).")
    text = "\n".join([f"# Adaptive sweep against the full grid\n\n`python analysis/"
                      f"adaptive_vs_grid.py {a.grid} {a.search}`\n", head, "", *lines, ""])
    os.makedirs(os.path.dirname(a.out), exist_ok=True)
    with open(a.out, "w") as f:
        f.write(text)
    print(text)
    return 0 if both["target met"].all() else 1


if __name__ == "__main__":
    sys.exit(main())
