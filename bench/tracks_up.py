"""How far the tracks critic's up direction is from the true up, per camera kind, over the clean films that a
``bench/critic_tracks.py --seed S --out DIR`` run left in ``DIR`` (its ``manifest.json``).

Truth: with extrinsics (static+extrinsics, orbiting) the input frame is the world's and up is +z. Without them
(static, camera frame) the input frame is the camera's: ``bench/tracks_gen.py``'s camera has no roll, so the true up
in camera coordinates (OpenCV axes) is ``(0, -cos e, -sin e)`` for its elevation ``e``, the first draw of the film's
generator ``default_rng([seed, j])`` (``j`` the film's index in the run: the manifest lists the clean films in that
order), ``uniform(25, 45)`` degrees. The estimate is :func:`critic.tracks.tracks_to_rollout`'s ``frame.up``. Prints
per camera kind the median, 90th percentile and largest angle (degrees), the up source counts, and the files more
than ``--show`` degrees off.

    PYTHONPATH=$PWD python bench/tracks_up.py DIR [--seed S] [--show DEG]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import warnings
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from critic.tracks import load_tracks, tracks_to_rollout  # noqa: E402


def true_up(seed: int, j: int, extrinsics: bool) -> np.ndarray:
    """(3,) the true up in the film's input frame (module docstring)."""
    if extrinsics:
        return np.array([0.0, 0.0, 1.0])
    e = np.radians(np.random.default_rng([seed, j]).uniform(25, 45))
    return np.array([0.0, -np.cos(e), -np.sin(e)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", type=Path)
    ap.add_argument("--seed", type=int, default=None, help="the run's --seed (default: from a DIR named sN)")
    ap.add_argument("--camera", default=None, help="only the films of this camera kind (as printed)")
    ap.add_argument("--show", type=float, default=1.0, help="list files whose up is more than this many degrees off")
    args = ap.parse_args(argv)
    seed = args.seed
    if seed is None:
        m = re.search(r"s(\d+)$", args.dir.resolve().name)
        if m is None:
            ap.error("--seed is needed (DIR is not named sN)")
        seed = int(m.group(1))
    warnings.filterwarnings("ignore")
    man = json.loads((args.dir / "manifest.json").read_text())
    ang, src, off = defaultdict(list), defaultdict(Counter), []
    for j, e in enumerate(man["clean"]):
        if args.camera and e["camera"] != args.camera:
            continue
        tr = load_tracks(e["file"])
        truth = true_up(seed, j, tr.w2c is not None)
        try:
            ts = tracks_to_rollout(tr, e["fps"])
        except ValueError as err:
            src[e["camera"]][f"no scene ({err})"] += 1
            continue
        up = ts.frame.up / np.linalg.norm(ts.frame.up)
        a = float(np.degrees(np.arccos(np.clip(up @ truth, -1.0, 1.0))))
        ang[e["camera"]].append(a)
        src[e["camera"]][ts.frame.up_source] += 1
        if a > args.show:
            off.append((a, Path(e["file"]).name, ts.frame.up_source, ts.frame.ground is not None))
    print(f"seed {seed}: angle between the estimated and the true up (degrees), clean films of {args.dir}")
    print(f"{'camera':24s} {'files':>5s} {'median':>7s} {'p90':>7s} {'max':>7s}")
    for cam, a in ang.items():
        a = np.asarray(a)
        print(f"{cam:24s} {len(a):5d} {np.median(a):7.2f} {np.percentile(a, 90):7.2f} {a.max():7.2f}")
        for s, n in src[cam].most_common():
            print(f"    {n:3d} x {s}")
    for a, name, s, g in sorted(off, reverse=True):
        print(f"  {a:6.2f} deg  {name:32s} {s}{'' if g else ' (no ground)'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
