"""``worldline plan SCENE.toml``: plan the tool's motion to the scene's ``[goal]`` on the learned
model, reject candidates the critic flags, and (``--execute``) run it closed loop on Newton.

Files written into ``--out DIR``:

* ``action.npz``: the tool motion in the :class:`particles.Action` layout (``indices (M,)``,
  ``positions (T + 1, M, 3)`` m); ``worldline simulate SCENE.toml --action DIR/action.npz
  --steps T`` replays it;
* ``executed.npz`` (with ``--execute``): Newton's rollout under it; ``predicted.npz`` (without):
  the learned model's rollout of the open-loop plan;
* ``plan.json``: ``success``, ``final_position_error_m``, ``final_yaw_error_deg`` (pose goals) or
  ``fraction_in_region`` (region goals) or ``chamfer_m`` (target goals), ``replans``,
  ``seconds_per_replan``, ``rejected_candidates``, ``steps`` and the settings;
* ``plan.rrd``: the rollout with its critic events, the goal, a few candidates per replan (the goal
  object's predicted centre paths), the chosen plan's tool path and the executed motion.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from particles.scene_file import DEFAULT_MAX_PARTICLES
from worldline.errors import BadInput, check_output

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "weights" / "gns_push.pt"
DEFAULT_OBJECT_CHECKPOINT = ASSETS / "weights" / "objects_push.pt"
BACKENDS = ("learned", "objects", "objects-rules", "constraints", "newton")


def object_checkpoint(checkpoint: Optional[Path]) -> Path:
    """The object-model checkpoint a command means: ``checkpoint``, or the shipped
    ``objects_push.pt`` when it is None or the default (GNN) checkpoint."""
    return DEFAULT_OBJECT_CHECKPOINT if checkpoint is None or Path(checkpoint) == DEFAULT_CHECKPOINT else Path(checkpoint)


def make_backend(name: str, task, checkpoint: Optional[Path]):
    """A rollout backend of :mod:`dynamics.tasks` by name (the learned one loads ``checkpoint``)."""
    from dynamics.tasks import ConstraintsBackend, LearnedBackend, NewtonBackend

    if name == "learned":
        from dynamics.train import load_model

        model = load_model(checkpoint)
        if abs(model.config.dt - task.dt) > 1e-9:
            raise BadInput(f"{checkpoint}: the model steps by {model.config.dt} s, the task by {task.dt} s")
        return LearnedBackend(model, task.scene)
    if name in ("objects", "objects-rules"):  # without / with the exact rules evaluation judges in
        from dynamics.objects import load_object_model, object_backend
        from particles import ValidationError

        path = object_checkpoint(checkpoint)
        model = load_object_model(path)
        if abs(model.config.dt - task.dt) > 1e-9:
            raise BadInput(f"{path}: the model steps by {model.config.dt} s, the task by {task.dt} s")
        try:
            return object_backend(model, task.scene, rules=name == "objects-rules")
        except ValidationError as exc:
            raise BadInput(f"--backend {name}: {exc.problem}") from None
    if name == "constraints":
        return ConstraintsBackend(task.scene)
    if name == "newton":
        from dynamics.sim import SimConfig

        return NewtonBackend(task.setup, SimConfig(dt=task.dt))
    raise BadInput(f"--backend: unknown {name!r}; expected one of {', '.join(BACKENDS)}")


def run_plan(scene: Path, out: Path, checkpoint: Optional[Path] = DEFAULT_CHECKPOINT, execute: bool = False,
             planner: str = "mppi", samples: int = 32, horizon: int = 15, iterations: int = 2, replan_every: int = 5,
             max_steps: int = 240, seed: int = 0, backend: str = "learned", record: bool = True,
             progress: bool = True, echo=print) -> dict:
    """Plan (and with ``execute`` run) ``scene``'s task; write the files of the module docstring.

    Returns the ``plan.json`` dict. Raises :class:`particles.FileFormatError` on a bad scene or goal.
    """
    import torch

    from dynamics.plan import MPCController, PlannerConfig
    from dynamics.tasks import Task, run_episode
    from particles import save_rollout
    from particles.io import save_action

    for name, v, lo in (("--samples", samples, 2), ("--horizon", horizon, 2), ("--iterations", iterations, 1),
                        ("--replan-every", replan_every, 1), ("--max-steps", max_steps, 1)):
        if v < lo:
            raise BadInput(f"{name} must be at least {lo}, got {v}")
    if replan_every > horizon:
        raise BadInput(f"--replan-every {replan_every} exceeds --horizon {horizon}: it applies frames it never planned")
    if planner not in ("mppi", "cem"):
        raise BadInput(f"--planner: unknown {planner!r}; expected mppi or cem")
    if backend == "learned" and (checkpoint is None or not Path(checkpoint).exists()):
        raise BadInput(f"{checkpoint}: no such checkpoint")
    torch.set_num_threads(1)  # small graphs: more threads only contend (see worldline demo)
    task = Task.load(scene)
    be = make_backend(backend, task, checkpoint)
    cfg = PlannerConfig(samples=samples, horizon=horizon, iterations=iterations, seed=seed)
    ctl = MPCController(be, planner=planner, config=cfg, replan_every=replan_every)
    world = None
    if not execute:  # open loop: the plan is made and judged in the model alone
        world = _model_world(be, task, checkpoint)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=max_steps, desc="plan" if not execute else "plan+execute", unit="frame")

    def tick(obs):
        if bar is not None:
            bar.n = obs.frame
            bar.set_postfix(replans=ctl.stats["replans"], refresh=False)
            bar.refresh()

    try:
        res = run_episode(task, ctl, world=world, max_steps=max_steps, progress=tick)
    finally:
        if bar is not None:
            bar.close()
    import critic

    report = critic.audit(res.executed)
    out.mkdir(parents=True, exist_ok=True)
    save_action(out / "action.npz", res.action, dt=task.dt)
    roll_name = "executed.npz" if execute else "predicted.npz"
    save_rollout(out / roll_name, res.executed, extra={"tool_indices": task.tool.indices})
    report.write(out / ("executed_report.json" if execute else "predicted_report.json"))
    g = task.goal
    summary = {
        "scene": str(scene), "goal": g.to_dict(), "executed_on": "newton" if execute else f"{backend} model (open loop)",
        "success": res.success, "final_position_error_m": res.measures["position_error_m"],
    }
    if g.kind == "pose":
        summary["final_yaw_error_deg"] = res.measures["yaw_error_deg"] if g.yaw_deg is not None else None
    elif g.kind == "region":
        summary["fraction_in_region"] = res.measures["fraction_in_region"]
    else:
        summary["chamfer_m"] = res.measures["chamfer_m"]
    st = ctl.stats
    summary.update(
        replans=st["replans"], seconds_per_replan=st["seconds_per_replan"], rejected_candidates=st["rejected_candidates"],
        candidates=st["candidates"], critic_seconds=st["critic_seconds"], steps=res.steps,
        approach_frames=st["approach_frames"], reapproaches=st["reapproaches"], wall_s=res.wall_s,
        rollout_critic_events=len(report.events), planner=planner, backend=backend,
        checkpoint=str(checkpoint) if backend == "learned" else None, samples=samples, horizon=horizon,
        iterations=iterations, replan_every=replan_every, max_steps=max_steps, seed=seed,
    )
    from particles.io import atomic_write

    atomic_write(out / "plan.json", lambda f: f.write(json.dumps(summary, indent=2) + "\n"), mode="w")
    if record:
        record_plan(out / "plan.rrd", task, res, ctl.log, report)
    return summary


DEMO_TASK = ASSETS / "tasks" / "push_to_pose.toml"


def demo_push(out_dir: Path, checkpoint: Path, echo=print, progress: bool = True) -> dict:
    """The end of ``worldline demo``: a planned push of the shipped example task on the object-level
    model (``assets/weights/objects_push.pt``; the task's block is rigid), executed on Newton and
    audited; writes ``plan.rrd``, ``plan.json``, ``action.npz``, ``executed.npz`` into ``out_dir``
    and prints one line. Lighter settings than ``worldline plan``'s defaults (16 samples x 10 frames,
    one iteration per replan) keep the demo short on a 2-core CPU. ``checkpoint`` (the demo's GNN)
    is not used: the object model plans faster and closer than the GNN on rigid pushes
    (README, Planning)."""
    s = run_plan(DEMO_TASK, out_dir, DEFAULT_OBJECT_CHECKPOINT, execute=True, samples=16, horizon=10, iterations=1,
                 replan_every=5, max_steps=180, backend="objects", progress=progress, echo=echo)
    echo(f"planned push ({DEMO_TASK.name}, MPC on the object-level model, executed on Newton): "
         f"{'reached' if s['success'] else 'did not reach'} the goal, final error "
         f"{s['final_position_error_m'] * 1000:.1f} mm after {s['steps']} frames; {s['replans']} replans at "
         f"{s['seconds_per_replan']:.2f} s, {s['rejected_candidates']} of {s['candidates']} candidates rejected by the "
         f"critic; executed rollout: {s['rollout_critic_events']} critic events; recording {out_dir / 'plan.rrd'}")
    return s


def _model_world(backend, task, checkpoint):
    """The world of an open-loop plan: the model itself (or Newton when planning on Newton)."""
    from dynamics.sim import SimConfig

    if backend.name == "newton":
        return task.setup.simulator(SimConfig(dt=task.dt))
    if backend.name == "learned":
        from dynamics.model import LearnedSimulator

        return LearnedSimulator(backend.model, task.scene, task.tool.indices)
    return _ConstraintsWorld(backend, task)


class _ConstraintsWorld:
    """The constraints-only backend stepped frame by frame as a :class:`dynamics.Dynamics`-like world."""

    def __init__(self, backend, task):
        self.backend, self.task = backend, task
        self.prev = None

    def step(self, state_in, state_out, control, dt):
        hist = np.stack([state_in.positions - state_in.velocities * dt, state_in.positions]).astype(np.float32)
        nxt = self.backend.predict(hist, self.task.tool.indices, np.asarray(control, np.float32)[None, None])[0, 1]
        state_out.positions[...] = nxt
        state_out.velocities[...] = (nxt - state_in.positions) / dt


def record_plan(path: Path, task, res, log, report) -> None:
    """``plan.rrd``: the rollout (``viz.log_rollout``) plus ``world/goal`` (box or marker),
    ``world/plan/candidates`` (a few candidates' predicted object-centre paths, at each replan's
    frame), ``world/plan/chosen`` (the chosen plan's tool path) and ``world/executed/object`` (the
    object's centre path so far)."""
    import viz
    from viz.record import make_blueprint

    ro = res.executed
    bp = make_blueprint(fps=1.0 / ro.dt)
    r = task.scene.radius
    with viz.RerunViewer(path, blueprint=bp, recording_name="plan") as v:
        viz.log_rollout(v, ro, report.to_dict() if hasattr(report, "to_dict") else report)
        g = task.goal
        z = float(ro.positions[0, task.object_particles, 2].mean())
        if g.region is not None:
            lo, hi = np.asarray(g.region[0]), np.asarray(g.region[1])
            v.log_boxes("world/goal", [(lo + hi) / 2], [(hi - lo) / 2], colors=[(0, 220, 0)], labels=["goal region"],
                        static=True)
        elif g.position is not None:
            c = np.array([*g.position[:2], g.position[2] if len(g.position) == 3 else z])
            v.log_boxes("world/goal", [c], [[g.tolerance, g.tolerance, r]], colors=[(0, 220, 0)],
                        labels=[f"goal {task.lifted.spec.objects[task.object_index].name}"], static=True)
        else:
            v.log_points("world/goal", task.target_points, radii=0.5 * r, colors=(0, 220, 0), static=True)
        for entry in log:
            f = entry["frame"]
            v.begin_frame(f, f * ro.dt)
            cc = entry["candidate_object_centres"]  # (k, H + 1, 3)
            if len(cc):
                a, b = cc[:, :-1].reshape(-1, 3), cc[:, 1:].reshape(-1, 3)
                v.log_segments("world/plan/candidates", a, b, radius=0.2 * r, colors=(160, 160, 255))
            tool = entry["plan_tool_xy"]
            p = np.concatenate([tool, np.full((len(tool), 1), float(task.tool.centre[2]))], 1)
            if len(p) > 1:
                v.log_segments("world/plan/chosen", p[:-1], p[1:], radius=0.3 * r, colors=(255, 60, 60))
            v.log_text("log/plan", f"replan at frame {f}: cost {entry['cost']:.3g}, {entry['rejected']} candidates "
                       f"rejected by the critic")
        c = ro.positions[:, task.object_particles].mean(1)
        for t in range(1, ro.num_frames):
            v.begin_frame(t, t * ro.dt)
            v.log_segments("world/executed/object", c[:t], c[1:t + 1], radius=0.25 * r, colors=(255, 200, 0))


def _check_budget(scene: Path, samples: int, max_particles: int) -> None:
    """Refuse, before anything is allocated, a plan whose ``samples`` packed copies of ``scene`` would
    hold more than ``max_particles`` particles (the estimate of :func:`particles.scene_file.estimate_particles`)."""
    from particles.scene_file import check_particle_budget, load_scene_file

    one = check_particle_budget(load_scene_file(scene), max_particles).total
    packed = one * max(samples, 1)
    if packed > max_particles:
        raise BadInput(f"{scene}: --samples {samples} packed copies of about {one:.3g} "
                       f"particles make about {packed:.3g}, more than --max-particles {max_particles}; "
                       "use fewer --samples or a larger world.spacing, or raise --max-particles")


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        scene: Path = typer.Argument(..., help="Task scene file (.toml) with a [tool] and a [goal]."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for action.npz, executed.npz, plan.json, plan.rrd."),
        checkpoint: Path = typer.Option(DEFAULT_CHECKPOINT, "--checkpoint", help="Learned-model checkpoint."),
        execute: bool = typer.Option(False, "--execute", help="Run closed loop with Newton as the real world."),
        planner: str = typer.Option("mppi", "--planner", help="mppi or cem."),
        samples: int = typer.Option(32, "--samples", "-k", help="Candidates per planner iteration (K)."),
        horizon: int = typer.Option(15, "--horizon", help="Frames planned ahead (H)."),
        iterations: int = typer.Option(2, "--iterations", help="Planner iterations per replan."),
        replan_every: int = typer.Option(5, "--replan-every", help="Frames applied between replans."),
        max_steps: int = typer.Option(240, "--max-steps", help="Most frames to run."),
        seed: int = typer.Option(0, "--seed", help="Seed of the planner's noise."),
        backend: str = typer.Option("learned", "--backend",
                                    help="What the planner rolls candidates out on: learned (the particle GNN), objects (the "
                                         "object-level rigid-body model, the network's steps alone; --checkpoint "
                                         "defaults to assets/weights/objects_push.pt), objects-rules (the same "
                                         "with the exact rules `worldline evaluate` judges in, "
                                         "dynamics.objects.RULES: 16/20 as the model alone, at 2x its replan time, on bench/plan.py's "
                                         "tasks, README Planning), constraints or newton."),
        no_record: bool = typer.Option(False, "--no-record", help="Skip plan.rrd."),
        max_particles: int = typer.Option(DEFAULT_MAX_PARTICLES, "--max-particles", min=1,
                                          help="Refuse a scene whose K packed candidates (particles x --samples) "
                                               "are estimated to need more particles than this."),
    ):
        """Plan the tool's motion to SCENE's [goal] by model-predictive control on the learned model:
        K candidate motions per iteration, packed into one graph batch, each predicted rollout audited
        by the critic (glitched candidates rejected), cost = goal error + effort + critic penalty.

        With --execute the plan runs closed loop on Newton (observe, replan, apply --replan-every
        frames, repeat); without it, the open-loop plan and the model's predicted rollout are written.

        Example:

          worldline plan assets/tasks/push_to_pose.toml --execute --out plan_out

          worldline simulate assets/tasks/push_to_pose.toml --action plan_out/action.npz --steps STEPS --out replay.npz
        """
        if not scene.exists():
            raise BadInput(f"{scene}: no such scene file")
        _check_budget(scene, samples, max_particles)
        check_output(out, "--out", folder=True)
        t0 = time.perf_counter()
        s = run_plan(scene, out, checkpoint, execute, planner, samples, horizon, iterations, replan_every, max_steps,
                     seed, backend, record=not no_record, echo=typer.echo)
        err = f"final position error {s['final_position_error_m'] * 1000:.1f} mm"
        if s.get("final_yaw_error_deg") is not None:
            err += f", yaw error {s['final_yaw_error_deg']:.1f} deg"
        if "fraction_in_region" in s:
            err += f", {s['fraction_in_region']:.0%} in the region"
        typer.echo(f"{'reached' if s['success'] else 'did not reach'} the goal ({s['executed_on']}): {err}; "
                   f"{s['steps']} frames, {s['replans']} replans at {s['seconds_per_replan']:.2f} s each, "
                   f"{s['rejected_candidates']} of {s['candidates']} candidates rejected by the critic; "
                   f"{time.perf_counter() - t0:.0f} s")
        typer.echo(f"wrote {out}/action.npz, {'executed' if execute else 'predicted'}.npz, plan.json"
                   + ("" if no_record else ", plan.rrd"))
