"""How the object model classifies bodies' ground contacts (``dynamics.objects.ground_contact``) on a
dataset's Newton frames, beside the flat-base test it replaced (3+ surface particles level within 0.2 r of
the lowest, spread over more than 2 r: the friction torque kept only about the vertical).

For every free body touching the ground (lowest particle within 1.5 r of it) in every ``--every``-th frame,
counts (old test, new kind) pairs and lists the first bodies the old test called flat and the new one
does not, with their bounding box (in particle radii) and principal moments (over the largest).

    PYTHONPATH=$PWD python bench/objects_contact_kinds.py --dataset /tmp/ds_obj4 --split train --limit 40

Prints; never collected as a test.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

from dynamics.objects import _apply, _constants, fit_poses, ground_contact, pack_objects
from particles import load_dataset

NAMES = {0: "point", 1: "line", 2: "area"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", default="train")
    ap.add_argument("--limit", type=int, default=40, help="first N trajectories")
    ap.add_argument("--every", type=int, default=10, help="every N-th frame")
    ap.add_argument("--show", type=int, default=12)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ros = load_dataset(args.dataset, args.split)[: args.limit]
    count, shown = Counter(), 0
    for k, ro in enumerate(ros):
        b = pack_objects([ro.scene], ro.dt, dtype=torch.float64)
        k_ = _constants(b, torch.float64)
        x = torch.as_tensor(np.asarray(ro.positions[:: args.every]), dtype=torch.float64)
        c, rot = fit_poses(b, x)
        for t in range(len(x)):
            surf = _apply(rot[t], k_.body_s) + c[t][:, None]
            z = torch.where(k_.smask, surf[..., 2], k_.big)
            zmin = z.amin(1)
            kind, _ = ground_contact(surf, z, zmin, k_.smask, k_.r, k_.gdir, rot[t], b.inertia)
            band = (z < (zmin + 0.2 * k_.r)[:, None]) & k_.smask
            bf = band.double()
            nb = bf.sum(1)
            dp = surf - ((surf * bf[..., None]).sum(1) / nb.clamp_min(1.0)[:, None])[:, None]
            dp[..., 2] = 0.0
            old = (nb >= 3) & (torch.where(band, dp.norm(dim=-1), 0.0).amax(1) > 2 * k_.r)
            for o in range(len(kind)):
                if bool(b.kinematic[o]) or float(zmin[o] - k_.ground[o]) > 1.5 * float(k_.r[o]):
                    continue
                key = ("old flat" if bool(old[o]) else "old not flat", NAMES[int(kind[o])])
                count[key] += 1
                if bool(old[o]) and int(kind[o]) != 2 and shown < args.show:
                    shown += 1
                    lam = np.linalg.eigvalsh(b.inertia[o].numpy())
                    m = k_.smask[o]
                    box = np.ptp(surf[o][m].numpy(), 0) / float(k_.r[o])
                    print(f"traj {k} frame {t * args.every} body {o}: old flat, now {NAMES[int(kind[o])]}; "
                          f"bbox/r {np.round(box, 1).tolist()}, moments/largest {np.round(lam / lam[2], 2).tolist()}")
    print(f"{args.dataset} split {args.split}, {len(ros)} trajectories, every {args.every}th frame, bodies on the ground:")
    print("| old flat test | new kind | bodies x frames |")
    print("|---|---|---|")
    for (o, n), v in sorted(count.items()):
        print(f"| {o} | {n} | {v} |")


if __name__ == "__main__":
    main()
