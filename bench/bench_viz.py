"""Time `viz.record` and `viz.render_png` on synthetic rollouts; prints seconds and file sizes.

    PYTHONPATH=$PWD python bench/bench_viz.py [--particles 100000] [--frames 50]

Also records one rollout above the 1M-points-per-frame limit to show the subsampling notice.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from particles import ParticleScene, Rollout
import viz


def synthetic(n: int, frames: int, objects: int = 4, seed: int = 0) -> Rollout:
    rng = np.random.default_rng(seed)
    oid = np.sort(rng.integers(0, objects, n)).astype(np.int32)
    pos0 = (rng.random((n, 3)) + np.stack([oid * 1.5, np.zeros(n), np.zeros(n)], 1)).astype(np.float32)
    t = np.arange(frames, dtype=np.float32)[:, None, None] * 0.01
    pos = pos0[None] + t * np.array([0.1, 0.0, -0.2], np.float32)
    scene = ParticleScene(pos0, oid, ("rigid", "elastic", "granular", "fluid")[:objects], 0.005)
    return Rollout(scene, pos.astype(np.float32), 0.01)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--particles", type=int, default=100_000)
    ap.add_argument("--frames", type=int, default=50)
    ap.add_argument("--large", type=int, default=1_200_000, help="particles of the subsampling case (0: skip)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ro = synthetic(args.particles, args.frames)
        truth = synthetic(args.particles, args.frames, seed=0)
        t0 = time.perf_counter()
        s = viz.record(Path(d) / "a.rrd", ro)
        t1 = time.perf_counter()
        print(f"record      {args.particles:>9} particles x {args.frames} frames: {t1 - t0:6.2f} s, "
              f"{(Path(d) / 'a.rrd').stat().st_size / 1e6:7.1f} MB")
        s = viz.record(Path(d) / "b.rrd", ro, truth=truth)
        t2 = time.perf_counter()
        print(f"record+truth {args.particles:>8} particles x {args.frames} frames: {t2 - t1:6.2f} s, "
              f"{(Path(d) / 'b.rrd').stat().st_size / 1e6:7.1f} MB")
        viz.render_png(Path(d) / "a.png", ro)
        t3 = time.perf_counter()
        print(f"render_png  {args.particles:>9} particles, 4 panels: {t3 - t2:6.2f} s")
        if args.large:
            big = synthetic(args.large, 3)
            t4 = time.perf_counter()
            s = viz.record(Path(d) / "c.rrd", big)
            t5 = time.perf_counter()
            print(f"record      {args.large:>9} particles x 3 frames: {t5 - t4:6.2f} s, shown {s.points_per_frame}"
                  f" per frame, {(Path(d) / 'c.rrd').stat().st_size / 1e6:7.1f} MB")
            for n in s.notices:
                print("  notice:", n)


if __name__ == "__main__":
    main()
