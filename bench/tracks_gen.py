"""Film project rollouts with a virtual camera into TAP-Vid-3D point-track files (issue 15).

A clean rollout (the MuJoCo referee's, ``bench/mujoco_referee.py``, or a Newton one,
``bench/data/tracks/newton_drop.npz``) is filmed by a pinhole camera of 320 x 240 pixels looking at
the scene from 25-45 degrees above the ground, static or orbiting (then with ``extrinsics_w2c``):

* **visibility** from a z-buffer of the particles' spheres: each particle is a disc of radius
  ``f r / z`` pixels at the depth of its front (``z - r``); it is visible when nothing lies in front of
  its centre pixel by more than ``r / 2``; then random dropouts (each visible point lost with
  probability ``dropout``);
* **tracks** are the particles visible in at least 10 % of the frames (a tracker never queries a point
  it never sees), at most ``max_tracks`` of them, in camera coordinates (OpenCV: x right, y down,
  z forward) with Gaussian tracker noise of std ``noise * r`` per axis, hidden points included;
* **glitches** (:func:`inject`): one per copy, on world positions (or on visibility) before filming,
  with a :class:`Label` (category, frame, object, location in world and camera coordinates).

Magnitudes are set against the noise ``s = noise * r`` the file will carry and the pose noise
``s / sqrt(n)`` of an object of ``n`` visible tracks: teleport ``4 r + 4 s`` (sideways, stays),
vanish (all of an object's tracks lost from a frame on, while in view and in front), rigidity (the half
of a body beyond its centre shifted ``2 r + 12 s`` along its own z for 0.25 s: melting and reforming),
floating (a body in flight stops in mid-air for 0.25 s, then goes on as it would have, that much later: it
still lands, so the ground under it is seen; its particles 6 r above the ground and 8 r from every other
body's from 2 frames before to the end of the hover, beyond what sparse tracks can show as contact), energy
(a body resting or sliding on the ground for 3 frames either side starts sliding at ``0.5 m/s + s/dt`` away
from the others, mirrored onto the side of its own motion so that it gains energy), jitter (the whole body shaken ``+-(0.5 r + s)`` frame after frame
for 0.25 s), penetration (a body within 10 r of another moves into it along their closest pair over 3 frames,
to an overlap of ``2 r + 4 s``, and stays: passing into each other).

Units: m, s. Deterministic given the seed.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from critic.tracks import Tracks, save_tracks  # noqa: E402
from particles import Rollout, load_rollout  # noqa: E402
from particles.keypoints import kabsch  # noqa: E402

__all__ = ["Camera", "Label", "film", "inject", "GLITCHES", "newton_rollout", "referee_rollout", "NEWTON_FILE"]

NEWTON_FILE = Path(__file__).resolve().parent / "data" / "tracks" / "newton_drop.npz"
GLITCHES = ("penetration", "teleport", "vanish", "rigidity", "floating", "energy", "jitter")
WIDTH, HEIGHT = 320, 240


@dataclass
class Camera:
    """A pinhole camera looking at ``target`` from ``distance`` at ``elevation`` (rad above the ground plane)
    and ``azimuth`` (rad), turning by ``orbit`` rad about +z over the clip (0: static)."""

    target: np.ndarray
    distance: float
    elevation: float
    azimuth: float
    orbit: float = 0.0
    hfov: float = math.radians(55.0)

    @property
    def intrinsics(self) -> np.ndarray:
        f = 0.5 * WIDTH / math.tan(0.5 * self.hfov)
        return np.array([f, f, 0.5 * WIDTH, 0.5 * HEIGHT])

    def w2c(self, T: int) -> np.ndarray:
        """(T, 4, 4) world-to-camera transforms (OpenCV axes)."""
        out = np.zeros((T, 4, 4))
        for t in range(T):
            az = self.azimuth + self.orbit * t / max(T - 1, 1)
            eye = self.target + self.distance * np.array([math.cos(self.elevation) * math.cos(az),
                                                          math.cos(self.elevation) * math.sin(az),
                                                          math.sin(self.elevation)])
            fwd = self.target - eye
            fwd /= np.linalg.norm(fwd)
            right = np.cross(fwd, [0.0, 0.0, 1.0])
            right /= np.linalg.norm(right)
            down = np.cross(fwd, right)
            R = np.stack([right, down, fwd])  # rows: camera axes in world
            out[t, :3, :3] = R
            out[t, :3, 3] = -R @ eye
            out[t, 3, 3] = 1.0
        return out


def look_at_scene(positions: np.ndarray, rng: np.random.Generator, moving: bool) -> Camera:
    """A camera that keeps every frame's particles in view: aimed at their box's centre, far enough that the
    box's bounding sphere fits the vertical field of view."""
    fin = positions[np.isfinite(positions).all(-1)]
    lo, hi = fin.min(0), fin.max(0)
    centre = 0.5 * (lo + hi)
    rad = 0.5 * float(np.linalg.norm(hi - lo)) + 1e-3
    vfov = 2 * math.atan(math.tan(math.radians(27.5)) * HEIGHT / WIDTH)
    dist = 1.15 * rad / math.sin(0.5 * vfov)
    return Camera(centre, dist, math.radians(rng.uniform(25, 45)), rng.uniform(0, 2 * math.pi),
                  orbit=math.radians(rng.uniform(15, 30)) * rng.choice([-1, 1]) if moving else 0.0)


def zbuffer_visibility(xc: np.ndarray, r: float, intr: np.ndarray) -> np.ndarray:
    """(T, N) bool: particles ``xc (T, N, 3)`` (camera coordinates, m) of radius ``r`` visible in a z-buffer of
    their spheres (discs at their front depth); those outside the image or behind the camera are not."""
    T, N, _ = xc.shape
    fx, fy, cx, cy = intr
    out = np.zeros((T, N), bool)
    for t in range(T):
        x = xc[t]
        z = x[:, 2]
        ok = np.isfinite(x).all(1) & (z > r)
        u = np.where(ok, fx * x[:, 0] / np.where(ok, z, 1) + cx, -1e9)
        v = np.where(ok, fy * x[:, 1] / np.where(ok, z, 1) + cy, -1e9)
        rho = np.where(ok, fx * r / np.where(ok, z, 1), 0.0)
        buf = np.full((HEIGHT, WIDTH), np.inf)
        R = int(math.ceil(rho.max())) if ok.any() else 0
        oy, ox = np.mgrid[-R:R + 1, -R:R + 1]
        oy, ox = oy.ravel(), ox.ravel()
        for i0 in range(0, N, 512):
            sl = slice(i0, min(N, i0 + 512))
            ui = np.round(u[sl])[:, None] + ox[None]
            vi = np.round(v[sl])[:, None] + oy[None]
            inside = ((ox[None] ** 2 + oy[None] ** 2) <= np.maximum(rho[sl], 0.5)[:, None] ** 2) & ok[sl, None]
            inside &= (ui >= 0) & (ui < WIDTH) & (vi >= 0) & (vi < HEIGHT)
            d = np.broadcast_to((z[sl] - r)[:, None], ui.shape)
            np.minimum.at(buf, (vi[inside].astype(np.int64), ui[inside].astype(np.int64)), d[inside])
        ui, vi = np.round(u).astype(np.int64), np.round(v).astype(np.int64)
        inimg = ok & (ui >= 0) & (ui < WIDTH) & (vi >= 0) & (vi < HEIGHT)
        out[t, inimg] = buf[vi[inimg], ui[inimg]] >= z[inimg] - 1.5 * r
    return out


@dataclass
class Label:
    """Ground truth of one injected glitch."""

    category: str
    frame: int
    end_frame: int
    object: int
    """The glitched object's id in the clean rollout."""
    location: tuple
    """World coordinates, m."""
    magnitude: float
    note: str = ""


def _poses(pos: np.ndarray, ids: np.ndarray):
    body = pos[0, ids] - pos[0, ids].mean(0)
    R, t = kabsch(body, pos[:, ids])
    return body, R, t


def _clear_of_others(pos, ids, others, f, margin) -> bool:
    if not len(others):
        return True
    from scipy.spatial import cKDTree

    for t in range(f, pos.shape[0], 3):
        d, _ = cKDTree(pos[t, others]).query(pos[t, ids])
        if d.min() < margin:
            return False
    return True


def inject(ro: Rollout, category: str, noise: float, rng: np.random.Generator,
           vis_world: Optional[np.ndarray] = None) -> Optional[tuple]:
    """One glitch of ``category`` on a copy of clean ``ro`` (module docstring), or None when the scene has no
    place for it. ``noise`` is the tracker noise in m; ``vis_world (T, N)`` the clean film's visibility (vanish
    needs a frame where the object is in view). Returns ``(positions (T, N, 3) float64, hide (T, N) bool, Label)``
    where ``hide`` marks tracks the glitch makes invisible."""
    pos = ro.positions.astype(np.float64).copy()
    T, N = pos.shape[:2]
    r, dt = ro.scene.radius, ro.dt
    oid = ro.scene.object_id
    K = ro.scene.num_objects
    hide = np.zeros((T, N), bool)
    objs = [k for k in range(K) if (oid == k).sum() >= 8]
    rng.shuffle(objs)
    lo_f, hi_f = max(4, int(0.2 * T)), int(0.7 * T)
    if hi_f <= lo_f:
        return None
    for k in objs:
        ids = np.flatnonzero(oid == k)
        others = np.flatnonzero(oid != k)
        body, R, c = _poses(pos, ids)
        zmin = pos[:, ids, 2].min(1)
        resting = zmin <= r * 1.6
        f = int(rng.integers(lo_f, hi_f))
        if category == "teleport":
            ang = rng.uniform(0, 2 * np.pi)
            d = np.array([np.cos(ang), np.sin(ang), 0.0])
            mag = 4 * r + 4 * noise
            new = pos.copy()
            new[f:, ids] += mag * d
            if not _clear_of_others(new, ids, others, f, 2.5 * r):
                continue
            return new, hide, Label("teleport", f, f, k, tuple(new[f, ids].mean(0)), mag)
        if category == "vanish":
            if vis_world is None:
                return None
            cnt = vis_world[:, ids].sum(1)
            good = np.flatnonzero(cnt >= max(8, 0.6 * cnt.max()))
            good = good[(good >= lo_f) & (good <= hi_f)]
            if not len(good):
                continue
            f = int(rng.choice(good))
            hide[f:, ids] = True
            return pos, hide, Label("vanish", f, T - 1, k, tuple(pos[f, ids].mean(0)), 0.0)
        if category == "rigidity":
            half = ids[body[:, 0] > 0]
            if len(half) < 3:
                continue
            n_f = min(T - f, max(6, int(round(0.25 / dt))))
            mag = 2 * r + 12 * noise
            for t in range(f, f + n_f):
                pos[t, half] += R[t] @ np.array([0.0, 0.0, mag])
            return pos, hide, Label("rigidity", f, f + n_f - 1, k, tuple(pos[f, half].mean(0)), mag)
        if category == "floating":
            air = (zmin > 6 * r) & np.r_[True, np.abs(np.diff(zmin)) > 0]
            cand = [t for t in range(max(3, lo_f // 2), T - max(6, int(0.15 / dt))) if air[t - 2:t + 1].all()
                    and air[t:t + max(6, int(0.15 / dt))].all()]
            n_air = max(6, int(round(0.25 / dt)))

            def hover(f):
                # stops in mid-air for n_air frames (pose frozen), then goes on as it would have, n_air frames late: it
                # still lands, so the ground it would land on is seen
                new = pos.copy()
                new[f:f + n_air, ids] = pos[f - 1, ids]
                new[f + n_air:, ids] = pos[f - 1:T - n_air - 1, ids]
                return new

            # fair: nothing can be touching the body from 2 frames before the onset to the end of the hover (a
            # body resting on another one that "stops falling" is still resting: nothing to find there). The critic
            # reads contact up to 2.5 r plus the surface gaps of two sparsely sampled bodies (a track spacing, 2 r
            # or more, each), so clear means 8 r between particle centres (6 r above the ground: one gap)
            cand = [t for t in cand if t + n_air < T - 2
                    and _clear_of_others(hover(t)[:t + n_air], ids, others, t - 2, 8 * r)]
            if not cand:
                continue
            f = int(rng.choice(cand))
            pos = hover(f)
            return pos, hide, Label("floating", f, f + n_air - 1, k, tuple(pos[f, ids].mean(0)), 1.0)
        if category == "energy":
            # fair: a body resting or sliding on the ground for 3 frames either side of the push, not one at a
            # bounce's instant of contact (a bounce loses more energy than the push adds: 4.02 J before one, 3.22 J
            # after with the push, so nothing rises)
            settled = np.array([resting[max(t - 3, 0):t + 4].all() for t in range(T)])
            ok = np.flatnonzero(settled[lo_f:hi_f]) + lo_f
            if not len(ok):
                continue
            f = int(rng.choice(ok))
            away = c[f] - pos[f, others].mean(0) if len(others) else rng.normal(size=3)
            away[2] = 0
            if np.linalg.norm(away) < 1e-9:
                away = np.array([1.0, 0, 0])
            away /= np.linalg.norm(away)
            # fair: the push must add energy. Against a moving body's own motion it could take energy away (a ball
            # rolling at 0.75 m/s pushed at 0.53 m/s mostly backwards slowed down): mirrored onto its side of the motion
            vh = np.array([c[f, 0] - c[f - 1, 0], c[f, 1] - c[f - 1, 1], 0.0]) / dt
            if np.linalg.norm(vh) > 1e-9 and away @ vh < 0:
                u = vh / np.linalg.norm(vh)
                away = away - 2 * (away @ u) * u
            mag = 0.5 + noise / dt
            tau = (np.arange(T) - (f - 1))[f:, None] * dt
            new = pos.copy()
            new[f:, ids] += (mag * tau * away)[:, None, :]
            if not _clear_of_others(new, ids, others, f, 2.5 * r):
                continue
            return new, hide, Label("energy", f, T - 1, k, tuple(new[f, ids].mean(0)), mag)
        if category == "jitter":
            n_f = min(T - f, max(8, int(round(0.25 / dt))))
            d = rng.normal(size=3)
            d /= np.linalg.norm(d)
            d[2] = abs(d[2])  # never into the ground
            mag = 0.5 * r + noise
            sign = (-1.0) ** np.arange(n_f)
            pos[f:f + n_f, ids] += (sign[:, None] * mag * d)[:, None, :]
            return pos, hide, Label("jitter", f, f + n_f - 1, k, tuple(pos[f, ids].mean(0)), mag)
        if category == "penetration":  # passing into another object: moved along the closest pair over 3 frames
            if not len(others):
                continue
            from scipy.spatial import cKDTree

            d, j = cKDTree(pos[f, others]).query(pos[f, ids])
            i = int(np.argmin(d))
            if d[i] > 10 * r:
                continue
            other = int(oid[others[j[i]]])
            depth = 2 * r + 4 * noise
            u = pos[f, others[j[i]]] - pos[f, ids[i]]
            u /= max(np.linalg.norm(u), 1e-12)
            shift = (d[i] - 2 * r + depth) * u
            steps = np.clip(np.arange(T) - f + 1, 0, 3) / 3.0
            pos[:, ids] += (steps[:, None] * shift)[:, None, :]
            return pos, hide, Label("penetration", f + 1, T - 1, k, tuple(pos[f + 2, ids[i]]), depth, f"into {other}")
    return None


def film(ro: Rollout, rng: np.random.Generator, noise_frac: float = 0.0, dropout: float = 0.05, moving: bool = False,
         extrinsics: bool = True, max_tracks: int = 300, positions: Optional[np.ndarray] = None,
         hide: Optional[np.ndarray] = None, camera: Optional[Camera] = None, keep: Optional[np.ndarray] = None,
         noise_seed: int = 0) -> tuple[Tracks, np.ndarray, Camera, np.ndarray]:
    """Film rollout ``ro`` (or ``positions (T, N, 3)`` of its particles) into :class:`Tracks`.

    Returns ``(tracks, particle (M,) the particle index of each track, camera, visibility (T, N) of every
    particle)``. ``camera`` and ``keep`` (the particles tracked) reuse a clean film's choices for an
    injected copy; ``hide`` marks particle observations a glitch hides. A moving camera always writes
    extrinsics; a static one writes them when ``extrinsics``."""
    pos = ro.positions.astype(np.float64) if positions is None else positions
    T, N = pos.shape[:2]
    r = ro.scene.radius
    cam = camera or look_at_scene(ro.positions, rng, moving)
    w2c = cam.w2c(T)
    xc = np.einsum("tij,tnj->tni", w2c[:, :3, :3], pos) + w2c[:, None, :3, 3]
    vis = zbuffer_visibility(xc, r, cam.intrinsics)
    if keep is None:
        often = np.flatnonzero(vis.mean(0) >= 0.1)
        if len(often) > max_tracks:
            often = np.sort(rng.choice(often, max_tracks, replace=False))
        keep = often
    nrng = np.random.default_rng(noise_seed)
    v = vis[:, keep].copy()
    v &= nrng.random(v.shape) >= dropout
    if hide is not None:
        v &= ~hide[:, keep]
    x = xc[:, keep] + nrng.normal(0.0, noise_frac * r, size=(T, len(keep), 3))
    ext = w2c if (moving or extrinsics) else None
    return Tracks(x.astype(np.float32), v, cam.intrinsics, ext), keep, cam, vis


def newton_rollout() -> Rollout:
    """The shipped Newton rollout: a spinning box dropped onto a resting box beside a cylinder (91 frames, 1/60 s)."""
    return load_rollout(NEWTON_FILE)


def referee_rollout(kind: str, seed: int, index: int = 0, quick: bool = True, r: Optional[float] = None,
                    dt: Optional[float] = None) -> Rollout:
    """A clean MuJoCo referee rollout of ``kind`` (``bench/mujoco_referee.py``; scenes without the tool)."""
    import mujoco_referee as ref

    spec = ref.make_scene(kind, seed, index, quick=quick, r=r, dt=dt)
    return ref.simulate(spec).rollout


def label_dict(label: Label, cam_xyz: Optional[np.ndarray] = None) -> dict:
    d = asdict(label)
    d["location"] = [float(v) for v in label.location]
    if cam_xyz is not None:
        d["location_camera"] = [float(v) for v in cam_xyz]
    return d


def write(path, tracks: Tracks) -> Path:
    return save_tracks(path, tracks)
