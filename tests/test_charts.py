"""Charts: aggregation is right, specs are valid, every kind renders, big sweeps stay small."""

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

import sweepnet
from sweepnet.core.errors import SweepnetError
from sweepnet.core.stats import share_interval
from sweepnet.sweep.data import DATASETS
from sweepnet.views import cells, charts


def _datasets(spec: dict) -> list[list[dict]]:
    """The inline tables of a chart spec (Altair moves them to the top-level ``datasets``)."""
    return list(spec.get("datasets", {}).values())


def _find(spec, key):
    """Every value of ``key`` anywhere in a nested spec."""
    if isinstance(spec, dict):
        for k, v in spec.items():
            if k == key:
                yield v
            yield from _find(v, key)
    elif isinstance(spec, list):
        for v in spec:
            yield from _find(v, key)


def synthetic_runs(
    n_configs_w=8, depths=(1, 2, 3, 4), acts=("tanh", "relu"), seeds=4, datasets=("disk_annulus",)
) -> pd.DataFrame:
    """A runs table shaped like the real one: width w separates on seed s iff w + s >= 4."""
    rows = []
    i = 0
    for ds in datasets:
        for act in acts:
            for d in depths:
                for w in range(1, n_configs_w + 1):
                    for s in range(seeds):
                        sep = w + s >= 4 + (act == "relu")
                        rows.append(
                            dict(
                                run_id=f"r{i:06d}",
                                sweep="syn",
                                grid_index=i,
                                dataset=ds,
                                data_inner=1 / 3,
                                n_train=64,
                                n_test=64,
                                noise=0.0,
                                data_seed=0,
                                arch="mlp",
                                width=w,
                                depth=d,
                                activation=act,
                                init_scale=1.0,
                                optimizer="adam",
                                learning_rate=0.01,
                                steps=100,
                                batch_size=0,
                                seed=s,
                                test_acc=1.0 if sep else 0.75,
                                train_loss=0.1,
                                separated=sep,
                                steps_to_fit=50 * (s + 1) if sep else None,
                                diverged=False,
                            )
                        )
                        i += 1
    df = pd.DataFrame(rows)
    df["steps_to_fit"] = df["steps_to_fit"].astype("Int64")
    return df


def test_swept_axes_finds_axes_but_not_seed():
    df = synthetic_runs(n_configs_w=2, depths=(1,), seeds=2)
    assert charts.swept_axes(df) == ["width", "activation"]
    assert charts.swept_axes(df, exclude=("width",)) == ["activation"]


def test_phase_table_shares_counts_and_medians():
    df = synthetic_runs(n_configs_w=4, depths=(1,), acts=("tanh",), seeds=4)
    t = charts.phase_table(df).set_index("width")
    # width w separates on seeds s >= 4 - w: shares 1/4, 2/4, 3/4, 4/4
    np.testing.assert_allclose(t["value"].to_numpy(), [0.25, 0.5, 0.75, 1.0])
    assert t["n"].tolist() == [4, 4, 4, 4]
    assert t["separated"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(t["test_acc"].to_numpy(), 0.75 + 0.25 * np.array([1, 2, 3, 4]) / 4)
    # separated seeds of width 1: seed 3 only (steps 200); width 4: seeds 0-3 → median 125
    assert t.loc[1, "steps_to_fit"] == 200 and t.loc[4, "steps_to_fit"] == 125


def test_phase_spec_scale_tooltip_and_labels(tiny_results):
    spec = charts.phase(sweepnet.load(tiny_results)).to_dict()
    (table,) = _datasets(spec)
    assert len(table) == 4  # widths 2-3 × depths 1-2, seeds aggregated
    assert {"n", "value", "test_acc", "steps_to_fit", "label"} <= set(table[0])
    colors = [c for c in _find(spec, "color") if isinstance(c, dict) and c.get("field") == "fill"]
    assert colors and colors[0]["scale"]["domain"] == [0, 1]
    assert colors[0]["title"] == "share of seeds separated"
    tips = {t.get("title", t.get("field")) for t in next(_find(spec, "tooltip"))}
    assert {"n (seeds)", "mean test_acc", "median steps_to_fit"} <= tips
    assert "text" in [m["type"] if isinstance(m, dict) else m for m in _find(spec, "mark")]
    # one activation only: no facet header, the value is in the subtitle instead
    assert "facet" not in spec and "activation tanh" in spec["title"]["subtitle"][0]


def test_phase_rows_facet_other_swept_axes_and_options():
    df = synthetic_runs(n_configs_w=3, depths=(1, 2), seeds=2, datasets=("moons", "xor"))
    spec = charts.phase(df).to_dict()
    assert spec["facet"]["row"]["title"] == "dataset"
    assert spec["facet"]["column"]["field"] == "activation"
    spec = charts.phase(
        df, x="depth", y="width", metric="test_acc", column="dataset", row="activation"
    ).to_dict()
    assert spec["facet"]["column"]["field"] == "dataset"
    assert spec["spec"]["layer"][0]["encoding"]["x"]["field"] == "depth"
    pooled = charts.phase(df, column="none", row="dataset").to_dict()
    assert pooled["title"]["subtitle"][0].endswith("pooled over activation")
    with pytest.raises(SweepnetError, match="--x 'nope'"):
        charts.phase(df, x="nope")
    with pytest.raises(SweepnetError, match="--metric 'dataset'"):
        charts.phase(df, metric="dataset")


def test_minwidth_table_finds_majority_width_and_marks_none():
    df = synthetic_runs(n_configs_w=3, depths=(1, 2), seeds=4)
    t, _ = charts.minwidth_table(df)
    t = t.set_index(["depth", "activation"])
    # tanh: width w has w of 4 seeds separated → > 50% first at width 3
    assert t.loc[(1, "tanh"), "minwidth"] == 3 and bool(t.loc[(1, "tanh"), "found"])
    # relu needs w + s >= 5: width 3 has 2 of 4 (not > 50%) → none up to 3
    assert not t.loc[(2, "relu"), "found"] and np.isnan(t.loc[(2, "relu"), "minwidth"])
    with pytest.raises(SweepnetError, match="--x width"):
        charts.minwidth_table(df, x="width")


def test_minwidth_against_a_data_parameter():
    df = synthetic_runs(n_configs_w=4, depths=(1,), acts=("tanh",), seeds=2)
    df = pd.concat([df.assign(data_dim=2), df.assign(data_dim=3, width=df["width"] + 1)])
    t, f = charts.minwidth_table(df, x="dim")
    assert f["x"] == "data_dim"
    # 2 seeds: width w separates on seeds s >= 4 - w, so > 50% first at width 4 (5 when shifted)
    assert t.set_index("data_dim")["minwidth"].to_dict() == {2: 4.0, 3: 5.0}
    charts.minwidth(df, x="dim").to_dict()


@pytest.mark.slow  # 7-10 s
def test_big_sweep_is_aggregated_before_charting(tmp_path):
    """4,096 runs with 31 eval points each chart without hitting Altair's row limit."""
    runs = synthetic_runs(
        n_configs_w=16, depths=tuple(range(1, 9)), acts=("tanh", "relu"), seeds=16
    )
    assert len(runs) == 4096
    steps = np.arange(0, 3100, 100)
    curves = pd.DataFrame(
        {
            "run_id": np.repeat(runs["run_id"].to_numpy(), len(steps)),
            "step": np.tile(steps, len(runs)),
            "train_loss": np.linspace(1, 0, len(runs) * len(steps), dtype=np.float32),
            "train_acc": 0.5,
            "test_acc": 0.5,
        }
    )
    assert len(curves) == 4096 * 31
    built = {
        "phase": charts.phase(runs),
        "minwidth": charts.minwidth(runs),
        "curves": charts.curves(runs, curves),
    }
    specs = {k: c.to_dict() for k, c in built.items()}
    rows = {k: sum(len(t) for t in _datasets(v)) for k, v in specs.items()}
    assert rows["phase"] == 16 * 8 * 2  # one row per cell
    assert rows["minwidth"] == 8 * 2
    # curves: width × depth × activation groups, 31 steps, 2 metrics; seeds aggregated
    assert rows["curves"] == 16 * 8 * 2 * 31 * 2
    for kind, chart in built.items():
        charts.save(chart, str(tmp_path / f"{kind}.png"))
        assert (tmp_path / f"{kind}.png").stat().st_size > 5000


def test_curves_quartiles_across_seeds(tiny_results):
    runs, curves = sweepnet.load(tiny_results), sweepnet.load_curves(tiny_results)
    agg, f = charts.curves_table(runs, curves)
    assert f["color"] == "width" and f["column"] == "depth" and f["row"] is None
    one = agg[(agg.width == 2) & (agg.depth == 1) & (agg.metric == "train_loss")]
    ids = runs[(runs.width == 2) & (runs.depth == 1)]["run_id"]
    raw = curves[curves.run_id.isin(ids)].groupby("step")["train_loss"]
    np.testing.assert_allclose(one["median"].to_numpy(), raw.median().to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(one["hi"].to_numpy(), raw.quantile(0.75).to_numpy(), rtol=1e-6)
    assert (one["n"] == 2).all()


def test_from_results_rejects_options_of_other_kinds(tiny_results):
    with pytest.raises(SweepnetError, match="--x is not an option of the curves chart"):
        charts.from_results(tiny_results, "curves", x="width")
    with pytest.raises(SweepnetError, match="--kind 'pie'"):
        charts.from_results(tiny_results, "pie")


@pytest.mark.parametrize("kind", charts.KINDS)
def test_every_kind_renders_to_png_and_offline_html(tiny_results, tmp_path, kind):
    chart = charts.from_results(tiny_results, kind)
    json.dumps(chart.to_dict())
    png, page = tmp_path / f"{kind}.png", tmp_path / f"{kind}.html"
    charts.save(chart, str(png))
    charts.save(chart, str(page))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    text = page.read_text()
    assert "vegaEmbed" in text and "<script src" not in text.replace(" ", "")
    assert len(text) > 300_000  # the Vega libraries are inlined, not fetched


def test_save_svg_and_unknown_extension(tiny_results, tmp_path):
    chart = charts.phase(sweepnet.load(tiny_results))
    charts.save(chart, str(tmp_path / "sub" / "p.svg"))
    assert (tmp_path / "sub" / "p.svg").read_text().lstrip().startswith("<svg")
    with pytest.raises(SweepnetError, match=r"p\.pdf"):
        charts.save(chart, str(tmp_path / "p.pdf"))


@pytest.mark.parametrize("name", [n for n in DATASETS if n != "file"])
def test_every_dataset_draws(name):
    spec = charts.dataset(name, n=64).to_dict()
    tables = _datasets(spec)
    dim = DATASETS[name].dim({k: p.default for k, p in DATASETS[name].params.items()})
    assert len(tables) == (3 if dim >= 3 else 1)  # 3-D: three pairwise projections
    assert all(len(t) == 64 for t in tables)


def test_dataset_from_a_file_and_errors(tmp_path):
    path = tmp_path / "pts.csv"
    pd.DataFrame(
        {"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0], "label": ["x", "y", "x", "y"]}
    ).to_csv(path, index=False)
    spec = charts.dataset("file", n=3, params={"path": str(path)}).to_dict()
    assert len(_datasets(spec)[0]) == 3
    for n in (4, 2000):  # as many points as the file holds, or all of them (titled so)
        spec = charts.dataset("file", n=n, params={"path": str(path)}).to_dict()
        assert len(_datasets(spec)[0]) == 4 and spec["title"]["text"] == "file: 4 points"
    with pytest.raises(SweepnetError, match="path"):
        charts.dataset("file")
    with pytest.raises(SweepnetError, match="unknown dataset 'nope'"):
        charts.dataset("nope")


def test_dataset_3d_renders(tmp_path):
    charts.save(charts.dataset("hopf_link", n=64), str(tmp_path / "h.png"))  # draw: as above
    assert (tmp_path / "h.png").stat().st_size > 5000


def test_phase_states_the_rule_and_accuracy_scale_starts_at_chance():
    df = synthetic_runs(n_configs_w=3, depths=(1, 2), seeds=2)
    spec = charts.phase(df, metric="test_acc", separation=0.99).to_dict()
    assert "separated: test accuracy >= 0.99" in " ".join(spec["title"]["subtitle"])
    colors = [c for c in _find(spec, "color") if isinstance(c, dict) and c.get("field") == "fill"]
    assert colors[0]["scale"]["domain"] == [0.5, 1] and colors[0]["scale"]["clamp"]
    three = charts.phase(df.assign(n_classes=3), metric="test_acc").to_dict()
    colors = [c for c in _find(three, "color") if isinstance(c, dict) and c.get("field") == "fill"]
    assert colors[0]["scale"]["domain"][0] == pytest.approx(1 / 3)


def test_phase_draws_pending_cells_grey_and_counts_them():
    df = synthetic_runs(n_configs_w=3, depths=(1, 2), acts=("tanh",), seeds=2)
    done, todo = df[df["depth"] == 1], df[df["depth"] == 2].drop(columns=["test_acc", "separated"])
    t = charts.phase_table(done, column=None, pending=todo).set_index(["width", "depth"])
    assert t.loc[(1, 2), "n"] == 0 and t.loc[(1, 2), "pending"] == 2
    assert t.loc[(1, 1), "n"] == 2 and t.loc[(1, 1), "pending"] == 0
    assert np.isnan(t.loc[(1, 2), "value"])
    spec = charts.phase(done, pending=todo).to_dict()
    assert spec["title"]["subtitle"][0].startswith("6 of 12 trained; grey cells: pending")
    (table,) = _datasets(spec)
    assert sum(r["label"] == "pending" for r in table) == 3
    assert charts.PENDING_GREY in json.dumps(spec)


def test_unfinished_folder_says_so_in_every_chart(tiny_results, tmp_path):
    import shutil

    root = tmp_path / "half"
    shutil.copytree(tiny_results, root)
    spec_text = (root / "spec.toml").read_text()
    (root / "spec.toml").write_text(spec_text.replace("seeds = 2", "seeds = 4"))
    assert charts.progress(str(root)) == (8, 16)
    assert len(charts.pending(str(root))) == 8
    phase = charts.from_results(str(root), "phase").to_dict()
    assert "8 of 16 trained" in phase["title"]["subtitle"][0]
    mw = charts.from_results(str(root), "minwidth").to_dict()
    assert "8 of 16 networks trained" in mw["title"]["subtitle"][0]
    done = charts.from_results(tiny_results, "minwidth").to_dict()
    assert "trained" not in " ".join(done["title"]["subtitle"])


def test_minwidth_at_the_narrowest_tested_width_reads_at_most():
    df = synthetic_runs(n_configs_w=8, depths=(1, 2), acts=("tanh",), seeds=4)
    df = df[df["width"] >= 4]  # width 4 already separates: the truth is "<= 4"
    spec = charts.minwidth(df).to_dict()
    y = next(e for e in _find(spec, "y") if isinstance(e, dict) and e.get("field") == "y")
    assert y["axis"]["values"] == [4, 5, 6, 7, 8, 9]  # tested widths and "none", no width 1
    assert "'<= 4'" in y["axis"]["labelExpr"]
    (table,) = _datasets(spec)
    assert {r["status"] for r in table} == {"at most width 4 (the narrowest tested)"}


def test_human_titles_and_distinct_curve_colours(tiny_results):
    df = synthetic_runs(n_configs_w=2, depths=(1,), acts=("tanh",), seeds=2)
    df = df.rename(columns={"data_inner": "data_turns"}).assign(
        data_turns=lambda d: d["width"] + 1.0
    )
    spec = charts.phase(df, y="turns").to_dict()
    y = next(e for e in _find(spec, "y") if isinstance(e, dict) and e.get("field") == "data_turns")
    assert y["title"] == "turns"
    c = charts.curves(sweepnet.load(tiny_results), sweepnet.load_curves(tiny_results)).to_dict()
    colors = [e for e in _find(c, "color") if isinstance(e, dict) and e.get("field") == "width"]
    assert colors[0]["scale"]["scheme"] == "tableau10"


def test_curves_row_none_pools_the_other_axes(tiny_results):
    runs = sweepnet.load(tiny_results).assign(activation=lambda d: np.where(d["seed"] == 0,
                                                                            "tanh", "relu"))
    curves = sweepnet.load_curves(tiny_results)
    _, f = charts.curves_table(runs, curves, column=None)
    assert f["row"] == "_row"  # activation varies: rows by default
    agg, f = charts.curves_table(runs, curves, column=None, row="none")
    assert f["row"] is None and set(agg["n"]) == {4}  # 2 depths x 2 seeds pooled per width
    spec = charts.curves(runs, curves, column=None, row="none").to_dict()
    assert spec["title"]["subtitle"].endswith("pooled over depth, activation")


def test_sql_tables_equal_the_pandas_tables(tiny_results):
    """`sweepnet chart` aggregates in DuckDB (views/cells.py); its tables are those the
    builders make from the runs table in pandas."""
    runs, curves = sweepnet.load(tiny_results), sweepnet.load_curves(tiny_results)
    con = cells.connect(tiny_results)
    configs = cells.configurations(con)
    assert len(configs) == 4 and configs["n"].eq(2).all()  # one row a configuration
    sql = charts.phase_cells(con, configs, column=None)
    ref = charts.phase_table(runs, column=None)
    for c in ("width", "depth", "n", "separated", "value", "test_acc", "steps_to_fit"):
        np.testing.assert_allclose(sql[c].astype("float64"), ref[c].astype("float64"))
    lo, hi = share_interval(ref["separated"], ref["n"])
    np.testing.assert_allclose(sql["sep_lo"], lo) and np.testing.assert_allclose(sql["sep_hi"], hi)
    got = charts.curves_cells(con, configs)
    want, _ = charts.curves_table(runs, curves)
    assert len(got) == len(want)
    for c in ("median", "lo", "hi", "mean", "n"):
        np.testing.assert_allclose(got[c].astype("float64"), want[c].astype("float64"),
                                   rtol=1e-6)
    weighted, _ = charts.minwidth_table(configs, weight="n")
    plain, _ = charts.minwidth_table(runs)
    pd.testing.assert_frame_equal(weighted, plain)


def test_phase_cells_fill_the_page_and_say_none_where_no_seed_fit():
    df = synthetic_runs(n_configs_w=4, depths=(1, 2), acts=("tanh",), seeds=4)
    df.loc[df["width"] == 1, "steps_to_fit"] = pd.NA  # no seed of width 1 fit
    spec = charts.phase(df).to_dict()
    (table,) = _datasets(spec)
    fit = {(r["width"], r["depth"]): r["fit"] for r in table}
    assert fit[(1, 1)] == "none" and fit[(4, 1)] == "125"
    tips = {t.get("title"): t for t in next(_find(spec, "tooltip"))}
    assert tips["median steps_to_fit"]["field"] == "fit"  # text: "none", never NaN
    # 4 cells across the page: wide cells (were 36 px), and as many facets still fit
    assert spec["width"]["step"] >= 100
    wide = charts.phase(synthetic_runs(n_configs_w=16, depths=(1,), seeds=1)).to_dict()
    assert 16 * 2 * wide["spec"]["width"]["step"] <= 1350


def test_curve_quantiles_of_large_groups_come_from_a_histogram_within_a_bin():
    """Past EXACT_MAX seeds a group, the curves' quartiles are counted in bins (memory bounded
    by the grid, not the seeds): within a bin's width of the exact ones."""
    rng = np.random.default_rng(1)
    n = 3000
    runs = pd.DataFrame({"run_id": [f"r{i}" for i in range(n)], "width": rng.integers(2, 4, n)})
    steps = np.array([0, 10])
    curves = pd.DataFrame({"run_id": np.repeat(runs["run_id"], 2), "step": np.tile(steps, n),
                           "train_loss": rng.lognormal(size=2 * n)})
    curves.loc[5, "train_loss"] = np.nan  # a diverged network: left out, as pandas does
    con = duckdb.connect()
    con.register("runs", runs)
    con.register("curves", curves)
    got = cells.curve_quantiles(con, ["width"], ["train_loss"], [0, 10], exact_max=100)
    exact = cells.curve_quantiles(con, ["width"], ["train_loss"], [0, 10], exact_max=10**6)
    merged = curves.merge(runs, on="run_id").groupby(["width", "step"])["train_loss"]
    np.testing.assert_allclose(exact["median"], merged.median().to_numpy(), rtol=1e-9)
    width = (curves["train_loss"].max() - curves["train_loss"].min()) / cells.BINS
    for c in ("median", "lo", "hi"):
        assert np.abs(got[c] - exact[c]).max() <= 2 * width
        assert not np.allclose(got[c], exact[c], rtol=1e-12, atol=0)  # binned, not exact
    pd.testing.assert_series_equal(got["n"], exact["n"])


def test_minwidth_gives_an_interval_where_the_seeds_leave_it_undecided():
    """Width 1: 0 of 16 seeds; width 2: 7 of 16 (the interval 0.20-0.70 holds one half);
    width 3: 16 of 16. The estimate is 3, and width 2 cannot be ruled out: 2-3, undecided.
    Where width 2 has 0 of 16 too, the answer 3 is decided."""
    rows = []
    for depth, hits in ((1, (0, 7, 16)), (2, (0, 0, 16))):
        for w, k in zip((1, 2, 3), hits, strict=True):
            rows += [dict(width=w, depth=depth, activation="tanh", seed=s, separated=s < k)
                     for s in range(16)]
    t, _ = charts.minwidth_table(pd.DataFrame(rows), column=None)
    t = t.set_index("depth")
    assert t.loc[1, ["minwidth", "minwidth_low", "minwidth_high"]].tolist() == [3, 2, 3]
    assert not t.loc[1, "decided"]
    assert t.loc[2, ["minwidth", "minwidth_low", "minwidth_high"]].tolist() == [3, 3, 3]
    assert t.loc[2, "decided"]
    chart = charts.minwidth(pd.DataFrame(rows), column=None).to_dict()
    assert "2-3 at 95%" in json.dumps(chart)  # the undecided row's tooltip and bar


def test_phase_marks_the_cells_its_seeds_leave_undecided(tiny_results):
    """Two seeds a cell decide nothing at 95% (0 of 2: 0-0.84; 2 of 2: 0.16-1): every cell
    is outlined dashed, and the subtitle says what the outline means."""
    spec = charts.from_results(tiny_results, "phase").to_dict()
    text = json.dumps(spec)
    assert "dashed: undecided" in text and '"strokeDash": [3, 2]' in text
    rows = [r for v in spec["datasets"].values() for r in v if "undecided" in r]
    assert rows and all(r["undecided"] for r in rows if r["n"] > 0)
