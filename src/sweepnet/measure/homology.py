"""The Betti numbers of one point cloud (Naitzat, Zhitnikov & Lim, JMLR 2020), fast.

For a class's cloud ``x (n, dim)`` the method is theirs: the symmetric k-nearest-neighbour
graph ``G`` of the cloud's distinct points, its hop distance, and the Vietoris-Rips complex of
that distance at one scale ``eps`` (in hops). That complex is the clique (flag) complex of
``G^eps``, the graph joining the points at most ``eps`` hops apart, and its Betti numbers are
the cloud's topology:

- b0 is the number of connected components of ``G`` (any ``eps >= 1`` gives the same);
- b1 and b2 are those of the clique complex of ``G^eps``. Before any homology is computed,
  every *dominated* vertex is removed: ``v`` is dominated by a neighbour ``u`` when every
  neighbour of ``v`` is a neighbour of ``u`` (closed neighbourhoods, ``N[v] ⊆ N[u]``). Its
  link is then a cone, so removing it is a strong collapse: the clique complex keeps its
  homotopy type, hence every Betti number (Boissonnat & Pritam 2020). The removal repeats
  until no vertex is dominated, first in ``G`` (cheap, and a vertex dominated there is
  dominated in ``G^eps``), then in ``G^eps``; on the clouds of trained networks the core
  left runs from a single vertex for a collapsed layer to about two thirds of the points of
  a full annulus. ripser then computes the homology of the core's complex, every edge at one
  filtration value (only the complex at ``eps`` is asked about, so the hop distances inside
  it do not matter), and the classes that never die are its Betti numbers.

This gives the numbers that ripser gave on the whole complex with the hop distances as the
filtration, cut at ``eps`` (``analysis/topology_ab.py`` checks it on the clouds of trained
networks), in less time: on 60 clouds of trained layers, ripser took 9.0 s on the
filtration, 3.5 s on the same complex with every edge at one value, and about 0.9 s on the
cores, which took about 1.8 s to find; with the kNN graphs built without a LIL matrix and
the hop distances as a sparse power, a cloud costs about a quarter of what it did.
giotto-ph's ``ripser_parallel`` with edge collapse (10.1 s) and gudhi (edge collapse, then
expansion: 30.8 s) were slower on the same clouds (on the cores too: 9.9 s against ripser's
1.1 s for 143 cores).

A pool's task (:func:`measure_clouds`) puts its clouds side by side, as the blocks of one
graph: one kNN matrix, one count of components, one pass of each collapse and one sparse
power for all, where each cloud alone paid for every numpy call of every round (a collapse
takes 10 to 40 rounds, most of them removing a few vertices). With that, numpy's ``take``
and index arrays in place of boolean masks, and the subset test over a neighbourhood's band
of words (:func:`dominated_core`), the 322 clouds of ``analysis/topology_ab.py``'s layers
(``--where "seed < 2"``) took 1.5x less CPU time than one at a time (57.8 against 87
clouds per CPU second, interleaved, identical numbers); the collapses went from 60% of
the homology's time to about a third, next to ripser's third and the kNN graphs' quarter.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from ripser import ripser
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

# one cloud's job for the pool: (k, eps, maxdim, cloud (n_points, dim))
Cloud = tuple[int, int, int, np.ndarray]
DENSE_CELLS = 1 << 22  # booleans of the dense rows a collapse packs into bit sets at once


def knn_graph(x: np.ndarray, k: int) -> sp.csr_matrix:
    """Symmetric kNN adjacency of ``x (n, dim)``: a ``(n, n)`` scipy CSR matrix of ones.

    i ~ j when j is among i's ``k`` nearest neighbours or i among j's. Duplicate points
    (ReLU maps many inputs to one) are neighbours like any others; no self loops.
    """
    return knn_union([x], [k])[0]


def knn_union(xs: Sequence[np.ndarray], ks: Sequence[int]) -> tuple[sp.csr_matrix, np.ndarray]:
    """The kNN graphs (:func:`knn_graph`) of the clouds ``xs`` (each ``(n_i, dim_i)``, with
    its own ``k``) as one block-diagonal graph ``(sum n_i, sum n_i)``, and ``starts
    (len(xs) + 1,)``: the first vertex of each block, then the number of vertices."""
    starts = np.r_[0, np.cumsum([len(x) for x in xs], dtype=np.int64)].astype(np.int64)
    i, j = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for x, k, s in zip(xs, ks, starts, strict=False):
        rows, cols = _knn_edges(x, k)
        i.append(rows + s)
        j.append(cols + s)
    i, j = np.concatenate(i), np.concatenate(j)
    n = int(starts[-1])
    # both directions at once: an edge found from both ends sums to 2, then counts once
    graph = sp.csr_matrix((np.ones(2 * len(i)), (np.r_[i, j], np.r_[j, i])), shape=(n, n))
    graph.data[:] = 1.0
    return graph, starts


def _knn_edges(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The kNN edges ``(i, j)`` of ``x (n, dim)`` as found from ``i`` (``j`` among ``i``'s
    ``k`` nearest), without self loops; ``(m,)`` each."""
    n = len(x)
    k = min(k, n - 1)
    if k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    x = np.asarray(x, np.float64)
    if x.shape[1] <= 16:
        _, idx = cKDTree(x).query(x, k + 1)
    else:  # a tree gains nothing in many dimensions: brute force, one row block at a time
        idx = np.empty((n, k + 1), np.int64)
        sq = (x * x).sum(1)
        for s in range(0, n, 512):
            d = sq[s : s + 512, None] - 2 * x[s : s + 512] @ x.T + sq[None, :]
            idx[s : s + 512] = np.argpartition(d, k, axis=1)[:, : k + 1]
    rows, cols = np.repeat(np.arange(n), k + 1), idx.ravel().astype(np.int64)
    off = rows != cols  # a point is its own nearest neighbour (or ties with a duplicate)
    return rows[off], cols[off]


def reach(adjacency: sp.csr_matrix, eps: int) -> sp.csr_matrix:
    """``G^eps``: the points at most ``eps`` hops apart in the graph ``(n, n)``, as a CSR
    matrix of ones without the diagonal (a block-diagonal graph stays so)."""
    n = adjacency.shape[0]
    step = (adjacency + sp.identity(n, format="csr")).astype(np.int32)
    g = step
    for _ in range(eps - 1):
        g = g @ step
        g.data[:] = 1  # counts of paths would overflow nothing, but ones keep it small
    g = g.tocsr()
    g.setdiag(0)
    g.eliminate_zeros()
    return g


def dominated_core(graph: sp.csr_matrix, starts: np.ndarray | None = None
                   ) -> tuple[sp.csr_matrix, np.ndarray]:
    """The graph without its dominated vertices, removed until none is (see the module), and
    the ``starts`` of its blocks.

    ``graph (n, n)``: CSR of ones, symmetric, no diagonal; block-diagonal with blocks
    ``starts`` (:func:`knn_union`; default: one block), each the graph of one cloud, collapsed
    as if alone: a domination joins neighbours, so never two blocks, and the rounds below
    stop checking a block left with three vertices or fewer (where a block alone stopped).
    Many clouds in one graph share each round's numpy calls, which cost more than the
    arithmetic on one cloud's few thousand edges.

    Each round removes at once every vertex ``v`` with a dominating neighbour ``u`` that
    ranks above it (a higher degree, or the same degree and a higher index; a dominator has
    at least ``v``'s degree). That set is safe to remove together: following a removed
    vertex's higher-ranked dominator ends, by transitivity, at a kept one that dominates it,
    and removing other vertices keeps a domination between two kept ones. A vertex can only
    become dominated when its own neighbourhood shrinks, so a round after the first checks
    the neighbours of the vertices the last one removed. Neighbourhoods are bit sets over a
    block's vertices: ``N[v] ⊆ N[u]`` is one ``and not`` over ``block / 64`` words per edge.
    """
    g = graph.tocsr()
    n = g.shape[0]
    starts = np.asarray([0, n] if starts is None else starts, np.int64)
    block = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    local = np.arange(n) - starts[block]  # a vertex's bit in its block's sets
    bits = _closed_bitsets(g, local, int(np.diff(starts).max(initial=1)))
    deg = np.diff(g.indptr).astype(np.int64)  # among the kept vertices
    rank = deg * n + np.arange(n)
    v, u = np.repeat(np.arange(n), deg), g.indices.astype(np.int64)  # round one: every edge
    # The first and last vertex of each N[u] (as first given): a dominator's cover v's.
    first, last = lo, hi = _span(v, u, n)
    alive = np.ones(n, bool)
    size = np.diff(starts)  # kept vertices per block
    big = np.take(size, block) > 3
    # (np.take, and masks turned into indices first: several times faster than a[mask])
    while len(v):
        at = np.flatnonzero(np.take(rank, u) > np.take(rank, v))  # halves the edges
        v, u = np.take(v, at), np.take(u, at)
        at = np.flatnonzero((np.take(first, u) <= np.take(lo, v))
                            & (np.take(last, u) >= np.take(hi, v)) & np.take(big, v))
        v, u = np.take(v, at), np.take(u, at)
        dominated = np.zeros(n, bool)
        dominated[np.take(v, np.flatnonzero(_covered(bits, v, u, local[lo], local[hi])))] = True
        gone = np.flatnonzero(dominated)
        if not len(gone):
            break
        alive[gone] = False
        size -= np.bincount(block[gone], minlength=len(size))
        big = np.take(size, block) > 3
        by, near = _edges(g, gone)
        at = np.flatnonzero(np.take(alive, near))
        by, near = np.take(by, at), np.take(near, at)
        deg -= np.bincount(near, minlength=n)
        rank = deg * n + np.arange(n)
        # a removed vertex leaves its neighbours' sets (only theirs hold its bit)
        lb = np.take(local, by)
        np.bitwise_and.at(bits, (near, lb >> 6), ~(np.uint64(1) << (lb & 63).astype(np.uint64)))
        check = np.zeros(n, bool)
        check[near] = True
        v, u = _edges(g, np.flatnonzero(check))
        at = np.flatnonzero(np.take(alive, u))
        v, u = np.take(v, at), np.take(u, at)
        lo, hi = _span(v, u, n)  # of N[v] now
    keep = np.flatnonzero(alive)
    return g[keep][:, keep], np.r_[0, np.cumsum(size)].astype(np.int64)


def _covered(bits: np.ndarray, v: np.ndarray, u: np.ndarray, lo: np.ndarray, hi: np.ndarray
             ) -> np.ndarray:
    """Whether ``N[v] ⊆ N[u]`` for each edge ``(v, u)`` ``(m,)``, from the bit sets ``bits
    (n, words)`` and the lowest and highest bit of each ``N[v]``, ``lo`` and ``hi`` ``(n,)``.

    Only the words between ``v``'s lowest and highest bit can differ: a cloud's points come
    sorted by their first coordinate, so a neighbourhood is a band of them, two or three words
    of a block's sixteen (1,000 points). Many edges go in groups of one band's width."""
    words = bits.shape[1]
    flat = bits.ravel()
    first = np.take(lo, v) >> 6
    band = (np.take(hi, v) >> 6) - first + 1
    if len(v) < 4096:  # few edges (a late round): one group, not a numpy call per width
        order, groups = np.arange(len(v)), [(0, len(v), int(band.max(initial=1)))]
    else:
        order = np.argsort(band.astype(np.uint16), kind="stable")  # a radix sort
        ends = np.cumsum(np.bincount(band, minlength=words + 1))
        groups = [(a, b, w) for w, (a, b) in enumerate(zip(np.r_[0, ends[:-1]], ends,
                                                             strict=True)) if b > a]
    out = np.empty(len(v), bool)
    for a, b, width in groups:
        for s in range(a, b, 16384):  # bounded temporaries: 16k edges x the band's words
            at = order[s : min(b, s + 16384)]
            # (a narrower band's words past its own hold none of v's bits: they change nothing)
            word = np.minimum(np.take(first, at)[:, None] + np.arange(width), words - 1)
            x = np.take(flat, np.take(v, at)[:, None] * words + word)
            x &= ~np.take(flat, np.take(u, at)[:, None] * words + word)
            out[at] = ~x.any(axis=1)
    return out


def _closed_bitsets(g: sp.csr_matrix, local: np.ndarray, width: int) -> np.ndarray:
    """``N[v]`` of each vertex of ``g (n, n)`` as a bit set ``(n, ceil(width / 64))`` of
    uint64 words over its block's vertices (bit ``local[u]`` for ``u``)."""
    n = g.shape[0]
    words = -(-width // 64)
    bits = np.empty((n, words), np.uint64)
    rows = np.repeat(np.arange(n), np.diff(g.indptr))
    step = max(1, DENSE_CELLS // (words * 64))
    for a in range(0, n, step):
        b = min(n, a + step)
        dense = np.zeros((b - a, words * 64), bool)
        at = slice(g.indptr[a], g.indptr[b])
        dense[rows[at] - a, local[g.indices[at]]] = True
        dense[np.arange(b - a), local[a:b]] = True  # closed: v is in N[v]
        bits[a:b] = np.packbits(dense, axis=1, bitorder="little").view(np.uint64)
    return bits


def _span(v: np.ndarray, u: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The lowest and highest vertex of each closed neighbourhood ``N[v]``, ``(n,)`` each,
    from the edges ``(v, u)`` (a vertex without edges: itself)."""
    lo, hi = np.arange(n), np.arange(n)
    if len(v):  # the edges come grouped by v (``_edges``)
        starts = np.flatnonzero(np.r_[True, v[1:] != v[:-1]])
        at = v[starts]
        lo[at] = np.minimum(at, np.minimum.reduceat(u, starts))
        hi[at] = np.maximum(at, np.maximum.reduceat(u, starts))
    return lo, hi


def _edges(g: sp.csr_matrix, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges ``(v, u)`` of the CSR graph ``g`` out of the vertices ``rows``."""
    starts = np.take(g.indptr, rows)
    counts = np.take(g.indptr, rows + 1) - starts
    # edge e of row r sits at indptr[r] + (e - the edges of the rows before r)
    at = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    return np.repeat(rows, counts), np.take(g.indices, at).astype(np.int64)


def clique_betti(graph: sp.csr_matrix, maxdim: int) -> list[int]:
    """Betti numbers ``[b0, .., b_maxdim]`` of the clique complex of ``graph (n, n)``."""
    edges = sp.triu(graph, 1).tocoo()
    if edges.nnz == 0:  # ripser needs an edge; the complex is its points
        return [graph.shape[0]] + [0] * maxdim
    flat = sp.coo_matrix((np.ones(edges.nnz), (edges.row, edges.col)), shape=graph.shape)
    dgms = ripser(flat, maxdim=maxdim, thresh=1.0, distance_matrix=True)["dgms"]
    # Every simplex is in at 1: the classes alive there are those that never die.
    alive = [int(np.sum(np.isinf(d[:, 1]))) for d in dgms]
    return alive


def betti_numbers(x: np.ndarray, k: int, eps: int, maxdim: int = 1) -> tuple[int, int, int]:
    """Betti numbers ``(b0, b1, b2)`` of the cloud ``x (n, dim)`` at scale ``eps`` of the hop
    distance of its ``k``-NN graph (of its distinct points). ``b2`` is computed only for
    ``maxdim >= 2`` (else 0)."""
    return measure_clouds([(k, eps, maxdim, x)])[0]


def measure_clouds(jobs: Sequence[Cloud]) -> list[tuple[int, int, int]]:
    """``betti_numbers`` of each ``(k, eps, maxdim, cloud)``, in order (a pool's task): the
    clouds of one ``eps`` as the blocks of one graph (:func:`dominated_core`)."""
    out: list[tuple[int, int, int]] = [(0, 0, 0)] * len(jobs)
    groups: dict[int, list[int]] = {}
    for i, (_, eps, maxdim, _) in enumerate(jobs):  # 0: b0 alone
        groups.setdefault(eps if maxdim >= 1 else 0, []).append(i)
    for eps, at in groups.items():
        for i, numbers in zip(at, _betti_blocks([jobs[i] for i in at], eps), strict=True):
            out[i] = numbers
    return out


def _betti_blocks(jobs: Sequence[Cloud], eps: int) -> list[tuple[int, int, int]]:
    """``betti_numbers`` of clouds of one ``eps`` (0: b0 alone), their graphs as one."""
    # Points a layer maps onto one (ReLU does, often hundreds) are one point of the space:
    # kept apart they would be a clique of arbitrary kNN edges, full of false cycles.
    xs = [np.unique(np.asarray(x), axis=0) for _, _, _, x in jobs]
    a, starts = knn_union(xs, [k for k, _, _, _ in jobs])
    block = np.repeat(np.arange(len(jobs)), np.diff(starts))
    n_parts, labels = connected_components(a, directed=False)
    owner = np.zeros(n_parts, np.int64)
    owner[labels] = block
    b0 = np.bincount(owner, minlength=len(jobs))
    if eps < 1:
        return [(int(b), 0, 0) for b in b0]
    # A vertex dominated in the kNN graph is dominated in its eps-th power too, and every
    # path through it has a detour through its dominator (no longer): removing it from the
    # graph first removes it from the power. The sparse graph is the cheaper one to reduce.
    core, at = dominated_core(a, starts)
    if eps > 1:  # G^1 is G, whose core has no dominated vertex left
        core, at = dominated_core(reach(core, eps), at)
    out = []
    for i, (_, _, maxdim, _) in enumerate(jobs):
        # three vertices or fewer span no cycle and no void (a clique complex fills triangles)
        alive = clique_betti(core[at[i] : at[i + 1], at[i] : at[i + 1]], maxdim) \
            if at[i + 1] - at[i] > 3 and len(xs[i]) >= 3 else [0, 0, 0]
        out.append(_numbers(int(b0[i]), alive, maxdim))
    return out


def _numbers(b0: int, alive: Sequence[int], maxdim: int) -> tuple[int, int, int]:
    """``(b0, b1, b2)`` from b0 and the core's Betti numbers ``[b0, b1, (b2)]``."""
    return b0, alive[1], alive[2] if maxdim >= 2 else 0


__all__ = ["Cloud", "betti_numbers", "clique_betti", "dominated_core", "knn_graph", "knn_union",
           "measure_clouds", "reach"]

