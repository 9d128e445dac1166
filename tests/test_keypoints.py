"""Keypoints: FPS equals its reference; skinning is normalised; rigid keypoint motion moves
particles rigidly; keypoints summarise particle motion."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from particles import ParticleScene
from particles.keypoints import build_keypoints, deform, farthest_point_sampling, kabsch, rotation_from_covariance, summarize


def fps_reference(x, k, first=0):
    d = np.full(len(x), np.inf, np.float32)
    cur, out = first, []
    for _ in range(k):
        out.append(cur)
        d = np.minimum(d, ((x - x[cur]) ** 2).sum(1, dtype=np.float32))
        cur = int(np.argmax(d))
    return np.array(out)


def test_fps_matches_reference_per_segment(rng):
    x = rng.random((700, 3), dtype=np.float32)
    offsets = np.array([0, 200, 200, 700])  # includes an empty segment
    idx = farthest_point_sampling(x, [10, 5, 30], offsets)
    want = np.concatenate([fps_reference(x[:200], 10), [], fps_reference(x[200:], 30) + 200]).astype(np.int64)
    np.testing.assert_array_equal(idx, want)
    # clipped to the segment size; seeded starts are reproducible
    assert len(farthest_point_sampling(x[:4], 10)) == 4
    np.testing.assert_array_equal(farthest_point_sampling(x, 8, seed=3), farthest_point_sampling(x, 8, seed=3))


def test_fps_spreads_points(rng):
    x = rng.random((2000, 3), dtype=np.float32)
    picked = x[farthest_point_sampling(x, 32)]
    rand = x[rng.choice(2000, 32, replace=False)]
    cover = lambda s: np.sqrt(((x[:, None] - s[None]) ** 2).sum(-1)).min(1).max()  # noqa: E731
    assert cover(picked) < cover(rand)


def two_objects(rng):
    a = rng.random((150, 3)) * [0.2, 0.1, 0.1]
    b = rng.random((80, 3)) * 0.05 + [1.0, 0.0, 0.0]
    return ParticleScene(np.concatenate([a, b]), np.r_[np.zeros(150), np.ones(80)], ("elastic", "rigid"), 0.005)


def test_skinning_is_normalised_and_stays_in_object(rng):
    scene = two_objects(rng)
    g = build_keypoints(scene, per_object=8, skin=4)
    assert g.num_keypoints == 16
    np.testing.assert_allclose(g.skin_weight.sum(1), 1.0, atol=1e-5)
    assert np.all(g.skin_weight >= 0)
    assert np.all(g.object_id[g.skin_index] == scene.object_id[:, None])
    assert np.all(g.object_id[g.edges[:, 0]] == g.object_id[g.edges[:, 1]])


def test_rigid_keypoint_motion_moves_particles_rigidly(rng):
    scene = two_objects(rng)
    g = build_keypoints(scene, per_object=8)
    rot = Rotation.from_euler("xyz", [25, -40, 70], degrees=True).as_matrix()
    t = np.array([0.3, -0.1, 0.5])
    moved = deform(g, scene.positions, g.positions @ rot.T + t)
    np.testing.assert_allclose(moved, scene.positions @ rot.T + t, atol=1e-5)
    np.testing.assert_allclose(summarize(g, moved), g.positions @ rot.T + t, atol=1e-5)


def test_local_keypoint_motion_is_local(rng):
    scene = two_objects(rng)
    g = build_keypoints(scene, per_object=8)
    new = g.positions.copy()
    new[0] += [0.0, 0.0, 0.05]  # lift one keypoint of object 0
    moved = deform(g, scene.positions, new)
    np.testing.assert_allclose(moved[scene.object_id == 1], scene.positions[scene.object_id == 1], atol=1e-6)
    assert np.abs(moved - scene.positions).max() > 1e-3


def test_kabsch_recovers_rotation(rng):
    src = rng.normal(size=(20, 3))
    rot = Rotation.random(random_state=1).as_matrix()
    r, t = kabsch(src, src @ rot.T + [1, 2, 3])
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(t, [1, 2, 3], atol=1e-10)
    assert np.linalg.det(kabsch(src, src * [1, 1, -1])[0]) == pytest.approx(1.0)  # never a reflection


def test_kabsch_batched_over_frames_recovers_each_rotation(rng):
    src = rng.normal(size=(30, 3))
    rots = Rotation.random(16, random_state=3).as_matrix()  # (16, 3, 3)
    shift = rng.normal(size=(16, 3))
    dst = np.einsum("tij,pj->tpi", rots, src) + shift[:, None]
    r, t = kabsch(src, dst)  # one src against 16 frames
    np.testing.assert_allclose(r, rots, atol=1e-10)
    np.testing.assert_allclose(t, shift, atol=1e-10)


def test_kabsch_mirror_image_gives_the_best_proper_rotation(rng):
    src = rng.normal(size=(40, 3)) * [3.0, 2.0, 0.05]  # nearly flat: the mirror is almost a rotation
    r, _ = kabsch(src, src * [1, 1, -1])
    assert np.linalg.det(r) == pytest.approx(1.0)
    assert np.abs(r - np.eye(3)).max() < 0.05  # the thin axis stays flipped: undoing it is no rotation
    # a random rotation of the mirror image: the proper rotation found beats every other tried
    rot = Rotation.random(random_state=5).as_matrix()
    dst = (src * [1, 1, -1]) @ rot.T
    r, t = kabsch(src, dst)
    best = np.sum((src @ r.T + t - dst) ** 2)
    for q in Rotation.random(200, random_state=6).as_matrix():
        tq = dst.mean(0) - q @ src.mean(0)
        assert np.sum((src @ q.T + tq - dst) ** 2) >= best - 1e-9


def test_kabsch_weights_ignore_outliers_and_move_the_centroid(rng):
    src = rng.normal(size=(25, 3))
    rot = Rotation.random(random_state=7).as_matrix()
    dst = src @ rot.T + [0.5, 0.0, -1.0]
    dst[:5] += rng.normal(size=(5, 3)) * 10.0  # five outliers with weight zero
    w = np.ones(25)
    w[:5] = 0.0
    r, t = kabsch(src, dst, w)
    np.testing.assert_allclose(r, rot, atol=1e-10)
    np.testing.assert_allclose(t, [0.5, 0.0, -1.0], atol=1e-10)
    r_plain, _ = kabsch(src, dst)
    assert np.abs(r_plain - rot).max() > 1e-3  # without the weights the outliers pull the fit


def test_rotation_from_covariance_is_the_kabsch_rotation(rng):
    src = rng.normal(size=(12, 3))
    dst = src @ Rotation.random(random_state=9).as_matrix().T
    h = (src - src.mean(0)).T @ (dst - dst.mean(0))
    np.testing.assert_allclose(rotation_from_covariance(h), kabsch(src, dst)[0], atol=1e-12)
    np.testing.assert_allclose(rotation_from_covariance(np.zeros((2, 3, 3))), np.stack([np.eye(3)] * 2))
