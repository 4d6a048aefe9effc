"""Reproduce Naitzat, Zhitnikov & Lim (JMLR 2020), "Topology of deep neural networks".

    python analysis/naitzat2020.py             # run (resume) sweeps/naitzat-d1.toml, measure
                                               # its topology, write the report
    python analysis/naitzat2020.py --no-run    # report from existing results (measures the
                                               # topology if it is missing)
    python analysis/naitzat2020.py --set train.seeds=2 ...   # a smaller or larger sweep

The protocol is the paper's (sweeps/naitzat-d1.toml: the authors' released code): only the
networks at training accuracy exactly 1.0 are measured and counted, and their D-I Betti
numbers are measured on an 88 x 88 grid over the data's square split by predicted class
(``sweepnet topology --cloud grid --split predicted``). The same networks are also measured
on the training points split by their labels (``--cloud train --split true``), so that what
the choice of cloud changes is measured, not guessed.

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
import os
import sys
import time

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claims import Claim, Figure, Report, shown  # noqa: E402  (analysis/ is a folder of scripts)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "analysis", "out")
SPEC = os.path.join(ROOT, "sweeps", "naitzat-d1.toml")
SWEEP = "naitzat-d1"  # the sweep every claim here is measured on
PAPER_LAYER3 = {"relu": 3.5, "leaky_relu_0.2": 6.3, "tanh": 7.1}  # D-I, width 15, 10 layers
LEAKY = "leaky_relu_0.2"  # the paper's leaky ReLU (TensorFlow's slope 0.2)
ACCEPT = 1.0  # the paper keeps a network only at training accuracy exactly 1 (--accept)
PROTOCOL = ("grid", "predicted")  # the paper's D-I clouds
OURS = ("train", "true")  # sweepnet's default clouds, to compare
# Folders beside the results (RESULTS + suffix) with the same protocol but one thing changed,
# measured on the grid where they exist (the commands are in the report's "Measured" text):
VARIANTS = {
    "-8k": "trained on 8,000 points instead of 2,000 (`--set data.n_train=8000`)",
    "-k14": "the same networks at k = 14, the authors' default `--neighbors` (`--k 14`)",
    "-fullgrid": "the same networks on the whole grid, no subsample of 1,000 (`--points 7744`)",
}
RELU_NEAR = 1.5  # "near the paper's values": ReLU's mean b0 after layer 3 within this of 3.5
TRIVIAL_SHARE = 0.9  # "well-trained networks end trivial": at least this share of them


def run(results: str, overrides: list[str]) -> float:
    from sweepnet.engine import run as engine
    from sweepnet.sweep import spec

    t = time.perf_counter()
    print(engine.run_sweep(spec.load(SPEC, overrides), results, progress=False), flush=True)
    return time.perf_counter() - t


def measure(results: str, again: bool, cloud: str, split: str) -> float:
    """Measure the accepted networks' topology with ``cloud`` and ``split`` (unless done)."""
    from sweepnet.measure import topology

    have = topology.load(results)
    if len(have) and ((have["cloud"] == cloud) & (have["split"] == split)).any() and not again:
        return float("nan")
    t = time.perf_counter()
    print(topology.summary(topology.measure(results, f"train_acc >= {ACCEPT}", progress=True,
                                            cloud=cloud, split=split)), flush=True)
    return time.perf_counter() - t


def table(results: str, how: tuple[str, str] = PROTOCOL) -> pd.DataFrame:
    """Topology rows of the clouds ``how`` joined with their runs: one row per (run, layer,
    class), accepted networks only (training accuracy 1)."""
    from sweepnet.measure import topology
    from sweepnet.store import results as res

    runs = res.load(results)
    runs = runs[runs["train_acc"] >= ACCEPT]
    cols = ["run_id", "width", "depth", "activation", "seed", "test_acc", "separated",
            "train_acc", "steps", "optimizer", "batch_size", "sweep", "n_train"]
    topo = topology.load(results)
    topo = topo[(topo["cloud"] == how[0]) & (topo["split"] == how[1])]
    df = topo.merge(runs[cols], on="run_id")
    df["last"] = df["layer"] == df["depth"] + 1  # the logits
    for c in ("b0", "b1", "b2", "layer", "depth", "width"):
        df[c] = df[c].astype(float)
    return df


def _input_check(df: pd.DataFrame, scales: dict) -> str:
    """Whether the measured input (layer 0) has each class's known Betti numbers."""
    known = {int(c): b for v in scales.values() for c, b in (v.get("known") or {}).items()}
    if not known:
        return "The topology of the input is not known, so k and eps are not checked on it."
    at0 = df[df["layer"] == 0]
    bad = []
    for c, b in sorted(known.items()):
        got = at0[at0["class"] == c][["b0", "b1", "b2"]].astype(float).fillna(0)
        want = np.asarray(b[:3], float)
        if len(got) and not (got.to_numpy() == want[None, :]).all():
            bad.append(f"class {c}: known {tuple(int(v) for v in want)}, measured mean "
                       f"{tuple(round(float(v), 2) for v in got.mean())}")
    if bad:
        return "**The input does not give the known Betti numbers**: " + "; ".join(bad) + "."
    return ("At the input every class has its known Betti numbers ("
            + "; ".join(f"class {c}: {tuple(int(v) for v in b[:3])}"
                        for c, b in sorted(known.items())) + ").")


def _ints(col: pd.Series) -> str:
    return ", ".join(str(v) for v in sorted(int(v) for v in col.unique()))


def _fmt(d: dict) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in d.items())


def claim_trivial_end(rep: Report, df: pd.DataFrame, other: pd.DataFrame | None = None) -> None:
    good = df[df["separated"]]
    n = good["run_id"].nunique()
    if not n:
        rep.section(None, SWEEP, [Claim("well-trained networks end trivial", "b0 = 1, b1 = 0",
                                        "no network reached the separation threshold", None)])
        return
    good = good.assign(trivial=(good["b0"] == 1) & (good["b1"] + good["b2"].fillna(0) == 0))

    def share(rows: pd.DataFrame) -> float:
        return float(rows.groupby("run_id")["trivial"].all().mean())

    logits, hidden = good[good["last"]], good[good["layer"] == good["depth"]]
    means = hidden.groupby("class")[["b0", "b1"]].mean()
    start = good[good["layer"] == 0].groupby("class")[["b0", "b1"]].mean()
    pair = lambda m, c: f"({m.loc[c, 'b0']:.2f}, {m.loc[c, 'b1']:.2f})"
    ok = share(hidden) >= TRIVIAL_SHARE
    why = None if ok else (
        f"Why the last hidden layer disagrees: {share(logits):.0%} of the {n} separated "
        "networks are trivial at the logits, where the read-out's one line separates the "
        "classes, while after the last hidden layer the mean (b0, b1) is "
        + "; ".join(f"class {c}: {pair(means, c)} (input {pair(start, c)})"
                    for c in means.index)
        + ". Every network here is at training accuracy 1, as the paper's, so training is not "
        "the difference. The paper's claim is about its last cloud, the output layer (the "
        "authors' code measures `Identity`, the 2-unit layer before the softmax; ours is the "
        "1-unit logit), and there it agrees (the row above); after the last hidden layer is "
        "sweepnet's stricter test, which the paper does not make."
        + ("" if other is None or not len(other) else
           f" On the training points split by label (`--cloud train`), the same networks are "
           f"{_trivial_share(other):.0%} trivial after the last hidden layer, so the cloud is "
           "not the difference either.") + "\n")
    rep.section(None, SWEEP, [
        Claim("well-trained networks end with b0 = 1 and no higher Betti numbers (both "
              "classes): at the logits", f"b = (1, 0) for both classes (≥ {TRIVIAL_SHARE:.0%})",
              f"{n} separated networks: {share(logits):.0%} trivial (a 1-D logit has b1 = 0 "
              "by construction, so only b0 = 1 is informative)",
              share(logits) >= TRIVIAL_SHARE),
        Claim("... and after the last hidden layer",
              f"b = (1, 0) for both classes (≥ {TRIVIAL_SHARE:.0%})",
              f"{share(hidden):.0%} of the {n} trivial; mean (b0, b1) "
              + ", ".join(f"class {c}: {pair(means, c)}" for c in means.index), ok),
    ], [why])


def _trivial_share(df: pd.DataFrame) -> float:
    """Share of the separated networks of ``df`` with b = (1, 0) for every class after
    their last hidden layer."""
    last = df[df["separated"].astype(bool) & (df["layer"] == df["depth"])]
    ok = (last["b0"] == 1) & (last["b1"] + last["b2"].fillna(0) == 0)
    return float(ok.groupby(last["run_id"]).all().mean())


def _budget(runs: pd.DataFrame) -> str:
    """The training budget of ``runs``, e.g. '3000 full-batch adam steps'."""
    batch = set(runs["batch_size"].astype(int))
    kind = "full-batch " if batch == {0} else f"batch {'/'.join(map(str, sorted(batch)))} "
    return (f"{'/'.join(str(int(v)) for v in sorted(runs['steps'].unique()))} {kind}"
            f"{'/'.join(sorted(runs['optimizer'].unique()))} steps")


def claim_activations(rep: Report, df: pd.DataFrame, scales: dict | None = None,
                      other: pd.DataFrame | None = None,
                      variants: dict[str, pd.DataFrame] | None = None) -> None:
    w, d = int(df["width"].max()), int(df["depth"].max())
    deep_wide = df[(df["width"] == w) & (df["depth"] == d) & (df["class"] == 1)]
    at3 = deep_wide[deep_wide["layer"] == 3]
    means = at3.groupby("activation")["b0"].mean().to_dict()
    if not {"relu", LEAKY, "tanh"} <= set(means):
        rep.section(None, SWEEP, [Claim("ReLU reduces b0 faster than tanh", "", "not measured",
                                        None)])
        return
    order = sorted(PAPER_LAYER3, key=means.get)
    paper_order = means["relu"] < means[LEAKY] < means["tanh"]
    near = abs(means["relu"] - PAPER_LAYER3["relu"]) < RELU_NEAR
    ok3 = paper_order and near
    hidden = deep_wide[(deep_wide["layer"] >= 1) & (deep_wide["layer"] <= d)]
    over = hidden.groupby("activation")["b0"].mean().to_dict()
    piv = deep_wide.groupby(["activation", "layer"])["b0"].mean().unstack("layer")
    rep.section(f"Mean b0 of the disks (class 1) by layer, width {w}, depth {d}", SWEEP, [
        Claim(f"disks' mean b0 after layer 3 (width {w}, depth {d}): ReLU < leaky ReLU < tanh, "
              "near the paper's values", f"{_fmt(PAPER_LAYER3)} (ReLU within {RELU_NEAR})",
              f"{_fmt(means)} (order: {' <= '.join(order)}; {at3['run_id'].nunique()} "
              "networks)", ok3),
        Claim(f"ReLU reduces b0 faster than tanh (disks' b0 averaged over the {d} hidden "
              "layers)", "ReLU lowest, tanh highest, leaky ReLU between", _fmt(over),
              over["relu"] < over["tanh"] and over[LEAKY] < over["tanh"]),
    ], [
        piv.round(2).set_axis([f"L{int(c)}" for c in piv.columns], axis=1).reset_index(),
        None if ok3 else _why_layer3(df[df["width"] == w], piv, means, near, scales or {})
        + _measured_differences(df, other, variants or {}, w, d),
    ], level=3)


def _at3(df: pd.DataFrame | None, w: int, d: int) -> pd.DataFrame:
    """Mean, standard error and count of the disks' b0 after layer 3, per activation."""
    if df is None or not len(df):
        return pd.DataFrame(columns=["mean", "se", "n"])
    g = df[(df["width"] == w) & (df["depth"] == d) & (df["class"] == 1) & (df["layer"] == 3)]
    out = g.groupby("activation")["b0"].agg(["mean", "std", "count"])
    out["se"] = out["std"] / np.sqrt(out["count"])
    return out.rename(columns={"count": "n"})[["mean", "se", "n"]]


def _measured_differences(df: pd.DataFrame, other: pd.DataFrame | None,
                          variants: dict[str, pd.DataFrame], w: int, d: int) -> str:
    """What the measurements say about the gap to the paper's layer-3 values: the error
    bars, the training-point clouds, the grid's input, and each of ``variants`` (the
    measured tables of VARIANTS' folders)."""
    grid, train = _at3(df, w, d), _at3(other, w, d)
    fmt = lambda t: ", ".join(f"{a} {r['mean']:.2f} ± {r['se']:.2f} ({int(r['n'])})"  # noqa: E731
                              for a, r in t.iterrows())
    inp = df[(df["width"] == w) & (df["depth"] == d) & (df["class"] == 1) & (df["layer"] == 0)]
    joined = inp[inp["b0"] < 9]
    out = [f"Measured: after layer 3 (mean ± standard error, networks) on the grid "
           f"{fmt(grid)}."]
    if len(train):
        drop = (train["mean"] - grid["mean"]).dropna()
        out.append(f"The same networks on the training points split by label: {fmt(train)}; "
                   "the grid lowers them by " + ", ".join(f"{v:.2f} ({a})" for a, v in
                                                          drop.items()) + ".")
    if {LEAKY, "tanh"} <= set(grid.index):
        gap = abs(grid.loc[LEAKY, "mean"] - grid.loc["tanh", "mean"])
        bar = float(np.hypot(grid.loc[LEAKY, "se"], grid.loc["tanh", "se"]))
        out.append(f"Leaky ReLU and tanh are {gap:.2f} apart, "
                   + ("within" if gap < 2 * bar else "outside") + f" twice their combined "
                   f"standard error ({2 * bar:.2f}).")
    out.append(f"On the grid the input (layer 0) already has fewer than nine disk components "
               f"in {joined['run_id'].nunique()} of {inp['run_id'].nunique()} networks "
               f"({', '.join(sorted(joined['activation'].unique())) or 'none'}): their decision "
               "regions join disks through channels between the 1,000 training points of "
               "class 0 (the paper trained on 15,950 points).")
    for suffix, v in variants.items():
        if len(at := _at3(v, w, d)):
            out.append(f"{VARIANTS[suffix][0].upper()}{VARIANTS[suffix][1:]} "
                       f"(`results/naitzat-d1{suffix}`): {fmt(at)}.")
    return " ".join(out) + "\n"


def _why_layer3(runs_w: pd.DataFrame, piv: pd.DataFrame, means: dict, near: bool,
                scales: dict) -> str:
    """Why the layer-3 claim disagrees, from the table ``piv`` (activation x layer mean b0 of
    the disks at the widest width and deepest depth) and the runs of that width."""
    from sweepnet.sweep.models import ACTIVATIONS

    early = piv[[c for c in piv.columns if 1 <= c <= 3]]
    start, end = piv[0], piv[piv.columns.max()]
    # the first layer where an activation has made half of its drop in b0
    half = {a: next((int(c) for c in piv.columns if piv.loc[a, c] <= (start[a] + end[a]) / 2),
                    None) for a in piv.index}
    half_at = lambda a: "none" if half[a] is None else half[a]
    runs = runs_w.drop_duplicates("run_id")
    slope = -float(ACTIVATIONS["leaky_relu"](-1.0))
    gap = abs(means["relu"] - means[LEAKY])
    small = means.get("leaky_relu")
    out = [
        f"Why layer 3 disagrees: in layers 1-3 the disks' mean b0 stays between "
        f"{early.min().min():.2f} and {early.max().max():.2f} (input "
        f"{start.min():.2f}-{start.max():.2f}); half of the drop in b0 is made by layer "
        + ", ".join(f"{half_at(a)} ({a})" for a in sorted(half, key=lambda a: (half[a] is None,
                                                                                  half[a] or 0)))
        + (f"; ReLU's {means['relu']:.2f} after layer 3 is within {RELU_NEAR} of the paper's "
           f"{PAPER_LAYER3['relu']}" if near else
           f"; ReLU's {means['relu']:.2f} after layer 3 is not within {RELU_NEAR} of the "
           f"paper's {PAPER_LAYER3['relu']}") + ".",
        f"Our networks trained for {_budget(runs)}, seeds {_ints(runs['seed'])}, mean test "
        f"accuracy {runs['test_acc'].mean():.3f} at width {int(runs['width'].iloc[0])}; all "
        "at training accuracy 1, as the paper's.",
        f"The paper's leaky ReLU (slope 0.2, `{LEAKY}`) is {gap:.2f} from ReLU in mean b0 "
        "after layer 3" + ("" if small is None else f"; sweepnet's `leaky_relu` (slope "
                           f"{slope:g}) is at {small:.2f}") + ".",
    ]
    if scales:
        out.append("k and eps are ours too (" + "; ".join(
            f"{v['source']}: k = {v['k']}, eps = {v['eps']}" for v in scales.values()) + ").")
    return " ".join(out) + "\n"


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
        rep.section(None, SWEEP, [Claim("narrower reduce sooner", "", "one width only", None)])
        return
    tot = _relative_drop(df)
    # "sooner": the share of the total change already done halfway through the hidden layers
    mid = tot[(tot["layer"] == np.ceil(tot["depth"] / 2))]
    by = mid.groupby(["depth", "activation", "width"])["done"].mean().unstack("width")
    narrow, wide = int(by.columns.min()), int(by.columns.max())
    by.columns = [int(c) for c in by.columns]
    by = by.dropna(subset=[narrow, wide])  # cells with accepted networks at both widths
    wins = int((by[narrow] > by[wide]).sum())
    rep.section("Share of the total topology change done at the middle hidden layer", SWEEP, [
        Claim("narrower networks reduce topology sooner than wider ones",
              f"width {narrow} has done more of its change halfway than width {wide}",
              f"share of the change done at the middle hidden layer, width {narrow} vs {wide}: "
              f"{by[narrow].mean():.2f} vs {by[wide].mean():.2f}; narrower sooner in {wins} of "
              f"{len(by)} (depth, activation) cells", wins > len(by) / 2),
    ], [by.round(2).reset_index(), None if wins > len(by) / 2 else _why_width(tot, narrow, by)],
        level=3)


def _why_width(tot: pd.DataFrame, narrow: int, by: pd.DataFrame) -> str:
    """Why the width claim disagrees: how many accepted networks each cell rests on."""
    nets = tot.drop_duplicates("run_id")
    n = nets[nets["width"] == narrow].groupby(["depth", "activation"]).size()
    cells = "; ".join(f"depth {int(d)} {a}: {int(n.get((d, a), 0))}" for d, a in by.index)
    return (f"Why narrower does not measure sooner: only {int((nets['width'] == narrow).sum())} "
            f"networks of width {narrow} reached the acceptance, so the comparison rests on "
            f"{len(by)} cells of few narrow networks each ({cells}); the cells that lack an "
            "accepted narrow network are left out.\n")


def claim_depth(rep: Report, df: pd.DataFrame) -> None:
    if df["depth"].nunique() < 2:
        rep.section(None, SWEEP, [Claim("shallow change late", "", "one depth only", None)])
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
    by = by.dropna(subset=[shallow, deep])  # cells with accepted networks at both depths
    wins = int((by[shallow] > by[deep]).sum())
    rep.section("Share of the topology change made by the last hidden layer and the read-out",
                SWEEP, [
        Claim("shallow networks change topology mostly in their last layers; deep ones spread "
              "it", f"depth {int(shallow)}: most change in the last layers; depth "
              f"{int(deep)}: less", f"share of the change made by the last hidden layer and "
              f"the read-out: depth {int(shallow)} {by[shallow].mean():.2f}, depth {int(deep)} "
              f"{by[deep].mean():.2f}; shallow later in {wins} of {len(by)} (width, "
              "activation) cells", wins > len(by) / 2),
    ], [by.round(2).reset_index()], level=3)


def compare_clouds(rep: Report, results: str) -> None:
    """The same accepted networks measured on the paper's clouds (grid, split by prediction)
    and on sweepnet's default ones (training points, split by label): what the choice of
    cloud changes, per activation, at the widest width and deepest depth."""
    rows = []
    for how in (PROTOCOL, OURS):
        df = table(results, how)
        if not len(df):
            continue
        w, d = int(df["width"].max()), int(df["depth"].max())
        one = df[(df["width"] == w) & (df["depth"] == d)]
        disks = one[one["class"] == 1]
        for a, g in disks.groupby("activation"):
            nets = one[one["activation"] == a]
            last = nets[nets["layer"] == d]
            trivial = ((last["b0"] == 1) & (last["b1"] == 0)).groupby(last["run_id"]).all()
            rows.append({"cloud": f"{how[0]}, {how[1]}", "activation": a,
                         "networks": g["run_id"].nunique(),
                         "input b0 (disks)": g[g["layer"] == 0]["b0"].mean(),
                         "b0 after layer 3": g[g["layer"] == 3]["b0"].mean(),
                         "b0 over hidden layers": g[(g["layer"] >= 1) & (g["layer"] <= d)][
                             "b0"].mean(),
                         "trivial after last hidden": trivial.mean()})
    if len(rows) < 2:
        return
    tab = pd.DataFrame(rows).round(2)
    rep.section("The same networks on two clouds: the paper's grid and the training points",
                SWEEP, body=[
        "Mean Betti numbers of the disks (class 1) of the accepted networks at the widest "
        "width and deepest depth, measured twice: on the 88 x 88 grid split by the network's "
        "prediction (the paper's D-I protocol, the claims above) and on the training points "
        "split by their labels (sweepnet's default). The last column is the share of networks "
        "with b = (1, 0) for both classes after the last hidden layer.\n", tab], level=3)


def report(results: str, out: str, walls: dict[str, float]) -> str:
    from sweepnet.store import results as res
    from sweepnet.sweep import spec
    from sweepnet.views import charts

    df = table(results)
    rep = Report(out, "naitzat2020", predicts="paper says")
    scales = res.load_topology_scales(results)
    every = res.load(results)
    runs = df.drop_duplicates("run_id")
    threshold = spec.load(os.path.join(results, "spec.toml")).separation
    timed = [f"{k} {v:.0f} s" for k, v in walls.items() if np.isfinite(v)]
    accepted = (every.assign(ok=every["train_acc"] >= ACCEPT)
                .groupby(["width", "depth", "activation"])["ok"].agg(["sum", "size"]))
    rep.section(None, SWEEP, body=[
        "Betti numbers of each class at the input (layer 0), after every hidden layer and at "
        "the logits (layer depth + 1), measured by `sweepnet topology --cloud grid --split "
        "predicted` (the paper's D-I protocol: an 88 x 88 grid over the data's square, each "
        "class the grid points the network predicts as it, at most 1,000 a class, a fixed "
        "random subsample) with Naitzat et al.'s method: kNN graph, hop distance, "
        "Vietoris-Rips at one scale (ripser), at "
        + "; ".join(f"k = {v['k']}, eps = {v['eps']} ({v['source']})" for v in scales.values())
        + ". " + _input_check(table(results, OURS), scales).replace(
            "At the input", "On the training points (`--cloud train`), at the input") + "\n",
        f"Sweep `{', '.join(sorted(every['sweep'].unique()))}` at `{shown(results)}`, trained "
        f"as the paper ({_budget(every)}, the rate halved every 2,500 steps): {len(every)} "
        f"networks (widths {_ints(every['width'])}, depths {_ints(every['depth'])}, "
        f"{', '.join(sorted(every['activation'].unique()))}), of which {len(runs)} reached "
        f"training accuracy {'exactly 1' if ACCEPT >= 1 else f'≥ {ACCEPT:g}'} and are the "
        "only ones measured and counted here, as in the paper; "
        f"{int(runs['separated'].sum())} of them separated (test accuracy ≥ "
        f"{threshold:g}); their mean test accuracy {runs['test_acc'].mean():.3f}."
        + (f" Wall time here: {', '.join(timed)} ({os.cpu_count()} CPU cores)." if timed else "")
        + "\n",
    ])
    acc = (runs.groupby(["width", "depth", "activation"])["test_acc"].agg(["mean", "min"])
           .round(4).reset_index())
    acc = acc.merge(accepted.rename(columns={"sum": "accepted", "size": "trained"})
                    .reset_index(), on=["width", "depth", "activation"], how="right")
    rep.section(f"Accepted networks (training accuracy {'1' if ACCEPT >= 1 else f'≥ {ACCEPT:g}'})"
                " and their test accuracy", SWEEP,
                body=[acc], level=3)
    other = table(results, OURS)
    claim_trivial_end(rep, df, other)
    variants = {suffix: table(results.rstrip("/") + suffix) for suffix in VARIANTS
                if os.path.exists(res.topology_path(results.rstrip("/") + suffix))}
    claim_activations(rep, df, scales, other, variants)
    claim_width(rep, df)
    claim_depth(rep, df)
    compare_clouds(rep, results)
    rep.section(None, SWEEP, body=[
        Figure(charts.betti(df), "naitzat_betti",
               "Mean Betti numbers by layer, per activation (dashes: class), by depth"),
    ])
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
    ap.add_argument("--accept", type=float, default=1.0,
                    help="the training accuracy a network needs to count (default 1, the "
                    "paper's; lower only for tests and short budgets)")
    a = ap.parse_args(argv)
    global ACCEPT
    ACCEPT = a.accept
    walls = {}
    if not a.no_run:
        walls["training"] = run(a.results, a.set)
    walls["topology (grid)"] = measure(a.results, a.remeasure, *PROTOCOL)
    walls["topology (train)"] = measure(a.results, a.remeasure, *OURS)
    print(report(a.results, a.out, walls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
