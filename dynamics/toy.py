"""Small synthetic GNS datasets with closed-form physics, for tests and quick training.

Three kinds of scene, each a box of particles (material ``rigid``) on the ground plane
(z = 0) or on a static table slab of particles:

* ``drop``: the box starts in the air with a horizontal velocity, falls under gravity,
  bounces with restitution ``e`` and slides under Coulomb friction ``mu`` until it rests.
* ``slide``: the box starts on the ground with a horizontal velocity and slides to rest.
* ``push``: the box rests; a kinematic tool (an object named ``tool``,
  particle type ``particles.KINEMATIC``) drives into it at constant speed, pushes it
  (quasi-static: the box moves with the tool while they touch), stops, and the box slides
  to rest under friction.

The box translates without rotating, so the exact motion is one ODE for its centre,
integrated with ``SUBSTEPS`` explicit substeps per frame. Each scene is then turned by a
random yaw about z and shifted in x, y, so motions come in every horizontal direction.
This is not the project's ground-truth simulator (that is ``dynamics.sim`` on Newton);
it is a seeded, fast stand-in with the same file format.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from particles import KINEMATIC, MATERIAL_TYPE, ParticleScene, Rollout, write_dataset

__all__ = ["toy_rollout", "toy_dataset"]

#: Explicit substeps per frame for the box-centre ODE.
SUBSTEPS = 20
#: Below this speed (m/s) a box on the ground counts as resting (stops bouncing / sliding).
REST_SPEED = 0.05
#: Frame time step, s, and particle radius, m, of toy datasets: those of ``worldline dataset`` and the shipped scenes.
DT = 1.0 / 60.0
RADIUS = 0.01
#: Connectivity radius of toy datasets, in particle radii (see :func:`toy_dataset`).
CONNECTIVITY_RADII = 3.7


def _lattice(counts, spacing: float) -> np.ndarray:
    """(nx*ny*nz, 3) float64 m: particle centres of a box lattice centred on the origin."""
    axes = [(np.arange(n) - (n - 1) / 2.0) * spacing for n in counts]
    g = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    return g


def _yaw(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def toy_rollout(rng: np.random.Generator, kind: str, frames: int, dt: float = DT, radius: float = RADIUS,
                gravity: float = 9.81, table: Optional[bool] = None) -> Rollout:
    """One synthetic trajectory.

    Args:
        rng: source of every random choice (box size, placement, speeds, friction, restitution).
        kind: ``"drop"``, ``"slide"`` or ``"push"``.
        frames: T, frames in the rollout (frame 0 included).
        dt: s per frame. radius: particle radius, m (spacing 2 r). gravity: m/s^2 (along -z).
        table: the box moves on a static slab of particles (object ``table``, material
            ``static``, two layers, its top 0.1-0.3 m above the ground) instead of the ground
            plane; None: a coin flip.

    Returns:
        A :class:`particles.Rollout` with positions (T, N, 3) float32 m.
    """
    spacing = 2.0 * radius
    counts = rng.integers(3, 7, size=3)
    box = _lattice(counts, spacing)
    half = (counts - 1) / 2.0 * spacing  # centre-to-outer-particle extent per axis
    mu = float(rng.uniform(0.2, 0.6))
    on_table = bool(rng.random() < 0.5) if table is None else bool(table)
    table_top = float(rng.uniform(0.1, 0.3)) if on_table else None  # z of the slab's top particle centres
    floor = (table_top + spacing if on_table else radius) + half[2]  # box centre height when resting
    h = dt / SUBSTEPS
    centre = np.zeros(3)
    vel = np.zeros(3)
    tool_pos: Optional[np.ndarray] = None
    if kind == "drop":
        restitution = float(rng.uniform(0.1, 0.5))
        centre[2] = floor + rng.uniform(0.02, 0.1)
        speed, heading = rng.uniform(0.0, 0.6), rng.uniform(0, 2 * np.pi)
        vel[:2] = speed * np.array([np.cos(heading), np.sin(heading)])
        vel[2] = rng.uniform(-0.3, 0.3)
    elif kind == "slide":
        restitution = 0.0
        centre[2] = floor
        speed, heading = rng.uniform(0.2, 0.8), rng.uniform(0, 2 * np.pi)
        vel[:2] = speed * np.array([np.cos(heading), np.sin(heading)])
    elif kind == "push":
        restitution = 0.0
        centre[2] = floor
        tool = _lattice((2, rng.integers(3, 6), rng.integers(2, 4)), spacing)
        tool_half_x = 0.5 * spacing
        tool_speed = rng.uniform(0.1, 0.4)
        gap = rng.uniform(0.0, 0.04)
        tool_x0 = centre[0] - half[0] - spacing - tool_half_x - gap
        tool_y = rng.uniform(-half[1], half[1])
        push_time = rng.uniform(0.4, 0.8) * (frames - 1) * dt
        tool_pos = np.zeros((frames, 3))
        tool_pos[:, 1] = tool_y
        tool_pos[:, 2] = floor - half[2] + tool[:, 2].max() + rng.uniform(0.0, spacing)  # tool's bottom near the box's
        t = np.arange(frames) * dt
        tool_pos[:, 0] = tool_x0 + tool_speed * np.minimum(t, push_time)
    else:
        raise ValueError(f"kind must be 'drop', 'slide' or 'push', got {kind!r}")

    centres = np.empty((frames, 3))
    centres[0] = centre
    for f in range(1, frames):
        for s in range(SUBSTEPS):
            on_floor = centre[2] <= floor + 1e-9
            if not on_floor:
                vel[2] -= gravity * h
            centre += vel * h
            if centre[2] < floor:  # impact: bounce, and the impulse's friction slows the slide
                centre[2] = floor
                vn = -vel[2]
                vel[2] = restitution * vn if restitution * vn > REST_SPEED else 0.0
                vt = np.linalg.norm(vel[:2])
                if vt > 0:
                    vel[:2] *= max(0.0, 1.0 - mu * (1.0 + restitution) * vn / vt)
            elif on_floor and vel[2] == 0.0:  # sliding friction
                vt = np.linalg.norm(vel[:2])
                if vt > 0:
                    vel[:2] *= max(0.0, vt - mu * gravity * h) / vt
        if tool_pos is not None:  # quasi-static push: the box's back face stays ahead of the tool's front
            contact_x = tool_pos[f, 0] + 0.5 * spacing + spacing + half[0]
            if centre[0] < contact_x:
                tool_v = (tool_pos[f, 0] - tool_pos[f - 1, 0]) / dt
                centre[0] = contact_x
                vel[0] = max(vel[0], tool_v)
        centres[f] = centre

    parts = [centres[:, None, :] + box[None]]
    oid = [np.zeros(len(box), np.int32)]
    ptype = [np.full(len(box), MATERIAL_TYPE["rigid"], np.int32)]
    materials, names = ["rigid"], ["box"]
    if tool_pos is not None:
        parts.append(tool_pos[:, None, :] + tool[None])
        oid.append(np.full(len(tool), len(materials), np.int32))
        ptype.append(np.full(len(tool), KINEMATIC, np.int32))
        materials.append("rigid")
        names.append("tool")
    if on_table:  # a static slab under the whole path of the box (and the tool)
        moving = np.concatenate([p.reshape(-1, 3) for p in parts])
        lo = moving[:, :2].min(0) - 2 * spacing
        hi = moving[:, :2].max(0) + 2 * spacing
        nx, ny = (np.ceil((hi - lo) / spacing).astype(int) + 1)
        gx, gy, gz = np.meshgrid(lo[0] + spacing * np.arange(nx), lo[1] + spacing * np.arange(ny),
                                 table_top - spacing * np.arange(2), indexing="ij")
        slab = np.stack([gx, gy, gz], -1).reshape(-1, 3)
        parts.append(np.repeat(slab[None], frames, 0))
        oid.append(np.full(len(slab), len(materials), np.int32))
        ptype.append(np.full(len(slab), KINEMATIC, np.int32))
        materials.append("static")
        names.append("table")
    traj = np.concatenate(parts, 1)
    rot = _yaw(rng.uniform(0, 2 * np.pi))
    shift = np.array([*rng.uniform(-0.3, 0.3, 2), 0.0])
    traj = (traj @ rot.T + shift).astype(np.float32)
    scene = ParticleScene(traj[0], np.concatenate(oid), tuple(materials), radius, particle_type=np.concatenate(ptype),
                          object_name=tuple(names), object_density=np.full(len(materials), 500.0, np.float32),
                          gravity=np.array([0, 0, -gravity], np.float32), ground=0.0)
    return Rollout(scene, traj, dt)


def toy_dataset(folder, seed: int, train: int = 8, valid: int = 2, test: int = 2, frames: int = 40,
                dt: float = DT, radius: float = RADIUS, kinds=("push", "slide", "push", "drop")):
    """Write a GNS-layout dataset of :func:`toy_rollout` trajectories (kinds alternate).

    Splits are by scene: every trajectory is its own scene. The connectivity radius is
    3.7 particle radii: between the lattice's third (2 sqrt(3) r) and fourth (4 r) neighbour
    distances, so no resting pair sits exactly on the radius. Returns the path of ``metadata.json``.
    """
    rng = np.random.default_rng(seed)
    splits = {}
    for name, count in (("train", train), ("valid", valid), ("test", test)):
        splits[name] = [toy_rollout(rng, kinds[i % len(kinds)], frames, dt, radius) for i in range(count)]
    return write_dataset(Path(folder), splits, connectivity_radius=CONNECTIVITY_RADII * radius,
                         extra_metadata={"source": f"dynamics.toy seed={seed}"})
