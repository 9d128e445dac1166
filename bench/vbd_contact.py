"""Soft bodies resting on the ground under VBD's soft contact: the sink, before (fixed 1e4 N/m) and after
(stiffness derived per scene, ``dynamics.sim.simulator.soft_contact_stiffness``), in one run.

Each body is set on the ground at rest (no tool) and simulated for ``--frames`` frames with the
dataset's settings (dt 1/60 s, 6 substeps); for each stiffness it prints the contact stiffness used, the
deepest sink of a particle below its resting height r over the whole rollout and over its second half
(at rest), the load factor ``A = ke * sink / (m g / n_low)`` the lowest particle carried in the second half
(the quantity ``soft_contact_stiffness`` predicts), frames/s (build excluded; the two stiffnesses of a
body alternate ``--repeat`` times, median) and the critic's verdict. Plastic is simulated on implicit MPM, which VBD's
contact does not touch: its rows show the MPM ground truth is unchanged.

    PYTHONPATH=$PWD python bench/vbd_contact.py
    PYTHONPATH=$PWD python bench/vbd_contact.py --bodies ball_heavy --iterations 10,20,40
    PYTHONPATH=$PWD python bench/vbd_contact.py --redraw /tmp/ds_def   # the draws a dataset dropped, before / after

Prints one table; never collected as a test.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

#: name -> (material, shape kind, half sizes in r, density kg/m^3, Young's modulus Pa)
BODIES = {
    "ball_light": ("elastic", "sphere", (7,), 600.0, 2.0e4),     # radius 7 r: stands on one particle
    "ball_heavy": ("elastic", "sphere", (7,), 1500.0, 2.0e5),
    "ball_stiff": ("elastic", "sphere", (7,), 1500.0, 1.0e6),    # heldout_materials' stiff range
    "ball8_heavy": ("elastic", "sphere", (8,), 1500.0, 2.0e5),   # radius 8 r: stands on a disc of 16
    "ball8_stiff": ("elastic", "sphere", (8,), 1500.0, 1.0e6),
    "block_light": ("elastic", "box", (5, 5, 4), 600.0, 2.0e4),
    "block_heavy": ("elastic", "box", (7, 7, 6), 1500.0, 2.0e5),
    "cloth_light": ("cloth", "box", (10, 10, 1), 150.0, 5.0e3),
    "cloth_heavy": ("cloth", "box", (15, 15, 1), 400.0, 5.0e4),
    "plastic_light": ("plastic", "box", (5, 5, 3), 1000.0, 2.0e5),
    "plastic_heavy": ("plastic", "box", (7, 7, 5), 1500.0, 2.0e6),
}


def resting_setup(name: str, r: float = 0.01):
    """A :class:`dynamics.sim.scenes.SimSetup` of body ``name`` (:data:`BODIES`) at rest with its lowest particles
    touching the ground (centres r above it), no tool."""
    from dynamics.sim import ObjectShape
    from dynamics.sim.scenes import PrimitiveSpec, build_setup

    mat, kind, half, rho, e = BODIES[name]
    size = tuple(float(x) * r for x in half)
    lift = 0.001 if mat == "cloth" else 0.0  # cloth_scene lays its sheet 1 mm up
    shape = ObjectShape(kind, size, position=np.array([0.0, 0.0, size[0] if kind == "sphere" else size[2] + lift]))
    extra = {"yield_stress": 3.0e3} if mat == "plastic" else {"bending_stiffness": 1.0e-3} if mat == "cloth" else {}
    spec = PrimitiveSpec(name, mat, shape, density=rho, friction=0.5, young_modulus=e,
                         poisson=0.33 if mat == "elastic" else None, **extra)
    setup = build_setup([spec], r)
    drop = float(setup.scene.positions[:, 2].min()) - (r + lift)  # a sphere's lattice may stop short of its bottom
    if drop > 1e-9:
        shape = ObjectShape(kind, size, position=shape.position - np.array([0.0, 0.0, drop]))
        setup = build_setup([PrimitiveSpec(name, mat, shape, density=rho, friction=0.5, young_modulus=e,
                                           poisson=spec.poisson, **extra)], r)
    return setup


def measure(setup, ke, frames: int, iterations: int) -> dict:
    """Simulate ``setup`` at rest for ``frames`` frames with soft contact stiffness ``ke`` (None: derived, with the
    derived contact gap; a number: with the former gap r, as before the derivation)."""
    from critic import audit
    from dynamics.sim import SimConfig

    gap = None if ke is None else float(setup.scene.radius)
    config = SimConfig(dt=1.0 / 60.0, substeps=6, mpm_substeps=1, soft_contact_ke=ke, soft_contact_gap=gap,
                       vbd_iterations=iterations)
    sim = setup.simulator(config)
    t = time.perf_counter()
    ro = sim.rollout(None, frames - 1)
    secs = time.perf_counter() - t
    sc = setup.scene
    r = float(sc.radius)
    depth = (float(sc.ground) + r) - ro.positions[:, :, 2].astype(np.float64)  # (T, N) m below the resting height
    late = depth[frames // 2:].max()
    z0 = sc.positions[:, 2]
    n_low = int(np.count_nonzero(z0 < z0.min() + 0.5 * r))
    w_low = float(sc.mass.sum()) * 9.81 / n_low
    used = getattr(sim, "soft_contact_ke", None)
    return {"ke": used, "sink": max(float(depth.max()), 0.0), "late": max(float(late), 0.0),
            "A": used * max(float(late), 0.0) / w_low if used else float("nan"),
            "fps": (frames - 1) / secs, "clean": audit(ro).clean and bool(np.all(np.isfinite(ro.positions))),
            "mass": float(sc.mass.sum()), "n_low": n_low}


def redraw_dropped(folder: Path, before: float) -> None:
    """Re-simulate every draw ``worldline dataset`` dropped in dataset ``folder`` (its ``.work`` scene files), as it
    drew them, with the former fixed stiffness ``before`` and with the derived one, and print the critic's verdicts."""
    import json

    from critic import audit
    from dynamics.sim import SimConfig
    from dynamics.sim.scenes import random_setup

    p = json.loads((folder / ".work" / "params.json").read_text())
    print(f"\ndraws dropped by worldline dataset in {folder}, re-simulated ({p['frames']} frames): critic events")
    print(f"| {'scene':>5} | {'attempt':>7} | {'dropped for':12} | {'ke before':>9} | {'before':24} | {'ke derived':>10} | after")
    for path in sorted((folder / ".work").glob("scene_*.npz")):
        with np.load(path, allow_pickle=False) as z:
            dropped = [str(e) for e in z["dropped"]] if "dropped" in z.files else []
            i = int(z["scene_index"])
        kinds = p.get("heldout_kinds") if i >= p["scenes"] and p.get("heldout") else p.get("kinds")
        for attempt, why in enumerate(dropped):
            setup = random_setup(np.random.default_rng([p["seed"], i, attempt]), p["frames"], r=p["radius"], dt=p["dt"],
                                 granular_fraction=p["granular_fraction"], kinds=kinds)
            cells = []
            for ke in (before, None):
                gap = None if ke is None else float(p["radius"])  # before: the former gap r too
                sim = setup.simulator(SimConfig(dt=p["dt"], substeps=p["substeps"], mpm_substeps=1, soft_contact_ke=ke,
                                                soft_contact_gap=gap))
                ro = sim.rollout(setup.action, p["frames"] - 1)
                events = sorted({e.category for e in audit(ro).events}) if np.all(np.isfinite(ro.positions)) else ["nonfinite"]
                ke_used = f"{sim.soft_contact_ke:.3g}" if sim.soft_contact_ke else "-"
                cells += [ke_used, ", ".join(events) or "clean"]
            print(f"| {i:>5} | {attempt:>7} | {why:12} | {cells[0]:>9} | {cells[1]:24} | {cells[2]:>10} | {cells[3]}", flush=True)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bodies", default=",".join(BODIES))
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--iterations", default="10", help="VBD iterations per step, comma-separated")
    ap.add_argument("--before", type=float, default=1.0e4,
                    help="N/m: the fixed stiffness of the 'before' rows (which also find contacts within r, as before)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per stiffness, alternated; frames/s is their median")
    ap.add_argument("--redraw", type=Path, help="instead: re-simulate the draws this dataset's work folder dropped")
    args = ap.parse_args(argv)
    if args.redraw:
        import warp as wp

        wp.config.log_level = wp.LOG_WARNING
        redraw_dropped(args.redraw, args.before)
        return
    import warp as wp

    wp.config.log_level = wp.LOG_WARNING
    measure(resting_setup("ball_light"), None, 3, 10)  # compile kernels before anything is timed
    measure(resting_setup("plastic_light"), None, 3, 10)
    print(f"\nsoft bodies at rest on the ground, {args.frames} frames (dt 1/60 s, 6 substeps), r = 1 cm; the "
          f"critic flags a sink over 5 mm (0.5 r); target of the derived stiffness 1 mm (0.1 r)")
    print(f"| {'body':13} | {'mass kg':>7} | {'n_low':>5} | {'it':>3} | {'contact':7} | {'ke N/m':>8} | "
          f"{'sink mm':>7} | {'at rest mm':>10} | {'load A':>6} | {'frames/s':>8} | clean")
    print("|" + "|".join("-" * (w + 2) for w in (13, 7, 5, 3, 7, 8, 7, 10, 6, 8, 5)) + "|")
    for name in args.bodies.split(","):
        setup = resting_setup(name)
        for it in (int(x) for x in args.iterations.split(",")):
            # implicit MPM ignores VBD's contact: one run stands for both
            modes = (("either", None),) if BODIES[name][0] == "plastic" else (("before", args.before), ("derived", None))
            runs = {label: [] for label, ke in modes}
            for _ in range(args.repeat):  # the two stiffnesses alternate, so load drifts hit both alike
                for label, ke in modes:
                    runs[label].append(measure(setup, ke, args.frames, it))
            for label, ke in modes:
                m = dict(runs[label][0], fps=float(np.median([x["fps"] for x in runs[label]])))
                ke_txt = f"{m['ke']:.3g}" if m["ke"] else "(MPM)"
                print(f"| {name:13} | {m['mass']:>7.3f} | {m['n_low']:>5} | {it:>3} | {label:7} | {ke_txt:>8} | "
                      f"{m['sink'] * 1e3:>7.2f} | {m['late'] * 1e3:>10.2f} | {m['A']:>6.2f} | {m['fps']:>8.2f} | "
                      f"{'yes' if m['clean'] else 'NO'}", flush=True)


if __name__ == "__main__":
    main()
