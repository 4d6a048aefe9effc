"""Ctrl-C and SIGTERM: ``sweepnet run`` stops at once, keeps every finished call, says so on its
last line, and a re-run completes the uninterrupted sweep's table bit for bit.

(A SIGKILL at random moments, and the resume after it, is test_resume.py's.)
"""

import os
import re
import signal
import subprocess
import time

import pandas as pd
import pytest

from conftest import TINY_MEMORY, runs_table, sweepnet_command
from sweepnet.core.errors import Interrupted
from sweepnet.engine import cost as cost_lib
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.store import results
from sweepnet.store.folder import Store
from sweepnet.sweep import spec

# Three calls of one network per device (--max-memory), about 1 s each on a 2-core CPU. The
# engine dispatches a call before it writes the one before, and XLA may run the two side by
# side (with a cold program cache the second part came 0.5 s after the first), so the signal
# is sent when the first part is written: the third call is dispatched only after that write.
# elu: XLA's gradient on every machine (the fused CPU kernel does not cover it)
SPEC = """
name = "stop"
[data]
dataset = "disk_annulus"
n_train = 256
n_test = 256
[model]
width = [8, 16]
depth = 3
activation = "elu"
[train]
learning_rate = 0.05
steps = 40000
seeds = 3
eval_every = 20000
"""
N_NETS = 6
SAID = re.compile(r"sweepnet: (interrupted|terminated) \((SIGINT|SIGTERM)\): (\d+) of "
                  rf"{N_NETS} networks "
                  r"are finished and kept \((\d+) trained now\); run the same command again to "
                  r"train the other (\d+)")


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep, in-process, with the same --max-memory."""
    out = str(tmp_path_factory.mktemp("reference"))
    engine.run_sweep(spec.loads(SPEC), out, progress=False, max_memory=TINY_MEMORY)
    return out


def parts(out: str, sub: str = "runs") -> list[str]:
    folder = os.path.join(out, sub)
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_sweep_at_once_and_keeps_every_finished_call(tmp_path, reference,
                                                                        sig):
    path = tmp_path / "stop.toml"
    path.write_text(SPEC)
    out = str(tmp_path / "out")
    # the progress bar on (no --quiet): it must not be drawn again after the message
    proc = subprocess.Popen(sweepnet_command("run", str(path), "--out", out, "--max-memory",
                                             str(TINY_MEMORY)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not [f for f in parts(out) if not f.startswith(".")]:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "no part written"
        time.sleep(0.01)
    sent = time.monotonic()
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    waited = time.monotonic() - sent

    assert proc.returncode == 128 + sig, err[-2000:]  # 130, 143
    assert waited < 3.0, f"{waited:.1f} s from the signal to the exit"
    lines = err.rstrip("\n").split("\n")
    said = SAID.fullmatch(lines[-1])  # the last line: no progress bar drawn after it
    assert said, err[-2000:]
    name, kept, now, other = said[1], int(said[3]), int(said[4]), int(said[5])
    assert name == ("interrupted" if sig == signal.SIGINT else "terminated")
    assert said[2] == signal.Signals(sig).name
    assert 2 <= kept < N_NETS and now == kept and other == N_NETS - kept

    # every part there is whole, and holds what the message says
    for sub in results.PARTS:
        assert not [f for f in parts(out, sub) if f.startswith(".tmp-")], sub
        assert len(parts(out, sub)) == kept // 2, sub  # one network per device and call
    assert len(results.Store(out).done_ids()) == kept
    assert not os.path.exists(os.path.join(out, "corrupt"))
    manifest = results.read_manifest(out)
    assert manifest["status"] == "partial"
    assert manifest["shards"]["s0of1"]["status"] == name
    assert manifest["shards"]["s0of1"]["pending"] == N_NETS - kept

    # the same sweep again trains the rest: the uninterrupted table, bit for bit
    summary = engine.run_sweep(spec.loads(SPEC), out, progress=False, max_memory=TINY_MEMORY)
    assert (summary.trained, summary.skipped) == (N_NETS - kept, kept)
    assert results.read_manifest(out)["status"] == "complete"
    pd.testing.assert_frame_equal(runs_table(out), runs_table(reference), check_exact=True)


def test_a_signal_during_a_parts_write_keeps_that_part_once(tmp_path, monkeypatch):
    """A signal that lands while a part is written (the shield defers it to the write's end)
    stops the sweep there: that part is written once and counted once, and the message and
    the manifest count what is on disk."""
    out = str(tmp_path / "out")
    write, names = Store.write_part, []

    def signalled(self, name, *frames):
        write(self, name, *frames)
        names.append(name)
        if len(names) == 1:  # as a user's Ctrl-C would, while the part is being committed
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(Store, "write_part", signalled)
    with pytest.raises(Interrupted) as stopped:
        engine.run_sweep(spec.loads(SPEC), out, progress=False, max_memory=TINY_MEMORY)
    said = SAID.fullmatch("sweepnet: " + stopped.value.message)  # the CLI's prefix
    assert said and (int(said[3]), int(said[4]), int(said[5])) == (2, 2, N_NETS - 2), said
    assert len(names) == 1 and len(results.Store(out).done_ids()) == 2
    assert results.read_manifest(out)["shards"]["s0of1"]["pending"] == N_NETS - 2


OLAH = """
name = "olah"
[data]
dataset = "disk_annulus"
n_train = 512
n_test = 8192
[model]
width = [1, 2, 3, 4, 5, 6, 7, 8]
depth = [1, 2, 3, 4, 5, 6, 7, 8]
activation = ["tanh", "sigmoid", "softplus", "relu"]
[train]
steps = 3000
seeds = 16
eval_every = 100
"""


@pytest.mark.parametrize("fused", [False, True], ids=["xla", "fused"])
def test_a_cpu_call_lasts_a_few_seconds_by_the_cost_model_or_one_sub_batch(fused):
    """A signal abandons the call in flight: on a CPU a call is short (sweeps/olah.toml made 5
    calls of 826 networks, 66 s each with the kernel), on an accelerator as large as it fits."""
    s = spec.loads(OLAH)
    (b,) = plan.make_plan(s, 2, platform="cpu", fused=fused).buckets
    seconds = cost_lib.network_seconds(b.static, b.runs, fused)
    sub = plan.sub_batch(b.static, fused)
    assert b.chunk == 2 * sub and b.chunk // 2 * seconds > plan.CALL_S  # one sub-batch each
    # a cheaper network: more of them a call, up to the cap
    (short,) = plan.make_plan(spec.loads(OLAH.replace("steps = 3000", "steps = 100")), 2,
                              platform="cpu", fused=fused).buckets
    seconds = cost_lib.network_seconds(short.static, short.runs, fused)
    assert 2 * sub < short.chunk and short.chunk // 2 * seconds <= plan.CALL_S
    (gpu,) = plan.make_plan(s, 2, 80 * 2**30, platform="gpu", fused=fused).buckets
    assert gpu.n_calls == 1
