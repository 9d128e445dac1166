"""Scene kinds of ``worldline dataset`` side by side: particles, Newton frames/s and the critic's verdict.

For each kind, draws ``--draws`` scenes exactly as ``worldline dataset --seed S`` draws scene i's first
attempt (``np.random.default_rng([S, i, 0])``), simulates ``--frames`` frames with the dataset's
settings and audits the rollout. ``boxes`` is the named peer of the timing ratios (same run, same
machine). With ``--dataset DIR`` it also counts, per kind, the draws the dataset command dropped
(from each scene file's ``dropped`` record; the kind is recognised by the scene's materials).

    PYTHONPATH=$PWD python bench/deform_kinds.py --kinds boxes,elastic,plastic,cloth,rope,heldout_materials,rope_box
    PYTHONPATH=$PWD python bench/deform_kinds.py --kinds elastic --draws 0 --dataset /tmp/ds_def
    PYTHONPATH=$PWD python bench/deform_kinds.py --kinds elastic,heldout_materials --draws 8 --soft-contact-ke 1e4 --soft-contact-gap 0.01

Prints one table; never collected as a test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def kind_of(materials: set) -> str:
    """A generated scene's kind from the materials of its free objects (the kinds of dynamics.sim.scenes)."""
    for mats, kind in (({"rope", "rigid"}, "rope_box"), ({"elastic", "rigid"}, "elastic+rigid"),
                       ({"plastic", "rigid"}, "plastic+rigid"), ({"elastic"}, "elastic"),
                       ({"plastic"}, "plastic"), ({"cloth"}, "cloth"), ({"rope"}, "rope"), ({"granular"}, "sand"),
                       ({"rigid"}, "boxes")):
        if materials == mats:
            return kind
    return "+".join(sorted(materials))


def dataset_drops(folder: Path) -> dict:
    """{kind: [scenes, dropped draws, {category: count}]} over the scene files of a dataset's work folder."""
    from particles import KINEMATIC, load_rollout

    import json

    scenes = json.loads((folder / ".work" / "params.json").read_text())["scenes"]
    out: dict = {}
    for path in sorted((folder / ".work").glob("scene_*.npz")):
        ro = load_rollout(path)
        sc = ro.scene
        kind = kind_of({sc.object_material[k] for k in np.unique(sc.object_id[sc.particle_type != KINEMATIC])})
        if int(path.stem.split("_")[1]) >= scenes:  # held-out scenes follow the training ones
            kind = "heldout: " + kind
        with np.load(path, allow_pickle=False) as z:
            dropped = [str(e) for e in z["dropped"]] if "dropped" in z.files else []
        rec = out.setdefault(kind, [0, 0, {}])
        rec[0] += 1
        rec[1] += len(dropped)
        for entry in dropped:
            for cat in entry.split(","):
                rec[2][cat] = rec[2].get(cat, 0) + 1
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kinds", default="boxes,elastic,plastic,cloth,rope,heldout_materials,rope_box")
    ap.add_argument("--draws", type=int, default=2, help="scenes per kind (0: none, only --dataset counts)")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--dataset", type=Path, help="also count the dropped draws per kind of this dataset's work folder")
    ap.add_argument("--soft-contact-ke", type=float, default=None,
                    help="N/m: VBD's soft contact stiffness (default: derived per scene; 1e4 was the former fixed value)")
    ap.add_argument("--soft-contact-gap", type=float, default=None,
                    help="m: VBD's contact detection gap (default: derived per scene; r = 0.01 was the former value)")
    args = ap.parse_args(argv)
    import warp as wp

    wp.config.log_level = wp.LOG_WARNING
    from critic import audit
    from dynamics.sim import SimConfig
    from dynamics.sim.scenes import random_setup

    config = SimConfig(dt=1.0 / 60.0, substeps=6, mpm_substeps=1,  # as worldline dataset simulates
                       soft_contact_ke=args.soft_contact_ke, soft_contact_gap=args.soft_contact_gap)
    rows = []
    if args.draws:
        # one throw-away rollout per kind first, so kernel compiles and loads are not timed
        for kind in args.kinds.split(","):
            s = random_setup(np.random.default_rng([args.seed, 999, 0]), 3, kinds=[kind])
            s.simulator(config).rollout(s.action, 2)
        for kind in args.kinds.split(","):
            parts, secs, clean, cats = [], 0.0, 0, {}
            for i in range(args.draws):
                s = random_setup(np.random.default_rng([args.seed, i, 0]), args.frames, kinds=[kind])
                t = time.perf_counter()
                ro = s.simulator(config).rollout(s.action, args.frames - 1)
                secs += time.perf_counter() - t
                parts.append(s.scene.num_particles)
                rep = audit(ro)
                clean += bool(rep.clean and np.all(np.isfinite(ro.positions)))
                for e in rep.events:
                    cats[e.category] = cats.get(e.category, 0) + 1
            rows.append((kind, parts, args.draws * (args.frames - 1) / secs, clean, cats))
        peer = next((fps for kind, _, fps, _, _ in rows if kind == "boxes"), None)
        ke = ("derived" if args.soft_contact_ke is None else f"{args.soft_contact_ke:g} N/m") + ", gap " + \
            ("derived" if args.soft_contact_gap is None else f"{args.soft_contact_gap:g} m")
        print(f"\nscene kinds, {args.draws} draws x {args.frames} frames each (seed {args.seed}), Newton on the CPU "
              f"(build excluded, kernels warm); timing peer: boxes; VBD soft contact {ke}")
        print(f"| {'kind':18} | {'particles':>12} | {'frames/s':>9} | {'vs boxes':>8} | {'clean':>6} | critic events")
        print(f"|{'-' * 20}|{'-' * 14}|{'-' * 11}|{'-' * 10}|{'-' * 8}|{'-' * 20}")
        for kind, parts, fps, clean, cats in rows:
            ratio = f"{fps / peer:.2f}x" if peer else "-"
            print(f"| {kind:18} | {min(parts):>5}-{max(parts):<6} | {fps:>9.2f} | {ratio:>8} | {clean:>2}/{args.draws:<3} | "
                  + (", ".join(f"{k} {v}" for k, v in sorted(cats.items())) or "none"))
    if args.dataset:
        print(f"\ndropped draws per kind in {args.dataset} (worldline dataset redraws a draw the critic flags)")
        print(f"| {'kind':34} | {'scenes':>6} | {'dropped':>7} | {'drop rate':>9} | categories")
        for kind, (n, d, cats) in sorted(dataset_drops(args.dataset).items()):
            print(f"| {kind:34} | {n:>6} | {d:>7} | {d / (n + d):>9.1%} | "
                  + (", ".join(f"{k} {v}" for k, v in sorted(cats.items())) or "none"))


if __name__ == "__main__":
    main()
