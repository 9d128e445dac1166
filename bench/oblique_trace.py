"""Where the object model's box parts from Newton's in one closed-loop policy episode, frame by frame.

For each ``--episode POLICY:TASK`` (a shipped policy, a suite task's stem), the episode runs closed loop on
Newton (its frames cached under ``--cache``, default /tmp/oblique_trace, as .npz), and then:

* **open loop**: Newton's executed tool path replayed in the object model (``--backend``, as
  ``worldline evaluate --backend`` names it) from the same start: per frame the box's centre error (mm)
  and yaw error (deg) against Newton;
* **one step** (teacher-forced): every frame t of Newton's episode given to the model as its history,
  one model step to t + 1, all frames packed into one batch: the error of the model's box step against
  Newton's, split into the box's step along the contact normal, across it and its turn (yaw rate),
  per frame and summed by the contact's kind at t:
  ``apart`` (the shapes do not touch), ``flush`` (the tool's and the box's faces within 2 degrees of the
  contact normal, the box's centre inside the contact segment: :meth:`dynamics.objects._ToolShapes.stable_push`'s
  case), ``off-centre`` (flush faces, centre outside the segment), ``oblique`` (the box's face on the contact
  normal, the tool's face not: a tool edge or corner on the box's face), ``corner`` (the box's face not on the
  normal: a box corner or edge on the tool).

Prints tables (markdown), never collected as a test::

    PYTHONPATH=$PWD python bench/oblique_trace.py --episode straight_push:push_05 --every 10
"""

from __future__ import annotations

import argparse
import glob
import math
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("apart", "flush", "off-centre", "oblique", "corner")


def newton_frames(task, fn, seed: int, max_steps: int, cache: Path, key: str) -> np.ndarray:
    """(T + 1, N, 3) float32 m: the executed frames of the policy's closed-loop Newton episode (cached)."""
    from dynamics.policy import PolicyController
    from dynamics.tasks import run_episode

    f = cache / f"{key}_{max_steps}.npz"
    if f.exists():
        with np.load(f) as z:
            return z["positions"]
    res = run_episode(task, PolicyController(fn, seed), max_steps=max_steps)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = f.with_suffix(".tmp.npz")
    np.savez(tmp, positions=res.executed.positions, success=res.success)
    tmp.rename(f)
    return res.executed.positions


def contact_kinds(task, frames: np.ndarray, body: int) -> tuple[list, np.ndarray, np.ndarray, np.ndarray]:
    """Per frame t: the kind of the tool's contact with object ``body`` (:data:`KINDS`), the contact normal
    (3,), the angle (deg) between the tool's nearest face and that normal, and the centre's offset from the
    contact segment's middle in the segment's half-lengths (0: centred, > 1: outside)."""
    from dynamics.objects import FLUSH_COS, SHAPE_TOUCH, _ToolShapes, fit_poses, pack_objects

    batch = pack_objects([task.scene], task.dt)
    fr = torch.as_tensor(frames, dtype=torch.float32)
    shapes = _ToolShapes(batch, fr)
    c, rot = fit_poses(batch, fr)
    q = [k for k in range(len(shapes.i)) if int(shapes.i[k]) == body]
    if not q:
        raise SystemExit(f"object {body} is no box touching a tool box")
    q = q[0]
    kinds, normals, tool_deg, offset = [], [], [], []
    for t in range(len(frames)):
        sep, n = shapes._sep(t, c[t], rot[t])
        sep, n = float(sep[q]), n[q]
        i = int(shapes.i[q])
        axes_b = rot[t, i] @ shapes.axes[i]
        axes_t = shapes.tr[t, q]
        cb = float((n @ axes_b).abs().max())
        ct = float((n @ axes_t).abs().max())
        u = torch.tensor([-float(n[1]), float(n[0]), 0.0])
        u = u / u.norm().clamp_min(1e-30)
        bc = c[t, i] + rot[t, i] @ shapes.centre[i]
        hb = float((shapes.half[i] * (u @ axes_b).abs()).sum())
        ht = float((shapes.half[shapes.j[q]] * (u @ axes_t).abs()).sum())
        bu, tu = float(bc @ u), float(shapes.tc[t, q] @ u)
        lo, hi = max(bu - hb, tu - ht), min(bu + hb, tu + ht)
        cu = float(c[t, i] @ u)
        off = abs(cu - 0.5 * (lo + hi)) / max(0.5 * (hi - lo), 1e-9) if hi > lo else math.inf
        if sep > 0.5 * float(task.scene.radius) + SHAPE_TOUCH:
            kind = "apart"
        elif cb < FLUSH_COS:
            kind = "corner"
        elif ct < FLUSH_COS:
            kind = "oblique"
        else:
            kind = "flush" if off < 1.0 else "off-centre"
        kinds.append(kind)
        normals.append(n.numpy())
        tool_deg.append(math.degrees(math.acos(min(1.0, ct))))
        offset.append(off)
    return kinds, np.array(normals), np.array(tool_deg), np.array(offset)


def body_poses(task, frames: np.ndarray, body: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) centres m and (T,) yaw rad of object ``body`` fitted to ``frames``."""
    from dynamics.objects import fit_poses, pack_objects

    batch = pack_objects([task.scene], task.dt)
    c, rot = fit_poses(batch, torch.as_tensor(frames, dtype=torch.float32))
    yaw = torch.atan2(rot[:, body, 1, 0], rot[:, body, 0, 0])
    return c[:, body].numpy().astype(np.float64), np.unwrap(yaw.numpy().astype(np.float64))


def one_step(backend, task, frames: np.ndarray) -> np.ndarray:
    """(T, N, 3) float32 m: for every frame t < T of ``frames`` (T + 1 frames), the model's step from Newton's
    history up to t (padded at the start by the first frame) with Newton's tool at t + 1, all in one packed batch."""
    c = backend.history
    n_t = len(frames) - 1
    packed = backend.pack([task.scene] * n_t)
    pad = np.concatenate([np.repeat(frames[:1], c, 0), frames], 0)
    hist = np.stack([pad[t:t + c + 1] for t in range(n_t)], 1)  # (C + 1, T, N, 3)
    n = frames.shape[1]
    hist = torch.as_tensor(hist.reshape(c + 1, n_t * n, 3), dtype=torch.float32)
    nk = torch.as_tensor(frames[1:].reshape(n_t * n, 3), dtype=torch.float32)
    out = backend.step_fn(packed, hist, nk)
    return out.reshape(n_t, n, 3).numpy()


def trace(args, policy: str, stem: str) -> None:
    from bench.evaluate import make_backend_factory
    from dynamics.policy import episode_seed, load_policy
    from dynamics.tasks import Task

    paths = sorted(glob.glob(str(ROOT / "assets" / "tasks" / "suite" / "push_*.toml")))
    ti_task = [Path(p).stem for p in paths].index(stem)
    task = Task.load(paths[ti_task])
    _, fn = load_policy(f"dynamics.policies:{policy}")
    seed = episode_seed(args.seed, ti_task, 0)
    frames = newton_frames(task, fn, seed, args.max_steps, Path(args.cache), f"{policy}_{stem}")
    backend = make_backend_factory(args.backend, "")(task)
    body = int(task.scene.object_id[task.object_particles[0]])
    ti = task.tool.indices
    c_hist = backend.history
    hist = np.repeat(frames[:1], c_hist + 1, 0)
    open_loop = backend.predict(hist, ti, frames[None, 1:, ti])[0]  # (T + 1, N, 3)
    step = one_step(backend, task, frames)
    kinds, normals, tool_deg, offset = contact_kinds(task, frames, body)
    cn, yn = body_poses(task, frames, body)
    co, yo = body_poses(task, open_loop, body)
    c1 = np.empty_like(cn[1:])
    y1 = np.empty_like(yn[1:])
    for t in range(len(step)):  # the one-step prediction's pose of the body, against Newton's frame t
        two = np.stack([frames[t], step[t]])
        cc, yy = body_poses(task, two, body)
        c1[t], y1[t] = cc[1], yn[t] + (yy[1] - yy[0])
    tool = frames[:, ti].mean(1)
    print(f"\n## {policy} on {stem} (open loop: Newton's tool path in `{args.backend}`)")
    print("| frame | contact | tool face to normal (deg) | centre offset | Newton box step along / across normal (mm) "
          "| model one-step error along / across (mm) | turn error (deg) | tool step (mm) | open-loop centre error (mm) "
          "| yaw: Newton / open loop (deg) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    total = {k: np.zeros(4) for k in KINDS}
    for t in range(len(step)):
        nrm = normals[t]
        side = np.array([-nrm[1], nrm[0], 0.0])
        dn = cn[t + 1] - cn[t]
        de = c1[t] - cn[t + 1]
        turn = math.degrees(y1[t] - yn[t + 1])
        total[kinds[t]] += [1, abs(de @ nrm) * 1e3, abs(de @ side) * 1e3, abs(turn)]
        if t % args.every == 0 or t == len(step) - 1:
            print(f"| {t} | {kinds[t]} | {tool_deg[t]:.1f} | {offset[t]:.2f} | {dn @ nrm * 1e3:.2f} / {dn @ side * 1e3:.2f} "
                  f"| {de @ nrm * 1e3:.3f} / {de @ side * 1e3:.3f} | {turn:.3f} | "
                  f"{np.linalg.norm(tool[t + 1] - tool[t]) * 1e3:.2f} | {np.linalg.norm(co[t + 1, :2] - cn[t + 1, :2]) * 1e3:.1f} "
                  f"| {math.degrees(yn[t + 1]):.1f} / {math.degrees(yo[t + 1]):.1f} |")
    print("\n| contact kind | frames | mean one-step error along normal (mm) | across (mm) | turn (deg) |")
    print("|---|---|---|---|---|")
    for k, (m, a, b, d) in total.items():
        if m:
            print(f"| {k} | {int(m)} | {a / m:.3f} | {b / m:.3f} | {d / m:.3f} |")
    print(f"final: open-loop centre error {np.linalg.norm(co[-1, :2] - cn[-1, :2]) * 1e3:.1f} mm, "
          f"yaw {math.degrees(yo[-1] - yn[-1]):.1f} deg; Newton turned the box {math.degrees(yn[-1] - yn[0]):.1f} deg", flush=True)


def main() -> None:
    import warp as wp

    wp.config.quiet = True
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episode", action="append", required=True, metavar="POLICY:TASK",
                    help="a shipped policy and a suite task's stem, e.g. straight_push:push_05 (repeatable)")
    ap.add_argument("--backend", default="objects")
    ap.add_argument("--max-steps", type=int, default=180)
    ap.add_argument("--seed", type=int, default=0, help="the evaluation's --seed (episode seeds as bench/evaluate.py's)")
    ap.add_argument("--every", type=int, default=10, help="print every N-th frame")
    ap.add_argument("--cache", default="/tmp/oblique_trace", help="folder of cached Newton episodes")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for ep in args.episode:
        policy, _, stem = ep.partition(":")
        trace(args, policy, stem)


if __name__ == "__main__":
    main()
