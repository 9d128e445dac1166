"""Warp kernels for neighbour search and sampling. No I/O, no configuration.

Each kernel takes its inputs first, then its outputs, and does one thing. Launchers
live in :mod:`particles.graph` and :mod:`particles.keypoints`.
"""

import warp as wp


@wp.func
def _neighbor_d2(
    points: wp.array(dtype=wp.vec3),
    x: wp.vec3,
    q: int,
    j: int,
    r2: float,
    exclude_self: int,
    has_groups: int,
    query_group: wp.array(dtype=wp.int32),
    point_group: wp.array(dtype=wp.int32),
):
    """Squared distance from query q (at x) to hash-grid candidate j, or -1 when j is not a
    neighbour: itself (with exclude_self), in another group, or farther than sqrt(r2)."""
    if exclude_self != 0 and j == q:
        return -1.0
    if has_groups != 0:
        if query_group[q] != point_group[j]:
            return -1.0
    d2 = wp.length_sq(points[j] - x)
    if d2 > r2:
        return -1.0
    return d2


@wp.kernel
def count_neighbors_sample(
    grid: wp.uint64,
    queries: wp.array(dtype=wp.vec3),
    points: wp.array(dtype=wp.vec3),
    sample: wp.array(dtype=wp.int32),
    radius: float,
    exclude_self: int,
    has_groups: int,
    query_group: wp.array(dtype=wp.int32),
    point_group: wp.array(dtype=wp.int32),
    counts: wp.array(dtype=wp.int32),
):
    """counts[t] = number of neighbours of query sample[t] (used to size row buffers)."""
    t = wp.tid()
    q = sample[t]
    x = queries[q]
    r2 = radius * radius
    n = int(0)
    query = wp.hash_grid_query(grid, x, radius)
    j = int(0)
    while wp.hash_grid_query_next(query, j):
        if _neighbor_d2(points, x, q, j, r2, exclude_self, has_groups, query_group, point_group) >= 0.0:
            n += 1
    counts[t] = n


@wp.kernel
def fill_neighbors_capped(
    grid: wp.uint64,
    queries: wp.array(dtype=wp.vec3),
    points: wp.array(dtype=wp.vec3),
    order: wp.array(dtype=wp.int32),
    radius: float,
    exclude_self: int,
    has_groups: int,
    query_group: wp.array(dtype=wp.int32),
    point_group: wp.array(dtype=wp.int32),
    counts: wp.array(dtype=wp.int32),
    rows: wp.array2d(dtype=wp.int32),
):
    """One pass over the neighbours of query ``order[t]`` (a spatially coherent order):
    ``counts[q]`` gets the full count and the first ``rows.shape[1]`` neighbours are kept in
    ``rows[q]``, sorted by index. Rows whose count exceeds the capacity are redone by
    :func:`fill_overflow_rows`."""
    t = wp.tid()
    q = order[t]
    x = queries[q]
    r2 = radius * radius
    cap = rows.shape[1]
    n = int(0)
    query = wp.hash_grid_query(grid, x, radius)
    j = int(0)
    while wp.hash_grid_query_next(query, j):
        if _neighbor_d2(points, x, q, j, r2, exclude_self, has_groups, query_group, point_group) >= 0.0:
            if n < cap:
                pos = n
                while pos > 0 and rows[q, pos - 1] > j:  # insertion sort: rows are short
                    rows[q, pos] = rows[q, pos - 1]
                    pos -= 1
                rows[q, pos] = j
            n += 1
    counts[q] = n


@wp.kernel
def compact_rows(
    rows: wp.array2d(dtype=wp.int32),
    counts: wp.array(dtype=wp.int32),
    offsets: wp.array(dtype=wp.int32),
    first_row: int,
    edges: wp.array2d(dtype=wp.int64),
):
    """Copies each row ``q = first_row + tid`` that fit its buffer to ``edges[offsets[q]:]`` as pairs [q, j]."""
    q = first_row + wp.tid()
    n = counts[q]
    if n > rows.shape[1]:
        return
    o = offsets[q]
    for k in range(n):
        edges[o + k, 0] = wp.int64(q)
        edges[o + k, 1] = wp.int64(rows[q, k])


@wp.kernel
def fill_overflow_rows(
    grid: wp.uint64,
    queries: wp.array(dtype=wp.vec3),
    points: wp.array(dtype=wp.vec3),
    overflow: wp.array(dtype=wp.int32),
    radius: float,
    exclude_self: int,
    has_groups: int,
    query_group: wp.array(dtype=wp.int32),
    point_group: wp.array(dtype=wp.int32),
    offsets: wp.array(dtype=wp.int32),
    edges: wp.array2d(dtype=wp.int64),
):
    """Slow path for rows longer than the buffer: query again and write the whole row
    straight into ``edges``, sorted by neighbour index."""
    t = wp.tid()
    q = overflow[t]
    x = queries[q]
    r2 = radius * radius
    start = offsets[q]
    k = start
    query = wp.hash_grid_query(grid, x, radius)
    j = int(0)
    while wp.hash_grid_query_next(query, j):
        if _neighbor_d2(points, x, q, j, r2, exclude_self, has_groups, query_group, point_group) >= 0.0:
            jj = wp.int64(j)
            pos = k
            while pos > start and edges[pos - 1, 1] > jj:
                edges[pos, 1] = edges[pos - 1, 1]
                pos -= 1
            edges[pos, 1] = jj
            edges[k, 0] = wp.int64(q)
            k += 1


@wp.kernel
def grid_order(grid: wp.uint64, order: wp.array(dtype=wp.int32)):
    """order[t] = the point the hash grid stores t-th (cell order, for cache-coherent queries)."""
    t = wp.tid()
    order[t] = wp.hash_grid_point_id(grid, t)


@wp.kernel
def knn_search(
    grid: wp.uint64,
    queries: wp.array(dtype=wp.vec3),
    points: wp.array(dtype=wp.vec3),
    active: wp.array(dtype=wp.int32),
    radius: float,
    k: int,
    exclude_self: int,
    has_groups: int,
    query_group: wp.array(dtype=wp.int32),
    point_group: wp.array(dtype=wp.int32),
    out_index: wp.array2d(dtype=wp.int64),
    out_dist2: wp.array2d(dtype=float),
    found: wp.array(dtype=wp.int32),
):
    """For each active query, the k nearest points within ``radius`` ordered by
    (squared distance, index); ``found[q]`` counts all candidates within radius."""
    t = wp.tid()
    q = active[t]
    x = queries[q]
    r2 = radius * radius
    m = int(0)
    total = int(0)
    query = wp.hash_grid_query(grid, x, radius)
    j = int(0)
    while wp.hash_grid_query_next(query, j):
        d2 = _neighbor_d2(points, x, q, j, r2, exclude_self, has_groups, query_group, point_group)
        if d2 < 0.0:
            continue
        total += 1
        jj = wp.int64(j)
        take = m < k
        if not take:
            worst_d = out_dist2[q, k - 1]
            take = d2 < worst_d or (d2 == worst_d and jj < out_index[q, k - 1])
        if take:
            pos = m
            if m == k:
                pos = k - 1
            while pos > 0 and (out_dist2[q, pos - 1] > d2 or (out_dist2[q, pos - 1] == d2 and out_index[q, pos - 1] > jj)):
                out_dist2[q, pos] = out_dist2[q, pos - 1]
                out_index[q, pos] = out_index[q, pos - 1]
                pos -= 1
            out_dist2[q, pos] = d2
            out_index[q, pos] = jj
            if m < k:
                m += 1
    found[q] = total


@wp.kernel
def farthest_point_sampling(
    points: wp.array(dtype=wp.vec3),
    seg_start: wp.array(dtype=wp.int32),
    seg_count: wp.array(dtype=wp.int32),
    seg_k: wp.array(dtype=wp.int32),
    seg_first: wp.array(dtype=wp.int32),
    out_offset: wp.array(dtype=wp.int32),
    min_dist2: wp.array(dtype=float),
    out_index: wp.array(dtype=wp.int64),
):
    """Farthest point sampling, one thread per segment (packed batch element).

    Segment s holds points ``seg_start[s] .. + seg_count[s]``; picks ``seg_k[s]`` of
    them starting from local index ``seg_first[s]``, each next pick the point farthest
    from those picked (ties: lowest index). Writes global indices at ``out_offset[s]``.
    ``min_dist2`` is scratch of length N.
    """
    s = wp.tid()
    start = seg_start[s]
    count = seg_count[s]
    kk = seg_k[s]
    o = out_offset[s]
    if count == 0 or kk == 0:
        return
    for i in range(count):
        min_dist2[start + i] = 3.0e38
    cur = start + seg_first[s]
    for t in range(kk):
        out_index[o + t] = wp.int64(cur)
        c = points[cur]
        best = int(-1)
        best_d = float(-1.0)
        for i in range(count):
            g = start + i
            d = wp.min(min_dist2[g], wp.length_sq(points[g] - c))
            min_dist2[g] = d
            if d > best_d:
                best_d = d
                best = g
        cur = best
