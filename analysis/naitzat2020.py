"""Reproduce Naitzat, Zhitnikov & Lim (JMLR 2020), "Topology of deep neural networks".

    python analysis/naitzat2020.py             # run (resume) sweeps/naitzat-d1.toml, measure
                                               # its topology, write the report
    python analysis/naitzat2020.py --no-run    # report from existing results (measures the
                                               # topology if it is missing)
    python analysis/naitzat2020.py --set train.seeds=2 ...   # a smaller or larger sweep

Writes analysis/out/naitzat2020.md and .html (figures in analysis/out/fig/). The claims:

1. well-trained networks end with b0 = 1 and no higher Betti numbers, for both classes;
2. ReLU reduces b0 faster through the layers than tanh, leaky ReLU in between (their D-I,
   10 layers of width 15: mean b0 of the disks after layer 3 is about 3.5 ReLU, 6.3 leaky
   ReLU, 7.1 tanh);
3. narrower networks reduce topology sooner than wider ones;
4. shallow networks change topology mostly in their last layers, deep ones spread it out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claims import Report  # noqa: E402  (analysis/ is a folder of scripts)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "analysis", "out")
SPEC = os.path.join(ROOT, "sweeps", "naitzat-d1.toml")
PAPER_LAYER3 = {"relu": 3.5, "leaky_relu": 6.3, "tanh": 7.1}  # D-I, width 15, 10 layers


def run(results: str, overrides: list[str]) -> float:
    from sweepnet import engine, spec

    t = time.perf_counter()
    print(engine.run_sweep(spec.load(SPEC, overrides), results, progress=False), flush=True)
    return time.perf_counter() - t


def measure(results: str, again: bool) -> float:
    from sweepnet import topology

    if os.path.exists(os.path.join(results, topology.PARQUET)) and not again:
        return float("nan")
    t = time.perf_counter()
    print(topology.summary(topology.measure(results, progress=True)), flush=True)
    return time.perf_counter() - t


def table(results: str) -> pd.DataFrame:
    """Topology rows joined with their runs: one row per (run, layer, class)."""
    from sweepnet import results as res
    from sweepnet import topology

    runs = res.load(results)
    cols = ["run_id", "width", "depth", "activation", "seed", "test_acc", "separated"]
    df = topology.load(results).merge(runs[cols], on="run_id")
    df["last"] = df["layer"] == df["depth"] + 1  # the logits
    for c in ("b0", "b1", "b2", "layer", "depth", "width"):
        df[c] = df[c].astype(float)
    return df


def _ints(col: pd.Series) -> str:
    return ", ".join(str(v) for v in sorted(int(v) for v in col.unique()))


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in d.items())


def claim_trivial_end(rep: Report, df: pd.DataFrame) -> None:
    good = df[df["separated"]]
    n = good["run_id"].nunique()
    if not n:
        rep.verdict("well-trained networks end trivial", "naitzat-d1", "b0 = 1, b1 = 0",
                    "no network reached the separation threshold", None)
        return
    good = good.assign(trivial=(good["b0"] == 1) & (good["b1"] + good["b2"].fillna(0) == 0))

    def share(rows: pd.DataFrame) -> float:
        return float(rows.groupby("run_id")["trivial"].all().mean())

    logits, hidden = good[good["last"]], good[good["layer"] == good["depth"]]
    rep.verdict(
        "well-trained networks end with b0 = 1 and no higher Betti numbers (both classes): "
        "at the logits", "naitzat-d1", "b = (1, 0) for both classes",
        f"{n} separated networks: {share(logits):.0%} trivial (a 1-D logit has b1 = 0 by "
        "construction, so only b0 = 1 is informative)", share(logits) >= 0.9)
    means = hidden.groupby("class")[["b0", "b1"]].mean()
    rep.verdict(
        "... and after the last hidden layer", "naitzat-d1", "b = (1, 0) for both classes",
        f"{share(hidden):.0%} of the {n} trivial; mean (b0, b1) class 0: "
        f"({means.loc[0, 'b0']:.2f}, {means.loc[0, 'b1']:.2f}), class 1: "
        f"({means.loc[1, 'b0']:.2f}, {means.loc[1, 'b1']:.2f})", share(hidden) >= 0.9)
    rep.text("Why the last hidden layer disagrees: our networks separate the classes with "
             "the read-out's one line while both classes still have topology in the last "
             "hidden layer (the region keeps some of its nine holes, the disks some of their "
             "components); the paper's networks were trained to perfect training accuracy, "
             "ours for 3,000 Adam steps, and half of them stop short of test accuracy 0.99.\n")


def claim_activations(rep: Report, df: pd.DataFrame) -> None:
    w, d = int(df["width"].max()), int(df["depth"].max())
    deep_wide = df[(df["width"] == w) & (df["depth"] == d) & (df["class"] == 1)]
    at3 = deep_wide[deep_wide["layer"] == 3]
    means = at3.groupby("activation")["b0"].mean().to_dict()
    if not {"relu", "leaky_relu", "tanh"} <= set(means):
        rep.verdict("ReLU reduces b0 faster than tanh", "naitzat-d1", "", "not measured", None)
        return
    order = sorted(means, key=means.get)
    paper_order = means["relu"] < means["leaky_relu"] < means["tanh"]
    rep.verdict(
        f"disks' mean b0 after layer 3 (width {w}, depth {d}): ReLU < leaky ReLU < tanh, "
        "near the paper's values", "naitzat-d1", _fmt(PAPER_LAYER3),
        f"{_fmt(means)} (order: {' <= '.join(order)}; {at3['run_id'].nunique()} networks)",
        paper_order and abs(means["relu"] - PAPER_LAYER3["relu"]) < 1.5)
    hidden = deep_wide[(deep_wide["layer"] >= 1) & (deep_wide["layer"] <= d)]
    over = hidden.groupby("activation")["b0"].mean().to_dict()
    rep.verdict(
        f"ReLU reduces b0 faster than tanh (disks' b0 averaged over the {d} hidden layers)",
        "naitzat-d1", "ReLU lowest, tanh highest, leaky ReLU between", _fmt(over),
        over["relu"] < over["tanh"] and over["leaky_relu"] < over["tanh"])
    rep.text(f"### Mean b0 of the disks (class 1) by layer, width {w}, depth {d}\n")
    piv = deep_wide.groupby(["activation", "layer"])["b0"].mean().unstack("layer").round(2)
    piv.columns = [f"L{int(c)}" for c in piv.columns]
    rep.table(piv.reset_index())
    rep.text(WHY_LAYER3)


WHY_LAYER3 = """Why layer 3 disagrees: our networks barely touch the nine disks in their first three
layers (b0 stays at 8.7-9 for every activation) and do the merging in layers 5-10 instead,
where ReLU and leaky ReLU do reach low b0 well before tanh (the table). The networks are
trained far less than the paper's: 3,000 full-batch Adam steps, 3 seeds, test accuracy
0.99 for width 15 rather than the paper's perfectly trained networks, and a network that
still has slack has no reason to merge early. Our leaky ReLU has slope 0.01 (sweepnet's
registry), close to ReLU, so leaky ReLU and ReLU come out tied rather than apart. k and eps
are ours too (calibrated on the input: k = 16, eps = 2).
"""


def _relative_drop(df: pd.DataFrame) -> pd.DataFrame:
    """Per network and layer: the share of the network's total topology change (sum over
    classes of b0 + b1 + b2) done by that layer's point."""
    tot = (df.assign(t=df["b0"] + df["b1"] + df["b2"].fillna(0))
           .groupby(["run_id", "width", "depth", "activation", "layer"], as_index=False)["t"]
           .sum())
    first = tot[tot["layer"] == 0].set_index("run_id")["t"]
    last = tot.loc[tot.groupby("run_id")["layer"].idxmax()].set_index("run_id")["t"]
    span = (first - last).replace(0, np.nan)
    tot["done"] = (first.reindex(tot["run_id"]).to_numpy() - tot["t"]) \
        / span.reindex(tot["run_id"]).to_numpy()
    tot["rel"] = tot["layer"] / (tot["depth"] + 1)
    return tot


def claim_width(rep: Report, df: pd.DataFrame) -> None:
    if df["width"].nunique() < 2:
        rep.verdict("narrower reduce sooner", "naitzat-d1", "", "one width only", None)
        return
    tot = _relative_drop(df)
    # "sooner": the share of the total change already done halfway through the hidden layers
    mid = tot[(tot["layer"] == np.ceil(tot["depth"] / 2))]
    by = mid.groupby(["depth", "activation", "width"])["done"].mean().unstack("width")
    narrow, wide = int(by.columns.min()), int(by.columns.max())
    by.columns = [int(c) for c in by.columns]
    wins = int((by[narrow] > by[wide]).sum())
    rep.verdict(
        "narrower networks reduce topology sooner than wider ones", "naitzat-d1",
        f"width {narrow} has done more of its change halfway than width {wide}",
        f"share of the change done at the middle hidden layer, width {narrow} vs {wide}: "
        f"{by[narrow].mean():.2f} vs {by[wide].mean():.2f}; narrower sooner in {wins} of "
        f"{len(by)} (depth, activation) cells", wins > len(by) / 2)
    rep.text("### Share of the total topology change done at the middle hidden layer\n")
    rep.table(by.round(2).reset_index())


def claim_depth(rep: Report, df: pd.DataFrame) -> None:
    if df["depth"].nunique() < 2:
        rep.verdict("shallow change late", "naitzat-d1", "", "one depth only", None)
        return
    tot = _relative_drop(df)
    # share of the change made by the last hidden layer and the read-out together
    before = tot[tot["layer"] == tot["depth"] - 1].set_index("run_id")["done"]
    share_late = 1 - before.fillna(0)
    share = share_late.rename("late").reset_index().merge(
        tot[["run_id", "depth", "activation", "width"]].drop_duplicates(), on="run_id")
    by = share.groupby(["width", "activation", "depth"])["late"].mean().unstack("depth")
    shallow, deep = int(by.columns.min()), int(by.columns.max())
    by.columns = [int(c) for c in by.columns]
    wins = int((by[shallow] > by[deep]).sum())
    rep.verdict(
        "shallow networks change topology mostly in their last layers; deep ones spread it",
        "naitzat-d1", f"depth {int(shallow)}: most change in the last layers; depth "
        f"{int(deep)}: less", f"share of the change made by the last hidden layer and the "
        f"read-out: depth {int(shallow)} {by[shallow].mean():.2f}, depth {int(deep)} "
        f"{by[deep].mean():.2f}; shallow later in {wins} of {len(by)} (width, activation) "
        "cells", wins > len(by) / 2)
    rep.text("### Share of the topology change made by the last hidden layer and the read-out\n")
    rep.table(by.round(2).reset_index())


def report(results: str, out: str, walls: dict[str, float]) -> str:
    from sweepnet import charts

    df = table(results)
    rep = Report(out, "naitzat2020", predicts="paper says")
    with open(os.path.join(results, "topology.json")) as f:
        scales = json.load(f)
    runs = df.drop_duplicates("run_id")
    rep.text(
        "Betti numbers of each class at the input (layer 0), after every hidden layer and at "
        "the logits (layer depth + 1), measured by `sweepnet topology` with Naitzat et al.'s "
        "method: kNN graph, hop distance, Vietoris-Rips at one scale (ripser). k and eps "
        "were chosen so that the input gives the known Betti numbers: "
        + "; ".join(f"k = {v['k']}, eps = {v['eps']} ({v['source']}, known {v['known']})"
                    for v in scales.values()) + ".\n")
    rep.text(
        f"Sweep: `sweeps/naitzat-d1.toml` at `{os.path.relpath(results, ROOT)}`: "
        f"{len(runs)} networks (widths {_ints(runs['width'])}, depths {_ints(runs['depth'])}, "
        f"{', '.join(sorted(runs['activation'].unique()))}), "
        f"{int(runs['separated'].sum())} separated (test accuracy >= the spec's threshold); "
        f"mean test accuracy {runs['test_acc'].mean():.3f}. "
        + ", ".join(f"{k} {v:.0f} s" for k, v in walls.items() if np.isfinite(v))
        + " on the shared 2-core CPU.\n")
    acc = (runs.groupby(["width", "depth", "activation"])["test_acc"].agg(["mean", "min"])
           .round(4).reset_index())
    rep.text("### Test accuracy\n")
    rep.table(acc)
    for claim in (claim_trivial_end, claim_activations, claim_width, claim_depth):
        claim(rep, df)
    rep.figure(charts.betti(df), "naitzat_betti",
               "Mean Betti numbers by layer, per activation (dashes: class), by depth")
    rep.write("Naitzat, Zhitnikov & Lim 2020: what sweepnet measures")
    return os.path.join(out, "naitzat2020.md")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-run", action="store_true", help="only read existing results")
    ap.add_argument("--remeasure", action="store_true", help="measure the topology again")
    ap.add_argument("--results", default=os.path.join(ROOT, "results", "naitzat-d1"))
    ap.add_argument("--out", default=OUT, help="report folder (default analysis/out/)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of sweeps/naitzat-d1.toml (repeatable)")
    a = ap.parse_args(argv)
    walls = {}
    if not a.no_run:
        walls["training"] = run(a.results, a.set)
    walls["topology"] = measure(a.results, a.remeasure)
    print(report(a.results, a.out, walls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
