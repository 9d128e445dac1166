"""Object-model checkpoints side by side on one split, beside constraints only and constant velocity.

For every trajectory whose free objects are all rigid: rollouts from frame C (the object models'
history; the tool on its recorded path) to the end, rollout MSE at 10, 50 and all frames (m^2, mean
over trajectories), how many trajectories beat constraints only at the full horizon, and the share
the critic finds clean. Columns: each checkpoint alone and with the exact constraints (``collide``),
constant velocity through the same constraints (``cv + projections``, the constraints-only baseline
of bench/model.py) and plain constant velocity. ``--rules`` adds each checkpoint stepped with the
rules ``worldline evaluate`` steps it with (``dynamics.objects.RULES``: the constraints, the energy law,
the tool's shape contacts, sliding friction) and, beside it, the same rules driving the first
checkpoint with its decoders zeroed (``zero-acceleration + rules``: constant velocity through the same
constraints and rules, the baseline that removes the learning from that row); ``--zero`` adds the same
zero-acceleration twin through the constraints alone (``zero-acceleration + constraints``), the baseline of
the ``+ constraints`` rows. bench/model.py prints the same object columns beside
the GNN's; this one skips the GNN, so several checkpoints fit in one short run.

    PYTHONPATH=$PWD python bench/objects_compare.py --dataset /tmp/ds_obj3 --split heldout \\
        --objects assets/weights/objects_push.pt --objects runs/obj3/model.pt

Prints one table; never collected as a test.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from dynamics.evaluate import constant_velocity, constant_velocity_constrained, rollout_errors
from dynamics.objects import RULES, load_object_model, predict_trajectory_objects, supports, zero_acceleration_model
from particles import Rollout, load_dataset

HORIZONS = (10, 50)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--objects", action="append", required=True, help="object-model checkpoint (repeatable)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-audit", action="store_true")
    ap.add_argument("--zero", action="store_true",
                    help="also the first checkpoint with its decoders zeroed through the constraints (zero-acceleration + constraints)")
    ap.add_argument("--rules", action="store_true",
                    help="also each checkpoint with dynamics.objects.RULES, and the zero-acceleration baseline with them")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    audit = None
    if not args.no_audit:
        from critic import audit
    models = [(p, load_object_model(p)) for p in args.objects]
    c = max(m.config.history for _, m in models)
    zero = zero_acceleration_model(models[0][1]) if args.rules or args.zero else None
    trajs = [ro for ro in load_dataset(args.dataset, args.split) if not supports(ro.scene)]
    cols: dict = {}

    def add(name, pred, ro, steps):
        err = rollout_errors(pred, ro, c, (*HORIZONS, steps))
        d = cols.setdefault(name, {"mse": {h: [] for h in (*HORIZONS, "full")}, "clean": []})
        for h in HORIZONS:
            d["mse"][h].append(err.mse[h])
        d["mse"]["full"].append(err.mse[steps])
        if audit is not None:
            full = Rollout(ro.scene, np.concatenate([ro.positions[:c + 1], pred], 0), ro.dt)
            d["clean"].append(audit(full).clean)

    for ro in trajs:
        steps = ro.num_frames - 1 - c
        for path, model in models:
            add(f"{path}", predict_trajectory_objects(model, ro, c, steps), ro, steps)
            add(f"{path} + constraints", predict_trajectory_objects(model, ro, c, steps, collide=True), ro, steps)
            if args.rules:
                add(f"{path} + rules", predict_trajectory_objects(model, ro, c, steps, rules=RULES), ro, steps)
        if args.zero:
            add("zero-acceleration + constraints", predict_trajectory_objects(zero, ro, c, steps, collide=True), ro, steps)
        if args.rules:
            add("zero-acceleration + rules", predict_trajectory_objects(zero, ro, c, steps, rules=RULES), ro, steps)
        add("cv + projections", constant_velocity_constrained(ro, c, steps), ro, steps)
        add("constant velocity", constant_velocity(ro, c, steps), ro, steps)
    base = np.array(cols["cv + projections"]["mse"]["full"])
    print(f"{args.dataset} split {args.split}: {len(trajs)} rigid trajectories, rollouts from frame {c} to the end")
    print("| rollout MSE | @10 | @50 | full | full: x below cv + projections | beats it (full) | audit-clean |")
    print("|---|---|---|---|---|---|---|")
    for name, d in cols.items():
        full = np.array(d["mse"]["full"])
        m = {h: float(np.mean(d["mse"][h])) for h in (*HORIZONS, "full")}
        ratio = float(base.mean()) / m["full"]
        clean = f"{sum(d['clean'])}/{len(d['clean'])}" if d["clean"] else "-"
        print(f"| {name} | {m[10]:.2e} | {m[50]:.2e} | {m['full']:.2e} | {ratio:.2f}x | "
              f"{int((full < base).sum())}/{len(full)} | {clean} |")


if __name__ == "__main__":
    main()
