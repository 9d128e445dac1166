"""Does the object model let round bodies roll? Rolling ratio of pushed bodies, Newton against the model.

Per free rigid body and frame, the rolling ratio is ``|w_h| h / |v_h|``: the horizontal angular speed
(rad/s) times the centre's height over the ground (m, the rolling radius of a sphere or a lying
cylinder) over the horizontal speed of the centre (m/s), averaged weighted by speed over the frames the
body moves faster than 2 cm/s. Rolling without slip gives 1, a sliding box 0. Bodies are grouped by
what Newton did (``rolling``: true ratio >= 0.6; ``sliding``: < 0.2). For each object-model checkpoint
the table gives the ratio of its rollouts (from frame C, the tool on its recorded path), alone and
with the exact constraints, and the bodies' full-horizon centre error.

    worldline dataset --out /tmp/ds_obj3 --scenes 120 --workers 1 --seed 11 --kinds boxes,shapes,push_paths \\
        --heldout 16 --heldout-kinds heldout_shapes --frames 100
    PYTHONPATH=$PWD python bench/objects_rolling.py --dataset /tmp/ds_obj3 --split test \\
        --objects assets/weights/objects_push.pt --objects runs/obj3/model.pt

Prints one table; never collected as a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dynamics.objects import angular_velocity, fit_poses, load_object_model, object_rollout, pack_objects
from particles import load_dataset

MOVING = 0.02  # m/s


def _ratios(c: np.ndarray, w: np.ndarray, ground: float, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Per object: speed-weighted rolling ratio over moving frames (nan when it never moves), and
    the weight (summed speed). ``c (T, O, 3)`` m, ``w (T-1, O, 3)`` rad/frame."""
    v = np.diff(c, axis=0) / dt
    vh = np.linalg.norm(v[..., :2], axis=-1)
    wh = np.linalg.norm(w[..., :2], axis=-1) / dt
    h = np.maximum(c[1:, :, 2] - ground, 1e-6)
    ratio = wh * h / np.maximum(vh, 1e-9)
    wt = np.where(vh > MOVING, vh, 0.0)
    tot = wt.sum(0)
    return np.where(tot > 0, (np.minimum(ratio, 3.0) * wt).sum(0) / np.maximum(tot, 1e-12), np.nan), tot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--objects", action="append", required=True, help="object-model checkpoint (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    models = [(p, load_object_model(p)) for p in args.objects]
    trajs = [ro for ro in load_dataset(args.dataset, args.split) if set(ro.scene.object_material) <= {"rigid"}]
    rows = {p: {"rolling": [], "sliding": []} for p, _ in models}
    truth_ratio = {"rolling": [], "sliding": []}
    for ro in trajs:
        sc = ro.scene
        ground = 0.0 if sc.ground is None else float(sc.ground)
        for path, model in models:
            cfg = model.config
            dt = cfg.dt
            c0 = cfg.history
            batch = pack_objects([sc], dt)
            pos = torch.as_tensor(ro.positions)
            with torch.no_grad():
                ct, rt = fit_poses(batch, pos[c0:])
                wt = angular_velocity(rt[1:], rt[:-1])
                true_r, _ = _ratios(ct.numpy(), wt.numpy(), ground, dt)
                preds = {}
                for collide in (False, True):
                    x = object_rollout(model, batch, pos[:c0 + 1], ro.num_frames - 1 - c0, pos[c0 + 1:],
                                       collide=collide)
                    cp, rp = fit_poses(batch, torch.cat([pos[c0:c0 + 1], x], 0))
                    wp = angular_velocity(rp[1:], rp[:-1])
                    pr, _ = _ratios(cp.numpy(), wp.numpy(), ground, dt)
                    err = np.linalg.norm(cp[-1].numpy() - ct[-1].numpy(), axis=-1)
                    preds[collide] = (pr, err)
            kin = batch.kinematic.numpy()
            for o in range(batch.num_objects):
                if kin[o] or not np.isfinite(true_r[o]):
                    continue
                group = "rolling" if true_r[o] >= 0.6 else "sliding" if true_r[o] < 0.2 else None
                if group is None:
                    continue
                rows[path][group].append((true_r[o], preds[False][0][o], preds[True][0][o],
                                          preds[False][1][o], preds[True][1][o]))
                if path == models[0][0]:
                    truth_ratio[group].append(true_r[o])
    print(f"{args.dataset} split {args.split}: {len(trajs)} rigid trajectories; rolling ratio |w_h| h / |v_h| "
          "(1: rolls without slip, 0: slides), speed-weighted over moving frames")
    print("| checkpoint | bodies | Newton | model alone | model + constraints | final centre error alone | + constraints |")
    print("|---|---|---|---|---|---|---|")
    for path, _ in models:
        for group in ("rolling", "sliding"):
            r = np.array(rows[path][group], np.float64).reshape(-1, 5)
            if not len(r):
                print(f"| {path} | 0 {group} | - | - | - | - | - |")
                continue
            med = lambda a: float(np.nanmedian(a))  # noqa: E731
            print(f"| {path} | {len(r)} {group} | {med(r[:, 0]):.2f} | {med(r[:, 1]):.2f} | {med(r[:, 2]):.2f} | "
                  f"{1000 * med(r[:, 3]):.1f} mm | {1000 * med(r[:, 4]):.1f} mm |")
    print("(medians over bodies)")


if __name__ == "__main__":
    main()
