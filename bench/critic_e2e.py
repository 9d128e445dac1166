"""End-to-end throughput of ``worldline audit FILE`` against a named peer checkout, in one run.

Times ``python -m worldline audit FILE`` (process start, imports, loading and the audit: wall time of
the process) for this checkout and, with ``--peer DIR``, for another checkout of worldline (e.g. a
``git worktree`` of an older commit), alternating the two ``--repeats`` times on each file so that both
see the same machine load; prints the best wall time of each, particle-frames per second, the ratio and
the 1-minute load average before and after (the machine is shared: compare ratios, not absolute figures).

Each checkout runs its own code only (``PYTHONPATH`` set to it, an editable install of another checkout
kept out, as in ``bench/critic_mujoco.py``).

Run: ``PYTHONPATH=$PWD python bench/critic_e2e.py FILE [FILE ...] [--peer DIR] [--repeats 3]``
e.g. the referee's 90k x 300 file, written once by the old writer (positions deflated) and once by
``particles.save_rollout`` (positions stored).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
_BOOT = ("import runpy, sys; sys.meta_path[:] = [f for f in sys.meta_path if 'Editable' not in getattr(f, '__name__', "
         "type(f).__name__)]; sys.argv[0] = 'worldline'; runpy.run_module('worldline', run_name='__main__', alter_sys=True)")


def run(checkout: Path, path: str) -> tuple[int, float]:
    """(exit code, wall s) of ``python -m worldline audit path`` in ``checkout``."""
    env = dict(os.environ, PYTHONPATH=str(checkout))
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _BOOT, "audit", path], capture_output=True, text=True, env=env,
                       cwd=str(checkout))
    wall = time.perf_counter() - t0
    if p.returncode not in (0, 1):
        print(f"  {checkout}: exit {p.returncode}: {p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
    return p.returncode, wall


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: PYTHONPATH=$PWD python bench/critic_e2e.py big.npz --peer ../old")
    ap.add_argument("files", nargs="+")
    ap.add_argument("--peer", type=Path, default=None, help="another worldline checkout to time beside this one")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    sides = [("this", ROOT)] + ([("peer", args.peer.resolve())] if args.peer else [])
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    for path in args.files:
        with np.load(path, allow_pickle=False) as z:
            info = z.zip.getinfo("positions.npy")
            T, N = z["positions"].shape[:2] if info.compress_type == 0 else (None, None)
            if T is None:
                T, N = z["positions"].shape[:2]
        stored = "stored" if info.compress_type == 0 else "deflated"
        best = {name: np.inf for name, _ in sides}
        codes = {}
        for _ in range(args.repeats):
            for name, checkout in sides:
                code, wall = run(checkout, path)
                codes[name] = code
                best[name] = min(best[name], wall)
        print(f"{Path(path).name} ({N} particles x {T} frames, positions {stored}):")
        for name, checkout in sides:
            print(f"  {name:4s} {str(checkout):40s} exit {codes[name]}  best {best[name]:6.2f} s  "
                  f"{N * T / best[name] / 1e6:6.2f} M particle-frames/s")
        if len(sides) == 2:
            print(f"  ratio this / peer: {best['peer'] / best['this']:.2f}x faster")
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
