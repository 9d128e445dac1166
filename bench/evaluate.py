"""Benchmark of `worldline evaluate`: do policies rank in the world model as they rank in Newton?

Every policy runs closed loop on every task in each world model (all episodes of a backend
stepped together, one packed model step per frame; `dynamics.policy.evaluate_policies`), every
model rollout audited by the critic, and the same episodes on Newton (once, shared by the
backends). Printed per backend: success rates (95 % Wilson), mean final errors and glitched
episodes per policy; the Pearson and Spearman correlation of per-policy success rates and of
per-episode final errors between model and Newton, same top-1 and same full ranking (best
first: success rate, then mean final error), all of it again without the glitched episodes;
and the wall time of the model episodes against Newton's, in this one process.

    PYTHONPATH=$PWD python bench/evaluate.py --json bench/data/evaluate/run.json

Backends (`--backends`, those of `worldline evaluate --backend`): `gnn` (the shipped GNN,
`--checkpoint`), `objects` (the shipped object-level model, rigid tasks only), `auto` (objects
where every free body is rigid, else the GNN) and `constraints` (a zero network through the
GNN's constraints). `objects=CKPT` is the object model of that checkpoint: several of them in one
run compare checkpoints on the same Newton episodes, e.g. `--backends
objects=assets/weights/objects_push.pt,objects=runs/obj3/model.pt --limit 8`. Prints tables; never
collected as a test.

**Newton cache.** Newton's half is most of the run (about 25 min for 6 policies x 20 tasks on
the shared 2-core CPU), so its episode records are cached, one JSON file per episode under
`--truth-cache` (default `$XDG_CACHE_HOME/worldline/evaluate_truth`, else
`~/.cache/worldline/evaluate_truth`), keyed by the task file's bytes, the policy, the episode
seed, `--max-steps` and a code version (a hash of the sources that decide a Newton episode:
`dynamics/sim`, `dynamics/tasks.py`, `dynamics/policies.py`, `particles/`, the policy wrapper of
`dynamics/policy.py` (`PolicyController`, `policy_obs`, `parse_target`, `_side_record`) and the
newton and warp versions). The speed ratio is never taken from the cache: a fixed subset
of the episodes (`--newton-timed`, default one per task, its policy cycling through the list) is
run on Newton in this run (after an untimed 3-frame warm-up episode: Warp's kernel loading),
timed, and checked against the cache; Newton's time for all the
episodes is then that subset's seconds per Newton frame times all episodes' Newton frames (the
printout says when it is scaled). Episodes missing from the cache are run and timed too; a run
with an empty cache or `--no-truth-cache` times every Newton episode and reports the plain ratio.
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
#: Sources whose code decides a Newton episode's record (hashed into the cache key).
TRUTH_SOURCES = ("dynamics/sim", "dynamics/tasks.py", "dynamics/policies.py", "particles")
#: Of dynamics/policy.py only what a Newton episode runs (its packed model stepping does not count).
TRUTH_POLICY_PARTS = ("PolicyController", "policy_obs", "parse_target", "_side_record")
#: The shipped evaluated set (dynamics.policies.SHIPPED), without the slow planner.
CHEAP = ("straight_push", "offset_push", "wide_offset_push", "slow_push", "random_policy", "half_push")


def make_backend_factory(name: str, checkpoint: str):
    """``task -> backend`` for ``--backends`` names: those of ``worldline evaluate --backend``
    (gnn, objects, auto, constraints)."""
    from worldline.cmd_evaluate import BACKENDS

    name, _, own = name.partition("=")  # objects=CKPT: that object-model checkpoint (several in one run share Newton's half)
    if own:
        return BACKENDS[name](Path(own))
    if name not in BACKENDS:
        raise SystemExit(f"--backends: unknown {name!r}; expected one of {', '.join(BACKENDS)}")
    return BACKENDS[name](Path(checkpoint) if name in ("gnn", "learned", "auto") else None)


def truth_code_version() -> str:
    """Hex digest of the sources in :data:`TRUTH_SOURCES` and the newton / warp versions."""
    import hashlib
    from importlib.metadata import version

    h = hashlib.sha256()
    for rel in TRUTH_SOURCES:
        p = ROOT / rel
        for f in sorted(p.rglob("*.py")) if p.is_dir() else [p]:
            h.update(str(f.relative_to(ROOT)).encode())
            h.update(f.read_bytes())
    import inspect

    import dynamics.policy as dp

    for name in TRUTH_POLICY_PARTS:
        h.update(inspect.getsource(getattr(dp, name)).encode())
    for pkg in ("newton", "warp-lang"):
        try:
            h.update(f"{pkg}={version(pkg)}".encode())
        except Exception:  # noqa: BLE001  (not installed under that name)
            h.update(f"{pkg}=?".encode())
    return h.hexdigest()[:16]


def truth_key(task_path: str, policy: str, seed: int, max_steps: int, code: str) -> str:
    """Cache key of one Newton episode: task file bytes, policy name, episode seed, max steps, code version."""
    import hashlib

    task_hash = hashlib.sha256(Path(task_path).read_bytes()).hexdigest()[:16]
    return hashlib.sha256(f"{task_hash}|{policy}|{seed}|{max_steps}|{code}".encode()).hexdigest()[:24]


def default_truth_cache() -> Path:
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "worldline" / "evaluate_truth"


def timed_subset(n_tasks: int, names: list, episodes: int, count: int) -> list[tuple]:
    """The fixed ``(policy, task_index, episode)`` subset Newton is timed on: task t with policy
    ``names[t % len(names)]``, episode 0, for the first ``count`` tasks (every task by default)."""
    return [(names[t % len(names)], t, 0) for t in range(min(count, n_tasks))]


def run_truth(tasks, paths, specs, names, args) -> tuple[dict, dict]:
    """Newton records ``{(policy, task_index, episode): record}`` (``_side_record`` dicts) and timing.

    Cached records are read from ``--truth-cache``; the timed subset and every missing episode run
    here, timed (``newton_s`` and ``newton_frames`` of the episodes run)."""
    from dynamics.policy import PolicyController, _side_record
    from dynamics.tasks import run_episode
    from particles.io import atomic_write

    cache = None if args.no_truth_cache else Path(args.truth_cache or default_truth_cache())
    code = truth_code_version()
    subset = set(timed_subset(len(tasks), names, args.episodes_per_task,
                              len(tasks) if args.newton_timed < 0 else args.newton_timed))
    recs, fresh = {}, {}
    secs, frames, mismatches, cached = 0.0, 0, [], 0
    todo = []
    for s in specs:
        k = (s.policy, s.task_index, s.episode)
        key = truth_key(paths[s.task_index], s.policy, s.seed, args.max_steps, code)
        hit = None
        if cache is not None and (cache / f"{key}.json").is_file():
            hit = json.loads((cache / f"{key}.json").read_text())
        if hit is not None:
            recs[k] = hit
            cached += 1
        if hit is None or k in subset:
            todo.append((s, k, key))
    if todo:  # Warp's kernel loading and Newton's first model build, untimed (the model side is warm too)
        s0 = todo[0][0]
        run_episode(tasks[s0.task_index], PolicyController(s0.fn, s0.seed), max_steps=3)
    for n, (s, k, key) in enumerate(todo):
        t0 = time.perf_counter()
        res = run_episode(tasks[s.task_index], PolicyController(s.fn, s.seed), max_steps=args.max_steps)
        secs += time.perf_counter() - t0
        frames += int(res.steps)
        rec = json.loads(json.dumps(_side_record(res), default=float))
        if k in recs and recs[k] != rec:
            mismatches.append(k)
        recs[k] = fresh[k] = rec
        if cache is not None:
            cache.mkdir(parents=True, exist_ok=True)
            text = json.dumps(rec)
            atomic_write(cache / f"{key}.json", lambda f: f.write(text), mode="w")
        if (n + 1) % 10 == 0 or n + 1 == len(todo):
            print(f"  Newton: {n + 1}/{len(todo)} episodes run ({cached} of {len(specs)} cached)", flush=True)
    total_frames = sum(int(recs[(s.policy, s.task_index, s.episode)]["steps"]) for s in specs)
    all_fresh = len(fresh) == len(specs)
    per_frame = secs / max(frames, 1)
    timing = {"newton_s": secs, "newton_episodes": len(fresh), "newton_frames": frames,
              "newton_s_per_frame": per_frame, "all_frames": total_frames, "cached": cached,
              "all_timed": all_fresh, "cache_mismatches": [list(m) for m in mismatches], "code_version": code,
              "truth_s": secs if all_fresh else per_frame * total_frames}
    if mismatches:
        print(f"  WARNING: {len(mismatches)} cached Newton records differ from this run's: {mismatches[:3]}", flush=True)
    return recs, timing


def drift(args) -> None:
    """Each task's world-model rollout with the tool held still where it starts (Newton: nothing
    moves): the goal object's centre displacement (xy) after 20, 50 and 100 frames, and its yaw
    change after 100. ``--backends gnn`` (default: the first backend named) runs the GNN,
    ``objects`` the object model with its exact constraints."""
    from dynamics.tasks import Task, object_yaw

    be_name = [b for b in args.backends.split(",") if b][0]
    paths = sorted(glob.glob(args.tasks))[: args.limit or None]
    if be_name in ("gnn", "learned"):
        from dynamics.model import LearnedSimulator
        from dynamics.train import load_model

        model = load_model(args.checkpoint)
        roll = lambda task: LearnedSimulator(model, task.scene, task.tool.indices).rollout(None, 100).positions  # noqa: E731
    else:
        factory = make_backend_factory(be_name, args.checkpoint)

        def roll(task):
            be = factory(task)
            sc, ti = task.scene, task.tool.indices
            hist = np.repeat(sc.positions[None], be.history + 1, 0)
            return be.predict(hist, ti, np.repeat(sc.positions[ti][None, None], 100, 1))[0]
    print(f"world model {be_name}, tool held still")
    print("| task | after 20 frames | 50 | 100 (mm, xy) | yaw change after 100 (deg) |\n|---|---|---|---|---|")
    for p in paths:
        task = Task.load(p)
        x = roll(task)
        c = x[:, task.object_particles].mean(1)
        cells = [f"{np.linalg.norm(c[f, :2] - c[0, :2]) * 1000:.1f}" for f in (20, 50, 100)]
        dyaw = np.degrees(float(object_yaw(task, torch.as_tensor(x[100]))) - float(object_yaw(task, torch.as_tensor(x[0]))))
        print(f"| {Path(p).stem} | " + " | ".join(cells) + f" | {dyaw:.2f} |", flush=True)


def _shape_gap(task, frames) -> float:
    """m: the smallest separation over ``frames (T, N, 3)`` between the tool's box and the goal object's box
    (the lattices' boxes, :func:`dynamics.objects.lattice_box`, the shapes Newton collides; the
    separating-axis test, :func:`dynamics.objects.box_separation`); NaN when either is not a box."""
    from dynamics.objects import box_separation, lattice_box
    from particles.keypoints import kabsch

    r = float(task.scene.radius)
    out = np.inf
    parts = []
    for idx in (task.tool.indices, task.object_particles):
        rest = task.scene.positions[idx].astype(np.float64)
        box = lattice_box(rest, r)
        if box is None:
            return float("nan")
        parts.append((idx, rest, box))
    for f in frames:
        poses = []
        for idx, rest, (axes, centre, half) in parts:
            rot, t = kabsch(rest, f[idx].astype(np.float64))
            poses.append((rot @ centre + t, rot @ axes, half))
        (ca, ra, ha), (cb, rb, hb) = poses
        tt = lambda a: torch.as_tensor(np.asarray(a, np.float64))[None]  # noqa: E731
        out = min(out, float(box_separation(tt(ca), tt(ra), tt(ha), tt(cb), tt(rb), tt(hb))[0][0]))
    return out


def sweep(args) -> None:
    """The tool swept past each task's goal box: placed beside the box on the line from the tool's
    start to the box, at a closest particle gap ``g`` (touching lattices are 2 r apart), and moved
    tangentially at 4 mm/frame for 30 frames (or held still); printed per backend of ``--backends``
    (``newton``: Newton itself, from the same state): the closest particle gap and the smallest
    separation of the two boxes' shapes over the rollout (what Newton collides: 0 is touching), and
    the box's centre displacement (xy)."""
    from scipy.spatial import cKDTree

    from dynamics.sim import SimConfig
    from dynamics.tasks import NewtonBackend, Task

    names = [b for b in args.backends.split(",") if b]
    factories = {n: (None if n == "newton" else make_backend_factory(n, args.checkpoint)) for n in names}
    paths = sorted(glob.glob(args.tasks))[: args.limit or None]
    cols = " | ".join(f"{n}: particle gap, shape gap, box moves (mm)" for n in names)
    print(f"| task | gap aimed at (mm) | tool | {cols} |\n|---|---|---|" + "---|" * len(names))
    for p in paths:
        task = Task.load(p)
        sc, ti, op = task.scene, task.tool.indices, task.object_particles
        bes = {n: (NewtonBackend(task.setup, SimConfig(dt=task.dt)) if f is None else f(task)) for n, f in factories.items()}
        d = sc.positions[op].mean(0) - sc.positions[ti].mean(0)
        d[2] = 0.0
        d /= np.linalg.norm(d)
        tang = np.array([-d[1], d[0], 0.0])
        tree = cKDTree(sc.positions[op])
        for gap in (0.040, 0.030, 0.026, 0.022):
            for speed in (0.0, 0.004):
                start = sc.positions[ti] - tang * speed * 15
                lo, hi = 0.0, 0.3
                for _ in range(40):  # slide toward the box until the path's closest gap is `gap`
                    mid = (lo + hi) / 2
                    g = min(tree.query(start + d * mid + tang * speed * k)[0].min() for k in (0, 15, 30))
                    lo, hi = (mid, hi) if g > gap else (lo, mid)
                tool = (start + d * lo).astype(np.float32)
                fut = (tool[None] + np.arange(1, 31)[:, None, None] * speed * tang).astype(np.float32)[None]
                cells = []
                for n, be in bes.items():
                    hist = np.repeat(sc.positions[None], max(be.history, 1) + 1, 0)
                    hist[:, ti] = tool
                    x = be.predict(hist, ti, fut)[0]
                    seen = min(cKDTree(x[k, op]).query(x[k, ti])[0].min() for k in range(31))
                    moved = np.linalg.norm(x[-1, op].mean(0)[:2] - x[0, op].mean(0)[:2])
                    cells.append(f"{seen * 1000:.1f}, {_shape_gap(task, x) * 1000:.1f}, {moved * 1000:.1f}")
                print(f"| {Path(p).stem} | {gap * 1000:.0f} | {'swept 4 mm/frame' if speed else 'still'} | "
                      + " | ".join(cells) + " |", flush=True)


def part(args) -> None:
    """Where the world model and Newton part on one policy's episodes (``--part POLICY``, the tasks of
    ``--tasks`` / ``--limit``): every 10 frames the goal object's centre (mm) and yaw (deg), the
    tool's centre and the closest tool-to-object particle gap (mm), in the model (the first of
    ``--backends``, packed as ``worldline evaluate`` steps it) and in Newton; and the first frame at
    which the two centres are more than 5 mm apart."""
    from scipy.spatial import cKDTree

    from dynamics.policy import EpisodeSpec, PackedStepper, PolicyController, episode_seed, load_policy, run_model_episodes
    from dynamics.tasks import Task, object_yaw, run_episode

    paths = sorted(glob.glob(args.tasks))[: args.limit or None]
    tasks = [Task.load(p) for p in paths]
    name, fn = load_policy(f"dynamics.policies:{args.part}")
    specs = [EpisodeSpec(name, fn, ti, 0, episode_seed(args.seed, ti, 0)) for ti in range(len(tasks))]
    factory = make_backend_factory([b for b in args.backends.split(",") if b][0], args.checkpoint)
    model = run_model_episodes(tasks, specs, PackedStepper(factory), args.max_steps)
    for p, task, s, mr in zip(paths, tasks, specs, model):
        tr = run_episode(task, PolicyController(fn, s.seed), max_steps=args.max_steps)
        op, ti = task.object_particles, task.tool.indices
        sides = []
        for r in (mr, tr):
            x = r.executed.positions
            yaw = [np.degrees(float(object_yaw(task, torch.as_tensor(f)))) for f in x]
            gap = [cKDTree(f[op]).query(f[ti])[0].min() for f in x]
            sides.append((x[:, op].mean(1), x[:, ti].mean(1), yaw, gap))
        n = min(len(sides[0][0]), len(sides[1][0]))
        apart = np.linalg.norm(sides[0][0][:n, :2] - sides[1][0][:n, :2], axis=1) > 0.005
        print(f"\n{name} on {Path(p).stem}: model success {mr.success} ({mr.steps} frames), Newton {tr.success} "
              f"({tr.steps}); centres more than 5 mm apart from frame {int(np.argmax(apart)) if apart.any() else 'never'}")
        print("| frame | model: object x, y (mm) | yaw | tool x, y | gap (mm) | Newton: object x, y | yaw | tool x, y | gap |")
        print("|---|---|---|---|---|---|---|---|---|")
        for k in sorted(set(range(0, n, 10)) | {n - 1}):
            cells = []
            for c, tc, yaw, gap in sides:
                cells += [f"{c[k, 0] * 1e3:.1f}, {c[k, 1] * 1e3:.1f}", f"{yaw[k]:.1f}", f"{tc[k, 0] * 1e3:.1f}, {tc[k, 1] * 1e3:.1f}",
                          f"{gap[k] * 1e3:.1f}"]
            print(f"| {k} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    import warp as wp

    wp.config.quiet = True
    wp.config.log_level = wp.LOG_WARNING
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=str(ROOT / "assets" / "tasks" / "suite" / "push_*.toml"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N tasks (0: all)")
    ap.add_argument("--policies", default=",".join(CHEAP),
                    help="names in dynamics.policies, or MODULE:FUNCTION / path/to/file.py:FUNCTION")
    ap.add_argument("--with-planner", action="store_true", help="add dynamics.policies:planner (slow)")
    ap.add_argument("--backends", default="gnn,constraints")
    ap.add_argument("--checkpoint", default=str(ROOT / "assets" / "weights" / "gns_push.pt"))
    ap.add_argument("--max-steps", type=int, default=240)
    ap.add_argument("--episodes-per-task", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--json", default=None, help="write the reports and timings here")
    ap.add_argument("--truth-cache", default=None, help="folder of cached Newton episode records "
                    "(default $XDG_CACHE_HOME/worldline/evaluate_truth)")
    ap.add_argument("--no-truth-cache", action="store_true", help="run and time every Newton episode; cache nothing")
    ap.add_argument("--newton-timed", type=int, default=-1,
                    help="episodes Newton is run and timed on in this run even when cached (one per task, "
                         "for the first N tasks; -1: every task)")
    ap.add_argument("--part", default=None, metavar="POLICY",
                    help="only: where the world model (the first of --backends) and Newton part on POLICY's "
                         "episodes of --tasks (a table every 10 frames)")
    ap.add_argument("--summary", default=None, metavar="JSON",
                    help="only: print the closing tables of a run's --json file again (nothing is run)")
    ap.add_argument("--sweep", action="store_true",
                    help="only: the tool swept past each task's goal box at a few gaps, in each of --backends "
                         "(newton: Newton itself), with the shapes' separation")
    ap.add_argument("--drift", action="store_true",
                    help="only: how far the world model (the first of --backends) moves each task's goal object "
                         "in 100 frames with the tool still")
    args = ap.parse_args()
    if args.summary:
        summarize(json.loads(Path(args.summary).read_text())["backends"])
        return
    if args.part:
        torch.set_num_threads(args.threads)
        part(args)
        return
    if args.sweep:
        torch.set_num_threads(args.threads)
        sweep(args)
        return
    if args.drift:
        torch.set_num_threads(args.threads)
        drift(args)
        return

    from dynamics.policy import build_report, evaluate_policies, load_policy, report_markdown
    from dynamics.tasks import Task

    torch.set_num_threads(args.threads)
    paths = sorted(glob.glob(args.tasks))
    if args.limit:
        paths = paths[: args.limit]
    tasks = [Task.load(p) for p in paths]
    names = [n for n in args.policies.split(",") if n] + (["planner"] if args.with_planner else [])
    policies = [load_policy(n if ":" in n else f"dynamics.policies:{n}") for n in names]
    names = [n for n, _ in policies]
    print(f"{len(tasks)} tasks ({args.tasks}), {len(policies)} policies, {args.episodes_per_task} episode(s) each, "
          f"at most {args.max_steps} frames, torch threads {args.threads}", flush=True)

    from dynamics.policy import EpisodeSpec, episode_seed

    specs = [EpisodeSpec(pn, fn, ti, e, episode_seed(args.seed, ti, e))
             for pn, fn in policies for ti in range(len(tasks)) for e in range(args.episodes_per_task)]
    t0 = time.perf_counter()
    truth, ttm = run_truth(tasks, paths, specs, names, args)
    how = (f"all {ttm['newton_episodes']} episodes timed in this run" if ttm["all_timed"] else
           f"{ttm['newton_episodes']} episodes ({ttm['newton_frames']} frames) timed in this run, "
           f"{ttm['newton_s_per_frame'] * 1000:.1f} ms per frame, scaled to all {ttm['all_frames']} Newton frames; "
           f"the other records from the cache")
    print(f"Newton: {ttm['truth_s']:.1f} s ({how}; {time.perf_counter() - t0:.0f} s here)", flush=True)
    newton_table(truth, specs, names, [Path(p).stem for p in paths])

    out = {}
    for be in (b for b in args.backends.split(",") if b):
        factory = make_backend_factory(be, args.checkpoint)
        t0 = time.perf_counter()
        ev = evaluate_policies(tasks, policies, factory, truth=False, episodes_per_task=args.episodes_per_task,
                               seed=args.seed, max_steps=args.max_steps,
                               settings={"backend": be, "checkpoint": args.checkpoint if be == "gnn" else None})
        for rec, s in zip(ev.report["episodes"], ev.specs):
            rec["truth"] = truth[(s.policy, s.task_index, s.episode)]
        settings = dict(ev.report["settings"], truth=True)
        ev.report = build_report(ev.report["episodes"], names, [Path(p).stem for p in paths], settings)
        ev.timing.update({k: ttm[k] for k in ("truth_s", "newton_s", "newton_episodes", "newton_frames",
                                              "newton_s_per_frame", "all_frames", "all_timed")})
        ev.timing["model_vs_truth"] = ev.timing["truth_s"] / ev.timing["model_s"]
        ev.timing["model_with_audit_vs_truth"] = ev.timing["truth_s"] / (ev.timing["model_s"] + ev.timing["audit_s"])
        print(f"\n=== backend {be} ({time.perf_counter() - t0:.0f} s) ===\n", flush=True)
        print(report_markdown(ev.report).split("## Per task")[0])
        tm = ev.timing
        print(f"wall time: model episodes {tm['model_s']:.1f} s (packed model steps {tm['model_step_s']:.1f} s over "
              f"{tm['model_packed_steps']} steps; critic {tm['audit_s']:.1f} s more), Newton {tm['truth_s']:.1f} s "
              f"({'timed' if tm['all_timed'] else 'scaled from the timed subset'}): "
              f"model {tm['model_vs_truth']:.2f}x faster ({tm['model_with_audit_vs_truth']:.2f}x with the critic)\n",
              flush=True)
        out[be] = {"report": ev.report, "timing": tm}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        newton_eps = [{"policy": s.policy, "task": Path(paths[s.task_index]).stem, "episode": s.episode,
                       "truth": truth[(s.policy, s.task_index, s.episode)]} for s in specs]
        Path(args.json).write_text(json.dumps({"args": vars(args), "newton": ttm, "newton_episodes": newton_eps,
                                               "backends": out}, indent=1, default=float))
    summarize(out)


def newton_table(truth: dict, specs, names: list, task_names: list) -> None:
    """Print Newton's side alone: per policy its successes (95 % Wilson), mean final position
    error, and the tasks it succeeds on (what a Newton-only design run of a policy set reads)."""
    from dynamics.policy import wilson_interval

    print("\n| policy (Newton) | successes | Wilson 95 % | mean final error | tasks succeeded |\n|---|---|---|---|---|")
    for n in names:
        recs = [(s, truth[(s.policy, s.task_index, s.episode)]) for s in specs if s.policy == n]
        k = sum(bool(r["success"]) for _, r in recs)
        lo, hi = wilson_interval(k, len(recs))
        err = np.mean([r["final_position_error_m"] for _, r in recs]) * 1e3
        won = " ".join(task_names[s.task_index][-2:] for s, r in recs if r["success"])
        print(f"| {n} | {k}/{len(recs)} | {lo:.2f}-{hi:.2f} | {err:.1f} mm | {won} |", flush=True)


def summarize(out: dict) -> None:
    """The closing tables of a run: per backend the correlations, glitches and speed, then how often an
    episode agrees with its Newton twin (same outcome; final error within 5 mm; median |difference|)."""
    print("\n| backend | success-rate Pearson | Spearman | same top-1 | same ranking | final-error Pearson | "
          "glitched episodes | w/o glitched: Pearson | same ranking | model vs Newton wall time |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    f = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
    for be, d in out.items():
        c = d["report"]["correlation"]
        w = c["without_glitched"]
        g = len(d["report"]["glitched"])
        print(f"| {be} | {f(c['pearson'])} | {f(c['spearman'])} | {c['same_top1']} | {c['same_ranking']} | "
              f"{f(c['final_error_pearson'])} | {g}/{c['episodes']} | {f(w['pearson'])} | {w['same_ranking']} | "
              f"{d['timing']['model_vs_truth']:.2f}x |")
    print("\n| backend | episodes with Newton's outcome | final error within 5 mm of Newton's | median |final error - Newton's| |")
    print("|---|---|---|---|")
    for be, d in out.items():
        eps = [e for e in d["report"]["episodes"] if e.get("truth")]
        diff = np.array([abs(e["model"]["final_position_error_m"] - e["truth"]["final_position_error_m"]) for e in eps])
        same = sum(e["model"]["success"] == e["truth"]["success"] for e in eps)
        print(f"| {be} | {same}/{len(eps)} | {int((diff < 0.005).sum())}/{len(eps)} | {np.median(diff) * 1e3:.1f} mm |")


if __name__ == "__main__":
    main()
