"""What the viewer plots and how it thins large rollouts: per-object energy, seeded subsampling."""

from __future__ import annotations

import numpy as np

from particles import Rollout

__all__ = ["frame_velocities", "object_energy", "subsample_indices"]


def frame_velocities(positions: np.ndarray, dt: float) -> np.ndarray:
    """(T, N, 3) float64, m/s. Velocities by second-order finite differences of ``positions (T, N, 3)`` m.

    Central differences inside, second-order one-sided differences at both ends (T >= 3), so a
    trajectory quadratic in time (free fall) has exact velocities at every frame. T = 2 uses the one
    difference for both frames; T = 1 gives zeros.
    """
    pos = np.asarray(positions, np.float64)
    t = pos.shape[0]
    if t == 1:
        return np.zeros_like(pos)
    if t == 2:
        v = (pos[1] - pos[0]) / dt
        return np.stack([v, v])
    return np.gradient(pos, float(dt), axis=0, edge_order=2)


def _velocity_at(pos: np.ndarray, t: int, dt: float) -> np.ndarray:
    """(N, 3) float64, m/s: :func:`frame_velocities` at frame ``t`` alone (reads at most 3 frames)."""
    n_frames = pos.shape[0]
    p = lambda i: pos[i].astype(np.float64)  # noqa: E731
    if n_frames == 1:
        return np.zeros(pos.shape[1:], np.float64)
    if n_frames == 2:
        return (p(1) - p(0)) / dt
    if t == 0:
        return (-3.0 * p(0) + 4.0 * p(1) - p(2)) / (2.0 * dt)
    if t == n_frames - 1:
        return (3.0 * p(t) - 4.0 * p(t - 1) + p(t - 2)) / (2.0 * dt)
    return (p(t + 1) - p(t - 1)) / (2.0 * dt)


def object_energy(rollout: Rollout) -> np.ndarray:
    """(T, K) float64, J. Kinetic plus gravitational potential energy of each object per frame.

    ``E_k(t) = sum_i m_i (|v_i|^2 / 2 - g . (x_i - x_ref))`` over the particles of object k, with
    masses from the scene (kg), gravity ``g`` (m/s^2), velocities from :func:`frame_velocities`,
    and ``x_ref = (0, 0, ground)`` (or the origin when there is no ground). A frame where any
    particle of the object is not finite gives NaN for that object. Works frame by frame, so
    memory stays O(N) for long rollouts.
    """
    scene = rollout.scene
    pos = rollout.positions
    ref = np.array([0.0, 0.0, scene.ground if scene.ground is not None else 0.0])
    g = scene.gravity.astype(np.float64)
    m = scene.mass.astype(np.float64)
    out = np.zeros((rollout.num_frames, scene.num_objects), np.float64)
    for t in range(rollout.num_frames):
        v = _velocity_at(pos, t, rollout.dt)
        e = m * (0.5 * np.einsum("nd,nd->n", v, v) - (pos[t].astype(np.float64) - ref) @ g)  # (N,) J
        out[t] = np.bincount(scene.object_id, weights=e, minlength=scene.num_objects)  # NaN propagates
    return out


def subsample_indices(object_id: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """(M,) int64 sorted particle indices keeping at most about ``max_points`` particles.

    Each object keeps a share proportional to its size (at least one particle), drawn without
    replacement with ``np.random.default_rng(seed)``; all indices when ``N <= max_points``.
    ``object_id`` is (N,) int.
    """
    object_id = np.asarray(object_id)
    n = object_id.shape[0]
    if max_points < 1:
        raise ValueError(f"max_points must be >= 1, got {max_points}")
    if n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    keep = []
    for k in np.unique(object_id):
        idx = np.flatnonzero(object_id == k)
        m = max(1, int(idx.size * max_points // n))
        keep.append(rng.choice(idx, size=m, replace=False))
    return np.sort(np.concatenate(keep)).astype(np.int64)
