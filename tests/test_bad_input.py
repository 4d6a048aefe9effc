"""The bad-input catalogue: every case exits 2 with ONE line on stderr that names the key,
option or file at fault, and leaves an existing results folder byte-for-byte as it was."""

import os
import re
import shutil

import numpy as np
import pytest

from sweepnet import cli


def snapshot(root: str) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones too) and its bytes."""
    out = {}
    for d, _, files in os.walk(root):
        for f in files:
            path = os.path.join(d, f)
            with open(path, "rb") as fh:
                out[os.path.relpath(path, root)] = fh.read()
    return out


@pytest.fixture(scope="module")
def existing(tmp_path_factory, tiny_results):
    """A finished results folder (a copy of the session's tiny sweep) and its spec text."""
    out = str(tmp_path_factory.mktemp("bad") / "results")
    shutil.copytree(tiny_results, out)
    with open(os.path.join(out, "spec.toml")) as f:
        return out, f.read()


def _spec(tmp, text, name="spec.toml"):
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(text)
    return path


def _with(base: str, section: str, line: str) -> str:
    """``base`` with ``line`` added at the top of ``[section]`` ('' = top level)."""
    if not section:
        return line + "\n" + base
    return base.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)


def _file_dataset(base: str, path: str) -> str:
    text = base.replace('dataset = "disk_annulus"', 'dataset = "file"')
    text = re.sub(r"\[data\.disk_annulus\]\n(?:[^\[\n][^\n]*\n)*", "", text)
    return text + f'\n[data.file]\npath = "{path}"\n'


def _bad_npz(tmp):
    path = os.path.join(tmp, "points.npz")
    np.savez(path, features=np.zeros((4, 2)))  # no arrays x and y
    return path


def _bad_csv(tmp):
    path = os.path.join(tmp, "points.csv")
    with open(path, "w") as f:
        f.write("a,b,label\n1,2,0\nx,y,1\n3,4,0\n")  # a non-numeric feature
    return path


def _regular_file(tmp):
    path = os.path.join(tmp, "a-file")
    open(path, "w").close()
    return path


# (id, argv builder (tmp, out, base spec text) -> argv, words the one-line error must contain)
CASES = [
    (
        "bad-toml",
        lambda t, o, b: ["run", _spec(t, b + "\nname = [\n"), "--out", o],
        ["spec.toml", "invalid TOML"],
    ),
    (
        "unknown-top-level-key",
        lambda t, o, b: ["run", _spec(t, _with(b, "", 'colour = "red"')), "--out", o],
        ["colour"],
    ),
    (
        "unknown-section",
        lambda t, o, b: ["run", _spec(t, b + "\n[optim]\nlr = 1\n"), "--out", o],
        ["optim"],
    ),
    (
        "unknown-model-key",
        lambda t, o, b: ["run", _spec(t, _with(b, "model", "widht = 3")), "--out", o],
        ["model.widht"],
    ),
    (
        "unknown-dataset-parameter",
        lambda t, o, b: [
            "run",
            _spec(
                t,
                b + "\n[data.disk_annulus]\nradius = 2.0\n"
                if "[data.disk_annulus]" not in b
                else b.replace("[data.disk_annulus]\n", "[data.disk_annulus]\nradius = 2.0\n"),
            ),
            "--out",
            o,
        ],
        ["data.disk_annulus.radius"],
    ),
    (
        "bad-type",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", 'model.depth="deep"'],
        ["model.depth", "expected int"],
    ),
    (
        "bool-for-int",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "train.steps=true"],
        ["train.steps"],
    ),
    (
        "out-of-range",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "data.n_train=1"],
        ["data.n_train", "out of range"],
    ),
    (
        "negative-learning-rate",
        lambda t, o, b: [
            "run",
            _spec(t, b),
            "--out",
            o,
            "--set",
            "train.learning_rate=[0.1, -1.0]",
        ],
        ["train.learning_rate"],
    ),
    (
        "nan-learning-rate",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "train.learning_rate=nan"],
        ["train.learning_rate"],
    ),
    (
        "empty-sweep-axis",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "model.width=[]"],
        ["model.width", "empty"],
    ),
    (
        "repeated-sweep-value",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "model.width=[2, 2]"],
        ["model.width"],
    ),
    (
        "missing-required-key",
        lambda t, o, b: [
            "run",
            _spec(t, 'name = "x"\n[data]\ndataset = "xor"\n[model]\ndepth = 1\n'),
            "--out",
            o,
        ],
        ["model.width", "missing"],
    ),
    (
        "unknown-dataset",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "data.dataset=swirl"],
        ["data.dataset", "swirl"],
    ),
    (
        "unknown-activation",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "model.activation=[tanh, tanhh]"],
        ["model.activation", "tanhh"],
    ),
    (
        "unknown-optimizer",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "train.optimizer=adamm"],
        ["train.optimizer"],
    ),
    (
        "missing-data-file",
        lambda t, o, b: ["run", _spec(t, _file_dataset(b, "/nope/pts.csv")), "--out", o],
        ["data.file.path", "/nope/pts.csv"],
    ),
    (
        "malformed-npz-data-file",
        lambda t, o, b: ["run", _spec(t, _file_dataset(b, _bad_npz(t))), "--out", o + "-new"],
        ["points.npz"],
    ),
    (
        "malformed-csv-data-file",
        lambda t, o, b: ["run", _spec(t, _file_dataset(b, _bad_csv(t))), "--out", o + "-new"],
        ["points.csv"],
    ),
    (
        "set-without-equals",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "model.width"],
        ["--set", "model.width"],
    ),
    (
        "set-unparsable-value",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "model.width=[2,"],
        ["--set", "model.width"],
    ),
    (
        "set-unknown-key",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "model.colour=3"],
        ["model.colour"],
    ),
    (
        "set-typo-blames-set-and-suggests",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "model.widht=3"],
        ["--set model.widht", "did you mean 'width'?"],
    ),
    (
        "grow-through-a-new-sweep-name",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "name=other",
                         "--set", "train.seeds=3"],
        ["results", "name ('tiny' -> 'other')", "column sweep", "--fresh"],
    ),
    (
        "set-through-a-value",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "name.sub=3"],
        ["--set", "name.sub"],
    ),
    (
        "shard-index-too-big",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--shard", "2/2"],
        ["--shard", "2/2"],
    ),
    (
        "shard-garbage",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--shard", "half"],
        ["--shard", "half"],
    ),
    (
        "shard-zero-count",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--shard", "0/0"],
        ["--shard", "0/0"],
    ),
    (
        "max-memory-garbage",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--max-memory", "lots"],
        ["--max-memory", "lots"],
    ),
    (
        "max-memory-zero",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--max-memory", "0G"],
        ["--max-memory"],
    ),
    (
        "results-folder-cannot-grow-into-a-new-threshold",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--set", "train.separation=0.9"],
        ["results", "train.separation", "(1.0 -> 0.9)", "column separated", "--fresh"],
    ),
    ("spec-file-is-a-directory", lambda t, o, b: ["run", t, "--out", o], ["is a directory"]),
    (
        "spec-file-missing",
        lambda t, o, b: ["run", os.path.join(t, "none.toml"), "--out", o],
        ["none.toml", "no such spec file"],
    ),
    (
        "out-under-a-regular-file",
        lambda t, o, b: [
            "run",
            _spec(t, b.replace('name = "tiny"', 'name = "x"')),
            "--out",
            os.path.join(_regular_file(t), "out"),
        ],
        ["a-file/out"],
    ),
    (
        "out-in-proc",
        lambda t, o, b: ["run", _spec(t, b), "--out", "/proc/sweepnet-out/r"],
        ["/proc/sweepnet-out/r", "cannot write"],
    ),
    (
        "out-is-a-regular-file",
        lambda t, o, b: ["run", _spec(t, b), "--out", _regular_file(t)],
        ["a-file", "not a folder"],
    ),
    (
        "out-is-someone-elses-folder",
        lambda t, o, b: ["run", _spec(t, b), "--out", os.path.dirname(_spec(t, b, "notes.txt"))],
        ["not a sweepnet results folder"],
    ),
    (
        "coordinator-not-host-port",
        lambda t, o, b: [
            "run",
            _spec(t, b),
            "--out",
            o,
            "--distributed",
            "--coordinator",
            "localhost",
        ],
        ["--coordinator", "HOST:PORT"],
    ),
    (
        "process-id-without-distributed",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--process-id", "1"],
        ["--process-id", "--distributed"],
    ),
    (
        "num-processes-garbage",
        lambda t, o, b: ["run", _spec(t, b), "--out", o, "--distributed", "--num-processes", "two"],
        ["--num-processes", "two"],
    ),
]


@pytest.mark.parametrize("build, words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_destroys_nothing(
    build, words, existing, tmp_path, capsys
):
    out, base = existing
    before = snapshot(out)
    argv = build(str(tmp_path), out, base)
    capsys.readouterr()
    code = cli.main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("sweepnet: error: "), err
    for w in words:
        assert w in lines[0], (w, lines[0])
    assert snapshot(out) == before
    assert not os.path.exists(out + "-new")  # a bad data file is refused before any folder


def test_another_sweep_name_is_refused_naming_the_folder_then_fresh_replaces_it(
    existing, tmp_path, capsys
):
    out, base = existing
    work = str(tmp_path / "copy")
    shutil.copytree(out, work)
    path = _spec(str(tmp_path), base.replace('name = "tiny"', 'name = "other"'))
    assert cli.main(["run", path, "--out", work, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert work in err and "name ('tiny' -> 'other')" in err and "column sweep" in err
    assert "--fresh" in err
    assert cli.main(["run", path, "--out", work, "--quiet", "--fresh"]) == 0
    assert "trained 8 networks" in capsys.readouterr().out


def test_catalogue_is_long_enough():
    assert len(CASES) >= 15
