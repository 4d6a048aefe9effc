"""`sweepnet bench --quick --json` runs in-process and prints well-formed output."""

import json
import math

import pytest

from sweepnet import bench, cli


def _positive(x):
    return isinstance(x, (int, float)) and math.isfinite(x) and x > 0


@pytest.mark.slow
def test_quick_bench_prints_well_formed_json(capsys):
    assert cli.main(["bench", "--quick", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["quick"] is True and result["steps"] > 0
    assert _positive(result["bound"]["matmul_flops_per_s"])
    assert _positive(result["bound"]["tanh_per_s"])
    (wl,) = result["workloads"]
    assert (wl["width"], wl["depth"]) == (3, 2)
    for base in ("loop", "scan"):
        assert _positive(wl[base]["net_steps_per_s"]) and wl[base]["compile_s"] >= 0
    assert [r["n"] for r in wl["sizes"]] == list(bench.QUICK["sizes"])
    for r in wl["sizes"]:
        for key in ("wall_s", "net_steps_per_s", "net_steps_per_s_e2e", "vs_loop", "vs_scan",
                    "bound_fraction", "maxrss_mb"):
            assert _positive(r[key]), key
        assert r["compiles"] == 1 and r["compile_s"] < r["wall_s"]
        assert r["net_steps_per_s_e2e"] <= r["net_steps_per_s"]
    dv = result["device_scaling"]
    assert dv["many_devices"] == 2 and _positive(dv["one"]) and _positive(dv["many"])
    assert result["gradient"] in ("fused", "xla")
    text = bench.format_table(result)
    assert "x loop" in text and "devices" in text and "training gradient" in text


def test_workload_arithmetic_counts_matmuls_and_tanh():
    ops = bench.workload_ops(3, 2, steps=10, eval_every=10, n_test=100, batch=512)
    # tanh: 2 layers x 3 units x 512 points x 10 steps, plus one eval on 512 + 100 points
    assert ops["tanh"] == 2 * 3 * 512 * 10 + 2 * 3 * 612
    macs = 2 * 3 + 3 * 3 + 3
    assert ops["flops"] > 10 * 512 * 6 * macs - 10 * 512 * 2 * 6
    bigger = bench.workload_ops(16, 4, steps=10, eval_every=10, n_test=100, batch=512)
    assert bigger["flops"] > 10 * ops["flops"]
    t = bench.min_seconds(ops, {"matmul_flops_per_s": 1e9, "tanh_per_s": 1e8})
    assert t == pytest.approx(ops["flops"] / 1e9 + ops["tanh"] / 1e8)


def test_baseline_worker_runs_plain_jax_and_keeps_the_best_run():
    # the full bench's baselines run in a fresh process with JAX's own CPU setup
    r = bench.baseline_subprocess("loop", 3, 2, steps=5, nets=1, n_test=256, repeats=2)
    assert _positive(r["net_steps_per_s"]) and r["compile_s"] >= 0
    env = bench._worker({"env": True}, plain=True)
    assert env["devices"] == 1 and "--xla_cpu_prefer_vector_width=256" in env["xla_flags"]


@pytest.mark.slow
def test_rerun_is_cold_then_loads_every_program(tmp_path):
    from conftest import TINY_SPEC

    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    r = bench.rerun(str(path))
    cold, warm = r["cold"], r["warm"]
    assert cold["networks"] == warm["networks"] == 8
    assert cold["compiles"] == warm["compiles"] == 1 and cold["loaded"] == 0  # one program
    assert warm["loaded"] == 1 and warm["compile_s"] < cold["compile_s"]
    assert r["warm_compile_share"] == pytest.approx(warm["compile_s"] / cold["compile_s"])
    assert "loaded from the program cache" in bench.format_rerun(r)


def test_the_bench_times_the_default_against_each_gradient_forced(monkeypatch):
    """The default (what `sweepnet run` picks) is timed beside both gradients forced, and the
    table says which won: a slow default cannot hide behind a fast variant."""
    seen = []

    def fake(width, depth, n, steps, every, n_test, devices=None, gradient=None):
        seen.append(gradient)
        wall = {"fused": 3.0, "xla": 2.0, None: 3.0}[gradient]  # the default took the kernel
        return {"wall_s": wall + 1.0, "compile_s": 1.0, "gradient": gradient or "fused"}

    monkeypatch.setattr(bench, "engine_subprocess", fake)
    rows = [{"n": 256, "gradient": "fused", "net_steps_per_s": 100.0}]
    g = bench._gradients(rows, 3, 2, steps=10, every=5, n_test=64, n=256)
    assert seen == ["fused", "xla"]  # the default's row is reused, not run again
    assert g["default"] == "fused" and g["won"] == "xla"
    assert g["xla"] == pytest.approx(256 * 10 / 2.0) and g["fused"] == pytest.approx(256 * 10 / 3)
    line = bench._gradient_line(g)
    assert "sweepnet run picks fused" in line and "XLA won (1.50x)" in line
    g = bench._gradients([], 3, 2, steps=10, every=5, n_test=64, n=512)  # no row: run it
    assert seen[2:] == [None, "fused", "xla"] and g["default_rate"] == pytest.approx(512 * 10 / 3)
