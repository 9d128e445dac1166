"""Keypoints: sparse control points per object, and the skinning that ties particles to them.

* :func:`farthest_point_sampling` picks well-spread points per segment (Warp kernel).
* :func:`build_keypoints` picks K keypoints per object, links each object's keypoints by
  kNN, and skins every particle to its S nearest keypoints of the same object with
  normalised Gaussian weights.
* :func:`deform` moves particles from a keypoint motion: each keypoint gets the best-fit
  rigid transform (Kabsch) of its keypoint neighbourhood, and a particle follows the
  weighted blend of its keypoints' transforms (linear blend skinning). A rigid motion of
  the keypoints therefore moves the particles by exactly that rigid motion.
* :func:`summarize` goes the other way: the keypoints' positions in a particle frame.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from .types import KeypointGraph, ParticleScene

# Warp (and the kernels and graphs built on it) is imported where it is used: the numpy Kabsch fits
# below serve the critic, whose `worldline audit` should not pay Warp's import on every start.

__all__ = ["farthest_point_sampling", "build_keypoints", "deform", "summarize", "kabsch", "rotation_from_covariance"]


def farthest_point_sampling(points: np.ndarray, k, offsets: Optional[np.ndarray] = None,
                            seed: Optional[int] = None, device: str = "cpu") -> np.ndarray:
    """Farthest point sampling on packed segments (PyTorch3D's ``sample_farthest_points`` job).

    Args:
        points: (N, 3) float32, m; segments are consecutive runs of points.
        k: keypoints per segment: an int for all, or (S,) ints; clipped to each segment's size.
        offsets: (S + 1,) int segment boundaries (default: one segment of all points).
        seed: start each segment at a random point drawn from this seed; None starts at the
            segment's first point.
        device: Warp device.

    Returns:
        (sum k_s,) int64 global indices, segment by segment, in picking order.
    """
    pts = np.ascontiguousarray(points, np.float32).reshape(-1, 3)
    n = len(pts)
    offs = np.array([0, n]) if offsets is None else np.asarray(offsets, np.int64)
    counts = np.diff(offs).astype(np.int32)
    ks = np.broadcast_to(np.asarray(k, np.int64), counts.shape)
    ks = np.minimum(ks, counts).astype(np.int32)
    if np.any(ks < 0):
        raise ValueError("k: must not be negative")
    rng = np.random.default_rng(seed)
    first = np.array([rng.integers(c) if (seed is not None and c > 0) else 0 for c in counts], np.int32)
    out_off = np.concatenate([[0], np.cumsum(ks)[:-1]]).astype(np.int32)
    total = int(ks.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    import warp as wp

    from . import _kernels as K

    with wp.ScopedDevice(device):
        out = wp.empty(total, dtype=wp.int64)
        scratch = wp.empty(n, dtype=float)
        wp.launch(K.farthest_point_sampling, len(counts),
                  inputs=[wp.array(pts, dtype=wp.vec3), wp.array(offs[:-1].astype(np.int32)), wp.array(counts),
                          wp.array(ks), wp.array(first), wp.array(out_off), scratch],
                  outputs=[out])
        return out.numpy()


def _object_segments(object_id: np.ndarray):
    order = np.argsort(object_id, kind="stable")
    counts = np.bincount(object_id, minlength=int(object_id.max(initial=-1)) + 1)
    return order, np.concatenate([[0], np.cumsum(counts)])


def build_keypoints(scene: ParticleScene, per_object: int = 16, skin: int = 4, neighbors: int = 6,
                    sigma: Optional[float] = None, seed: Optional[int] = 0) -> KeypointGraph:
    """Keypoints of every object by farthest point sampling, with skinning weights.

    Args:
        scene: the particles.
        per_object: keypoints per object (fewer for objects with fewer particles).
        skin: S, keypoints each particle follows (its S nearest of its own object).
        neighbors: keypoint-graph degree within an object (kNN among its keypoints).
        sigma: Gaussian skinning width, m; default: the mean distance from particles to
            their nearest keypoint, at least the particle radius.
        seed: FPS start points; None starts at each object's first particle.

    Returns:
        A :class:`KeypointGraph` whose skin weights are non-negative and sum to 1 per particle.
    """
    from .graph import knn

    oid = scene.object_id
    order, offs = _object_segments(oid)
    picked_sorted = farthest_point_sampling(scene.positions[order], per_object, offs, seed=seed)
    kp_particle = order[picked_sorted]
    kp_pos = scene.positions[kp_particle]
    kp_obj = oid[kp_particle]
    counts = np.bincount(kp_obj, minlength=scene.num_objects)
    s = int(max(1, min(skin, counts[counts > 0].min() if (counts > 0).any() else 1)))
    idx, dist = knn(kp_pos, s, queries=scene.positions, batch=kp_obj, query_batch=oid)
    valid = idx >= 0
    if sigma is None:
        sigma = max(float(np.mean(dist[:, 0])), scene.radius) if len(dist) else scene.radius
    w = np.where(valid, np.exp(-0.5 * (np.where(valid, dist, 0.0) / sigma) ** 2), 0.0)
    w = w / np.maximum(w.sum(1, keepdims=True), 1e-30)
    idx = np.where(valid, idx, idx[:, :1])  # pad with the nearest keypoint at weight 0
    m = int(max(1, min(neighbors, counts.max(initial=1) - 1)))
    e_idx, _ = knn(kp_pos, m, batch=kp_obj)
    rows = np.repeat(np.arange(len(kp_pos)), m)
    cols = e_idx.ravel()
    keep = cols >= 0
    edges = np.stack([rows[keep], cols[keep]], 1)
    return KeypointGraph(kp_pos, kp_obj, kp_particle, idx, w.astype(np.float32), edges)


def rotation_from_covariance(h: np.ndarray) -> np.ndarray:
    """The proper rotations ``R (..., 3, 3)`` that best align a weighted point set: the Kabsch step.

    ``h (..., 3, 3)`` float is the cross-covariance ``sum_p w_p (src_p - c_s)(dst_p - c_d)^T`` of a
    weighted point set; the returned ``R`` minimises ``sum_p w_p |R (src_p - c_s) - (dst_p - c_d)|^2``
    over rotations (det +1, never a reflection: with ``h = U S V^T``, ``R = V diag(1, 1, d) U^T``,
    ``d = sign det(V U^T)``). Batched over the leading axes with one ``np.linalg.svd`` call.
    A rank-deficient ``h`` (fewer than three non-collinear points) gives the rotation the SVD
    picks among the optimal ones (identity for ``h = 0``).
    """
    h = np.asarray(h, np.float64)
    u, _, vt = np.linalg.svd(h)
    v = np.swapaxes(vt, -1, -2)
    d = np.sign(np.linalg.det(v @ np.swapaxes(u, -1, -2)))
    d = np.where(d == 0, 1.0, d)
    v = v.copy()
    v[..., :, 2] *= d[..., None]
    return v @ np.swapaxes(u, -1, -2)


def kabsch(src: np.ndarray, dst: np.ndarray, weights: Optional[np.ndarray] = None):
    """Best-fit rigid transform taking ``src (..., P, 3)`` onto ``dst (..., P, 3)`` (m, any float dtype).

    Leading axes broadcast: one ``src (P, 3)`` against ``dst (T, P, 3)`` fits every frame in one
    batched SVD. ``weights (..., P)`` (non-negative, e.g. particle masses; default equal) weight
    each point in the centroids and the covariance.

    Returns ``(R (..., 3, 3), t (..., 3))`` float64 minimising ``sum_p w_p |R src_p + t - dst_p|^2``,
    so ``dst ≈ src @ R.T + t``; ``R`` is a proper rotation (det +1) even when ``dst`` is a mirror
    image of ``src`` (:func:`rotation_from_covariance`). Fewer than three non-collinear points
    leave the rotation underdetermined; an optimal one is returned (identity for a single point).
    """
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    shape = np.broadcast_shapes(src.shape[:-1], dst.shape[:-1])
    w = np.ones(shape) if weights is None else np.broadcast_to(np.asarray(weights, np.float64), shape)
    w = w / np.maximum(w.sum(-1, keepdims=True), 1e-300)
    cs = np.einsum("...p,...pi->...i", w, np.broadcast_to(src, shape + (3,)))
    cd = np.einsum("...p,...pi->...i", w, np.broadcast_to(dst, shape + (3,)))
    h = np.einsum("...p,...pi,...pj->...ij", w, src - cs[..., None, :], dst - cd[..., None, :])
    r = rotation_from_covariance(h)
    t = cd - np.einsum("...ij,...j->...i", r, cs)
    return r, t


def _keypoint_frames(graph: KeypointGraph, new_positions: np.ndarray):
    """Per-keypoint rigid transform (R, t) fit to the keypoint and its graph neighbours."""
    p = graph.num_keypoints
    nbrs = [[i] for i in range(p)]
    for i, j in graph.edges:
        nbrs[int(i)].append(int(j))
    width = max(len(n) for n in nbrs)
    idx = np.array([n + [n[0]] * (width - len(n)) for n in nbrs])
    wts = np.array([[1.0] * len(n) + [0.0] * (width - len(n)) for n in nbrs])
    return kabsch(graph.positions[idx], np.asarray(new_positions, np.float64)[idx], wts)


def deform(graph: KeypointGraph, particles: np.ndarray, new_keypoints: np.ndarray) -> np.ndarray:
    """Move particles with their keypoints (linear blend skinning of per-keypoint rigid fits).

    Args:
        graph: keypoints at rest with skinning (``graph.positions`` are the rest keypoints).
        particles: (N, 3) float32, m, rest particle positions the skinning was built on.
        new_keypoints: (P, 3) float32, m, moved keypoints.

    Returns:
        (N, 3) float32, m: ``x_i' = sum_s w_is (R_s x_i + t_s)``; exact for rigid keypoint motions.
    """
    new_keypoints = np.asarray(new_keypoints, np.float64)
    if new_keypoints.shape != graph.positions.shape:
        raise ValueError(f"new_keypoints: expected shape {graph.positions.shape}, got {new_keypoints.shape}")
    r, t = _keypoint_frames(graph, new_keypoints)
    x = np.asarray(particles, np.float64)
    moved = np.einsum("nsij,nj->nsi", r[graph.skin_index], x) + t[graph.skin_index]
    return (graph.skin_weight[..., None] * moved).sum(1).astype(np.float32)


def summarize(graph: KeypointGraph, particles: np.ndarray) -> np.ndarray:
    """Keypoint positions (P, 3) float32, m, in a frame of particle positions ``(N, 3)``:
    each keypoint is where the particle it was picked at now is."""
    return np.asarray(particles, np.float32)[graph.particle_index]
