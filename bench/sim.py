"""Benchmark of the Newton ground truth: frames/s and particle-frames/s per material and size,
and kernel compile time with a cold Warp cache against a warm one.

    PYTHONPATH=$PWD python3 bench/sim.py                      # throughput table (warm cache)
    PYTHONPATH=$PWD python3 bench/sim.py --sizes 1000 10000   # fewer sizes
    PYTHONPATH=$PWD python3 bench/sim.py --compile            # also cold vs cached compile (minutes)

Scenes per material (particle radius 1 cm, default SimConfig: 1/60 s frames, 10 substeps):
rigid: boxes of 4x4x4 particles on a grid, dropped 1 cm onto the ground; push: the same grid
and a pusher driving the first box into the next one at 0.25 m/s (``--materials push``); granular: one
block of sand collapsing; elastic: one spring-network block dropped on the ground;
cloth: a square sheet falling onto a static box. A size is skipped (and said so) when its
first frame predicts more than ``--budget`` seconds for the timed frames, and larger sizes
of that material are skipped with it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

R = 0.01
PUSH_FRAMES = 400  # frames of the push scene's tool path (covers the first and the timed frames)


def make_setup(material: str, n: int):
    from dynamics.sim import ObjectShape
    from dynamics.sim.scenes import PrimitiveSpec, build_setup

    if material == "rigid":
        boxes = max(1, n // 64)
        side = int(np.ceil(np.sqrt(boxes)))
        objs = []
        for b in range(boxes):
            x, y = (b % side) * 0.1, (b // side) * 0.1
            objs.append(PrimitiveSpec(f"box{b}", "rigid", ObjectShape("box", (0.04, 0.04, 0.04), position=(x, y, 0.05))))
        return build_setup(objs, R)
    if material == "push":  # the rigid grid, and a pusher driving the first box into the second at 0.25 m/s
        from dynamics.sim.scenes import push_action

        base = make_setup("rigid", n)
        objs = [PrimitiveSpec(name, "rigid", shape) for name, shape in zip(base.scene.object_name, base.shapes)]
        start = np.array([-0.06, 0.0, 0.032])
        path = push_action(start, start + [0.25 * PUSH_FRAMES / 60.0, 0, 0], PUSH_FRAMES)
        return build_setup(objs, R, tool=ObjectShape("box", (0.01, 0.04, 0.02), position=start), tool_path=path)
    if material in ("granular", "elastic"):
        side = max(2, int(round(n ** (1 / 3))))
        half = side * R
        z = half + (0.01 if material == "elastic" else 0.0)
        return build_setup([PrimitiveSpec("block", material, ObjectShape("box", (half, half, half), position=(0, 0, z)))], R)
    if material == "cloth":
        side = max(2, int(round(np.sqrt(n))))
        half = side * R
        from dynamics.sim.scenes import lattice_box
        from particles import ParticleScene

        sheet = lattice_box((half, half, R), R, (0, 0, 0.25))
        ped = lattice_box((0.08, 0.08, 0.08), R, (0, 0, 0.08))
        scene = ParticleScene(np.concatenate([ped, sheet]), np.r_[np.zeros(len(ped)), np.ones(len(sheet))],
                              ("static", "cloth"), R, particle_type=np.r_[np.full(len(ped), 3), np.full(len(sheet), 10)])
        from dynamics.sim.scenes import SimSetup

        return SimSetup(scene, (ObjectShape("box", (0.08, 0.08, 0.08), position=(0, 0, 0.08)), None), (None, None), None)
    raise ValueError(material)


def throughput(materials, sizes, frames: int, budget: float, device=None):
    from dynamics.sim import SimConfig

    rows = []
    for material in materials:
        skip = False
        for n in sizes:
            if skip:
                rows.append((material, n, None, None, None, "skipped (a smaller size exceeded the budget)"))
                continue
            setup = make_setup(material, n)
            t0 = time.perf_counter()
            sim = setup.simulator(SimConfig(device=device))
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            act = setup.action
            sim.rollout(act, 1)  # first frame: loads kernels, allocates
            first = time.perf_counter() - t0
            if first * frames > budget:
                rows.append((material, setup.scene.num_particles, build, None, None,
                             f"skipped: first frame took {first:.1f} s, {frames} frames > {budget:.0f} s budget"))
                skip = True
                continue
            t0 = time.perf_counter()
            ro = sim.rollout(act, frames)
            el = time.perf_counter() - t0
            fps = frames / el
            ok = bool(np.all(np.isfinite(ro.positions)))
            rows.append((material, setup.scene.num_particles, build, fps, fps * setup.scene.num_particles,
                         "" if ok else "NON-FINITE"))
            print(f"  {material:9s} N={setup.scene.num_particles:7d} build {build:6.2f} s  {fps:8.2f} frames/s", flush=True)
    return rows


COMPILE_SNIPPET = """
import sys, time, json
import warp as wp
if sys.argv[1] != "-":
    wp.config.kernel_cache_dir = sys.argv[1]
t0 = time.perf_counter()
wp.init()
sys.path.insert(0, sys.argv[2])
from bench.sim import make_setup
out = {}
for material in ("rigid", "granular"):
    t = time.perf_counter()
    setup = make_setup(material, 64)
    sim = setup.simulator()
    sim.rollout(None, 1)
    out[material] = time.perf_counter() - t
out["total"] = time.perf_counter() - t0
print("RESULT " + json.dumps(out))
"""


def compile_times(root: str):
    res = {}
    with tempfile.TemporaryDirectory(prefix="warp_cold_") as cold:
        for label, cache in (("cold", cold), ("cached (same dir again)", cold), ("cached (default dir)", "-")):
            t0 = time.perf_counter()
            p = subprocess.run([sys.executable, "-c", COMPILE_SNIPPET, cache, root], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": root})
            line = [s for s in p.stdout.splitlines() if s.startswith("RESULT ")]
            if p.returncode or not line:
                res[label] = {"error": (p.stderr or p.stdout)[-500:]}
            else:
                res[label] = {**json.loads(line[0][7:]), "process": time.perf_counter() - t0}
            print(f"  {label}: {res[label]}", flush=True)
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--materials", nargs="+", default=["rigid", "push", "granular", "elastic", "cloth"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    ap.add_argument("--frames", type=int, default=10, help="timed frames per size")
    ap.add_argument("--budget", type=float, default=120.0, help="s allowed for the timed frames of one size")
    ap.add_argument("--device", default=None)
    ap.add_argument("--compile", action="store_true", help="also measure cold vs cached kernel compile time")
    args = ap.parse_args()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    import warp as wp

    wp.config.quiet = True
    wp.init()
    print(f"device: {wp.get_device(args.device)}, cpu cores: {os.cpu_count()}")
    rows = throughput(args.materials, args.sizes, args.frames, args.budget, args.device)
    print()
    print(f"| material | particles | build s | frames/s | particle-frames/s | note |")
    print(f"|---|---:|---:|---:|---:|---|")
    for m, n, build, fps, pfs, note in rows:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        print(f"| {m} | {n} | {f(build, '.2f')} | {f(fps, '.2f')} | {f(pfs, '.3g')} | {note} |")
    if args.compile:
        print("\nkernel compile + first frame of a 64-particle rigid and granular scene, fresh process each:")
        compile_times(root)


if __name__ == "__main__":
    main()
