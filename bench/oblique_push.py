"""Controlled pushes of one box by the tool, Newton against the object model: how far the box turns and travels.

A suite task's box (``--task``, its other objects dropped from the scene) pushed along a face normal at
``--speed`` m/frame for ``--frames`` frames by the tool, the tool starting 4 mm clear of that face, for
every combination of

* ``--offsets``: the tool's centre off the box's centre line, in the box's half-widths across the push
  (0: centred; above ``1 + tool half-width / box half-width`` the tool misses the box);
* ``--angles``: the tool turned by this many degrees from flush with the face (0: face to face; else a
  tool edge meets the face first);
* ``--tool-turn``: the tool turning about its own centre by this many degrees a frame while it pushes
  (0: not turning), the turn a re-aiming policy gives it;

with the box's friction and density as in the task (``--friction``, ``--density`` override them). Printed
per push: Newton's box travel along and across the push (mm) and its turn (deg); the same in the object
model (``--backend``, the names of ``worldline evaluate --backend``); and, with ``--no-torsion``, Newton again
with its torsional friction at the contacts set to 0 (``mu_torsional``, 0.005 m by Newton's default).
Never collected as a test::

    PYTHONPATH=$PWD python bench/oblique_push.py --task push_10 --offsets 0,0.7,1.2 --angles 0,10,20
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


def single_box_task(stem: str, folder: Path, friction=None, density=None):
    """The suite task ``stem`` with only its goal box and the tool (written to ``folder``); ``friction`` /
    ``density`` override the box's."""
    import re

    from dynamics.tasks import Task

    text = (ROOT / "assets" / "tasks" / "suite" / f"{stem}.toml").read_text()
    head, *objects = text.split("[[object]]")
    last = objects[-1]
    rest = last[last.index("[tool]"):]
    objects[-1] = last[:last.index("[tool]")]
    goal = re.search(r'object = "(\w+)"', rest).group(1)
    keep = [o for o in objects if f'name = "{goal}"' in o][0]
    if friction is not None:
        keep = re.sub(r"friction = [0-9.]+", f"friction = {float(friction)}", keep)
    if density is not None:
        keep = re.sub(r"density = [0-9.]+", f"density = {float(density)}", keep)
    out = folder / f"{stem}_f{friction}_d{density}.toml"
    out.write_text(head + "[[object]]" + keep + rest)
    return Task.load(out)


def push_frames(task, offset: float, angle_deg: float, tool_turn_deg: float, speed: float, frames: int):
    """(history (2, N, 3), tool_future (frames, M, 3), normal (3,), side (3,)) float32 m for one controlled push."""
    from dynamics.tasks import object_yaw

    sc, ti, op = task.scene, task.tool.indices, task.object_particles
    box, tc = sc.positions[op].mean(0), sc.positions[ti].mean(0)
    psi = float(object_yaw(task, torch.as_tensor(sc.positions)))
    a0 = math.atan2(box[1] - tc[1], box[0] - tc[0])
    phi = psi + round((a0 - psi) / (math.pi / 2)) * math.pi / 2  # the face normal nearest the line to the box
    nrm, side = np.array([math.cos(phi), math.sin(phi), 0.0]), np.array([-math.sin(phi), math.cos(phi), 0.0])
    reach = float(np.max((sc.positions[op] - box) @ -nrm)) + sc.radius
    half_w = float(np.max(np.abs((sc.positions[op] - box) @ side))) + sc.radius
    rel = sc.positions[ti] - tc
    # the tool's own yaw: its thin axis along its motion in the task; turn it so that the thin axis is along nrm
    tool_yaw = math.atan2(*(np.linalg.svd(rel[:, :2] - rel[:, :2].mean(0))[2][1][::-1]))

    def rot(a):
        return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])

    flush = rel @ rot(phi - tool_yaw).T
    tilt = math.radians(angle_deg)
    shape = flush @ rot(tilt).T
    t_half = float(np.max(np.abs(shape @ nrm))) + sc.radius  # the tilted tool's reach along the push
    start = np.array([box[0], box[1], tc[2]]) - nrm * (reach + t_half + 0.004) + side * offset * half_w
    out = []
    for k in range(1, frames + 1):
        out.append(start + k * speed * nrm + shape @ rot(math.radians(tool_turn_deg) * k).T)
    hist = np.repeat(sc.positions[None], 2, 0).astype(np.float32)
    hist[:, ti] = (start + shape).astype(np.float32)
    return hist, np.stack(out).astype(np.float32)[None], nrm, side


def measure(task, x: np.ndarray, nrm, side, yaw0: float) -> tuple[float, float, float]:
    """Travel along / across the push (mm) and turn (deg) of the goal box from frame 0 to the last of ``x``."""
    from dynamics.tasks import object_yaw

    op = task.object_particles
    tr = x[-1, op].mean(0) - x[0, op].mean(0)
    turn = math.degrees(float(object_yaw(task, torch.as_tensor(x[-1])))) - math.degrees(yaw0)
    return float(tr @ nrm) * 1e3, float(tr @ side) * 1e3, (turn + 180.0) % 360.0 - 180.0


def main() -> None:
    import tempfile

    import warp as wp

    wp.config.quiet = True
    from bench.evaluate import make_backend_factory
    from dynamics.sim import SimConfig
    from dynamics.tasks import NewtonBackend, object_yaw

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="push_10", help="a suite task's stem (its goal box is pushed)")
    ap.add_argument("--offsets", default="0,0.7,1.2")
    ap.add_argument("--angles", default="0,10,20")
    ap.add_argument("--tool-turn", default="0", help="degrees a frame, comma-separated")
    ap.add_argument("--friction", default=None, type=float)
    ap.add_argument("--density", default=None, type=float)
    ap.add_argument("--speed", type=float, default=0.002, help="m/frame")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--backend", default="objects", help="comma-separated world models")
    ap.add_argument("--no-torsion", action="store_true", help="also Newton with mu_torsional = 0")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        task = single_box_task(args.task, Path(tmp), args.friction, args.density)
        backs = [(b, make_backend_factory(b, "")(task)) for b in args.backend.split(",") if b]
        yaw0 = float(object_yaw(task, torch.as_tensor(task.scene.positions)))
        ti = task.tool.indices
        cols = ["newton"] + (["newton, no torsion"] if args.no_torsion else []) + [b for b, _ in backs]
        print(f"{args.task}'s box alone, friction {args.friction or 'as in the task'}, density "
              f"{args.density or 'as in the task'}; {args.frames} frames at {args.speed * 1e3:.1f} mm/frame")
        print("| offset (half-widths) | tool angle (deg) | tool turn (deg/frame) | "
              + " | ".join(f"{c}: along / across (mm), turn (deg)" for c in cols) + " |")
        print("|---|---|---|" + "---|" * len(cols))
        for off in (float(v) for v in args.offsets.split(",")):
            for ang in (float(v) for v in args.angles.split(",")):
                for turn in (float(v) for v in args.tool_turn.split(",")):
                    hist, fut, nrm, side = push_frames(task, off, ang, turn, args.speed, args.frames)
                    cells = []
                    for torsion in ((True, False) if args.no_torsion else (True,)):
                        nb = NewtonBackend(task.setup, SimConfig(dt=task.dt))
                        if not torsion:
                            nb.sim.model.shape_material_mu_torsional.zero_()
                        x = nb.predict(hist, ti, fut)[0]
                        cells.append(measure(task, x, nrm, side, yaw0))
                    for _, be in backs:
                        h = np.repeat(hist[-1:], be.history + 1, 0)
                        cells.append(measure(task, be.predict(h, ti, fut)[0], nrm, side, yaw0))
                    print(f"| {off:g} | {ang:g} | {turn:g} | "
                          + " | ".join(f"{a:.1f} / {b:.1f}, {t:.1f}" for a, b, t in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
