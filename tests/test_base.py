"""The shared Dynamics interface (dynamics.base)."""

import numpy as np

from dynamics.base import Dynamics
from particles import ParticleState
from dynamics.toy import toy_rollout


class _Ballistic(Dynamics):
    """Free flight under gravity, integrated exactly per frame (writes state_out in place)."""

    def __init__(self, scene, dt):
        self.scene, self.dt = scene, dt

    def step(self, state_in, state_out, control, dt):
        g = np.asarray(self.scene.gravity, np.float32)
        state_out.positions[:] = state_in.positions + dt * state_in.velocities + 0.5 * dt * dt * g
        state_out.velocities[:] = state_in.velocities + dt * g


def test_rollout_never_writes_the_start_state_and_repeats_from_it():
    scene = toy_rollout(np.random.default_rng(0), "drop", 2).scene
    dyn = _Ballistic(scene, 1 / 60)
    x0 = scene.positions.copy()
    v0 = np.tile(np.array([[0.3, 0.0, 1.0]], np.float32), (scene.num_particles, 1))
    state0 = ParticleState(x0.copy(), v0.copy())
    a = dyn.rollout(None, 6, state0=state0)
    assert np.array_equal(state0.positions, x0) and np.array_equal(state0.velocities, v0)
    b = dyn.rollout(None, 6, state0=state0)
    assert np.array_equal(a.positions, b.positions)
    # and the motion is the exact parabola: z(t) = z0 + v t - g t^2 / 2
    t = 6 / 60
    assert np.allclose(a.positions[-1, :, 2], x0[:, 2] + 1.0 * t - 0.5 * 9.81 * t * t, atol=1e-5)
