"""The disk-in-an-annulus sections of the Olah 2014 report (analysis/olah2014.py): width 2
never separates the disk and width 3 does, the certificate against brute force, the "easy way
out" of the best width-2 networks, and ResNet blocks at the input width."""

from __future__ import annotations

import altair as alt
import pandas as pd

from claims import Claim, Figure, Report, if_any, shown
from olah2014_measure import (
    N_FRESH,
    N_FRESH_RESNET,
    POLAR,
    brute_force,
    load,
    polar_grid_wrong,
    share,
    witness,
)


def section_disk(rep: Report, full: bool) -> None:
    from sweepnet.views import charts

    runs, root = load("olah-disk", full)
    title, sweep = "Disk in an annulus (Olah 2014)", "olah-disk"
    if runs is None:
        rep.section(title, sweep, [Claim.missing("disk: width 2 never certified")])
        return
    w2, w3 = runs[runs["width"] == 2], runs[runs["width"] == 3]
    per = (
        runs[runs["width"].isin([2, 3])]
        .groupby(["width", "activation"])
        .agg(
            n=("seed", "size"),
            max_test_acc=("test_acc", "max"),
            separated=("separated", "mean"),
            certified=("certified", "mean"),
            median_max_grad=("max_grad", "median"),
        )
        .reset_index()
    )
    n_cert2 = int(w2["certified"].sum())
    s3 = share(w3, "certified")
    worst_act = per[per["width"] == 3].sort_values("certified").iloc[0]
    # the certificate against brute force: certified ones should have no wrong fresh point
    sample = runs[runs["certified"].astype(bool)].groupby("width").head(3)
    suspects = w2.sort_values("test_acc", ascending=False).head(3)
    bf = brute_force(root, pd.concat([sample, suspects], ignore_index=True))
    cert_bf, w2_bf = [b for b in bf if b["certified"]], [b for b in bf if b["width"] == 2]
    wit = pd.DataFrame(
        [
            {
                "depth": int(r["depth"]),
                "activation": r["activation"],
                "test_acc": float(r["test_acc"]),
                **witness(root, r),
            }
            for _, r in suspects.iterrows()
        ]
    )
    bad = [b for b in bf if b["certified"] and b["wrong"]]
    n_cert_bf = sum(b["certified"] for b in bf)
    rep.section(
        title,
        sweep,
        [
            Claim(
                "disk: no width-2 network certified, any depth/activation",
                "0 certified (decision regions unbounded, Johnson 2019)",
                f"{n_cert2}/{len(w2)} certified; best width-2 random-probe acc "
                f"{w2['test_acc'].max():.4f}; separated (test acc 1) "
                f"{int(w2['separated'].sum())}",
                if_any(len(w2), n_cert2 == 0),
            ),
            Claim(
                "disk: width 3 certified for most seeds",
                "> 50% of seeds",
                f"{s3:.2f} of {len(w3)} (lowest activation: {worst_act['activation']} "
                f"{worst_act['certified']:.2f})",
                if_any(len(w3), s3 > 0.5),
            ),
            Claim(
                "certificate vs brute force (disk)",
                f"certified ⇒ 0 wrong of {N_FRESH:,} fresh points",
                f"{len(bad)} of {n_cert_bf} certified nets had a wrong point",
                if_any(n_cert_bf, not bad),
            ),
        ],
        [
            f"Results: `{shown(root)}` ({len(runs)} networks; grid "
            f"widths {sorted(map(int, runs['width'].unique()))}, "
            f"depths {sorted(map(int, runs['depth'].unique()))}, "
            f"{runs['seed'].nunique()} seeds).\n",
            Figure(
                charts.phase(runs, metric="certified"),
                "disk_certified",
                "Share of seeds certified (structured probe + refinement), width × depth.",
            ),
            Figure(
                charts.phase(runs, metric="separated"),
                "disk_separated",
                "Share of seeds with random-probe test accuracy 1.",
            ),
            per,
            f"Brute-force check, {N_FRESH:,} fresh points per network uniform in the class "
            "regions (theory: a certified network gets every one right; no width-2 network "
            "can):\n",
            pd.DataFrame(bf)[
                ["width", "depth", "activation", "test_acc", "certified", "wrong", "n"]
            ],
            f"Measured: {sum(b['wrong'] > 0 for b in cert_bf)} of {len(cert_bf)} certified "
            f"networks misclassify a fresh point; {sum(b['wrong'] > 0 for b in w2_bf)} of "
            f"{len(w2_bf)} width-2 networks do"
            + (f" (fewest wrong: {min(b['wrong'] for b in w2_bf)})" if w2_bf else "")
            + ".\n",
            "The certificate's witnesses for the best width-2 networks: the worst point it "
            "found, and the same point's margin from a plain forward pass (negative = a real "
            "misclassified point of the class region):\n",
            wit,
            f"{int((wit['recheck'] < 0).sum())} of {len(wit)} witnesses re-check negative "
            "(real misclassified points).\n"
            if len(wit)
            else None,
        ],
    )
    section_separated_not_certified(rep, runs, root)
    section_easy_way_out(rep, runs, root)


def section_separated_not_certified(rep: Report, runs: pd.DataFrame, root: str) -> None:
    """The networks that pass the random probe but are not certified (nothing where there are
    none): their witnesses and brute force, under the disk's heading."""
    caught = runs[runs["separated"].astype(bool) & ~runs["certified"].astype(bool)]
    if not len(caught):
        return
    rows = []
    for (_, r), b in zip(caught.iterrows(), brute_force(root, caught), strict=True):
        rows.append(
            {
                "width": int(r["width"]),
                "depth": int(r["depth"]),
                "activation": r["activation"],
                "seed": int(r["seed"]),
                "worst_margin": float(r["worst_margin"]),
                **witness(root, r),
                "fresh wrong": b["wrong"],
            }
        )
    t = pd.DataFrame(rows)
    body = [
        f"**{len(caught)} networks pass the random probe (test accuracy 1) but are not "
        "certified.** Their witnesses, re-checked by a forward pass, and brute force on "
        f"{N_FRESH:,} fresh points:\n",
        t,
        f"{int((t['recheck'] < 0).sum())} of {len(t)} witnesses re-check "
        f"negative; {int((t['fresh wrong'] > 0).sum())} of {len(t)} networks "
        "misclassify a fresh point.\n",
    ]
    rep.section(None, "olah-disk", body=body)


def section_easy_way_out(rep: Report, runs, root: str) -> None:
    from sweepnet.views import network as inspect_lib

    ok = runs[~runs["diverged"]]
    w2 = ok[ok["width"] == 2].sort_values("test_acc", ascending=False)
    w3 = ok[(ok["width"] == 3) & ok["certified"].astype(bool)]
    top2 = w2.head(max(5, len(w2) // 10))
    g2, g3 = top2["max_grad"].median(), w3["max_grad"].median()
    chart = (
        alt.Chart(ok[ok["width"].isin([2, 3])])
        .mark_circle(opacity=0.6)
        .encode(
            x=alt.X("test_acc:Q", scale=alt.Scale(zero=False)),
            y=alt.Y("max_grad:Q", scale=alt.Scale(type="log")),
            color=alt.Color("width:N"),
            shape=alt.Shape("activation:N"),
            tooltip=["run_id", "depth", "activation", "test_acc", "max_grad", "worst_margin"],
        )
    )
    pictures = []
    if len(w2) and len(w3):
        same = w3[
            (w3["activation"] == w2.iloc[0]["activation"]) & (w3["depth"] == w2.iloc[0]["depth"])
        ]
        pick3 = (same if len(same) else w3).sort_values("worst_margin").iloc[-1]
        for tag, row in (("width2_easy_way_out", w2.iloc[0]), ("width3_clean", pick3)):
            pictures.append(
                Figure(
                    inspect_lib.inspect(root, row["run_id"]),
                    f"disk_{tag}",
                    f"{tag.replace('_', ' ')}: {row['activation']}, depth {row['depth']}, "
                    f"test_acc {row['test_acc']:.4f}, worst_margin {row['worst_margin']:.3g}, "
                    f"certified {bool(row['certified'])}, max_grad {row['max_grad']:.3g}",
                )
            )
    rep.section(
        "The easy way out",
        "olah-disk",
        [
            Claim(
                "easy way out: best width-2 nets have larger max_grad than width-3",
                "width 2 stretches a thin channel: larger gradient",
                f"median {g2:.3g} (best width 2) vs {g3:.3g} (certified width 3)",
                if_any(len(top2) * len(w3), bool(g2 > g3)),
            )
        ],
        [
            f"Best width-2 networks (top {len(top2)} by test accuracy, acc ≥ "
            f"{top2['test_acc'].min():.4f}): median max_grad **{g2:.3g}**; certified width-3 "
            f"networks ({len(w3)}): median max_grad **{g3:.3g}**.\n",
            Figure(
                chart.properties(width=420, height=300, title="max input-gradient vs accuracy"),
                "disk_max_grad",
                "max_grad against random-probe accuracy, widths 2 and 3.",
            ),
            *pictures,
        ],
        level=3,
    )


def section_resnet(rep: Report) -> None:
    runs, root = load("resnet-disk")
    title, sweep = "ResNet blocks on the disk", "resnet-disk"
    if runs is None:
        rep.section(title, sweep, [Claim.missing("resnet")])
        return
    from sweepnet.measure import network as measured
    from sweepnet.sweep import data as data_lib
    from sweepnet.views import charts
    from sweepnet.views import network as inspect_lib

    t = (
        runs.groupby(["arch", "width"])
        .agg(
            n=("seed", "size"),
            max_test_acc=("test_acc", "max"),
            separated=("separated", "mean"),
            certified=("certified", "mean"),
            median_max_grad=("max_grad", "median"),
        )
        .reset_index()
    )
    r2 = runs[(runs["arch"] == "resnet") & (runs["width"] == 2)]
    r3 = runs[(runs["arch"] == "resnet") & (runs["width"] == 3)]
    m2 = runs[(runs["arch"] == "mlp") & (runs["width"] == 2)]
    good2 = r2[r2["certified"].astype(bool)]
    width2 = []  # the body parts on the certified width-2 ResNets, where there are any
    if len(good2):
        rows = []
        sample = good2.sort_values("worst_margin").head(4)
        bf = brute_force(root, sample, N_FRESH_RESNET)
        for (_, r), b in zip(sample.iterrows(), bf, strict=True):
            rows.append(
                {
                    "depth": int(r["depth"]),
                    "seed": int(r["seed"]),
                    "test_acc": float(r["test_acc"]),
                    "worst_margin": float(r["worst_margin"]),
                    "fresh wrong": b["wrong"],
                    "n": b["n"],
                    **witness(root, r),
                }
            )
        shallow = good2.sort_values(["depth", "worst_margin"]).iloc[0]
        grid_wrong, grid_n = polar_grid_wrong(root, shallow, *POLAR)
        w = witness(root, shallow)
        fresh_wrong = sum(b["wrong"] for b in bf)
        clean = fresh_wrong == 0 and grid_wrong == 0
        p = {**data_lib.default_params(shallow["dataset"]), **measured.data_params(shallow)}
        inner, gap = float(p["inner"]), float(p["gap"])
        best = good2.sort_values("worst_margin").iloc[-1]
        width2 = [
            f"**{len(good2)} of {len(r2)} width-2 ResNets are certified** (depths "
            f"{', '.join(str(int(d)) for d in sorted(good2['depth'].unique()))}), against "
            f"{int(m2['certified'].sum())} of {len(m2)} width-2 MLPs. Brute force "
            f"({N_FRESH_RESNET:,} fresh points each, {len(sample)} of them, below) finds "
            f"{fresh_wrong} wrong points, and a polar grid of {POLAR[0]:,} angles × "
            f"{POLAR[1]} radii over both class regions ({grid_n:,} points) finds {grid_wrong} "
            f"for the shallowest one (depth {int(shallow['depth'])})"
            + (
                ": the certificate is not failing here."
                if clean
                else ": **the certificate missed wrong points.**"
            )
            + " Why it is possible: a plain width-2 MLP's decision regions are unbounded "
            "(Johnson 2019); at depth 1 its logit is u1 act(w1.x+b1) + u2 act(w2.x+b2), two "
            "monotone ridges. The residual block adds the skip path, so a depth-1 ResNet's "
            "logit is U.x + a1 act(w1.x+b1) + a2 act(w2.x+b2): two soft steps and a linear "
            "term, which can bound a (rounded) triangle around the disk. An equilateral "
            f"triangle around the disk (inradius {inner:.3g}) has circumradius "
            f"{2 * inner:.3g}, "
            + (
                "reaching (to 0.001)"
                if abs(2 * inner - gap) < 1e-3
                else ("inside" if 2 * inner < gap else "beyond")
            )
            + f" the annulus's inner circle at {gap:.3g}. The depth-{int(shallow['depth'])} "
            f"network's witness (its worst point) sits at |x| = {w['|x|']:.3f} with margin "
            f"{w['witness margin']:.3g}. The Neural-ODE argument (a flow is a homeomorphism) "
            "covers the continuous limit, not discrete blocks.\n",
            pd.DataFrame(rows),
            Figure(
                inspect_lib.inspect(root, best["run_id"]),
                "resnet_width2",
                f"A certified width-2 ResNet (depth {best['depth']}, worst_margin "
                f"{best['worst_margin']:.3g}): its layer pictures.",
            ),
        ]
    rep.section(
        title,
        sweep,
        [
            Claim(
                "ResNet at the input width (2) on the disk",
                "0 certified in the Neural-ODE limit (a flow is a homeomorphism, Dupont 2019); "
                "a discrete block h + V act(Wh + b) can fold, so no theorem forbids it here",
                f"{int(r2['certified'].sum())}/{len(r2)} certified, "
                f"{int(r2['separated'].sum())} separated; best test_acc "
                f"{r2['test_acc'].max():.4f}",
                "info",
            ),
            Claim(
                "augmented ResNet (state width 3) certifies the disk",
                "most seeds",
                f"{share(r3, 'certified'):.2f} of {len(r3)}",
                if_any(len(r3), share(r3, "certified") > 0.5),
            ),
        ],
        [
            Figure(
                charts.phase(runs, metric="certified", column="arch"),
                "resnet_certified",
                "Share certified, width × depth, "
                + " vs ".join(sorted(runs["arch"].unique()))
                + f" ({', '.join(sorted(runs['activation'].unique()))}).",
            ),
            t,
            *width2,
        ],
    )
