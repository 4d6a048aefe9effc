"""Betti numbers of every class after every layer (Naitzat, Zhitnikov & Lim, JMLR 2020).

For one class's point cloud ``x (n, dim)`` (the input, a hidden layer's activations or the
logits) the method is theirs:

1. the symmetric k-nearest-neighbour graph of the cloud;
2. the graph's hop distance (shortest path length, in edges);
3. the Vietoris-Rips complex of that distance at one fixed scale ``eps`` (in hops), whose
   Betti numbers b0, b1 (and b2 for 3-D data) are the cloud's topology.

One cloud is :mod:`sweepnet.measure.homology`'s: b0 from the kNN graph, b1 and b2 from the
clique complex at ``eps`` reduced to its core before ripser sees it.

``k`` and ``eps`` are chosen once per data configuration (:func:`calibrate`): the first pair,
in order of cost, for which the input clouds of a few data seeds all give the data's known
Betti numbers (:func:`sweepnet.sweep.data.betti`). They are stored in ``DIR/topology.json`` and
every row of ``DIR/topology.parquet``; the user may override either. Data of unknown
topology (a ``file`` of the user's own points) gets the first scale at which its input is
stable (:func:`sweepnet.measure.clouds.stable_scale`), or ``DEFAULT_SCALE`` and a warning,
with the table's ``stable`` column saying which (null where the known numbers were used).
Which points make the clouds, and how they split into classes, is
:mod:`sweepnet.measure.clouds`' (``cloud``, ``split``: columns of the table and part of
what a resumed run compares).

A run (:func:`measure`): networks are rebuilt from their stored parameters, a chunk at a
time (``results.load_params_many``), and each chunk's forward passes are one vmapped call per
shape (:func:`sweepnet.measure.network.forward_many`); nothing is retrained. The input
clouds are measured once per data configuration, seed and scale, first, in this process;
their time gives the estimate printed before the rest starts. The other clouds go to one
process pool kept for the whole run, a shape's as soon as its forward pass is done (the
workers measure them while the next shape compiles), and each chunk's rows are written as a part
(``DIR/topology/``) when it is done, so a killed run resumes where it stopped; the parts are
merged into ``DIR/topology.parquet`` at the end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from sweepnet.core.errors import SweepnetError
from sweepnet.engine import programs
from sweepnet.measure import clouds as cloud_lib
from sweepnet.measure.homology import Cloud, betti_numbers, knn_graph
from sweepnet.measure.network import data_params, forward, forward_many, shape_of
from sweepnet.measure.pool import Measurer, betti_of_clouds
from sweepnet.store import query, results
from sweepnet.sweep import data

COLUMNS = results.TOPOLOGY_COLUMNS
CHUNK_CLOUDS = 512  # clouds of a part: what a killed run loses at most
# A cloud of a trained network's layer took, on average, this share of an input cloud's CPU
# time (a layer folds, piles up and flattens its cloud): olah.toml's 256 shapes and
# activations, one seed (0.013 s against 0.04 s; analysis/topology_ab.py --olah).
LAYER_COST = 0.35
COMPILE_SECONDS = 0.4  # a forward pass's compile, once per network shape
KS = (6, 8, 10, 12, 14, 16, 20, 24, 30)  # candidate neighbour counts, cheapest first
EPSILONS = (1, 2, 3)  # candidate scales in hops (cost grows fast with eps)
CALIBRATION_SEEDS = (0, 1, 2)
DEFAULT_POINTS = 1000  # points per class cloud
POINTS = {"naitzat_d3": 3000,  # nine 2-spheres need more than 2,000 points to show b2 = 9
          "balls": 2000}  # at 1,000 an annulus core joins the sparse outer region


@dataclasses.dataclass(frozen=True)
class Scale:
    """The method's two settings: ``k`` neighbours, Vietoris-Rips scale ``eps`` in hops."""

    k: int
    eps: int
    source: str = "default"  # "calibrated", "hand-picked", "default" (unknown topology)


DEFAULT_SCALE = Scale(14, 2)  # between the calibrated 2-D settings (k 12-24, eps 1-2)

# calibrate(name, {}, DEFAULT_POINTS, use_table=False) of the built-in datasets, stored
# because the search takes seconds to a minute (3-D data: b2).
CALIBRATED: dict[str, Scale] = {
    "interval_1d": Scale(12, 1, "calibrated"),
    "disk_annulus": Scale(24, 2, "calibrated"),
    "nested_spheres": Scale(24, 2, "calibrated"),
    "two_spirals": Scale(12, 1, "calibrated"),
    "hopf_link": Scale(16, 2, "calibrated"),
    "unlinked_rings": Scale(16, 2, "calibrated"),
    "naitzat_d1": Scale(16, 2, "calibrated"),
    "naitzat_d2": Scale(14, 1, "calibrated"),
    # D-III at 3,000 points: set by hand (a full search of the candidates takes many minutes
    # of b2); k = 24, eps = 2 gives (18, 0, 9) and (9, 0, 9) on seeds 0-2, where at 2,000
    # points k = 20 joined two nests or saw a tenth void on seed 1 (tests/test_topology.py).
    "naitzat_d3": Scale(24, 2, "hand-picked"),
}


# ----------------------------------------------------------------------------- clouds


def class_points(name: str, params: Mapping[str, Any], n_points: int, noise: float = 0.0,
                 data_seed: int = 0, cloud: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """Up to ``n_points`` points of each class of a data configuration.

    Generated data is drawn afresh (``n_points * classes`` points from the training key of
    ``data_seed``; with ``n_points * classes == n_train`` these are the training points; from
    the test key for ``cloud = "test"``). A ``file`` gives at most ``n_points`` of its rows per
    class (a fixed subsample; another one for ``test``).
    Returns ``x (m, dim)`` float32 and ``y (m,)`` int32.
    """
    if name == "file":
        x, y = data.read_points(params["path"], params.get("label", "label"))
        rng = np.random.default_rng(data_seed + (1 << 20 if cloud == "test" else 0))
        keep = np.concatenate([
            np.sort(rng.permutation(np.flatnonzero(y == c))[:n_points])
            for c in range(int(y.max()) + 1)
        ])
        return np.asarray(x[keep]), np.asarray(y[keep])
    n_classes = data.DATASETS[name].n_classes({**data.default_params(name), **params})
    n = n_points * n_classes
    if cloud == "test":
        split = data.make_split(name, params, n, n, noise, data_seed)
        return split.x_test, split.y_test
    split = data.make_split(name, params, n, 1, noise, data_seed)
    return split.x_train, split.y_train


def known_betti(name: str, params: Mapping[str, Any], noise: float = 0.0
                ) -> dict[int, tuple[int, int, int]] | None:
    """The data's known Betti numbers per class (None if unknown, or blurred by noise)."""
    return None if noise > 0 else data.betti(name, params)


def maxdim_of(in_dim: int) -> int:
    """Highest Betti number measured: b2 for 3-D and higher data, else b1."""
    return 2 if in_dim >= 3 else 1


def input_betti(x: np.ndarray, y: np.ndarray, scale: Scale, maxdim: int
                ) -> dict[int, tuple[int, int, int]]:
    """Betti numbers ``{class: (b0, b1, b2)}`` of each class of ``x (n, dim)``, ``y (n,)``."""
    return {int(c): betti_numbers(x[y == c], scale.k, scale.eps, maxdim) for c in np.unique(y)}


def default_points(name: str) -> int:
    """Points per class cloud unless the user says otherwise."""
    return POINTS.get(name, DEFAULT_POINTS)


def calibrate(name: str, params: Mapping[str, Any], n_points: int | None = None,
              noise: float = 0.0, seeds: Iterable[int] = CALIBRATION_SEEDS,
              use_table: bool = True) -> Scale:
    """Choose ``k`` and ``eps`` for one data configuration.

    Candidates go cheapest first (eps, then k). The first run of three consecutive ``k`` that
    all give the known Betti numbers on the first seed's input, and whose smallest and middle
    ``k`` do on every seed in ``seeds``, gives its middle ``k``: a setting inside a stable
    range, not at its edge. Data of
    unknown topology gets ``DEFAULT_SCALE``; known topology that no candidate recovers is an
    error (the sample is too small for the method). The built-in datasets at their default
    parameters and ``DEFAULT_POINTS`` take the stored result (``CALIBRATED``) unless
    ``use_table`` is false; the tests check it.
    """
    known = known_betti(name, params, noise)
    if known is None:
        return DEFAULT_SCALE
    n_points = n_points or default_points(name)
    if use_table and name in CALIBRATED and n_points == default_points(name) and noise == 0 \
            and {**data.default_params(name), **params} == data.default_params(name):
        return CALIBRATED[name]
    seeds = list(seeds)
    clouds = [class_points(name, params, n_points, noise, s) for s in seeds]
    maxdim = maxdim_of(clouds[0][0].shape[1])

    def ok(scale: Scale, which: Sequence[int]) -> bool:
        return all(input_betti(*clouds[i], scale, maxdim) == known for i in which)

    for eps in EPSILONS:
        for i, k in enumerate(KS[:-2]):
            if all(ok(Scale(kk, eps), [0]) for kk in KS[i : i + 3]) \
                    and ok(Scale(k, eps), range(1, len(seeds))) \
                    and ok(Scale(KS[i + 1], eps), range(1, len(seeds))):
                return Scale(KS[i + 1], eps, "calibrated")
    raise SweepnetError(
        f"topology: no k in {KS} and eps in {EPSILONS} recovers the known Betti numbers of "
        f"{name} with {n_points} points per class; use more points (--points) or set --k/--eps")


def layer_clouds(row: pd.Series, params: Any, x: np.ndarray) -> list[np.ndarray]:
    """The points ``x (n, in_dim)`` at every layer of a stored network: the input, each hidden
    layer and the logits, each ``(n, units)`` (points first)."""
    return clouds_of(x, *forward(row, params, x))


def clouds_of(x: np.ndarray, logits: np.ndarray, hidden: Sequence[np.ndarray]
              ) -> list[np.ndarray]:
    """A network's clouds from its forward pass (:func:`~sweepnet.measure.network.forward`):
    ``x (n, in_dim)``, then each hidden layer ``(width, n)`` and the logits ``(n_out, n)``,
    each turned points first."""
    return [x, *(h.T for h in hidden), logits.T]


# ----------------------------------------------------------------------------- results


@dataclasses.dataclass(frozen=True)
class Network:
    """One network to measure: its runs row, data configuration, seed, scale and clouds."""

    row: pd.Series
    config: str  # _config_key
    seed: int
    scale: Scale
    maxdim: int
    n_points: int
    cloud: str = "train"  # clouds.CLOUDS
    split: str = "true"  # clouds.SPLITS
    grid: int | None = None  # points a side of the grid cloud
    stable: bool | None = None  # the input's scale: stable (unknown topology), else None

    @property
    def layers(self) -> int:
        """Layers measured: the input, ``depth`` hidden ones, the logits."""
        return int(self.row["depth"]) + 2

    @property
    def rows(self) -> int:
        """Rows of the table (clouds): a cloud per class per layer."""
        return self.layers * int(self.row["n_classes"])

    @property
    def own_input(self) -> bool:
        """Whether the input clouds are this network's own (split by its prediction)."""
        return self.split == "predicted"


def _config_key(name: str, params: Mapping[str, Any], noise: float, n_points: int) -> str:
    return json.dumps({"dataset": name, "params": {k: params[k] for k in sorted(params)},
                       "noise": noise, "n_points": n_points}, sort_keys=True, default=str)


def load(root: str) -> pd.DataFrame:
    """``DIR/topology.parquet`` (empty frame with the columns if not measured yet)."""
    return results.load_topology(root)


def select_runs(root: str, where: str | None = None) -> pd.DataFrame:
    """The runs rows matching the SQL condition ``where`` (all finished runs without one)."""
    runs = results.load(root)
    if where and len(runs):
        ids = set(query.query(root, f"SELECT run_id FROM runs WHERE {where}")["run_id"])
        runs = runs[runs["run_id"].isin(ids)]
    return runs.reset_index(drop=True)


def _stability(name: str, p: dict, n: int, noise: float, seed: int, k: int | None,
               eps: int | None, known, say) -> tuple[Scale, bool | None]:
    """The scale of a data configuration's input and whether it is stable: ``(calibrated,
    None)`` for known topology, else the stable search's (``clouds.stable_scale``) on the
    training points of ``seed``, or ``DEFAULT_SCALE`` and False (with a warning)."""
    if known is not None:  # both given: the search would pick what they override
        return (Scale(k, eps, "given") if k and eps else calibrate(name, p, n, noise)), None
    x, y = class_points(name, p, n, noise, seed)
    found = cloud_lib.stable_scale(x, y, maxdim_of(x.shape[1]), KS, EPSILONS, (k, eps))
    if found is None:
        scale = Scale(k or DEFAULT_SCALE.k, eps or DEFAULT_SCALE.eps, "unstable")
        if say:
            where = p.get("path", name) if name == "file" else name
            cloud_lib.warn_unstable(f"{where} (data seed {seed})", scale.k, scale.eps, say)
        return scale, False
    return Scale(*found, "stable"), True


def _plan(runs: pd.DataFrame, n_points: int | None, k: int | None, eps: int | None,
          stored: dict[str, Any], inputs: dict, cloud: str = "train", split: str = "true",
          grid: int | None = None, say: Callable[[str], None] | None = None) -> list[Network]:
    """The networks of ``runs`` with their settings (calibrating new data configurations into
    ``stored``, drawing each configuration's points into ``inputs``: the cloud's points and
    their labels, None for the grid)."""
    nets, checked = [], {}
    for _, row in runs.iterrows():
        name, p = row["dataset"], data_params(row)
        noise, seed = float(row["noise"]), int(row["data_seed"])
        n = n_points or default_points(name)
        key = _config_key(name, p, noise, n)
        known = known_betti(name, p, noise)
        if (key, seed) not in checked and known is not None and key in stored:
            checked[key, seed] = Scale(stored[key]["k"], stored[key]["eps"]), None
        if (key, seed) not in checked:  # unknown topology: per data seed, each run anew
            checked[key, seed] = _stability(name, p, n, noise, seed, k, eps, known, say)
            s = checked[key, seed][0]
            stored[key] = {"k": s.k, "eps": s.eps, "source": s.source, "known": known,
                           "stable": checked[key, seed][1]}
        if (key, seed) not in inputs:
            x, y = class_points(name, p, n, noise, seed, "test" if cloud == "test" else "train")
            cloud_lib.check(cloud, split, grid, x.shape[1])
            inputs[key, seed] = (cloud_lib.grid_points(x, grid or cloud_lib.GRID), None) \
                if cloud == "grid" else (x, y)
        dim = inputs[key, seed][0].shape[1]
        s, stable = checked[key, seed]
        nets.append(Network(row, key, seed, Scale(k or s.k, eps or s.eps), maxdim_of(dim), n,
                            cloud, split, (grid or cloud_lib.GRID) if cloud == "grid" else None,
                            stable))
    return nets


def _finished(parts: pd.DataFrame, nets: Sequence[Network]) -> set[str]:
    """Run ids of ``nets`` whose rows a killed run wrote already, at the same settings."""
    if not len(parts):
        return set()
    parts = parts.assign(grid=parts["grid"].fillna(0))
    have = parts.groupby(["run_id", "cloud", "split"]).agg(
        n=("layer", "size"), n_points=("n_points", "max"), k=("k", "max"), eps=("eps", "max"),
        grid=("grid", "max"))
    done = set()
    for net in nets:
        at = (net.row["run_id"], net.cloud, net.split)
        if at in have.index:
            h = have.loc[at]
            if (int(h["n"]), int(h["n_points"]), int(h["k"]), int(h["eps"]), int(h["grid"])) \
                    == (net.rows, net.n_points, net.scale.k, net.scale.eps, net.grid or 0):
                done.add(net.row["run_id"])
    return done


def _chunks(nets: Sequence[Network]) -> list[list[Network]]:
    """Consecutive networks, about ``CHUNK_CLOUDS`` clouds a chunk (a part of the table)."""
    out: list[list[Network]] = [[]]
    size = 0
    for net in nets:
        if out[-1] and size + net.rows > CHUNK_CLOUDS:
            out.append([])
            size = 0
        out[-1].append(net)
        size += net.rows
    return [c for c in out if c]


def _submit_chunk(root: str, chunk: Sequence[Network], inputs: dict, measurer: Measurer
                  ) -> Callable[[Callable[[int], None] | None], list[tuple[int, int, int]]]:
    """Start measuring the clouds of ``chunk``'s networks; returns ``collect(progress)``
    (:meth:`Measurer.submit`'s), which gives their Betti numbers in order: per network,
    layer 1 .. depth + 1 (0 .. depth + 1 where the input is its own: split by prediction),
    per class. One vmapped forward pass per shape and data, whose clouds go to the pool at
    once: it measures them while the next shape compiles."""
    runs = pd.DataFrame([net.row for net in chunk])
    params = results.load_params_many(root, runs)
    groups: dict[tuple, list[int]] = {}
    for i, net in enumerate(chunk):
        groups.setdefault((net.config, net.seed, shape_of(net.row)), []).append(i)
    parts = []
    for (config, seed, _), members in groups.items():
        passes = forward_many([chunk[i].row for i in members],
                              [params[chunk[i].row["run_id"]] for i in members],
                              inputs[config, seed][0])
        clouds = [_net_clouds(chunk[i], p, inputs) for i, p in zip(members, passes, strict=True)]
        parts.append((members, [len(c) for c in clouds],
                      measurer.submit([c for net in clouds for c in net])))

    def collect(progress: Callable[[int], None] | None = None) -> list[tuple[int, int, int]]:
        of: list[list[tuple[int, int, int]]] = [[] for _ in chunk]
        for members, sizes, part in parts:
            betti = iter(part(progress))
            for i, size in zip(members, sizes, strict=True):
                of[i] = [next(betti) for _ in range(size)]
        return [b for net in of for b in net]

    return collect


def _net_clouds(net: Network, forward_pass: tuple, inputs: dict) -> list[Cloud]:
    """The clouds of one network from its forward pass, in :func:`_submit_chunk`'s order."""
    x, y = inputs[net.config, net.seed]
    logits, hidden = forward_pass
    layers = clouds_of(x, logits, hidden)
    if net.own_input:
        which = cloud_lib.class_index(cloud_lib.predicted(logits), range(
            int(net.row["n_classes"])), net.n_points, net.seed)
        first = 0
    else:
        which = {int(c): np.flatnonzero(y == c) for c in np.unique(y)}
        first = 1
    return [(net.scale.k, net.scale.eps, net.maxdim, h[idx])
            for h in layers[first:] for idx in which.values()]


def _classes(net: Network, inputs: dict) -> list[int]:
    if net.own_input:
        return list(range(int(net.row["n_classes"])))
    return [int(c) for c in np.unique(inputs[net.config, net.seed][1])]


def _rows(chunk: Sequence[Network], inputs: dict, input_betti_of: dict,
          betti: Sequence[tuple[int, int, int]]) -> pd.DataFrame:
    """The table rows of ``chunk`` from its layers' Betti numbers (``_layer_clouds``'s order)
    and the input's (``input_betti_of[config, seed, scale]``: ``{class: (b0, b1, b2)}``,
    where the input is not the network's own)."""
    rows, i = [], 0
    for net in chunk:
        depth = int(net.row["depth"])
        for layer in range(net.layers):
            for c in _classes(net, inputs):
                if layer == 0 and not net.own_input:
                    b = input_betti_of[net.config, net.seed, net.scale][c]
                else:
                    b, i = betti[i], i + 1
                rows.append({"run_id": net.row["run_id"], "layer": layer,
                             "kind": results.layer_kinds([layer], [depth])[0], "class": c,
                             "b0": b[0], "b1": b[1], "b2": b[2] if net.maxdim >= 2 else None,
                             "n_points": net.n_points, "k": net.scale.k, "eps": net.scale.eps,
                             "cloud": net.cloud, "split": net.split, "grid": net.grid,
                             "stable": net.stable})
    return results.topology_frame(pd.DataFrame(rows, columns=COLUMNS))


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(1, round(seconds))} s"
    if seconds < 5400:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def measure(root: str, where: str | None = None, n_points: int | None = None,
            k: int | None = None, eps: int | None = None, workers: int | None = None,
            progress: bool = False, say: Callable[[str], None] | None = None,
            cloud: str = "train", split: str = "true", grid: int | None = None
            ) -> pd.DataFrame:
    """Betti numbers of each class after each layer of every selected run of ``root``.

    ``n_points`` per class defaults to ``default_points(dataset)``. ``cloud`` (train, test or
    grid: ``grid`` points a side, default 88) and ``split`` (true or predicted) choose the
    clouds (:mod:`sweepnet.measure.clouds`). Writes ``DIR/topology.parquet`` (rows of runs, or
    of clouds and splits, measured before and not selected now are kept) and
    ``DIR/topology.json`` (the k and eps of each data configuration), and returns the rows of
    the selected runs: ``run_id, layer (0 = input, 1..depth hidden, depth+1 = logits), kind
    (input, hidden, logit), class, b0, b1, b2 (null for 1-D and 2-D data), n_points, k, eps,
    cloud, split, grid (null but for the grid), stable (null where the known numbers set the
    scale)``. While it runs, each chunk of networks is a part under ``DIR/topology/``; a run
    killed midway resumes from them (networks measured at the same settings are not measured
    again). ``say`` gets the warnings and the line that counts the clouds and estimates the
    time, before the measuring starts; ``progress`` shows a bar of clouds.
    """
    if n_points is not None and n_points < 4:
        raise SweepnetError(f"--points {n_points}: need at least 4 points per class")
    for name, v in (("--k", k), ("--eps", eps)):
        if v is not None and v < 1:
            raise SweepnetError(f"{name} {v}: must be a positive whole number")
    cloud_lib.check(cloud, split, grid)
    runs = select_runs(root, where)
    if not len(runs):
        raise SweepnetError(f"{root}: no finished runs" + (f" match {where!r}" if where else ""))
    workers = workers or os.cpu_count() or 1
    measurer = Measurer(workers)  # its processes start while this one plans
    try:
        return _measure(root, runs, n_points, k, eps, workers, measurer, progress, say,
                        (cloud, split, grid))
    except BaseException:
        measurer.close(cancel=True)
        raise
    finally:
        measurer.close()


def _measure(root: str, runs: pd.DataFrame, n_points: int | None, k: int | None,
             eps: int | None, workers: int, measurer: Measurer, progress: bool,
             say: Callable[[str], None] | None, how: tuple) -> pd.DataFrame:
    programs.enable_compilation_cache()  # a re-run, or a resumed run, skips the compiles
    stored = results.load_topology_scales(root)
    inputs: dict = {}
    nets = _plan(runs, n_points, k, eps, stored, inputs, *how, say=say)
    finished = _finished(results.load_topology_parts(root), nets)
    todo = [net for net in nets if net.row["run_id"] not in finished]

    # The input clouds, here and first: their time is the estimate's unit (where the input
    # is each network's own, one configuration's training points, for the time only).
    start = time.perf_counter()
    input_betti_of: dict = {}
    for net in todo:
        key = (net.config, net.seed, net.scale)
        if key not in input_betti_of and (not net.own_input or not input_betti_of):
            x, y = inputs[net.config, net.seed] if not net.own_input else \
                class_points(net.row["dataset"], data_params(net.row), net.n_points,
                             float(net.row["noise"]), net.seed)
            input_betti_of[key] = {int(c): betti_numbers(x[y == c], net.scale.k, net.scale.eps,
                                                         net.maxdim) for c in np.unique(y)}
    n_inputs = sum(len(v) for v in input_betti_of.values())
    per_cloud = (time.perf_counter() - start) / max(n_inputs, 1)
    clouds = sum(net.rows for net in todo)
    hidden = clouds - sum(int(net.row["n_classes"]) for net in todo if not net.own_input)
    if say:
        again = f" ({len(finished)} measured before, kept)" if finished else ""
        shapes = {(net.row["arch"], int(net.row["width"]), int(net.row["depth"])) for net in todo}
        seconds = per_cloud * LAYER_COST * hidden / workers + COMPILE_SECONDS * len(shapes)
        say(f"topology: {clouds} clouds of {len(todo)} networks to measure{again}, about "
            f"{_duration(seconds)} on {workers} process{'es' if workers > 1 else ''}")

    bar = tqdm(total=clouds, unit="cloud", desc="topology", leave=False) if progress else None
    pending = None
    for chunk in _chunks(todo):  # the next chunk's forward passes while the pool works
        collect = _submit_chunk(root, chunk, inputs, measurer)
        if pending:
            _write_part(root, *pending, inputs, input_betti_of, bar)
        pending = (chunk, collect)
    if pending:
        _write_part(root, *pending, inputs, input_betti_of, bar)
    if bar:
        bar.close()
    at = ["run_id", "cloud", "split"]  # a measurement: rows of other clouds or splits stay
    parts = results.load_topology_parts(root)
    parts = parts.drop_duplicates([*at, "layer", "class"], keep="last")
    old = load(root)
    new_keys = pd.MultiIndex.from_frame(parts[at].drop_duplicates())
    keep = old[~pd.MultiIndex.from_frame(old[at]).isin(new_keys)] if len(old) else old.iloc[:0]
    table = results.topology_frame(pd.concat([keep, parts], ignore_index=True)
                                   if len(keep) else parts)
    results.save_topology(root, table, stored)
    results.remove_topology_parts(root)
    cloud, split, _ = how
    new = table[table["run_id"].isin(set(runs["run_id"])) & (table["cloud"] == cloud)
                & (table["split"] == split)]
    return new.sort_values(["run_id", "layer", "class"], kind="stable", ignore_index=True)


def _write_part(root: str, chunk: Sequence[Network], collect, inputs: dict,
                input_betti_of: dict, bar) -> None:
    """Wait for a chunk's clouds and write its rows as a part of the table."""
    betti = collect(bar.update if bar else None)
    if bar:
        bar.update(sum(int(net.row["n_classes"]) for net in chunk if not net.own_input))
    results.save_topology_part(root, _rows(chunk, inputs, input_betti_of, betti))


def summary(df: pd.DataFrame) -> str:
    """One line about a measured table: networks, clouds, scales."""
    scales = sorted({(int(a), int(b)) for a, b in zip(df["k"], df["eps"], strict=True)})
    return (f"{df['run_id'].nunique()} networks, {len(df)} clouds; "
            + ", ".join(f"k={a} eps={b}" for a, b in scales))


def by_kind(df: pd.DataFrame) -> pd.DataFrame:
    """Mean Betti numbers per kind of layer (input, hidden, logit) and activation.

    ``df``: topology rows with the runs' ``activation``. Columns ``kind, activation,
    networks, clouds, b0, b1`` (and ``b2`` where measured), input first, logit last."""
    numbers = [b for b in ("b0", "b1", "b2") if df[b].notna().any()]
    out = (df.assign(**{b: df[b].astype(float) for b in numbers})
           .groupby(["kind", "activation"], as_index=False)
           .agg(networks=("run_id", "nunique"), clouds=("run_id", "size"),
                **{b: (b, "mean") for b in numbers}))
    order = {"input": 0, "hidden": 1, "logit": 2}
    return out.sort_values(["kind", "activation"], key=lambda s: s.map(order)
                           if s.name == "kind" else s, ignore_index=True)


__all__ = ["COLUMNS", "DEFAULT_SCALE", "Measurer", "Scale", "betti_numbers", "betti_of_clouds",
           "by_kind", "calibrate", "class_points", "clouds_of", "knn_graph", "layer_clouds",
           "load", "measure", "summary"]
