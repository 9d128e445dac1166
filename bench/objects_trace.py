"""Per-trajectory trace of object-model rollouts on one split: where the full-horizon error comes from.

For every rigid trajectory: the full-horizon rollout MSE (m^2) of constant velocity through the particle
constraints (``cv``, the constraints-only baseline), of the first checkpoint's zero-acceleration twin
through the same constraints (``zero``: :func:`dynamics.objects.zero_acceleration_model`, the learning
removed, every rule kept) and of each checkpoint through the constraints; then per free body its
friction, density and mass, and how it slides after the tool last touches it, in Newton and in each
rollout: the speed at that release (mm/frame), the distance it goes on to slide (mm), and its mean
deceleration over that slide in units of Coulomb's ``mu g`` (``mu``: the mean of the body's and the
ground's 0.5, as Newton's XPBD combines them; 1 = a box braking by kinetic friction).

    PYTHONPATH=$PWD python bench/objects_trace.py --dataset /tmp/ds_obj4 --split heldout \\
        --objects assets/weights/objects_push.pt --objects RUN/model.pt

Prints one block per trajectory; never collected as a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dynamics.evaluate import constant_velocity_constrained, rollout_errors
from dynamics.objects import GROUND_FRICTION, load_object_model, predict_trajectory_objects, supports, zero_acceleration_model
from particles import KINEMATIC, load_dataset

#: A body is touched by the tool while a tool particle is within this many r of one of its particles
#: (particle centres 2 r apart at contact).
TOUCH_R = 2.6


def _centres(pos: np.ndarray, scene, k: int) -> np.ndarray:
    idx = scene.object_id == k
    m = scene.mass[idx].astype(np.float64)
    return (pos[:, idx].astype(np.float64) * m[None, :, None]).sum(1) / m.sum()


def _touched(pos: np.ndarray, scene, k: int) -> np.ndarray:
    """(T,) bool: frames where a kinematic particle is within TOUCH_R r of body k's particles."""
    tool = scene.particle_type == KINEMATIC
    body = scene.object_id == k
    out = np.zeros(len(pos), bool)
    for t in range(len(pos)):
        d = np.linalg.norm(pos[t, body][:, None] - pos[t, tool][None], axis=-1)
        out[t] = d.min() < TOUCH_R * scene.radius
    return out


def slide(pos: np.ndarray, scene, k: int, dt: float, release: int):
    """(speed at release mm/frame, distance slid after it mm, mean deceleration / (mu g)) of body k."""
    c = _centres(pos, scene, k)[:, :2]
    v = np.linalg.norm(np.diff(c, axis=0), axis=1)  # m/frame, v[t] = |c[t+1] - c[t]|
    if release >= len(v):
        return float("nan"), 0.0, float("nan")
    v0 = v[release]
    dist = float(np.linalg.norm(c[-1] - c[release]))
    mu = 0.5 * (float(scene.object_friction[k]) + GROUND_FRICTION)
    g = float(np.linalg.norm(scene.gravity)) * dt * dt  # m/frame^2
    slow = np.flatnonzero(v[release:] < 0.05 * max(v0, 1e-12))
    n = int(slow[0]) if len(slow) else len(v) - release
    decel = (v0 - v[release + n] if release + n < len(v) else v0 - v[-1]) / max(n, 1)
    return 1e3 * v0, 1e3 * dist, decel / (mu * g)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="heldout")
    ap.add_argument("--objects", action="append", required=True, help="object-model checkpoint (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--only", type=int, action="append", help="trajectory numbers (0-based) to trace")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = [(p, load_object_model(p)) for p in args.objects]
    c = max(m.config.history for _, m in models)
    zero = zero_acceleration_model(models[0][1])
    trajs = [ro for ro in load_dataset(args.dataset, args.split) if not supports(ro.scene)]
    names = ["cv", "zero"] + [f"m{i}" for i in range(len(models))]
    for i, p in enumerate(args.objects):
        print(f"m{i} = {p} + constraints")
    totals = {n: [] for n in names}
    for n_ro, ro in enumerate(trajs):
        if args.only and n_ro not in args.only:
            continue
        steps = ro.num_frames - 1 - c
        preds = {"cv": constant_velocity_constrained(ro, c, steps),
                 "zero": predict_trajectory_objects(zero, ro, c, steps, collide=True)}
        for i, (_, m) in enumerate(models):
            preds[f"m{i}"] = predict_trajectory_objects(m, ro, c, steps, collide=True)
        mse = {n: rollout_errors(p, ro, c, (steps,)).mse[steps] for n, p in preds.items()}
        for n in names:
            totals[n].append(mse[n])
        sc = ro.scene
        print(f"\n#{n_ro}: full MSE " + "  ".join(f"{n} {mse[n]:.2e}" for n in names))
        truth = ro.positions[c:]
        free = [k for k in range(sc.num_objects) if (sc.object_id == k).any() and not np.all(sc.kinematic[sc.object_id == k])]
        for k in free:
            touched = _touched(ro.positions, sc, k)
            hit = np.flatnonzero(touched[c:])
            release = int(hit[-1]) + 1 if len(hit) else 0  # first frame (from c) after the last touch
            mass = float(sc.mass[sc.object_id == k].sum())
            row = (f"  body {k} ({sc.object_name[k] if sc.object_name is not None else k}, {int((sc.object_id == k).sum())} p): "
                   f"friction {float(sc.object_friction[k]):.2f} density {float(sc.object_density[k]):.0f} "
                   f"mass {mass:.3f} kg; touched {int(touched[c:].sum())} frames, released at {release}")
            print(row)
            for n, p in [("newton", truth)] + [(n, np.concatenate([ro.positions[c:c + 1], preds[n]], 0)) for n in names]:
                v0, dist, dec = slide(p, sc, k, ro.dt, release)
                print(f"    {n:>6}: release speed {v0:6.3f} mm/frame, slides {dist:7.2f} mm after, decel {dec:5.2f} mu g")
    print("\nmean full MSE " + "  ".join(f"{n} {np.mean(v):.3e}" for n, v in totals.items()))


if __name__ == "__main__":
    main()
