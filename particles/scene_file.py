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
           "SHAPES", "SHAPE_SIZES", "GOAL_DEFAULTS"]

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

    def number(self, key: str, default=None, required=False, positive=False, nonneg=False) -> Optional[float]:
        v = self.get(key, default, required)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.err(key, f"expected a finite number, got {v!r}")
        if positive and v <= 0:
            raise self.err(key, f"must be positive, got {v}")
        if nonneg and v < 0:
            raise self.err(key, f"must not be negative, got {v}")
        return float(v)

    def vector(self, key: str, n: Optional[int], default=None, required=False, positive=False) -> Optional[tuple]:
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
        size = f.vector("size", _SIZE_LEN[shape], required=True, positive=True)
    poisson = f.number("poisson_ratio", DEFAULTS["poisson_ratio"], nonneg=True)
    if poisson >= 0.5:
        raise f.err("poisson_ratio", f"must be below 0.5, got {poisson}")
    spec = ObjectSpec(
        name=name, shape=shape, material=material, size=size, mesh=mesh, scale=scale,
        position=f.vector("position", 3, default=(0.0, 0.0, 0.0)),
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
    size = f.vector("size", 3, required=True, positive=True)
    raw = f.get("path", required=True)
    if not isinstance(raw, list) or not raw:
        raise f.err("path", "expected a non-empty list of waypoints {t, position[, width]}")
    wps = []
    for k, w in enumerate(raw):
        wf = _Fields(path, w if isinstance(w, dict) else {}, f"tool.path[{k}].")
        if not isinstance(w, dict):
            raise wf.err("", "expected a table {t = ..., position = [...]}")
        width = wf.number("width", required=shape == "gripper", nonneg=True)
        wps.append(Waypoint(t=wf.number("t", required=True, nonneg=True), position=wf.vector("position", 3, required=True),
                            width=width))
        wf.check_unknown()
    for k in range(1, len(wps)):
        if wps[k].t <= wps[k - 1].t:
            raise f.err(f"path[{k}].t", "waypoint times must increase")
    spec = ToolSpec(shape=shape, size=size, path=tuple(wps), rotation=f.rotation(),
                    friction=f.number("friction", DEFAULTS["friction"], nonneg=True))
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
    spacing = w.number("spacing", required=True, positive=True)
    ground = w.get("ground", 0.0)
    if ground is False:
        ground = None
    elif ground is not None:
        ground = w.number("ground")
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
