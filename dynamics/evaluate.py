"""Error measures of learned rollouts against ground truth, and a constant-velocity baseline.

Shared by training (validation) and ``bench/model.py``. Errors are in m^2: the mean,
over non-kinematic particles, frames and the 3 axes, of the squared position error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from particles import KINEMATIC, Rollout

from .model import GNS, pack_scenes, rollout_packed

__all__ = ["one_step_mse", "predict_trajectory", "constant_velocity", "constant_velocity_constrained", "position_mse", "kinetic_energy",
           "RolloutErrors", "rollout_errors"]


def _dtype(model: GNS) -> torch.dtype:
    return next(model.parameters()).dtype


@torch.no_grad()
def one_step_mse(model: GNS, rollouts: Sequence[Rollout], windows: Sequence[tuple[int, int]],
                 device="cpu") -> float:
    """Mean squared one-step position error, m^2, from ground-truth histories.

    ``windows`` are ``(trajectory, t)`` pairs: predict frame ``t + 1`` from frames
    ``t - C .. t`` of trajectory ``rollouts[trajectory]`` (no noise, no rigid projection).
    """
    c = model.config.history
    total, count = 0.0, 0
    for i, t in windows:
        ro = rollouts[i]
        pos = torch.as_tensor(ro.positions, device=device, dtype=_dtype(model))
        batch = pack_scenes([ro.scene], device=device, dtype=_dtype(model))
        pred = model.next_positions(pos[t - c:t + 1], batch, pos[t + 1], rigid=False)
        free = ~batch.kinematic
        err = (pred - pos[t + 1])[free]
        total += float((err ** 2).sum())
        count += err.numel()
    return total / max(count, 1)


@torch.no_grad()
def predict_trajectory(model: GNS, rollout: Rollout, start: int, steps: int, rigid: bool = True,
                       collide: bool = True, device="cpu") -> np.ndarray:
    """(steps, N, 3) float32, m: the model's rollout of frames ``start + 1 .. start + steps``
    from the true frames ``start - C .. start``, with kinematic particles on their true path."""
    c = model.config.history
    if start < c or start + steps >= rollout.num_frames:
        raise ValueError(f"need {c} <= start and start + steps < {rollout.num_frames}; got start={start}, steps={steps}")
    pos = torch.as_tensor(rollout.positions, device=device, dtype=_dtype(model))
    batch = pack_scenes([rollout.scene], device=device, dtype=_dtype(model))
    pred = rollout_packed(model, batch, pos[start - c:start + 1], steps, pos[start + 1:start + 1 + steps], rigid=rigid,
                          collide=collide)
    return pred.float().cpu().numpy()


def constant_velocity(rollout: Rollout, start: int, steps: int) -> np.ndarray:
    """(steps, N, 3) float32, m: every free particle keeps its velocity at ``start``; kinematic
    particles follow their true path. The baseline every learned model must beat."""
    pos = rollout.positions
    v = pos[start] - pos[start - 1]
    k = np.arange(1, steps + 1, dtype=np.float32)[:, None, None]
    pred = pos[start][None] + k * v[None]
    kin = rollout.scene.particle_type == KINEMATIC
    pred[:, kin] = pos[start + 1:start + 1 + steps][:, kin]
    return pred.astype(np.float32)


@torch.no_grad()
def constant_velocity_constrained(rollout: Rollout, start: int, steps: int) -> np.ndarray:
    """(steps, N, 3) float32, m: :func:`constant_velocity` stepped frame by frame through the same
    rigid, contact and ground projections the GNN's rollouts use, so a comparison with the GNN
    shows what the network itself adds."""
    from .model import constrain

    batch = pack_scenes([rollout.scene], dtype=torch.float64)
    pos = torch.as_tensor(rollout.positions, dtype=torch.float64)
    prev, cur = pos[start - 1], pos[start]
    out = []
    for t in range(start + 1, start + 1 + steps):
        nxt = constrain(2 * cur - prev, batch, pos[t])
        out.append(nxt)
        prev, cur = cur, nxt
    return torch.stack(out).float().numpy()


def position_mse(pred: np.ndarray, truth: np.ndarray, free: np.ndarray, upto: Optional[int] = None) -> float:
    """Mean squared error, m^2, over the first ``upto`` frames (all by default) and the ``free`` particles."""
    upto = pred.shape[0] if upto is None else min(upto, pred.shape[0])
    d = pred[:upto, free].astype(np.float64) - truth[:upto, free]
    return float(np.mean(d * d)) if d.size else 0.0


def kinetic_energy(positions: np.ndarray, mass: np.ndarray, dt: float) -> np.ndarray:
    """(T-1,) float64, J: kinetic energy from finite-difference velocities of ``positions (T, N, 3)``."""
    v = np.diff(positions.astype(np.float64), axis=0) / dt
    return 0.5 * np.einsum("n,tnd,tnd->t", mass.astype(np.float64), v, v)


def potential_energy(positions: np.ndarray, mass: np.ndarray, gravity: np.ndarray) -> np.ndarray:
    """(T,) float64, J: gravitational potential energy ``-sum m g . x``."""
    return -np.einsum("n,tnd,d->t", mass.astype(np.float64), positions.astype(np.float64), gravity.astype(np.float64))


@dataclass(frozen=True)
class RolloutErrors:
    """Errors of one predicted rollout against the truth (m^2 for MSEs, J for energies)."""

    mse: dict
    """{horizon: MSE over frames 1..horizon} for the requested horizons (clipped to the rollout)."""
    energy_drift: float
    """(E_pred[-1] - E_true[-1]) / max(|E_true[0]|, eps): predicted minus true total mechanical energy
    at the last frame, relative to the initial energy, free particles only."""


def rollout_errors(pred: np.ndarray, rollout: Rollout, start: int, horizons: Sequence[int]) -> RolloutErrors:
    """Errors of ``pred (steps, N, 3)`` (frames ``start+1..``) against ``rollout``."""
    steps = pred.shape[0]
    truth = rollout.positions[start + 1:start + 1 + steps]
    free = rollout.scene.particle_type != KINEMATIC
    mse = {h: position_mse(pred, truth, free, h) for h in horizons}
    sc = rollout.scene
    m = sc.mass[free]

    def energy(frames):
        return kinetic_energy(frames[:, free], m, rollout.dt)[-1] + potential_energy(frames[-2:, free], m, sc.gravity)[-1]

    p_all = np.concatenate([rollout.positions[start:start + 1], pred], 0)
    t_all = rollout.positions[start:start + 1 + steps]
    e0 = kinetic_energy(rollout.positions[start - 1:start + 1, free], m, rollout.dt)[-1] + \
        potential_energy(rollout.positions[start:start + 1, free], m, sc.gravity)[-1]
    drift = (energy(p_all) - energy(t_all)) / max(abs(e0), 1e-12)
    return RolloutErrors(mse, float(drift))
