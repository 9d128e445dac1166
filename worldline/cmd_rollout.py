"""``worldline rollout SCENE.toml|DATASET --checkpoint CKPT --out rollout.npz``: predict with a learned model
(the particle GNN, or the object-level model of ``dynamics.objects`` when CKPT is one of its checkpoints)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from particles.scene_file import DEFAULT_MAX_PARTICLES
from worldline.errors import BadInput, check_output


def _dataset_trajectory(folder: Path, split: str, index: int, steps: Optional[int], history: int, dt: float,
                        max_particles: int):
    """``(rollout, steps)``: trajectory ``index`` of ``split``, checked for a model that reads ``history`` + 1
    frames at ``dt`` s (its given frames finite, ``steps`` within what follows them; default: all of it)."""
    import numpy as np

    from particles import load_dataset
    from particles.io import MAX_LENGTH

    trajs = load_dataset(folder, split)
    if not 0 <= index < len(trajs):
        raise BadInput(f"--index {index}: the {split} split has {len(trajs)} trajectories")
    ro = trajs[index]
    if ro.scene.num_particles > max_particles:
        raise BadInput(f"{folder}: {split} trajectory {index} has {ro.scene.num_particles} particles, more than "
                       f"--max-particles {max_particles}; raise --max-particles")
    c = history
    if abs(ro.dt - dt) > 1e-9:
        raise BadInput(f"the trajectory's dt {ro.dt} s differs from the model's {dt} s")
    avail = ro.num_frames - 1 - c
    if avail < 1:
        raise BadInput(f"trajectory {index} has {ro.num_frames} frames; the model needs more than {c + 1}")
    given = ro.positions[:c + 1]
    if not np.all(np.isfinite(given)) or np.abs(given).max() > MAX_LENGTH:
        raise BadInput(f"{folder / (split + '.npz')}: field 'traj_{index}/positions': the first {c + 1} frames (the "
                       f"model's history) must be finite positions of at most {MAX_LENGTH:g} m")
    steps = avail if steps is None else steps
    if not 1 <= steps <= avail:
        raise BadInput(f"--steps {steps}: trajectory {index} allows 1..{avail} predicted frames after the {c + 1} given")
    return ro, steps


def _lift_scene_file(path: Path, steps: int, dt: float, max_particles: int):
    """``(lifted scene, tool action or None)`` of a scene file, its particle budget checked before lifting
    allocates anything; the action covers frames 0 .. ``steps`` at ``dt`` s."""
    try:
        from particles.lift import lift_scene, tool_action
        from particles.scene_file import check_particle_budget, load_scene_file
    except ImportError:
        raise BadInput("scene files need particles.scene_file and particles.lift, which this build lacks") from None
    spec = load_scene_file(path)
    check_particle_budget(spec, max_particles, frames=steps + 1)
    lifted = lift_scene(spec)
    return lifted, (tool_action(lifted, dt, steps) if spec.tool is not None else None)


def _rollout_dataset(model, folder: Path, split: str, index: int, steps: Optional[int], rigid: bool, collide: bool,
                     max_particles: int = DEFAULT_MAX_PARTICLES):
    import numpy as np

    from particles import Rollout
    from dynamics.evaluate import predict_trajectory

    c = model.config.history
    ro, steps = _dataset_trajectory(folder, split, index, steps, c, model.config.dt, max_particles)
    pred = predict_trajectory(model, ro, c, steps, rigid=rigid, collide=collide)
    pos = np.concatenate([ro.positions[:c + 1], pred], 0)
    return Rollout(ro.scene, pos, ro.dt), {"start_frame": np.int64(c)}


def _rollout_scene(model, path: Path, steps: Optional[int], rigid: bool, collide: bool,
                   max_particles: int = DEFAULT_MAX_PARTICLES):
    import numpy as np

    from dynamics.model import LearnedSimulator

    steps = 100 if steps is None else steps
    if steps < 1:
        raise BadInput(f"--steps must be >= 1, got {steps}")
    lifted, action = _lift_scene_file(path, steps, model.config.dt, max_particles)
    sim = LearnedSimulator(model, lifted.scene, action_indices=lifted.tool_indices, rigid=rigid, collide=collide)
    ro = sim.rollout(action, steps, progress=True)
    extra = {"start_frame": np.int64(0)}
    if action is not None:
        extra["tool_indices"] = action.indices
    return ro, extra


def _predict_objects(model, rollout, start: int, steps: int, collide: bool):
    """:func:`dynamics.objects.predict_trajectory_objects`, a scene it refuses as bad input."""
    from dynamics.objects import predict_trajectory_objects
    from particles import ValidationError

    try:
        return predict_trajectory_objects(model, rollout, start, steps, collide=collide)
    except ValidationError as exc:
        raise BadInput(f"the object model cannot roll this scene out: {exc.problem}") from None


def _rollout_objects(model, source: Path, split: str, index: int, steps: Optional[int], collide: bool,
                     max_particles: int):
    """The object model's rollout of a dataset trajectory or a scene file (as :func:`_rollout_dataset` and
    :func:`_rollout_scene` do for the GNN); a scene starts at rest."""
    import numpy as np

    from particles import Rollout

    c = model.config.history
    if source.is_dir():
        ro, steps = _dataset_trajectory(source, split, index, steps, c, model.config.dt, max_particles)
        pred = _predict_objects(model, ro, c, steps, collide)
        return Rollout(ro.scene, np.concatenate([ro.positions[:c + 1], pred], 0), ro.dt), {"start_frame": np.int64(c)}
    steps = 100 if steps is None else steps
    lifted, action = _lift_scene_file(source, steps, model.config.dt, max_particles)
    scene = lifted.scene
    x0 = scene.positions.astype(np.float32)
    frames = np.repeat(x0[None], c + 1 + steps, 0)  # at rest for the history; free rows after it are never read
    extra = {"start_frame": np.int64(0)}
    if action is not None:
        frames[c + 1:, action.indices] = action.positions[1:steps + 1]
        extra["tool_indices"] = action.indices
    pred = _predict_objects(model, Rollout(scene, frames, model.config.dt), c, steps, collide)
    return Rollout(scene, np.concatenate([x0[None], pred], 0), model.config.dt), extra


def warn_out_of_distribution(checkpoint: Path, ckpt: dict, scene) -> list[str]:
    """Print (stderr) one warning line per reason the scene lies outside what the checkpoint was
    trained on (materials, tool, object parameters), or once that its training distribution is
    unknown; returns the lines. ``ckpt`` is the checkpoint dict read from ``checkpoint``."""
    from dynamics.train import checkpoint_distribution, out_of_distribution

    reasons = out_of_distribution(checkpoint_distribution(ckpt), scene)
    lines = []
    for reason in reasons:
        if reason == "unknown training distribution":
            reason += " (the checkpoint does not record what it was trained on; the scene is not checked against it)"
        lines.append(f"warning: {checkpoint}: {reason}")
        typer.echo(lines[-1], err=True)
    return lines


def register(app: typer.Typer) -> None:
    @app.command("rollout")
    def rollout_cmd(
        source: Path = typer.Argument(..., help="A scene .toml (with its tool's path) or a dataset folder."),
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Trained model (RUN/model.pt or RUN/checkpoint.pt)."),
        out: Path = typer.Option(..., "--out", help="Rollout .npz to write (the critic and viewer read it)."),
        steps: Optional[int] = typer.Option(None, "--steps", help="Frames to predict (default: a dataset trajectory's rest, 100 for a scene)."),
        split: str = typer.Option("test", "--split", help="Dataset split to take the trajectory from."),
        index: int = typer.Option(0, "--index", help="Trajectory index within the split."),
        rigid: bool = typer.Option(True, "--rigid/--no-rigid", help="Keep rigid objects rigid (Kabsch projection)."),
        collide: bool = typer.Option(True, "--collide/--no-collide", help="Push free particles out of the tool, static objects, other objects and the ground."),
        threads: int = typer.Option(1, "--threads", help="CPU threads for PyTorch."),
        max_particles: int = typer.Option(DEFAULT_MAX_PARTICLES, "--max-particles", min=1,
                                          help="Refuse a scene or trajectory with more particles than this "
                                               "(scenes are estimated before anything is allocated)."),
    ):
        """Roll out a learned model on a scene or a dataset trajectory and write a rollout file.

        CKPT is a particle-GNN checkpoint (worldline train) or an object-model one (worldline train --model objects,
        e.g. assets/weights/objects_push.pt: rigid objects only; --collide applies its exact contact constraints,
        --rigid does not apply, its bodies are rigid by construction).

        For a dataset trajectory the first C + 1 frames are the data's (the model's history) and kinematic particles follow their recorded path; start_frame in the file says where prediction begins.

        For a scene file the scene is lifted into particles, starts at rest, and the tool follows its waypoints.

        Warns (stderr) when a material, the tool or an object's density, friction, restitution or stiffness lies outside what the checkpoint was trained on.
        """
        import torch
        import warp as wp

        from particles import save_rollout
        from dynamics.objects import is_object_checkpoint, object_model_from_checkpoint
        from dynamics.train import check_checkpoint, model_from_checkpoint, read_checkpoint_file

        wp.config.log_level = wp.LOG_WARNING  # no banner or per-module load lines in CLI output
        torch.set_num_threads(max(1, threads))
        check_output(out)
        if not source.exists():
            raise BadInput(f"{source}: no such scene file or dataset folder")
        if not source.is_dir() and source.suffix != ".toml":
            raise BadInput(f"{source}: expected a scene .toml or a dataset folder")
        from particles.io import SPLITS

        if source.is_dir() and split not in SPLITS:
            raise BadInput(f"--split: expected one of {', '.join(SPLITS)}, got {split!r}")
        if steps is not None and steps < 1:
            raise BadInput(f"--steps must be >= 1, got {steps}")
        raw = read_checkpoint_file(checkpoint)  # read once: which model it holds, then that model
        if is_object_checkpoint(raw):
            model = object_model_from_checkpoint(raw, checkpoint)
            ro, extra = _rollout_objects(model, source, split, index, steps, collide, max_particles)
            ckpt = raw
        else:
            ckpt = check_checkpoint(raw, checkpoint)
            model = model_from_checkpoint(ckpt, checkpoint)
            if source.is_dir():
                ro, extra = _rollout_dataset(model, source, split, index, steps, rigid, collide, max_particles)
            else:
                ro, extra = _rollout_scene(model, source, steps, rigid, collide, max_particles)
        warn_out_of_distribution(checkpoint, ckpt, ro.scene)
        save_rollout(out, ro, extra=extra)
        typer.echo(f"wrote {out}: {ro.num_frames} frames of {ro.scene.num_particles} particles, dt {ro.dt:g} s")
