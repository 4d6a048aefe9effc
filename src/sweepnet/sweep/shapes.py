"""The geometry of the generated datasets: balanced labels, directions, radii uniform by
volume, and ``balls``, the dataset of chosen topology (Guss & Salakhutdinov 2018).

Every function here is jit- and vmap-able over its key; :func:`balls_layout` runs on the host
(numpy), from static parameters only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


def class_labels(n: int, k: int) -> jax.Array:
    """Balanced labels ``(n,)``: 0,1,..,k-1,0,1,.. so every class has n//k or n//k+1 points."""
    return (jnp.arange(n) % k).astype(jnp.int32)


def uniform_radius(key, shape, r0, r1, dim):
    """Radius for points uniform by volume in the shell ``r0 <= r < r1`` of ``dim`` dims."""
    u = jax.random.uniform(key, shape)
    return (u * (r1**dim - r0**dim) + r0**dim) ** (1.0 / dim)


def unit_vectors(key, n, dim):
    """``(n, dim)`` directions uniform on the sphere."""
    v = jax.random.normal(key, (n, dim))
    return v / jnp.linalg.norm(v, axis=1, keepdims=True)


# ----------------------------------------------------------------------------- balls
# Each component of class 1 sits in its own cell of a 3 x 3 (x 3) grid over [-1, 1]^dim
# (cells of side 2/3), its centre jittered by at most BALL_JITTER: a ball of radius BALL_R,
# or, for the first `holes` components, the shell BALL_RING < r < BALL_R around a class-0
# core r < BALL_CORE. Class 0 is also the rest of the square, farther than BALL_R + BALL_GAP
# from every centre. So the classes are BALL_GAP apart everywhere, two components' gaps at
# least 2/3 - 2 (BALL_R + BALL_GAP + BALL_JITTER) = 0.13 apart and the square's border 0.06
# from any gap: class 0's outer region is one piece with a hole (a cavity in 3-D) per
# component. The sizes are those at which `betti_numbers` finds the known numbers with one
# setting (k = 16 or 20, eps = 2) for 1-9 components, 0-3 holes, at 2,000 points a class
# (tests/test_data.py); at 1,000 a class no setting served all (a core joins the sparse
# outer region at the k that closes the rings' false cycles).
BALL_R, BALL_RING, BALL_GAP, BALL_JITTER = 0.2, 0.08, 0.05, 0.02
BALL_CORE = BALL_RING - BALL_GAP
CORE_SHARE = 0.05  # of class 0's points, in each core (uniform by area would give it 0.1%:
# too few points for its topology to show)
BALL_TRIES = 32  # rejection candidates per outer point; all fail with p < 0.45^32 < 1e-11


@functools.lru_cache(maxsize=64)
def balls_layout(dim: int, layout: int) -> np.ndarray:
    """Centres ``(3 ** dim, dim)`` of ``balls``' components, component ``i`` in row ``i``: the
    grid's cells in an order drawn from ``layout`` (and ``dim``), each cell's centre jittered
    by up to ``BALL_JITTER``. A configuration of ``c`` components takes the first ``c`` rows,
    so a layout's components stay where they are as ``components`` grows."""
    rng = np.random.default_rng((layout, dim))
    cells = np.stack(np.meshgrid(*[np.array([-2 / 3, 0.0, 2 / 3])] * dim, indexing="ij"),
                     -1).reshape(-1, dim)
    cells = cells[rng.permutation(len(cells))]
    return (cells + rng.uniform(-BALL_JITTER, BALL_JITTER, cells.shape)).astype(np.float32)


def balls_problem(components: int, holes: int, dim: int) -> tuple[str, str] | None:
    """``(parameter, why)`` where ``balls`` cannot have these parameters, else None."""
    if components > 3**dim:
        return "components", f"{components} is more than a {dim}-D layout holds ({3**dim})"
    if holes > components:
        return "holes", (f"{holes} is more than components = {components} (the holes are "
                         "annuli among the components: holes <= components)")
    return None


def balls(key, n, components=4, holes=1, dim=2, layout=0):
    """Class 1: ``components`` disjoint disks (balls in 3-D) in [-1, 1]^dim, the first
    ``holes`` of them annuli (shells) with a class-0 core inside; class 0: the rest of the
    square (cube), with a gap of ``BALL_GAP`` between the classes. The disks' places come from
    ``layout`` (:func:`balls_layout`). Each component gets an equal share of class 1's points
    and each core ``CORE_SHARE`` of class 0's; all uniform by area (volume) within their part.

    ``components`` and ``holes`` may be traced (one program draws every count; the spec
    checks ``holes <= components <= 3 ** dim``, which this clips to); ``dim`` and ``layout``
    are static.
    """
    cells = balls_layout(dim, layout)
    centres = jnp.asarray(cells)
    components = jnp.clip(jnp.asarray(components).astype(jnp.int32), 1, len(cells))
    holes = jnp.clip(jnp.asarray(holes).astype(jnp.int32), 0, components)
    y = class_labels(n, 2)
    k_comp, k_dir, k_rad, k_core, k_box = jax.random.split(key, 5)
    # class 1: a component, then a point of its disk or ring
    comp = jax.random.randint(k_comp, (n,), 0, components)
    ring = comp < holes
    k_disk, k_ring = jax.random.split(k_rad)
    r = jnp.where(ring, uniform_radius(k_ring, (n,), BALL_RING, BALL_R, dim),
                  uniform_radius(k_disk, (n,), 0.0, BALL_R, dim))
    r = jnp.maximum(r, jnp.where(ring, BALL_RING, 0.0))  # round-off never fills a hole
    ones = centres[comp] + unit_vectors(k_dir, n, dim) * r[:, None]
    # class 0: a core (CORE_SHARE each) or the square outside every component's gap
    k_pick, k_cr = jax.random.split(k_core)
    pick = jnp.floor(jax.random.uniform(k_pick, (n,)) / CORE_SHARE).astype(jnp.int32)
    core = (centres[jnp.minimum(pick, len(cells) - 1)]
            + unit_vectors(jax.random.fold_in(k_dir, 1), n, dim)
            * uniform_radius(k_cr, (n,), 0.0, BALL_CORE, dim)[:, None])
    cand = jax.random.uniform(k_box, (n, BALL_TRIES, dim), minval=-1.0, maxval=1.0)
    # a loop over the cells: no (n, tries, cells, dim) array
    near = functools.reduce(jnp.minimum, [
        jnp.where(i < components, jnp.sum((cand - c[None, None]) ** 2, -1), jnp.inf)
        for i, c in enumerate(cells)])
    ok = near >= (BALL_R + BALL_GAP) ** 2
    outer = cand[jnp.arange(n), jnp.argmax(ok, axis=1)]
    outer = jnp.where(ok.any(axis=1)[:, None], outer, -0.99)  # a corner is always outside
    zeros = jnp.where((pick < holes)[:, None], core, outer)
    return jnp.where(y[:, None] == 1, ones, zeros), y


def balls_betti(components: int, holes: int, dim: int) -> dict[int, tuple[int, int, int]]:
    """``{class: (b0, b1, b2)}`` of ``balls``. 2-D: class 1 is ``components`` disks, ``holes``
    of them annuli (b1), class 0 the square's rest with a hole per component (b1) plus a core
    per annulus (b0). 3-D: the annuli are shells, so the holes are cavities (b2)."""
    if dim == 2:
        return {1: (components, holes, 0), 0: (1 + holes, components, 0)}
    return {1: (components, 0, holes), 0: (1 + holes, 0, components)}


__all__ = ["balls", "balls_betti", "balls_layout", "balls_problem", "class_labels",
           "uniform_radius", "unit_vectors"]
