"""Separation metrics: regions match the generators, planted thin channels are caught, and
the metrics of hand-set networks match values worked out by hand."""

import math
import types

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from flax.traverse_util import unflatten_dict

from sweepnet.engine import plan
from sweepnet.store import results
from sweepnet.sweep import data as data_lib
from sweepnet.sweep import spec
from sweepnet.sweep.models import build
from sweepnet.train import separation as sep
from sweepnet.train.step import Static, make_data

SHELLS = [
    ("interval_1d", {}, 1),
    ("disk_annulus", {}, 2),
    ("nested_spheres", {"dim": 3}, 3),
    ("nested_spheres", {"dim": 5}, 5),
]
RINGS = [("hopf_link", {}, 3), ("unlinked_rings", {}, 3)]


def _data(name, params, d, n_test=8192):
    """The split (16 train points, ``n_test`` test points) and the program's data of a dataset.
    The tests share these sizes: a dataset's draw is a compiled program for each."""
    split = data_lib.make_split(name, params, 16, n_test)
    static = Static("mlp", d, 1, 2, 1, "tanh", "adam", 1, 1, 0, 16, n_test)
    return split, make_data(static, *split, probe=sep.make_probe(name, params, d))


def _core_distance(x, centre, a, b, radius):
    """Distance of ``x (d, n)`` to the circle of ``radius`` around ``centre`` in span(a, b)."""
    v = x - centre[:, None]
    p = a[:, None] * (a @ v)[None] + b[:, None] * (b @ v)[None]
    pn = jnp.linalg.norm(p, axis=0)
    return jnp.sqrt(jnp.maximum(jnp.sum(v * v, axis=0) - pn**2, 0.0) + (pn - radius) ** 2)


def _ring_cores(name):
    h, e = sep.RING_SHIFT[name] / 2, jnp.eye(3)
    return [(jnp.array([h, 0.0, 0.0]), e[0], e[2]), (jnp.array([-h, 0.0, 0.0]), e[0], e[1])]


def _good(name):
    """A clean separator of the dataset's two class regions: ``x (d, n) -> logits (1, n)``."""
    if name in sep.RING_SHIFT:
        cores = _ring_cores(name)
        return lambda x: (_core_distance(x, *cores[0], 0.5) - _core_distance(x, *cores[1], 0.5))[
            None
        ]
    return lambda x: (1.5 - 3 * jnp.linalg.norm(x, axis=0))[None]


def _bump(x, point, s):
    return jnp.exp(-jnp.sum((x - point[:, None]) ** 2, axis=0) / (2 * s**2))


def _channel(x, direction, s):
    """1 along the ray from the origin in ``direction``, falling off over ``s`` around it."""
    along = direction @ x
    across2 = jnp.maximum(jnp.sum(x * x, axis=0) - along**2, 0.0)
    return jnp.exp(-across2 / (2 * s**2)) * jax.nn.sigmoid(200 * along)


@pytest.fixture(scope="module")
def projected():
    """``{(name, d): (probe, {class: (points, projected)})}`` for every dataset: its probe, and
    per class its 8208 generated points (the planted tests' draw), the probe's points and the
    probe's points pushed 10x out, each with its projection onto the class's region. One
    compiled program for all (op by op, every dataset's shapes compiled anew)."""
    given = {}
    for name, params, d in SHELLS + RINGS:
        split, data = _data(name, params, d)
        x = np.concatenate([split.x_train, split.x_test]).T
        y = np.concatenate([split.y_train, split.y_test])
        given[name, d] = (data.probe, [(x[:, y == c], data.probe.x[c], data.probe.x[c] * 10.0)
                                       for c in (0, 1)])

    def every(given):
        out = {}
        for key, (probe, per_class) in given.items():
            out[key] = {}
            for c, points in enumerate(per_class):
                region = (probe.centre[c], probe.basis[c], probe.radius[c], probe.thick[c])
                out[key][c] = [(p, sep.project(p, *region)) for p in points]
        return out

    projections = jax.device_get(jax.jit(every)(given))
    return {key: (probe, projections[key]) for key, (probe, _) in given.items()}


@pytest.mark.parametrize("name,params,d", SHELLS + RINGS)
def test_regions_hold_the_generated_points_and_the_probe(projected, name, params, d):
    probe, per_class = projected[name, d]
    assert bool(probe.known) and probe.x.shape == (2, d, sep.probe_size(d))
    for c in (0, 1):
        (pts, on_pts), (px, on_px), (_, far) = per_class[c]
        assert pts.shape[1] > 1000  # the class's share of the 8208 generated points
        np.testing.assert_allclose(on_pts, pts, atol=1e-5)
        np.testing.assert_allclose(on_px, px, atol=1e-5)
        # the probe reaches the region's edges (inner and outer boundary, or the tube surface)
        assert np.max(np.linalg.norm(far - px, axis=0)) > 0


def test_projection_lands_on_the_region():
    probe = sep.make_probe("disk_annulus", {}, 2)
    x = jnp.array([[0.1, 2.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(
        sep.project(x, probe.centre[0], probe.basis[0], probe.radius[0], probe.thick[0]),
        [[2 / 3, 1.0, 2 / 3], [0, 0, 0]],
        atol=1e-6,
    )
    np.testing.assert_allclose(
        sep.project(x, probe.centre[1], probe.basis[1], probe.radius[1], probe.thick[1]),
        [[0.1, 1 / 3, 0.0], [0, 0, 0]],
        atol=1e-6,
    )


def _planted(name, d, rng, n):
    """A separator with a planted thin flaw in class 0's region: ``(f(x, where), wheres)``.

    ``wheres (n, ...)`` places ``n`` flaws at random; ``f`` is vmappable over them.
    """
    good = _good(name)
    if name in sep.RING_SHIFT:  # a small pocket of class 1 on ring 0's tube surface
        centre, a, b = (np.asarray(v) for v in _ring_cores(name)[0])
        phi, psi = rng.uniform(0, 2 * np.pi, (2, n, 1))
        u = np.cos(phi) * a + np.sin(phi) * b
        pts = centre + 0.5 * u + 0.1 * (np.cos(psi) * u + np.sin(psi) * np.cross(a, b))
        depth = lambda p: -good(p[:, None])[0, 0] + 0.02  # just over the wrong side at p
        return (lambda x, p: good(x) + depth(p) * _bump(x, p, 0.01)[None]), jnp.asarray(pts)
    if d == 1:  # a dip of width ~1e-4 just inside the shell [2/3, 1]
        pts = rng.choice([-1, 1], (n, 1)) * (2 / 3 + rng.uniform(1e-4, 1e-3, (n, 1)))
        return (lambda x, p: good(x) + 0.52 * _bump(x, p, 4e-4)[None]), jnp.asarray(pts)
    # a channel of the inner class through the whole shell along a random ray: what a network
    # whose decision regions are all unbounded must have; it pokes above zero only in a strip
    # narrower than the random test points' spacing. On the ray z = 0.02 > 0 at every radius;
    # off it z falls back to the clean 1.5 - 3r.
    u = rng.normal(size=(n, d))
    s = {2: 0.002, 3: 0.01, 5: 0.03}[d]
    lift = lambda x: 3 * jnp.linalg.norm(x, axis=0) - 1.5 + 0.02
    return (
        (lambda x, p: good(x) + (lift(x) * _channel(x, p, s))[None]),
        jnp.asarray(u / np.linalg.norm(u, axis=1, keepdims=True), jnp.float32),
    )


# these programs run once, for properties with room to spare at any compiler optimisation:
# compiled at XLA's lowest CPU optimisation level, they compile in about half the time
QUICK_COMPILE = {"xla_backend_optimization_level": 0}


def _planted_case(name, params, d):
    """``(f, args)``: ``f(*args)`` gives ``(acc, metrics)`` of the clean separator (first) and of
    8 flawed ones: accuracy on the random test points and the separation metrics."""
    split, data = _data(name, params, d)
    x_test = jnp.asarray(split.x_test.T)
    flawed, wheres = _planted(name, d, np.random.default_rng(7), 8)

    def one(where, strength):
        f = lambda x: _good(name)(x) * (1 - strength) + flawed(x, where) * strength
        acc = jnp.mean((f(x_test)[0] > 0) == (jnp.asarray(split.y_test) == 1))
        return acc, sep.metrics(f, data.probe, data.x_test, data.y_test)

    strength = jnp.concatenate([jnp.zeros(1), jnp.ones(len(wheres))])  # first: the clean one
    return jax.vmap(one), (jnp.concatenate([wheres[:1], wheres]), strength)


def _planted_outputs(cases) -> dict:
    """``{(name, d): (acc, metrics)}`` of ``cases`` (``(name, params, d)``), side by side in one
    compiled program: one compile however many datasets."""
    fns = {(name, d): _planted_case(name, params, d) for name, params, d in cases}
    every = lambda args: {k: fn(*args[k]) for k, (fn, _) in fns.items()}
    args = {k: a for k, (_, a) in fns.items()}
    return jax.device_get(jax.jit(every, compiler_options=QUICK_COMPILE)(args))


PLANTED = [p if p[0] == "disk_annulus" else pytest.param(*p, marks=pytest.mark.slow)
           for p in SHELLS + RINGS]


@pytest.fixture(scope="module")
def planted_slow():
    """The slow tier's datasets' planted flaws, in one program (see ``_planted_outputs``)."""
    return _planted_outputs([p for p in SHELLS + RINGS if p[0] != "disk_annulus"])


@pytest.mark.parametrize("name,params,d", PLANTED)
def test_certificate_catches_a_planted_thin_channel(name, params, d, request):
    if name == "disk_annulus":  # the quick tier's dataset: a program of its own
        acc, out = _planted_outputs([(name, params, d)])[name, d]
    else:
        acc, out = request.getfixturevalue("planted_slow")[name, d]
    assert bool(out["certified"][0]) and float(out["worst_margin"][0]) > 0
    assert float(acc[1:].min()) >= 0.999  # random probe points barely see the flaws...
    assert not bool(out["certified"][1:].any())  # ...the certificate sees every one
    assert bool((out["worst_margin"] <= out["margin"]).all())


def test_unknown_topology_gives_a_dummy_probe():
    split, data = _data("two_spirals", {}, 2, n_test=64)
    assert not bool(data.probe.known)
    out = sep.metrics(lambda x: x[:1] * 0 + 1.0, data.probe, data.x_test, data.y_test)
    assert math.isnan(float(out["worst_margin"])) and not bool(out["certified"])
    assert float(out["margin"]) == -1.0  # every class-0 point has margin -1


def test_hand_set_network_metrics_match_hand_values():
    """``z = 1.5 - 3 relu(x) - 3 relu(-x)`` on interval_1d: every margin is known in closed form."""
    model = build("mlp", 2, 1, "relu", 1)
    params = {
        "params": {
            "hidden_0": {"kernel": jnp.array([[1.0], [-1.0]]), "bias": jnp.zeros(2)},
            "out": {"kernel": jnp.array([[-3.0, -3.0]]), "bias": jnp.array([1.5])},
        }
    }
    apply_fn = lambda x: model.apply(params, x, 2, 1.0)
    split, data = _data("interval_1d", {}, 1)
    out = sep.metrics(apply_fn, data.probe, data.x_test, data.y_test)
    x, y = split.x_test[:, 0], split.y_test
    z = 1.5 - 3 * np.abs(x)
    np.testing.assert_allclose(float(out["margin"]), np.min(np.where(y == 1, z, -z)), rtol=1e-5)
    # worst over the closed regions: |x| = 1/3 (class 1) and |x| = 2/3 (class 0), both 0.5
    np.testing.assert_allclose(float(out["worst_margin"]), 0.5, atol=1e-5)
    assert bool(out["certified"])
    np.testing.assert_allclose(float(out["max_grad"]), 3.0, rtol=1e-5)


def test_hand_set_tanh_network_max_grad_and_a_width_1_failure():
    """``z = 2 tanh(4 x)`` is monotone: it cannot be right on both sides of the interval."""
    model = build("mlp", 1, 1, "tanh", 1)
    params = {
        "params": {
            "hidden_0": {"kernel": jnp.array([[4.0]]), "bias": jnp.zeros(1)},
            "out": {"kernel": jnp.array([[2.0]]), "bias": jnp.zeros(1)},
        }
    }
    split, data = _data("interval_1d", {}, 1)
    out = sep.metrics(
        lambda x: model.apply(params, x, 1, 1.0), data.probe, data.x_test, data.y_test
    )
    # worst: class 0 at x = 1 (z = 2 tanh 4, wrong side); gradient largest at x = 0: 8
    np.testing.assert_allclose(float(out["worst_margin"]), -2 * np.tanh(4.0), rtol=1e-5)
    np.testing.assert_allclose(float(out["max_grad"]), 8.0, rtol=1e-4)
    assert not bool(out["certified"])


def test_signed_margin_multiclass_by_hand():
    logits = jnp.array([[1.0, 0.0, 5.0], [3.0, 0.5, 1.0], [2.0, -1.0, 4.0]])
    y = jnp.array([1, 0, 2])
    np.testing.assert_allclose(sep.signed_margin(logits, y), [1.0, -0.5, -1.0])
    np.testing.assert_allclose(
        sep.signed_margin(jnp.array([[2.0, -3.0]]), jnp.array([0, 0])), [-2.0, 3.0]
    )


def test_results_carry_the_separation_columns(tiny_results):
    from sweepnet.store import results

    runs = results.load(tiny_results)
    assert str(runs["certified"].dtype) == "boolean" and runs["certified"].notna().all()
    assert (runs["worst_margin"] <= runs["margin"] + 1e-6).all()
    # certified means worst_margin > 0, row by row. This 60-step sweep certifies nothing, so
    # what a certified network is (every test point right; 16 of them, checked against a
    # dense grid) is tested on trained networks in test_science.py
    assert (runs["certified"].astype(bool) == (runs["worst_margin"] > 0)).all()
    assert (runs["max_grad"] > 0).all()


def test_witness_is_a_real_misclassified_point_of_its_region():
    _, data = _data("disk_annulus", {}, 2)
    flawed, wheres = _planted("disk_annulus", 2, np.random.default_rng(3), 1)
    f = lambda x: flawed(x, wheres[0])
    margin, point, label = jax.jit(lambda: sep.witness(f, data.probe))()
    assert float(margin) < 0 and int(label) == 0
    z = float(f(point[:, None])[0, 0])
    assert z > 0 and -z == pytest.approx(float(margin), rel=1e-5)  # class 0, called class 1
    assert 2 / 3 - 1e-5 <= float(jnp.linalg.norm(point)) <= 1 + 1e-5  # inside the annulus


# --- what the runs table says about one call's output, and the margin's padding (issue 28) ----

FRAMES_SPEC = """
name = "frames"
[data]
dataset = "disk_annulus"
[model]
width = [2, 3]
depth = 1
[train]
steps = 40
eval_every = 20
seeds = 2
separation = 0.75
"""


def test_to_frames_reads_separated_steps_to_fit_and_certified_from_the_call():
    """``results.to_frames`` on a hand-made call output of 4 networks and 1 padding lane:
    ``separated`` is ``test_acc >= separation`` (0.75 is exact in float32) and never for a
    diverged network, ``steps_to_fit`` -1 is null and any step a value, ``certified`` null for a
    dataset of unknown topology, and the padding lane is dropped."""
    s = spec.loads(FRAMES_SPEC)
    (bucket,) = plan.make_plan(s, 1).buckets
    runs = list(bucket.runs)
    assert len(runs) == 4
    # the last run as if its dataset had no known topology (its certificate means nothing)
    runs[3] = plan.Run(runs[3].index, runs[3].run_id,
                       {**runs[3].config, "dataset": "two_spirals"})
    lanes = len(runs) + 1
    n_eval = len(bucket.static.eval_steps)
    f32 = lambda *v: np.asarray(v, np.float32)
    out = types.SimpleNamespace(
        test_acc=f32(0.75, 0.7499, 1.0, 1.0, 1.0), train_acc=f32(1.0, 0.9, 1.0, 1.0, 1.0),
        train_loss=f32(0.1, 0.2, 0.3, 0.4, 0.5),
        diverged=np.asarray([False, False, True, False, False]),
        steps_to_fit=np.asarray([20, -1, 40, -1, 20], np.int32),
        margin=f32(0.5, -0.1, 0.2, 0.3, 9.0), worst_margin=f32(0.25, -0.2, -0.1, 0.1, 9.0),
        certified=np.asarray([True, False, False, True, True]),
        max_grad=f32(1.5, 2.5, 3.5, 4.5, 9.0),
        curve_loss=np.zeros((lanes, n_eval), np.float32),
        curve_train_acc=np.zeros((lanes, n_eval), np.float32),
        curve_test_acc=np.tile(f32(0.5, 0.75), (lanes, 1)),
        params=unflatten_dict({("params", "out", "kernel"): np.zeros((lanes, 1, 3), np.float32)}),
    )
    df, curves, params = results.to_frames(bucket.static, runs, out, s, {"part": "p"})
    assert df["run_id"].tolist() == [r.run_id for r in runs]  # padding lane dropped
    assert df["separated"].tolist() == [True, False, False, True]
    assert df["diverged"].tolist() == [False, False, True, False]
    assert df["steps_to_fit"].tolist() == [20, pd.NA, 40, pd.NA]
    assert str(df["certified"].dtype) == "boolean"
    assert df["certified"].tolist() == [True, False, False, pd.NA]
    np.testing.assert_array_equal(df["test_acc"], f32(0.75, 0.7499, 1.0, 1.0))
    np.testing.assert_array_equal(df["worst_margin"], f32(0.25, -0.2, -0.1, 0.1))
    np.testing.assert_array_equal(df["max_grad"], f32(1.5, 2.5, 3.5, 4.5))
    assert len(curves) == 4 * n_eval and curves["test_acc"].tolist() == [0.5, 0.75] * 4
    assert params["params/out/kernel"].shape == (4, 1, 3)


def test_metrics_skip_padding_points_and_start_max_grad_at_zero():
    """``metrics`` on one test block of 4 points, 2 of them padding (label -1): the margin and
    the largest gradient are the real points' alone. ``z = x / 2``: every gradient is 1/2 (< 1,
    so a maximum started at, or padded with, 1 shows); the padding point at x = 4 (label read
    as 0) would have margin -2."""
    _, data = _data("two_spirals", {}, 2, n_test=64)  # a dummy probe: unknown topology
    x_test = jnp.asarray([[[0.2, 0.4, 4.0, 4.0], [0.0, 0.0, 0.0, 0.0]]])  # (1 block, d, 4)
    y_test = jnp.asarray([[1, 1, -1, -1]], jnp.int32)
    out = sep.metrics(lambda x: 0.5 * x[:1], data.probe, x_test, y_test)
    np.testing.assert_allclose(float(out["margin"]), 0.1, rtol=1e-6)
    np.testing.assert_allclose(float(out["max_grad"]), 0.5, rtol=1e-6)


def test_signed_margin_multiclass_with_more_points_than_classes():
    """``(3 classes, 5 points)`` logits: rows are classes, columns points (square logits hide
    a mix-up of the two)."""
    logits = jnp.array([[1.0, 0.0, 5.0, 2.0, 0.0],
                        [3.0, 0.5, 1.0, 2.0, 0.0],
                        [2.0, -1.0, 4.0, 1.0, 0.0]])
    y = jnp.array([1, 0, 2, 0, 2])
    np.testing.assert_allclose(sep.signed_margin(logits, y), [1.0, -0.5, -1.0, 0.0, 0.0])
