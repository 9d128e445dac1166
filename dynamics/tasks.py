"""Tasks: a scene with a ``[goal]``, the tool's motion, goal errors, and the closed loop.

Shared by planning (``worldline plan``, :mod:`dynamics.plan`) and policy evaluation: a
*controller* (a planner, a scripted push, a policy) looks at an :class:`Observation` and
says where the tool goes in the next frames; :func:`run_episode` applies that in a world
(Newton here, the stand-in for the real one), observes again and repeats until the goal is
met or the frame budget is spent.

**The tool's motion.** A tool pose is ``(x, y, z, yaw, width)`` (m, m, m, rad, m; width is
the gripper opening, unused by a pusher). Controls are per-frame tool velocities
``(vx, vy, yaw_rate, width_rate)`` (m/s, m/s, rad/s, m/s); :func:`integrate_controls`
turns them into poses within :class:`ToolLimits` (horizontal speed and acceleration, yaw
rate and yaw acceleration, width rate), so every planned or scripted motion is smooth.
:class:`ToolModel` turns poses into the tool's particle positions (the
:class:`particles.Action` layout). Before pushing, :func:`approach_poses` brings the tool to
a pose behind the object, lifting it over every object when the straight way would sweep
through one, with the same bounds (:func:`step_toward`).

**Goals.** :func:`goal_measures` scores positions ``(..., N, 3)`` (any batch shape, torch):
the goal object's centre error (m), yaw error (degrees; the object's yaw is its rest yaw plus
the best-fit rotation about z of its particles), the fraction of its particles in a region,
or the Chamfer distance to a target cloud. :func:`goal_met` applies the tolerances.

**Rollout backends** predict, for K candidate tool motions at once, every particle's
positions: :class:`LearnedBackend` (the GNN, all K copies of the scene packed in one graph
batch, :func:`dynamics.model.rollout_packed`), :class:`ConstraintsBackend` (a zero network
through the same constraints: constant velocity stepped through
:func:`dynamics.model.constrain`, the baseline ``bench/model.py`` reports) and
:class:`NewtonBackend` (the simulator itself, candidate by candidate: the oracle).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Protocol, Sequence

import numpy as np
import torch

from particles import Action, ParticleState, Rollout, ValidationError

__all__ = [
    "ToolLimits", "ToolModel", "Task", "Observation", "EpisodeResult", "Controller",
    "integrate_controls", "step_toward", "approach_poses", "goal_measures", "goal_met", "object_yaw",
    "LearnedBackend", "ConstraintsBackend", "NewtonBackend", "run_episode", "observe", "wrap_angle",
    "SETTLE_SPEED", "EpisodeLoop", "ControllerFailed",
]

#: Pose layout: x, y, z (m), yaw (rad), width (m).
POSE_DIM = 5
#: Control layout: vx, vy (m/s), yaw rate (rad/s), width rate (m/s).
CONTROL_DIM = 4
#: An object moving slower than this (m/s, centre speed) counts as settled for success.
SETTLE_SPEED = 0.01


@dataclass(frozen=True)
class ToolLimits:
    """Bounds on the tool's motion (the same for planned, scripted and policy motions).

    The defaults match the pushes the shipped model was trained on (0.1-0.3 m/s): a robot arm
    moving a pusher at moderate speed.
    """

    max_speed: float = 0.25
    """m/s, horizontal (and vertical, during the approach) speed."""
    max_accel: float = 2.0
    """m/s^2: 0 to full speed in 0.125 s."""
    max_yaw_rate: float = 2.0
    """rad/s."""
    max_yaw_accel: float = 20.0
    """rad/s^2."""
    max_width_rate: float = 0.1
    """m/s, gripper opening or closing."""
    clearance: float = 0.03
    """m: gap kept above the tallest object when the approach lifts the tool over it."""

    def __post_init__(self):
        for name in ("max_speed", "max_accel", "max_yaw_rate", "max_yaw_accel", "max_width_rate", "clearance"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValidationError(name, f"must be a positive finite number, got {v!r}")

    @property
    def control_max(self) -> np.ndarray:
        """(4,) float64: the largest |control| per component (m/s, m/s, rad/s, m/s)."""
        return np.array([self.max_speed, self.max_speed, self.max_yaw_rate, self.max_width_rate])


def wrap_angle(a):
    """Angle(s) wrapped to [-pi, pi) (rad); numpy or torch."""
    if isinstance(a, torch.Tensor):
        return torch.remainder(a + math.pi, 2 * math.pi) - math.pi
    return np.remainder(np.asarray(a) + np.pi, 2 * np.pi) - np.pi


def _rot_z(yaw: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotations about z by ``yaw (...)`` rad."""
    c, s = np.cos(yaw), np.sin(yaw)
    z, o = np.zeros_like(c), np.ones_like(c)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


@dataclass(frozen=True, eq=False)
class ToolModel:
    """Where the tool's particles are for a tool pose.

    ``particles(pose)`` rotates the rest particles about the tool centre by ``yaw - yaw0``
    (about z) after moving gripper fingers along the tool's rest y axis by half the width
    change, then translates the centre to the pose's position.
    """

    indices: np.ndarray
    """(M,) int64. Scene particle indices of the tool (``Action.indices``)."""
    rest: np.ndarray
    """(M, 3) float64, m. Tool particles at rest."""
    centre: np.ndarray
    """(3,) float64, m. Tool centre at rest (the scene's first waypoint)."""
    yaw0: float
    """rad. The tool's rest yaw (of its rotation's x axis in the xy plane)."""
    width0: float
    """m. Rest gripper opening (0 for a pusher)."""
    finger: np.ndarray
    """(M,) float64. -1 / +1 per gripper finger, 0 for a pusher."""
    y_axis: np.ndarray
    """(3,) float64. The tool's rest local y axis in the world (the gripper's opening direction)."""
    size: tuple[float, float, float]
    """m, the pusher box (or one finger) extents in its local frame."""
    rotation: np.ndarray
    """(3, 3) float64. The tool's rest local-to-world rotation."""
    gripper: bool = False

    @classmethod
    def from_lifted(cls, lifted) -> "ToolModel":
        """The tool of a lifted scene file (``particles.lift.LiftedScene``); raises if it has none."""
        from scipy.spatial.transform import Rotation

        tool = lifted.spec.tool
        if tool is None:
            raise ValidationError("tool", "the scene has no [tool] to move")
        rot = Rotation.from_quat(tool.rotation).as_matrix()
        centre = np.asarray(tool.path[0].position, np.float64)
        width0 = float(tool.path[0].width or 0.0)
        return cls(indices=np.asarray(lifted.tool_indices, np.int64),
                   rest=lifted.scene.positions[lifted.tool_indices].astype(np.float64), centre=centre,
                   yaw0=float(math.atan2(rot[1, 0], rot[0, 0])), width0=width0,
                   finger=lifted.tool_finger.astype(np.float64), y_axis=rot[:, 1].copy(), size=tuple(tool.size),
                   rotation=rot, gripper=tool.shape == "gripper")

    def rest_pose(self) -> np.ndarray:
        """(5,) float64: the tool's pose at rest."""
        return np.array([*self.centre, self.yaw0, self.width0])

    def particles(self, poses: np.ndarray) -> np.ndarray:
        """(..., M, 3) float32, m: tool particle positions for ``poses (..., 5)``."""
        poses = np.asarray(poses, np.float64)
        local = self.rest - self.centre  # (M, 3)
        dw = poses[..., 4] - self.width0  # (...)
        local = local + (self.finger[:, None] * self.y_axis)[None] * (0.5 * dw.reshape(-1))[:, None, None] \
            if self.gripper else np.broadcast_to(local, (int(np.prod(poses.shape[:-1], dtype=np.int64)),) + local.shape)
        local = local.reshape(poses.shape[:-1] + self.rest.shape)
        rz = _rot_z(poses[..., 3] - self.yaw0)  # (..., 3, 3)
        out = np.einsum("...ij,...mj->...mi", rz, local) + poses[..., None, :3]
        return out.astype(np.float32)

    def pose_of(self, tool_positions: np.ndarray) -> np.ndarray:
        """(5,) float64: the pose that best explains observed tool particles ``(M, 3)`` m (rigid fit;
        the width from the fingers' spread along the fitted y axis)."""
        from particles.keypoints import kabsch

        x = np.asarray(tool_positions, np.float64)
        r, t = kabsch(self.rest - self.centre, x)
        yaw = self.yaw0 + math.atan2(r[1, 0], r[0, 0])
        width = self.width0
        if self.gripper:
            y = r @ self.y_axis
            spread = ((x - t) @ y) * self.finger - ((self.rest - self.centre) @ self.y_axis) * self.finger
            width = self.width0 + 2.0 * float(spread.mean())
        return np.array([t[0], t[1], t[2], yaw, width])

    def half_extent_along(self, direction_xy: np.ndarray, yaw: float) -> float:
        """m: the tool's half extent along a horizontal unit ``direction_xy`` at ``yaw``, particles' radius excluded."""
        local = (self.rest - self.centre) @ _rot_z(np.asarray(yaw - self.yaw0)).T
        return float(np.max(local[:, :2] @ direction_xy))


def integrate_controls(pose0: np.ndarray, vel0: np.ndarray, controls, limits: ToolLimits, dt: float):
    """Tool poses under per-frame velocity commands, within the limits.

    Each frame the commanded velocity is clipped to the speed (horizontal norm), yaw-rate and
    width-rate bounds, then its change from the previous frame's velocity to the acceleration
    bounds; the pose integrates it (explicit Euler). z holds.

    Args:
        pose0: (5,) float, the current pose (x, y, z m, yaw rad, width m).
        vel0: (4,) float, the current velocity (vx, vy m/s, yaw rate rad/s, width rate m/s).
        controls: (..., H, 4) float (numpy or torch), commanded velocities for the next H frames.
        dt: s per frame.

    Returns:
        ``(poses (..., H, 5), vels (..., H, 4))`` float64 numpy: the pose and velocity at each of
        the next H frames.
    """
    u = controls.detach().cpu().numpy() if isinstance(controls, torch.Tensor) else np.asarray(controls)
    u = u.astype(np.float64)
    lead = u.shape[:-2]
    h = u.shape[-2]
    pose = np.broadcast_to(np.asarray(pose0, np.float64), lead + (POSE_DIM,)).copy()
    vel = np.broadcast_to(np.asarray(vel0, np.float64), lead + (CONTROL_DIM,)).copy()
    poses = np.empty(lead + (h, POSE_DIM))
    vels = np.empty(lead + (h, CONTROL_DIM))
    dv_xy, dv_yaw, w_rate = limits.max_accel * dt, limits.max_yaw_accel * dt, limits.max_width_rate
    for t in range(h):
        want = u[..., t, :].copy()
        sp = np.linalg.norm(want[..., :2], axis=-1, keepdims=True)
        want[..., :2] *= np.minimum(1.0, limits.max_speed / np.maximum(sp, 1e-12))
        want[..., 2] = np.clip(want[..., 2], -limits.max_yaw_rate, limits.max_yaw_rate)
        want[..., 3] = np.clip(want[..., 3], -w_rate, w_rate)
        d = want - vel
        dn = np.linalg.norm(d[..., :2], axis=-1, keepdims=True)
        d[..., :2] *= np.minimum(1.0, dv_xy / np.maximum(dn, 1e-12))
        d[..., 2] = np.clip(d[..., 2], -dv_yaw, dv_yaw)
        vel = vel + d
        pose = pose.copy()
        pose[..., 0:2] += vel[..., 0:2] * dt
        pose[..., 3] += vel[..., 2] * dt
        pose[..., 4] = np.maximum(pose[..., 4] + vel[..., 3] * dt, 0.0)
        poses[..., t, :] = pose
        vels[..., t, :] = vel
    return poses, vels


def step_toward(pose: np.ndarray, vel: np.ndarray, target: np.ndarray, limits: ToolLimits, dt: float):
    """One frame of bounded motion toward a target pose (for approaches and policies).

    The tool heads straight for ``target (5,)`` (x, y, z, yaw, width; a NaN entry holds that
    coordinate) at the fastest speed from which it can still brake in time
    (``v = min(max_speed, sqrt(2 a d))``), its velocity change bounded by the acceleration
    limits. Position moves in 3D here (the approach lifts the tool); yaw and width likewise
    within their own bounds.

    Returns:
        ``(pose (5,), vel (5,))``: the pose next frame and the velocity (vx, vy, vz m/s, yaw rate
        rad/s, width rate m/s) that got it there.
    """
    pose = np.asarray(pose, np.float64)
    target = np.where(np.isnan(target), pose, np.asarray(target, np.float64))
    vel = np.asarray(vel, np.float64)
    vel = np.concatenate([vel[:2], [0.0], vel[2:]]) if vel.shape == (CONTROL_DIM,) else vel
    out_v = np.zeros(5)
    # position: a braking-aware speed toward the target, in 3D
    d = target[:3] - pose[:3]
    dist = float(np.linalg.norm(d))
    if dist > 1e-9:
        speed = min(limits.max_speed, math.sqrt(2.0 * limits.max_accel * dist), dist / dt)
        want = d / dist * speed
    else:
        want = np.zeros(3)
    dv = want - vel[:3]
    n = float(np.linalg.norm(dv))
    if n > limits.max_accel * dt:
        dv *= limits.max_accel * dt / n
    out_v[:3] = vel[:3] + dv
    dy = float(wrap_angle(target[3] - pose[3]))
    wy = math.copysign(min(limits.max_yaw_rate, math.sqrt(2.0 * limits.max_yaw_accel * abs(dy)), abs(dy) / dt), dy)
    out_v[3] = vel[3] + float(np.clip(wy - vel[3], -limits.max_yaw_accel * dt, limits.max_yaw_accel * dt))
    dw = target[4] - pose[4]
    out_v[4] = math.copysign(min(limits.max_width_rate, abs(dw) / dt), dw)
    new = pose.copy()
    new[:3] += out_v[:3] * dt
    new[3] += out_v[3] * dt
    new[4] = max(0.0, new[4] + out_v[4] * dt)
    return new, out_v


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True, eq=False)
class Task:
    """A scene file with a goal, lifted and ready to simulate and to score."""

    path: Path
    lifted: object
    """``particles.lift.LiftedScene``."""
    goal: object
    """``particles.scene_file.GoalSpec``."""
    setup: object
    """``dynamics.sim.scenes.SimSetup`` (Newton) of the scene."""
    tool: ToolModel
    object_index: int
    """Object id of the goal's object."""
    object_particles: np.ndarray
    """(n,) int64. Its particle indices."""
    object_yaw0: float
    """rad. Its rest yaw (scene file rotation, about z)."""
    target_points: Optional[np.ndarray] = None
    """(P, 3) float32, m. The target cloud of a ``target`` goal."""
    dt: float = 1.0 / 60.0

    @property
    def scene(self):
        """The :class:`particles.ParticleScene`."""
        return self.lifted.scene

    @classmethod
    def load(cls, path, dt: float = 1.0 / 60.0) -> "Task":
        """Read, validate and lift a task scene file (it needs a ``[tool]`` and a ``[goal]``).

        Raises :class:`particles.FileFormatError` naming the file and field on bad input.
        """
        from scipy.spatial.transform import Rotation

        from particles import FileFormatError
        from particles.lift import lift_scene
        from particles.scene_file import load_scene_file

        from .sim.scenes import setup_from_lifted

        path = Path(path)
        spec = load_scene_file(path)
        if spec.goal is None:
            raise FileFormatError(path, "goal", "missing: a task needs a [goal] table (see README, Planning)")
        if spec.tool is None:
            raise FileFormatError(path, "tool", "missing: planning moves the scene's [tool]")
        lifted = lift_scene(spec)
        setup = setup_from_lifted(lifted, dt, 1)
        names = list(spec.name for spec in spec.objects)
        k = names.index(spec.goal.object)
        idx = np.flatnonzero(lifted.scene.object_id == k)
        rot = Rotation.from_quat(spec.objects[k].rotation).as_matrix()
        target = None
        if spec.goal.target is not None:
            target = _load_target(spec.goal.target)
        return cls(path=path, lifted=lifted, goal=spec.goal, setup=setup, tool=ToolModel.from_lifted(lifted),
                   object_index=k, object_particles=idx, object_yaw0=float(math.atan2(rot[1, 0], rot[0, 0])),
                   target_points=target, dt=dt)

    def goal_point(self) -> np.ndarray:
        """(2,) float64, m: where in the plane the object should go (pose, region centre, target centroid)."""
        g = self.goal
        if g.position is not None:
            return np.asarray(g.position[:2], np.float64)
        if g.region is not None:
            return 0.5 * (np.asarray(g.region[0][:2]) + np.asarray(g.region[1][:2]))
        return self.target_points[:, :2].mean(0).astype(np.float64)


def _load_target(path: Path) -> np.ndarray:
    from particles import FileFormatError

    try:
        with np.load(path, allow_pickle=False) as z:
            key = "points" if "points" in z.files else "positions" if "positions" in z.files else None
            if key is None:
                raise FileFormatError(path, "points", "missing (expected points (P, 3) m)")
            pts = np.asarray(z[key], np.float32)
    except FileFormatError:
        raise
    except Exception as exc:
        raise FileFormatError(path, None, f"is not a readable .npz archive ({exc})") from None
    if pts.ndim == 3:
        pts = pts[-1]
    if pts.ndim != 2 or pts.shape[1] != 3 or len(pts) == 0 or not np.all(np.isfinite(pts)):
        raise FileFormatError(path, "points", f"expected finite points (P, 3) m, got shape {pts.shape}")
    return pts


def object_yaw(task: Task, positions: torch.Tensor) -> torch.Tensor:
    """(...) float, rad: the goal object's yaw for positions ``(..., N, 3)``: its rest yaw plus the
    best-fit rotation about z of its particles from rest (2D Kabsch)."""
    idx = torch.as_tensor(task.object_particles)
    p = positions[..., idx, :2]
    rest = torch.as_tensor(task.scene.positions[task.object_particles, :2], dtype=p.dtype)
    rc = rest - rest.mean(0)
    pc = p - p.mean(-2, keepdim=True)
    cross = (rc[..., 0] * pc[..., 1] - rc[..., 1] * pc[..., 0]).sum(-1)
    dot = (rc * pc).sum((-1, -2))
    return wrap_angle(torch.atan2(cross, dot) + task.object_yaw0)


def goal_measures(task: Task, positions) -> dict:
    """How far positions ``(..., N, 3)`` (m; numpy or torch, any batch shape) are from the goal.

    Returns a dict of ``(...)`` float64 tensors: ``position_error_m`` (centre to goal position,
    in the plane or in 3D when the goal gives z; region goals: centre to the region, 0 inside;
    target goals: centroid to the target's centroid), ``yaw_error_deg`` (0 without a yaw goal),
    ``fraction_in_region`` (region goals, else 1) and ``chamfer_m`` (target goals, else 0: the
    mean of both directions' mean nearest-neighbour distance).
    """
    x = torch.as_tensor(np.asarray(positions) if not isinstance(positions, torch.Tensor) else positions).double()
    g = task.goal
    obj = x[..., torch.as_tensor(task.object_particles), :]
    centre = obj.mean(-2)
    zeros = torch.zeros(centre.shape[:-1], dtype=torch.float64)
    out = {"position_error_m": zeros, "yaw_error_deg": zeros, "fraction_in_region": zeros + 1.0, "chamfer_m": zeros}
    if g.position is not None:
        d = len(g.position)
        out["position_error_m"] = (centre[..., :d] - torch.tensor(g.position, dtype=torch.float64)).norm(dim=-1)
        if g.yaw_deg is not None:
            out["yaw_error_deg"] = torch.rad2deg(wrap_angle(object_yaw(task, x) - math.radians(g.yaw_deg)).abs())
    elif g.region is not None:
        lo, hi = torch.tensor(g.region[0], dtype=torch.float64), torch.tensor(g.region[1], dtype=torch.float64)
        inside = ((obj >= lo) & (obj <= hi)).all(-1)
        out["fraction_in_region"] = inside.double().mean(-1)
        out["position_error_m"] = (torch.clamp(lo - centre, min=0) + torch.clamp(centre - hi, min=0)).norm(dim=-1)
    else:
        tgt = torch.as_tensor(task.target_points, dtype=torch.float64)
        out["position_error_m"] = (centre - tgt.mean(0)).norm(dim=-1)
        dist = torch.cdist(obj, tgt.expand(obj.shape[:-2] + tgt.shape))
        out["chamfer_m"] = 0.5 * (dist.min(-1).values.mean(-1) + dist.min(-2).values.mean(-1))
    return out


def goal_met(task: Task, measures: dict, scale: float = 1.0) -> torch.Tensor:
    """(...) bool: the goal's tolerances, times ``scale``, hold for :func:`goal_measures`' output
    (for a region: at most ``scale * (1 - fraction)`` of the particles outside)."""
    g = task.goal
    if g.position is not None:
        ok = measures["position_error_m"] <= g.tolerance * scale
        if g.yaw_deg is not None:
            ok = ok & (measures["yaw_error_deg"] <= g.yaw_tolerance_deg * scale)
        return ok
    if g.region is not None:
        return measures["fraction_in_region"] >= 1.0 - (1.0 - g.fraction) * scale
    return measures["chamfer_m"] <= g.tolerance * scale


# --------------------------------------------------------------------------- observations


@dataclass(frozen=True, eq=False)
class Observation:
    """What a controller sees: the world's recent frames and the tool."""

    history: np.ndarray
    """(C + 1, N, 3) float32, m: the last C + 1 observed frames, oldest first (padded by repeating
    the first frame at the start of an episode)."""
    tool_pose: np.ndarray
    """(5,) float64: the tool's pose (x, y, z m, yaw rad, width m), fitted to its observed particles."""
    tool_velocity: np.ndarray
    """(4,) float64: the tool's last commanded velocity (vx, vy m/s, yaw rate rad/s, width rate m/s)."""
    frame: int
    """Frames executed so far."""

    @property
    def positions(self) -> np.ndarray:
        """(N, 3) float32, m: the latest frame."""
        return self.history[-1]


def observe(task: Task, frames: Sequence[np.ndarray], tool_velocity: np.ndarray, history: int = 5) -> Observation:
    """An :class:`Observation` from the executed frames so far (each (N, 3) m)."""
    last = list(frames[-(history + 1):])
    while len(last) < history + 1:
        last.insert(0, last[0])
    h = np.stack(last).astype(np.float32)
    return Observation(h, task.tool.pose_of(h[-1][task.tool.indices]), np.asarray(tool_velocity, np.float64),
                       len(frames) - 1)


# --------------------------------------------------------------------------- approach


def _sweep_hits(task: "Task", points: np.ndarray, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the tool, moved in a straight line from pose ``a`` to pose ``b`` (5,), comes closer than
    touching (2 r) to any of ``points (P, 3)`` m; sampled every half particle radius along the way."""
    from scipy.spatial import cKDTree

    if not len(points):
        return False
    r = task.scene.radius
    tree = cKDTree(points)
    n = max(2, int(math.ceil(np.linalg.norm(b[:3] - a[:3]) / (0.5 * r))) + 1)
    s = np.linspace(0.0, 1.0, n)[:, None]
    poses = a + s * (b - a)
    poses[:, 3] = a[3] + s[:, 0] * wrap_angle(b[3] - a[3])
    d, _ = tree.query(task.tool.particles(poses).reshape(-1, 3).astype(np.float64))
    return bool(np.any(d < 2.0 * r))


def push_pose(task: Task, positions: np.ndarray, towards: Optional[np.ndarray] = None, offset: float = 0.0,
              margin: float = 0.01) -> np.ndarray:
    """(5,) float64: a pose behind the goal object from which moving along ``towards`` (a unit xy
    direction; default: from the object's centre to the goal point) pushes it; its face across
    that line (the tool's thinnest horizontal axis along it), ``offset`` m to the side (left of
    the direction), ``margin`` m clear of the object, at the tool's rest height."""
    obj = positions[task.object_particles].astype(np.float64)
    c = obj.mean(0)
    if towards is None:
        d = task.goal_point() - c[:2]
        n = float(np.linalg.norm(d))
        towards = d / n if n > 1e-6 else np.array([1.0, 0.0])
    d = np.asarray(towards, np.float64)
    side = np.array([-d[1], d[0]])
    r = task.scene.radius
    reach = float(np.max((obj[:, :2] - c[:2]) @ (-d))) + r
    tool = task.tool
    # align the tool's thinnest horizontal local axis with d
    ext = np.asarray(tool.size)
    thin = 0 if ext[0] <= ext[1] else 1
    axis = tool.rotation[:, thin]
    yaw = math.atan2(d[1], d[0]) - math.atan2(axis[1], axis[0]) + tool.yaw0
    half = tool.half_extent_along(d, yaw) + r
    xy = c[:2] - d * (reach + half + margin) + side * offset
    return np.array([xy[0], xy[1], tool.centre[2], float(wrap_angle(yaw)), tool.width0])


def approach_poses(task: Task, obs: Observation, target: np.ndarray, limits: ToolLimits, dt: float,
                   max_frames: int = 600) -> np.ndarray:
    """(F, 5) float64: per-frame tool poses from the observed pose to ``target`` without sweeping
    through any object.

    When the tool moved straight (turning on the way) would come closer than touching to any
    object particle (the goal object or any other free or static one), the tool first rises to ``clearance`` m above the
    tallest of them, turns and travels there, then comes down onto ``target``; otherwise it turns
    and moves straight. Every frame is one :func:`step_toward` (speed and acceleration bounds).
    """
    pose = obs.tool_pose.copy()
    scene = task.scene
    others = np.flatnonzero(~np.isin(np.arange(scene.num_particles), task.tool.indices))
    pts = obs.positions[others].astype(np.float64)
    r = scene.radius
    legs = []
    if _sweep_hits(task, pts, pose, np.asarray(target, np.float64)):
        top = float(pts[:, 2].max()) + r
        z_clear = top + task.tool.size[2] / 2 + r + limits.clearance
        legs += [np.array([pose[0], pose[1], z_clear, pose[3], pose[4]]),
                 np.array([target[0], target[1], z_clear, target[3], target[4]])]
    legs.append(np.asarray(target, np.float64))
    out, vel = [], np.zeros(5)
    for leg in legs:
        for _ in range(max_frames):
            if np.linalg.norm(leg[:3] - pose[:3]) < 1e-4 and abs(wrap_angle(leg[3] - pose[3])) < 1e-3 \
                    and np.linalg.norm(vel[:3]) < 1e-3:
                break
            pose, vel = step_toward(pose, vel, leg, limits, dt)
            out.append(pose.copy())
    if out:
        out[-1] = np.asarray(target, np.float64).copy()  # land exactly
    return np.asarray(out, np.float64).reshape(-1, POSE_DIM)


# --------------------------------------------------------------------------- rollout backends


class LearnedBackend:
    """K candidate tool motions on the GNN, packed as K copies of the scene in one graph batch.

    Args:
        model: a :class:`dynamics.model.GNS`.
        scene: the task's scene.
        rigid, collide: the rollout constraints (:func:`dynamics.model.constrain`).
    """

    name = "learned"

    def __init__(self, model, scene, rigid: bool = True, collide: bool = True, device="cpu"):
        self.model = model.eval()
        self.scene = scene
        self.rigid, self.collide, self.device = rigid, collide, device
        self.history = model.config.history
        self._batches: dict[int, object] = {}

    def _batch(self, k: int):
        from .model import pack_scenes

        if k not in self._batches:
            self._batches = {k: pack_scenes([self.scene] * k, device=self.device,
                                            dtype=next(self.model.parameters()).dtype)}
        return self._batches[k]

    def step_fn(self, batch, hist: torch.Tensor, nk: torch.Tensor) -> torch.Tensor:
        return self.model.next_positions(hist, batch, nk, rigid=self.rigid, collide=self.collide)

    @torch.no_grad()
    def predict(self, history: np.ndarray, tool_indices: np.ndarray, tool_future: np.ndarray) -> np.ndarray:
        """Predicted positions of K candidates.

        Args:
            history: (C + 1, N, 3) float32, m. Observed frames, oldest first (the last is now).
            tool_indices: (M,) int64. Scene indices of the tool particles.
            tool_future: (K, H, M, 3) float32, m. Tool particles at the next H frames per candidate.

        Returns:
            (K, H + 1, N, 3) float32, m: frame 0 is now, then the H predicted frames.
        """
        k, h = tool_future.shape[:2]
        n = self.scene.num_particles
        dtype = next(self.model.parameters()).dtype if hasattr(self.model, "parameters") else torch.float32
        batch = self._batch(k)
        hist = torch.as_tensor(history[-(self.history + 1):], dtype=dtype, device=self.device)
        hist = hist.repeat(1, k, 1)  # (C + 1, K * N, 3): candidate-major
        fut = torch.as_tensor(history[-1], dtype=dtype, device=self.device).repeat(h, k, 1).reshape(h, k, n, 3)
        fut[:, :, torch.as_tensor(tool_indices)] = torch.as_tensor(tool_future, dtype=dtype).permute(1, 0, 2, 3)
        fut = fut.reshape(h, k * n, 3)
        out = [hist[-1]]
        for t in range(h):
            nxt = self.step_fn(batch, hist, fut[t])
            out.append(nxt)
            hist = torch.cat([hist[1:], nxt.unsqueeze(0)], 0)
        pos = torch.stack(out).reshape(h + 1, k, n, 3).permute(1, 0, 2, 3)
        return pos.float().cpu().numpy()


class ConstraintsBackend(LearnedBackend):
    """A zero network through the same constraints: every free particle keeps its last velocity
    (``x_{t+1} = 2 x_t - x_{t-1}``), then :func:`dynamics.model.constrain` (rigid, contact, ground),
    K candidates packed in one batch. What the GNN adds is measured against this."""

    name = "constraints"

    def __init__(self, scene, history: int = 5, device="cpu"):
        self.scene = scene
        self.rigid, self.collide, self.device = True, True, device
        self.history = history
        self._batches = {}
        self.model = torch.nn.Linear(1, 1)  # only its dtype (float32) is read

    def step_fn(self, batch, hist, nk):
        from .model import constrain

        return constrain(2 * hist[-1] - hist[-2], batch, nk)


class NewtonBackend:
    """The oracle: each candidate simulated on Newton from the observed state, one after another.

    The observed state is loaded into one :class:`dynamics.sim.NewtonSimulator` per candidate
    (rigid poses and twists fitted to the last two frames), so it costs K x H simulator frames.
    """

    name = "newton"

    def __init__(self, setup, config=None):
        from .sim import SimConfig

        self.setup = setup
        self.scene = setup.scene
        self.sim = setup.simulator(config or SimConfig())
        self.history = 1

    def predict(self, history: np.ndarray, tool_indices: np.ndarray, tool_future: np.ndarray) -> np.ndarray:
        """Same contract as :meth:`LearnedBackend.predict`."""
        k, h = tool_future.shape[:2]
        dt = self.sim.dt
        x0 = history[-1].astype(np.float32)
        v0 = ((history[-1] - history[-2]) / dt).astype(np.float32) if len(history) > 1 else np.zeros_like(x0)
        order = np.argsort(tool_indices)
        assert np.array_equal(tool_indices[order], self.sim.tool_indices)
        out = np.empty((k, h + 1) + x0.shape, np.float32)
        for c in range(k):
            state = ParticleState(x0.copy(), v0.copy())
            nxt = ParticleState(np.zeros_like(x0), np.zeros_like(x0))
            self.sim._last = None  # force loading the observed state
            out[c, 0] = x0
            for t in range(h):
                self.sim.step(state, nxt, tool_future[c, t][order], dt)
                out[c, t + 1] = nxt.positions
                state, nxt = nxt, state
        return out


# --------------------------------------------------------------------------- the closed loop


class Controller(Protocol):
    """Anything that says where the tool goes next."""

    def act(self, task: Task, obs: Observation) -> tuple[np.ndarray, np.ndarray]:
        """``(poses (k, 5), velocities (k, 4))``: the tool's poses for the next k >= 1 frames and the
        velocities that reach them (the last one is the next observation's ``tool_velocity``)."""


@dataclass
class EpisodeResult:
    """What one closed-loop episode did."""

    success: bool
    measures: dict
    """Final :func:`goal_measures` as floats."""
    action: Action
    """The commanded tool motion, frames 0..T (frame 0 = the tool at rest)."""
    executed: Rollout
    """The world's rollout, frames 0..T."""
    steps: int
    """T, frames executed."""
    wall_s: float
    info: dict = field(default_factory=dict)
    """What the controller reports (replans, seconds per replan, rejected candidates, ...)."""


class ControllerFailed(Exception):
    """Raised by a controller's ``act`` when it cannot go on (a policy that raised, or returned a
    wrong shape or NaN): the closed loop ends the episode there as failed, with this message."""


class EpisodeLoop:
    """One closed-loop episode stepped from outside, frame by frame.

    The loop of :func:`run_episode` as an object, so that many episodes (several policies, several
    tasks) can share one packed world step (:mod:`dynamics.policy`): ``control()`` observes, decides
    whether the episode is over (the goal holds within ``stop_margin`` times its tolerances with the
    object settled, ``max_steps`` frames ran, the controller is ``done`` or raised
    :class:`ControllerFailed`) and returns the tool's particle positions ``(M, 3)`` float32 m for the
    next frame (``None`` once over); ``advance(positions (N, 3))`` records the frame the world made.
    ``result()`` gives the :class:`EpisodeResult`.
    """

    def __init__(self, task: Task, controller, max_steps: int = 240, settle_frames: int = 10,
                 stop_margin: float = 0.5, progress: Optional[Callable[[Observation], None]] = None):
        self.task, self.controller = task, controller
        self.max_steps, self.settle_frames, self.stop_margin, self.progress = max_steps, settle_frames, stop_margin, progress
        scene = task.scene
        self.frames = [ParticleState.at_rest(scene).positions.copy()]
        self.commands = [scene.positions[task.tool.indices].astype(np.float32)]
        self.vel = np.zeros(CONTROL_DIM)
        self.hold = 0
        self.history = getattr(controller, "history", 5)
        self.queue: list = []
        self.over = False
        self.error: Optional[str] = None
        self.wall_s = 0.0

    @property
    def steps(self) -> int:
        """Frames executed so far."""
        return len(self.frames) - 1

    def control(self) -> Optional[np.ndarray]:
        """(M, 3) float32 m: the tool's particles at the next frame, or None when the episode is over."""
        if self.over:
            return None
        t0 = time.perf_counter()
        try:
            return self._control()
        finally:
            self.wall_s += time.perf_counter() - t0

    def _control(self) -> Optional[np.ndarray]:
        task = self.task
        if self.queue and self.steps < self.max_steps:
            p, v = self.queue.pop(0)
            ctrl = task.tool.particles(p)
            self._pending = (ctrl, v)
            return ctrl
        obs = observe(task, self.frames, self.vel, self.history)
        if self.progress is not None:
            self.progress(obs)
        m = goal_measures(task, obs.positions)
        met = bool(goal_met(task, m, self.stop_margin))
        if met:
            c = obs.history[-1][task.object_particles].mean(0) - obs.history[-2][task.object_particles].mean(0)
            if np.linalg.norm(c) / task.dt < SETTLE_SPEED or self.hold >= self.settle_frames:
                self.over = True
                return None
        if self.steps >= self.max_steps or getattr(self.controller, "done", False):
            self.over = True
            return None
        if met:
            self.hold += 1
            poses, vels = integrate_controls(obs.tool_pose, self.vel, np.zeros((1, CONTROL_DIM)), ToolLimits(), task.dt)
            poses[:, 2] = obs.tool_pose[2]
        else:
            self.hold = 0
            try:
                poses, vels = self.controller.act(task, obs)
            except ControllerFailed as exc:
                self.error = f"frame {obs.frame}: {exc}"
                self.over = True
                return None
        self.queue = list(zip(poses[: self.max_steps - self.steps], vels))
        if not self.queue:
            self.over = True
            return None
        return self._control()

    def advance(self, positions: np.ndarray) -> None:
        """Record the world's next frame ``positions (N, 3)`` m (after :meth:`control` returned a control)."""
        self.frames.append(np.asarray(positions, np.float32).copy())
        ctrl, v = self._pending
        self.commands.append(ctrl)
        self.vel = np.asarray(v, np.float64)[[0, 1, -2, -1]] if len(v) == 5 else np.asarray(v, np.float64)

    def result(self) -> EpisodeResult:
        """The episode so far as an :class:`EpisodeResult` (failed when the controller raised
        :class:`ControllerFailed`; ``info["error"]`` says why)."""
        task = self.task
        pos = np.stack(self.frames).astype(np.float32)
        final = {k: float(v) for k, v in goal_measures(task, pos[-1]).items()}
        info = dict(getattr(self.controller, "stats", {}) or {})
        if self.error is not None:
            info["error"] = self.error
        ok = self.error is None and bool(goal_met(task, goal_measures(task, pos[-1])))
        return EpisodeResult(success=ok, measures=final,
                             action=Action(task.tool.indices, np.stack(self.commands).astype(np.float32)),
                             executed=Rollout(task.scene, pos, task.dt), steps=len(self.frames) - 1,
                             wall_s=self.wall_s, info=info)


def run_episode(task: Task, controller, world=None, max_steps: int = 240, settle_frames: int = 10,
                stop_margin: float = 0.5, progress: Optional[Callable[[Observation], None]] = None) -> EpisodeResult:
    """Observe, act, step the world; repeat until the goal holds with the object settled,
    ``max_steps`` frames have run, or the controller says it is ``done`` (an attribute). Success is judged on the last frame with the goal's tolerances.

    Args:
        world: a :class:`dynamics.Dynamics` whose ``step`` takes tool particle positions as the
            control in ``task.tool.indices`` order (default: Newton on the task's setup).
        settle_frames: when the goal is met but the object still moves faster than
            :data:`SETTLE_SPEED`, the tool holds for up to this many frames before judging again.
        stop_margin: the controller keeps working until the goal holds with its tolerances times
            this (0.5: half the tolerance), so that success does not rest on the tolerance's edge;
            an episode already within that margin at frame 0 does not move at all.
        progress: called with each new observation (e.g. to advance a progress bar).

    Returns:
        An :class:`EpisodeResult`; ``result.action`` replays through ``worldline simulate --action``.
        The loop is :class:`EpisodeLoop` (shared with the packed policy evaluation).
    """
    from .sim import SimConfig

    t0 = time.perf_counter()
    if world is None:
        world = task.setup.simulator(SimConfig(dt=task.dt))
    loop = EpisodeLoop(task, controller, max_steps, settle_frames, stop_margin, progress)
    state = ParticleState.at_rest(task.scene)
    nxt = ParticleState(np.zeros_like(state.positions), np.zeros_like(state.positions))
    while (ctrl := loop.control()) is not None:
        world.step(state, nxt, ctrl, task.dt)
        state, nxt = nxt, state
        loop.advance(state.positions)
    res = loop.result()
    res.wall_s = time.perf_counter() - t0
    return res
