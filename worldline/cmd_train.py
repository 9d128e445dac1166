"""``worldline train DATASET --out RUN``: train the learned dynamics (GNN) on a GNS-layout dataset.

Runs on one process, or on many with ``torchrun --nproc_per_node=P -m worldline train ...``
(DDP: gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from worldline.errors import BadInput


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
    ):
        """Train the GNN on DATASET; write checkpoints and a log to RUN.

        Example: worldline train data/push --out runs/a --steps 2000 --batch-size 4 --init assets/weights/gns_push.pt
        """
        import torch
        import warp as wp

        from dynamics.train import TrainConfig, train

        wp.config.log_level = wp.LOG_WARNING  # no banner or per-module load lines in CLI output
        if threads < 1:
            raise BadInput(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
        if not dataset.is_dir():
            raise BadInput(f"{dataset}: no such dataset folder")
        if not resume and (out / "checkpoint.pt").exists():
            raise BadInput(f"{out} already holds a checkpoint; pass --resume to continue it or choose another --out")
        if resume and not (out / "checkpoint.pt").exists():
            raise BadInput(f"{out}/checkpoint.pt: nothing to resume")
        cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, lr_final=lr_final, lr_decay_steps=lr_decay_steps,
                          noise_std=noise_std, seed=seed, constrained=constrained, validate_every=validate_every,
                          checkpoint_every=checkpoint_every)
        overrides = dict(latent=latent, message_steps=message_steps, history=history, hidden_layers=hidden_layers,
                         physical_features=physical_features)
        if radius is not None:
            if not radius > 0:
                raise BadInput(f"--radius must be positive (m), got {radius}")
            overrides["connectivity_radius"] = radius
        if init is not None and not init.is_file():
            raise BadInput(f"{init}: no such checkpoint (--init)")
        rank0 = int(os.environ.get("RANK", "0")) == 0
        result = train(dataset, out, cfg, model_overrides=overrides, resume=resume, progress=progress and rank0,
                       log=(lambda s: typer.echo(s, err=True)) if rank0 else None,
                       init=None if init is None else str(init))
        if rank0:
            v = result["validation"]
            extra = "".join(f", valid {k} {val:.3e} m^2" for k, val in v.items())
            typer.echo(f"trained to step {result['step']}{extra}; wrote {out / 'checkpoint.pt'} and {out / 'model.pt'}")
