"""The ``balls`` dataset (issue 23): components and holes of chosen number, their known Betti
numbers, and a spec that sweeps them."""

import functools

import numpy as np
import pytest

from sweepnet.core.errors import SweepnetError
from sweepnet.measure.topology import betti_numbers
from sweepnet.sweep import data, shapes, spec
from sweepnet.views import charts

N = 4000  # 2,000 points a class: the size the geometry is tuned to (see sweep/shapes.py)


@functools.lru_cache
def _draw(components, holes, dim=2, layout=0, seed=3):
    """Train points of one configuration (one draw program serves every count)."""
    s = data.make_split("balls", {"components": components, "holes": holes, "dim": dim,
                                  "layout": layout}, N, 1, 0.0, seed)
    return s.x_train, s.y_train


@pytest.mark.parametrize("components, holes", [(1, 1), (5, 2)])
def test_the_sampled_points_have_the_known_betti_numbers(components, holes):
    x, y = _draw(components, holes)
    known = data.betti("balls", {"components": components, "holes": holes})
    assert known == {1: (components, holes, 0), 0: (1 + holes, components, 0)}
    # k = 16, eps = 2: the setting that holds for every count (sweep/shapes.py)
    assert {c: betti_numbers(x[y == c], 16, 2) for c in (0, 1)} == known


@pytest.mark.parametrize("dim", [2, 3])
def test_regions_counts_and_the_gap_between_the_classes(dim):
    components, holes = (5, 2) if dim == 2 else (4, 3)
    x, y = _draw(components, holes, dim)
    assert x.shape == (N, dim) and np.bincount(y).tolist() == [N // 2, N // 2]
    assert np.abs(x).max() <= 1.0
    centres = shapes.balls_layout(dim, 0)[:components]
    d = np.linalg.norm(x[:, None, :] - centres[None], axis=-1)  # (N, components)
    near, which = d.min(1), d.argmin(1)
    ones, zeros = y == 1, y == 0
    assert (near[ones] <= shapes.BALL_R + 1e-5).all()
    # every component holds points; the annuli (the first `holes`) hold none in their hole
    assert set(which[ones]) == set(range(components))
    annulus = ones & (which < holes)
    assert (near[annulus] >= shapes.BALL_RING - 1e-5).all()
    # class 0: in a core of an annulus, or outside every component and its gap
    core = zeros & (near < shapes.BALL_R) & (which < holes)
    assert (near[core] <= shapes.BALL_CORE + 1e-5).all()
    assert (near[zeros & ~core] >= shapes.BALL_R + shapes.BALL_GAP - 1e-5).all()
    assert set(which[core]) == set(range(holes))
    # the gap: no point of one class within BALL_GAP of the other's
    a, b = x[ones], x[zeros]
    gap = min(np.sqrt(((a[i:i + 500, None] - b[None]) ** 2).sum(-1)).min()
              for i in range(0, len(a), 500))
    assert gap >= shapes.BALL_GAP - 1e-4
    if dim == 3:
        assert data.betti("balls", {"components": 4, "holes": 3, "dim": 3}) == {
            1: (4, 0, 3), 0: (4, 0, 4)}


def test_the_layout_is_seeded_nested_and_does_not_overlap():
    x, y = _draw(5, 2)
    x2, _ = _draw(5, 2, seed=4)  # another data seed: other points, the same disks
    assert not np.allclose(x[:50], x2[:50])
    a, b = shapes.balls_layout(2, 0), shapes.balls_layout(2, 1)
    assert a.shape == (9, 2) and not np.allclose(a, b)
    np.testing.assert_array_equal(a, shapes.balls_layout(2, 0))
    gaps = np.linalg.norm(a[:, None] - a[None], axis=-1) + 9 * np.eye(9)
    assert gaps.min() > 2 * (shapes.BALL_R + shapes.BALL_GAP)
    assert (np.abs(a) + shapes.BALL_R + shapes.BALL_GAP < 1).all()
    # 3 components are the first 3 of 5: the same disks hold the same points' region
    x3, y3 = _draw(3, 0)
    c3 = np.linalg.norm(x3[y3 == 1][:, None] - a[None, :3], axis=-1).min(1)
    assert (c3 <= shapes.BALL_R + 1e-5).all()


BALLS_SPEC = """
name = "b"
[data]
dataset = "balls"
n_train = 64
n_test = 64
[data.balls]
components = [1, 2, 4]
holes = [0, 1, 3]
[model]
width = 2
depth = 1
[train]
seeds = 1
"""


def test_a_spec_sweeps_components_and_holes_and_skips_the_impossible_pairs():
    s = spec.loads(BALLS_SPEC)
    pairs = [(c["data_components"], c["data_holes"]) for c in s.grid()]
    assert pairs == [(1, 0), (1, 1), (2, 0), (2, 1), (4, 0), (4, 1), (4, 3)]
    with pytest.raises(SweepnetError, match=r"^spec: data\.balls\.holes: 3 is more than "
                                            r"components = \d \(") as e:
        spec.loads(BALLS_SPEC, ["data.balls.components=[1, 2]"])  # 3 holes fit nowhere
    assert "\n" not in str(e.value)
    with pytest.raises(SweepnetError, match=r"^--set data\.balls\.holes: 3 is more than"):
        spec.loads(BALLS_SPEC, ["data.balls.components=2", "data.balls.holes=3"])
    with pytest.raises(SweepnetError, match=r"^--set data\.balls\.components: 10 is more than "
                                            r"a 2-D layout holds \(9\)"):
        spec.loads(BALLS_SPEC, ["data.balls.components=10", "data.balls.holes=0"])
    with pytest.raises(SweepnetError, match=r"^--set holes: 5 is more than components = 4"):
        spec.dataset_params("balls", ["holes=5"])


def test_sweepnet_datasets_draws_balls():
    params = spec.dataset_params("balls", ["holes=2", "components=5"])
    chart = charts.dataset("balls", n=N, params=params)  # _draw's program: no compile
    assert f"balls: {N} points" in str(chart.to_dict()["title"])
