"""Scene files: a small TOML format listing objects, a tool, the ground and gravity.

Example (every key documented in README.md, "Scene files")::

    [world]
    spacing = 0.02              # m, particle diameter; particle radius = spacing / 2
    gravity = [0.0, 0.0, -9.81] # m/s^2
    ground = 0.0                # z of the ground plane (m); false for none
    seed = 0

    [[object]]
    name = "box"
    shape = "box"               # box | sphere | capsule | cylinder | sheet | rope | mesh
    size = [0.2, 0.2, 0.2]      # see SHAPE_SIZES
    position = [0.0, 0.0, 0.1]  # m, centre of the shape
    rotation = [0, 0, 0, 1]     # quaternion (x, y, z, w); or euler_deg = [rx, ry, rz]
    material = "rigid"
    density = 500.0             # kg/m^3

    [tool]
    shape = "pusher"            # pusher | gripper
    size = [0.04, 0.2, 0.1]     # m, extents of the pusher (or of one gripper finger)
    path = [{t = 0.0, position = [-0.3, 0.0, 0.06]}, {t = 1.0, position = [0.1, 0.0, 0.06]}]

Errors are :class:`particles.io.FileFormatError` naming the file and the field
(``object[1].size``).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .io import FileFormatError
from .types import GRAVITY, MATERIALS

__all__ = ["ObjectSpec", "ToolSpec", "Waypoint", "GoalSpec", "SceneSpec", "load_scene_file", "parse_scene", "parse_goal",
           "SHAPES", "SHAPE_SIZES", "GOAL_DEFAULTS",
           "ParticleEstimate", "estimate_particles", "check_particle_budget", "TooManyParticles",
           "DEFAULT_MAX_PARTICLES", "rollout_bytes", "physical_memory"]

#: Object shapes a scene file may name.
SHAPES = ("box", "sphere", "capsule", "cylinder", "sheet", "rope", "mesh")

#: What ``size`` means per shape (all in m).
SHAPE_SIZES = {
    "box": "[sx, sy, sz] full extents",
    "sphere": "[radius]",
    "capsule": "[radius, length] (length of the cylindrical part, along local z)",
    "cylinder": "[radius, height] (along local z)",
    "sheet": "[sx, sy] extents of a one-particle-thick sheet in the local xy plane (cloth)",
    "rope": "[length] along local x, one particle thick",
    "mesh": "not used; give mesh = 'file' and scale",
}
_SIZE_LEN = {"box": 3, "sphere": 1, "capsule": 2, "cylinder": 2, "sheet": 2, "rope": 1}

#: Default material parameters (SI). Used when a scene file does not set them.
DEFAULTS = {
    "density": 1000.0,  # kg/m^3
    "friction": 0.5,  # Coulomb coefficient, -
    "restitution": 0.0,  # -
    "youngs_modulus": 1.0e5,  # Pa, for deformable materials
    "poisson_ratio": 0.3,  # -
}


@dataclass(frozen=True)
class ObjectSpec:
    """One object of a scene file, in its own local frame placed by ``position`` and ``rotation``."""

    name: str
    shape: str
    """One of :data:`SHAPES`."""
    material: str
    """One of :data:`particles.MATERIALS`."""
    size: tuple[float, ...] = ()
    """Shape size in m, see :data:`SHAPE_SIZES`."""
    mesh: Optional[Path] = None
    """Mesh file (OBJ/STL/PLY/GLB), resolved against the scene file's folder."""
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Mesh scale per local axis, -."""
    position: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Centre of the shape in world coordinates, m."""
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    """Orientation as a unit quaternion (x, y, z, w)."""
    density: float = DEFAULTS["density"]
    """kg/m^3."""
    friction: float = DEFAULTS["friction"]
    """Coulomb friction coefficient, -."""
    restitution: float = DEFAULTS["restitution"]
    """Coefficient of restitution, -."""
    youngs_modulus: float = DEFAULTS["youngs_modulus"]
    """Pa, for elastic, plastic, cloth and rope."""
    poisson_ratio: float = DEFAULTS["poisson_ratio"]
    """-, in [0, 0.5)."""
    fill: str = "volume"
    """``volume`` (fill the body) or ``surface`` (a one-particle shell)."""

    def rotation_matrix(self) -> np.ndarray:
        """(3, 3) float64 local-to-world rotation."""
        from scipy.spatial.transform import Rotation

        return Rotation.from_quat(self.rotation).as_matrix()


@dataclass(frozen=True)
class Waypoint:
    """A tool pose at time ``t``."""

    t: float
    """s."""
    position: tuple[float, float, float]
    """Tool centre, m."""
    width: Optional[float] = None
    """Gripper opening (gap between the fingers' inner faces), m; None for a pusher."""


@dataclass(frozen=True)
class ToolSpec:
    """A kinematic tool: a pusher box, or a gripper of two finger boxes opening along local y."""

    shape: str
    """``pusher`` or ``gripper``."""
    size: tuple[float, float, float]
    """Extents of the pusher box, or of one finger, m."""
    path: tuple[Waypoint, ...]
    """Waypoints with increasing ``t``; the tool moves linearly between them and holds the last."""
    rotation: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 1.0)
    """Fixed orientation, unit quaternion (x, y, z, w)."""
    friction: float = DEFAULTS["friction"]
    """Coulomb friction coefficient against objects, -."""
    max_force: Optional[float] = None
    """N: the most force the tool's drive applies per rigid part; None for the simulator's default
    (``dynamics.sim.SimConfig.tool_max_force``)."""
    max_torque: Optional[float] = None
    """N m: the most torque the tool's drive applies per rigid part; None for the simulator's default."""

    def pose(self, t: float) -> tuple[np.ndarray, Optional[float]]:
        """Tool centre (3,) m and gripper width (m, or None) at time ``t`` s (linear interpolation)."""
        ts = np.array([w.t for w in self.path])
        ps = np.array([w.position for w in self.path], np.float64)
        pos = np.array([np.interp(t, ts, ps[:, d]) for d in range(3)])
        width = None
        if self.shape == "gripper":
            ws = np.array([w.width for w in self.path], np.float64)
            width = float(np.interp(t, ts, ws))
        return pos, width

    @property
    def duration(self) -> float:
        """Time of the last waypoint, s."""
        return self.path[-1].t


@dataclass(frozen=True)
class SceneSpec:
    """A parsed scene file."""

    objects: tuple[ObjectSpec, ...]
    spacing: float
    """Particle spacing (diameter), m. The particle radius is ``spacing / 2``."""
    gravity: tuple[float, float, float] = GRAVITY
    """m/s^2."""
    ground: Optional[float] = 0.0
    """z of the ground plane, m; None for no ground."""
    tool: Optional[ToolSpec] = None
    seed: int = 0
    """Seed for anything random in lifting and simulation."""
    source: Optional[Path] = None
    """The file this spec was read from."""
    name: str = "scene"
    goal: Optional["GoalSpec"] = None
    """The task's ``[goal]`` table (see :func:`parse_goal`), or None."""

    @property
    def radius(self) -> float:
        """Particle radius, m."""
        return 0.5 * self.spacing


# --------------------------------------------------------------------------- parsing


#: The largest length (m) a scene file may give: sizes, positions and spacings past it are typing errors
#: (and would overflow float32 masses and volumes).
MAX_LENGTH = 1.0e6


class _Fields:
    """Reads typed values out of a TOML table, naming ``file: field`` on any error."""

    def __init__(self, path, table: dict, prefix: str):
        self.path, self.table, self.prefix = path, table, prefix
        self.used: set[str] = set()

    def err(self, key: str, problem: str) -> FileFormatError:
        return FileFormatError(self.path, f"{self.prefix}{key}", problem)

    def get(self, key: str, default: Any = None, required: bool = False):
        self.used.add(key)
        if key not in self.table:
            if required:
                raise self.err(key, "missing")
            return default
        return self.table[key]

    def number(self, key: str, default=None, required=False, positive=False, nonneg=False,
               length=False) -> Optional[float]:
        v = self.get(key, default, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(key, f"expected a finite number, got {v!r}")
        if length and abs(v) > MAX_LENGTH:
            raise self.err(key, f"{v:g} m is outside the world (lengths are at most {MAX_LENGTH:g} m)")
        if positive and v <= 0:
            raise self.err(key, f"must be positive, got {v}")
        if nonneg and v < 0:
            raise self.err(key, f"must not be negative, got {v}")
        return float(v)

    def vector(self, key: str, n: Optional[int], default=None, required=False, positive=False,
               length=False) -> Optional[tuple]:
        v = self.get(key, default, required)
        if v is None:
            return None
        if isinstance(v, (int, float)) and not isinstance(v, bool) and n == 1:
            v = [v]
        if not isinstance(v, (list, tuple)) or (n is not None and len(v) != n) or not v:
            want = f"a list of {n} numbers" if n else "a list of numbers"
            raise self.err(key, f"expected {want}, got {v!r}")
        out = []
        for x in v:
            if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
                raise self.err(key, f"expected numbers, got {x!r}")
            if positive and x <= 0:
                raise self.err(key, f"values must be positive, got {x}")
            if length and abs(x) > MAX_LENGTH:
                raise self.err(key, f"{x:g} m is outside the world (lengths are at most {MAX_LENGTH:g} m)")
            out.append(float(x))
        return tuple(out)

    def string(self, key: str, default=None, required=False, choices=None) -> Optional[str]:
        v = self.get(key, default, required)
        if v is None:
            return None
        if not isinstance(v, str):
            raise self.err(key, f"expected a string, got {v!r}")
        if choices and v not in choices:
            raise self.err(key, f"unknown value {v!r}; expected one of {', '.join(choices)}")
        return v

    def rotation(self) -> tuple[float, float, float, float]:
        q = self.vector("rotation", 4)
        e = self.vector("euler_deg", 3)
        if q is not None and e is not None:
            raise self.err("rotation", "give rotation (quaternion) or euler_deg, not both")
        if e is not None:
            from scipy.spatial.transform import Rotation

            return tuple(float(x) for x in Rotation.from_euler("xyz", e, degrees=True).as_quat())
        if q is None:
            return (0.0, 0.0, 0.0, 1.0)
        norm = math.sqrt(sum(x * x for x in q))
        if norm < 1e-9:
            raise self.err("rotation", "quaternion must not be zero")
        return tuple(x / norm for x in q)

    def check_unknown(self):
        unknown = sorted(set(self.table) - self.used)
        if unknown:
            raise self.err(unknown[0], f"unknown key (known: {', '.join(sorted(self.used))})")


def _parse_object(path: Path, i: int, table: dict) -> ObjectSpec:
    if not isinstance(table, dict):
        raise FileFormatError(path, f"object[{i}]", "expected a table ([[object]])")
    f = _Fields(path, table, f"object[{i}].")
    name = f.string("name", default=f"object{i}")
    shape = f.string("shape", required=True, choices=SHAPES)
    material = f.string("material", required=True, choices=MATERIALS)
    mesh, scale, size = None, (1.0, 1.0, 1.0), ()
    if shape == "mesh":
        rel = f.string("mesh", required=True)
        mesh = (path.parent / rel).resolve()
        if not mesh.exists():
            raise f.err("mesh", f"file not found: {mesh}")
        s = f.get("scale", 1.0)
        if isinstance(s, (int, float)) and not isinstance(s, bool):
            f.table = {**f.table, "scale": [s, s, s]}
        scale = f.vector("scale", 3, positive=True)
    else:
        size = f.vector("size", _SIZE_LEN[shape], required=True, positive=True, length=True)
    poisson = f.number("poisson_ratio", DEFAULTS["poisson_ratio"], nonneg=True)
    if poisson >= 0.5:
        raise f.err("poisson_ratio", f"must be below 0.5, got {poisson}")
    spec = ObjectSpec(
        name=name, shape=shape, material=material, size=size, mesh=mesh, scale=scale,
        position=f.vector("position", 3, default=(0.0, 0.0, 0.0), length=True),
        rotation=f.rotation(),
        density=f.number("density", DEFAULTS["density"], positive=True),
        friction=f.number("friction", DEFAULTS["friction"], nonneg=True),
        restitution=f.number("restitution", DEFAULTS["restitution"], nonneg=True),
        youngs_modulus=f.number("youngs_modulus", DEFAULTS["youngs_modulus"], positive=True),
        poisson_ratio=poisson,
        fill=f.string("fill", "volume", choices=("volume", "surface")),
    )
    f.check_unknown()
    return spec


def _parse_tool(path: Path, table: dict) -> ToolSpec:
    if not isinstance(table, dict):
        raise FileFormatError(path, "tool", "expected a table ([tool])")
    f = _Fields(path, table, "tool.")
    shape = f.string("shape", "pusher", choices=("pusher", "gripper"))
    size = f.vector("size", 3, required=True, positive=True, length=True)
    raw = f.get("path", required=True)
    if not isinstance(raw, list) or not raw:
        raise f.err("path", "expected a non-empty list of waypoints {t, position[, width]}")
    wps = []
    for k, w in enumerate(raw):
        wf = _Fields(path, w if isinstance(w, dict) else {}, f"tool.path[{k}].")
        if not isinstance(w, dict):
            raise wf.err("", "expected a table {t = ..., position = [...]}")
        width = wf.number("width", required=shape == "gripper", nonneg=True, length=True)
        wps.append(Waypoint(t=wf.number("t", required=True, nonneg=True), position=wf.vector("position", 3, required=True, length=True),
                            width=width))
        wf.check_unknown()
    for k in range(1, len(wps)):
        if wps[k].t <= wps[k - 1].t:
            raise f.err(f"path[{k}].t", "waypoint times must increase")
    spec = ToolSpec(shape=shape, size=size, path=tuple(wps), rotation=f.rotation(),
                    friction=f.number("friction", DEFAULTS["friction"], nonneg=True),
                    max_force=f.number("max_force", positive=True), max_torque=f.number("max_torque", positive=True))
    f.check_unknown()
    return spec


def parse_scene(data: dict, path: Path) -> SceneSpec:
    """Build a :class:`SceneSpec` from parsed TOML ``data`` read from ``path``."""
    top = _Fields(path, data, "")
    version = top.get("format_version", 1)
    if version != 1:
        raise top.err("format_version", f"this worldline reads scene files of version 1, got {version!r}")
    world = top.get("world", {})
    if not isinstance(world, dict):
        raise top.err("world", "expected a table [world]")
    w = _Fields(path, world, "world.")
    spacing = w.number("spacing", required=True, positive=True, length=True)
    ground = w.get("ground", 0.0)
    if ground is False:
        ground = None
    elif ground is not None:
        ground = w.number("ground", length=True)
    seed = w.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise w.err("seed", f"expected a non-negative integer, got {seed!r}")
    gravity = w.vector("gravity", 3, default=GRAVITY)
    name = w.string("name", path.stem)
    w.check_unknown()
    objects_raw = top.get("object", [])
    if not isinstance(objects_raw, list) or not objects_raw:
        raise top.err("object", "a scene needs at least one [[object]]")
    objects = tuple(_parse_object(path, i, t) for i, t in enumerate(objects_raw))
    names = [o.name for o in objects]
    if len(set(names)) != len(names) or "tool" in names:
        raise top.err("object", "object names must be unique and must not be 'tool'")
    tool = _parse_tool(path, top.get("tool")) if "tool" in data else None
    goal = parse_goal(path, top.get("goal"), objects, ground) if "goal" in data else None
    top.check_unknown()
    return SceneSpec(objects=objects, spacing=spacing, gravity=gravity, ground=ground, tool=tool, seed=seed,
                     source=path, name=name, goal=goal)


# --------------------------------------------------------------------------- goals

#: Defaults of the ``[goal]`` table (m, degrees, -).
GOAL_DEFAULTS = {"tolerance": 0.02, "yaw_tolerance_deg": 15.0, "fraction": 0.8}


@dataclass(frozen=True)
class GoalSpec:
    """A task's goal for one object: a pose, a region, or a target point cloud.

    Exactly one of ``position``, ``region`` and ``target`` is set (:attr:`kind`).
    """

    object: str
    """Name of the object the goal is about (an ``[[object]]`` that is not static)."""
    position: Optional[tuple[float, ...]] = None
    """Goal of the object's centre, m: (x, y), or (x, y, z) to also judge the height."""
    yaw_deg: Optional[float] = None
    """Goal yaw (rotation about z, world frame) of the object, degrees; None: yaw is free."""
    tolerance: float = GOAL_DEFAULTS["tolerance"]
    """m: the centre within this distance of ``position`` (or the Chamfer distance to ``target``) succeeds."""
    yaw_tolerance_deg: float = GOAL_DEFAULTS["yaw_tolerance_deg"]
    """Degrees of yaw error allowed when ``yaw_deg`` is set."""
    region: Optional[tuple[tuple[float, float, float], tuple[float, float, float]]] = None
    """((xmin, ymin, zmin), (xmax, ymax, zmax)), m: a box the object's particles must end up in."""
    fraction: float = GOAL_DEFAULTS["fraction"]
    """Share (0, 1] of the object's particles that must lie inside ``region``."""
    target: Optional[Path] = None
    """A point cloud ``.npz`` (``points (P, 3)`` m) the object's particles must match (Chamfer distance)."""

    @property
    def kind(self) -> str:
        """``pose``, ``region`` or ``target``."""
        return "pose" if self.position is not None else "region" if self.region is not None else "target"

    def to_dict(self) -> dict:
        """The goal as plain values (as the scene file spells them), for JSON and policies."""
        d: dict = {"object": self.object, "kind": self.kind}
        if self.position is not None:
            d.update(position=list(self.position), tolerance=self.tolerance)
            if self.yaw_deg is not None:
                d.update(yaw_deg=self.yaw_deg, yaw_tolerance_deg=self.yaw_tolerance_deg)
        elif self.region is not None:
            d.update(region={"min": list(self.region[0]), "max": list(self.region[1])}, fraction=self.fraction)
        else:
            d.update(target=str(self.target), tolerance=self.tolerance)
        return d


def parse_goal(path: Path, table, objects: tuple[ObjectSpec, ...], ground: Optional[float]) -> GoalSpec:
    """Read and validate a ``[goal]`` table of the scene file ``path``.

    Errors name the field (``goal.object``, ``goal.region``, ...): an unknown or static object,
    not exactly one of position / region / target, an empty region, a goal below the ground
    (``z`` or the whole region under ``ground``), a pose off the static support the object
    stands on (e.g. beyond the table's edge), a missing target file.
    """
    if not isinstance(table, dict):
        raise FileFormatError(path, "goal", "expected a table [goal]")
    f = _Fields(path, table, "goal.")
    names = [o.name for o in objects]
    name = f.string("object", required=True)
    if name not in names:
        raise f.err("object", f"unknown object {name!r}; the scene's objects are {', '.join(names)}")
    obj = objects[names.index(name)]
    if obj.material == "static":
        raise f.err("object", f"{name!r} is static and cannot be moved")
    given = [k for k in ("position", "region", "target") if k in table]
    if len(given) != 1:
        raise f.err("position", "give exactly one of position, region or target"
                    + (f" (got {', '.join(given)})" if given else ""))
    tol = f.number("tolerance", GOAL_DEFAULTS["tolerance"], positive=True)
    kw: dict = {"object": name, "tolerance": tol}
    if "position" in table:
        pos = f.vector("position", None, required=True)
        if len(pos) not in (2, 3):
            raise f.err("position", f"expected [x, y] or [x, y, z] in m, got {list(pos)}")
        if ground is not None and len(pos) == 3 and pos[2] < ground:
            raise f.err("position", f"z = {pos[2]} m is below the ground at {ground} m: unreachable")
        _check_on_support(f, obj, objects, pos)
        kw.update(position=pos, yaw_deg=f.number("yaw_deg"),
                  yaw_tolerance_deg=f.number("yaw_tolerance_deg", GOAL_DEFAULTS["yaw_tolerance_deg"], positive=True))
    elif "region" in table:
        reg = f.get("region")
        if not isinstance(reg, dict):
            raise f.err("region", "expected a table {min = [x, y, z], max = [x, y, z]}")
        rf = _Fields(path, reg, "goal.region.")
        lo, hi = rf.vector("min", 3, required=True), rf.vector("max", 3, required=True)
        rf.check_unknown()
        for d, axis in enumerate("xyz"):
            if not lo[d] < hi[d]:
                raise f.err("region", f"is empty: min {axis} = {lo[d]} m is not below max {axis} = {hi[d]} m")
        if ground is not None and hi[2] <= ground:
            raise f.err("region", f"lies below the ground at {ground} m (max z = {hi[2]} m): unreachable")
        frac = f.number("fraction", GOAL_DEFAULTS["fraction"], positive=True)
        if frac > 1:
            raise f.err("fraction", f"must lie in (0, 1], got {frac}")
        kw.update(region=(lo, hi), fraction=frac)
    else:
        rel = f.string("target", required=True)
        target = (path.parent / rel).resolve()
        if not target.exists():
            raise f.err("target", f"file not found: {target}")
        kw.update(target=target)
    f.check_unknown()
    return GoalSpec(**kw)


def _check_on_support(f: _Fields, obj: ObjectSpec, objects: tuple[ObjectSpec, ...], pos: tuple) -> None:
    """A pose goal must stay on the static box the object stands on (if any): off its edge it would fall."""
    for s in objects:
        if s.material != "static" or s.shape != "box":
            continue
        rot = s.rotation_matrix()
        local = rot.T @ (np.asarray(obj.position, np.float64) - np.asarray(s.position, np.float64))
        half = np.asarray(s.size) / 2.0
        if not (np.all(np.abs(local[:2]) <= half[:2]) and local[2] > half[2]):
            continue  # the object does not start on this box
        g = rot.T @ (np.array([pos[0], pos[1], s.position[2] + half[2]]) - np.asarray(s.position, np.float64))
        if np.any(np.abs(g[:2]) > half[:2]):
            raise f.err("position", f"({pos[0]}, {pos[1]}) lies off the static {s.name!r} that {obj.name!r} "
                        f"stands on: unreachable without a fall")


def load_scene_file(path) -> SceneSpec:
    """Read and validate a scene ``.toml`` file."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, None, "no such file")
    try:
        data = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, None, f"is not valid TOML ({exc})") from None
    return parse_scene(data, path)


# --------------------------------------------------------------------------- resource guard

#: Default of ``--max-particles``: the most particles a command lifts before it refuses.
DEFAULT_MAX_PARTICLES = 5_000_000

#: Bytes of memory per particle candidate while lifting and building the neighbour graph: the
#: lattice and its meshgrid (float64), depths and masks, the float32 scene, and about 20 radius-graph
#: edges of two int64 each (a measured mean degree of 15-25 at 2.5 spacings).
LIFT_BYTES_PER_PARTICLE = 400

#: Surface candidates per spacing^2 that lifting draws for curved shapes and meshes before thinning
#: (``particles.lift._SHELL_OVERSAMPLE``).
_SHELL_OVERSAMPLE_BOUND = 4.0


@dataclass(frozen=True)
class ParticleEstimate:
    """What lifting a scene file would allocate, computed from the file alone (nothing allocated).

    ``per_object`` holds ``(name, field, count)`` per object (the tool last, as ``"tool"``), with
    ``field`` the scene-file field that sets its size; ``count`` is exact for boxes, sheets and ropes
    and an estimate (filled volume plus surface) for curved shapes and meshes. ``total`` sums them;
    ``bytes`` is the memory lifting and the neighbour graph take (:data:`LIFT_BYTES_PER_PARTICLE` per
    particle or allocated candidate, whichever is more).
    """

    total: int
    per_object: tuple[tuple[str, str, int], ...]
    candidates: int
    """Upper bound on the points lifting allocates on the way (bounding lattices, surface samples)."""
    bytes: int
    spacing: float
    """m."""

    @property
    def largest(self) -> tuple[str, str, int]:
        """``(name, field, count)`` of the object with the most particles."""
        return max(self.per_object, key=lambda t: t[2])


class TooManyParticles(FileFormatError):
    """A scene would need more particles (or memory) than allowed; the message names the field, the
    estimate and the flag that raises the limit. The CLI reports it as bad input (exit code 2)."""

    def __init__(self, path, field: Optional[str], problem: str, estimate: Optional[ParticleEstimate] = None):
        super().__init__(path, field, problem)
        self.estimate = estimate


def _axis_count(extent: float, spacing: float) -> int:
    """Lattice points of pitch ``spacing`` along a full ``extent`` (m) whose outermost centres lie half a
    spacing inside each end (``particles.lift._lattice``); at least one."""
    inner = max(extent - spacing, 0.0)
    return int(math.floor(inner / spacing + 1e-9)) + 1


def _object_geometry(obj: ObjectSpec) -> tuple[tuple[float, float, float], float, float]:
    """Full extents of the object's local bounding box (m), its surface area (m^2) and the fraction of
    that box it fills (-), from its spec (meshes: read for bounds, area and volume only)."""
    if obj.shape == "box":
        sx, sy, sz = obj.size
        return (sx, sy, sz), 2.0 * (sx * sy + sy * sz + sx * sz), 1.0
    if obj.shape == "sphere":
        r = obj.size[0]
        return (2 * r, 2 * r, 2 * r), 4.0 * math.pi * r * r, math.pi / 6.0
    if obj.shape == "cylinder":
        r, h = obj.size
        return (2 * r, 2 * r, h), 2.0 * math.pi * r * (r + h), math.pi / 4.0
    if obj.shape == "capsule":
        r, length = obj.size
        vol = math.pi * r * r * length + 4.0 / 3.0 * math.pi * r ** 3
        return (2 * r, 2 * r, length + 2 * r), 4.0 * math.pi * r * r + 2.0 * math.pi * r * length, \
            vol / (4 * r * r * (length + 2 * r))
    if obj.shape == "mesh":
        import trimesh

        try:
            mesh = trimesh.load(obj.mesh, force="mesh")
            lo, hi = np.asarray(mesh.bounds, np.float64) * np.asarray(obj.scale)
            area = float(mesh.area) * float(np.max(obj.scale)) ** 2
            box = float(np.prod(np.abs(np.asarray(mesh.bounds[1] - mesh.bounds[0], np.float64))))
            fraction = min(1.0, abs(float(mesh.volume)) / box) if mesh.is_watertight and box > 0 else 1.0
        except Exception as exc:
            raise FileFormatError(obj.mesh, None, f"cannot be read as a mesh ({type(exc).__name__}: {exc})") from None
        ext = np.abs(hi - lo)
        if not np.all(np.isfinite(ext)) or not math.isfinite(area):
            raise FileFormatError(obj.mesh, None, "has non-finite vertices")
        return (float(ext[0]), float(ext[1]), float(ext[2])), area, fraction
    raise ValueError(obj.shape)


def estimate_particles(spec: SceneSpec) -> ParticleEstimate:
    """Estimate, without allocating, how many particles lifting ``spec`` creates and what it allocates.

    Boxes, sheets and ropes give their exact count (the lattice of pitch ``spacing`` with its
    outermost centres ``spacing / 2`` inside the surface). Spheres, cylinders, capsules and meshes
    give the part of their bounding lattice they fill plus one surface particle per ``spacing^2``;
    what lifting allocates for them (``candidates``) is the whole bounding lattice plus
    ``4 area / spacing^2`` surface samples. Meshes are read for their bounds, area and volume only.
    The tool (a pusher box, or two gripper fingers) is counted too. Cost: O(objects). Counts are
    Python ints, so a mistyped spacing gives a huge number rather than an overflow.
    """
    s = spec.spacing
    rows: list[tuple[str, str, int]] = []
    candidates = 0
    for i, obj in enumerate(spec.objects):
        field = f"object[{i}].{'scale' if obj.shape == 'mesh' else 'size'}"
        if obj.shape == "sheet":
            n = cand = _axis_count(obj.size[0], s) * _axis_count(obj.size[1], s)
        elif obj.shape == "rope":
            n = cand = _axis_count(obj.size[0], s)
        else:
            try:
                ext, area, fraction = _object_geometry(obj)
            except FileFormatError as exc:  # name the scene file's field too
                raise FileFormatError(spec.source or "scene", f"object[{i}].mesh", f"{exc.path}: {exc.problem}") from None
            lattice = _axis_count(ext[0], s) * _axis_count(ext[1], s) * _axis_count(ext[2], s)
            if obj.shape == "box":
                n = cand = lattice
            else:
                n = max(1, int(lattice * fraction + area / (s * s)))
                cand = lattice + max(64, int(_SHELL_OVERSAMPLE_BOUND * area / (s * s)))
        rows.append((obj.name, field, int(n)))
        candidates += int(cand)
    if spec.tool is not None:
        sx, sy, sz = spec.tool.size
        n = _axis_count(sx, s) * _axis_count(sy, s) * _axis_count(sz, s) * (2 if spec.tool.shape == "gripper" else 1)
        rows.append(("tool", "tool.size", int(n)))
        candidates += int(n)
    total = sum(n for _, _, n in rows)
    return ParticleEstimate(total=total, per_object=tuple(rows), candidates=candidates,
                            bytes=max(total, candidates) * LIFT_BYTES_PER_PARTICLE, spacing=s)


def _human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.3g} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024.0
    return f"{n:.3g} PiB"


def physical_memory() -> Optional[int]:
    """Bytes of physical memory of this machine, or None where the OS does not say."""
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (AttributeError, ValueError, OSError):
        return None


def rollout_bytes(frames: int, particles: int) -> int:
    """Bytes of a rollout's positions, ``(frames, particles, 3) float32``, plus one working copy."""
    return 2 * 12 * int(frames) * int(particles)


def check_particle_budget(spec: SceneSpec, max_particles: int = DEFAULT_MAX_PARTICLES, frames: Optional[int] = None,
                          flag: str = "--max-particles", spacing_field: str = "world.spacing",
                          frames_flag: str = "--steps") -> ParticleEstimate:
    """Refuse, before anything is allocated, a scene that would need more than ``max_particles``
    particles or more memory to lift than this machine has, or (given ``frames``, the frames of the
    rollout including the first, so ``steps + 1``) a rollout whose positions would not fit in memory.

    Raises :class:`TooManyParticles` (a :class:`FileFormatError`) naming the scene file, the field
    (``spacing_field``, or the size of the one object that makes up most of the estimate), the
    estimate, and ``flag`` (the option that raises the limit). Returns the :class:`ParticleEstimate`.
    """
    est = estimate_particles(spec)
    path = spec.source if spec.source is not None else "scene"
    if est.total > max_particles:
        name, obj_field, count = est.largest
        # a spacing fine for its scene names the spacing; one huge object names its size
        field = spacing_field
        if len(est.per_object) > 1 and count > 0.9 * est.total and count > 100 * max(
                (n for nm, _, n in est.per_object if nm != name), default=1):
            field = obj_field
        raise TooManyParticles(
            path, field,
            f"spacing {spec.spacing:g} m gives about {est.total:.3g} particles ({name!r}: {count:.3g}; "
            f"about {_human_bytes(est.bytes)} to lift), more than {flag} {max_particles}; use a larger spacing "
            f"or smaller objects, or raise {flag}", est)
    have = physical_memory()
    if have is not None and est.bytes > have:
        raise TooManyParticles(
            path, spacing_field,
            f"spacing {spec.spacing:g} m gives about {est.total:.3g} particles, about {_human_bytes(est.bytes)} to "
            f"lift, more than this machine's {_human_bytes(have)} of memory; use a larger spacing", est)
    if frames is not None:
        need = rollout_bytes(frames, est.total)
        if have is not None and need > have:
            raise TooManyParticles(
                path, None,
                f"{frames_flag} {frames - 1}: {frames} frames of about {est.total:.3g} particles need about "
                f"{_human_bytes(need)}, more than this machine's {_human_bytes(have)} of memory; use fewer frames "
                f"or a larger spacing", est)
    return est
