"""A CLI that teaches itself: description, --version, help and examples, did-you-mean, blame,
one rule for default output paths, and queries and charts over several folders."""

import json
import os
import shutil
import subprocess
import sys

import pytest
import tomllib

import sweepnet
from conftest import TINY_SPEC, sweepnet_command
from sweepnet.cli import main, parser
from sweepnet.store import results
from sweepnet.views import charts


def _commands():
    p = parser()
    (sub,) = [a for a in p._actions if a.dest == "command"]
    return p, sub.choices


def test_version_and_a_real_description(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"sweepnet {sweepnet.__version__}"
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    assert "phase diagram" in text and "examples:" in text
    assert "Parses arguments" not in text  # the module docstring is not the description
    assert "writes into that folder" in text  # the rule for default outputs


# calls the console script's entry point (pyproject's [project.scripts]) with ARGV[1:], then
# prints whether JAX was imported
ENTRY = """import importlib, sys
module, name = sys.argv[1].split(":")
try:
    getattr(importlib.import_module(module), name)(sys.argv[2:])
except SystemExit as e:
    assert e.code == 0, e.code
print("jax" in sys.modules)
"""


def test_version_and_help_import_no_jax():
    """`sweepnet --version` answers without importing JAX (0.1 s, not 1.5 s), both as the
    console script and as `python -m sweepnet`; `--help` too."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        entry = tomllib.load(f)["project"]["scripts"]["sweepnet"]
    for args in (["--version"], ["--help"], ["run", "--help"]):
        proc = subprocess.run([sys.executable, "-c", ENTRY, entry, *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert proc.stdout.splitlines()[-1] == "False", args
    proc = subprocess.run([sys.executable, "-X", "importtime", *sweepnet_command("--version")[1:]],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout == f"sweepnet {sweepnet.__version__}\n"
    imported = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines()]
    assert "sweepnet.cli" in imported
    assert not [m for m in imported if m.split(".")[0] in ("jax", "jaxlib")]


def test_every_command_and_option_has_help_and_an_example():
    p, commands = _commands()
    assert set(commands) >= {"run", "plan", "query", "chart", "datasets", "inspect", "report",
                             "bench", "devices"}
    for name, sub in commands.items():
        assert sub.description and sub.epilog.startswith("examples:"), name
        assert f"sweepnet {name}" in sub.epilog, name
        for action in sub._actions:
            assert action.help, (name, action.dest)
        sub.format_help()  # every help string formats
    assert all(a.help for a in p._actions)


def _error(argv, capsys):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("sweepnet: error: "), err
    return err


@pytest.mark.parametrize("override, words", [
    ("model.widht=3", ["--set model.widht: unknown key", "did you mean 'width'?"]),
    ("modle.width=3", ["--set modle", "did you mean 'model'?"]),
    ("model.activation=[tanh, tanhh]", ["--set model.activation", "'tanhh'",
                                        "did you mean 'tanh'?"]),
    ("train.optimizer=adamm", ["--set train.optimizer", "did you mean 'adam'?"]),
    ("data.dataset=disk_anulus", ["--set data.dataset", "did you mean 'disk_annulus'?"]),
    ("data.disk_annulus.iner=0.3", ["--set data.disk_annulus.iner", "did you mean 'inner'?"]),
    ("model.depth=0", ["--set model.depth", "out of range"]),
])
def test_set_errors_blame_set_and_suggest(override, words, tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    err = _error(["run", str(path), "--out", str(tmp_path / "r"), "--set", override], capsys)
    for w in words:
        assert w in err, (w, err)
    assert str(path) not in err  # the file is not at fault
    assert not os.path.exists(tmp_path / "r")


def test_file_errors_blame_the_file_and_suggest(tmp_path, capsys):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC.replace("depth = [1, 2]", "depth = [1, 2]\nactivaton = 'relu'"))
    err = _error(["run", str(path), "--out", str(tmp_path / "r")], capsys)
    assert f"{path}: model.activaton: unknown key (did you mean 'activation'?)" in err
    assert "--set" not in err
    err = _error(["datasets", "disk_anulus"], capsys)
    assert "unknown dataset 'disk_anulus' (did you mean 'disk_annulus'?)" in err
    err = _error(["datasets", "two_spirals", "--set", "turn=2"], capsys)
    assert "did you mean 'turns'?" in err


def test_chart_options_suggest_columns(tiny_results, capsys):
    err = _error(["chart", tiny_results, "--x", "widht"], capsys)
    assert "--x 'widht'" in err and "did you mean 'width'?" in err
    err = _error(["chart", tiny_results, "--metric", "test_ac"], capsys)
    assert "did you mean 'test_acc'?" in err


def test_default_outputs_go_into_the_folder_read(tiny_results, tmp_path, monkeypatch, capsys):
    import altair as alt

    from sweepnet import cli
    from sweepnet.views import network as inspect_lib

    saved = []
    monkeypatch.setattr(cli, "_save", lambda chart, out: saved.append(out))
    monkeypatch.setattr(inspect_lib, "inspect", lambda root, run_id: alt.Chart())
    other = str(tmp_path / "other")
    shutil.copytree(tiny_results, other)
    run_id = results.load(tiny_results)["run_id"][0]
    assert main(["chart", tiny_results]) == 0
    assert main(["inspect", tiny_results, run_id]) == 0
    assert main(["chart", "--compare", tiny_results, other]) == 0
    assert saved == [os.path.join(tiny_results, "phase.html"),
                     os.path.join(tiny_results, f"inspect-{run_id}.png"),
                     os.path.join(other, "compare-tiny.html")]
    assert "--compare" in _error(["chart", tiny_results, "--compare", tiny_results, other],
                                 capsys)
    assert "DIR" in _error(["chart"], capsys)


def _rename(root, name):
    path = os.path.join(root, "spec.toml")
    with open(path) as f:
        text = f.read()
    with open(path, "w") as f:
        f.write(text.replace('name = "tiny"', f'name = "{name}"'))


def test_query_over_several_folders_has_a_unique_sweep_column(tiny_results, tmp_path, capsys):
    same, renamed = str(tmp_path / "same"), str(tmp_path / "renamed")
    shutil.copytree(tiny_results, same)
    shutil.copytree(tiny_results, renamed)
    _rename(renamed, "other")
    sql = "select sweep, count(*) as n from runs group by 1 order by 1"
    assert main(["query", tiny_results, same, renamed, sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [
        {"sweep": "other", "n": 8}, {"sweep": "tiny", "n": 8}, {"sweep": "tiny-2", "n": 8}]
    sql = "select sweep, count(*) as n from curves group by 1 order by 1"
    assert main(["query", tiny_results, renamed, sql, "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"sweep": "other", "n": 24},
                                                   {"sweep": "tiny", "n": 24}]
    err = _error(["query", tiny_results, str(tmp_path / "nope"), "select 1"], capsys)
    assert "nope" in err


def _values(d):
    """Every inline data row of a Vega-Lite dict."""
    if isinstance(d, dict):
        return d["values"] if isinstance(d.get("values"), list) else [
            v for x in d.values() for v in _values(x)]
    return [v for x in d for v in _values(x)] if isinstance(d, list) else []


def test_compare_phase_draws_b_minus_a_per_cell(tiny_results, tmp_path):
    a = results.load(tiny_results)
    b = a.assign(separated=True)
    b = b[b["depth"] == 1]  # B lacks the depth-2 cells
    spec = charts.compare_phase(a, b, names=("a", "b")).to_dict()
    cells = {(r["width"], r["depth"]): r for r in _values(spec)}
    assert len(cells) == 4
    for width in (2, 3):
        share = a[(a["width"] == width) & (a["depth"] == 1)]["separated"].mean()
        assert cells[(width, 1)]["diff"] == pytest.approx(1 - share)
        assert cells[(width, 2)]["diff"] is None and cells[(width, 2)]["label"] == "a"
    assert cells[(2, 1)]["diff"] == 1.0  # width 2 never separates in the tiny sweep
    assert "redblue" in json.dumps(spec) and '"domain": [-1, 1]' in json.dumps(spec)
    accs = charts.compare_phase(a, a.assign(test_acc=a["test_acc"] - 0.01), metric="test_acc")
    assert '"domain": [-0.01' in json.dumps(accs.to_dict())  # a mean's scale: as wide as needed
    same = charts.compare_phase(a, a).to_dict()
    assert {r["diff"] for r in _values(same)} == {0.0}
