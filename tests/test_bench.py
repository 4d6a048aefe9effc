"""`sweepnet bench --quick --json` runs in-process and prints well-formed output."""

import importlib.util
import json
import math
import os

import pytest

# CI installs torch (.ci/run), so there the torch.func baseline is checked, never skipped
from sweepnet import cli
from sweepnet.bench import baselines, report, suite, workers, workloads

# CI installs torch (.ci/run), so there the torch.func baseline is checked, never skipped
HAS_TORCH = bool(os.environ.get("CI")) or importlib.util.find_spec("torch") is not None


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
    if HAS_TORCH:  # the comparison the docs quote: torch.func's rate and the engine's ratio to it
        assert _positive(wl["torch"]["net_steps_per_s"]) and _positive(wl["e2e_vs_torch"])
    assert [r["n"] for r in wl["sizes"]] == list(workloads.QUICK["sizes"])
    for r in wl["sizes"]:
        for key in ("wall_s", "net_steps_per_s", "net_steps_per_s_e2e", "vs_loop", "vs_scan",
                    "bound_fraction", "maxrss_mb"):
            assert _positive(r[key]), key
        assert r["compiles"] == 1 and r["compile_s"] < r["wall_s"]
        assert r["net_steps_per_s_e2e"] <= r["net_steps_per_s"]
    dv = result["device_scaling"]
    assert dv["many_devices"] == 2 and _positive(dv["one"]) and _positive(dv["many"])
    assert result["gradient"] in ("fused", "xla")
    text = report.format_table(result)
    assert "x loop" in text and "devices" in text and "training gradient" in text


def test_workload_arithmetic_counts_matmuls_and_tanh():
    ops = workloads.workload_ops(3, 2, steps=10, eval_every=10, n_test=100, batch=512)
    # tanh: 2 layers x 3 units x 512 points x 10 steps, plus one eval on 512 + 100 points
    assert ops["tanh"] == 2 * 3 * 512 * 10 + 2 * 3 * 612
    macs = 2 * 3 + 3 * 3 + 3
    assert ops["flops"] > 10 * 512 * 6 * macs - 10 * 512 * 2 * 6
    bigger = workloads.workload_ops(16, 4, steps=10, eval_every=10, n_test=100, batch=512)
    assert bigger["flops"] > 10 * ops["flops"]
    t = workloads.min_seconds(ops, {"matmul_flops_per_s": 1e9, "tanh_per_s": 1e8})
    assert t == pytest.approx(ops["flops"] / 1e9 + ops["tanh"] / 1e8)


@pytest.mark.slow  # a fresh process that imports JAX and compiles twice: 10-15 s
def test_baseline_worker_runs_plain_jax_and_keeps_the_best_run():
    # the full bench's baselines run in a fresh process with JAX's own CPU setup
    r = workers.baseline_subprocess("loop", 3, 2, steps=5, nets=1, n_test=256, repeats=2)
    assert _positive(r["net_steps_per_s"]) and r["compile_s"] >= 0
    env = workers.worker({"env": True}, plain=True)
    assert env["devices"] == 1 and "--xla_cpu_prefer_vector_width=256" in env["xla_flags"]


@pytest.mark.slow
def test_rerun_is_cold_then_loads_every_program(tmp_path):
    from conftest import TINY_SPEC

    path = tmp_path / "tiny.toml"
    # the tiny sweep at depth 1 (4 seeds: 8 networks still) with a smaller probe: its cold
    # compile takes two thirds of the time
    small = (TINY_SPEC.replace("depth = [1, 2]", "depth = 1").replace("seeds = 2", "seeds = 4")
             .replace("n_test = 256", "n_test = 64"))
    assert small.count("depth = 1") == small.count("seeds = 4") == small.count("n_test = 64") == 1
    path.write_text(small)
    r = workers.rerun(str(path))
    cold, warm = r["cold"], r["warm"]
    assert cold["networks"] == warm["networks"] == 8
    assert cold["compiles"] == warm["compiles"] == 1 and cold["loaded"] == 0  # one program
    assert warm["loaded"] == 1 and warm["compile_s"] < cold["compile_s"]
    assert r["warm_compile_share"] == pytest.approx(warm["compile_s"] / cold["compile_s"])
    assert "loaded from the program cache" in report.format_rerun(r)


def test_the_bench_times_the_default_against_each_gradient_forced(monkeypatch):
    """The default (what `sweepnet run` picks) is timed beside both gradients forced, and the
    table says which won: a slow default cannot hide behind a fast variant."""
    seen = []

    def fake(width, depth, n, steps, every, n_test, devices=None, gradient=None):
        seen.append(gradient)
        wall = {"fused": 3.0, "xla": 2.0, None: 3.0}[gradient]  # the default took the kernel
        return {"wall_s": wall + 1.0, "compile_s": 1.0, "gradient": gradient or "fused"}

    monkeypatch.setattr(suite, "engine_subprocess", fake)
    rows = [{"n": 256, "gradient": "fused", "net_steps_per_s": 100.0}]
    g = suite.forced_gradients(rows, 3, 2, steps=10, every=5, n_test=64, n=256)
    assert seen == ["fused", "xla"]  # the default's row is reused, not run again
    assert g["default"] == "fused" and g["won"] == "xla"
    assert g["xla"] == pytest.approx(256 * 10 / 2.0) and g["fused"] == pytest.approx(256 * 10 / 3)
    line = report.gradient_line(g)
    assert "sweepnet run picks fused" in line and "XLA won (1.50x)" in line
    g = suite.forced_gradients([], 3, 2, steps=10, every=5, n_test=64, n=512)  # no row: run it
    assert seen[2:] == [None, "fused", "xla"] and g["default_rate"] == pytest.approx(512 * 10 / 3)


def test_shapes_carry_their_own_sizes_and_bad_ones_are_named():
    assert workloads.parse_shapes("3x2,16x4@2048") == [(3, 2), (16, 4, (2048,))]
    assert workloads.parse_shapes("3x2@1024+16384") == [(3, 2, (1024, 16384))]
    for bad in ("3xq", "3x2@0", "16", "3x2@"):
        with pytest.raises(ValueError, match="bad shape"):
            workloads.parse_shapes(bad)
    assert cli.main(["bench", "--shapes", "3x2,4"]) == 2


def test_the_torch_func_ensemble_trains_each_network_on_its_own():
    """The PyTorch baseline (model ensembling with torch.func) trains every network of the
    ensemble with its own gradient and Adam: its losses equal networks trained one by one."""
    if not HAS_TORCH:
        pytest.skip("torch is not installed (the `bench` extra; CI installs it)")
    import torch
    r = baselines.baseline_torch(3, 2, steps=6, nets=4, n_test=64)
    assert _positive(r["net_steps_per_s"]) and r["nets"] == 4 and r["compile_s"] > 0
    import copy

    import numpy as np

    x, y = baselines.torch_data(64)
    torch.manual_seed(0)
    step, nets = baselines.torch_ensemble(3, 2, 3, x, y)
    # the bench's workload: tanh, two hidden layers of 3, one logit
    assert [type(m).__name__ for m in nets[0]] == ["Linear", "Tanh"] * 2 + ["Linear"]
    assert nets[0][2].weight.shape == (3, 3) and nets[0][4].weight.shape == (1, 3)
    alone = []
    for net in copy.deepcopy(nets):  # the same networks from the same start, one at a time
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(5):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(net(x)[:, 0], y)
            loss.backward()
            opt.step()
        alone.append(loss.item())
    for _ in range(5):
        losses = step()
    np.testing.assert_allclose(losses.detach().numpy(), alone, rtol=1e-5)


def test_the_table_reports_torch_func_or_says_it_is_missing():
    wl = {"width": 3, "depth": 2, "sizes": [], "spread": None, "ref_n": 16384,
          "loop": {"net_steps_per_s": 1e4}, "scan": {"net_steps_per_s": 2e4},
          "e2e_vs_loop": 60.0, "e2e_vs_scan": 20.0, "torch": None, "e2e_vs_torch": None}
    result = {"quick": False, "steps": 1000, "eval_every": 100, "batch": 512, "n_test": 8192,
              "backend": "cpu", "devices": 2, "cpus": 2, "jax": "0", "load_before": 0.0,
              "load_after": 0.0, "bound": {"matmul_flops_per_s": 1e11, "tanh_per_s": 1e9},
              "gradient": "fused", "workloads": [wl],
              "device_scaling": {"width": 3, "depth": 2, "n": 4096, "one": 1.0, "many": 2.0,
                                 "many_devices": 2, "speedup": 2.0}}
    assert "torch not installed" in report.format_table(result)
    wl.update(torch={"net_steps_per_s": 1.8e4, "compile_s": 7.0}, e2e_vs_torch=55.0)
    text = report.format_table(result)
    assert "torch.func ensemble 1.8e+04" in text and "55.0x torch.func" in text
