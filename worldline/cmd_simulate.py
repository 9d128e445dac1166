"""``worldline simulate``: ground-truth rollout of a scene file on NVIDIA Newton.

The tool follows the scene file's path by default. ``--action FILE.npz`` replaces it with
prescribed tool particle positions: ``positions (T, M, 3) float32 m`` (T >= steps + 1, frame 0
= the tool at rest) and optionally ``indices (M,) int`` (the scene's tool particle indices, in
any order; default: the tool's particles in scene order), the fields of :class:`particles.Action`.
The rollout file also carries ``tool_indices``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import typer

from dynamics.sim.simulator import SimConfig
from particles.scene_file import DEFAULT_MAX_PARTICLES
from worldline.errors import BadInput, check_output


def _load_action(path: Path, scene, tool_indices):
    """An :class:`particles.Action` from an ``.npz`` with ``indices (M,)`` and ``positions (T, M, 3)``."""
    import numpy as np

    from particles import Action, FileFormatError, ValidationError

    from particles.io import MAX_LENGTH, _NpzReader

    r = _NpzReader(path)  # names the file and field on a missing, empty, truncated or pickled file
    try:
        pos = r.numbers("positions")
        idx = r.numbers("indices", required=False, integer=True)
        if not np.issubdtype(pos.dtype, np.floating):
            raise FileFormatError(path, "positions", f"expected floats (T, M, 3) m, got dtype {pos.dtype}")
        if pos.size and np.nanmax(np.abs(pos)) > MAX_LENGTH:
            raise FileFormatError(path, "positions", f"tool positions past {MAX_LENGTH:g} m are outside the world")
        action = Action(tool_indices if idx is None else idx, pos)
    except ValidationError as exc:
        raise FileFormatError(path, exc.field, exc.problem) from None
    finally:
        r.close()
    if not np.array_equal(np.sort(action.indices), np.sort(tool_indices)):
        raise FileFormatError(path, "indices", f"must be the scene's {len(tool_indices)} tool particles")
    return action


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
    ):
        """Simulate SCENE with Newton (rigid: XPBD, granular: implicit MPM, elastic/cloth: XPBD springs)
        and write the rollout, tool particles included with the kinematic type."""
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
        from particles.scene_file import check_particle_budget, load_scene_file

        try:
            config = SimConfig(dt=dt, substeps=substeps, mpm_substeps=1, device=device)
        except ValidationError as exc:
            raise BadInput(f"--{exc.field.replace('_', '-')}: {exc.problem}") from None
        check_particle_budget(load_scene_file(scene), max_particles, frames=steps + 1)  # before any allocation
        setup = setup_from_scene_file(scene, dt, steps)
        act = setup.action
        if action is not None:
            if act is None:
                raise BadInput(f"{scene} has no tool, so --action has nothing to move")
            act = _load_action(action, setup.scene, act.indices)
            if act.num_frames < steps + 1:
                raise BadInput(f"{action} covers {act.num_frames} frames; --steps {steps} needs {steps + 1}")
            # the simulator takes tool positions in the scene's (ascending) tool order
            order = np.argsort(act.indices)
            act = type(act)(act.indices[order], act.positions[:, order])
        sim = setup.simulator(config)
        rollout = sim.rollout(act, steps, progress=True)
        extra = {} if act is None else {"tool_indices": act.indices}
        save_rollout(out, rollout, extra=extra)
        n = rollout.scene.num_particles
        typer.echo(f"wrote {out}: {rollout.num_frames} frames x {n} particles, dt {dt:.4g} s, "
                   f"{rollout.scene.num_objects} objects ({', '.join(rollout.scene.object_material)})")
