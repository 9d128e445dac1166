"""Benchmark of `worldline plan`: MPC on the learned model against constraints only, the Newton
oracle and a straight-line push, every episode executed on Newton, in one run.

Tasks (held out: generated here from a seed, never seen in training): push-to-pose of one block
among one to three boxes (sizes 3-5 particles a side at spacing 0.02 m, random start yaw, the tool
starting 0.12-0.2 m away in a random direction, goals 6-14 cm away, a third with a goal yaw
20-40 degrees off the start) and sand-into-region (a granular block pushed so that half its
particles end up in a box beside it).

Methods: MPC (MPPI) on the shipped object-level model (`objects`, the network's steps alone, as
`worldline plan --backend objects`; `objects-rules` with the exact rules evaluation judges in,
`dynamics.objects.RULES`; the GNN on sand tasks), on the
shipped GNN (`learned`), on a zero network through the same
constraints (`constraints`), on Newton itself (`newton`, the oracle: a subset of the tasks,
``--oracle-tasks``, because it rolls every candidate out on the simulator one by one), and the
straight-line push heuristic (`heuristic`, no planning). Figures per method: success rate,
median final position error, median yaw error on yaw tasks, seconds per replan, critic
rejections. A second table times one replan of 64 samples x 20 frames (one iteration) on each
backend on the example task.

    PYTHONPATH=$PWD python3 bench/plan.py --checkpoint assets/weights/gns_push.pt

or split over two processes (the learned model in one, the rest in the other) and merged:

    A="--tasks 20 --sand 2 --samples 16 --horizon 10 --iterations 1 --replan-every 10 --max-steps 200 --oracle-tasks 4"
    python3 bench/plan.py $A --methods learned --no-speed --json rows_learned.json &
    python3 bench/plan.py $A --methods heuristic,constraints,newton --json rows_rest.json
    python3 bench/plan.py --summarize rows_learned.json rows_rest.json

Prints tables; never collected as a test.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]


from dynamics.suite import write_suite  # noqa: E402  (the generator is shared with evaluate)


def run(args) -> None:
    from dynamics.plan import MPCController, PlannerConfig, StraightPushController
    from dynamics.sim import SimConfig
    from dynamics.tasks import ConstraintsBackend, LearnedBackend, NewtonBackend, Task, run_episode
    from dynamics.train import load_model

    torch.set_num_threads(1)
    # the suite's generator (`--tasks 20 --sand 2 --seed 7` writes exactly assets/tasks/suite)
    folder = Path(tempfile.mkdtemp(prefix="plan_bench_"))
    paths = write_suite(folder, args.tasks, args.sand, args.seed)
    model = load_model(args.checkpoint)
    cfg = PlannerConfig(samples=args.samples, horizon=args.horizon, iterations=args.iterations, seed=args.seed)
    methods = [m for m in args.methods.split(",") if m]
    rows = []
    print(f"{len(paths)} tasks in {folder}; planner MPPI K={cfg.samples} H={cfg.horizon} I={cfg.iterations}, "
          f"replan every {args.replan_every}, at most {args.max_steps} frames", flush=True)
    for ti, path in enumerate(paths):
        task = Task.load(path)
        for method in methods:
            if method == "newton" and ti not in _oracle_subset(len(paths), args.tasks, args.oracle_tasks):
                continue
            if method == "heuristic":
                ctl = StraightPushController()
            else:
                be = {"learned": lambda: LearnedBackend(model, task.scene),
                      "objects": lambda: _objects_or_gnn(model, task),
                      "objects-rules": lambda: _objects_or_gnn(model, task, rules=True),
                      "constraints": lambda: ConstraintsBackend(task.scene),
                      "newton": lambda: NewtonBackend(task.setup, SimConfig(dt=task.dt))}[method]()
                ctl = MPCController(be, config=cfg, replan_every=args.replan_every)
            t0 = time.perf_counter()
            res = run_episode(task, ctl, max_steps=args.max_steps)
            row = {"task": path.stem, "kind": task.goal.kind, "yaw": task.goal.yaw_deg is not None,
                   "objects": task.scene.num_objects - 1, "particles": task.scene.num_particles, "method": method,
                   "success": res.success, "steps": res.steps, "wall_s": time.perf_counter() - t0,
                   **{k: res.measures[k] for k in ("position_error_m", "yaw_error_deg", "fraction_in_region")},
                   "replans": res.info.get("replans", 0), "seconds_per_replan": res.info.get("seconds_per_replan", 0.0),
                   "rejected": res.info.get("rejected_candidates", 0), "candidates": res.info.get("candidates", 0)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    summary(rows, methods, args)
    if not args.no_speed:
        speed(model, args)


def _oracle_subset(n_all: int, n_push: int, k: int) -> set:
    """Task indices the oracle runs: evenly spread push tasks, plus the first sand task."""
    push = set(np.linspace(0, n_push - 1, min(k, n_push)).round().astype(int).tolist())
    return push | ({n_push} if n_all > n_push else set())


def summary(rows, methods, args) -> None:
    print("\n| method | tasks | success (push) | success (sand) | median final error (push) | median yaw error (yaw tasks) "
          "| s / replan | rejected / candidates |")
    print("|---|---|---|---|---|---|---|---|")
    for m in methods:
        r = [x for x in rows if x["method"] == m]
        if not r:
            continue
        push = [x for x in r if x["kind"] == "pose"]
        sand = [x for x in r if x["kind"] == "region"]
        yaw = [x["yaw_error_deg"] for x in push if x["yaw"]]
        sp = [x["seconds_per_replan"] for x in r if x["replans"]]
        print(f"| {m} | {len(r)} | {sum(x['success'] for x in push)}/{len(push)} | "
              f"{sum(x['success'] for x in sand)}/{len(sand)} | "
              f"{1000 * np.median([x['position_error_m'] for x in push]) if push else float('nan'):.1f} mm | "
              f"{np.median(yaw) if yaw else float('nan'):.1f} deg | "
              f"{np.mean(sp) if sp else 0.0:.2f} | {sum(x['rejected'] for x in r)}/{sum(x['candidates'] for x in r)} |")
    # the tasks every method except the oracle finished (a run cut short leaves them uneven)
    sets = [{x["task"] for x in rows if x["method"] == m} for m in methods if m != "newton"]
    common = set.intersection(*sets) if sets else set()
    if sets and any(len(s) != len(common) for s in sets):
        print(f"\nOn the {len(common)} tasks every method except the oracle finished:")
        for m in methods:
            r = [x for x in rows if x["method"] == m and x["task"] in common]
            if r:
                print(f"  {m}: success {sum(x['success'] for x in r)}/{len(r)}, median final error "
                      f"{1000 * np.median([x['position_error_m'] for x in r]):.1f} mm")
    # the oracle subset, every method on the same tasks
    oracle = {x["task"] for x in rows if x["method"] == "newton"}
    if oracle:
        print(f"\nOn the oracle's {len(oracle)} tasks only:")
        for m in methods:
            r = [x for x in rows if x["method"] == m and x["task"] in oracle]
            print(f"  {m}: success {sum(x['success'] for x in r)}/{len(r)}")


def speed(model, args) -> None:
    """One replan of 64 samples x 20 frames (one iteration) per backend on the example task."""
    from dynamics.plan import MPCController, PlannerConfig
    from dynamics.sim import SimConfig
    from dynamics.tasks import ConstraintsBackend, LearnedBackend, NewtonBackend, Task, observe

    task = Task.load(ROOT / "assets" / "tasks" / "push_to_pose.toml")
    print(f"\nOne replan, 64 samples x 20 frames, 1 iteration, {task.scene.num_particles} particles per copy "
          f"({64 * task.scene.num_particles} packed):")
    print("| backend | s / replan | of which critic (s) | vs learned |")
    print("|---|---|---|---|")
    out = {}
    for name, make in (("learned", lambda: LearnedBackend(model, task.scene)),
                       ("objects", lambda: _objects_or_gnn(model, task)),
                       ("constraints", lambda: ConstraintsBackend(task.scene)),
                       ("newton", lambda: NewtonBackend(task.setup, SimConfig(dt=task.dt)))):
        ctl = MPCController(make(), config=PlannerConfig(samples=64, horizon=20, iterations=1, seed=0))
        obs = observe(task, [task.scene.positions.copy()], np.zeros(4))
        ctl._approached = True
        times = []
        for _ in range(args.speed_repeats if name != "newton" else 1):
            ctl._planner = None
            ctl._cost = None
            t0 = time.perf_counter()
            ctl.act(task, obs)
            times.append(time.perf_counter() - t0)
        out[name] = (min(times), ctl.stats["critic_seconds"] / len(times))
    for name, (t, c) in out.items():
        print(f"| {name} | {t:.2f} | {c:.2f} | {t / out['learned'][0]:.2f}x |")


def standoff(model) -> None:
    """How far the GNN moves the example block when the pusher stops short of it (Newton: not at all)."""
    from dynamics.model import LearnedSimulator
    from dynamics.tasks import Task
    from particles import Action

    task = Task.load(ROOT / "assets" / "tasks" / "push_to_pose.toml")
    sim = LearnedSimulator(model, task.scene, task.tool.indices)
    idx, r = task.object_particles, task.scene.radius
    face = float(task.scene.positions[idx, 0].min()) - r  # the block's -x face
    print("\n| pusher stops with a gap of | GNN moves the block by |\n|---|---|")
    for gap in (0.015, 0.005, -0.005):
        stop = face - gap - r  # the tool's centre: its face (one particle thick) at face - gap
        xs = np.concatenate([np.linspace(task.tool.centre[0], stop, 20), np.full(20, stop)])
        pos = task.tool.particles(np.array([[x, 0.0, task.tool.centre[2], task.tool.yaw0, 0.0] for x in xs]))
        act = Action(task.tool.indices, np.concatenate([task.scene.positions[task.tool.indices][None], pos]))
        ro = sim.rollout(act, 40)
        print(f"| {gap * 1000:.0f} mm | {(ro.positions[-1, idx, 0].mean() - ro.positions[0, idx, 0].mean()) * 1000:.1f} mm |")


_OBJECT_MODEL = []


def _objects_or_gnn(model, task, rules: bool = False):
    """The shipped object-level model (assets/weights/objects_push.pt) where every free body is
    rigid, as ``worldline plan --backend objects`` plans on it (the network's steps alone) or with
    ``rules`` as ``--backend objects-rules`` (the exact rules evaluation judges in,
    ``dynamics.objects.RULES``); the GNN on other tasks (sand), as ``worldline evaluate --backend auto``."""
    from dynamics.objects import load_object_model, object_backend, supports
    from dynamics.tasks import LearnedBackend

    if supports(task.scene):
        return LearnedBackend(model, task.scene)
    if not _OBJECT_MODEL:
        from worldline.cmd_plan import object_checkpoint

        _OBJECT_MODEL.append(load_object_model(object_checkpoint(None)))
    return object_backend(_OBJECT_MODEL[0], task.scene, rules=rules)


def main():
    import warp as wp

    wp.config.quiet = True
    wp.config.log_level = wp.LOG_WARNING
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "assets" / "weights" / "gns_push.pt"))
    ap.add_argument("--tasks", type=int, default=21, help="push-to-pose tasks")
    ap.add_argument("--sand", type=int, default=3, help="sand-into-region tasks")
    ap.add_argument("--methods", default="heuristic,constraints,objects,learned,newton")
    ap.add_argument("--oracle-tasks", type=int, default=6, help="push tasks the Newton oracle runs (plus one sand task)")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--horizon", type=int, default=10)
    ap.add_argument("--iterations", type=int, default=2)
    ap.add_argument("--replan-every", type=int, default=8)
    ap.add_argument("--max-steps", type=int, default=300)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--speed-repeats", type=int, default=2)
    ap.add_argument("--no-speed", action="store_true")
    ap.add_argument("--json", default=None, help="write every episode's row here")
    ap.add_argument("--standoff", action="store_true", help="only: the GNN's push from a tool stopping short")
    ap.add_argument("--summarize", nargs="+", default=None,
                    help="only print the table of the rows in these --json files (runs split over processes)")
    args = ap.parse_args()
    if args.standoff:
        from dynamics.train import load_model

        torch.set_num_threads(1)
        standoff(load_model(args.checkpoint))
        return
    if args.summarize:
        rows = []
        for f in args.summarize:  # a --json file, or the printed output (one JSON row per line)
            text = Path(f).read_text()
            rows += json.loads(text) if text.lstrip().startswith("[") else \
                [json.loads(line) for line in text.splitlines() if line.startswith("{")]
        order = ["objects", "objects-rules", "learned", "constraints", "newton", "heuristic"]
        summary(rows, [m for m in order if any(r["method"] == m for r in rows)], args)
        return
    run(args)


if __name__ == "__main__":
    main()
