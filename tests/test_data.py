import jax
import numpy as np
import pandas as pd
import pytest

from sweepnet.core.errors import SweepnetError
from sweepnet.sweep import data

GENERATED = [n for n in data.DATASETS if n != "file"]
# One draw size for the tests below: a configuration's draw is one program per (n_train, n_test)
# and shape parameters (seed, noise level and float parameters are its inputs), so tests that
# draw at the same size share it instead of compiling their own.
N_TRAIN, N_TEST = 300, 700


def _both(split) -> tuple[np.ndarray, np.ndarray]:
    """The train and test points of a split together: ``x (n_train + n_test, dim)``, ``y``."""
    return np.concatenate([split.x_train, split.x_test]), np.concatenate([split.y_train,
                                                                           split.y_test])


@pytest.mark.parametrize("name", GENERATED)
def test_every_dataset_draws_balanced_labelled_points(name):
    params = data.default_params(name)
    split = data.make_split(name, params, N_TRAIN, N_TEST, data_seed=1)
    ds = data.DATASETS[name]
    dim, k = ds.dim(params), ds.n_classes(params)
    assert split.x_train.shape == (N_TRAIN, dim) and split.x_test.shape == (N_TEST, dim)
    assert split.x_train.dtype == np.float32 and split.y_train.dtype == np.int32
    counts = np.bincount(split.y_train, minlength=k)
    assert counts.max() - counts.min() <= 1
    assert np.isfinite(split.x_train).all()
    ext = data.extent(name, params)
    assert np.abs(split.x_test).max() <= ext * 1.5
    # train and probe are independent draws
    assert not np.allclose(split.x_train[:10], split.x_test[:10])


@pytest.mark.parametrize("name", GENERATED)
def test_every_dataset_is_a_pure_vmappable_function(name):
    ds = data.DATASETS[name]
    params = data.default_params(name)
    dynamic = {k: v for k, v in params.items() if not ds.params[k].static}
    static = {k: v for k, v in params.items() if ds.params[k].static}
    keys = jax.random.split(jax.random.key(0), 3)
    xs, ys = jax.vmap(lambda k: ds.fn(k, 16, **static, **dynamic))(keys)
    x0, y0 = ds.fn(keys[0], 16, **params)
    np.testing.assert_allclose(np.asarray(xs[0]), np.asarray(x0), rtol=1e-6, atol=1e-6)
    assert np.array_equal(np.asarray(ys[0]), np.asarray(y0))
    assert not np.allclose(np.asarray(xs[0]), np.asarray(xs[1]))


@pytest.mark.parametrize("name, dim", [("interval_1d", 1), ("disk_annulus", 2),
                                       ("nested_spheres", 4)])
def test_ball_and_shell_regions(name, dim):
    params = data.default_params(name) | ({"dim": dim} if name == "nested_spheres" else {})
    s = data.make_split(name, params, 2000, 1)  # the size of topology's clouds (1,000 a class)
    r = np.linalg.norm(s.x_train, axis=1)
    assert (r[s.y_train == 1] < 1 / 3 + 1e-6).all()
    assert ((r[s.y_train == 0] > 2 / 3 - 1e-6) & (r[s.y_train == 0] < 1 + 1e-6)).all()
    # uniform by volume: half the inner-class points lie beyond 2^(-1/dim) of the radius
    inner = r[s.y_train == 1] * 3
    assert abs(np.mean(inner > 0.5 ** (1 / dim)) - 0.5) < 0.06


def test_xor_labels_follow_quadrants():
    x, y = _both(data.make_split("xor", {"margin": 0.1}, N_TRAIN, N_TEST))
    assert ((x[:, 0] * x[:, 1] > 0) == (y == 1)).all()
    assert (np.abs(x) >= 0.1 - 1e-6).all()


def test_rings_link_or_not():
    """The xz-ring of hopf_link pierces the xy-disk of the other ring; unlinked's does not."""
    for name, linked in (("hopf_link", True), ("unlinked_rings", False)):
        x, y = _both(data.make_split(name, {"tube": 0.0}, N_TRAIN, N_TEST))
        a, b = x[y == 1], x[y == 0]
        centre = a.mean(axis=0)
        assert np.allclose(a[:, 2], 0, atol=1e-5)  # ring A in the z=0 plane
        near_plane = b[np.abs(b[:, 2]) < 0.02]
        assert len(near_plane) >= 4, len(near_plane)  # points to judge by (6 here)
        inside = np.linalg.norm(near_plane[:, :2] - centre[:2], axis=1) < 0.5
        assert inside.any() == linked


def test_noise_jitters_points():
    clean = data.make_split("disk_annulus", data.default_params("disk_annulus"), N_TRAIN, N_TEST)
    noisy = data.make_split("disk_annulus", data.default_params("disk_annulus"), N_TRAIN, N_TEST,
                            noise=0.1)
    assert np.array_equal(clean.y_train, noisy.y_train)
    assert 0.05 < np.std(noisy.x_train - clean.x_train) < 0.15


@pytest.mark.parametrize("ext", [".npz", ".csv", ".parquet"])
def test_file_dataset(tmp_path, ext):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 3)).astype(np.float32)
    y = np.where(x[:, 0] > 0, "pos", "neg")
    path = str(tmp_path / f"pts{ext}")
    if ext == ".npz":
        np.savez(path, x=x, y=y)
    else:
        df = pd.DataFrame(x, columns=["a", "b", "c"]).assign(label=y)
        df.to_csv(path, index=False) if ext == ".csv" else df.to_parquet(path)
    s = data.make_split("file", {"path": path, "label": "label"}, 30, 100)
    assert s.x_train.shape == (30, 3) and s.x_test.shape == (20, 3)
    both = np.concatenate([s.x_train, s.x_test])
    assert np.allclose(np.sort(both, axis=0), np.sort(x, axis=0))
    labels = np.concatenate([s.y_train, s.y_test])
    assert ((both[:, 0] > 0) == (labels == 1)).all()  # "neg" < "pos"
    assert data.DATASETS["file"].dim({"path": path, "label": "label"}) == 3


def test_a_files_noise_is_the_eager_jitter_bit_for_bit(tmp_path):
    """A file's points get the noise 0.5.3 gave them: the noise key's two normal draws, scaled
    and added in float32 with one rounding each (as eager JAX did)."""
    x = np.random.default_rng(1).normal(size=(60, 2)).astype(np.float32)
    path = str(tmp_path / "pts.npz")
    np.savez(path, x=x, y=(x[:, 0] > 0).astype(np.int32))
    clean = data.make_split("file", {"path": path}, 40, 20, 0.0, 3)
    noisy = data.make_split("file", {"path": path}, 40, 20, 0.1, 3)
    k_noise = jax.random.fold_in(jax.random.key(3), 2)
    kn_tr, kn_te = jax.random.split(k_noise)
    for got, pts, k in ((noisy.x_train, clean.x_train, kn_tr), (noisy.x_test, clean.x_test, kn_te)):
        want = np.asarray(pts + 0.1 * jax.random.normal(k, pts.shape))
        assert got.dtype == np.float32 and np.array_equal(got.view(np.int32), want.view(np.int32))


def test_bad_data_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b,label\n1,2,x\n3,oops,y\n")
    with pytest.raises(SweepnetError, match=r"bad.csv: b: feature columns must be numeric "
                       r"\(found 'oops'\)"):
        data.read_points(str(bad))
    with pytest.raises(SweepnetError, match="no label column"):
        data.read_points(str(bad), label="klass")
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(SweepnetError, match="junk.parquet"):
        data.read_points(str(junk))
    with pytest.raises(SweepnetError, match=r"\.txt"):
        data.read_points(str(tmp_path / "x.txt"))


def test_split_is_a_deterministic_function_of_its_settings():
    p = data.default_params("two_spirals") | {"turns": 1.5}
    a = data.make_split("two_spirals", p, N_TRAIN, N_TEST, noise=0.01, data_seed=3)
    b = data.make_split("two_spirals", p, N_TRAIN, N_TEST, noise=0.01, data_seed=3)
    c = data.make_split("two_spirals", p | {"turns": 2.0}, N_TRAIN, N_TEST, noise=0.01,
                        data_seed=3)
    assert all(np.array_equal(u, v) for u, v in zip(a, b, strict=True))
    assert not np.array_equal(a.x_train, c.x_train)


def _split_op_by_op(name, params, n_train, n_test, noises, data_seed):
    """make_split as 0.5.3 and earlier drew it, with XLA's default options: eager keys, one
    program per draw, eager noise (the reference the one-program draw must reproduce). One
    split per noise level in ``noises``, all from the same two draws."""
    spec = data.DATASETS[name].params
    p = data.default_params(name) | params
    static = {k: v for k, v in p.items() if spec[k].static}
    dynamic = {k: np.float32(v) for k, v in p.items() if not spec[k].static}
    root = jax.random.key(data_seed)
    k_train, k_test, k_noise = (jax.random.fold_in(root, i) for i in range(3))
    draw = lambda key, n: jax.jit(lambda k, d: data.DATASETS[name].fn(k, n, **static, **d))(
        key, dynamic)
    (xtr, ytr), (xte, yte) = draw(k_train, n_train), draw(k_test, n_test)
    splits = []
    for noise in noises:
        ntr, nte = xtr, xte
        if noise > 0:
            kn_tr, kn_te = jax.random.split(k_noise)
            ntr = xtr + noise * jax.random.normal(kn_tr, np.shape(xtr))
            nte = xte + noise * jax.random.normal(kn_te, np.shape(xte))
        splits.append([np.asarray(a) for a in (ntr, ytr, nte, yte)])
    return splits


@pytest.mark.parametrize("name", ["disk_annulus", *(pytest.param(n, marks=pytest.mark.slow) for n in
                                   ("hopf_link", "naitzat_d3", "two_spirals"))])  # 1-14 s each
def test_the_one_draw_program_keeps_the_points_bit_for_bit(name):
    """A configuration's draw is one program, compiled with options chosen for compile speed
    (``host.DRAW_COMPILER_OPTIONS``): it must give exactly the points that separate programs
    with XLA's default options gave, noise included (XLA fuses noise into a multiply-add when
    it is added in the program: 1 ulp off in a third of the points). Without noise and with."""
    noises = (0.0, 0.05)
    refs = _split_op_by_op(name, {}, N_TRAIN, N_TEST, noises, 11)
    for noise, ref in zip(noises, refs, strict=True):
        one = data.make_split(name, {}, N_TRAIN, N_TEST, noise, 11)
        for u, v in zip(one, ref, strict=True):
            assert u.dtype == v.dtype and u.shape == v.shape
            assert np.array_equal(u.view(np.int32), v.view(np.int32)), noise
