"""The sections of the Olah 2014 report (analysis/olah2014.py) on shapes beyond the disk: the
minimal width against dimension (nested spheres), the Hopf link against unlinked rings, and two
spirals against their turns."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from claims import Claim, Figure, Report, if_any
from olah2014_measure import N_FRESH, brute_force, load, ring_gap, share, witness, worst_probe_point


def section_minwidth(rep: Report) -> None:
    from sweepnet.views import charts

    runs, root = load("minwidth-dims")
    title, sweep = "Minimal width against dimension (nested spheres)", "minwidth-dims"
    if runs is None:
        rep.section(title, sweep, [Claim.missing("minimal width d+1")])
        return
    rows = []
    for (dim, act), g in runs.groupby(["data_dim", "activation"]):
        by_w = g.groupby("width")[["certified", "separated"]].mean()
        any_w = by_w.index[by_w["certified"].astype(float) > 0]
        most_w = by_w.index[by_w["certified"].astype(float) > 0.5]
        narrow = g[g["width"] <= dim]
        rows.append(
            {
                "dim": dim,
                "activation": act,
                "predicted": dim + 1,
                "min width, any seed certified": int(any_w.min()) if len(any_w) else None,
                "min width, most seeds certified": int(most_w.min()) if len(most_w) else None,
                "certified with width ≤ dim": int(narrow["certified"].sum()),
                "nets with width ≤ dim": len(narrow),
                "best test_acc at width ≤ dim": float(narrow["test_acc"].max()),
            }
        )
    t = pd.DataFrame(rows)
    never_narrow = int(t["certified with width ≤ dim"].sum())
    n_narrow = int(t["nets with width ≤ dim"].sum())
    first = pd.to_numeric(t["min width, any seed certified"], errors="coerce")
    hits = first == t["predicted"]
    misses = t[~hits]
    # a miss below d+1 would contradict the bound; above it (or none) is a training shortfall
    below = misses[first[~hits] < misses["predicted"]]
    dims = lambda f: ", ".join(str(int(d)) for d in sorted(f["dim"].unique()))
    most = t["min width, most seeds certified"] == t["predicted"]
    rep.section(
        title,
        sweep,
        [
            Claim(
                "nested_spheres: no network of width ≤ d is certified (dim "
                f"{int(t['dim'].min())}-{int(t['dim'].max())})",
                "0 (every decision region unbounded: Johnson 2019, Beise et al. 2021)",
                f"{never_narrow} of {n_narrow}",
                if_any(n_narrow, never_narrow == 0),
            ),
            Claim(
                "nested_spheres: minimal width is d+1 (dim "
                f"{int(t['dim'].min())}-{int(t['dim'].max())})",
                "smallest width with a certified network = d+1 (Hanin-Sellke for ReLU)",
                f"{int(hits.sum())}/{len(t)} (dim, activation) cells at d+1: "
                + ", ".join(f"d={r.dim} {r.activation}: {_w(r._4)}" for r in t.itertuples())
                + (
                    ""
                    if not len(misses)
                    else f"; in the {len(misses)} missed cells (dim {dims(misses)}) the "
                    "smallest certified width is "
                    + (
                        "above d+1 or none, never below it"
                        if not len(below)
                        else f"below d+1 in {len(below)} (dim {dims(below)})"
                    )
                ),
                bool(hits.all()) and never_narrow == 0,
            ),
            Claim(
                "(training) most seeds certified already at width d+1",
                "not a theorem; reported for honesty",
                f"{int(most.sum())}/{len(t)} cells: "
                + ", ".join(f"d={r.dim} {r.activation}: {_w(r._5)}" for r in t.itertuples()),
                bool(most.all()),
            ),
        ],
        [
            Figure(
                charts.minwidth(runs, x="data_dim", metric="certified"),
                "minwidth_certified",
                "Smallest width with most seeds certified, against dim.",
            ),
            Figure(
                charts.phase(runs, x="width", y="data_dim", metric="certified"),
                "minwidth_phase",
                "Share certified, width × dim.",
            ),
            t,
            "The theorems are about what a width *can* do: width ≤ d can never separate, width "
            "d+1 can. So the verdict reads the smallest width with any certified seed; the "
            "smallest width where most seeds get there is a statement about training (steps, "
            "initialisation) and is shown as its own row.\n",
        ],
    )
    more, more_root = load("minwidth-dims-more")
    if more is not None:
        section_minwidth_more(rep, runs, more, more_root, misses, never_narrow, n_narrow)


def section_minwidth_more(
    rep: Report, runs, more, more_root: str, misses, never_narrow: int, n_narrow: int
) -> None:
    """The follow-up sweep (more data and steps): what changed, and where the witnesses sit."""
    from sweepnet.measure import network as measured
    from sweepnet.sweep import data as data_lib

    vals = lambda df, c: "/".join(str(v) for v in sorted(df[c].unique()))
    dims_more = sorted(int(d) for d in more["data_dim"].unique())
    base = runs[runs["data_dim"].isin(dims_more)]
    keys = ["data_dim", "activation", "width"]
    body = [
        f"Follow-up for dim {', '.join(map(str, dims_more))} (`minwidth-dims-more`: "
        f"{vals(more, 'n_train')} training points instead of {vals(base, 'n_train')}, "
        f"{vals(more, 'steps')} steps instead of {vals(base, 'steps')}, widths "
        f"{', '.join(str(int(w)) for w in sorted(more['width'].unique()))}, "
        f"{more['seed'].nunique()} seeds):\n",
        more.groupby(keys)
        .agg(
            n=("seed", "size"),
            mean_test_acc=("test_acc", "mean"),
            separated=("separated", "mean"),
            certified=("certified", "mean"),
        )
        .reset_index(),
    ]
    p = {**data_lib.default_params("nested_spheres"), **measured.data_params(more.iloc[0])}
    gap, outer = float(p["gap"]), float(p["outer"])
    caught = more[more["separated"].astype(bool) & ~more["certified"].astype(bool)]
    if len(caught):
        rows = []
        for (_, r), b in zip(caught.iterrows(), brute_force(more_root, caught), strict=True):
            rows.append(
                {
                    "dim": int(r["data_dim"]),
                    "activation": r["activation"],
                    "width": int(r["width"]),
                    "seed": int(r["seed"]),
                    **{k: v for k, v in witness(more_root, r).items() if k != "point"},
                    "fresh wrong": b["wrong"],
                }
            )
        wit = pd.DataFrame(rows)
        on_inner = int(((wit["|x|"] - gap).abs() < 1e-3 * outer).sum())
        body += [
            f"{len(caught)} of these pass the random probe but are not certified. "
            "Their witnesses (re-checked by a forward pass; `|x|` shows where: "
            f"{float(p['inner']):.3g} = surface of the ball, {gap:.3g} = inner "
            f"surface of the shell) and brute force with {N_FRESH:,} fresh points:\n",
            wit,
            f"{on_inner} of {len(wit)} witnesses sit on the inner surface of the shell "
            f"(|x| = {gap:.3g}); {int((wit['fresh wrong'] > 0).sum())} of {len(wit)} are "
            "confirmed by a fresh point.\n",
        ]
    # uniform by volume, the shell's points crowd outwards as d grows: the share of the shell
    # within a tenth of its thickness of its inner surface
    near_d = (outer - gap) / 10
    near = {
        int(d): ((gap + near_d) ** d - gap**d) / (outer**d - gap**d)
        for d in sorted(runs["data_dim"].unique())
    }
    body.append(
        "Points uniform by volume (the training set and the random test probe) crowd "
        f"towards the outer surface as the dimension grows: the share of the shell within "
        f"{near_d:.3g} of its inner surface is "
        + ", ".join(f"d={d}: {v:.3f}" for d, v in near.items())
        + ".\n"
    )
    share_of = lambda df: df.groupby(keys)["certified"].mean().astype(float)
    both = pd.concat([share_of(base), share_of(more)], axis=1, keys=["before", "after"]).dropna()
    rose = both[both["after"] > both["before"]]
    if len(both):
        top = (rose if len(rose) else both).assign(d=lambda f: f["after"] - f["before"])
        k = top["d"].idxmax()
        body.append(
            "More data and steps raise the certified share in "
            f"{len(rose)} of {len(both)} (dim, activation, width) cells run in both sweeps "
            f"({'largest' if len(rose) else 'none rose; e.g.'}: dim {k[0]}, {k[1]}, width "
            f"{k[2]}: {top.loc[k, 'before']:.2f} → {top.loc[k, 'after']:.2f}).\n"
        )
    n_more_narrow = int(more[more["width"] <= more["data_dim"]]["certified"].sum())
    if never_narrow + n_more_narrow == 0:
        body.append(
            f"No network of width ≤ d was certified ({n_narrow} in `minwidth-dims`), so the "
            "d+1 bound is not contradicted"
            + (
                f"; the {len(misses)} missed cells are a training budget, not topology"
                if len(misses) and len(rose)
                else ""
            )
            + ".\n"
        )
    else:
        body.append(
            f"**{never_narrow + n_more_narrow} networks of width ≤ d are certified**: either "
            "the bound or the certificate is wrong for them.\n"
        )
    rep.section(None, "minwidth-dims-more", body=body)


def _w(v) -> str:
    """A width from a nullable column: an int, or 'none' where no width got there."""
    return "none" if v is None or v != v else str(int(v))


def section_link(rep: Report) -> None:
    runs, root = load("olah-link")
    title, sweep = "Hopf link against unlinked rings", "olah-link"
    if runs is None:
        rep.section(title, sweep, [Claim.missing("Hopf link width 3")])
        return
    from sweepnet.views import charts

    acts = ", ".join(sorted(runs["activation"].unique()))
    t = (
        runs.groupby(["dataset", "width"])
        .agg(
            n=("seed", "size"),
            max_test_acc=("test_acc", "max"),
            separated=("separated", "mean"),
            certified=("certified", "mean"),
        )
        .reset_index()
    )
    h = runs[runs["dataset"] == "hopf_link"]
    u = runs[runs["dataset"] == "unlinked_rings"]
    h3, h4 = h[h["width"] == 3], h[h["width"] >= 4]
    u3 = u[u["width"] == 3]
    rep.section(
        title,
        sweep,
        [
            Claim(
                "Hopf link: width 3 never separates "
                f"({', '.join(sorted(h3['activation'].unique()))})",
                "0 (linking is kept by homeomorphisms)",
                f"width 3: separated {int(h3['separated'].sum())}/{len(h3)}, certified "
                f"{int(h3['certified'].sum())}",
                if_any(
                    len(h3), int(h3["separated"].sum()) == 0 and int(h3["certified"].sum()) == 0
                ),
            ),
            Claim(
                "Hopf link: width ≥ 4 does",
                "some seeds certified",
                f"width ≥ 4 certified {share(h4, 'certified'):.2f} of {len(h4)}",
                if_any(len(h4), share(h4, "certified") > 0),
            ),
            Claim(
                "unlinked rings separate at width 3",
                "possible (a plane separates them): some seeds certified",
                f"certified {share(u3, 'certified'):.2f} of {len(u3)}; separated (random probe) "
                f"{share(u3, 'separated'):.2f}",
                if_any(len(u3), share(u3, "certified") > 0),
            ),
            Claim(
                "(training) unlinked rings: most width-3 seeds certified",
                "not a theorem; reported for honesty",
                f"{share(u3, 'certified'):.2f}",
                if_any(len(u3), share(u3, "certified") > 0.5),
            ),
        ],
        [
            Figure(
                charts.phase(runs, metric="certified", column="dataset"),
                "link_certified",
                f"Share certified, width × depth, per dataset ({acts}).",
            ),
            t,
        ],
    )
    fails = u[(u["width"] >= 3) & ~u["certified"].astype(bool)]
    if len(fails):
        section_link_fails(rep, root, u, fails.head(6))


def section_link_fails(rep: Report, root: str, u, fails) -> None:
    """Why unlinked rings are often separated on random points but not certified."""
    bf = brute_force(root, fails)
    for b, (_, row) in zip(bf, fails.iterrows(), strict=True):
        b.update(worst_probe_point(root, row))
    t = pd.DataFrame(bf)
    closest, tube, gap = ring_gap(fails.iloc[0])
    surface = t["depth into region"] < 0.05  # within 5% of the tube radius of its surface
    perfect = int((t["test_acc"] >= 1).sum())
    deep = (
        u[u["width"] >= 3]
        .groupby("depth")
        .agg(certified=("certified", "mean"), worst_margin=("worst_margin", "median"))
    )
    by_depth = deep["certified"].astype(float)
    rising = bool((np.diff(by_depth.to_numpy()) >= 0).all()) and bool(
        by_depth.iloc[-1] > by_depth.iloc[0]
    )
    columns = [
        "width",
        "depth",
        "test_acc",
        "certified",
        "wrong",
        "n",
        "probe worst margin",
        "class",
        "depth into region",
        "distance to other region",
    ]
    rep.section(
        None,
        "olah-link",
        body=[
            f"Why unlinked rings are often not certified: their core circles come within "
            f"{closest:.3g} of each other, so with tube {tube:.3g} the class regions are only "
            f"{gap:.3g} apart. Of the {len(t)} uncertified width ≥ 3 networks checked here, "
            f"{int((t['probe worst margin'] < 0).sum())} misclassify a structured-probe point; "
            f"{int(surface.sum())} of the worst points sit on the tube surface, at "
            f"{t['distance to other region'].min():.3g}-{t['distance to other region'].max():.3g} "
            f"from the other class's region. Fresh uniform points land on a wrong point "
            f"{int(t['wrong'].sum())} times in {int(t['n'].sum()):,}:\n",
            t[columns],
            f"{perfect} of these {len(t)} networks classify every random test point right, yet are "
            "not certified. Unlinked rings, width ≥ 3, share certified by depth: "
            + ", ".join(f"{int(d)}: {v:.2f}" for d, v in by_depth.items())
            + "; median worst_margin by depth: "
            + ", ".join(f"{int(d)}: {v:.3g}" for d, v in deep["worst_margin"].items())
            + (
                " (deeper nets are certified more often)."
                if rising
                else " (the certified share does not grow with depth)."
            )
            + (
                " Some width-3 networks are certified, so width 3 is enough for the topology; "
                "the others fall short on margin."
                if u[(u["width"] == 3)]["certified"].astype(bool).any()
                else ""
            )
            + "\n",
        ],
    )


def section_spirals(rep: Report) -> None:
    runs, root = load("olah-spirals")
    title, sweep = "Two spirals against turns", "olah-spirals"
    if runs is None:
        rep.section(title, sweep, [Claim.missing("spirals")])
        return
    t = (
        runs.groupby(["width", "depth", "data_turns"])
        .agg(n=("seed", "size"), separated=("separated", "mean"), acc=("test_acc", "mean"))
        .reset_index()
    )
    chart = (
        alt.Chart(t)
        .mark_line(point=True)
        .encode(
            x=alt.X("data_turns:Q", title="turns"),
            y=alt.Y("separated:Q", title="share separated", scale=alt.Scale(domain=[0, 1])),
            color=alt.Color("depth:O"),
            column=alt.Column("width:O"),
        )
    )
    w2 = t[t["width"] == 2]
    by_turn = w2.groupby("data_turns")["separated"].max()
    gentle = float(by_turn.iloc[0]) if len(by_turn) else float("nan")
    falls = bool((np.diff(by_turn.to_numpy()) <= 1e-9).all())
    rep.section(
        title,
        sweep,
        [
            Claim(
                "spirals: width 2 with depth solves a gentle spiral for some seeds",
                "> 0 seeds at the gentlest turns",
                f"best share at turns={by_turn.index[0] if len(by_turn) else '-'}: {gentle:.2f}",
                if_any(len(w2), gentle > 0),
            ),
            Claim(
                "spirals: success falls as turns grow (width 2)",
                "non-increasing in turns",
                "best share by turns: " + ", ".join(f"{k:g}: {v:.2f}" for k, v in by_turn.items()),
                if_any(len(by_turn) > 1, falls),
            ),
        ],
        [
            Figure(
                chart.properties(width=200, height=160),
                "spirals",
                "Share of seeds separated against turns (no known topology: test accuracy 1).",
            ),
            w2,
        ],
    )
