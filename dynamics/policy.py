"""Robot policies evaluated closed loop in a world model and in Newton (``worldline evaluate``).

**The policy interface.** A policy is a Python callable named ``module:function`` (or
``path/to/file.py:function``), called once per frame as ``policy(obs)`` with a dict:

* ``positions`` (N, 3) float32, m: every particle now (the tool's included);
* ``object_id`` (N,) int: each particle's object; ``object_names`` (K,) str (the tool is the
  last object, ``"tool"``); ``object_material`` (K,) str;
* ``tool_position`` (3,) float64, m, ``tool_yaw`` float, rad, ``tool_width`` float, m: the
  tool's pose fitted to its observed particles;
* ``goal``: the scene's ``[goal]`` table as a dict (:meth:`particles.scene_file.GoalSpec.to_dict`);
* ``frame`` int (frames executed so far) and ``dt`` float, s;
* and, beyond the issue's list: ``tool_indices`` (M,) int (the tool's rows of ``positions``),
  ``goal_object_yaw`` float, rad (the goal object's yaw as the goal measures it: rest yaw plus
  its particles' best-fit rotation about z), ``seed`` int (this episode's seed, for random
  policies), ``memory`` (a dict that persists over the frames of one episode and starts empty:
  a policy's own state) and ``task`` (the :class:`dynamics.tasks.Task`, for policies that plan
  in a model of their own, such as the wrapped planner).

It returns the tool's target pose: a dict ``{"position": (3,), "yaw": float, "width": float}``
(``yaw`` and ``width`` optional, default: hold) or a bare (3,) position. The tool moves toward
the target with :func:`dynamics.tasks.step_toward` within :class:`dynamics.tasks.ToolLimits`
(the bounds of planned actions), starting from its last commanded pose. A policy that raises,
returns something else or a non-finite number ends its episode as failed, with the error
recorded (:class:`PolicyController`, :class:`dynamics.tasks.ControllerFailed`); the run goes on.

**Episodes** are :class:`dynamics.tasks.EpisodeLoop`\\ s, the closed loop planning uses. In the
world model every live episode (all policies, tasks and repeats) is stepped by one packed model
step per frame (:class:`PackedStepper`: the episodes' scenes packed in one graph batch,
:func:`dynamics.model.pack_scenes`, repacked when episodes end); in Newton each episode runs on
its own simulator (:func:`dynamics.tasks.run_episode`). Every world-model episode is audited by
the critic (:func:`critic.audit`); :func:`build_report` turns the episodes into the report.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from .tasks import (ControllerFailed, EpisodeLoop, EpisodeResult, Observation, Task, ToolLimits, object_yaw,
                    run_episode, step_toward)

__all__ = ["PolicyLoadError", "load_policy", "policy_obs", "parse_target", "PolicyController", "PackedStepper",
           "EpisodeSpec", "episode_seed", "run_model_episodes", "run_truth_episodes", "wilson_interval", "pearson",
           "spearman", "build_report", "report_markdown", "Evaluation", "evaluate_policies"]


class PolicyLoadError(ValueError):
    """A ``--policy MOD:FN`` that cannot be imported or is not a callable (the message names it)."""


def load_policy(spec: str) -> tuple[str, Callable]:
    """``(name, callable)`` for ``"module:function"`` or ``"path/to/file.py:function"``.

    The name is the function's. The current folder is importable (a policy module beside the
    user). Raises :class:`PolicyLoadError` naming ``spec`` when the module cannot be imported
    (missing, or raising on import), lacks the function, or it is not callable.
    """
    if not isinstance(spec, str) or spec.count(":") < 1 or not spec.rsplit(":", 1)[1] or not spec.rsplit(":", 1)[0]:
        raise PolicyLoadError(f"--policy {spec!r}: expected MODULE:FUNCTION, e.g. dynamics.policies:straight_push")
    mod_name, fn_name = spec.rsplit(":", 1)
    try:
        if mod_name.endswith(".py"):
            path = Path(mod_name)
            if not path.is_file():
                raise PolicyLoadError(f"--policy {spec}: cannot import {mod_name}: no such file")
            uniq = f"_worldline_policy_{abs(hash(str(path.resolve())))}"
            s = importlib.util.spec_from_file_location(uniq, path)
            module = importlib.util.module_from_spec(s)
            s.loader.exec_module(module)
        else:
            if "" not in sys.path and str(Path.cwd()) not in sys.path:
                sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(mod_name)
    except PolicyLoadError:
        raise
    except Exception as exc:  # ImportError, SyntaxError, or anything the module raises on import
        raise PolicyLoadError(f"--policy {spec}: cannot import module {mod_name!r} ({type(exc).__name__}: {exc})") from None
    fn = getattr(module, fn_name, None)
    if fn is None:
        raise PolicyLoadError(f"--policy {spec}: module {mod_name!r} has no {fn_name!r}")
    if not callable(fn):
        raise PolicyLoadError(f"--policy {spec}: {mod_name}.{fn_name} is not callable")
    return fn_name, fn


def policy_obs(task: Task, obs: Observation, memory: dict, seed: int) -> dict:
    """The ``obs`` dict a policy gets (keys: module docstring) from an :class:`Observation`."""
    scene = task.scene
    names = tuple(scene.object_name) if scene.object_name is not None else \
        tuple(f"object{k}" for k in range(scene.num_objects))
    x = obs.positions
    return {
        "positions": x.copy(), "object_id": scene.object_id.copy(), "object_names": names,
        "object_material": tuple(scene.object_material),
        "tool_position": obs.tool_pose[:3].copy(), "tool_yaw": float(obs.tool_pose[3]),
        "tool_width": float(obs.tool_pose[4]), "goal": task.goal.to_dict(), "frame": int(obs.frame),
        "dt": float(task.dt), "tool_indices": task.tool.indices.copy(),
        "goal_object_yaw": float(object_yaw(task, torch.as_tensor(x))), "seed": int(seed), "memory": memory,
        "task": task,
    }


def parse_target(out, pose: np.ndarray) -> np.ndarray:
    """(5,) float64 target pose (x, y, z, yaw, width) from a policy's return value.

    ``out`` is a dict with ``position`` (3,) and optional ``yaw`` (rad) and ``width`` (m), or
    a bare (3,) position; missing yaw / width hold ``pose``'s. Raises
    :class:`dynamics.tasks.ControllerFailed` saying what is wrong (not a dict or (3,), a wrong
    shape, a non-number, NaN or inf).
    """
    yaw, width = float(pose[3]), float(pose[4])
    if isinstance(out, dict):
        if "position" not in out:
            raise ControllerFailed(f"the policy returned a dict without 'position' (keys: {sorted(map(str, out))})")
        pos = out["position"]
        try:
            if out.get("yaw") is not None:
                yaw = float(out["yaw"])
            if out.get("width") is not None:
                width = float(out["width"])
        except (TypeError, ValueError) as exc:
            raise ControllerFailed(f"the policy returned a yaw or width that is not a number ({exc})") from None
    else:
        pos = out
    try:
        p = np.asarray(pos, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ControllerFailed(f"the policy returned a position that is not numbers ({type(pos).__name__}: {exc})") from None
    if p.shape != (3,):
        raise ControllerFailed(f"the policy returned a position of shape {p.shape}, expected (3,)")
    t = np.array([p[0], p[1], p[2], yaw, width])
    if not np.all(np.isfinite(t)):
        raise ControllerFailed(f"the policy returned a non-finite target {t.tolist()}")
    return t


class PolicyController:
    """A policy as a :class:`dynamics.tasks.Controller`: one frame per ``act``, the tool moved
    toward the policy's target by :func:`dynamics.tasks.step_toward` from its last commanded pose
    (re-read from the observation when frames were applied without asking the policy, e.g. the
    loop's holds). Errors raise :class:`dynamics.tasks.ControllerFailed` (the episode fails)."""

    history = 5

    def __init__(self, policy: Callable, seed: int = 0, limits: Optional[ToolLimits] = None):
        self.policy, self.seed = policy, int(seed)
        self.limits = limits or ToolLimits()
        self.memory: dict = {}
        self._pose: Optional[np.ndarray] = None
        self._vel = np.zeros(5)
        self._frame = -2
        self.stats = {"policy_seconds": 0.0, "calls": 0}

    def act(self, task: Task, obs: Observation):
        if self._pose is None or obs.frame != self._frame + 1:
            self._pose = obs.tool_pose.copy()
            v = obs.tool_velocity
            self._vel = np.array([v[0], v[1], 0.0, v[2], v[3]])
        t0 = time.perf_counter()
        try:
            out = self.policy(policy_obs(task, obs, self.memory, self.seed))
        except Exception as exc:
            raise ControllerFailed(f"the policy raised {type(exc).__name__}: {exc}") from None
        finally:
            self.stats["policy_seconds"] += time.perf_counter() - t0
            self.stats["calls"] += 1
        target = parse_target(out, self._pose)
        pose, vel = step_toward(self._pose, self._vel, target, self.limits, task.dt)
        self._pose, self._vel, self._frame = pose, vel, obs.frame
        return pose[None], vel[None]


# --------------------------------------------------------------------------- packed model episodes


class PackedStepper:
    """Steps many episodes (any tasks) by one model step: their scenes packed in one batch.

    Args:
        make_backend: ``task -> backend`` of :mod:`dynamics.tasks` or :mod:`dynamics.objects`.
            Backends with a packed ``step_fn(batch, history (C + 1, N, 3), next_kinematic (N, 3))``
            and ``history`` (C) step together: :class:`~dynamics.tasks.LearnedBackend` and
            :class:`~dynamics.tasks.ConstraintsBackend` on a :func:`dynamics.model.pack_scenes`
            graph batch, :class:`~dynamics.objects.ObjectBackend` on its own ``pack(scenes)``.
            Backends are grouped by type and ``pack_key`` (e.g. the object model and the GNN of
            ``--backend auto`` on a mixed task set: one packed step per group and frame). Any other
            backend with ``predict(history, tool_indices, tool_future)`` steps its episodes one by one (K = 1, H = 1).
    """

    def __init__(self, make_backend: Callable[[Task], object]):
        self.make_backend = make_backend
        self._backends: dict[int, object] = {}
        self._batches: dict = {}
        self.seconds = 0.0
        self.steps = 0

    def backend(self, task: Task):
        if id(task) not in self._backends:
            self._backends[id(task)] = self.make_backend(task)
        return self._backends[id(task)]

    @staticmethod
    def _history(loop: EpisodeLoop, c: int) -> np.ndarray:
        last = loop.frames[-(c + 1):]
        last = [last[0]] * (c + 1 - len(last)) + list(last)  # padded by the first frame: at rest
        return np.stack(last).astype(np.float32)

    @staticmethod
    def _group(be):
        """The packing group of a backend (None: stepped alone through ``predict``)."""
        if not hasattr(be, "step_fn"):
            return None
        return (type(be), getattr(be, "pack_key", None))

    def step(self, loops: Sequence[EpisodeLoop], controls: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Next positions ``(N_i, 3)`` float32 m of every loop, given its tool particles ``controls[i] (M_i, 3)``."""
        t0 = time.perf_counter()
        bes = [self.backend(lp.task) for lp in loops]
        out: list = [None] * len(loops)
        groups: dict = {}
        for i, b in enumerate(bes):
            g = self._group(b)
            if g is None:
                h = self._history(loops[i], getattr(b, "history", 5))
                fut = np.asarray(controls[i], np.float32)[None, None]
                out[i] = np.asarray(b.predict(h, loops[i].task.tool.indices, fut))[0, 1].astype(np.float32)
            else:
                groups.setdefault(g, []).append(i)
        live = set()
        for g, idx in groups.items():
            live.add(g)
            nxt = self._packed(g, bes[idx[0]], [loops[i] for i in idx], [controls[i] for i in idx])
            for i, x in zip(idx, nxt):
                out[i] = x
        for g in [g for g in self._batches if g not in live]:  # a group with no live episode left
            del self._batches[g]
        self.seconds += time.perf_counter() - t0
        self.steps += 1
        return out

    @torch.no_grad()
    def _packed(self, group, be, loops, controls):
        c = be.history
        dtype = next(be.model.parameters()).dtype
        key = tuple(id(lp) for lp in loops)
        hit = self._batches.get(group)
        if hit is None or hit[0] != key:  # repacked when the set of live episodes changes
            scenes = [lp.task.scene for lp in loops]
            if hasattr(be, "pack"):
                batch = be.pack(scenes)
            else:
                from .model import pack_scenes

                batch = pack_scenes(scenes, device=be.device, dtype=dtype)
            hit = self._batches[group] = (key, batch)
        hist = np.concatenate([self._history(lp, c) for lp in loops], 1)
        nk = hist[-1].copy()
        o, sizes = 0, []
        for lp, ctrl in zip(loops, controls):
            nk[o + lp.task.tool.indices] = ctrl
            sizes.append(lp.task.scene.num_particles)
            o += sizes[-1]
        h = torch.as_tensor(hist, dtype=dtype, device=be.device)
        nxt = be.step_fn(hit[1], h, torch.as_tensor(nk, dtype=dtype, device=be.device)).float().cpu().numpy()
        return np.split(nxt, np.cumsum(sizes)[:-1], 0)


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode to run: a policy on a task, repeat ``episode`` with its ``seed``."""

    policy: str
    """The policy's name in the report."""
    fn: Callable = field(repr=False, compare=False)
    task_index: int = 0
    episode: int = 0
    seed: int = 0


def episode_seed(seed: int, task_index: int, episode: int) -> int:
    """The seed of repeat ``episode`` on task ``task_index`` (the same for every policy: paired episodes)."""
    return int(np.random.SeedSequence([int(seed), int(task_index), int(episode)]).generate_state(1)[0])


def run_model_episodes(tasks: Sequence[Task], specs: Sequence[EpisodeSpec], stepper: PackedStepper,
                       max_steps: int = 240, limits: Optional[ToolLimits] = None,
                       progress: Optional[Callable[[int, int], None]] = None) -> list[EpisodeResult]:
    """Every episode of ``specs`` in the world model, all live ones stepped together each frame.

    ``progress(frame, live)`` is called once per packed step. Returns one
    :class:`dynamics.tasks.EpisodeResult` per spec, in order (``info["error"]`` for failed ones).
    """
    loops = [EpisodeLoop(tasks[s.task_index], PolicyController(s.fn, s.seed, limits), max_steps) for s in specs]
    live = list(range(len(loops)))
    frame = 0
    while live:
        ctrls = {}
        for i in live:
            c = loops[i].control()
            if c is not None:
                ctrls[i] = c
        live = list(ctrls)
        if not live:
            break
        nxt = stepper.step([loops[i] for i in live], [ctrls[i] for i in live])
        for i, x in zip(live, nxt):
            loops[i].advance(x)
        frame += 1
        if progress is not None:
            progress(frame, len(live))
    return [lp.result() for lp in loops]


def run_truth_episodes(tasks: Sequence[Task], specs: Sequence[EpisodeSpec], max_steps: int = 240,
                       limits: Optional[ToolLimits] = None,
                       progress: Optional[Callable[[int], None]] = None) -> list[EpisodeResult]:
    """Every episode of ``specs`` on Newton, one after another (``progress(i)`` after each)."""
    out = []
    for i, s in enumerate(specs):
        out.append(run_episode(tasks[s.task_index], PolicyController(s.fn, s.seed, limits), max_steps=max_steps))
        if progress is not None:
            progress(i)
    return out


# --------------------------------------------------------------------------- statistics


def wilson_interval(successes: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval (95 % by default) of a success rate ``successes / n``; (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    den = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    lo = 0.0 if successes == 0 else max(0.0, centre - half)  # exact at the ends (no rounding residue)
    hi = 1.0 if successes == n else min(1.0, centre + half)
    return lo, hi


def pearson(a, b) -> Optional[float]:
    """Pearson correlation of two equal-length sequences; None when either is constant or shorter than 2."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(a) != len(b):
        return None
    da, db = a - a.mean(), b - b.mean()
    den = math.sqrt(float(da @ da) * float(db @ db))
    if den <= 1e-300:
        return None
    return float(np.clip(float(da @ db) / den, -1.0, 1.0))


def _ranks(a) -> np.ndarray:
    """Average ranks (1-based; ties share their mean rank)."""
    a = np.asarray(a, np.float64)
    order = np.argsort(a, kind="mergesort")
    r = np.empty(len(a))
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and a[order[j + 1]] == a[order[i]]:
            j += 1
        r[order[i:j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    return r


def spearman(a, b) -> Optional[float]:
    """Spearman rank correlation (Pearson of average ranks); None when undefined."""
    if len(a) != len(b) or len(a) < 2:
        return None
    return pearson(_ranks(a), _ranks(b))


def _ranking(stats: dict) -> list[str]:
    """Policies best first: higher success rate, then lower mean final error, then name."""
    return sorted(stats, key=lambda p: (-stats[p]["success_rate"], stats[p]["mean_final_error_m"], p))


# --------------------------------------------------------------------------- the report


def _side(records: list[dict]) -> dict:
    n = len(records)
    s = sum(bool(r["success"]) for r in records)
    lo, hi = wilson_interval(s, n)
    errs = [r["final_position_error_m"] for r in records]
    out = {"episodes": n, "successes": s, "success_rate": s / n if n else 0.0, "wilson_95": [lo, hi],
           "mean_final_error_m": float(np.mean(errs)) if n else None,
           "failed_episodes": [{"task": r["task"], "episode": r["episode"], "error": r["error"]}
                               for r in records if r.get("error")]}
    return out


def _correlation(episodes: list[dict], policies: list[str]) -> dict:
    model = {p: _side([e["model"] | {"task": e["task"], "episode": e["episode"]} for e in episodes if e["policy"] == p])
             for p in policies}
    truth = {p: _side([e["truth"] | {"task": e["task"], "episode": e["episode"]} for e in episodes if e["policy"] == p])
             for p in policies}
    keep = [p for p in policies if model[p]["episodes"]]
    rm, rt = _ranking({p: model[p] for p in keep}), _ranking({p: truth[p] for p in keep})
    sm = [model[p]["success_rate"] for p in keep]
    st = [truth[p]["success_rate"] for p in keep]
    em = [e["model"]["final_position_error_m"] for e in episodes]
    et = [e["truth"]["final_position_error_m"] for e in episodes]
    return {"episodes": len(episodes), "policies": len(keep),
            "pearson": pearson(sm, st), "spearman": spearman(sm, st),
            "same_ranking": rm == rt, "same_top1": bool(rm and rt and rm[0] == rt[0]),
            "ranking_model": rm, "ranking_truth": rt,
            "success_rate_model": dict(zip(keep, sm)), "success_rate_truth": dict(zip(keep, st)),
            "final_error_pearson": pearson(em, et), "final_error_spearman": spearman(em, et)}


def build_report(episodes: list[dict], policies: list[str], tasks: list[str], settings: dict) -> dict:
    """The ``report.json`` dict from per-episode records.

    Each record: ``policy``, ``task`` (name), ``episode``, ``seed``, ``model`` and optionally
    ``truth``: dicts with ``success`` (bool), ``final_position_error_m``, ``final_yaw_error_deg``,
    ``steps``, ``error`` (None or the failure); ``model`` also ``glitched`` (bool),
    ``critic_events`` and ``first_event`` (None or ``{category, frame, object, message}``).

    Returns ``{"settings", "policies": {NAME: {"model": {...}, "truth": {...}}}, "tasks":
    {TASK: {NAME: {"model": {...}, "truth": {...}}}}, "glitched": [...], "episodes": [...]}``
    and, when every record has ``truth``, ``correlation`` (per-policy success rates: Pearson,
    Spearman, same ranking and top-1 (best first: higher success rate, then lower mean final
    error); per-episode final errors: Pearson, Spearman), with the same figures over the
    episodes whose model rollout did not glitch under ``correlation["without_glitched"]``.
    Side dicts hold ``episodes``, ``successes``, ``success_rate``, ``wilson_95`` ([lo, hi]),
    ``mean_final_error_m``, ``failed_episodes`` and (model) ``glitched_episodes``.
    """
    truth = bool(episodes) and all(e.get("truth") is not None for e in episodes)
    out = {"settings": settings, "policies": {}, "tasks": {}}
    for p in policies:
        mine = [e for e in episodes if e["policy"] == p]
        m = _side([e["model"] | {"task": e["task"], "episode": e["episode"]} for e in mine])
        m["glitched_episodes"] = sum(bool(e["model"]["glitched"]) for e in mine)
        out["policies"][p] = {"model": m}
        if truth:
            out["policies"][p]["truth"] = _side([e["truth"] | {"task": e["task"], "episode": e["episode"]} for e in mine])
    for t in tasks:
        row = {}
        for p in policies:
            mine = [e for e in episodes if e["policy"] == p and e["task"] == t]
            cell = {}
            for side in ("model", "truth") if truth else ("model",):
                cell[side] = {"episodes": len(mine), "successes": sum(bool(e[side]["success"]) for e in mine),
                              "mean_final_error_m": float(np.mean([e[side]["final_position_error_m"] for e in mine]))
                              if mine else None}
            cell["model"]["glitched_episodes"] = sum(bool(e["model"]["glitched"]) for e in mine)
            row[p] = cell
        out["tasks"][t] = row
    out["glitched"] = [{"policy": e["policy"], "task": e["task"], "episode": e["episode"],
                        "first_event": e["model"]["first_event"]} for e in episodes if e["model"]["glitched"]]
    if truth:
        corr = _correlation(episodes, policies)
        corr["without_glitched"] = _correlation([e for e in episodes if not e["model"]["glitched"]], policies)
        out["correlation"] = corr
    out["episodes"] = episodes
    return out


def _f(v, fmt="{:.3f}") -> str:
    return "n/a" if v is None else fmt.format(v)


def report_markdown(report: dict) -> str:
    """``report.md``: the per-policy table, the correlation, the glitched episodes and the per-task table."""
    pol = report["policies"]
    truth = "correlation" in report
    s = report["settings"]
    lines = ["# Policy evaluation", "",
             f"{len(report['tasks'])} tasks x {len(pol)} policies x {s.get('episodes_per_task', 1)} episode(s); "
             f"world model: {s.get('backend')}" + (f" ({s.get('checkpoint')})" if s.get("checkpoint") else "")
             + (", truth: Newton" if truth else "") + f"; seed {s.get('seed')}, at most {s.get('max_steps')} frames.", "",
             "## Policies", ""]
    head = "| policy | model success (95% Wilson) | model mean final error | glitched |"
    rule = "|---|---|---|---|"
    if truth:
        head += " Newton success (95% Wilson) | Newton mean final error |"
        rule += "---|---|"
    lines += [head, rule]
    for p, d in pol.items():
        m = d["model"]
        row = (f"| {p} | {m['successes']}/{m['episodes']} = {m['success_rate']:.2f} "
               f"[{m['wilson_95'][0]:.2f}, {m['wilson_95'][1]:.2f}] | {_f(m['mean_final_error_m'] and m['mean_final_error_m'] * 1000, '{:.1f} mm')} | "
               f"{m['glitched_episodes']} |")
        if truth:
            t = d["truth"]
            row += (f" {t['successes']}/{t['episodes']} = {t['success_rate']:.2f} [{t['wilson_95'][0]:.2f}, "
                    f"{t['wilson_95'][1]:.2f}] | {_f(t['mean_final_error_m'] and t['mean_final_error_m'] * 1000, '{:.1f} mm')} |")
        lines.append(row)
    if truth:
        c = report["correlation"]
        w = c["without_glitched"]
        lines += ["", "## Model against Newton", "",
                  "| episodes | success-rate Pearson | Spearman | same ranking | same top-1 | final-error Pearson | final-error Spearman |",
                  "|---|---|---|---|---|---|---|"]
        for label, x in (("all", c), ("without glitched", w)):
            lines.append(f"| {label} ({x['episodes']}) | {_f(x['pearson'])} | {_f(x['spearman'])} | {x['same_ranking']} | "
                         f"{x['same_top1']} | {_f(x['final_error_pearson'])} | {_f(x['final_error_spearman'])} |")
        lines += ["", f"Ranking in the model: {', '.join(c['ranking_model'])}",
                  f"Ranking in Newton: {', '.join(c['ranking_truth'])}"]
    g = report["glitched"]
    lines += ["", "## Glitched world-model episodes", ""]
    if not g:
        lines.append("None: the critic found no event in any world-model rollout.")
    else:
        lines += ["| policy | task | episode | first event |", "|---|---|---|---|"]
        for x in g:
            ev = x["first_event"]
            lines.append(f"| {x['policy']} | {x['task']} | {x['episode']} | {ev['category']} at frame {ev['frame']}: "
                         f"{ev['message']} |")
    failed = [(p, side, f) for p, d in pol.items() for side in d for f in d[side]["failed_episodes"]]
    if failed:
        lines += ["", "## Failed episodes (policy errors)", "", "| policy | world | task | episode | error |",
                  "|---|---|---|---|---|"]
        for p, side, f in failed:
            lines.append(f"| {p} | {side} | {f['task']} | {f['episode']} | {f['error']} |")
    lines += ["", "## Per task (successes / episodes, model" + (" / Newton" if truth else "") + ")", "",
              "| task | " + " | ".join(pol) + " |", "|---|" + "---|" * len(pol)]
    for t, row in report["tasks"].items():
        cells = []
        for p in pol:
            m = row[p]["model"]
            cell = f"{m['successes']}/{m['episodes']}"
            if truth:
                cell += f" / {row[p]['truth']['successes']}/{row[p]['truth']['episodes']}"
            if m["glitched_episodes"]:
                cell += f" ({m['glitched_episodes']} glitched)"
            cells.append(cell)
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the whole evaluation


def _side_record(res: EpisodeResult) -> dict:
    m = res.measures
    return {"success": bool(res.success), "final_position_error_m": float(m["position_error_m"]),
            "final_yaw_error_deg": float(m["yaw_error_deg"]), "fraction_in_region": float(m["fraction_in_region"]),
            "steps": int(res.steps), "error": res.info.get("error")}


def _first_event(report) -> Optional[dict]:
    if not report.events:
        return None
    ev = min(report.events, key=lambda e: (e.frame, e.category))
    return {"category": ev.category, "frame": ev.frame, "object": ev.object, "message": ev.message}


@dataclass
class Evaluation:
    """What :func:`evaluate_policies` returns."""

    report: dict
    """The ``report.json`` dict (:func:`build_report`)."""
    specs: list
    """The :class:`EpisodeSpec` of each episode, in report order."""
    model: list
    """Their world-model :class:`dynamics.tasks.EpisodeResult`\\ s."""
    audits: list
    """Their critic reports (:class:`critic.Report`)."""
    truth: Optional[list]
    """Their Newton results (with ``truth``), else None."""
    timing: dict
    """Seconds: ``model_s`` (all model episodes, packed), ``model_step_s`` (of which the packed
    model steps), ``audit_s`` (the critic on them), ``truth_s`` (Newton, one by one), and
    ``model_vs_truth`` (``truth_s / model_s``)."""


def evaluate_policies(tasks: Sequence[Task], policies: Sequence[tuple[str, Callable]],
                      make_backend: Callable[[Task], object], truth: bool = False, episodes_per_task: int = 1,
                      seed: int = 0, max_steps: int = 240, settings: Optional[dict] = None,
                      task_names: Optional[Sequence[str]] = None,
                      progress: Optional[Callable[[str, int, int], None]] = None) -> Evaluation:
    """Run every policy on every task ``episodes_per_task`` times in the world model (all episodes
    packed, :func:`run_model_episodes`), audit every model rollout with :func:`critic.audit`, and
    with ``truth`` run the same episodes on Newton; build the report.

    Args:
        tasks: the tasks; ``task_names`` name them in the report (default: file stems).
        policies: ``(name, callable)`` pairs (:func:`load_policy`).
        make_backend: ``task -> backend`` (see :class:`PackedStepper`).
        progress: ``progress(stage, done, total)`` with stage ``"model"`` (done: frames stepped,
            total: ``max_steps``), ``"critic"`` or ``"truth"`` (episodes).
    """
    import critic

    names = list(task_names) if task_names is not None else [Path(t.path).stem for t in tasks]
    specs = [EpisodeSpec(pn, fn, ti, e, episode_seed(seed, ti, e))
             for pn, fn in policies for ti in range(len(tasks)) for e in range(episodes_per_task)]
    stepper = PackedStepper(make_backend)
    cb = (lambda f, live: progress("model", f, max_steps)) if progress else None
    t0 = time.perf_counter()
    model = run_model_episodes(tasks, specs, stepper, max_steps, progress=cb)
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    audits = []
    for i, r in enumerate(model):
        audits.append(critic.audit(r.executed))
        if progress:
            progress("critic", i + 1, len(model))
    audit_s = time.perf_counter() - t0
    truth_res, truth_s = None, None
    if truth:
        t0 = time.perf_counter()
        truth_res = run_truth_episodes(tasks, specs, max_steps,
                                       progress=(lambda i: progress("truth", i + 1, len(specs))) if progress else None)
        truth_s = time.perf_counter() - t0
    episodes = []
    for i, (s, r, a) in enumerate(zip(specs, model, audits)):
        rec = {"policy": s.policy, "task": names[s.task_index], "episode": s.episode, "seed": s.seed,
               "model": _side_record(r) | {"glitched": bool(a.events), "critic_events": len(a.events),
                                           "first_event": _first_event(a)}}
        if truth_res is not None:
            rec["truth"] = _side_record(truth_res[i])
        episodes.append(rec)
    settings = dict(settings or {})
    settings.update(episodes_per_task=episodes_per_task, seed=seed, max_steps=max_steps, truth=bool(truth))
    report = build_report(episodes, [p for p, _ in policies], names, settings)
    timing = {"model_s": model_s, "model_step_s": stepper.seconds, "model_packed_steps": stepper.steps,
              "audit_s": audit_s, "truth_s": truth_s,
              "model_vs_truth": (truth_s / model_s) if truth_s else None,
              "model_with_audit_vs_truth": (truth_s / (model_s + audit_s)) if truth_s else None}
    return Evaluation(report, specs, model, audits, truth_res, timing)
