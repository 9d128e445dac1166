"""Lifting: meshes, primitives, point clouds and RGB-D frames into particles.

Particles are spheres of radius ``r = spacing / 2`` inside their object: a body is
filled with a cubic lattice of pitch ``spacing`` whose centres lie at least ``r``
inside the surface (``fill = "volume"``), or with one shell layer of such centres
(``fill = "surface"``). Touching objects therefore have centres about ``2 r`` apart,
and a body resting on the ground has its lowest centres ``r`` above it.

Sensor data (point clouds, RGB-D) is voxel down-sampled with open3d at voxel size
``spacing``: each particle carries the same radius, half the voxel size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .io import FileFormatError
from .scene_file import ObjectSpec, SceneSpec, ToolSpec
from .types import GRAVITY, KINEMATIC, MATERIAL_TYPE, Action, ParticleScene, ValidationError

__all__ = [
    "LiftedScene",
    "lift_scene",
    "lift_object",
    "tool_action",
    "lift_point_cloud",
    "load_point_cloud",
    "lift_rgbd",
    "object_mesh",
    "fill_mesh",
    "primitive_depth",
]

TOOL_NAME = "tool"


@dataclass(frozen=True, eq=False)
class LiftedScene:
    """A scene file turned into particles, with what the simulator needs to rebuild bodies."""

    scene: ParticleScene
    """The particles (objects in ``spec.objects`` order, then the tool as the last object)."""
    local_positions: np.ndarray
    """(N, 3) float32, m. Each particle in its object's own frame (body-frame offsets)."""
    tool_indices: np.ndarray
    """(M,) int64. Particle indices of the tool (empty without a tool)."""
    tool_finger: np.ndarray
    """(M,) int8. 0 for a pusher's particles; -1 / +1 for the gripper's two fingers (along local y)."""
    spec: SceneSpec
    """The scene file this came from."""

    @property
    def tool_object(self) -> Optional[int]:
        """Object id of the tool, or None."""
        return self.scene.num_objects - 1 if self.spec.tool is not None else None


# --------------------------------------------------------------------------- signed depth of primitives


def primitive_depth(shape: str, size: Sequence[float], p: np.ndarray) -> np.ndarray:
    """Signed depth of points in a primitive centred at its local origin.

    ``shape`` is ``"box"``, ``"sphere"``, ``"cylinder"`` or ``"capsule"``, ``size`` its
    :data:`particles.scene_file.SHAPE_SIZES` entry in m (full box edges; radius; radius and
    height). ``p`` (P, 3) float, m, in the primitive's local frame (z along the axis).
    Returns (P,) float64, m: positive inside, where it is the exact distance to the surface;
    negative outside (a lower bound of minus the distance there).
    """
    if shape == "box":
        h = np.asarray(size) / 2.0
        q = h - np.abs(p)
        return np.min(q, axis=1)  # inside: distance to the nearest face
    if shape == "sphere":
        return size[0] - np.linalg.norm(p, axis=1)
    if shape == "cylinder":
        radius, height = size
        radial = radius - np.linalg.norm(p[:, :2], axis=1)
        axial = height / 2.0 - np.abs(p[:, 2])
        return np.minimum(radial, axial)
    if shape == "capsule":
        radius, length = size
        z = np.clip(p[:, 2], -length / 2.0, length / 2.0)
        d = np.linalg.norm(p - np.stack([np.zeros_like(z), np.zeros_like(z), z], 1), axis=1)
        return radius - d
    raise ValueError(f"no analytic depth for shape {shape!r}")


def _primitive_half_extent(shape: str, size: Sequence[float]) -> np.ndarray:
    if shape == "box":
        return np.asarray(size, np.float64) / 2.0
    if shape == "sphere":
        return np.full(3, size[0])
    if shape == "cylinder":
        return np.array([size[0], size[0], size[1] / 2.0])
    if shape == "capsule":
        return np.array([size[0], size[0], size[1] / 2.0 + size[0]])
    raise ValueError(shape)


def _lattice(half_extent: np.ndarray, spacing: float, dims: int = 3) -> np.ndarray:
    """Cubic lattice of pitch ``spacing`` centred on the origin with its outermost points
    within ``[-h, h]`` (pass the extent already shrunk by the particle radius); (P, 3) float64."""
    axes = []
    for d in range(3):
        if d >= dims:
            axes.append(np.zeros(1))
            continue
        n = int(np.floor(2.0 * half_extent[d] / spacing + 1e-9)) + 1
        axes.append((np.arange(n) - (n - 1) / 2.0) * spacing)
    g = np.meshgrid(*axes, indexing="ij")
    return np.stack([a.ravel() for a in g], 1)


def _select_by_depth(points: np.ndarray, depth: np.ndarray, radius: float, spacing: float, fill: str) -> np.ndarray:
    keep = depth >= radius - 1e-9
    if fill == "surface":
        keep &= depth < radius + spacing - 1e-9
    if not keep.any():  # thinner than one particle: a single particle at the deepest point
        keep = np.zeros(len(points), bool)
        keep[int(np.argmax(depth))] = True
    return points[keep]


def object_mesh(obj: ObjectSpec):
    """The object's surface as a ``trimesh.Trimesh`` in its local frame (scaled), or None for sheets and ropes."""
    import trimesh

    if obj.shape == "mesh":
        try:
            loaded = trimesh.load(obj.mesh, force="mesh")
        except Exception as exc:
            raise FileFormatError(obj.mesh, None, f"cannot be read as a mesh ({exc})") from None
        if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
            raise FileFormatError(obj.mesh, None, "holds no triangles")
        mesh = loaded.copy()
        mesh.vertices = mesh.vertices * np.asarray(obj.scale)
        return mesh
    if obj.shape == "box":
        return trimesh.creation.box(extents=obj.size)
    if obj.shape == "sphere":
        return trimesh.creation.icosphere(subdivisions=3, radius=obj.size[0])
    if obj.shape == "cylinder":
        return trimesh.creation.cylinder(radius=obj.size[0], height=obj.size[1], sections=32)
    if obj.shape == "capsule":
        return trimesh.creation.capsule(height=obj.size[1], radius=obj.size[0], count=[32, 16])
    return None


#: Uniform surface candidates per spacing^2 of area, thinned to one per spacing (greedy, in order).
_SHELL_OVERSAMPLE = 30.0


def _thin(points: np.ndarray, spacing: float) -> np.ndarray:
    """Indices of a greedy subset of ``points`` (kept in order) no two closer than ``spacing``."""
    from scipy.spatial import cKDTree

    tree = cKDTree(points)
    taken = np.zeros(len(points), bool)
    blocked = np.zeros(len(points), bool)
    for i in range(len(points)):
        if blocked[i]:
            continue
        taken[i] = True
        blocked[tree.query_ball_point(points[i], spacing * (1.0 - 1e-9))] = True
    return np.flatnonzero(taken)


def fill_mesh(mesh, spacing: float, seed: int = 0, fill: str = "volume", depth=None) -> np.ndarray:
    """Particle centres filling a closed body, as :func:`lift_object` fills curved shapes.

    ``mesh`` is a closed ``trimesh.Trimesh`` (vertices in m); particles have radius
    ``r = spacing / 2``. A shell of surface samples (``seed`` draws them) is moved ``r`` inward
    along the surface normal, so the boundary centres lie exactly ``r`` inside the surface in
    every direction, as on a box's lattice, and a body resting on the ground has its lowest
    centres ``r`` above it at any orientation. ``fill = "volume"`` adds lattice points of
    ``spacing`` at least ``r + 0.75 spacing`` deep; ``"surface"`` keeps the shell only.
    ``depth`` is a signed-depth function ``(P, 3) -> (P,)`` in m, positive inside (e.g.
    ``lambda p: primitive_depth("sphere", (0.05,), p)``, exact for primitives); ``None`` uses
    the mesh's own (closest-point distance, with shell points near facet edges moved to ``r``).
    Returns (P, 3) float64, m, in the mesh's frame, sorted by x, then y, then z.
    """
    settle = None
    if depth is None:
        depth = _mesh_depth(mesh)
        settle = depth.settle
    return _conforming_fill(mesh, depth, spacing, fill, seed, settle)


def _conforming_fill(mesh, depth_fn, spacing: float, fill: str, seed: int, settle=None) -> np.ndarray:
    """:func:`fill_mesh` with an explicit depth function and shell ``settle`` step."""
    import trimesh

    r = spacing / 2.0
    count = max(64, int(_SHELL_OVERSAMPLE * mesh.area / spacing ** 2))
    pts, face = trimesh.sample.sample_surface(mesh, count, seed=seed)
    keep = _thin(pts, spacing)
    shell = pts[keep] - r * mesh.face_normals[face[keep]]
    if settle is not None:
        shell = settle(shell, r)
    shell = shell[depth_fn(shell) >= r - 1e-6 * spacing]  # concave spots: an offset may land too shallow
    if fill == "surface":
        return shell if len(shell) else _select_by_depth(shell, depth_fn(shell), r, spacing, fill)
    center = mesh.bounds.mean(0)
    half = (mesh.bounds[1] - mesh.bounds[0]) / 2.0
    grid = _lattice(np.maximum(half - r, 0.0), spacing) + center
    inner = grid[depth_fn(grid) >= r + 0.75 * spacing - 1e-9]
    out = np.concatenate([shell, inner]) if len(shell) or len(inner) else grid[[int(np.argmax(depth_fn(grid)))]]
    return out[np.lexsort(out.T[::-1])]  # deterministic order: by x, then y, then z


def _mesh_depth(mesh):
    """Signed depth (m, positive inside) of points in a closed mesh; -inf outside."""
    from trimesh.proximity import ProximityQuery

    query = ProximityQuery(mesh)

    def depth(p: np.ndarray) -> np.ndarray:
        out = np.full(len(p), -np.inf)
        if len(p) == 0:
            return out
        inside = mesh.contains(p) if mesh.is_watertight else np.ones(len(p), bool)
        if inside.any():
            _, dist, _ = query.on_surface(p[inside])
            out[inside] = dist
        return out

    def settle(p: np.ndarray, r: float, rounds: int = 3) -> np.ndarray:
        """Move points that sit less than ``r`` deep (near a facet edge) to ``r`` from their
        closest surface point, along the line from that point."""
        p = p.copy()
        for _ in range(rounds):
            closest, dist, _ = query.on_surface(p)
            shallow = (dist < r) & (dist > 1e-12) & (mesh.contains(p) if mesh.is_watertight else True)
            if not shallow.any():
                break
            p[shallow] = closest[shallow] + (p[shallow] - closest[shallow]) * (r / dist[shallow])[:, None]
        return p

    depth.settle = settle
    return depth


def lift_object(obj: ObjectSpec, spacing: float, seed: int = 0) -> np.ndarray:
    """Particle centres of one object in its local frame, (P, 3) float64, m.

    Boxes: a cubic lattice whose outermost centres are exactly ``spacing / 2`` inside every
    face (``fill = "surface"`` keeps its outer layer). Curved shapes (sphere, cylinder, capsule,
    mesh): a shell of surface samples ``spacing / 2`` inside the surface, filled with lattice
    points for ``fill = "volume"`` (:func:`fill_mesh`; ``seed`` places the shell samples).
    Sheets (cloth) are a 2-D lattice in the local xy plane, ropes a 1-D row along local x.
    Every object gets at least one particle.
    """
    r = spacing / 2.0
    if obj.shape == "sheet":
        h = np.array([obj.size[0] / 2.0 - r, obj.size[1] / 2.0 - r, 0.0])
        return _lattice(np.maximum(h, 0.0), spacing, dims=2)
    if obj.shape == "rope":
        return _lattice(np.array([max(obj.size[0] / 2.0 - r, 0.0), 0.0, 0.0]), spacing, dims=1)
    if obj.shape == "box":
        half = _primitive_half_extent(obj.shape, obj.size)
        pts = _lattice(np.maximum(half - r, 0.0), spacing)  # outermost centres exactly r inside
        return _select_by_depth(pts, primitive_depth(obj.shape, obj.size, pts), r, spacing, obj.fill)
    mesh = object_mesh(obj)
    if obj.shape == "mesh":
        return fill_mesh(mesh, spacing, seed, obj.fill)
    return fill_mesh(mesh, spacing, seed, obj.fill, depth=lambda p: primitive_depth(obj.shape, obj.size, p))


def _to_world(local: np.ndarray, rotation: np.ndarray, position) -> np.ndarray:
    return local @ rotation.T + np.asarray(position, np.float64)


def _tool_local(tool: ToolSpec, spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Tool particles in the tool frame at its first waypoint, and the finger label of each."""
    box = ObjectSpec(name=TOOL_NAME, shape="box", material="rigid", size=tool.size)
    finger = lift_object(box, spacing)
    if tool.shape == "pusher":
        return finger, np.zeros(len(finger), np.int8)
    width = tool.path[0].width
    offset = width / 2.0 + tool.size[1] / 2.0  # finger centres sit half a finger outside the gap
    left = finger + np.array([0.0, -offset, 0.0])
    right = finger + np.array([0.0, offset, 0.0])
    return np.concatenate([left, right]), np.concatenate([np.full(len(finger), -1, np.int8), np.ones(len(finger), np.int8)])


def lift_scene(spec: SceneSpec) -> LiftedScene:
    """Turn a scene file into particles: one object id per ``spec.objects`` entry, then the tool.

    Rigid and static objects, like every other material, are filled with particles; the
    tool's particles get the kinematic particle type (their positions are prescribed).
    """
    from scipy.spatial.transform import Rotation

    pos, local, oid, ptype, mats, names, dens = [], [], [], [], [], [], []
    fric, rest, stiff = [], [], []
    for k, obj in enumerate(spec.objects):
        loc = lift_object(obj, spec.spacing, seed=spec.seed + k)
        pos.append(_to_world(loc, obj.rotation_matrix(), obj.position))
        local.append(loc)
        oid.append(np.full(len(loc), k, np.int32))
        ptype.append(np.full(len(loc), MATERIAL_TYPE[obj.material], np.int32))
        mats.append(obj.material)
        names.append(obj.name)
        dens.append(obj.density)
        fric.append(obj.friction)
        rest.append(obj.restitution)
        stiff.append(obj.youngs_modulus)
    tool_idx = np.zeros(0, np.int64)
    finger = np.zeros(0, np.int8)
    if spec.tool is not None:
        loc, finger = _tool_local(spec.tool, spec.spacing)
        start = sum(len(p) for p in pos)
        rot = Rotation.from_quat(spec.tool.rotation).as_matrix()
        pos.append(_to_world(loc, rot, spec.tool.path[0].position))
        local.append(loc)
        oid.append(np.full(len(loc), len(spec.objects), np.int32))
        ptype.append(np.full(len(loc), KINEMATIC, np.int32))
        mats.append("rigid")
        names.append(TOOL_NAME)
        dens.append(1000.0)
        fric.append(spec.tool.friction)
        rest.append(0.0)
        stiff.append(1.0e9)  # the tool does not deform
        tool_idx = np.arange(start, start + len(loc), dtype=np.int64)
    scene = ParticleScene(
        positions=np.concatenate(pos).astype(np.float32),
        object_id=np.concatenate(oid),
        object_material=tuple(mats),
        radius=spec.radius,
        particle_type=np.concatenate(ptype),
        object_density=np.asarray(dens, np.float32),
        object_name=tuple(names),
        gravity=np.asarray(spec.gravity, np.float32),
        ground=spec.ground,
        object_friction=np.asarray(fric, np.float32),
        object_restitution=np.asarray(rest, np.float32),
        object_stiffness=np.asarray(stiff, np.float32),
    )
    return LiftedScene(scene, np.concatenate(local).astype(np.float32), tool_idx, finger, spec)


def tool_action(lifted: LiftedScene, dt: float, steps: int) -> Action:
    """The tool's prescribed particle positions for frames ``0 .. steps`` (``steps + 1`` frames).

    The tool follows its waypoints linearly in time (``t = frame * dt``) and holds the last
    one; gripper fingers move apart or together along the tool's local y as ``width`` changes.
    """
    from scipy.spatial.transform import Rotation

    tool = lifted.spec.tool
    if tool is None:
        raise ValidationError("tool", "the scene has no tool, so it has no action")
    if dt <= 0 or steps < 0:
        raise ValidationError("dt", "dt must be positive and steps non-negative")
    base = lifted.scene.positions[lifted.tool_indices].astype(np.float64)
    p0, w0 = tool.pose(0.0)
    y_axis = Rotation.from_quat(tool.rotation).as_matrix()[:, 1]
    out = np.empty((steps + 1, len(base), 3), np.float32)
    for t in range(steps + 1):
        p, w = tool.pose(t * dt)
        shift = base + (p - p0)
        if w is not None:
            shift = shift + np.outer(lifted.tool_finger * (w - w0) / 2.0, y_axis)
        out[t] = shift
    return Action(lifted.tool_indices, out)


# --------------------------------------------------------------------------- sensor data


def _downsample(points: np.ndarray, labels: np.ndarray, voxel: float) -> tuple[np.ndarray, np.ndarray]:
    """open3d voxel down-sampling, per label, so objects never mix in one voxel."""
    import open3d as o3d

    out_p, out_l = [], []
    for lab in np.unique(labels):
        pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points[labels == lab].astype(np.float64)))
        ds = np.asarray(pc.voxel_down_sample(voxel).points)
        order = np.lexsort(ds.T[::-1])  # deterministic order: by x, then y, then z
        out_p.append(ds[order])
        out_l.append(np.full(len(ds), lab, np.int64))
    if not out_p:
        return np.zeros((0, 3)), np.zeros(0, np.int64)
    return np.concatenate(out_p), np.concatenate(out_l)


def load_point_cloud(path) -> tuple[np.ndarray, Optional[np.ndarray]]:
    """Read a point cloud: PLY or PCD (open3d), or NPZ with ``points (N, 3)`` and optional
    ``object_id (N,)``. Returns ``(points (N, 3) float64 m, object_id (N,) int or None)``."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, None, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        from .io import _NpzReader

        r = _NpzReader(path)
        try:
            pts = r.get("points")
            if pts.ndim != 2 or pts.shape[1] != 3 or pts.dtype.kind not in "fiu":
                raise FileFormatError(path, "points", f"expected (N, 3) numbers, got {pts.shape} {pts.dtype}")
            ids = r.get("object_id", required=False)
            if ids is not None and (ids.shape != (len(pts),) or not np.issubdtype(ids.dtype, np.integer) or (ids < 0).any()):
                raise FileFormatError(path, "object_id", f"expected ({len(pts)},) non-negative integers")
            return pts.astype(np.float64), ids
        finally:
            r.close()
    if suffix in (".ply", ".pcd", ".xyz", ".pts"):
        import open3d as o3d

        pc = o3d.io.read_point_cloud(str(path))
        pts = np.asarray(pc.points)
        if len(pts) == 0:
            raise FileFormatError(path, "points", "no points could be read")
        return pts, None
    raise FileFormatError(path, None, f"unknown point-cloud format {suffix!r}; expected .ply, .pcd, .xyz or .npz")


def lift_point_cloud(points: np.ndarray, spacing: float, object_id: Optional[np.ndarray] = None,
                     material: str | Sequence[str] = "rigid", gravity=GRAVITY,
                     ground: Optional[float] = None) -> ParticleScene:
    """Voxel down-sample a point cloud into particles of radius ``spacing / 2``.

    Args:
        points: (P, 3) float, m.
        spacing: voxel size, m; particles get radius ``spacing / 2``.
        object_id: (P,) int, optional instance labels; ids are renumbered 0..K-1 in sorted order.
        material: one material for all objects, or one per object.
        ground: z of the ground plane (m) or None.

    Returns:
        A :class:`ParticleScene` whose particles are the voxel centroids of each object.
    """
    pts = np.asarray(points, np.float64)
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0:
        raise ValidationError("points", f"expected a non-empty (P, 3) array, got {pts.shape}")
    if not np.all(np.isfinite(pts)):
        keep = np.all(np.isfinite(pts), 1)
        pts = pts[keep]
        object_id = None if object_id is None else np.asarray(object_id)[keep]
    if spacing <= 0:
        raise ValidationError("spacing", f"must be positive (m), got {spacing}")
    labels = np.zeros(len(pts), np.int64) if object_id is None else np.asarray(object_id, np.int64)
    ds, lab = _downsample(pts, labels, spacing)
    uniq, dense = np.unique(lab, return_inverse=True)
    mats = (material,) * len(uniq) if isinstance(material, str) else tuple(material)
    if len(mats) != len(uniq):
        raise ValidationError("material", f"expected 1 or {len(uniq)} materials (one per object), got {len(mats)}")
    return ParticleScene(ds.astype(np.float32), dense.astype(np.int32), mats, spacing / 2.0,
                         object_name=tuple(f"object{int(u)}" for u in uniq),
                         gravity=np.asarray(gravity, np.float32), ground=ground)


def lift_rgbd(depth: np.ndarray, intrinsics, spacing: float, camera_to_world: Optional[np.ndarray] = None,
              mask: Optional[np.ndarray] = None, depth_scale: float = 1.0, depth_trunc: float = 10.0,
              material: str | Sequence[str] = "rigid", keep_background: bool = False,
              ground: Optional[float] = None) -> ParticleScene:
    """Back-project an RGB-D frame's depth into world-space particles with object ids (open3d).

    Args:
        depth: (H, W) depth image; metres after dividing by ``depth_scale`` (1000 for uint16 mm).
            Zero or non-finite depth means no measurement.
        intrinsics: ``(fx, fy, cx, cy)`` in pixels (pinhole, OpenCV axes: x right, y down, z forward).
        spacing: voxel size (m); particles get radius ``spacing / 2``.
        camera_to_world: (4, 4) pose of the camera in the world; identity by default.
        mask: (H, W) int instance mask; 0 is background (dropped unless ``keep_background``),
            each other value one object. Without a mask the whole frame is one object.
        material: one material for all objects, or one per object (in sorted mask order).

    Returns:
        A :class:`ParticleScene` in world coordinates.
    """
    import open3d as o3d

    d = np.asarray(depth)
    if d.ndim != 2:
        raise ValidationError("depth", f"expected an (H, W) image, got shape {d.shape}")
    d = np.where(np.isfinite(d), d, 0).astype(np.float32)
    h, w = d.shape
    fx, fy, cx, cy = (float(v) for v in intrinsics)
    intr = o3d.camera.PinholeCameraIntrinsic(w, h, fx, fy, cx, cy)
    pose = np.eye(4) if camera_to_world is None else np.asarray(camera_to_world, np.float64)
    if pose.shape != (4, 4):
        raise ValidationError("camera_to_world", f"expected a (4, 4) matrix, got {pose.shape}")
    extrinsic = np.linalg.inv(pose)  # open3d wants world-to-camera
    if mask is None:
        labels_img = np.ones((h, w), np.int64)
    else:
        labels_img = np.asarray(mask).astype(np.int64)
        if labels_img.shape != (h, w):
            raise ValidationError("mask", f"expected shape {(h, w)} like the depth image, got {labels_img.shape}")
    pts_all, lab_all = [], []
    for lab in np.unique(labels_img):
        if lab == 0 and mask is not None and not keep_background:
            continue
        dl = np.where(labels_img == lab, d, 0).astype(np.float32)
        pc = o3d.geometry.PointCloud.create_from_depth_image(
            o3d.geometry.Image(dl), intr, extrinsic, depth_scale=depth_scale, depth_trunc=depth_trunc)
        p = np.asarray(pc.points)
        pts_all.append(p)
        lab_all.append(np.full(len(p), lab, np.int64))
    if not pts_all or sum(len(p) for p in pts_all) == 0:
        raise ValidationError("depth", "no valid depth measurements in the frame (or in the mask)")
    return lift_point_cloud(np.concatenate(pts_all), spacing, np.concatenate(lab_all), material, ground=ground)
