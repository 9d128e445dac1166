"""An independent referee for the critic: rollouts simulated in MuJoCo, never seen by the critic.

The critic was developed on rollouts from Newton and from :mod:`critic.synth`; this module
builds its test data with a different rigid-body engine (MuJoCo, a bench/test extra only) and
its own scenes and glitches, so that the critic is judged on data it was not tuned on
(issue 11; see ``docs/ARCHITECTURE.md`` for the rollout file layout).

**Clean scenes.** A ground plane at z = 0 (z up, gravity (0, 0, -9.81) m/s^2) and rigid
bodies of five shapes (sphere, box, cylinder, capsule, convex hull mesh) that are thrown
(free flight with spin), roll, spin, bounce (contact restitution from ``solref``), slide with
friction, stack and rest, or are pushed by a kinematic tool (a mocap box driving at constant
speed that then stops). Every body is sampled as particles: a surface shell (``surface``,
spacing 2 r to 3.5 r, sparse) or a filled lattice of spacing 2 r (``volume``), all particle
centres at least ``r`` inside the body's surface. Particles ride rigidly on their body:
``x_i(t) = p(t) + R(t) @ local_i``. Each body's mass and inertia come from its particles:
mass ``M = density * volume`` split equally, inertia ``sum m_i (|q_i|^2 I - q_i q_i^T)``
about the particle centroid, which is the body frame's origin, so a correct critic sees exact
free flight and exact rigid-body energy. Frames are ``dt`` in [1/240, 1/30] s apart with MuJoCo
substeps of at most 1 ms (0.25 ms for bouncy contacts), RK4.

**Injected glitches.** :func:`inject` copies a clean rollout and adds one glitch of a category
(penetration, teleport, vanish, rigidity, floating, energy, jitter) just past the physical
bound, returns its :class:`Label`, and asserts that the injection disturbs nothing else
(e.g. that a penetration ramp does not jump, that a teleport lands clear of other bodies).
Energy glitches are re-simulated in MuJoCo from the kicked state, so the motion after the kick
is physical except for the energy it gained.

**Bad inputs.** :func:`write_bad_inputs` writes files ``worldline audit`` must reject with
exit code 2.

Everything is deterministic given the seed (``numpy.random.Generator``). Units: m, s, kg.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from particles import KINEMATIC, MATERIAL_TYPE, ParticleScene, Rollout
from particles.io import atomic_write, save_rollout
from particles.keypoints import kabsch

__all__ = ["GEN_VERSION", "G", "Body", "Tool", "SceneSpec", "Sim", "Label", "KINDS", "CATEGORIES",
           "make_scene", "simulate", "inject", "write_bad_inputs", "build_set", "body_energy"]

GEN_VERSION = 10  #: bump when the generated data changes (invalidates caches)
G = 9.81  #: |g|, m/s^2
GRAVITY = np.array([0.0, 0.0, -G])
CATEGORIES = ("penetration", "teleport", "vanish", "rigidity", "floating", "energy", "jitter")


# ------------------------------------------------------------------------------------ rotations


def quat_to_mat(q: np.ndarray) -> np.ndarray:
    """(..., 4) unit quaternion (w, x, y, z) -> (..., 3, 3) rotation matrix."""
    q = np.asarray(q, np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(q.shape[:-1] + (3, 3))
    out[..., 0, 0] = 1 - 2 * (y * y + z * z)
    out[..., 0, 1] = 2 * (x * y - w * z)
    out[..., 0, 2] = 2 * (x * z + w * y)
    out[..., 1, 0] = 2 * (x * y + w * z)
    out[..., 1, 1] = 1 - 2 * (x * x + z * z)
    out[..., 1, 2] = 2 * (y * z - w * x)
    out[..., 2, 0] = 2 * (x * z - w * y)
    out[..., 2, 1] = 2 * (y * z + w * x)
    out[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return out


def axis_angle_quat(axis, angle: float) -> np.ndarray:
    """(4,) quaternion (w, x, y, z) of a rotation by ``angle`` rad about ``axis``."""
    a = np.asarray(axis, np.float64)
    a = a / np.linalg.norm(a)
    return np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * a])


def random_quat(rng: np.random.Generator) -> np.ndarray:
    """(4,) uniformly random unit quaternion."""
    q = rng.normal(size=4)
    return q / np.linalg.norm(q)


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of (4,) quaternions (w, x, y, z)."""
    w1, x1, y1, z1 = a
    w2, x2, y2, z2 = b
    return np.array([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2])


# --------------------------------------------------------------------------- shapes and sampling


def _sdf(shape: str, size, p: np.ndarray, planes: Optional[np.ndarray] = None) -> np.ndarray:
    """Signed distance (m, negative inside) of points ``p (M, 3)`` to a shape in its own frame
    (MuJoCo's conventions: cylinder and capsule along z, ``size`` = radius and half length).
    For a convex mesh (``planes (F, 4)``, unit normals, ``n.p + d <= 0`` inside) it is exact inside."""
    if shape == "sphere":
        return np.linalg.norm(p, axis=1) - size[0]
    if shape == "box":
        q = np.abs(p) - np.asarray(size)
        return np.linalg.norm(np.maximum(q, 0), axis=1) + np.minimum(q.max(1), 0)
    if shape == "cylinder":
        d = np.stack([np.linalg.norm(p[:, :2], axis=1) - size[0], np.abs(p[:, 2]) - size[1]], 1)
        return np.minimum(d.max(1), 0) + np.linalg.norm(np.maximum(d, 0), axis=1)
    if shape == "capsule":
        c = np.zeros_like(p)
        c[:, 2] = np.clip(p[:, 2], -size[1], size[1])
        return np.linalg.norm(p - c, axis=1) - size[0]
    if shape == "mesh":
        return (p @ planes[:, :3].T + planes[:, 3]).max(1)
    raise ValueError(f"shape: unknown {shape!r}")


def _volume(shape: str, size, hull=None) -> float:
    """Volume of the shape, m^3."""
    if shape == "sphere":
        return 4 / 3 * math.pi * size[0] ** 3
    if shape == "box":
        return 8 * size[0] * size[1] * size[2]
    if shape == "cylinder":
        return math.pi * size[0] ** 2 * 2 * size[1]
    if shape == "capsule":
        return math.pi * size[0] ** 2 * 2 * size[1] + 4 / 3 * math.pi * size[0] ** 3
    return float(hull.volume)


def _extent(shape: str, size, verts=None) -> np.ndarray:
    """(3,) half extents of the shape's bounding box in its frame, m."""
    if shape == "sphere":
        return np.full(3, size[0])
    if shape == "box":
        return np.asarray(size, np.float64)
    if shape == "cylinder":
        return np.array([size[0], size[0], size[1]])
    if shape == "capsule":
        return np.array([size[0], size[0], size[1] + size[0]])
    return np.abs(verts).max(0)


def sample_shape(shape: str, size, r: float, fill: str, spacing: float, rng: np.random.Generator,
                 planes: Optional[np.ndarray] = None, verts: Optional[np.ndarray] = None,
                 align: bool = False) -> np.ndarray:
    """(n, 3) float64 particle centres (m, shape frame), each at least ``r`` inside the surface.

    ``fill="volume"``: a lattice of spacing ``2 r`` (randomly offset) on ``sdf <= -r``.
    ``fill="surface"``: a one-particle shell on the inset surface ``sdf = -r`` with neighbours
    about ``spacing`` apart (greedy Poisson-disk thinning of projected candidates)."""
    ext = _extent(shape, size, verts)
    if fill == "volume":
        h = 2 * r
        off = rng.uniform(-0.5, 0.5, 3) * h
        if align and shape == "box":
            off = np.mod(-np.asarray(size) + r, h)
        ax = [np.arange(-math.ceil(e / h) - 1, math.ceil(e / h) + 2) * h + o for e, o in zip(ext, off)]
        p = np.stack(np.meshgrid(*ax, indexing="ij"), -1).reshape(-1, 3)
        return p[_sdf(shape, size, p, planes) <= -r * (1 - 1e-9)]
    h = spacing / 3
    ax = [np.arange(-math.ceil(e / h) - 1, math.ceil(e / h) + 2) * h for e in ext]
    p = np.stack(np.meshgrid(*ax, indexing="ij"), -1).reshape(-1, 3) + rng.uniform(-0.5, 0.5, 3) * h
    p = p[np.abs(_sdf(shape, size, p, planes) + r) < h]
    eps = 1e-6 * max(r, 1e-4)
    for _ in range(4):  # project onto the level set sdf = -r along the numerical gradient
        f = _sdf(shape, size, p, planes) + r
        grad = np.stack([(_sdf(shape, size, p + eps * e, planes) - _sdf(shape, size, p - eps * e, planes)) / (2 * eps)
                         for e in np.eye(3)], 1)
        gn = np.maximum((grad ** 2).sum(1, keepdims=True), 1e-12)
        p = p - f[:, None] * grad / gn
    p = p[np.abs(_sdf(shape, size, p, planes) + r) < 1e-3 * r]
    from scipy.spatial import cKDTree

    tree = cKDTree(p)
    removed = np.zeros(len(p), bool)
    keep = []
    for i in rng.permutation(len(p)):
        if removed[i]:
            continue
        keep.append(i)
        removed[tree.query_ball_point(p[i], spacing * 0.999)] = True
    return p[np.sort(np.asarray(keep, np.int64))]


def _hull(rng: np.random.Generator, semi: np.ndarray, n: int = 14):
    """A random convex polytope: hull of ``n`` points on an ellipsoid of semi-axes ``semi`` (m)."""
    from scipy.spatial import ConvexHull

    d = rng.normal(size=(n, 3))
    pts = d / np.linalg.norm(d, axis=1, keepdims=True) * semi
    hull = ConvexHull(pts)
    verts = pts[hull.vertices]
    hull = ConvexHull(verts)
    return hull, verts


# ---------------------------------------------------------------------------------- scene spec


@dataclass
class Body:
    """One rigid body of a scene and how it starts. Positions are of the particle centroid."""

    name: str
    shape: str
    size: tuple
    fill: str
    spacing: float
    density: float
    pos: np.ndarray
    quat: np.ndarray
    vel: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """(3,) m/s, world frame, given after settling."""
    omega: np.ndarray = field(default_factory=lambda: np.zeros(3))
    """(3,) rad/s, world frame, given after settling."""
    pinned: bool = False
    """Held at its start pose while the resting bodies settle (bodies that start moving or in the air)."""
    friction: float = 0.6
    bouncy: bool = False
    local: np.ndarray = None  # (n, 3) particle offsets from the centroid, body frame
    geom_pos: np.ndarray = None  # (3,) shape frame origin in the body frame
    verts: Optional[np.ndarray] = None
    planes: Optional[np.ndarray] = None
    mass: float = 0.0
    inertia: np.ndarray = None  # (3, 3) about the centroid, body frame


@dataclass
class Tool:
    """A kinematic box (MuJoCo mocap body) that drives from ``start`` at ``speed`` (m/s) along
    ``direction`` for ``drive`` s after ``delay`` s, then stops."""

    body: Body
    direction: np.ndarray
    speed: float
    delay: float
    drive: float

    def position(self, t: float) -> np.ndarray:
        """(3,) centroid at time ``t`` s."""
        s = self.speed * min(max(t - self.delay, 0.0), self.drive)
        return self.body.pos + s * self.direction


@dataclass
class SceneSpec:
    """A clean scene: bodies, an optional tool, frame time ``dt`` s, ``frames``, particle radius ``r`` m."""

    name: str
    kind: str
    r: float
    dt: float
    frames: int
    bodies: list
    tool: Optional[Tool] = None
    settle: float = 0.4


def make_body(name: str, shape: str, r: float, fill: str, rng: np.random.Generator, scale: float = 1.0,
              size: Optional[tuple] = None, density: Optional[float] = None, min_particles: int = 50,
              align: bool = False) -> Body:
    """A body of ``shape`` sized in units of ``r`` (times ``scale``), sampled, with its mass properties
    set from its particles. Its ``pos``/``quat`` are zero/identity until the scene places it."""
    spacing = r * float(rng.uniform(2.0, 3.5)) if fill == "surface" else 2 * r
    for attempt in range(20):
        grow = 1.25 ** attempt
        planes = verts = hull = None
        if size is not None:
            sz = tuple(float(v) * grow for v in size)
            if align and shape == "box":  # a whole number of 2 r layers fits: layers r inside both faces
                sz = tuple(max(1, round(v / r)) * r for v in sz)
        elif shape == "sphere":
            sz = (r * scale * grow * rng.uniform(3.0, 8.0),)
        elif shape == "box":
            sz = tuple(r * scale * grow * rng.uniform(2.5, 7.0, 3))
            if align:
                sz = tuple(max(1, round(v / r)) * r for v in sz)
        elif shape == "cylinder":
            sz = (r * scale * grow * rng.uniform(3.0, 7.0), r * scale * grow * rng.uniform(2.0, 6.0))
        elif shape == "capsule":
            sz = (r * scale * grow * rng.uniform(2.5, 5.0), r * scale * grow * rng.uniform(2.0, 6.0))
        elif shape == "mesh":
            sz = ()
        else:
            raise ValueError(shape)
        if shape == "mesh":
            hull, verts = _hull(rng, r * scale * grow * rng.uniform(3.5, 7.5, 3))
            planes = hull.equations
        pts = sample_shape(shape, sz, r, fill, spacing, rng, planes, verts, align=align)
        if len(pts) >= min_particles:
            break
    else:
        raise RuntimeError(f"{name}: could not sample {min_particles} particles")
    dens = float(density if density is not None else rng.uniform(300.0, 3000.0))
    c = pts.mean(0)
    local = pts - c
    mass = dens * _volume(shape, sz, hull)
    m_i = mass / len(local)
    inertia = m_i * ((local ** 2).sum() * np.eye(3) - local.T @ local)
    return Body(name=name, shape=shape, size=sz, fill=fill, spacing=spacing, density=dens, pos=np.zeros(3),
                quat=np.array([1.0, 0, 0, 0]), local=local, geom_pos=-c, verts=verts, planes=planes, mass=mass,
                inertia=inertia)


def _support(body: Body, quat: np.ndarray, direction) -> float:
    """Support of the body's surface along the unit world ``direction`` (m), measured from its centroid, at
    orientation ``quat``: ``max over surface points x of (x - centroid) . direction``."""
    rot = quat_to_mat(quat)
    u = np.asarray(direction, np.float64)
    if body.shape == "mesh":
        return float((((body.verts + body.geom_pos) @ rot.T) @ u).max())
    d = rot.T @ u  # the direction in the shape frame
    s = body.size
    if body.shape == "sphere":
        sup = s[0]
    elif body.shape == "box":
        sup = float(np.abs(d) @ np.asarray(s))
    elif body.shape == "cylinder":
        sup = float(s[0] * np.linalg.norm(d[:2]) + s[1] * abs(d[2]))
    else:  # capsule
        sup = float(s[0] + s[1] * abs(d[2]))
    return float(sup + (rot @ body.geom_pos) @ u)


def lowest_offset(body: Body, quat: np.ndarray) -> float:
    """Height (m) of the centroid above the lowest point of the body's surface at orientation ``quat``."""
    return _support(body, quat, [0.0, 0.0, -1.0])


def place_on_ground(body: Body, x: float, y: float, quat: np.ndarray, z_extra: float = 0.0) -> None:
    """Put ``body`` at (x, y) with orientation ``quat`` so that its surface touches z = 0 (+ ``z_extra``)."""
    body.quat = np.asarray(quat, np.float64)
    body.pos = np.array([x, y, lowest_offset(body, body.quat) + z_extra])


def _height_up(body: Body) -> float:
    """Height (m) of the highest surface point of a placed body above its centroid."""
    return _support(body, body.quat, [0.0, 0.0, 1.0])


def body_radius(body: Body) -> float:
    """Largest particle distance from the centroid, m."""
    return float(np.linalg.norm(body.local, axis=1).max())


# ----------------------------------------------------------------------------------- simulation


def _fmt(v) -> str:
    return " ".join(f"{float(x):.9g}" for x in np.ravel(v))


def _geom_xml(body: Body, mesh_name: str, ts: float) -> str:
    attrs = f'pos="{_fmt(body.geom_pos)}" friction="{body.friction:.4g} 0.005 0.0001"'
    if body.bouncy:  # restitution about exp(-pi zeta) = 0.73
        attrs += f' solref="{20 * ts:.6g} 0.1" solimp="0.99 0.999 0.0001" solmix="100"'
    else:
        attrs += f' solref="{2 * ts:.6g} 1" solimp="0.99 0.999 0.0001"'
    if body.shape == "mesh":
        return f'<geom type="mesh" mesh="{mesh_name}" {attrs}/>'
    return f'<geom type="{body.shape}" size="{_fmt(body.size)}" {attrs}/>'


def model_xml(spec: SceneSpec) -> tuple[str, int]:
    """MuJoCo MJCF of the scene and the number of substeps per frame."""
    # substep: contact stiffness omega_n = 1 / (timeconst * dampratio) with omega_n * ts = 0.5 keeps RK4
    # stable and the impact overlap ~ 2 v ts below 0.1 r for impacts up to 4 m/s
    max_ts = float(np.clip(spec.r / 80.0, 2e-5, 5e-4))
    sub = max(1, math.ceil(spec.dt / max_ts - 1e-9))
    ts = spec.dt / sub
    assets, bodies = [], []
    for k, b in enumerate(spec.bodies):
        mname = f"mesh{k}"
        if b.shape == "mesh":
            assets.append(f'<mesh name="{mname}" vertex="{_fmt(b.verts)}"/>')
        inert = b.inertia
        full = f"{inert[0, 0]:.12g} {inert[1, 1]:.12g} {inert[2, 2]:.12g} {inert[0, 1]:.12g} {inert[0, 2]:.12g} {inert[1, 2]:.12g}"
        bodies.append(f'<body name="{b.name}" pos="{_fmt(b.pos)}" quat="{_fmt(b.quat)}"><freejoint/>'
                      f'<inertial pos="0 0 0" mass="{b.mass:.12g}" fullinertia="{full}"/>{_geom_xml(b, mname, ts)}</body>')
    if spec.tool is not None:
        tb = spec.tool.body
        bodies.append(f'<body name="tool" mocap="true" pos="{_fmt(tb.pos)}" quat="{_fmt(tb.quat)}">'
                      f'{_geom_xml(tb, "toolmesh", ts)}</body>')
    xml = (f'<mujoco model="{spec.name}"><option timestep="{ts:.12g}" gravity="0 0 {-G}" integrator="RK4">'
           f'<flag energy="enable"/></option>'
           f'<default><geom solref="{2 * ts:.6g} 1" solimp="0.99 0.999 0.0001" condim="3"/></default>'
           f'<asset>{"".join(assets)}</asset><worldbody>'
           f'<geom name="ground" type="plane" size="0 0 1" friction="0.6 0.005 0.0001"/>'
           f'{"".join(bodies)}</worldbody></mujoco>')
    return xml, sub


@dataclass
class Kick:
    """A change of body ``body``'s state right after frame ``frame`` is recorded: a velocity change (energy
    glitch) and/or a turn of its pose about its centroid (teleport glitch)."""

    frame: int
    body: int
    dv: np.ndarray  # (3,) m/s, world
    dw: np.ndarray  # (3,) rad/s, world
    turn: Optional[np.ndarray] = None  # (4,) quaternion (w, x, y, z) applied to the orientation, world frame


@dataclass
class Sim:
    """A simulated scene: poses and contacts per frame, and its rollout."""

    spec: SceneSpec
    pos: np.ndarray  # (T, K, 3) centroids, m (tool last when present)
    rot: np.ndarray  # (T, K, 3, 3)
    vel: np.ndarray  # (T, K, 3) m/s
    omega: np.ndarray  # (T, K, 3) rad/s, world
    contacts: list  # per frame t: set of (a, b) object pairs (a < b, -1 the ground) touching at any substep in (t-1, t]
    energy: np.ndarray  # (T,) MuJoCo kinetic + potential energy, J
    kick_gain: float = 0.0  # J, energy the kick (if any) added
    rollout: Rollout = None

    @property
    def objects(self) -> list:
        return self.spec.bodies + ([self.spec.tool.body] if self.spec.tool is not None else [])

    def touching(self, t: int, k: int) -> set:
        """Objects (and -1 for the ground) object ``k`` touches at frame ``t`` or since frame ``t - 1``."""
        return {b if a == k else a for a, b in self.contacts[t] if k in (a, b)}


def simulate(spec: SceneSpec, kick: Optional[Kick] = None) -> Sim:
    """Run the scene in MuJoCo: settle the resting bodies (pinned ones held), give the moving ones
    their velocities, then record ``spec.frames`` frames ``spec.dt`` apart."""
    import mujoco

    xml, sub = model_xml(spec)
    m = mujoco.MjModel.from_xml_string(xml)
    d = mujoco.MjData(m)
    nb = len(spec.bodies)
    bid = [mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, b.name) for b in spec.bodies]
    tool_bid = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_BODY, "tool") if spec.tool is not None else -1
    obj_of_body = {b: k for k, b in enumerate(bid)}
    if tool_bid >= 0:
        obj_of_body[tool_bid] = nb
    qadr = [m.jnt_qposadr[m.body_jntadr[b]] for b in bid]
    vadr = [m.jnt_dofadr[m.body_jntadr[b]] for b in bid]
    pinned = [k for k, b in enumerate(spec.bodies) if b.pinned]
    q0 = d.qpos.copy()
    # settle
    n_settle = int(round(spec.settle / m.opt.timestep))
    for _ in range(n_settle):
        mujoco.mj_step(m, d)
        for k in pinned:
            d.qpos[qadr[k]:qadr[k] + 7] = q0[qadr[k]:qadr[k] + 7]
            d.qvel[vadr[k]:vadr[k] + 6] = 0.0
    for k, b in enumerate(spec.bodies):
        if b.pinned:
            d.qvel[vadr[k]:vadr[k] + 6] = 0.0
        rot = quat_to_mat(d.qpos[qadr[k] + 3:qadr[k] + 7])
        if np.any(b.vel) or np.any(b.omega):
            d.qvel[vadr[k]:vadr[k] + 3] = b.vel
            d.qvel[vadr[k] + 3:vadr[k] + 6] = rot.T @ b.omega
    d.time = 0.0
    K = nb + (1 if tool_bid >= 0 else 0)
    T = spec.frames
    P = np.zeros((T, K, 3))
    Rm = np.zeros((T, K, 3, 3))
    V = np.zeros((T, K, 3))
    W = np.zeros((T, K, 3))
    E = np.zeros(T)
    contacts = []
    kick_gain = 0.0
    geom_obj = np.array([obj_of_body.get(int(b), -1) for b in m.geom_bodyid])

    def collect(into: set) -> None:
        if d.ncon:
            g1 = geom_obj[d.contact.geom1[:d.ncon]]
            g2 = geom_obj[d.contact.geom2[:d.ncon]]
            for a, b in zip(g1.tolist(), g2.tolist()):
                if a != b:
                    into.add((min(a, b), max(a, b)))

    pairs = set()
    for t in range(T):
        if tool_bid >= 0:
            d.mocap_pos[m.body_mocapid[tool_bid]] = spec.tool.position(t * spec.dt)
        mujoco.mj_forward(m, d)
        for k in range(nb):
            P[t, k] = d.qpos[qadr[k]:qadr[k] + 3]
            Rm[t, k] = quat_to_mat(d.qpos[qadr[k] + 3:qadr[k] + 7])
            V[t, k] = d.qvel[vadr[k]:vadr[k] + 3]
            W[t, k] = Rm[t, k] @ d.qvel[vadr[k] + 3:vadr[k] + 6]
        if tool_bid >= 0:
            P[t, nb] = d.mocap_pos[m.body_mocapid[tool_bid]]
            Rm[t, nb] = quat_to_mat(d.mocap_quat[m.body_mocapid[tool_bid]])
            moving = spec.tool.delay <= t * spec.dt < spec.tool.delay + spec.tool.drive
            V[t, nb] = spec.tool.speed * spec.tool.direction * moving
        E[t] = d.energy[0] + d.energy[1]
        collect(pairs)
        contacts.append(pairs)
        pairs = set()
        if kick is not None and t == kick.frame:
            k = kick.body
            d.qvel[vadr[k]:vadr[k] + 3] += kick.dv
            d.qvel[vadr[k] + 3:vadr[k] + 6] += Rm[t, k].T @ kick.dw
            if kick.turn is not None:  # the body frame turns; its spin (in body axes) turns with it
                q = quat_mul(kick.turn, d.qpos[qadr[k] + 3:qadr[k] + 7])
                d.qpos[qadr[k] + 3:qadr[k] + 7] = q / np.linalg.norm(q)
            mujoco.mj_forward(m, d)
            kick_gain = d.energy[0] + d.energy[1] - E[t]
        if t == T - 1:
            break
        for _ in range(sub):
            if tool_bid >= 0:
                d.mocap_pos[m.body_mocapid[tool_bid]] = spec.tool.position(d.time)
            mujoco.mj_step(m, d)
            collect(pairs)
    if not np.all(np.isfinite(P)):
        raise RuntimeError(f"{spec.name}: MuJoCo diverged")
    sim = Sim(spec, P, Rm, V, W, contacts, E, kick_gain=float(kick_gain))
    sim.rollout = to_rollout(sim)
    return sim


def to_rollout(sim: Sim, pos: Optional[np.ndarray] = None, rot: Optional[np.ndarray] = None) -> Rollout:
    """The particle rollout of poses ``pos (T, K, 3)``, ``rot (T, K, 3, 3)`` (default: the simulated ones)."""
    pos = sim.pos if pos is None else pos
    rot = sim.rot if rot is None else rot
    objs = sim.objects
    counts = [len(o.local) for o in objs]
    N = sum(counts)
    T = pos.shape[0]
    X = np.empty((T, N, 3), np.float32)
    start = 0
    for k, o in enumerate(objs):
        X[:, start:start + counts[k]] = np.einsum("tij,nj->tni", rot[:, k], o.local) + pos[:, k, None, :]
        start += counts[k]
    oid = np.repeat(np.arange(len(objs), dtype=np.int32), counts)
    mats = tuple("rigid" for _ in objs)
    ptype = np.full(N, MATERIAL_TYPE["rigid"], np.int32)
    mass = np.concatenate([np.full(c, o.mass / c) for o, c in zip(objs, counts)]).astype(np.float32)
    if sim.spec.tool is not None:
        ptype[oid == len(objs) - 1] = KINEMATIC
    scene = ParticleScene(positions=X[0], object_id=oid, object_material=mats, radius=sim.spec.r, particle_type=ptype,
                          mass=mass, object_density=np.array([o.density for o in objs], np.float32),
                          object_name=tuple(o.name for o in objs), gravity=GRAVITY.astype(np.float32), ground=0.0)
    return Rollout(scene, X, sim.spec.dt)


def object_slices(sim: Sim) -> list:
    """Per object, the slice of its particles in the rollout."""
    out, start = [], 0
    for o in sim.objects:
        out.append(slice(start, start + len(o.local)))
        start += len(o.local)
    return out


def body_energy(positions: np.ndarray, mass: np.ndarray, dt: float, g: float = G) -> np.ndarray:
    """(T-2,) float64 kinetic (central differences, from particles) + potential energy, J, of
    particles ``positions (T, n, 3)`` m with masses ``mass (n,)`` kg at frames 1..T-2. For a rigid
    body the particle kinetic energy is its translational plus rotational kinetic energy."""
    x = positions.astype(np.float64)
    v = (x[2:] - x[:-2]) / (2 * dt)
    ke = 0.5 * (mass[None, :] * (v ** 2).sum(-1)).sum(1)
    pe = g * (mass[None, :] * x[1:-1, :, 2]).sum(1)
    return ke + pe


# ----------------------------------------------------------------------------------------- scenes


SHAPES = ("sphere", "box", "cylinder", "capsule", "mesh")
KINDS = ("throw", "roll", "spin", "bounce", "slide", "stack", "push", "tumble", "mixed")


def _fill(rng) -> str:
    return "surface" if rng.random() < 0.5 else "volume"


def _radius(rng, lo=0.0015, hi=0.02) -> float:
    return float(math.exp(rng.uniform(math.log(lo), math.log(hi))))


def _dt(rng) -> float:
    return float(1.0 / rng.choice([30, 60, 90, 120, 240]))


def _frames(dt: float, seconds: float) -> int:
    return max(12, int(round(seconds / dt)) + 1)


def _lying_quat(shape: str, rng) -> np.ndarray:
    """An orientation resting stably on the ground (cylinder and capsule on their side or upright)."""
    yaw = axis_angle_quat([0, 0, 1], rng.uniform(0, 2 * math.pi))
    if shape in ("cylinder", "capsule") and rng.random() < 0.5:
        return quat_mul(yaw, axis_angle_quat([1, 0, 0], math.pi / 2))
    return yaw


def make_scene(kind: str, seed: int, index: int = 0, quick: bool = False, r: Optional[float] = None,
               dt: Optional[float] = None) -> SceneSpec:
    """A clean scene of ``kind`` (one of :data:`KINDS`) drawn from ``numpy.random.default_rng([seed, index, kind])``;
    ``r`` (m) and ``dt`` (s) override the drawn particle radius and frame time. ``quick`` shortens it."""
    rng = np.random.default_rng([seed, index, KINDS.index(kind)])
    r = _radius(rng) if r is None else float(r)
    dt = _dt(rng) if dt is None else float(dt)
    # half the scenes get bodies up to 4x larger (up to 64x more particles when filled)
    scale = float(math.exp(rng.uniform(0, math.log(4.0)))) if rng.random() < 0.5 else 1.0
    _mk = globals()["make_body"]

    def make_body(*a, **kw):  # the scene's bodies share its scale
        kw.setdefault("scale", scale)
        return _mk(*a, **kw)

    def _resting_body(name, rng, r, x, y, shapes=("box", "cylinder", "sphere", "mesh")) -> Body:
        """A body of one of ``shapes`` resting on the ground at (x, y) in a stable orientation."""
        shape = str(rng.choice(shapes))
        b = make_body(name, shape, r, _fill(rng), rng)
        q = _lying_quat(shape, rng) if shape != "cylinder" else axis_angle_quat([0, 0, 1], rng.uniform(0, 6.3))
        place_on_ground(b, x, y, q)
        return b
    secs = 1.2 if quick else 1.8
    name = f"{kind}_{index:03d}"
    bodies: list = []
    tool = None
    if kind in ("throw", "mixed"):
        shape = str(rng.choice(SHAPES))
        b = make_body("thrown", shape, r, _fill(rng), rng)
        ext = body_radius(b) + r
        h = ext + rng.uniform(0.3, 0.8)
        b.quat = random_quat(rng)
        b.pos = np.array([0.0, 0.0, h])
        b.vel = np.array([rng.uniform(0.3, 1.5), rng.uniform(-0.5, 0.5), rng.uniform(0.5, 2.0)])
        b.omega = rng.normal(size=3) * rng.uniform(4, 15)
        b.pinned = True
        b.bouncy = shape == "sphere" and rng.random() < 0.5  # (bouncy corners gain energy in MuJoCo: spheres only)
        bodies.append(b)
        if kind == "mixed":
            bodies.append(_resting_body("rest0", rng, r, -0.25 - 20 * r * scale, 0.1, ("box", "mesh")))
            rb = make_body("roller", str(rng.choice(["sphere", "cylinder"])), r, _fill(rng), rng)
            q = axis_angle_quat([1, 0, 0], math.pi / 2) if rb.shape == "cylinder" else np.array([1.0, 0, 0, 0])
            place_on_ground(rb, -0.2 - 20 * r * scale, -0.25 - 20 * r * scale, q)
            R0 = rb.size[0]
            v = rng.uniform(0.2, 0.8)
            rb.vel = np.array([v, 0.0, 0.0])
            rb.omega = np.array([0.0, v / R0, 0.0])
            rb.pinned = True
            bodies.append(rb)
    elif kind == "roll":
        shape = str(rng.choice(["sphere", "cylinder", "capsule"]))
        b = make_body("roller", shape, r, _fill(rng), rng)
        q = axis_angle_quat([1, 0, 0], math.pi / 2) if shape != "sphere" else random_quat(rng)
        place_on_ground(b, 0.0, 0.0, q)
        v = rng.uniform(0.2, 1.2)
        slip = rng.random() < 0.3
        b.vel = np.array([v, 0.0, 0.0])
        b.omega = np.array([0.0, (0.0 if slip else v / b.size[0]), 0.0])
        b.pinned = True
        bodies.append(b)
        if rng.random() < 0.5:
            bodies.append(_resting_body("rest0", rng, r, -0.2 - 15 * r * scale, 0.2, ("box", "mesh", "cylinder")))
    elif kind == "spin":
        # (an upright cylinder spun on its face tips onto its rim in MuJoCo's few-point face contact: not used)
        shape = str(rng.choice(["box", "mesh", "sphere"]))
        b = make_body("spinner", shape, r, _fill(rng), rng)
        place_on_ground(b, 0.0, 0.0, axis_angle_quat([0, 0, 1], rng.uniform(0, 6.3)) if shape != "mesh"
                        else _lying_quat(shape, rng))
        b.omega = np.array([0.0, 0.0, rng.uniform(3.0, 15.0)])
        b.pinned = True
        b.friction = float(rng.uniform(0.1, 0.5))
        bodies.append(b)
        if rng.random() < 0.5:  # and a spinning thrown body above
            t = make_body("spun", str(rng.choice(["box", "mesh", "capsule"])), r, _fill(rng), rng)
            t.quat = random_quat(rng)
            t.pos = np.array([0.3 + 20 * r * scale, 0.0, body_radius(t) + r + rng.uniform(0.4, 0.8)])
            t.vel = np.array([0.0, 0.0, rng.uniform(0.5, 1.5)])
            t.omega = rng.normal(size=3) * 15
            t.pinned = True
            bodies.append(t)
    elif kind == "bounce":
        shape = "sphere"  # MuJoCo's stiff, weakly damped contact gains energy at box, capsule and mesh corners
        b = make_body("ball", shape, r, _fill(rng), rng)
        b.quat = random_quat(rng) if shape != "sphere" else np.array([1.0, 0, 0, 0])
        b.pos = np.array([0.0, 0.0, body_radius(b) + r + rng.uniform(0.2, 0.6)])
        b.vel = np.array([rng.uniform(-0.3, 0.3), 0.0, 0.0])
        b.pinned = True
        b.bouncy = True
        bodies.append(b)
    elif kind == "slide":
        shape = str(rng.choice(["box", "cylinder", "mesh"]))
        b = make_body("slider", shape, r, _fill(rng), rng)
        place_on_ground(b, 0.0, 0.0, axis_angle_quat([0, 0, 1], rng.uniform(0, 6.3)))
        b.friction = float(rng.uniform(0.2, 0.6))
        b.vel = np.array([rng.uniform(0.3, 1.2), rng.uniform(-0.2, 0.2), 0.0])
        b.pinned = True
        bodies.append(b)
        bodies.append(_resting_body("rest0", rng, r, -0.15 - 15 * r * scale, -0.15, ("box", "mesh", "capsule")))
    elif kind == "stack":
        n = int(rng.integers(2, 4))
        z = 0.0
        for j in range(n):
            shape = str(rng.choice(["box", "box", "cylinder"]))
            b = make_body(f"block{j}", shape, r, _fill(rng), rng, align=rng.random() < 0.5)
            q = axis_angle_quat([0, 0, 1], rng.uniform(0, 6.3))
            place_on_ground(b, rng.uniform(-0.3, 0.3) * r, rng.uniform(-0.3, 0.3) * r, q, z_extra=z)
            z = _height_up(b) + b.pos[2] + 1e-5
            bodies.append(b)
        secs = 1.0 if quick else 1.5
    elif kind == "push":
        shape = str(rng.choice(["box", "cylinder", "mesh", "box"]))
        b = make_body("pushed", shape, r, _fill(rng), rng)
        place_on_ground(b, 0.0, 0.0, axis_angle_quat([0, 0, 1], rng.uniform(0, 6.3)) if shape != "cylinder"
                        else np.array([1.0, 0, 0, 0]))
        b.friction = float(rng.uniform(0.2, 0.5))
        bodies.append(b)
        hb = _height_up(b) + b.pos[2]
        ext = body_radius(b)
        tb = make_body("tool", "box", r, "volume", rng, size=(3 * r, 1.2 * ext + 2 * r, max(2 * r, 0.3 * hb)),
                       density=1000.0)
        tb.quat = np.array([1.0, 0, 0, 0])
        gap = rng.uniform(2, 6) * r
        x0 = -(ext + r + 3 * r + gap + 0.5 * r)
        # the box's front face at x0 + 2 size_x, its bottom 0.2 r above the ground
        tb.pos = np.array([x0 - tb.geom_pos[0], -tb.geom_pos[1], tb.size[2] + 0.2 * r - tb.geom_pos[2]])
        speed = rng.uniform(0.1, 0.4)
        drive = (gap + rng.uniform(0.1, 0.3)) / speed
        tool = Tool(tb, np.array([1.0, 0.0, 0.0]), speed, rng.uniform(0.05, 0.2), drive)
        secs = max(secs, tool.delay + drive + 0.6)
    elif kind == "tumble":
        n = int(rng.integers(1, 4))
        for j in range(n):
            b = make_body(f"tumbler{j}", str(rng.choice(["mesh", "mesh", "box", "capsule", "cylinder"])), r, _fill(rng), rng)
            b.quat = random_quat(rng)
            b.pos = np.array([j * (2.5 * body_radius(b) + 10 * r * scale), rng.uniform(-0.05, 0.05),
                              body_radius(b) + r + rng.uniform(0.05, 0.4)])
            b.omega = rng.normal(size=3) * 5
            b.pinned = True
            bodies.append(b)
    else:
        raise ValueError(f"kind: unknown {kind!r}; expected one of {', '.join(KINDS)}")
    return SceneSpec(name=name, kind=kind, r=r, dt=dt, frames=_frames(dt, secs), bodies=bodies, tool=tool)


def big_scene(seed: int, particles: int = 90_000, frames: int = 300) -> SceneSpec:
    """A throughput scene: filled boxes (about ``particles`` particles in all) falling and tumbling onto the ground."""
    rng = np.random.default_rng([seed, 99])
    r = 0.002
    n_bodies = 9
    per = particles / n_bodies
    side = per ** (1 / 3)
    bodies = []
    for j in range(n_bodies):
        half = side * r  # lattice of spacing 2r: side particles across 2*half... inset by r
        b = make_body(f"box{j}", "box", r, "volume", rng, size=(half + r, half + r, half + r) , density=800.0)
        b.quat = random_quat(rng)
        b.pos = np.array([(j % 3) * 0.2, (j // 3) * 0.2, body_radius(b) + r + 0.05 + 0.05 * j])
        b.omega = rng.normal(size=3) * 3
        b.pinned = True
        bodies.append(b)
    return SceneSpec(name="big", kind="big", r=r, dt=1 / 120, frames=frames, bodies=bodies)


# -------------------------------------------------------------------------------------- glitches


@dataclass
class Label:
    """Ground truth of one injected glitch."""

    category: str
    frame: int
    """First frame where the injected rollout differs from the clean one."""
    end_frame: int
    object: int
    other: Optional[int]
    location: tuple
    """(3,) m, where the glitch is (see :func:`inject` for the point of each category)."""
    magnitude: float
    unit: str
    variant: str
    scene: str


def _tree_gap(a: np.ndarray, b: np.ndarray) -> float:
    """Smallest distance (m) between point sets ``a (n, 3)`` and ``b (m, 3)``."""
    from scipy.spatial import cKDTree

    if len(a) == 0 or len(b) == 0:
        return math.inf
    ok_a = np.isfinite(a).all(1)
    ok_b = np.isfinite(b).all(1)
    if not ok_a.any() or not ok_b.any():
        return math.inf
    d, _ = cKDTree(b[ok_b]).query(a[ok_a], k=1)
    return float(d.min())


def _gaps(X: np.ndarray, sl: slice, frames, N: int) -> np.ndarray:
    """(len(frames),) smallest distance from object ``sl``'s particles to every other particle, m."""
    others = np.ones(N, bool)
    others[sl] = False
    return np.array([_tree_gap(X[t, sl], X[t, others]) for t in frames])


def _speed_ok_rest(sim: Sim, t: int, k: int) -> bool:
    """Body ``k`` is at rest at frame ``t``: slow (below 0.05 sqrt(g r)) and touching something."""
    r = sim.spec.r
    ext = body_radius(sim.objects[k])
    slow = np.linalg.norm(sim.vel[t, k]) + np.linalg.norm(sim.omega[t, k]) * ext < 0.05 * math.sqrt(G * r)
    return bool(slow and sim.touching(t, k))


def _resting_run(sim: Sim, k: int) -> np.ndarray:
    """(T,) bool: body ``k`` rests at frame t and stays at rest through the end."""
    T = sim.spec.frames
    rest = np.array([_speed_ok_rest(sim, t, k) for t in range(T)])
    out = np.zeros(T, bool)
    run = True
    for t in range(T - 1, -1, -1):
        run = run and rest[t]
        out[t] = run
    return out


def _tool_near(sim: Sim, k: int, t0: int, t1: int) -> bool:
    """Body ``k`` touches the tool in frames [t0, t1)."""
    if sim.spec.tool is None:
        return False
    tk = len(sim.spec.bodies)
    return any(tk in sim.touching(t, k) for t in range(max(t0, 0), min(t1, sim.spec.frames)))


def _touches_objects(sim: Sim, k: int, t0: int, t1: int) -> bool:
    """Body ``k`` touches another object (not the ground) in frames [t0, t1)."""
    return any(sim.touching(t, k) - {-1} for t in range(max(t0, 0), min(t1, sim.spec.frames)))


def _first_diff(a: np.ndarray, b: np.ndarray) -> int:
    """First frame where positions ``a`` and ``b`` (T, N, 3) differ (NaN differs from a number), or -1."""
    diff = ~((a == b) | (np.isnan(a) & np.isnan(b)))
    rows = np.flatnonzero(diff.reshape(len(a), -1).any(1))
    return int(rows[0]) if len(rows) else -1


def _others_unchanged(clean: np.ndarray, X: np.ndarray, sl: slice) -> bool:
    mask = np.ones(clean.shape[1], bool)
    mask[sl] = False
    return bool(np.array_equal(clean[:, mask], X[:, mask]))


def _rigid_ok(X: np.ndarray, sl: slice, local: np.ndarray, tol: float) -> bool:
    """Pairwise distances of the object's particles match its rigid shape in every frame (to ``tol`` m)."""
    pick = np.linspace(0, len(local) - 1, min(len(local), 40)).astype(int)
    ref = np.linalg.norm(local[pick, None] - local[None, pick], axis=-1)
    x = X[:, sl][:, pick].astype(np.float64)
    d = np.linalg.norm(x[:, :, None] - x[:, None, :], axis=-1)
    return bool(np.nanmax(np.abs(d - ref[None])) <= tol)


def _pose_rollout(sim: Sim, k: int, pos_k: np.ndarray, rot_k: np.ndarray) -> np.ndarray:
    """Positions (T, N, 3) float32 of the clean rollout with object ``k`` moved to poses ``pos_k``, ``rot_k``."""
    X = sim.rollout.positions.copy()
    sl = object_slices(sim)[k]
    X[:, sl] = (np.einsum("tij,nj->tni", rot_k, sim.objects[k].local) + pos_k[:, None, :]).astype(np.float32)
    return X


def _keep_unlinked(sim: Sim, kicked: Sim, k: int, f: int) -> np.ndarray:
    """Positions (T, N, 3) of the re-simulated ``kicked`` run in which the objects that no chain of contacts after
    frame ``f`` links to object ``k`` keep their clean motion. (MuJoCo solves all contacts together, so solver
    tolerance couples bodies that never touch the kicked one by ~1e-5 m, which a tumbling body can amplify; their
    clean motion is as physical.)"""
    reach = {k}
    links = {p for t in range(f, sim.spec.frames) for p in kicked.contacts[t] if -1 not in p}
    grew = True
    while grew:
        new = {b for a, b in links if a in reach} | {a for a, b in links if b in reach}
        grew = not new <= reach
        reach |= new
    X = kicked.rollout.positions.copy()
    for j, slj in enumerate(object_slices(sim)):
        if j not in reach:
            X[:, slj] = sim.rollout.positions[:, slj]
    return X


def _inject_penetration(sim: Sim, rng, variant: Optional[str] = None) -> Optional[tuple]:
    spec, r, T = sim.spec, sim.spec.r, sim.spec.frames
    clean = sim.rollout.positions
    for k in rng.permutation(len(spec.bodies)):
        rest = _resting_run(sim, int(k))
        depth = float(rng.uniform(1.0, 2.0)) * r
        n = max(3, math.ceil(depth / (0.35 * r)))
        starts = np.flatnonzero(rest[: max(T - n - 8, 0)])
        starts = starts[starts >= 3]
        starts = [f for f in starts if not _tool_near(sim, int(k), f - 3, T)]
        if not starts:
            continue
        f = int(rng.choice(starts))
        below = sorted(sim.touching(f, int(k)) - {-1}, key=lambda j: sim.pos[f, j, 2])
        below = [j for j in below if sim.pos[f, j, 2] < sim.pos[f, k, 2]]
        if variant == "object" and not below:
            continue
        other = int(below[0]) if below and (variant == "object" or (variant is None and rng.random() < 0.8)) else None
        if other is None and -1 not in sim.touching(f, int(k)):
            continue
        sl = object_slices(sim)[k]
        from scipy.spatial import cKDTree

        def overlap(X, t):
            if other is None:
                return r - X[t, sl, 2]
            dd, _ = cKDTree(X[t, object_slices(sim)[other]]).query(X[t, sl], k=1)
            return 2 * r - dd

        # sink so that the particles overlap by ``depth``; only where the particles touch already (a gap of at
        # most 0.25 r), so that the file first differs where the overlap starts
        gap0 = -float(overlap(clean, f).max())
        if gap0 > 0.25 * r:
            continue
        total = depth + max(0.0, gap0)
        for _ in range(6):
            n = max(3, math.ceil(total / (0.35 * r)))
            if f + n + 8 > T:
                break
            shift = np.zeros((T, 3))
            shift[:, 2] = -total * np.clip((np.arange(T) - f + 1) / n, 0, 1)
            X = _pose_rollout(sim, int(k), sim.pos[:, k] + shift, sim.rot[:, k])
            full = f + n - 1
            over = overlap(X, full)
            if over.max() >= 0.95 * depth:
                break
            total += depth - over.max()
        else:
            continue
        if f + n + 8 > T or over.max() < 0.95 * depth:
            continue
        hit = over > 0.5 * depth
        step = np.abs(np.diff(X[:, sl], axis=0) - np.diff(clean[:, sl], axis=0)).max()
        assert step <= 0.36 * r + 1e-6, "penetration: the ramp jumps"
        loc = X[full, sl][hit].mean(0)
        return X, Label("penetration", f, T - 1, int(k), other, tuple(map(float, loc)), depth / r, "overlap, r",
                        "object" if other is not None else "ground", spec.name)
    return None


def _horizontal(rng) -> np.ndarray:
    a = rng.uniform(0, 2 * math.pi)
    return np.array([math.cos(a), math.sin(a), 0.0])


def _inject_teleport(sim: Sim, rng, variant: Optional[str] = None) -> Optional[tuple]:
    spec, r, T, dt = sim.spec, sim.spec.r, sim.spec.frames, sim.spec.dt
    N = sim.rollout.scene.num_particles
    for _ in range(30):
        k = int(rng.integers(len(spec.bodies)))
        f = int(rng.integers(3, T - 4))
        if variant == "turn" and sim.objects[k].shape != "sphere":  # a frame in flight
            air = [t for t in range(3, T - 4) if not any(sim.touching(u, k) for u in range(t - 1, t + 4))]
            if not air:
                continue
            f = int(rng.choice(air))
        if _touches_objects(sim, k, f - 2, T) or any(k in sim.touching(t, j) for j in range(len(sim.objects))
                                                     for t in range(f - 2, T) if j != k):
            continue
        body = sim.objects[k]
        sl = object_slices(sim)[k]
        if variant == "turn" and body.shape != "sphere":
            # a body in flight turns about its centroid by more than its spin allows (rim jump 2-4 x
            # max(|w| R dt, r)); the rest is re-simulated in MuJoCo from the turned pose
            if any(sim.touching(t, k) for t in range(f - 1, min(f + 4, T))):
                continue
            R = body_radius(body)
            allow = np.linalg.norm(sim.omega[f, k]) * R * dt
            jump = float(rng.uniform(2.0, 4.0)) * max(allow, r)
            if sim.rollout.positions[f, sl, 2].min() < 3 * r + jump:
                continue
            far = sim.rot[f, k] @ body.local[np.argmax(np.linalg.norm(body.local, axis=1))]
            axis = np.cross(far, rng.normal(size=3))  # perpendicular to the farthest particle: it moves jump
            kicked = simulate(spec, Kick(f, k, np.zeros(3), np.zeros(3), axis_angle_quat(axis, jump / R)))
            X = _keep_unlinked(sim, kicked, k, f)
            assert np.array_equal(X[: f + 1], sim.rollout.positions[: f + 1]), "teleport: re-simulation changed the past"
            step = np.linalg.norm(X[f + 1, sl] - sim.rollout.positions[f + 1, sl], axis=1).max()
            assert step > 0.9 * jump, "teleport: the turn did not move the rim by the jump"
            loc = X[f + 1, sl].mean(0)
            return X, Label("teleport", f + 1, f + 1, k, None, tuple(map(float, loc)), jump / r, "rim jump, r",
                            "turn_flight", spec.name)
        if body.shape == "sphere" and (variant == "turn" or (variant is None and rng.random() < 0.5)):
            # a sphere turns about its centre by more than its spin allows: its contact is unchanged, but its
            # particles jump along the surface by 2-4 x max(|w| R dt, r)
            R = body_radius(body)
            allow = np.linalg.norm(sim.omega[f, k]) * R * dt
            jump = float(rng.uniform(2.0, 4.0)) * max(allow, r)
            axis = rng.normal(size=3)
            turn = quat_to_mat(axis_angle_quat(axis, jump / R))
            rot = sim.rot[:, k].copy()
            rot[f:] = turn[None] @ rot[f:]
            X = _pose_rollout(sim, k, sim.pos[:, k], rot)
            if X[f:, sl, 2].min() < 0.75 * r:
                continue
            loc = X[f, sl].mean(0)
            return X, Label("teleport", f, f, k, None, tuple(map(float, loc)), jump / r, "rim jump, r", "turn",
                            spec.name)
        allow = np.linalg.norm(sim.vel[f, k]) * dt + 0.5 * G * dt * dt
        jump = float(rng.uniform(2.0, 4.0)) * max(allow, r)
        shift = np.zeros((T, 3))
        shift[f:] = jump * _horizontal(rng)
        X = _pose_rollout(sim, k, sim.pos[:, k] + shift, sim.rot[:, k])
        if _gaps(X, sl, range(f, T, max(1, (T - f) // 20)), N).min() < 2.2 * r:
            continue
        loc = X[f, sl].mean(0)
        return X, Label("teleport", f, f, k, None, tuple(map(float, loc)), jump / r, "jump, r",
                        "shift_moving" if allow > r else "shift_slow", spec.name)
    return None


def _supports(sim: Sim, k: int, t0: int) -> bool:
    """Body ``k`` holds up another object (touches one whose centroid is higher) after frame ``t0``."""
    for t in range(max(t0, 0), sim.spec.frames):
        for j in sim.touching(t, k) - {-1}:
            if sim.pos[t, j, 2] > sim.pos[t, k, 2]:
                return True
    return False


def _inject_vanish(sim: Sim, rng, variant: Optional[str] = None) -> Optional[tuple]:
    spec, T = sim.spec, sim.spec.frames
    for _ in range(30):
        k = int(rng.integers(len(spec.bodies)))
        f = int(rng.integers(2, T - 3))
        if _supports(sim, k, f - 1):
            continue
        sl = object_slices(sim)[k]
        n = len(sim.objects[k].local)
        kind = variant or str(rng.choice(["nan_subset", "nan_all", "leave", "dropped"]))
        X = sim.rollout.positions.copy()
        if kind == "nan_all":
            idx = np.arange(n)
        else:
            idx = np.sort(rng.choice(n, size=max(1, int(n * rng.uniform(0.05, 0.5))), replace=False))
        p = np.arange(sl.start, sl.stop)[idx]
        if kind == "leave":
            X[f:, p] = X[f:, p] + np.float32(rng.choice([-1, 1]) * 1e4)
        elif kind == "dropped":
            end = min(T - 1, f + int(rng.integers(3, 10)))
            X[f:end + 1, p] = np.nan
        else:
            X[f:, p] = np.nan
        loc = sim.rollout.positions[f - 1, p].mean(0)
        return X, Label("vanish", f, T - 1 if kind != "dropped" else end, k, None, tuple(map(float, loc)),
                        len(p) / n, "share of the object's particles", kind, spec.name)
    return None


def _deformation(local: np.ndarray, kind: str, amp: float, rng) -> np.ndarray:
    """(n, 3) offsets of a pure deformation of the body (no rigid part: its best rigid fit onto ``local`` is the
    identity) whose largest particle displacement is ``amp`` m."""
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    v = np.cross(u, rng.normal(size=3))
    v /= np.linalg.norm(v)
    s = local @ u
    L = max(np.abs(s).max(), 1e-9)
    if kind == "stretch":
        disp = (s / L)[:, None] * u
    elif kind == "shear":
        disp = ((local @ v) / L)[:, None] * u + (s / L)[:, None] * v
    else:  # bend
        disp = ((s / L) ** 2)[:, None] * v
    new = local + disp
    for _ in range(3):
        R, t = kabsch(new, local)
        new = new @ R.T + t
        new = new - new.mean(0)
        d = np.linalg.norm(new - local, axis=1).max()
        new = local + (new - local) * (amp / d)
    R, t = kabsch(local, new)
    assert np.allclose(R, np.eye(3), atol=1e-3 * max(1.0, amp / L)) and np.allclose(t, 0, atol=1e-6), "deformation has a rigid part"
    return new


def _inject_rigidity(sim: Sim, rng, variant: Optional[str] = None) -> Optional[tuple]:
    spec, r, T = sim.spec, sim.spec.r, sim.spec.frames
    N = sim.rollout.scene.num_particles
    clean = sim.rollout.positions
    for _ in range(40):
        k = int(rng.integers(len(spec.bodies)))
        f = int(rng.integers(3, T - 4))
        body = sim.objects[k]
        amp = float(rng.uniform(1.0, 3.0)) * r
        kind = variant or str(rng.choice(["stretch", "shear", "bend"]))
        new = _deformation(body.local, kind, amp, rng)
        n_ramp = int(rng.integers(1, 3))
        sl = object_slices(sim)[k]
        X = clean.copy()
        for t in range(f, T):
            w = min(1.0, (t - f + 1) / n_ramp)
            q = body.local + w * (new - body.local)
            X[t, sl] = (q @ sim.rot[t, k].T + sim.pos[t, k]).astype(np.float32)
        frames = range(f, T, max(1, (T - f) // 25))
        # no new ground overlap: its lowest particle stays within 0.25 r of the clean one's and above 0.75 r
        low_new, low_old = X[f:, sl, 2].min(1), clean[f:, sl, 2].min(1)
        if np.any(low_new < np.minimum(low_old - 0.25 * r, 0.75 * r)):
            continue
        g_new, g_old = _gaps(X, sl, frames, N), _gaps(clean, sl, frames, N)
        if np.any(g_new < np.minimum(g_old, 2 * r) - 0.25 * r):
            continue
        d = np.linalg.norm(X[f + n_ramp - 1, sl] - clean[f + n_ramp - 1, sl], axis=1)
        loc = X[f + n_ramp - 1, sl][d > 0.5 * d.max()].mean(0)
        return X, Label("rigidity", f, T - 1, k, None, tuple(map(float, loc)), amp / r, "largest displacement, r",
                        kind, spec.name)
    return None


def _inject_floating(sim: Sim, rng, variant: Optional[str] = None) -> Optional[tuple]:
    spec, r, T, dt = sim.spec, sim.spec.r, sim.spec.frames, sim.spec.dt
    N = sim.rollout.scene.num_particles
    clean = sim.rollout.positions
    hold = math.ceil(float(rng.uniform(0.3, 0.5)) / dt)
    for _ in range(40):
        k = int(rng.integers(len(spec.bodies)))
        sl = object_slices(sim)[k]
        cand = [t for t in range(2, T - hold - 1) if not sim.touching(t, k) and not sim.touching(t + 1, k)
                and clean[t, sl, 2].min() > 3 * r and not _touches_objects(sim, k, t, T)]
        if not cand:
            continue
        f = int(rng.choice(cand))
        kind = variant or str(rng.choice(["hover", "glide"]))
        pos = sim.pos[:, k].copy()
        rot = sim.rot[:, k].copy()
        if kind == "hover":
            pos[f + 1:] = pos[f]
            rot[f + 1:] = rot[f]
        else:
            vh = sim.vel[f, k] * np.array([1.0, 1.0, 0.0])
            w = sim.omega[f, k]
            for t in range(f + 1, T):
                tau = (t - f) * dt
                pos[t] = pos[f] + vh * tau
                ang = np.linalg.norm(w) * tau
                q = axis_angle_quat(w, ang) if ang > 0 else np.array([1.0, 0, 0, 0])
                rot[t] = quat_to_mat(q) @ rot[f]
        X = _pose_rollout(sim, k, pos, rot)
        if X[f + 1:, sl, 2].min() < 2 * r:
            continue
        if _gaps(X, sl, range(f + 1, T, max(1, (T - f) // 20)), N).min() < 2.2 * r:
            continue
        loc = X[f + 1, sl].mean(0)
        return X, Label("floating", f + 1, T - 1, k, None, tuple(map(float, loc)), (T - 1 - f) * dt, "time held, s",
                        kind, spec.name)
    return None


def _inject_energy(sim: Sim, rng, variant: Optional[str] = None) -> Optional[tuple]:
    spec, r, T = sim.spec, sim.spec.r, sim.spec.frames
    for _ in range(40):
        k = int(rng.integers(len(spec.bodies)))
        body = sim.objects[k]
        kind = variant or str(rng.choice(["slide", "spin", "hop", "kick"]))
        h = float(rng.uniform(1.5, 3.0)) * r
        if kind == "kick":
            cand = [t for t in range(2, T - 8) if not any(sim.touching(s, k) for s in range(t, t + 4))]
        else:
            rest = np.array([_speed_ok_rest(sim, t, k) for t in range(T)])
            cand = [t for t in range(3, T - 8) if rest[t - 2:t + 1].all()]  # resting on the ground or on another body
        cand = [t for t in cand if not _tool_near(sim, k, t - 5, t + 10)]
        if kind != "kick":  # a body that holds others up shares its kick with them: not a clean measure
            cand = [t for t in cand if not _supports(sim, k, t - 2)]
        if not cand:
            continue
        f = int(rng.choice(cand))
        dv, dw = np.zeros(3), np.zeros(3)
        speed = math.sqrt(2 * G * h)
        if kind == "slide":
            dv = speed * _horizontal(rng)
        elif kind == "hop":
            dv = np.array([0.0, 0.0, speed])
        elif kind == "kick":
            v = sim.vel[f, k]
            side = np.cross(v, [0.0, 0.0, 1.0])
            side = side / np.linalg.norm(side) if np.linalg.norm(side) > 1e-9 else _horizontal(rng)
            dv = speed * side * rng.choice([-1, 1])
        else:
            zb = sim.rot[f, k].T @ np.array([0.0, 0.0, 1.0])
            izz = float(zb @ body.inertia @ zb)
            dw = np.array([0.0, 0.0, math.sqrt(2 * body.mass * G * h / izz)]) * rng.choice([-1, 1])
        kicked = simulate(spec, Kick(f, k, dv, dw))
        X = kicked.rollout.positions
        gain = kicked.kick_gain
        assert gain > 0.7 * body.mass * G * h, "energy: the kick did not add the intended energy"
        assert np.array_equal(X[: f + 1], sim.rollout.positions[: f + 1]), "energy: re-simulation changed the past"
        X = _keep_unlinked(sim, kicked, k, f)
        loc = X[f + 1, object_slices(sim)[k]].mean(0)
        return X, Label("energy", f + 1, f + 1, k, None, tuple(map(float, loc)), gain / (body.mass * G * r),
                        "gain as a lift, r", kind, spec.name)
    return None


def _inject_jitter(sim: Sim, rng, variant: Optional[str] = None) -> Optional[tuple]:
    spec, r, T, dt = sim.spec, sim.spec.r, sim.spec.frames, sim.spec.dt
    N = sim.rollout.scene.num_particles
    clean = sim.rollout.positions
    W = max(6, math.ceil(float(rng.uniform(0.2, 0.4)) / dt))
    for _ in range(40):
        k = int(rng.integers(len(spec.bodies)))
        rest = np.array([_speed_ok_rest(sim, t, k) for t in range(T)])
        cand = [t for t in range(3, T - W - 1) if rest[t:t + W].all() and not _tool_near(sim, k, t - 3, t + W + 3)]
        if not cand:
            continue
        f = int(rng.choice(cand))
        amp = float(rng.uniform(0.3, 1.5)) * r
        off = np.zeros((T, 3))
        for t in range(f, f + W):
            off[t] = amp * _horizontal(rng)
        X = _pose_rollout(sim, k, sim.pos[:, k] + off, sim.rot[:, k])
        sl = object_slices(sim)[k]
        frames = range(f, f + W)
        if np.any(_gaps(X, sl, frames, N) < np.minimum(_gaps(clean, sl, frames, N), 2 * r) - 0.25 * r):
            continue
        loc = clean[f, sl].mean(0)
        return X, Label("jitter", f, f + W - 1, k, None, tuple(map(float, loc)), amp / r, "amplitude, r", "shake",
                        spec.name)
    return None


INJECT: dict = {"penetration": _inject_penetration, "teleport": _inject_teleport, "vanish": _inject_vanish,
                "rigidity": _inject_rigidity, "floating": _inject_floating, "energy": _inject_energy,
                "jitter": _inject_jitter}


#: The variants of each category (see :func:`inject`).
VARIANTS: dict = {"penetration": ("ground", "object"), "teleport": ("shift", "turn"),
                  "vanish": ("nan_subset", "nan_all", "leave", "dropped"), "rigidity": ("stretch", "shear", "bend"),
                  "floating": ("hover", "glide"), "energy": ("slide", "spin", "hop", "kick"), "jitter": ("shake",)}


def inject(sim: Sim, category: str, rng: np.random.Generator, variant: Optional[str] = None) -> Optional[tuple]:
    """A copy of ``sim``'s clean rollout with one glitch of ``category`` and its :class:`Label`, or None when
    the scene offers no place for it.

    Glitches (``r`` the particle radius, ``dt`` the frame time; the label frame is the first frame that
    differs from the clean rollout; locations in m):

    * penetration: a body at rest sinks into the ground or into the body below it by 1-2 r, ramped at
      most 0.35 r per frame, until the end. Location: its particles overlapping by more than half the depth.
    * teleport: a body that touches no other object jumps sideways by 2-4 times ``max(|v| dt + g dt^2 / 2, r)``
      and keeps its motion from there, or turns about its centre so that its particles jump 2-4 times
      ``max(|w| R dt, r)`` (a sphere anywhere, keeping its motion; another body in flight, re-simulated in
      MuJoCo from the turned pose). Location: its centroid after the jump.
    * vanish: part (5-50 %) or all of a body's particles become NaN, leave the world (1e4 m away), or are
      dropped (NaN) for a few frames. Location: centroid of those particles in the frame before.
    * rigidity: a stretch, symmetric shear or bend (no rigid part) of largest displacement 1-3 r, over 1-2
      frames, while the body's pose stays on its trajectory. Location: its particles displaced more than half
      the largest displacement.
    * floating: a body in the air stops falling: it hovers at its pose, or glides on horizontally with its spin
      and no gravity, for the rest of the file (at least 0.3 s). Location: its centroid.
    * energy: a body gets a velocity kick worth a lift of 1.5-3 r (slide or spin-up from rest, a hop from the
      ground, a sideways kick in flight) and the scene is re-simulated in MuJoCo from there. Location: its centroid.
    * jitter: a resting body is shaken sideways by 0.3-1.5 r with random per-frame offsets for 0.2-0.4 s.
      Location: its centroid.
    """
    out = INJECT[category](sim, rng, variant)
    if out is None:
        return None
    X, label = out
    clean = sim.rollout.positions
    k = label.object
    sl = object_slices(sim)[k]
    first = _first_diff(clean, X)
    assert first == label.frame, f"{category}: label frame {label.frame} but the rollout first differs at {first}"
    if category != "energy" and label.variant != "turn_flight":  # (re-simulated: those it touches may change)
        assert _others_unchanged(clean, X, sl), f"{category}: other objects changed"
    if category not in ("vanish",):
        assert np.isfinite(X).all(), f"{category}: NaN outside a vanish glitch"
    if category not in ("rigidity", "vanish"):
        assert _rigid_ok(X, sl, sim.objects[k].local, 1e-3 * sim.spec.r + 1e-6), f"{category}: body deformed"
    ro = Rollout(sim.rollout.scene, X, sim.rollout.dt)
    return ro, label


# ------------------------------------------------------------------------------------ bad inputs


def _arrays(ro: Rollout) -> dict:
    """The fields of a rollout file, as :func:`particles.io.save_rollout` writes them."""
    from particles.io import FORMAT_VERSION, ROLLOUT_FORMAT

    sc = ro.scene
    return {"format": np.array(ROLLOUT_FORMAT), "format_version": np.int32(FORMAT_VERSION),
            "positions": ro.positions.astype(np.float32), "dt": np.float64(ro.dt),
            "particle_type": sc.particle_type, "object_id": sc.object_id,
            "object_material": np.array(sc.object_material, dtype=np.str_),
            "object_name": np.array(sc.object_name, dtype=np.str_), "object_density": sc.object_density,
            "mass": sc.mass, "radius": np.float64(sc.radius), "gravity": sc.gravity, "ground": np.float64(0.0)}


def write_bad_inputs(folder, ro: Rollout) -> list:
    """Write files ``worldline audit`` must reject (exit 2, one line naming the file and field), made from
    the valid rollout ``ro``. Returns ``[(path, what is wrong), ...]``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base = _arrays(ro)
    T, N = ro.positions.shape[:2]
    cases = {
        "no_dt": ({k: v for k, v in base.items() if k != "dt"}, "no dt field"),
        "nan_only": ({**base, "positions": np.full((T, N, 3), np.nan, np.float32)}, "every position is NaN"),
        "positions_2d": ({**base, "positions": ro.positions[..., :2].copy()}, "positions of shape (T, N, 2)"),
        "positions_flat": ({**base, "positions": ro.positions.reshape(T, -1)}, "positions of shape (T, 3N)"),
        "object_id_short": ({**base, "object_id": base["object_id"][:-1]}, "object_id one entry short"),
        "mass_shape": ({**base, "mass": base["mass"][:-1]}, "mass one entry short"),
        "zero_frames": ({**base, "positions": np.zeros((0, N, 3), np.float32)}, "no frames"),
        "negative_dt": ({**base, "dt": np.float64(-ro.dt)}, "negative dt"),
        "nan_dt": ({**base, "dt": np.float64(np.nan)}, "dt is NaN"),
        "zero_radius": ({**base, "radius": np.float64(0.0)}, "radius 0"),
        "unknown_material": ({**base, "object_material": np.array(["jelly"] * len(base["object_material"]))},
                             "an unknown material"),
        "int_positions": ({**base, "positions": np.round(ro.positions * 1000).astype(np.int32)}, "integer positions"),
    }
    out = []
    for name, (arrays, why) in cases.items():
        path = folder / f"{name}.npz"
        atomic_write(path, lambda f, a=arrays: np.savez(f, **a))
        out.append((str(path), why))
    good = folder / "_valid.npz"
    atomic_write(good, lambda f: np.savez(f, **base))
    raw = good.read_bytes()
    (folder / "truncated.npz").write_bytes(raw[: len(raw) // 2])
    out.append((str(folder / "truncated.npz"), "truncated archive"))
    (folder / "empty.npz").write_bytes(b"")
    out.append((str(folder / "empty.npz"), "empty file"))
    good.unlink()
    obj = np.empty(2, object)
    obj[0], obj[1] = {"a": 1}, [1]
    atomic_write(folder / "pickled.npy", lambda f: np.save(f, obj, allow_pickle=True))
    out.append((str(folder / "pickled.npy"), "pickled object array"))
    return out


# ------------------------------------------------------------------------------------ the whole set


def _rewrite_with_current_writer(path: Path) -> None:
    """Rewrite a cached rollout whose positions an older ``save_rollout`` deflated (the current one stores
    them uncompressed), so that the throughput figure reads the file the current writer makes."""
    import zipfile

    from particles import load_rollout

    with zipfile.ZipFile(path) as zf:
        if zf.getinfo("positions.npy").compress_type == zipfile.ZIP_STORED:
            return
    save_rollout(path, load_rollout(path))


def _write_json(path: Path, doc) -> None:
    text = json.dumps(doc, indent=1) + "\n"
    atomic_write(path, lambda f: f.write(text), mode="w")


def build_set(out, seed: int = 0, quick: bool = False, per_kind: Optional[int] = None,
              per_category: Optional[int] = None, big: bool = True, progress: Optional[Callable] = None) -> dict:
    """Generate the referee set under ``out`` (cached: reused when ``out/manifest.json`` matches).

    Writes ``clean/*.npz`` (``per_kind`` scenes of each of :data:`KINDS` and the :func:`near_miss_scenes`), ``injected/*.npz`` (``per_category``
    copies per category, each a clean scene with one glitch; labels in the manifest), ``bad/*`` (bad inputs) and,
    with ``big``, ``big.npz`` (90k particles x 300 frames, for throughput). Returns the manifest::

        {"version", "seed", "quick", "clean": [{"file", "scene", "kind", "r", "dt", "frames", "particles"}],
         "injected": [{"file", "label": {Label fields}}], "bad": [{"file", "why"}], "big": file or None}
    """
    out = Path(out)
    per_kind = per_kind if per_kind is not None else (2 if quick else 6)
    per_category = per_category if per_category is not None else (6 if quick else 24)
    key = {"version": GEN_VERSION, "seed": seed, "quick": quick, "per_kind": per_kind, "per_category": per_category,
           "big": big}
    mpath = out / "manifest.json"
    if mpath.exists():
        try:
            doc = json.loads(mpath.read_text())
            # a set made with the big file serves a request without it
            if all(doc.get(k) == v for k, v in key.items() if k != "big") and (doc.get("big") or not big):
                if doc.get("big"):
                    _rewrite_with_current_writer(Path(doc["big"]))
                return doc
        except (OSError, ValueError):
            pass
    say = progress or (lambda msg: None)
    sims = []
    clean = []
    rejected = []
    for kind in KINDS:
        for i in range(per_kind):
            for attempt in range(6):  # a scene MuJoCo does not keep physical is replaced by another draw
                spec = make_scene(kind, seed, i + 1000 * attempt, quick=quick)
                spec.name = f"{kind}_{i:03d}"
                sim = simulate(spec)
                try:
                    _check_clean(sim)
                    break
                except AssertionError as exc:
                    rejected.append(str(exc))
                    say(f"rejected: {exc}")
            else:
                raise RuntimeError(f"{kind}_{i:03d}: no physical draw in 6 tries")
            path = out / "clean" / f"{spec.name}.npz"
            save_rollout(path, sim.rollout)
            sims.append(sim)
            clean.append({"file": str(path), "scene": spec.name, "kind": kind, "r": spec.r, "dt": spec.dt,
                          "frames": spec.frames, "particles": sim.rollout.scene.num_particles})
            say(f"clean {spec.name}: {sim.rollout.scene.num_particles} particles x {spec.frames} frames")
    for spec in near_miss_scenes(seed):  # the near misses issue 11 names
        sim = simulate(spec)
        _check_clean(sim)
        path = out / "clean" / f"{spec.name}.npz"
        save_rollout(path, sim.rollout)
        sims.append(sim)
        clean.append({"file": str(path), "scene": spec.name, "kind": "near", "r": spec.r, "dt": spec.dt,
                      "frames": spec.frames, "particles": sim.rollout.scene.num_particles})
    rng = np.random.default_rng([seed, 7])
    injected = []
    for cat in CATEGORIES:
        n, tries = 0, 0
        order = list(rng.permutation(len(sims)))
        while n < per_category and tries < 20 * per_category:
            sim = sims[order[tries % len(order)]]
            tries += 1
            # cycle through the variants; fall back to any after a round of scenes without a place for it
            want = VARIANTS[cat][n % len(VARIANTS[cat])]
            res = inject(sim, cat, rng, want if tries % (2 * len(sims)) < len(sims) else None)
            if res is None:
                continue
            ro, label = res
            path = out / "injected" / f"{cat}_{n:02d}_{sim.spec.name}.npz"
            save_rollout(path, ro)
            injected.append({"file": str(path), "label": asdict(label)})
            n += 1
        say(f"injected {cat}: {n}")
    bad = [{"file": p, "why": w} for p, w in write_bad_inputs(out / "bad", sims[0].rollout)]
    big_file = None
    if big:
        sim = simulate(big_scene(seed))
        _check_clean(sim)
        big_file = str(out / "big.npz")
        save_rollout(big_file, sim.rollout)
        say(f"big: {sim.rollout.scene.num_particles} particles x {sim.spec.frames} frames")
    doc = {**key, "clean": clean, "injected": injected, "bad": bad, "big": big_file, "rejected": rejected}
    _write_json(mpath, doc)
    return doc


def _check_clean(sim: Sim) -> None:
    """Assert a clean rollout is physical: finite, rigid, MuJoCo energy never gains (no tool moving), no body
    sinks into the ground by more than 0.25 r."""
    ro = sim.rollout
    r = sim.spec.r
    assert np.isfinite(ro.positions).all(), f"{sim.spec.name}: NaN"
    # (frames inside an impact miss the contact's elastic energy, so compare with the start)
    gain = sim.energy - sim.energy[0]
    mtot = sum(b.mass for b in sim.spec.bodies)
    if sim.spec.tool is None:
        assert gain.max() <= 0.05 * mtot * G * r, f"{sim.spec.name}: MuJoCo energy gained {gain.max():.3g} J"
    sls = object_slices(sim)
    for k, sl in enumerate(sls):
        assert ro.positions[:, sl, 2].min() >= 0.75 * r, f"{sim.spec.name}: object {k} sinks into the ground"
        for t in range(0, sim.spec.frames, max(1, sim.spec.frames // 30)):
            gap = _tree_gap(ro.positions[t, sl], np.delete(ro.positions[t], np.arange(sl.start, sl.stop), 0))
            assert gap >= 1.5 * r, f"{sim.spec.name}: object {k} overlaps another at frame {t} (gap {gap / r:.2f} r)"


def near_miss_scenes(seed: int = 0, dt: float = 1 / 60, seconds: float = 1.0) -> list:
    """The near misses issue 11 names, as small fast scenes (r 5-8 mm, ``dt`` s, ``seconds`` long): a rolling
    sphere sampled as a sparse shell, a spinning box thrown high (free flight for the first ~0.5 s), a resting
    stack of three boxes (the middle one a surface shell), a tool that pushes a box and stops, and a bouncing ball."""
    rng = np.random.default_rng([seed, 4242])
    T = _frames(dt, seconds)
    out = []
    r = 0.006
    ball = make_body("shell_ball", "sphere", r, "surface", np.random.default_rng([seed, 1]), size=(0.05,))
    place_on_ground(ball, 0.0, 0.0, random_quat(rng))
    ball.vel = np.array([0.8, 0.0, 0.0])
    ball.omega = np.array([0.0, 0.8 / 0.05, 0.0])
    ball.pinned = True
    out.append(SceneSpec("near_rolling_shell", "near", r, dt, T, [ball]))
    r = 0.008
    box = make_body("spun_box", "box", r, "volume", rng, size=(0.06, 0.035, 0.02))
    box.quat = random_quat(rng)
    box.pos = np.array([0.0, 0.0, 0.9])
    box.vel = np.array([0.5, 0.2, 1.5])
    box.omega = np.array([6.0, 25.0, -10.0])
    box.pinned = True
    out.append(SceneSpec("near_spinning_throw", "near", r, dt, T, [box]))
    r = 0.008
    bodies, z = [], 0.0
    for j, half in enumerate([(0.056, 0.048, 0.024), (0.04, 0.04, 0.024), (0.032, 0.032, 0.024)]):
        b = make_body(f"stack{j}", "box", r, "volume" if j != 1 else "surface", rng, size=half, align=True)
        place_on_ground(b, 0.002 * j, -0.001 * j, axis_angle_quat([0, 0, 1], 0.3 * j), z_extra=z)
        z = _height_up(b) + b.pos[2] + 1e-5
        bodies.append(b)
    out.append(SceneSpec("near_resting_stack", "near", r, dt, T, bodies))
    r = 0.006
    crate = make_body("crate", "box", r, "volume", rng, size=(0.04, 0.04, 0.03))
    place_on_ground(crate, 0.0, 0.0, np.array([1.0, 0, 0, 0]))
    crate.friction = 0.4
    tb = make_body("tool", "box", r, "volume", rng, size=(0.02, 0.06, 0.022), density=1000.0)
    x0 = -(crate.size[0] + tb.size[0] + 0.01)  # 1 cm gap between the tool's front face and the crate
    tb.pos = np.array([x0 - tb.geom_pos[0], -tb.geom_pos[1], tb.size[2] + 0.2 * r - tb.geom_pos[2]])
    tool = Tool(tb, np.array([1.0, 0.0, 0.0]), 0.25, 0.1, 0.4)
    out.append(SceneSpec("near_push_stop", "near", r, dt, T, [crate], tool))
    r = 0.007
    ball = make_body("ball", "sphere", r, "volume", rng, size=(0.04,))
    ball.pos = np.array([0.0, 0.0, 0.35])
    ball.vel = np.array([0.2, 0.0, 0.0])
    ball.pinned = True
    ball.bouncy = True
    out.append(SceneSpec("near_bounce", "near", r, dt, T, [ball]))
    return out
