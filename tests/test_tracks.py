"""Auditing 3D point tracks (issue 15): TAP-Vid-3D files filmed from the shipped Newton drop rollout.

A small fast subset of ``bench/critic_tracks.py``: clean tracks with tracker noise 0.5 r, a third of the
points hidden at a time and no object ids raise no event (camera moving with extrinsics, and a static
camera without them, where free fall gives up); objects are recovered by rigid motion; injected glitches
are found at their frame (+-2) on the glitched object; a generated file round-trips (its object-array
key never unpickled); a rollout with ``visibility`` reads hidden particles as missing data; the CLI audits
a track file with ``--fps``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import tracks_gen as tg  # noqa: E402
from critic import audit, load_audit_input  # noqa: E402
from critic.tracks import audit_tracks, load_tracks, save_tracks, tracks_to_rollout  # noqa: E402
from particles import load_rollout, save_rollout  # noqa: E402
from particles.types import Rollout  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def drop():
    return tg.newton_rollout()


def _truth_of_groups(info, keep, oid):
    return [np.bincount(oid[keep[np.asarray(o["tracks"])]], minlength=int(oid.max()) + 1) for o in info["objects"]]


def test_clean_noisy_occluded_tracks_raise_no_event(drop):
    """Noise 0.5 r, dropouts raising the hidden share past a third, orbiting camera: no event; the dropped box is
    an object of its own (the base and the can, at rest together all along, may be one)."""
    rng = np.random.default_rng(3)
    tr, keep, cam, _ = tg.film(drop, rng, noise_frac=0.5, dropout=0.2, moving=True)
    hidden = 1.0 - tr.visible.mean()
    assert hidden >= 1 / 3, hidden
    rep = audit_tracks(tr, fps=60)
    assert rep.events == (), [e.message for e in rep.events]
    groups = _truth_of_groups(rep.info, keep, drop.scene.object_id)
    for counts in groups:  # each group holds whole objects: never part of the dropped box with anything else
        assert counts[1] == 0 or counts[1] == counts.sum()
    assert any(c[1] == c.sum() and c[1] >= 20 for c in groups)
    assert rep.info["noise"] > 0.3 * drop.scene.radius  # the noise estimate sees the tracker's noise
    assert abs(rep.info["objects"][0]["noise"] - 0.5 * drop.scene.radius) < 0.15 * drop.scene.radius


def test_camera_frame_tracks_find_up_from_free_fall(drop):
    """Without extrinsics the falling box gives gravity's direction; the ground is found and the file is clean."""
    rng = np.random.default_rng(2)
    tr, keep, cam, _ = tg.film(drop, rng, noise_frac=0.3, extrinsics=False)
    assert tr.w2c is None
    ts = tracks_to_rollout(tr, 60)
    true_up = cam.w2c(1)[0, :3, :3] @ np.array([0.0, 0.0, 1.0])
    angle = np.degrees(np.arccos(np.clip(ts.frame.up @ true_up, -1, 1)))
    assert angle < 5.0, angle
    assert ts.frame.up_source.startswith("free fall") and ts.frame.ground is not None
    ground_true = (ts.frame.rotation @ cam.w2c(1)[0, :3, 3])[2]  # the world origin (on the ground) audited
    assert abs(ts.frame.ground - ground_true) < 1.5 * drop.scene.radius
    rep = audit_tracks(tr, fps=60)
    assert rep.events == (), [e.message for e in rep.events]


@pytest.mark.parametrize("category", ["teleport", "vanish", "jitter", "energy", "penetration"])
def test_injected_glitch_is_found(drop, category):
    """One glitch at noise 0.5 r: an event of its category within 2 frames of the label, on the glitched object."""
    rng = np.random.default_rng(5)
    _, keep, cam, vis = tg.film(drop, np.random.default_rng(1), noise_frac=0.5, moving=True)
    res = tg.inject(drop, category, 0.5 * drop.scene.radius, rng, vis_world=vis)
    assert res is not None
    pos, hide, label = res
    tr, _, _, _ = tg.film(drop, rng, noise_frac=0.5, moving=True, positions=pos, hide=hide, camera=cam, keep=keep,
                          noise_seed=11)
    rep = audit_tracks(tr, fps=60)
    oid = drop.scene.object_id
    owner = {o["object"]: int(np.bincount(oid[keep[np.asarray(o["tracks"])]]).argmax()) for o in rep.info["objects"]}
    hit = [e for e in rep.events if e.category == category and abs(e.frame - label.frame) <= 2
           and any(owner[o] == label.object for o in e.objects)]
    assert hit, (label, [(e.category, e.frame, e.objects) for e in rep.events])


def test_tracks_file_round_trips_and_never_unpickles(drop, tmp_path):
    """A generated file reads back equal; an object-array key (TAP-Vid-3D's images_jpeg_bytes) is ignored."""
    tr, _, _, _ = tg.film(drop, np.random.default_rng(0), noise_frac=0.2, moving=True)
    p = save_tracks(tmp_path / "t.npz", tr)
    back = load_tracks(p)
    np.testing.assert_array_equal(back.xyz, tr.xyz)
    np.testing.assert_array_equal(back.visible, tr.visible)
    np.testing.assert_allclose(back.intrinsics, tr.intrinsics, rtol=1e-6)
    np.testing.assert_allclose(back.w2c, tr.w2c, atol=1e-6)
    with np.load(p) as z:
        arrays = {k: z[k] for k in z.files}
    with open(tmp_path / "jpeg.npz", "wb") as f:
        np.savez(f, **arrays, images_jpeg_bytes=np.array([b"\xff\xd8", b"\xff\xd9\x00"], dtype=object))
    again = load_tracks(tmp_path / "jpeg.npz")
    np.testing.assert_array_equal(again.xyz, tr.xyz)
    a = audit_tracks(p, fps=60)
    b = audit_tracks(tmp_path / "jpeg.npz", fps=60)
    assert [e.to_dict() for e in a.events] == [e.to_dict() for e in b.events]
    assert a.info["objects"] == b.info["objects"]


def test_rollout_visibility_is_missing_data(drop, tmp_path):
    """A rollout hiding a third of its particles each frame (NaN where hidden) audits clean with ``visibility``
    (hidden = missing data, filled from the rigid poses) and round-trips it; without it, NaN is a vanish."""
    rng = np.random.default_rng(7)
    vis = rng.random(drop.positions.shape[:2]) >= 1 / 3
    pos = np.where(vis[..., None], drop.positions, np.nan).astype(np.float32)
    ro = Rollout(drop.scene, pos, drop.dt, visibility=vis)
    p = save_rollout(tmp_path / "vis.npz", ro)
    back = load_rollout(p)
    np.testing.assert_array_equal(back.visibility, vis)
    (_, filled), = load_audit_input(p)
    assert np.isfinite(filled.positions).all()
    assert audit(filled).events == ()
    blind = audit(Rollout(drop.scene, pos, drop.dt))
    assert any(e.category == "vanish" for e in blind.events)


def test_cli_audits_tracks_with_fps(drop, tmp_path):
    tr, _, _, _ = tg.film(drop, np.random.default_rng(4), noise_frac=0.25, moving=True)
    p = save_tracks(tmp_path / "tracks.npz", tr)
    out = tmp_path / "report.json"
    res = subprocess.run([sys.executable, "-m", "worldline", "audit", str(p), "--fps", "60", "--json", str(out)],
                         capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 0, res.stdout + res.stderr
    doc = json.loads(out.read_text())
    assert doc["events"] == [] and len(doc["tracks"]["objects"]) >= 2
    assert any("extrinsics frame" in s for s in doc["skipped"])
    res = subprocess.run([sys.executable, "-m", "worldline", "audit", str(p)], capture_output=True, text=True, cwd=ROOT,
                         env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert res.returncode == 2 and "--fps" in res.stderr.strip().splitlines()[-1]


def test_recentre_finds_the_centre_of_a_body_tracked_on_one_side():
    """A ball tumbling in free flight, tracked on the part the camera saw: the tracks' centroid wobbles once per turn
    (its third differences are far from 0), the recentred pose (spin perpendicular to the offset, which it reveals) follows the ball's centre (a parabola) to 1 % of
    its radius; a body that only slides, whose rotation shows nothing, keeps its centroid."""
    from critic.tracks import fit_object, recentre
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(3)
    R0 = 0.03
    d = rng.normal(size=(200, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    body = R0 * d[d[:, 2] > -0.4]  # the part the camera saw (its hull holds the centre: weights can reach it)
    T, dt = 40, 1 / 60
    t = np.arange(T) * dt
    c = np.stack([0.5 * t, 0.1 * t, 1.0 + 2.0 * t - 4.905 * t * t], 1)
    rot = Rotation.from_rotvec(np.outer(t, [25.0, 0.0, 0.0])).as_matrix()
    P = np.einsum("tij,nj->tni", rot, body) + c[:, None]
    vis = np.ones(P.shape[:2], bool)
    fit = fit_object(P, vis, np.arange(len(body)))
    wob = fit.centre[3:] - 3 * fit.centre[2:-1] + 3 * fit.centre[1:-2] - fit.centre[:-3]
    assert np.linalg.norm(wob, axis=1).max() > 1e-4  # the centroid wobbles (0.1 mm third differences)
    off0 = np.linalg.norm((fit.centre - c)[:, 1:], axis=1).max()
    assert off0 > 0.1 * R0  # the centroid is off the centre
    w = recentre(fit, 1e-4)
    assert np.all(w > 0) and abs(w.mean() - 1) < 1e-9
    # across the spin axis (x) the centre is found; along it the rotation shows nothing and it stays put
    assert np.linalg.norm((fit.centre - c)[:, 1:], axis=1).max() < 0.01 * R0
    # the weighted tracks' centroid is that centre, as the checks compute it
    assert np.allclose((w[None, :, None] * P).sum(1) / w.sum(), fit.centre, atol=1e-6)

    still = np.broadcast_to(body, P.shape) + np.stack([0.3 * t, 0 * t, 0 * t], 1)[:, None]
    fit2 = fit_object(np.ascontiguousarray(still), vis, np.arange(len(body)))
    c2 = fit2.centre.copy()
    assert np.all(recentre(fit2, 1e-4) == 1.0) and np.allclose(fit2.centre, c2)


def test_clean_tumbling_throw_gains_no_energy_from_its_tracks():
    """Seed 2's throw_0 (issue 15): a 10 cm body of 3 mm particles thrown tumbling at 17-20 rad/s, filmed at 120 fps
    with the world frame given (noise 0, static camera with extrinsics, as bench/critic_tracks.py films it). The
    MuJoCo rollout keeps its energy to 1e-6 in flight, but the tracks' centroid is 3 r off its centre of mass: the
    energy of the centroid wobbles by 8 % (an energy event). The flight is a third of the clip and wobbles by
    micrometres per window; the rest rocks and hits the ground. The centre of mass is found from the flight frames
    to 0.1 r, and no event is raised."""
    from critic.context import AuditConfig, AuditContext

    ro = tg.referee_rollout("throw", 2, 0, quick=True, dt=1 / 120)
    assert not audit(ro).events  # the source is clean
    j = 9  # the bench's job index of throw_0 at noise 0 with this camera
    tr, keep, _, _ = tg.film(ro, np.random.default_rng([2, j]), noise_frac=0.0, moving=False, extrinsics=True,
                             noise_seed=j)
    ts = tracks_to_rollout(tr, fps=120)
    r = ro.scene.radius
    true_com = AuditContext(ro, AuditConfig()).com[:, 0]
    centroid = ro.positions[:, keep].astype(np.float64).mean(1)
    assert np.linalg.norm(centroid - true_com, axis=1).min() > 2.5 * r  # the tracks' centroid is off the centre
    err = np.linalg.norm(ts.fits[0].centre - true_com, axis=1)  # extrinsics: the audited frame is the world's
    assert err.max() < 0.1 * r, err.max() / r
    rep = audit_tracks(tr, fps=120)
    assert rep.events == (), [e.message for e in rep.events]


def test_ground_plane_holds_every_resting_body():
    """Seed 2's slide_1 (issue 15), filmed in camera coordinates (no extrinsics, no free fall): two bodies come to
    rest apart. The lowest tracks of one body's bottom patch (22) hold up a plane tilted 6.5 degrees as well as the
    true ground holds 19 of them and 3 of the other body's: with the tracks counted alone the tilted plane won, and
    the other body, at rest, hovered 6.85 r above it (a floating event). The plane that holds both bodies is the ground: up
    within 1 degree, no event."""
    ro = tg.referee_rollout("slide", 2, 3, quick=True, dt=1 / 60)
    assert not audit(ro).events  # the source is clean
    j = 91  # the bench's job index of slide_1 at noise 0, camera frame
    cam_rng = np.random.default_rng([2, j])
    tr, _, cam, _ = tg.film(ro, cam_rng, noise_frac=0.0, moving=False, extrinsics=False, noise_seed=j)
    rep = audit_tracks(tr, fps=60)
    true_up = cam.w2c(1)[0, :3, :3] @ np.array([0.0, 0.0, 1.0])
    angle = np.degrees(np.arccos(np.clip(np.asarray(rep.info["up"]) @ true_up, -1, 1)))
    assert rep.info["up_source"] == "ground plane" and angle < 1.0, (rep.info["up_source"], angle)
    assert rep.events == (), [e.message for e in rep.events]


@pytest.fixture(scope="module")
def mixed():
    """The referee's `mixed` scene (bench/critic_tracks.py's mixed_0): a thrown ball that lands and rolls, a ball
    rolling at 0.75 m/s (a turn in 7 frames at 30 fps) and a resting box on a metre of ground, r = 2.1 mm."""
    return tg.referee_rollout("mixed", 0, 0, quick=True, dt=1 / 30)


@pytest.mark.parametrize("extrinsics", [True, False])
def test_noisy_rolling_bodies_raise_nothing(mixed, extrinsics):
    """Tracker noise 0.5 r on fast-rolling balls, filmed as bench/critic_tracks.py films mixed_0 (same seeds): no
    event. Their tracks sample the seen surface, so the centroid wobbles once per turn; the centre of mass must be
    found under the noise (else the kinetic energy wobbles: energy events), and without extrinsics the ground's
    normal must be refined from free fall's estimate (a degree off tilts a metre of ground past r: the rolling
    balls float)."""
    j = 78 if extrinsics else 79  # the bench's job index of mixed_0 at noise 0.5 with this camera
    tr, keep, cam, _ = tg.film(mixed, np.random.default_rng([0, j]), noise_frac=0.5, extrinsics=extrinsics,
                               noise_seed=j)
    rep = audit_tracks(tr, fps=30)
    assert rep.events == (), [e.message for e in rep.events]
    if not extrinsics:
        true_up = cam.w2c(1)[0, :3, :3] @ np.array([0.0, 0.0, 1.0])
        angle = np.degrees(np.arccos(np.clip(np.asarray(rep.info["up"]) @ true_up, -1, 1)))
        assert rep.info["up_source"].startswith("free fall") and angle < 0.5, angle


@pytest.fixture(scope="module")
def throw():
    """The referee's `throw` scene at 120 fps (bench/critic_tracks.py's throw_0): one body thrown up, landing and
    rolling, r = 7.8 mm, 145 frames."""
    return tg.referee_rollout("throw", 0, 0, quick=True, dt=1 / 120)


def _injected_events(ro, category, seed, extrinsics=True):
    """Film ``ro`` at tracker noise 0.5 r (static camera), inject one ``category`` glitch, audit it with only
    ``--fps``: ``(label, [(category, frame, true object)])``."""
    rng = np.random.default_rng(seed)
    _, keep, cam, vis = tg.film(ro, rng, noise_frac=0.5, extrinsics=extrinsics)
    pos, hide, label = tg.inject(ro, category, 0.5 * ro.scene.radius, np.random.default_rng(100 + seed), vis_world=vis)
    tr, _, _, _ = tg.film(ro, rng, noise_frac=0.5, extrinsics=extrinsics, positions=pos, hide=hide, camera=cam,
                          keep=keep, noise_seed=1)
    rep = audit_tracks(tr, fps=1 / ro.dt)
    oid = ro.scene.object_id
    truth = {o["object"]: int(np.bincount(oid[keep[np.asarray(o["tracks"])]]).argmax()) for o in rep.info["objects"]}
    return label, [(e.category, e.frame, truth.get(e.object)) for e in rep.events]


@pytest.mark.parametrize("extrinsics", [True, False])
def test_bent_body_found_at_its_frame(throw, extrinsics):
    """Half of the thrown body shifted 8 r (2 r + 12 sigma) for 0.25 s at noise 0.5 r: the halves break rigidity
    only in that spell, so they stay one object, and the change of shape is found where it starts (a lone track
    seen mostly while bent departs earlier: three tracks must depart together)."""
    label, evs = _injected_events(throw, "rigidity", 0, extrinsics)
    assert any(c == "rigidity" and abs(f - label.frame) <= 2 and o == label.object for c, f, o in evs), (label, evs)


def test_hover_found_at_its_onset(throw):
    """The thrown body stops in mid-air for 0.25 s at noise 0.5 r: found at its onset (+-2 frames), which the
    13-frame smoothing that keeps the noise out of accelerations had moved 7 frames early (frame 38 for 45)."""
    label, evs = _injected_events(throw, "floating", 1)
    assert any(c == "floating" and abs(f - label.frame) <= 2 and o == label.object for c, f, o in evs), (label, evs)


def test_energy_injection_adds_energy(mixed):
    """tracks_gen's energy push adds energy even to a moving body (the rolling ball pushed against its motion had
    slowed down): its translational kinetic energy rises after the label frame."""
    r = mixed.scene.radius
    for s in range(4):
        pos, _, label = tg.inject(mixed, "energy", 0.5 * r, np.random.default_rng(s))
        ids = mixed.scene.object_id == label.object
        c = pos[:, ids].mean(1)
        v = np.linalg.norm(np.diff(c, axis=0), axis=1) / mixed.dt
        f = label.frame
        # |v + a|^2 - |v|^2 = 2 v . a + |a|^2 >= |a|^2 >= 0.25 m^2/s^2 for a push a of 0.5 m/s or more with v . a >= 0
        assert v[f + 1] ** 2 - v[f - 3] ** 2 > 0.25, (s, v[f - 3], v[f + 1])


def test_centre_noise_grows_with_the_lever_arm():
    """A pose fitted to a small patch of tracks far from the body's centre places that centre far worse than
    sigma / sqrt(n) (the fit's turn times the lever arm); tracks all round the centre place it to about that.
    Checked against the scatter of the fitted centre over noisy frames of a still body."""
    from critic.tracks import centre_noise, fit_object

    rng = np.random.default_rng(0)
    sigma, T = 0.002, 400
    d = rng.normal(size=(300, 3))
    ball = 0.03 * d / np.linalg.norm(d, axis=1, keepdims=True)
    patch = ball[ball[:, 2] > 0.025]  # a cap 3 cm from the centre, 5 mm deep
    assert len(patch) >= 10
    for pts, lever in ((ball, False), (patch, True)):
        body = np.vstack([pts, ball])  # the ball's tracks; only ``pts`` are visible after frame 0
        vis = np.zeros((T, len(body)), bool)
        vis[0] = True
        vis[1:, :len(pts)] = True
        P = np.broadcast_to(body, (T,) + body.shape) + rng.normal(0, sigma, size=(T,) + body.shape)
        fit = fit_object(P, vis, np.arange(len(body)))
        # the body point at the ball's centre, as recentre would place it
        centre = fit.centre + np.einsum("tij,j->ti", fit.rot, -fit.body[len(pts):].mean(0))
        scatter = float(np.std(centre[1:], axis=0).mean())
        fit.body = fit.body - fit.body[len(pts):].mean(0)  # body coordinates about that centre
        pred = float(np.median(centre_noise(fit, vis)[1:]))
        naive = fit.noise / np.sqrt(len(pts))
        assert 0.6 < pred / scatter < 1.6, (lever, pred, scatter)
        if lever:
            assert pred > 2 * naive, (pred, naive)  # 2.7 times here
        else:
            assert pred < 1.3 * naive, (pred, naive)


@pytest.fixture(scope="module")
def throw60():
    """The referee's `throw` scene at 60 fps (bench/critic_tracks.py's throw_1): one body thrown, landing and
    rolling; r = 15 mm, 73 frames. At its bounce the camera sees 13-20 of its 90 tracks, on one side."""
    return tg.referee_rollout("throw", 0, 1, quick=True, dt=1 / 60)


def test_pose_seen_on_one_side_is_missing_data(throw60):
    """throw_1 filmed as the bench films it at noise 0.5 r, static camera without extrinsics (job 25): at the top
    of the throw the camera sees a patch of its 90 tracks on one side, whose fit places the centre more than twice
    as loosely as the pose noise the thresholds assume (its poses shook by 18 mm: a jitter event at frames 8-13).
    Those frames are missing data, and the file raises nothing."""
    tr, keep, cam, _ = tg.film(throw60, np.random.default_rng([0, 25]), noise_frac=0.5, extrinsics=False,
                               noise_seed=25)
    ts = tracks_to_rollout(tr, 60)
    assert ts.loose[:, 0].any() and not ts.loose[60:, 0].any()  # loose in flight, never once it rests
    assert not ts.rollout.visibility[ts.loose[:, 0]].any()  # hidden: the checks do not judge those frames
    rep = audit_tracks(tr, fps=60)
    assert rep.events == (), [e.message for e in rep.events]


def test_briefly_seen_tracks_join_their_body(mixed):
    """mixed_0 at noise 0, static camera without extrinsics (the bench's job 136): the underside of the rolling
    ball passes the camera in 4-7 frames at 30 fps, fewer than the 8 the pairwise grouping needs; left out, the
    ball's lowest tracks sat 4-5 r above the ground and it read as floating at frame 33. Tracks that keep to one
    body point in every frame they are seen join it."""
    tr, keep, cam, _ = tg.film(mixed, np.random.default_rng([0, 136]), noise_frac=0.0, extrinsics=False,
                               noise_seed=136)
    rep = audit_tracks(tr, fps=30)
    assert len(rep.info["ungrouped"]) < 20, len(rep.info["ungrouped"])
    assert rep.events == (), [e.message for e in rep.events]
    oid = mixed.scene.object_id
    for o in rep.info["objects"]:  # every group is one body's tracks
        assert len(np.unique(oid[keep[np.asarray(o["tracks"])]])) == 1


def _spin_body(rng, n=80, T=60, radius=0.04):
    """(T, n, 3) points of a ball of ``radius`` m turning about a tilted axis at 2 rad/s and drifting, plus its body
    coordinates (n, 3)."""
    from scipy.spatial.transform import Rotation

    d = rng.normal(size=(n, 3))
    body = radius * d / np.linalg.norm(d, axis=1, keepdims=True)
    rot = Rotation.from_rotvec(np.outer(np.arange(T) * 2.0 / 30, [0.3, 0.2, 0.93])).as_matrix()
    c = np.outer(np.arange(T), [0.004, 0.0, 0.001])
    return np.einsum("tij,nj->tni", rot, body) + c[:, None], body, rot


def test_bent_spell_bends_neither_pose_nor_noise():
    """Half of a body shifted 120 mm (2 r + 12 sigma) for 8 of 60 frames (bounce_1's bend, noise 7.5 mm): the rigid
    fit used to average the bent frames into every track's body coordinates, so its noise read 9.4 mm here (10.7 mm
    on bounce_1, where the bend, shrunk by 5 of those sigma, came out as two teleports) and the poses of the clean
    frames were 6-8 mm off. The robust fit leaves the bent observations out."""
    from critic.tracks import fit_object

    rng = np.random.default_rng(1)
    X, body, rot = _spin_body(rng)
    half = body[:, 0] > 0
    X[24:32, half] += np.einsum("tij,j->ti", rot[24:32], [0.0, 0.0, 0.12])[:, None]
    sigma = 0.0075
    P = X + rng.normal(0, sigma, X.shape)
    vis = rng.random(X.shape[:2]) > 0.3
    fit = fit_object(P, vis, np.arange(X.shape[1]), floor=0.005)
    assert abs(fit.noise - sigma) < 0.05 * sigma, fit.noise
    clean = X[:, ~half].mean(1)  # the unbent half's centroid, which the poses of the unbent frames must keep
    pred = (np.einsum("tij,nj->tni", fit.rot, fit.body[~half]) + fit.centre[:, None]).mean(1)
    err = np.abs(pred - clean)[np.r_[0:24, 32:60]].max()
    assert err < 0.004, err


def test_patch_cluster_keeps_its_pose_within_its_own_precision():
    """A cluster seen on a few tracks of a small patch turns by a noise that its radius makes larger than the pair
    tolerance tau: throw_0's bent half (4-13 visible tracks) left its body's relative pose by 1-1.4 tau in clean
    frames, so the halves were never one body and 101 of 113 tracks were left ungrouped. Here a cap of 20 tracks
    (about 5 seen a frame) of a noisy spinning ball is shifted 60 mm (15 sigma) for 20 frames: judged against the
    relative pose's own precision that is one body that changed shape, and the same shift kept to the end is two
    bodies; with tau alone the spell is not found. (One draw: on other draws of this size the spell test also misses
    now and then, so the bench, not this test, measures how often.)"""
    from critic.tracks import _spell_only, fit_object

    rng = np.random.default_rng(4)
    X, body, rot = _spin_body(rng, n=120, T=90)
    patch = body[:, 2] > 0.03  # a cap of the ball
    assert patch.sum() == 20
    sigma = 0.004
    vis = rng.random(X.shape[:2]) > 0.2
    vis[:, patch] &= rng.random((X.shape[0], int(patch.sum()))) < 5 / patch.sum()
    tau = 4 * np.sqrt(2) * sigma + 0.002
    for span, one in ((slice(30, 50), True), (slice(30, None), False)):
        Y = X.copy()
        Y[span, patch] += np.einsum("tij,j->ti", rot[span], [0.0, 0.0, 0.06])[:, None]
        P = Y + rng.normal(0, sigma, Y.shape)
        fa = fit_object(P, vis, np.flatnonzero(~patch), floor=tau)
        fb = fit_object(P, vis, np.flatnonzero(patch), floor=tau)
        assert _spell_only(fa, fb, tau, vis, slack=0.002) is one, span
        assert not _spell_only(fa, fb, tau)  # tau alone: the patch's pose noise breaks it outside the spell


def test_smoothed_second_differences_carry_the_noise_the_tolerance_assumes():
    """floating and energy read second differences of smoothed poses; one Savitzky-Golay pass left 5.5 times (at
    W = 13) the acceleration noise the floating tolerance was raised by, so a free fall at noise 0.5 r read as
    floating (throw_0 at 120 fps, frames 21-27). Two passes, and the noise they leave, agree."""
    from critic.tracks import _sg_accel_noise, smoothed
    from particles import ParticleScene

    rng = np.random.default_rng(3)
    T, dt, W, s = 400, 1 / 120, 13, 0.0006
    body = rng.normal(0, 0.02, (12, 3))
    t = np.arange(T) * dt
    c = np.stack([0.3 * t, 0 * t, 2.0 + 1.0 * t - 0.5 * 9.81 * t * t], 1)
    pos = (body[None] + c[:, None] + rng.normal(0, s, (T, 1, 3))).astype(np.float32)  # pose noise s per axis
    scene = ParticleScene(positions=pos[0], object_id=np.zeros(12, np.int32), object_material=("rigid",),
                          radius=0.005, object_name=("b",), ground=None)
    ro = smoothed(Rollout(scene, pos, dt), np.zeros((T, 1), bool), W)
    com = ro.positions.astype(np.float64).mean(1)
    a = (com[2:] - 2 * com[1:-1] + com[:-2]) / dt ** 2 - [0, 0, -9.81]
    inner = a[2 * W:-2 * W]
    q = _sg_accel_noise(s, dt, W)
    assert 0.75 < float(inner.std(0).mean()) / q < 1.3, (inner.std(0), q)


class _Ctx:
    """What floating_onset and energy_onset read of an AuditContext: one object."""

    def __init__(self, com, dt, supported=None, touching=None):
        T = len(com)
        self.T, self.dt, self.g = T, dt, np.array([0.0, 0.0, -9.81])
        self.com = com[:, None, :]
        self.supported = np.zeros((T, 1), bool) if supported is None else supported[:, None]
        self.touching = np.zeros((T, 1), bool) if touching is None else touching[:, None]
        self.obj_observed = np.ones((T, 1), bool)
        self.impact = np.zeros((T, 1), bool)


def _event(cat, frame, end):
    from critic.report import Event

    return Event(cat, frame, end, 0, None, (0.0, 0.0, 0.0), 0.5, (), "")


def test_hover_right_after_a_bounce_found_at_its_onset():
    """bounce_1 at 30 fps: the body leaves the ground at frame 10 and stops in mid-air from frame 13 to 20, then
    falls on. The smoothed check flags frames 17-19; the onset search needed 3 free-fall frames before the split
    (only 11 and 12 exist) and fitted one quadratic across the hover and the fall after it, so it said 16."""
    from critic.tracks import floating_onset

    dt = 1 / 30
    t = np.arange(37) * dt
    z = 0.2 + 1.5 * (t - 10 * dt) - 0.5 * 9.81 * (t - 10 * dt) ** 2
    z[13:21] = z[12]
    z[21:] = z[12] - 0.5 * 9.81 * (t[21:] - t[20]) ** 2
    com = np.stack([0.1 * t, 0 * t, z], 1)
    sup = np.zeros(37, bool)
    sup[7:11] = True
    ev = floating_onset(_Ctx(com, dt, supported=sup), _event("floating", 17, 19), 7)
    assert abs(ev.frame - 13) <= 1, ev.frame


def test_hover_onset_searched_past_an_early_noise_frame():
    """throw_0 at 120 fps: the twice-smoothed check's event starts 9 frames before the hover (frame 40) and its
    pieces are joined; the onset is searched to the hover, beyond W frames of the event's first frame."""
    from critic.tracks import _join_close, floating_onset

    dt, W = 1 / 120, 13
    t = np.arange(145) * dt
    z = 0.8 + 0.5 * t - 0.5 * 9.81 * t * t
    z[40:71] = z[39]
    com = np.stack([0.2 * t, 0 * t, z], 1)
    evs = _join_close([_event("floating", 26, 27), _event("floating", 31, 71)], W)
    assert len(evs) == 1 and evs[0].end_frame == 71
    ev = floating_onset(_Ctx(com, dt), evs[0], W)
    assert abs(ev.frame - 40) <= 1, ev.frame


def test_energy_onset_at_the_push():
    """spin_1 at 120 fps: a body resting on the ground is pushed to slide at 1.4 m/s from frame 31; the energy
    smoothed over 17 frames passes its tolerance at frame 34 (3 frames late). The raw poses' kink gives 30-31."""
    from critic.tracks import energy_onset

    dt = 1 / 120
    t = np.arange(145) * dt
    rng = np.random.default_rng(4)
    x = np.where(np.arange(145) >= 31, 1.4 * (t - 30 * dt), 0.0)
    com = np.stack([x, 0 * t, 0.02 + 0 * t], 1) + rng.normal(0, 0.0005, (145, 3))
    ev = energy_onset(_Ctx(com, dt, touching=np.ones(145, bool)), _event("energy", 34, 129), 17)
    assert abs(ev.frame - 31) <= 1, ev.frame


def test_part_of_a_group_vanishing_is_found(drop):
    """The can of the Newton drop rests by the base all along, so rigid grouping may put both in one group; when the
    can's tracks are all lost in view (frame 40 on) while the base's stay, the group does not vanish, but a part of it
    does."""
    oid = drop.scene.object_id
    rng = np.random.default_rng([0, 4])
    _, keep, cam, _ = tg.film(drop, rng, noise_frac=0.5, extrinsics=False, noise_seed=4)
    hide = np.zeros(drop.positions.shape[:2], bool)
    hide[40:, oid == 2] = True
    tr, _, _, _ = tg.film(drop, rng, noise_frac=0.5, extrinsics=False, hide=hide, camera=cam, keep=keep,
                          noise_seed=5)
    rep = audit_tracks(tr, fps=60)
    home = max(rep.info["objects"], key=lambda o: int((oid[keep[np.asarray(o["tracks"])]] == 2).sum()))
    assert len(np.unique(oid[keep[np.asarray(home["tracks"])]])) > 1  # the can shares its group here
    assert any(e.category == "vanish" and abs(e.frame - 40) <= 2 and home["object"] in e.objects
               for e in rep.events), [(e.category, e.frame, e.objects) for e in rep.events]
    rng = np.random.default_rng([0, 4])
    clean, _, _, _ = tg.film(drop, rng, noise_frac=0.5, extrinsics=False, noise_seed=4)
    assert audit_tracks(clean, fps=60).events == ()


def test_energy_push_never_at_a_bounce():
    """tracks_gen pushes a body that rests or slides for 3 frames either side, never one at the instant a bounce
    touches the ground (bounce_0 at 60 fps: the bounce lost more energy than the push added, 4.02 J -> 3.22 J, so
    no energy ever rose)."""
    ro = tg.referee_rollout("bounce", 0, 0, quick=True, dt=1 / 60)
    r = ro.scene.radius
    for seed in range(6):
        res = tg.inject(ro, "energy", 0.5 * r, np.random.default_rng(seed))
        if res is None:
            continue
        label = res[2]
        ids = np.flatnonzero(ro.scene.object_id == label.object)
        zmin = ro.positions[:, ids, 2].min(1)
        f = label.frame
        assert (zmin[f - 3:f + 4] <= 1.6 * r).all(), (seed, f, zmin[f - 3:f + 4] / r)


@pytest.mark.parametrize("job,moving", [(24, False), (26, True)])
def test_poses_judged_at_their_own_frames_precision(throw60, job, moving, monkeypatch):
    """throw_1 filmed as the bench films it at noise 0.5 r with extrinsics, static (job 24) and orbiting (job 26):
    for a few frames the camera sees 19-21 of its 90 tracks on one side, which place the centre 1.6-1.8 times as
    loosely as the pose noise (under POSE_TRUST, so the frames are judged): judged against the scene's pose noise
    its poses stepped 30 mm where the teleport tolerance was 29 mm (job 24) and shook by 33 mm (job 26). Against
    their own frames' precision neither is an event."""
    import critic.tracks as ct

    tr, _, _, _ = tg.film(throw60, np.random.default_rng([0, job]), noise_frac=0.5, moving=moving, extrinsics=True,
                          noise_seed=job)
    assert audit_tracks(tr, fps=60).events == ()
    monkeypatch.setattr(ct, "local_precision", lambda ts, config, events: events)
    before = audit_tracks(tr, fps=60).events
    assert any(e.category in ("teleport", "jitter") for e in before), before


def _shell(lo, hi, step=0.06):
    """(n, 3) points on the faces of the box ``lo``..``hi`` (m) on a grid of ``step``."""
    g = [np.arange(a, b + 1e-9, step) for a, b in zip(lo, hi)]
    X, Y, Z = np.meshgrid(*g, indexing="ij")
    p = np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1)
    on = np.isclose(p, lo).any(1) | np.isclose(p, hi).any(1)
    return p[on]


def _stack_of_shells(T=60, sink_at=30, noise=0.003, seed=0):
    """Tracks of two boxes sampled on their faces 60 mm apart (the referee's 18 mm particles: the radius from spacing
    is 30 mm), one resting on the other with their facing tracks 36 mm apart (2 x 18 mm); from ``sink_at`` the top
    box sinks 72 mm into the bottom one over 3 frames. Static camera 2 m away, every track visible."""
    from critic.tracks import Tracks

    low = _shell((0.0, 0.0, 0.018), (0.3, 0.3, 0.318))
    top = _shell((0.0, 0.0, 0.354), (0.3, 0.3, 0.654))
    drop = np.clip(np.arange(T) - sink_at + 1, 0, 3)[:, None] / 3.0 * np.array([0.0, 0.0, -0.072])
    world = np.concatenate([np.broadcast_to(low, (T,) + low.shape), top[None] + drop[:, None]], axis=1)
    world = world + np.random.default_rng(seed).normal(0.0, noise, world.shape)
    w2c = np.eye(4)
    w2c[:3, :3] = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # camera looking along world +y, z up
    w2c[:3, 3] = [-0.15, 0.3, 2.0]
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]
    return Tracks(cam.astype(np.float32), np.ones(cam.shape[:2], bool), np.array([800.0, 800.0, 640.0, 480.0]),
                  np.broadcast_to(w2c, (T, 4, 4)).copy()), len(low)


def test_resting_stack_of_sparse_shells_penetrates_only_when_it_sinks():
    """stack_0's cause: tracks 60 mm apart on each face give a radius of 30 mm, so the resting boxes' facing tracks
    (36 mm apart) read as a 24 mm overlap from frame 0, and that noise-level overlap ran into the sinking one (found
    5 frames early); a box sunk 72 mm into a hollow shell comes no nearer its tracks than that. Judged by the
    hulls of the tracks' bodies instead, the sink is found at its frame and nothing before it."""
    from critic.tracks import _body_parts, closer_than_spacing

    tr, n_low = _stack_of_shells()
    ts = tracks_to_rollout(tr, 30)
    assert ts.radius > 0.025 and len(ts.fits) == 2
    assert closer_than_spacing(ts, 2 * ts.radius) == {(0, 1)}  # the pair distances "overlap" from the start
    rep = audit_tracks(tr, fps=30)
    pen = [e for e in rep.events if e.category == "penetration"]
    assert pen and all(abs(e.frame - 30) <= 2 for e in pen), [(e.frame, e.message) for e in rep.events]
    # a group of two bodies far apart is two hulls, not one spanning the air between them
    box = _shell((0.0, 0.0, 0.0), (0.3, 0.3, 0.3))
    parts = _body_parts(np.concatenate([box, box + [0.0, 0.0, 0.6]]))
    assert sorted(len(p) for p in parts) == [len(box), len(box)]


def _box_on_box(T=40, sink_at=20, sink=True, noise=0.001, seed=0):
    """Tracks of a box resting on a wider one, sampled on a 20 mm grid (radius from spacing 10 mm), the top box's
    columns half a step off the bottom one's (no track of either stands over one of the other), its lowest row 22 mm
    above the bottom box's top face. Faces no camera above sees (the top box's underside, the bottom box's top under
    it and its underside) have no tracks. With ``sink``, the top box sinks 32 mm over 3 frames from ``sink_at``: its
    lowest row goes 10 mm into the bottom box and is hidden from then on (inside it); the rows the camera still sees
    stay above the bottom box, its second row 17 mm from the nearest bottom track (an overlap of 3 mm, under the
    tolerance). Returns ``(tracks, index of the first top-box track, indices of the top box's lowest row)``."""
    from critic.tracks import Tracks

    low = _shell((0.0, 0.0, 0.01), (0.2, 0.2, 0.13), step=0.02)
    low = low[~np.isclose(low[:, 2], 0.01)]
    foot = (low[:, 0] > 0.045) & (low[:, 0] < 0.135) & (low[:, 1] > 0.045) & (low[:, 1] < 0.135)
    low = low[~(np.isclose(low[:, 2], 0.13) & foot)]
    top = _shell((0.05, 0.05, 0.152), (0.13, 0.13, 0.232), step=0.02)
    top = top[~np.isclose(top[:, 2], 0.152) | ~((top[:, :2] > 0.06) & (top[:, :2] < 0.12)).all(1)]
    bottom_row = len(low) + np.flatnonzero(np.isclose(top[:, 2], 0.152))
    steps = np.clip(np.arange(T) - sink_at + 1, 0, 3)[:, None] / 3.0 if sink else np.zeros((T, 1))
    drop = steps * np.array([0.0, 0.0, -0.032])
    world = np.concatenate([np.broadcast_to(low, (T,) + low.shape), top[None] + drop[:, None]], axis=1)
    world = world + np.random.default_rng(seed).normal(0.0, noise, world.shape)
    vis = np.ones(world.shape[:2], bool)
    if sink:
        vis[sink_at:, bottom_row] = False
    w2c = np.eye(4)  # a camera 1.5 m away, 40 degrees above the ground, looking along world +y
    a = np.radians(40.0)
    fwd = np.array([0.0, np.cos(a), -np.sin(a)])
    right = np.array([1.0, 0.0, 0.0])
    w2c[:3, :3] = np.stack([right, np.cross(fwd, right), fwd])
    w2c[:3, 3] = -w2c[:3, :3] @ (np.array([0.1, 0.1, 0.12]) - 1.5 * fwd)
    cam = world @ w2c[:3, :3].T + w2c[:3, 3]
    return (Tracks(cam.astype(np.float32), vis, np.array([800.0, 800.0, 640.0, 480.0]),
                   np.broadcast_to(w2c, (T, 4, 4)).copy()), len(low), bottom_row)


def test_box_sinking_into_a_box_found_by_the_tracks_at_their_contact(monkeypatch):
    """seed 1 stack_0's cause (a box on a box sunk 7.3 mm, 4.8 r, into it): the rows where the boxes meet are seen
    only while the stack rests, so they keep constant distances to both boxes and rigid grouping leaves them out;
    once the top box sinks they are inside the bottom one and hidden, and the rows the camera still sees stay outside
    its hull and beyond the pair tolerance. Placed on the bodies whose motion they fit (critic.tracks.interface_points)
    the lowest row is carried 10 mm (1 r) into the bottom box: found at the sink's frame. The clean stack raises
    nothing. Without the contact tracks the sink is found too, by the rows the camera sees coming within two radii of
    the bottom box's hull (critic.tracks._inside_events), nearer than they rested."""
    import critic.tracks as ct

    tr, n_low, row = _box_on_box()
    ts = tracks_to_rollout(tr, 30)
    assert len(ts.fits) == 2 and set(row) <= set(ts.ungrouped.tolist())  # the contact row fits both boxes
    placed = ct.interface_points(ts, 0.5 * ts.radius)
    assert {t for t, _, _, _ in placed} >= set(row)
    pen = [e for e in audit_tracks(tr, fps=30).events if e.category == "penetration"]
    assert pen and abs(pen[0].frame - 20) <= 2 and set(pen[0].particles) <= set(row), pen
    clean, _, _ = _box_on_box(sink=False)
    assert audit_tracks(clean, fps=30).events == ()
    # without the contact tracks the rows the camera sees still show it: the second row ends 10 mm above the bottom
    # box's top face, within the 2 r at which spheres touch its particles there, 32 mm nearer than it rested
    monkeypatch.setattr(ct, "interface_points", lambda ts, tol: [])
    pen = [e for e in audit_tracks(tr, fps=30).events if e.category == "penetration"]
    assert pen and abs(pen[0].frame - 20) <= 2 and not set(pen[0].particles) & set(row), pen


def test_randomly_sampled_surface_is_one_part():
    """A tracker's points lie at random on the surfaces it sees: 216 of a box's surface particles drawn at random
    (the bench's 300 tracks of thousands) are one body, one hull (twice the median spacing cut such a box into 24
    parts, none of them holding the box that sank into it); two such boxes 0.2 m apart are still two parts."""
    from critic.tracks import _body_parts

    rng = np.random.default_rng(3)
    dense = _shell((0.0, 0.0, 0.0), (0.075, 0.075, 0.04), step=0.003)
    box = dense[rng.choice(len(dense), 216, replace=False)]
    assert [len(p) for p in _body_parts(box)] == [216]
    two = _body_parts(np.concatenate([box, box + [0.0, 0.0, 0.24]]))
    assert sorted(len(p) for p in two) == [216, 216]


def test_box_sliding_to_rest_on_a_box_is_no_penetration_of_its_contact_tracks():
    """newton_drop's cause (seed 2, noise 0.25 r: a penetration at the impact, frame 11): tracks where a box coming to
    rest on another meets it that are first seen once it rests fit both boxes' motions and are interface tracks;
    carried back by the bottom box's poses to the frames before they were seen, they sit where the moving box's own
    tracks of that row pass (there the box spun as it landed; here it slides into place along the row). Judged only
    where hidden after they were first seen, they raise nothing."""
    import critic.tracks as ct
    from critic.tracks import Tracks

    tr, n_low, row = _box_on_box(sink=False)
    T, rest = tr.T, 12
    x = tr.xyz.astype(np.float64)
    w2c = tr.w2c[0]
    slide = np.clip(rest - np.arange(T), 0, None)[:, None] * 0.004 * np.array([-1.0, 0.0, 0.0])  # 0.12 m/s along x
    x[:, n_low:] += (slide @ w2c[:3, :3].T)[:, None, :]
    world = np.einsum("ij,tnj->tni", w2c[:3, :3].T, x - w2c[:3, 3])
    vis = tr.visible.copy()
    # every other column of the contact row: first seen once the box rests, where the columns seen while it slid pass
    late = row[np.isclose(np.round((world[-1, row, 0] - 0.05) / 0.02) % 2, 0.0)]
    vis[:rest, late] = False
    sliding = Tracks(x.astype(np.float32), vis, tr.intrinsics, tr.w2c)
    ts = tracks_to_rollout(sliding, 30)
    assert set(late) <= {t for t, _, _, _ in ct.interface_points(ts, 0.5 * ts.radius)}
    assert not [e for e in audit_tracks(sliding, fps=30).events if e.category == "penetration"]


def _push_into(ro: Rollout, k: int, f: int) -> np.ndarray:
    """The bench's penetration injection (bench/tracks_gen.py) at a fixed place: object ``k`` moved along its closest
    pair to another object over 3 frames from frame ``f`` to an overlap of 2 r + 4 (0.5 r), and kept there."""
    from scipy.spatial import cKDTree

    pos = ro.positions.astype(np.float64).copy()
    oid, r = ro.scene.object_id, ro.scene.radius
    ids, others = np.flatnonzero(oid == k), np.flatnonzero(oid != k)
    d, j = cKDTree(pos[f, others]).query(pos[f, ids])
    i = int(np.argmin(d))
    u = pos[f, others[j[i]]] - pos[f, ids[i]]
    u /= np.linalg.norm(u)
    steps = np.clip(np.arange(len(pos)) - f + 1, 0, 3) / 3.0
    pos[:, ids] += (steps[:, None] * (d[i] - 2 * r + 4 * r) * u)[:, None, :]
    return pos


def test_still_cylinder_pushed_into_a_box_is_its_own_object(drop):
    """newton_drop (seed 1, penetration_05): the cylinder, still beside the resting box for 26 frames, is pushed into
    it and stays. Its face that went in is seen only before (hidden inside after): those tracks keep their distances to
    both bodies. Five of them with a box track formed a cluster whose poses end when the bodies part, so it "kept its
    relative pose" to both the box and the cylinder, and chained the two into one object although the two were found
    two bodies (critic.tracks._spell_roots), and every cylinder track fitted it (group_tracks). Grouped apart, the
    cylinder's entry is found at its frame."""
    _, keep, cam, _ = tg.film(drop, np.random.default_rng([1, 6]), noise_frac=0.5, moving=False, extrinsics=True,
                              noise_seed=6)
    pos = _push_into(drop, 2, 26)
    tr, _, _, _ = tg.film(drop, np.random.default_rng(0), noise_frac=0.5, moving=False, extrinsics=True,
                          positions=pos, camera=cam, keep=keep, noise_seed=1005)
    rep = audit_tracks(tr, fps=60)
    truth = drop.scene.object_id[keep]
    groups = [truth[np.asarray(o["tracks"])] for o in rep.info["objects"]]
    cyl = [g for g in range(len(groups)) if (groups[g] == 2).sum() > 0.5 * len(groups[g])]
    assert len(cyl) == 1 and (groups[cyl[0]] == 2).sum() >= 20, [np.bincount(g) for g in groups]
    assert all((g == 2).sum() <= 1 for i, g in enumerate(groups) if i != cyl[0])
    pen = [e for e in rep.events if e.category == "penetration" and cyl[0] in e.objects]
    assert pen and abs(pen[0].frame - 27) <= 2, [(e.category, e.frame, e.objects) for e in rep.events]


@pytest.fixture(scope="module")
def tumble():
    """The referee's `tumble` scene at 30 fps (bench/critic_tracks.py's tumble_0): a box dropped turning onto the
    ground, r = 3.9 mm (index 8: the first the ordinary critic passes); its first impact at frame 8 bends the pose
    path and the compliant contact rings after it."""
    return tg.referee_rollout("tumble", 0, 8, quick=True, dt=1 / 30)


def _shake(pos: np.ndarray, ids: np.ndarray, f: int, n_f: int, direction, r: float) -> None:
    """Shake particles ``ids`` of ``pos (T, N, 3)`` m in place by r along ``direction`` (made unit), alternating
    sign every frame for ``n_f`` frames from frame ``f`` (the bench's jitter injection, at a fixed place)."""
    d = np.asarray(direction, dtype=np.float64)
    d /= np.linalg.norm(d)
    sign = (-1.0) ** np.arange(n_f)
    pos[f:f + n_f, ids] += (sign[:, None] * (0.5 * r + 0.5 * r) * d)[:, None, :]


def test_shake_at_an_impact_found_against_its_own_poses_precision(tumble, monkeypatch):
    """tumble_0's box shaken +-(0.5 r + s) along a fixed direction for the 8 frames from frame 7 (its first impact at
    frame 8, in contact): the shared jitter check reads the upward half of the shake in contact as the ground's push
    and allows the contact tolerance raised by the pose noise, so it finds nothing. Judged as an alternating departure
    from the local path against each frame's own pose precision (critic.tracks.shake_events) it is found at its
    frame; the clean copy's impact and ringing (6 alternating frames at most) raise nothing."""
    import critic.tracks as ct

    ro = tumble
    r = ro.scene.radius
    assert audit(ro).events == ()
    rng = np.random.default_rng([0, 7])
    tr0, keep, cam, _ = tg.film(ro, rng, noise_frac=0.5, extrinsics=True, noise_seed=7)
    assert audit_tracks(tr0, fps=30).events == ()
    pos = ro.positions.copy()
    ids = np.flatnonzero(ro.scene.object_id == 0)
    f, n_f = 7, 8
    _shake(pos, ids, f, n_f, [0.6, -0.3, 0.74], r)
    tr, _, _, _ = tg.film(ro, rng, noise_frac=0.5, extrinsics=True, positions=pos, camera=cam, keep=keep,
                          noise_seed=1007)
    found = [e for e in audit_tracks(tr, fps=30).events if e.category == "jitter" and abs(e.frame - f) <= 2]
    assert found, audit_tracks(tr, fps=30).events
    monkeypatch.setattr(ct, "shake_events", lambda ts, config, jumps=None: [])
    assert not [e for e in audit_tracks(tr, fps=30).events if e.category == "jitter" and abs(e.frame - f) <= 2]


def test_bend_starts_where_tracks_move_against_the_pose():
    """A change of shape starts where tracks seen in two consecutive frames move against the body's pose. Three
    tracks seen mostly while half of the body was bent (frames 40-49; else only in frames 0-5) keep the bent
    coordinates, 80 mm off the true shape, and the pose fill puts them there whenever they are hidden, off the
    check's reference shape of frame 0: the check's fit over all tracks saw them leave the shape from frame 6 (in
    an injected newton_drop copy two such tracks dragged it so that 18 seemed to leave the shape 45 frames before
    the bend). Nothing moves against the pose before frame 40."""
    from types import SimpleNamespace

    from critic.audit import AuditConfig
    from critic.context import AuditContext
    from critic.tracks import collective_rigidity
    from particles import ParticleScene

    rng = np.random.default_rng(5)
    T, r, n = 60, 0.005, 60
    pos, body, rot = _spin_body(rng, n=n, T=T, radius=0.04)
    centre = np.outer(np.arange(T), [0.004, 0.0, 0.001])
    half = np.flatnonzero(body[:, 0] > 0.01)
    shift = np.array([0.0, 0.0, 0.08])
    bent = np.arange(40, 50)
    pos[np.ix_(bent, half)] += np.einsum("tij,j->ti", rot[bent], shift)[:, None]
    lone = half[:3]  # seen mostly while bent: hidden elsewhere, where the fill puts them at the bent coordinates
    out = np.setdiff1d(np.arange(6, T), bent)
    pos[np.ix_(out, lone)] += np.einsum("tij,j->ti", rot[out], shift)[:, None]
    vis = np.ones((T, n), bool)
    vis[np.ix_(out, lone)] = False
    scene = ParticleScene(positions=pos[0].astype(np.float32), object_id=np.zeros(n, np.int32),
                          object_material=("rigid",), radius=r, object_name=("b",), ground=None)
    ro = Rollout(scene, pos.astype(np.float32), 1 / 30, visibility=vis)
    ctx = AuditContext(ro, AuditConfig())
    ev = _event("rigidity", 1, T - 2)
    assert collective_rigidity(ctx, ev).frame == 6  # the check's fit alone
    fit = SimpleNamespace(rot=rot, centre=centre, body=body)
    got = collective_rigidity(ctx, ev, SimpleNamespace(fits=[fit], rollout=ro))
    assert got is not None and abs(got.frame - 40) <= 1, got
    # a body that keeps its shape (the lone tracks' offsets alone): nothing moves against its pose, no change
    still = pos.copy()
    still[np.ix_(bent, half)] -= np.einsum("tij,j->ti", rot[bent], shift)[:, None]
    still[np.ix_(bent, lone)] += np.einsum("tij,j->ti", rot[bent], shift)[:, None]
    ro2 = Rollout(scene, still.astype(np.float32), 1 / 30, visibility=vis)
    fit2 = SimpleNamespace(rot=rot, centre=centre, body=body + np.isin(np.arange(n), lone)[:, None] * shift)
    assert collective_rigidity(AuditContext(ro2, AuditConfig()), ev, SimpleNamespace(fits=[fit2], rollout=ro2)) is None


def _pivot_scene(pos, vis, noise, fps=60.0):
    """A TrackScene-like object holding one rigid body's exact poses (``pos (T, n, 3)`` m, world z up, ground z = 0)
    for ``critic.tracks._ground_pivots``."""
    from types import SimpleNamespace

    from critic.tracks import ObjectFit, fit_object

    fit = fit_object(pos, vis, np.arange(pos.shape[1]))
    fit = ObjectFit(fit.tracks, fit.body, fit.rot, fit.centre, fit.posed, noise, fit.visible_count)
    return SimpleNamespace(fits=[fit], frame=SimpleNamespace(ground=0.0), fps=fps, radius=0.005,
                           tracks=SimpleNamespace(visible=vis))


def test_body_turning_about_an_untracked_corner_on_the_ground_is_held():
    """spin_0 (orbiting camera) starts spinning like a top on a mesh corner no track reaches (its lowest track 9.7 r
    above the ground): the floating check saw a body touching nothing whose centre falls at a fraction of g. Its
    motion turns about a point of the ground beneath it (zero velocity there), which a hover cannot: a body frozen
    in mid-air does not turn, one spinning about its centre high above the ground reaches no ground point, and one
    turning about a ground point that is not beneath it is not held by it."""
    from scipy.spatial.transform import Rotation

    from critic.tracks import _ground_pivots

    rng = np.random.default_rng(2)
    T, n, fps = 30, 60, 60.0
    body = rng.uniform([-0.04, -0.04, 0.05], [0.04, 0.04, 0.12], size=(n, 3))  # tracked; the corner (origin) not
    axis = np.array([np.sin(0.4), 0.0, np.cos(0.4)])  # 23 degrees off vertical
    rot = Rotation.from_rotvec(np.outer(np.arange(T) * 8.0 / fps, axis)).as_matrix()
    vis = np.ones((T, n), bool)
    noise = 0.0025  # 0.5 r
    top = np.einsum("tij,nj->tni", rot, body)  # turning about the corner at the ground's origin
    held = _ground_pivots(_pivot_scene(top, vis, noise), 0)
    assert held[1:-1].all(), np.flatnonzero(~held)
    # the same spin about the body's own centre, 0.3 m up: the axis meets the ground, but nothing reaches it
    mid = body.mean(0)
    high = np.einsum("tij,nj->tni", rot, body - mid) + np.array([0.0, 0.0, 0.3])
    assert not _ground_pivots(_pivot_scene(high, vis, noise), 0).any()
    # frozen in mid-air (the injected hover): no turn, no pivot
    still = np.repeat(top[:1], T, axis=0) + np.array([0.0, 0.0, 0.05])
    assert not _ground_pivots(_pivot_scene(still, vis, noise), 0).any()
    # turning about a ground point 0.3 m to the side: not beneath the body
    side = np.einsum("tij,nj->tni", rot, body + np.array([0.3, 0.0, 0.0]))
    assert not _ground_pivots(_pivot_scene(side, vis, noise), 0).any()


def test_top_on_an_untracked_corner_raises_no_floating(monkeypatch):
    """The quick set's clean spin_0_n0.50_c2 (orbiting camera with extrinsics, noise 0.5 r): the body tips and
    spins on a corner none of its tracks reach; floating at frames 2-9 without the pivot test."""
    import critic.tracks as ct

    ro = tg.referee_rollout("spin", 0, 0, quick=True, dt=1 / 60)
    tr, _, _, _ = tg.film(ro, np.random.default_rng([0, 35]), noise_frac=0.5, moving=True, extrinsics=True,
                          noise_seed=35)
    assert audit_tracks(tr, fps=60).events == ()
    monkeypatch.setattr(ct, "pivot_held", lambda ts, ev: False)
    # the corner is hidden from the camera too, so the hidden-support test (tracks22) also explains the event
    monkeypatch.setattr(ct, "support_hidden", lambda ts, ev: False)
    assert [e.category for e in audit_tracks(tr, fps=60).events] == ["floating"]


def _bouncing_ball(T=33, fps=30.0, z0=0.45, e=0.8, rb=0.05, n=40, bounces=None):
    """(T, n, 3) tracks on a sphere of radius ``rb`` m dropped with its centre at ``z0`` and bouncing (restitution
    ``e``) where its lowest tracks reach z = 0, turning slowly about a horizontal axis; ``bounces`` (int) lets it land
    and rest on the ground after that many."""
    from scipy.spatial.transform import Rotation

    i = np.arange(n)
    cz = 1.0 - 2.0 * (i + 0.5) / n
    phi = i * np.pi * (3.0 - np.sqrt(5.0))
    s = np.sqrt(1.0 - cz * cz)
    body = rb * np.stack([s * np.cos(phi), s * np.sin(phi), cz], 1)
    g, dt = 9.81, 1.0 / fps
    z, v, out, hits = z0, 0.0, [], 0
    for _ in range(T):
        out.append(z)
        # one frame of free fall, bouncing off z = rb (centre) within it
        tl = dt
        while tl > 0:
            if (bounces is not None and hits > bounces) or (z <= rb and abs(v) < 1e-3):  # at rest on the ground
                z, v, tl = rb, 0.0, 0.0
                break
            disc = v * v + 2 * g * (z - rb)
            th = (v + np.sqrt(max(disc, 0.0))) / g  # time to reach the ground
            if th >= tl:
                z, v, tl = z + v * tl - 0.5 * g * tl * tl, v - g * tl, 0.0
            else:
                z, v, tl, hits = rb, -e * (v - g * th), tl - th, hits + 1
    c = np.stack([np.linspace(0.0, 0.3, T), np.zeros(T), np.array(out)], 1)
    rot = Rotation.from_rotvec(np.outer(np.arange(T) * 0.5 * dt, [0.0, 1.0, 0.0])).as_matrix()
    return np.einsum("tij,nj->tni", rot, body) + c[:, None], body


def test_ground_placed_by_bounces_a_coarse_frame_rate_misses(monkeypatch):
    """bounce_0 at 30 and 60 fps with the orbiting camera: the ball's lowest sampled tracks at its bounces are 4-8 r
    above the ground and too few for a plane of resting tracks, so no ground was found and its hover went unjudged
    (the full and the quick set's floating miss). The parabolas of free fall either side of a bounce meet where the
    ball hit the ground."""
    from critic.tracks import Tracks, bounce_ground, fit_object

    pos, _ = _bouncing_ball()
    T, n = pos.shape[:2]
    vis = np.ones((T, n), bool)
    assert pos[:, :, 2].min() > 0.015  # the sampled frames never show the contact
    tr = Tracks(pos.astype(np.float32), vis, np.array([300.0, 300.0, 160.0, 120.0]), np.tile(np.eye(4), (T, 1, 1)))
    ts = tracks_to_rollout(tr, fps=30)
    assert ts.frame.ground is not None and ts.frame.ground_impacts >= 2
    assert abs(ts.frame.ground + ts.radius) < 0.1 * ts.radius  # lowest track centres at z = 0, the ground r below
    import critic.tracks as ct

    monkeypatch.setattr(ct, "bounce_ground", lambda *a, **k: None)
    assert tracks_to_rollout(tr, fps=30).frame.ground is None  # no plane of resting tracks
    # a ball resting or sliding shows no bounce; one bounce with another body about may be off that body
    rest, _ = _bouncing_ball(z0=0.05)
    fr = fit_object(rest, vis, np.arange(n))
    assert bounce_ground([fr], 1 / 30, 0.005, 1e-4) is None
    once, _ = _bouncing_ball(bounces=1)
    fo = fit_object(once, vis, np.arange(n))
    assert bounce_ground([fo], 1 / 30, 0.005, 1e-4) is not None
    assert bounce_ground([fo, fr], 1 / 30, 0.005, 1e-4) is None


@pytest.fixture(scope="module")
def roll1():
    """The referee's `roll` scene bench/critic_tracks.py --seed 1 films as roll_1 (dt 1/60 s): a sparsely sampled
    cylinder rolling on the ground."""
    return tg.referee_rollout("roll", 1, 1, quick=True, dt=1 / 60)


def test_rolling_body_levels_the_ground_of_a_camera_frame(roll1):
    """roll_1_n0.00_c1 of the seed-1 bench (camera frame, no extrinsics, same seeds): the ground-plane count alone
    rolls the up by 2 degrees (a plane turned about the sparse cylinder's path holds more tracks than the true
    one), which tilts the ground along the travel and gives the rolling body potential energy (an energy event).
    The rolling body's level centre path must turn the normal back to within a degree of the true up."""
    j = 37  # the bench's job index of roll_1 at noise 0 with the static camera-frame camera
    tr, _, cam, _ = tg.film(roll1, np.random.default_rng([1, j]), noise_frac=0.0, extrinsics=False, noise_seed=j)
    rep = audit_tracks(tr, fps=60)
    true_up = cam.w2c(1)[0, :3, :3] @ np.array([0.0, 0.0, 1.0])
    angle = np.degrees(np.arccos(np.clip(np.asarray(rep.info["up"]) @ true_up, -1, 1)))
    assert angle < 1.0, (angle, rep.info["up_source"])
    assert rep.events == (), [e.message for e in rep.events]


def test_level_up_turns_only_by_level_ground_motion():
    """critic.tracks.level_up on synthetic centre paths, the normal guessed 2 degrees off the true +z: a body rolling
    in a straight line at constant height gives the tilt along its path back (and none across it); a thrown body
    (a parabola) and a body at rest give no correction."""
    from critic.tracks import level_up

    r, T, fps = 0.01, 60, 60.0
    t = np.arange(T) / fps
    tilt = np.radians(2.0)
    n0 = np.array([np.sin(tilt), 0.0, np.cos(tilt)])  # rolled 2 degrees towards +x
    rng = np.random.default_rng(0)
    noise = 0.05 * r
    roll = np.stack([0.1 + 0.6 * t, 0.2 + 0.0 * t, np.full(T, 0.05)], 1) + rng.normal(0, noise, (T, 3))
    n = level_up(n0, float(np.min(roll @ n0)), [(roll, 0.05)], r, noise, 18)
    assert n is not None
    assert np.degrees(np.arccos(np.clip(n[2], -1, 1))) < 0.2, n  # back to +z
    throw = np.stack([0.1 + 0.6 * t, 0.2 + 0.0 * t, 0.05 + 2.0 * t - 4.905 * t ** 2], 1)
    assert level_up(n0, float(np.min(roll @ n0)), [(throw, 0.05)], r, noise, 18) is None
    rest = np.tile([0.1, 0.2, 0.05], (T, 1)) + rng.normal(0, noise, (T, 3))
    assert level_up(n0, float(np.min(rest @ n0)), [(rest, 0.05)], r, noise, 18) is None


@pytest.fixture(scope="module")
def slide1():
    """The referee's `slide` scene bench/critic_tracks.py --seed 1 films as slide_0 (dt 1/30 s): one box slides 30 mm
    over frames 0-3 and rests 0.24 m from a box that never moves."""
    return tg.referee_rollout("slide", 1, 0, quick=True, dt=1 / 30)


def test_box_sliding_into_rest_beside_another_is_two_bodies(slide1):
    """slide_0_n0.50_c1 of the seed-1 bench (static camera, no extrinsics, the bench's seeds): the two boxes' relative
    pose leaves its median in frames 0 and 1 only (by 1.0 and 0.3 times the per-frame tolerance, the lever arm of
    the poses' turn noise over 0.24 m), so a lone bad frame read as pose noise made them one object, whose frame-0
    shape differed by the slide: a rigidity event from frame 1. The change that ends and stays is two bodies, each
    box's tracks one object of its own, and the file is clean."""
    from scipy.spatial import cKDTree

    from critic.tracks import _spell_only, difference_noise, fit_object, input_frame

    j = 88  # the bench's job index of slide_0 at noise 0.5 r with the static camera-frame camera
    tr, keep, _, _ = tg.film(slide1, np.random.default_rng([1, j]), noise_frac=0.5, extrinsics=False, noise_seed=j)
    oid = slide1.scene.object_id[keep]
    # the relative-pose test on the true bodies, with the tolerances tracks_to_rollout gives it
    vis, P = tr.visible, input_frame(tr)
    sigma0 = difference_noise(np.where(vis[..., None], P, np.nan), vis)
    f0 = int(np.argmax(vis.sum(1)))
    d, _ = cKDTree(P[f0, vis[f0]]).query(P[f0, vis[f0]], k=2)
    r0 = 0.5 * float(np.median(d[:, 1]))
    tau = 4 * np.sqrt(2) * sigma0 + 0.25 * r0
    fits = [fit_object(P, vis, np.flatnonzero(oid == k), floor=tau) for k in (1, 0)]
    assert not _spell_only(fits[0], fits[1], tau, vis, 0.25 * r0)
    rep = audit_tracks(tr, fps=30)
    assert rep.events == (), [(e.category, e.frame) for e in rep.events]
    groups = [np.bincount(oid[np.asarray(o["tracks"])], minlength=2) for o in rep.info["objects"]]
    assert len(groups) == 2 and all(c.max() == c.sum() for c in groups), groups
    for k in (0, 1):  # most of each box's tracks are its object's
        assert max(c[k] for c in groups) >= 0.8 * (oid == k).sum(), (k, groups)


def test_track_seen_while_bodies_moved_apart_joins_its_own():
    """Two boxes of 100 tracks 0.24 m apart, one sliding 30 mm into rest over frames 0-3 (noise 0.9 mm, 30 % hidden):
    a track of either that is seen in frame 0 leaves the other box's motion by more than tau there and in no other
    frame, so it fitted both clusters (one frame off is allowed as noise) and was left out: half of the tracks were
    ungrouped. Seen while they moved apart, it is the box's it never leaves. (On 2 of 6 draws of this scene a mixed
    cluster of a few tracks of each box agrees with both and still merges them: see the README.)"""
    from critic.tracks import group_tracks

    rng = np.random.default_rng(1)

    def box(n):
        p = rng.uniform(-0.025, 0.025, (n, 3))
        p[np.arange(n), rng.integers(0, 3, n)] = np.sign(rng.normal(size=n)) * 0.025
        return p

    T, n, sigma, r = 37, 100, 0.0009, 0.0017
    a, b = box(n), box(n) + [0.24, 0.0, 0.0]
    t = np.arange(T)
    slide = np.where(t < 3, -0.03 * (3 - t) ** 2 / 9, 0.0)
    X = np.concatenate([np.repeat(a[None], T, 0), b[None] + np.stack([slide, 0 * t, 0 * t], 1)[:, None]], 1)
    P = X + rng.normal(0, sigma, X.shape)
    vis = rng.random(X.shape[:2]) > 0.3
    oid = np.r_[np.zeros(n, int), np.ones(n, int)]
    lab = group_tracks(P, vis, 4 * np.sqrt(2) * sigma + 0.25 * r, slack=0.25 * r)
    groups = [np.bincount(oid[lab == g], minlength=2) for g in range(lab.max() + 1)]
    assert all(c.max() == c.sum() for c in groups), groups
    for k in (0, 1):
        assert max(c[k] for c in groups) >= 0.8 * n, (k, groups)


def test_box_shaken_on_its_support_found_by_the_shake_its_tracks_share(monkeypatch):
    """seed 1 stack_1's cause (bench/critic_tracks.py --seed 1, jitter_06_stack_1_c0): the bottom box of a resting
    stack of three shaken +-(0.5 r + s) (7.2 mm) frame after frame for 30 frames at 120 fps, nearly level (the
    bench's direction). No pair distance between its tracks and the boxes' it carries leaves its median by more than
    the grouping tolerance (24 mm), so the three boxes are one group, whose pose the shaken box moves by a fifth of its
    shake: under the contact floor. Split by the shake their tracks share and judged as one side's pose relative to
    the other's (critic.tracks.part_shake_events) it is found at its frame; the clean film raises nothing, and
    without the split the shake is not found."""
    import critic.tracks as ct

    ro = tg.referee_rollout("stack", 1, 1, quick=True, dt=1 / 120)
    r = ro.scene.radius
    oid = ro.scene.object_id
    assert audit(ro).events == ()
    rng = np.random.default_rng([1, 15])
    tr0, keep, cam, _ = tg.film(ro, rng, noise_frac=0.5, extrinsics=True, noise_seed=15)
    assert audit_tracks(tr0, fps=120).events == ()
    low = int(np.argmin([ro.positions[0, oid == k, 2].mean() for k in range(ro.scene.num_objects)]))  # the bottom box
    ids = np.flatnonzero(oid == low)
    pos = ro.positions.astype(np.float64).copy()
    f, n_f = 58, 30
    _shake(pos, ids, f, n_f, [-0.4416, 0.5706, 0.0151], r)
    tr, _, _, _ = tg.film(ro, rng, noise_frac=0.5, extrinsics=True, positions=pos, camera=cam, keep=keep,
                          noise_seed=1015)
    ts = tracks_to_rollout(tr, 120)
    shaken = set(np.flatnonzero(oid[keep] == low).tolist())
    home = max(ts.fits, key=lambda g: len(shaken & set(g.tracks.tolist())))
    assert (oid[keep[home.tracks]] != low).sum() >= ct.MIN_OBJECT_TRACKS  # grouped with the boxes it carries
    k = ts.fits.index(home)

    def found():
        return [e for e in audit_tracks(tr, fps=120).events if e.category == "jitter" and abs(e.frame - f) <= 2
                and k in e.objects]

    hit = found()
    assert hit, audit_tracks(tr, fps=120).events
    monkeypatch.setattr(ct, "part_shake_events", lambda ts, config: [])
    assert not found()


def _ball_side(rng, R0=0.03, n=200):
    d = rng.normal(size=(n, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return R0 * d[d[:, 2] > -0.4]  # the part the camera saw: its centroid is off the ball's centre


def test_recentre_through_a_landing_keeps_a_slow_roll():
    """throw_1 of seed 3 (issue 15): a ball tracked on one side flies spinning about one axis, lands (a few
    frames of jerks whose wobble is the impact's), then rolls slowly at a fine frame rate. The flight's exact fit
    leaves residuals at float32 resolution, so trimming at 3 times their lower quartile dropped the roll's
    micrometres, and a first fit over every frame let the impacts place the centre: in the bench file it went 6 r
    off, mostly along the flight's spin axis (which the flight never reveals), and the roll's centre then wobbled
    by that lever arm once per turn (an energy event at noise 0). Here the centre of mass is found to 0.5 % of the
    ball's radius (3.6 % before the fix)."""
    from critic.tracks import fit_object, recentre
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(5)
    R0 = 0.03
    body = _ball_side(rng, R0)
    T, dt = 73, 1 / 60
    fly, land = 27, 43
    c = np.zeros((T, 3))
    rv = np.zeros((T, 3))
    t = np.arange(fly) * dt
    c[:fly] = np.stack([0.2 * t, 0.4 * t, 0.3 + 0.5 * t - 4.905 * t * t], 1)
    rv[:fly] = np.outer(t, [19.0, 0.0, 0.0])
    R = list(Rotation.from_rotvec(rv[:fly]))
    for f in range(fly, land):  # the landing: jerks of centre and turn from frame to frame
        c[f] = c[f - 1] + [0.004, 0.006, 0.0] + rng.normal(0, 0.004, 3)
        R.append(Rotation.from_rotvec(rng.normal(0, 0.3, 3)) * R[-1])
    c[land - 1, 2] = R0
    ts_ = np.arange(T - land + 1) * dt
    v = 0.37
    c[land - 1:] = c[land - 1] + np.outer(ts_, [0.0, v, 0.0])  # rolling along y at v: turning about x at v / R0
    R = R[:land - 1] + [Rotation.from_rotvec([-v / R0 * s, 0.0, 0.0]) * R[land - 2] for s in ts_]
    rot = np.stack([q.as_matrix() for q in R])
    P = (np.einsum("tij,nj->tni", rot, body) + c[:, None]).astype(np.float32).astype(np.float64)
    vis = np.ones(P.shape[:2], bool)
    fit = fit_object(P, vis, np.arange(len(body)))
    assert np.linalg.norm(fit.centre - c, axis=1).max() > 0.05 * R0  # the centroid is off the centre
    recentre(fit, 1e-4)
    err = np.linalg.norm(fit.centre - c, axis=1)
    assert err[land:].max() < 0.005 * R0, err[land:].max() / R0  # before the fix: 0.036 R0
    assert err[:fly].max() < 0.005 * R0, err[:fly].max() / R0


def test_smoothing_keeps_a_fast_spin():
    """mixed_1 of seed 3 (issue 15): a body spinning at a radian per frame (30 fps) in flight. Quadratic
    Savitzky-Golay fits of its quaternion's components (sinusoids) changed its turn per frame by 4 % from frame to
    frame, its rotational kinetic energy by 8 % (an energy event at noise 0); the smoothed accumulated turn keeps
    a spin at a constant rate exactly, keeps free fall exact, and still takes noise out of the rotation."""
    from critic.context import AuditConfig, AuditContext
    from critic.checks import check_energy
    from critic.tracks import smoothed
    from particles import ParticleScene
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(4)
    T, dt, W = 21, 1 / 30, 5
    body = rng.normal(0, 0.05, (40, 3)) * [1.0, 1.6, 0.6]
    body -= body.mean(0)
    t = np.arange(T) * dt
    c = np.stack([0.5 * t, 0.2 * t, 1.0 + 2.0 * t - 4.905 * t * t], 1)
    axis = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    rot = Rotation.from_rotvec(np.outer(t / dt, axis)).as_matrix()  # 1 rad per frame about a body axis
    scene = ParticleScene(positions=body.astype(np.float32), object_id=np.zeros(40, np.int32),
                          object_material=("rigid",), radius=0.01, object_name=("b",), ground=None)

    def film(noise):
        rn = Rotation.from_rotvec(rng.normal(0, noise, (T, 3))).as_matrix()
        pos = np.einsum("tij,tjk,nk->tni", rot, rn, body) + c[:, None]
        return Rollout(scene, pos.astype(np.float32), dt)

    ro = smoothed(film(0.0), np.zeros((T, 1), bool), W)
    judged = ro.visibility[:, 0]
    assert judged.sum() >= T - 2 * (W // 2) - 1
    ctx = AuditContext(ro, AuditConfig())
    turn = np.linalg.norm(ctx.rigid["dthb"][:, 0], axis=1)[judged[:-1] & judged[1:]]
    assert np.abs(turn - 1.0).max() < 1e-4, turn
    th, inertia = ctx.rigid["dthb"][:, 0][judged[:-1] & judged[1:]], ctx.rigid["inertia"][0]
    ke_rot = 0.5 * np.einsum("si,ij,sj->s", th, inertia, th) / dt ** 2
    assert np.ptp(ke_rot) / ke_rot.mean() < 1e-3, ke_rot
    assert np.abs(ctx.com[judged, 0] - c[judged]).max() < 1e-5
    assert check_energy(ro, ctx) == []
    # rotation noise still goes: the turn per frame scatters less after smoothing
    raw = film(0.02)
    turn_raw = np.linalg.norm(AuditContext(raw, AuditConfig()).rigid["dthb"][:, 0], axis=1)[2:-2]
    sm = smoothed(raw, np.zeros((T, 1), bool), W)
    ok = sm.visibility[:-1, 0] & sm.visibility[1:, 0]
    turn_sm = np.linalg.norm(AuditContext(sm, AuditConfig()).rigid["dthb"][:, 0], axis=1)[ok]
    assert np.abs(turn_sm - 1.0).std() < 0.5 * np.abs(turn_raw - 1.0).std()


def _rolling_ball_beside_a_box(seed, T=60, n=60, sigma=0.008, R=0.08):
    """(P (T, 2n, 3), vis (T, 2n), n): a box of ``n`` face tracks at rest and, 0.5 m from it, a ball of ``n`` tracks
    (radius ``R`` m) rolling 80 mm to rest, seen on the side facing the way it rolls; tracker noise ``sigma`` m."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    box = rng.uniform(-0.06, 0.06, size=(n, 3))
    face = rng.integers(0, 3, n)
    box[np.arange(n), face] = np.sign(box[np.arange(n), face]) * 0.06
    box[:, 2] += 0.06
    d = rng.normal(size=(n, 3))
    ball = R * d / np.linalg.norm(d, axis=1, keepdims=True)
    s = 0.08 * (1 - (1 - np.arange(T) / (T - 1)) ** 2)
    rot = Rotation.from_rotvec(np.outer(-s / R, [1.0, 0.0, 0.0])).as_matrix()
    turned = np.einsum("tij,nj->tni", rot, ball)
    c = np.stack([np.full(T, 0.5), s, np.full(T, R)], 1)
    X = np.concatenate([np.repeat(box[None], T, 0), turned + c[:, None]], 1)
    P = X + rng.normal(0, sigma, X.shape)
    vis = rng.random(X.shape[:2]) > 0.1
    vis[:, n:] &= turned[..., 1] < 0.02
    return P, vis, n


def test_slowly_rolling_ball_far_from_a_resting_box_is_its_own_object():
    """mixed_1 of the bench's seed 2 (noise 0.5 r): a ball rolling to rest 0.5 m from a resting box keeps its pair
    distances to the box's tracks within the 54 mm pair tolerance (they change by 50-80 mm over the clip), so 29 of
    its 60 tracks were clustered with the box and then left out for fitting both motions: its grouped tracks did not
    reach the ground and it floated. Here (noise 8 mm, the ball turning 1 rad) every seen ball track is the ball's
    object, whole: one body's tracks lie among each other (grouping links only adjacent tracks), and a track that
    fits two motions is the one's it lies among."""
    from critic.tracks import group_tracks

    for seed in range(3):
        P, vis, n = _rolling_ball_beside_a_box(seed)
        r = 0.01
        lab = group_tracks(P, vis, 4 * np.sqrt(2) * 0.008 + 0.25 * r, slack=0.25 * r)
        seen = vis.sum(0) >= 8
        box, ball = lab[:n][seen[:n]], lab[n:][seen[n:]]
        assert len(set(box.tolist())) == 1 and box[0] >= 0, (seed, box)
        assert len(set(ball.tolist())) == 1 and ball[0] >= 0 and ball[0] != box[0], (seed, ball)


def _ball_path_and_box(seed, roll_deg, path_deg, T=37, sigma=0.001, nb=100, nx=30):
    """Camera-frame tracks (NaN where hidden), visibility, the true up and the tracks' objects: a ball (radius 50 mm,
    ``nb`` tracks) rolling 0.4 m along a level path at ``path_deg`` degrees, each track touching the ground once, and
    a box of ``nx`` tracks resting 0.35 m off the path (8 of them on its bottom edge), seen by an upright camera
    tilted down 43.4 degrees and rolled ``roll_deg`` (between the upright search's steps of 1 and 2.5 degrees)."""
    rng = np.random.default_rng(seed)
    e, ro = np.radians(43.4), np.radians(roll_deg)
    up = np.array([np.sin(ro) * np.cos(e), -np.cos(ro) * np.cos(e), -np.sin(e)])
    xw = np.cross([0.0, 0.0, 1.0], up)
    xw /= np.linalg.norm(xw)
    yw = np.cross(up, xw)
    d = np.array([np.cos(np.radians(path_deg)), np.sin(np.radians(path_deg))])
    s = 0.4 * np.arange(T) / (T - 1)
    W = np.zeros((T, nb + nx, 3))  # world: (along, across, height)
    ang = s[:, None] / 0.05 + rng.uniform(0, 2 * np.pi, nb)[None]
    W[:, :nb, :2] = (s[:, None, None] + 0.05 * np.sin(ang)[..., None]) * d
    W[:, :nb, 2] = 0.05 * (1 - np.cos(ang))
    W[:, nb:, :2] = -0.35 * np.array([-d[1], d[0]]) + 0.2 * d + rng.uniform(-0.05, 0.05, (nx, 2))
    W[:, nb:, 2] = np.where(np.arange(nx) < 8, 0.0, rng.uniform(0.02, 0.1, nx))
    P = W[..., :1] * xw + W[..., 1:2] * yw + (W[..., 2:] - 1.0) * up + 1.3 * np.cross(xw, up)
    P = P + rng.normal(0, sigma, P.shape)
    vis = rng.random((T, nb + nx)) > 0.1
    return np.where(vis[..., None], P, np.nan), vis, up, np.r_[np.zeros(nb, int), np.ones(nx, int)]


def test_ground_plane_found_between_the_upright_search_directions():
    """roll_1 of the bench's seed 2 (static camera, no extrinsics, noise 0.5 r): the up directions of an upright camera
    step by 1 and 2.5 degrees, and the grid's neighbours of the true ground, 1.8 degrees off, held 79 tracks of both
    bodies while a plane along the rolling ball's path, 5.7 degrees off, held 96 of the ball alone: the ground was
    tilted, a resting box stood 17 mm above it and floated. Here (a ball's path and a camera roll between the grid's
    steps; on 36 such draws the grid alone was 1.1-13.8 degrees off on every one) the leading directions searched
    finely within a grid step find the ground within 0.6 degrees (0.54 at worst on those draws), holding both
    bodies."""
    from critic.tracks import _ground_plane

    band, noise = 0.5 * 0.003 + 2 * 0.001, 0.001
    for seed in range(2):
        for roll in (1.25, -6.25):
            for path in (20.0, 65.0):
                P, vis, up, grp = _ball_path_and_box(seed, roll, path)
                n, h0, k = _ground_plane(P, vis, np.array([0.0, -1.0, 0.0]), False, band, noise, groups=grp)
                assert np.degrees(np.arccos(min(1.0, float(n @ up)))) < 0.6, (seed, roll, path, n, up)
                low = np.nanmin(P @ n, axis=0) + 2.5 * noise
                assert set(grp[low <= h0 + band].tolist()) == {0, 1}  # both bodies rest on it


def _spinning_throw(spin=32.0, fps=120.0, T=60, n=60, sigma=0.0017, hover=False, seed=0):
    """A TrackScene-like object with one fitted body (``n`` tracks on one side of a 0.1 m block, noise ``sigma``
    m) spinning at ``spin`` rad/s about a tilted axis through its centre of mass, which falls freely (or, with
    ``hover``, stays put)."""
    from types import SimpleNamespace

    from scipy.spatial.transform import Rotation

    from critic.tracks import fit_object

    rng = np.random.default_rng(seed)
    body = rng.uniform(-0.05, 0.05, size=(n, 3))
    body[:, 0] = np.abs(body[:, 0])  # the side the camera saw: the tracks' centroid is 25 mm off the centre of mass
    t = np.arange(T) / fps
    axis = np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93])
    rot = Rotation.from_rotvec(np.outer(spin * t, axis)).as_matrix()
    com = np.array([0.0, 0.0, 0.8]) + (0.0 if hover else 1.0) * (np.outer(t, [0.5, 0.0, 1.0])
                                                                  + 0.5 * np.outer(t ** 2, [0.0, 0.0, -9.81]))
    X = np.einsum("tij,nj->tni", rot, body) + com[:, None]
    vis = rng.random(X.shape[:2]) > 0.2
    fit = fit_object(X + rng.normal(0, sigma, X.shape), vis, np.arange(n))
    return SimpleNamespace(fits=[fit], tracks=SimpleNamespace(visible=vis), fps=fps, loose=np.zeros((T, 1), bool),
                           radius=0.005)


def test_fast_spin_in_free_fall_falls_about_a_point_of_its_own():
    """spin_0 of the bench's seed 2 (120 fps, noise 0.25 r): a body thrown spinning at 32 rad/s whose tracks' centroid
    sits 7 mm off its centre of mass, which recentre could not find (its wobble about 9-frame quadratics was the
    noise's size); the centroid circles at w^2 d and the floating check read a body falling at 13 m/s^2 instead of g.
    Some point of the body falls freely within the poses' precision, which a hover, frozen or spinning in place,
    cannot do."""
    from critic.report import Event
    from critic.tracks import falls_about_body_point

    ts = _spinning_throw()
    f = ts.fits[0]
    acc = (f.centre[2:] - 2 * f.centre[1:-1] + f.centre[:-2]) * ts.fps ** 2
    assert np.median(np.linalg.norm(acc - [0, 0, -9.81], axis=1)) > 4.0  # the centroid does not fall with g
    ev = Event("floating", 5, 50, 0, None, (0.0, 0.0, 0.0), 1.0, (), "")
    assert falls_about_body_point(ts, ev)
    for still in (_spinning_throw(hover=True), _spinning_throw(spin=0.0, hover=True)):
        assert not falls_about_body_point(still, ev)


def _resting_strip(seed, T=37, n=16, sigma=0.0012, shake_at=None):
    """Tracks (camera frame, 30 fps) of a body at rest 0.6 m from the camera seen only along a thin edge: ``n``
    tracks in a 100 x 16 x 16 mm strip, noise ``sigma`` m (about 0.35 r of their spacing); ``shake_at`` shakes it
    +-6 mm along the strip frame after frame for 12 frames from that frame."""
    from critic.tracks import Tracks

    rng = np.random.default_rng(seed)
    body = rng.uniform([-0.05, -0.008, -0.008], [0.05, 0.008, 0.008], size=(n, 3))
    X = np.repeat((body + [0.0, 0.0, 0.6])[None], T, 0)
    if shake_at is not None:
        X[shake_at:shake_at + 12, :, 0] += 0.006 * (-1.0) ** np.arange(12)[:, None]
    P = X + rng.normal(0, sigma, X.shape)
    vis = rng.random(X.shape[:2]) > 0.2
    return Tracks(P.astype(np.float32), vis, np.array([290.0, 290.0, 160.0, 120.0]))


def test_turn_noise_of_a_thin_edge_is_no_shake():
    """spin_0 of the bench's seed 3 (30 fps, noise 0.25 and 0.5 r): a resting body seen on 20 tracks of one side has
    its centre placed to 0.4 mm, within the scene's pose noise, but its turn to 1.2 degrees, which the jitter check
    reads at the body's farthest track from its centre (1.1 mm at 53 mm, three times the pose noise its thresholds
    were raised by): a shake at frame 1 (and at 32). Here a strip of tracks turns noisily about its long axis; with the
    re-judging at the centre's precision alone draws 3 and 4 of these 6 shook; at the farthest point's precision
    none does, and a real shake of the strip is still found."""
    from critic.context import AuditConfig

    jitter_only = AuditConfig(checks=("jitter",))
    for seed in range(6):
        rep = audit_tracks(_resting_strip(seed), fps=30, config=jitter_only)
        assert rep.events == (), (seed, [(e.category, e.frame) for e in rep.events])
    rep = audit_tracks(_resting_strip(0, shake_at=15), fps=30, config=jitter_only)
    assert any(e.category == "jitter" and abs(e.frame - 15) <= 2 for e in rep.events), rep.events


def _box_seen_on_an_edge(T=30, seed=0):
    """(T, 50, 3) noise-free (float32-rounded) tracks of a turning, drifting box and their visibility: 6 tracks on
    one top edge seen in every frame, 30 on the top face seen but in frames 14-15, 14 on a side face seen only in
    frames 14-15. In those two frames the only tracks the fit knows from its first frame are the 6 collinear ones."""
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(seed)
    a, b, h = 0.10, 0.075, 0.05
    edge = np.c_[np.linspace(-a, a, 6), np.full(6, -b), np.full(6, h)]
    top = np.c_[rng.uniform(-a, a, 30), rng.uniform(-b + 0.01, b, 30), np.full(30, h)]
    side = np.c_[rng.uniform(-a, a, 14), np.full(14, b), rng.uniform(-h, h, 14)]
    body = np.r_[edge, top, side]
    rot = Rotation.from_rotvec(np.outer(np.arange(T) * 0.08, [0.2, 0.9, 0.4])).as_matrix()
    c = np.outer(np.arange(T), [0.01, 0.0, 0.004]) + [0.0, 0.0, 0.5]
    X = (np.einsum("tij,nj->tni", rot, body) + c[:, None]).astype(np.float32).astype(np.float64)
    vis = np.zeros(X.shape[:2], bool)
    vis[:, :6] = True
    vis[np.r_[0:14, 16:30], 6:36] = True
    vis[14:16, 36:] = True
    return X, vis


def test_frames_seen_only_on_a_line_of_tracks_get_no_pose_of_their_own():
    """Seed 4's throw_1 (noise 0): in one frame the only known tracks visible lay on a line, the turn about it was
    arbitrary (158 mm residuals), 14 tracks lost every inlier and were filled at the centroid, 100-130 mm from where
    they were seen, which read as two shakes. Such a frame is now interpolated, and tracks seen only there are
    placed from the interpolated poses: every filled point stays within a millimetre (the old fit: 273 mm)."""
    from critic.tracks import fill_hidden, fit_object

    X, vis = _box_seen_on_an_edge()
    fit = fit_object(X, vis, np.arange(X.shape[1]))
    assert not fit.posed[14:16].any() and fit.posed[:14].all() and fit.posed[16:].all()
    err = np.linalg.norm(fill_hidden(fit, X, vis) - X, axis=-1)
    assert err.max() < 0.001, err.max(0)


def test_one_frame_floating_event_is_judged_on_enough_frames_to_tell_a_hover():
    """Seed 4's mixed_1 (noise 0) raised a floating event of one frame: with its neighbours 3 frames, too few for the
    9 numbers of a free fall about a point of the body, so the spinner falling freely about a point off its tracks'
    centroid was kept as floating. The frames read now widen around a short event until a hover would fail the
    fit; a hovering body, spinning or still, still does at any one frame."""
    from critic.tracks import falls_about_body_point

    ts = _spinning_throw()
    for F in (0, 20, 59):
        assert falls_about_body_point(ts, _event("floating", F, F)), F
    for still in (_spinning_throw(hover=True), _spinning_throw(spin=0.0, hover=True)):
        for F in (0, 20, 59):
            assert not falls_about_body_point(still, _event("floating", F, F)), F


def test_turn_noise_of_a_long_box_is_no_teleport_but_its_jump_is():
    """slide_0_n0.50_c1 of the seed-4 bench (120 fps, static camera without extrinsics, noise 0.5 r): 25 tracks of a
    box whose farthest track is 129 mm from its centre turn with 2 degrees of noise per frame, 4.4 mm at that
    track against 1.8 mm for the centre. The teleport check adds the step's turn at that distance to the centre's
    jump, and judged at the centre's precision that read 38.9 mm against 29.9 mm allowed: a teleport at frame 16.
    The turn is now judged at the turn's precision and the centre's jump at the centre's, so the clean film raises
    nothing and a 6 r jump of the box (as the bench injects) is still found at its frame."""
    ro = tg.referee_rollout("slide", 4, 0, quick=True, dt=1 / 120)
    tr, keep, cam, vis = tg.film(ro, np.random.default_rng([4, 88]), noise_frac=0.5, extrinsics=False, noise_seed=88)
    rep = audit_tracks(tr, fps=120)
    assert rep.events == (), [e.message for e in rep.events]
    pos, hide, label = tg.inject(ro, "teleport", 0.5 * ro.scene.radius, np.random.default_rng(3), vis_world=vis)
    tr2, _, _, _ = tg.film(ro, np.random.default_rng(0), noise_frac=0.5, extrinsics=False, positions=pos, hide=hide,
                           camera=cam, keep=keep, noise_seed=1000)
    evs = audit_tracks(tr2, fps=120).events
    assert any(e.category == "teleport" and abs(e.frame - label.frame) <= 2 for e in evs), evs


def test_bend_that_drags_the_pose_is_a_change_of_shape_not_a_teleport():
    """rigidity_01_throw_1_c1 of the seed-4 bench (30 fps, noise 0.5 r, static camera without extrinsics): half of the
    thrown body is bent 8 r out for frames 11-18, and that half faces the camera, so the pose fitted to the tracks in
    view jumps with it and the few tracks of the other half in view are left behind: it read as teleports at 11 and
    19. Tracks that move against the pose at the jump make it a change of shape, found at its frame; the same body
    jumping whole (every track with it) is still a teleport."""
    from types import SimpleNamespace

    ro = tg.referee_rollout("throw", 4, 1, quick=True, dt=1 / 30)
    _, keep, cam, vis = tg.film(ro, np.random.default_rng([4, 25]), noise_frac=0.5, extrinsics=False, noise_seed=25)
    # the bench's draw (the glitch at frame 11), and a direction for the jump
    at_11 = SimpleNamespace(shuffle=lambda x: None, integers=lambda a, b: 11, uniform=np.random.default_rng(1).uniform)
    for category in ("rigidity", "teleport"):
        pos, hide, label = tg.inject(ro, category, 0.5 * ro.scene.radius, at_11, vis_world=vis)
        tr, _, _, _ = tg.film(ro, np.random.default_rng(0), noise_frac=0.5, extrinsics=False, positions=pos,
                              hide=hide, camera=cam, keep=keep, noise_seed=1001)
        evs = audit_tracks(tr, fps=30).events
        assert any(e.category == category and abs(e.frame - 11) <= 2 for e in evs), (category, evs)
        assert not any(e.category == ({"rigidity", "teleport"} - {category}).pop() for e in evs), (category, evs)


def test_jump_just_before_a_bounce_is_a_teleport_not_a_shake():
    """teleport_00_throw_1_c0 of the seed-2 bench (30 fps, noise 0.5 r, static camera with extrinsics; rebuilt from
    the referee scene with the bench's draws): the body jumps 6 r sideways at frame 12 and bounces at 15. The jump's
    4 alternating departures from the local path and the bounce's 3 made 7 in a row, a shake from frame 10, which
    outranked the teleport. With the jump taken out the path no longer shakes, so it is the teleport; a shake of the
    same body at the same frame (as the bench injects it) is still a shake."""
    from types import SimpleNamespace

    ro = tg.referee_rollout("throw", 2, 1, quick=True, dt=1 / 30)
    _, keep, cam, vis = tg.film(ro, np.random.default_rng([2, 24]), noise_frac=0.5, extrinsics=True, noise_seed=24)
    rng1 = np.random.default_rng(1)
    at_12 = SimpleNamespace(shuffle=lambda x: None, integers=lambda a, b: 12, uniform=lambda a, b: 1.19193,
                            normal=rng1.normal)  # the bench's draws: frame 12 and the jump's direction
    for category in ("teleport", "jitter"):
        pos, hide, label = tg.inject(ro, category, 0.5 * ro.scene.radius, at_12, vis_world=vis)
        tr, _, _, _ = tg.film(ro, np.random.default_rng(0), noise_frac=0.5, extrinsics=True, positions=pos,
                              hide=hide, camera=cam, keep=keep, noise_seed=1000)
        evs = audit_tracks(tr, fps=30).events
        assert any(e.category == category and abs(e.frame - 12) <= 2 for e in evs), (category, evs)


@pytest.fixture(scope="module")
def roll4():
    """bench/critic_tracks.py's roll_1 of seed 4: a ball of 3.2 mm particles rolling slowly beside a box, 60 fps,
    73 frames."""
    return tg.referee_rollout("roll", 4, 1, quick=True, dt=1 / 60)


def test_rolling_ball_seen_on_one_side_gains_no_energy_from_where_its_centre_is_unknown(roll4):
    """Seed 4's roll_1 at noise 0 with the world frame given (issue 15): the ball is tracked on the side the camera
    sees, so the tracks' centroid sits 4.6 mm off its centre of mass and circles the axis as it rolls; the energy
    of that point swings by 0.1 J/kg (an energy event at frame 45 before the fix) while the ball's own is constant.
    recentre's fit finds a point 1.7 mm from the centre but an absolute floor refuses it. The gain is explained by
    a centre of mass the tracks allow (inside the body and fitting their wobble), so no event is raised."""
    from critic.context import AuditConfig, AuditContext

    assert not audit(roll4).events  # the source is clean
    j = 36  # the bench's job index of roll_1 at noise 0, static camera with extrinsics
    tr, keep, _, _ = tg.film(roll4, np.random.default_rng([4, j]), noise_frac=0.0, moving=False, extrinsics=True,
                             noise_seed=j)
    ts = tracks_to_rollout(tr, fps=60)
    true_com = AuditContext(roll4, AuditConfig()).com[:, 0]
    assert np.linalg.norm(ts.fits[0].centre - true_com, axis=1).max() > 1.0 * roll4.scene.radius  # centre unknown
    rep = audit_tracks(tr, fps=60)
    assert rep.events == (), [e.message for e in rep.events]


@pytest.mark.parametrize("noise", [0.0, 0.5])
def test_push_on_a_ball_rolling_with_an_unknown_centre_is_still_found(roll4, noise):
    """The same rolling ball pushed 0.5 m/s + s/dt along its motion from frame 30 (as tracks_gen pushes): no body
    point's path can take the gain away over the turns that follow, so the energy event is still found at the push
    (+-2 frames), at noise 0 and 0.5 r."""
    r, dt = roll4.scene.radius, roll4.dt
    pos = roll4.positions.astype(np.float64).copy()
    ids = np.flatnonzero(roll4.scene.object_id == 0)
    c = pos[:, ids].mean(1)
    f = 30
    u = c[f] - c[f - 1]
    u[2] = 0.0
    u /= np.linalg.norm(u)
    tau = (np.arange(roll4.num_frames) - (f - 1))[f:, None] * dt
    pos[f:, ids] += ((0.5 + 0.5 * noise * r / dt) * tau * u)[:, None, :]
    j = 36
    tr, keep, _, _ = tg.film(roll4, np.random.default_rng([4, j]), noise_frac=noise, moving=False, extrinsics=True,
                             positions=pos, noise_seed=j)
    rep = audit_tracks(tr, fps=60)
    truth = {o["object"]: int(np.bincount(roll4.scene.object_id[keep[np.asarray(o["tracks"])]]).argmax())
             for o in rep.info["objects"]}
    hits = [e for e in rep.events if e.category == "energy" and abs(e.frame - f) <= 2 and truth.get(e.object) == 0]
    assert hits, [(e.category, e.frame, truth.get(e.object)) for e in rep.events]


def test_energy_rise_judges_candidate_series_as_the_check_judges_one():
    """critic.checks.energy_rise on a (T-1, C) batch of energy series gives, column by column, what it gives each
    series alone (the budget, the tolerance from each column's kinetic energy, the flags): the candidate centres of
    critic.tracks.energy_explained are judged exactly as check_energy judges the audited one."""
    from critic.checks import check_energy, energy_rise
    from critic.context import AuditConfig, AuditContext

    ro = tg.referee_rollout("slide", 0, 0, quick=True, dt=1 / 60)
    ctx = AuditContext(ro, AuditConfig())
    k = 0
    rng = np.random.default_rng(0)
    ke0 = ctx.rigid["ke"][:, k]
    pe0 = -ctx.obj_mass[k] * (0.5 * (ctx.com[1:, k] + ctx.com[:-1, k]) @ ctx.g)
    ke = ke0[:, None] * np.concatenate([[1.0], 1 + 0.3 * rng.random(4)])[None]
    gain = ctx.obj_mass[k] * np.where(np.arange(len(ke0)) > 20, 1.0, 0.0)  # 1 J/kg from step 21 on
    e = ke + pe0[:, None] + np.linspace(0, 1, 5)[None] * gain[:, None]
    batch = energy_rise(ctx, k, e, ke)
    for i in range(5):
        one = energy_rise(ctx, k, e[:, i], ke[:, i])
        for a, b in zip(batch, one):
            np.testing.assert_array_equal(a[:, i], b)
    assert batch[0][:, -1].any() and not batch[0][:, 0].any()  # the added gain is flagged, the clean series not
    flags = energy_rise(ctx, k, ke0 + pe0, ke0)[0]
    assert not flags.any() and not [x for x in check_energy(ro, ctx) if x.object == k]


def _bench_injection(kind, index, fps, job, category, frame, obj, noise_seed, extrinsics, angle=0.0, seed=5):
    """A seed-``seed`` bench file rebuilt from its referee scene and the bench's draws: the clean film of job ``job``
    (noise 0.5 r, static camera) and ``category`` injected at ``frame`` (tracks_gen's draw) on object ``obj``
    (teleports along ``angle`` rad). Returns ``(tracks, label)``."""
    from types import SimpleNamespace

    ro = tg.referee_rollout(kind, seed, index, quick=True, dt=1 / fps)
    _, keep, cam, vis = tg.film(ro, np.random.default_rng([seed, job]), noise_frac=0.5, extrinsics=extrinsics,
                                noise_seed=job)
    draws = SimpleNamespace(shuffle=lambda x: x.sort(key=lambda k: k != obj), integers=lambda a, b: frame,
                            uniform=lambda a, b: angle)
    pos, hide, label = tg.inject(ro, category, 0.5 * ro.scene.radius, draws, vis_world=vis)
    tr, _, _, _ = tg.film(ro, np.random.default_rng(0), noise_frac=0.5, extrinsics=extrinsics, positions=pos,
                          hide=hide, camera=cam, keep=keep, noise_seed=noise_seed)
    return tr, label


def test_relative_pose_that_changes_for_good_is_two_bodies():
    """critic.tracks._persistent_end on relative-pose departures (6D, m) of per-axis std 3 mm: a change of 40 mm
    that starts at frame 20 of 31 and stays (a box sunk into the one it rests on), or one that covers the second half
    of the clip, is a change for good; a change of shape for a spell in mid-clip that comes back, a noise-only
    series, and a 5 mm step (within 5.28 std of a 4-frame mean of 3 mm noise) are not."""
    from critic.tracks import _persistent_end

    rng = np.random.default_rng(0)
    n, sd = 31, np.full(31, 0.003)
    noise = rng.normal(0.0, 0.003, (n, 6))
    step = np.zeros((n, 6))
    step[20:, 2] = -0.04
    assert _persistent_end(noise + step, sd, 0.002)
    half = np.zeros((n, 6))
    half[15:, 0] = 0.04
    assert _persistent_end(noise + half, sd, 0.002)
    spell = np.zeros((n, 6))
    spell[10:18, 2] = 0.04
    assert not _persistent_end(noise + spell, sd, 0.002)
    assert not _persistent_end(noise, sd, 0.002)
    small = np.zeros((n, 6))
    small[20:, 2] = -0.005
    assert not _persistent_end(noise + small, sd, 0.002)


@pytest.mark.parametrize("kind,index,fps,job,frame,obj,noise_seed", [
    ("stack", 0, 30, 106, 19, 2, 1006),  # penetration_06_stack_0_c1: a 25-track box sinks from frame 20 of 31
    ("stack", 1, 60, 115, 30, 0, 1007),  # penetration_07_stack_1_c1: from frame 31 of 61, half the clip
])
def test_box_sinking_for_good_into_the_box_it_rests_on_is_found(kind, index, fps, job, frame, obj, noise_seed):
    """Seed 5 stack_0 and stack_1 (noise 0.5 r, static camera without extrinsics): a box resting on another sinks
    2 r + 4 s into it over 3 frames and stays. At rest together the two were one group, and the sink moved the top
    box's relative pose by 48-63 mm, within the per-frame tolerance of a loose patch of tracks (10 std of its turn,
    66-70 mm), so it stayed one object and no penetration was judged (stack_0 read the tracks sinking out of view as a
    part vanishing). Split by the relative pose that changes for good, the sink is a penetration at its frame; the
    clean film raises nothing."""
    tr, label = _bench_injection(kind, index, fps, job, "penetration", frame, obj, noise_seed, extrinsics=False)
    evs = audit_tracks(tr, fps=fps).events
    assert any(e.category == "penetration" and abs(e.frame - label.frame) <= 2 for e in evs), evs
    ro = tg.referee_rollout(kind, 5, index, quick=True, dt=1 / fps)
    clean, _, _, _ = tg.film(ro, np.random.default_rng([5, job]), noise_frac=0.5, extrinsics=False, noise_seed=job)
    rep = audit_tracks(clean, fps=fps)
    assert rep.events == (), [e.message for e in rep.events]


def test_jump_that_hides_most_of_a_body_is_a_teleport_not_a_vanish():
    """Seed 5 teleport_00_mixed_0_c0 (30 fps, noise 0.5 r, static camera with extrinsics): a 24-track body jumps 18 mm
    (6 r) sideways at frame 9, to where 18 of its tracks are hidden behind untracked surfaces; that read as part of it
    vanishing, which outranks the pose teleport. The 4 tracks still seen jump with it (critic.tracks._survivors_jump),
    so it is a teleport; without the jump, the same tracks hidden from frame 9 on are still a vanish."""
    tr, label = _bench_injection("mixed", 0, 30, 141, "teleport", 9, 1, 1000, extrinsics=True, angle=3.789145)
    evs = audit_tracks(tr, fps=30).events
    assert any(e.category == "teleport" and abs(e.frame - 9) <= 2 for e in evs), evs
    assert not any(e.category == "vanish" for e in evs), evs
    # near-miss: the same tracks lost at frame 9 while the body keeps its motion, a part vanishing in place
    from critic.tracks import Tracks

    ro = tg.referee_rollout("mixed", 5, 0, quick=True, dt=1 / 30)
    ids = np.flatnonzero(ro.scene.object_id == 1)
    _, keep, cam, _ = tg.film(ro, np.random.default_rng([5, 141]), noise_frac=0.5, extrinsics=True, noise_seed=141)
    lost = np.flatnonzero(np.isin(keep, ids) & tr.visible[8] & ~tr.visible[9:].any(0))
    assert len(lost) >= 8
    hide = np.zeros((ro.num_frames, ro.scene.num_particles), bool)
    hide[9:, keep[lost]] = True
    tr2, _, _, _ = tg.film(ro, np.random.default_rng(0), noise_frac=0.5, extrinsics=True, hide=hide, camera=cam,
                           keep=keep, noise_seed=1000)
    vis = tr2.visible.copy()
    vis[8, lost] = True  # seen up to the frame before, as in the jump's film
    evs = audit_tracks(Tracks(tr2.xyz, vis, tr2.intrinsics, tr2.w2c), fps=30).events
    assert not any(e.category == "teleport" for e in evs), evs
    assert any(e.category == "vanish" and abs(e.frame - 9) <= 2 and e.object == 1 for e in evs), evs
