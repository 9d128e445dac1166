"""Where the object model's step spends its time: torch operations per step and CPU time per part.

For the single-scene step that ``bench/model.py --speed-only --objects CKPT`` times against Newton
(``ObjectBackend.predict`` of 10 frames of :func:`bench.model.planning_setup`'s 2k-particle scene, 17
objects) and for its 64 x 20 replan, this prints

* the torch operations dispatched per step (every ATen call, views included), by the function of
  ``dynamics/objects.py`` or ``dynamics/model.py`` that issued them;
* the CPU time (``time.thread_time``, so that other processes on a shared CPU count less) of the
  parts of a step, per step (single scene) or per replan, the minimum over ``--repeats`` calls of
  each part's total.

Run it on two checkouts to compare them (``PYTHONPATH`` picks the code)::

    PYTHONPATH=$PWD python bench/objects_profile.py --objects assets/weights/objects_push.pt
    cd /tmp/base && PYTHONPATH=$PWD python /path/to/this/bench/objects_profile.py --objects assets/weights/objects_push.pt

Prints tables; never collected as a test.
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench/model.py's planning_setup
from model import planning_setup  # noqa: E402

#: (owner, attribute, label) of the parts timed; missing ones (an older checkout) are skipped.
PARTS = (("objects", "ObjectBackend.predict", "predict (everything)"),
         ("objects", "object_rollout", "object_rollout"),
         ("objects", "ObjectNet.step", "ObjectNet.step"),
         ("objects", "ObjectNet.forward", "ObjectNet.forward"),
         ("objects", "ObjectNet.contacts", "ObjectNet.contacts"),
         ("objects", "_mlp_call", "MLPs (8 a step)"),
         ("objects", "angular_velocity", "angular_velocity"),
         ("objects", "fit_poses", "fit_poses (once per rollout)"),
         ("objects", "skin", "skin"),
         ("objects", "_apply", "_apply (rotate body points)"),
         ("objects", "_kinematic_inputs", "_kinematic_inputs"))


def _inputs(obj, candidates: int, horizon: int):
    setup = planning_setup()
    sc, act = setup.scene, setup.action
    hist = np.repeat(sc.positions[None], obj.config.history + 1, 0)
    rng = np.random.default_rng(0)  # the replan's pushes, as bench/model.py's objects_planning_speed
    futs = np.empty((candidates, horizon, len(act.indices), 3), np.float32)
    for k in range(candidates):
        heading = rng.uniform(-0.6, 0.6)
        d = np.array([np.cos(heading), np.sin(heading), 0.0], np.float32) * 0.1 / (act.num_frames - 1)
        futs[k] = sc.positions[act.indices][None] + np.arange(1, horizon + 1, dtype=np.float32)[:, None, None] * d
    return sc, act, hist, futs


def count_ops(be, hist, tool, fut) -> collections.Counter:
    """ATen operations dispatched by one ``be.predict(hist, tool, fut)``, by issuing function."""
    from torch.utils._python_dispatch import TorchDispatchMode

    counts: collections.Counter = collections.Counter()

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            f = sys._getframe(1)
            while f is not None and Path(f.f_code.co_filename).name not in ("objects.py", "model.py"):
                f = f.f_back
            counts[f.f_code.co_name if f is not None else "(other)"] += 1
            return func(*args, **(kwargs or {}))

    with Count():
        be.predict(hist, tool, fut)
    return counts


def time_parts(be, hist, tool, fut, repeats: int) -> dict:
    """Seconds of CPU per part (minimum over ``repeats`` calls of ``be.predict``)."""
    import dynamics.objects as D

    totals = collections.defaultdict(list)
    acc: collections.Counter = collections.Counter()
    saved = []
    for _, attr, label in PARTS:
        owner, name = (D, attr) if "." not in attr else (getattr(D, attr.split(".")[0]), attr.split(".")[1])
        if not hasattr(owner, name):
            continue
        f = getattr(owner, name)
        saved.append((owner, name, f))

        def timed(*a, _f=f, _label=label, **k):
            t = time.thread_time()
            try:
                return _f(*a, **k)
            finally:
                acc[_label] += time.thread_time() - t

        setattr(owner, name, timed)
    try:
        for _ in range(repeats):
            acc.clear()
            be.predict(hist, tool, fut)
            for k, v in acc.items():
                totals[k].append(v)
    finally:
        for owner, name, f in saved:
            setattr(owner, name, f)
    return {k: min(v) for k, v in totals.items()}


def compile_probe(repeats: int = 2000) -> None:
    """``torch.compile`` on this CPU, on one part of the step (the rotation exponential of 17 rotation
    vectors, ``dynamics.model._rotation_from_vector``): compile time, whether the values are the same,
    and the CPU time of a call, eager against compiled."""
    from dynamics.model import _rotation_from_vector

    def per_call(f):
        f()
        t = time.thread_time()
        for _ in range(repeats):
            f()
        return (time.thread_time() - t) / repeats

    x = torch.randn(17, 3, generator=torch.Generator().manual_seed(0)) * 0.01
    t = time.perf_counter()
    compiled = torch.compile(_rotation_from_vector, dynamic=False)
    with torch.inference_mode():
        y = compiled(x)
        took = time.perf_counter() - t
        same = torch.equal(y, _rotation_from_vector(x))
        eager_s, compiled_s = per_call(lambda: _rotation_from_vector(x)), per_call(lambda: compiled(x))
    print(f"\ntorch.compile of _rotation_from_vector (17 vectors): first call {took:.1f} s (compiling); "
          f"values {'the same' if same else 'different'}; per call {eager_s * 1e6:.0f} us eager, "
          f"{compiled_s * 1e6:.0f} us compiled")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="example: PYTHONPATH=$PWD python bench/objects_profile.py "
                                        "--objects assets/weights/objects_push.pt")
    ap.add_argument("--objects", required=True, help="object-model checkpoint (dynamics.objects)")
    ap.add_argument("--repeats", type=int, default=20, help="calls of predict per figure (minimum taken)")
    ap.add_argument("--candidates", type=int, default=64)
    ap.add_argument("--horizon", type=int, default=20)
    ap.add_argument("--compile-probe", action="store_true",
                    help="also time torch.compile on the rotation exponential (compiles for ~30 s on the shared CPU)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    import warp as wp

    wp.config.log_level = wp.LOG_WARNING
    from dynamics.objects import ObjectBackend, load_object_model

    obj = load_object_model(args.objects)
    sc, act, hist, futs = _inputs(obj, args.candidates, args.horizon)
    be = ObjectBackend(obj, sc)
    single = act.positions[None, 1:11]
    be.predict(hist, act.indices, single)  # warm-up
    be.predict(hist, act.indices, futs[:, :1])
    import dynamics.objects

    print(f"code: {Path(dynamics.objects.__file__).resolve().parent.parent}; one thread; "
          f"scene: {sc.num_particles} particles, {sc.num_objects} objects")
    for title, fut, steps in (("single scene, 10 steps", single, 10),
                              (f"replan, {args.candidates} x {args.horizon}", futs, args.horizon)):
        ops = count_ops(be, hist, act.indices, fut)
        parts = time_parts(be, hist, act.indices, fut, args.repeats if steps == 10 else max(2, args.repeats // 10))
        print(f"\n{title}: {sum(ops.values()) / steps:.0f} torch operations per step")
        print("| issued by | operations / step |")
        print("|---|---|")
        for k, v in ops.most_common(12):
            print(f"| {k} | {v / steps:.1f} |")
        print("\n| part (nested: a part includes those below it that it calls) | CPU ms / step | CPU ms / call of predict |")
        print("|---|---|---|")
        for _, _, label in PARTS:
            if label in parts:
                print(f"| {label} | {parts[label] / steps * 1e3:.3f} | {parts[label] * 1e3:.2f} |")
    if args.compile_probe:
        compile_probe()


if __name__ == "__main__":
    main()
