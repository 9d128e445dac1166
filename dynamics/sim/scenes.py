"""Simulation setups: a particle scene with its shapes, materials and tool motion.

A :class:`SimSetup` is everything :class:`~dynamics.sim.NewtonSimulator` and a
rollout need. Setups come from a scene file (:func:`setup_from_scene_file`, via
``particles.scene_file`` and ``particles.lift``) or from the seeded random
generator the dataset command uses (:func:`random_setup`), which fills
primitives with particles on a lattice of spacing ``2 r`` with centres at least
``r`` inside the surface, as docs/ARCHITECTURE.md asks of every lift.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from particles import KINEMATIC, Action, ParticleScene, ValidationError, material_particle_type

from .materials import Material, default_material
from .simulator import NewtonSimulator, ObjectShape, SimConfig

__all__ = ["SimSetup", "lattice_box", "lattice_cylinder", "lattice_sphere", "lattice_capsule", "lattice_mesh",
           "push_action", "random_setup", "SCENE_KINDS", "HELDOUT_KINDS", "boxes_scene", "sand_scene", "random_pusher",
           "shapes_scene", "push_paths_scene", "heldout_shapes_scene", "varied_path",
           "DEFORMABLE_KINDS", "elastic_scene", "plastic_scene", "cloth_scene", "rope_scene", "heldout_materials_scene",
           "rope_box_scene",
           "build_setup", "PrimitiveSpec", "setup_from_lifted", "setup_from_scene_file"]


@dataclass(frozen=True, eq=False)
class SimSetup:
    """A scene ready to simulate."""

    scene: ParticleScene
    """The particle scene (the tool is an object whose particles are KINEMATIC)."""
    shapes: tuple[Optional[ObjectShape], ...]
    """(K,) collision shape per object, or None (a box around the particles)."""
    materials: tuple[Optional[Material], ...]
    """(K,) material parameters per object, or None for the defaults."""
    action: Optional[Action]
    """The tool's motion, or None when the scene has no tool."""
    tool_parts: Optional[tuple] = None
    """Rigid parts of the tool (gripper fingers), see :class:`NewtonSimulator`; None: found automatically."""
    tool_max_force: Optional[float] = None
    """N: the tool drive's force limit per part (a scene file's ``[tool] max_force``); None: the config's."""
    tool_max_torque: Optional[float] = None
    """N m: the tool drive's torque limit per part (``[tool] max_torque``); None: the config's."""

    def simulator(self, config: SimConfig = SimConfig()) -> NewtonSimulator:
        """A :class:`NewtonSimulator` of this setup; the setup's tool limits, when set, replace the config's."""
        import dataclasses

        limits = {k: float(v) for k, v in (("tool_max_force", self.tool_max_force),
                                           ("tool_max_torque", self.tool_max_torque)) if v is not None}
        if limits:
            config = dataclasses.replace(config, **limits)
        return NewtonSimulator(self.scene, self.shapes, self.materials,
                               None if self.action is None else self.action.indices, config, self.tool_parts)


# --------------------------------------------------------------------------- lattices


def _lattice(half: np.ndarray, r: float) -> np.ndarray:
    """(n, 3) float64 lattice points of spacing 2 r filling [-half + r, half - r], centred."""
    axes = []
    for h in half:
        count = max(1, int(np.floor((2 * h - 2 * r) / (2 * r) + 1e-6)) + 1)
        axes.append((np.arange(count) - (count - 1) / 2) * 2 * r)
    return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)


def _rotate(points: np.ndarray, quat_xyzw) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_quat(np.asarray(quat_xyzw, np.float64)).apply(points)


def lattice_box(half_extents, r: float, position=(0, 0, 0), rotation=(0, 0, 0, 1)) -> np.ndarray:
    """(n, 3) float32, m: lattice particles of spacing ``2 r`` inside a box of ``half_extents`` (m)."""
    pts = _lattice(np.asarray(half_extents, np.float64), r)
    return (_rotate(pts, rotation) + np.asarray(position, np.float64)).astype(np.float32)


def _curved_fill(kind: str, size, r: float, seed: int, shell: bool = True) -> np.ndarray:
    """(n, 3) float64, m: particles of a curved primitive in its local frame. ``shell`` (rigid bodies): as
    ``particles.lift`` fills one (a shell of surface samples moved ``r`` inward along the normal, lattice
    points of spacing ``2 r`` inside it), so its outermost centres lie ``r`` inside the surface in every
    direction and a round body resting on the ground has its lowest centres ``r`` above it at any
    orientation (a plain lattice left them up to 2 r higher). Not ``shell`` (deformables, whose
    tetrahedra and springs join lattice neighbours): the ``2 r`` lattice points at least ``r`` inside.
    ``size`` is :data:`particles.scene_file.SHAPE_SIZES`' (full lengths)."""
    import trimesh

    from particles.lift import fill_mesh, primitive_depth

    if not shell:
        if kind == "sphere":
            half = np.full(3, size[0])
        else:
            half = np.array([size[0], size[0], size[1] / 2 + (size[0] if kind == "capsule" else 0.0)])
        pts = _lattice(half, r)
        return pts[primitive_depth(kind, size, pts) >= r - 1e-9]
    if kind == "sphere":
        mesh = trimesh.creation.icosphere(subdivisions=3, radius=size[0])
    elif kind == "cylinder":
        mesh = trimesh.creation.cylinder(radius=size[0], height=size[1], sections=32)
    else:
        mesh = trimesh.creation.capsule(height=size[1], radius=size[0], count=[32, 16])
    return fill_mesh(mesh, 2 * r, seed, depth=lambda p: primitive_depth(kind, size, p))


def lattice_sphere(radius: float, r: float, position=(0, 0, 0), seed: int = 0, shell: bool = True) -> np.ndarray:
    """(n, 3) float32, m: particles of radius ``r`` filling a sphere, centres ``r`` inside its surface
    (a shell) and on a ``2 r`` lattice within (:func:`_curved_fill`; ``seed`` places the shell samples;
    ``shell=False``: the lattice alone)."""
    pts = _curved_fill("sphere", (radius,), r, seed, shell)
    return (pts + np.asarray(position, np.float64)).astype(np.float32)


def lattice_cylinder(radius: float, half_height: float, r: float, position=(0, 0, 0), rotation=(0, 0, 0, 1),
                     seed: int = 0, shell: bool = True) -> np.ndarray:
    """(n, 3) float32, m: particles filling a cylinder whose axis is its local z, centres ``r`` inside its
    surface (:func:`_curved_fill`)."""
    pts = _curved_fill("cylinder", (radius, 2 * half_height), r, seed, shell)
    return (_rotate(pts, rotation) + np.asarray(position, np.float64)).astype(np.float32)


def lattice_capsule(radius: float, half_height: float, r: float, position=(0, 0, 0), rotation=(0, 0, 0, 1),
                    seed: int = 0, shell: bool = True) -> np.ndarray:
    """(n, 3) float32, m: particles filling a capsule (axis its local z, ``half_height`` excluding the caps),
    centres ``r`` inside its surface (:func:`_curved_fill`)."""
    pts = _curved_fill("capsule", (radius, 2 * half_height), r, seed, shell)
    return (_rotate(pts, rotation) + np.asarray(position, np.float64)).astype(np.float32)


# --------------------------------------------------------------------------- building setups


@dataclass(frozen=True, eq=False)
class PrimitiveSpec:
    """One primitive object of a generated scene."""

    name: str
    material: str
    shape: ObjectShape
    density: Optional[float] = None
    """kg/m^3; None for the material's default."""
    friction: Optional[float] = None
    """Coulomb friction; None for the material's default."""
    young_modulus: Optional[float] = None
    """Pa; None for the material's default."""
    poisson: Optional[float] = None
    """Poisson ratio; None for the material's default."""
    yield_stress: Optional[float] = None
    """Pa, MPM yield stress (plastic); None for the material's default."""
    bending_stiffness: Optional[float] = None
    """N m, cloth bending stiffness on VBD; None for the material's default."""


def build_setup(objects: Sequence[PrimitiveSpec], r: float, tool: Optional[ObjectShape] = None,
                tool_path: Optional[np.ndarray] = None, ground: Optional[float] = 0.0,
                gravity=(0.0, 0.0, -9.81)) -> SimSetup:
    """A :class:`SimSetup` from primitive objects filled with particles of radius ``r`` (m).

    ``tool`` is a box (the pusher) appended as object ``tool`` with KINEMATIC particles;
    ``tool_path`` (T, 3) m is the position of its centre per frame (frame 0 = its rest
    position), giving the action (a pure translation).
    """
    positions, oid, ptype, mass, dens, names, mats, shapes, materials = [], [], [], [], [], [], [], [], []
    fric, rest, stiff = [], [], []
    for k, spec in enumerate(objects):
        sh = spec.shape
        rigid = spec.material in ("rigid", "static")  # deformables keep the plain lattice their elements join
        if sh.kind == "box":
            pts = lattice_box(sh.size, r, sh.position, sh.rotation)
        elif sh.kind == "sphere":
            pts = lattice_sphere(sh.size[0], r, sh.position, seed=k, shell=rigid)
        elif sh.kind == "cylinder":
            pts = lattice_cylinder(sh.size[0], sh.size[1], r, sh.position, sh.rotation, seed=k, shell=rigid)
        elif sh.kind == "capsule":
            pts = lattice_capsule(sh.size[0], sh.size[1], r, sh.position, sh.rotation, seed=k, shell=rigid)
        elif sh.kind == "mesh" and sh.vertices is not None:
            pts = lattice_mesh(sh, r, seed=k)
        else:
            raise ValidationError("shape", f"cannot fill a {sh.kind} with particles here; lift it with particles.lift")
        mat = default_material(spec.material)
        if spec.density is not None:
            mat = mat.with_(density=float(spec.density))
        if spec.friction is not None:
            mat = mat.with_(friction=float(spec.friction))
        for field in ("young_modulus", "poisson", "yield_stress", "bending_stiffness"):
            if getattr(spec, field) is not None:
                mat = mat.with_(**{field: float(getattr(spec, field))})
        positions.append(pts)
        oid.append(np.full(len(pts), k, np.int32))
        code = KINEMATIC if spec.material == "static" else material_particle_type(spec.material)
        ptype.append(np.full(len(pts), code, np.int32))
        mass.append(np.full(len(pts), mat.density * (2 * r) ** 3, np.float32))
        dens.append(mat.density)
        fric.append(mat.friction)
        rest.append(mat.restitution)
        stiff.append(mat.young_modulus)
        names.append(spec.name)
        mats.append(spec.material)
        shapes.append(sh)
        materials.append(mat)
    action = None
    if tool is not None:
        k = len(objects)
        pts = lattice_box(tool.size, r, tool.position, tool.rotation)
        start = sum(len(p) for p in positions)
        positions.append(pts)
        oid.append(np.full(len(pts), k, np.int32))
        ptype.append(np.full(len(pts), KINEMATIC, np.int32))
        mass.append(np.full(len(pts), 1000.0 * (2 * r) ** 3, np.float32))
        dens.append(1000.0)
        tool_mat = default_material("rigid")
        fric.append(tool_mat.friction)
        rest.append(tool_mat.restitution)
        stiff.append(tool_mat.young_modulus)
        names.append("tool")
        mats.append("rigid")
        shapes.append(tool)
        materials.append(None)
        if tool_path is not None:
            path = np.asarray(tool_path, np.float64)
            traj = pts[None].astype(np.float64) + (path - path[0])[:, None, :]
            action = Action(np.arange(start, start + len(pts)), traj.astype(np.float32))
    scene = ParticleScene(np.concatenate(positions), np.concatenate(oid), tuple(mats), r,
                          particle_type=np.concatenate(ptype), mass=np.concatenate(mass),
                          object_density=np.asarray(dens, np.float32), object_name=tuple(names),
                          gravity=np.asarray(gravity, np.float32), ground=ground,
                          object_friction=np.asarray(fric, np.float32), object_restitution=np.asarray(rest, np.float32),
                          object_stiffness=np.asarray(stiff, np.float32))
    return SimSetup(scene, tuple(shapes), tuple(materials), action)


def push_action(start, end, frames: int, hold: int = 0) -> np.ndarray:
    """(frames, 3) float64, m: a tool centre path moving from ``start`` to ``end`` at constant speed
    over ``frames - hold`` frames, then holding still for ``hold`` frames."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    moving = max(frames - hold, 2)
    s = np.clip(np.arange(frames) / (moving - 1), 0.0, 1.0)
    return start + s[:, None] * (end - start)


# --------------------------------------------------------------------------- random scenes


def _sand_objects(rng: np.random.Generator, r: float) -> tuple[list[PrimitiveSpec], float]:
    """A granular pile (5-7 x 5-7 x 3-5 spacings) at the origin, and its footprint radius, m."""
    half = np.array([rng.integers(5, 8), rng.integers(5, 8), rng.integers(3, 6)]) * r
    centre = np.array([0.0, 0.0, half[2]])
    spec = PrimitiveSpec("sand", "granular", ObjectShape("box", tuple(half), position=centre),
                         friction=float(rng.uniform(0.5, 0.8)))
    return [spec], float(np.linalg.norm(half[:2]))


def _box_objects(rng: np.random.Generator, r: float, direction: np.ndarray,
                 heading: float) -> tuple[list[PrimitiveSpec], float]:
    """One to three rigid boxes in a row along ``direction`` (sometimes stacked), and the first one's
    footprint radius, m (the tool starts behind it)."""
    side = np.array([-direction[1], direction[0], 0.0])
    objects: list[PrimitiveSpec] = []
    count = int(rng.integers(1, 4))
    along = 0.0
    for i in range(count):
        half = np.array([rng.integers(3, 6), rng.integers(3, 6), rng.integers(3, 5)]) * r  # 3-5 particles a side
        reach = float(np.linalg.norm(half[:2]))  # footprint radius whatever the yaw
        if i > 0 and rng.random() < 0.5:  # stack on the previous box
            prev = objects[-1].shape
            centre = prev.position + np.array([0, 0, prev.size[2] + half[2] + 0.002])
            along = max(along, float(prev.position @ direction) + reach + rng.uniform(0.01, 0.05))
        else:
            offset = along + (reach if i else 0.0)
            centre = direction * offset + side * rng.uniform(-0.03, 0.03)
            centre[2] = half[2]
            along = offset + reach + rng.uniform(0.01, 0.05)
        yaw = heading + rng.uniform(-0.4, 0.4)
        quat = (0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2))
        objects.append(PrimitiveSpec(f"box{i}", "rigid", ObjectShape("box", tuple(half), position=centre, rotation=quat),
                                     density=float(rng.uniform(400, 1200)), friction=float(rng.uniform(0.3, 0.7))))
    return objects, float(np.linalg.norm(objects[0].shape.size[:2]))


def random_pusher(rng: np.random.Generator, frames: int, r: float, dt: float, direction: np.ndarray,
                  heading: float, extent: float) -> tuple[ObjectShape, np.ndarray]:
    """A pusher box (1 x 3-5 x 2-4 spacings, half sizes) starting ``extent`` + 1-4 cm behind the origin
    and sweeping along ``direction`` at 0.1-0.3 m/s, then holding still for the last 1/5-1/3 of the frames.

    Returns:
        The tool's shape and its centre path (frames, 3) float64, m.
    """
    side = np.array([-direction[1], direction[0], 0.0])
    tool_half = np.array([r, rng.integers(3, 6) * r, rng.integers(2, 5) * r])
    yaw_tool = (0.0, 0.0, np.sin(heading / 2), np.cos(heading / 2))
    start = -direction * (extent + tool_half[0] + rng.uniform(0.01, 0.04)) + side * rng.uniform(-0.02, 0.02)
    start[2] = tool_half[2] + 0.002
    speed = rng.uniform(0.1, 0.3)
    hold = int(rng.integers(frames // 5, max(frames // 3, frames // 5 + 1)))  # (5 frames drew from an empty range)
    travel = speed * (frames - hold) * dt
    path = push_action(start, start + direction * travel, frames, hold)
    return ObjectShape("box", tuple(tool_half), position=start, rotation=yaw_tool), path


def _heading(rng: np.random.Generator) -> tuple[float, np.ndarray]:
    heading = rng.uniform(0, 2 * np.pi)
    return heading, np.array([np.cos(heading), np.sin(heading), 0.0])


def boxes_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``boxes``: one to three rigid boxes (sometimes stacked) swept by a pusher."""
    heading, direction = _heading(rng)
    objects, extent = _box_objects(rng, r, direction, heading)
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, extent)
    return build_setup(objects, r, tool=tool, tool_path=path)


def sand_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``sand``: a granular pile swept by a pusher."""
    heading, direction = _heading(rng)
    objects, extent = _sand_objects(rng, r)
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, extent)
    return build_setup(objects, r, tool=tool, tool_path=path)


# --------------------------------------------------------------------------- varied rigid shapes and tool motions
# Scene kinds ``shapes``, ``push_paths`` and the held-out ``heldout_shapes`` (issue 12): rigid bodies other than
# boxes, and pusher paths like those of the scripted policies and the planner (re-aimed, off-centre, sideways,
# stop-and-go, pulled back, holding in contact), so the object model sees what evaluation asks of it.

#: Training ranges of the varied kinds: density kg/m^3 and Coulomb friction. ``heldout_shapes`` draws outside them.
SHAPES_DENSITY = (200.0, 2000.0)
SHAPES_FRICTION = (0.2, 0.9)
#: m/s: pusher speeds of the varied paths (the scripted policies push at 0.12 m/s).
PATH_SPEED = (0.06, 0.3)
#: Frames of the moving average that smooths a varied path's velocity: its acceleration is at most the
#: largest velocity change between segments over ``PATH_SMOOTH dt`` (a full reversal at 1.3 x 0.3 m/s:
#: 0.66 m/s in 0.15 s, 4.4 m/s^2 at 60 frames/s; a start or stop at 0.12 m/s: 0.8 m/s^2).
PATH_SMOOTH = 9


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([0.0, 0.0, np.sin(yaw / 2), np.cos(yaw / 2)])


def _quat_mul(a, b) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return (Rotation.from_quat(a) * Rotation.from_quat(b)).as_quat()


def _primitive_extent(shape: ObjectShape) -> tuple[float, float, bool]:
    """(footprint radius m, half height m, flat top) of an upright-or-lying primitive resting on its base."""
    if shape.kind == "box":
        return float(np.linalg.norm(shape.size[:2])), float(shape.size[2]), True
    if shape.kind == "sphere":
        return float(shape.size[0]), float(shape.size[0]), False
    radius, half = float(shape.size[0]), float(shape.size[1])
    if shape.kind == "capsule":
        half += radius
    axis = _rotate(np.array([[0.0, 0.0, 1.0]]), shape.rotation)[0]
    if abs(axis[2]) > 0.9:  # upright
        return float(np.hypot(radius, 0.0)), half, shape.kind == "cylinder"
    return float(np.hypot(half, radius)), radius, False


def _random_primitive(rng: np.random.Generator, r: float, kinds: Sequence[str], yaw: float) -> ObjectShape:
    """A primitive centred at the origin, resting on z = 0 at yaw ``yaw`` (rad); its kind drawn from ``kinds``
    (``box``, ``sphere``, ``cylinder`` upright, ``cylinder_lying``, ``capsule_lying``, ``capsule``)."""
    kind = kinds[int(rng.integers(len(kinds)))]
    qyaw = _yaw_quat(yaw)
    lie = _quat_mul(qyaw, np.array([np.sin(np.pi / 4), 0.0, 0.0, np.cos(np.pi / 4)]))  # local z -> horizontal
    if kind == "box":
        half = np.array([rng.integers(3, 6), rng.integers(3, 6), rng.integers(3, 5)]) * r
        shape = ObjectShape("box", tuple(half), position=np.zeros(3), rotation=qyaw)
    elif kind == "sphere":
        shape = ObjectShape("sphere", (float(rng.uniform(4.6, 6.5) * r),), position=np.zeros(3))
    elif kind == "cylinder":
        shape = ObjectShape("cylinder", (float(rng.uniform(4.6, 6.5) * r), float(rng.integers(3, 6) * r)),
                            position=np.zeros(3), rotation=qyaw)
    elif kind == "cylinder_lying":
        shape = ObjectShape("cylinder", (float(rng.uniform(4.6, 6.0) * r), float(rng.integers(3, 7) * r)),
                            position=np.zeros(3), rotation=lie)
    elif kind == "capsule_lying":
        shape = ObjectShape("capsule", (float(rng.uniform(4.6, 6.0) * r), float(rng.integers(2, 5) * r)),
                            position=np.zeros(3), rotation=lie)
    elif kind == "capsule":
        shape = ObjectShape("capsule", (float(rng.uniform(4.6, 6.0) * r), float(rng.integers(2, 4) * r)),
                            position=np.zeros(3), rotation=qyaw)
    else:
        raise ValueError(kind)
    _, half_h, _ = _primitive_extent(shape)
    return dataclasses.replace(shape, position=np.array([0.0, 0.0, half_h], np.float32))


def _place_primitives(rng: np.random.Generator, r: float, direction: np.ndarray, heading: float,
                      kinds: Sequence[str], density, friction, prefix: str = "obj") -> list[PrimitiveSpec]:
    """One to three primitives of ``kinds`` laid out in a row along ``direction``, a cluster around the
    first, or a stack (a flat-topped body on a flat-topped body); ``density`` and ``friction``: callables
    ``rng -> value``. The first body sits at the origin (the pusher starts behind it)."""
    side = np.array([-direction[1], direction[0], 0.0])
    count = int(rng.integers(1, 4))
    layout = ("row", "cluster", "stack")[int(rng.integers(3))]
    objects: list[PrimitiveSpec] = []
    placed: list[tuple[np.ndarray, float]] = []  # (centre xy, footprint radius)
    along = 0.0
    for i in range(count):
        shape = _random_primitive(rng, r, kinds, heading + rng.uniform(-0.5, 0.5))
        reach, half_h, flat = _primitive_extent(shape)
        centre = None
        if i > 0 and layout == "stack":
            prev = objects[-1].shape
            p_reach, p_half, p_flat = _primitive_extent(prev)
            if p_flat and flat and prev.position[2] < 0.2:
                centre = prev.position + np.array([0.0, 0.0, p_half + half_h + 0.002])
                centre[:2] += rng.uniform(-0.3, 0.3, 2) * r
        if centre is None and i > 0 and layout == "cluster":
            for _ in range(20):
                ang = rng.uniform(-np.pi / 2, np.pi / 2) + heading
                dist = placed[0][1] + reach + rng.uniform(0.01, 0.06)
                xy = np.array([np.cos(ang), np.sin(ang)]) * dist
                if all(np.linalg.norm(xy - c) > rad + reach + 0.005 for c, rad in placed):
                    centre = np.array([xy[0], xy[1], half_h])
                    break
        if centre is None:
            offset = along + (reach if i else 0.0)
            centre = direction * offset + side * (rng.uniform(-0.03, 0.03) if i else 0.0)
            centre[2] = half_h
        if centre[2] == half_h:
            along = max(along, float(centre @ direction) + reach + rng.uniform(0.01, 0.05))
        placed.append((np.asarray(centre[:2], np.float64), reach))
        shape = dataclasses.replace(shape, position=np.asarray(centre, np.float32))
        objects.append(PrimitiveSpec(f"{prefix}{i}", "rigid", shape, density=float(density(rng)),
                                     friction=float(friction(rng))))
    return objects


def varied_path(rng: np.random.Generator, frames: int, dt: float, start: np.ndarray, heading: float,
                speed_range=PATH_SPEED) -> tuple[np.ndarray, np.ndarray]:
    """A multi-waypoint pusher path from ``start`` (m) that first pushes along ``heading`` (rad), then runs
    2-4 more segments drawn among: push on, re-aim (the heading turns by 0.05-0.35 rad, the tool's yaw with
    it), sideways sweep, stop (a pause), pull back; half the paths end holding still (in contact, so the
    bodies come to rest under friction). The velocity is smoothed over :data:`PATH_SMOOTH` frames.

    Returns:
        ``(path, yaw)``: (frames, 3) float64 tool centre positions, m, and (frames,) float64 tool yaw, rad
        (frame 0 = ``start``, ``heading``).
    """
    speed = rng.uniform(*speed_range)
    vel = np.zeros((frames, 3))
    yaw = np.full(frames, float(heading))
    t = 0
    h = float(heading)
    seg = max(frames // 6, 4)
    first = int(rng.integers(seg, 2 * seg + 1))
    hold = int(rng.integers(frames // 6, frames // 3 + 1)) if rng.random() < 0.5 else 0
    kinds = []
    while t < frames - hold:
        n = first if t == 0 else int(rng.integers(max(seg // 2, 3), seg + 1))
        n = min(n, frames - hold - t)
        kind = "push" if t == 0 else ("push", "reaim", "side", "stop", "back")[
            int(rng.choice(5, p=[0.2, 0.3, 0.2, 0.15, 0.15]))]
        d = np.array([np.cos(h), np.sin(h), 0.0])
        s = speed * rng.uniform(0.7, 1.3)
        if kind == "reaim":
            h += float(rng.choice([-1, 1]) * rng.uniform(0.05, 0.35))
            d = np.array([np.cos(h), np.sin(h), 0.0])
            vel[t:t + n] = d * s
        elif kind == "push":
            vel[t:t + n] = d * s
        elif kind == "side":
            vel[t:t + n] = np.array([-d[1], d[0], 0.0]) * rng.choice([-1, 1]) * 0.5 * s
        elif kind == "back":
            vel[t:t + n] = -d * 0.7 * s
        yaw[t:] = h
        kinds.append(kind)
        t += n
    kernel = np.ones(PATH_SMOOTH) / PATH_SMOOTH
    pad = np.concatenate([np.zeros((PATH_SMOOTH - 1, 3)), vel])
    smooth = np.stack([np.convolve(pad[:, k], kernel, mode="valid") for k in range(3)], -1)
    ypad = np.concatenate([np.full(PATH_SMOOTH - 1, float(heading)), yaw])
    yaw = np.convolve(ypad, kernel, mode="valid")
    path = np.asarray(start, np.float64) + np.concatenate([np.zeros((1, 3)), np.cumsum(smooth[1:] * dt, 0)])
    return path, yaw


def _tool_behind(rng: np.random.Generator, r: float, direction: np.ndarray, heading: float, extent: float,
                 width: float) -> tuple[np.ndarray, np.ndarray]:
    """Pusher half extents (1 x 3-5 x 2-4 spacings) and its start, 1-4 cm behind a body of footprint radius
    ``extent`` at the origin, at its centre or off it by up to 0.7 of ``width`` (m) sideways."""
    side = np.array([-direction[1], direction[0], 0.0])
    tool_half = np.array([r, rng.integers(3, 6) * r, rng.integers(2, 5) * r])
    lateral = 0.0 if rng.random() < 0.35 else rng.uniform(-0.7, 0.7) * width
    start = -direction * (extent + tool_half[0] + rng.uniform(0.01, 0.04)) + side * lateral
    start[2] = tool_half[2] + 0.002
    return tool_half, start


def _with_path(objects: list[PrimitiveSpec], r: float, tool_half: np.ndarray, path: np.ndarray,
               yaw: np.ndarray) -> SimSetup:
    """:func:`build_setup` with a pusher box following ``path`` (T, 3) m and turning to ``yaw`` (T,) rad."""
    tool = ObjectShape("box", tuple(tool_half), position=path[0], rotation=_yaw_quat(float(yaw[0])))
    setup = build_setup(objects, r, tool=tool, tool_path=path)
    local = lattice_box(tool_half, r).astype(np.float64)
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.stack([np.stack([c, -s, np.zeros_like(c)], -1), np.stack([s, c, np.zeros_like(c)], -1),
                    np.broadcast_to([0.0, 0.0, 1.0], c.shape + (3,))], -2)  # (T, 3, 3) about z
    traj = np.einsum("tij,mj->tmi", rot, local) + path[:, None, :]
    return dataclasses.replace(setup, action=Action(setup.action.indices, traj.astype(np.float32)))


def _uniform(lo: float, hi: float):
    return lambda rng: rng.uniform(lo, hi)


def shapes_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``shapes``: 1-3 rigid boxes, spheres and cylinders (upright and lying) of varied sizes,
    densities (:data:`SHAPES_DENSITY`) and frictions (:data:`SHAPES_FRICTION`) in a row, a cluster or a
    stack, pushed along a :func:`varied_path`."""
    heading, direction = _heading(rng)
    objects = _place_primitives(rng, r, direction, heading, ("box", "sphere", "cylinder", "cylinder_lying"),
                                _uniform(*SHAPES_DENSITY), _uniform(*SHAPES_FRICTION))
    extent, _, _ = _primitive_extent(objects[0].shape)
    tool_half, start = _tool_behind(rng, r, direction, heading, extent, extent)
    path, yaw = varied_path(rng, frames, dt, start, heading)
    return _with_path(objects, r, tool_half, path, yaw)


def push_paths_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``push_paths``: the ``boxes`` bodies (one to three boxes, sometimes stacked) pushed along a
    :func:`varied_path` (re-aimed, off-centre, sideways, stop-and-go, pulled back, held in contact)."""
    heading, direction = _heading(rng)
    objects, extent = _box_objects(rng, r, direction, heading)
    width = float(np.max(objects[0].shape.size[:2]))
    tool_half, start = _tool_behind(rng, r, direction, heading, extent, width)
    path, yaw = varied_path(rng, frames, dt, start, heading)
    return _with_path(objects, r, tool_half, path, yaw)


def _ring_shape(rng: np.random.Generator, yaw: float) -> ObjectShape:
    """The ring of assets/meshes/ring.obj (a torus lying flat), scaled 0.85-1.0, resting on z = 0."""
    import trimesh
    from pathlib import Path

    mesh = trimesh.load(Path(__file__).resolve().parents[2] / "assets" / "meshes" / "ring.obj", force="mesh")
    verts = np.asarray(mesh.vertices, np.float64) * rng.uniform(0.85, 1.0)
    verts -= verts.mean(0)
    lo = verts[:, 2].min()
    return ObjectShape("mesh", (), position=np.array([0.0, 0.0, -lo], np.float32), rotation=_yaw_quat(yaw),
                       vertices=verts.astype(np.float32), faces=np.asarray(mesh.faces, np.int32))


def lattice_mesh(shape: ObjectShape, r: float, seed: int = 0) -> np.ndarray:
    """(n, 3) float32, m: particles of radius ``r`` filling a closed mesh ``shape`` (its vertices in the
    local frame), placed at the shape's pose: as ``particles.lift`` fills a mesh, a shell of surface samples
    ``r`` inside the surface and ``2 r`` lattice points within, so resting particles sit ``r`` above the
    ground."""
    import trimesh

    from particles.lift import fill_mesh

    mesh = trimesh.Trimesh(np.asarray(shape.vertices, np.float64), np.asarray(shape.faces), process=False)
    pts = fill_mesh(mesh, 2 * r, seed)
    return (_rotate(pts, shape.rotation) + np.asarray(shape.position, np.float64)).astype(np.float32)


def _fill(shape: ObjectShape, r: float) -> np.ndarray:
    spec = PrimitiveSpec("x", "rigid", shape)
    return build_setup([spec], r).scene.positions.astype(np.float64)


def _separated(objects: list[PrimitiveSpec], r: float, direction: np.ndarray) -> list[PrimitiveSpec]:
    """``objects`` with each one after the first moved along ``direction`` (r at a time) until its particles
    keep ``2 r`` + 2 mm from every earlier object's."""
    from scipy.spatial import cKDTree

    out = [objects[0]]
    placed = _fill(objects[0].shape, r)
    for spec in objects[1:]:
        shape = spec.shape
        pts = _fill(shape, r)
        tree = cKDTree(placed)
        shift = np.zeros(3)
        for _ in range(60):
            if not np.isfinite(tree.query(pts + shift, k=1)[0]).any() or tree.query(pts + shift, k=1)[0].min() >= 2 * r + 0.002:
                break
            shift = shift + np.asarray(direction, np.float64) * r
        shape = dataclasses.replace(shape, position=np.asarray(shape.position + shift, np.float32))
        out.append(dataclasses.replace(spec, shape=shape))
        placed = np.concatenate([placed, pts + shift])
    return out


def _held_density(rng: np.random.Generator) -> float:
    return rng.uniform(2500.0, 4000.0) if rng.random() < 0.5 else rng.uniform(80.0, 180.0)


def _held_friction(rng: np.random.Generator) -> float:
    return rng.uniform(0.05, 0.15) if rng.random() < 0.5 else rng.uniform(0.95, 1.2)


def heldout_shapes_scene(rng: np.random.Generator, frames: int, r: float = 0.01,
                         dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``heldout_shapes`` (for held-out splits; never in a training mix): capsules (lying and
    upright) and the ring mesh of assets/meshes, beside boxes, with densities (80-180 or 2500-4000 kg/m^3)
    and frictions (0.05-0.15 or 0.95-1.2) outside the training ranges, pushed along a :func:`varied_path`."""
    heading, direction = _heading(rng)
    objects = _place_primitives(rng, r, direction, heading, ("capsule_lying", "capsule", "capsule_lying", "box"),
                                _held_density, _held_friction, prefix="held")
    if rng.random() < 0.4:  # the ring takes the first body's place
        ring = _ring_shape(rng, heading + rng.uniform(-np.pi, np.pi))
        objects[0] = dataclasses.replace(objects[0], shape=dataclasses.replace(
            ring, position=np.array([0.0, 0.0, ring.position[2]], np.float32)))
        reach = float(np.linalg.norm(ring.vertices[:, :2], axis=1).max())
        # keep the others clear of the larger ring
        for k in range(1, len(objects)):
            sh = objects[k].shape
            xy = np.asarray(sh.position[:2], np.float64)
            if sh.position[2] > _primitive_extent(sh)[1] + 1e-6:  # a stacked body: drop it beside
                xy = direction[:2] * (reach + 0.1 * k)
            dist = np.linalg.norm(xy)
            need = reach + _primitive_extent(sh)[0] + 0.01
            if dist < need:
                xy = (xy / dist if dist > 1e-9 else direction[:2]) * need
            objects[k] = dataclasses.replace(objects[k], shape=dataclasses.replace(
                sh, position=np.array([xy[0], xy[1], _primitive_extent(sh)[1]], np.float32)))
        objects = _separated(objects, r, direction)
        extent = reach
    else:
        extent, _, _ = _primitive_extent(objects[0].shape)
    tool_half, start = _tool_behind(rng, r, direction, heading, extent, extent)
    path, yaw = varied_path(rng, frames, dt, start, heading)
    return _with_path(objects, r, tool_half, path, yaw)


# --------------------------------------------------------------------------- deformable scene kinds
#
# Each draws its material parameters around the defaults of dynamics.sim.materials (Young's modulus
# log-uniformly), its sizes in whole particle spacings and its placement and push as the rigid kinds do;
# each has one pusher tool (so every rollout has a tool action, as the dataset's files expect).

#: Young's modulus ranges (Pa, drawn log-uniformly) of the training kinds; ``heldout_materials`` draws
#: elastic solids outside :data:`ELASTIC_E_RANGE` (softer and stiffer).
ELASTIC_E_RANGE = (2.0e4, 2.0e5)
HELDOUT_ELASTIC_E = ((5.0e3, 1.0e4), (5.0e5, 1.0e6))
PLASTIC_YIELD_RANGE = (1.0e3, 5.0e3)
ROPE_E_RANGE = (1.0e5, 4.0e5)
CLOTH_E_RANGE = (5.0e3, 5.0e4)


def _log_uniform(rng: np.random.Generator, lo_hi) -> float:
    lo, hi = lo_hi
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _solid_shape(rng: np.random.Generator, r: float, heading: float, centre_xy=(0.0, 0.0),
                 base: float = 0.0) -> ObjectShape:
    """A box (5-7 x 5-7 x 4-6 particles, half sizes in r) or a sphere (radius 7-8 r) of a soft material, its
    lowest particles ``r`` above height ``base`` m (resting on it). A soft sphere is its lattice particles
    (:func:`_curved_fill` without the shell), whose lowest layer lies 1 r inside the sphere at radius 7 r but
    3 r inside at 8 r, so the sphere is lowered by what its lattice leaves below: placed at ``base + radius``
    the 8 r ball started 2 r up and dropped."""
    if rng.random() < 0.6:
        half = np.array([rng.integers(5, 8), rng.integers(5, 8), rng.integers(4, 7)]) * r
        centre = np.array([centre_xy[0], centre_xy[1], base + half[2]])
        return ObjectShape("box", tuple(half), position=centre, rotation=_yaw_quat(heading + rng.uniform(-0.4, 0.4)))
    radius = float(rng.integers(7, 9)) * r
    lowest = float(_curved_fill("sphere", (radius,), r, 0, shell=False)[:, 2].min())  # m, below the centre
    return ObjectShape("sphere", (radius,), position=np.array([centre_xy[0], centre_xy[1], base + r - lowest]))


def _extent(shape: ObjectShape) -> float:
    """m: the footprint radius of a box or sphere whatever its yaw."""
    return float(np.linalg.norm(shape.size[:2])) if shape.kind == "box" else float(shape.size[0])


def _elastic_spec(rng: np.random.Generator, shape: ObjectShape, e_range=ELASTIC_E_RANGE, name: str = "elastic") -> PrimitiveSpec:
    return PrimitiveSpec(name, "elastic", shape, density=float(rng.uniform(600, 1500)),
                         friction=float(rng.uniform(0.3, 0.8)), young_modulus=_log_uniform(rng, e_range),
                         poisson=float(rng.uniform(0.25, 0.4)))


def elastic_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``elastic``: a soft block or ball (Newton VBD FEM, E 2e4-2e5 Pa, 600-1500 kg/m^3,
    friction 0.3-0.8, about 120-250 particles at r = 1 cm) pushed across the ground by a pusher."""
    heading, direction = _heading(rng)
    shape = _solid_shape(rng, r, heading)
    objects = [_elastic_spec(rng, shape)]
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, _extent(shape))
    return build_setup(objects, r, tool=tool, tool_path=path)


def plastic_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``plastic``: a plasticine block (implicit MPM with yield stress 1-5 kPa, E 2e5-2e6 Pa,
    1000-1500 kg/m^3; 5-7 x 5-7 x 3-5 particles) ploughed by a pusher, which dents it and shoves it."""
    heading, direction = _heading(rng)
    half = np.array([rng.integers(5, 8), rng.integers(5, 8), rng.integers(3, 6)]) * r
    shape = ObjectShape("box", tuple(half), position=np.array([0.0, 0.0, half[2]]),
                        rotation=_yaw_quat(heading + rng.uniform(-0.4, 0.4)))
    objects = [PrimitiveSpec("plasticine", "plastic", shape, density=float(rng.uniform(1000, 1500)),
                             friction=float(rng.uniform(0.2, 0.5)), young_modulus=_log_uniform(rng, (2.0e5, 2.0e6)),
                             yield_stress=_log_uniform(rng, PLASTIC_YIELD_RANGE))]
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, _extent(shape))
    return build_setup(objects, r, tool=tool, tool_path=path)


def _lifted_pusher(rng, frames, r, dt, direction, heading, extent, lift: float):
    """:func:`random_pusher` raised by ``lift`` m (a pusher sweeping over a pedestal)."""
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, extent)
    up = np.array([0.0, 0.0, lift])
    return ObjectShape("box", tool.size, position=tool.position + up, rotation=tool.rotation), path + up


def cloth_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``cloth``: a sheet (one particle thick, 10-15 x 10-15 particles, Newton VBD membrane
    with bending, E 5e3-5e4 Pa, bending 1e-4-3e-3 N m, 150-400 kg/m^3) either dropped 1-4 cm onto a
    static box (half sizes 3-5 r) and swept off it by a pusher at the box's top, or lying on the
    ground and bunched up by a pusher."""
    heading, direction = _heading(rng)
    nx, ny = int(rng.integers(10, 16)), int(rng.integers(10, 16))
    half = np.array([nx * r, ny * r, r])
    objects: list[PrimitiveSpec] = []
    base = 0.0
    if rng.random() < 0.5:
        ped = np.array([rng.integers(3, 6), rng.integers(3, 6), rng.integers(3, 6)]) * r
        objects.append(PrimitiveSpec("pedestal", "static", ObjectShape("box", tuple(ped), position=np.array([0, 0, ped[2]]),
                                                                      rotation=_yaw_quat(rng.uniform(0, np.pi)))))
        base = 2 * ped[2] + rng.uniform(0.01, 0.04)
    else:
        base = 0.001
    sheet = ObjectShape("box", tuple(half), position=np.array([rng.uniform(-0.02, 0.02), rng.uniform(-0.02, 0.02), base + r]),
                        rotation=_yaw_quat(rng.uniform(0, np.pi)))
    objects.append(PrimitiveSpec("cloth", "cloth", sheet, density=float(rng.uniform(150, 400)),
                                 friction=float(rng.uniform(0.3, 0.7)), young_modulus=_log_uniform(rng, CLOTH_E_RANGE),
                                 bending_stiffness=_log_uniform(rng, (1.0e-4, 3.0e-3))))
    lift = base - 0.001 if base > 0.01 else 0.0  # sweep over the pedestal's top
    tool, path = _lifted_pusher(rng, frames, r, dt, direction, heading, float(np.linalg.norm(half[:2])), lift)
    return build_setup(objects, r, tool=tool, tool_path=path)


def _rope_spec(rng: np.random.Generator, r: float, centre, yaw: float, name: str = "rope") -> PrimitiveSpec:
    count = int(rng.integers(20, 41))
    shape = ObjectShape("box", (count * r, r, r), position=np.asarray(centre, np.float64), rotation=_yaw_quat(yaw))
    return PrimitiveSpec(name, "rope", shape, density=float(rng.uniform(300, 800)), friction=float(rng.uniform(0.3, 0.7)),
                         young_modulus=_log_uniform(rng, ROPE_E_RANGE))


def rope_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``rope``: a rope (a row of 20-40 particles tied by XPBD springs, E 1e5-4e5 Pa,
    300-800 kg/m^3) lying on the ground across the push, bent and dragged by a pusher that meets it
    off its middle."""
    heading, direction = _heading(rng)
    side = np.array([-direction[1], direction[0], 0.0])
    centre = side * rng.uniform(-0.05, 0.05) + np.array([0.0, 0.0, r + 0.0005])
    tilt = rng.uniform(-0.3, 0.3)
    objects = [_rope_spec(rng, r, centre, heading + np.pi / 2 + tilt)]
    # the pusher (up to 5 r half wide, 2 cm off centre) starts behind the tilted rope wherever it meets it
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, 2 * r + (5 * r + 0.02) * abs(np.tan(tilt)))
    return build_setup(objects, r, tool=tool, tool_path=path)


def heldout_materials_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``heldout_materials`` (for the held-out split): material mixes and parameters the
    training kinds never show, one drawn uniformly: ``mix``, an elastic solid pushed into a rigid box;
    ``soft``/``stiff``, an elastic solid softer (5e3-1e4 Pa) or stiffer (5e5-1e6 Pa) than
    :data:`ELASTIC_E_RANGE`; ``plastic_box``, a plasticine block pushed into a rigid box. (A rope dropped
    across a box is :func:`rope_box_scene`, kept out of this mix: spring ropes touched by the tool fail the
    critic, see :func:`rope_scene`.)"""
    heading, direction = _heading(rng)
    variant = ("mix", "soft", "stiff", "plastic_box")[int(rng.integers(4))]
    if variant in ("soft", "stiff"):
        shape = _solid_shape(rng, r, heading)
        objects = [_elastic_spec(rng, shape, HELDOUT_ELASTIC_E[variant == "stiff"])]
        extent = _extent(shape)
    else:
        if variant == "mix":
            shape = _solid_shape(rng, r, heading)
            objects = [_elastic_spec(rng, shape)]
        else:
            half = np.array([rng.integers(4, 7), rng.integers(4, 7), rng.integers(3, 5)]) * r
            shape = ObjectShape("box", tuple(half), position=np.array([0.0, 0.0, half[2]]),
                                rotation=_yaw_quat(heading + rng.uniform(-0.4, 0.4)))
            objects = [PrimitiveSpec("plasticine", "plastic", shape, density=float(rng.uniform(1000, 1500)),
                                     friction=float(rng.uniform(0.2, 0.5)), young_modulus=_log_uniform(rng, (2.0e5, 2.0e6)),
                                     yield_stress=_log_uniform(rng, PLASTIC_YIELD_RANGE))]
        extent = _extent(shape)
        half = np.array([rng.integers(3, 6), rng.integers(3, 6), rng.integers(3, 5)]) * r
        centre = direction * (extent + np.linalg.norm(half[:2]) + rng.uniform(0.005, 0.02))
        centre[2] = half[2]
        objects.append(PrimitiveSpec("box", "rigid", ObjectShape("box", tuple(half), position=centre,
                                                                 rotation=_yaw_quat(heading + rng.uniform(-0.4, 0.4))),
                                     density=float(rng.uniform(400, 1200)), friction=float(rng.uniform(0.3, 0.7))))
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, extent)
    return build_setup(objects, r, tool=tool, tool_path=path)


def rope_box_scene(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0) -> SimSetup:
    """Scene kind ``rope_box``: a rope dropped 0.5-2 cm across a rigid box (half sizes 4-5 x 4-5 x 3-4 r)
    that a pusher shoves (held-out mix of rope and rigid)."""
    heading, direction = _heading(rng)
    half = np.array([rng.integers(4, 6), rng.integers(4, 6), rng.integers(3, 5)]) * r
    box = ObjectShape("box", tuple(half), position=np.array([0.0, 0.0, half[2]]),
                      rotation=_yaw_quat(heading + rng.uniform(-0.3, 0.3)))
    objects = [PrimitiveSpec("box", "rigid", box, density=float(rng.uniform(400, 1200)), friction=float(rng.uniform(0.3, 0.7))),
               _rope_spec(rng, r, (0.0, 0.0, 2 * half[2] + r + rng.uniform(0.005, 0.02)),
                          heading + np.pi / 2 + rng.uniform(-0.4, 0.4))]
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, float(np.linalg.norm(half[:2])))
    return build_setup(objects, r, tool=tool, tool_path=path)


#: Deformable scene kinds (issue 12: every material of the card) and the held-out material mixes.
DEFORMABLE_KINDS = ("elastic", "plastic", "cloth", "rope")


#: Scene kinds of :func:`random_setup` (``worldline dataset --kinds``): name -> ``fn(rng, frames, r, dt) -> SimSetup``.
#: Each draws everything it needs from ``rng`` (so a scene is fixed by its seed) and keeps scenes small
#: (a few hundred particles at ``r`` = 1 cm).
SCENE_KINDS: dict = {"boxes": boxes_scene, "sand": sand_scene}
SCENE_KINDS.update({"elastic": elastic_scene, "plastic": plastic_scene, "cloth": cloth_scene, "rope": rope_scene,
                    "heldout_materials": heldout_materials_scene, "rope_box": rope_box_scene})
SCENE_KINDS.update(shapes=shapes_scene, push_paths=push_paths_scene, heldout_shapes=heldout_shapes_scene)
#: Kinds made for held-out splits only (``worldline dataset --heldout-kinds``): no training mix should draw them.
HELDOUT_KINDS = ("heldout_shapes", "heldout_materials", "rope_box")


def random_setup(rng: np.random.Generator, frames: int, r: float = 0.01, dt: float = 1.0 / 60.0,
                 granular_fraction: float = 0.35, kinds: Optional[Sequence[str]] = None) -> SimSetup:
    """A random pushing scene.

    With ``kinds`` None (the default mix): rigid boxes (one to three, sometimes stacked) with probability
    ``1 - granular_fraction``, else a granular pile on the ground, and a pusher box sweeping through it along
    a random horizontal direction. With ``kinds`` (names of :data:`SCENE_KINDS`), one kind is drawn
    uniformly and builds the scene (``granular_fraction`` is then unused).

    Sizes are a few particle spacings (about 100-300 particles per scene at ``r`` = 1 cm);
    masses and frictions are drawn around the material defaults; push speed 0.1-0.3 m/s.
    """
    if kinds is not None:
        kinds = list(kinds)
        unknown = [k for k in kinds if k not in SCENE_KINDS]
        if not kinds or unknown:
            raise ValidationError("kinds", f"unknown scene kind {unknown[0] if unknown else '(none given)'}; "
                                           f"known: {', '.join(SCENE_KINDS)}")
        return SCENE_KINDS[kinds[int(rng.integers(len(kinds)))]](rng, frames, r, dt)
    # the default mix keeps its historical draw order (heading first), so old datasets regenerate bit for bit
    heading, direction = _heading(rng)
    if rng.random() < granular_fraction:
        objects, extent = _sand_objects(rng, r)
    else:
        objects, extent = _box_objects(rng, r, direction, heading)
    tool, path = random_pusher(rng, frames, r, dt, direction, heading, extent)
    return build_setup(objects, r, tool=tool, tool_path=path)


# --------------------------------------------------------------------------- scene files


def setup_from_lifted(lifted, dt: float, steps: int) -> SimSetup:
    """A :class:`SimSetup` from a lifted scene file (``particles.lift.LiftedScene``).

    Shapes follow ``particles.scene_file.SHAPE_SIZES`` (box full extents, capsule/cylinder
    radius and length along local z, meshes from their file); sheets and ropes have none.
    Materials take density, friction, restitution, Young's modulus and Poisson ratio from the
    file, except that granular matter keeps its default rigid-plastic stiffness
    (:data:`~dynamics.sim.DEFAULT_MATERIALS`), as Newton's granular MPM models sand.
    The action is ``particles.lift.tool_action(lifted, dt, steps)`` (``steps + 1`` frames).
    """
    from particles.lift import object_mesh, tool_action

    spec = lifted.spec
    shapes: list[Optional[ObjectShape]] = []
    materials: list[Optional[Material]] = []
    for obj in spec.objects:
        pos, rot = np.asarray(obj.position), np.asarray(obj.rotation)
        if obj.shape == "box":
            shapes.append(ObjectShape("box", tuple(np.asarray(obj.size) / 2), pos, rot))
        elif obj.shape == "sphere":
            shapes.append(ObjectShape("sphere", tuple(obj.size), pos, rot))
        elif obj.shape in ("capsule", "cylinder"):
            shapes.append(ObjectShape(obj.shape, (obj.size[0], obj.size[1] / 2), pos, rot))
        elif obj.shape == "mesh":
            mesh = object_mesh(obj)
            shapes.append(ObjectShape("mesh", (), pos, rot, vertices=np.asarray(mesh.vertices, np.float32),
                                      faces=np.asarray(mesh.faces, np.int32)))
        else:
            shapes.append(None)
        mat = default_material(obj.material).with_(density=obj.density, friction=obj.friction,
                                                   restitution=min(obj.restitution, 1.0), poisson=obj.poisson_ratio)
        if obj.material != "granular":
            mat = mat.with_(young_modulus=obj.youngs_modulus)
        materials.append(mat)
    action = None
    if spec.tool is not None:
        tool = spec.tool
        if tool.shape == "pusher":
            shapes.append(ObjectShape("box", tuple(np.asarray(tool.size) / 2), np.asarray(tool.path[0].position),
                                      np.asarray(tool.rotation)))
        else:
            shapes.append(None)
        materials.append(default_material("rigid").with_(friction=tool.friction))
        action = tool_action(lifted, dt, steps)
    tool = spec.tool
    return SimSetup(lifted.scene, tuple(shapes), tuple(materials), action, _tool_parts_of(lifted),
                    tool_max_force=None if tool is None else tool.max_force,
                    tool_max_torque=None if tool is None else tool.max_torque)


def _tool_parts_of(lifted):
    """Per gripper finger: its positions within ``tool_indices`` and its box shape at rest; None for a pusher."""
    tool = lifted.spec.tool
    if tool is None or tool.shape != "gripper":
        return None
    parts = []
    pos = lifted.scene.positions[lifted.tool_indices].astype(np.float64)
    for label in (-1, 1):
        sel = np.flatnonzero(lifted.tool_finger == label)
        parts.append((sel, ObjectShape("box", tuple(np.asarray(tool.size) / 2), pos[sel].mean(0), np.asarray(tool.rotation))))
    return tuple(parts)


def setup_from_scene_file(path, dt: float, steps: int) -> SimSetup:
    """Read a scene ``.toml``, lift it (``particles.lift.lift_scene``) and build its :class:`SimSetup`."""
    from particles.lift import lift_scene
    from particles.scene_file import load_scene_file

    return setup_from_lifted(lift_scene(load_scene_file(path)), dt, steps)
