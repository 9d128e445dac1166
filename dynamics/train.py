"""Training of the learned dynamics on GNS-layout datasets, on one process or many (DDP).

One training step draws a global batch of ``batch_size`` windows ``(trajectory, t)`` from
the train split (every process draws the same ones from the same seeded generator and
keeps its own slice, so a run on P processes follows the same sequence as one process),
adds random-walk noise to the input positions (GNS), and minimises the mean squared
error of the normalised acceleration of non-kinematic particles (with ``constrained``, of
the acceleration implied by the prediction after the rollout constraints). Adam with the GNS
exponential learning-rate decay ``lr(s) = lr_final + (lr - lr_final) * 0.1 ** (s / lr_decay_steps)``.

Checkpoints (``RUN/checkpoint.pt``) hold tensors and plain values only and load with
``torch.load(weights_only=True)``: model and optimizer state, the step, the sampling
generator's state and both configs, under a format name and version. Resuming from one
continues the very same sequence of batches, noise and learning rates.

Multi-process: ``torchrun --nproc_per_node=P -m worldline train ...``; the process group
uses gloo on CPU and NCCL on CUDA. Each process's loss is the mean over its ``batch_size / P``
windows of the per-window mean over particles; DDP averages gradients, which gives the
gradient of the global batch's mean.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from particles import FileFormatError, Rollout, ValidationError, load_dataset, read_metadata
from particles.io import atomic_write, gns_statistics

from .evaluate import one_step_mse, position_mse, predict_trajectory
from .model import GNS, ModelConfig, constrain, pack_scenes

__all__ = ["TrainConfig", "CHECKPOINT_FORMAT", "CHECKPOINT_VERSION", "CONNECTIVITY_RADII", "train", "load_checkpoint",
           "load_model", "model_from_checkpoint", "read_checkpoint_file", "check_checkpoint", "save_model",
           "model_config_for_dataset", "random_walk_noise", "training_distribution",
           "out_of_distribution", "tool_shape", "checkpoint_distribution"]

CHECKPOINT_FORMAT = "worldline.gns_checkpoint"
CHECKPOINT_VERSION = 1
#: GNS learning-rate schedule: the rate falls by this factor every ``lr_decay_steps``.
LR_DECAY_FACTOR = 0.1


def decayed_lr(lr: float, lr_final: float, decay_steps: int, step: int) -> float:
    """``lr_final + (lr - lr_final) * LR_DECAY_FACTOR ** (step / decay_steps)``: the learning rate of
    optimiser step ``step`` (0-based) for the GNN's and the object model's training."""
    return lr_final + (lr - lr_final) * LR_DECAY_FACTOR ** (step / decay_steps)


#: Velocity/acceleration scale, in connectivity radii per frame, of a dataset in which nothing moves.
STILL_SCALE = 1e-3
#: Connectivity radius of new model configs, in particle radii r: between the cubic lattice's third
#: (2 sqrt(3) r = 3.46 r) and fourth (4 r) neighbour distances, so that no resting pair of a lattice
#: sits on the radius and lattice edges do not flicker with round-off and noise. The GNS-layout
#: default of 4 r (two spacings) sits exactly on the fourth shell; checkpoints keep their own value.
CONNECTIVITY_RADII = 3.7


@dataclass(frozen=True)
class TrainConfig:
    """How to train (plain values; stored in checkpoints)."""

    steps: int = 1000
    """Total optimiser steps of the run (a resumed run continues up to this)."""
    batch_size: int = 2
    """Windows (graphs) per global batch; must divide by the number of processes."""
    lr: float = 1e-3
    """Initial learning rate."""
    lr_final: float = 1e-5
    """Learning rate the schedule decays towards."""
    lr_decay_steps: int = 5000
    """Steps over which the rate falls by a factor of 10 (above ``lr_final``)."""
    noise_std: float = 0.0
    """Std of the random-walk noise on the last input position, m; 0 means 0.1 x the mean
    velocity std of the dataset (resolved at start and stored)."""
    seed: int = 0
    """Seeds the weights, the batches and the noise."""
    constrained: bool = True
    """Apply the rollout-time constraints (:func:`dynamics.model.constrain`: rigid, contact and
    ground projections) to the predicted positions inside the loss, so the network learns only
    what they leave to it (e.g. a pushed block's momentum) instead of the impulses they supply."""
    validate_every: int = 100
    """Steps between validations (0: only at the end)."""
    checkpoint_every: int = 100
    """Steps between checkpoints (0: only at the end)."""
    valid_windows: int = 16
    """Windows of the valid split for the one-step MSE."""
    valid_rollouts: int = 4
    """Trajectories of the valid split for the rollout MSE."""
    valid_rollout_steps: int = 20
    """Frames of the validation rollouts."""

    def __post_init__(self):
        for name, lo in (("steps", 0), ("batch_size", 1), ("lr_decay_steps", 1), ("validate_every", 0),
                         ("checkpoint_every", 0), ("valid_windows", 0), ("valid_rollouts", 0),
                         ("valid_rollout_steps", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValidationError(name, f"must be an integer >= {lo}, got {v!r}")
        for name in ("lr", "lr_final"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValidationError(name, f"must be a positive learning rate, got {v!r}")
        if not isinstance(self.constrained, (bool, np.bool_)):
            raise ValidationError("constrained", f"must be true or false, got {self.constrained!r}")
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValidationError("noise_std", f"must be >= 0 m, got {self.noise_std!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based)."""
        return decayed_lr(self.lr, self.lr_final, self.lr_decay_steps, step)


# --------------------------------------------------------------------------- data


def _dataset_statistics(folder, meta: dict, train: Sequence[Rollout]) -> dict:
    """The metadata's vel/acc statistics; computed from the train split when the metadata lacks
    them or a std is not positive."""
    keys = ("vel_mean", "vel_std", "acc_mean", "acc_std")
    if any(k not in meta for k in keys):
        stats = gns_statistics(r.positions for r in train)
    else:
        stats = {k: meta[k] for k in keys}
    if any(not (s > 0 and math.isfinite(s)) for k in ("vel_std", "acc_std") for s in stats[k]):
        stats = gns_statistics(r.positions for r in train)
    for k in ("vel_std", "acc_std"):
        # an axis with no motion at all (e.g. boxes that only slide): borrow the largest other
        # axis's scale, so the model's predictions along it stay as small as the data's
        moving = [s for s in stats[k] if s > 0]
        fill = max(moving) if moving else STILL_SCALE * float(meta["default_connectivity_radius"])
        stats[k] = [s if s > 0 else fill for s in stats[k]]
    return stats


def model_config_for_dataset(folder, train: Optional[Sequence[Rollout]] = None, **overrides) -> ModelConfig:
    """A :class:`ModelConfig` with the dataset's dt, statistics and bounds, a connectivity radius of
    :data:`CONNECTIVITY_RADII` particle radii (the train split's largest radius; the metadata's
    ``default_connectivity_radius`` when the split is empty) and physical node features on;
    ``overrides`` set any field (connectivity_radius, latent, message_steps, history, physical_features, ...)."""
    meta = read_metadata(folder)
    train = train if train is not None else load_dataset(folder, "train")
    stats = _dataset_statistics(folder, meta, train)
    radius = CONNECTIVITY_RADII * max(r.scene.radius for r in train) if train else meta["default_connectivity_radius"]
    fields = dict(connectivity_radius=radius, dt=meta["dt"], bounds=tuple(tuple(b) for b in meta["bounds"]),
                  physical_features=True, **stats)
    fields.update(overrides)
    return ModelConfig(**fields)


#: Per-object parameters that :func:`training_distribution` records when the dataset carries them.
_OBJECT_PARAMETERS = {"density": "object_density", "friction": "object_friction", "restitution": "object_restitution",
                      "stiffness": "object_stiffness"}


def _recorded_keys(folder, split: str = "train") -> set:
    """Field names (without the ``traj_<i>/`` prefix) that the split's first trajectory stores."""
    path = Path(folder) / f"{split}.npz"
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k.split("/", 1)[1] for k in z.files if k.startswith("traj_0/")}
    except (OSError, ValueError):
        return set()


def tool_shape(scene, indices: Optional[np.ndarray] = None) -> Optional[str]:
    """``"pusher"`` when the kinematic object named ``tool`` (or ``indices``) is one connected piece of
    touching particles (centres within 2.2 r), ``"gripper"`` when it is two or more; None without a tool."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    if indices is None:
        if "tool" not in scene.object_name:
            return None
        indices = np.flatnonzero(scene.object_id == scene.object_name.index("tool"))
    pts = scene.positions[np.asarray(indices, np.int64)]
    if len(pts) == 0:
        return None
    pairs = cKDTree(pts).query_pairs(2.2 * scene.radius, output_type="ndarray")
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(len(pts), len(pts)))
    return "pusher" if connected_components(graph, directed=False)[0] == 1 else "gripper"


def training_distribution(folder, train: Sequence[Rollout]) -> dict:
    """What a model trained on ``train`` (the train split of dataset ``folder``) has seen, as plain values:
    ``materials`` of objects with free particles, ``tools`` (tool shapes, :func:`tool_shape`), and
    per-object ranges ``[min, max]`` of density (kg/m^3), friction, restitution and stiffness (Pa)
    over free objects, only for the parameters the dataset's files record. Stored in checkpoints
    (``info["training_distribution"]``) for the out-of-distribution warning (:func:`out_of_distribution`)."""
    recorded = _recorded_keys(folder)
    materials, tools = set(), set()
    values = {name: [] for name, key in _OBJECT_PARAMETERS.items() if key in recorded}
    for ro in train:
        sc = ro.scene
        free_objects = np.unique(sc.object_id[~sc.kinematic])
        materials.update(sc.object_material[k] for k in free_objects)
        shape = tool_shape(sc)
        if shape is not None:
            tools.add(shape)
        for name in values:
            values[name].extend(np.asarray(getattr(sc, _OBJECT_PARAMETERS[name]))[free_objects].tolist())
    out = {"materials": sorted(materials), "tools": sorted(tools)}
    for name, v in values.items():
        if v:
            out[name] = [float(min(v)), float(max(v))]
    return out


def out_of_distribution(dist: Optional[dict], scene, tool: Optional[str] = None) -> list[str]:
    """Reasons, one line each, why ``scene`` lies outside the training distribution ``dist`` (from
    :func:`training_distribution`); ``["unknown training distribution"]`` when ``dist`` is None.

    Checks the materials of objects with free particles, the tool shape (``tool``: "pusher",
    "gripper" or None; by default inferred with :func:`tool_shape`) and the recorded per-object
    parameter ranges (a value outside ``[min, max]`` of training; stiffness only for deformable objects)."""
    if not dist:
        return ["unknown training distribution"]
    out = []
    free_objects = np.unique(scene.object_id[~scene.kinematic])
    seen = set(dist.get("materials", []))
    for k in free_objects:
        mat = scene.object_material[k]
        if mat not in seen:
            out.append(f"object {scene.object_name[k]!r} is {mat}; trained on {', '.join(sorted(seen)) or 'nothing'} only")
    tool = tool_shape(scene) if tool is None else tool
    tools = set(dist.get("tools", []))
    if tool is not None and tool not in tools:
        out.append(f"the tool is a {tool}; trained with {', '.join(sorted(tools)) or 'no tool'}")
    for name, key in _OBJECT_PARAMETERS.items():
        if name not in dist:
            continue
        lo, hi = dist[name]
        vals = np.asarray(getattr(scene, key))
        for k in free_objects:
            if name == "stiffness" and scene.object_material[k] == "rigid":
                continue  # a rigid body's Young's modulus reaches neither Newton's rigid solver nor the models
            v = float(vals[k])
            if not lo * (1 - 1e-6) <= v <= hi * (1 + 1e-6):
                out.append(f"object {scene.object_name[k]!r} has {name} {v:g}; trained on {lo:g}..{hi:g}")
    return out


def random_walk_noise(generator: torch.Generator, frames: int, n: int, std: float, dtype=torch.float32) -> torch.Tensor:
    """(frames, n, 3) position noise, m: zero at the oldest frame, a random walk of velocity
    noise after it whose last frame has std ``std`` (GNS)."""
    steps = frames - 1
    vel = torch.randn((steps, n, 3), generator=generator, dtype=dtype) * (std / math.sqrt(steps))
    return torch.cat([torch.zeros((1, n, 3), dtype=dtype), vel.cumsum(0)], 0)


class _Windows:
    """Every ``(trajectory, t)`` with ``C <= t <= T - 2`` of a split."""

    def __init__(self, rollouts: Sequence[Rollout], history: int):
        self.rollouts = list(rollouts)
        self.positions = [torch.from_numpy(np.ascontiguousarray(r.positions)) for r in self.rollouts]
        self.index = [(i, t) for i, r in enumerate(self.rollouts) for t in range(history, r.num_frames - 1)]
        if not self.index:
            raise FileFormatError("dataset", "sequence_length", f"trajectories need more than {history + 1} frames")

    def __len__(self):
        return len(self.index)


def _make_batch(data: _Windows, picks: Sequence[int], noises: Sequence[torch.Tensor], history: int, dtype):
    """Packed inputs and normalised-acceleration targets of some windows."""
    hists, nexts, scenes = [], [], []
    for k, noise in zip(picks, noises):
        i, t = data.index[k]
        pos = data.positions[i]
        scenes.append(data.rollouts[i].scene)
        hists.append(pos[t - history:t + 1].to(dtype) + noise)
        nexts.append(pos[t + 1].to(dtype) + noise[-1])  # GNS: the target moves with the last input's noise
    batch = pack_scenes(scenes, dtype=dtype)
    return batch, torch.cat(hists, 1), torch.cat(nexts, 0)


def _draw(gen: torch.Generator, data: _Windows, batch_size: int, history: int, noise_std: float, dtype):
    """The global batch of one step: window picks and their noise (kinematic particles noise-free)."""
    picks = torch.randint(len(data), (batch_size,), generator=gen).tolist()
    noises = []
    for k in picks:
        i, _ = data.index[k]
        sc = data.rollouts[i].scene
        noise = random_walk_noise(gen, history + 1, sc.num_particles, noise_std, dtype)
        noise[:, torch.from_numpy(sc.kinematic)] = 0.0
        noises.append(noise)
    return picks, noises


def _loss(model, module: GNS, batch, hist: torch.Tensor, target: torch.Tensor, constrained: bool = True) -> torch.Tensor:
    """Mean over the batch's scenes of the mean over their free particles of the squared
    normalised-acceleration error (summed over the 3 axes); with ``constrained``, of the
    acceleration that the constrained next positions imply."""
    acc = target - 2 * hist[-1] + hist[-2]
    acc_norm = (acc - module.acc_mean) / module.acc_std
    pred = model(hist, batch, target)
    if constrained:
        nxt = constrain(module.integrate(hist, pred), batch, target)
        pred = (nxt - 2 * hist[-1] + hist[-2] - module.acc_mean) / module.acc_std
    free = (~batch.kinematic).to(pred.dtype)
    per_particle = ((pred - acc_norm) ** 2).sum(1) * free
    sums = pred.new_zeros(batch.num_scenes).index_add_(0, batch.batch, per_particle)
    counts = pred.new_zeros(batch.num_scenes).index_add_(0, batch.batch, free).clamp_min(1.0)
    return (sums / counts).mean()


# --------------------------------------------------------------------------- checkpoints


def _save(path: Path, obj: dict) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))



def _unpickling_problem(exc: Exception) -> str:
    """One line for torch's multi-line ``weights_only`` refusal: what the file holds that is refused."""
    text = str(exc)
    detail = ""
    for line in text.splitlines():
        line = line.strip()
        if "Unsupported global" in line or "Unsupported operand" in line or "WeightsUnpickler error" in line:
            detail = line.split("WeightsUnpickler error:")[-1].strip()
            break
    if "invalid load key" in text or "could not find MARK" in text or "unpickling stack underflow" in text or not detail:
        return "is not a PyTorch checkpoint (not a zip archive or a pickle torch can read)"
    detail = detail.split(". ")[0].rstrip(".")[:160]
    return f"holds more than tensors and plain values ({detail}); worldline loads checkpoints with weights_only=True"


def _load_problem(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, EOFError) or "central directory" in text or "zip archive" in text or "truncated" in text.lower():
        return "is truncated or not a PyTorch checkpoint (its zip archive cannot be read)"
    first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
    return f"is not a readable checkpoint ({type(exc).__name__}{': ' + first if first else ''})"


def load_checkpoint(path) -> dict:
    """Read a checkpoint (``weights_only=True``) and check its format and version."""
    return check_checkpoint(read_checkpoint_file(path), path)


def read_checkpoint_file(path):
    """What ``torch.load(path, weights_only=True)`` reads, any format (a GNN or an object model), with a
    clear :class:`particles.FileFormatError` naming the file for a missing, empty, unreadable or
    pickled-object file."""
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, None, "no such checkpoint")
    if path.is_dir():
        raise FileFormatError(path, None, "is a folder, expected a checkpoint file (RUN/model.pt or RUN/checkpoint.pt)")
    if path.stat().st_size == 0:
        raise FileFormatError(path, None, "is empty, expected a checkpoint")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of files it then refuses
            warnings.simplefilter("ignore")
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise FileFormatError(path, None, _unpickling_problem(exc)) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise FileFormatError(path, None, _load_problem(exc)) from None
    except Exception as exc:
        import zipfile

        if not zipfile.is_zipfile(path):
            raise FileFormatError(path, None, "is not a PyTorch checkpoint (not a zip archive or a pickle torch "
                                              "can read)") from None
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise FileFormatError(path, None, f"is not a readable checkpoint ({type(exc).__name__}{': ' + first if first else ''})") from None
    return ckpt


def check_checkpoint(ckpt, path) -> dict:
    """``ckpt`` (read from ``path``, named in errors) if it is a GNN checkpoint of a version this reads."""
    path = Path(path)
    if not isinstance(ckpt, dict):
        raise FileFormatError(path, "format", f"expected a worldline checkpoint (a dict with format "
                                              f"{CHECKPOINT_FORMAT!r}), got a {type(ckpt).__name__}")
    if ckpt.get("format") != CHECKPOINT_FORMAT:
        raise FileFormatError(path, "format", f"expected {CHECKPOINT_FORMAT!r}, got {str(ckpt.get('format'))[:60]!r}")
    if ckpt.get("format_version", 0) > CHECKPOINT_VERSION:
        raise FileFormatError(path, "format_version",
                              f"is {ckpt.get('format_version')}; this worldline reads up to {CHECKPOINT_VERSION}")
    for key in ("model_config", "model"):
        if key not in ckpt:
            raise FileFormatError(path, key, "missing")
    return ckpt


def checkpoint_distribution(ckpt: dict) -> Optional[dict]:
    """The training distribution (:func:`training_distribution`) a checkpoint records, or None
    (checkpoints from before it was recorded, such as the first shipped weights)."""
    dist = ckpt.get("training_distribution")
    if dist is None and isinstance(ckpt.get("info"), dict):
        dist = ckpt["info"].get("training_distribution")
    return dist if isinstance(dist, dict) else None


def load_model(path, device="cpu") -> GNS:
    """The trained :class:`GNS` of a checkpoint (full or model-only), in eval mode."""
    return model_from_checkpoint(load_checkpoint(path), path, device)


def model_from_checkpoint(ckpt: dict, path, device="cpu") -> GNS:
    """The :class:`GNS` of a checkpoint dict already read by :func:`load_checkpoint` from ``path``
    (named in errors), in eval mode; for callers that need the dict too, so the file is read once."""
    try:
        model = GNS(ModelConfig.from_dict(ckpt["model_config"]))
    except ValidationError as exc:
        raise FileFormatError(path, f"model_config.{exc.field}", exc.problem) from None
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise FileFormatError(path, "model_config", f"is not a model configuration ({type(exc).__name__}: "
                                                    f"{' '.join(str(exc).split())[:160]})") from None
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, TypeError, AttributeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise FileFormatError(path, "model", f"does not match its config ({first[:160]})") from None
    return model.to(device).eval()


def save_model(path, model: GNS, extra: Optional[dict] = None) -> Path:
    """Write a model-only checkpoint (weights, config, plain ``extra`` such as how it was trained)."""
    obj = {"format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION,
           "model_config": model.config.to_dict(), "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
           "info": dict(extra or {})}
    _save(Path(path), obj)
    return Path(path)


# --------------------------------------------------------------------------- training loop


def _validate(module: GNS, valid: _Windows, cfg: TrainConfig, seed: int, device) -> dict:
    """One-step MSE on a fixed seeded set of windows and rollout MSE on the first trajectories (m^2)."""
    module.eval()
    gen = torch.Generator().manual_seed(seed + 1)
    n = min(cfg.valid_windows, len(valid))
    windows = [valid.index[k] for k in torch.randperm(len(valid), generator=gen)[:n].tolist()]
    out = {"one_step_mse": one_step_mse(module, valid.rollouts, windows, device=device)}
    c = module.config.history
    errs = []
    for ro in valid.rollouts[:cfg.valid_rollouts]:
        steps = min(cfg.valid_rollout_steps, ro.num_frames - 1 - c)
        if steps < 1:
            continue
        pred = predict_trajectory(module, ro, c, steps, device=device)
        errs.append(position_mse(pred, ro.positions[c + 1:c + 1 + steps], ~ro.scene.kinematic))
    if errs:
        out["rollout_mse"] = float(np.mean(errs))
    module.train()
    return out


def init_from(module: GNS, path) -> list[str]:
    """Warm-start ``module`` from the weights of checkpoint ``path`` (in place): every tensor of the
    same name and shape is copied; a first layer that reads more input features than the
    checkpoint's (e.g. ``physical_features`` added) takes the old columns and keeps zeros in the
    new ones, so the warm-started model starts out predicting what the old one did. Returns the
    names of the tensors left at their fresh initialisation."""
    old = load_checkpoint(path)["model"]
    fresh = []
    with torch.no_grad():
        for name, t in module.state_dict().items():
            src = old.get(name)
            if src is not None and src.shape == t.shape:
                t.copy_(src)
            elif src is not None and src.dim() == 2 and src.shape[0] == t.shape[0] and src.shape[1] < t.shape[1]:
                t.zero_()
                t[:, :src.shape[1]] = src
            else:
                fresh.append(name)
    return fresh


def train(dataset, out, cfg: TrainConfig, model_overrides: Optional[dict] = None, resume: bool = False,
          progress: bool = True, log: Optional[Callable[[str], None]] = None, init: Optional[str] = None) -> dict:
    """Train (or resume training) a :class:`GNS` on a GNS-layout dataset folder.

    Under ``torchrun`` (``WORLD_SIZE`` > 1) this joins the process group and trains with DDP;
    only rank 0 writes files. Files in ``out``: ``checkpoint.pt`` (resumable), ``model.pt``
    (weights and config only, written at the end), ``log.jsonl`` (losses and validations).

    Args:
        dataset: folder with ``metadata.json`` and ``train.npz`` (``valid.npz`` for validation).
        out: run folder.
        cfg: training settings.
        model_overrides: architecture fields of :class:`ModelConfig` (latent, message_steps, ...).
        resume: continue from ``out/checkpoint.pt`` exactly where it stopped (the model and
            training configs come from the checkpoint, except ``cfg.steps``).
        init: a checkpoint to warm-start a new run's weights from (:func:`init_from`); its
            velocity and acceleration statistics replace the dataset's (the weights expect them).

    Returns:
        ``{"losses": [loss of each step run here], "step": final step, "validation": last validation,
        "validations": [every validation of this session, with its step]}`` (validations on rank 0 only).
    """
    import torch.distributed as dist

    out = Path(out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    distributed = world > 1
    own_group = distributed and not dist.is_initialized()
    if own_group:
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    if cfg.batch_size % world:
        raise ValidationError("batch_size", f"{cfg.batch_size} does not divide among {world} processes")
    say = log or (lambda s: None)

    train_ro = load_dataset(dataset, "train")
    dtype = torch.float32
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    ckpt = None
    if resume:
        ckpt = load_checkpoint(out / "checkpoint.pt")
        steps = cfg.steps
        # checkpoints from before ``constrained`` existed trained without the constraints in the loss
        cfg = TrainConfig(**{"constrained": False, **ckpt["train_config"], "steps": steps})
        mcfg = ModelConfig.from_dict(ckpt["model_config"])
    else:
        overrides = dict(model_overrides or {})
        if init is not None:  # the warm-started weights expect their own normalisation
            icfg = load_checkpoint(init)["model_config"]
            for k in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
                overrides.setdefault(k, icfg[k])
        mcfg = model_config_for_dataset(dataset, train_ro, **overrides)
        if cfg.noise_std == 0:
            cfg = dataclasses.replace(cfg, noise_std=0.1 * float(np.mean(mcfg.vel_std)))
    distribution = ckpt.get("training_distribution") if ckpt is not None else None
    if distribution is None and rank == 0:
        distribution = training_distribution(dataset, train_ro)
    data = _Windows(train_ro, mcfg.history)
    try:
        valid = _Windows(load_dataset(dataset, "valid"), mcfg.history)
    except FileFormatError:
        valid = None

    with torch.random.fork_rng(devices=[]):  # weights from the run's seed, global RNG untouched
        torch.manual_seed(cfg.seed)
        module = GNS(mcfg).to(device)
    optim = torch.optim.Adam(module.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    if init is not None and ckpt is None:
        fresh = init_from(module, init)
        say(f"weights from {init}" + (f" except {', '.join(fresh)}" if fresh else ""))
    if ckpt is not None:
        module.load_state_dict(ckpt["model"])
        optim.load_state_dict(ckpt["optimizer"])  # (state tensors follow the parameters' device)
        gen.set_state(ckpt["generator"])
        step = int(ckpt["step"])
    model = module
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(module, device_ids=[local_rank] if device.type == "cuda" else None)
    module.train()

    def checkpoint():
        if rank != 0:
            return
        _save(out / "checkpoint.pt", {
            "format": CHECKPOINT_FORMAT, "format_version": CHECKPOINT_VERSION, "step": step,
            "model_config": mcfg.to_dict(), "train_config": dataclasses.asdict(cfg),
            "model": module.state_dict(), "optimizer": optim.state_dict(), "generator": gen.get_state(),
            "dataset": str(dataset), "world_size": world, "training_distribution": distribution,
        })

    def write_log(entry: dict):
        if rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            with open(out / "log.jsonl", "a") as f:
                f.write(json.dumps(entry) + "\n")

    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        say(f"training {sum(p.numel() for p in module.parameters())} parameters on {len(train_ro)} trajectories "
            f"({len(data)} windows), {world} process(es), steps {step}..{cfg.steps}")
    local = cfg.batch_size // world
    losses: list[float] = []
    last_valid: dict = {}
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", dynamic_ncols=True)
    validations: list[dict] = []

    def validate():
        nonlocal last_valid
        last_valid = _validate(module, valid, cfg, cfg.seed, device)
        validations.append({"step": step, **last_valid})
        write_log({"step": step, **{f"valid_{k}": v for k, v in last_valid.items()}})
        say(f"step {step}: " + ", ".join(f"valid {k} {v:.3e} m^2" for k, v in last_valid.items()))

    if valid is not None and rank == 0 and ckpt is None and cfg.validate_every:
        validate()  # the untrained model's errors, for comparison
    t0, s0 = time.perf_counter(), step
    while step < cfg.steps:
        picks, noises = _draw(gen, data, cfg.batch_size, mcfg.history, cfg.noise_std, dtype)
        mine = slice(rank * local, (rank + 1) * local)
        batch, hist, target = _make_batch(data, picks[mine], noises[mine], mcfg.history, dtype)
        batch, hist, target = batch.to(device), hist.to(device), target.to(device)
        lr = cfg.lr_at(step)
        for g in optim.param_groups:
            g["lr"] = lr
        optim.zero_grad(set_to_none=True)
        loss = _loss(model, module, batch, hist, target, cfg.constrained)
        loss.backward()
        optim.step()
        value = loss.detach().clone()
        if distributed:
            dist.all_reduce(value)
            value /= world
        step += 1
        losses.append(float(value))
        if bar is not None:
            rate = (step - s0) / max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(loss=f"{losses[-1]:.4g}", steps_s=f"{rate:.2f}", lr=f"{lr:.2e}", refresh=False)
            bar.update(1)
        write_log({"step": step, "loss": losses[-1], "lr": lr})
        at_end = step == cfg.steps
        if valid is not None and rank == 0 and (at_end or (cfg.validate_every and step % cfg.validate_every == 0)):
            validate()
        if at_end or (cfg.checkpoint_every and step % cfg.checkpoint_every == 0):
            checkpoint()
    if bar is not None:
        bar.close()
    if rank == 0:
        if ckpt is None and step == 0:
            checkpoint()
        elapsed = time.perf_counter() - t0
        save_model(out / "model.pt", module, {"dataset": str(dataset), "steps": step, "train_config": dataclasses.asdict(cfg),
                                              "seconds_this_session": elapsed, "world_size": world,
                                              "training_distribution": distribution,
                                              **({"init": str(init)} if init is not None else {})})
    if distributed:
        dist.barrier()
    if own_group:
        # a group left to interpreter shutdown can abort a rank at exit (gloo's worker threads outlive Python:
        # "terminate called without an active exception", seen here once in a 2-process run); only after
        # success: destroying it while another rank is still in a collective would hang
        dist.destroy_process_group()
    return {"losses": losses, "step": step, "validation": last_valid, "validations": validations}
