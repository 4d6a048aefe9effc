"""analysis/olah2014.py, the published-claims report, run for real on a tiny sweep."""

import importlib.util
import os

import pytest

from sweepnet import engine, spec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _load_script():
    path = os.path.join(ROOT, "analysis", "olah2014.py")
    mod_spec = importlib.util.spec_from_file_location("olah2014", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_report_on_a_tiny_olah_1d_sweep(tmp_path):
    results, out = tmp_path / "results", tmp_path / "out"
    tiny = spec.load(os.path.join(ROOT, "sweeps", "olah-1d.toml"),
                     ["train.steps=60", "train.eval_every=30", "train.seeds=2",
                      "data.n_train=64", "data.n_test=512"])
    engine.run_sweep(tiny, str(results / "olah-1d"), progress=False)

    script = _load_script()
    assert script.main(["--no-run", "--results", str(results), "--out", str(out)]) == 0
    md = (out / "olah2014.md").read_text()
    assert (out / "olah2014.html").exists()
    rows = [line for line in md.splitlines() if line.startswith("| ")]
    one_d = [r for r in rows if "olah-1d" in r and "75%" in r]
    # a theorem, so it holds for any training budget: width 1 never beats 75% on the dense grid
    assert one_d and one_d[0].rstrip(" |").endswith("agrees"), one_d
    # sweeps that were not run are reported as missing, not as verdicts
    assert any("olah-link" in r and "no results" in r for r in rows)
