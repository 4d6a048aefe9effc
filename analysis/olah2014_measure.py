"""The measurements behind the Olah 2014 report (analysis/olah2014.py): where each sweep's
results are, and what is computed from its stored networks: fresh points of the class regions,
predictions, brute-force counts, the certificate's witnesses, ring gaps, the probe's make-up."""

from __future__ import annotations

import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "results")  # the results root: main's --results sets it
N_FRESH = 200_000  # fresh points per network for the brute-force checks
N_FRESH_RESNET = 1_000_000  # ... for the certified width-2 ResNets
POLAR = (20_000, 42)  # angles x radii of the polar grid over a 2-D network's class regions


def set_results_root(path: str) -> None:
    """Read and write sweep results under ``path`` (``results_dir`` looks it up per call)."""
    global RESULTS
    RESULTS = path


def results_root() -> str:
    """The results root that ``results_dir`` reads now."""
    return RESULTS


def results_dir(name: str, full: bool) -> str:
    if name == "olah-disk" and not full:
        return os.path.join(RESULTS, "olah-disk-session")
    return os.path.join(RESULTS, name)


def load(name: str, full: bool = False):
    from sweepnet.store import results

    d = results_dir(name, full)
    if not results.is_results_dir(d):
        return None, d
    runs = results.load(d)
    return (runs if len(runs) else None), d


def region_points(row, n: int, seed: int = 12345):
    """Fresh points uniform in each class region of a run's dataset: ``(x (n, d), y (n,))``."""
    from sweepnet.measure import network as measured
    from sweepnet.sweep import data as data_lib

    split = data_lib.make_split(row["dataset"], measured.data_params(row), 2, n, 0.0, seed)
    return split.x_test, split.y_test


def net(root: str, row):
    from sweepnet.store import results

    return results.load_params(root, row["run_id"])[1]


def predict(row, params, x):
    """Logit margin sign → class, for ``x (n, d)``."""
    from sweepnet.measure import network as measured

    z = measured.forward(row, params, x)[0]
    return (z[0] > 0).astype(int) if z.shape[0] == 1 else z.argmax(0)


def test_points(row):
    """The run's own random test probe, regenerated: ``(x (n_test, d), y (n_test,))``."""
    from sweepnet.measure import network as measured
    from sweepnet.sweep import data as data_lib

    split = data_lib.make_split(
        row["dataset"],
        measured.data_params(row),
        2,
        int(row["n_test"]),
        float(row["noise"]),
        int(row["data_seed"]),
    )
    return split.x_test, split.y_test


def brute_force(root: str, rows, n: int = N_FRESH) -> list[dict]:
    """Misclassified fresh points (n per network, uniform in the class regions)."""
    out = []
    for _, row in rows.iterrows():
        x, y = region_points(row, n)
        wrong = int(np.sum(predict(row, net(root, row), x) != y))
        out.append(
            {
                "run_id": row["run_id"],
                "width": int(row["width"]),
                "depth": int(row["depth"]),
                "activation": row["activation"],
                "certified": bool(row["certified"]),
                "test_acc": float(row["test_acc"]),
                "wrong": wrong,
                "n": n,
            }
        )
    return out


def worst_probe_point(root: str, row) -> dict:
    """Where the structured probe's worst margin sits: class, depth into the region (0 = on its
    surface, 1 = on its core) and distance to the other class's region."""
    import jax.numpy as jnp

    from sweepnet.measure import network as measured
    from sweepnet.train import separation as sep

    probe = sep.make_probe(row["dataset"], measured.data_params(row), int(row["in_dim"]))
    params = net(root, row)
    best = None
    for c in (0, 1):
        x = np.asarray(probe.x[c])
        z = measured.forward(row, params, x.T)[0]
        m = np.asarray(sep.signed_margin(jnp.asarray(z), jnp.full(x.shape[1], c)))
        i = int(np.argmin(m))
        if best is None or m[i] < best[0]:
            best = (float(m[i]), c, x[:, i])
    m, c, point = best
    region = lambda k: (probe.centre[k], probe.basis[k], probe.radius[k], probe.thick[k])
    core = sep.project(jnp.asarray(point)[:, None], *region(c)[:3], jnp.zeros(()))
    depth = 1 - float(jnp.linalg.norm(core[:, 0] - point)) / float(probe.thick[c])
    other = sep.project(jnp.asarray(point)[:, None], *region(1 - c))
    return {
        "probe worst margin": m,
        "class": c,
        "depth into region": depth,
        "distance to other region": float(jnp.linalg.norm(other[:, 0] - point)),
    }


def witness(root: str, row) -> dict:
    """The certificate's worst point for one stored network, re-checked by a plain forward."""
    import jax
    import jax.numpy as jnp

    from sweepnet.measure import network as measured
    from sweepnet.sweep.models import build
    from sweepnet.train import separation as sep

    params = net(root, row)
    n_out = 1 if int(row["n_classes"]) == 2 else int(row["n_classes"])
    model = build(row["arch"], int(row["width"]), int(row["depth"]), row["activation"], n_out)
    f = lambda x: model.apply(params, x, int(row["width"]), 1.0)
    probe = sep.make_probe(row["dataset"], measured.data_params(row), int(row["in_dim"]))
    margin, point, label = jax.jit(lambda: sep.witness(f, probe))()
    z = measured.forward(row, params, np.asarray(point)[None, :])[0][:, 0]
    recheck = float(sep.signed_margin(jnp.asarray(z)[:, None], jnp.asarray([int(label)]))[0])
    return {
        "witness margin": float(margin),
        "recheck": recheck,
        "class": int(label),
        "|x|": float(np.linalg.norm(np.asarray(point))),
        "point": np.array2string(np.asarray(point), precision=4),
    }


def polar_grid_wrong(root: str, row, n_angles: int, n_radii: int) -> tuple[int, int]:
    """Misclassified points of a polar grid over both class regions of a 2-D ball/shell run
    (``disk_annulus``): ``n_angles`` angles at ``n_radii`` radii, half spanning the disk
    ``[0, inner]`` and half the annulus ``[gap, outer]``. Returns ``(wrong, points)``."""
    from sweepnet.measure import network as measured
    from sweepnet.sweep import data as data_lib

    p = {**data_lib.default_params(row["dataset"]), **measured.data_params(row)}
    angle = 2 * np.pi * np.arange(n_angles) / n_angles
    unit = np.stack([np.cos(angle), np.sin(angle)], 1)  # (n_angles, 2)
    params, wrong, total = net(root, row), 0, 0
    for label, radii in (
        (1, np.linspace(0, p["inner"], n_radii // 2)),
        (0, np.linspace(p["gap"], p["outer"], n_radii - n_radii // 2)),
    ):
        for r in radii:  # one circle at a time: a few compiled shapes, bounded memory
            wrong += int(np.sum(predict(row, params, (r * unit).astype(np.float32)) != label))
            total += n_angles
    return wrong, total


def ring_gap(row) -> tuple[float, float, float]:
    """Closest approach of the two core circles of a ring dataset, the tube radius of class 0's
    region, and the gap left between the two class regions (solid tori) there."""
    from sweepnet.measure import network as measured
    from sweepnet.train import separation as sep

    probe = sep.make_probe(row["dataset"], measured.data_params(row), int(row["in_dim"]))
    phi = 2 * np.pi * np.arange(4096) / 4096
    cores = [
        np.asarray(probe.centre[c])[:, None]
        + float(probe.radius[c])
        * (
            np.asarray(probe.basis[c])[:, :1] * np.cos(phi)
            + np.asarray(probe.basis[c])[:, 1:2] * np.sin(phi)
        )
        for c in (0, 1)
    ]  # (3, 4096) each
    closest = float(np.min(np.linalg.norm(cores[0][:, :, None] - cores[1][:, None, :], axis=0)))
    return closest, float(probe.thick[0]), closest - float(probe.thick[0]) - float(probe.thick[1])


def probe_facts() -> dict[str, int]:
    """What the structured probe of ``separation.py`` is made of, counted on the probes it
    builds (so the method text follows the code): circles (2-D) and spheres (3-D, 5-D) per
    region, angles per circle, positions along a ring's core."""
    from sweepnet.train import separation as sep

    def radii(name, params, d):
        x = np.asarray(sep.make_probe(name, params, d).x[0])  # (d, P): the shell's points
        return np.unique(np.round(np.linalg.norm(x, axis=0), 5)), x.shape[1]

    r2, p2 = radii("disk_annulus", {}, 2)
    r3, _ = radii("nested_spheres", {"dim": 3}, 3)
    r5, _ = radii("nested_spheres", {"dim": 5}, 5)
    ring = sep.make_probe("hopf_link", {}, 3)
    x = np.asarray(ring.x[1]) - np.asarray(ring.centre[1])[:, None]  # class 1's torus
    b = np.asarray(ring.basis[1])
    normal = np.cross(b[:, 0], b[:, 1])
    on_core = (np.abs(normal @ x) < 1e-5) & (
        np.abs(np.linalg.norm(b[:, :2].T @ x, axis=0) - float(ring.radius[1])) < 1e-5
    )
    return {
        "circles": len(r2),
        "angles": p2 // len(r2),
        "spheres_3d": len(r3),
        "spheres_5d": len(r5),
        "core": np.unique(np.round(x[:, on_core], 5), axis=1).shape[1],
    }


def share(df, col: str) -> float:
    return float(df[col].astype(float).mean()) if len(df) else float("nan")
