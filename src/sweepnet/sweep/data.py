"""Dataset registry: each dataset is a pure function ``fn(key, n, **params) -> (x, y)``.

``x`` has shape ``(n, dim)`` float32 and ``y`` shape ``(n,)`` int32 with labels in
``0..n_classes-1``. Every generator is jit- and vmap-able over its key and its non-static
parameters; parameters marked ``static`` change array shapes (``dim``, ``classes``).
Classes are balanced: class ``c`` gets ``n // k`` points (the first ``n % k`` classes one more).
The ``file`` dataset reads the user's own points and is the one host-side exception.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from sweepnet.core.errors import SweepnetError
from sweepnet.core.host import DRAW_COMPILER_OPTIONS
from sweepnet.sweep.shapes import (
    balls,
    balls_betti,
    balls_problem,
    class_labels,
    uniform_radius,
    unit_vectors,
)


@dataclasses.dataclass(frozen=True)
class Param:
    """One dataset parameter: its default, type, and allowed range."""

    default: Any
    kind: type = float
    lo: float | None = None
    hi: float | None = None
    static: bool = False  # changes array shapes, so it is part of a compile bucket's key
    doc: str = ""


@dataclasses.dataclass(frozen=True)
class Dataset:
    name: str
    fn: Callable[..., tuple[jax.Array, jax.Array]]
    params: Mapping[str, Param]
    doc: str
    dim: Callable[[Mapping[str, Any]], int]
    n_classes: Callable[[Mapping[str, Any]], int] = lambda p: 2
    extent: float = 1.0  # points lie in [-extent, extent]^dim (for drawing)


class Split(NamedTuple):
    """Train and dense test probe of one dataset configuration (numpy, points first)."""

    x_train: np.ndarray  # (n_train, dim) float32
    y_train: np.ndarray  # (n_train,) int32
    x_test: np.ndarray  # (n_test, dim) float32
    y_test: np.ndarray  # (n_test,) int32


def _ball_vs_shell(key, n, dim, inner, gap, outer):
    """Class 1: ``|x| < inner``; class 0: ``gap < |x| < outer`` (uniform by volume)."""
    k_dir, k_rad = jax.random.split(key)
    y = class_labels(n, 2)
    u = unit_vectors(k_dir, n, dim)
    r_in = uniform_radius(k_rad, (n,), 0.0, inner, dim)
    r_out = uniform_radius(jax.random.fold_in(k_rad, 1), (n,), gap, outer, dim)
    r = jnp.where(y == 1, r_in, r_out)
    return u * r[:, None], y


def interval_1d(key, n, inner=1 / 3, gap=2 / 3, outer=1.0):
    """Olah's 1-D case: class 1 = [-inner, inner], class 0 = [-outer, -gap] ∪ [gap, outer]."""
    return _ball_vs_shell(key, n, 1, inner, gap, outer)


def disk_annulus(key, n, inner=1 / 3, gap=2 / 3, outer=1.0):
    """Olah's 2-D case: class 1 = disk |x| < inner, class 0 = annulus gap < |x| < outer."""
    return _ball_vs_shell(key, n, 2, inner, gap, outer)


def nested_spheres(key, n, dim=3, inner=1 / 3, gap=2 / 3, outer=1.0):
    """A ball inside a shell in ``dim`` dimensions, uniform by volume."""
    return _ball_vs_shell(key, n, dim, inner, gap, outer)


def two_spirals(key, n, turns=1.0):
    """Two interleaved spirals; arm length grows with ``turns``. Class 1 is arm 0 rotated by pi."""
    y = class_labels(n, 2)
    t = jnp.sqrt(jax.random.uniform(key, (n,), minval=0.0025, maxval=1.0))  # even density
    theta = 2 * jnp.pi * turns * t + jnp.pi * y
    x = jnp.stack([t * jnp.cos(theta), t * jnp.sin(theta)], axis=1)
    return x, y


def xor(key, n, margin=0.0):
    """Uniform in [-1, 1]^2 with ``|x_i| > margin``; class 1 where x0 * x1 > 0."""
    y = class_labels(n, 2)
    k_mag, k_sign = jax.random.split(key)
    mag = jax.random.uniform(k_mag, (n, 2), minval=margin, maxval=1.0)
    s0 = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), 1.0, -1.0)
    s1 = jnp.where(y == 1, s0, -s0)
    return mag * jnp.stack([s0, s1], axis=1), y


def gaussians(key, n, classes=2, spread=0.6, std=0.25):
    """``classes`` isotropic blobs of ``std`` with centres on a circle of radius ``spread``."""
    y = class_labels(n, classes)
    angle = 2 * jnp.pi * y / classes
    centre = spread * jnp.stack([jnp.cos(angle), jnp.sin(angle)], axis=1)
    return centre + std * jax.random.normal(key, (n, 2)), y


def moons(key, n, std=0.1):
    """Two interleaving half circles (as in scikit-learn), scaled into [-1, 1]^2."""
    y = class_labels(n, 2)
    k_t, k_eps = jax.random.split(key)
    t = jnp.pi * jax.random.uniform(k_t, (n,))
    upper = jnp.stack([jnp.cos(t), jnp.sin(t)], axis=1)
    lower = jnp.stack([1 - jnp.cos(t), 0.5 - jnp.sin(t)], axis=1)
    x = jnp.where(y[:, None] == 0, upper, lower) + std * jax.random.normal(k_eps, (n, 2))
    return (x - jnp.array([[0.5, 0.25]])) / 1.5, y


def _ring_points(key, n, centre, axis_a, axis_b, radius, tube):
    """Points in a solid torus of ``tube`` radius around a circle in span(axis_a, axis_b)."""
    k_phi, k_dir, k_r = jax.random.split(key, 3)
    phi = 2 * jnp.pi * jax.random.uniform(k_phi, (n,))
    core = centre[None, :] + radius * (jnp.cos(phi)[:, None] * axis_a[None, :]
                                     + jnp.sin(phi)[:, None] * axis_b[None, :])
    off = unit_vectors(k_dir, n, 3) * uniform_radius(k_r, (n,), 0.0, tube, 3)[:, None]
    return core + off


def _two_rings(key, n, tube, shift):
    y = class_labels(n, 2)
    k0, k1 = jax.random.split(key)
    e = jnp.eye(3)
    ring_a = _ring_points(k0, n, jnp.zeros(3), e[0], e[1], 0.5, tube)
    ring_b = _ring_points(k1, n, jnp.array([shift, 0.0, 0.0]), e[0], e[2], 0.5, tube)
    x = jnp.where(y[:, None] == 1, ring_a, ring_b) - jnp.array([[shift / 2, 0.0, 0.0]])
    return x, y


def hopf_link(key, n, tube=0.1):
    """Two linked circles of radius 0.5 in 3-D (xy and xz planes), thickened to ``tube``."""
    return _two_rings(key, n, tube, 0.5)


def unlinked_rings(key, n, tube=0.1):
    """Control for ``hopf_link``: the same two rings, moved apart so they do not link."""
    return _two_rings(key, n, tube, 1.25)


# ----------------------------------------------------------------------------- Naitzat et al.
# The three datasets of Naitzat, Zhitnikov & Lim, "Topology of deep neural networks" (JMLR
# 2020): nine copies of one shape on a 3x3 grid. Sizes are ours (see the README); the
# topology is theirs, and BETTI below states it.

# numpy, not jnp: a module-level jax array would start a backend at import
_GRID = np.array([(i, j) for i in (-1, 0, 1) for j in (-1, 0, 1)], np.float32)  # (9, 2)
_TRIES = 16  # rejection candidates per point (fixed shape); all 16 fail with p < 1e-8


def naitzat_d1(key, n, radius=0.12, hole=0.2):
    """D-I in [-1, 1]^2: class 1 = nine disks of ``radius`` on a 3x3 grid of spacing 2/3;
    class 0 = the square minus nine holes of radius ``hole`` around them (uniform by area)."""
    y = class_labels(n, 2)
    k_cell, k_dir, k_rad, k_box = jax.random.split(key, 4)
    centre = jnp.asarray(_GRID)[jax.random.randint(k_cell, (n,), 0, 9)] * (2 / 3)
    disks = centre + unit_vectors(k_dir, n, 2) * uniform_radius(k_rad, (n,), 0.0, radius,
                                                                 2)[:, None]
    cand = jax.random.uniform(k_box, (n, _TRIES, 2), minval=-1.0, maxval=1.0)
    nearest = jnp.clip(jnp.round(cand * 1.5), -1, 1) / 1.5  # the hole centre of each cell
    ok = jnp.linalg.norm(cand - nearest, axis=-1) >= hole
    region = cand[jnp.arange(n), jnp.argmax(ok, axis=1)]
    region = jnp.where(ok.any(axis=1)[:, None], region, -0.98)  # a corner is always outside
    return jnp.where(y[:, None] == 1, disks, region), y


def naitzat_d2(key, n, tube=0.1):
    """D-II in 3-D: nine Hopf links on a 3x3 grid (spacing 2 in the xy plane), scaled by 1/3.

    Each link is two circles of radius 0.5 thickened to solid tori of ``tube`` radius: class 1
    the circle in the xy plane (centred 0.25 left of the link's centre), class 0 the circle in
    the xz plane (0.25 right), so each class is nine solid tori, each linked with one of the
    other class.
    """
    y = class_labels(n, 2)
    k_cell, k0, k1 = jax.random.split(key, 3)
    e = jnp.eye(3)
    centre = jnp.concatenate([2 * jnp.asarray(_GRID)[jax.random.randint(k_cell, (n,), 0, 9)],
                              jnp.zeros((n, 1))], axis=1)
    shift = jnp.array([[0.25, 0.0, 0.0]])
    ring_1 = _ring_points(k0, n, jnp.zeros(3), e[0], e[1], 0.5, tube) - shift
    ring_0 = _ring_points(k1, n, jnp.zeros(3), e[0], e[2], 0.5, tube) + shift
    return (centre + jnp.where(y[:, None] == 1, ring_1, ring_0)) / 3, y


def naitzat_d3(key, n, thickness=0.05):
    """D-III in 3-D: nine nested shells on a 3x3 grid (spacing 2 in the xy plane), scaled by
    1/2.5. Each unit: class 1 = a ball of radius 0.08 (a sixth of its points) and the shell
    0.65 < r < 0.65 + ``thickness`` (five sixths: a sphere needs more points than a ball)
    around a class-0 shell 0.35 < r < 0.35 + ``thickness``; all uniform by volume."""
    y = class_labels(n, 2)
    k_cell, k_dir, k_rad, k_part = jax.random.split(key, 4)
    centre = jnp.concatenate([2 * jnp.asarray(_GRID)[jax.random.randint(k_cell, (n,), 0, 9)],
                              jnp.zeros((n, 1))], axis=1)
    k_ball, k_outer, k_mid = jax.random.split(k_rad, 3)
    ball = uniform_radius(k_ball, (n,), 0.0, 0.08, 3)
    outer = uniform_radius(k_outer, (n,), 0.65, 0.65 + thickness, 3)
    middle = uniform_radius(k_mid, (n,), 0.35, 0.35 + thickness, 3)
    in_ball = jax.random.uniform(k_part, (n,)) < 1 / 6
    r = jnp.where(y == 1, jnp.where(in_ball, ball, outer), middle)
    return (centre + unit_vectors(k_dir, n, 3) * r[:, None]) / 2.5, y


def read_points(path: str, label: str = "label") -> tuple[np.ndarray, np.ndarray]:
    """Load a user's points from .npz (arrays ``x`` and ``y``), .csv or .parquet.

    For tables every column except ``label`` is a feature. Labels are mapped to 0..k-1.
    Returns ``x (n, dim)`` float32 and ``y (n,)`` int32 (read-only; cached per file version,
    since the planner asks for the shape of every run).
    """
    try:
        stamp = os.stat(path).st_mtime_ns
    except OSError as e:
        raise SweepnetError(f"{path}: cannot read data file ({e.strerror})") from None
    return _read_points(path, label, stamp)


@functools.lru_cache(maxsize=8)
def _read_points(path: str, label: str, stamp: int) -> tuple[np.ndarray, np.ndarray]:
    del stamp  # part of the cache key only
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npz":
            with np.load(path) as f:
                if "x" not in f or "y" not in f:
                    raise SweepnetError(f"{path}: an .npz dataset needs arrays 'x' and 'y'")
                x, raw = np.asarray(f["x"]), np.asarray(f["y"])
        elif ext in (".csv", ".parquet"):
            df = pd.read_csv(path) if ext == ".csv" else pd.read_parquet(path)
            if label not in df.columns:
                raise SweepnetError(f"{path}: no label column {label!r} (columns: {list(df)})")
            features = df.drop(columns=[label])
            for name in features.columns:  # name the column (a word in it, say) at fault
                if not (pd.api.types.is_numeric_dtype(features[name])
                        or pd.api.types.is_bool_dtype(features[name])):
                    word = next((v for v in features[name] if _not_a_number(v)), None)
                    found = f" (found {word!r})" if word is not None else ""
                    raise SweepnetError(f"{path}: {name}: feature columns must be numeric{found}")
            x, raw = features.to_numpy(), df[label].to_numpy()
        else:
            raise SweepnetError(f"{path}: data file must be .npz, .csv or .parquet")
    except SweepnetError:
        raise
    except Exception as e:  # unreadable or malformed: name the file, keep one line
        raise SweepnetError(f"{path}: cannot read data file ({type(e).__name__}: {e})") from e
    x = x.reshape(len(x), -1) if x.ndim == 1 else x
    if x.ndim != 2 or len(x) != len(raw) or len(x) < 2:
        raise SweepnetError(f"{path}: need x of shape (n, dim) and y of shape (n,)")
    try:
        x = x.astype(np.float32)
    except (TypeError, ValueError) as e:
        raise SweepnetError(f"{path}: feature columns must be numeric") from e
    if not np.all(np.isfinite(x)):
        raise SweepnetError(f"{path}: features contain NaN or inf")
    _, y = np.unique(raw, return_inverse=True)
    y = y.astype(np.int32)
    x.flags.writeable = y.flags.writeable = False
    return x, y


def _not_a_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return True
    return False


def _file_info(params):
    x, y = read_points(params["path"], params.get("label", "label"))
    return x.shape[1], int(y.max()) + 1


DATASETS: dict[str, Dataset] = {}


def _register(name, fn, doc, dim_fn, n_classes=lambda p: 2, extent=1.0, **params):
    DATASETS[name] = Dataset(name, fn, params, doc, dim_fn, n_classes, extent)


_SHELL = dict(
    inner=Param(1 / 3, float, 0.0, None, doc="radius of the inner class"),
    gap=Param(2 / 3, float, 0.0, None, doc="inner radius of the outer class"),
    outer=Param(1.0, float, 0.0, None, doc="outer radius of the outer class"),
)
_register("interval_1d", interval_1d, "Olah 1-D: [-1/3,1/3] vs [-1,-2/3]∪[2/3,1]",
          lambda p: 1, **_SHELL)
_register("disk_annulus", disk_annulus, "Olah 2-D: disk |x|<1/3 vs annulus 2/3<|x|<1",
          lambda p: 2, **_SHELL)
_register("nested_spheres", nested_spheres, "ball inside a shell in `dim` dimensions",
          lambda p: int(p["dim"]), dim=Param(3, int, 1, 64, static=True, doc="dimension"),
          **_SHELL)
_register("two_spirals", two_spirals, "two interleaved spirals", lambda p: 2,
          turns=Param(1.0, float, 0.0, 20.0, doc="turns of each arm"))
_register("xor", xor, "XOR quadrants in [-1,1]^2", lambda p: 2,
          margin=Param(0.0, float, 0.0, 0.99, doc="empty band around the axes"))
_register("gaussians", gaussians, "isotropic Gaussian blobs on a circle", lambda p: 2,
          lambda p: int(p["classes"]), extent=1.5,
          classes=Param(2, int, 2, 64, static=True, doc="number of classes"),
          spread=Param(0.6, float, 0.0, None, doc="radius of the circle of centres"),
          std=Param(0.25, float, 0.0, None, doc="standard deviation of each blob"))
_register("moons", moons, "two interleaving half circles", lambda p: 2,
          std=Param(0.1, float, 0.0, None, doc="Gaussian jitter"))
_register("hopf_link", hopf_link, "two linked rings in 3-D", lambda p: 3,
          tube=Param(0.1, float, 0.0, 0.24, doc="tube radius around each ring"))
_register("unlinked_rings", unlinked_rings, "two unlinked rings in 3-D (control)",
          lambda p: 3, extent=1.25,
          tube=Param(0.1, float, 0.0, 0.24, doc="tube radius around each ring"))
_register("naitzat_d1", naitzat_d1, "Naitzat D-I: nine disks in a square with nine holes",
          lambda p: 2, radius=Param(0.12, float, 0.0, 0.2, doc="radius of each disk (class 1)"),
          hole=Param(0.2, float, 0.0, 0.33, doc="radius of each hole of class 0's square"))
_register("naitzat_d2", naitzat_d2, "Naitzat D-II: nine pairs of linked solid tori in 3-D",
          lambda p: 3, tube=Param(0.1, float, 0.0, 0.24, doc="tube radius around each ring"))
_register("naitzat_d3", naitzat_d3, "Naitzat D-III: nine ball/shell/shell nests in 3-D",
          lambda p: 3,
          thickness=Param(0.05, float, 0.0, 0.2, doc="thickness of each shell"))
_register("balls", balls, "components disks (balls), `holes` of them annuli, in a square",
          lambda p: int(p["dim"]),
          components=Param(4, int, 1, 27, doc="class 1's components (disks; 9 at most in 2-D)"),
          holes=Param(1, int, 0, 27, doc="how many of the components are annuli (shells in 3-D)"),
          dim=Param(2, int, 2, 3, static=True, doc="dimension (2 or 3)"),
          layout=Param(0, int, 0, 2**31 - 1, static=True, doc="seed of the disks' places"))
_register("file", None, "the user's own points from .npz, .csv or .parquet",
          lambda p: _file_info(p)[0], lambda p: _file_info(p)[1], extent=0.0,
          path=Param(None, str, static=True, doc="path to the data file"),
          label=Param("label", str, static=True, doc="label column of a table"))


def betti(name: str, params: Mapping[str, Any]) -> dict[int, tuple[int, int, int]] | None:
    """Known Betti numbers ``{class: (b0, b1, b2)}`` of each class's region, or None where the
    topology is unknown (``file``, blobs, ...) or the parameters break it (overlapping radii).

    ``b2`` is counted for 3-D data only (0 below). The shell of ``nested_spheres`` in 4+
    dimensions has b_{dim-1} = 1, which is past b2, so its (b0, b1, b2) are (1, 0, 0).
    """
    p = {**default_params(name), **params} if name in DATASETS else dict(params)
    if name in ("interval_1d", "disk_annulus", "nested_spheres"):
        if not 0 < p["inner"] < p["gap"] < p["outer"]:
            return None
        d = {"interval_1d": 1, "disk_annulus": 2}.get(name) or int(p["dim"])
        shell = {1: (2, 0, 0), 2: (1, 1, 0), 3: (1, 0, 1)}.get(d, (1, 0, 0))
        return {1: (1, 0, 0), 0: shell}
    if name in ("hopf_link", "unlinked_rings"):
        return {0: (1, 1, 0), 1: (1, 1, 0)} if 0 < p["tube"] < 0.25 else None
    if name == "two_spirals":
        return {0: (1, 0, 0), 1: (1, 0, 0)}
    if name == "naitzat_d1":
        return {1: (9, 0, 0), 0: (1, 9, 0)} if 0 < p["radius"] < p["hole"] < 1 / 3 else None
    if name == "naitzat_d2":
        return {0: (9, 9, 0), 1: (9, 9, 0)} if 0 < p["tube"] < 0.25 else None
    if name == "naitzat_d3":
        return {1: (18, 0, 9), 0: (9, 0, 9)} if 0 < p["thickness"] < 0.25 else None
    if name == "balls" and problem(name, p) is None:
        return balls_betti(int(p["components"]), int(p["holes"]), int(p["dim"]))
    return None


def problem(name: str, params: Mapping[str, Any]) -> tuple[str, str] | None:
    """``(parameter, why)`` where parameters that are each in range do not make a dataset
    together (``balls``: holes <= components), else None. A spec's grid leaves such a
    combination out, and refuses a value that is in none of its combinations."""
    if name == "balls":
        p = {**default_params(name), **params}
        return balls_problem(int(p["components"]), int(p["holes"]), int(p["dim"]))
    return None


def sizes(name: str, params: Mapping[str, Any], n_train: int, n_test: int) -> tuple[int, int]:
    """The train and probe sizes a configuration really gets.

    Generated datasets draw exactly what is asked. A ``file`` holds a fixed number of rows:
    ``n_train`` of them train and the probe is at most ``n_test`` of the rest.
    """
    if name != "file":
        return n_train, n_test
    rows = len(read_points(params["path"], params.get("label", "label"))[1])
    if n_train >= rows:
        raise SweepnetError(f"data.n_train: {n_train} but {params['path']} has only {rows} "
                            "points (some must be left for the test probe)")
    return n_train, min(n_test, rows - n_train)


def standardized(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both point sets ``(n, dim)`` less the training points' mean, over their standard
    deviation, feature by feature (a constant feature is only centred)."""
    mean = x_train.mean(0, dtype=np.float64)
    std = x_train.std(0, dtype=np.float64)
    std = np.where(std > 0, std, 1.0)
    return tuple(((x - mean) / std).astype(np.float32) for x in (x_train, x_test))


# A file's features are far from unit scale past these: tanh saturates in the first layer
FAR_MAX, FAR_STD = 10.0, 0.1


def file_warnings(configs: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line for each data file that the run configurations ``configs`` (flat, as
    ``Spec.grid`` gives them) use unwisely: one that holds fewer points than they ask for (the
    probe is what the training set leaves, and the runs table records that size:
    :func:`sizes`), and one whose features are far from unit scale (largest ``|x|`` over
    ``FAR_MAX`` or a feature's standard deviation under ``FAR_STD``) where it is not
    standardized (``data.standardize``)."""
    asked: dict[tuple[str, str], set[tuple[int, int]]] = {}
    raw: set[tuple[str, str]] = set()
    for c in configs:
        if c["dataset"] == "file":
            file = (c["data_path"], c.get("data_label", "label"))
            asked.setdefault(file, set()).add((c["n_train"], c["n_test"]))
            if not c.get("data_standardize", False):
                raw.add(file)
    lines = []
    for path, label in sorted(raw):
        x = read_points(path, label)[0]
        top, spread = float(np.abs(x).max()), float(x.std(0, dtype=np.float64).min())
        if top > FAR_MAX or spread < FAR_STD:
            lines.append(f"{path}: features far from unit scale (largest |x| {top:.3g}, "
                         f"smallest standard deviation {spread:.3g}): tanh saturates in the "
                         "first layer; set data.standardize = true to rescale them")
    for (path, label), pairs in asked.items():
        rows = len(read_points(path, label)[1])
        short = sorted(p for p in pairs if p[0] + p[1] > rows)
        if short:
            probes = "; ".join(f"data.n_train = {a} leaves {rows - a} for the test probe, not "
                               f"data.n_test = {b}" for a, b in short)
            lines.append(f"{path} holds {rows} points: {probes} (the runs table records the "
                         "sizes used)")
    return lines




def make_split(name: str, params: Mapping[str, Any], n_train: int, n_test: int,
               noise: float = 0.0, data_seed: int = 0) -> Split:
    """Draw the train set and the dense test probe of one dataset configuration.

    Train and test come from independent subkeys of ``data_seed``; ``noise`` adds isotropic
    Gaussian jitter of that standard deviation to the points of both. A ``standardize`` entry
    of ``params`` (a spec's ``data.standardize``, run column ``data_standardize``) that is true
    rescales every feature to zero mean and unit variance over the training points, test
    points alike, before the noise (which is then in those units).
    """
    params = dict(params)
    scale = bool(params.pop("standardize", False))
    params = {**default_params(name), **params}  # missing and given defaults: one program
    if name == "file":
        k_train, _, k_noise = _keys(data_seed)
        x, y = read_points(params["path"], params.get("label", "label"))
        n_train, n_test = sizes(name, params, n_train, n_test)
        perm = np.asarray(jax.random.permutation(k_train, len(x)))
        tr, te = perm[:n_train], perm[n_train : n_train + n_test]
        xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
        jitter = [jax.random.normal(k, np.shape(p)) for k, p in
                  zip(jax.random.split(k_noise), (xtr, xte), strict=True)] if noise > 0 else []
    else:
        spec = DATASETS[name].params
        static = tuple(sorted((k, v) for k, v in params.items() if spec[k].static))
        dynamic = {k: np.float32(v) for k, v in params.items() if not spec[k].static}
        xtr, ytr, xte, yte, *jitter = _split_program(name, n_train, n_test, static, noise > 0)(
            np.int32(data_seed), dynamic)
    if scale:
        xtr, xte = standardized(np.asarray(xtr), np.asarray(xte))
    if noise > 0:  # in numpy: inside a program XLA fuses it into a multiply-add (1 ulp off)
        xtr, xte = (np.asarray(p) + np.float32(noise) * np.asarray(j)
                    for p, j in zip((xtr, xte), jitter, strict=True))
    as_np = lambda a, t: np.asarray(a, dtype=t)
    return Split(as_np(xtr, np.float32), as_np(ytr, np.int32),
                 as_np(xte, np.float32), as_np(yte, np.int32))


def _keys(data_seed):
    """The train, test and noise keys of ``data_seed`` (an int, or traced in a program)."""
    root = jax.random.key(data_seed)
    return tuple(jax.random.fold_in(root, i) for i in range(3))


@functools.lru_cache(maxsize=64)
def _split_program(name: str, n_train: int, n_test: int, static: tuple, noisy: bool
                   ) -> Callable:
    """``jit`` of a generated dataset's whole draw: ``(data_seed int32, dynamic) -> (x_train
    (n_train, d), y_train, x_test (n_test, d), y_test)``, then with ``noisy`` the standard
    normal jitter of each x (same shapes), which the caller scales and adds.

    One program per configuration shape (``static``: the shape parameters) holds the keys, both
    draws and the jitter, compiled on CPU with ``host.DRAW_COMPILER_OPTIONS``. Separate train
    and test programs, the keys' own programs and eager noise took 1.5-2x as long cold; this
    draws the same points bit for bit (tests/test_data.py).
    """
    options = DRAW_COMPILER_OPTIONS if jax.default_backend() == "cpu" else None
    fn = DATASETS[name].fn

    def split(data_seed, dynamic):
        k_train, k_test, k_noise = _keys(data_seed)
        xtr, ytr = fn(k_train, n_train, **dict(static), **dynamic)
        xte, yte = fn(k_test, n_test, **dict(static), **dynamic)
        if not noisy:
            return xtr, ytr, xte, yte
        kn_tr, kn_te = jax.random.split(k_noise)
        return xtr, ytr, xte, yte, jax.random.normal(kn_tr, xtr.shape), jax.random.normal(
            kn_te, xte.shape)

    return jax.jit(split, compiler_options=options)


def default_params(name: str) -> dict[str, Any]:
    return {k: p.default for k, p in DATASETS[name].params.items()}


def extent(name: str, params: Mapping[str, Any]) -> float:
    """Half side of a box holding the dataset's points (for drawing decision boundaries)."""
    ds = DATASETS[name]
    if name in ("disk_annulus", "interval_1d", "nested_spheres"):
        return float(params.get("outer", 1.0)) * 1.15
    return ds.extent * 1.15 if ds.extent else 0.0


__all__ = ["DATASETS", "Dataset", "Param", "Split", "betti", "file_warnings", "make_split",
           "problem", "read_points", "sizes", "standardized"]
