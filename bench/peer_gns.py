"""Side by side with the peer, geoelements/gns (the PyTorch GNS most users would pick), in one run.

What it does, from scratch, on this machine:

1. Sets the peer up in its own virtual environment (``--venv``, made with
   ``python -m venv --system-site-packages`` so the installed torch is reused; only the pinned
   ``PEER_PIP`` packages are installed into it, never a torch) from a checkout of the peer at
   ``PEER_COMMIT`` (``--peer-src DIR``; when DIR has no checkout it is cloned from ``--peer-git``).
2. Swaps the peer's ``radius_graph`` (torch_cluster's, which does not install here) for
   :func:`ckdtree_radius_graph`, a scipy ``cKDTree`` version with the same contract, by assigning
   it to ``gns.learned_simulator.radius_graph`` inside the peer's process. Nothing of the peer's
   files or of our package is edited.
3. Converts our GNS-layout datasets (``metadata.json`` + ``<split>.npz``, see ``particles.io``)
   into the peer's format: ``<split>.npz`` holding ``gns_data``, an object array of
   ``(positions (T, N, 3) float32, particle_type (N,) int64)`` tuples (the peer's
   ``data_loader.load_npz_data`` reads it with pickling on; we only ever write it, in the peer's
   folder), and a ``metadata.json`` with ``bounds``, ``vel/acc_mean/std``,
   ``default_connectivity_radius``, ``dim``, ``dt`` and ``sequence_length``.
4. Trains the peer with its own ``gns/train.py`` and our GNN with ``worldline train`` on the same
   training split, for the same number of optimiser steps with the same batch size, learning-rate
   schedule (1e-3, tenfold down per ``--steps``) and input noise, at the same time, one thread each.
5. Rolls both out on the held-out split (from frame 5, the peer's 6 input frames, to the end;
   kinematic particles on their recorded path), with the shipped GNN
   (``assets/weights/gns_push.pt``), constraints only (constant velocity through our rollout
   constraints) and constant velocity on the same trajectories, and prints one table: rollout MSE
   at 10, 50 and all frames, the audit-clean share, and seconds per step on those scenes.
6. Times one step of the peer at its default size, of the shipped GNN, of our network at the
   peer's size and of Newton on the same ~1k-particle scene (``bench/model.py``'s timing scene).

Peer settings: its defaults (latent 128, 10 message-passing steps, 2-layer MLPs, 16-wide type
embedding, clipped distances to the bounds as node features) except ``noise_std`` and the
learning-rate schedule, which are set to ours because they are in the data's units (the
peer's defaults are for its unit-box data sets). The bounds given to the peer put its lower z
wall on our ground plane and the other walls one metre beyond the data, so the only wall it
can feel is the ground. The particle types are ours (GNS codes; kinematic = 3, as the peer's).

    worldline dataset --out /tmp/ds_peer --scenes 48 --workers 1 --seed 3 --granular-fraction 0.25 --valid 0.1 --test 0
    PYTHONPATH=$PWD python bench/peer_gns.py --train /tmp/ds_peer --test /tmp/ds_model --steps 400 \\
        --work /tmp/peer_work --peer-git https://github.com/geoelements/gns

A second run with the same ``--work`` reuses the checkout, venv, converted data and trained
models (``--retrain`` trains again). Prints figures; never collected as a test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PEER_GIT = "https://github.com/geoelements/gns"
PEER_COMMIT = "3b8fb5cc143690f061a721b63bde3e49eb8f8520"  # "fix message passing (#94)"
PEER_PIP = ("torch-geometric==2.8.1", "absl-py==2.5.1")  # the peer's imports that are not installed here
PEER_INPUT_FRAMES = 6  # gns/train.py INPUT_SEQUENCE_LENGTH: the current + 5 past positions
PEER_NUM_TYPES = 9  # gns/train.py NUM_PARTICLE_TYPES
PEER_KINEMATIC = 3  # gns/train.py KINEMATIC_PARTICLE_ID (ours is 3 too)
WALL_MARGIN = 1.0  # m: the peer's non-ground walls sit this far beyond the data
HERE = Path(__file__).resolve().parent


# =========================================================================== peer side
# Everything in this section runs inside the peer's venv (``--_worker``) and imports only numpy,
# scipy, torch and the peer's own modules.


def ckdtree_radius_graph(x, r, batch=None, loop=False, max_num_neighbors=32, flow="source_to_target",
                         num_workers=1, batch_size=None):
    """Drop-in for ``torch_cluster.radius_graph`` on a scipy ``cKDTree``.

    ``x``: (N, D) float tensor, positions (any length unit; ``r`` in the same unit).
    ``batch``: (N,) int64 graph index of each point, or None (one graph); points of different
    graphs are never joined. Returns ``edge_index`` (2, E) int64 on ``x``'s device:
    ``edge_index[0]`` the neighbour j (source), ``edge_index[1]`` the centre i (target) for
    ``flow="source_to_target"`` (swapped otherwise), every pair with ``|x_i - x_j| < r``
    (strictly, as torch_cluster) and ``i != j`` unless ``loop``. Each centre keeps at most
    ``max_num_neighbors`` neighbours, its nearest ones (torch_cluster keeps the first ones it
    finds, in no guaranteed order; the cap is not reached on our data, see the peer's 128).
    """
    import torch
    from scipy.spatial import cKDTree

    pts = x.detach().cpu().double().numpy()
    b = np.zeros(len(pts), np.int64) if batch is None else batch.detach().cpu().numpy()
    rows, cols = [], []
    for g in np.unique(b):
        idx = np.flatnonzero(b == g)
        pairs = cKDTree(pts[idx]).query_pairs(r, output_type="ndarray")
        if len(pairs):
            d = np.linalg.norm(pts[idx[pairs[:, 0]]] - pts[idx[pairs[:, 1]]], axis=1)
            pairs = pairs[d < r]
        i = np.concatenate([pairs[:, 0], pairs[:, 1]])
        j = np.concatenate([pairs[:, 1], pairs[:, 0]])
        if loop:
            own = np.arange(len(idx))
            i, j = np.concatenate([i, own]), np.concatenate([j, own])
        if max_num_neighbors is not None and len(i):
            d = np.linalg.norm(pts[idx[i]] - pts[idx[j]], axis=1)
            order = np.lexsort((d, i))
            i, j = i[order], j[order]
            start = np.searchsorted(i, i, side="left")
            keep = (np.arange(len(i)) - start) < max_num_neighbors
            i, j = i[keep], j[keep]
        rows.append(idx[i])
        cols.append(idx[j])
    centre = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    neigh = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    src, dst = (neigh, centre) if flow == "source_to_target" else (centre, neigh)
    return torch.as_tensor(np.stack([src, dst]).astype(np.int64), device=x.device)


def _peer_modules(peer_src: str):
    """Import the peer from ``peer_src`` with :func:`ckdtree_radius_graph` in place of torch_cluster's."""
    sys.path.insert(0, str(peer_src))
    from gns import learned_simulator

    learned_simulator.radius_graph = ckdtree_radius_graph
    from gns import train as peer_train

    return learned_simulator, peer_train


def _worker_train(a):
    """Run the peer's own training (its absl ``main``) for ``a.steps`` steps."""
    import torch

    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    np.random.seed(a.seed)
    _, peer_train = _peer_modules(a.peer_src)
    from absl import app

    argv = ["gns-train", "--mode=train", f"--data_path={a.data}/", f"--model_path={a.out}/",
            f"--batch_size={a.batch_size}", f"--noise_std={a.noise_std}", f"--ntraining_steps={a.steps}",
            f"--nsave_steps={a.steps}", f"--lr_init={a.lr}", "--lr_decay=0.1",
            f"--lr_decay_steps={a.lr_decay_steps or a.steps}"]
    t = time.perf_counter()
    try:
        app.run(peer_train.main, argv=argv)
    except SystemExit as exc:  # absl's app.run exits when main returns
        if exc.code not in (0, None):
            raise
    print(json.dumps({"train_s": time.perf_counter() - t}))


def _peer_simulator(peer_train, a, metadata):
    import torch

    sim = peer_train._get_simulator(metadata, a.noise_std, a.noise_std, torch.device("cpu"))
    if a.model:
        sim.load_state_dict(torch.load(a.model, map_location="cpu", weights_only=True))
    sim.eval()
    return sim


def _worker_rollout(a):
    """Roll the trained peer out on every trajectory of ``a.data``/test.npz with its own
    ``gns.train.rollout``; write the predictions as a plain npz (``pred_<i>``: (T - 6, N, 3)
    float32, m) and the seconds per step."""
    import torch

    torch.set_num_threads(1)
    _, peer_train = _peer_modules(a.peer_src)
    from gns import data_loader

    metadata = json.loads(Path(a.data, "metadata.json").read_text())
    sim = _peer_simulator(peer_train, a, metadata)
    ds = data_loader.get_data_loader_by_trajectories(path=f"{a.data}/test.npz")
    out, secs, steps = {}, 0.0, 0
    with torch.no_grad():
        for i, (positions, types, n) in enumerate(ds):
            nsteps = positions.shape[1] - PEER_INPUT_FRAMES
            t = time.perf_counter()
            ro, _ = peer_train.rollout(sim, positions, types, None, torch.tensor([int(n)]), nsteps, torch.device("cpu"))
            secs += time.perf_counter() - t
            steps += nsteps
            out[f"pred_{i}"] = ro["predicted_rollout"].astype(np.float32)
    tmp = Path(a.out).with_suffix(".tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, a.out)
    print(json.dumps({"s_per_step": secs / max(steps, 1), "steps": steps}))


def _worker_time(a):
    """Seconds per step of the peer at its default size on the scene in ``a.scene`` (npz with
    ``positions`` (N, 3) m and ``particle_type`` (N,)), untrained weights (speed does not depend
    on them), one thread, graph included."""
    import torch

    torch.set_num_threads(1)
    _, peer_train = _peer_modules(a.peer_src)
    metadata = json.loads(Path(a.data, "metadata.json").read_text())
    a.model = None
    sim = _peer_simulator(peer_train, a, metadata)
    with np.load(a.scene) as f:
        x, types = torch.as_tensor(f["positions"]), torch.as_tensor(f["particle_type"].astype(np.int64))
    rng = np.random.default_rng(0)
    v = torch.as_tensor(rng.normal(0, 1e-3, x.shape).astype(np.float32))
    seq = torch.stack([x + (k - PEER_INPUT_FRAMES + 1) * v for k in range(PEER_INPUT_FRAMES)], 1)
    n = torch.tensor([x.shape[0]])
    with torch.no_grad():
        sim.predict_positions(seq, n, types)  # warm-up
        t = time.perf_counter()
        for _ in range(a.repeats):
            sim.predict_positions(seq, n, types)
        step = (time.perf_counter() - t) / a.repeats
        t = time.perf_counter()
        sim._compute_graph_connectivity(seq[:, -1], n, sim._connectivity_radius)
        graph = time.perf_counter() - t
    print(json.dumps({"step_s": step, "graph_s": graph, "parameters": sum(p.numel() for p in sim.parameters())}))


def _worker_main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("job", choices=("train", "rollout", "time"))
    ap.add_argument("--peer-src", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--out")
    ap.add_argument("--model")
    ap.add_argument("--scene")
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-decay-steps", type=int, default=0)
    ap.add_argument("--noise-std", type=float, default=2e-5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args(argv)
    {"train": _worker_train, "rollout": _worker_rollout, "time": _worker_time}[a.job](a)


# =========================================================================== our side


def _run(cmd, log: Path, env=None) -> subprocess.Popen:
    print("$ " + " ".join(str(c) for c in cmd) + f"   (log: {log})", flush=True)
    return subprocess.Popen([str(c) for c in cmd], stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)


def _last_json(log: Path) -> dict:
    for line in reversed(log.read_text().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise RuntimeError(f"no result line in {log}; see that log")


def setup_peer(work: Path, peer_src: Path, peer_git: str, venv: Path) -> Path:
    """Check out the peer at :data:`PEER_COMMIT` into ``peer_src`` (cloned from ``peer_git``
    when missing) and make its venv; returns the venv's python."""
    if not (peer_src / "gns" / "learned_simulator.py").exists():
        try:
            if Path(peer_git).is_dir():  # a local (possibly bare, partial) copy: extract its gns/ at the commit
                print(f"extracting gns/ of the peer at {PEER_COMMIT[:7]} from {peer_git} into {peer_src}")
                peer_src.mkdir(parents=True, exist_ok=True)
                arch = subprocess.run(["git", "-C", peer_git, "archive", PEER_COMMIT, "gns", "requirements.txt",
                                       "license.md"], check=True, capture_output=True).stdout
                subprocess.run(["tar", "-x", "-C", str(peer_src)], input=arch, check=True)
            else:
                print(f"cloning the peer from {peer_git} into {peer_src} (needs network access to it)")
                subprocess.run(["git", "clone", "--quiet", peer_git, str(peer_src)], check=True)
        except subprocess.CalledProcessError:
            sys.exit(f"could not get the peer from {peer_git}; pass --peer-src DIR with a checkout of "
                     f"geoelements/gns at {PEER_COMMIT}, or --peer-git with a reachable copy")
    if (peer_src / ".git").exists():
        subprocess.run(["git", "-C", str(peer_src), "-c", "advice.detachedHead=false", "checkout", "--quiet",
                        PEER_COMMIT], check=True)
        head = subprocess.run(["git", "-C", str(peer_src), "rev-parse", "HEAD"], check=True, capture_output=True,
                              text=True).stdout.strip()
        print(f"peer: {peer_src} at {head}")
    py = venv / "bin" / "python"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    probe = "import torch_geometric, absl"
    if subprocess.run([str(py), "-c", probe], capture_output=True).returncode:
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", *PEER_PIP], check=True)
    import torch

    ver = subprocess.run([str(py), "-c", "import torch; print(torch.__version__)"], check=True, capture_output=True,
                         text=True).stdout.strip()
    if ver != torch.__version__:
        sys.exit(f"the peer's venv {venv} has torch {ver}, ours {torch.__version__}: make it with --system-site-packages")
    return py


def peer_types(types: np.ndarray) -> np.ndarray:
    """(N,) int64: our particle-type codes as the peer's (< 9): codes below 9 stay (kinematic is 3
    in both), larger ones (elastic 9, cloth 10, rope 11) take the free codes 0, 1, 2, 4, 5."""
    out = np.asarray(types, np.int64).copy()
    spare = iter(c for c in (0, 1, 2, 4, 5, 7) if c not in set(out.tolist()))
    for c in sorted({int(c) for c in out if c >= PEER_NUM_TYPES}):
        out[out == c] = next(spare)
    return out


def convert_split(rollouts, path: Path) -> Path:
    """Write ``rollouts`` as the peer's ``<split>.npz`` (see the module docstring), atomically."""
    from particles.io import atomic_write

    data = np.empty(len(rollouts), dtype=object)
    for i, ro in enumerate(rollouts):
        data[i] = (ro.positions.astype(np.float32), peer_types(ro.scene.particle_type))
    return atomic_write(path, lambda f: np.savez(f, gns_data=data))  # the peer's own (pickled) layout


def convert(train_ds: Path, test_ds: Path, out: Path, radius: float | None, limit_test: int = 0) -> dict:
    """The peer's dataset folder ``out``: train and valid from ``train_ds``, test from ``test_ds``'s
    test split; metadata (statistics of ``train_ds``) as the peer reads it. Returns the metadata."""
    from particles import load_dataset
    from particles.io import atomic_write, read_metadata

    meta = read_metadata(train_ds)
    splits = {"train": load_dataset(train_ds, "train"), "valid": load_dataset(train_ds, "valid"),
              "test": load_dataset(test_ds, "test")[:limit_test or None]}
    allpos = np.concatenate([ro.positions.reshape(-1, 3) for s in splits.values() for ro in s])
    ground = splits["train"][0].scene.ground
    lo, hi = allpos.min(0) - WALL_MARGIN, allpos.max(0) + WALL_MARGIN
    if ground is not None:
        lo[2] = ground
    peer_meta = {"bounds": [[float(a), float(b)] for a, b in zip(lo, hi)],
                 "sequence_length": int(splits["test"][0].num_frames),
                 "default_connectivity_radius": float(radius or meta["default_connectivity_radius"]),
                 "dim": 3, "dt": float(meta["dt"]),
                 **{k: [float(v) for v in meta[k]] for k in ("vel_mean", "vel_std", "acc_mean", "acc_std")}}
    out.mkdir(parents=True, exist_ok=True)
    for name, ros in splits.items():
        convert_split(ros, out / f"{name}.npz")
    atomic_write(out / "metadata.json", lambda f: f.write(json.dumps(peer_meta, indent=1)), mode="w")
    return peer_meta


PEER_ROW = "geoelements/gns (peer)"


def _rollout_rows(test_ds: Path, ours: dict, peer_result, audit_fn, limit_test: int = 0):
    """Per method: rollout MSE at 10, 50, all frames (mean over trajectories), audit-clean count,
    seconds per step, and on how many trajectories the full-horizon MSE is below constraints only.
    ``peer_result()`` waits for the peer's rollouts (they run meanwhile in its own process) and
    returns (predictions npz path, seconds per step)."""
    import torch

    from particles import Rollout, load_dataset
    from dynamics.evaluate import constant_velocity, constant_velocity_constrained, predict_trajectory, rollout_errors

    trajs = load_dataset(test_ds, "test")[:limit_test or None]
    c = PEER_INPUT_FRAMES - 1
    rows = {name: None for name in (*ours, PEER_ROW, "constraints only (cv + our constraints)", "constant velocity")}

    def add(name, pred, ro, secs, steps):
        if rows[name] is None:
            rows[name] = {"mse": {10: [], 50: [], "full": []}, "clean": [], "secs": 0.0, "steps": 0}
        r = rows[name]
        err = rollout_errors(pred, ro, c, (10, 50, pred.shape[0]))
        r["mse"][10].append(err.mse[10])
        r["mse"][50].append(err.mse[50])
        r["mse"]["full"].append(err.mse[pred.shape[0]])
        r["secs"] += secs
        r["steps"] += steps
        if audit_fn is not None:
            full = Rollout(ro.scene, np.concatenate([ro.positions[:c + 1], pred], 0), ro.dt)
            r["clean"].append(len(audit_fn(full).events) == 0)

    torch.set_num_threads(1)
    for i, ro in enumerate(trajs):
        steps = ro.num_frames - 1 - c
        for name, model in ours.items():
            t = time.perf_counter()
            pred = predict_trajectory(model, ro, c, steps, rigid=True)
            add(name, pred, ro, time.perf_counter() - t, steps)
        t = time.perf_counter()
        pred = constant_velocity_constrained(ro, c, steps)
        add("constraints only (cv + our constraints)", pred, ro, time.perf_counter() - t, steps)
        t = time.perf_counter()
        pred = constant_velocity(ro, c, steps)
        add("constant velocity", pred, ro, time.perf_counter() - t, steps)
    peer_pred, peer_s = peer_result()
    with np.load(peer_pred) as f:
        peer = {k: f[k] for k in f.files}
    for i, ro in enumerate(trajs):
        steps = ro.num_frames - 1 - c
        p = peer[f"pred_{i}"]
        if p.shape != (steps, ro.scene.num_particles, 3):
            raise RuntimeError(f"peer prediction {i} has shape {p.shape}, expected {(steps, ro.scene.num_particles, 3)}")
        add(PEER_ROW, p, ro, peer_s * steps, steps)
    base = np.array(rows["constraints only (cv + our constraints)"]["mse"]["full"])
    for r in rows.values():
        r["below_base"] = int((np.array(r["mse"]["full"]) < base).sum())
    return rows, len(trajs)


def _timing(py, peer_src: Path, peer_data: Path, work: Path, shipped, dt: float, repeats: int):
    """Seconds per step on ``bench/model.py``'s ~1k-particle timing scene (rigid 5^3 boxes)."""
    import importlib.util

    import torch

    from dynamics.model import GNS, ModelConfig, pack_scenes

    spec = importlib.util.spec_from_file_location("bench_model", HERE / "model.py")
    bm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bm)
    sc = bm.timing_scene(1000, 0.01)
    scene_file = work / "timing_scene.npz"
    np.savez(scene_file, positions=sc.positions.astype(np.float32), particle_type=peer_types(sc.particle_type))
    p = subprocess.run([str(py), __file__, "--_worker", "time", "--peer-src", str(peer_src), "--data", str(peer_data),
                        "--scene", str(scene_file), "--repeats", str(repeats)], capture_output=True, text=True)
    if p.returncode:
        raise RuntimeError(f"peer timing failed:\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}")
    peer = json.loads([ln for ln in p.stdout.splitlines() if ln.startswith("{")][-1])
    torch.set_num_threads(1)
    batch = pack_scenes([sc])
    rng = np.random.default_rng(0)
    vel = rng.normal(0, 1e-3, (sc.num_particles, 3)).astype(np.float32)

    def step_s(model, constrained):
        c = model.config.history
        hist = torch.as_tensor(np.stack([sc.positions + (k - c) * vel for k in range(c + 1)]))
        with torch.no_grad():
            model.next_positions(hist, batch, rigid=constrained, collide=constrained)
            t = time.perf_counter()
            for _ in range(repeats):
                model.next_positions(hist, batch, rigid=constrained, collide=constrained)
        return (time.perf_counter() - t) / repeats

    big = GNS(ModelConfig(connectivity_radius=0.04, dt=dt, latent=128, message_steps=10, hidden_layers=2,
                          type_embedding=16)).eval()
    rows = [("geoelements/gns, its default size (latent 128, 10 steps), cKDTree graph", peer["step_s"],
             peer["parameters"]),
            ("shipped GNN (latent 64, 5 steps), with its constraints", step_s(shipped, True), None),
            ("shipped GNN, network only", step_s(shipped, False), None),
            ("our GNN at the peer's size (latent 128, 10 steps), network only", step_s(big, False), None),
            ("our GNN at the peer's size, with the constraints", step_s(big, True), None),
            ("Newton (ground truth) on the same scene", bm._sim_step(sc, dt), None)]
    for i, (name, s, n) in enumerate(rows):
        if n is None and "GNN" in name:
            m = shipped if "shipped" in name else big
            rows[i] = (name, s, sum(p.numel() for p in m.parameters()))
    return sc.num_particles, peer["graph_s"], rows


def main(argv=None):
    if argv is None and len(sys.argv) > 1 and sys.argv[1] == "--_worker":
        return _worker_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="example:\n  PYTHONPATH=$PWD python bench/peer_gns.py --train /tmp/ds_peer "
                                        "--test /tmp/ds_model --steps 400 --work /tmp/peer_work")
    ap.add_argument("--train", required=True, type=Path, help="our GNS-layout dataset to train both on (train, valid)")
    ap.add_argument("--test", required=True, type=Path, help="our dataset whose test split both are rolled out on")
    ap.add_argument("--work", type=Path, default=Path("peer_work"), help="folder for the checkout, venv, data, models")
    ap.add_argument("--peer-src", type=Path, help="a checkout of geoelements/gns (default: WORK/gns, cloned)")
    ap.add_argument("--peer-git", default=PEER_GIT, help="where to clone the peer from when --peer-src has none")
    ap.add_argument("--venv", type=Path, help="the peer's venv (default: WORK/venv)")
    ap.add_argument("--steps", type=int, default=400, help="optimiser steps for each of the two trainings")
    ap.add_argument("--lr-decay-steps", type=int, help="steps per tenfold learning-rate decay, both (default: --steps)")
    ap.add_argument("--batch-size", type=int, default=4, help="windows per step, both")
    ap.add_argument("--noise-std", type=float, default=2e-5, help="random-walk input noise, m, both (ours as shipped)")
    ap.add_argument("--checkpoint", type=Path, default=HERE.parent / "assets" / "weights" / "gns_push.pt",
                    help="the shipped GNN")
    ap.add_argument("--retrain", action="store_true", help="train again even when WORK has the trained models")
    ap.add_argument("--repeats", type=int, default=5, help="timed steps on the 1k-particle scene")
    ap.add_argument("--limit-test", type=int, default=0, help="only the first N test trajectories (0: all; a quick check)")
    args = ap.parse_args(argv)
    decay = args.lr_decay_steps or args.steps
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    peer_src = (args.peer_src or work / "gns").resolve()
    py = setup_peer(work, peer_src, args.peer_git, (args.venv or work / "venv").resolve())

    import torch
    import warp as wp

    from dynamics.train import load_model
    from particles.io import read_metadata

    wp.config.log_level = wp.LOG_WARNING
    torch.set_num_threads(1)
    from particles.io import FileFormatError

    peer_data = work / "peer_data"
    try:
        peer_meta = convert(args.train.resolve(), args.test.resolve(), peer_data, None, args.limit_test)
    except (FileFormatError, FileNotFoundError, KeyError, ValueError) as exc:  # one line, exit 2, as the CLI
        print(f"error: bad dataset ({args.train} or {args.test}): {exc}", file=sys.stderr)
        sys.exit(2)
    peer_dir, ours_dir = work / f"peer_model_{args.steps}", work / f"ours_model_{args.steps}"
    peer_ckpt, ours_ckpt = peer_dir / f"model-{args.steps}.pt", ours_dir / "model.pt"
    times = {}
    if args.retrain or not peer_ckpt.exists() or not ours_ckpt.exists():
        peer_dir.mkdir(exist_ok=True)
        env = dict(os.environ, PYTHONPATH=str(HERE.parent), OMP_NUM_THREADS="1")
        t0 = time.perf_counter()
        jobs = {
            "peer": _run([py, __file__, "--_worker", "train", "--peer-src", peer_src, "--data", peer_data, "--out",
                          peer_dir, "--steps", args.steps, "--batch-size", args.batch_size, "--noise-std",
                          args.noise_std, "--lr-decay-steps", decay], work / "peer_train.log", env),
            "ours": _run([sys.executable, "-m", "worldline", "train", args.train.resolve(), "--out", ours_dir,
                          "--steps", args.steps, "--batch-size", args.batch_size, "--lr", "1e-3",
                          "--lr-decay-steps", decay, "--noise-std", args.noise_std, "--seed", "0",
                          "--validate-every", "0", "--checkpoint-every", "0", "--threads", "1", "--no-progress"],
                         work / "ours_train.log", env)}
        while jobs:
            for name, p in list(jobs.items()):
                if p.poll() is not None:
                    if p.returncode:
                        sys.exit(f"{name} training failed (exit {p.returncode}); see {work}/{name}_train.log")
                    times[name] = time.perf_counter() - t0
                    del jobs[name]
            time.sleep(2)
        (work / f"train_times_{args.steps}.json").write_text(json.dumps(times))
    elif (work / f"train_times_{args.steps}.json").exists():
        times = json.loads((work / f"train_times_{args.steps}.json").read_text())
    pred_file = work / f"peer_pred_{args.steps}.npz"
    log = work / "peer_rollout.log"
    proc = _run([py, __file__, "--_worker", "rollout", "--peer-src", peer_src, "--data", peer_data, "--model", peer_ckpt,
                 "--out", pred_file, "--noise-std", args.noise_std], log)

    def peer_result():
        if proc.wait():
            sys.exit(f"peer rollout failed; see {log}")
        return pred_file, _last_json(log)["s_per_step"]
    shipped = load_model(args.checkpoint)
    ours = {"shipped GNN (154 scenes, 8000 steps), its constraints": shipped,
            "our GNN, same data and steps as the peer, its constraints": load_model(ours_ckpt)}
    try:
        from critic import audit as audit_fn
    except ImportError:
        audit_fn = None
    rows, ntest = _rollout_rows(args.test.resolve(), ours, peer_result, audit_fn, args.limit_test)
    meta = read_metadata(args.train)
    ntrain = len(json.loads((args.train / "metadata.json").read_text()).get("scene_splits", {}).get("train", [])) or "?"
    print(f"\npeer: geoelements/gns {PEER_COMMIT[:7]} (radius_graph: scipy cKDTree), connectivity radius "
          f"{peer_meta['default_connectivity_radius']} m; ours: current `worldline train` defaults")
    print(f"both trained on {args.train} train split ({ntrain} scenes, seed {meta.get('seed')}) for {args.steps} steps "
          f"of {args.batch_size} windows, lr 1e-3 tenfold down per {decay} steps, noise {args.noise_std} m, "
          f"1 thread each, wall clock on this shared CPU: peer {times.get('peer', float('nan')) / 60:.1f} min, "
          f"ours {times.get('ours', float('nan')) / 60:.1f} min")
    print(f"rolled out on {args.test} test split ({ntest} trajectories) from frame {PEER_INPUT_FRAMES - 1} to the "
          f"end, kinematic particles on their recorded path; CPU, 1 thread")
    print(f"\n| {'method':58} | {'MSE @10 (m^2)':>13} | {'MSE @50 (m^2)':>13} | {'MSE full (m^2)':>14} | "
          f"{'< cons. only':>12} | {'audit-clean':>11} | {'s / step':>9} |")
    print(f"|{'-' * 60}|{'-' * 15}|{'-' * 15}|{'-' * 16}|{'-' * 14}|{'-' * 13}|{'-' * 11}|")
    for name, r in rows.items():
        clean = f"{sum(r['clean'])}/{len(r['clean'])}" if r["clean"] else "n/a"
        print(f"| {name:58} | {np.mean(r['mse'][10]):>13.3e} | {np.mean(r['mse'][50]):>13.3e} | "
              f"{np.mean(r['mse']['full']):>14.3e} | {r['below_base']:>9}/{ntest:<2} | {clean:>11} | "
              f"{r['secs'] / max(r['steps'], 1):>9.2e} |")
    n, graph_s, trows = _timing(py, peer_src, peer_data, work, shipped, float(peer_meta["dt"]), args.repeats)
    print(f"\none step on the same {n}-particle scene (bench/model.py timing_scene: rigid 5x5x5 boxes), CPU, 1 thread"
          f" (the peer's cKDTree graph: {graph_s:.3e} s of its step)")
    print(f"| {'model':72} | {'parameters':>10} | {'s / step':>9} |")
    print(f"|{'-' * 74}|{'-' * 12}|{'-' * 11}|")
    for name, s, npar in trows:
        print(f"| {name:72} | {npar if npar else '-':>10} | {s:>9.3e} |" if s is not None else f"| {name:72} | - | n/a |")
    peer_step, our_step = trows[0][1], trows[1][1]
    print(f"shipped GNN step / peer step = {our_step / peer_step:.2f} (goal: <= 0.5, with lower MSE)")


if __name__ == "__main__":
    main()
