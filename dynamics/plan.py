"""Sampling planners (MPPI, CEM) and model-predictive control of the tool toward a goal.

**Planners** know nothing about particles or models. A planner holds a mean control sequence
``(H, A)`` and, each iteration, samples K candidate sequences around it with noise that is
correlated in time (an AR(1) filter, ``n_t = b n_{t-1} + sqrt(1 - b^2) e_t``, so the marginal
std stays ``noise_std`` while neighbouring frames move together), calls a batched
``rollout(state, actions (K, H, A)) -> states`` and a ``cost(states, actions) -> (K,)``, and
updates the mean: MPPI by exponential weights ``exp(-(c - c_min) / (temperature * spread))``
(``spread``: the median cost minus the lowest), CEM by refitting mean and std to the
lowest-cost ``elite_fraction``. Sample 0 is the current mean itself. The best sample seen over
all iterations is kept and returned. ``shift(k)`` drops the first k frames of the plan and
appends k frames of zero control (the warm start of the next replan in a receding horizon).

**Why not pytorch-mppi.** ``pytorch-mppi`` 0.9.1 (PyPI) was evaluated. Its ``MPPI`` steps a
per-frame ``dynamics(state (K, nx), action (K, nu)) -> next state`` over a flat state vector
inside its own time loop. That does not fit here: (1) a particle state is not a flat vector the
planner may carry step by step: the GNN needs a velocity history and a packed graph batch, and
its rollout loop (:func:`dynamics.model.rollout_packed`) is what we batch; the Newton oracle
cannot step K candidates in lock step without K simulators, it rolls candidates one after
another; (2) the critic must audit each candidate's *whole* predicted rollout before it is
costed; (3) its noise is independent per frame (its ``KMPPI``/``SMPPI`` variants smooth
differently), it returns the weighted mean rather than keeping the best sample, bounds are a
box on the action (no acceleration bound), and it has no CEM. So the planners here take
multi-step batched ``rollout`` and ``cost`` callables, as :mod:`dynamics.tasks` provides them,
and are ~150 lines.

**MPC** (:class:`MPCController`): controls are tool velocities (:mod:`dynamics.tasks`); the
rollout turns them into bounded tool poses and particle positions and asks a backend (learned,
constraints only, Newton) for every candidate's future; :class:`TaskCost` scores goal error
(running and terminal, in tolerance units) + effort + a critic penalty: every candidate's
predicted rollout is audited by the critic's fast checks (penetration, vanish, teleport,
rigidity; the observed history is prepended so the first predicted frame is judged) and a
candidate with an event in its predicted frames is rejected (a large cost) and counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch

from particles import Rollout

from .tasks import (CONTROL_DIM, Observation, Task, ToolLimits, approach_poses, goal_measures, integrate_controls,
                    push_pose)

__all__ = ["PlannerConfig", "MPPI", "CEM", "make_planner", "TaskCost", "MPCController", "StraightPushController",
           "CRITIC_CHECKS", "REJECT_COST", "correlated_noise"]

#: The critic checks run on every candidate's predicted rollout (the fast ones; floating, energy
#: and jitter need longer windows than a horizon).
CRITIC_CHECKS = ("penetration", "vanish", "teleport", "rigidity")
#: Cost added to a candidate whose predicted rollout the critic flags (goal costs are O(1-100)).
REJECT_COST = 1.0e6


@dataclass(frozen=True)
class PlannerConfig:
    """Settings shared by :class:`MPPI` and :class:`CEM`."""

    samples: int = 32
    """K candidate sequences per iteration (sample 0 is the mean)."""
    horizon: int = 15
    """H frames planned."""
    iterations: int = 2
    """Sample-and-update rounds per replan."""
    smoothing: float = 0.8
    """b in [0, 1): time correlation of the noise (AR(1) coefficient per frame)."""
    temperature: float = 0.5
    """MPPI: weight temperature, relative to the spread of the costs."""
    elite_fraction: float = 0.15
    """CEM: share of samples refit."""
    seed: int = 0

    def __post_init__(self):
        for name in ("samples", "horizon", "iterations"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: must be a positive integer, got {v!r}")
        if not 0 <= self.smoothing < 1:
            raise ValueError(f"smoothing: must lie in [0, 1), got {self.smoothing}")
        if not self.temperature > 0:
            raise ValueError(f"temperature: must be positive, got {self.temperature}")
        if not 0 < self.elite_fraction <= 1:
            raise ValueError(f"elite_fraction: must lie in (0, 1], got {self.elite_fraction}")


def correlated_noise(gen: torch.Generator, k: int, h: int, std: torch.Tensor, b: float) -> torch.Tensor:
    """(k, h, A) float64 noise, AR(1) in time with coefficient ``b`` and marginal std ``std (A,)`` (or (h, A))."""
    e = torch.randn((k, h, std.shape[-1]), generator=gen, dtype=torch.float64)
    out = torch.empty_like(e)
    out[:, 0] = e[:, 0]
    c = math.sqrt(1.0 - b * b)
    for t in range(1, h):
        out[:, t] = b * out[:, t - 1] + c * e[:, t]
    return out * std


@dataclass
class PlanResult:
    """One replan's outcome."""

    actions: np.ndarray
    """(H, A) float64: the best sequence found."""
    cost: float
    """Its cost."""
    candidates: np.ndarray
    """(K, H, A): the last iteration's samples."""
    costs: np.ndarray
    """(K,): their costs."""
    states: Optional[object] = None
    """The last iteration's predicted states (what ``rollout`` returned)."""
    best_states: Optional[object] = None
    """The best sequence's predicted states (``rollout``'s output for it alone, indexed)."""


class _SamplingPlanner:
    def __init__(self, config: PlannerConfig, action_dim: int, noise_std, lower=None, upper=None, init=None):
        self.config = config
        self.A = action_dim
        self.std0 = torch.as_tensor(np.broadcast_to(np.asarray(noise_std, np.float64), (action_dim,)).copy())
        self.lower = None if lower is None else torch.as_tensor(np.asarray(lower, np.float64))
        self.upper = None if upper is None else torch.as_tensor(np.asarray(upper, np.float64))
        self.gen = torch.Generator().manual_seed(int(config.seed))
        self.reset(init)

    def reset(self, init=None) -> None:
        """Start over from ``init (H, A)`` (or (A,), repeated; default zeros)."""
        h = self.config.horizon
        if init is None:
            self.mean = torch.zeros((h, self.A), dtype=torch.float64)
        else:
            m = torch.as_tensor(np.asarray(init, np.float64))
            self.mean = m.expand(h, self.A).clone() if m.ndim == 1 else m.clone()
        self.std = self.std0.expand(h, self.A).clone()
        self.best = None

    def shift(self, k: int) -> None:
        """Receding horizon: drop the first ``k`` frames of the plan and append ``k`` frames of zero
        control (for velocity controls: stop; repeating the last frame would keep pushing past the goal)."""
        k = min(int(k), self.config.horizon)
        if k <= 0:
            return
        pad = torch.zeros((k, self.A), dtype=torch.float64)
        self.mean = torch.cat([self.mean[k:], pad], 0)
        self.std = torch.cat([self.std[k:], self.std0.expand(k, self.A)], 0)
        if self.best is not None:
            self.best = torch.cat([self.best[k:], pad], 0)

    def _clip(self, u: torch.Tensor) -> torch.Tensor:
        if self.lower is not None:
            u = torch.maximum(u, self.lower)
        if self.upper is not None:
            u = torch.minimum(u, self.upper)
        return u

    def plan(self, state, rollout: Callable, cost: Callable) -> PlanResult:
        """Sample, roll out, cost and update ``iterations`` times; return the best sample seen.

        Sample 0 is the current mean, sample 1 the best sequence so far (the previous replan's,
        shifted); the mean moves by the method's update, the best sample is what is returned."""
        cfg = self.config
        best_u, best_c, best_states = self.mean.clone(), math.inf, None
        u = costs = states = None
        for _ in range(cfg.iterations):
            noise = correlated_noise(self.gen, cfg.samples, cfg.horizon, self.std, cfg.smoothing)
            noise[0] = 0.0  # sample 0: the current mean
            u = self._clip(self.mean.unsqueeze(0) + noise)
            keep = best_u if math.isfinite(best_c) else self.best
            if keep is not None and cfg.samples > 1:
                u[1] = keep  # sample 1: the best sequence so far (the previous plan, shifted, at first)
            states = rollout(state, u)
            costs = torch.as_tensor(np.asarray(cost(states, u), np.float64))
            costs = torch.where(torch.isfinite(costs), costs, torch.full_like(costs, math.inf))
            i = int(torch.argmin(costs))
            if float(costs[i]) < best_c:
                best_c, best_u = float(costs[i]), u[i].clone()
                best_states = states[i] if hasattr(states, "__getitem__") else None
            self._update(u, costs)
        self.best = best_u.clone()
        return PlanResult(actions=best_u.numpy(), cost=best_c, candidates=u.numpy(), costs=costs.numpy(),
                          states=states, best_states=best_states)

    def _update(self, u: torch.Tensor, costs: torch.Tensor) -> None:
        raise NotImplementedError


class MPPI(_SamplingPlanner):
    """Model-predictive path integral control (Williams et al.) with time-correlated noise."""

    def _update(self, u, costs):
        finite = torch.isfinite(costs)
        if not bool(finite.any()):
            return
        c = torch.where(finite, costs, costs[finite].max())
        lo = c.min()
        spread = (c.median() - lo).clamp_min(1e-9)
        w = torch.exp(-(c - lo) / (self.config.temperature * spread))
        w = torch.where(finite, w, torch.zeros_like(w))
        w = w / w.sum()
        self.mean = self._clip((w[:, None, None] * u).sum(0))


class CEM(_SamplingPlanner):
    """The cross-entropy method: refit a diagonal Gaussian per frame to the elite samples."""

    def _update(self, u, costs):
        n = max(2, int(round(self.config.elite_fraction * len(costs))))
        order = torch.argsort(costs)[:n]
        elite = u[order]
        alpha = 0.7  # blend toward the refit, keeps some exploration
        self.mean = self._clip(alpha * elite.mean(0) + (1 - alpha) * self.mean)
        self.std = (alpha * elite.std(0) + (1 - alpha) * self.std).clamp_min(0.05 * float(self.std0.max()))


def make_planner(kind: str, config: PlannerConfig, action_dim: int, noise_std, lower=None, upper=None, init=None):
    """An :class:`MPPI` (``kind="mppi"``) or :class:`CEM` (``"cem"``)."""
    cls = {"mppi": MPPI, "cem": CEM}.get(kind)
    if cls is None:
        raise ValueError(f"planner: unknown {kind!r}; expected mppi or cem")
    return cls(config, action_dim, noise_std, lower, upper, init)


# --------------------------------------------------------------------------- cost with the critic


@dataclass
class TaskCost:
    """Goal error + effort + critic penalty of K predicted rollouts of a task.

    ``cost(states (K, H + 1, N, 3), controls (K, H, 4))``: with ``e_t`` the goal error at frame
    t in tolerance units (position error / tolerance, + yaw error / yaw tolerance; region goals:
    (1 - fraction in region) / (1 - fraction goal) + distance to the region / 0.02 m; target
    goals: Chamfer / tolerance), the cost is ``running * mean_t e_t + terminal * e_H +
    effort * mean |u / u_max|^2 + smooth * mean |du / u_max|^2``, plus :data:`REJECT_COST` for
    candidates the critic flags.
    """

    task: Task
    limits: ToolLimits
    running: float = 0.3
    terminal: float = 1.0
    effort: float = 0.02
    smooth: float = 0.05
    align: float = 0.2
    """Weight of the tool's distance (per 0.02 m) from the line through the object's centre and the
    goal point, behind the object: the pushing geometry that moves an object straight (0.05 with
    a yaw goal, which needs off-centre pushes)."""
    critic: bool = True
    history: Optional[np.ndarray] = None
    """(C, N, 3) observed frames before the rollout's frame 0, prepended for the critic."""
    rejected: int = 0
    """Candidates rejected so far."""
    evaluated: int = 0
    """Candidates costed so far."""
    critic_seconds: float = 0.0
    """Time spent in the critic, s."""
    last_rejected: Optional[np.ndarray] = None
    """(K,) bool of the last call."""

    def goal_error(self, states) -> torch.Tensor:
        g = self.task.goal
        m = goal_measures(self.task, states)
        if g.position is not None:
            e = m["position_error_m"] / g.tolerance
            if g.yaw_deg is not None:
                e = e + m["yaw_error_deg"] / g.yaw_tolerance_deg
        elif g.region is not None:
            e = (1.0 - m["fraction_in_region"]) / max(1.0 - g.fraction, 0.05) + m["position_error_m"] / 0.02
        else:
            e = m["chamfer_m"] / g.tolerance
        return e

    def __call__(self, states, controls) -> np.ndarray:
        x = torch.as_tensor(states)
        e = self.goal_error(x)  # (K, H + 1)
        u = torch.as_tensor(controls, dtype=torch.float64) / torch.as_tensor(self.limits.control_max)
        du = torch.diff(u, dim=1)
        cost = self.running * e[:, 1:].mean(1) + self.terminal * e[:, -1] + self.effort * (u ** 2).sum(-1).mean(1) \
            + self.smooth * (du ** 2).sum(-1).mean(1)
        tool = x[:, 1:, torch.as_tensor(self.task.tool.indices), :2].double().mean(2)  # (K, H, 2)
        centre = x[:, 1:, torch.as_tensor(self.task.object_particles), :2].double().mean(2)
        d = torch.as_tensor(self.task.goal_point()) - centre
        d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-6)
        rel = tool - centre
        lateral = (rel[..., 0] * d[..., 1] - rel[..., 1] * d[..., 0]).abs()
        w = self.align * (0.25 if self.task.goal.yaw_deg is not None else 1.0)
        cost = cost + w * (lateral / 0.02).mean(1)
        cost = cost.numpy().copy()
        if self.critic:
            bad = self.audit(np.asarray(states))
            cost[bad] += REJECT_COST
            self.rejected += int(bad.sum())
            self.last_rejected = bad
        self.evaluated += len(cost)
        return cost

    def audit(self, states: np.ndarray) -> np.ndarray:
        """(K,) bool: the critic's fast checks flag candidate k's predicted frames."""
        import critic

        t0 = time.perf_counter()
        scene = self.task.scene
        hist = self.history if self.history is not None else np.zeros((0,) + states.shape[2:], np.float32)
        c = len(hist)
        cfg = critic.AuditConfig(checks=CRITIC_CHECKS)
        fns = [getattr(critic, f"check_{name}") for name in CRITIC_CHECKS]
        bad = np.zeros(len(states), bool)
        for k in range(len(states)):
            ro = Rollout(scene, np.concatenate([hist, states[k]], 0), self.task.dt)
            ctx = critic.AuditContext(ro, cfg)
            for fn in fns:
                if any(ev.end_frame >= c for ev in fn(ro, ctx)):
                    bad[k] = True
                    break
        self.critic_seconds += time.perf_counter() - t0
        return bad


# --------------------------------------------------------------------------- controllers


def to_world(controls, frame: np.ndarray) -> np.ndarray:
    """Controls in a push frame (v_along, v_side, yaw rate, width rate) -> world (vx, vy, ...);
    ``frame (2,)`` is the unit push direction."""
    u = controls.detach().cpu().numpy() if isinstance(controls, torch.Tensor) else np.asarray(controls, np.float64)
    out = u.copy()
    out[..., 0] = u[..., 0] * frame[0] - u[..., 1] * frame[1]
    out[..., 1] = u[..., 0] * frame[1] + u[..., 1] * frame[0]
    return out


def _rollout_fn(task: Task, backend, limits: ToolLimits, frame: np.ndarray):
    """A planner ``rollout(obs, controls (K, H, 4)) -> states (K, H + 1, N, 3)`` over a backend
    (controls in the push frame ``frame``, see :func:`to_world`)."""

    def rollout(obs: Observation, controls):
        poses, _ = integrate_controls(obs.tool_pose, obs.tool_velocity, to_world(controls, frame), limits, task.dt)
        poses[..., 2] = obs.tool_pose[2]
        return backend.predict(obs.history, task.tool.indices, task.tool.particles(poses))

    return rollout


@dataclass
class MPCController:
    """Receding-horizon control: approach behind the object, then replan every ``replan_every`` frames.

    ``act`` returns the next frames' tool poses: first the approach (see
    :func:`dynamics.tasks.approach_poses`), then the first ``replan_every`` frames of each plan.
    ``stats`` collects replans, seconds per replan, candidates and rejections; ``log`` keeps,
    per replan, the frame, a few candidates' predicted goal-object centres and the chosen plan's
    predicted states (for the recording).
    """

    backend: object
    planner: str = "mppi"
    config: PlannerConfig = field(default_factory=PlannerConfig)
    replan_every: int = 5
    limits: ToolLimits = field(default_factory=ToolLimits)
    critic: bool = True
    keep_candidates: int = 8
    cruise: float = 0.12
    """m/s: the initial plan pushes straight at the goal at this speed."""
    max_reapproach: int = 3
    """Times the tool may go back behind the object when the push direction has turned away (> 60 deg)."""
    stats: dict = field(default_factory=dict)
    log: list = field(default_factory=list)

    def __post_init__(self):
        self._approached = False
        self._planner = None
        self._cost = None
        self.history = getattr(self.backend, "history", 5)
        self.history = max(self.history, 5)
        self.stats = {"replans": 0, "seconds_per_replan": 0.0, "rejected_candidates": 0, "candidates": 0,
                      "critic_seconds": 0.0, "approach_frames": 0, "reapproaches": 0, "planner": self.planner,
                      "backend": getattr(self.backend, "name", type(self.backend).__name__)}
        self._times: list[float] = []

    def _needs_reapproach(self, task: Task, obs: Observation) -> bool:
        """The tool is no longer behind the object as seen from the goal point (or far from it)."""
        if self.stats["reapproaches"] >= self.max_reapproach:
            return False
        c = obs.positions[task.object_particles, :2].mean(0).astype(np.float64)
        d = task.goal_point() - c
        if np.linalg.norm(d) < task.goal.tolerance:
            return False
        rel = c - obs.tool_pose[:2]
        cos = float(d @ rel) / max(float(np.linalg.norm(d) * np.linalg.norm(rel)), 1e-9)
        return cos < 0.5 or float(np.linalg.norm(rel)) > 0.25

    def _approach(self, task: Task, obs: Observation):
        offset = 0.0
        if task.goal.yaw_deg is not None:  # push off centre to turn the object toward its goal yaw
            from .tasks import object_yaw, wrap_angle

            err = float(wrap_angle(math.radians(task.goal.yaw_deg) - float(object_yaw(task, torch.as_tensor(obs.positions)))))
            if abs(math.degrees(err)) > task.goal.yaw_tolerance_deg:
                offset = -math.copysign(1.5 * task.scene.radius, err)
        target = push_pose(task, obs.positions, offset=offset)
        return approach_poses(task, obs, target, self.limits, task.dt)

    def act(self, task: Task, obs: Observation):
        if not self._approached or (self._planner is not None and self._needs_reapproach(task, obs)):
            if self._approached:
                self.stats["reapproaches"] += 1
            self._approached = True
            self._planner = None
            poses = self._approach(task, obs)
            self.stats["approach_frames"] += len(poses)
            if len(poses):
                return poses, np.zeros((len(poses), CONTROL_DIM))
        if self._planner is None:
            d = task.goal_point() - obs.positions[task.object_particles, :2].mean(0)
            d = d / max(float(np.linalg.norm(d)), 1e-9)
            self._frame = d
            init = np.array([self.cruise, 0.0, 0.0, 0.0])
            std = np.array([0.5 * self.cruise, 0.2 * self.cruise, 1.0 if task.goal.yaw_deg is not None else 0.3,
                            0.05 if task.tool.gripper else 0.0])
            um = self.limits.control_max
            self._planner = make_planner(self.planner, self.config, CONTROL_DIM, std, -um, um, init)
            if self._cost is None:
                self._cost = TaskCost(task, self.limits, critic=self.critic)
        self._cost.history = obs.history[:-1]
        t0 = time.perf_counter()
        res = self._planner.plan(obs, _rollout_fn(task, self.backend, self.limits, self._frame), self._cost)
        dt = time.perf_counter() - t0
        self._times.append(dt)
        k = self.replan_every
        poses, vels = integrate_controls(obs.tool_pose, obs.tool_velocity, to_world(res.actions[:k], self._frame),
                                         self.limits, task.dt)
        poses[:, 2] = obs.tool_pose[2]
        self._planner.shift(k)
        self._log(task, obs, res)
        s = self.stats
        s["replans"] += 1
        s["seconds_per_replan"] = float(np.mean(self._times))
        s["rejected_candidates"] = self._cost.rejected
        s["candidates"] = self._cost.evaluated
        s["critic_seconds"] = self._cost.critic_seconds
        s["last_plan_cost"] = res.cost
        return poses, vels

    def _log(self, task: Task, obs: Observation, res: PlanResult) -> None:
        states = np.asarray(res.states)
        order = np.argsort(res.costs)[: self.keep_candidates]
        centres = states[order][:, :, task.object_particles].mean(2)  # (k, H + 1, 3)
        poses, _ = integrate_controls(obs.tool_pose, obs.tool_velocity, to_world(res.candidates[order], self._frame),
                                      self.limits, task.dt)
        best_poses, _ = integrate_controls(obs.tool_pose, obs.tool_velocity, to_world(res.actions, self._frame),
                                           self.limits, task.dt)
        self.log.append({"frame": obs.frame, "candidate_object_centres": centres.astype(np.float32),
                         "candidate_tool_xy": poses[..., :2].astype(np.float32),
                         "plan_tool_xy": best_poses[:, :2].astype(np.float32),
                         "plan_states": None if res.best_states is None else np.asarray(res.best_states, np.float32),
                         "cost": res.cost,
                         "rejected": int(self._cost.last_rejected.sum()) if self._cost.last_rejected is not None else 0})


@dataclass
class StraightPushController:
    """The heuristic baseline: approach behind the object on the line to the goal point, then push
    straight along that line at ``speed`` until the tool has moved the initial distance (open loop,
    no yaw, no replanning)."""

    speed: float = 0.12
    limits: ToolLimits = field(default_factory=ToolLimits)
    stats: dict = field(default_factory=dict)
    history: int = 5

    def __post_init__(self):
        self._queue: Optional[np.ndarray] = None
        self.done = False
        self.stats = {"replans": 0, "seconds_per_replan": 0.0, "rejected_candidates": 0, "backend": "heuristic"}

    def act(self, task: Task, obs: Observation):
        if self._queue is None:
            c = obs.positions[task.object_particles, :2].mean(0).astype(np.float64)
            d = task.goal_point() - c
            dist = float(np.linalg.norm(d))
            d = d / max(dist, 1e-9)
            start = push_pose(task, obs.positions, d)
            approach = approach_poses(task, obs, start, self.limits, task.dt)
            n = max(1, int(math.ceil(dist / (self.speed * task.dt))))
            u = np.tile(np.array([*(self.speed * d), 0.0, 0.0]), (n, 1))
            push, _ = integrate_controls(start, np.zeros(CONTROL_DIM), u, self.limits, task.dt)
            stop, _ = integrate_controls(push[-1], np.array([*(self.speed * d), 0.0, 0.0]), np.zeros((15, CONTROL_DIM)),
                                         self.limits, task.dt)
            self._queue = np.concatenate([approach.reshape(-1, 5), push, stop, np.repeat(stop[-1:], 20, 0)])
        poses, self._queue = self._queue[:10], self._queue[10:]
        self.done = len(self._queue) == 0  # the push is over: nothing more to try
        return poses, np.zeros((len(poses), CONTROL_DIM))
