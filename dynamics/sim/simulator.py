"""Ground-truth particle dynamics on NVIDIA Newton.

A :class:`~particles.ParticleScene` plus a collision shape per object becomes two
Newton models that advance together, substep by substep:

- **rigid model** (``newton.solvers.SolverXPBD``): the ground plane, one dynamic
  rigid body per ``rigid`` object (its collision shape: box, sphere, capsule,
  cylinder or triangle mesh), static shapes for ``static`` objects, one
  driven body per connected part of the tool (a box around the part's
  particles, see below), and ``rope`` objects (and ``elastic``/``cloth`` with
  ``SimConfig.soft_solver = "springs"``) as XPBD particles tied by springs to their
  lattice neighbours. A rigid object's particles ride on its body at fixed body-frame offsets.
- **soft model** (``newton.solvers.SolverVBD``): ``elastic`` objects as neo-Hookean
  tetrahedra over their particle lattice and ``cloth`` as membrane triangles with bending
  hinges (:mod:`dynamics.sim._meshing`), against copies of the rigid model's shapes that
  follow its bodies; the reaction of their contacts, from VBD's own contact law, acts on the
  bodies over the next VBD step (:func:`dynamics.sim._kernels.soft_contact_reaction`). VBD is
  implicit: ``SimConfig.vbd_substeps`` steps a frame whatever the stiffness. Its contact stiffness is
  derived per scene from the load on the soft objects' lowest particles (:func:`soft_contact_stiffness`)
  and its contact gap from the fall height (:attr:`NewtonSimulator.soft_contact_gap`).
- **granular model** (``newton.solvers.SolverImplicitMPM``): ``granular``,
  ``plastic`` and ``fluid`` particles as implicit-MPM material points. Every
  shape of the rigid model (ground, bodies, static shapes, tool) is an MPM
  collider that moves with its body. The coupling is two-way
  (``SimConfig.mpm_two_way``): the impulse each MPM step applies to a body's
  collider acts back on the body, as a force and torque, over the next rigid
  substeps, so a box dropped on sand is stopped by it and sand pushed into a box
  moves the box.

The tool's prescribed pose per frame comes from the action: a least-squares rigid
fit (Kabsch) of each tool part's particles, interpolated (slerp) over substeps.
A tool part is not kinematic (an infinitely strong, infinitely heavy body would
crush whatever it squeezes against a wall and launch it): it is a dynamic body of
``SimConfig.tool_mass`` whose weight is compensated and which a deadbeat PD drive
steers onto the prescribed pose every substep with at most ``tool_max_force`` N
and ``tool_max_torque`` N m. In free space it follows the action exactly; blocked,
it pushes with the limit and lags. Rollouts hold the tool where it really was.
On one device, the same inputs give bit-identical outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from particles import KINEMATIC, ParticleScene, ParticleState, ValidationError
from particles.keypoints import kabsch

from ..base import Dynamics
from .materials import Material, default_material

__all__ = ["SimConfig", "ObjectShape", "NewtonSimulator", "SHAPE_KINDS", "RIGID_MATERIALS", "SPRING_MATERIALS",
           "MPM_MATERIALS", "VBD_MATERIALS", "soft_contact_stiffness", "SOFT_CONTACT_KE_MIN", "VBD_LOAD_GAIN"]

#: Collision shape kinds an object may have.
SHAPE_KINDS = ("box", "sphere", "capsule", "cylinder", "mesh")
#: The most a tool's force limit may accelerate the lightest rigid body per substep squared, in
#: particle radii: beyond it XPBD launches a body squeezed by the tool (see NewtonSimulator).
SQUEEZE_STEP = 0.15
#: Materials simulated as rigid bodies, as XPBD spring networks, and as MPM material points.
RIGID_MATERIALS = ("rigid",)
SPRING_MATERIALS = ("elastic", "cloth", "rope")
MPM_MATERIALS = ("granular", "plastic", "fluid")
#: Materials simulated on Newton's VBD solver (``SimConfig.soft_solver = "vbd"``): elastic solids as
#: tetrahedral FEM over their particle lattice, cloth as triangles with bending hinges. Rope stays a spring chain.
VBD_MATERIALS = ("elastic", "cloth")
#: N/m: the softest VBD soft contact :func:`soft_contact_stiffness` derives, the fixed stiffness every
#: scene used before it was derived (light bodies, whose weight asks for less, keep their former ground truth).
SOFT_CONTACT_KE_MIN = 1.0e4
#: The gain of the load VBD's unconverged iterations put on a soft body's lowest particles, in
#: :func:`soft_contact_stiffness`: ``A = 1 + VBD_LOAD_GAIN kappa / iterations``. Fitted to elastic balls at
#: rest (``bench/vbd_contact.py``: ``(A - 1) iterations / kappa`` measured 1.8-2.3 over kappa 6-116 and
#: 10-40 iterations).
VBD_LOAD_GAIN = 2.0


@dataclass(frozen=True)
class SimConfig:
    """Time stepping and solver settings of :class:`NewtonSimulator`.

    Defaults give stable pushes of centimetre-sized objects on the CPU.
    """

    dt: float = 1.0 / 60.0
    """Frame time step, s (> 0): the time between two rollout frames."""
    substeps: int = 6
    """XPBD substeps per frame (>= 1); the rigid step is ``dt / substeps``."""
    iterations: int = 4
    """XPBD constraint iterations per substep (>= 1)."""
    tool_iterations: int = 8
    """XPBD iterations per substep (>= 1) used instead when it is larger and a driven tool shares the
    scene with rigid bodies: a body squeezed between the tool and something else needs them (a row of
    two 108 g boxes pushed into a wall at 20 N is launched at 4 iterations and pinned at 8)."""
    mpm_substeps: int = 1
    """Implicit-MPM steps per frame (>= 1, divides ``substeps``)."""
    mpm_voxel: float = 4.0
    """MPM grid cell size in particle radii (> 0); 4 radii = 2 particles per cell per axis."""
    mpm_iterations: int = 50
    """Maximum rheology-solver iterations per MPM step (>= 1)."""
    mpm_coupled_substeps: int = 3
    """Implicit-MPM steps per frame (>= 1; substeps are rounded up to a multiple of it) used instead of ``mpm_substeps`` when
    larger and the two-way coupling has bodies to push (rigid bodies or a tool). The material's impulse
    acts on the bodies one MPM step late: once per frame, a 173 g box resting on sand bounces by about
    1 mm every frame (6.5 cm/s measured); at 3 per frame it rests (0.3 mm/s)."""
    mpm_two_way: bool = True
    """MPM material pushes rigid bodies and the tool back (the impulses of each MPM step act on the
    bodies over the next rigid substeps, as in Newton's ``mpm_twoway_coupling`` example). False: the
    former one-way coupling, where bodies push the material and feel nothing."""
    soft_solver: str = "vbd"
    """Elastic solids and cloth: ``"vbd"``, Newton's VBD solver (tetrahedral neo-Hookean FEM over the
    particle lattice; cloth triangles with bending hinges), stable at the rigid substep whatever the
    stiffness; or ``"springs"``, the former XPBD spring network, whose substeps are raised until the
    springs are stable (see ``max_substeps``). Rope is a spring chain either way."""
    vbd_substeps: int = 2
    """VBD steps per frame (>= 1; the rigid substeps are rounded up to a multiple of it). VBD is
    implicit, so its step need not be the rigid one: each VBD step sees the bodies' move over its
    share of rigid substeps. On the CPU its cost is kernel launches, about proportional to
    ``vbd_substeps * vbd_iterations``."""
    vbd_iterations: int = 10
    """VBD iterations per VBD step (>= 1)."""
    soft_contact_ke: Optional[float] = None
    """N/m (> 0): VBD's penalty stiffness of a soft particle's contact with the ground, shapes and the tool;
    None derives it per scene from the weight the soft objects' lowest particles carry
    (:func:`soft_contact_stiffness`, :attr:`NewtonSimulator.soft_contact_ke` holds the value used)."""
    soft_contact_gap: Optional[float] = None
    """m (> 0): the distance within which VBD's collision pipeline finds soft contacts, once per VBD step; None
    derives it (:attr:`NewtonSimulator.soft_contact_gap`: twice the free-fall speed from the highest soft
    particle times the VBD step, at least r)."""
    soft_contact_sink: float = 0.1
    """Particle radii (> 0): the resting sink into the ground the derived ``soft_contact_ke`` aims at
    (the critic flags 0.5 r)."""
    ground_friction: float = 0.5
    """Friction coefficient of the ground plane (>= 0)."""
    max_substeps: int = 48
    """Upper bound on substeps when a stiff spring network asks for more (>= substeps); beyond it
    the spring stiffness is clamped to the stable value (with a warning)."""
    spring_neighbors: float = 1.8
    """Elastic/cloth springs tie particles closer than this many particle spacings (2 r) at rest (>= 1)."""
    spring_self_contact: Optional[bool] = None
    """XPBD particle-particle contact among spring-network particles. None: off when every spring object
    is a rope. A rope's particles touch their chain neighbours at rest, and XPBD's contact between them
    fights the springs as soon as the chain bends: a rope pushed at 0.26 m/s was flung at 4.3 m/s with
    it and followed the pusher (0.27 m/s) without it. Ropes then pass through themselves."""
    rigid_contact_weighting: bool = True
    """XPBD divides each body's contact correction by its contact count: better stacks, but
    momentum is not exactly conserved at contacts. Set False for momentum-exact collisions."""
    tool_max_force: float = 20.0
    """N (> 0): the most force the drive of one tool part applies (its weight is compensated on
    top). 20 N pushes about 4 kg at friction 0.5, and squeezes a box with a bounded force
    instead of launching it. The scene file's ``[tool] max_force`` overrides it."""
    tool_max_torque: float = 2.0
    """N m (> 0): the most torque the drive of one tool part applies (``[tool] max_torque``)."""
    tool_mass: float = 0.5
    """kg (> 0): the mass of each tool part (its inertia is its shape's, scaled to this mass). Below
    the force limit the drive makes the tool follow its path exactly whatever the mass; the mass
    sets how much force a velocity step of the path needs (``mass * dv * substeps / dt``)."""
    tool_catchup_speed: float = 0.1
    """m/s (> 0): a tool part that fell behind its path (blocked, then let go) returns to it at most
    this much faster than the path moves, instead of lunging at it with its full force."""
    device: Optional[str] = None
    """Warp device ("cpu", "cuda:0"), or None for Warp's default."""

    def __post_init__(self):
        checks = (
            ("dt", _real(self.dt) and math.isfinite(self.dt) and self.dt > 0, "must be a positive time in s"),
            ("substeps", _integer(self.substeps) and self.substeps >= 1, "must be an integer >= 1"),
            ("iterations", _integer(self.iterations) and self.iterations >= 1, "must be an integer >= 1"),
            ("tool_iterations", _integer(self.tool_iterations) and self.tool_iterations >= 1,
             "must be an integer >= 1"),
            ("mpm_substeps", _integer(self.mpm_substeps) and self.mpm_substeps >= 1, "must be an integer >= 1"),
            ("mpm_voxel", self.mpm_voxel > 0, "must be positive (particle radii)"),
            ("mpm_iterations", _integer(self.mpm_iterations) and self.mpm_iterations >= 1, "must be an integer >= 1"),
            ("ground_friction", self.ground_friction >= 0, "must be non-negative"),
            ("soft_solver", self.soft_solver in ("vbd", "springs"), 'must be "vbd" or "springs"'),
            ("vbd_substeps", _integer(self.vbd_substeps) and self.vbd_substeps >= 1, "must be an integer >= 1"),
            ("vbd_iterations", _integer(self.vbd_iterations) and self.vbd_iterations >= 1, "must be an integer >= 1"),
            ("soft_contact_ke", self.soft_contact_ke is None or (_real(self.soft_contact_ke)
                                                                and math.isfinite(self.soft_contact_ke)
                                                                and self.soft_contact_ke > 0),
             "must be None (derived) or a positive stiffness in N/m"),
            ("soft_contact_gap", self.soft_contact_gap is None or (_real(self.soft_contact_gap)
                                                                  and math.isfinite(self.soft_contact_gap)
                                                                  and self.soft_contact_gap > 0),
             "must be None (derived) or a positive distance in m"),
            ("soft_contact_sink", _real(self.soft_contact_sink) and math.isfinite(self.soft_contact_sink)
             and self.soft_contact_sink > 0, "must be a positive depth in particle radii"),
            ("spring_neighbors", self.spring_neighbors >= 1, "must be >= 1 (particle spacings)"),
            ("max_substeps", _integer(self.max_substeps) and self.max_substeps >= self.substeps,
             "must be an integer >= substeps"),
            ("tool_max_force", _real(self.tool_max_force) and self.tool_max_force > 0,
             "must be a positive force in N"),
            ("tool_max_torque", _real(self.tool_max_torque) and self.tool_max_torque > 0,
             "must be a positive torque in N m"),
            ("tool_mass", _real(self.tool_mass) and math.isfinite(self.tool_mass)
             and self.tool_mass > 0, "must be a positive mass in kg"),
            ("tool_catchup_speed", _real(self.tool_catchup_speed) and self.tool_catchup_speed > 0,
             "must be a positive speed in m/s"),
        )
        for name, ok, problem in checks:
            if not ok:
                raise ValidationError(name, f"{problem}, got {getattr(self, name)!r}")
        if self.substeps % self.mpm_substeps:
            raise ValidationError("mpm_substeps", f"must divide substeps ({self.substeps}), got {self.mpm_substeps}")
        if not (_integer(self.mpm_coupled_substeps) and self.mpm_coupled_substeps >= 1):
            raise ValidationError("mpm_coupled_substeps", f"must be an integer >= 1, got {self.mpm_coupled_substeps!r}")


@dataclass(frozen=True, eq=False)
class ObjectShape:
    """The collision shape of one object, in world coordinates at rest.

    Capsules and cylinders have their axis along the shape's local z.
    """

    kind: str
    """One of :data:`SHAPE_KINDS`."""
    size: tuple[float, ...] = ()
    """m. box: half extents (hx, hy, hz); sphere: (radius,); capsule/cylinder:
    (radius, half_height) with half_height excluding a capsule's caps; mesh: unused."""
    position: np.ndarray = field(default_factory=lambda: np.zeros(3, np.float32))
    """(3,) float32, m. Centre of the shape (the body origin)."""
    rotation: np.ndarray = field(default_factory=lambda: np.array([0, 0, 0, 1], np.float32))
    """(4,) float32. Orientation quaternion, xyzw (normalised here)."""
    vertices: Optional[np.ndarray] = None
    """(V, 3) float32, m, in the shape's local frame (mesh only)."""
    faces: Optional[np.ndarray] = None
    """(F, 3) int32 triangle vertex indices (mesh only)."""

    def __post_init__(self):
        if self.kind not in SHAPE_KINDS:
            raise ValidationError("kind", f"unknown shape {self.kind!r}; expected one of {', '.join(SHAPE_KINDS)}")
        need = {"box": 3, "sphere": 1, "capsule": 2, "cylinder": 2, "mesh": 0}[self.kind]
        size = tuple(float(s) for s in self.size)
        if len(size) < need or any(not math.isfinite(s) or s <= 0 for s in size[:need]):
            raise ValidationError("size", f"{self.kind} needs {need} positive lengths (m), got {self.size!r}")
        pos = np.asarray(self.position, np.float32).reshape(-1)
        rot = np.asarray(self.rotation, np.float64).reshape(-1)
        if pos.shape != (3,) or not np.all(np.isfinite(pos)):
            raise ValidationError("position", f"expected 3 finite numbers (m), got {self.position!r}")
        if rot.shape != (4,) or not np.all(np.isfinite(rot)) or np.linalg.norm(rot) < 1e-8:
            raise ValidationError("rotation", f"expected a non-zero xyzw quaternion, got {self.rotation!r}")
        if self.kind == "mesh":
            if self.vertices is None or self.faces is None:
                raise ValidationError("vertices", "a mesh shape needs vertices (V, 3) and faces (F, 3)")
            v = np.asarray(self.vertices, np.float32)
            f = np.asarray(self.faces, np.int32)
            if v.ndim != 2 or v.shape[1] != 3 or f.ndim != 2 or f.shape[1] != 3 or (f.size and f.max() >= len(v)):
                raise ValidationError("faces", "expected vertices (V, 3) and faces (F, 3) indexing them")
            object.__setattr__(self, "vertices", v)
            object.__setattr__(self, "faces", f)
        object.__setattr__(self, "size", size)
        object.__setattr__(self, "position", pos)
        object.__setattr__(self, "rotation", (rot / np.linalg.norm(rot)).astype(np.float32))


# --------------------------------------------------------------------------- rigid-fit helpers


def _real(v) -> bool:
    """A Python ``int`` or ``float`` (``numpy.float64`` is one) that is not a bool (``True`` is an ``int``; a flag
    is no stiffness)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _integer(v) -> bool:
    """A Python ``int`` that is not a bool."""
    return isinstance(v, int) and not isinstance(v, bool)


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(4,) xyzw -> (3, 3) rotation matrix."""
    x, y, z, w = (float(c) for c in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def _matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix -> (4,) xyzw quaternion with w >= 0."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(m).as_quat()
    return q if q[3] >= 0 else -q


def _connected_parts(points: np.ndarray, link: float) -> list[np.ndarray]:
    """Split ``points (n, 3)`` into connected components whose members are within ``link`` m. Returns index arrays."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(points)
    pairs = cKDTree(points).query_pairs(link, output_type="ndarray")
    g = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    k, labels = connected_components(g, directed=False)
    return [np.flatnonzero(labels == c) for c in range(k)]


def _lowest_count(z: np.ndarray, r: float) -> int:
    """How many of the heights ``z (n,)`` m lie within ``r / 2`` of the lowest: the particles a body resting on
    its bottom stands on."""
    return int(np.count_nonzero(z < z.min() + 0.5 * r))


def soft_contact_stiffness(objects: Sequence[tuple[float, int, float, float]], r: float, g: float, h: float,
                           iterations: int, sink: float = 0.1) -> float:
    """N/m: a VBD soft contact stiffness under which every soft object rests at most ``sink * r`` deep in the ground.

    Args:
        objects: per VBD object ``(mass kg, n_low, young_modulus Pa, density kg/m^3)``; ``n_low`` is how
            many of its particles it stands on (those within r/2 of its lowest, :func:`_lowest_count`).
        r: particle radius m; g: gravity's magnitude m/s^2; h: the VBD step s (``dt / vbd_steps``);
        iterations: VBD iterations per step; sink: the target resting depth in radii.

    A resting object's lowest particles carry ``w = m g / n_low`` N each when VBD converges, so a
    linear penalty ``ke`` sinks them ``w / ke``. With a fixed number of Gauss-Seidel iterations VBD does
    not converge on a stiff lattice, and the lowest particles carry ``A w``, with the load factor
    ``A = 1 + VBD_LOAD_GAIN kappa / iterations`` (measured: the excess over the weight grows as ``kappa`` and
    falls as ``1 / iterations``), where ``kappa = k h^2 / m = E h^2 / (4 rho r^2)`` is the stiffness of a
    lattice edge (``k = E 2 r``) over its particle's inertia (``m = rho (2 r)^3``) at step ``h``. Returns
    ``max(SOFT_CONTACT_KE_MIN, max_i A_i w_i / (sink r))``. VBD is implicit, so a stiffer contact
    costs no substeps (frames/s measured unchanged from 1e4 to 1e5 N/m, ``bench/vbd_contact.py``).
    """
    ke = SOFT_CONTACT_KE_MIN
    for mass, n_low, e, rho in objects:
        kappa = e * h * h / (4.0 * rho * r * r)
        load = (1.0 + VBD_LOAD_GAIN * kappa / iterations) * mass * g / max(int(n_low), 1)
        ke = max(ke, load / (sink * r))
    return float(ke)


# --------------------------------------------------------------------------- simulator


class NewtonSimulator(Dynamics):
    """Newton (XPBD rigid bodies and springs + VBD elastic solids and cloth + implicit MPM) behind :class:`Dynamics`.

    Args:
        scene: the particle scene (rest positions, objects, materials, radius, gravity, ground).
        shapes: per object, its :class:`ObjectShape` or None. Rigid objects without a shape get a
            box around their particles (grown by the radius); static ones likewise; other materials
            ignore it.
        materials: per object, its :class:`Material`; None (or a None entry) takes
            :func:`default_material` of the object's material with the scene's object density.
        tool_indices: (M,) particle indices the action drives (``Action.indices``); each
            connected part of them becomes a box body driven along the action with bounded force
            and torque (see :meth:`step`). Other kinematic particles stay put.
        config: time stepping and solver settings.
        tool_parts: optional split of the tool into rigid parts (e.g. gripper fingers): per part,
            the positions *within* ``tool_indices`` of its particles and its box shape at rest (or
            None for a box around them). Default: connected components of the tool's particles.

    The internal Newton state carries over between calls to :meth:`step` as long as
    ``state_in`` is the ``state_out`` of the previous call; any other ``state_in`` is
    loaded into Newton first (rigid poses and twists by least-squares fits).
    """

    progress_label = "simulate"

    def __init__(self, scene: ParticleScene, shapes: Optional[Sequence[Optional[ObjectShape]]] = None,
                 materials: Optional[Sequence[Optional[Material]]] = None,
                 tool_indices: Optional[np.ndarray] = None, config: SimConfig = SimConfig(),
                 tool_parts: Optional[Sequence[tuple[np.ndarray, Optional[ObjectShape]]]] = None):
        import warp as wp

        import newton

        self.scene = scene
        self.config = config
        self.dt = float(config.dt)
        k = scene.num_objects
        if shapes is not None and len(shapes) != k:
            raise ValidationError("shapes", f"expected {k} entries (one per object), got {len(shapes)}")
        if materials is not None and len(materials) != k:
            raise ValidationError("materials", f"expected {k} entries (one per object), got {len(materials)}")
        self.shapes = list(shapes) if shapes is not None else [None] * k
        self.materials = [
            (materials[i] if materials is not None and materials[i] is not None
             else default_material(m).with_(density=float(scene.object_density[i])))
            for i, m in enumerate(scene.object_material)
        ]
        n = scene.num_particles
        tool = np.zeros(0, np.int64) if tool_indices is None else np.asarray(tool_indices, np.int64).reshape(-1)
        if tool.size and (tool.min() < 0 or tool.max() >= n):
            raise ValidationError("tool_indices", f"particle indices must lie in [0, {n})")
        self.tool_indices = tool
        self.device = wp.get_device(config.device)
        #: XPBD substeps per frame actually used: config.substeps, raised for stiff spring networks.
        self.substeps = config.substeps
        r = float(scene.radius)
        pos0 = scene.positions.astype(np.float64)
        is_tool = np.zeros(n, bool)
        is_tool[tool] = True

        # role of each particle: 0 fixed, 1 tool, 2 rigid, 3 spring particle, 4 MPM, 5 VBD
        self._role = np.zeros(n, np.int8)
        b = newton.ModelBuilder()
        b.default_shape_cfg.mu = config.ground_friction
        if scene.ground is not None:
            b.add_ground_plane(height=float(scene.ground), cfg=newton.ModelBuilder.ShapeConfig(mu=config.ground_friction))

        # ---- rigid and static objects
        self._rigid_body: list[int] = []            # body index per rigid object
        self._rigid_particles: list[np.ndarray] = []
        particle_body = np.zeros(n, np.int32)
        particle_offset = np.zeros((n, 3), np.float32)
        self._has_restitution = False
        for obj in range(k):
            idx = np.flatnonzero((scene.object_id == obj) & ~is_tool)
            if idx.size == 0:
                continue
            mat_name = scene.object_material[obj]
            mat = self.materials[obj]
            kinematic = bool(np.all(scene.particle_type[idx] == KINEMATIC))
            if mat_name == "static" or (kinematic and mat_name not in MPM_MATERIALS + SPRING_MATERIALS):
                shape = self.shapes[obj] or self._box_around(pos0[idx], r)
                cfg = newton.ModelBuilder.ShapeConfig(density=0.0, mu=mat.friction, restitution=mat.restitution)
                self._add_shape(b, -1, shape, cfg, world=True)
                self._role[idx] = 0
            elif mat_name in RIGID_MATERIALS:
                shape = self.shapes[obj] or self._box_around(pos0[idx], r)
                cfg = newton.ModelBuilder.ShapeConfig(density=mat.density, mu=mat.friction, restitution=mat.restitution)
                self._has_restitution |= mat.restitution > 0
                xform = wp.transform(wp.vec3(*shape.position.tolist()), wp.quat(*shape.rotation.tolist()))
                body = b.add_body(xform=xform, label=scene.object_name[obj])
                self._add_shape(b, body, shape, cfg, world=False)
                rot = _quat_to_matrix(shape.rotation)
                particle_body[idx] = body
                particle_offset[idx] = ((pos0[idx] - shape.position) @ rot).astype(np.float32)
                self._rigid_body.append(body)
                self._rigid_particles.append(idx)
                self._role[idx] = 2

        # ---- tool parts: kinematic boxes
        self._tool_parts: list[tuple[int, np.ndarray, np.ndarray]] = []  # (body, tool-local idx, rest local offsets)
        if tool.size:
            if tool_parts is None:
                tool_parts = []
                for obj in np.unique(scene.object_id[tool]):
                    sel = np.flatnonzero(scene.object_id[tool] == obj)
                    parts = _connected_parts(pos0[tool[sel]], 3.0 * r)
                    # one part with a known shape keeps it (and its orientation); otherwise a box around the part
                    tool_parts += [(sel[part], self.shapes[obj] if len(parts) == 1 else None) for part in parts]
            for local_idx, box in tool_parts:
                local_idx = np.asarray(local_idx, np.int64)
                pts = pos0[tool[local_idx]]
                box = box if box is not None else self._box_around(pts, r)
                # the tool's friction is its object's material friction; its mass is set to config.tool_mass
                # after finalize (the shape's density only gives the inertia's proportions)
                tool_cfg = newton.ModelBuilder.ShapeConfig(density=1000.0,
                                                           mu=self.materials[int(scene.object_id[tool[local_idx[0]]])].friction)
                xform = wp.transform(wp.vec3(*box.position.tolist()), wp.quat(*box.rotation.tolist()))
                body = b.add_body(xform=xform, label=f"tool{len(self._tool_parts)}")
                self._add_shape(b, body, box, tool_cfg, world=False)
                rest = (pts - box.position) @ _quat_to_matrix(box.rotation)
                self._tool_parts.append((body, local_idx, rest))
            self._role[tool] = 1

        # ---- the tool's force limit against the substep: XPBD resolves a rigid body squeezed between
        # the tool and something else stably only while the limit accelerates the lightest rigid body
        # by less than SQUEEZE_STEP * r per substep^2 (measured: a 6 cm box of 108 g between a pusher
        # and a wall at h = 1/360 s is pinned up to 30 N, 0.23 r per substep^2, and launched from 40 N,
        # 0.29 r; a 54 g box likewise pinned at 10 N and launched at 20 N). Raise the substeps up to
        # max_substeps for it, beyond that lower the limit (with a warning).
        #: N, the drive force limit per tool part actually used (config.tool_max_force, or less, see above).
        self.tool_max_force = float(config.tool_max_force)
        if self._tool_parts and self._rigid_body:
            m_min = min(float(b.body_mass[body]) for body in self._rigid_body)
            h_max = math.sqrt(SQUEEZE_STEP * r * m_min / self.tool_max_force)
            self.substeps = max(self.substeps, min(int(math.ceil(config.dt / h_max - 1e-9)), config.max_substeps))
            h = config.dt / self.substeps
            f_stable = SQUEEZE_STEP * r * m_min / (h * h)
            if f_stable < self.tool_max_force:
                import warnings

                warnings.warn(f"tool_max_force {self.tool_max_force:.3g} N could launch the lightest rigid body "
                              f"({m_min:.3g} kg) out of a squeeze at {self.substeps} substeps; using {f_stable:.3g} N. "
                              f"Raise max_substeps for more force.", stacklevel=2)
                self.tool_max_force = f_stable

        # ---- MPM steps per frame: more when the material pushes bodies back (see SimConfig.mpm_coupled_substeps)
        has_mpm = bool(np.any(np.isin(np.asarray(scene.object_material)[scene.object_id], MPM_MATERIALS) & ~is_tool))
        #: Implicit-MPM steps per frame actually used (divides :attr:`substeps`).
        self.mpm_steps = config.mpm_substeps
        if has_mpm and config.mpm_two_way and (self._rigid_body or self._tool_parts):
            self.mpm_steps = max(self.mpm_steps, config.mpm_coupled_substeps)
        self.substeps = -(-self.substeps // self.mpm_steps) * self.mpm_steps

        # ---- elastic solids and cloth on VBD: a model of their own, with the rigid model's shapes as colliders
        particle_material = np.asarray(scene.object_material)[scene.object_id]
        vbd_materials = VBD_MATERIALS if config.soft_solver == "vbd" else ()
        meshes = self._vbd_meshes(np.flatnonzero(np.isin(particle_material, vbd_materials) & ~is_tool), r)
        vbd_idx = np.zeros(0, np.int64)
        vbd_builder = None
        if meshes:
            import copy

            vbd_builder = copy.deepcopy(b)  # ground, static shapes, rigid and tool bodies: same indices as the rigid model
            vbd_idx = self._add_vbd_objects(vbd_builder, meshes, r)
            self._vbd_mesh_objects = meshes
            self._role[vbd_idx] = 5
        self._vbd_particles = vbd_idx

        # ---- spring networks (rope; elastic and cloth with soft_solver="springs") as XPBD particles
        spring_idx = np.flatnonzero(np.isin(particle_material, SPRING_MATERIALS) & ~is_tool & (self._role != 5))
        self._spring_particles = spring_idx
        if spring_idx.size:
            from scipy.spatial import cKDTree

            start = b.particle_count
            for i in spring_idx:
                b.add_particle(wp.vec3(*pos0[i].tolist()), wp.vec3(0.0), mass=float(scene.mass[i]), radius=r)
            spacing = 2.0 * r
            self.spring_stiffness: dict[int, tuple[float, float]] = {}
            nets = []
            for obj in np.unique(scene.object_id[spring_idx]):
                loc = np.flatnonzero(scene.object_id[spring_idx] == obj)
                pairs = cKDTree(pos0[spring_idx[loc]]).query_pairs(config.spring_neighbors * spacing, output_type="ndarray")
                degree = np.bincount(pairs.reshape(-1), minlength=len(loc)).max() if len(pairs) else 1
                # a cubic lattice spring of rest length h carries stress E over area h^2: k = E h
                ke = self.materials[obj].young_modulus * spacing
                # XPBD solves springs in Jacobi sweeps: with n springs on a particle of mass m it diverges
                # once k h^2 n / m exceeds a few (measured: a 5e4 Pa ball explodes at h = 1/600 s), so
                # the substep must satisfy h^2 <= m / (k n): raise substeps up to max_substeps for it
                m_min = float(scene.mass[spring_idx[loc]].min())
                need = int(math.ceil(config.dt / math.sqrt(m_min / (ke * max(degree, 1)))))
                self.substeps = max(self.substeps, min(need, config.max_substeps))
                nets.append((obj, loc, pairs, degree, ke, m_min))
            self.substeps = -(-self.substeps // self.mpm_steps) * self.mpm_steps
            h = config.dt / self.substeps
            for obj, loc, pairs, degree, ke, m_min in nets:
                k_max = m_min / (h * h * max(degree, 1))
                if ke > k_max:
                    import warnings

                    warnings.warn(f"object {scene.object_name[obj]!r}: spring stiffness {ke:.3g} N/m (E = "
                                  f"{self.materials[obj].young_modulus:.3g} Pa) exceeds the XPBD Jacobi stability bound "
                                  f"at {self.substeps} substeps; using {k_max:.3g} N/m (E = {k_max / spacing:.3g} Pa). "
                                  f"Raise max_substeps for stiffer objects.", stacklevel=2)
                self.spring_stiffness[int(obj)] = (ke, min(ke, k_max))
                for a, c in pairs:
                    b.add_spring(start + int(loc[a]), start + int(loc[c]), min(ke, k_max), self.materials[obj].damping, 0.0)
            self._role[spring_idx] = 3
            self._spring_friction = float(np.mean([self.materials[o].friction for o in np.unique(scene.object_id[spring_idx])]))

        #: VBD steps per frame actually used (divides :attr:`substeps`); 0 without VBD objects.
        self.vbd_steps = config.vbd_substeps if vbd_idx.size else 0
        step_lcm = math.lcm(self.mpm_steps, self.vbd_steps or 1)
        self.substeps = -(-self.substeps // step_lcm) * step_lcm
        self.model = b.finalize(device=self.device)
        self.model.set_gravity(tuple(float(g) for g in scene.gravity))
        if self._tool_parts:
            self._scale_tool_mass(config.tool_mass)
        if spring_idx.size:
            self.model.soft_contact_mu = self._spring_friction
            self.model.particle_mu = self._spring_friction
            self_contact = config.spring_self_contact
            if self_contact is None:
                self_contact = not all(scene.object_material[o] == "rope" for o in np.unique(scene.object_id[spring_idx]))
            if not self_contact:  # SolverXPBD skips particle-particle contacts without a grid and radius
                self.model.particle_grid = None
                self.model.particle_max_radius = 0.0
        #: XPBD iterations per substep actually used (config.iterations, or tool_iterations with a tool and rigid bodies).
        self.iterations = max(config.iterations, config.tool_iterations) if self._tool_parts and self._rigid_body \
            else config.iterations
        self.solver = newton.solvers.SolverXPBD(
            self.model, iterations=self.iterations, enable_restitution=self._has_restitution,
            rigid_contact_con_weighting=config.rigid_contact_weighting)
        self.vbd_model = None
        self.soft_contact_ke: Optional[float] = None
        self.soft_contact_gap: Optional[float] = None
        if vbd_builder is not None:
            self._build_vbd(vbd_builder)
        self._s0, self._s1 = self.model.state(), self.model.state()
        self._control = self.model.control()
        self._pipeline = newton.CollisionPipeline(self.model)
        self._contacts = self._pipeline.contacts()

        self._rigid_idx = np.flatnonzero(self._role == 2)
        self._wp_particle_body = wp.array(particle_body[self._rigid_idx], dtype=wp.int32, device=self.device)
        self._wp_particle_offset = wp.array(particle_offset[self._rigid_idx], dtype=wp.vec3, device=self.device)
        self._wp_rx = wp.zeros(len(self._rigid_idx), dtype=wp.vec3, device=self.device)
        self._wp_rv = wp.zeros(len(self._rigid_idx), dtype=wp.vec3, device=self.device)
        self._particle_offset = particle_offset
        self._particle_body = particle_body
        if self._tool_parts:
            parts = len(self._tool_parts)
            self._wp_tool_ids = wp.array([p[0] for p in self._tool_parts], dtype=wp.int32, device=self.device)
            self._wp_drive_sum = wp.zeros(parts, dtype=wp.spatial_vector, device=self.device)
            self._wp_drive_peak = wp.zeros(parts, dtype=wp.vec2, device=self.device)
        #: Prescribed tool pose per part at the end of the last frame: [(R (3, 3), t (3,))], or None.
        self._target: Optional[list] = None
        #: Per frame stepped since the last :meth:`rollout` began (or construction), per tool part P:
        #: ``drive`` (P, 3) N, the drive force averaged over the frame (weight compensation excluded);
        #: ``peak`` (P, 2), the largest drive force (N) and torque (N m) of any substep;
        #: ``contact`` (P, 3) N, the frame-averaged force the rest of the world put on the part
        #: (``mass * dv / dt - drive``), i.e. minus what the tool pushed with.
        self.tool_log: dict[str, list[np.ndarray]] = {"drive": [], "peak": [], "contact": []}

        # ---- MPM material points
        mpm_idx = np.flatnonzero(np.isin(np.asarray(scene.object_material)[scene.object_id], MPM_MATERIALS) & ~is_tool)
        self._mpm_particles = mpm_idx
        self.mpm_model = None
        if mpm_idx.size:
            self._build_mpm(mpm_idx, r)
            self._role[mpm_idx] = 4

        self._fixed = np.flatnonzero(self._role == 0)
        self._last: Optional[tuple[np.ndarray, np.ndarray]] = None

    # ------------------------------------------------------------------ construction helpers

    def _scale_tool_mass(self, mass: float) -> None:
        """Give every tool body ``mass`` kg, scaling its shape's inertia (before the solver is made)."""
        ids = np.array([p[0] for p in self._tool_parts])
        model = self.model
        m = model.body_mass.numpy()
        inertia = model.body_inertia.numpy()
        scale = mass / m[ids]
        m[ids] = mass
        inertia[ids] *= scale[:, None, None]
        inv_m = model.body_inv_mass.numpy()
        inv_i = model.body_inv_inertia.numpy()
        inv_m[ids] = 1.0 / mass
        inv_i[ids] = np.linalg.inv(inertia[ids])
        model.body_mass.assign(m)
        model.body_inertia.assign(inertia)
        model.body_inv_mass.assign(inv_m)
        model.body_inv_inertia.assign(inv_i)

    @staticmethod
    def _box_around(points: np.ndarray, r: float) -> ObjectShape:
        lo, hi = points.min(0), points.max(0)
        return ObjectShape("box", tuple(((hi - lo) / 2 + r).tolist()), position=(lo + hi) / 2)

    @staticmethod
    def _add_shape(b, body: int, shape: ObjectShape, cfg, world: bool) -> int:
        import warp as wp

        import newton

        if world:
            xform = wp.transform(wp.vec3(*shape.position.tolist()), wp.quat(*shape.rotation.tolist()))
        else:
            xform = wp.transform_identity()
        s = shape.size
        if shape.kind == "box":
            return b.add_shape_box(body, xform=xform, hx=s[0], hy=s[1], hz=s[2], cfg=cfg)
        if shape.kind == "sphere":
            return b.add_shape_sphere(body, xform=xform, radius=s[0], cfg=cfg)
        if shape.kind == "capsule":
            return b.add_shape_capsule(body, xform=xform, radius=s[0], half_height=s[1], cfg=cfg)
        if shape.kind == "cylinder":
            return b.add_shape_cylinder(body, xform=xform, radius=s[0], half_height=s[1], cfg=cfg)
        mesh = newton.Mesh(shape.vertices, shape.faces.reshape(-1))
        return b.add_shape_mesh(body, xform=xform, mesh=mesh, cfg=cfg)

    def _vbd_meshes(self, candidates: np.ndarray, r: float) -> dict:
        """Per object among the particles ``candidates``: its VBD elements over its rest lattice, as
        ``(local particle indices, tets or None, triangles or None)``; an object some of whose particles
        no element holds (a one-particle shell, a sparse cloud) is left out, with a warning, and goes to
        the spring network instead."""
        from ._meshing import lattice_tets, sheet_triangles

        scene = self.scene
        pos0 = scene.positions.astype(np.float64)
        meshes = {}
        for obj in np.unique(scene.object_id[candidates]):
            idx = candidates[scene.object_id[candidates] == obj]
            if scene.object_material[obj] == "elastic":
                tets, tris = lattice_tets(pos0[idx], 2.0 * r), None
                held = np.unique(tets)
            else:
                tets, tris = None, sheet_triangles(pos0[idx], 2.0 * r)
                held = np.unique(tris)
            if len(held) < len(idx):
                import warnings

                warnings.warn(f"object {scene.object_name[obj]!r}: {len(idx) - len(held)} of its {len(idx)} particles lie "
                              f"in no {'tetrahedron' if tets is not None else 'triangle'} of its lattice (a shell or a sparse "
                              "cloud?); simulating it as a spring network instead of on VBD", stacklevel=3)
                continue
            meshes[int(obj)] = (idx, tets, tris)
        return meshes

    def _add_vbd_objects(self, vb, meshes: dict, r: float) -> np.ndarray:
        """Add the particles of the VBD objects ``meshes`` (from :meth:`_vbd_meshes`) to builder ``vb``
        with their elements, and return their particle indices in the order added: elastic solids as
        neo-Hookean tetrahedra (Lame parameters from E and the Poisson ratio, damping ``Material.damping``
        Pa s), cloth as membrane triangles of the lattice's thickness ``t = 2 r`` (``tri_ke = mu t``,
        ``tri_ka = lambda t`` in plane stress, N/m) with bending hinges of stiffness ``6 D / (2 r)``
        (discrete-shell hinge of a lattice square's triangles, D = ``Material.bending_stiffness`` N m)."""
        import warp as wp

        from ._meshing import bending_hinges

        scene = self.scene
        spacing = 2.0 * r
        pos0 = scene.positions.astype(np.float64)
        #: Per VBD object: its element count (tetrahedra for elastic, triangles for cloth).
        self.vbd_elements: dict[int, int] = {}
        order = []
        for obj, (idx, tets, tris) in meshes.items():
            start = vb.particle_count
            for i in idx:
                vb.add_particle(wp.vec3(*pos0[i].tolist()), wp.vec3(0.0), mass=float(scene.mass[i]), radius=r)
            order.append(idx)
            mat = self.materials[obj]
            e, nu = mat.young_modulus, mat.poisson
            mu = e / (2.0 * (1.0 + nu))
            if tets is not None:
                lam = e * nu / ((1.0 + nu) * (1.0 - 2.0 * nu))
                for t in tets:
                    vb.add_tetrahedron(*(start + int(j) for j in t), k_mu=mu, k_lambda=lam, k_damp=mat.damping)
                self.vbd_elements[obj] = len(tets)
            else:
                lam = e * nu / (1.0 - nu * nu)
                for t in tris:
                    vb.add_triangle(*(start + int(j) for j in t), tri_ke=mu * spacing, tri_ka=lam * spacing,
                                    tri_kd=mat.damping)
                for hinge in bending_hinges(tris):
                    vb.add_edge(*(start + int(j) for j in hinge), edge_ke=6.0 * mat.bending_stiffness / spacing, edge_kd=0.0)
                self.vbd_elements[obj] = len(tris)
        self._vbd_friction = float(np.mean([self.materials[o].friction for o in meshes]))
        return np.concatenate(order)

    def _build_vbd(self, vb) -> None:
        """Finalize the VBD model and its solver; the rigid bodies in it are integrated by the rigid model."""
        import warp as wp

        import newton

        cfg = self.config
        vb.color()
        self.vbd_model = vb.finalize(device=self.device)
        self.vbd_model.set_gravity(tuple(float(g) for g in self.scene.gravity))
        if cfg.soft_contact_ke is not None:
            ke = float(cfg.soft_contact_ke)
        else:
            scene, r = self.scene, float(self.scene.radius)
            objs = [(float(scene.mass[idx].sum()), _lowest_count(scene.positions[idx, 2], r),
                     self.materials[o].young_modulus, self.materials[o].density)
                    for o, (idx, _, _) in self._vbd_mesh_objects.items()]
            ke = soft_contact_stiffness(objs, r, float(np.linalg.norm(scene.gravity)),
                                        self.dt / self.vbd_steps, cfg.vbd_iterations, cfg.soft_contact_sink)
        #: N/m: VBD's soft contact stiffness actually used (``SimConfig.soft_contact_ke`` or derived); None without VBD objects.
        self.soft_contact_ke = ke
        self.vbd_model.soft_contact_ke = ke
        self.vbd_model.soft_contact_kd = 0.0
        self.vbd_model.soft_contact_mu = self._vbd_friction
        self.vbd_solver = newton.solvers.SolverVBD(self.vbd_model, iterations=cfg.vbd_iterations,
                                                   integrate_with_external_rigid_solver=True,
                                                   particle_enable_self_contact=False,
                                                   particle_enable_tile_solve=True)
        self._v0, self._v1 = self.vbd_model.state(), self.vbd_model.state()
        self._vbd_control = self.vbd_model.control()
        # contacts are found once per VBD step, within the gap: a particle that crosses more than the gap in one
        # step passes it unseen and lands inside the ground (a cloth edge whipping off a pedestal at 2.2 m/s moved
        # 18 mm a step, 8 mm deeper than r). The gap covers twice the free-fall speed from the highest soft particle.
        scene, h = self.scene, self.dt / self.vbd_steps
        floor = float(scene.ground) if scene.ground is not None else float(scene.positions[:, 2].min())
        fall = max(float(scene.positions[self._vbd_particles, 2].max()) - floor, 0.0)
        #: m: the distance within which VBD's collision pipeline finds soft contacts (at least r); None without VBD objects.
        self.soft_contact_gap = float(cfg.soft_contact_gap) if cfg.soft_contact_gap is not None else \
            max(float(scene.radius), 2.0 * math.sqrt(2.0 * float(np.linalg.norm(scene.gravity)) * fall) * h)
        self._vbd_pipeline = newton.CollisionPipeline(self.vbd_model, soft_contact_gap=self.soft_contact_gap)
        self._vbd_contacts = self._vbd_pipeline.contacts()
        #: the wrench the soft particles' contacts put on each body during the last substep (N, N m)
        self._wp_vbd_f = wp.zeros(max(self.model.body_count, 1), dtype=wp.spatial_vector, device=self.device)
        self._wp_vbd_body_q = wp.zeros(max(self.model.body_count, 1), dtype=wp.transform, device=self.device)
        self._wp_vbd_body_qd = wp.zeros(max(self.model.body_count, 1), dtype=wp.spatial_vector, device=self.device)

    def _build_mpm(self, mpm_idx: np.ndarray, r: float) -> None:
        import warp as wp

        import newton
        from newton.solvers import SolverImplicitMPM

        scene, cfg = self.scene, self.config
        sb = newton.ModelBuilder()
        SolverImplicitMPM.register_custom_attributes(sb)
        for i in mpm_idx:
            sb.add_particle(wp.vec3(*scene.positions[i].tolist()), wp.vec3(0.0), mass=float(scene.mass[i]), radius=r)
        self.mpm_model = sb.finalize(device=self.device)
        self.mpm_model.set_gravity(tuple(float(g) for g in scene.gravity))
        objs = scene.object_id[mpm_idx]
        per = {name: np.array([getattr(self.materials[o], attr) for o in objs], np.float32)
               for name, attr in (("friction", "friction"), ("young_modulus", "young_modulus"),
                                  ("poisson_ratio", "poisson"), ("yield_stress", "yield_stress"),
                                  ("viscosity", "viscosity"))}
        for name, values in per.items():
            getattr(self.mpm_model.mpm, name).assign(values)
        mats = np.asarray(scene.object_material)[objs]
        # granular matter has no cohesion (tensile yield 0) and no compressive yield limit;
        # plastic and fluid yield under pressure at their yield stress
        yp = np.where(mats == "granular", 1.0e12, np.maximum(per["yield_stress"], 1.0)).astype(np.float32)
        self.mpm_model.mpm.yield_pressure.assign(yp)
        self.mpm_model.mpm.tensile_yield_ratio.assign(np.zeros(len(mpm_idx), np.float32))
        mcfg = SolverImplicitMPM.Config()
        mcfg.voxel_size = cfg.mpm_voxel * r
        mcfg.max_iterations = cfg.mpm_iterations
        mcfg.tolerance = 1.0e-5
        self.mpm_solver = SolverImplicitMPM(self.mpm_model, config=mcfg)
        # every shape of the rigid model is a collider; its surface is pushed out by one particle
        # radius so material points keep their centres r away from it, as lifted particles do
        self.mpm_solver.setup_collider(model=self.model)
        count = len(self.mpm_solver._mpm_model.collider_material_ranges)
        self.mpm_solver.setup_collider(model=self.model, collider_margins=[r] * count)
        self._m0, self._m1 = self.mpm_model.state(), self.mpm_model.state()
        # two-way coupling: the wrench the material put on each body at the last MPM step (N, N m), and
        # the body twists the MPM step sees (the rigid model's, less what that wrench added since)
        nb = max(self.model.body_count, 1)
        self._wp_mpm_f = wp.zeros(nb, dtype=wp.spatial_vector, device=self.device)
        self._wp_mpm_qd = wp.zeros(nb, dtype=wp.spatial_vector, device=self.device)
        self._mpm_coupled = bool(cfg.mpm_two_way and self.model.body_count)

    # ------------------------------------------------------------------ state transfer

    def _tool_pose(self, part: int, tool_positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _, local_idx, rest = self._tool_parts[part]
        return kabsch(rest, tool_positions[local_idx])

    def _load(self, state: ParticleState) -> None:
        """Put ``state`` (particle positions/velocities) into the Newton states."""
        x = state.positions.astype(np.float64)
        v = state.velocities.astype(np.float64)
        if self.model.body_count:
            self._load_bodies(x, v)
        if self._spring_particles.size:
            self._s0.particle_q.assign(x[self._spring_particles].astype(np.float32))
            self._s0.particle_qd.assign(v[self._spring_particles].astype(np.float32))
        if self.vbd_model is not None:
            self._v0.particle_q.assign(x[self._vbd_particles].astype(np.float32))
            self._v0.particle_qd.assign(v[self._vbd_particles].astype(np.float32))
            self._wp_vbd_f.zero_()
        if self.mpm_model is not None:
            self._m0 = self.mpm_model.state()
            self._m1 = self.mpm_model.state()
            self._m0.particle_q.assign(x[self._mpm_particles].astype(np.float32))
            self._m0.particle_qd.assign(v[self._mpm_particles].astype(np.float32))
            self._wp_mpm_f.zero_()  # a loaded state carries no contact impulse of its own

    def _load_bodies(self, x: np.ndarray, v: np.ndarray) -> None:
        """Rigid poses and twists by least-squares fits to particle positions ``x`` and velocities ``v``."""
        q = self._s0.body_q.numpy()
        qd = self._s0.body_qd.numpy()
        com = self.model.body_com.numpy()
        for body, idx in zip(self._rigid_body, self._rigid_particles):
            rot, t = kabsch(self._particle_offset[idx], x[idx])
            q[body, :3] = t
            q[body, 3:] = _matrix_to_quat(rot)
            # least-squares twist: v_i = v_c + w x (x_i - c)
            c = rot @ com[body] + t
            rel = x[idx] - c
            a = np.zeros((3 * len(idx), 6))
            a[:, :3] = np.tile(np.eye(3), (len(idx), 1))
            for j, (rx, ry, rz) in enumerate(rel):
                a[3 * j:3 * j + 3, 3:] = [[0, rz, -ry], [-rz, 0, rx], [ry, -rx, 0]]
            sol = np.linalg.lstsq(a, v[idx].reshape(-1), rcond=None)[0] if len(idx) >= 3 else np.r_[v[idx].mean(0), 0, 0, 0]
            qd[body] = sol
        tool_x = x[self.tool_indices] if self.tool_indices.size else None
        tool_v = v[self.tool_indices] if self.tool_indices.size else None
        self._target = []
        for p, (body, local_idx, _) in enumerate(self._tool_parts):
            rot, t = self._tool_pose(p, tool_x)
            q[body, :3] = t
            q[body, 3:] = _matrix_to_quat(rot)
            qd[body] = 0.0
            qd[body, :3] = tool_v[local_idx].mean(0)
            self._target.append((rot, t))
        self._s0.body_q.assign(q)
        self._s0.body_qd.assign(qd)

    def _read(self, state_out: ParticleState, control: Optional[np.ndarray], dt: float) -> None:
        import warp as wp

        from ._kernels import rigid_particle_states

        x = state_out.positions
        v = state_out.velocities
        x[self._fixed] = self.scene.positions[self._fixed]
        v[self._fixed] = 0.0
        if self._rigid_idx.size:
            wp.launch(rigid_particle_states, dim=len(self._rigid_idx),
                      inputs=[self._s0.body_q, self._s0.body_qd, self.model.body_com, self._wp_particle_body,
                              self._wp_particle_offset],
                      outputs=[self._wp_rx, self._wp_rv], device=self.device)
            x[self._rigid_idx] = self._wp_rx.numpy()
            v[self._rigid_idx] = self._wp_rv.numpy()
        if self._tool_parts:
            q = self._s0.body_q.numpy()
            qd = self._s0.body_qd.numpy()
            com = self.model.body_com.numpy()
            for body, local_idx, rest in self._tool_parts:
                rot = _quat_to_matrix(q[body, 3:])
                pts = rest @ rot.T + q[body, :3]
                idx = self.tool_indices[local_idx]
                x[idx] = pts
                v[idx] = qd[body, :3] + np.cross(qd[body, 3:], pts - (rot @ com[body] + q[body, :3]))
        if self._spring_particles.size:
            x[self._spring_particles] = self._s0.particle_q.numpy()
            v[self._spring_particles] = self._s0.particle_qd.numpy()
        if self._vbd_particles.size:
            x[self._vbd_particles] = self._v0.particle_q.numpy()
            v[self._vbd_particles] = self._v0.particle_qd.numpy()
        if self._mpm_particles.size:
            x[self._mpm_particles] = self._m0.particle_q.numpy()
            v[self._mpm_particles] = self._m0.particle_qd.numpy()

    # ------------------------------------------------------------------ stepping

    def _step_vbd(self, h: float) -> None:
        """One VBD step of ``h`` s of the soft particles against the bodies' move over the rigid
        substeps just taken (from the poses saved where it began to ``_s1``), then the reaction of
        their contacts on the bodies, applied over the next VBD step's rigid substeps
        (:func:`dynamics.sim._kernels.soft_contact_reaction`)."""
        import warp as wp

        from ._kernels import soft_contact_reaction

        v0, v1 = self._v0, self._v1
        if self.model.body_count:
            v0.body_q, v0.body_qd = self._wp_vbd_body_q, self._wp_vbd_body_qd
            v1.body_q, v1.body_qd = self._s1.body_q, self._s1.body_qd
        v0.clear_forces()
        self._vbd_pipeline.collide(v0, self._vbd_contacts)
        self.vbd_solver.step(v0, v1, self._vbd_control, self._vbd_contacts, h)
        if self.model.body_count:
            m, c = self.vbd_model, self._vbd_contacts
            self._wp_vbd_f.zero_()
            wp.launch(soft_contact_reaction, dim=c.soft_contact_max,
                      inputs=[c.soft_contact_count, c.soft_contact_particle, c.soft_contact_shape, c.soft_contact_body_pos,
                              c.soft_contact_body_vel, c.soft_contact_normal, v1.particle_q, v0.particle_q,
                              m.particle_radius, m.shape_material_mu, m.shape_body, v1.body_q, v0.body_q, v1.body_qd,
                              m.body_com, m.shape_margin, m.body_inv_mass, float(m.soft_contact_ke),
                              float(m.soft_contact_kd), float(m.soft_contact_mu), float(self.vbd_solver.friction_epsilon),
                              float(h)],
                      outputs=[self._wp_vbd_f], device=self.device)
        self._v0, self._v1 = v1, v0

    def rollout(self, action, steps, state0=None, progress=False):
        """:meth:`Dynamics.rollout`, with :attr:`tool_log` restarted for it (one entry per frame after the first)."""
        self.tool_log = {key: [] for key in self.tool_log}
        return super().rollout(action, steps, state0, progress)

    def step(self, state_in: ParticleState, state_out: ParticleState, control: Optional[np.ndarray], dt: float) -> None:
        """Advance one frame of ``dt`` s (see :meth:`Dynamics.step`); ``control`` (M, 3) m are the
        tool particles' prescribed positions at the end of the frame, in ``tool_indices`` order.

        Each tool part is a dynamic body driven towards its prescribed pose (moving from the last
        frame's prescribed pose to ``control``'s, slerped over the substeps) by a bounded deadbeat PD
        drive (:func:`dynamics.sim._kernels.tool_drive`): below ``config.tool_max_force`` and
        ``tool_max_torque`` it lands on the path every substep, above them it pushes with the limit
        and lags. ``state_out`` holds the tool where it really is; the drive and contact forces of
        the frame are appended to :attr:`tool_log`."""
        import warp as wp

        from ._kernels import add_wrench, mpm_body_wrench, remove_body_wrench, tool_drive

        cfg = self.config
        if dt <= 0 or not math.isfinite(dt):
            raise ValidationError("dt", f"must be a positive time in s, got {dt!r}")
        if self._last is None or not (np.array_equal(state_in.positions, self._last[0])
                                      and np.array_equal(state_in.velocities, self._last[1])):
            self._load(state_in)
        m = self.tool_indices.size
        h = dt / self.substeps
        if m:
            from scipy.spatial.transform import Rotation, Slerp

            poses0 = self._target
            if control is None:
                poses1 = list(poses0)
            else:
                control = np.asarray(control, np.float64)
                if control.shape != (m, 3):
                    raise ValidationError("control", f"expected tool positions of shape ({m}, 3), got {control.shape}")
                poses1 = [self._tool_pose(p, control) for p in range(len(self._tool_parts))]
            slerps = [Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([r0, r1]))) for (r0, _), (r1, _) in zip(poses0, poses1)]
            fractions = np.arange(0, self.substeps + 1) / self.substeps
            # prescribed pose per substep boundary and part: (substeps + 1, P, 7) p, q xyzw
            targets = np.zeros((self.substeps + 1, len(poses0), 7), np.float32)
            for p, ((_, t0), (_, t1)) in enumerate(zip(poses0, poses1)):
                targets[:, p, :3] = t0 + fractions[:, None] * (t1 - t0)
                targets[:, p, 3:] = slerps[p](fractions).as_quat()
            wp_targets = wp.array(targets.reshape(-1, 7), dtype=wp.transform, device=self.device)
            self._wp_drive_sum.zero_()
            self._wp_drive_peak.zero_()
            ids = [body for body, _, _ in self._tool_parts]
            v_start = self._s0.body_qd.numpy()[ids, :3].astype(np.float64)
            gravity = wp.vec3(*(float(g) for g in self.scene.gravity))
            parts = len(poses0)

        mpm_every = self.substeps // self.mpm_steps
        vbd_every = self.substeps // max(self.vbd_steps, 1)
        for k in range(self.substeps):
            if self.mpm_model is not None and k % mpm_every == 0:
                big_h = h * mpm_every
                body_qd = self._s0.body_qd
                if self._mpm_coupled:
                    wp.launch(remove_body_wrench, dim=self.model.body_count,
                              inputs=[self._s0.body_q, self._s0.body_qd, self._wp_mpm_f, self.model.body_inv_mass,
                                      self.model.body_inv_inertia, float(big_h)],
                              outputs=[self._wp_mpm_qd], device=self.device)
                    body_qd = self._wp_mpm_qd
                for ms in (self._m0, self._m1):  # colliders follow the rigid model's bodies
                    ms.body_q = self._s0.body_q
                    ms.body_qd = body_qd
                self.mpm_solver.step(self._m0, self._m1, None, None, big_h)
                self.mpm_solver.project_outside(self._m1, self._m1, big_h)
                if self._mpm_coupled:
                    impulses, where, node_collider = self.mpm_solver.collect_collider_impulses(self._m1)
                    self._wp_mpm_f.zero_()
                    wp.launch(mpm_body_wrench, dim=min(impulses.shape[0], node_collider.shape[0]),
                              inputs=[node_collider, impulses, where, self.mpm_solver.collider_body_index, self._s0.body_q,
                                      self.model.body_com, float(big_h)],
                              outputs=[self._wp_mpm_f], device=self.device)
                self._m0, self._m1 = self._m1, self._m0
            self._s0.clear_forces()
            if self.mpm_model is not None and self._mpm_coupled:
                wp.copy(self._s0.body_f, self._wp_mpm_f)
            if self.vbd_model is not None and self.model.body_count:
                wp.launch(add_wrench, dim=self.model.body_count, inputs=[self._wp_vbd_f], outputs=[self._s0.body_f],
                          device=self.device)
            if m:
                wp.launch(tool_drive, dim=parts,
                          inputs=[self._wp_tool_ids, wp_targets[k * parts:(k + 1) * parts],
                                  wp_targets[(k + 1) * parts:(k + 2) * parts], self._s0.body_q,
                                  self._s0.body_qd, self.model.body_com, self.model.body_mass, self.model.body_inertia,
                                  gravity, self.tool_max_force, float(cfg.tool_max_torque),
                                  float(cfg.tool_catchup_speed), float(h)],
                          outputs=[self._s0.body_f, self._wp_drive_sum, self._wp_drive_peak], device=self.device)
            self._pipeline.collide(self._s0, self._contacts)
            if self.vbd_model is not None and k % vbd_every == 0 and self.model.body_count:
                wp.copy(self._wp_vbd_body_q, self._s0.body_q)  # the bodies' poses where the VBD step begins
                wp.copy(self._wp_vbd_body_qd, self._s0.body_qd)
            self.solver.step(self._s0, self._s1, self._control, self._contacts, h)
            if self.vbd_model is not None and (k + 1) % vbd_every == 0:
                self._step_vbd(h * vbd_every)
            self._s0, self._s1 = self._s1, self._s0
        self._read(state_out, control, dt)
        if m:
            self._target = poses1
            drive = self._wp_drive_sum.numpy()[:, :3].astype(np.float64) / self.substeps
            v_end = self._s0.body_qd.numpy()[ids, :3].astype(np.float64)
            mass = self.model.body_mass.numpy()[ids].astype(np.float64)
            self.tool_log["drive"].append(drive.astype(np.float32))
            self.tool_log["peak"].append(self._wp_drive_peak.numpy().astype(np.float32))
            self.tool_log["contact"].append((mass[:, None] * (v_end - v_start) / dt - drive).astype(np.float32))
        self._last = (state_out.positions.copy(), state_out.velocities.copy())
