"""A fixed set of mutants that the tests must kill: breaks of the science a test run would
otherwise not notice (issue 28; the sampled audit is ``analysis/mutation.py``).

Each mutant replaces one exact text of one file (found exactly once) in a copy of the tree
(``src/``, ``tests/``, ``analysis/``, ``sweeps/``, ``pyproject.toml``) and runs the named tests
in a subprocess on that copy (``PYTHONPATH`` = the copy's ``src``); they must fail. The
unmutated copy must pass the same tests, once for all mutants, so the harness cannot pass
because a node id is wrong or a test fails anyway.

The tree is copied once per test process (``tree``) and each mutant is written into it and
taken out again, the mutated file's compiled ``.pyc`` deleted both times (Python checks a
``.pyc`` by the source's size and mtime in whole seconds: ``&`` for ``|`` in the same second
would load the stale one). The copy's ``tests/.xla-cache`` is a link to the session's cache
(``SWEEPNET_CACHE``), so the subprocesses share it: a mutant has its own program keys (they
hash the source), the unmutated copy the session's.
"""

import contextlib
import dataclasses
import glob
import os
import shutil
import subprocess
import sys

import pytest

from sweepnet.engine import programs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COPY = ("src", "tests", "analysis", "sweeps", "pyproject.toml")
IGNORE = shutil.ignore_patterns("__pycache__", ".xla-cache", ".pytest_cache", "out", "*.pyc")
PYTEST = ("-x", "-q", "-n", "0", "-p", "no:cacheprovider", "--durations=0")


@dataclasses.dataclass(frozen=True)
class Mutant:
    """Replace ``old`` (exactly once in ``file``) by ``new``, then run ``tests`` (pytest node ids
    from the repository root) in one process, ``-x``: the run must fail. Where several tests
    kill it, the cheapest comes first (``-x`` stops there; the unmutated copy runs them all)."""

    name: str
    file: str
    old: str
    new: str
    tests: tuple[str, ...]


MUTANTS = [
    # --- the six breaks of the 0.5.4 audit (issue 28), each passed by 0.5.4's tests
    Mutant(
        "separated uses > instead of >= (every phase diagram goes blank)",
        "src/sweepnet/store/tables.py",
        '"separated": ~diverged & (test_acc >= spec.separation),',
        '"separated": ~diverged & (test_acc > spec.separation),',
        # one hand-made call output, then the trained disk sweep
        ("tests/test_separation.py::test_to_frames_reads_separated_steps_to_fit_and_certified_"
         "from_the_call",
         "tests/test_science.py::test_disk_separates_from_width_3_and_never_below"),
    ),
    Mutant(
        "the width mask removed from the MLP (padded units reach the next layer)",
        "src/sweepnet/sweep/models.py",
        "            fan_in, in_mask = width, mask\n",
        "            fan_in, in_mask = width, None\n",
        (
            # one compiled program of the model (the eager one-step test below dispatches op
            # by op: 10-15 s), then the test that killed it first, for sigmoid (and softplus)
            "tests/test_masks.py::test_padded_mixed_mlp_equals_the_network_at_its_own_shape"
            "[sigmoid-zeros]",
            "tests/test_models.py::test_every_activation_padded_equals_unpadded_with_zero_"
            "padded_grads[sigmoid]",
        ),
    ),
    Mutant(
        "resume forgets the finished runs",
        "src/sweepnet/engine/run.py",
        "    plan = replan(store.done_ids())\n",
        "    plan = replan(set())\n",
        ("tests/test_resume.py::test_a_sweep_killed_between_parts_resumes_exactly_the_missing_"
         "runs[1]",),
    ),
    Mutant(
        "calls cut from the runs left instead of the whole share",
        "src/sweepnet/engine/plan.py",
        "chunk = chunk_size(bucket.static, bucket.runs, n_devices, max_memory, platform, fused,",
        "chunk = chunk_size(bucket.static, todo, n_devices, max_memory, platform, fused,",
        ("tests/test_resume.py::test_a_sweep_killed_between_parts_resumes_exactly_the_missing_"
         "runs[2]",),
    ),
    Mutant(
        "topology measures every hidden layer on the input cloud",
        "src/sweepnet/measure/topology.py",
        "return [x, *(h.T for h in hidden), logits.T]",
        "return [x, *(x for h in hidden), logits.T]",
        ("tests/test_topology.py::test_every_layer_of_a_known_map_has_its_known_betti_numbers"
         "[fold apart]",),
    ),
    Mutant(
        "olah2014's dense_1d_accuracy returns a constant 0.75",
        "analysis/olah2014.py",
        "    return float(0.5 * acc1 + 0.5 * acc0)",
        "    return 0.75",
        ("tests/test_analysis.py::test_dense_1d_accuracy_of_hand_set_networks",),
    ),
    # --- survivors of the sampled audit (analysis/mutation.py) that the tests now kill
    Mutant(
        "a share that never finished reports itself complete",
        "src/sweepnet/engine/run.py",
        "finished = len(store.done_ids() & mine_ids)",
        "finished = len(store.done_ids() | mine_ids)",
        ("tests/test_resume.py::test_a_job_array_shares_its_folder_and_a_fresh_single_run_"
         "wipes_it",),
    ),
    Mutant(
        "hidden files taken for committed parts",
        "src/sweepnet/store/folder.py",
        'if f.endswith(".parquet") and not f.startswith(".")',
        'if f.endswith(".parquet") or not f.startswith(".")',
        ("tests/test_resume.py::test_part_files_skip_hidden_files",),
    ),
    # --- breaks today's tests already kill
    Mutant(
        "depth mask off by one (a padded layer past the real depth computes, XLA's path)",
        "src/sweepnet/sweep/models.py",
        "padded layer passes its input through\n            h = new if i == 0 or real_depth "
        "is None else jnp.where(i < real_depth, new, h)",
        "padded layer passes its input through\n            h = new if i == 0 or real_depth "
        "is None else jnp.where(i <= real_depth, new, h)",
        # the model alone (a padded layer at the real depth must pass its input through), then
        # the engine's sweep against the network trained alone
        ("tests/test_masks.py::test_padded_mixed_mlp_equals_the_network_at_its_own_shape"
         "[sigmoid-zeros]",
         "tests/test_invariance.py::test_padded_mixed_sharded_chunked_run_equals_the_network_"
         "trained_alone[xla-sigmoid]"),
    ),
    Mutant(
        "seeds from the grid position instead of the run id",
        "src/sweepnet/engine/run.py",
        "seeds = np.asarray([run_seed(r.run_id) for r in lanes], np.uint32)",
        "seeds = np.asarray([r.index for r in lanes], np.uint32)",
        # 8 networks against 0.5.4's numbers (one program), then the 80-network sweep reordered
        ("tests/test_compat.py::test_this_version_trains_0_5_4s_networks_to_the_same_numbers",
         "tests/test_invariance.py::test_result_does_not_depend_on_grid_order[xla]"),
    ),
    Mutant(
        "betti_numbers returns b1 = 0",
        "src/sweepnet/measure/homology.py",
        "return b0, alive[1], alive[2] if maxdim >= 2 else 0",
        "return b0, 0, alive[2] if maxdim >= 2 else 0",
        ("tests/test_topology.py::test_betti_numbers_of_hand_made_clouds",),
    ),
]
IDS = [m.name.split(" (")[0] for m in MUTANTS]


def _copy(dest) -> str:
    for name in COPY:
        src, dst = os.path.join(ROOT, name), os.path.join(dest, name)
        if os.path.isdir(src):
            shutil.copytree(src, dst, ignore=IGNORE)
        else:
            shutil.copy2(src, dst)
    # the copy's conftest points SWEEPNET_CACHE at its own tests/.xla-cache: this session's
    os.symlink(os.environ["SWEEPNET_CACHE"], os.path.join(dest, "tests", ".xla-cache"))
    return str(dest)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> str:
    """The copy of the tree this test process's mutants are written into (and taken out of)."""
    return _copy(tmp_path_factory.mktemp("tree"))


def _write(path: str, text: str) -> None:
    """Write ``text`` to the source file ``path`` and delete its compiled copies."""
    with open(path, "w") as f:
        f.write(text)
    stem = os.path.splitext(os.path.basename(path))[0]
    for pyc in glob.glob(os.path.join(os.path.dirname(path), "__pycache__", f"{stem}.*.pyc")):
        os.unlink(pyc)


@contextlib.contextmanager
def _mutated(tree: str, mutant: Mutant):
    """``tree`` with ``mutant`` written into it, for the time of the ``with`` block."""
    path = os.path.join(tree, mutant.file)
    with open(path) as f:
        text = f.read()
    assert text.count(mutant.old) == 1, mutant
    _write(path, text.replace(mutant.old, mutant.new))
    try:
        yield
    finally:
        _write(path, text)


def _pytest(tree: str, tests) -> subprocess.CompletedProcess:
    # the copy's cache is this session's (a link, see _copy): it shares this tree's XLA
    # programs, and a mutated program has another key. XLA's cache is on from the start (a
    # sweep turns it on, in the same folder), so that the programs the tests compile before any
    # sweep, and a model's op-by-op calls, load too
    env = {**os.environ, "PYTHONPATH": os.path.join(tree, "src"),
           "JAX_COMPILATION_CACHE_DIR": programs.xla_cache(),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
           "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    return subprocess.run([sys.executable, "-m", "pytest", *PYTEST, *tests], cwd=tree,
                          env=env, capture_output=True, text=True, timeout=1200)


def test_every_mutant_text_is_in_its_file_exactly_once():
    """Fast: an edit that moves a mutant's text shows up here, not as a vacuous mutant."""
    for m in MUTANTS:
        with open(os.path.join(ROOT, m.file)) as f:
            text = f.read()
        assert text.count(m.old) == 1, (m.name, m.file, text.count(m.old))
        assert m.old != m.new


@pytest.mark.slow
def test_the_unmutated_copy_passes_every_named_test(tree):
    for m in MUTANTS:  # the copy is the checkout's again after any mutant run before
        with open(os.path.join(ROOT, m.file)) as a, open(os.path.join(tree, m.file)) as b:
            assert a.read() == b.read(), m.file
    tests = sorted({t for m in MUTANTS for t in m.tests})
    proc = _pytest(tree, tests)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert f"{len(tests)} passed" in proc.stdout, proc.stdout[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("mutant", MUTANTS, ids=IDS)
def test_the_mutant_dies(mutant, tree):
    assert mutant.tests, "a mutant names the tests that kill it"
    with _mutated(tree, mutant):
        proc = _pytest(tree, mutant.tests)
    # 1: tests ran and failed (not 2-5: interrupted, usage error, nothing collected)
    assert proc.returncode == 1, (mutant.name, proc.returncode, proc.stdout[-3000:],
                                  proc.stderr[-2000:])
