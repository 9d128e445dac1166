"""``worldline dataset``: randomized pushing scenes simulated on Newton, written in the GNS layout.

Each scene ``i`` is drawn from its own generator ``np.random.default_rng([seed, i, attempt])``,
so the dataset does not depend on the number of workers or on the order scenes finish.
Every finished scene is written atomically to ``OUT/.work/scene_<i>.npz`` (a rollout file);
a killed run started again with the same arguments simulates only the missing scenes. The
split files and ``metadata.json`` (last) are assembled from the work folder at the end.

Every rollout is audited by the critic (``critic.audit``; ``--no-audit`` skips it). A draw whose
rollout is not finite or has any critic event is dropped and redrawn with the next attempt's
generator (deterministic); each scene file records what its dropped draws showed
(``dropped``), and the summary and ``metadata.json`` count them (``dropped_glitched``,
``dropped_by_category``).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Optional

import typer

from dynamics.sim.simulator import SimConfig
from particles.scene_file import DEFAULT_MAX_PARTICLES
from worldline.errors import BadInput, check_output

WORK = ".work"
#: Attempts per scene before giving up: a draw whose rollout is not finite or glitched is redrawn.
ATTEMPTS = 8
#: The scene kinds ``--help`` names (``dynamics.sim.scenes.SCENE_KINDS`` and ``HELDOUT_KINDS``, written out here
#: so that ``--help`` does not import the simulator; tests/test_sim.py checks they agree).
TRAINING_KINDS_HELP = ("boxes", "sand", "shapes", "push_paths", "elastic", "plastic", "cloth", "rope")
HELDOUT_KINDS_HELP = ("heldout_shapes", "heldout_materials", "rope_box")


def _scene_path(out: Path, i: int) -> Path:
    return out / WORK / f"scene_{i:05d}.npz"


def simulate_scene(out: str, i: int, seed: int, frames: int, dt: float, radius: float, granular_fraction: float,
                   substeps: int, check: bool = True, kinds: Optional[tuple] = None) -> str:
    """Simulate scene ``i`` and write it to the work folder (runs in a worker process).

    Draws ``np.random.default_rng([seed, i, attempt])`` for attempt 0, 1, ... until a rollout is
    finite and (with ``check``) audits clean (``kinds``: the scene kinds to draw from, see
    ``dynamics.sim.scenes.SCENE_KINDS``; None: the default mix); the file's ``dropped (D,) str`` lists, per dropped
    draw, its critic event categories joined by commas (``nonfinite`` for a non-finite rollout)."""
    import numpy as np

    from dynamics.sim import SimConfig
    from dynamics.sim.scenes import random_setup
    from particles import save_rollout

    path = _scene_path(Path(out), i)
    config = SimConfig(dt=dt, substeps=substeps, mpm_substeps=1)
    dropped: list[str] = []
    for attempt in range(ATTEMPTS):
        rng = np.random.default_rng([seed, i, attempt])
        setup = random_setup(rng, frames, r=radius, dt=dt, granular_fraction=granular_fraction, kinds=kinds)
        rollout = setup.simulator(config).rollout(setup.action, frames - 1)
        if not np.all(np.isfinite(rollout.positions)):
            dropped.append("nonfinite")
            continue
        if check:
            from critic import audit

            report = audit(rollout)
            if not report.clean:
                dropped.append(",".join(sorted({e.category for e in report.events})))
                continue
        save_rollout(path, rollout, extra={"tool_indices": setup.action.indices, "seed": np.int64(seed),
                                           "scene_index": np.int64(i), "attempt": np.int64(attempt),
                                           "dropped": np.array(dropped, dtype=str).reshape(-1)})
        return str(path)
    raise RuntimeError(f"scene {i}: all {ATTEMPTS} draws were dropped ({'; '.join(dropped)})")


def dropped_counts(paths) -> tuple[int, dict[str, int]]:
    """Dropped draws over the scene files ``paths``, and per critic category the dropped draws showing it."""
    import numpy as np

    total, per = 0, {}
    for p in paths:
        with np.load(p, allow_pickle=False) as z:
            entries = [str(e) for e in z["dropped"]] if "dropped" in z.files else []
        total += len(entries)
        for entry in entries:
            for cat in entry.split(","):
                per[cat] = per.get(cat, 0) + 1
    return total, dict(sorted(per.items()))


def _check_budget(scenes: int, frames: int, seed: int, dt: float, radius: float, granular_fraction: float,
                  max_particles: int, kinds: Optional[tuple] = None, heldout: int = 0,
                  heldout_kinds: Optional[tuple] = None) -> None:
    """Refuse, before simulating, a dataset whose scenes or assembled split files would not fit.

    Particles per scene: the most of the first (up to 16) scenes' draws, built without simulating
    (``random_setup`` with 3 frames). The split files are assembled in memory from every rollout:
    about ``2 x 12 B x scenes x frames x particles``, checked against this machine's memory.
    """
    import numpy as np

    from dynamics.sim.scenes import random_setup
    from particles.scene_file import physical_memory, rollout_bytes

    most = 0
    draws = [(i, kinds) for i in range(min(scenes, 16))] + [(scenes + i, heldout_kinds) for i in range(min(heldout, 16))]
    for i, ks in draws:
        setup = random_setup(np.random.default_rng([seed, i, 0]), 3, r=radius, dt=dt,
                             granular_fraction=granular_fraction, kinds=ks)
        most = max(most, setup.scene.num_particles)
    if most > max_particles:
        raise BadInput(f"--radius {radius:g}: scenes have up to {most} particles, more than --max-particles "
                       f"{max_particles}; raise --max-particles")
    need = rollout_bytes(frames, most) * (scenes + heldout)
    have = physical_memory()
    if have is not None and need > have:
        raise BadInput(f"--scenes {scenes} x --frames {frames} x about {most} particles need about "
                       f"{need / 2**30:.3g} GiB to assemble, more than this machine's {have / 2**30:.3g} GiB; "
                       "use fewer scenes or frames")


def parse_kinds(text: Optional[str], option: str) -> Optional[tuple]:
    """``"boxes,sand"`` -> ``("boxes", "sand")`` checked against ``SCENE_KINDS`` (None stays None)."""
    from dynamics.sim.scenes import SCENE_KINDS

    if text is None:
        return None
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    if not kinds:
        raise BadInput(f"{option}: name at least one scene kind ({', '.join(SCENE_KINDS)})")
    for k in kinds:
        if k not in SCENE_KINDS:
            raise BadInput(f"{option}: unknown scene kind {k!r}; known: {', '.join(SCENE_KINDS)}")
    return kinds


def _check_resume(out: Path, params: dict) -> None:
    """Refuse to resume a work folder made with other generator settings (its scenes would be mixed in)."""
    import json

    path = out / WORK / "params.json"
    if path.exists():
        old = json.loads(path.read_text())
        diff = sorted(k for k in set(old) | set(params) if old.get(k) != params.get(k))
        if diff:
            raise BadInput(f"--out {out}: its scenes in .work were made with other settings "
                           f"({', '.join(f'{k}: {old.get(k)!r} then, {params.get(k)!r} now' for k in diff)}); "
                           f"use a new --out or delete {out / WORK}")
    else:
        from particles.io import atomic_write

        text = json.dumps(params, indent=2)
        atomic_write(path, lambda f: f.write(text), mode="w")


def split_of(n: int, seed: int, valid: float, test: float) -> dict[str, list[int]]:
    """Scene indices per split: a seeded permutation, ``test`` and ``valid`` fractions (at least one
    scene each when ``n >= 3``), the rest for training."""
    import numpy as np

    order = np.random.default_rng([seed, 1 << 20]).permutation(n)
    n_test = int(round(test * n)) if n < 3 else max(1, int(round(test * n)))
    n_valid = int(round(valid * n)) if n < 3 else max(1, int(round(valid * n)))
    return {"test": sorted(order[:n_test].tolist()), "valid": sorted(order[n_test:n_test + n_valid].tolist()),
            "train": sorted(order[n_test + n_valid:].tolist())}


def register(app: typer.Typer) -> None:
    @app.command("dataset")
    def dataset(
        out: Path = typer.Option(..., "--out", "-o", help="Dataset folder to write (GNS layout)."),
        scenes: int = typer.Option(36, "--scenes", "-n", help="Number of random scenes."),
        workers: int = typer.Option(min(2, os.cpu_count() or 1), "--workers", "-j", help="Worker processes."),
        seed: int = typer.Option(0, "--seed", help="Seed of the scene generator and of the split."),
        frames: int = typer.Option(100, "--frames", help="Frames per scene (including the initial one)."),
        dt: float = typer.Option(1.0 / 60.0, "--dt", help="Frame time step, s."),
        radius: float = typer.Option(0.01, "--radius", help="Particle radius, m."),
        granular_fraction: float = typer.Option(0.35, "--granular-fraction",
                                                help="Fraction of scenes that are granular piles (the rest: rigid boxes)."),
        substeps: int = typer.Option(SimConfig.substeps, "--substeps", help="XPBD substeps per frame."),
        valid: float = typer.Option(0.1, "--valid", help="Fraction of scenes for validation."),
        test: float = typer.Option(0.1, "--test", help="Fraction of scenes for testing."),
        max_particles: int = typer.Option(DEFAULT_MAX_PARTICLES, "--max-particles", min=1,
                                          help="Refuse scenes estimated to have more particles than this."),
        no_audit: bool = typer.Option(False, "--no-audit", help="Keep draws without running the critic on them."),
        kinds: Optional[str] = typer.Option(None, "--kinds", metavar="K1,K2",
                                            help="Scene kinds to draw from, uniformly: " + ", ".join(TRAINING_KINDS_HELP)
                                                 + " (dynamics.sim.scenes.SCENE_KINDS); default: boxes and sand by "
                                                 "--granular-fraction."),
        heldout: int = typer.Option(0, "--heldout", min=0, metavar="N",
                                    help="Also make N scenes of --heldout-kinds as a 'heldout' split (never trained on)."),
        heldout_kinds: Optional[str] = typer.Option(None, "--heldout-kinds", metavar="K1,K2",
                                                    help="Scene kinds of the heldout split (required with --heldout), made "
                                                         "for it: " + ", ".join(HELDOUT_KINDS_HELP) + "; any kind works."),
    ):
        """Make a dataset of randomized push scenes on Newton (by default rigid boxes, stacks and sand
        piles; --kinds adds other shapes, pusher paths, elastic, plastic, cloth and rope), split by scene
        into train/valid/test. Resumable: run it again to finish a killed run.

        Every trajectory is audited by the critic; glitched ones are dropped and redrawn (new seed,
        deterministic) and counted in the summary and metadata.json (dropped_glitched).

        With --heldout N, N more scenes are drawn from --heldout-kinds (shapes or materials the
        training kinds never show) and written as the split 'heldout', for held-out tables
        (bench/model.py --split heldout).

        Example: worldline dataset --scenes 48 --frames 100 --workers 2 --out data/push48

        Example: worldline dataset --scenes 80 --kinds boxes,shapes,push_paths --heldout 16 --heldout-kinds heldout_shapes --out data/shapes
        """
        import concurrent.futures as cf
        import multiprocessing as mp

        from tqdm import tqdm

        from particles import load_rollout
        from particles.io import write_dataset

        if scenes < 1:
            raise BadInput(f"--scenes must be at least 1, got {scenes}")
        if workers < 1:
            raise BadInput(f"--workers must be at least 1, got {workers}")
        if frames < 3:
            raise BadInput(f"--frames must be at least 3 (GNS statistics need accelerations), got {frames}")
        if not (dt > 0 and radius > 0 and math.isfinite(dt) and math.isfinite(radius)):
            raise BadInput(f"--dt and --radius must be positive and finite, got {dt} s and {radius} m")
        if not (0 <= granular_fraction <= 1):
            raise BadInput(f"--granular-fraction must lie in [0, 1], got {granular_fraction}")
        if valid < 0 or test < 0 or valid + test >= 1:
            raise BadInput("--valid and --test must be non-negative fractions summing to less than 1")
        if out.exists() and not out.is_dir():
            raise BadInput(f"--out {out} exists and is not a folder")
        kind_list = parse_kinds(kinds, "--kinds")
        held_list = parse_kinds(heldout_kinds, "--heldout-kinds")
        if heldout and held_list is None:
            raise BadInput("--heldout N needs --heldout-kinds K1,K2 (the kinds its scenes are drawn from)")
        if held_list is not None and not heldout:
            raise BadInput("--heldout-kinds needs --heldout N (how many held-out scenes to make)")
        check_output(out, folder=True)
        _check_budget(scenes, frames, seed, dt, radius, granular_fraction, max_particles, kind_list, heldout, held_list)
        (out / WORK).mkdir(parents=True, exist_ok=True)
        _check_resume(out, {"scenes": scenes, "seed": seed, "frames": frames, "dt": dt, "radius": radius,
                            "granular_fraction": granular_fraction, "substeps": substeps, "audit": not no_audit,
                            "kinds": kind_list and list(kind_list), "heldout": heldout,
                            "heldout_kinds": held_list and list(held_list)})
        total = scenes + heldout
        todo = [i for i in range(total) if not _scene_path(out, i).exists()]
        if len(todo) < total:
            typer.echo(f"resuming: {total - len(todo)} of {total} scenes already in {out / WORK}")
        args = (str(out),)
        rest = (seed, frames, dt, radius, granular_fraction, substeps, not no_audit)

        def kinds_of(i: int):  # held-out scenes follow the training ones: indices scenes .. scenes + heldout - 1
            return held_list if i >= scenes else kind_list

        bar = tqdm(total=total, initial=total - len(todo), desc="scenes", unit="scene")
        if todo and workers == 1:
            for i in todo:
                simulate_scene(*args, i, *rest, kinds_of(i))
                bar.update(1)
        elif todo:
            # spawn: Warp and Newton hold native state that must not be forked
            with cf.ProcessPoolExecutor(max_workers=min(workers, len(todo)), mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(simulate_scene, *args, i, *rest, kinds_of(i)) for i in todo]
                try:
                    for fut in cf.as_completed(futures):
                        fut.result()
                        bar.update(1)
                except BaseException:
                    for fut in futures:
                        fut.cancel()
                    raise
        bar.close()
        parts = split_of(scenes, seed, valid, test)
        if heldout:
            parts["heldout"] = list(range(scenes, total))
        rollouts = {name: [load_rollout(_scene_path(out, i)) for i in idx] for name, idx in parts.items() if idx}
        dropped, by_category = dropped_counts(_scene_path(out, i) for i in range(total))
        meta = write_dataset(out, rollouts, extra_metadata={
            "generator": "worldline dataset (dynamics.sim.scenes.random_setup on NVIDIA Newton)",
            "seed": seed, "scenes": scenes, "scene_splits": parts, "substeps": substeps,
            "kinds": list(kind_list) if kind_list else None, "heldout_kinds": list(held_list) if held_list else None,
            "audited": not no_audit, "dropped_glitched": dropped, "dropped_by_category": by_category})
        sizes = ", ".join(f"{k} {len(v)}" for k, v in rollouts.items())
        typer.echo(f"wrote {out} ({sizes} scenes of {frames} frames); metadata: {meta}")
        cats = ", ".join(f"{k} {v}" for k, v in by_category.items()) or "none"
        typer.echo(f"dropped {dropped} glitched trajectories and drew new ones ({cats})"
                   + ("" if not no_audit else "; the critic was off (--no-audit)"))
