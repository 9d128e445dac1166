"""Planning: goals in scene files, bounded tool motion, MPPI/CEM, critic-filtered candidates, the
closed loop on Newton and `worldline plan` (replayable by `worldline simulate --action`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dynamics.plan import MPPI, PlannerConfig, REJECT_COST, TaskCost, correlated_noise, make_planner
from dynamics.tasks import (ConstraintsBackend, Task, ToolLimits, goal_measures, integrate_controls,
                            observe, run_episode)
from worldline.cli import main

from conftest import ASSETS

EXAMPLE = ASSETS / "tasks" / "push_to_pose.toml"

BLOCK = """
[world]
spacing = 0.02
ground = 0.0

[[object]]
name = "block"
shape = "box"
size = [0.08, 0.08, 0.06]
position = [0.0, 0.0, 0.03]
material = "rigid"
density = 800.0
{extra}
[tool]
shape = "pusher"
size = [0.02, 0.08, 0.06]
path = [{{ t = 0.0, position = [{tool_x}, 0.0, 0.032] }}]

[goal]
{goal}
"""


def _task_file(tmp_path, goal: str, extra: str = "", tool_x: float = -0.08, name: str = "task.toml"):
    p = tmp_path / name
    p.write_text(BLOCK.format(goal=goal, extra=extra, tool_x=tool_x))
    return p


# ----------------------------------------------------------------------------- goals


@pytest.mark.parametrize("goal, extra, field", [
    ('object = "crate"\nposition = [0.1, 0.0]', "", "goal.object"),
    ('object = "block"\nregion = { min = [0.1, 0.0, 0.0], max = [0.1, 0.1, 0.1] }', "", "goal.region"),
    ('object = "block"\nposition = [0.1, 0.0, -0.05]', "", "goal.position"),
    ('object = "block"\nposition = [0.1, 0.0]\nregion = { min = [0, 0, 0], max = [1, 1, 1] }', "", "goal.position"),
    ('object = "block"\ntarget = "missing.npz"', "", "goal.target"),
    ('object = "table"\nposition = [0.1, 0.0]',
     '\n[[object]]\nname = "table"\nshape = "box"\nsize = [0.4, 0.4, 0.02]\nposition = [0, 0, -0.01]\nmaterial = "static"\n',
     "goal.object"),
    ('object = "block"\nposition = [0.1, 0.0]\nfraction = 0.5', "", "goal.fraction"),
])
def test_bad_goal_files_exit_2_naming_the_field(tmp_path, capsys, goal, extra, field):
    path = _task_file(tmp_path, goal, extra)
    out = tmp_path / "out"
    assert main(["plan", str(path), "--out", str(out), "--backend", "constraints"]) == 2
    err = capsys.readouterr().err
    assert f"'{field}'" in err and str(path) in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing half-written


def test_goal_off_the_table_is_unreachable(tmp_path, capsys):
    text = """
[world]
spacing = 0.02
[[object]]
name = "table"
shape = "box"
size = [0.3, 0.3, 0.04]
position = [0.0, 0.0, 0.2]
material = "static"
[[object]]
name = "block"
shape = "box"
size = [0.06, 0.06, 0.06]
position = [0.0, 0.0, 0.25]
material = "rigid"
[tool]
size = [0.02, 0.08, 0.06]
path = [{ t = 0.0, position = [-0.1, 0.0, 0.25] }]
[goal]
object = "block"
position = [0.3, 0.0]
"""
    p = tmp_path / "table.toml"
    p.write_text(text)
    assert main(["plan", str(p), "--out", str(tmp_path / "o"), "--backend", "constraints"]) == 2
    assert "'goal.position'" in capsys.readouterr().err
    p.write_text(text.replace("position = [0.3, 0.0]", "position = [0.1, 0.0]"))
    assert Task.load(p).goal.position == (0.1, 0.0)  # on the table: fine


def test_goal_measures_pose_yaw_region():
    task = Task.load(EXAMPLE)
    x = task.scene.positions.copy()
    m = goal_measures(task, x)
    assert float(m["position_error_m"]) == pytest.approx(0.10, abs=1e-6)
    # rotate the block by 30 degrees about z and move it onto the goal: position error 0, yaw 30 deg
    idx = task.object_particles
    c = x[idx].mean(0)
    a = math.radians(30.0)
    rz = np.array([[math.cos(a), -math.sin(a), 0], [math.sin(a), math.cos(a), 0], [0, 0, 1]])
    y = x.copy()
    y[idx] = (x[idx] - c) @ rz.T + c + np.array([0.1, 0.0, 0.0])
    from dataclasses import replace

    yaw_task = replace(task, goal=replace(task.goal, yaw_deg=-10.0))
    m = goal_measures(yaw_task, np.stack([x, y]))
    assert float(m["position_error_m"][1]) < 1e-6
    assert float(m["yaw_error_deg"][1]) == pytest.approx(40.0, abs=1e-3)
    reg = replace(task, goal=replace(task.goal, position=None, region=((0.05, -1.0, 0.0), (1.0, 1.0, 1.0))))
    m = goal_measures(reg, np.stack([x, y]))
    assert float(m["fraction_in_region"][0]) == 0.0 and float(m["fraction_in_region"][1]) == 1.0


# ----------------------------------------------------------------------------- tool motion


def test_tool_motion_stays_within_speed_and_acceleration_bounds():
    lim = ToolLimits()
    dt = 1.0 / 60.0
    rng = np.random.default_rng(0)
    u = rng.normal(0, 1.0, (16, 30, 4))  # wild commands, far beyond the bounds
    poses, vels = integrate_controls(np.zeros(5), np.zeros(4), u, lim, dt)
    v = np.concatenate([np.zeros((16, 1, 4)), vels], 1)
    assert np.linalg.norm(v[..., :2], axis=-1).max() <= lim.max_speed + 1e-9
    assert np.linalg.norm(np.diff(v[..., :2], axis=1), axis=-1).max() <= lim.max_accel * dt + 1e-9
    assert np.abs(np.diff(v[..., 2], axis=1)).max() <= lim.max_yaw_accel * dt + 1e-9
    assert np.allclose(np.diff(np.concatenate([np.zeros((16, 1, 5)), poses], 1)[..., :2], axis=1) / dt, v[:, 1:, :2])


def test_tool_particles_follow_pose_rigidly():
    task = Task.load(EXAMPLE)
    tool = task.tool
    rest = tool.rest_pose()
    assert np.allclose(tool.particles(rest), task.scene.positions[tool.indices], atol=1e-6)
    pose = rest + np.array([0.05, -0.02, 0.0, 0.7, 0.0])
    p = tool.particles(pose).astype(np.float64)
    d0 = np.linalg.norm(tool.rest[:, None] - tool.rest[None], axis=-1)
    assert np.allclose(np.linalg.norm(p[:, None] - p[None], axis=-1), d0, atol=1e-6)
    assert np.allclose(tool.pose_of(p), pose, atol=1e-5)


# ----------------------------------------------------------------------------- planners


def _analytic_problem(goal=np.array([1.0, 0.5]), obstacle=None):
    """A 2D point that moves by its action each step; cost: distance to the goal per step + effort,
    and a large cost for every step inside the disc ``obstacle = (centre, radius)``."""

    def rollout(state, u):
        return torch.as_tensor(state)[None, None] + torch.cumsum(u, 1)

    def cost(states, u):
        d = (states - torch.as_tensor(goal)).norm(dim=-1)
        c = d.mean(1) + 2.0 * d[:, -1] + 0.01 * (u ** 2).sum((1, 2))
        if obstacle is not None:
            inside = (states - torch.as_tensor(obstacle[0])).norm(dim=-1) < obstacle[1]
            c = c + 100.0 * inside.double().sum(1)
        return c.numpy()

    return rollout, cost


@pytest.mark.parametrize("kind", ["mppi", "cem"])
def test_planners_reduce_cost_on_an_analytic_problem(kind):
    rollout, cost = _analytic_problem()
    pl = make_planner(kind, PlannerConfig(samples=64, horizon=10, iterations=6, seed=3), 2, 0.1, -0.3, 0.3)
    zero = float(cost(rollout(np.zeros(2), torch.zeros(1, 10, 2)), torch.zeros(1, 10, 2))[0])
    res = pl.plan(np.zeros(2), rollout, cost)
    assert res.cost < 0.4 * zero
    end = np.cumsum(res.actions, 0)[-1]
    assert np.linalg.norm(end - [1.0, 0.5]) < 0.15


@pytest.mark.parametrize("kind", ["mppi", "cem"])
def test_receding_horizon_goes_around_an_obstacle(kind):
    """The straight line from the start to the goal crosses a disc; the executed path must not."""
    goal = np.array([1.0, 0.0])
    obstacle = (np.array([0.5, 0.0]), 0.2)
    rollout, cost = _analytic_problem(goal, obstacle)
    pl = make_planner(kind, PlannerConfig(samples=64, horizon=12, iterations=3, seed=1), 2, 0.08, -0.1, 0.1,
                      init=np.array([0.08, 0.0]))
    x, path = np.zeros(2), [np.zeros(2)]
    for _ in range(18):  # receding horizon: apply 2 steps, shift, replan
        res = pl.plan(x, rollout, cost)
        for u in res.actions[:2]:
            x = x + u
            path.append(x.copy())
        pl.shift(2)
    path = np.array(path)
    assert np.linalg.norm(path - obstacle[0], axis=1).min() >= obstacle[1]
    assert np.linalg.norm(path[-1] - goal) < 0.1


def test_correlated_noise_keeps_its_std_and_correlates_neighbouring_frames():
    g = torch.Generator().manual_seed(0)
    n = correlated_noise(g, 4000, 20, torch.tensor([0.5]), 0.8)[..., 0]
    assert float(n.std()) == pytest.approx(0.5, rel=0.05)
    lag1 = float((n[:, 1:] * n[:, :-1]).mean() / n.var())
    assert lag1 == pytest.approx(0.8, abs=0.05)
    assert abs(float((n[:, 10:] * n[:, :-10]).mean() / n.var()) - 0.8 ** 10) < 0.05


# ----------------------------------------------------------------------------- critic filter


def test_glitching_candidates_are_rejected_and_counted():
    task = Task.load(EXAMPLE)
    backend = ConstraintsBackend(task.scene)
    obs = observe(task, [task.scene.positions.copy()], np.zeros(4))
    cost = TaskCost(task, ToolLimits())
    cost.history = obs.history[:-1]
    glitched = []

    def rollout(state, u):
        poses, _ = integrate_controls(state.tool_pose, state.tool_velocity, u, ToolLimits(), task.dt)
        poses[..., 2] = state.tool_pose[2]
        x = backend.predict(state.history, task.tool.indices, task.tool.particles(poses))
        bad = u[:, :, 1].mean(1).numpy() > 0.02  # candidates that head to +y glitch: the block jumps 0.2 m
        jump = x[:, 4:, task.object_particles[:5], 2]
        jump[bad] += 0.2
        x[:, 4:, task.object_particles[:5], 2] = jump
        glitched.append(int(bad.sum()))
        return x

    pl = MPPI(PlannerConfig(samples=24, horizon=8, iterations=2, seed=0), 4, np.array([0.06, 0.06, 0.0, 0.0]),
              -ToolLimits().control_max, ToolLimits().control_max, np.array([0.1, 0.0, 0.0, 0.0]))
    res = pl.plan(obs, rollout, cost)
    assert sum(glitched) > 0
    assert cost.rejected == sum(glitched)  # every glitched candidate, and only those
    assert cost.evaluated == 48
    assert res.actions[:, 1].mean() <= 0.02  # the chosen plan is not a glitched one
    assert res.cost < REJECT_COST


# ----------------------------------------------------------------------------- closed loop


class _Refuses:
    history = 5
    stats = {}

    def act(self, task, obs):
        raise AssertionError("the goal is met: the controller must not be asked to move")


def test_goal_already_met_means_no_motion(tmp_path):
    path = _task_file(tmp_path, 'object = "block"\nposition = [0.005, 0.0]')
    task = Task.load(path)
    res = run_episode(task, _Refuses(), max_steps=50)
    assert res.success and res.steps == 0
    assert res.action.num_frames == 1
    assert np.array_equal(res.action.positions[0], task.scene.positions[task.tool.indices])


def test_approach_goes_over_an_object_instead_of_through_it(tmp_path):
    """The goal needs a push toward -x but the tool starts on the -x side: it must get behind the
    block (to +x) without sweeping through it, so it lifts over; the block stays put meanwhile."""
    from dynamics.plan import MPCController

    path = _task_file(tmp_path, 'object = "block"\nposition = [-0.10, 0.0]', tool_x=-0.08)
    task = Task.load(path)
    ctl = MPCController(ConstraintsBackend(task.scene))
    obs = observe(task, [task.scene.positions.copy()], np.zeros(4))
    poses, _ = ctl.act(task, obs)
    assert poses[-1, 0] > 0.04 and poses[:, 2].max() > 0.06 + task.scene.radius  # behind, having gone over the top
    world = task.setup.simulator()
    from particles import ParticleState

    s = ParticleState.at_rest(task.scene)
    n = ParticleState(np.zeros_like(s.positions), np.zeros_like(s.positions))
    for p in poses:
        world.step(s, n, task.tool.particles(p), task.dt)
        s, n = n, s
    moved = np.linalg.norm(s.positions[task.object_particles] - task.scene.positions[task.object_particles], axis=1)
    assert moved.max() < 2e-3


def test_plan_execute_then_simulate_replays_the_executed_rollout(tmp_path, capsys):
    out = tmp_path / "plan"
    args = ["plan", str(EXAMPLE), "--execute", "--out", str(out), "--backend", "constraints", "--samples", "8",
            "--horizon", "6", "--iterations", "1", "--replan-every", "3", "--max-steps", "36", "--no-record"]
    assert main(args) == 0
    summary = json.loads((out / "plan.json").read_text())
    for key in ("success", "final_position_error_m", "final_yaw_error_deg", "replans", "seconds_per_replan",
                "rejected_candidates", "steps"):
        assert key in summary
    assert summary["replans"] >= 1 and summary["steps"] == 36
    executed = np.load(out / "executed.npz")["positions"]
    block = executed[:, :48].mean(1)
    assert block[-1, 0] - block[0, 0] > 0.01  # the plan pushed the block toward the goal (+x)
    replay = tmp_path / "replay.npz"
    assert main(["simulate", str(EXAMPLE), "--action", str(out / "action.npz"), "--steps", str(summary["steps"]),
                 "--out", str(replay)]) == 0
    again = np.load(replay)["positions"]
    assert again.shape == executed.shape
    assert np.abs(again - executed).max() < 1e-5


def test_same_seed_same_plan_other_seed_other_plan():
    task = Task.load(EXAMPLE)
    backend = ConstraintsBackend(task.scene)
    from dynamics.plan import MPCController

    def first_plan(seed):
        ctl = MPCController(backend, config=PlannerConfig(samples=8, horizon=6, iterations=2, seed=seed))
        obs = observe(task, [task.scene.positions.copy()], np.zeros(4))
        approach, _ = ctl.act(task, obs)
        frames = [task.scene.positions.copy()]
        for p in approach:  # pretend the approach ran exactly (the tool moved, nothing else)
            x = frames[-1].copy()
            x[task.tool.indices] = task.tool.particles(p)
            frames.append(x)
        poses, _ = ctl.act(task, observe(task, frames, np.zeros(4)))
        return poses

    a, b, c = first_plan(0), first_plan(0), first_plan(1)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_plan_refuses_packed_candidates_past_the_particle_limit(tmp_path, capsys):
    """K packed copies of the scene count against --max-particles before anything is allocated."""
    out = tmp_path / "out"
    assert main(["plan", str(EXAMPLE), "--out", str(out), "--samples", "64", "--max-particles", "1000"]) == 2
    err = capsys.readouterr().err
    assert "--samples 64" in err and "--max-particles 1000" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_planning_on_objects_rules_steps_the_model_evaluation_judges_in():
    """`worldline plan --backend objects-rules` plans in the world model `worldline evaluate
    --backend objects` judges in: the same exact rules (dynamics.objects.RULES: constraints, energy
    law, shape contacts, sliding friction), so the same predicted rollout of a push;
    `--backend objects` (and `worldline demo`'s push) plans without them and predicts another one."""
    from dynamics.objects import RULES
    from worldline.cmd_evaluate import BACKENDS as EVAL_BACKENDS
    from worldline.cmd_plan import make_backend

    task = Task.load(EXAMPLE)
    plan = make_backend("objects-rules", task, None)
    plain = make_backend("objects", task, None)
    judge = EVAL_BACKENDS["objects"](None)(task)
    assert all(RULES.values()) and set(RULES) == {"collide", "passive_energy", "shape_contact", "sliding_friction"}
    assert {k: getattr(plan, k) for k in RULES} == RULES
    assert not any(getattr(plain, k) for k in RULES)
    # a push: the tool, 5 mm behind the block and still, runs into it at 0.2 m/s for 6 frames
    hist = np.repeat(task.scene.positions[None].astype(np.float32), plan.history + 1, 0)
    hist[:, task.tool.indices, 0] += 0.025
    dx = 0.2 * task.dt * np.arange(1, 7, dtype=np.float32)
    fut = (hist[-1, task.tool.indices][None] + dx[:, None, None] * np.array([1.0, 0.0, 0.0], np.float32))[None]
    got = plan.predict(hist, task.tool.indices, fut)
    assert np.array_equal(got, judge.predict(hist, task.tool.indices, fut))
    free = np.setdiff1d(np.arange(task.scene.num_particles), task.tool.indices)
    assert got[0, -1, free, 0].mean() - hist[-1, free, 0].mean() > 0.008  # the push moved the block
    assert np.abs(plain.predict(hist, task.tool.indices, fut) - got).max() > 1e-4  # the rules changed the rollout
