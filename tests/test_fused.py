"""The fused CPU gradient (kernel.ops, kernel.choice): the same gradient as autodiff, the same
training."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepnet.engine import plan, programs
from sweepnet.engine import run as engine
from sweepnet.kernel import build as kernel_build
from sweepnet.kernel import choice, ops
from sweepnet.sweep import spec
from sweepnet.sweep.models import build, unpad
from sweepnet.train.separation import margin_and_grad
from sweepnet.train.step import loss_and_acc, make_train


@pytest.fixture(scope="module", autouse=True)
def kernel():
    """The kernel, built in the foreground here if need be (never at collection), and forced on
    (``SWEEPNET_FUSED=1``) whatever this machine's measured verdict says."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SWEEPNET_FUSED", "1")
        path = kernel_build.library(wait=True)
        if path is None:
            pytest.skip("the fused CPU kernel does not build here")
        yield path


def _compile(fn, *args):
    """``jit(fn)`` compiled for ``args`` at XLA's lowest CPU optimisation level: these programs
    run once (as in tests/test_masks.py)."""
    return jax.jit(fn).lower(*args).compile({"xla_backend_optimization_level": 0})


def _tree(width, depth, real, seed, fill="zeros"):
    """The padded parameter tree (numpy) of an ``mlp`` of ``width`` and ``depth`` on 2 inputs:
    random entries (biases included) in the block of real width ``real``, every other entry
    zero (as ``model.init`` and training leave them) or noise (``fill``)."""
    rng = np.random.default_rng(seed)
    noise = fill == "noise"
    tree = {"params": {}}
    for i in range(depth + 1):
        name = f"hidden_{i}" if i < depth else "out"
        rows, cols = (width, 1)[i == depth], (width, 2)[i == 0]
        live_rows, live_cols = (real, 1)[i == depth], (real, 2)[i == 0]
        live = (np.arange(rows) < live_rows)[:, None] & (np.arange(cols) < live_cols)[None, :]
        w = rng.normal(size=(rows, cols)) / np.sqrt(live_cols) * (live | noise)
        b = 0.3 * rng.normal(size=rows) * ((np.arange(rows) < live_rows) | noise)
        tree["params"][name] = {"kernel": w.astype(np.float32), "bias": b.astype(np.float32)}
    return tree


def _net(real, depth, act):
    """The kernel's view of a network of real width ``real``, ``depth`` and activation ``act``."""
    return ops.Net(jnp.int32(real), jnp.int32(depth), jnp.int32(ops.ACTIVATIONS[act]))


def _assert_same_gradient(want, got, msg=""):
    """``got`` equals autodiff's ``want`` leaf by leaf (to 3e-6 of each leaf's largest entry),
    and is exactly zero where autodiff's is: padded units and padded layers."""
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got),
                            strict=True):
        scale = float(np.max(np.abs(a))) + 1e-3
        np.testing.assert_allclose(b, a, atol=3e-6 * scale, rtol=1e-4, err_msg=f"{msg}{path}")
        np.testing.assert_array_equal(b == 0, a == 0, err_msg=f"{msg}{path}")


SLOW = pytest.mark.slow
# Which form the kernel takes is decided network by network, from its real width, depth and
# activation (fused_grad.cc: ``net_grad_any``), never from the program's padded shape: so one
# padded program holds a network of every form and activation, as a bucket of the engine does.
# Point-major, hidden width compiled fixed (1-6, 8, 16) or generic (any other); the wide form
# (wide.h: ``is_wide``) where the hidden width is the vector's floats (16 with AVX-512, 8 with
# AVX2), depth >= 2 and the activation not softplus; 4 lanes (SSE, NEON) keep point-major.
FORMS = [  # (real width, depth, activation)
    # point-major, fixed widths: every activation, depths 1-4 (sigmoid and softplus: not 0 at 0)
    (3, 2, "tanh"), (5, 3, "tanh"), (2, 1, "relu"), (6, 2, "sigmoid"), (3, 4, "leaky_relu"),
    (3, 1, "linear"), (4, 3, "softplus"), (4, 3, "sigmoid"), (1, 2, "relu"),
    # point-major, widths compiled generically
    (7, 3, "softplus"), (11, 2, "tanh"), (13, 1, "leaky_relu"), (9, 4, "linear"),
    # width 16: the wide form with AVX-512 (and the program's own width: nothing padded)
    (16, 3, "tanh"), (16, 4, "sigmoid"), (16, 2, "relu"), (16, 3, "leaky_relu"),
    (16, 2, "linear"),
    # width 8: the wide form with AVX2, padded (point-major at width 8 with AVX-512)
    (8, 2, "relu"), (8, 4, "leaky_relu"), (8, 3, "tanh"), (8, 2, "sigmoid"), (8, 3, "linear"),
    # a vector's width but point-major: softplus, or depth 1
    (16, 2, "softplus"), (16, 1, "relu"), (8, 3, "softplus"), (8, 1, "tanh"),
]
COPIES = 5  # networks of each form, each its own random draw
PAD_WIDTH, PAD_DEPTH = 16, 4  # the program
KERNEL_ACTS = tuple(ops.ACTIVATIONS)


@pytest.fixture(scope="module", params=[
    300,  # remainders: the last block of points part full, part empty, in every form
    pytest.param(512, marks=SLOW),  # a whole number of blocks in every form and vector width
    pytest.param(37, marks=SLOW),  # one block of points, part empty (8 or 16 lanes, wide)
], ids=lambda n: f"{n}points")
def batch(request):
    """``COPIES`` networks of each of :data:`FORMS` in one padded program (width 16, depth 4,
    every kernel activation; ``which`` and ``real_depth`` each network's), biases non-zero, at
    ``points`` points: autodiff's loss gradient, the model's logits and autodiff's signed
    margins with their input gradients, and the kernel's. One compiled program for all."""
    points = request.param
    rng = np.random.default_rng(points)
    x = jnp.asarray(rng.normal(size=(2, points)) * 1.5, jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, points), jnp.int32)
    forms = [f for f in FORMS for _ in range(COPIES)]
    widths = jnp.asarray([w for w, _, _ in forms], jnp.int32)
    depths = jnp.asarray([d for _, d, _ in forms], jnp.int32)
    which = jnp.asarray([KERNEL_ACTS.index(a) for _, _, a in forms], jnp.int32)
    keys = jax.random.split(jax.random.key(points), len(forms))
    model = build("mlp", PAD_WIDTH, PAD_DEPTH, KERNEL_ACTS, 1)
    ids = jnp.asarray([ops.ACTIVATIONS[a] for a in KERNEL_ACTS], jnp.int32)

    def one(key, w, d, a):
        params = model.init(key, x[:, :1], w, 1.0)

        def noise(path, b):  # the real biases get values (they start at 0); padded ones stay 0
            if "bias" not in str(path):
                return b
            live = jnp.arange(b.shape[-1]) < (b.shape[-1] if "out" in str(path) else w)
            return b + 0.3 * jax.random.normal(jax.random.fold_in(key, 1), b.shape) * live

        params = jax.tree_util.tree_map_with_path(noise, params)
        apply = lambda p, v: model.apply(p, v, w, 1.0, real_depth=d, which=a)
        loss = lambda p: loss_and_acc(apply(p, x), y, 1)[0].mean()
        net = ops.Net(w, d, ids[a])
        want = (jax.grad(loss)(params), apply(params, x),
                margin_and_grad(lambda v: apply(params, v), x, y))
        got = (ops.grad(params, x, y, net), ops.logits(params, x, net),
               ops.margin_and_grad(params, x, y, net))
        return want, got

    args = (keys, widths, depths, which)
    want, got = jax.device_get(_compile(jax.vmap(one), *args)(*args))
    return {"forms": forms, "points": points, "want": want, "got": got}


def _pick(tree, n):
    return jax.tree.map(lambda a: a[n], tree)


def test_fused_gradient_equals_autodiff(batch):
    (want, _, _), ((got, finite), _, _) = batch["want"], batch["got"]
    assert finite.all()
    for n, form in enumerate(batch["forms"]):
        _assert_same_gradient(_pick(want, n), _pick(got, n), msg=f"network {n} {form}: ")


def test_fused_logits_equal_the_model(batch):
    (_, want, _), (_, got, _) = batch["want"], batch["got"]
    assert got.shape == want.shape == (len(batch["forms"]), 1, batch["points"])
    for n, form in enumerate(batch["forms"]):
        np.testing.assert_allclose(got[n], want[n], atol=2e-6, rtol=1e-5,
                                   err_msg=f"network {n} {form}")


def test_fused_margins_and_input_gradients_equal_autodiffs(batch):
    (_, _, want), (_, _, got) = batch["want"], batch["got"]
    for a, b in zip(want, got, strict=True):
        assert a.shape == b.shape
        for n, form in enumerate(batch["forms"]):
            np.testing.assert_allclose(b[n], a[n], atol=3e-6 * float(np.max(np.abs(a[n]))),
                                       rtol=1e-4, err_msg=f"network {n} {form}")


def test_networks_of_one_batch_have_their_own_depth_and_activation(batch):
    """One padded program (width 16, depth 4, every kernel activation): each network's
    gradient and logits are autodiff's and the model's with its real width, depth and
    activation (the three tests above, network by network), and layers past its depth get
    exactly zero gradient."""
    forms = batch["forms"]
    assert {d for _, d, _ in forms} == set(range(1, PAD_DEPTH + 1))
    assert {a for _, _, a in forms} == set(KERNEL_ACTS)
    (got, _), _, _ = batch["got"]
    for n, (_, depth, _) in enumerate(forms):
        for i in range(depth, PAD_DEPTH):
            layer = got["params"][f"hidden_{i}"]
            assert not layer["kernel"][n].any() and not layer["bias"][n].any(), (forms[n], i)


@pytest.mark.parametrize("width,real", [(8, 3), (20, 16), (12, 8)])
def test_padded_network_has_the_unpadded_networks_gradient_bit_for_bit(width, real):
    """The kernel on a padded tree whose padded entries are noise (it must read none of them):
    the gradient of the network at its own width, bit for bit, and zeros on every padded
    entry. Width 3: point-major; 16 and 8: the wide form with AVX-512 and with AVX2."""
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 200)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, 200), jnp.int32)
    padded = _tree(width, 3, real, seed=width, fill="noise")
    alone = unpad(_tree(width, 3, real, seed=width), real, 2)  # the network at its own width
    g_pad, _ = ops.grad(padded, x, y, _net(real, 3, "tanh"))
    g_alone, _ = ops.grad(alone, x, y, _net(real, 3, "tanh"))
    for a, b in zip(jax.tree.leaves(g_pad), jax.tree.leaves(g_alone), strict=True):
        block = tuple(slice(0, n) for n in b.shape)
        a = np.array(a)
        np.testing.assert_array_equal(a[block], b)
        a[block] = 0
        assert not a.any()  # the padded entries: exactly zero


def test_each_network_may_have_its_own_points():
    """Minibatches differ per network: x and y batched under vmap, not shared."""
    rng = np.random.default_rng(2)
    xs = jnp.asarray(rng.normal(size=(3, 2, 48)), jnp.float32)
    ys = jnp.asarray(rng.integers(0, 2, (3, 48)), jnp.int32)
    model = build("mlp", 4, 2, "tanh", 1)
    params = jax.tree.map(lambda *a: np.stack(a), *[_tree(4, 2, 4, seed=s) for s in range(3)])

    def autodiff(p, x, y):
        return jax.grad(lambda q: loss_and_acc(model.apply(q, x, 4, 1.0), y, 1)[0].mean())(p)

    def pair(params, xs, ys):
        want = jax.vmap(autodiff)(params, xs, ys)
        got, _ = jax.vmap(lambda p, x, y: ops.grad(p, x, y, _net(4, 2, "tanh")))(params, xs, ys)
        return want, got

    want, got = _compile(pair, params, xs, ys)(params, xs, ys)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6, rtol=1e-4)


def test_a_non_finite_logit_is_reported():
    x = jnp.ones((2, 20), jnp.float32)
    y = jnp.zeros(20, jnp.int32)
    params = jax.tree.map(lambda *a: np.stack(a), *[_tree(3, 1, 3, seed=s) for s in range(2)])
    params["params"]["out"]["bias"][1] = np.inf
    _, finite = jax.vmap(lambda p: ops.grad(p, x, y, _net(3, 1, "tanh")))(params)
    assert finite.tolist() == [True, False]


SPEC = """
name = "fused"
[data]
dataset = "disk_annulus"
n_train = 96
n_test = 256
[model]
width = [2, 3]
depth = [1, 2]
activation = ["tanh", "softplus", "elu"]
[train]
learning_rate = 0.05
steps = 80
seeds = 2
eval_every = 40
"""


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """The same sweep with the fused gradient and with XLA's (SWEEPNET_FUSED=0); and the
    variant each bucket's program was compiled (and cached) with, by run and activations."""
    s = spec.loads(SPEC)
    out, seen, real = {}, {}, programs.compile_program
    for name, flag in (("fused", "1"), ("xla", "0")):
        seen[name] = {}

        def spy(fn, static, args, cache=True, variant=None, name=name):
            seen[name][static.activations] = variant
            return real(fn, static, args, cache=cache, variant=variant)

        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SWEEPNET_FUSED", flag)
            mp.setattr(programs, "compile_program", spy)
            try:
                programs.bucket_fn.cache_clear()
                out[name] = str(tmp_path_factory.mktemp(name))
                engine.run_sweep(s, out[name], progress=False)
            finally:
                programs.bucket_fn.cache_clear()
    return s, out, seen


@pytest.mark.slow
def test_sweep_records_which_gradient_each_bucket_used(both):
    _, out, _ = both
    for name in ("fused", "xla"):
        with open(os.path.join(out[name], "manifest.json")) as f:
            buckets = json.load(f)["buckets"].values()
        grads = {tuple(b["static"]["activations"]): b["gradient"] for b in buckets}
        # elu is not in the kernel: its networks get a program of their own, XLA's either way
        assert grads == {("softplus", "tanh"): name, ("elu",): "xla"}


@pytest.mark.slow
def test_fused_and_xla_sweeps_train_the_same_networks(both):
    import sweepnet

    _, out, _ = both
    a = sweepnet.load(out["fused"]).set_index("run_id").sort_index()
    b = sweepnet.load(out["xla"]).set_index("run_id").sort_index()
    assert len(a) == len(b) == 24
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(a["test_acc"], b["test_acc"], atol=2 / 256)
    elu = a["activation"] == "elu"  # the same program both ways: the same floats
    np.testing.assert_array_equal(a.loc[elu, "train_loss"], b.loc[elu, "train_loss"])
    # and two different programs elsewhere (float round-off differs), not one program twice
    assert (a.loc[~elu, "train_loss"] != b.loc[~elu, "train_loss"]).any()


@pytest.mark.slow
def test_the_program_cache_keeps_fused_and_xla_programs_apart(both):
    s, _, seen = both
    static = plan.make_plan(s, 2).buckets[0].static
    args = (jnp.zeros(2),)
    assert programs.program_key(static, args, {"fused": True}) != programs.program_key(
        static, args, {"fused": False})
    # and the engine keys every bucket's program by the gradient it was built with
    assert seen["fused"] == {("softplus", "tanh"): {"fused": True}, ("elu",): {"fused": False}}
    assert seen["xla"] == {("softplus", "tanh"): {"fused": False}, ("elu",): {"fused": False}}


@pytest.mark.slow
def test_without_a_compiler_the_sweep_uses_xlas_gradient(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("SWEEPNET_CACHE", str(tmp_path / "cache"))
    choice.reset()
    programs.bucket_fn.cache_clear()
    try:
        assert kernel_build.library(wait=True) is None  # as SWEEPNET_FUSED=1 asks
        err = capfd.readouterr().err
        assert "building the fused CPU gradient kernel" in err  # the user sees the pause's cause
        assert "fused CPU gradient unavailable" in err
        s = spec.loads(SPEC.replace('["tanh", "softplus", "elu"]', '"tanh"'))
        assert not choice.use(plan.make_plan(s, 2).buckets[0].static, programs.mesh())
        engine.run_sweep(s, str(tmp_path / "out"), progress=False, cache=False)
        with open(tmp_path / "out" / "manifest.json") as f:
            assert {b["gradient"] for b in json.load(f)["buckets"].values()} == {"xla"}
    finally:
        monkeypatch.undo()
        choice.reset()
        programs.bucket_fn.cache_clear()
    assert kernel_build.library(wait=True) is not None


@pytest.mark.slow
def test_training_with_the_fused_gradient_equals_autodiff_training():
    """Whole trainings (Adam, evals) of networks of width 3, 8 and 16 (point-major; 8 and 16:
    the kernel's wide form on AVX2 / -512), fused against autodiff, in one program each (width
    16: the narrower networks padded, as in a bucket)."""
    s = spec.loads(SPEC)
    cfg = next(c for c in s.grid() if c["width"] == 3 and c["depth"] == 2
               and c["activation"] == "tanh")
    runs = [plan.Run(i, spec.run_id({**cfg, "width": w}), {**cfg, "width": w})
            for i, w in enumerate((3, 8, 16))]
    static = plan.static_of(cfg, 16)
    seeds, hyper = engine.chunk_inputs(runs, len(runs), static)
    data = engine.load_data(static, runs[0])
    fns = [jax.jit(jax.vmap(lambda k, h, f=f: make_train(static, fused=f)(
        jax.random.key(k), h, data))) for f in (True, False)]
    jaxprs = [str(jax.make_jaxpr(fn)(seeds, hyper)) for fn in fns]
    for target in ops.TARGETS:  # the fused program calls all three entry points, XLA's none
        assert target in jaxprs[0] and target not in jaxprs[1]
    outs = [fn(seeds, hyper) for fn in fns]
    assert outs[0].curve_loss.shape[0] == len(runs)
    for n in range(len(runs)):
        np.testing.assert_allclose(outs[0].curve_loss[n], outs[1].curve_loss[n], rtol=1e-4,
                                   atol=1e-6, err_msg=f"width {runs[n].config['width']}")
    with pytest.raises(ValueError, match="does not cover"):
        make_train(plan.static_of({**cfg, "activation": "elu"}, 3), fused=True)


def test_sweepnet_devices_says_whether_the_kernel_is_used(capsys, monkeypatch):
    from sweepnet import cli

    assert cli.main(["devices"]) == 0
    out = capsys.readouterr().out
    assert f"fused CPU gradient: {kernel_build.library()}" in out
    assert "always (SWEEPNET_FUSED=1)" in out
    monkeypatch.setenv("SWEEPNET_FUSED", "0")
    assert cli.main(["devices"]) == 0
    assert "fused CPU gradient: off (SWEEPNET_FUSED=0)" in capsys.readouterr().out


@pytest.mark.slow
def test_the_kernel_is_timed_against_xlas_gradient():
    from sweepnet.bench import gradients

    result = gradients.measure_gradients(shapes=[(3, 2, "relu")], steps=20, repeats=1)
    (row,) = result["shapes"]
    assert (row["width"], row["depth"], row["activation"]) == (3, 2, "relu")
    assert row["fused_s"] > 0 and row["xla_s"] > 0 and row["networks"] >= 8
    assert row["speedup"] == pytest.approx(row["xla_s"] / row["fused_s"])
    assert result["march"] == kernel_build.march() and " 3, 2) relu" in "\n".join(
        gradients.format_verdict(result))


@pytest.mark.slow
def test_a_bucket_switches_to_the_kernel_when_it_is_ready(both, tmp_path, monkeypatch, capfd):
    """While the kernel builds, a bucket trains in short calls with XLA's gradient and, once
    the kernel is built and measured faster, trains the networks left with it: those equal the
    networks of a run with the kernel throughout, bit for bit."""
    import sweepnet

    s, out, _ = both
    monkeypatch.delenv("SWEEPNET_FUSED")  # the choice left to measurement
    monkeypatch.setattr(choice, "use", lambda static, mesh, start=True: False)  # not built yet
    monkeypatch.setattr(choice, "pending", lambda static, mesh: choice.covers(static))
    asked = []

    def ready(static):  # ready from the second call on
        asked.append(static)
        return choice.covers(static) and len(asked) > 1

    monkeypatch.setattr(choice, "ready", ready)
    monkeypatch.setattr(plan, "interim_chunk",
                        lambda static, chunk, n: plan.whole_lanes(4, n, plan.sub_batch(static)))
    programs.bucket_fn.cache_clear()
    try:
        engine.run_sweep(s, str(tmp_path / "out"), progress=False)
    finally:
        programs.bucket_fn.cache_clear()
    assert "the fused CPU kernel is built and measured faster here" in capfd.readouterr().err
    with open(tmp_path / "out" / "manifest.json") as f:
        buckets = {tuple(b["static"]["activations"]): b for b in json.load(f)["buckets"].values()}
    mixed = buckets[("softplus", "tanh")]
    assert mixed["gradient"] == "xla+fused" and mixed["xla_networks"] == 4
    assert buckets[("elu",)]["gradient"] == "xla"  # not the kernel's: never switches
    a = sweepnet.load(str(tmp_path / "out")).set_index("run_id").sort_index()
    ref = sweepnet.load(out["fused"]).set_index("run_id").sort_index()
    kernel = a["activation"] != "elu"
    same = (a.loc[kernel, "train_loss"] == ref.loc[kernel, "train_loss"])
    # all but the first call's 4 networks, bit for bit (and XLA's gradient did train those)
    assert kernel.sum() - 4 <= same.sum() < kernel.sum()
    np.testing.assert_allclose(a["train_loss"], ref["train_loss"], rtol=1e-3, atol=1e-5)
