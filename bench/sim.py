"""Benchmark of the Newton ground truth: frames/s and particle-frames/s per material and size,
and kernel compile time with a cold Warp cache against a warm one.

    PYTHONPATH=$PWD python3 bench/sim.py                      # throughput table (warm cache)
    PYTHONPATH=$PWD python3 bench/sim.py --sizes 1000 10000   # fewer sizes
    PYTHONPATH=$PWD python3 bench/sim.py --compile            # also cold vs cached compile (minutes)
    PYTHONPATH=$PWD python3 bench/sim.py --squeeze            # issue 17's squeeze: XPBD vs SolverMuJoCo

Scenes per material (particle radius 1 cm, default SimConfig: 1/60 s frames, 10 substeps):
rigid: boxes of 4x4x4 particles on a grid, dropped 1 cm onto the ground; push: the same grid
and a pusher driving the first box into the next one at 0.25 m/s (``--materials push``); granular: one
block of sand collapsing; sandbox: boxes dropped onto a sand bed (about 3/4 of the particles sand),
which the two-way MPM coupling carries (``sandbox-oneway``: the former one-way coupling); elastic: one
block dropped on the ground, on VBD tetrahedra (``elastic-springs``: the former XPBD spring network);
cloth: a square sheet falling onto a static box, on VBD (``cloth-springs``: XPBD springs).

    PYTHONPATH=$PWD python3 bench/sim.py --sizes 1000 \
        --materials elastic elastic-springs cloth cloth-springs sandbox sandbox-oneway

A size is skipped (and said so) when its first frame predicts more than ``--budget`` seconds for the timed frames, and larger sizes
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
    if material == "sandbox":  # a bed of sand and boxes of 4x4x4 particles dropped onto it (two-way coupling)
        side = max(2, int(round((0.75 * n / 3) ** 0.5)))
        half = side * R
        boxes = max(1, n // 4 // 64)
        row = int(np.ceil(np.sqrt(boxes)))
        objs = [PrimitiveSpec("sand", "granular", ObjectShape("box", (half, half, 3 * R), position=(0, 0, 3 * R)))]
        for b in range(boxes):
            x, y = ((b % row) - (row - 1) / 2) * 0.1, ((b // row) - (row - 1) / 2) * 0.1
            objs.append(PrimitiveSpec(f"box{b}", "rigid", ObjectShape("box", (0.04, 0.04, 0.04), position=(x, y, 0.11))))
        return build_setup(objs, R)
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
    for label in materials:
        # "<material>-springs": elastic or cloth on the former XPBD spring network; "<material>-oneway": the
        # sand-box scene with the former one-way MPM coupling
        material, _, variant = label.partition("-")
        extra = {"springs": {"soft_solver": "springs"}, "oneway": {"mpm_two_way": False}}.get(variant, {})
        skip = False
        for n in sizes:
            if skip:
                rows.append((label, n, None, None, None, "skipped (a smaller size exceeded the budget)"))
                continue
            setup = make_setup(material, n)
            t0 = time.perf_counter()
            sim = setup.simulator(SimConfig(device=device, **extra))
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            act = setup.action
            sim.rollout(act, 1)  # first frame: loads kernels, allocates
            first = time.perf_counter() - t0
            if first * frames > budget:
                rows.append((label, setup.scene.num_particles, build, None, None,
                             f"skipped: first frame took {first:.1f} s, {frames} frames > {budget:.0f} s budget"))
                skip = True
                continue
            t0 = time.perf_counter()
            ro = sim.rollout(act, frames)
            el = time.perf_counter() - t0
            fps = frames / el
            ok = bool(np.all(np.isfinite(ro.positions)))
            rows.append((label, setup.scene.num_particles, build, fps, fps * setup.scene.num_particles,
                         ("" if ok else "NON-FINITE ") + f"{sim.substeps} substeps"))
            print(f"  {label:15s} N={setup.scene.num_particles:7d} build {build:6.2f} s  {fps:8.2f} frames/s", flush=True)
    return rows


def squeeze(cases, frames: int = 180):
    """Issue 17's squeeze (assets/scenes/squeeze_wall.toml: a 6 cm box pushed at 0.25 m/s into a static
    block) with the bounded tool drive, on NewtonSimulator (XPBD) and, when ``mujoco_warp`` imports, on
    Newton's SolverMuJoCo with the same drive kernel (box, block, ground and tool only). Per case
    (box density kg/m^3, force limit N): the box's fastest centre speed, its final x and ms per frame."""
    import dataclasses

    import warp as wp

    import newton
    from dynamics.sim import SimConfig
    from dynamics.sim._kernels import tool_drive
    from dynamics.sim.scenes import setup_from_scene_file

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    base = setup_from_scene_file(os.path.join(root, "assets", "scenes", "squeeze_wall.toml"), 1 / 60, frames)
    rows = []
    for density, force in cases:
        mats = list(base.materials)
        mats[0] = mats[0].with_(density=density)
        setup = dataclasses.replace(base, materials=tuple(mats))
        sim = setup.simulator(SimConfig(tool_max_force=force))
        t0 = time.perf_counter()
        ro = sim.rollout(setup.action, frames)
        ms = 1000 * (time.perf_counter() - t0) / frames
        c = ro.positions[:, ro.scene.object_indices(0)].astype(np.float64).mean(1)
        v = np.linalg.norm(np.diff(c, axis=0), axis=1) / ro.dt
        rows.append(("xpbd", density, force, sim.substeps, v.max(), c[-1, 0], ms))
    try:
        import mujoco_warp  # noqa: F401
    except ImportError:
        print("  SolverMuJoCo: skipped (mujoco_warp is not installed)")
        return rows
    cfg = SimConfig()
    for density, force in cases:
        for substeps in (cfg.substeps, 2):
            h = cfg.dt / substeps
            b = newton.ModelBuilder()
            b.add_ground_plane()
            box = b.add_body(xform=wp.transform(wp.vec3(0, 0, 0.03), wp.quat_identity()))
            b.add_shape_box(box, hx=0.03, hy=0.03, hz=0.03, cfg=newton.ModelBuilder.ShapeConfig(density=density, mu=0.5))
            b.add_shape_box(-1, xform=wp.transform(wp.vec3(0.19, 0, 0.04), wp.quat_identity()), hx=0.03, hy=0.08, hz=0.04,
                            cfg=newton.ModelBuilder.ShapeConfig(density=0.0, mu=0.5))
            tool = b.add_body(xform=wp.transform(wp.vec3(-0.06, 0, 0.022), wp.quat_identity()))
            b.add_shape_box(tool, hx=0.01, hy=0.04, hz=0.02,
                            cfg=newton.ModelBuilder.ShapeConfig(density=cfg.tool_mass / 6.4e-5, mu=0.5))
            model = b.finalize()
            solver = newton.solvers.SolverMuJoCo(model, use_mujoco_cpu=True)
            s0, s1 = model.state(), model.state()
            control = model.control()
            newton.eval_fk(model, model.joint_q, model.joint_qd, s0)
            ids = wp.array([tool], dtype=wp.int32)
            dsum, dpk = wp.zeros(1, dtype=wp.spatial_vector), wp.zeros(1, dtype=wp.vec2)
            path = lambda t: wp.array([wp.transform(wp.vec3(-0.06 + 0.25 * t, 0, 0.022), wp.quat_identity())],  # noqa: E731
                                      dtype=wp.transform)
            xs = []
            t0 = time.perf_counter()
            for f in range(frames):
                for k in range(substeps):
                    t = (f * substeps + k) * h
                    s0.clear_forces()
                    wp.launch(tool_drive, dim=1, inputs=[ids, path(t), path(t + h), s0.body_q, s0.body_qd, model.body_com,
                                                         model.body_mass, model.body_inertia, wp.vec3(0, 0, -9.81), force,
                                                         cfg.tool_max_torque, cfg.tool_catchup_speed, h],
                              outputs=[s0.body_f, dsum, dpk])
                    solver.step(s0, s1, control, None, h)
                    s0, s1 = s1, s0
                xs.append(s0.body_q.numpy()[box, :3].copy())
            ms = 1000 * (time.perf_counter() - t0) / frames
            xs = np.array(xs)
            v = np.linalg.norm(np.diff(xs, axis=0), axis=1) / cfg.dt
            rows.append(("mujoco", density, force, substeps, v.max(), xs[-1, 0], ms))
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
    ap.add_argument("--materials", nargs="+", default=["rigid", "push", "granular", "sandbox", "elastic", "cloth"])
    ap.add_argument("--sizes", nargs="+", type=int, default=[1000, 10000, 100000])
    ap.add_argument("--frames", type=int, default=10, help="timed frames per size")
    ap.add_argument("--budget", type=float, default=120.0, help="s allowed for the timed frames of one size")
    ap.add_argument("--device", default=None)
    ap.add_argument("--compile", action="store_true", help="also measure cold vs cached kernel compile time")
    ap.add_argument("--squeeze", action="store_true",
                    help="only issue 17's squeeze scene with the bounded tool drive: XPBD vs SolverMuJoCo")
    args = ap.parse_args()
    if args.squeeze:
        import warp as wp

        wp.config.quiet = True
        print("| solver | box density kg/m^3 | max_force N | substeps | box max speed m/s | box final x m | ms/frame |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for row in squeeze([(500.0, 20.0), (50.0, 20.0), (500.0, 100.0)]):
            print("| {} | {:g} | {:g} | {} | {:.3f} | {:.3f} | {:.1f} |".format(*row), flush=True)
        return
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    import warp as wp

    wp.config.quiet = True
    wp.init()
    print(f"device: {wp.get_device(args.device)}, cpu cores: {os.cpu_count()}")
    rows = throughput(args.materials, args.sizes, args.frames, args.budget, args.device)
    print()
    print("| material | particles | build s | frames/s | particle-frames/s | note |")
    print("|---|---:|---:|---:|---:|---|")
    for m, n, build, fps, pfs, note in rows:
        f = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
        print(f"| {m} | {n} | {f(build, '.2f')} | {f(fps, '.2f')} | {f(pfs, '.3g')} | {note} |")
    if args.compile:
        print("\nkernel compile + first frame of a 64-particle rigid and granular scene, fresh process each:")
        compile_times(root)


if __name__ == "__main__":
    main()
