"""The critic judged by an independent referee: MuJoCo rollouts it has never seen (issue 11).

Generates (or reuses, cached in ``--out``) the set of :mod:`bench.mujoco_referee`: clean rollouts of
thrown, rolling, spinning, bouncing, sliding, stacked and pushed rigid bodies (spheres, boxes, cylinders,
capsules, convex meshes; sparse surface shells or filled; r 1.5-20 mm; dt 1/240-1/30 s), copies with one
labelled glitch each, bad-input files and a 90k-particle x 300-frame file; audits every rollout in-process
with ``critic.audit`` (after ``critic.load_audit_input``, as the CLI reads it) and prints:

* **false positives**: clean files on which the critic reports any event, with the categories raised;
* per injected category: **found** = share of injections for which the critic reports any event whose object
  or other is the labelled object and whose frames ``[event.frame, event.end_frame]`` overlap
  ``[label.frame - 3, label.frame + 3]``; the **matched event** of a found injection is such an event of the
  labelled category when there is one, else the one whose ``frame`` is nearest the label's; **recall** = share
  of injections whose matched event has the labelled category (found and named right); **category accuracy**
  = share of found injections whose matched event has the labelled category; **frame error** =
  ``|event.frame - label.frame|`` and **location error** = ``|event.location - label.location| / r`` of the
  matched event (medians over found injections); **extra** = events in injected files that match no label;
* a **confusion** table: per labelled category, how many matched events had each category (and misses);
* the exit code of ``python -m worldline audit FILE`` on every bad-input file (2 expected);
* **throughput**: particle-frames per second of ``python -m worldline audit FILE`` end to end (wall time of the
  process, start and loading included) on the 90k-particle x 300-frame file.

Issue 11's targets: no event on any clean file; recall and category accuracy >= 0.95 in every category;
median frame error <= 1 and median location error <= 3 r; bad inputs exit 2; >= 1e7 particle-frames/s.

Run: ``PYTHONPATH=$PWD python bench/critic_mujoco.py [--quick] [--out DIR] [--seed S] [--no-big]``
(the first run generates the set: minutes; later runs reuse it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mujoco_referee as ref  # noqa: E402
from critic import CATEGORIES, audit, load_audit_input  # noqa: E402

FRAME_WINDOW = 3  #: frames either side of the label in which an event counts


def match(events, label: dict, window: int = FRAME_WINDOW):
    """The event matched to an injection ``label`` (dict of :class:`mujoco_referee.Label`), or None.

    Candidates: events on the labelled object (``object`` or ``other``) whose ``[frame, end_frame]`` overlaps
    ``[label.frame - window, label.frame + window]``; the first of the labelled category, else the nearest."""
    k, f = label["object"], label["frame"]
    cand = [e for e in events if k in (e.object, e.other) and e.frame <= f + window and e.end_frame >= f - window]
    if not cand:
        return None
    right = [e for e in cand if e.category == label["category"]]
    pool = right or cand
    return min(pool, key=lambda e: abs(e.frame - f))


def audit_file(path: str):
    """Events of the critic on the file at ``path`` (every trajectory in it)."""
    events = []
    for source, ro in load_audit_input(path):
        events += list(audit(ro, source=source).events)
    return events


def _med(xs):
    return float(np.median(xs)) if len(xs) else float("nan")


#: ``python -m worldline`` of this checkout only: an editable install of another checkout (its import finder) must
#: not lend this one modules it lacks (e.g. a ``worldline.cmd_*`` that exists only there).
_BOOT = ("import runpy, sys; sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in getattr(f, '__name__', "
         "type(f).__name__)]; sys.argv[0] = 'worldline'; runpy.run_module('worldline', run_name='__main__', alter_sys=True)")


def cli_run(path: str, env, stdout: bool = False):
    """(exit code, wall s, last stderr line[, stdout]) of ``python -m worldline audit path`` (this checkout's)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _BOOT, "audit", path], capture_output=True, text=True, env=env,
                       cwd=str(Path(__file__).resolve().parent.parent))
    wall = time.perf_counter() - t0
    err = [ln for ln in p.stderr.strip().splitlines() if ln.strip()]
    if stdout:
        return p.returncode, wall, (err[-1] if err else ""), p.stdout
    return p.returncode, wall, (err[-1] if err else "")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: PYTHONPATH=$PWD python bench/critic_mujoco.py --quick")
    ap.add_argument("--quick", action="store_true", help="small set: 2 scenes per kind, 6 glitches per category")
    ap.add_argument("--out", type=Path, default=None, help="cache folder of the generated set "
                    "(default: $TMPDIR/worldline_mujoco_referee/v<version>-seed<S>[-quick])")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-big", action="store_true", help="skip the 90k x 300 throughput file")
    args = ap.parse_args(argv)
    # one folder per generator version: runs of different versions (e.g. two worktrees) never mix their files
    out = args.out or (Path(tempfile.gettempdir()) / "worldline_mujoco_referee"
                       / f"v{ref.GEN_VERSION}-seed{args.seed}{'-quick' if args.quick else ''}")
    t0 = time.perf_counter()
    man = ref.build_set(out, seed=args.seed, quick=args.quick, big=not args.no_big,
                        progress=lambda m: print("  gen", m, file=sys.stderr))
    print(f"referee set: {out} ({len(man['clean'])} clean, {len(man['injected'])} injected, {len(man['bad'])} bad "
          f"inputs; ready in {time.perf_counter() - t0:.0f} s)")

    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover
        def tqdm(x, **_):
            return x

    # ------------------------------------------------------------------ clean files
    fp = []
    t_audit, pf = 0.0, 0
    for item in tqdm(man["clean"], desc="clean", file=sys.stderr, leave=False):
        t1 = time.perf_counter()
        ev = audit_file(item["file"])
        t_audit += time.perf_counter() - t1
        pf += item["particles"] * item["frames"]
        if ev:
            fp.append((item, ev))
    print(f"\nclean files: {len(man['clean'])}, with any event: {len(fp)} "
          f"({len(fp) / max(len(man['clean']), 1):.0%})   [target: 0]")
    for item, ev in fp:
        cats = Counter(e.category for e in ev)
        print(f"  FP {Path(item['file']).name:18s} r={item['r'] * 1000:5.1f} mm dt=1/{1 / item['dt']:.0f} "
              f"N={item['particles']:6d}: " + ", ".join(f"{c} x{n}" for c, n in sorted(cats.items()))
              + "  first: " + "; ".join(f"{e.category}@{e.frame} obj {e.object}" for e in ev[:3]))

    # ------------------------------------------------------------------ injected files
    rows = defaultdict(lambda: {"n": 0, "found": 0, "right": 0, "ferr": [], "lerr": [], "extra": 0, "conf": Counter()})
    missed = []
    by_variant = defaultdict(lambda: [0, 0])  # (category, variant) -> [n, matched with the right category]
    for item in tqdm(man["injected"], desc="injected", file=sys.stderr, leave=False):
        lab = item["label"]
        by_variant[(lab["category"], lab["variant"])][0] += 1
        r = float(np.load(item["file"], allow_pickle=False)["radius"])
        ev = audit_file(item["file"])
        row = rows[lab["category"]]
        row["n"] += 1
        m = match(ev, lab)
        row["extra"] += sum(1 for e in ev if e is not m)
        if m is None:
            row["conf"]["(missed)"] += 1
            missed.append((item, ev))
            continue
        row["found"] += 1
        row["right"] += m.category == lab["category"]
        by_variant[(lab["category"], lab["variant"])][1] += m.category == lab["category"]
        if m.category != lab["category"]:
            missed.append((item, ev))
        row["conf"][m.category] += 1
        row["ferr"].append(abs(m.frame - lab["frame"]))
        row["lerr"].append(float(np.linalg.norm(np.subtract(m.location, lab["location"]))) / r)
    print(f"\ninjected: found = any event on the object within +-{FRAME_WINDOW} frames; recall = found with the "
          "labelled category; acc = recall / found")
    print(f"{'category':12s} {'n':>3s} {'found':>6s} {'recall':>7s} {'acc':>6s} {'med frame err':>13s} "
          f"{'med loc err (r)':>15s} {'extra':>6s}")
    allf, alll, tot_n, tot_found, tot_right = [], [], 0, 0, 0
    for cat in CATEGORIES:
        row = rows[cat]
        n = row["n"]
        tot_n += n
        tot_found += row["found"]
        tot_right += row["right"]
        allf += row["ferr"]
        alll += row["lerr"]
        print(f"{cat:12s} {n:3d} {row['found'] / max(n, 1):6.2f} {row['right'] / max(n, 1):7.2f} "
              f"{row['right'] / max(row['found'], 1):6.2f} {_med(row['ferr']):13.1f} {_med(row['lerr']):15.2f} "
              f"{row['extra']:6d}")
    print(f"{'all':12s} {tot_n:3d} {tot_found / max(tot_n, 1):6.2f} {tot_right / max(tot_n, 1):7.2f} "
          f"{tot_right / max(tot_found, 1):6.2f} {_med(allf):13.1f} {_med(alll):15.2f}")
    print("   [targets: recall >= 0.95 and acc >= 0.95 per category, median frame err <= 1, median loc err <= 3 r]")
    print("\nconfusion (rows: injected category; columns: category of the matched event)")
    cols = list(CATEGORIES) + ["(missed)"]
    print(f"{'':12s} " + " ".join(f"{c[:7]:>7s}" for c in cols))
    for cat in CATEGORIES:
        print(f"{cat:12s} " + " ".join(f"{rows[cat]['conf'].get(c, 0):7d}" for c in cols))
    print("\nrecall per variant: " + ", ".join(f"{c}/{v} {k}/{n}" for (c, v), (n, k) in sorted(by_variant.items())))
    if missed:
        print("\nmissed or misnamed injections (variant, label frame, what the critic said on that file):")
        for item, ev in missed:
            lab = item["label"]
            said = "; ".join(f"{e.category}@{e.frame} obj {e.object}" for e in ev[:4]) or "nothing"
            print(f"  {Path(item['file']).name:34s} {lab['variant']:10s} f={lab['frame']:4d} obj {lab['object']}"
                  f" mag {lab['magnitude']:.2f} {lab['unit']}: {said}")
    print(f"\nin-process audit of the clean files: {pf / max(t_audit, 1e-9) / 1e6:.2f} M particle-frames/s "
          f"({pf} particle-frames in {t_audit:.1f} s)")

    # ------------------------------------------------------------------ bad inputs and throughput
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    print("\nbad inputs: exit code of `python -m worldline audit FILE` (2 expected)")
    bad_ok = 0
    for item in man["bad"]:
        code, _, line = cli_run(item["file"], env)
        bad_ok += code == 2
        print(f"  {code}  {Path(item['file']).name:22s} {item['why']:28s} {line[-90:]}")
    print(f"  {bad_ok}/{len(man['bad'])} exit 2")
    if man.get("big"):
        with np.load(man["big"], allow_pickle=False) as z:
            T, N = z["positions"].shape[:2]
        code, wall, line, text = cli_run(man["big"], env, stdout=True)
        if code not in (0, 1):
            print(f"\n`worldline audit big.npz` failed (exit {code}): {line}")
        print(f"\nthroughput: `python -m worldline audit big.npz` ({N} particles x {T} frames, clean): exit {code}, "
              f"{wall:.2f} s wall, {N * T / wall / 1e6:.2f} M particle-frames/s   [target: >= 10 M]")
        if code == 1:  # a false positive too: say which
            cats = Counter(ln.split()[0] for ln in text.splitlines()[2:] if ln.split() and ln.split()[0] in CATEGORIES)
            print("  big.npz is clean, yet the critic reports: " + ", ".join(f"{c} x{n}" for c, n in sorted(cats.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
