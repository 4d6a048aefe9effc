"""Watching a network learn: the retrained network is the stored one, and both files are drawn."""

import io
import json
import re

import jax
import numpy as np
import pytest
from PIL import Image

import sweepnet
from sweepnet.cli import main
from sweepnet.core.errors import SweepnetError
from sweepnet.views import animate


@pytest.fixture(scope="module")
def trajectory(tiny_results):
    """The width-2, depth-1 network of the tiny sweep retrained: the sweep trained it padded to
    its bucket's width 3 and depth 2, the retrain trains it alone, unpadded (and its pictures
    are the smallest to draw)."""
    runs = sweepnet.load(tiny_results)
    row = runs[(runs["width"] == 2) & (runs["depth"] == 1)].iloc[0]
    return animate.retrain(tiny_results, row["run_id"])


def test_retrained_final_params_and_curves_equal_the_stored_ones(tiny_results, trajectory):
    run_id = trajectory.row["run_id"]
    _, stored = sweepnet.load_params(tiny_results, run_id)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
        stored,
        trajectory.params[-1],
    )
    c = sweepnet.load_curves(tiny_results)
    c = c[c["run_id"] == run_id].sort_values("step")
    np.testing.assert_array_equal(c["step"], trajectory.steps)
    np.testing.assert_allclose(c["train_loss"], trajectory.train_loss, rtol=1e-5, atol=1e-6)
    # and the snapshots are of training, not one tree repeated: the first differs from the last
    first, last = trajectory.params[0], trajectory.params[-1]
    assert not np.allclose(first["params"]["hidden_0"]["kernel"],
                           last["params"]["hidden_0"]["kernel"])


def test_frame_indices_keep_first_and_last():
    assert animate.frame_indices(3) == [0, 1, 2]
    idx = animate.frame_indices(100, limit=10)
    assert idx[0] == 0 and idx[-1] == 99 and len(idx) == 10


@pytest.mark.slow
def test_cli_animate_writes_a_slider_page_and_a_gif(tiny_results, trajectory, tmp_path, capsys):
    run_id = trajectory.row["run_id"]
    out = tmp_path / "anim.html"
    assert main(["inspect", tiny_results, run_id, "--animate", "--out", str(out)]) == 0
    assert "anim.gif" in capsys.readouterr().out
    page = out.read_text()
    frames = json.loads(re.search(r'id="frames" type="application/json">(.*?)</script>',
                                  page, re.S)[1])
    assert [f["step"] for f in frames] == trajectory.steps.tolist()
    assert 'type="range"' in page and "http" not in page.split("<script")[0].lower()
    gif = Image.open(io.BytesIO((tmp_path / "anim.gif").read_bytes()))
    assert gif.n_frames == len(frames)


def test_animate_errors(tiny_results, tmp_path):
    with pytest.raises(SweepnetError, match="no run with id"):
        animate.retrain(tiny_results, "nope")
    with pytest.raises(SweepnetError, match="name it .html"):
        animate.write(tiny_results, "nope", str(tmp_path / "a.png"))
