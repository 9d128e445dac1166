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


def object_energy(rollout: Rollout) -> np.ndarray:
    """(T, K) float64, J. Kinetic plus gravitational potential energy of each object per frame.

    ``E_k(t) = sum_i m_i (|v_i|^2 / 2 - g . (x_i - x_ref))`` over the particles of object k, with
    masses from the scene (kg), gravity ``g`` (m/s^2), velocities from :func:`frame_velocities`,
    and ``x_ref = (0, 0, ground)`` (or the origin when there is no ground). A frame where any
    particle of the object is not finite gives NaN for that object.
    """
    scene = rollout.scene
    pos = rollout.positions.astype(np.float64)
    vel = frame_velocities(pos, rollout.dt)
    ref = np.array([0.0, 0.0, scene.ground if scene.ground is not None else 0.0])
    g = scene.gravity.astype(np.float64)
    m = scene.mass.astype(np.float64)
    per_particle = m[None, :] * (0.5 * np.einsum("tnd,tnd->tn", vel, vel) - (pos - ref) @ g)  # (T, N) J
    out = np.zeros((rollout.num_frames, scene.num_objects), np.float64)
    for k in range(scene.num_objects):
        idx = scene.object_indices(k)
        out[:, k] = per_particle[:, idx].sum(axis=1)  # NaN propagates from non-finite particles
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
