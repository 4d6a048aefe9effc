"""A results folder and a cache on a shared disk (issue 24): every file sweepnet writes takes the
umask's mode, so that a group can read it; JAX's compile cache sits in the cache's ``xla/``; and
the tests keep to their own cache, whatever ``SWEEPNET_CACHE`` a user exported."""

import os
import subprocess
import sys

from conftest import TINY_SPEC
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.sweep import spec

TESTS = os.path.dirname(os.path.abspath(__file__))
UMASK = 0o002  # a group's: files 0664, folders 0775 (0o022 would give 0644 and 0755)


def wrong_modes(root: str) -> dict[str, str]:
    """``{path under root: its mode}`` for root and every folder or file under it whose mode is
    not the umask's (0775 for a folder, 0664 for a file)."""
    found = {".": os.stat(root).st_mode}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            found[os.path.relpath(path, root)] = os.lstat(path).st_mode
    want = lambda mode: (0o777 if os.path.stat.S_ISDIR(mode) else 0o666) & ~UMASK
    return {p: oct(m & 0o777) for p, m in found.items() if m & 0o777 != want(m)}


def test_a_results_folder_is_readable_by_the_group(tiny_results, tmp_path):
    out = str(tmp_path / "results")
    s = spec.loads(TINY_SPEC)
    per_net = cost_lib.bytes_per_network(plan.make_plan(s, 2).buckets[0].static)
    old = os.umask(UMASK)
    try:  # tiny_results' sweep and calls: its program is compiled already (tiny_results)
        engine.run_sweep(s, out, progress=False, max_memory=4 * per_net)
    finally:
        os.umask(old)
    files = {os.path.relpath(os.path.join(d, f), out) for d, _, fs in os.walk(out) for f in fs}
    assert {"spec.toml", "manifest.json"} <= files
    assert {f.split(os.sep)[0] for f in files if os.sep in f} == {"runs", "curves", "params"}
    assert wrong_modes(out) == {}


# a bucket-like program stored in a fresh cache, as a sweep stores one (a cold sweep's
# compile would take seconds)
CACHE_SCRIPT = f"""
import os, sys
os.umask({UMASK:#o})
import jax, jax.numpy as jnp
from sweepnet.engine import plan, programs
from sweepnet.sweep import spec
programs.enable_compilation_cache()  # what run_sweep calls
static = plan.make_plan(spec.loads(sys.argv[1]), 1).buckets[0].static
fn = jax.jit(lambda x: jnp.tanh(x) * 3.0)
compiled, loaded = programs.compile_program(fn, static, (jnp.ones(5),))
assert not loaded
"""


def test_the_cache_is_readable_by_the_group_and_xla_has_its_own_folder(tmp_path):
    cache = tmp_path / "cache"
    env = {**os.environ, "SWEEPNET_CACHE": str(cache), "SWEEPNET_HOST_DEVICES": "1"}
    proc = subprocess.run([sys.executable, "-c", CACHE_SCRIPT, TINY_SPEC], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # JAX's jit_* files in xla/, not beside programs/ (they were, with SWEEPNET_CACHE set)
    assert sorted(os.listdir(cache)) == ["programs", "xla"]
    assert len(os.listdir(cache / "programs")) == 1
    assert any(f.startswith("jit_") for f in os.listdir(cache / "xla"))
    assert wrong_modes(str(cache)) == {}


def test_the_tests_use_their_own_cache_whatever_the_user_exported(tmp_path):
    code = ("import os, runpy, sys\nsys.path.insert(0, sys.argv[1])\n"
            "runpy.run_path(os.path.join(sys.argv[1], 'conftest.py'))\n"
            "print(os.environ['SWEEPNET_CACHE'])")
    env = {**os.environ, "SWEEPNET_CACHE": str(tmp_path / "users-cache")}
    proc = subprocess.run([sys.executable, "-c", code, TESTS], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == os.path.join(TESTS, ".xla-cache")
    assert not (tmp_path / "users-cache").exists()
