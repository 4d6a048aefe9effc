"""sweepnet.measure.homology: many clouds measured as the blocks of one graph give each cloud's
own numbers, which are those of the whole clique complex (no collapse)."""

import numpy as np
import pytest

from sweepnet.measure import homology


def _clouds() -> list[tuple[int, int, int, np.ndarray]]:
    rng = np.random.default_rng(3)
    t = rng.uniform(0, 2 * np.pi, 150)
    circle = np.stack([np.cos(t), np.sin(t)], 1) + rng.normal(0, 0.03, (150, 2))
    sphere = np.random.default_rng(0).normal(size=(400, 3))  # as test_topology's
    sphere /= np.linalg.norm(sphere, axis=1, keepdims=True)
    return [
        (6, 2, 1, circle),
        (6, 2, 1, np.concatenate([circle, circle * 0.5 + 4])),  # two circles: b0 = b1 = 2
        (6, 2, 1, rng.uniform(size=(120, 1))),  # a line: collapses (to three vertices)
        (4, 2, 1, circle[:2]),  # too few points for a cycle
        (2, 1, 1, np.array([[0.0, 0], [1, 0], [1, 1], [0, 1]])),  # a square: a 4-cycle core
        (6, 1, 1, circle),  # other scales: each measured in a graph of its own
        (2, 6, 1, circle[np.argsort(t)][::12]),  # a scale past the 13-gon's size fills it in
        (14, 2, 2, sphere),  # b2
        (5, 2, 0, circle),  # b0 alone
    ]


def _whole_complex(k: int, eps: int, maxdim: int, x: np.ndarray) -> tuple[int, int, int]:
    """The numbers without any collapse: ripser on the clique complex of all of G^eps."""
    a = homology.knn_graph(np.unique(x, axis=0), k)
    alive = homology.clique_betti(homology.reach(a, eps), max(maxdim, 1))
    return alive[0], alive[1] if maxdim >= 1 else 0, alive[2] if maxdim >= 2 else 0


def test_clouds_measured_together_give_each_its_own_numbers():
    clouds = _clouds()
    together = homology.measure_clouds(clouds)
    assert together == [homology.betti_numbers(x, k, e, m) for k, e, m, x in clouds]
    assert together == [_whole_complex(*c) for c in clouds]
    assert together[:2] == [(1, 1, 0), (2, 2, 0)] and together[4] == (1, 1, 0)
    assert together[6][1] == 0 and together[7] == (1, 0, 1)


@pytest.mark.parametrize("eps", [1, 2])
def test_the_core_of_blocks_is_each_graphs_own_core(eps):
    """Bit sets per block, and a block left with three vertices or fewer stops as it did
    alone (the line), however many vertices the others keep."""
    clouds = _clouds()
    xs = [np.unique(x, axis=0) for _, _, _, x in clouds]
    graphs = [homology.reach(homology.knn_graph(x, k), eps) for x, (k, _, _, _) in
              zip(xs, clouds, strict=True)]
    union, starts = homology.knn_union(xs, [k for k, _, _, _ in clouds])
    union = homology.reach(union, eps)
    core, at = homology.dominated_core(union, starts)
    alone = [homology.dominated_core(g)[0] for g in graphs]
    assert [c.shape[0] for c in alone] == np.diff(at).tolist()
    for i, c in enumerate(alone):
        block = core[at[i] : at[i + 1], at[i] : at[i + 1]]
        assert (block != c).nnz == 0, i
    assert 2 <= alone[2].shape[0] <= 3  # the line stopped where a graph alone stops
