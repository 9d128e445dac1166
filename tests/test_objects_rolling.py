"""The object model's ground contact turns bodies (``ObjectConfig.ground_torque``): friction on a
sliding ball spins it toward rolling, a box resting flat is not turned."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from particles import ParticleScene
from dynamics.objects import ObjectConfig, ObjectNet, fit_poses, pack_objects
from dynamics.sim.scenes import lattice_box, lattice_sphere

R = 0.01
DT = 1.0 / 60.0
S = 3e-4  # m/frame^2: the config's acceleration scale


def _net(ground_torque: bool, push, ground_friction: float = 0.0, ground_stick: bool = False) -> ObjectNet:
    """A model whose ground decoder always answers the linear response ``push`` (in units of S) and no
    angular response, and whose contact decoder is silent."""
    cfg = ObjectConfig(dt=DT, radius=R, history=2, latent=16, vel_scale=(2e-3,) * 3, ang_scale=(5e-3,) * 3,
                       acc_scale=(S,) * 3, ang_acc_scale=(3e-3,) * 3, ground_torque=ground_torque,
                       ground_friction=ground_friction, ground_stick=ground_stick)
    net = ObjectNet(cfg).double()
    with torch.no_grad():
        for dec in (net.ground_decoder, net.force_decoder):
            dec[-1].weight.zero_()
            dec[-1].bias.zero_()
        net.ground_decoder[-1].bias[:3] = torch.as_tensor(push, dtype=torch.float64)
    return net.eval()


def _alpha(net, pts, v, friction=None):
    """Angular acceleration (rad/frame^2) of one body of particles ``pts`` moving at ``v`` m/frame."""
    sc = ParticleScene(pts, np.zeros(len(pts), np.int32), ("rigid",), R, ground=0.0,
                       object_friction=None if friction is None else np.array([friction], np.float32))
    x = torch.tensor(pts, dtype=torch.float64)
    hist = torch.stack([x - 2 * torch.as_tensor(v), x - torch.as_tensor(v), x])
    b = pack_objects([sc], DT, dtype=torch.float64)
    c, rot = fit_poses(b, hist)
    a, alpha = net(c, rot, b, hist[-1][b.index], hist[-1][b.index])
    return b, a[0].detach(), alpha[0].detach()


def test_ground_friction_spins_a_sliding_ball_toward_rolling():
    ball = lattice_sphere(0.055, R, (0.0, 0.0, 0.055))
    ball[:, 2] += R - ball[:, 2].min()  # lowest particles touching the ground (gate 1)
    friction = (-2.0, 0.0, 0.0)  # backward friction; the ground's push also carries the weight (a = S psi on it)
    b, a, alpha = _alpha(_net(True, friction), ball, (2e-3, 0.0, 0.0))
    # the push acts at the lowest particles' centroid, straight below the centre: torque (-h z) x (F x) = h F y
    low = ball[:, 2] < ball[:, 2].min() + R
    lever = ball[low].astype(np.float64).mean(0) - ball.astype(np.float64).mean(0)
    push = float(b.mass[0]) * np.array([-2.0 * S, 0.0, 9.81 * DT * DT])  # kg m/frame^2: friction and support
    expect = np.linalg.solve(b.inertia[0].numpy(), np.cross(lever, push))
    assert alpha[1] > 0 and np.allclose(alpha.numpy(), expect, rtol=1e-6, atol=1e-12)  # +y spin: rolling along +x
    assert torch.allclose(a, torch.tensor([-2.0 * S, 0.0, 0.0], dtype=torch.float64), atol=1e-12)
    _, a0, alpha0 = _alpha(_net(False, friction), ball, (2e-3, 0.0, 0.0))
    assert torch.allclose(a0, a) and float(alpha0.abs().max()) == 0.0  # without it the ball slides unturned


def test_ground_support_does_not_turn_a_box_resting_flat():
    box = lattice_box((0.03, 0.02, 0.02), R, (0.0, 0.0, 0.02))
    _, a, alpha = _alpha(_net(True, (0.0, 0.0, 0.0)), box, (0.0, 0.0, 0.0))
    assert float(a.abs().max()) < 1e-12 and float(alpha.abs().max()) < 1e-12


def test_old_configs_load_without_ground_torque():
    cfg = ObjectConfig(dt=DT, radius=R)
    d = cfg.to_dict()
    d.pop("ground_torque")
    assert ObjectConfig.from_dict(d).ground_torque is False
    assert ObjectConfig.from_dict({**d, "ground_torque": True}).ground_torque is True
    assert dataclasses.replace(cfg, ground_torque=True).ground_torque


def test_ground_friction_obeys_coulombs_cone():
    """With ``ground_friction`` the ground's tangential push on a box sliding on it is at most mu times its
    normal push, mu the average of the body's and the ground's friction (XPBD's rule): a decoder asking
    for more brakes a slippery box (0.05) and a rough one (1.2) in the ratio of their mu, also outside the
    trained frictions; a push inside the cone is left as decoded; without the option nothing is capped."""
    box = lattice_box((0.03, 0.02, 0.02), R, (0.0, 0.0, 0.02))
    weight = 9.81 * DT * DT  # m/frame^2: the normal push that carries the box (psi_z = 0)
    brake = (-20.0, 0.0, 0.0)  # 6e-3 m/frame^2 backwards: more than any friction here allows
    for mu_body in (0.05, 1.2):
        _, a, _ = _alpha(_net(False, brake, ground_friction=0.5), box, (2e-3, 0.0, 0.0), friction=mu_body)
        mu = (mu_body + 0.5) / 2  # (the scene stores friction and gravity in float32: rtol 1e-6)
        assert np.allclose(a.numpy(), [-mu * weight, 0.0, 0.0], rtol=1e-6, atol=1e-12), (mu_body, a)
    _, a, _ = _alpha(_net(False, (-2.0, 1.0, 0.0), ground_friction=0.5), box, (2e-3, 0.0, 0.0), friction=0.6)
    assert np.allclose(a.numpy(), [-2.0 * S, 1.0 * S, 0.0], rtol=1e-6, atol=1e-12)  # |push| 6.7e-4 < 0.55 x 2.7e-3
    _, a, _ = _alpha(_net(False, brake), box, (2e-3, 0.0, 0.0), friction=0.05)
    assert np.allclose(a.numpy(), [-20.0 * S, 0.0, 0.0], rtol=1e-6, atol=1e-12)


def test_solved_ground_friction_holds_stops_slides_and_rolls():
    """``ground_stick``: the ground's friction is solved as one Coulomb contact. A box creeping slowly is
    stopped within the frame (static friction: no creep), a fast one slides and brakes by exactly mu g
    (mu = (0.6 + 0.5) / 2), neither is tipped (flat base); a sliding ball ends the frame rolling without
    slip at its ground contact, its speed cut by 1 / (1 + M R^2 / I) of its slip (R: centre to ground)."""
    box = lattice_box((0.03, 0.02, 0.02), R, (0.0, 0.0, 0.02))
    net = _net(False, (5.0, -3.0, 0.0), ground_friction=0.5, ground_stick=True)  # decoded tangential: ignored
    weight = 9.81 * DT * DT
    _, a, alpha = _alpha(net, box, (1e-4, 0.0, 0.0), friction=0.6)
    assert np.allclose(a.numpy(), [-1e-4, 0.0, 0.0], rtol=1e-6, atol=1e-12) and float(alpha.abs().max()) < 1e-12
    _, a, alpha = _alpha(net, box, (5e-3, 2e-3, 0.0), friction=0.6)
    brake = -0.55 * weight * np.array([5.0, 2.0, 0.0]) / np.hypot(5.0, 2.0)
    assert np.allclose(a.numpy(), brake, rtol=1e-5, atol=1e-12) and float(alpha.abs().max()) < 1e-9
    ball = lattice_sphere(0.055, R, (0.0, 0.0, 0.055))
    ball[:, 2] += R - ball[:, 2].min()
    b, a, alpha = _alpha(net, ball, (2e-3, 0.0, 0.0), friction=0.6)
    low = ball[:, 2] < ball[:, 2].min() + R
    contact = ball[low].astype(np.float64).mean(0) - ball.astype(np.float64).mean(0)
    contact[2] = -ball.astype(np.float64).mean(0)[2]  # the ground, below the centre of mass
    v1, w1 = np.array([2e-3, 0.0, 0.0]) + a.numpy(), alpha.numpy()
    slip = v1 + np.cross(w1, contact)
    assert np.abs(slip[:2]).max() < 1e-9 and w1[1] > 0 and 0 < v1[0] < 2e-3  # rolling along +x
