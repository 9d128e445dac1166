"""Analytic rollouts for the critic's benchmark and tests: clean ones, and copies with one glitch.

Every clean rollout is exact physics sampled at the frame times (no solver): bodies move by
closed-form rigid motions (parabolas, constant deceleration under Coulomb friction, decaying
spin, a tool pushing a box at its own speed, a restitution bounce) or a volume-preserving
elastic wobble, with optional seeded Gaussian noise standing in for a solver's noise floor.
:func:`inject` copies one and adds exactly one glitch of a category at a magnitude, and
returns the :class:`Label` (category, frames, object, location) the critic should report.

Units: m, s, kg. Particles sit on a cubic lattice of spacing ``2 r`` inside each box, so
boxes that touch have particle centres ``2 r`` apart and a box resting on the ground has
its lowest particle centres ``r`` above it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from particles import KINEMATIC, MATERIAL_TYPE, ParticleScene, Rollout
from particles.keypoints import kabsch

__all__ = ["Label", "CLEAN", "clean", "inject", "GLITCHES", "big_scene", "lattice", "free_object", "showcase", "SHOWCASE"]

R = 0.01  #: particle radius of the synthetic scenes, m
DT = 1.0 / 60.0  #: frame time, s
G = np.array([0.0, 0.0, -9.81])


@dataclass(frozen=True)
class Label:
    """Ground truth of one injected glitch."""

    category: str
    frame: int
    end_frame: int
    object: int
    other: Optional[int]
    location: tuple[float, float, float]
    magnitude: float
    """Size of the injection in its own unit (see :data:`GLITCHES`)."""
    note: str = ""


def lattice(n: tuple[int, int, int], r: float = R) -> np.ndarray:
    """(nx*ny*nz, 3) float64, m. A box of particles of spacing ``2 r`` centred on the origin."""
    ax = [(np.arange(k) - (k - 1) / 2.0) * 2 * r for k in n]
    return np.stack(np.meshgrid(*ax, indexing="ij"), -1).reshape(-1, 3)


def _rot_z(theta: np.ndarray) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    out = np.zeros(theta.shape + (3, 3))
    out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1], out[..., 2, 2] = c, -s, s, c, 1
    return out


def _rot_axis(axis: np.ndarray, theta: np.ndarray) -> np.ndarray:
    a = axis / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    th = theta[:, None, None]
    return np.eye(3) + np.sin(th) * k + (1 - np.cos(th)) * (k @ k)


class _Builder:
    """Collects objects (local particle sets and their trajectories) into a Rollout."""

    def __init__(self, T: int, dt: float = DT, r: float = R, ground: Optional[float] = 0.0):
        self.T, self.dt, self.r, self.ground = T, dt, r, ground
        self.t = np.arange(T) * dt
        self.traj: list[np.ndarray] = []
        self.mats: list[str] = []
        self.names: list[str] = []
        self.kin: list[bool] = []

    def add(self, name: str, traj: np.ndarray, material: str = "rigid", kinematic: bool = False) -> int:
        self.traj.append(np.asarray(traj, np.float64))
        self.mats.append(material)
        self.names.append(name)
        self.kin.append(kinematic)
        return len(self.traj) - 1

    def rigid(self, name: str, local: np.ndarray, centre: np.ndarray, rot: Optional[np.ndarray] = None, **kw) -> int:
        """``centre (T, 3)``, ``rot (T, 3, 3)`` or None: x = R local + c."""
        if rot is None:
            traj = centre[:, None, :] + local[None]
        else:
            traj = np.einsum("tij,nj->tni", rot, local) + centre[:, None, :]
        return self.add(name, traj, **kw)

    def build(self, noise: float = 0.0, seed: int = 0) -> Rollout:
        pos = np.concatenate(self.traj, axis=1)
        oid = np.concatenate([np.full(t.shape[1], k, np.int32) for k, t in enumerate(self.traj)])
        ptype = np.concatenate([np.full(t.shape[1], KINEMATIC if kin else MATERIAL_TYPE[m], np.int32)
                                for t, m, kin in zip(self.traj, self.mats, self.kin)])
        if noise > 0:
            rng = np.random.default_rng(seed)
            free = ptype != KINEMATIC
            pos[:, free] += rng.normal(0.0, noise, size=(self.T, int(free.sum()), 3))
        scene = ParticleScene(pos[0].astype(np.float32), oid, tuple(self.mats), self.r, particle_type=ptype,
                              object_name=tuple(self.names), ground=self.ground)
        return Rollout(scene, pos.astype(np.float32), self.dt)


def _rest_z(n_z: int, below: float = 0.0, r: float = R) -> float:
    """Centre height of a box of ``n_z`` layers whose bottom particles sit ``r`` above ``below``."""
    return below + r + (n_z - 1) * r


# ------------------------------------------------------------------------------------ clean scenes


def projectile(T: int = 60, speed: float = 5.0) -> Rollout:
    """A spinning rigid box thrown upward and forward, in free fall the whole time (no ground contact)."""
    b = _Builder(T)
    t = b.t
    v0 = speed * np.array([0.6, 0.0, 0.8])
    c = np.array([0.0, 0.0, 1.5]) + v0 * t[:, None] + 0.5 * G * t[:, None] ** 2
    b.rigid("box", lattice((4, 4, 4)), c, _rot_axis(np.array([0.2, 1.0, 0.4]), 4.0 * t))
    return b.build()


def throw(T: int = 45) -> Rollout:
    """A fast ballistic throw (15 m/s, steps of 25 particle radii per frame) with a static wall far away."""
    b = _Builder(T)
    t = b.t
    v0 = np.array([14.0, 0.0, 5.0])
    c = np.array([0.0, 0.0, 1.0]) + v0 * t[:, None] + 0.5 * G * t[:, None] ** 2
    b.rigid("ball", lattice((3, 3, 3)), c, _rot_axis(np.array([0.0, 1.0, 0.0]), 10.0 * t))
    return b.build()


def stack(T: int = 90, noise: float = 0.02 * R, seed: int = 1, table: bool = False) -> Rollout:
    """Three boxes resting on each other on the ground (or on a static table), with solver noise."""
    b = _Builder(T)
    z = 0.0  # the first box's bottom particle centres sit r above this
    if table:
        zc = 0.3
        b.rigid("table", lattice((12, 12, 2)), np.tile([0.0, 0.0, zc], (T, 1)), material="static", kinematic=True)
        z = zc + 2 * R  # slab's top centres at zc + r; the box's bottom centres 2r above them
    for k, (n, off) in enumerate((((6, 6, 3), 0.0), ((5, 5, 3), 0.01), ((4, 4, 3), -0.005))):
        zc = _rest_z(n[2], z)
        b.rigid(f"box{k}", lattice(n), np.tile([off, 0.0, zc], (T, 1)))
        z = zc + (n[2] - 1) * R + R  # top centres + r: the next box's bottom centres sit r above this
    return b.build(noise=noise, seed=seed)


def slide(T: int = 60, v0: float = 2.0, mu: float = 0.4) -> Rollout:
    """A rigid box sliding on the ground, decelerating under Coulomb friction until it stops."""
    b = _Builder(T)
    t = b.t
    a = mu * 9.81
    ts = v0 / a
    tc = np.minimum(t, ts)
    x = v0 * tc - 0.5 * a * tc ** 2
    c = np.stack([x - 0.5, np.zeros(T), np.full(T, _rest_z(3))], 1)
    b.rigid("box", lattice((5, 4, 3)), c)
    return b.build()


def spin(T: int = 60, w0: float = 8.0, alpha: float = 6.0) -> Rollout:
    """A rigid box spinning about the vertical on the ground, its spin decaying under friction."""
    b = _Builder(T)
    t = b.t
    ts = w0 / alpha
    tc = np.minimum(t, ts)
    th = w0 * tc - 0.5 * alpha * tc ** 2
    b.rigid("box", lattice((6, 4, 3)), np.tile([0.0, 0.0, _rest_z(3)], (T, 1)), _rot_z(th))
    return b.build()


def push(T: int = 90, u: float = 0.5) -> Rollout:
    """A kinematic pusher moving at ``u`` along x meets a resting box and pushes it along."""
    b = _Builder(T)
    t = b.t
    box_n, tool_n = (4, 4, 3), (2, 4, 3)
    box_x0 = 0.2
    # tool front face reaches 2r behind the box's back face at contact
    box_back = box_x0 - (box_n[0] - 1) * R
    tool_front0 = 0.0
    tool_x = tool_front0 + u * t  # front face x
    contact_front = box_back - 2 * R
    box_shift = np.maximum(tool_x - contact_front, 0.0)
    tool_c = np.stack([tool_x - (tool_n[0] - 1) * R, np.zeros(T), np.full(T, _rest_z(3))], 1)
    box_c = np.stack([box_x0 + box_shift, np.zeros(T), np.full(T, _rest_z(3))], 1)
    b.rigid("box", lattice(box_n), box_c)
    b.rigid("tool", lattice(tool_n), tool_c, material="rigid", kinematic=True)
    return b.build()


def wobble(T: int = 60, amp: float = 0.2, freq: float = 2.0) -> Rollout:
    """An elastic box on the ground whose height oscillates (volume kept): deformation, not a glitch."""
    b = _Builder(T)
    t = b.t
    loc = lattice((5, 5, 4))
    s = 1.0 + amp * np.sin(2 * np.pi * freq * t)
    zc = _rest_z(4)
    zb = zc - 3 * R  # bottom centres
    traj = np.empty((T, len(loc), 3))
    lat = 1.0 / np.sqrt(s)
    traj[:, :, 0] = loc[None, :, 0] * lat[:, None]
    traj[:, :, 1] = loc[None, :, 1] * lat[:, None]
    traj[:, :, 2] = zb + (loc[None, :, 2] + 3 * R) * s[:, None]
    b.add("jelly", traj, material="elastic")
    return b.build()


def bounce(T: int = 90, h: float = 0.5, e: float = 0.8) -> Rollout:
    """A rigid ball-like box dropped from ``h`` bouncing on the ground with restitution ``e``."""
    b = _Builder(T)
    t = b.t
    n = (3, 3, 3)
    z_rest = _rest_z(3)
    z = _bounce_height(t, h, e) + z_rest
    c = np.stack([np.zeros(T), np.zeros(T), z], 1)
    b.rigid("ball", lattice(n), c)
    return b.build()


def _bounce_height(t: np.ndarray, h: float, e: float, kick_after: int = -1, kick_e: float = 1.0) -> np.ndarray:
    """Height above rest of a point dropped from ``h`` bouncing with restitution ``e`` (the bounce
    numbered ``kick_after`` uses ``kick_e`` instead)."""
    g = 9.81
    out = np.empty_like(t)
    t0, z0, v0, k = 0.0, h, 0.0, 0
    seg_end = t0 + (v0 + np.sqrt(v0 ** 2 + 2 * g * z0)) / g
    for i, ti in enumerate(t):
        while ti > seg_end:
            v_imp = v0 - g * (seg_end - t0)
            ee = kick_e if k == kick_after else e
            t0, z0, v0 = seg_end, 0.0, -ee * v_imp
            k += 1
            seg_end = t0 + 2 * v0 / g
        dt = ti - t0
        out[i] = z0 + v0 * dt - 0.5 * g * dt * dt
    return out


#: Clean scenes by name: name -> builder.
CLEAN: dict[str, Callable[[], Rollout]] = {
    "projectile": projectile, "throw": throw, "stack": stack, "stack_on_table": lambda: stack(table=True, seed=2),
    "slide": slide, "spin": spin, "push": push, "wobble": wobble, "bounce": bounce,
}


def clean(name: str) -> Rollout:
    """The clean rollout ``name`` of :data:`CLEAN`."""
    return CLEAN[name]()


# ------------------------------------------------------------------------------------ injections


def free_object(ro: Rollout, k: int) -> bool:
    """True when object ``k`` has particles and none of them is kinematic."""
    ids = _ids(ro, k)
    return len(ids) > 0 and not ro.scene.kinematic[ids].any() and ro.scene.object_material[k] != "static"


def _copy(ro: Rollout, pos: np.ndarray) -> Rollout:
    return Rollout(ro.scene, pos.astype(np.float32), ro.dt)


def _ids(ro: Rollout, k: int) -> np.ndarray:
    return np.flatnonzero(ro.scene.object_id == k)


def _com(pos: np.ndarray, ids: np.ndarray) -> tuple:
    return tuple(float(v) for v in pos[ids].astype(np.float64).mean(0))


def inject(ro: Rollout, category: str, magnitude: float, frame: int, obj: int = -1, seed: int = 0,
           variant: str = "") -> tuple[Rollout, Label]:
    """A copy of clean ``ro`` with one glitch of ``category`` starting at ``frame`` on object ``obj``
    (-1: the last free object). ``magnitude`` unit per category (see :data:`GLITCHES`)."""
    rng = np.random.default_rng(seed)
    pos = ro.positions.astype(np.float64).copy()
    T = ro.num_frames
    r, dt = ro.scene.radius, ro.dt
    free = [k for k in range(ro.scene.num_objects) if free_object(ro, k)]
    k = free[obj] if obj < 0 else obj
    ids = _ids(ro, k)
    f = frame
    if category == "teleport":  # whole object (or one particle) jumps magnitude*r and stays there
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        sel = ids if variant != "particle" else ids[[len(ids) // 2]]
        pos[f:, sel] += magnitude * r * d
        return _copy(ro, pos), Label("teleport", f, f, k, None, _com(pos[f], sel), magnitude, variant)
    if category == "vanish":
        if variant == "nan":  # a few particles become NaN for good
            sel = ids[rng.choice(len(ids), size=max(1, int(magnitude)), replace=False)]
            loc = _com(pos[f - 1], sel)
            pos[f:, sel] = np.nan
            return _copy(ro, pos), Label("vanish", f, T - 1, k, None, loc, magnitude, variant)
        if variant == "collapse":  # the object shrinks about its centre to 1/magnitude of its size
            c = pos[f:, ids].mean(1, keepdims=True)
            pos[f:, ids] = c + (pos[f:, ids] - c) / magnitude
            return _copy(ro, pos), Label("vanish", f, T - 1, k, None, _com(pos[f], ids), magnitude, variant)
        loc = _com(pos[f - 1], ids)  # the object is flung out of the world: magnitude km away
        pos[f:, ids] += np.array([magnitude * 1000.0, 0, 0])
        return _copy(ro, pos), Label("vanish", f, T - 1, k, None, loc, magnitude, variant or "away")
    if category == "rigidity":  # the half of a rigid object beyond its centre shifts by magnitude*r
        x0 = pos[0, ids] - pos[0, ids].mean(0)
        half = ids[x0[:, 0] > 0]
        local = np.zeros(3)
        local[2 if variant != "shear" else 1] = magnitude * r
        for t in range(f, T):  # displacement along the body's own axes: follow its rotation
            rot = kabsch(pos[0, ids], pos[t, ids])[0]
            pos[t, half] += rot @ local
        return _copy(ro, pos), Label("rigidity", f, T - 1, k, None, _com(pos[f], half), magnitude, variant)
    if category == "floating":  # from frame f the object falls with (1 - magnitude) g: 1 = no fall at all
        c = pos[:, ids].mean(1)  # (T, 3)
        v = (c[f - 1] - c[f - 2]) / dt + 0.5 * G * dt  # velocity at frame f-1 of a free parabola
        tau = (np.arange(T) - (f - 1))[f:, None] * dt
        c_new = c[f - 1] + v * tau + 0.5 * (1.0 - magnitude) * G * tau ** 2
        pos[f:, ids] += (c_new - c[f:])[:, None, :]
        return _copy(ro, pos), Label("floating", f, T - 1, k, None, _com(pos[f], ids), magnitude, variant)
    if category == "energy":
        if variant == "bounce":  # the ball leaves its first bounce faster than it arrived (restitution magnitude > 1)
            t = np.arange(T) * dt
            z_new = _bounce_height(t, 0.5, 0.8, kick_after=0, kick_e=magnitude)
            z_old = _bounce_height(t, 0.5, 0.8)
            pos[:, ids, 2] += (z_new - z_old)[:, None]
            f = int(np.argmax(np.abs(z_new - z_old) > 1e-9))
            return _copy(ro, pos), Label("energy", f, T - 1, k, None, _com(pos[f], ids), magnitude, variant)
        # a velocity kick of magnitude m/s along +x at frame f: the object starts sliding faster
        t = (np.arange(T) - (f - 1)) * dt
        pos[f:, ids] += (magnitude * t[f:, None] * np.array([1.0, 0.0, 0.0]))[:, None, :]
        return _copy(ro, pos), Label("energy", f, T - 1, k, None, _com(pos[f], ids), magnitude, variant)
    if category == "jitter":  # particles shake with amplitude magnitude*r for a while
        n_f = min(T - f, max(8, int(round(0.25 / dt))))
        dirs = rng.normal(size=(len(ids), 3))
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        sign = (-1.0) ** np.arange(n_f)
        if variant == "gauss":
            shake = rng.normal(0, magnitude * r / np.sqrt(3), size=(n_f, len(ids), 3))
        else:
            shake = sign[:, None, None] * magnitude * r * dirs[None]
        pos[f:f + n_f, ids] += shake
        return _copy(ro, pos), Label("jitter", f, f + n_f - 1, k, None, _com(pos[f], ids), magnitude, variant)
    if category == "penetration":  # the object sinks magnitude*r into what is below it (or sideways into the tool's path)
        down = np.array([0.0, 0.0, -1.0])
        steps = np.minimum(np.arange(T) - f + 1, 3).clip(0) / 3.0  # over 3 frames
        pos[:, ids] += (magnitude * r * steps)[:, None, None] * down
        tol_frame = f + int(np.argmax(magnitude * steps[f:] > 0.5 + 1e-9)) if magnitude > 0.5 else f
        z = pos[tol_frame, ids, 2]
        bottom = ids[z <= z.min() + 0.5 * r]
        other = None if variant == "ground" else _below(ro, k)
        loc = list(_com(pos[T - 1], bottom))
        if other is None:
            return _copy(ro, pos), Label("penetration", tol_frame, T - 1, k, None, tuple(loc), magnitude, variant)
        loc[2] -= r  # midpoint between the sunk layer and the layer below it
        ov = ids[z <= z.min() + 0.5 * r]
        below = _ids(ro, other)
        # overlap centroid: the part of the bottom face that lies over the lower object
        bz = pos[T - 1, below]
        lo, hi = bz.min(0) - r, bz.max(0) + r
        pts = pos[T - 1, ov]
        inside = ((pts[:, :2] >= lo[:2]) & (pts[:, :2] <= hi[:2])).all(1)
        if inside.any():
            loc[0], loc[1] = (float(v) for v in pts[inside, :2].mean(0))
        return _copy(ro, pos), Label("penetration", tol_frame, T - 1, k, other, tuple(loc), magnitude, variant)
    raise ValueError(f"category: unknown {category!r}")


def _below(ro: Rollout, k: int) -> Optional[int]:
    """The object right under object ``k`` at frame 0, or None (the ground)."""
    ids = _ids(ro, k)
    p = ro.positions[0]
    zmin = p[ids, 2].min()
    best = None
    for j in range(ro.scene.num_objects):
        if j == k:
            continue
        q = p[_ids(ro, j)]
        if abs(q[:, 2].max() - (zmin - 2 * ro.scene.radius)) < 0.5 * ro.scene.radius:
            best = j
    return best


#: The benchmark's injections: (category, clean scene, magnitude, frame, variant). A single particle
#: jumping is a teleport on a deformable object (the wobble); on a rigid one it is a change of shape
#: (the critic judges rigid objects on their pose). Magnitudes:
#: teleport, rigidity, jitter, penetration in particle radii; vanish: particle count (nan),
#: shrink factor (collapse) or km (away); floating: fraction of gravity cancelled; energy: m/s kick.
GLITCHES: list[tuple[str, str, float, int, str]] = [
    ("penetration", "stack", 1.2, 30, ""), ("penetration", "stack", 2.0, 40, ""),
    ("penetration", "stack_on_table", 1.0, 20, ""), ("penetration", "slide", 1.2, 25, "ground"),
    ("penetration", "spin", 2.0, 20, "ground"),
    ("teleport", "projectile", 3.0, 20, ""), ("teleport", "projectile", 10.0, 30, ""), ("teleport", "throw", 6.0, 25, ""),
    ("teleport", "stack", 4.0, 45, ""), ("teleport", "wobble", 3.0, 15, "particle"), ("teleport", "spin", 30.0, 40, ""),
    ("vanish", "stack", 3, 50, "nan"), ("vanish", "projectile", 1, 20, "nan"), ("vanish", "slide", 5.0, 35, "away"),
    ("vanish", "spin", 10.0, 30, "collapse"), ("vanish", "bounce", 4.0, 30, "collapse"),
    ("rigidity", "projectile", 0.6, 25, ""), ("rigidity", "spin", 0.9, 30, ""), ("rigidity", "slide", 0.5, 20, "shear"),
    ("rigidity", "stack", 0.7, 35, "shear"),
    ("floating", "projectile", 1.0, 25, ""), ("floating", "projectile", 0.5, 30, ""), ("floating", "throw", 0.4, 20, ""),
    ("floating", "bounce", 1.0, 25, ""),
    ("energy", "slide", 0.4, 12, ""), ("energy", "bounce", 1.1, 0, "bounce"), ("energy", "spin", 0.5, 25, ""),
    ("energy", "push", 0.5, 10, ""),
    ("jitter", "stack", 0.3, 30, ""), ("jitter", "stack_on_table", 0.6, 40, "gauss"), ("jitter", "spin", 1.0, 45, ""),
    ("jitter", "wobble", 0.5, 20, ""),
]


def big_scene(n_particles: int = 100_000, T: int = 300, seed: int = 0) -> Rollout:
    """A large clean scene for throughput: stacks, sliders, spinners and a projectile, about
    ``n_particles`` particles over ``T`` frames, built from the analytic motions above."""
    b = _Builder(T)
    t = b.t
    n_box = (15, 15, 8)
    per = int(np.prod(n_box))
    nb = max(2, n_particles // per)
    loc = lattice(n_box)
    size = 2 * R * np.array(n_box)
    for i in range(nb):
        x0, y0 = (i % 4) * (size[0] + 0.2), (i // 4) * (size[1] + 0.2)
        kind = i % 4
        if kind == 0:  # resting
            c = np.tile([x0, y0, _rest_z(n_box[2])], (T, 1))
            b.rigid(f"rest{i}", loc, c)
        elif kind == 1:  # on top of the previous resting box
            c = np.tile([x0 - (size[0] + 0.2), y0, _rest_z(n_box[2], 2 * _rest_z(n_box[2]) - R + R)], (T, 1))
            c[:, 2] = _rest_z(n_box[2]) + 2 * (n_box[2] - 1) * R + 2 * R
            b.rigid(f"top{i}", loc, c)
        elif kind == 2:  # sliding, slowing down
            a = 0.4 * 9.81
            tc = np.minimum(t, 1.0 / a)
            c = np.stack([x0 + tc - 0.5 * a * tc ** 2, np.full(T, y0), np.full(T, _rest_z(n_box[2]))], 1)
            b.rigid(f"slide{i}", loc, c)
        else:  # spinning
            th = 2.0 * np.minimum(t, 1.0) - 1.0 * np.minimum(t, 1.0) ** 2
            b.rigid(f"spin{i}", loc, np.tile([x0, y0, _rest_z(n_box[2])], (T, 1)), _rot_z(th))
    return b.build(noise=0.02 * R, seed=seed)


#: The demo's showcase (:func:`showcase`): per category, (magnitude, frame as a share of the rollout, variant,
#: which free object: 0 the first, -1 the last). Magnitudes in :data:`GLITCHES`' units; floating 10: the object
#: rises at 9 g (on the ground, "no fall" would be a resting body), late, so that it stays in the world;
#: energy 0.5 m/s: worth a lift of 1.3 cm.
SHOWCASE: dict[str, tuple[float, float, str, int]] = {
    "penetration": (1.5, 0.15, "ground", -1), "teleport": (4.0, 0.2, "", -1), "vanish": (3, 0.3, "nan", -1),
    "rigidity": (0.8, 0.3, "", -1), "floating": (10.0, 0.8, "", -1), "energy": (0.5, 0.15, "", -1),
    "jitter": (0.6, 0.55, "", 0),
}


def showcase(ro: Rollout, categories=None, gap: float = 0.3, seed: int = 0) -> tuple[Rollout, list[Label]]:
    """One rollout that holds a copy of ``ro`` per category, side by side along y (``gap`` m between their
    boxes), each with one glitch of its category injected by :func:`inject` (:data:`SHOWCASE` sets its
    magnitude, frame and object); the other copies' objects stay as in ``ro``. Objects are named
    ``<category>/<name>``. Returns the rollout (positions ``(T, 7 N, 3)`` float32, m) and one
    :class:`Label` per copy, its object and location in the showcase's numbering and frame."""
    cats = list(categories or SHOWCASE)
    T, K = ro.num_frames, ro.scene.num_objects
    sc = ro.scene
    finite = ro.positions[np.isfinite(ro.positions).all(2)]
    width = float(np.ptp(finite[:, 1])) + gap if len(finite) else gap
    pos, labels = [], []
    for i, cat in enumerate(cats):
        mag, share, variant, which = SHOWCASE[cat]
        shift = np.array([0.0, i * width, 0.0])
        copy = Rollout(sc.replace(positions=(sc.positions + shift).astype(np.float32)),
                       (ro.positions + shift).astype(np.float32), ro.dt)
        frame = max(3, min(T - 4, int(round(share * (T - 1)))))
        glitched, lab = inject(copy, cat, mag, frame, obj=which, seed=seed + i, variant=variant)
        pos.append(glitched.positions)
        labels.append(Label(lab.category, lab.frame, lab.end_frame, lab.object + i * K,
                            None if lab.other is None else lab.other + i * K, lab.location, lab.magnitude, lab.note))
    def tile(a):
        return None if a is None else np.concatenate([np.asarray(a)] * len(cats))
    scene = ParticleScene(
        np.concatenate(pos, axis=1)[0], np.concatenate([sc.object_id + i * K for i in range(len(cats))]).astype(np.int32),
        tuple(sc.object_material) * len(cats), sc.radius, particle_type=tile(sc.particle_type), mass=tile(sc.mass),
        object_density=tile(sc.object_density),
        object_name=tuple(f"{c}/{n}" for c in cats for n in sc.object_name), gravity=sc.gravity, ground=sc.ground,
        object_friction=tile(sc.object_friction), object_restitution=tile(sc.object_restitution),
        object_stiffness=tile(sc.object_stiffness))
    return Rollout(scene, np.concatenate(pos, axis=1).astype(np.float32), ro.dt), labels
