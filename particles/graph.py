"""Neighbour graphs on NVIDIA Warp ``HashGrid`` kernels: radius graph, kNN, ball query.

These do the jobs PyTorch3D's ``knn_points`` / ``ball_query`` and PyG's
``radius_graph`` do elsewhere, on the CPU and on CUDA. The hash grid only proposes
candidates; every edge is confirmed by its true distance, so results equal an
all-pairs reference exactly.

Array conventions: pass NumPy arrays and get NumPy back (computed on ``device``,
default CPU), or pass torch tensors and get torch tensors back on the same device
(zero-copy through ``wp.from_torch``). Packed batches: scenes are concatenated and a
``batch (N,)`` vector of scene indices keeps edges inside each scene.
"""

from __future__ import annotations

from typing import Optional

import os

import numpy as np
import warp as wp

from . import _kernels as K

__all__ = ["radius_graph", "radius_search", "knn", "ball_query"]

#: Hash grid resolution per axis; cells are hashed, so this bounds memory, not extent.
GRID_DIM = 128

_grids: dict[str, wp.HashGrid] = {}


def _grid(device) -> wp.HashGrid:
    key = str(device)
    if key not in _grids:
        _grids[key] = wp.HashGrid(GRID_DIM, GRID_DIM, GRID_DIM, device=device)
    return _grids[key]


def _is_torch(x) -> bool:
    return type(x).__module__.startswith("torch")


class _Arrays:
    """Moves inputs into Warp arrays on one device and outputs back to the caller's kind."""

    def __init__(self, like, device: Optional[str]):
        self.torch = _is_torch(like)
        wp.init()  # idempotent; device_from_torch needs an initialised runtime
        if self.torch:
            import torch

            self.torch_device = like.device
            self.device = wp.device_from_torch(like.device)
            self._torch = torch
        else:
            self.device = wp.get_device(device or "cpu")

    def vec3(self, x, name: str) -> wp.array:
        if self.torch:
            t = x.detach().to(device=self.torch_device, dtype=self._torch.float32).contiguous()
            if t.ndim != 2 or t.shape[1] != 3:
                raise ValueError(f"{name}: expected shape (N, 3), got {tuple(t.shape)}")
            return wp.from_torch(t, dtype=wp.vec3)
        a = np.ascontiguousarray(np.asarray(x, np.float32))
        if a.ndim != 2 or a.shape[1] != 3:
            raise ValueError(f"{name}: expected shape (N, 3), got {a.shape}")
        return wp.array(a, dtype=wp.vec3, device=self.device)

    def int32(self, x, n: int, name: str) -> wp.array:
        if self.torch:
            t = x.detach().to(device=self.torch_device, dtype=self._torch.int32).contiguous()
            if t.shape != (n,):
                raise ValueError(f"{name}: expected shape ({n},), got {tuple(t.shape)}")
            return wp.from_torch(t, dtype=wp.int32)
        a = np.ascontiguousarray(np.asarray(x), dtype=np.int32)
        if a.shape != (n,):
            raise ValueError(f"{name}: expected shape ({n},), got {a.shape}")
        return wp.array(a, dtype=wp.int32, device=self.device)

    def out(self, a: wp.array):
        if self.torch:
            return wp.to_torch(a)
        return a.numpy()

    def empty_edges(self):
        if self.torch:
            return self._torch.empty((0, 2), dtype=self._torch.int64, device=self.torch_device)
        return np.empty((0, 2), np.int64)


def _check_radius(radius: float) -> float:
    r = float(radius)
    if not np.isfinite(r) or r <= 0:
        raise ValueError(f"radius: must be a positive finite length in m, got {radius!r}")
    return r


def _groups(arr: _Arrays, query_batch, point_batch, nq: int, np_: int):
    if (query_batch is None) != (point_batch is None):
        raise ValueError("batch: give a batch vector for both queries and points, or for neither")
    if query_batch is None:
        dummy = wp.empty(0, dtype=wp.int32, device=arr.device)
        return 0, dummy, dummy
    return 1, arr.int32(query_batch, nq, "query_batch"), arr.int32(point_batch, np_, "batch")


#: Warp runs a CPU kernel on one core, but a launch releases the GIL: queries are split into this
#: many disjoint row ranges launched from a thread pool (one per core) when there are at least
#: ``_PARALLEL_MIN_ROWS`` of them. Rows never overlap, so the result is identical.
_CPU_WORKERS = max(1, min(8, os.cpu_count() or 1))
_PARALLEL_MIN_ROWS = 20_000


def _parallel_rows(device, n: int, launch) -> None:
    """Call ``launch(start, stop)`` over [0, n): in parallel chunks on the CPU, once on CUDA."""
    workers = _CPU_WORKERS if (device.is_cpu and n >= _PARALLEL_MIN_ROWS) else 1
    if workers == 1:
        launch(0, n)
        return
    from concurrent.futures import ThreadPoolExecutor

    bounds = np.linspace(0, n, workers + 1).astype(int)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda ab: launch(*ab), zip(bounds[:-1], bounds[1:])))


#: Rows sampled to size the per-row neighbour buffer, and the headroom over the largest sampled row.
_CAPACITY_SAMPLE = 1024
_CAPACITY_HEADROOM = 1.5


def _row_capacity(grid, q, p, common) -> int:
    """Buffer width for one-pass neighbour filling: the largest neighbour count among an
    evenly spaced (deterministic) sample of queries, with headroom. Rows longer than this
    are still exact: they take a slower second pass."""
    nq = q.shape[0]
    sample = np.unique(np.linspace(0, nq - 1, min(nq, _CAPACITY_SAMPLE)).astype(np.int32))
    counts = wp.empty(sample.size, dtype=wp.int32)
    wp.launch(K.count_neighbors_sample, sample.size, inputs=[grid.id, q, p, wp.array(sample), *common], outputs=[counts])
    return max(4, int(np.ceil(counts.numpy().max(initial=0) * _CAPACITY_HEADROOM)))


def radius_search(queries, points, radius: float, query_batch=None, point_batch=None, exclude_self: bool = False,
                  max_neighbors: Optional[int] = None, device: Optional[str] = None):
    """All pairs (q, j) with ``|points[j] - queries[q]| <= radius``.

    Args:
        queries: (Q, 3) float32, m.
        points: (N, 3) float32, m.
        radius: m (> 0). Inclusive bound on the true Euclidean distance.
        query_batch, point_batch: (Q,) and (N,) int, optional packed-batch indices;
            pairs only join a query and a point of the same batch element.
        exclude_self: skip j == q (use when queries are the points themselves).
        max_neighbors: keep only the nearest ``max_neighbors`` per query (ties by index).
        device: Warp device for NumPy inputs (default ``"cpu"``); torch inputs run on their own device.

    Returns:
        (E, 2) int64 pairs ``[q, j]``, sorted by q, then by j (or by distance when
        ``max_neighbors`` is set); NumPy or torch like ``points``.
    """
    r = _check_radius(radius)
    arr = _Arrays(points, device)
    p = arr.vec3(points, "points")
    q = p if queries is points else arr.vec3(queries, "queries")
    nq, n = q.shape[0], p.shape[0]
    if nq == 0 or n == 0:
        return arr.empty_edges()
    has_g, qg, pg = _groups(arr, query_batch, point_batch, nq, n)
    if max_neighbors is not None:
        idx, _ = _knn_within(arr, q, p, int(max_neighbors), r, exclude_self, has_g, qg, pg)
        if arr.torch:
            torch = arr._torch
            rows = torch.arange(nq, device=idx.device).unsqueeze(1).expand_as(idx)
            keep = idx >= 0
            return torch.stack([rows[keep], idx[keep]], 1)
        rows = np.broadcast_to(np.arange(nq)[:, None], idx.shape)
        keep = idx >= 0
        return np.stack([rows[keep], idx[keep]], 1).astype(np.int64)
    grid = _grid(arr.device)
    common = (r, int(exclude_self), has_g, qg, pg)
    with wp.ScopedDevice(arr.device):
        grid.build(p, r)
        cap = _row_capacity(grid, q, p, common)
        if q is p:  # visit queries in the grid's cell order: neighbours share cache lines
            order = wp.empty(nq, dtype=wp.int32)
            wp.launch(K.grid_order, nq, inputs=[grid.id], outputs=[order])
        else:
            order = wp.array(np.arange(nq, dtype=np.int32))
        counts = wp.empty(nq, dtype=wp.int32)
        rows = wp.empty((nq, cap), dtype=wp.int32)
        _parallel_rows(arr.device, nq, lambda a, b: wp.launch(
            K.fill_neighbors_capped, b - a, inputs=[grid.id, q, p, order[a:b], *common], outputs=[counts, rows]))
        offsets = wp.empty(nq, dtype=wp.int32)
        wp.utils.array_scan(counts, offsets, inclusive=False)
        counts_np = counts.numpy()
        total = int(counts_np.sum())
        if total >= 2**31:
            raise ValueError(f"radius {r} m gives {total} edges, more than this graph kernel indexes (2^31)")
        edges = wp.empty((total, 2), dtype=wp.int64)
        if total:
            _parallel_rows(arr.device, nq, lambda a, b: wp.launch(
                K.compact_rows, b - a, inputs=[rows, counts, offsets, int(a)], outputs=[edges]))
            overflow = np.flatnonzero(counts_np > cap).astype(np.int32)
            if overflow.size:
                wp.launch(K.fill_overflow_rows, overflow.size, inputs=[grid.id, q, p, wp.array(overflow), *common, offsets],
                          outputs=[edges])
    return arr.out(edges)


def radius_graph(points, radius: float, batch=None, loop: bool = False, max_neighbors: Optional[int] = None,
                 device: Optional[str] = None):
    """Directed radius graph of a (packed) point set.

    Args:
        points: (N, 3) float32, m.
        radius: m (> 0); an edge joins i and j when ``|x_i - x_j| <= radius``.
        batch: (N,) int, optional packed-batch index; no edge crosses batch elements.
        loop: include self-edges (i, i).
        max_neighbors: keep only each particle's nearest ``max_neighbors`` (then the graph
            may no longer be symmetric).
        device: Warp device for NumPy inputs (default ``"cpu"``).

    Returns:
        edges (E, 2) int64 ``[i, j]`` with both directions present, sorted by (i, j);
        NumPy or torch like ``points``. ``i`` receives from ``j`` in message passing.
    """
    return radius_search(points, points, radius, batch, batch, exclude_self=not loop,
                         max_neighbors=max_neighbors, device=device)


def _knn_within(arr: _Arrays, q, p, k: int, radius: float, exclude_self: bool, has_g, qg, pg,
                active_np: Optional[np.ndarray] = None, out=None):
    """Launch the kNN kernel for the given active queries; returns (idx (Q,k), dist2 (Q,k), found (Q,))."""
    nq = q.shape[0]
    if k <= 0:
        raise ValueError(f"k: must be a positive integer, got {k}")
    grid = _grid(arr.device)
    with wp.ScopedDevice(arr.device):
        if out is None:
            idx = wp.full((nq, k), -1, dtype=wp.int64)
            d2 = wp.full((nq, k), float("inf"), dtype=float)
            found = wp.zeros(nq, dtype=wp.int32)
        else:
            idx, d2, found = out
        active = wp.array(np.arange(nq, dtype=np.int32) if active_np is None else active_np.astype(np.int32))
        grid.build(p, radius)
        wp.launch(K.knn_search, active.shape[0], inputs=[grid.id, q, p, active, radius, k, int(exclude_self), has_g, qg, pg],
                  outputs=[idx, d2, found])
    if out is not None:
        return idx, d2, found
    return arr.out(idx), arr.out(d2)


def knn(points, k: int, queries=None, batch=None, query_batch=None, device: Optional[str] = None):
    """The ``k`` nearest points of each query, ordered by distance (ties by index).

    Args:
        points: (N, 3) float32, m.
        k: neighbours per query (> 0).
        queries: (Q, 3) float32, m; default: the points themselves, each excluding itself.
        batch, query_batch: optional packed-batch indices (N,) and (Q,); ``query_batch``
            defaults to ``batch`` when ``queries`` is None.
        device: Warp device for NumPy inputs (default ``"cpu"``).

    Returns:
        ``(idx (Q, k) int64, dist (Q, k) float32 m)``. Where fewer than k points exist
        (in the query's batch element), the row is padded with -1 and ``inf``.
    """
    k = int(k)
    if k <= 0:
        raise ValueError(f"k: must be a positive integer, got {k}")
    arr = _Arrays(points, device)
    p = arr.vec3(points, "points")
    self_query = queries is None
    q = p if self_query else arr.vec3(queries, "queries")
    if self_query:
        query_batch = batch
    nq, n = q.shape[0], p.shape[0]
    if nq == 0 or n == 0:
        idx = np.full((nq, k), -1, np.int64)
        dist = np.full((nq, k), np.inf, np.float32)
        if arr.torch:
            return arr._torch.from_numpy(idx).to(arr.torch_device), arr._torch.from_numpy(dist).to(arr.torch_device)
        return idx, dist
    has_g, qg, pg = _groups(arr, query_batch, batch, nq, n)
    # How many neighbours each query can possibly have: k, or fewer in a small batch element.
    pn = p.numpy()
    qn = pn if self_query else q.numpy()
    if has_g:
        pb, qb = pg.numpy(), qg.numpy()
        sizes = np.bincount(pb, minlength=int(max(pb.max(initial=0), qb.max(initial=0))) + 1)
        avail = sizes[qb] - (1 if self_query else 0)
    else:
        avail = np.full(nq, n - (1 if self_query else 0))
    target = np.minimum(k, avail)
    lo, hi = np.minimum(pn.min(0), qn.min(0)), np.maximum(pn.max(0), qn.max(0))
    diag = float(np.linalg.norm(hi - lo))
    radius = max(float(np.max(hi - lo)) * (k / max(n, 1)) ** (1.0 / 3.0), 1e-6)
    with wp.ScopedDevice(arr.device):
        out = (wp.full((nq, k), -1, dtype=wp.int64), wp.full((nq, k), float("inf"), dtype=float), wp.zeros(nq, dtype=wp.int32))
    active = np.arange(nq)
    while True:
        _knn_within(arr, q, p, k, radius, self_query, has_g, qg, pg, active, out)
        found = out[2].numpy()
        active = np.flatnonzero(found < target)
        if active.size == 0 or radius > 2.0 * diag + 1e-6:
            break
        radius *= 2.0  # queries still short of k neighbours search a larger ball
    idx, d2 = arr.out(out[0]), arr.out(out[1])
    if arr.torch:
        return idx, d2.sqrt()
    return idx, np.sqrt(d2).astype(np.float32)


def ball_query(points, queries, radius: float, max_neighbors: int, batch=None, query_batch=None,
               device: Optional[str] = None):
    """Up to ``max_neighbors`` points within ``radius`` of each query, nearest first
    (PyTorch3D's ``ball_query`` job, returning the nearest rather than the first found).

    Args:
        points: (N, 3) float32, m. queries: (Q, 3) float32, m. radius: m. max_neighbors: > 0.
        batch, query_batch: optional packed-batch indices.

    Returns:
        ``(idx (Q, K) int64, dist (Q, K) float32 m)``, padded with -1 and ``inf``.
    """
    r = _check_radius(radius)
    arr = _Arrays(points, device)
    p, q = arr.vec3(points, "points"), arr.vec3(queries, "queries")
    if q.shape[0] == 0 or p.shape[0] == 0:
        return knn(points, max_neighbors, queries=queries, batch=batch, query_batch=query_batch, device=device)
    has_g, qg, pg = _groups(arr, query_batch, batch, q.shape[0], p.shape[0])
    idx, d2 = _knn_within(arr, q, p, int(max_neighbors), r, False, has_g, qg, pg)
    if arr.torch:
        return idx, d2.sqrt()
    return idx, np.sqrt(d2).astype(np.float32)
