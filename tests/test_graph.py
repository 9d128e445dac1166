"""particles.graph: Warp HashGrid neighbour search must equal an all-pairs reference exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from particles import graph as G
from particles.graph import ball_query, knn, radius_graph, radius_search


def brute_radius(q, p, r, exclude_self=False, qb=None, pb=None):
    """All pairs [i, j] with |p_j - q_i| <= r, computed the way the kernel does (float32)."""
    q = np.asarray(q, np.float32)
    p = np.asarray(p, np.float32)
    d = q[:, None, :] - p[None, :, :]
    d2 = (d * d).sum(-1, dtype=np.float32)
    mask = d2 <= np.float32(r) * np.float32(r)
    if exclude_self:
        np.fill_diagonal(mask, False)
    if qb is not None:
        mask &= np.asarray(qb)[:, None] == np.asarray(pb)[None, :]
    return np.argwhere(mask).astype(np.int64)  # row-major: sorted by (i, j)


def brute_knn(q, p, k, exclude_self=False):
    d = np.sqrt(((q[:, None, :].astype(np.float64) - p[None, :, :]) ** 2).sum(-1))
    if exclude_self:
        np.fill_diagonal(d, np.inf)
    cols = np.broadcast_to(np.arange(len(p)), d.shape)
    order = np.lexsort((cols, d), axis=1)[:, :k]
    dist = np.take_along_axis(d, order, 1)
    order = np.where(np.isfinite(dist), order, -1)
    return order, dist


@pytest.mark.parametrize("n,radius", [(300, 0.15), (2000, 0.08), (2000, 0.3)])
def test_radius_graph_matches_all_pairs(rng, n, radius):
    x = rng.random((n, 3), dtype=np.float32)
    np.testing.assert_array_equal(radius_graph(x, radius), brute_radius(x, x, radius, exclude_self=True))


def test_radius_graph_self_loops_and_symmetry(rng):
    x = rng.random((400, 3), dtype=np.float32)
    e = radius_graph(x, 0.12, loop=True)
    np.testing.assert_array_equal(e, brute_radius(x, x, 0.12))
    e = radius_graph(x, 0.12)
    fwd = set(map(tuple, e.tolist()))
    assert fwd == {(j, i) for i, j in fwd}, "a radius graph is symmetric"


def test_degenerate_inputs():
    empty = np.zeros((0, 3), np.float32)
    assert radius_graph(empty, 0.1).shape == (0, 2)
    assert radius_graph(np.zeros((1, 3), np.float32), 0.1).shape == (0, 2)
    dup = np.zeros((6, 3), np.float32)  # duplicates: every pair at distance 0
    np.testing.assert_array_equal(radius_graph(dup, 0.1), brute_radius(dup, dup, 0.1, exclude_self=True))
    assert len(radius_graph(dup, 0.1)) == 30
    # every particle inside one hash cell
    tiny = (np.random.default_rng(0).random((50, 3)) * 1e-3).astype(np.float32)
    np.testing.assert_array_equal(radius_graph(tiny, 0.5), brute_radius(tiny, tiny, 0.5, exclude_self=True))
    # a lattice whose pitch is not the radius, far from the origin (hash wrap-around)
    g = np.stack(np.meshgrid(*[np.arange(6)] * 3, indexing="ij"), -1).reshape(-1, 3) * 0.07 + 100.0
    g = g.astype(np.float32)
    np.testing.assert_array_equal(radius_graph(g, 0.1), brute_radius(g, g, 0.1, exclude_self=True))
    with pytest.raises(ValueError, match="radius"):
        radius_graph(g, -1.0)
    with pytest.raises(ValueError, match="points"):
        radius_graph(np.zeros((4, 2), np.float32), 0.1)


def test_rows_longer_than_the_sampled_capacity_stay_exact(rng, monkeypatch):
    # a dense cluster next to sparse points: a one-row sample underestimates the row length
    dense = rng.random((400, 3), dtype=np.float32) * 0.05
    sparse = rng.random((400, 3), dtype=np.float32) + 1.0
    x = np.concatenate([sparse, dense])
    monkeypatch.setattr(G, "_CAPACITY_SAMPLE", 1)
    np.testing.assert_array_equal(radius_graph(x, 0.1), brute_radius(x, x, 0.1, exclude_self=True))


def test_packed_batches_never_cross(rng):
    a = rng.random((300, 3), dtype=np.float32)
    b = a + np.float32(1e-4)  # a second scene on top of the first
    x = np.concatenate([a, b])
    batch = np.repeat([0, 1], 300)
    e = radius_graph(x, 0.1, batch=batch)
    assert np.all(batch[e[:, 0]] == batch[e[:, 1]])
    np.testing.assert_array_equal(e, brute_radius(x, x, 0.1, True, batch, batch))
    # the packed graph is the two separate graphs with the second offset by 300
    ea, eb = radius_graph(a, 0.1), radius_graph(b, 0.1)
    np.testing.assert_array_equal(e, np.concatenate([ea, eb + 300]))


def test_torch_in_torch_out(rng):
    x = rng.random((500, 3), dtype=np.float32)
    e = radius_graph(torch.from_numpy(x), 0.1)
    assert isinstance(e, torch.Tensor) and e.dtype == torch.int64
    np.testing.assert_array_equal(e.numpy(), radius_graph(x, 0.1))
    idx, dist = knn(torch.from_numpy(x), 5)
    assert isinstance(idx, torch.Tensor) and isinstance(dist, torch.Tensor)


def test_radius_search_between_sets(rng):
    p = rng.random((700, 3), dtype=np.float32)
    q = rng.random((90, 3), dtype=np.float32)
    np.testing.assert_array_equal(radius_search(q, p, 0.11), brute_radius(q, p, 0.11))


def test_max_neighbors_keeps_the_nearest(rng):
    x = rng.random((600, 3), dtype=np.float32)
    e = radius_graph(x, 0.2, max_neighbors=4)
    ref_idx, ref_d = brute_knn(x, x, 4, exclude_self=True)
    ref_idx = np.where(ref_d <= 0.2, ref_idx, -1)
    rows = np.repeat(np.arange(len(x)), 4)
    keep = ref_idx.ravel() >= 0
    np.testing.assert_array_equal(e, np.stack([rows[keep], ref_idx.ravel()[keep]], 1))


@pytest.mark.parametrize("k", [1, 7])
def test_knn_matches_reference_with_ties(rng, k):
    x = rng.random((500, 3), dtype=np.float32)
    x[100:110] = x[0]  # exact ties: broken by index
    idx, dist = knn(x, k)
    ref_idx, ref_d = brute_knn(x, x, k, exclude_self=True)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_d, atol=1e-6)


def test_knn_pads_small_batches_and_clustered_data(rng):
    x = np.concatenate([rng.random((3, 3)), rng.random((50, 3)) * 1e-3 + 5.0]).astype(np.float32)
    batch = np.r_[np.zeros(3), np.ones(50)].astype(np.int64)
    idx, dist = knn(x, 5, batch=batch)
    assert np.all(idx[:3, 2:] == -1) and np.all(np.isinf(dist[:3, 2:]))
    assert np.all(batch[idx[3:]] == 1)
    ref_idx, _ = brute_knn(x[3:], x[3:], 5, exclude_self=True)
    np.testing.assert_array_equal(idx[3:], ref_idx + 3)
    # queries far away from a sparse cloud still find k neighbours (the search radius grows)
    q = np.array([[50.0, 50.0, 50.0]], np.float32)
    qi, _ = knn(x, 4, queries=q)
    ref, _ = brute_knn(q, x, 4)
    np.testing.assert_array_equal(qi, ref)


def test_ball_query_nearest_within_radius(rng):
    p = rng.random((400, 3), dtype=np.float32)
    q = rng.random((40, 3), dtype=np.float32)
    idx, dist = ball_query(p, q, 0.15, 6)
    ref_idx, ref_d = brute_knn(q, p, 6)
    ref_idx = np.where(ref_d <= 0.15, ref_idx, -1)
    np.testing.assert_array_equal(idx, ref_idx)
    assert np.all(dist[idx >= 0] <= 0.15 + 1e-6)


def test_parallel_cpu_chunks_give_the_same_graph(rng, monkeypatch):
    x = rng.random((3000, 3), dtype=np.float32)
    monkeypatch.setattr(G, "_CPU_WORKERS", 1)
    one = radius_graph(x, 0.07)
    monkeypatch.setattr(G, "_CPU_WORKERS", 3)
    monkeypatch.setattr(G, "_PARALLEL_MIN_ROWS", 1)
    np.testing.assert_array_equal(radius_graph(x, 0.07), one)
    np.testing.assert_array_equal(one, brute_radius(x, x, 0.07, exclude_self=True))
