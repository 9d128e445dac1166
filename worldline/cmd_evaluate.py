"""``worldline evaluate``: rank robot policies closed loop in the world model (and, with
``--truth``, in Newton) on a set of tasks, every world-model episode audited by the critic.

Files written into ``--out DIR``:

* ``report.json``: ``settings``; ``policies: {NAME: {"model": {...}, "truth": {...}}}`` with
  ``episodes``, ``successes``, ``success_rate``, ``wilson_95`` ([lo, hi]), ``mean_final_error_m``,
  ``failed_episodes`` (policy errors) and, for the model, ``glitched_episodes``; ``tasks`` (per
  task and policy); ``glitched`` (each glitched episode with the critic's first event);
  ``episodes`` (one record each) and, with ``--truth``, ``correlation`` (``pearson``,
  ``spearman``, ``same_ranking``, ``same_top1``, the rankings, the per-episode final-error
  correlations and ``without_glitched``). Deterministic: a rerun with the same seed writes
  the same file (timings go to ``timing.json``);
* ``report.md``: the same as tables;
* ``timing.json``: wall seconds of the model episodes, the critic and Newton, and their ratio;
* ``episodes/*.rrd``: chosen episodes (per policy: the first glitched one, else the first whose
  model and Newton outcomes differ, else its first), the model rollout with its critic events
  and the goal, and with ``--truth`` Newton's.
"""

from __future__ import annotations

import glob
import json
import time
from pathlib import Path
from typing import Callable, Optional

import typer

from worldline.errors import BadInput, check_output

ASSETS = Path(__file__).resolve().parent.parent / "assets"
DEFAULT_CHECKPOINT = ASSETS / "weights" / "gns_push.pt"
DEFAULT_TASKS = ASSETS / "tasks" / "suite"


def _gnn(checkpoint: Optional[Path]) -> Callable:
    from dynamics.tasks import LearnedBackend
    from dynamics.train import load_model

    if checkpoint is None or not Path(checkpoint).is_file():
        raise BadInput(f"--checkpoint {checkpoint}: no such checkpoint file")
    model = load_model(checkpoint)

    def make(task):
        if abs(model.config.dt - task.dt) > 1e-9:
            raise BadInput(f"{checkpoint}: the model steps by {model.config.dt} s, the task {task.path} by {task.dt} s")
        return LearnedBackend(model, task.scene)

    return make


def _constraints(checkpoint: Optional[Path]) -> Callable:
    from dynamics.tasks import ConstraintsBackend

    return lambda task: ConstraintsBackend(task.scene)


def _object_model(checkpoint: Optional[Path]):
    from dynamics.objects import load_object_model
    from worldline.cmd_plan import object_checkpoint

    path = object_checkpoint(checkpoint)
    if not path.is_file():
        raise BadInput(f"--checkpoint {path}: no such object-model checkpoint file")
    return path, load_object_model(path)


def _objects(checkpoint: Optional[Path], **drop: bool) -> Callable:
    """The object-level model (``dynamics.objects``) on scenes whose free objects are all rigid,
    with the exact contact / ground constraints after each step (alone, on the 20 suite tasks, it
    let boxes sink into the ground or the tool in 63 of 120 episodes: README, Policy evaluation) and
    with ``passive_energy`` the critic's energy law (a body nothing working touches gains no energy:
    ``dynamics.objects.object_rollout``), which stops the network's creep of resting boxes, and with
    ``shape_contact`` the tool's contacts between the boxes' shapes as Newton has them (no impulse from a
    tool whose box does not touch the body's; the tool rests on the face, not inside the shape) and with
    ``sliding_friction`` Coulomb's law for a body sliding on the ground that nothing working touches (it
    slows by at least mu g: the network let pushed boxes coast on). These are
    ``dynamics.objects.RULES``, the rules planning plans in too; ``drop`` sets some of them otherwise
    (``shape_contact=False``, ...)."""
    from dynamics.objects import object_backend
    from particles import ValidationError

    path, model = _object_model(checkpoint)

    def make(task):
        if abs(model.config.dt - task.dt) > 1e-9:
            raise BadInput(f"{path}: the model steps by {model.config.dt} s, the task {task.path} by {task.dt} s")
        try:
            return object_backend(model, task.scene, **drop)
        except ValidationError as exc:
            raise BadInput(f"--backend objects: task {task.path}: {exc.problem} (--backend auto runs such tasks "
                           f"on the GNN)") from None

    return make


def _auto(checkpoint: Optional[Path]) -> Callable:
    """The object model where every free object is rigid, the particle GNN elsewhere (sand, ...).
    ``--checkpoint`` names the GNN; the object model is the shipped one."""
    from dynamics.objects import object_backend, supports

    gnn = _gnn(checkpoint if checkpoint is not None else DEFAULT_CHECKPOINT)
    _, model = _object_model(None)

    def make(task):
        if not supports(task.scene) and abs(model.config.dt - task.dt) <= 1e-9:
            return object_backend(model, task.scene)
        return gnn(task)

    return make


#: World models by ``--backend`` name: ``factory(checkpoint) -> (task -> backend)``. A backend has
#: ``predict(history, tool_indices, tool_future)`` (dynamics.tasks); one with a packed
#: ``step_fn(batch, history, next_kinematic)`` steps every episode in one batch.
BACKENDS: dict[str, Callable] = {"auto": _auto, "objects": _objects,
                                 "objects-plain": lambda checkpoint: _objects(checkpoint, passive_energy=False,
                                                                              shape_contact=False,
                                                                              sliding_friction=False),
                                 "objects-energy": lambda checkpoint: _objects(checkpoint, shape_contact=False,
                                                                               sliding_friction=False),
                                 "objects-shape": lambda checkpoint: _objects(checkpoint, sliding_friction=False),
                                 "gnn": _gnn, "learned": _gnn, "constraints": _constraints}


def resolve_tasks(spec: str) -> list[Path]:
    """Task files of ``--tasks``: a folder (its ``*.toml``), a glob, or one file; sorted. Raises BadInput when none."""
    p = Path(spec)
    if p.is_dir():
        paths = sorted(p.glob("*.toml"))
        if not paths:
            raise BadInput(f"--tasks {spec}: the folder holds no .toml task files")
        return paths
    if p.is_file():
        return [p]
    paths = sorted(Path(x) for x in glob.glob(spec) if Path(x).is_file())
    if not paths:
        raise BadInput(f"--tasks {spec}: no such task file or folder, and no file matches it as a glob")
    return paths


def run_evaluate(policies: list[str], tasks: str, out: Path, checkpoint: Optional[Path] = DEFAULT_CHECKPOINT,
                 truth: bool = False, episodes_per_task: int = 1, seed: int = 0, backend: str = "auto",
                 max_steps: int = 240, record: bool = True, progress: bool = True) -> dict:
    """Evaluate; write the files of the module docstring; return the report dict.

    Raises :class:`BadInput` (bad flag, unimportable policy, no tasks) or
    :class:`particles.FileFormatError` (a bad task file) before anything is written.
    """
    import torch

    from dynamics.policy import PolicyLoadError, evaluate_policies, load_policy, report_markdown
    from dynamics.tasks import Task
    from particles.io import atomic_write

    if not policies:
        raise BadInput("--policy: give at least one, e.g. --policy dynamics.policies:straight_push")
    if episodes_per_task < 1:
        raise BadInput(f"--episodes-per-task must be at least 1, got {episodes_per_task}")
    if max_steps < 1:
        raise BadInput(f"--max-steps must be at least 1, got {max_steps}")
    if backend not in BACKENDS:
        raise BadInput(f"--backend: unknown {backend!r}; expected one of {', '.join(BACKENDS)}")
    loaded, names = [], set()
    for spec in policies:
        try:
            name, fn = load_policy(spec)
        except PolicyLoadError as exc:
            raise BadInput(str(exc)) from None
        if name in names:
            name = spec
        if name in names:
            raise BadInput(f"--policy {spec}: given twice")
        names.add(name)
        loaded.append((name, fn))
    paths = resolve_tasks(tasks)
    torch.set_num_threads(1)  # small graphs: more threads only contend (see worldline demo)
    task_list = [Task.load(p) for p in paths]
    stems = [p.stem for p in paths]
    if len(set(stems)) != len(stems):
        stems = [str(p) for p in paths]
    make = BACKENDS[backend](checkpoint)
    for t in task_list:  # refuse a model/task mismatch before any episode runs
        make(t)

    bars: dict = {}

    def tick(stage, done, total):
        if not progress:
            return
        from tqdm import tqdm

        if stage not in bars:
            for b in bars.values():  # the previous stage is over
                b.close()
            desc = {"model": f"model ({backend}, packed)", "critic": "critic", "truth": "Newton"}[stage]
            bars[stage] = tqdm(total=total, desc=desc, unit="frame" if stage == "model" else "episode")
        b = bars[stage]
        b.n = done
        b.refresh()

    settings = {"backend": backend, "checkpoint": str(checkpoint) if backend in ("gnn", "learned") else None,
                "tasks": [str(p) for p in paths], "policies": [n for n, _ in loaded], "policy_specs": list(policies)}
    try:
        ev = evaluate_policies(task_list, loaded, make, truth=truth, episodes_per_task=episodes_per_task, seed=seed,
                               max_steps=max_steps, settings=settings, task_names=stems, progress=tick)
    finally:
        for b in bars.values():
            b.close()
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(ev.report, indent=1, default=float) + "\n"
    atomic_write(out / "report.json", lambda f: f.write(text), mode="w")
    md = report_markdown(ev.report)
    atomic_write(out / "report.md", lambda f: f.write(md), mode="w")
    tm = json.dumps(ev.timing, indent=1) + "\n"
    atomic_write(out / "timing.json", lambda f: f.write(tm), mode="w")
    if record:
        record_chosen(out / "episodes", ev, task_list, stems)
    return ev.report


def choose_episodes(ev) -> list[int]:
    """Per policy, the index of one episode worth watching: its first glitched world-model episode,
    else the first whose model and Newton outcomes differ, else its first."""
    chosen = []
    for name in ev.report["policies"]:
        idx = [i for i, s in enumerate(ev.specs) if s.policy == name]
        recs = ev.report["episodes"]
        pick = next((i for i in idx if recs[i]["model"]["glitched"]), None)
        if pick is None and ev.truth is not None:
            pick = next((i for i in idx if recs[i]["model"]["success"] != recs[i]["truth"]["success"]), None)
        chosen.append(idx[0] if pick is None else pick)
    return chosen


def record_chosen(folder: Path, ev, tasks, stems) -> list[Path]:
    """Write ``folder/<policy>__<task>__e<k>__{model,newton}.rrd`` for :func:`choose_episodes`' picks
    (:func:`worldline.cmd_plan.record_plan`: rollout, critic events, goal, object path)."""
    import critic

    from worldline.cmd_plan import record_plan

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for i in choose_episodes(ev):
        s = ev.specs[i]
        task = tasks[s.task_index]
        base = f"{s.policy}__{stems[s.task_index]}__e{s.episode}".replace("/", "_").replace(":", "_")
        p = folder / f"{base}__model.rrd"
        record_plan(p, task, ev.model[i], [], ev.audits[i])
        written.append(p)
        if ev.truth is not None:
            p = folder / f"{base}__newton.rrd"
            record_plan(p, task, ev.truth[i], [], critic.audit(ev.truth[i].executed))
            written.append(p)
    return written


def register(app: typer.Typer) -> None:
    @app.command("evaluate")
    def evaluate(
        policy: list[str] = typer.Option(..., "--policy", "-p",
                                         help="A policy MODULE:FUNCTION (or FILE.py:FUNCTION); repeat for several."),
        tasks: str = typer.Option(str(DEFAULT_TASKS), "--tasks", "-t",
                                  help="A folder of task .toml files, a glob (quote it) or one file."),
        out: Path = typer.Option(..., "--out", "-o", help="Folder for report.json, report.md, timing.json, episodes/."),
        checkpoint: Path = typer.Option(DEFAULT_CHECKPOINT, "--checkpoint", help="Particle-GNN checkpoint (gnn; auto on non-rigid tasks). "
                                                                                   "objects uses it if it is an object-model "
                                                                                   "checkpoint, else the shipped one."),
        truth: bool = typer.Option(False, "--truth", help="Also run every episode on Newton and correlate."),
        episodes_per_task: int = typer.Option(1, "--episodes-per-task", "-n",
                                              help="Episodes per policy and task (each with its own seed)."),
        seed: int = typer.Option(0, "--seed", help="Seed of the episodes (obs['seed'] of each)."),
        backend: str = typer.Option("auto", "--backend",
                                    help="World model: auto (the object model where every free body is rigid, the GNN "
                                         "elsewhere), objects, objects-shape (without the sliding friction), objects-energy "
                                         "(without that and the tool's shape contacts), objects-plain (without those "
                                         "and the energy law), gnn, constraints."),
        max_steps: int = typer.Option(240, "--max-steps", help="Most frames per episode."),
        no_record: bool = typer.Option(False, "--no-record", help="Skip episodes/*.rrd."),
    ):
        """Run every --policy closed loop on every task in the world model, all episodes packed into
        one model step per frame, each model rollout audited by the critic; with --truth the same
        episodes on Newton, and how well the model's success rates and final errors correlate with
        Newton's (Pearson, Spearman, same ranking), with and without the glitched episodes.

        A policy is called once per frame as policy(obs) and returns the tool's target pose
        ({"position": (3,), "yaw": rad, "width": m} or a bare (3,) position); see README,
        Policy evaluation. A policy that raises or returns a bad target fails its episode;
        the run goes on.

        Example (the shipped suite, two shipped policies, model and Newton):

          worldline evaluate -p dynamics.policies:straight_push -p dynamics.policies:random_policy --truth --out ev
        """
        check_output(out, "--out", folder=True)
        t0 = time.perf_counter()
        rep = run_evaluate(policy, tasks, out, checkpoint, truth, episodes_per_task, seed, backend, max_steps,
                           record=not no_record)
        for name, d in rep["policies"].items():
            m = d["model"]
            line = (f"{name}: model {m['successes']}/{m['episodes']} ({m['success_rate']:.0%}), mean final error "
                    f"{m['mean_final_error_m'] * 1000:.1f} mm, {m['glitched_episodes']} glitched")
            if "truth" in d:
                t = d["truth"]
                line += (f"; Newton {t['successes']}/{t['episodes']} ({t['success_rate']:.0%}), "
                         f"{t['mean_final_error_m'] * 1000:.1f} mm")
            failed = len(m["failed_episodes"])
            if failed:
                line += f"; {failed} episodes failed by policy error"
            typer.echo(line)
        if "correlation" in rep:
            c = rep["correlation"]
            f = lambda v: "n/a" if v is None else f"{v:.2f}"  # noqa: E731
            typer.echo(f"model vs Newton: success-rate Pearson {f(c['pearson'])}, Spearman {f(c['spearman'])}, "
                       f"same ranking {c['same_ranking']}, same top-1 {c['same_top1']}; without the "
                       f"{len(rep['glitched'])} glitched episodes: Pearson {f(c['without_glitched']['pearson'])}")
        typer.echo(f"wrote {out}/report.json, report.md, timing.json" + ("" if no_record else ", episodes/*.rrd")
                   + f" in {time.perf_counter() - t0:.0f} s")
