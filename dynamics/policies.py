"""Shipped scripted policies for ``worldline evaluate`` (the interface: :mod:`dynamics.policy`).

The evaluated set, :data:`SHIPPED`, best first, chosen on Newton alone (the stand-in for the real
world) so that their quality differs clearly; successes of 20 on the shipped suite
(``assets/tasks/suite/push_*``, at most 180 frames; ``bench/evaluate.py --backends ''``, the
README's *Policy evaluation*):

* :func:`straight_push` (14/20): approach behind the goal object on the line to the goal (round
  it on the ground, or over the objects, when the straight way is blocked), then push along the
  line at :data:`PUSH_SPEED`, re-aimed every frame from the object's centre, keeping the tool on
  the centre line, until the object is within a third of the tolerance; goes round again (at
  most 3 times) when the object slips off the tool;
* :func:`offset_push` (11/20): one open-loop push along the initial line for the initial
  distance, 0.7 object half-widths off the centre line (it turns the object away);
* :func:`wide_offset_push` (8/20): the same a full half-width off the centre line;
* :func:`slow_push` (5/20): :func:`straight_push` at :data:`SLOW_SPEED`, 0.045 m/s, so that
  the episode's frame budget ends most pushes short of the goal;
* :func:`random_policy` (1/20): a new random tool target near the objects every 0.5 s (seeded
  by ``obs["seed"]``);
* :func:`half_push` (0/20): :func:`straight_push` that stops half way (known to fail: it ends
  at least 3 cm from goals 6-14 cm away, tolerance 2 cm).

Also here, not in the evaluated set: :func:`yaw_push` (:func:`straight_push` that pushes off
centre to turn the object toward a goal yaw; 13/20: of the suite's 6 yaw goals it meets none,
:func:`straight_push` one), :func:`open_loop_push` (:func:`offset_push` on the centre
line; 12/20: both inside :func:`straight_push`'s Wilson interval) and :func:`planner` (the MPC
of :mod:`dynamics.plan`, MPPI 16 samples x 10 frames, one iteration, replanning every 8 frames,
on the constraints-only model, wrapped as a policy; about 1 s per replan on a 2-core CPU).

Positions in m, angles in rad, speeds in m/s; each policy keeps its per-episode state in
``obs["memory"]``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["straight_push", "offset_push", "wide_offset_push", "slow_push", "random_policy", "half_push", "yaw_push",
           "open_loop_push", "planner", "SHIPPED"]

#: m/s, pushing speed of the scripted pushes (the shipped model saw 0.1-0.3 m/s).
PUSH_SPEED = 0.12
#: m/s, pushing speed of :func:`slow_push`: a push of 6-14 cm then takes 80-190 of the suite's 180 frames.
SLOW_SPEED = 0.045
#: m/s^2, the tool's acceleration bound (dynamics.tasks.ToolLimits' default): sets the carrot length.
_ACCEL = 2.0
#: m, gap left between the tool and the object when the approach ends.
MARGIN = 0.015
#: m, clearance above the tallest object when the approach goes over.
CLEARANCE = 0.03


def _wrap(a: float) -> float:
    return (a + math.pi) % (2 * math.pi) - math.pi


def _setup(obs: dict) -> dict:
    """Per-episode constants, kept in memory: tool shape (thin axis, half extents), particle radius, rest height."""
    mem = obs["memory"]
    if "geom" in mem:
        return mem["geom"]
    x = np.asarray(obs["positions"], np.float64)
    tool = x[obs["tool_indices"]]
    d = np.linalg.norm(tool[:, None] - tool[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    r = 0.5 * float(d.min()) if len(tool) > 1 else 0.01
    yaw = obs["tool_yaw"]
    c, s = math.cos(-yaw), math.sin(-yaw)
    rel = tool - obs["tool_position"]
    lx, ly = c * rel[:, 0] - s * rel[:, 1], s * rel[:, 0] + c * rel[:, 1]
    ex, ey = float(np.ptp(lx)), float(np.ptp(ly))
    geom = {"r": r, "thin": 0.0 if ex <= ey else 0.5 * math.pi, "half_thick": 0.5 * min(ex, ey) + r,
            "half_long": 0.5 * max(ex, ey) + r, "half_height": 0.5 * float(np.ptp(rel[:, 2])) + r,
            "z0": float(obs["tool_position"][2])}
    mem["geom"] = geom
    return geom


def _goal_point(obs: dict):
    g = obs["goal"]
    if "position" in g:
        return np.asarray(g["position"][:2], np.float64)
    if "region" in g:
        return 0.5 * (np.asarray(g["region"]["min"][:2]) + np.asarray(g["region"]["max"][:2]))
    return None


def _object(obs: dict) -> np.ndarray:
    k = list(obs["object_names"]).index(obs["goal"]["object"])
    return np.asarray(obs["positions"], np.float64)[np.asarray(obs["object_id"]) == k]


def _remaining(obs: dict, centre: np.ndarray, goal: np.ndarray) -> float:
    return float(np.linalg.norm(goal - centre[:2]))


def _done_distance(obs: dict) -> float:
    g = obs["goal"]
    return g.get("tolerance", 0.02) / 3.0 if "position" in g else 0.01


def _hold(obs: dict) -> dict:
    return {"position": np.asarray(obs["tool_position"], np.float64)}


def _push_yaw(obs: dict, geom: dict, d: np.ndarray) -> float:
    """The tool yaw that puts its thin axis along ``d``, the nearer of the two (a pusher is symmetric)."""
    want = math.atan2(d[1], d[0]) - geom["thin"]
    cur = obs["tool_yaw"]
    return cur + _wrap(want - cur) if abs(_wrap(want - cur)) <= 0.5 * math.pi else cur + _wrap(want + math.pi - cur)


def _behind(obs: dict, geom: dict, obj: np.ndarray, d: np.ndarray, offset: float) -> np.ndarray:
    """(2,) m: the tool centre behind the object on the line along ``d``, ``offset`` to its left, MARGIN clear."""
    c = obj[:, :2].mean(0)
    side = np.array([-d[1], d[0]])
    reach = float(np.max((obj[:, :2] - c) @ (-d))) + geom["r"]
    return c - d * (reach + geom["half_thick"] + MARGIN) + side * offset


def _others(obs: dict) -> np.ndarray:
    """(P, 3) m: every particle that is not the tool's."""
    x = np.asarray(obs["positions"], np.float64)
    mask = np.ones(len(x), bool)
    mask[obs["tool_indices"]] = False
    return x[mask]


def _sweep_clear(obs: dict, geom: dict, a: np.ndarray, b: np.ndarray) -> bool:
    """Whether the tool's particles, moved straight from pose ``a`` to ``b`` ((x, y, z, yaw), turning
    on the way), stay farther than touching (2 r) from every other particle; sampled every r."""
    from scipy.spatial import cKDTree

    pts = _others(obs)
    if not len(pts):
        return True
    x = np.asarray(obs["positions"], np.float64)
    rel = x[obs["tool_indices"]] - np.asarray(obs["tool_position"], np.float64)
    y0 = obs["tool_yaw"]
    r = geom["r"]
    n = max(2, int(math.ceil(np.linalg.norm(b[:3] - a[:3]) / r)) + 1)
    tree = cKDTree(pts)
    for s in np.linspace(0.0, 1.0, n):
        p = a[:3] + s * (b[:3] - a[:3])
        yaw = a[3] + s * _wrap(b[3] - a[3]) - y0
        c, sn = math.cos(yaw), math.sin(yaw)
        q = np.stack([c * rel[:, 0] - sn * rel[:, 1], sn * rel[:, 0] + c * rel[:, 1], rel[:, 2]], 1) + p
        if float(tree.query(q)[0].min()) < 1.9 * r:
            return False
    return True


def _legs_clear(obs: dict, geom: dict, legs: list) -> bool:
    start = np.array([*obs["tool_position"], obs["tool_yaw"]], np.float64)
    for leg in legs:
        if not _sweep_clear(obs, geom, start, leg):
            return False
        start = leg
    return True


def _around(obs: dict, geom: dict, spot: np.ndarray, yaw: float) -> list:
    """Waypoints (x, y, z, yaw) at rest height round the goal object to ``spot``: out to a circle
    clear of it, along the circle (at most 30 degrees a leg, the tool tangent to it), then in."""
    obj = _object(obs)
    c = obj[:, :2].mean(0)
    radius = float(np.max(np.linalg.norm(obj[:, :2] - c, axis=1))) + geom["r"] + geom["half_long"] + 0.01
    tool = np.asarray(obs["tool_position"], np.float64)
    a0 = math.atan2(tool[1] - c[1], tool[0] - c[0])
    a1 = math.atan2(spot[1] - c[1], spot[0] - c[0])
    da = _wrap(a1 - a0)
    n = max(1, int(math.ceil(abs(da) / math.radians(30))))
    z0 = geom["z0"]
    legs = []
    for k in range(n + 1):
        ang = a0 + da * k / n
        tangent_yaw = ang - geom["thin"]  # thin axis radial: the tool lies along the circle
        legs.append(np.array([c[0] + radius * math.cos(ang), c[1] + radius * math.sin(ang), z0, tangent_yaw]))
    legs.append(np.array([spot[0], spot[1], z0, yaw]))
    return legs


def _approach(obs: dict, mem: dict, geom: dict, spot: np.ndarray, yaw: float):
    """Targets that bring the tool to ``spot`` (xy) at ``yaw`` and rest height: straight when the
    tool's sweep is clear of every object, else round the goal object on the ground, else over
    the objects. Returns a target dict, or None once there."""
    tool = np.asarray(obs["tool_position"], np.float64)
    z0 = geom["z0"]
    if "legs" not in mem:
        straight = [np.array([spot[0], spot[1], z0, yaw])]
        around = _around(obs, geom, spot, yaw)
        if _legs_clear(obs, geom, straight):
            mem["legs"] = straight
        elif _legs_clear(obs, geom, around):
            mem["legs"] = around
        else:
            zc = float(_others(obs)[:, 2].max()) + geom["r"] + geom["half_height"] + CLEARANCE
            mem["legs"] = [np.array([tool[0], tool[1], zc, obs["tool_yaw"]]), np.array([spot[0], spot[1], zc, yaw]),
                           np.array([spot[0], spot[1], z0, yaw])]
    while mem["legs"]:
        leg = mem["legs"][0]
        last = len(mem["legs"]) == 1
        tol = 0.002 if last else 0.01  # pass through waypoints, land on the spot
        if np.linalg.norm(leg[:3] - tool) < tol and (not last or abs(_wrap(leg[3] - obs["tool_yaw"])) < 0.03):
            mem["legs"].pop(0)
            continue
        return {"position": leg[:3].copy(), "yaw": float(leg[3])}
    del mem["legs"]
    return None


def _closed_loop_push(obs: dict, stop_fraction: float = 0.0, turn: bool = False, speed: float = PUSH_SPEED,
                      turn_gain: float = 0.05, turn_cap: float = 0.6):
    """The closed-loop push of :func:`straight_push` (``turn``: :func:`yaw_push`; ``stop_fraction``:
    stop once the remaining distance is below that share of the initial one; ``speed`` m/s, the
    pushing speed; ``turn_gain`` particle radii of offset per degree of yaw error, at most
    ``turn_cap`` object half-widths)."""
    mem = obs["memory"]
    geom = _setup(obs)
    goal = _goal_point(obs)
    if goal is None:
        return _hold(obs)
    obj = _object(obs)
    c = obj[:, :2].mean(0)
    rem = _remaining(obs, c, goal)
    mem.setdefault("initial", rem)
    if rem <= max(_done_distance(obs), stop_fraction * mem["initial"]):
        return _hold(obs)
    d = (goal - c) / max(rem, 1e-9)
    side = np.array([-d[1], d[0]])
    offset = 0.0
    g = obs["goal"]
    if turn and g.get("yaw_deg") is not None:
        err = _wrap(math.radians(g["yaw_deg"]) - obs["goal_object_yaw"])
        if abs(math.degrees(err)) > 0.5 * g["yaw_tolerance_deg"]:
            half_w = float(np.max(np.abs((obj[:, :2] - c) @ side))) + geom["r"]
            offset = -math.copysign(min(turn_cap * half_w, turn_gain * abs(math.degrees(err)) * geom["r"]), err)
    tool = np.asarray(obs["tool_position"], np.float64)
    phase = mem.setdefault("phase", "approach")
    if phase == "push":
        rel = c - tool[:2]
        reach = float(np.max((obj[:, :2] - c) @ (-d))) + geom["r"] + geom["half_thick"]
        lost = float(rel @ d) < 0.5 * float(np.linalg.norm(rel)) or float(np.linalg.norm(rel)) > reach + 0.04
        if lost and mem.get("reapproaches", 0) < 3:
            mem["reapproaches"] = mem.get("reapproaches", 0) + 1
            mem["phase"] = phase = "approach"
            mem.pop("legs", None)
    if phase == "approach":
        if "spot" not in mem:
            mem["spot"] = _behind(obs, geom, obj, d, offset)
            mem["spot_yaw"] = _push_yaw(obs, geom, d)
        t = _approach(obs, mem, geom, mem["spot"], mem["spot_yaw"])
        if t is not None:
            return t
        mem["phase"] = "push"
        del mem["spot"], mem["spot_yaw"]
    carrot = max(speed * obs["dt"], speed ** 2 / (2 * _ACCEL))
    lateral = float((tool[:2] - c) @ side) - offset
    xy = tool[:2] + d * min(carrot, rem) - side * 0.3 * lateral
    return {"position": np.array([xy[0], xy[1], geom["z0"]]), "yaw": _push_yaw(obs, geom, d)}


def straight_push(obs: dict) -> dict:
    """Closed-loop push at the object's centre along the line to the goal (module docstring)."""
    return _closed_loop_push(obs)


def yaw_push(obs: dict) -> dict:
    """:func:`straight_push` that pushes off centre to turn the object toward a goal yaw."""
    return _closed_loop_push(obs, turn=True)


def slow_push(obs: dict) -> dict:
    """:func:`straight_push` at :data:`SLOW_SPEED` (0.045 m/s): the frame budget cuts long pushes short."""
    return _closed_loop_push(obs, speed=SLOW_SPEED)


def half_push(obs: dict) -> dict:
    """:func:`straight_push` that stops half way: known to fail every push-to-pose task of the suite."""
    return _closed_loop_push(obs, stop_fraction=0.5)


def _open_loop(obs: dict, offset_share: float) -> dict:
    mem = obs["memory"]
    geom = _setup(obs)
    goal = _goal_point(obs)
    if goal is None:
        return _hold(obs)
    tool = np.asarray(obs["tool_position"], np.float64)
    if "plan" not in mem:
        obj = _object(obs)
        c = obj[:, :2].mean(0)
        rem = _remaining(obs, c, goal)
        d = (goal - c) / max(rem, 1e-9)
        side = np.array([-d[1], d[0]])
        half_w = float(np.max(np.abs((obj[:, :2] - c) @ side))) + geom["r"]
        spot = _behind(obs, geom, obj, d, offset_share * half_w)
        mem["plan"] = {"d": d, "spot": spot, "yaw": _push_yaw(obs, geom, d), "end": spot + d * (rem + MARGIN)}
    p = mem["plan"]
    if not mem.get("pushing"):
        t = _approach(obs, mem, geom, p["spot"], p["yaw"])
        if t is not None:
            return t
        mem["pushing"] = True
    left = float((p["end"] - tool[:2]) @ p["d"])
    if left <= 0.0:
        return {"position": np.array([*p["end"], geom["z0"]]), "yaw": p["yaw"]}
    carrot = max(PUSH_SPEED * obs["dt"], PUSH_SPEED ** 2 / (2 * _ACCEL))
    xy = tool[:2] + p["d"] * min(carrot, left)
    return {"position": np.array([xy[0], xy[1], geom["z0"]]), "yaw": p["yaw"]}


def open_loop_push(obs: dict) -> dict:
    """One straight push along the initial line for the initial distance, never corrected."""
    return _open_loop(obs, 0.0)


def offset_push(obs: dict) -> dict:
    """:func:`open_loop_push` 0.7 object half-widths to the left of the centre line."""
    return _open_loop(obs, 0.7)


def wide_offset_push(obs: dict) -> dict:
    """:func:`open_loop_push` a full object half-width to the left of the centre line (the tool's
    centre on the object's edge): it turns the object away more than :func:`offset_push`."""
    return _open_loop(obs, 1.0)


def random_policy(obs: dict) -> dict:
    """A random tool target within 0.2 m of the goal object, redrawn every 0.5 s (30 frames at 60 Hz),
    at rest height; seeded by ``obs["seed"]``, so a rerun repeats it."""
    geom = _setup(obs)
    k = int(obs["frame"] * obs["dt"] / 0.5)
    rng = np.random.default_rng([obs["seed"], k])
    c = _object(obs)[:, :2].mean(0)
    xy = c + rng.uniform(-0.2, 0.2, 2)
    return {"position": np.array([xy[0], xy[1], geom["z0"]]), "yaw": float(rng.uniform(-math.pi, math.pi))}


def planner(obs: dict) -> dict:
    """MPC (MPPI, 16 x 10, one iteration, replan every 8 frames) on the constraints-only model,
    behind the policy interface: it keeps the frames it saw and its plan in ``obs["memory"]``."""
    from .plan import MPCController, PlannerConfig
    from .tasks import ConstraintsBackend, observe

    mem = obs["memory"]
    task = obs["task"]
    if "mpc" not in mem:
        cfg = PlannerConfig(samples=16, horizon=10, iterations=1, seed=int(obs["seed"]) % (2 ** 31))
        mem["mpc"] = MPCController(ConstraintsBackend(task.scene), config=cfg, replan_every=8)
        mem["frames"], mem["queue"], mem["vel"] = [], [], np.zeros(4)
    mem["frames"] = (mem["frames"] + [np.asarray(obs["positions"], np.float32)])[-6:]
    if not mem["queue"]:
        o = observe(task, mem["frames"], mem["vel"], 5)
        poses, vels = mem["mpc"].act(task, o)
        mem["queue"] = list(zip(poses, vels))
    pose, vel = mem["queue"].pop(0)
    mem["vel"] = np.asarray(vel, np.float64)
    return {"position": pose[:3], "yaw": float(pose[3]), "width": float(pose[4])}


#: The evaluated set as ``--policy`` names, best first as measured in Newton (module docstring).
SHIPPED = tuple(f"dynamics.policies:{n}" for n in ("straight_push", "offset_push", "wide_offset_push", "slow_push",
                                                   "random_policy", "half_push"))
