"""The one interface every dynamics backend shares.

The Newton simulator and the learned GNN both subclass :class:`Dynamics`, so the
critic, the planner and the viewer never care which one produced a rollout.
As in Newton, the scene (model) is fixed at construction, states flow through
``step``, and the tool's prescribed motion is the control.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Optional

import numpy as np

from particles import Action, ParticleScene, ParticleState, Rollout

__all__ = ["Dynamics"]


class Dynamics(ABC):
    """A backend that advances particle states of one scene by one frame."""

    #: The scene this backend simulates (fixed for its lifetime).
    scene: ParticleScene
    #: Frame time step, s: the time between two rollout frames (substeps are internal).
    dt: float
    #: Label of the rollout progress bar.
    progress_label: str = "rollout"

    @abstractmethod
    def step(self, state_in: ParticleState, state_out: ParticleState, control: Optional[np.ndarray], dt: float) -> None:
        """Advance ``state_in`` by ``dt`` seconds and write the result into ``state_out``.

        Args:
            state_in: positions (N, 3) float32 m and velocities (N, 3) float32 m/s at time t.
            state_out: overwritten in place with the state at t + dt (may not alias state_in).
            control: (M, 3) float32, m: where the action's kinematic particles are at t + dt,
                in the order of ``Action.indices``; None when the scene has no tool.
            dt: s, normally ``self.dt``.
        """

    def rollout(self, action: Optional[Action], steps: int, state0: Optional[ParticleState] = None,
                progress: bool = False) -> Rollout:
        """Roll out ``steps`` frames from ``state0`` (default: the scene at rest) under ``action``.

        Returns a :class:`Rollout` of ``steps + 1`` frames (frame 0 is ``state0``).
        The action must cover ``steps + 1`` frames; its particles follow it exactly.
        ``state0`` is read, never written: the same state may start several rollouts.
        """
        if action is not None and action.num_frames < steps + 1:
            raise ValueError(f"action covers {action.num_frames} frames, need steps + 1 = {steps + 1}")
        if state0 is None:
            state = ParticleState.at_rest(self.scene)
        else:  # the step loop swaps two buffers and writes both: never the caller's arrays
            state = ParticleState(state0.positions.copy(), state0.velocities.copy(),
                                  None if state0.history is None else state0.history.copy())
        n = self.scene.num_particles
        out = np.empty((steps + 1, n, 3), np.float32)
        out[0] = state.positions
        # zeros, not empty: uninitialised memory may hold NaN, which ParticleState rejects
        nxt = ParticleState(np.zeros((n, 3), np.float32), np.zeros((n, 3), np.float32))
        frames = range(1, steps + 1)
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, desc=self.progress_label, unit="frame")
        for t in frames:
            control = None if action is None else action.positions[t]
            self.step(state, nxt, control, self.dt)
            out[t] = nxt.positions
            state, nxt = nxt, state
        return Rollout(self.scene, out, self.dt)
