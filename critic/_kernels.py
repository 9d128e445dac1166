"""Warp kernels of the critic: the particle pair search behind contact and penetration.

Many frames are searched in one launch: the candidate points of every frame go into
one grouped :class:`warp.HashGrid` whose group id is the frame index, so a query
only visits points of its own frame. Kernels take inputs first, then outputs; the
thin launchers below allocate, launch on the CPU (or the device given) and return
NumPy arrays.
"""

from __future__ import annotations

import numpy as np
import warp as wp

__all__ = ["nearest_other_object", "partners_within"]

_NO_NEIGHBOUR = -1
_BIG = 1.0e30


@wp.kernel
def _nearest_other_object_kernel(
    grid: wp.uint64,
    points: wp.array(dtype=wp.vec3),
    frame: wp.array(dtype=wp.int32),
    obj: wp.array(dtype=wp.int32),
    kinematic: wp.array(dtype=wp.int32),
    max_dist: float,
    best_dist_out: wp.array(dtype=float),
    best_index_out: wp.array(dtype=wp.int32),
):
    i = wp.tid()
    p = points[i]
    oi = obj[i]
    ki = kinematic[i]
    best = float(_BIG)
    best_j = int(_NO_NEIGHBOUR)
    query = wp.hash_grid_query(grid, p, max_dist, frame[i])
    j = int(0)
    while wp.hash_grid_query_next(query, j):
        if obj[j] == oi:
            continue
        if ki != 0 and kinematic[j] != 0:
            continue
        d = wp.length(points[j] - p)
        if d <= max_dist and d < best:
            best = d
            best_j = j
    best_dist_out[i] = best
    best_index_out[i] = best_j


_GRID_DIM = 128


def nearest_other_object(points: np.ndarray, frame: np.ndarray, obj: np.ndarray, kinematic: np.ndarray,
                         max_dist: float, device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """For each point, the nearest point of another object in the same frame within ``max_dist``.

    Pairs where both points are kinematic (prescribed: tool, static scenery) are not searched.

    Args:
        points: (C, 3) float32, m. Candidate particle positions, all frames packed together.
        frame: (C,) int32. Frame index of each point; only points of the same frame are paired.
        obj: (C,) int32. Object id of each point; points of the same object are never paired.
        kinematic: (C,) bool or int. True for kinematic points.
        max_dist: search radius, m (> 0).
        device: Warp device.

    Returns:
        ``dist (C,) float32`` (m; ``inf`` when nothing within ``max_dist``) and
        ``index (C,) int32`` (row of the nearest point in ``points``; -1 when none).
    """
    c = int(points.shape[0])
    if c == 0:
        return np.zeros(0, np.float32), np.zeros(0, np.int32)
    if not max_dist > 0:
        raise ValueError(f"max_dist: must be positive, got {max_dist}")
    pts = wp.array(np.ascontiguousarray(points, np.float32), dtype=wp.vec3, device=device)
    fr = wp.array(np.ascontiguousarray(frame, np.int32), dtype=wp.int32, device=device)
    ob = wp.array(np.ascontiguousarray(obj, np.int32), dtype=wp.int32, device=device)
    kin = wp.array(np.ascontiguousarray(kinematic, np.int32), dtype=wp.int32, device=device)
    grid = wp.HashGrid(_GRID_DIM, _GRID_DIM, _GRID_DIM, device=device)
    grid.build(pts, float(max_dist), groups=fr)
    dist = wp.empty(c, dtype=float, device=device)
    index = wp.empty(c, dtype=wp.int32, device=device)
    wp.launch(_nearest_other_object_kernel, dim=c, inputs=[grid.id, pts, fr, ob, kin, float(max_dist)],
              outputs=[dist, index], device=device)
    d = dist.numpy()
    d[d >= _BIG * 0.5] = np.inf
    return d, index.numpy()


@wp.kernel
def _partners_kernel(
    grid: wp.uint64,
    points: wp.array(dtype=wp.vec3),
    group: wp.array(dtype=wp.int32),
    obj: wp.array(dtype=wp.int32),
    max_dist: float,
    max_per: int,
    count_out: wp.array(dtype=wp.int32),
    found_out: wp.array(dtype=wp.int32),
    partner_out: wp.array2d(dtype=wp.int32),
):
    i = wp.tid()
    p = points[i]
    oi = obj[i]
    n = int(0)
    total = int(0)
    query = wp.hash_grid_query(grid, p, max_dist, group[i])
    j = int(0)
    while wp.hash_grid_query_next(query, j):
        if j <= i or obj[j] == oi:
            continue
        if wp.length(points[j] - p) <= max_dist:
            total += 1
            if n < max_per:
                partner_out[i, n] = j
                n += 1
    count_out[i] = n
    found_out[i] = total


def partners_within(points: np.ndarray, group: np.ndarray, obj: np.ndarray, max_dist: float, max_per: int = 64,
                    device: str = "cpu") -> tuple[np.ndarray, int]:
    """All pairs of points of different objects in the same group within ``max_dist``.

    Args:
        points: (C, 3) float32, m.
        group: (C,) int32. Only points of the same group are paired (e.g. one group per frame).
        obj: (C,) int32. Object id; points of the same object are never paired.
        max_dist: pair distance bound, m (> 0).
        max_per: most partners kept per point (pairs beyond it are counted, not listed).

    Returns:
        ``pairs (P, 2) int64`` (rows of ``points``, first < second, each unordered pair once) and
        the number of pairs that did not fit (0 unless a point had more than ``max_per`` partners).
    """
    c = int(points.shape[0])
    if c == 0:
        return np.zeros((0, 2), np.int64), 0
    if not max_dist > 0:
        raise ValueError(f"max_dist: must be positive, got {max_dist}")
    pts = wp.array(np.ascontiguousarray(points, np.float32), dtype=wp.vec3, device=device)
    gr = wp.array(np.ascontiguousarray(group, np.int32), dtype=wp.int32, device=device)
    ob = wp.array(np.ascontiguousarray(obj, np.int32), dtype=wp.int32, device=device)
    grid = wp.HashGrid(_GRID_DIM, _GRID_DIM, _GRID_DIM, device=device)
    grid.build(pts, float(max_dist), groups=gr)
    count = wp.empty(c, dtype=wp.int32, device=device)
    found = wp.empty(c, dtype=wp.int32, device=device)
    partner = wp.empty((c, max_per), dtype=wp.int32, device=device)
    wp.launch(_partners_kernel, dim=c, inputs=[grid.id, pts, gr, ob, float(max_dist), int(max_per)],
              outputs=[count, found, partner], device=device)
    n, tot, part = count.numpy(), found.numpy(), partner.numpy()
    rows = np.repeat(np.arange(c), n)
    cols = part[np.arange(max_per)[None, :] < n[:, None]]
    return np.stack([rows, cols.astype(np.int64)], 1), int((tot - n).sum())
