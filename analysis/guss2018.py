"""Reproduce Guss & Salakhutdinov (2018), "On characterizing the capacity of neural networks
using algebraic topology": how wide a network must be for data of given Betti numbers.

    python analysis/guss2018.py             # run (resume) sweeps/guss2018.toml into
                                            # results/guss2018, then write the report
    python analysis/guss2018.py --no-run    # report from existing results
    python analysis/guss2018.py --set train.seeds=4 ...   # a smaller or larger sweep

Writes analysis/out/guss2018.md and .html (figures in analysis/out/fig/). The data is
``balls``: class 1 is ``components`` disks (beta0), the first ``holes`` of them annuli around a
class-0 core (beta1). A configuration *separates* when more than half of its seeds reach the
spec's separation threshold on the test probe; its minimal width is the smallest tested width
that does (``sweepnet.views.minwidth.minwidth_table``, with the exact 95% interval of each
width's share). The claims:

1. the minimal separating width grows with beta0 (their figure 5 reads about 2 x beta0 for
   one hidden layer);
2. depth lowers the width needed (their conjecture: width >= C * beta0^(1/depth); the exponent
   fitted per depth by least squares on log minimal width against log beta0);
3. holes (beta1) need more depth than components: the depth at which most seeds separate
   (c, h) against (c + h, 0), at each width;
4. the narrow-network theorems (``theorems`` view) hold on every network they apply to.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import altair as alt
import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from claims import Claim, Figure, Report, if_any, shown  # noqa: E402  (analysis/ is scripts)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "analysis", "out")
SPEC = os.path.join(ROOT, "sweeps", "guss2018.toml")
SWEEP = "guss2018"  # the sweep every claim here is measured on
PAPER_SLOPE = 2.0  # their figure 5: minimal width about 2 x beta0 with one hidden layer
SLOPE_NEAR = 0.5  # "about 2": the fitted slope within this of PAPER_SLOPE
B0, B1 = "data_components", "data_holes"  # the runs' columns of the data's beta0 and beta1


def run(results: str, overrides: list[str]) -> float:
    from sweepnet.engine import run as engine
    from sweepnet.sweep import spec

    t = time.perf_counter()
    print(engine.run_sweep(spec.load(SPEC, overrides), results, progress=False), flush=True)
    return time.perf_counter() - t


# ----------------------------------------------------------------------------- tables


def minwidths(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (activation, depth, holes, components): ``minwidth`` (NaN where no tested
    width separates), ``minwidth_low``-``minwidth_high`` (the exact 95% interval's bounds on
    it), ``decided``, ``found``, ``max_width`` and ``n`` (networks)."""
    from sweepnet.views.minwidth import minwidth_table

    out = []
    for (depth, holes), g in runs.groupby(["depth", B1]):
        t, _ = minwidth_table(g, x=B0, column="activation")
        out.append(t.drop(columns=["_row"], errors="ignore").assign(depth=depth, holes=holes))
    t = pd.concat(out, ignore_index=True).rename(columns={B0: "components"})
    for c in ("depth", "holes", "components"):
        t[c] = t[c].astype(int)
    return t.sort_values(["activation", "depth", "holes", "components"], ignore_index=True)


def _w(v: float) -> str:
    return "none" if not np.isfinite(v) else str(int(v))


def _cell(r) -> str:
    """A minimal width with its 95% range where the seeds leave it undecided: '8', '6 (4-8)',
    'none', 'none (12-none)'."""
    w = _w(r.minwidth)
    if r.decided:
        return w
    return f"{w} ({_w(r.minwidth_low)}-{_w(r.minwidth_high)})"


def headline(mw: pd.DataFrame) -> pd.DataFrame:
    """Minimal width per (activation, depth) against beta0, data without holes."""
    t = mw[mw["holes"] == 0].assign(cell=lambda d: [_cell(r) for r in d.itertuples()])
    wide = t.pivot(index=["activation", "depth"], columns="components", values="cell")
    wide.columns = [f"β0 = {c}" for c in wide.columns]
    return wide.reset_index()


def _series(mw: pd.DataFrame, activation: str, depth: int) -> pd.DataFrame:
    return mw[(mw["holes"] == 0) & (mw["activation"] == activation) & (mw["depth"] == depth)]


def grows(s: pd.DataFrame) -> bool | str:
    """Whether a series (minimal width against beta0, sorted) grows: the largest beta0 needs
    more width than the smallest (none counts as wider than any tested width) and no step to a
    larger beta0 is a decided drop (both ends decided at 95%). ``"inconclusive"`` where no
    tested width separates at the smallest beta0 (nothing to grow from)."""
    if len(s) < 2 or not s["found"].iloc[0]:
        return "inconclusive"
    top = float(s["max_width"].max()) + 1
    w = s["minwidth"].fillna(top).to_numpy()
    dec = s["decided"].to_numpy()
    drops = [i for i in range(len(w) - 1) if w[i + 1] < w[i] and dec[i] and dec[i + 1]]
    return bool(w[-1] > w[0] and not drops)


def combine(oks) -> bool | str:
    """One verdict of several: False if any disagrees, else inconclusive if any is, else True."""
    oks = list(oks)
    if any(o is False for o in oks):
        return False
    return "inconclusive" if any(o == "inconclusive" for o in oks) else True


def fit(s: pd.DataFrame) -> dict:
    """Least squares of log minimal width on log beta0 over the points where a width was found:
    ``minwidth ~ C * beta0 ** k``. NaN where fewer than two distinct beta0 remain."""
    used = s[s["found"]]
    x, y = np.log(used["components"].to_numpy(float)), np.log(used["minwidth"].to_numpy(float))
    out = {"points": ", ".join(str(int(c)) for c in used["components"]),
           "left out (none ≤ widest)": ", ".join(str(int(c)) for c in s[~s["found"]]
                                                  ["components"]),
           "k": np.nan, "C": np.nan, "R²": np.nan}
    if len(np.unique(x)) < 2:
        return out
    k, c = np.polyfit(x, y, 1)
    resid = y - (k * x + c)
    ss = float(((y - y.mean()) ** 2).sum())
    out.update(k=round(float(k), 12) + 0.0, C=float(np.exp(c)),  # + 0.0: no "-0.00"
               **{"R²": 1 - float((resid**2).sum()) / ss if ss > 0 else 1.0})
    return out


def reach(runs: pd.DataFrame) -> pd.Series:
    """Whether each network's decision region has at least the data's topology: region_b0 >=
    components of class 1 and region_b1 >= holes (their "expressivity")."""
    return (runs["region_b0"] >= runs[B0]) & (runs["region_b1"] >= runs[B1])


# ----------------------------------------------------------------------------- claims


def claim_beta0(rep: Report, runs: pd.DataFrame, mw: pd.DataFrame) -> None:
    depths = sorted(mw["depth"].unique())
    acts = sorted(mw["activation"].unique())
    rows, claims = [], []
    for d in depths:
        ok = {a: grows(_series(mw, a, d)) for a in acts}
        claims.append(Claim(
            f"minimal separating width grows with β0 (holes 0), depth {d}",
            "more width for more components",
            "; ".join(f"{a}: " + ", ".join(f"β0 {int(r.components)} → {_cell(r)}"
                                           for r in _series(mw, a, d).itertuples())
                      for a in acts),
            if_any(len(mw), combine(ok.values()))))
        rows += [{"depth": d, "activation": a, "grows": ok[a]} for a in acts]
    # the slope through the origin at depth 1 (their figure 5), over the β0 a width was found
    one = mw[(mw["holes"] == 0) & (mw["depth"] == min(depths)) & mw["found"]]
    per = {}
    for a in acts:
        s = one[one["activation"] == a]
        b, w = s["components"].to_numpy(float), s["minwidth"].to_numpy(float)
        per[a] = (float((b * w).sum() / (b * b).sum()) if len(b) else np.nan, s)
    missing = mw[(mw["holes"] == 0) & (mw["depth"] == min(depths)) & ~mw["found"]]
    slopes = [v for v, _ in per.values() if np.isfinite(v)]
    near = bool(slopes) and all(abs(v - PAPER_SLOPE) <= SLOPE_NEAR for v in slopes)
    claims.append(Claim(
        f"one hidden layer: minimal width about {PAPER_SLOPE:g} × β0 (their figure 5)",
        f"least-squares slope of width on β0 through 0 within {SLOPE_NEAR} of {PAPER_SLOPE:g}",
        "; ".join(f"{a}: slope {v:.2f} over β0 = " + ", ".join(str(int(c)) for c in
                                                               s["components"])
                  if len(s) else f"{a}: no β0 separates" for a, (v, s) in per.items())
        + ("; no tested width separates at β0 = "
           + ", ".join(f"{int(r.components)} ({r.activation})" for r in missing.itertuples())
           if len(missing) else ""),
        near if slopes else None))
    rep.section(
        "Minimal width against β0", SWEEP, claims,
        [
            "The smallest tested width at which more than half of the seeds separate, on the "
            "data without holes (β1 = 0), for each depth. Where the seeds leave it undecided, "
            "the range in brackets runs from the smallest width whose share's exact 95% "
            "interval reaches above one half to the smallest whose interval lies wholly above "
            "it; *none*: no tested width.\n",
            headline(mw),
            Figure(chart_minwidth(mw), "guss_minwidth",
                   "Minimal separating width against β0 (holes 0), one line per depth; bars: "
                   "the 95% range where the seeds leave it undecided; dashes: 2 × β0"),
        ])


def claim_depth(rep: Report, mw: pd.DataFrame) -> None:
    depths = sorted(mw["depth"].unique())
    acts = sorted(mw["activation"].unique())
    fits = pd.DataFrame([{"activation": a, "depth": d, "1/depth": 1 / d,
                          **fit(_series(mw, a, d))} for a in acts for d in depths])
    lo, hi = min(depths), max(depths)
    # depth lowers the width needed: at each β0, the deepest against the shallowest
    flat = mw[mw["holes"] == 0]
    top = float(flat["max_width"].max()) + 1
    w = flat.assign(w=flat["minwidth"].fillna(top)).pivot(
        index=["activation", "components"], columns="depth", values="w")
    w = w[(w[hi] < top) | (w[lo] < top)]  # cells where some width separates at either depth
    lower, higher = int((w[hi] < w[lo]).sum()), int((w[hi] > w[lo]).sum())
    kf = fits.set_index(["activation", "depth"])["k"]
    falls = {a: kf.get((a, hi), np.nan) < kf.get((a, lo), np.nan) for a in acts}
    rep.section(
        "Depth and the exponent of β0", SWEEP,
        [
            Claim(f"depth lowers the width needed (depth {hi} against depth {lo}, holes 0)",
                  "less width at every β0 for the deeper networks",
                  f"depth {hi} needs less width in {lower}, more in {higher}, the same in "
                  f"{len(w) - lower - higher} of the {len(w)} (activation, β0) cells where "
                  "a tested width separates at either depth",
                  if_any(len(w), lower > 0 and higher == 0)),
            Claim("their conjecture width ≥ C·β0^(1/depth): the fitted exponent falls with "
                  "depth", f"k at depth {hi} below k at depth {lo} (1/depth: "
                  + ", ".join(f"{1 / d:.2f}" for d in depths) + ")",
                  "; ".join(f"{a}: k = " + ", ".join(
                      "–" if not np.isfinite(kf.get((a, d), np.nan)) else
                      f"{kf[(a, d)]:.2f}" for d in depths) + f" at depths "
                      f"{', '.join(map(str, depths))}" for a in acts),
                  if_any(int(fits["k"].notna().sum()), all(falls.values()))),
        ],
        [
            "Least squares of log(minimal width) on log(β0) for each activation and depth, "
            "minimal width ≈ C·β0^k, over the β0 (holes 0) where some tested width separates "
            "(`points`); β0 where none does are left out, so a fit over fewer points is "
            "flatter than the truth. β0 = 1 is a floor, not a capacity: a bounded class-1 "
            "region needs width ≥ 3 in the plane whatever β0 (every component of a width-2 "
            "network's region is unbounded).\n",
            fits.round(3),
        ])


def mindepth(runs: pd.DataFrame, majority: float = 0.5) -> pd.DataFrame:
    """Per (activation, width, components, holes): the smallest depth at which more than
    ``majority`` of the seeds separate (NaN where none does)."""
    keys = ["activation", "width", B0, B1]
    share = runs.groupby([*keys, "depth"])["separated"].mean().reset_index()
    first = share[share["separated"] > majority].groupby(keys)["depth"].min()
    return (share.groupby(keys)["depth"].max().rename("max_depth").to_frame()
            .join(first.rename("mindepth")).reset_index())


def claim_holes(rep: Report, runs: pd.DataFrame, mw: pd.DataFrame) -> None:
    comps = set(runs[B0].unique())
    pairs = sorted({(int(c), int(h)) for c, h in runs[[B0, B1]].drop_duplicates().to_numpy()
                    if h > 0 and (c + h) in comps})
    title = "Holes against components"
    if not pairs:
        rep.section(title, SWEEP, [Claim("holes need more depth than components", "",
                                         "no (c, h) with (c + h, 0) in the sweep", None)])
        return
    md = mindepth(runs)
    top = float(runs["depth"].max()) + 1
    rows = []
    for c, h in pairs:
        a = md[(md[B0] == c) & (md[B1] == h)].set_index(["activation", "width"])["mindepth"]
        b = md[(md[B0] == c + h) & (md[B1] == 0)].set_index(["activation", "width"])["mindepth"]
        both = pd.concat([a.rename("holes"), b.rename("comps")], axis=1).reset_index()
        both = both[both["holes"].notna() | both["comps"].notna()]  # one of them separates
        rows += [{"pair": f"({c}, {h}) vs ({c + h}, 0)", "activation": r.activation,
                  "width": int(r.width), "depth (c, h)": _w(r.holes),
                  "depth (c + h, 0)": _w(r.comps),
                  "diff": (r.holes if np.isfinite(r.holes) else top)
                  - (r.comps if np.isfinite(r.comps) else top)} for r in both.itertuples()]
    t = pd.DataFrame(rows)
    more, fewer = int((t["diff"] > 0).sum()) if len(t) else 0, int((t["diff"] < 0).sum()) \
        if len(t) else 0
    # the same comparison in width: minimal width of (c, h) less that of (c + h, 0), per depth
    wtop = float(mw["max_width"].max()) + 1
    key = mw.set_index(["activation", "depth", "components", "holes"])["minwidth"].fillna(wtop)
    pen = pd.DataFrame([{"activation": a, "depth": d, "pair": f"({c}, {h}) vs ({c + h}, 0)",
                         "width (c, h)": _w(key[(a, d, c, h)] if key[(a, d, c, h)] < wtop
                                            else np.nan),
                         "width (c + h, 0)": _w(key[(a, d, c + h, 0)]
                                                if key[(a, d, c + h, 0)] < wtop else np.nan)}
                        for a in sorted(mw["activation"].unique())
                        for d in sorted(mw["depth"].unique()) for c, h in pairs])
    wide = pen.assign(cell=pen["width (c, h)"] + " vs " + pen["width (c + h, 0)"]).pivot(
        index=["activation", "depth"], columns="pair", values="cell").reset_index()
    rep.section(
        title, SWEEP,
        [Claim("holes (β1) need more depth than components (β0)",
               "(c, h) needs more depth than (c + h, 0) at the same width",
               f"{len(t)} (pair, activation, width) cells where either separates at some "
               f"depth: (c, h) needs more depth in {more}, less in {fewer}, the same in "
               f"{len(t) - more - fewer}; pairs " + ", ".join(f"({c}, {h})" for c, h in pairs),
               if_any(len(t), more > fewer))],
        [
            "A hole turns one of c disks into an annulus; the comparison dataset has c + h "
            "disks instead, so both have c + h Betti numbers in class 1. At each width, the "
            "smallest depth at which more than half of the seeds separate (*none*: no tested "
            "depth); `diff` is the depth (c, h) needs less the depth (c + h, 0) needs (none "
            f"counts as depth {int(top)}).\n",
            t if len(t) else None,
            "The same pairs in minimal width, at each depth: minimal width of (c, h) vs of "
            "(c + h, 0).\n",
            wide,
        ])


def section_expressivity(rep: Report, runs: pd.DataFrame) -> None:
    r = runs.assign(reach=reach(runs))
    sep = r[r["separated"].astype(bool)]
    n_sep, n_reach = len(sep), int(sep["reach"].sum())
    short = sep[~sep["reach"]]
    why = None
    if len(short):
        b0 = int((short["region_b0"] < short[B0]).sum())
        b1 = int((short["region_b1"] < short[B1]).sum())
        why = (f"Why {len(short)} separated networks fall short: in {b0} the region has fewer "
               f"components than the disks (two disks joined by a class-1 bridge across the "
               f"gap between them), in {b1} fewer holes than the annuli (a core filled in); "
               f"their test accuracy is {short['test_acc'].min():.4f}-"
               f"{short['test_acc'].max():.4f}. A bridge or a filled core holds less of the "
               "test points than the threshold lets go wrong: the test probe passes a region "
               "of the wrong topology.\n")
    rep.section(
        "Expressivity: does the decision region reach the data's topology", SWEEP,
        [Claim("a network that separates has a decision region with the data's β0 and β1",
               "every separated network: region_b0 ≥ β0 and region_b1 ≥ β1 (64 × 64 grid)",
               f"{n_reach} of {n_sep} separated networks",
               if_any(n_sep, n_reach == n_sep))],
        [
            "Their *expressivity*: the share of networks whose decision region, measured by "
            "the engine on a 64 × 64 grid over the data's box (`region_b0`, `region_b1`), has "
            "at least as many components as class 1 and at least as many holes. Reaching it "
            "is necessary to separate, not sufficient (the pieces must also sit in the right "
            "places).\n",
            Figure(chart_reach(r), "guss_expressivity",
                   "Share of networks whose decision region reaches the data's β0 and β1, "
                   "against width, one line per depth (all hole counts pooled)"),
            why,
        ])


FINEST = 16  # the second look at what theorem_checks leaves unexplained: this many times finer


def finest(results: str, checks: pd.DataFrame) -> int:
    """Recompute the runs ``theorem_checks`` left ``unexplained`` on a grid ``FINEST`` times
    finer than the engine's; those that hold there get the cause ``resolution (16x)`` (a
    channel thinner than a 256th of the box: tanh and ReLU layers of width 2 make them).
    Returns how many were recomputed."""
    from sweepnet.measure.regions import HOLDS, region_table
    from sweepnet.store import results as res
    from sweepnet.train.regions import GRID

    left = checks[checks["cause"] == "unexplained"]
    if not len(left):
        return 0
    runs = res.load(results)
    fine = region_table(results, runs[runs["run_id"].isin(left["run_id"])], FINEST * GRID)
    for i, row in left.iterrows():
        if bool(HOLDS[row["theorem"]](fine.loc[[row["run_id"]]]).iloc[0]):
            checks.loc[i, "cause"] = f"resolution ({FINEST}x)"
    return len(left)


def section_theorems(rep: Report, results: str) -> None:
    from sweepnet.measure.regions import theorem_checks

    checks = theorem_checks(results)
    again = finest(results, checks)
    title = "The narrow-network theorems on this sweep"
    if not len(checks):
        rep.section(title, SWEEP, [Claim("narrow-network theorems hold", "",
                                         "no network they apply to", None)])
        return
    checks["cause"] = checks["cause"].fillna("")
    rows, claims = [], []
    for theorem, g in checks.groupby("theorem"):
        bad = g[~g["holds"]]
        causes = bad["cause"].value_counts().to_dict()
        unexplained = bad[bad["cause"].isin(["unexplained", "mismatch"])]
        rows.append({"theorem": theorem, "networks it applies to": len(g),
                     "widths": ", ".join(map(str, sorted(g["width"].unique()))),
                     "activations": ", ".join(sorted(g["activation"].unique())),
                     "violations on the 64-grid": len(bad),
                     "causes": ", ".join(f"{k} {v}" for k, v in sorted(causes.items())) or "–",
                     "unexplained run ids": ", ".join(unexplained["run_id"]) or "–"})
        claims.append(Claim(
            f"theorem `{theorem}` holds on every network it applies to",
            "0 violations not explained by the grid (resolution, box)",
            f"{len(bad)} violations on the 64-grid of {len(g)} networks"
            + (f" ({', '.join(f'{k} {v}' for k, v in sorted(causes.items()))})" if causes else "")
            + f"; {len(unexplained)} unexplained", len(unexplained) == 0))
    rep.section(title, SWEEP, claims, [
        "The `theorems` view of `sweepnet query` (docs/results.md): `unbounded` (every "
        "component of a decision region of a network no wider than its input is unbounded; "
        "Beise, Da Cruz & Schröder 2021, Johnson 2019) and `connected` (Nguyen, Mukkamala & "
        "Hein 2018). Each violation is recomputed by `sweepnet.measure.regions.theorem_checks`: "
        "on the engine's grid (`mismatch`: a bug), on a 4 times finer grid (`resolution`), on "
        "boxes up to 256 times wider (`box`); what survives is `unexplained`"
        + (f". The {again} it left unexplained were recomputed here on a grid {FINEST} times "
           f"finer (`resolution ({FINEST}x)` where the violation vanishes there)"
           if again else "") + ".\n",
        pd.DataFrame(rows),
    ])


# ----------------------------------------------------------------------------- charts


def chart_minwidth(mw: pd.DataFrame):
    t = mw[mw["holes"] == 0].copy()
    top = int(t["max_width"].max())
    t["y"] = t["minwidth"].where(t["found"])
    t["low"] = t["minwidth_low"].fillna(top + 2)
    t["high"] = t["minwidth_high"].fillna(top + 2)
    t["none"] = np.where(t["found"], np.nan, top + 2)
    depths = sorted(t["depth"].unique())
    # each depth a little to the side, so that equal widths at one β0 do not hide each other
    t["x"] = t["components"] + 0.08 * (t["depth"] - (depths[0] + depths[-1]) / 2)
    t["ref"] = (2 * t["components"]).where(2 * t["components"] <= top + 2)
    depth = alt.Color("depth:O", scale=alt.Scale(scheme="viridis"), title="depth")
    x = alt.X("x:Q", title="β0 (disks in class 1)",
              axis=alt.Axis(values=sorted(t["components"].unique()), format="d"))
    y_scale = alt.Scale(domain=[0, top + 3], nice=False)
    base = alt.Chart().encode(x=x)
    line = base.mark_line(point=True).encode(
        y=alt.Y("y:Q", title="minimal separating width", scale=y_scale), color=depth)
    bars = base.transform_filter("!datum.decided").mark_rule(opacity=0.5, strokeWidth=2).encode(
        y="low:Q", y2="high:Q", color=depth)
    none = base.transform_filter("!datum.found").mark_point(shape="triangle-up", size=80,
                                                            filled=True).encode(
        y=alt.Y("none:Q", scale=y_scale), color=depth)
    guide = alt.Chart().mark_line(strokeDash=[4, 4], color="grey").encode(
        x="components:Q", y=alt.Y("ref:Q", scale=y_scale))
    layer = alt.layer(guide, bars, line, none).properties(width=300, height=240)
    return layer.facet(column=alt.Column("activation:N", title=None), data=t).properties(
        title=alt.Title("Minimal separating width against β0 (no holes)",
                        subtitle=[f"triangles at {top + 2}: no tested width up to {top} "
                                  "separates; grey dashes: 2 × β0 (their figure 5, one "
                                  "hidden layer)"]))


def chart_reach(r: pd.DataFrame):
    t = (r.groupby(["activation", B0, "depth", "width"])["reach"].mean()
         .rename("share").reset_index())
    return (alt.Chart(t).mark_line(point=True).encode(
        x=alt.X("width:Q", title="width", axis=alt.Axis(values=sorted(t["width"].unique()))),
        y=alt.Y("share:Q", title="share reaching",
                scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("depth:O", scale=alt.Scale(scheme="viridis")),
    ).properties(width=150, height=130).facet(
        column=alt.Column(f"{B0}:O", title="β0 (components)"),
        row=alt.Row("activation:N", title=None),
    ).properties(title=alt.Title(
        "Expressivity: region_b0 ≥ β0 and region_b1 ≥ β1",
        subtitle=["share of networks (seeds and hole counts pooled) by width, per depth"])))


# ----------------------------------------------------------------------------- report


def _ints(col: pd.Series) -> str:
    return ", ".join(str(v) for v in sorted(int(v) for v in col.unique()))


def narrow_text(runs: pd.DataFrame, threshold: float) -> str:
    """What the networks of width <= 2 (which cannot separate bounded disks) did."""
    narrow = runs[runs["width"] <= 2]
    sep = narrow[narrow["separated"].astype(bool)]
    text = ("Widths 1 and 2 cannot separate these data: every component of a width-2 "
            "network's decision region in the plane is unbounded, and every disk is bounded. "
            f"{len(sep)} of {len(narrow)} networks of width ≤ 2 reach the threshold")
    if not len(sep):
        return text + ".\n"
    unbounded = int((sep["region_bounded"] == 0).sum())
    where = ", ".join(f"{k} at depth {d}" for d, k in sep.groupby("depth").size().items())
    acts = ", ".join(sorted(sep["activation"].unique()))
    return (text + f" ({where}; {acts}); "
            f"the decision region of {unbounded} of them has no bounded component "
            "(`region_bounded` = 0): it leaves each disk through a channel to the border that "
            f"holds less than {1 - threshold:.0%} of the test points. The threshold is a "
            "probe, not a proof, and a minimal width of 2 below would be such a channel.\n")


def report(results: str, out: str, walls: dict[str, float]) -> str:
    from sweepnet.store import results as res
    from sweepnet.sweep import spec

    runs = res.load(results)
    threshold = spec.load(os.path.join(results, "spec.toml")).separation
    mw = minwidths(runs)
    rep = Report(out, "guss2018", predicts="paper says")
    timed = [f"{k} {v:.0f} s" for k, v in walls.items() if np.isfinite(v) and v >= 1]
    try:  # the training time the sweep's manifest recorded when it ran
        with open(os.path.join(results, "manifest.json")) as f:
            seconds = sum(b.get("seconds", 0) for b in json.load(f).get("buckets", {}).values())
        timed.append(f"training recorded in the manifest {seconds:.0f} s")
    except OSError:
        pass
    datasets = runs[[B0, B1]].drop_duplicates()
    rep.section(None, SWEEP, body=[
        f"Sweep `{', '.join(sorted(runs['sweep'].unique()))}` at `{shown(results)}`: "
        f"{len(runs):,} networks on {len(datasets)} `balls` datasets (β0 = components "
        f"{_ints(runs[B0])}; β1 = holes {_ints(runs[B1])}, at most β0), widths "
        f"{_ints(runs['width'])}, depths {_ints(runs['depth'])}, "
        f"{', '.join(sorted(runs['activation'].unique()))}, {runs['seed'].nunique()} seeds; "
        f"{'/'.join(str(int(v)) for v in sorted(runs['steps'].unique()))} full-batch "
        f"{'/'.join(sorted(runs['optimizer'].unique()))} steps on "
        f"{_ints(runs['n_train'])} points. A network separates at test accuracy ≥ "
        f"{threshold:g} on {_ints(runs['n_test'])} fresh points: "
        f"{int(runs['separated'].sum()):,} do."
        + (f" Wall time here: {', '.join(timed)} ({os.cpu_count()} CPU cores)." if timed else "")
        + "\n",
        narrow_text(runs, threshold),
    ])
    claim_beta0(rep, runs, mw)
    claim_depth(rep, mw)
    claim_holes(rep, runs, mw)
    section_expressivity(rep, runs)
    section_theorems(rep, results)
    fitted = (runs.groupby(["activation", "depth"])[["train_acc", "test_acc"]].mean()
              .round(4).reset_index())
    rep.section("Training accuracy", SWEEP, body=[
        "Mean accuracy over every dataset, width and seed: a minimal width here is that of "
        "this budget (a longer one can only lower it).\n", fitted], level=3)
    rep.write("Guss & Salakhutdinov 2018: what sweepnet measures")
    return os.path.join(out, "guss2018.md")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-run", action="store_true", help="only read existing results")
    ap.add_argument("--results", default=os.path.join(ROOT, "results", "guss2018"))
    ap.add_argument("--out", default=OUT, help="report folder (default analysis/out/)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a key of sweeps/guss2018.toml (repeatable)")
    a = ap.parse_args(argv)
    walls = {}
    if not a.no_run:
        walls["training"] = run(a.results, a.set)
    print(report(a.results, a.out, walls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
