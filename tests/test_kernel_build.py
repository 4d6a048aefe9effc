"""The fused kernel's build and choice (sweepnet.kernel.build, .verdict, .choice): nobody waits
for the build, nothing builds at import or collection, and the kernel is used where it measured
faster.

A fake compiler (``CXX`` pointing at a script) stands in for the real one where a build would
be too slow; each test has its own cache folder (``SWEEPNET_CACHE``).
"""

import os
import subprocess
import sys
import time

import pytest

from sweepnet import cli
from sweepnet.engine import plan, programs
from sweepnet.engine import run as engine
from sweepnet.engine.run import Summary
from sweepnet.kernel import build, choice, verdict
from sweepnet.sweep import spec

FAKE = """#!/bin/sh
echo "$@" >> "{calls}"
case "$1" in --version) echo "fake c++ 1.0"; exit 0;; esac
sleep {sleep}
{body}
"""


def _fake_compiler(tmp_path, body="echo 'fake: no kernel here' >&2; exit 1", sleep=0):
    """A ``CXX`` script that records each call's arguments in ``calls.txt`` and runs ``body``."""
    script = tmp_path / "fake-cxx"
    script.write_text(FAKE.format(calls=tmp_path / "calls.txt", sleep=sleep, body=body))
    script.chmod(0o755)
    return str(script)


def _calls(tmp_path) -> list[str]:
    path = tmp_path / "calls.txt"
    return [c for c in path.read_text().splitlines() if c != "--version"] if path.exists() else []


def _text(path) -> str:
    with open(path) as f:
        return f.read()


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """An empty cache folder and a fresh view of the kernel; the session's view comes back
    after (the real kernel may be loaded and registered in this process)."""
    saved = {k: (v.copy() if isinstance(v, dict | set) else v) for k, v in build.STATE.items()}
    monkeypatch.setenv("SWEEPNET_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SWEEPNET_FUSED", raising=False)
    monkeypatch.delenv("SWEEPNET_MARCH", raising=False)
    choice.reset()
    yield tmp_path
    build.STATE.update(saved)
    build.library_key.cache_clear()


@pytest.mark.slow  # the builder is a python process of its own (5 s here)
def test_library_never_waits_and_builds_in_the_background(isolated, monkeypatch, capfd):
    monkeypatch.setenv("CXX", _fake_compiler(isolated, sleep=1))
    monkeypatch.setenv("SWEEPNET_KERNEL_BUILD", "1")
    t = time.perf_counter()
    assert build.library() is None
    assert time.perf_counter() - t < 5  # the compiler sleeps, and nobody waits for it
    assert build.STATE["builder"].poll() is None  # the build goes on after library returned
    err = capfd.readouterr().err
    assert "in the background" in err and "XLA's gradient" in err
    assert " s)" not in err and "about" not in err  # no promise of a duration
    builder = build.STATE["builder"]
    assert builder.wait(timeout=300) == 0  # a detached process that outlives nothing of ours
    assert _calls(isolated), "the background builder never ran the compiler"
    base = build.kernel_path()[:-3]
    assert "fake: no kernel here" in _text(base + ".failed")
    assert "fake: no kernel here" in _text(base + ".log")
    # the failure is kept: the next run says why and starts no new build
    choice.reset()
    assert build.library() is None and build.STATE["builder"] is None
    assert "sweepnet devices --build retries" in capfd.readouterr().err
    # an explicit build retries, in the foreground
    n = len(_calls(isolated))
    assert build.build() is None and len(_calls(isolated)) == n + 1


def test_no_background_build_when_turned_off_or_already_running(isolated, monkeypatch):
    monkeypatch.setenv("CXX", _fake_compiler(isolated))
    monkeypatch.setenv("SWEEPNET_KERNEL_BUILD", "0")
    assert build.library() is None and not build.start_build()
    monkeypatch.setenv("SWEEPNET_KERNEL_BUILD", "1")
    import fcntl

    base = build.kernel_path()[:-3]
    os.makedirs(os.path.dirname(base))
    with open(base + ".lock", "a") as lock:  # another process is building it
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert not build.start_build()
    assert not _calls(isolated)


def test_a_library_that_does_not_load_is_recorded_and_removed(isolated, monkeypatch, capfd):
    # "compiles" a file that is no shared library
    body = 'while [ "$1" != "-o" ]; do shift; done; echo junk > "$2"'
    monkeypatch.setenv("CXX", _fake_compiler(isolated, body=body))
    assert build.build() is None
    err = capfd.readouterr().err
    assert "built the fused CPU gradient kernel in" in err and "cannot load" in err
    path = build.kernel_path()
    assert not os.path.exists(path) and "cannot load" in _text(path[:-3] + ".failed")
    assert choice.build_seconds() > 0


def test_the_kernel_is_built_into_a_file_the_group_can_read(isolated, monkeypatch):
    """A cache shared by a group: the compiler writes into a file of the umask's mode (GNU ld
    keeps an existing output's mode: a 0600 temporary file made the kernel 0711)."""
    mode = isolated / "mode"
    body = f'while [ "$1" != "-o" ]; do shift; done; stat -c %a "$2" > "{mode}"; echo x > "$2"'
    monkeypatch.setenv("CXX", _fake_compiler(isolated, body=body))
    old = os.umask(0o002)
    try:
        assert build.build() is None  # no library, but the lock and the failure stay beside it
    finally:
        os.umask(old)
    assert mode.read_text().strip() == "664"
    base = build.kernel_path()[:-3]
    assert {p: oct(os.stat(p).st_mode & 0o777) for p in (base + ".lock", base + ".failed")} == {
        base + ".lock": "0o664", base + ".failed": "0o664"}
    assert oct(os.stat(os.path.dirname(base)).st_mode & 0o777) == "0o775"


def test_march_is_part_of_the_kernels_key(isolated, monkeypatch):
    monkeypatch.setenv("CXX", _fake_compiler(isolated))
    native = build.kernel_path()
    assert "-march=native" in build.flags()
    monkeypatch.setenv("SWEEPNET_MARCH", "x86-64-v3")
    assert build.march() == "x86-64-v3" and "-march=x86-64-v3" in build.flags()
    assert "-march=native" not in build.flags() and build.kernel_path() != native


VERDICT = {"steps": 300, "march": "native", "shapes": [
    {"width": 3, "depth": 2, "activation": "tanh", "fused_s": 1.0, "xla_s": 2.0},
    {"width": 16, "depth": 4, "activation": "tanh", "fused_s": 3.0, "xla_s": 1.0},
    {"width": 3, "depth": 2, "activation": "relu", "fused_s": 2.0, "xla_s": 1.0},
]}


def _static(width, depth, activation):
    s = spec.loads(f"""
name = "v"
[data]
dataset = "disk_annulus"
n_train = 64
n_test = 64
[model]
width = {width}
depth = {depth}
activation = "{activation}"
[train]
steps = 10
""")
    return plan.make_plan(s, 1).buckets[0].static


def test_the_kernel_is_used_where_it_measured_faster(isolated, monkeypatch):
    monkeypatch.setenv("CXX", _fake_compiler(isolated))
    assert verdict.prefers(3, 2, ("tanh",)) is None  # nothing measured yet
    path = verdict.save_verdict(VERDICT)
    assert path == build.kernel_path()[:-3] + ".json"
    assert verdict.prefers(3, 2, ("tanh",)) is True
    assert verdict.prefers(2, 1, ("tanh",)) is True  # nearest: (3, 2)
    assert verdict.prefers(12, 4, ("tanh",)) is False  # nearest: (16, 4)
    assert verdict.prefers(3, 2, ("softplus",)) is True  # tanh's family
    assert verdict.prefers(3, 2, ("leaky_relu",)) is False  # relu's family
    assert verdict.prefers(3, 2, ("tanh", "relu")) is False  # a program of both: all must gain
    monkeypatch.setattr(build, "library", lambda wait=False, start=True: "kernel.so")
    m = programs.mesh()
    small, wide = _static(3, 2, "tanh"), _static(16, 4, "tanh")
    assert choice.use(small, m) and not choice.use(wide, m)
    monkeypatch.setenv("SWEEPNET_FUSED", "1")
    assert choice.use(wide, m)
    monkeypatch.setenv("SWEEPNET_FUSED", "0")
    assert not choice.use(small, m)


def test_an_unmeasured_kernel_is_not_used_by_default(isolated, monkeypatch):
    monkeypatch.setenv("CXX", _fake_compiler(isolated))
    monkeypatch.setattr(build, "library", lambda wait=False, start=True: "kernel.so")
    assert not choice.use(_static(3, 2, "tanh"), programs.mesh())


def test_sweepnet_devices_says_the_kernel_is_not_built_and_builds_nothing(isolated, monkeypatch,
                                                                          capsys):
    monkeypatch.setenv("CXX", _fake_compiler(isolated))
    monkeypatch.setenv("SWEEPNET_KERNEL_BUILD", "1")
    assert cli.main(["devices"]) == 0
    assert "fused CPU gradient: not built" in capsys.readouterr().out
    assert not _calls(isolated) and build.STATE["builder"] is None


def test_sweepnet_devices_build_fails_with_one_line(isolated, monkeypatch, capsys):
    monkeypatch.setenv("CXX", _fake_compiler(isolated))
    assert cli.main(["devices", "--build"]) == 2
    err = capsys.readouterr().err
    assert "fake: no kernel here" in err and "sweepnet: error: the fused CPU gradient" in err
    assert len(_calls(isolated)) == 1


@pytest.mark.slow
def test_collecting_the_tests_builds_nothing(tmp_path):
    env = {**os.environ, "SWEEPNET_CACHE": str(tmp_path / "cache"),
           "CXX": _fake_compiler(tmp_path)}
    env.pop("SWEEPNET_KERNEL_BUILD")  # even background builds would be allowed
    here = os.path.dirname(__file__)
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                           "no:cacheprovider", here], env=env, cwd=os.path.dirname(here),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert not (tmp_path / "calls.txt").exists()  # the compiler was not even asked its version
    assert not (tmp_path / "cache" / "kernels").exists()


def test_the_summary_gives_small_rates_and_keeps_the_build_apart():
    s = Summary(total=13, skipped=0, trained=13, buckets=1, compiles=1, compile_s=4.0,
                wall_s=100.0, build_s=41.2)
    text = str(s)
    assert "0.13 networks/s" in text and "1 bucket, 1 compile (4.0 s)" in text
    assert "41.2 s building the CPU kernel" in text
    assert "building" not in str(Summary(13, 0, 13, 1, 1, 4.0, 100.0))
    assert [engine.significant(x) for x in (0.013, 0.13, 4.21, 57.4, 1234.5, 0.0)] == [
        "0.013", "0.13", "4.2", "57", "1234", "0"]



def test_a_sweep_waits_for_a_kernel_being_built_only_while_one_is(isolated, monkeypatch):
    """``pending``: the kernel may still come during this run (a build running, the choice left
    to measurement, a covered CPU bucket); ``will_build``: a run started now would build it;
    ``ready``: built and measured faster, asked afresh."""
    monkeypatch.setenv("CXX", _fake_compiler(isolated))
    monkeypatch.setenv("SWEEPNET_KERNEL_BUILD", "1")
    static, m = _static(3, 2, "tanh"), programs.mesh()
    assert choice.will_build()  # nothing built, background builds allowed
    assert not choice.pending(static, m)  # but no build is running
    build.STATE["builder"] = "elsewhere"  # another process holds the build's lock
    assert choice.pending(static, m) and not choice.ready(static)
    assert not choice.pending(_static(3, 2, "elu"), m)  # not the kernel's: nothing to wait for
    monkeypatch.setenv("SWEEPNET_FUSED", "0")
    assert not choice.pending(static, m) and not choice.will_build()
    monkeypatch.delenv("SWEEPNET_FUSED")
    verdict.save_verdict(VERDICT)  # measured (the fake library does not exist, so not ready)
    assert not choice.ready(static)
    monkeypatch.setenv("SWEEPNET_KERNEL_BUILD", "0")
    assert not choice.will_build()
