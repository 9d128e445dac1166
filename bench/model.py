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
    PYTHONPATH=$PWD python3 bench/model.py --speed-only --checkpoint assets/weights/gns_push.pt   # planning speed

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


def accuracy(model, trajs, audit_fn, objects=None):
    """``objects``: an object model (dynamics.objects.ObjectNet) for two more columns, run on the
    trajectories whose free objects are all rigid (others get no entry and are left out of its means)."""
    c = model.config.history
    rows = {"model": {}, "model, no projections": {}, "constant velocity": {}, "cv + projections": {}}
    if objects is not None:
        from dynamics.objects import predict_trajectory_objects, supports

        rows["objects"] = {}
        rows["objects + constraints"] = {}
    windows = [(i, t) for i, r in enumerate(trajs) for t in range(c, r.num_frames - 1)]
    rows["model"]["one-step MSE (m^2)"] = one_step_mse(model, trajs, windows)
    rows["cv + projections"]["one-step MSE (m^2)"] = "-"
    rows["model, no projections"]["one-step MSE (m^2)"] = rows["model"]["one-step MSE (m^2)"]
    if objects is not None:
        ok = [k for k, ro in enumerate(trajs) if not supports(ro.scene)]
        one = [position_mse(predict_trajectory_objects(objects, trajs[i], t, 1), trajs[i].positions[t + 1:t + 2],
                            trajs[i].scene.particle_type != KINEMATIC) for i, t in windows if i in ok]
        rows["objects"]["one-step MSE (m^2)"] = float(np.mean(one)) if one else "-"
        rows["objects + constraints"]["one-step MSE (m^2)"] = "-"
    rows["constant velocity"]["one-step MSE (m^2)"] = float(np.mean(
        [position_mse(constant_velocity(trajs[i], t, 1), trajs[i].positions[t + 1:t + 2],
                      trajs[i].scene.particle_type != KINEMATIC) for i, t in windows]))
    per = {name: {"mse": {h: [] for h in (*HORIZONS, "full")}, "drift": [], "rigid": [], "pen": [], "clean": [],
                  "ids": []} for name in rows}
    per["_ids"] = list(range(len(trajs)))
    frames = 0
    groups = []
    _LAST.update(per=per, groups=groups)  # filled below; read by material_metrics (no second rollout)
    for ro in trajs:
        sc = ro.scene
        groups.append("+".join(sorted({sc.object_material[k] for k in np.unique(sc.object_id[~sc.kinematic])})))
        steps = ro.num_frames - 1 - c
        preds = {"model": predict_trajectory(model, ro, c, steps, rigid=True),
                 "model, no projections": predict_trajectory(model, ro, c, steps, rigid=False, collide=False),
                 "constant velocity": constant_velocity(ro, c, steps),
                 "cv + projections": constant_velocity_constrained(ro, c, steps)}
        if objects is not None and not supports(sc):  # same start frame as the GNN (its history may be longer)
            t_obj = time.perf_counter()
            preds["objects"] = predict_trajectory_objects(objects, ro, c, steps)
            per.setdefault("_obj_s", []).append((time.perf_counter() - t_obj, steps))
            preds["objects + constraints"] = predict_trajectory_objects(objects, ro, c, steps, collide=True)
        frames += steps
        for name, pred in preds.items():
            per[name]["ids"].append(len(groups) - 1)
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
        if not per[name]["mse"]["full"]:
            continue
        for h in (*HORIZONS, "full"):
            rows[name][f"rollout MSE @{h} (m^2)"] = float(np.mean(per[name]["mse"][h]))
        rows[name]["|energy drift| (rel.)"] = float(np.mean(per[name]["drift"]))
        rows[name]["max rigid distortion (m)"] = float(np.max(per[name]["rigid"]))
        rows[name]["max ground penetration (m)"] = float(np.max(per[name]["pen"]))
        full = np.array(per[name]["mse"]["full"])
        base = np.array([b for b, g in zip(per["cv + projections"]["mse"]["full"], per["_ids"]) if g in per[name]["ids"]])
        rows[name]["full MSE below cv + projections"] = "-" if name == "cv + projections" else \
            f"{int((full < base).sum())}/{len(full)}"
        if per[name]["clean"]:
            rows[name]["audit-clean rollouts"] = f"{sum(per[name]['clean'])}/{len(per[name]['clean'])}"
    by_material = {}
    for g in sorted(set(groups)):
        sel = [i for i, x in enumerate(groups) if x == g]
        by_material[g] = {name: {h: float(np.mean([per[name]["mse"][h][per[name]["ids"].index(i)] for i in sel]))
                                 if all(i in per[name]["ids"] for i in sel) else float("nan")
                                 for h in (*HORIZONS, "full")} for name in rows}
        by_material[g]["count"] = len(sel)
    if "_obj_s" in per:
        secs, n = zip(*per["_obj_s"])
        rows["objects"]["s per step (1 scene)"] = float(sum(secs) / sum(n))
    return rows, frames, by_material


#: The per-trajectory records of the last :func:`accuracy` call: ``per`` (column name -> lists
#: of rollout MSEs per horizon, |energy drift| and audit verdicts, one entry per trajectory, or
#: per ``ids`` entry where a column covers only some) and ``groups`` (material group per trajectory).
_LAST: dict = {}

#: The columns whose one-step error :func:`one_step_by_trajectory` measures.
ONE_STEP_COLUMNS = ("model", "model, no projections", "constant velocity", "cv + projections")


@torch.no_grad()
def one_step_by_trajectory(model, trajs) -> dict:
    """{column: [one-step MSE, m^2, per trajectory]} for :data:`ONE_STEP_COLUMNS`: frame t + 1
    predicted from the true frames t - C .. t, for every t in C .. T - 2, free particles, by the
    GNN through its rollout constraints ("model"), the network alone, constant velocity, and
    constant velocity through the same constraints. Every window of a trajectory goes through
    one packed batch (the windows are independent graphs in it)."""
    from dynamics.model import constrain

    c = model.config.history
    dtype = next(model.parameters()).dtype
    out = {k: [] for k in ONE_STEP_COLUMNS}
    for ro in trajs:
        ts = list(range(c, ro.num_frames - 1))
        pos = torch.as_tensor(ro.positions, dtype=dtype)
        batch = pack_scenes([ro.scene] * len(ts), dtype=dtype)
        hist = torch.cat([pos[t - c:t + 1] for t in ts], 1)
        truth = torch.cat([pos[t + 1] for t in ts], 0)
        free = ~batch.kinematic
        raw = model.next_positions(hist, batch, truth, rigid=False, collide=False)
        cv = 2 * hist[-1] - hist[-2]
        preds = {"model": constrain(raw, batch, truth), "model, no projections": raw,
                 "constant velocity": torch.where(batch.kinematic[:, None], truth, cv),
                 "cv + projections": constrain(cv.double(), batch.to(dtype=torch.float64), truth.double())}
        for k, pred in preds.items():
            out[k].append(float(((pred.double() - truth.double())[free] ** 2).mean()))
    return out


def material_metrics(model, trajs) -> dict:
    """Every accuracy figure per material group (and "all"), from the records :func:`accuracy`
    left in :data:`_LAST` (call it first on the same ``trajs``) plus :func:`one_step_by_trajectory`.

    Returns {group: {"count": n, column: {"one-step": m^2 or None, 10 / 50 / "full": m^2,
    "drift": mean |relative energy drift|, "clean": (clean, audited) or None}}}; a column that
    covers only some trajectories of a group is averaged over those it covers.
    """
    per, groups = _LAST["per"], _LAST["groups"]
    one = one_step_by_trajectory(model, trajs)
    names = [k for k in per if not k.startswith("_")]
    out = {}
    for g in ["all", *sorted(set(groups))]:
        sel = [i for i, x in enumerate(groups) if g == "all" or x == g]
        out[g] = {"count": len(sel)}
        for name in names:
            rec = per[name]
            ids = rec.get("ids") or list(range(len(rec["mse"]["full"])))
            rows = [ids.index(i) for i in sel if i in ids]
            if not rows:
                continue
            d = {h: float(np.mean([rec["mse"][h][j] for j in rows])) for h in (*HORIZONS, "full")}
            d["drift"] = float(np.mean([rec["drift"][j] for j in rows]))
            d["clean"] = (sum(bool(rec["clean"][j]) for j in rows), len(rows)) if rec["clean"] else None
            d["one-step"] = float(np.mean([one[name][i] for i in sel])) if name in one else None
            d["n"] = len(rows)
            out[g][name] = d
    return out


def print_material_metrics(table: dict, cols, split: str) -> None:
    """One table per material group of :func:`material_metrics`: one-step and rollout MSE at
    10 / 50 / all frames, |energy drift| and the audit-clean share, one column per method."""
    print(f"\nper material, {split} split: every metric (one-step from the true frames; rollouts from frame C to "
          f"the end; drift: |relative energy drift| at the last frame; means over trajectories)")
    for g, d in table.items():
        names = [(n, h) for n, h in cols if n in d]
        print(f"\n{g} ({d['count']} trajectories)")
        print(f"| {'metric':24} | " + " | ".join(f"{h:>17}" for _, h in names) + " |")
        print(f"|{'-' * 26}|" + "|".join("-" * 19 for _ in names) + "|")
        cell = {"one-step MSE (m^2)": lambda r: "-" if r["one-step"] is None else f"{r['one-step']:.3e}",
                **{f"rollout MSE @{h} (m^2)": (lambda h: lambda r: f"{r[h]:.3e}")(h) for h in (*HORIZONS, "full")},
                "|energy drift| (rel.)": lambda r: f"{r['drift']:.3e}",
                "audit-clean": lambda r: "n/a" if r["clean"] is None else f"{r['clean'][0]}/{r['clean'][1]}"}
        for metric, f in cell.items():
            vals = [f(d[n]) + ("" if d[n]["n"] == d["count"] else f" ({d[n]['n']})") for n, _ in names]
            print(f"| {metric:24} | " + " | ".join(f"{v:>17}" for v in vals) + " |")


def contact_stats(trajs, every: int = 6, cap_frames: int = 90):
    """Iterations of the contact projection (ground included) on constant-velocity-plus-gravity
    predictions from the true frames of each trajectory (every ``every`` frames): mean, max, how
    often the cap is hit, the deepest overlap left after the cap (m), seconds per call."""
    from dynamics.model import CONTACT_MAX_ITERATIONS, _radius_graph, contact_projection

    its, left, secs = [], [], []
    for ro in trajs:
        b = pack_scenes([ro.scene])
        pos = torch.as_tensor(ro.positions)
        g = torch.tensor(ro.scene.gravity.tolist()) * ro.dt ** 2
        for t in range(6, min(cap_frames, ro.num_frames - 1), every):
            pred = torch.where(b.kinematic[:, None], pos[t + 1], 2 * pos[t] - pos[t - 1] + g)
            t0 = time.perf_counter()
            x, n = contact_projection(pred, b, ground=True, return_iterations=True)
            secs.append(time.perf_counter() - t0)
            its.append(n)
            if n == CONTACT_MAX_ITERATIONS:
                e = _radius_graph(x, 2 * ro.scene.radius, b.batch, 0)
                keep = (b.object_id[e[:, 0]] != b.object_id[e[:, 1]]) & ~b.kinematic[e[:, 0]]
                d = 2 * ro.scene.radius - (x[e[:, 0]] - x[e[:, 1]]).norm(dim=1)[keep]
                gd = (b.ground + b.radius - x[:, 2])[~b.kinematic]
                left.append(max(float(d.max()) if d.numel() else 0.0, float(gd.max()), 0.0))
    return {"mean": float(np.mean(its)), "max": int(max(its)), "capped": f"{len(left)}/{len(its)}",
            "left_after_cap_m": max(left) if left else 0.0, "s_per_call": float(np.mean(secs))}


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


def planning_setup(boxes_per_side: int = 4, box: int = 5, r: float = 0.01):
    """The ~2k-particle planning scene: ``boxes_per_side^2`` rigid boxes of ``box^3`` particles on a
    grid on the ground and a pusher (kinematic) behind the first row, as a Newton setup."""
    from dynamics.sim.scenes import ObjectShape, PrimitiveSpec, build_setup, push_action

    half = box * r
    pitch = 2 * half + 3 * r
    objects = [PrimitiveSpec(f"box{i}_{j}", "rigid", ObjectShape("box", (half, half, half), position=np.array(
        [i * pitch, j * pitch, half]))) for i in range(boxes_per_side) for j in range(boxes_per_side)]
    span = (boxes_per_side - 1) * pitch
    tool = ObjectShape("box", (r, span / 2 + half, 2 * r), position=np.array([-half - 2 * r, span / 2, 2 * r + 0.002]))
    path = push_action(tool.position, tool.position + np.array([0.1, 0.0, 0.0]), 64)
    return build_setup(objects, r, tool=tool, tool_path=path)


def planning_speed(model, candidates: int = 64, horizon: int = 20, timed_steps: int = 2, sim_frames: int = 5,
                   heap_ab: bool = False):
    """Seconds for one replan (``candidates`` tool actions x ``horizon`` frames of the planning scene,
    packed into one graph batch) and per single-scene step, GNN and Newton, with a profile of
    one packed step (graph, network, constraints). The replan is timed over ``timed_steps`` packed
    steps and scaled to ``horizon`` (each step costs the same: same particles, same graph size).
    ``heap_ab``: the model was loaded with ``WORLDLINE_KEEP_HEAP=0``; time the GNN first with
    glibc's default malloc, then again after :func:`dynamics.model._keep_heap` (in one run)."""
    from dynamics.model import _keep_heap, constrain, rollout_packed
    from dynamics.sim import SimConfig

    setup = planning_setup()
    sc, act = setup.scene, setup.action
    c = model.config.history
    rng = np.random.default_rng(0)
    n = sc.num_particles
    res = {"particles": n, "candidates": candidates, "horizon": horizon, "particles_packed": candidates * n}
    batch1 = pack_scenes([sc])
    pos = torch.as_tensor(np.repeat(sc.positions[None], c + 1, 0))
    full = torch.as_tensor(np.repeat(sc.positions[None], act.num_frames - 1, 0))
    full[:, act.indices] = torch.as_tensor(act.positions[1:])
    batch = pack_scenes([sc] * candidates)
    hist = pos.repeat(1, candidates, 1)
    futs = []
    for _ in range(candidates):  # random push directions within +-35 degrees
        heading = rng.uniform(-0.6, 0.6)
        d = torch.tensor([np.cos(heading), np.sin(heading), 0.0], dtype=torch.float32) * 0.1 / (act.num_frames - 1)
        f = torch.as_tensor(np.repeat(sc.positions[None], horizon, 0))
        steps = torch.arange(1, horizon + 1, dtype=torch.float32)[:, None, None]
        f[:, act.indices] = torch.as_tensor(sc.positions[act.indices])[None] + steps * d
        futs.append(f)
    futs = torch.cat(futs, 1)

    def gnn(tag):
        with torch.no_grad():
            rollout_packed(model, batch1, pos, 2, full[:2])  # warm-up
            t = time.perf_counter()
            rollout_packed(model, batch1, pos, 10, full[:10])
            res["gnn_step_s" + tag] = (time.perf_counter() - t) / 10
            rollout_packed(model, batch, hist, 1, futs[:1])  # warm-up (and heap growth)
            t = time.perf_counter()
            rollout_packed(model, batch, hist, timed_steps, futs[:timed_steps])
            res["packed_step_s" + tag] = (time.perf_counter() - t) / timed_steps
            res["replan_s" + tag] = res["packed_step_s" + tag] * horizon
            x = hist[-1]
            t = time.perf_counter()
            edges = model.graph(x, batch)
            res["prof_graph_s" + tag] = time.perf_counter() - t
            t = time.perf_counter()
            acc = model(hist, batch, futs[0], edges=edges)
            res["prof_network_s" + tag] = time.perf_counter() - t
            pred = model.integrate(hist, acc)
            t = time.perf_counter()
            constrain(pred, batch, futs[0])
            res["prof_constraints_s" + tag] = time.perf_counter() - t
            res["edges"] = int(edges.shape[0])

    sim = setup.simulator(SimConfig(dt=model.config.dt))
    sim.rollout(act, 2)  # warm-up (kernel load)
    t = time.perf_counter()
    sim.rollout(act, sim_frames)
    res["newton_step_s"] = (time.perf_counter() - t) / sim_frames
    if heap_ab:
        gnn("_default_malloc")
        _keep_heap(force=True)
    gnn("")
    return res


def objects_planning_speed(obj, candidates: int = 64, horizon: int = 20, sim_frames: int = 5, rounds: int = 15):
    """Seconds for one replan of the object model (``ObjectBackend.predict``: ``candidates`` pushes x
    ``horizon`` frames of :func:`planning_setup`'s scene, the full rollout timed, not extrapolated),
    with and without the exact constraints, and per single-scene step, beside Newton's step on the
    same scene and push (one run).

    The single-scene steps are timed in ``rounds`` alternations of the model (10 frames, no
    constraints) and Newton (``sim_frames`` frames) in this process, so that both see the same load;
    ``obj_step_s`` and ``newton_step_s`` are the medians over the rounds (wall clock), ``step_ratios`` the
    per-round Newton / model ratios, ``obj_step_cpu_s`` and ``newton_step_cpu_s`` the medians of the
    process's CPU time (``time.process_time``, all threads: less sensitive to other processes on a
    shared CPU) and ``load`` the 1-minute load average before and after."""
    from dynamics.objects import ObjectBackend
    from dynamics.sim import SimConfig

    setup = planning_setup()
    sc, act = setup.scene, setup.action
    rng = np.random.default_rng(0)
    c = obj.config.history
    hist = np.repeat(sc.positions[None], c + 1, 0)
    tool = act.indices
    futs = np.empty((candidates, horizon, len(tool), 3), np.float32)
    for k in range(candidates):  # random push directions within +-35 degrees, as planning_speed
        heading = rng.uniform(-0.6, 0.6)
        d = np.array([np.cos(heading), np.sin(heading), 0.0], np.float32) * 0.1 / (act.num_frames - 1)
        futs[k] = sc.positions[tool][None] + np.arange(1, horizon + 1, dtype=np.float32)[:, None, None] * d
    import os

    res = {"particles": sc.num_particles, "objects": sc.num_objects, "candidates": candidates, "horizon": horizon,
           "load": [os.getloadavg()[0]]}
    sim = setup.simulator(SimConfig(dt=obj.config.dt))
    sim.rollout(act, 2)  # warm-up (kernel load)
    be = ObjectBackend(obj, sc)
    be.predict(hist, tool, futs[:1, :2])  # warm-up
    model_s, newton_s, model_cpu, newton_cpu = [], [], [], []
    for _ in range(rounds):  # alternated, so that a change of load hits both
        t, c = time.perf_counter(), time.process_time()
        be.predict(hist, tool, act.positions[None, 1:11])
        model_s.append((time.perf_counter() - t) / 10)
        model_cpu.append((time.process_time() - c) / 10)
        t, c = time.perf_counter(), time.process_time()
        sim.rollout(act, sim_frames)
        newton_s.append((time.perf_counter() - t) / sim_frames)
        newton_cpu.append((time.process_time() - c) / sim_frames)
    res["obj_step_s"], res["newton_step_s"] = float(np.median(model_s)), float(np.median(newton_s))
    res["step_ratios"] = [n / m for m, n in zip(model_s, newton_s)]
    # CPU time of this process (all its threads): what a step costs when the CPU is not shared
    res["obj_step_cpu_s"], res["newton_step_cpu_s"] = float(np.median(model_cpu)), float(np.median(newton_cpu))
    for tag, collide in (("", False), ("_constrained", True)):
        be = ObjectBackend(obj, sc, collide=collide)
        be.predict(hist, tool, futs[:1, :2])  # warm-up
        if collide:
            t = time.perf_counter()
            be.predict(hist, tool, act.positions[None, 1:11])
            res["obj_step_s" + tag] = (time.perf_counter() - t) / 10
        be.predict(hist, tool, futs[:, :1])  # warm-up of the packed batch
        t = time.perf_counter()
        be.predict(hist, tool, futs)
        res["replan_s" + tag] = time.perf_counter() - t
    res["load"].append(os.getloadavg()[0])
    return res


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
    ap.add_argument("--dataset", help="GNS-layout dataset folder")
    ap.add_argument("--checkpoint", help="GNN checkpoint (required unless --speed-only with --objects)")
    ap.add_argument("--objects", help="object-model checkpoint (dynamics.objects): adds its columns and, with --speed, "
                                      "its replan and step times")
    ap.add_argument("--skip-gnn-speed", action="store_true",
                    help="with --speed: time only the object model and Newton (the GNN's replan takes minutes)")
    ap.add_argument("--split", default="test")
    ap.add_argument("--sizes", default="1000,10000,100000", help="particle counts for the timing")
    ap.add_argument("--repeats", type=int, default=3, help="timed steps per size (1 above 50k particles)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed", action="store_true",
                    help="also time a planning replan (64 candidates x 20 steps of a ~2k-particle scene, packed) "
                         "and the single-scene step against Newton")
    ap.add_argument("--speed-only", action="store_true", help="only the --speed section (no --dataset needed)")
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=20)
    ap.add_argument("--timed-steps", type=int, default=2, help="packed steps timed for the replan figure")
    ap.add_argument("--no-heap-ab", action="store_true", help="skip the default-malloc vs kept-heap comparison")
    args = ap.parse_args(argv)
    wp.config.log_level = wp.LOG_WARNING
    torch.set_num_threads(args.threads)
    import os

    heap_ab = (args.speed or args.speed_only) and not args.no_heap_ab
    if heap_ab:
        os.environ["WORLDLINE_KEEP_HEAP"] = "0"  # first with glibc's default malloc; see planning_speed
    objects = None
    if args.objects:
        from dynamics.objects import load_object_model

        objects = load_object_model(args.objects)
    if args.checkpoint is None and not (args.speed_only and objects is not None):
        ap.error("--checkpoint is required (unless --speed-only with --objects)")
    if (args.speed or args.speed_only) and objects is not None:
        r = objects_planning_speed(objects, args.candidates, args.horizon)
        print(f"\nplanning speed of the object model, CPU, {torch.get_num_threads()} thread(s), {args.objects}: scene of "
              f"{r['particles']} particles ({r['objects']} objects: 16 rigid boxes and a pusher)")
        print(f"| {'figure':64} | {'seconds':>10} |")
        print(f"|{'-' * 66}|{'-' * 12}|")
        for name, v in (("Newton single-scene step (same scene and push)", r["newton_step_s"]),
                        ("objects single-scene step (no constraints)", r["obj_step_s"]),
                        ("objects single-scene step (+ exact constraints)", r["obj_step_s_constrained"]),
                        (f"objects replan: {r['candidates']} candidates x {r['horizon']} steps (ObjectBackend.predict)",
                         r["replan_s"]),
                        ("objects replan + exact constraints every step", r["replan_s_constrained"])):
            print(f"| {name:64} | {v:>10.3e} |")
        print(f"objects step / Newton step = {r['obj_step_s'] / r['newton_step_s']:.3f} (target <= 0.2; medians of "
              f"{len(r['step_ratios'])} alternated rounds, Newton / objects per round "
              f"{min(r['step_ratios']):.1f}-{max(r['step_ratios']):.1f}x); replan {r['replan_s']:.2f} s (target <= 1 s); "
              f"load average {r['load'][0]:.2f} -> {r['load'][1]:.2f}")
        print(f"CPU time of this process per single-scene step (medians): objects {r['obj_step_cpu_s'] * 1e3:.2f} ms, "
              f"Newton {r['newton_step_cpu_s'] * 1e3:.2f} ms: Newton / objects = "
              f"{r['newton_step_cpu_s'] / r['obj_step_cpu_s']:.1f}x")
    if args.checkpoint is None:
        return
    model = load_model(args.checkpoint)
    if (args.speed or args.speed_only) and not args.skip_gnn_speed:
        r = planning_speed(model, args.candidates, args.horizon, args.timed_steps, heap_ab=heap_ab)
        print(f"\nplanning speed, CPU, {torch.get_num_threads()} thread(s), {args.checkpoint}: scene of {r['particles']} "
              f"particles (16 rigid boxes and a pusher)")
        print(f"| {'figure':64} | {'seconds':>10} |")
        print(f"|{'-' * 66}|{'-' * 12}|")
        rows = [("Newton single-scene step (same scene and push)", r["newton_step_s"]),
                ("GNN single-scene step (graph + network + constraints)", r["gnn_step_s"]),
                (f"GNN packed step, {r['candidates']} candidates ({r['particles_packed']} particles)", r["packed_step_s"]),
                (f"replan: {r['candidates']} candidates x {r['horizon']} steps (packed step x {r['horizon']})", r["replan_s"]),
                (f"  profile of one packed step: radius graph ({r['edges']} edges)", r["prof_graph_s"]),
                ("  profile: network (encode, message passing, decode)", r["prof_network_s"]),
                ("  profile: constraints (rigid, contact, ground)", r["prof_constraints_s"])]
        if heap_ab:
            rows += [(name + " [default malloc]", r[key + "_default_malloc"]) for name, key in (
                ("GNN single-scene step", "gnn_step_s"), ("GNN packed step", "packed_step_s"), ("replan", "replan_s"),
                ("  profile: network", "prof_network_s"))]
        for name, v in rows:
            print(f"| {name:64} | {v:>10.3e} |")
        print(f"GNN step / Newton step = {r['gnn_step_s'] / r['newton_step_s']:.2f} (target <= 0.2); "
              f"replan {r['replan_s']:.1f} s (target <= 1 s)")
        if args.speed_only:
            return
    if not args.dataset:
        ap.error("--dataset is required (unless --speed-only)")
    trajs = load_dataset(args.dataset, args.split)
    try:
        from critic import audit as audit_fn
    except ImportError:
        audit_fn = None
    t = time.perf_counter()
    rows, frames, by_material = accuracy(model, trajs, audit_fn, objects)
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
    if objects is not None:
        cols += (("objects", "objects"), ("objects + constraints", "objects + constr."))
        print("('objects': the object-level model (dynamics.objects) alone, rigid-only scenes; 'objects + constr.':")
        print(" the same with the exact contact and ground constraints after each step)")
    print("\n| " + f"{'metric':32} | " + " | ".join(f"{h:>16}" for _, h in cols) + " |")
    print(f"|{'-' * 34}|" + "|".join("-" * 18 for _ in cols) + "|")
    fmt = lambda v: v if isinstance(v, str) else f"{v:.3e}"  # noqa: E731
    keys += [k for n, _ in cols for k in rows[n] if k not in keys]
    for k in keys:
        print(f"| {k:32} | " + " | ".join(f"{fmt(rows[n].get(k, '')):>16}" for n, _ in cols) + " |")
    if audit_fn is None:
        print(f"| {'audit-clean rollouts':32} | " + " | ".join(f"{'n/a':>16}" for _ in cols) + " |  (critic not installed)")
    print("\nper material (objects with free particles), rollout MSE (m^2); last columns: how many times lower")
    print("than constraints only (cv + projections) the GNN is, and the raw network than constant velocity")
    ratios = [("cv+proj / GNN", "cv + projections", "model"), ("cv / GNN raw", "constant velocity", "model, no projections")]
    if objects is not None:
        ratios += [("cv+proj / obj", "cv + projections", "objects"), ("cv / obj", "constant velocity", "objects"),
                   ("cv+proj / obj+c", "cv + projections", "objects + constraints")]
    print(f"| {'material':10} | {'n':>3} | {'horizon':>7} | " + " | ".join(f"{h:>16}" for _, h in cols)
          + "".join(f" | {t:>15}" for t, _, _ in ratios) + " |")
    print(f"|{'-' * 12}|{'-' * 5}|{'-' * 9}|" + "|".join("-" * 18 for _ in cols) + "".join(f"|{'-' * 17}" for _ in ratios) + "|")
    for g, d in by_material.items():
        for h in (*HORIZONS, "full"):
            rs = [d[a][h] / max(d[b][h], 1e-30) for _, a, b in ratios]
            print(f"| {g:10} | {d['count']:>3} | {str(h):>7} | " + " | ".join(f"{d[n][h]:>16.3e}" for n, _ in cols)
                  + "".join(f" | {v:>15.2f}" for v in rs) + " |")
    cs = contact_stats(trajs)
    print(f"\ncontact projection on these trajectories (cv + gravity from true frames, every 6th): iterations "
          f"mean {cs['mean']:.1f}, max {cs['max']}, at the cap {cs['capped']} calls, deepest overlap left after the "
          f"cap {cs['left_after_cap_m']:.2e} m; {cs['s_per_call']:.3f} s per call")
    print_material_metrics(material_metrics(model, trajs), cols, args.split)
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
