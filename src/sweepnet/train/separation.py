"""Separation you can trust: margins, a topology-aware certificate, the easy-way-out signature.

Accuracy on random points cannot tell a clean separation from one that lets a thin channel of
the wrong class through. For datasets whose class regions are known exactly, this module
probes each region on a *structured* dense set and then searches locally for the worst point:

- ``interval_1d``, ``disk_annulus``, ``nested_spheres``: the inner ball ``|x| <= inner`` and the
  shell ``gap <= |x| <= outer``, probed on spheres (circles in 2-D, points in 1-D) at several
  radii spanning each region, dense in direction.
- ``hopf_link``, ``unlinked_rings``: two solid tori, probed on their core circles and on tube
  surfaces at half and full tube radius, dense along the core.

Every class region is described the same way: the points within ``thick`` of a *core*, where
the core is the sphere of ``radius`` around ``centre`` inside the span of ``basis`` (its
orthonormal columns; zero columns are unused). A ball is a core of radius 0, a shell a core
sphere spanning the whole space, a solid torus a core circle in a 2-plane. So one projection
serves every dataset and one compiled program serves every data group of a bucket.

The probe is built on the host (numpy) per data group, like the train/test split, and rides
into the vmapped training program inside :class:`sweepnet.train.step.Data`. Its shapes depend only
on ``in_dim``, so every data group of a bucket (whose ``Static`` fixes ``in_dim``) has the same
shapes; datasets without a known topology get a dummy probe with ``known=False``.

:func:`metrics` (pure, traced once per network inside ``train``) returns:

- ``margin``: smallest signed logit margin over the dense test probe (binary ``(2y-1) z``,
  multi-class ``z_y - max_{k != y} z_k``). Defined for every dataset.
- ``worst_margin``: smallest margin over both class regions: the structured probe, then
  ``REFINE_STEPS`` steps of projected, normalised gradient descent on the margin (backtracking:
  a step is kept only if it lowers the margin, then the step grows, else it shrinks) from the
  worst probe point of each of ``N_CELLS`` spatial cells per region and the ``N_TOP`` worst
  points overall. NaN where the topology is unknown.
- ``certified``: ``worst_margin > 0``; every point of both class regions is classified right,
  as far as the probe and the refinement can tell. False where unknown (results store null).
- ``max_grad``: the largest input-gradient norm of the margin (for binary, of the logit) over
  the test probe and, where known, the structured probe and every refined point.

Resolution: a channel is found if the probe lands in it or if the margin is lowered around it
over about one probe spacing (``Probe.step``), so descent from a nearby probe point reaches
it. A channel whose influence is narrower than the spacing in every direction can still hide;
the structured probe is what makes that spacing small (see ``probe_size``).

Metrics assume the network maps each point on its own (no coupling across the points axis),
which holds for every architecture in :mod:`sweepnet.sweep.models`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np

from sweepnet.sweep import data as data_lib

N_CELLS = 32  # spatial cells per class region; each gives its worst probe point as a start
N_TOP = 32  # plus the globally worst probe points of the region
REFINE_STEPS = 64  # backtracking descent steps from every start
GROW, SHRINK = 1.5, 0.5  # step multipliers after an accepted / rejected step

# Geometry of the ring datasets (see data._two_rings): ring radius and the x-offset between
# the two ring centres. Checked against the generator in tests/test_separation.py.
RING_RADIUS = 0.5
RING_SHIFT = {"hopf_link": 0.5, "unlinked_rings": 1.25}
KNOWN = ("interval_1d", "disk_annulus", "nested_spheres", "hopf_link", "unlinked_rings")


PROBE_BLOCK = 1024  # probe points per region evaluated at once (2 regions: one test block)


def probe_size(in_dim: int) -> int:
    """Structured probe points per class region (static: depends only on ``in_dim``)."""
    return {1: 2048, 2: 4096}.get(in_dim, 8192)


@flax.struct.dataclass
class Probe:
    """Structured probe of the two class regions of one dataset configuration (arrays).

    ``P = probe_size(d)``, points on the last axis, cells are contiguous blocks of ``P / N_CELLS``.
    """

    x: jax.Array  # (2, d, P) float32: row c holds points of class c's region
    centre: jax.Array  # (2, d) core centre of each region
    basis: jax.Array  # (2, d, d) orthonormal columns spanning each core (zero columns unused)
    radius: jax.Array  # (2,) radius of each core sphere/circle (0: a point, so a ball)
    thick: jax.Array  # (2,) region = points within `thick` of the core
    step: jax.Array  # (2,) first refinement step, about the probe spacing
    known: jax.Array  # () bool: False for a dummy probe (topology unknown)


# ----------------------------------------------------------------------------- host side


def _directions(d: int, n: int, seed: int = 0) -> np.ndarray:
    """``(n, d)`` unit vectors spread over the sphere: equal angles (2-D), Fibonacci (3-D),
    or a fixed random draw (d >= 4)."""
    if d == 1:
        return np.resize(np.array([[-1.0], [1.0]]), (n, 1))
    if d == 2:
        a = 2 * np.pi * np.arange(n) / n
        return np.stack([np.cos(a), np.sin(a)], 1)
    if d == 3:
        i = np.arange(n) + 0.5
        z = 1 - 2 * i / n
        phi = np.pi * (1 + 5**0.5) * i
        r = np.sqrt(1 - z**2)
        return np.stack([r * np.cos(phi), r * np.sin(phi), z], 1)
    v = np.random.default_rng(seed).normal(size=(n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _shell_points(d: int, lo: float, hi: float, n: int) -> tuple[np.ndarray, float]:
    """``(n, d)`` points of ``lo <= |x| <= hi`` and their typical spacing.

    1-D: an even grid over both intervals. Otherwise spheres at ``n_r`` radii from ``lo`` to
    ``hi`` (a thin channel through a shell crosses every such sphere, so angular density
    matters more than radial), each sphere's directions rotated a little against the last.
    """
    if d == 1:
        if lo == 0:
            return np.linspace(-hi, hi, n)[:, None], 2 * hi / n
        half = np.linspace(lo, hi, n // 2)
        return np.concatenate([-half[::-1], half])[:, None], 2 * (hi - lo) / n
    n_r = 4 if d <= 3 else 8
    n_dir = n // n_r
    # a ball (lo == 0) skips the degenerate sphere of radius 0 but keeps the centre (below)
    radii = np.linspace(0, hi, n_r + 1)[1:] if lo == 0 else np.linspace(lo, hi, n_r)
    pts = []
    for k, r in enumerate(radii):
        u = _directions(d, n_dir, seed=k)
        if d == 2:
            a = 2 * np.pi * k / (n_r * n_dir)  # stagger circles by a fraction of the spacing
            u = u @ np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        pts.append(r * u)
    if lo == 0:
        pts[0][0] = 0.0
    spacing = hi * (4 * np.pi / n_dir) ** (1 / (d - 1)) if d > 2 else 2 * np.pi * hi / n_dir
    return np.concatenate(pts), float(spacing)


def _torus_points(centre, a, b, radius, tube, n) -> tuple[np.ndarray, float]:
    """``(<=n, 3)`` points of a solid torus: the core circle and tube surfaces at tube/2, tube.

    The outer surface gets twice the angles of the inner one, so spacing stays even.
    """
    n_psi = 8
    per = 1 + 3 * n_psi
    n_phi = n // per
    phi = 2 * np.pi * np.arange(n_phi) / n_phi
    normal = np.cross(a, b)
    u = np.cos(phi)[:, None] * a + np.sin(phi)[:, None] * b  # (n_phi, 3) radial direction
    core = centre + radius * u
    pts = [core]
    for rho, k in ((tube / 2, n_psi), (tube, 2 * n_psi)):
        psi = 2 * np.pi * (np.arange(k) + 0.5 * (k == n_psi)) / k
        off = (
            np.cos(psi)[None, :, None] * u[:, None, :]
            + np.sin(psi)[None, :, None] * normal[None, None, :]
        )
        pts.append((core[:, None, :] + rho * off).reshape(-1, 3))
    return np.concatenate(pts), float(2 * np.pi * radius / n_phi)


def _cells(points: np.ndarray, n_cells: int) -> np.ndarray:
    """An order of ``points (P, d)`` in which consecutive blocks of ``P / n_cells`` are compact:
    sort by nearest of ``n_cells`` anchors picked by farthest-point sampling."""
    anchors = [0]
    dist = np.linalg.norm(points - points[0], axis=1)
    for _ in range(n_cells - 1):
        anchors.append(int(np.argmax(dist)))
        dist = np.minimum(dist, np.linalg.norm(points - points[anchors[-1]], axis=1))
    d2 = ((points[:, None, :] - points[anchors][None, :, :]) ** 2).sum(-1)
    nearest = np.argmin(d2, axis=1)
    # within a cell keep the generator's order (which is spatially coherent)
    return np.lexsort((np.arange(len(points)), nearest))


def _fit(points: np.ndarray, n: int) -> np.ndarray:
    """Exactly ``n`` points, cell-ordered (repeat points cyclically if there are fewer)."""
    if len(points) > n:
        raise AssertionError(f"probe generator made {len(points)} > {n} points")
    points = points[_cells(points, N_CELLS)]
    return points[np.arange(n) % len(points)]


def _regions(name: str, params: Mapping[str, Any], d: int):
    """``[(points (P, d), centre, basis, radius, thick, step)]`` for class 0 then class 1."""
    n = probe_size(d)
    if name in ("interval_1d", "disk_annulus", "nested_spheres"):
        inner, gap, outer = (float(params[k]) for k in ("inner", "gap", "outer"))
        eye, zero = np.eye(d), np.zeros(d)
        p0, s0 = _shell_points(d, gap, outer, n)
        p1, s1 = _shell_points(d, 0.0, inner, n)
        return [
            (p0, zero, eye, (gap + outer) / 2, (outer - gap) / 2, s0),
            (p1, zero, eye, 0.0, inner, s1),
        ]
    if name in RING_SHIFT:
        tube, half = float(params["tube"]), RING_SHIFT[name] / 2
        e = np.eye(3)
        # data._two_rings: class 1 = ring in the xy-plane, class 0 = ring in the xz-plane,
        # centres (-shift/2, 0, 0) and (+shift/2, 0, 0)
        out = []
        for centre, a, b in (
            (np.array([half, 0, 0]), e[0], e[2]),
            (np.array([-half, 0, 0]), e[0], e[1]),
        ):
            pts, s = _torus_points(centre, a, b, RING_RADIUS, tube, n)
            basis = np.stack([a, b, np.zeros(3)], 1)
            out.append((pts, centre, basis, RING_RADIUS, tube, s))
        return out
    return None


def make_probe(name: str, params: Mapping[str, Any] | None, in_dim: int) -> Probe:
    """The structured probe of dataset ``name`` with ``params`` (host side, numpy → arrays).

    Unknown topology (or a dimension that does not match): a dummy probe, ``known=False``.
    """
    full = {**data_lib.default_params(name), **(params or {})} if name in data_lib.DATASETS else {}
    regions = _regions(name, full, in_dim) if name in KNOWN else None
    n = probe_size(in_dim)
    if regions is None or regions[0][0].shape[1] != in_dim:
        z = np.zeros
        return Probe(
            x=jnp.asarray(z((2, in_dim, n)), jnp.float32),
            centre=jnp.asarray(z((2, in_dim)), jnp.float32),
            basis=jnp.asarray(z((2, in_dim, in_dim)), jnp.float32),
            radius=jnp.zeros(2),
            thick=jnp.zeros(2),
            step=jnp.zeros(2),
            known=jnp.asarray(False),
        )
    f32 = lambda a: jnp.asarray(np.asarray(a, np.float64), jnp.float32)
    return Probe(
        x=f32([_fit(r[0], n).T for r in regions]),
        centre=f32([r[1] for r in regions]),
        basis=f32([r[2] for r in regions]),
        radius=f32([r[3] for r in regions]),
        thick=f32([r[4] for r in regions]),
        step=f32([r[5] for r in regions]),
        known=jnp.asarray(True),
    )


# ----------------------------------------------------------------------------- traced side


def signed_margin(logits: jax.Array, y: jax.Array) -> jax.Array:
    """``(n_out, n)`` logits, ``(n,)`` labels → ``(n,)`` margins, > 0 where classified right.

    Binary (``n_out == 1``): ``(2y - 1) z``. Multi-class: ``z_y - max_{k != y} z_k``.
    """
    if logits.shape[0] == 1:
        return jnp.where(y == 1, logits[0], -logits[0])
    rows = jnp.arange(logits.shape[0])[:, None]
    true = jnp.sum(jnp.where(rows == y[None, :], logits, 0.0), axis=0)
    other = jnp.max(jnp.where(rows == y[None, :], -jnp.inf, logits), axis=0)
    return true - other


def margin_and_grad(apply_fn: Callable, x: jax.Array, y: jax.Array):
    """Margins ``(n,)`` at ``x (d, n)`` and their input gradients ``(d, n)``.

    One VJP of the summed margin: each margin depends only on its own point, so the gradient of
    the sum holds every point's own gradient. An ``apply_fn`` with a ``margin_and_grad(x, y)``
    attribute (the fused CPU kernel, :mod:`sweepnet.kernel.ops`) computes both itself.
    """
    if (own := getattr(apply_fn, "margin_and_grad", None)) is not None:
        return own(x, y)
    m, vjp = jax.vjp(lambda p: signed_margin(apply_fn(p), y), x)
    (g,) = vjp(jnp.ones_like(m))
    return m, g


def project(x, centre, basis, radius, thick):
    """Nearest point of the region ``{dist(x, core) <= thick}`` to each column of ``x (d, n)``."""
    v = x - centre[:, None]
    p = basis @ (basis.T @ v)  # component in the core's span
    pn = jnp.linalg.norm(p, axis=0)
    u = jnp.where(pn[None] > 1e-12, p / jnp.maximum(pn, 1e-12)[None], basis[:, :1])
    core = centre[:, None] + radius * u
    off = x - core
    dist = jnp.linalg.norm(off, axis=0)
    return core + off * jnp.where(dist > thick, thick / jnp.maximum(dist, 1e-30), 1.0)[None]


def refine(apply_fn, x0, m0, g0, label, centre, basis, radius, thick, step):
    """Projected backtracking descent on the margin from the starts ``x0 (d, S)``.

    ``m0 (S,)``, ``g0 (d, S)``: margins and gradients at the starts. Returns the final margins
    ``(S,)`` (each the lowest seen on its path, since only lowering steps are kept), the
    points where they were found ``(d, S)`` and the largest gradient norm met ``()``.
    """
    y = jnp.full(x0.shape[1:], label, jnp.int32)

    def body(carry, _):
        x, m, g, alpha, gmax = carry
        gn = jnp.linalg.norm(g, axis=0)
        cand = project(x - g * (alpha / jnp.maximum(gn, 1e-30))[None], centre, basis, radius, thick)
        mc, gc = margin_and_grad(apply_fn, cand, y)
        ok = mc < m  # NaN never improves
        x = jnp.where(ok[None], cand, x)
        m, g = jnp.where(ok, mc, m), jnp.where(ok[None], gc, g)
        alpha = jnp.where(ok, alpha * GROW, alpha * SHRINK)
        gmax = jnp.maximum(gmax, jnp.max(jnp.linalg.norm(gc, axis=0)))
        return (x, m, g, alpha, gmax), None

    alpha = jnp.full(m0.shape, step)
    gmax0 = jnp.max(jnp.linalg.norm(g0, axis=0))
    (x, m, _, _, gmax), _ = jax.lax.scan(body, (x0, m0, g0, alpha, gmax0), None, REFINE_STEPS)
    return m, x, gmax


def _region_worst(apply_fn, x, label, centre, basis, radius, thick, step):
    """Worst margin ``()``, the point ``(d,)`` where it was found, and the largest gradient
    norm ``()`` over one class region.

    ``x (d, P)``: its probe points; the rest describes the region (see :class:`Probe`).
    Vmapped over the two regions, so the network is traced once for both.
    """
    d, n = x.shape
    blk = min(n, PROBE_BLOCK)  # bounds activation memory like the test probe's blocks
    y = jnp.full((blk,), label, jnp.int32)
    m, g = jax.lax.map(
        lambda xb: margin_and_grad(apply_fn, xb, y), x.reshape(d, n // blk, blk).transpose(1, 0, 2)
    )
    m, g = m.reshape(n), g.transpose(1, 0, 2).reshape(d, n)
    gmax = jnp.max(jnp.linalg.norm(g, axis=0))
    cells = jnp.argmin(m.reshape(N_CELLS, -1), axis=1) + jnp.arange(N_CELLS) * (n // N_CELLS)
    _, top = jax.lax.top_k(-jnp.where(jnp.isnan(m), -jnp.inf, m), N_TOP)
    idx = jnp.concatenate([cells, top])
    mr, xr, gr = refine(
        apply_fn, x[:, idx], m[idx], g[:, idx], label, centre, basis, radius, thick, step
    )
    # every refined path starts at a probe point and only goes down, so min(mr) <= min over
    # those starts; the probe's own minimum is a start (it is the first of the top-k)
    i = jnp.argmin(mr)
    return jnp.minimum(jnp.min(m), mr[i]), xr[:, i], jnp.maximum(gmax, gr)


def _regions_worst(apply_fn, probe: Probe):
    """``(worst (2,), point (2, d), gmax (2,))`` of both class regions."""
    return jax.vmap(functools.partial(_region_worst, apply_fn))(
        probe.x, jnp.arange(2), probe.centre, probe.basis, probe.radius, probe.thick, probe.step
    )


def witness(apply_fn: Callable, probe: Probe) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The worst point the certificate found: ``(margin (), x (d,), label ())``.

    A negative margin is a concrete misclassified point of class ``label``'s region, which a
    plain forward pass can confirm.
    """
    worst, point, _ = _regions_worst(apply_fn, probe)
    c = jnp.argmin(worst)
    return worst[c], point[c], c


def metrics(
    apply_fn: Callable, probe: Probe, x_test: jax.Array, y_test: jax.Array
) -> dict[str, jax.Array]:
    """Separation metrics of one network: ``{margin, worst_margin, certified, max_grad}`` scalars.

    ``apply_fn(x (d, n)) -> logits (n_out, n)``; ``x_test (n_blocks, d, block)`` and
    ``y_test (n_blocks, block)`` are the padded test probe of :class:`sweepnet.train.step.Data`
    (label -1 marks padding). Binary probes label region 0 / region 1 as classes 0 / 1.
    """

    def block(carry, xy):
        lo, hi = carry
        x, y = xy
        m, g = margin_and_grad(apply_fn, x, jnp.maximum(y, 0))
        real = y >= 0
        lo = jnp.minimum(lo, jnp.min(jnp.where(real, m, jnp.inf)))
        hi = jnp.maximum(hi, jnp.max(jnp.where(real, jnp.linalg.norm(g, axis=0), 0.0)))
        return (lo, hi), None

    start = (jnp.asarray(jnp.inf, jnp.float32), jnp.asarray(0.0, jnp.float32))
    (margin, max_grad), _ = jax.lax.scan(block, start, (x_test, y_test))
    # `probe` is shared by every network of a call (never vmapped), so `known` is one scalar
    # and this cond stays a real branch: datasets of unknown topology skip the probe and the
    # refinement at run time instead of computing them and throwing them away
    worst, gmax = jax.lax.cond(
        probe.known,
        lambda: _regions_worst(apply_fn, probe)[::2],
        lambda: (jnp.full(2, jnp.inf, jnp.float32), jnp.zeros(2, jnp.float32)),
    )
    worst_margin = jnp.where(probe.known, jnp.min(worst), jnp.nan)
    max_grad = jnp.maximum(max_grad, jnp.where(probe.known, jnp.max(gmax), 0.0))
    return {
        "margin": margin,
        "worst_margin": worst_margin,
        "certified": probe.known & (worst_margin > 0),
        "max_grad": max_grad,
    }


__all__ = [
    "KNOWN",
    "Probe",
    "make_probe",
    "margin_and_grad",
    "metrics",
    "probe_size",
    "witness",
    "project",
    "refine",
    "signed_margin",
]
