"""``worldline simulate``: ground-truth rollout of a scene file on NVIDIA Newton.

The tool follows the scene file's path by default. ``--action FILE.npz`` replaces it with
prescribed tool particle positions: ``positions (T, M, 3) float32 m`` (T >= steps + 1, frame 0
= the tool at rest) and optionally ``indices (M,) int`` (the scene's tool particle indices, in
any order; default: the tool's particles in scene order), the fields of :class:`particles.Action`.
The rollout file also carries ``tool_indices``, ``tool_target (T, M, 3) float32 m`` (the
prescribed tool path, when the executed one differs from it: the tool's drive is force-limited,
so a blocked tool lags its path) and ``tool_force (T, P, 3) float32 N`` (per frame and rigid tool
part, the frame-averaged force its drive applied; frame 0 is zero).

The rollout is audited by the critic (``critic.audit``) unless ``--no-audit``; its events are
printed (the exit code stays 0: the rollout was written).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from dynamics.sim.simulator import SimConfig
from particles.scene_file import DEFAULT_MAX_PARTICLES
from worldline.errors import BadInput, check_output


def register(app: typer.Typer) -> None:
    @app.command("simulate")
    def simulate(
        scene: Path = typer.Argument(..., help="Scene file (.toml)."),
        out: Path = typer.Option(..., "--out", "-o", help="Rollout file to write (.npz)."),
        steps: int = typer.Option(100, "--steps", "-t", help="Frames to simulate after the initial one."),
        action: Optional[Path] = typer.Option(None, "--action", "-a",
                                              help="Tool motion .npz: indices (M,), positions (T, M, 3) m, "
                                                   "T >= steps + 1. Default: the scene's tool path."),
        dt: float = typer.Option(1.0 / 60.0, "--dt", help="Frame time step, s."),
        substeps: int = typer.Option(SimConfig.substeps, "--substeps", help="XPBD substeps per frame."),
        device: Optional[str] = typer.Option(None, "--device", help="Warp device (cpu, cuda:0); default Warp's."),
        max_particles: int = typer.Option(DEFAULT_MAX_PARTICLES, "--max-particles", min=1,
                                          help="Refuse a scene estimated (before anything is allocated) to need more "
                                               "particles than this."),
        max_force: Optional[float] = typer.Option(None, "--max-force",
                                                  help="N, the tool drive's force limit per rigid part (default: the "
                                                       f"scene's [tool] max_force, else {SimConfig.tool_max_force:g})."),
        no_audit: bool = typer.Option(False, "--no-audit", help="Do not run the critic on the rollout."),
    ):
        """Simulate SCENE with Newton (rigid: XPBD, granular: implicit MPM, elastic/cloth: VBD, rope: XPBD springs)
        and write the rollout, tool particles included with the kinematic type, then audit it.

        The tool is driven along its path with bounded force (--max-force): pressed against
        something, it pushes with the limit and lags its path instead of crushing through.

        Example: worldline simulate assets/scenes/squeeze_wall.toml --steps 180 --out squeeze.npz
        """
        import numpy as np

        from particles import ValidationError, save_rollout

        if steps < 1:
            raise BadInput(f"--steps must be at least 1, got {steps}")
        check_output(out)
        if not (dt > 0 and math.isfinite(dt)):
            raise BadInput(f"--dt must be a positive time in s, got {dt}")
        if not scene.exists():
            raise BadInput(f"scene file not found: {scene}")
        from dynamics.sim import SimConfig
        from dynamics.sim.scenes import setup_from_scene_file
        from particles.io import load_action
        from particles.scene_file import check_particle_budget, load_scene_file

        try:
            config = SimConfig(dt=dt, substeps=substeps, mpm_substeps=1, device=device)
        except ValidationError as exc:
            raise BadInput(f"--{exc.field.replace('_', '-')}: {exc.problem}") from None
        check_particle_budget(load_scene_file(scene), max_particles, frames=steps + 1)  # before any allocation
        if max_force is not None and not (max_force > 0):
            raise BadInput(f"--max-force must be a positive force in N, got {max_force}")
        setup = setup_from_scene_file(scene, dt, steps)
        if max_force is not None:
            import dataclasses

            setup = dataclasses.replace(setup, tool_max_force=float(max_force))
        act = setup.action
        if action is not None:
            if act is None:
                raise BadInput(f"{scene} has no tool, so --action has nothing to move")
            act = load_action(action, act.indices)
            if act.num_frames < steps + 1:
                raise BadInput(f"{action} covers {act.num_frames} frames; --steps {steps} needs {steps + 1}")
            # the simulator takes tool positions in the scene's (ascending) tool order
            order = np.argsort(act.indices)
            act = type(act)(act.indices[order], act.positions[:, order])
        sim = setup.simulator(config)
        rollout = sim.rollout(act, steps, progress=True)
        extra = {} if act is None else tool_extras(sim, rollout, act)
        save_rollout(out, rollout, extra=extra)
        n = rollout.scene.num_particles
        typer.echo(f"wrote {out}: {rollout.num_frames} frames x {n} particles, dt {dt:.4g} s, "
                   f"{rollout.scene.num_objects} objects ({', '.join(rollout.scene.object_material)})")
        if act is not None:
            lag = float(np.linalg.norm(rollout.positions[:, act.indices] - act.positions[: rollout.num_frames], axis=-1).max())
            force = float(np.linalg.norm(extra["tool_force"], axis=-1).max())
            typer.echo(f"tool: drive force up to {force:.3g} N (limit {sim.tool_max_force:.3g} N), "
                       f"at most {lag * 1000:.3g} mm off its path")
        if not no_audit:
            from critic import audit

            report = audit(rollout, source=str(out))
            typer.echo(report.table(max_message=160))


def tool_extras(sim, rollout, action) -> dict:
    """Rollout-file fields about the tool: ``tool_indices (M,)``, ``tool_force (T, P, 3) float32 N`` (per
    frame and tool part, the frame-averaged drive force; frame 0 zero) and, when the executed tool path
    differs from the prescribed one, ``tool_target (T, M, 3) float32 m`` (the prescribed path)."""
    import numpy as np

    t = rollout.num_frames
    drive = np.asarray(sim.tool_log["drive"], np.float32)
    force = np.zeros((t, drive.shape[1] if drive.ndim == 3 else 0, 3), np.float32)
    force[1:] = drive[-(t - 1):] if t > 1 else force[1:]
    extra = {"tool_indices": action.indices, "tool_force": force}
    target = action.positions[:t].astype(np.float32)
    if not np.array_equal(target, rollout.positions[:, action.indices]):
        extra["tool_target"] = target
    return extra
