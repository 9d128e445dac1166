"""Benchmark of the learned dynamics against a constant-velocity baseline, in one run.

Accuracy on the held-out split of a dataset (every trajectory rolled out from frame C,
kinematic particles on their recorded path): one-step MSE over every window, rollout MSE
at 10, 50 and all frames, energy drift, rigidity and ground penetration of the prediction,
and, when the critic is installed, the fraction of rollouts `critic.audit` finds clean.
Speed: time per rollout step (graph + network + integration + every projection) on
scenes of 1k, 10k and 100k particles (boxes of 5 x 5 x 5 particles on a grid), and the
ground-truth simulator's step time on the same scenes when ``dynamics.sim`` is installed.

    worldline dataset --out data/newton_push2 --scenes 192 --workers 2 --seed 1 --granular-fraction 0.25
    PYTHONPATH=$PWD python3 bench/model.py --dataset data/newton_push2 --checkpoint assets/weights/gns_push.pt --split test

Prints one table; never collected as a test.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
import warp as wp

from particles import KINEMATIC, ParticleScene, load_dataset
from dynamics.evaluate import constant_velocity, constant_velocity_constrained, one_step_mse, position_mse, predict_trajectory, rollout_errors
from dynamics.model import pack_scenes
from dynamics.train import load_model

HORIZONS = (10, 50)


def _rigidity(pred: np.ndarray, ro) -> float:
    """Largest change, m, of a pairwise distance within a rigid object over the prediction."""
    worst = 0.0
    sc = ro.scene
    for k, mat in enumerate(sc.object_material):
        idx = np.flatnonzero((sc.object_id == k) & (sc.particle_type != KINEMATIC))
        if mat != "rigid" or len(idx) < 2:
            continue
        sub = idx[:: max(1, len(idx) // 40)]
        rest = np.linalg.norm(ro.positions[0, sub][:, None] - ro.positions[0, sub][None], axis=-1)
        for t in range(0, len(pred), max(1, len(pred) // 10)):
            d = np.linalg.norm(pred[t, sub][:, None] - pred[t, sub][None], axis=-1)
            worst = max(worst, float(np.abs(d - rest).max()))
    return worst


def _penetration(pred: np.ndarray, ro) -> float:
    """Deepest particle centre below ``ground + radius``, m (0 when none)."""
    if ro.scene.ground is None:
        return 0.0
    free = ro.scene.particle_type != KINEMATIC
    return float(max(0.0, (ro.scene.ground + ro.scene.radius) - pred[:, free, 2].min() - 1e-6))


def accuracy(model, trajs, audit_fn):
    c = model.config.history
    rows = {"model": {}, "model, no projections": {}, "constant velocity": {}, "cv + projections": {}}
    windows = [(i, t) for i, r in enumerate(trajs) for t in range(c, r.num_frames - 1)]
    rows["model"]["one-step MSE (m^2)"] = one_step_mse(model, trajs, windows)
    rows["cv + projections"]["one-step MSE (m^2)"] = "-"
    rows["model, no projections"]["one-step MSE (m^2)"] = rows["model"]["one-step MSE (m^2)"]
    rows["constant velocity"]["one-step MSE (m^2)"] = float(np.mean(
        [position_mse(constant_velocity(trajs[i], t, 1), trajs[i].positions[t + 1:t + 2],
                      trajs[i].scene.particle_type != KINEMATIC) for i, t in windows]))
    per = {name: {"mse": {h: [] for h in (*HORIZONS, "full")}, "drift": [], "rigid": [], "pen": [], "clean": []}
           for name in rows}
    frames = 0
    for ro in trajs:
        steps = ro.num_frames - 1 - c
        preds = {"model": predict_trajectory(model, ro, c, steps, rigid=True),
                 "model, no projections": predict_trajectory(model, ro, c, steps, rigid=False, collide=False),
                 "constant velocity": constant_velocity(ro, c, steps),
                 "cv + projections": constant_velocity_constrained(ro, c, steps)}
        frames += steps
        for name, pred in preds.items():
            err = rollout_errors(pred, ro, c, (*HORIZONS, steps))
            for h in HORIZONS:
                per[name]["mse"][h].append(err.mse[h])
            per[name]["mse"]["full"].append(err.mse[steps])
            per[name]["drift"].append(abs(err.energy_drift))
            per[name]["rigid"].append(_rigidity(pred, ro))
            per[name]["pen"].append(_penetration(pred, ro))
            if audit_fn is not None:
                from particles import Rollout

                full = Rollout(ro.scene, np.concatenate([ro.positions[:c + 1], pred], 0), ro.dt)
                per[name]["clean"].append(len(audit_fn(full).events) == 0)
    for name in rows:
        for h in (*HORIZONS, "full"):
            rows[name][f"rollout MSE @{h} (m^2)"] = float(np.mean(per[name]["mse"][h]))
        rows[name]["|energy drift| (rel.)"] = float(np.mean(per[name]["drift"]))
        rows[name]["max rigid distortion (m)"] = float(np.max(per[name]["rigid"]))
        rows[name]["max ground penetration (m)"] = float(np.max(per[name]["pen"]))
        full, base = np.array(per[name]["mse"]["full"]), np.array(per["cv + projections"]["mse"]["full"])
        rows[name]["full MSE below cv + projections"] = "-" if name == "cv + projections" else \
            f"{int((full < base).sum())}/{len(full)}"
        if per[name]["clean"]:
            rows[name]["audit-clean rollouts"] = f"{sum(per[name]['clean'])}/{len(per[name]['clean'])}"
    return rows, frames


def timing_scene(n: int, radius: float) -> ParticleScene:
    """About ``n`` particles: 5 x 5 x 5 boxes (rigid) on a square grid on the ground, 2 spacings apart."""
    s = 2 * radius
    box = np.stack(np.meshgrid(*[np.arange(5) * s] * 3, indexing="ij"), -1).reshape(-1, 3) + radius
    k = max(1, round(n / len(box)))
    side = int(np.ceil(np.sqrt(k)))
    pos, oid = [], []
    for b in range(k):
        off = np.array([(b % side) * 7 * s, (b // side) * 7 * s, 0.0])
        pos.append(box + off)
        oid.append(np.full(len(box), b, np.int32))
    return ParticleScene(np.concatenate(pos).astype(np.float32), np.concatenate(oid), ("rigid",) * k, radius)


def speed(model, sizes, repeats):
    out = {}
    rng = np.random.default_rng(0)
    for n in sizes:
        sc = timing_scene(n, model.config.connectivity_radius / 3.7)
        batch = pack_scenes([sc])
        c = model.config.history
        vel = rng.normal(0, 1e-3, (sc.num_particles, 3)).astype(np.float32)
        hist = torch.as_tensor(np.stack([sc.positions + (k - c) * vel for k in range(c + 1)]))
        with torch.no_grad():
            t = time.perf_counter()
            edges = model.graph(hist[-1], batch)
            graph_s = time.perf_counter() - t
            model.next_positions(hist, batch, rigid=True, collide=True)  # warm-up
            t = time.perf_counter()
            for _ in range(repeats if n < 50_000 else 1):
                model.next_positions(hist, batch, rigid=True, collide=True)
            step_s = (time.perf_counter() - t) / (repeats if n < 50_000 else 1)
        t = time.perf_counter()
        for _ in range(repeats):
            p = hist[-1] + (hist[-1] - hist[-2])
        cv_s = (time.perf_counter() - t) / repeats
        out[n] = {"particles": sc.num_particles, "edges": int(edges.shape[0]), "graph_s": graph_s, "step_s": step_s,
                  "cv_s": cv_s, "sim_s": _sim_step(sc, model.config.dt)}
        del p
    return out


def _sim_step(scene, dt):
    """Seconds per frame of the ground-truth simulator on ``scene``, or None when it is not installed."""
    try:
        from dynamics.sim import NewtonSimulator  # noqa: F401
    except ImportError:
        return None
    from particles import ParticleState

    try:
        sim = NewtonSimulator(scene)
        s0, s1 = ParticleState.at_rest(scene), ParticleState.at_rest(scene)
        sim.step(s0, s1, None, sim.dt)
        t = time.perf_counter()
        sim.step(s1, s0, None, sim.dt)
        return time.perf_counter() - t
    except Exception as exc:  # the simulator's constructor may want more than a scene
        print(f"(ground-truth simulator timing skipped: {type(exc).__name__}: {exc})")
        return None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True, help="GNS-layout dataset folder")
    ap.add_argument("--checkpoint", required=True, help="model checkpoint")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sizes", default="1000,10000,100000", help="particle counts for the timing")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per size (1 above 50k particles)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    wp.config.log_level = wp.LOG_WARNING
    torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint)
    trajs = load_dataset(args.dataset, args.split)
    try:
        from critic import audit as audit_fn
    except ImportError:
        audit_fn = None
    t = time.perf_counter()
    rows, frames = accuracy(model, trajs, audit_fn)
    acc_s = time.perf_counter() - t
    n_par = sum(p.numel() for p in model.parameters())
    print(f"\nmodel: {args.checkpoint} ({n_par} parameters, latent {model.config.latent}, "
          f"{model.config.message_steps} message steps, history {model.config.history}); "
          f"{len(trajs)} {args.split} trajectories of {args.dataset}, {frames} predicted frames ({acc_s:.1f} s)")
    keys = list(rows["model"])
    print("(GNN: rollouts through the rigid, contact and ground projections, as `worldline rollout` and the")
    print(" demo run them; 'GNN raw': the network alone; 'cv + projections': the constant-velocity")
    print(" baseline stepped through the same projections)")
    cols = (("model", "GNN"), ("model, no projections", "GNN raw"), ("constant velocity", "const. velocity"),
            ("cv + projections", "cv + projections"))
    print("\n| " + f"{'metric':32} | " + " | ".join(f"{h:>16}" for _, h in cols) + " |")
    print(f"|{'-' * 34}|" + "|".join("-" * 18 for _ in cols) + "|")
    fmt = lambda v: v if isinstance(v, str) else f"{v:.3e}"  # noqa: E731
    for k in keys:
        print(f"| {k:32} | " + " | ".join(f"{fmt(rows[n].get(k, '')):>16}" for n, _ in cols) + " |")
    if audit_fn is None:
        print(f"| {'audit-clean rollouts':32} | " + " | ".join(f"{'n/a':>16}" for _ in cols) + " |  (critic not installed)")
    sizes = [int(s) for s in args.sizes.split(",") if s]
    res = speed(model, sizes, args.repeats)
    print(f"\nCPU, {torch.get_num_threads()} thread(s); time per rollout step")
    print(f"| {'particles':>9} | {'edges':>9} | {'graph (s)':>9} | {'GNN step (s)':>12} | {'const. vel. (s)':>15} | {'simulator (s)':>13} |")
    print(f"|{'-' * 11}|{'-' * 11}|{'-' * 11}|{'-' * 14}|{'-' * 17}|{'-' * 15}|")
    for n, r in res.items():
        sim = "n/a" if r["sim_s"] is None else f"{r['sim_s']:.3e}"
        print(f"| {r['particles']:>9} | {r['edges']:>9} | {r['graph_s']:>9.3e} | {r['step_s']:>12.3e} | {r['cv_s']:>15.3e} | {sim:>13} |")


if __name__ == "__main__":
    main()
