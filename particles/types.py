"""Core types shared by every worldline package.

The split follows Newton and MuJoCo: what never changes during a rollout lives in
:class:`ParticleScene` (the model), what changes lives in :class:`ParticleState`,
and what the user commands lives in :class:`Action` (the control). A
:class:`Rollout` is a scene plus a trajectory of positions.

All arrays are NumPy arrays, SI units, right-handed, z up. Every constructor
validates its fields in ``__post_init__`` and raises :class:`ValidationError`
naming the offending field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

__all__ = [
    "MATERIALS",
    "KINEMATIC",
    "MATERIAL_TYPE",
    "GRAVITY",
    "ValidationError",
    "ParticleScene",
    "ParticleState",
    "Action",
    "Rollout",
    "KeypointGraph",
    "material_particle_type",
]

#: The closed list of object materials (docs/ARCHITECTURE.md).
MATERIALS: tuple[str, ...] = ("rigid", "elastic", "plastic", "granular", "fluid", "cloth", "rope", "static")

#: GNS particle-type code of kinematic particles (tool, boundaries): their positions are prescribed.
KINEMATIC: int = 3

#: GNS-style particle-type codes per material. 5/6/7 are the codes the GNS datasets use
#: for water, sand and goop; static boundaries are kinematic (3), as in GNS; the rest extend the list.
MATERIAL_TYPE: dict[str, int] = {
    "static": KINEMATIC,
    "fluid": 5,
    "granular": 6,
    "plastic": 7,
    "rigid": 8,
    "elastic": 9,
    "cloth": 10,
    "rope": 11,
}

#: Default gravity, m/s^2, z up.
GRAVITY: tuple[float, float, float] = (0.0, 0.0, -9.81)


class ValidationError(ValueError):
    """A field of a worldline type (or file) is invalid. The message names the field."""

    def __init__(self, field_name: str, problem: str):
        self.field = field_name
        self.problem = problem
        super().__init__(f"{field_name}: {problem}")


def material_particle_type(material: str) -> int:
    """GNS particle-type code of a material (see :data:`MATERIAL_TYPE`)."""
    if material not in MATERIAL_TYPE:
        raise ValidationError("material", f"unknown material {material!r}; expected one of {', '.join(MATERIALS)}")
    return MATERIAL_TYPE[material]


# --------------------------------------------------------------------------- validation helpers


def _as_array(name: str, value, dtype, shape: tuple, finite: bool = True) -> np.ndarray:
    """Coerce ``value`` to a C-contiguous array of ``dtype`` and check its shape.

    ``shape`` holds ints for fixed sizes and ``None`` for free ones.
    """
    try:
        arr = np.asarray(value)
    except Exception as exc:  # pragma: no cover - numpy raises many things
        raise ValidationError(name, f"cannot be read as an array ({exc})") from None
    if arr.dtype == object:
        raise ValidationError(name, "is an object array; expected numbers")
    if np.issubdtype(dtype, np.integer):
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise ValidationError(name, f"expected integers, got dtype {arr.dtype}")
    elif not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool or arr.size == 0):
        raise ValidationError(name, f"expected numbers, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=dtype)
    if arr.ndim != len(shape) or any(s is not None and s != a for s, a in zip(shape, arr.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValidationError(name, f"expected shape {want}, got {tuple(arr.shape)}")
    if finite and np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        raise ValidationError(name, "contains NaN or infinite values")
    return arr


def _check_materials(name: str, materials: Sequence[str]) -> tuple[str, ...]:
    out = tuple(str(m) for m in materials)
    for k, m in enumerate(out):
        if m not in MATERIALS:
            raise ValidationError(f"{name}[{k}]", f"unknown material {m!r}; expected one of {', '.join(MATERIALS)}")
    return out


def _check_object_ids(object_id: np.ndarray, num_objects: int) -> None:
    if object_id.size and (object_id.min() < 0 or object_id.max() >= num_objects):
        raise ValidationError(
            "object_id", f"ids must lie in [0, {num_objects}) (one per object_material entry), got range [{object_id.min()}, {object_id.max()}]"
        )


# --------------------------------------------------------------------------- types


@dataclass(frozen=True, eq=False)
class ParticleScene:
    """What never changes during a rollout: particles, objects, materials, world.

    Particles are spheres of radius ``radius`` whose centres lie at least ``radius``
    inside their object, so touching objects have centres about ``2 * radius`` apart.
    """

    positions: np.ndarray
    """(N, 3) float32, m. Rest (initial) particle centres."""
    object_id: np.ndarray
    """(N,) int32. Object index of each particle, in ``[0, K)``."""
    object_material: tuple[str, ...]
    """(K,) str. Material of each object, one of :data:`MATERIALS`."""
    radius: float
    """Particle radius, m (> 0). Half the particle spacing."""
    particle_type: Optional[np.ndarray] = None
    """(N,) int32. GNS particle-type code; defaults to the object's material code (:data:`MATERIAL_TYPE`)."""
    mass: Optional[np.ndarray] = None
    """(N,) float32, kg (> 0). Defaults to density * (2 r)^3 with ``object_density``."""
    object_density: Optional[np.ndarray] = None
    """(K,) float32, kg/m^3 (> 0). Defaults to 1000 for every object."""
    object_name: Optional[tuple[str, ...]] = None
    """(K,) str. Human-readable object names; defaults to ``object<k>``."""
    gravity: np.ndarray = field(default_factory=lambda: np.asarray(GRAVITY, np.float32))
    """(3,) float32, m/s^2."""
    ground: Optional[float] = 0.0
    """z of the ground plane, m, or None for no ground."""
    object_friction: Optional[np.ndarray] = None
    """(K,) float32 (>= 0). Coulomb friction coefficient of each object; defaults to 0.5 (the scene-file default)."""
    object_restitution: Optional[np.ndarray] = None
    """(K,) float32 (>= 0). Coefficient of restitution of each object; defaults to 0."""
    object_stiffness: Optional[np.ndarray] = None
    """(K,) float32, Pa (> 0). Young's modulus of each object; defaults to 1e5 (the scene-file default)."""

    def __post_init__(self):
        pos = _as_array("positions", self.positions, np.float32, (None, 3))
        n = pos.shape[0]
        oid = _as_array("object_id", self.object_id, np.int32, (n,))
        mats = _check_materials("object_material", self.object_material)
        k = len(mats)
        _check_object_ids(oid, k)
        r = float(self.radius)
        if not np.isfinite(r) or r <= 0:
            raise ValidationError("radius", f"must be a positive finite length in m, got {self.radius!r}")
        if self.particle_type is None:
            codes = np.array([MATERIAL_TYPE[m] for m in mats], np.int32)
            ptype = codes[oid] if n else np.zeros(0, np.int32)
        else:
            ptype = _as_array("particle_type", self.particle_type, np.int32, (n,))
        if self.object_density is None:
            dens = np.full(k, 1000.0, np.float32)
        else:
            dens = _as_array("object_density", self.object_density, np.float32, (k,))
            if np.any(dens <= 0):
                raise ValidationError("object_density", "must be positive (kg/m^3)")
        if self.mass is None:
            mass = (dens[oid] * (2.0 * r) ** 3).astype(np.float32) if n else np.zeros(0, np.float32)
        else:
            mass = _as_array("mass", self.mass, np.float32, (n,))
            if np.any(mass <= 0):
                raise ValidationError("mass", "must be positive (kg)")
        names = tuple(f"object{i}" for i in range(k)) if self.object_name is None else tuple(str(s) for s in self.object_name)
        if len(names) != k:
            raise ValidationError("object_name", f"expected {k} names (one per object), got {len(names)}")
        grav = _as_array("gravity", self.gravity, np.float32, (3,))
        ground = None if self.ground is None else float(self.ground)
        if ground is not None and not np.isfinite(ground):
            raise ValidationError("ground", "must be finite (m) or None")
        for name, value in (
            ("positions", pos), ("object_id", oid), ("object_material", mats), ("radius", r), ("particle_type", ptype),
            ("mass", mass), ("object_density", dens), ("object_name", names), ("gravity", grav), ("ground", ground),
        ):
            object.__setattr__(self, name, value)
        for name, default, ok, rule in (("object_friction", 0.5, lambda a: a >= 0, "must be >= 0"),
                                        ("object_restitution", 0.0, lambda a: a >= 0, "must be >= 0"),
                                        ("object_stiffness", 1.0e5, lambda a: a > 0, "must be positive (Pa)")):
            value = getattr(self, name)
            arr = np.full(k, default, np.float32) if value is None else _as_array(name, value, np.float32, (k,))
            if not np.all(np.isfinite(arr) & ok(arr)):
                raise ValidationError(name, rule)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        for arr in (pos, oid, ptype, mass, dens, grav):
            arr.setflags(write=False)

    @property
    def num_particles(self) -> int:
        """N, the number of particles."""
        return int(self.positions.shape[0])

    @property
    def num_objects(self) -> int:
        """K, the number of objects."""
        return len(self.object_material)

    @property
    def kinematic(self) -> np.ndarray:
        """(N,) bool. True for particles whose positions are prescribed (tool, static)."""
        return self.particle_type == KINEMATIC

    def object_indices(self, k: int) -> np.ndarray:
        """(n_k,) int64. Indices of the particles of object ``k``."""
        return np.flatnonzero(self.object_id == k)

    def replace(self, **changes) -> "ParticleScene":
        """A copy with some fields replaced (validated again)."""
        fields = {f: getattr(self, f) for f in self.__dataclass_fields__}
        fields.update(changes)
        return ParticleScene(**fields)


@dataclass(frozen=True, eq=False)
class ParticleState:
    """What changes during a rollout."""

    positions: np.ndarray
    """(N, 3) float32, m."""
    velocities: np.ndarray
    """(N, 3) float32, m/s."""
    history: Optional[np.ndarray] = None
    """(H, N, 3) float32, m, or None. Positions of the H frames before this one, oldest
    first, for learned models that read a velocity history; simulators ignore it."""

    def __post_init__(self):
        pos = _as_array("positions", self.positions, np.float32, (None, 3))
        vel = _as_array("velocities", self.velocities, np.float32, (pos.shape[0], 3))
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "velocities", vel)
        if self.history is not None:
            object.__setattr__(self, "history", _as_array("history", self.history, np.float32, (None, pos.shape[0], 3)))

    @classmethod
    def at_rest(cls, scene: ParticleScene) -> "ParticleState":
        """The scene's rest positions with zero velocity."""
        return cls(scene.positions.copy(), np.zeros_like(scene.positions))


@dataclass(frozen=True, eq=False)
class Action:
    """The user's command: prescribed positions of kinematic (tool) particles per frame.

    A robot is a set of points that moves: ``positions[t]`` is where the particles
    ``indices`` of the scene are at frame ``t``. Frame 0 is the initial state.
    """

    indices: np.ndarray
    """(M,) int64. Scene particle indices of the tool's particles."""
    positions: np.ndarray
    """(T, M, 3) float32, m. Tool particle positions per frame."""

    def __post_init__(self):
        idx = _as_array("indices", self.indices, np.int64, (None,))
        pos = _as_array("positions", self.positions, np.float32, (None, idx.shape[0], 3))
        if idx.size and idx.min() < 0:
            raise ValidationError("indices", "must be non-negative particle indices")
        if len(np.unique(idx)) != len(idx):
            raise ValidationError("indices", "must not repeat a particle")
        object.__setattr__(self, "indices", idx)
        object.__setattr__(self, "positions", pos)

    @property
    def num_frames(self) -> int:
        """T, the number of frames the action covers."""
        return int(self.positions.shape[0])

    def velocities(self, dt: float) -> np.ndarray:
        """(T-1, M, 3) float32, m/s. Finite-difference tool velocities between frames."""
        return (np.diff(self.positions, axis=0) / float(dt)).astype(np.float32)


@dataclass(frozen=True, eq=False)
class Rollout:
    """A scene and the positions of all its particles over time.

    ``positions[0]`` need not equal ``scene.positions`` (the scene holds rest positions).
    """

    scene: ParticleScene
    """The model: objects, materials, radius, gravity, ground."""
    positions: np.ndarray
    """(T, N, 3) float32, m. Particle positions per frame; may hold NaN (a glitch the critic reports)."""
    dt: float
    """Time between frames, s (> 0)."""
    missing: tuple[str, ...] = ()
    """Scene fields the source file lacked and that were filled with defaults
    (e.g. ``object_id``); checks that need them are skipped. Empty for our own files."""
    visibility: Optional[np.ndarray] = None
    """(T, N) bool, or None (every particle seen in every frame). Which particles were observed in
    each frame (point tracks from video: occluded points are missing data, not vanished ones); the
    positions of unobserved ones are fills, which the critic does not judge (docs/ARCHITECTURE.md)."""

    def __post_init__(self):
        object.__setattr__(self, "missing", tuple(self.missing))
        n = self.scene.num_particles
        pos = _as_array("positions", self.positions, np.float32, (None, n, 3), finite=False)
        dt = float(self.dt)
        if not np.isfinite(dt) or dt <= 0:
            raise ValidationError("dt", f"must be a positive time step in s, got {self.dt!r}")
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "dt", dt)
        if self.visibility is not None:
            vis = np.asarray(self.visibility)
            if vis.dtype != np.bool_:
                raise ValidationError("visibility", f"expected bool, got dtype {vis.dtype}")
            if vis.shape != pos.shape[:2]:
                raise ValidationError("visibility", f"expected shape {pos.shape[:2]} (T, N) like positions, "
                                                    f"got {vis.shape}")
            object.__setattr__(self, "visibility", vis)

    @property
    def num_frames(self) -> int:
        """T, the number of frames."""
        return int(self.positions.shape[0])

    @property
    def times(self) -> np.ndarray:
        """(T,) float64, s. Time of each frame."""
        return np.arange(self.num_frames) * self.dt


@dataclass(frozen=True, eq=False)
class KeypointGraph:
    """Sparse control points of a scene and the skinning that ties particles to them.

    A motion of the keypoints moves the particles by linear blend skinning of
    displacements: ``x_i' = x_i + sum_s w[i, s] * (k'[idx[i, s]] - k[idx[i, s]])`` for
    translations, or of per-keypoint rigid transforms (see :mod:`particles.keypoints`).
    """

    positions: np.ndarray
    """(P, 3) float32, m. Keypoint positions."""
    object_id: np.ndarray
    """(P,) int32. Object of each keypoint."""
    particle_index: np.ndarray
    """(P,) int64. The scene particle each keypoint was picked at."""
    skin_index: np.ndarray
    """(N, S) int64. For each particle, the S keypoints (of its own object) it follows."""
    skin_weight: np.ndarray
    """(N, S) float32. Non-negative skinning weights; each row sums to 1."""
    edges: np.ndarray
    """(E, 2) int64. Directed keypoint-to-keypoint edges within each object."""

    def __post_init__(self):
        pos = _as_array("positions", self.positions, np.float32, (None, 3))
        p = pos.shape[0]
        oid = _as_array("object_id", self.object_id, np.int32, (p,))
        pidx = _as_array("particle_index", self.particle_index, np.int64, (p,))
        sidx = _as_array("skin_index", self.skin_index, np.int64, (None, None))
        sw = _as_array("skin_weight", self.skin_weight, np.float32, sidx.shape)
        edges = _as_array("edges", self.edges, np.int64, (None, 2))
        if sidx.size and (sidx.min() < 0 or sidx.max() >= p):
            raise ValidationError("skin_index", f"keypoint ids must lie in [0, {p})")
        if edges.size and (edges.min() < 0 or edges.max() >= p):
            raise ValidationError("edges", f"keypoint ids must lie in [0, {p})")
        if np.any(sw < 0) or (sw.shape[0] and not np.allclose(sw.sum(1), 1.0, atol=1e-4)):
            raise ValidationError("skin_weight", "weights must be non-negative and each row must sum to 1")
        for name, value in (("positions", pos), ("object_id", oid), ("particle_index", pidx), ("skin_index", sidx),
                            ("skin_weight", sw), ("edges", edges)):
            object.__setattr__(self, name, value)

    @property
    def num_keypoints(self) -> int:
        """P, the number of keypoints."""
        return int(self.positions.shape[0])
