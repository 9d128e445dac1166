"""``worldline train DATASET --out RUN``: train the learned dynamics (GNN) on a GNS-layout dataset.

Runs on one process, or on many with ``torchrun --nproc_per_node=P -m worldline train ...``
(DDP: gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from worldline.errors import BadInput, check_output


def _check_dataset(folder: Path) -> None:
    """Refuse, before training, a dataset whose metadata or training trajectories cannot be trained on:
    unreadable files, or positions that are not finite or lie past ``particles.io.MAX_LENGTH``. Reads one
    trajectory at a time."""
    import numpy as np

    from particles import FileFormatError, read_metadata
    from particles.io import MAX_LENGTH, _NpzReader

    meta = read_metadata(folder)
    for key in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
        if key in meta and not np.all(np.isfinite(meta[key])):
            raise FileFormatError(folder / "metadata.json", key, "is not finite; training normalises by it")
    path = folder / "train.npz"
    r = _NpzReader(path)
    try:
        keys = sorted(k for k in r.keys if k.startswith("traj_") and k.endswith("/positions"))
        for key in keys:
            pos = r.get(key)
            if pos.dtype.kind != "f":
                raise FileFormatError(path, key, f"expected floats, got dtype {pos.dtype}")
            if pos.size and (not np.all(np.isfinite(pos)) or np.abs(pos).max() > MAX_LENGTH):
                raise FileFormatError(path, key, f"holds NaN, infinite or huge (> {MAX_LENGTH:g} m) positions; "
                                                 "training needs finite trajectories")
    finally:
        r.close()


def _check_resumable(path: Path) -> None:
    """Refuse a ``checkpoint.pt`` that ``--resume`` could not continue, naming the field."""
    from dynamics.train import TrainConfig, load_checkpoint, model_from_checkpoint
    from particles import FileFormatError, ValidationError

    ckpt = load_checkpoint(path)
    model_from_checkpoint(ckpt, path)  # config and weights
    for key, kind in (("train_config", dict), ("optimizer", dict), ("step", int)):
        if key not in ckpt:
            raise FileFormatError(path, key, "missing (a model-only checkpoint cannot be resumed)")
        if not isinstance(ckpt[key], kind) or isinstance(ckpt[key], bool):
            raise FileFormatError(path, key, f"expected a {kind.__name__}, got {type(ckpt[key]).__name__}")
    if "generator" not in ckpt:
        raise FileFormatError(path, "generator", "missing")
    try:
        TrainConfig(**{"constrained": False, **ckpt["train_config"]})
    except ValidationError as exc:
        raise FileFormatError(path, f"train_config.{exc.field}", exc.problem) from None
    except TypeError as exc:
        raise FileFormatError(path, "train_config", f"is not a training configuration ({exc})") from None


def _train_objects(dataset: Path, out: Path, steps, batch_size, lr, lr_final, lr_decay_steps, seed, latent,
                   message_steps, history, hidden_layers, unroll, max_minutes, threads, progress, init=None,
                   ground_torque: bool = False, ground_friction: float = 0.0, ground_stick: bool = False,
                   ground_coulomb: float = 0.0, coulomb_torque: bool = False) -> None:
    """``worldline train --model objects``: :func:`dynamics.objects.train_objects` on the rigid-only
    trajectories of DATASET's train split; writes RUN/model.pt and RUN/log.jsonl."""
    import json
    import time

    import torch

    from dynamics.objects import ObjectConfig, ObjectTrainConfig, load_object_model, save_object_model, train_objects
    from particles import ValidationError, load_dataset
    from particles.io import atomic_write

    if steps < 1:
        raise BadInput(f"--steps must be at least 1, got {steps}")
    if threads < 1:
        raise BadInput(f"--threads must be >= 1, got {threads}")
    if not (max_minutes >= 0 and max_minutes != float("inf")):
        raise BadInput(f"--max-minutes must be a finite number of minutes >= 0 (0: no limit), got {max_minutes}")
    if not dataset.is_dir():
        raise BadInput(f"{dataset}: no such dataset folder")
    check_output(out, folder=True)
    if (out / "model.pt").exists():
        raise BadInput(f"{out} already holds a model.pt; choose another --out")
    arch = dict(latent=latent, message_steps=message_steps, history=history, hidden_layers=hidden_layers)
    try:
        cfg = ObjectTrainConfig(steps=steps, batch_size=batch_size, unroll=unroll, lr=lr, lr_final=lr_final,
                                lr_decay_steps=lr_decay_steps, seed=seed)
        ObjectConfig(dt=1.0, radius=1.0, **arch)
    except ValidationError as exc:
        raise BadInput(f"--{exc.field.replace('_', '-')}: {exc.problem}") from None
    _check_dataset(dataset)
    start = None
    if init is not None:
        if not Path(init).is_file():
            raise BadInput(f"{init}: no such checkpoint (--init)")
        start = load_object_model(init)
        arch = {k: getattr(start.config, k) for k in arch}  # the warm start's architecture
    if ground_torque:
        arch["ground_torque"] = True
    if ground_friction:
        if not (ground_friction > 0 and ground_friction != float("inf")):
            raise BadInput(f"--ground-friction must be a friction coefficient > 0 (0: off), got {ground_friction}")
        arch["ground_friction"] = float(ground_friction)
    if ground_stick:
        if not ground_friction:
            raise BadInput("--ground-stick needs --ground-friction (the friction of the cone)")
        arch["ground_stick"] = True
    if ground_coulomb:
        if not (ground_coulomb > 0 and ground_coulomb != float("inf")):
            raise BadInput(f"--ground-coulomb must be a friction coefficient > 0 (0: off), got {ground_coulomb}")
        if ground_friction:
            raise BadInput("--ground-coulomb replaces --ground-friction's cone: give one of them")
        arch["ground_coulomb"] = float(ground_coulomb)
    if coulomb_torque:
        if not ground_coulomb:
            raise BadInput("--coulomb-torque needs --ground-coulomb (the friction it turns bodies with)")
        arch["coulomb_torque"] = True
    torch.set_num_threads(threads)
    train = load_dataset(dataset, "train")
    try:
        valid = load_dataset(dataset, "valid")
    except Exception:  # noqa: BLE001  (no valid split: no validation figure)
        valid = []
    log = []
    t0 = time.perf_counter()
    try:
        def record(entry):
            log.append(entry)
            typer.echo(json.dumps(entry), err=True)

        net, info = train_objects(train, cfg, arch, valid=valid, progress=progress, log=record,
                                  max_seconds=max_minutes * 60 if max_minutes > 0 else None, init=start)
    except ValidationError as exc:
        raise BadInput(f"{dataset}: {exc}") from None
    from dynamics.objects import supports
    from dynamics.train import training_distribution

    info.update(dataset=str(dataset), wall_seconds=time.perf_counter() - t0, threads=threads,
                init=None if init is None else str(init), init_info=getattr(start, "info", None),
                command="worldline train --model objects",
                # what it saw (the rigid-only trajectories it trains on), for worldline rollout's warning
                training_distribution=training_distribution(dataset, [ro for ro in train if not supports(ro.scene)]))
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "log.jsonl", lambda f: f.write("".join(json.dumps(e) + "\n" for e in log)), mode="w")
    save_object_model(out / "model.pt", net, info)
    extra = f", valid 20-frame rollout MSE {info['valid_rollout_mse_20']:.3e} m^2" if "valid_rollout_mse_20" in info else ""
    typer.echo(f"trained the object model for {info['steps']} steps in {info['seconds']:.0f} s{extra}; wrote {out / 'model.pt'}")


def register(app: typer.Typer) -> None:
    @app.command("train")
    def train_cmd(
        dataset: Path = typer.Argument(..., help="Dataset folder (GNS layout: metadata.json, train.npz, valid.npz)."),
        out: Path = typer.Option(..., "--out", help="Run folder: checkpoint.pt, model.pt, log.jsonl."),
        steps: int = typer.Option(1000, "--steps", help="Total optimiser steps (a resumed run continues up to this)."),
        batch_size: int = typer.Option(2, "--batch-size", help="Trajectory windows per global batch (divides by processes)."),
        lr: float = typer.Option(1e-3, "--lr", help="Initial learning rate."),
        lr_final: float = typer.Option(1e-5, "--lr-final", help="Learning rate the exponential decay tends to."),
        lr_decay_steps: int = typer.Option(5000, "--lr-decay-steps", help="Steps per tenfold learning-rate decay."),
        noise_std: float = typer.Option(0.0, "--noise-std", help="Random-walk input noise, m (0: 0.1 x mean velocity std)."),
        seed: int = typer.Option(0, "--seed", help="Seed of weights, batches and noise."),
        constrained: bool = typer.Option(True, "--constrained/--unconstrained",
                                         help="Put the rollout constraints (rigid, contact, ground) inside the loss."),
        latent: int = typer.Option(64, "--latent", help="Latent width."),
        message_steps: int = typer.Option(5, "--message-steps", help="Message-passing rounds."),
        history: int = typer.Option(5, "--history", help="Past velocities per particle."),
        hidden_layers: int = typer.Option(2, "--hidden-layers", help="Hidden layers per MLP."),
        validate_every: int = typer.Option(100, "--validate-every", help="Steps between validations (0: at the end)."),
        checkpoint_every: int = typer.Option(100, "--checkpoint-every", help="Steps between checkpoints (0: at the end)."),
        resume: bool = typer.Option(False, "--resume", help="Continue RUN/checkpoint.pt exactly where it stopped."),
        init: Optional[Path] = typer.Option(None, "--init", help="Warm-start the weights from this checkpoint (new features start at zero)."),
        physical_features: bool = typer.Option(True, "--physical-features/--no-physical-features",
                                               help="Object density, friction, restitution and stiffness as node features."),
        radius: Optional[float] = typer.Option(None, "--radius", help="Connectivity radius, m (default: 3.7 particle radii)."),
        threads: int = typer.Option(1, "--threads", help="CPU threads per process for PyTorch (1 avoids oversubscription)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
        model: str = typer.Option("gns", "--model",
                                  help="gns: the particle GNN; objects: the object-level rigid-body model "
                                       "(dynamics.objects; trains on the rigid-only trajectories, writes RUN/model.pt)."),
        unroll: int = typer.Option(8, "--unroll", help="--model objects: frames each training window is rolled out."),
        max_minutes: float = typer.Option(0.0, "--max-minutes", help="--model objects: stop after this wall time (0: no limit)."),
        ground_torque: bool = typer.Option(False, "--ground-torque", help="--model objects: the ground's push also turns "
                                           "the body at its ground contact (lets spheres and lying cylinders roll)."),
        ground_friction: float = typer.Option(0.0, "--ground-friction", help="--model objects: Coulomb cone on the "
                                              "ground's push, with the data's ground friction (Newton's 0.5; 0: off)."),
        ground_stick: bool = typer.Option(False, "--ground-stick", help="--model objects, with --ground-friction: the "
                                          "ground's friction is solved as a Coulomb contact (static friction, rolling)."),
        ground_coulomb: float = typer.Option(0.0, "--ground-coulomb", help="--model objects: the ground's tangential "
                                             "response is Coulomb friction, mu x the normal load times a decoded share "
                                             "of the cone, with the data's ground friction (Newton's 0.5; 0: off)."),
        coulomb_torque: bool = typer.Option(False, "--coulomb-torque", help="--model objects, with --ground-coulomb: "
                                            "the friction acts at the ground contact and turns round bodies (rolling)."),
    ):
        """Train the GNN on DATASET; write checkpoints and a log to RUN.

        Example: worldline train data/push --out runs/a --steps 2000 --batch-size 4 --init assets/weights/gns_push.pt

        Object model: worldline train data/push --model objects --out runs/obj --steps 3000 --batch-size 8
        --history 3 --message-steps 2
        """
        if model not in ("gns", "objects"):
            raise BadInput(f"--model: expected gns or objects, got {model!r}")
        if model == "objects":
            _train_objects(dataset, out, steps, batch_size, lr, lr_final, lr_decay_steps, seed, latent, message_steps,
                           history, hidden_layers, unroll, max_minutes, threads, progress, init, ground_torque,
                           ground_friction, ground_stick, ground_coulomb, coulomb_torque)
            return
        import torch
        import warp as wp

        from dynamics.train import TrainConfig, train

        from dynamics.model import ModelConfig
        from particles import ValidationError

        wp.config.log_level = wp.LOG_WARNING  # no banner or per-module load lines in CLI output
        if threads < 1:
            raise BadInput(f"--threads must be >= 1, got {threads}")
        if steps < 1:
            raise BadInput(f"--steps must be at least 1, got {steps}")
        if not dataset.is_dir():
            raise BadInput(f"{dataset}: no such dataset folder" if not dataset.exists()
                           else f"{dataset}: is a file, expected a dataset folder (metadata.json, train.npz)")
        check_output(out, folder=True)
        if not resume and (out / "checkpoint.pt").exists():
            raise BadInput(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")
        if resume and not (out / "checkpoint.pt").exists():
            raise BadInput(f"{out}/checkpoint.pt: nothing to resume")
        overrides = dict(latent=latent, message_steps=message_steps, history=history, hidden_layers=hidden_layers,
                         physical_features=physical_features)
        if radius is not None:
            if not radius > 0:
                raise BadInput(f"--radius must be positive (m), got {radius}")
            overrides["connectivity_radius"] = radius
        if init is not None and not init.is_file():
            raise BadInput(f"{init}: no such checkpoint (--init)")
        try:
            cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, lr_final=lr_final,
                              lr_decay_steps=lr_decay_steps, noise_std=noise_std, seed=seed, constrained=constrained,
                              validate_every=validate_every, checkpoint_every=checkpoint_every)
            ModelConfig(connectivity_radius=1.0, dt=1.0, **overrides)  # the architecture flags, checked now
        except ValidationError as exc:
            raise BadInput(f"--{exc.field.replace('_', '-')}: {exc.problem}") from None
        _check_dataset(dataset)
        if resume:
            _check_resumable(out / "checkpoint.pt")
        torch.set_num_threads(threads)
        rank0 = int(os.environ.get("RANK", "0")) == 0
        result = train(dataset, out, cfg, model_overrides=overrides, resume=resume, progress=progress and rank0,
                       log=(lambda s: typer.echo(s, err=True)) if rank0 else None,
                       init=None if init is None else str(init))
        if rank0:
            v = result["validation"]
            extra = "".join(f", valid {k} {val:.3e} m^2" for k, val in v.items())
            typer.echo(f"trained to step {result['step']}{extra}; wrote {out / 'checkpoint.pt'} and {out / 'model.pt'}")
