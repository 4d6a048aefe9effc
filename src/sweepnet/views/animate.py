"""Watch one network learn: retrain it alone, keep its parameters at every evaluation step,
and draw its decision boundary and layer pictures (:func:`sweepnet.views.network.network`) at each.

``sweepnet inspect DIR RUN_ID --animate`` writes two files: an HTML page with a step slider
(the frames inlined as PNG, so it opens offline) and a GIF of the same frames. The frames are
drawn by vl-convert (the renderer every other picture uses) and joined into a GIF with Pillow,
the one common Python library that writes animated GIFs.

The retrained network is the stored one: a run's result depends only on its configuration
and seed, so training it again alone gives the same parameters (checked by a test), and the
last frame is the network of the runs table.
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from typing import Any, NamedTuple

import jax
import numpy as np
import pandas as pd
import vl_convert as vlc
from PIL import Image

from sweepnet.core.errors import SweepnetError
from sweepnet.engine import plan
from sweepnet.engine import run as engine
from sweepnet.store import results
from sweepnet.sweep import spec
from sweepnet.sweep.models import unpad
from sweepnet.views import network as inspect_lib
from sweepnet.views.drawing import vl_version

MAX_FRAMES = 40  # eval steps drawn at most (evenly spaced, always with the last one)


class Trajectory(NamedTuple):
    """One network through training."""

    row: pd.Series  # the stored runs row
    steps: np.ndarray  # (n_evals,) int, the eval steps
    params: list[Any]  # parameter tree (unpadded) after each eval step
    train_loss: np.ndarray  # (n_evals,)
    train_acc: np.ndarray  # (n_evals,)
    test_acc: np.ndarray  # (n_evals,)
    separation: float  # the spec's separation threshold on test accuracy


def retrain(root: str, run_id: str) -> Trajectory:
    """Train the stored run ``run_id`` of ``root`` again, alone, keeping its parameters at every
    eval step. Its configuration comes from ``root/spec.toml``."""
    row, _ = results.load_params(root, run_id)  # one-line error for an unknown run
    path = results.spec_path(root)
    s = spec.load(path)
    runs = {r.run_id: r for r in plan.expand(s)}
    if run_id not in runs:
        raise SweepnetError(f"{path}: run {run_id!r} is not in this spec (cannot retrain it)")
    cfg = runs[run_id].config
    static = plan.static_of(cfg, cfg["width"])
    out, snaps = engine.train_alone(cfg, run_id, static, capture=True)
    n = len(static.eval_steps)
    trees = [jax.tree.map(lambda a, i=i: np.asarray(a[i]), snaps) for i in range(n)]
    width, in_dim = int(row["width"]), int(row["in_dim"])
    return Trajectory(
        row,
        np.asarray(static.eval_steps),
        [unpad(t, width, in_dim) for t in trees],
        np.asarray(out.curve_loss),
        np.asarray(out.curve_train_acc),
        np.asarray(out.curve_test_acc),
        float(s.separation),
    )


def frame_indices(n: int, limit: int = MAX_FRAMES) -> list[int]:
    """At most ``limit`` evenly spaced indices of ``n`` eval steps, the first and last included."""
    if n <= limit:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, limit).round().astype(int).tolist()))


def frames(traj: Trajectory, size: int = 180, limit: int = MAX_FRAMES) -> list[tuple[int, bytes]]:
    """``(step, PNG bytes)`` of the network at each drawn eval step."""
    out = []
    for i in frame_indices(len(traj.steps), limit):
        row = traj.row.copy()
        row["test_acc"], row["train_loss"] = traj.test_acc[i], traj.train_loss[i]
        row["separated"] = bool(traj.test_acc[i] >= traj.separation)
        step = int(traj.steps[i])
        chart = inspect_lib.network(
            row, traj.params[i], size=size, title=f"Network {row['run_id']} at step {step}"
        )
        png = vlc.vegalite_to_png(chart.to_dict(), vl_version=vl_version(), scale=1.0)
        out.append((step, png))
    return out


def gif(pngs: list[bytes], ms_per_frame: int = 250, hold_last_ms: int = 1500) -> bytes:
    """An animated GIF of PNG frames (padded to the largest frame, on white)."""
    images = [Image.open(io.BytesIO(p)).convert("RGB") for p in pngs]
    w = max(im.width for im in images)
    h = max(im.height for im in images)
    canvas = []
    for im in images:
        c = Image.new("RGB", (w, h), "white")
        c.paste(im, (0, 0))
        # one adaptive palette per frame, no dithering: smooth colour fields stay small
        canvas.append(c.quantize(colors=128, dither=Image.Dither.NONE))
    durations = [ms_per_frame] * (len(canvas) - 1) + [hold_last_ms]
    buf = io.BytesIO()
    canvas[0].save(
        buf, format="GIF", save_all=True, append_images=canvas[1:], duration=durations, loop=0
    )
    return buf.getvalue()


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em;
       color: #222; }}
.controls {{ display: flex; gap: 1em; align-items: center; margin: 1em 0; }}
input[type=range] {{ width: 480px; }}
</style>
</head>
<body>
<h1>{title}</h1>
<p>{lede}</p>
<div class="controls">
<button id="play">play</button>
<input id="step" type="range" min="0" max="{last}" value="{last}">
<span id="label"></span>
</div>
<img id="frame" alt="the network at the chosen step">
<script id="frames" type="application/json">{frames}</script>
<script>
var frames = JSON.parse(document.getElementById("frames").textContent);
var slider = document.getElementById("step"), img = document.getElementById("frame");
var label = document.getElementById("label"), timer = null;
function show(i) {{
  slider.value = i;
  img.src = "data:image/png;base64," + frames[i].png;
  label.textContent = "step " + frames[i].step + ": test accuracy " +
    frames[i].test_acc.toFixed(4) + ", train loss " + frames[i].train_loss.toPrecision(4);
}}
slider.addEventListener("input", function () {{ show(+slider.value); }});
document.getElementById("play").addEventListener("click", function () {{
  if (timer) {{ clearInterval(timer); timer = null; return; }}
  var i = 0;
  timer = setInterval(function () {{
    show(i); i += 1;
    if (i >= frames.length) {{ clearInterval(timer); timer = null; }}
  }}, 250);
}});
show(frames.length - 1);
</script>
</body>
</html>
"""


def page(traj: Trajectory, drawn: list[tuple[int, bytes]]) -> str:
    """The HTML page: the frames behind a step slider (and a play button)."""
    index = {int(s): i for i, s in enumerate(traj.steps)}
    items = []
    for step, png in drawn:
        i = index[step]
        items.append(
            {
                "step": step,
                "test_acc": float(traj.test_acc[i]),
                "train_loss": float(traj.train_loss[i]),
                "png": base64.b64encode(png).decode("ascii"),
            }
        )
    r = traj.row

    lede = (
        f"{r['dataset']}, width {int(r['width'])}, depth {int(r['depth'])}, {r['activation']}, "
        f"seed {int(r['seed'])}: retrained alone, drawn at {len(drawn)} of its "
        f"{len(traj.steps)} evaluation steps. Move the slider or press play."
    )
    return _PAGE.format(
        title=html.escape(f"Network {r['run_id']} through training"),
        lede=html.escape(lede),
        last=len(items) - 1,
        frames=json.dumps(items).replace("</", "<\\/"),
    )


def write(root: str, run_id: str, out_html: str, size: int = 180) -> tuple[str, str]:
    """Retrain ``run_id`` and write its animation: ``out_html`` and the GIF beside it (same
    name, ``.gif``). Returns both paths."""
    if not out_html.lower().endswith((".html", ".htm")):
        raise SweepnetError(f"{out_html}: an animation is an HTML page (and a GIF); name it .html")
    traj = retrain(root, run_id)
    drawn = frames(traj, size=size)
    out_gif = os.path.splitext(out_html)[0] + ".gif"
    try:
        d = os.path.dirname(out_html)
        if d:
            os.makedirs(d, exist_ok=True)
        with open(out_html, "w", encoding="utf-8") as f:
            f.write(page(traj, drawn))
        with open(out_gif, "wb") as f:
            f.write(gif([p for _, p in drawn]))
    except OSError as e:
        raise SweepnetError(f"{out_html}: cannot write ({e.strerror})") from None
    return out_html, out_gif


__all__ = ["Trajectory", "frames", "gif", "page", "retrain", "write"]
