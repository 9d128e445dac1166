"""Does a dataset's generator still make the same scenes? Re-simulate scenes of a dataset folder and compare.

Runs ``worldline.cmd_dataset.simulate_scene`` of whatever tree is on PYTHONPATH (the current one, or an old
commit unpacked with ``git archive COMMIT | tar -x -C DIR``) for the given scene indices with the README
box test's settings (seed 7, 100 frames, dt 1/60 s, r = 1 cm, granular fraction 0.25, 6 substeps, audited),
writes them under /tmp/o2/sim_TAG/.work and prints, per scene, the kept draw (attempt), the particle types and
the largest particle-position difference (m) from /tmp/ds_model/.work's file at frames 1, 10, 50 and 99.

    worldline dataset --out /tmp/ds_model --scenes 24 --workers 1 --seed 7 --granular-fraction 0.25 --test 0.5 --valid 0.1
    git archive 9351f94 | tar -x -C /tmp/o2/tree_9351f94
    cd /tmp/o2/tree_9351f94 && PYTHONPATH=$PWD python /work/.../bench/regen_compare.py 9351f94 0 2 3 4

Prints one line per scene; never collected as a test. (The paths are fixed: it was written for one trace.)
"""
import inspect
import os
import sys

import numpy as np
from worldline.cmd_dataset import simulate_scene
tag = sys.argv[1]
for i in [int(a) for a in sys.argv[2:]]:
    out = f"/tmp/o2/sim_{tag}"
    os.makedirs(out + "/.work", exist_ok=True)
    args = (out, i, 7, 100, 1 / 60, 0.01, 0.25, 6)
    # trees before the audited truth (ca37419) take no ``check`` and keep every draw
    p = simulate_scene(*args, True) if "check" in inspect.signature(simulate_scene).parameters else simulate_scene(*args)
    a = np.load(p)
    b = np.load(f"/tmp/ds_model/.work/scene_{i:05d}.npz")
    pa, pb = a["positions"], b["positions"]
    d = np.abs(pa - pb).max(axis=(1, 2)) if pa.shape == pb.shape else None
    print(tag, i, "attempt", int(a["attempt"]) if "attempt" in a.files else "-", "types", np.unique(b["particle_type"]) if "particle_type" in b.files else "",
          "max|dx| at frames 1,10,50,99:", None if d is None else [f"{d[k]:.2e}" for k in (1, 10, 50, 99)], flush=True)
