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
CHEAP = ("yaw_push", "straight_push", "open_loop_push", "offset_push", "half_push", "random_policy")


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


def drift(args) -> None:
    """The GNN's rollout of each task with the tool held still (Newton: nothing moves): the goal
    object's centre displacement after 20, 50 and 100 frames."""
    from dynamics.model import LearnedSimulator
    from dynamics.tasks import Task
    from dynamics.train import load_model

    model = load_model(args.checkpoint)
    paths = sorted(glob.glob(args.tasks))[: args.limit or None]
    print("| task | after 20 frames | 50 | 100 (mm, xy) |\n|---|---|---|---|")
    for p in paths:
        task = Task.load(p)
        ro = LearnedSimulator(model, task.scene, task.tool.indices).rollout(None, 100)
        c = ro.positions[:, task.object_particles].mean(1)
        cells = [f"{np.linalg.norm(c[f, :2] - c[0, :2]) * 1000:.1f}" for f in (20, 50, 100)]
        print(f"| {Path(p).stem} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    import warp as wp

    wp.config.quiet = True
    wp.config.log_level = wp.LOG_WARNING
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=str(ROOT / "assets" / "tasks" / "suite" / "push_*.toml"))
    ap.add_argument("--limit", type=int, default=0, help="only the first N tasks (0: all)")
    ap.add_argument("--policies", default=",".join(CHEAP), help="names in dynamics.policies")
    ap.add_argument("--with-planner", action="store_true", help="add dynamics.policies:planner (slow)")
    ap.add_argument("--backends", default="gnn,constraints")
    ap.add_argument("--checkpoint", default=str(ROOT / "assets" / "weights" / "gns_push.pt"))
    ap.add_argument("--max-steps", type=int, default=240)
    ap.add_argument("--episodes-per-task", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--json", default=None, help="write the reports and timings here")
    ap.add_argument("--drift", action="store_true",
                    help="only: how far the GNN moves each task's goal object in 100 frames with the tool still")
    args = ap.parse_args()
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
    policies = [load_policy(f"dynamics.policies:{n}") for n in names]
    print(f"{len(tasks)} tasks ({args.tasks}), {len(policies)} policies, {args.episodes_per_task} episode(s) each, "
          f"at most {args.max_steps} frames, torch threads {args.threads}", flush=True)

    def prog(stage, done, total):
        if stage == "truth" and (done % 10 == 0 or done == total):
            print(f"  truth: {done}/{total} episodes", flush=True)

    out, truth_eval = {}, None
    for bi, be in enumerate(b for b in args.backends.split(",") if b):
        factory = make_backend_factory(be, args.checkpoint)
        t0 = time.perf_counter()
        ev = evaluate_policies(tasks, policies, factory, truth=truth_eval is None, episodes_per_task=args.episodes_per_task,
                               seed=args.seed, max_steps=args.max_steps, progress=prog,
                               settings={"backend": be, "checkpoint": args.checkpoint if be == "gnn" else None})
        if truth_eval is None:
            truth_eval = ev
        else:  # the same episodes' Newton results, measured once
            for rec, t in zip(ev.report["episodes"], truth_eval.report["episodes"]):
                assert (rec["policy"], rec["task"], rec["episode"]) == (t["policy"], t["task"], t["episode"])
                rec["truth"] = t["truth"]
            ev.report = build_report(ev.report["episodes"], names, [Path(p).stem for p in paths], ev.report["settings"])
            ev.timing["truth_s"] = truth_eval.timing["truth_s"]
            ev.timing["model_vs_truth"] = ev.timing["truth_s"] / ev.timing["model_s"]
            ev.timing["model_with_audit_vs_truth"] = ev.timing["truth_s"] / (ev.timing["model_s"] + ev.timing["audit_s"])
        print(f"\n=== backend {be} ({time.perf_counter() - t0:.0f} s) ===\n", flush=True)
        print(report_markdown(ev.report).split("## Per task")[0])
        tm = ev.timing
        print(f"wall time: model episodes {tm['model_s']:.1f} s (packed model steps {tm['model_step_s']:.1f} s over "
              f"{tm['model_packed_steps']} steps; critic {tm['audit_s']:.1f} s more), Newton {tm['truth_s']:.1f} s: "
              f"model {tm['model_vs_truth']:.2f}x faster ({tm['model_with_audit_vs_truth']:.2f}x with the critic)\n",
              flush=True)
        out[be] = {"report": ev.report, "timing": tm}
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"args": vars(args), "backends": out}, indent=1, default=float))
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


if __name__ == "__main__":
    main()
