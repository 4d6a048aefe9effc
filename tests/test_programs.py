"""The on-disk program cache: a re-run loads every bucket's executable and gets the same bits."""

import dataclasses
import glob
import os
import time

import jax
import numpy as np
import pytest

import sweepnet
from conftest import TINY_SPEC, runs_table
from sweepnet.engine import programs
from sweepnet.engine import run as engine
from sweepnet.sweep import spec
from sweepnet.train.step import Static


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = str(tmp_path / "cache")
    monkeypatch.setattr(programs, "cache_root", lambda: root)
    return os.path.join(root, "programs")


# a step count no earlier test session compiled, so that XLA's own persistent cache (shared by
# the tests) does not hold these programs yet
STEPS = 1000 + time.time_ns() // 1000 % 100_000
# the tiny sweep at depth 1 (4 seeds: 8 networks still) with a smaller probe: a program that
# compiles in two thirds of the time, and these tests compile it cold
SPEC = (TINY_SPEC.replace("steps = 60", f"steps = {STEPS}").replace("depth = [1, 2]", "depth = 1")
        .replace("seeds = 2", "seeds = 4").replace("n_test = 256", "n_test = 64"))
assert SPEC.count("depth = 1") == SPEC.count("seeds = 4") == SPEC.count("n_test = 64") == 1


def _run(out):
    return engine.run_sweep(spec.loads(SPEC), out, progress=False)


def _params(out):
    df = sweepnet.load(out)
    return {r: sweepnet.load_params(out, r)[1] for r in df.run_id}


def test_a_rerun_loads_every_program_and_gets_the_same_bits(cache, tmp_path):
    first = _run(str(tmp_path / "a"))
    assert first.compiles == first.buckets > 0 and first.loaded == 0
    assert len(glob.glob(os.path.join(cache, "*.pkl"))) == first.buckets

    again = _run(str(tmp_path / "b"))
    assert again.loaded == again.compiles == first.buckets
    assert "from cache" in str(again)
    assert runs_table(str(tmp_path / "a")).equals(runs_table(str(tmp_path / "b")))
    pa, pb = _params(str(tmp_path / "a")), _params(str(tmp_path / "b"))
    for r in pa:
        jax.tree.map(np.testing.assert_array_equal, pa[r], pb[r])


def test_a_damaged_program_is_compiled_again(cache, tmp_path):
    first = _run(str(tmp_path / "a"))
    for path in glob.glob(os.path.join(cache, "*.pkl")):
        with open(path, "wb") as f:
            f.write(b"not a program")
    again = _run(str(tmp_path / "b"))
    assert again.loaded == 0 and again.compiles == first.buckets
    assert runs_table(str(tmp_path / "a")).equals(runs_table(str(tmp_path / "b")))
    assert _run(str(tmp_path / "c")).loaded == first.buckets  # stored afresh


def test_without_the_cache_nothing_is_stored(cache, tmp_path):
    s = engine.run_sweep(spec.loads(SPEC), str(tmp_path / "a"), progress=False, cache=False)
    assert s.loaded == 0 and not glob.glob(os.path.join(cache, "*.pkl"))


def test_the_key_follows_the_program_and_its_arguments():
    static = Static(arch="mlp", in_dim=2, n_out=1, width=3, depth=2, activations="tanh",
                    optimizer="adam", steps=10, eval_every=5, batch_size=0, n_train=8, n_test=8)
    args = (jax.numpy.zeros(4, jax.numpy.uint32), {"lr": jax.numpy.zeros(4)})
    key = programs.program_key(static, args)
    assert programs.program_key(static, args) == key
    assert programs.program_key(dataclasses.replace(static, depth=3), args) != key
    assert programs.program_key(dataclasses.replace(static, activations=("relu",)), args) != key
    wider = (jax.numpy.zeros(6, jax.numpy.uint32), {"lr": jax.numpy.zeros(6)})
    assert programs.program_key(static, wider) != key


def _forget_compiled():
    """Forget this process's compiled programs (JAX's and sweepnet's in-memory records)."""
    jax.clear_caches()
    programs.bucket_fn.cache_clear()
    programs.compiled_here.clear()


@pytest.mark.slow  # three sweeps, one of them compiled cold: 10-20 s
def test_a_program_from_xlas_own_cache_is_run_but_not_stored(cache, tmp_path):
    # XLA's persistent cache (on in these tests) now holds every program; an executable it
    # loads serializes without its kernels, so storing it would break the next run. First
    # forget what this process compiled before: a test that ran the same spec without the
    # caches (test_without_the_cache_nothing_is_stored) leaves its program in JAX's memory
    # but not in XLA's cache, and this run would take it from there.
    _forget_compiled()
    _run(str(tmp_path / "a"))
    for path in glob.glob(os.path.join(cache, "*.pkl")):
        os.unlink(path)
    _forget_compiled()  # XLA's cache answers now
    again = _run(str(tmp_path / "b"))
    assert again.loaded == 0 and not glob.glob(os.path.join(cache, "*.pkl"))
    third = _run(str(tmp_path / "c"))  # the same executables, from JAX's in-memory cache
    assert third.loaded == 0 and not glob.glob(os.path.join(cache, "*.pkl"))
    assert runs_table(str(tmp_path / "a")).equals(runs_table(str(tmp_path / "c")))


@pytest.mark.slow  # two sweeps compiled without the cache: 6-13 s
def test_an_unusable_cache_folder_only_costs_the_cache(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr(programs, "cache_root", lambda: str(blocker))
    other = spec.loads(SPEC.replace(f"steps = {STEPS}", f"steps = {STEPS + 1}"))  # new programs
    first = engine.run_sweep(other, str(tmp_path / "a"), progress=False)
    assert first.trained == 8 and first.loaded == 0
    assert engine.run_sweep(other, str(tmp_path / "b"), progress=False).loaded == 0


def test_cpu_buckets_compile_with_the_cpu_options(tmp_path, monkeypatch):
    # CPU meshes get the options (measured there), and they reach every bucket's compile: a
    # misspelt option put in their place makes the sweep's compile fail, naming it
    assert programs.compiler_options(programs.mesh()) == programs.CPU_COMPILER_OPTIONS
    bogus = {f"{name}_misspelt": value for name, value in programs.CPU_COMPILER_OPTIONS.items()}
    monkeypatch.setattr(programs, "CPU_COMPILER_OPTIONS", bogus)
    programs.bucket_fn.cache_clear()
    try:
        with pytest.raises(Exception, match="_misspelt"):
            engine.run_sweep(spec.loads(SPEC), str(tmp_path / "a"), progress=False, cache=False)
    finally:
        programs.bucket_fn.cache_clear()  # drop the programs built with the misspelt option
