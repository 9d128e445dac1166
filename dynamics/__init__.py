"""dynamics: how particles move under a tool's action.

Two backends share one interface, :class:`Dynamics` (``step(state_in, state_out, control, dt)``
and ``rollout(action, steps)``), so the critic, the viewer and a planner never care which
produced a rollout:

- :mod:`dynamics.sim`: the ground truth on NVIDIA Newton (XPBD rigid bodies and rope springs,
  VBD elastic solids and cloth, implicit MPM for granular matter coupled both ways),
  ``NewtonSimulator``; datasets in the GNS layout.
- :mod:`dynamics.model`: the learned GNN (GNS-style encode-process-decode), ``LearnedSimulator``,
  with Warp message-passing kernels (:mod:`dynamics.ops`) and training (:mod:`dynamics.train`).

The backends are imported on demand: Newton and torch are heavy to import.
"""

from .base import Dynamics

__all__ = ["Dynamics"]
