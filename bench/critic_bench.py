"""Labelled benchmark of the physics critic (``worldline audit``).

Clean analytic rollouts (:mod:`critic.synth`: projectile, fast throw, resting stacks on the
ground and on a static table, a sliding box under friction, a spinning box, a tool pushing a
box, an elastic wobble, a bouncing ball) and copies with exactly one injected glitch of each
category at varied magnitudes, each with its label. Prints per category: recall (an event
of the right category on the labelled object within +-2 frames), false-positive rate on
clean rollouts, category accuracy (of the events on the labelled object near the labelled
frame, the share with the right category), median frame and location errors, extra events;
then throughput in particle-frames per second, including a 100k-particle x 300-frame scene.

Simulator rollouts (``bench/data/sim/*.npz``, from ``worldline simulate``; see the README there)
are audited as clean inputs too, and get one injected glitch of each category that applies.

Then the end-to-end figure of issue 11: ``python -m worldline audit FILE`` (process start, imports,
loading and the audit) on a 90k-particle x 300-frame file written by ``particles.save_rollout``.

Run: ``PYTHONPATH=$PWD python3 bench/critic_bench.py [--big-particles 100000 --big-frames 300] [--e2e-particles 90000]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from critic import CATEGORIES, audit
from critic import synth

FRAME_TOL = 2
SIM_DATA = Path(__file__).resolve().parent / "data" / "sim"  # clean rollouts of the project's simulator


#: Magnitude sweeps: (category, scene, magnitudes, frame, variant, unit).
SWEEP = [
    ("penetration", "slide", (0.4, 0.6, 0.8, 1.0, 1.5), 25, "ground", "overlap, particle radii"),
    ("teleport", "projectile", (0.5, 1.0, 1.5, 2.0, 3.0), 20, "", "jump, particle radii"),
    ("teleport", "slide", (1.0, 2.0, 3.0, 4.0, 6.0), 15, "", "jump, particle radii"),
    ("rigidity", "spin", (0.15, 0.25, 0.35, 0.5, 0.7), 30, "", "half shifted, radii"),
    ("floating", "projectile", (0.1, 0.2, 0.3, 0.5, 1.0), 25, "", "share of g cancelled"),
    ("energy", "slide", (0.05, 0.1, 0.2, 0.3, 0.4), 12, "", "velocity kick, m/s"),
    ("jitter", "stack", (0.05, 0.1, 0.15, 0.2, 0.3), 30, "", "amplitude, radii"),
]


def _match(report, label):
    """(hit event or None, events near the label on its object)."""
    near = [e for e in report.events if label.object in e.objects and abs(e.frame - label.frame) <= FRAME_TOL]
    hit = [e for e in near if e.category == label.category]
    if label.other is not None:
        hit = [e for e in hit if label.other in e.objects] or hit
    return (hit[0] if hit else None), near


def _score(row: dict, ro, label, what: str, verbose: bool) -> tuple[float, int]:
    """Audit one injected rollout, add the outcome to its category's ``row``, print misses;
    returns (audit seconds, particle-frames)."""
    t0 = time.perf_counter()
    rep = audit(ro)
    secs = time.perf_counter() - t0
    hit, near = _match(rep, label)
    row["n"] += 1
    row["near"] += len(near)
    row["right"] += sum(e.category == label.category for e in near)
    row["extra"] += len(rep.events) - (1 if hit else 0)
    if hit:
        row["hit"] += 1
        row["ferr"].append(abs(hit.frame - label.frame))
        row["lerr"].append(float(np.linalg.norm(np.subtract(hit.location, label.location))))
    if verbose or not hit:
        got = "; ".join(f"{e.category}@{e.frame} obj {e.object}" for e in rep.events) or "nothing"
        print(f"  {'ok  ' if hit else 'MISS'} {what} label@{label.frame} obj {label.object} -> {got}")
    return secs, ro.num_frames * ro.scene.num_particles


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-particles", type=int, default=100_000)
    ap.add_argument("--big-frames", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=2, help="timed audits of the big scene (best is reported)")
    ap.add_argument("--rollouts", nargs="*", default=sorted(str(p) for p in SIM_DATA.glob("*.npz")),
                    help="extra clean rollout .npz files (e.g. from `worldline simulate`): audited as clean, "
                         "then with one injected glitch of each category that applies to them")
    ap.add_argument("--sweep", action="store_true",
                    help="also print recall against injection magnitude per category (where detection stops)")
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--e2e-particles", type=int, default=90_000,
                    help="end-to-end throughput: `python -m worldline audit FILE` (process start and load included) "
                         "on a file of this many particles x --big-frames frames (0: skip)")
    args = ap.parse_args(argv)

    audit(synth.clean("stack"))  # compile / warm the Warp kernel outside the timings

    # ---- clean rollouts
    clean_fp = {}
    pf, secs = 0, 0.0
    for name in synth.CLEAN:
        ro = synth.clean(name)
        t0 = time.perf_counter()
        rep = audit(ro)
        secs += time.perf_counter() - t0
        pf += ro.num_frames * ro.scene.num_particles
        clean_fp[name] = rep.events
        if rep.events and args.verbose:
            for e in rep.events:
                print(f"  FP {name}: {e.category} {e.frame}-{e.end_frame} {e.message}")
    from critic import load_audit_input

    extra = []
    for path in args.rollouts:
        for source, ro in load_audit_input(path):
            name = source.split("/")[-1]
            t0 = time.perf_counter()
            rep = audit(ro)
            secs += time.perf_counter() - t0
            pf += ro.num_frames * ro.scene.num_particles
            clean_fp[name] = rep.events
            extra.append((name, ro))
            for e in rep.events:
                print(f"  FP {name}: {e.category} {e.frame}-{e.end_frame} {e.message}")
    n_clean = len(clean_fp)
    fp_by_cat = {c: sum(any(e.category == c for e in ev) for ev in clean_fp.values()) for c in CATEGORIES}

    # ---- injected glitches
    rows = {c: {"n": 0, "hit": 0, "near": 0, "right": 0, "ferr": [], "lerr": [], "extra": 0} for c in CATEGORIES}
    for i, (cat, scene, mag, frame, variant) in enumerate(synth.GLITCHES):
        ro, label = synth.inject(synth.clean(scene), cat, mag, frame, seed=i, variant=variant)
        dt_s, n_pf = _score(rows[cat], ro, label, f"{cat:11s} {scene:15s} mag {mag:<5g} {variant:8s}", args.verbose)
        secs += dt_s
        pf += n_pf

    # injections into the extra (simulator) rollouts: one per category that applies
    for j, (name, clean_ro) in enumerate(extra):
        free = [k for k in range(clean_ro.scene.num_objects) if synth.free_object(clean_ro, k)]
        if not free:
            continue
        k = free[-1]
        f = clean_ro.num_frames // 2
        plan = [("teleport", 5.0, ""), ("vanish", 2, "nan"), ("jitter", 0.5, "")]
        if clean_ro.scene.object_material[k] == "rigid":
            plan += [("rigidity", 0.7, "shear")]
        for cat, mag, variant in plan:
            ro, label = synth.inject(clean_ro, cat, mag, f, obj=k, seed=100 + j, variant=variant)
            dt_s, n_pf = _score(rows[cat], ro, label, f"{cat:11s} {name:15s} mag {mag:<5g} {variant:8s}", args.verbose)
            secs += dt_s
            pf += n_pf

    print()
    print(f"{'category':12s} {'recall':>8s} {'FP(clean)':>10s} {'cat.acc':>8s} {'frame err':>10s} {'loc err (m)':>12s} {'extra ev':>9s}")
    tot = {"n": 0, "hit": 0}
    for c in CATEGORIES:
        r = rows[c]
        tot["n"] += r["n"]
        tot["hit"] += r["hit"]
        acc = f"{r['right'] / r['near']:.2f}" if r["near"] else "-"
        fe = f"{np.median(r['ferr']):.1f}" if r["ferr"] else "-"
        le = f"{np.median(r['lerr']):.4f}" if r["lerr"] else "-"
        print(f"{c:12s} {r['hit']:>3d}/{r['n']:<4d} {fp_by_cat[c]:>4d}/{n_clean:<5d} {acc:>8s} {fe:>10s} {le:>12s} {r['extra']:>9d}")
    n_fp = sum(bool(ev) for ev in clean_fp.values())
    print(f"{'all':12s} {tot['hit']:>3d}/{tot['n']:<4d} {n_fp:>4d}/{n_clean:<5d}   (clean rollouts with any event)")
    print(f"small rollouts: {pf} particle-frames in {secs:.2f} s of audit = {pf / secs:.3g} particle-frames/s")

    if args.sweep:
        print()
        print("detection limit: found / injected at each magnitude (scenes of GLITCHES, frame +-2)")
        for cat, scene, mags, frame, variant, unit in SWEEP:
            cells = []
            for m in mags:
                ro, label = synth.inject(synth.clean(scene), cat, m, frame, seed=7, variant=variant)
                hit, _ = _match(audit(ro), label)
                cells.append(f"{m:g}:{'yes' if hit else 'no'}")
            print(f"  {cat:11s} {scene:14s} {unit:22s} " + "  ".join(cells))

    # ---- throughput on a big scene
    if args.big_particles > 0:
        t0 = time.perf_counter()
        big = synth.big_scene(args.big_particles, args.big_frames)
        gen = time.perf_counter() - t0
        n, T = big.scene.num_particles, big.num_frames
        best, rep = np.inf, None
        for _ in range(max(1, args.repeats)):
            t0 = time.perf_counter()
            rep = audit(big)
            best = min(best, time.perf_counter() - t0)
        print(f"big scene: {n} particles x {T} frames, {big.scene.num_objects} objects (generated in {gen:.1f} s): "
              f"audit {best:.2f} s = {n * T / best:.3g} particle-frames/s, {len(rep.events)} events")
        for e in rep.events[:5]:
            print(f"  big-scene event: {e.category} {e.frame}-{e.end_frame} {e.message}")

    # ---- end to end: the CLI process on a file (start, imports, load, audit)
    if args.e2e_particles > 0:
        import os
        import subprocess
        import sys
        import tempfile

        from particles import save_rollout

        big = synth.big_scene(args.e2e_particles, args.big_frames)
        n, T = big.scene.num_particles, big.num_frames
        with tempfile.TemporaryDirectory() as tmp:
            path = save_rollout(Path(tmp) / "big.npz", big)
            del big
            env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
            best = np.inf
            for _ in range(max(1, args.repeats)):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-m", "worldline", "audit", str(path)], env=env,
                                      capture_output=True, text=True)
                best = min(best, time.perf_counter() - t0)
            print(f"end to end: `python -m worldline audit FILE` on {n} particles x {T} frames: exit {proc.returncode}, "
                  f"{best:.2f} s wall (best of {max(1, args.repeats)}) = {n * T / best:.3g} particle-frames/s")


if __name__ == "__main__":
    main()
