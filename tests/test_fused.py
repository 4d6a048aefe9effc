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


def _params(width, depth, act, real, n, x, seed=0):
    """``n`` networks of padded ``width`` and real width ``real``, biases made non-zero."""
    model = build("mlp", width, depth, act, 1)
    keys = jax.random.split(jax.random.key(seed), n)
    params = jax.vmap(lambda k: model.init(k, x[:, :1], real, 1.0))(keys)
    # give the real biases values (they start at 0); padded units keep exactly 0
    def noise(path, a):
        if "bias" not in str(path):
            return a
        live = jnp.arange(a.shape[-1]) < (a.shape[-1] if "out" in str(path) else real)
        return a + 0.3 * jax.random.normal(jax.random.key(seed + 1), a.shape) * live[None, :]

    return model, jax.tree_util.tree_map_with_path(noise, params)


def _net(real, depth, act):
    """The kernel's view of a network of real width ``real``, ``depth`` and activation ``act``."""
    return ops.Net(jnp.int32(real), jnp.int32(depth), jnp.int32(ops.ACTIVATIONS[act]))


def _autodiff(model, params, x, y, real):
    def loss(p):
        value, _ = loss_and_acc(model.apply(p, x, real, 1.0), y, 1)
        return value.mean()

    return jax.grad(loss)(params)


def _assert_same_gradient(want, got):
    """``got`` equals autodiff's ``want`` leaf by leaf (to 3e-6 of each leaf's largest entry),
    and is exactly zero where autodiff's is: padded units and padded layers."""
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(want), jax.tree.leaves(got),
                            strict=True):
        scale = float(jnp.max(jnp.abs(a))) + 1e-3
        np.testing.assert_allclose(b, a, atol=3e-6 * scale, rtol=1e-4, err_msg=str(path))
        np.testing.assert_array_equal(b == 0, a == 0, err_msg=str(path))


SLOW = pytest.mark.slow
CASES = [  # (padded width, depth, real width, activation, points)
    (3, 2, 3, "tanh", 512),
    (8, 3, 5, "tanh", 300),  # padded; points not a multiple of a block
    pytest.param(4, 1, 2, "relu", 37, marks=SLOW),
    pytest.param(6, 2, 6, "sigmoid", 64, marks=SLOW),
    pytest.param(5, 4, 3, "leaky_relu", 100, marks=SLOW),
    pytest.param(3, 1, 3, "linear", 16, marks=SLOW),
    (7, 3, 4, "softplus", 200),  # 7: a width compiled generically
    pytest.param(16, 2, 11, "tanh", 129, marks=SLOW),
    # the kernel's wide form (hidden width = its vector's floats: 16 with AVX-512, 8 with AVX2),
    # whichever this machine's build has; 4 lanes (SSE, NEON) keep the point-major form
    (16, 3, 16, "tanh", 200),
    pytest.param(10, 2, 8, "relu", 129, marks=SLOW),
    (4, 3, 4, "sigmoid", 70),
]
# the quick tier keeps one case of each form (narrow, padded, generic width, wide) and the two
# activations that are not 0 at 0; every activation runs in the slow tier


@pytest.mark.parametrize("width,depth,real,act,points", CASES)
def test_fused_gradient_equals_autodiff(width, depth, real, act, points):
    rng = np.random.default_rng(width * 100 + depth)
    x = jnp.asarray(rng.normal(size=(2, points)) * 1.5, jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, points), jnp.int32)
    model, params = _params(width, depth, act, real, 5, x)
    want = jax.vmap(lambda p: _autodiff(model, p, x, y, real))(params)
    net = _net(real, depth, act)
    got, finite = jax.jit(jax.vmap(lambda p: ops.grad(p, x, y, net)))(params)
    assert bool(finite.all())
    _assert_same_gradient(want, got)


@pytest.mark.parametrize("width,depth,real,act,points", CASES[:3] + CASES[6:])
def test_fused_logits_equal_the_model(width, depth, real, act, points):
    rng = np.random.default_rng(width + depth)
    x = jnp.asarray(rng.normal(size=(2, points)) * 1.5, jnp.float32)
    model, params = _params(width, depth, act, real, 4, x)
    want = jax.vmap(lambda p: model.apply(p, x, real, 1.0))(params)
    got = jax.jit(jax.vmap(lambda p: ops.logits(p, x, _net(real, depth, act))))(params)
    assert got.shape == want.shape == (4, 1, points)
    np.testing.assert_allclose(got, want, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("width,depth,real,act,points", CASES[:3] + CASES[6:])
def test_fused_margins_and_input_gradients_equal_autodiffs(width, depth, real, act, points):
    from sweepnet.train.separation import margin_and_grad

    rng = np.random.default_rng(width * depth)
    x = jnp.asarray(rng.normal(size=(2, points)) * 1.5, jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, points), jnp.int32)
    model, params = _params(width, depth, act, real, 3, x)
    want = jax.vmap(lambda p: margin_and_grad(lambda v: model.apply(p, v, real, 1.0), x, y))(
        params)
    net = _net(real, depth, act)
    got = jax.jit(jax.vmap(lambda p: ops.margin_and_grad(p, x, y, net)))(params)
    for a, b in zip(want, got, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(b, a, atol=3e-6 * float(jnp.max(jnp.abs(a))), rtol=1e-4)


@pytest.mark.parametrize("width,real", [(8, 3), (20, 16), (12, 8)])
def test_padded_network_has_the_unpadded_networks_gradient_bit_for_bit(width, real):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(2, 200)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, 200), jnp.int32)
    _, padded = _params(width, 3, "tanh", real, 1, x)
    small = jax.tree.map(lambda a: a[0], padded)
    alone = unpad(small, real, 2)  # the same network built at its own width
    g_pad, _ = ops.grad(small, x, y, _net(real, 3, "tanh"))
    g_alone, _ = ops.grad(alone, x, y, _net(real, 3, "tanh"))
    for a, b in zip(jax.tree.leaves(g_pad), jax.tree.leaves(g_alone), strict=True):
        block = tuple(slice(0, n) for n in b.shape)
        np.testing.assert_array_equal(a[block], b)
        assert not a.at[block].set(0).any()  # the padded entries: exactly zero


def test_networks_of_one_batch_have_their_own_depth_and_activation():
    """One padded program (width 6, depth 4, four activations): each network's gradient is
    autodiff's of the model with its real width, depth and activation, and padded layers get
    exactly zero."""
    acts = ("relu", "sigmoid", "softplus", "tanh")
    rng = np.random.default_rng(5)
    x = jnp.asarray(rng.normal(size=(2, 130)) * 1.5, jnp.float32)
    y = jnp.asarray(rng.integers(0, 2, 130), jnp.int32)
    model = build("mlp", 6, 4, acts, 1)
    widths = jnp.asarray([6, 2, 5, 3, 4, 1], jnp.int32)
    depths = jnp.asarray([4, 1, 2, 3, 1, 2], jnp.int32)
    which = jnp.asarray([0, 1, 2, 3, 3, 0], jnp.int32)
    keys = jax.random.split(jax.random.key(3), 6)
    params = jax.vmap(lambda k, w: model.init(k, x[:, :1], w, 1.0))(keys, widths)
    ids = jnp.asarray([ops.ACTIVATIONS[a] for a in acts], jnp.int32)

    def autodiff(p, w, d, a):
        def loss(q):
            z = model.apply(q, x, w, 1.0, real_depth=d, which=a)
            return loss_and_acc(z, y, 1)[0].mean()
        return jax.grad(loss)(p)

    want = jax.vmap(autodiff)(params, widths, depths, which)
    got, finite = jax.jit(jax.vmap(lambda p, w, d, a: ops.grad(
        p, x, y, ops.Net(w, d, ids[a]))))(params, widths, depths, which)
    assert bool(finite.all())
    _assert_same_gradient(want, got)
    # layers past a network's depth: exactly zero gradient
    for n, d in enumerate(depths.tolist()):
        for i in range(d, 4):
            assert not got["params"][f"hidden_{i}"]["kernel"][n].any()
    z = jax.vmap(lambda p, w, d, a: ops.logits(p, x, ops.Net(w, d, ids[a])))(
        params, widths, depths, which)
    zw = jax.vmap(lambda p, w, d, a: model.apply(p, x, w, 1.0, real_depth=d, which=a))(
        params, widths, depths, which)
    np.testing.assert_allclose(z, zw, atol=2e-6, rtol=1e-5)


def test_each_network_may_have_its_own_points():
    """Minibatches differ per network: x and y batched under vmap, not shared."""
    rng = np.random.default_rng(2)
    xs = jnp.asarray(rng.normal(size=(3, 2, 48)), jnp.float32)
    ys = jnp.asarray(rng.integers(0, 2, (3, 48)), jnp.int32)
    model, params = _params(4, 2, "tanh", 4, 3, xs[0])
    want = jax.vmap(lambda p, x, y: _autodiff(model, p, x, y, 4))(params, xs, ys)
    got, _ = jax.vmap(lambda p, x, y: ops.grad(p, x, y, _net(4, 2, "tanh")))(params, xs, ys)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(b, a, atol=1e-6, rtol=1e-4)


def test_a_non_finite_logit_is_reported():
    x = jnp.ones((2, 20), jnp.float32)
    y = jnp.zeros(20, jnp.int32)
    _, params = _params(3, 1, "tanh", 3, 2, x)
    params["params"]["out"]["bias"] = params["params"]["out"]["bias"].at[1].set(jnp.inf)
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
    """The same sweep with the fused gradient and with XLA's (SWEEPNET_FUSED=0)."""
    s = spec.loads(SPEC)
    out = {}
    for name, flag in (("fused", "1"), ("xla", "0")):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SWEEPNET_FUSED", flag)
            try:
                programs.bucket_fn.cache_clear()
                out[name] = str(tmp_path_factory.mktemp(name))
                engine.run_sweep(s, out[name], progress=False)
            finally:
                programs.bucket_fn.cache_clear()
    return s, out


@pytest.mark.slow
def test_sweep_records_which_gradient_each_bucket_used(both):
    _, out = both
    for name in ("fused", "xla"):
        with open(os.path.join(out[name], "manifest.json")) as f:
            buckets = json.load(f)["buckets"].values()
        grads = {tuple(b["static"]["activations"]): b["gradient"] for b in buckets}
        # elu is not in the kernel: its networks get a program of their own, XLA's either way
        assert grads == {("softplus", "tanh"): name, ("elu",): "xla"}


@pytest.mark.slow
def test_fused_and_xla_sweeps_train_the_same_networks(both):
    import sweepnet

    _, out = both
    a = sweepnet.load(out["fused"]).set_index("run_id").sort_index()
    b = sweepnet.load(out["xla"]).set_index("run_id").sort_index()
    assert len(a) == len(b) == 24
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(a["test_acc"], b["test_acc"], atol=2 / 256)
    elu = a["activation"] == "elu"  # the same program both ways: the same floats
    np.testing.assert_array_equal(a.loc[elu, "train_loss"], b.loc[elu, "train_loss"])
    # and two different programs elsewhere (float round-off differs), not one program twice
    assert (a.loc[~elu, "train_loss"] != b.loc[~elu, "train_loss"]).any()


def test_the_program_cache_keeps_fused_and_xla_programs_apart(tmp_path, monkeypatch):
    s = spec.loads(SPEC)
    static = plan.make_plan(s, 2).buckets[0].static
    args = (jnp.zeros(2),)
    assert programs.program_key(static, args, {"fused": True}) != programs.program_key(
        static, args, {"fused": False})
    # and the engine keys every bucket's program by the gradient it was built with
    seen, real = {}, programs.compile_program

    def spy(fn, static, args, cache=True, variant=None):
        seen[static.activations] = variant
        return real(fn, static, args, cache=cache, variant=variant)

    monkeypatch.setattr(programs, "compile_program", spy)
    engine.run_sweep(s, str(tmp_path / "out"), progress=False)
    assert seen == {("softplus", "tanh"): {"fused": True}, ("elu",): {"fused": False}}


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
@pytest.mark.parametrize("width", [3, 8, 16])  # 8 and 16: the kernel's wide form on AVX2 / -512
def test_training_with_the_fused_gradient_equals_autodiff_training(width):
    """One whole training (Adam, evals), fused against autodiff, in one program each."""
    s = spec.loads(SPEC)
    cfg = next(c for c in s.grid() if c["width"] == 3 and c["depth"] == 2
               and c["activation"] == "tanh")
    cfg = {**cfg, "width": width}
    static = plan.static_of(cfg, width)
    run = plan.Run(0, spec.run_id(cfg), cfg)
    seeds, hyper = engine.chunk_inputs([run], 1, static)
    data = engine.load_data(static, run)
    h = jax.tree.map(lambda a: jnp.asarray(a[0]), hyper)
    fns = [jax.jit(lambda k, f=f: make_train(static, fused=f)(jax.random.key(k), h, data))
           for f in (True, False)]
    jaxprs = [str(jax.make_jaxpr(fn)(seeds[0])) for fn in fns]
    for target in ops.TARGETS:  # the fused program calls all three entry points, XLA's none
        assert target in jaxprs[0] and target not in jaxprs[1]
    outs = [fn(seeds[0]) for fn in fns]
    np.testing.assert_allclose(outs[0].curve_loss, outs[1].curve_loss, rtol=1e-4, atol=1e-6)
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

    s, out = both
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
