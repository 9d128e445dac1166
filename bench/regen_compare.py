"""Does a dataset's generator still make the same scenes? Re-simulate scenes of a dataset folder and compare.

Runs ``worldline.cmd_dataset.simulate_scene`` of whatever tree is on PYTHONPATH (the current one, or an old
commit unpacked with ``git archive COMMIT | tar -x -C DIR``) for the given scene indices, with the settings the
dataset was made with (read from ``DATASET/.work/params.json``: seed, frames, dt, radius, granular fraction,
substeps, audit, kinds, and the held-out kinds for indices past ``scenes``; each can be overridden, e.g. for a
folder made before that file existed). It writes the new scenes under ``--work`` and prints, per scene, the kept
draw (attempt), the particle types and the largest particle-position difference (m) from the dataset's own
``.work/scene_XXXXX.npz`` at frames 1, 10, 50 and the last.

    worldline dataset --out /tmp/ds_model --scenes 24 --workers 1 --seed 7 --granular-fraction 0.25 --test 0.5 --valid 0.1
    mkdir -p /tmp/o2/tree_9351f94 && git archive 9351f94 | tar -x -C /tmp/o2/tree_9351f94
    cd /tmp/o2/tree_9351f94 && PYTHONPATH=$PWD python REPO/bench/regen_compare.py --dataset /tmp/ds_model \
        --tag 9351f94 0 2 3 4

Prints one line per scene; never collected as a test.
"""
import argparse
import inspect
import json
import os
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenes", type=int, nargs="+", help="scene indices to re-simulate")
    ap.add_argument("--dataset", type=Path, required=True, help="dataset folder made by `worldline dataset` (reads DATASET/.work)")
    ap.add_argument("--tag", default="current", help="label printed on each line and used in the work folder's name")
    ap.add_argument("--work", type=Path, default=None, help="where the new scenes go (default: /tmp/regen_TAG)")
    ap.add_argument("--seed", type=int, default=None, help="the dataset's --seed (default: from params.json)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--dt", type=float, default=None, help="frame step, s")
    ap.add_argument("--radius", type=float, default=None, help="particle radius, m")
    ap.add_argument("--granular-fraction", type=float, default=None)
    ap.add_argument("--substeps", type=int, default=None)
    a = ap.parse_args(argv)
    from worldline.cmd_dataset import simulate_scene  # the tree on PYTHONPATH, which may be an old commit

    pj = a.dataset / ".work" / "params.json"
    params = json.loads(pj.read_text()) if pj.exists() else {}
    setting = {}
    for key in ("seed", "frames", "dt", "radius", "granular_fraction", "substeps"):
        setting[key] = getattr(a, key) if getattr(a, key) is not None else params.get(key)
        if setting[key] is None:
            ap.error(f"--{key.replace('_', '-')} is needed: {pj} does not record it")

    out = a.work or Path(f"/tmp/regen_{a.tag}")
    os.makedirs(out / ".work", exist_ok=True)
    for i in a.scenes:
        ref = a.dataset / ".work" / f"scene_{i:05d}.npz"
        if not ref.exists():
            ap.error(f"{ref}: no such scene in the dataset")
        args = (str(out), i) + tuple(setting[k] for k in ("seed", "frames", "dt", "radius", "granular_fraction", "substeps"))
        kinds = params.get("kinds") if i < params.get("scenes", i + 1) else params.get("heldout_kinds")
        sig = inspect.signature(simulate_scene).parameters
        # trees before the audited truth (ca37419) take no ``check`` and keep every draw; older ones take no ``kinds``
        kw = {"check": bool(params.get("audit", True))} if "check" in sig else {}
        if "kinds" in sig:
            kw["kinds"] = tuple(kinds) if kinds else None
        p = simulate_scene(*args, **kw)
        with np.load(p) as new, np.load(ref) as old:
            pa, pb = new["positions"], old["positions"]
            d = np.abs(pa - pb).max(axis=(1, 2)) if pa.shape == pb.shape else None
            frames = sorted({k for k in (1, 10, 50, len(pb) - 1) if 0 <= k < len(pb)})
            print(a.tag, i, "attempt", int(new["attempt"]) if "attempt" in new.files else "-",
                  "types", np.unique(old["particle_type"]) if "particle_type" in old.files else "",
                  f"max|dx| at frames {frames}:",
                  "shapes differ" if d is None else [f"{d[k]:.2e}" for k in frames], flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
