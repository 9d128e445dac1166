"""``worldline demo``: the main job, end to end on a shipped scene and shipped weights.

Lift the scene, run the ground-truth simulator (NVIDIA Newton) and the learned model under
the same push, audit both rollouts with the critic, and write a Rerun recording, a PNG,
the rollouts and the reports. Offline; about a minute on a 2-core CPU once Warp's kernels
are compiled (the first run compiles them, a few minutes).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import numpy as np
import typer

from worldline.errors import BadInput, check_output

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_SCENE = ASSETS / "scenes" / "push_blocks.toml"
DEFAULT_CHECKPOINT = ASSETS / "weights" / "gns_push.pt"


def _timed(label: str, fn, timings: dict):
    t0 = time.perf_counter()
    out = fn()
    timings[label] = time.perf_counter() - t0
    return out


def run_demo(scene_path: Path, checkpoint: Optional[Path], steps: int, out_dir: Path, echo=print,
             progress: bool = True, plan: bool = True) -> dict:
    """Run the demo; returns a summary dict (also printed through ``echo``).

    Writes into ``out_dir``: ``demo.rrd``, ``demo.png``, ``truth.npz`` and ``model.npz``
    (rollout files), ``truth_report.json`` and ``model_report.json`` (critic reports), and the critic's
    showcase: ``showcase.npz`` (the truth once per category, side by side, each copy with one injected
    glitch), ``showcase_labels.json``, ``showcase_report.json`` and ``showcase.rrd``.
    Without a usable checkpoint the learned-model half is skipped and the summary says so.
    """
    import critic
    import viz
    from dynamics.sim import SimConfig
    from dynamics.sim.scenes import setup_from_lifted
    from particles import save_rollout
    from particles.graph import radius_graph
    from particles.keypoints import build_keypoints
    from particles.lift import lift_scene
    from particles.scene_file import load_scene_file

    import torch

    # The demo's graphs are small: intra-op threads only contend with Warp and each other
    # (measured: one thread is ~7x faster per GNN step on a busy 2-core machine).
    torch.set_num_threads(1)
    timings: dict[str, float] = {}
    missing: list[str] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    spec = load_scene_file(scene_path)
    lifted = _timed("lift", lambda: lift_scene(spec), timings)
    scene = lifted.scene
    kp = build_keypoints(scene, per_object=16, seed=spec.seed)
    edges = radius_graph(scene.positions, 2.5 * spec.spacing, batch=scene.object_id)

    model = None
    if checkpoint is not None:
        from dynamics.train import load_model

        model = load_model(checkpoint)
    else:
        missing.append("learned model (skipped: --no-model, or no checkpoint at "
                       f"{DEFAULT_CHECKPOINT.relative_to(ASSETS.parent)})")
    dt = model.config.dt if model is not None else SimConfig().dt
    setup = setup_from_lifted(lifted, dt, steps)
    echo(f"scene {scene_path.name}: {scene.num_particles} particles in {scene.num_objects} objects "
         f"({', '.join(f'{n}:{m}' for n, m in zip(scene.object_name, scene.object_material))}); "
         f"{steps} steps of {dt * 1000:.1f} ms")

    sim = _timed("simulator setup", lambda: setup.simulator(SimConfig(dt=dt)), timings)
    truth = _timed("simulate (Newton)", lambda: sim.rollout(setup.action, steps, progress=progress), timings)
    save_rollout(out_dir / "truth.npz", truth)
    truth_report = _timed("audit truth", lambda: critic.audit(truth), timings)
    truth_report.write(out_dir / "truth_report.json")

    summary = {"particles": scene.num_particles, "objects": scene.num_objects, "steps": steps, "dt": dt,
               "truth_events": len(truth_report.events), "missing": missing, "timings": timings,
               "out_dir": str(out_dir)}
    # the critic at work: the truth once per category, side by side, each copy with one injected glitch
    show = _showcase(truth, out_dir, timings) if truth.num_frames >= 8 else None
    if show is not None:
        summary["showcase"] = show["found"]
    shown, shown_report, kw = truth, truth_report, {}
    if model is not None:
        from dynamics.model import LearnedSimulator

        learned = LearnedSimulator(model, scene, setup.action.indices if setup.action is not None else None)
        pred = _timed("predict (GNN)", lambda: learned.rollout(setup.action, steps, progress=progress), timings)
        save_rollout(out_dir / "model.npz", pred)
        pred_report = _timed("audit model", lambda: critic.audit(pred), timings)
        pred_report.write(out_dir / "model_report.json")
        moving = ~scene.kinematic
        err = np.linalg.norm(pred.positions[:, moving] - truth.positions[:, moving], axis=-1)
        summary.update(model_events=len(pred_report.events), model_error_mean=float(err.mean()),
                       model_error_final=float(err[-1].mean()), model_error_max=float(err.max()))
        shown, shown_report = pred, pred_report
        kw = dict(truth=truth, truth_report=truth_report)
    rec = _timed("record (Rerun)", lambda: viz.record(out_dir / "demo.rrd", shown, shown_report, keypoints=kp,
                                                      edges=edges, **kw), timings)
    _timed("render PNG", lambda: viz.render_png(out_dir / "demo.png", shown, shown_report,
                                                truth=kw.get("truth")), timings)
    summary["notices"] = list(rec.notices)

    echo("")
    echo(f"ground truth (Newton): {len(truth_report.events)} critic events")
    for line in _event_lines(truth_report):
        echo(f"  {line}")
    if show is not None:
        echo(f"critic showcase: the truth {len(show['labels'])} times side by side, one glitch injected into each "
             f"(critic.synth): {len(show['report'].events)} critic events (showcase.rrd)")
        for row in show["found"]:
            got = (f"found {row['found']} at frames {row['frame']}-{row['end_frame']}" if row["found"]
                   else "NOT FOUND")
            echo(f"  injected {row['category']:<11} on '{row['object']}' at frame {row['label_frame']}: {got}")
            if row["message"]:
                echo(f"    {row['message']}")
    if model is not None:
        echo(f"learned model (GNN):   {summary['model_events']} critic events; position error vs truth: "
             f"mean {summary['model_error_mean'] * 1000:.1f} mm, final frame {summary['model_error_final'] * 1000:.1f} mm, "
             f"max {summary['model_error_max'] * 1000:.1f} mm")
        for line in _event_lines(shown_report):
            echo(f"  {line}")
    for m in missing:
        echo(f"missing: {m}")
    for n in rec.notices:
        echo(f"note: {n}")
    if model is not None and plan:  # the demo ends with a planned push to a goal (worldline plan)
        from worldline.cmd_plan import demo_push

        summary["plan"] = _timed("plan + execute", lambda: demo_push(out_dir / "plan", checkpoint, echo, progress), timings)
    echo("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
    echo(f"wrote {out_dir / 'demo.rrd'} (open with: worldline view {out_dir / 'demo.rrd'}), {out_dir / 'demo.png'}, "
         f"rollouts and reports in {out_dir}")
    return summary


def _showcase(truth, out_dir: Path, timings: dict) -> dict:
    """Inject one glitch of each category into copies of ``truth`` (:func:`critic.synth.showcase`), audit
    them, and write ``showcase.npz``, ``showcase_report.json``, ``showcase_labels.json`` and ``showcase.rrd``.
    Returns ``{"labels", "report", "found"}``; ``found`` has one row per injection: its category, object
    name and frame, and the event the critic reports on that object nearest to it (within 3 frames)."""
    import json

    import critic
    import viz
    from critic import synth
    from particles import save_rollout
    from particles.io import atomic_write

    ro, labels = _timed("showcase: inject", lambda: synth.showcase(truth), timings)
    report = _timed("showcase: audit", lambda: critic.audit(ro, source="showcase"), timings)
    save_rollout(out_dir / "showcase.npz", ro)
    report.write(out_dir / "showcase_report.json")
    text = json.dumps([{"category": lab.category, "frame": lab.frame, "end_frame": lab.end_frame, "object": lab.object,
                        "location": list(lab.location), "magnitude": lab.magnitude} for lab in labels], indent=2) + "\n"
    atomic_write(out_dir / "showcase_labels.json", lambda f: f.write(text), mode="w")
    _timed("showcase: record", lambda: viz.record(out_dir / "showcase.rrd", ro, report), timings)
    found = []
    for lab in labels:
        near = [e for e in report.events if lab.object in e.objects and e.frame <= lab.frame + 3
                and e.end_frame >= lab.frame - 3]
        near.sort(key=lambda e: (e.category != lab.category, abs(e.frame - lab.frame)))
        e = near[0] if near else None
        found.append({"category": lab.category, "object": ro.scene.object_name[lab.object], "label_frame": lab.frame,
                      "found": e.category if e else None, "frame": e.frame if e else None,
                      "end_frame": e.end_frame if e else None, "message": e.message if e else ""})
    return {"labels": labels, "report": report, "found": found}


def _event_lines(report, limit: int = 6) -> list[str]:
    lines = []
    for ev in report.events[:limit]:
        lines.append(f"{ev.category:<11} frames {ev.frame}-{ev.end_frame}: {ev.message}")
    if len(report.events) > limit:
        lines.append(f"... and {len(report.events) - limit} more (see the JSON report)")
    return lines


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        scene: Path = typer.Option(DEFAULT_SCENE, help="Scene file to run (default: a pusher drives one block into another)."),
        checkpoint: Optional[Path] = typer.Option(None, help="Learned-model checkpoint (default: the shipped weights)."),
        steps: int = typer.Option(90, min=1, max=10000, help="Frames to simulate and predict."),
        out_dir: Path = typer.Option(Path("demo_out"), "--out-dir", "-o", help="Folder for demo.rrd, demo.png, rollouts and reports."),
        no_model: bool = typer.Option(False, "--no-model", help="Skip the learned model: simulate and audit only."),
        max_particles: int = typer.Option(5_000_000, "--max-particles", min=1,
                                          help="Refuse a scene estimated to need more particles than this."),
        no_plan: bool = typer.Option(False, "--no-plan", help="Skip the planned push at the end (worldline plan)."),
    ):
        """Lift a shipped scene, simulate it with Newton and predict it with the shipped GNN under the
        same push, audit both with the critic, and write demo.rrd, demo.png, rollouts and reports.

        Example:

          worldline demo

          worldline demo --scene assets/scenes/stack_knock.toml --steps 60 --out-dir stack_demo
        """
        from particles.scene_file import check_particle_budget, load_scene_file

        if not scene.exists():
            raise BadInput(f"{scene}: no such scene file")
        check_particle_budget(load_scene_file(scene), max_particles, frames=steps + 1)  # before any allocation
        ckpt = None
        if not no_model:
            ckpt = checkpoint or DEFAULT_CHECKPOINT
            if not ckpt.exists():
                if checkpoint is not None:
                    raise BadInput(f"{checkpoint}: no such checkpoint")
                ckpt = None
        check_output(out_dir, "--out-dir", folder=True)
        if ckpt is not None:
            from dynamics.train import load_model

            load_model(ckpt)  # a bad checkpoint is bad input before anything is written
        run_demo(scene, ckpt, steps, out_dir, echo=typer.echo, plan=not no_plan)
