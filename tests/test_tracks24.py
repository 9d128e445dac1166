"""Track audit (issue 15), tracks24: the ground plane of a camera without extrinsics, at the start of a clip.

Three clean films of ``bench/critic_tracks.py`` filmed by its static camera without extrinsics (``c1``: the tracks
are in camera coordinates and the critic must find up itself), whole, each of which raised ``floating@2`` on main:

* ``s6_roll_1_n0.00_c1.npz`` (``--seed 6``, 30 fps, noise 0): a ball rolling alone on the ground. Its 46 tracks all
  touch the ground, and all touch a plane tilted 8.4 degrees along its path too (in its last turn): the grid's first
  such plane won, and the ball hovered 27 r above it at the start.
* ``s4_mixed_1_n0.25_c1.npz`` (``--seed 4``, 60 fps, noise 0.25 r): a thrown body, a roller and a resting box. Free
  fall and the ground put up 0.25 degrees off; levelling by the roller's path turned it to a plane holding 12 of the
  46 tracks, 1.3 degrees off, under which the resting box hovered.
* ``s6_spin_0_n0.25_c1.npz`` (``--seed 6``, 30 fps, noise 0.25 r): a box spinning alone on the ground.

The true up in camera coordinates is ``(0, -cos e, -sin e)``: the generator's camera has no roll, and its elevation
``e`` is the film's first draw, ``default_rng([seed, j]).uniform(25, 45)`` degrees (``bench/tracks_up.py``).
The near misses lift a body for real, along the true up, over 3 frames from a frame of the clip (``CASES``), and keep it there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from critic.tracks import Tracks, audit_tracks, load_tracks, tracks_to_rollout

DATA = Path(__file__).resolve().parent / "data" / "tracks"

# file, fps, seed, film index j in its run, audited object lifted, lift (m), first lifted frame
CASES = {
    "roll": ("s6_roll_1_n0.00_c1.npz", 30.0, 6, 37, 0, 0.06, 18),
    "mixed": ("s4_mixed_1_n0.25_c1.npz", 60.0, 4, 148, 2, 0.10, 30),
    "spin": ("s6_spin_0_n0.25_c1.npz", 30.0, 6, 49, 0, 0.06, 18),
}


def _true_up(seed: int, j: int) -> np.ndarray:
    e = np.radians(np.random.default_rng([seed, j]).uniform(25, 45))
    return np.array([0.0, -np.cos(e), -np.sin(e)])


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(a @ b / np.linalg.norm(a) / np.linalg.norm(b), -1.0, 1.0))))


def _lifted(tr: Tracks, tracks: np.ndarray, up: np.ndarray, h: float, f0: int) -> Tracks:
    xyz = tr.xyz.copy()
    ramp = np.clip((np.arange(tr.T) - f0 + 1) / 3.0, 0.0, 1.0)
    xyz[:, tracks] += (h * ramp[:, None, None] * up[None, None]).astype(np.float32)
    return Tracks(xyz, tr.visible, tr.intrinsics, tr.w2c)


@pytest.mark.parametrize("case", ["roll", "mixed"])
def test_ground_plane_up_of_a_camera_without_extrinsics(case):
    """The cause: up within 1 degree of the truth (main: 8.4 degrees for the lone rolling ball, whose tracks a plane
    tilted along its path also holds; 1.3 for mixed_1, levelled onto a plane that lost 34 of its 46 tracks)."""
    name, fps, seed, j, *_ = CASES[case]
    ts = tracks_to_rollout(load_tracks(DATA / name), fps)
    assert ts.frame.ground is not None
    assert _angle(ts.frame.up, _true_up(seed, j)) < 1.0, (ts.frame.up, ts.frame.up_source)


@pytest.mark.parametrize("case", ["roll", "mixed", "spin"])
def test_clean_film_without_extrinsics_raises_nothing(case):
    """Main raised floating@2 on each."""
    name, fps, *_ = CASES[case]
    rep = audit_tracks(load_tracks(DATA / name), fps=fps)
    assert rep.events == (), [(e.category, e.frame, e.object) for e in rep.events]


@pytest.mark.parametrize("case", ["roll", "mixed", "spin"])
def test_same_body_lifted_for_real_is_floating(case):
    """The near miss: the body lifted along the true up (10-30 r) from its frame f0 and kept there: it touches nothing
    and does not fall, a floating event on it once the lift ends (within 3 frames of its start)."""
    name, fps, seed, j, k, h, f0 = CASES[case]
    tr = load_tracks(DATA / name)
    ts = tracks_to_rollout(tr, fps)
    lifted = _lifted(tr, ts.fits[k].tracks, _true_up(seed, j), h, f0)
    rep = audit_tracks(lifted, fps=fps)
    lk = tracks_to_rollout(lifted, fps)
    # the lifted body, found again by its tracks (object numbers may change)
    obj = {i for i, f in enumerate(lk.fits) if np.isin(ts.fits[k].tracks, f.tracks).mean() > 0.5}
    ev = [e for e in rep.events if e.category == "floating" and e.object in obj and f0 <= e.frame <= f0 + 3]
    assert ev, [(e.category, e.frame, e.object) for e in rep.events]


# ``s7_spin_0_n0.25_c2.npz`` (``--seed 7``, 30 fps, noise 0.25 r, orbiting camera with extrinsics): a box spun on the
# ground, at rest by frame 27, where the orbit turns one of its faces edge-on (seen at 13.6 degrees): 9 tracks of that
# face are lost in one frame and stay lost, which main read as part of the box vanishing (vanish@27).
GRAZE = DATA / "s7_spin_0_n0.25_c2.npz"


def test_face_turned_edge_on_is_not_a_vanish():
    """The lost tracks lie on one plane (within r / 2) seen at under GRAZING_DEG: no event (main: vanish@27)."""
    tr = load_tracks(GRAZE)
    rep = audit_tracks(tr, fps=30.0)
    assert rep.events == (), [(e.category, e.frame, e.object) for e in rep.events]
    from critic.tracks import _grazing_face

    ts = tracks_to_rollout(tr, 30.0)
    f = ts.fits[0]
    V = tr.visible[:, f.tracks]
    lost = V[26] & ~V[27] & ~V[27:35].any(0)
    assert lost.sum() >= 8
    assert _grazing_face(ts, f, 27, lost)


def test_front_tracks_hidden_for_real_vanish():
    """The near miss: the 12 tracks nearest the camera at frame 27 among those seen in frames 26-35 (nothing in front
    of them, not one face seen edge-on) hidden from frame 27 on: a part of the box vanishes at 27."""
    tr = load_tracks(GRAZE)
    ts = tracks_to_rollout(tr, 30.0)
    f = ts.fits[0]
    seen = f.tracks[tr.visible[26:36, f.tracks].all(0)]
    pick = seen[np.argsort(tr.xyz[27, seen, 2])[:12]]
    vis = tr.visible.copy()
    vis[27:, pick] = False
    rep = audit_tracks(Tracks(tr.xyz, vis, tr.intrinsics, tr.w2c), fps=30.0)
    assert [e for e in rep.events if e.category == "vanish" and e.frame == 27], \
        [(e.category, e.frame, e.object) for e in rep.events]
