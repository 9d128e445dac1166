"""The object model's Coulomb-structured ground response (``ObjectConfig.ground_coulomb``): the network
decodes only the share of the friction cone in use; the friction coefficient is a multiplier, the normal
load includes what rests on a body, and friction never drives a body or reverses its slip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from particles import ParticleScene, ValidationError
from dynamics.objects import ObjectConfig, ObjectNet, fit_poses, object_rollout, pack_objects
from dynamics.sim.scenes import lattice_box

R = 0.01
DT = 1.0 / 60.0
S = 3e-4  # m/frame^2: the config's acceleration scale
G = 9.81 * DT * DT  # m/frame^2


def _net(psi, ground_coulomb: float = 0.5, ground_friction: float = 0.0, **config) -> ObjectNet:
    """A model whose ground decoder always answers ``psi`` (6 values, in units of the scales) and whose
    contact decoder is silent; ``config``: further ObjectConfig fields (coulomb_torque, ground_stick)."""
    cfg = ObjectConfig(dt=DT, radius=R, history=2, latent=16, vel_scale=(2e-3,) * 3, ang_scale=(5e-3,) * 3,
                       acc_scale=(S,) * 3, ang_acc_scale=(3e-3,) * 3, ground_coulomb=ground_coulomb,
                       ground_friction=ground_friction, **config)
    net = ObjectNet(cfg).double()
    with torch.no_grad():
        for dec in (net.ground_decoder, net.force_decoder):
            dec[-1].weight.zero_()
            dec[-1].bias.zero_()
        net.ground_decoder[-1].bias[:] = torch.as_tensor(psi, dtype=torch.float64)
    return net.eval()


def _scene(bodies, friction):
    pts = np.concatenate(bodies)
    oid = np.concatenate([np.full(len(b), k, np.int32) for k, b in enumerate(bodies)])
    return ParticleScene(pts, oid, ("rigid",) * len(bodies), R, ground=0.0,
                         object_friction=np.asarray(friction, np.float32))


def _history(pts, vels, oid):
    """(3, N, 3) float64: three frames of bodies moving at ``vels[k]`` m/frame."""
    x = torch.tensor(pts, dtype=torch.float64)
    v = torch.tensor(np.asarray(vels, np.float64)[oid])
    return torch.stack([x - 2 * v, x - v, x])


def _box(z0=0.0, half=(0.03, 0.02, 0.02)):
    return lattice_box(half, R, (0.0, 0.0, z0 + half[2]))


BRAKE = (-50.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # asks for far more braking (along -x) than any friction allows


@pytest.mark.parametrize("mu_body", [0.05, 1.2])
def test_a_released_box_slides_as_far_as_coulombs_law_says_for_untrained_frictions(mu_body):
    """A box sliding along +x at 4 mm/frame on the ground, the decoder asking to brake fully: it brakes by
    exactly mu g (mu = (mu_body + 0.5) / 2, frictions outside the 0.2-0.9 of training), stops within the
    frame it would reverse, and then stays exactly at rest (no creep). The distance is Coulomb's v0^2 / (2 mu g)
    up to the semi-implicit Euler's half frame."""
    box = _box()
    sc = _scene([box], [mu_body])
    v0 = 4e-3
    hist = _history(box, [[v0, 0.0, 0.0]], sc.object_id)
    b = pack_objects([sc], DT, dtype=torch.float64)
    steps = 80
    _, pc, _ = object_rollout(_net(BRAKE), b, hist, steps, poses=True)
    x = pc[:, 0, 0].numpy() - hist[-1].mean(0)[0].item()
    decel = 0.5 * (mu_body + 0.5) * G
    v = np.diff(np.concatenate([[0.0], x]))
    v[0] = x[0]
    moving = v > 0
    k = np.arange(1, moving.sum() + 1)
    np.testing.assert_allclose(v[moving], v0 - k * decel, rtol=1e-6, atol=1e-10)  # braking by mu g each frame
    assert moving.sum() == int(v0 // decel)
    assert np.all(v[moving.sum():] == 0.0)  # at rest, and stays so
    coulomb = v0 * v0 / (2 * decel)
    assert abs(x[-1] - coulomb) <= v0 / 2 + decel, (x[-1], coulomb)
    assert float(pc[:, 0, 1].abs().max()) < 1e-12 and float((pc[:, 0, 2] - pc[0, 0, 2]).abs().max()) < 1e-12


def test_the_slide_scales_with_the_friction_coefficient_not_the_decoder():
    """The same decoder (full braking) stops a slippery box (0.05) farther than a rough one (1.2), in the
    ratio of their contact frictions; the density of the box does not enter."""
    out = {}
    for mu_body, density in ((0.05, 100.0), (1.2, 100.0), (1.2, 3500.0)):
        box = _box()
        sc = _scene([box], [mu_body])
        sc = ParticleScene(sc.positions, sc.object_id, sc.object_material, R, ground=0.0,
                           object_friction=sc.object_friction, object_density=np.array([density], np.float32),
                           mass=np.full(len(box), density * (2 * R) ** 3, np.float32))
        b = pack_objects([sc], DT, dtype=torch.float64)
        _, a, _ = _step(_net(BRAKE), b, _history(box, [[4e-3, 0.0, 0.0]], sc.object_id))
        out[(mu_body, density)] = -float(a[0, 0])
    assert out[(1.2, 100.0)] / out[(0.05, 100.0)] == pytest.approx((1.2 + 0.5) / (0.05 + 0.5), rel=1e-6)
    assert out[(1.2, 3500.0)] == pytest.approx(out[(1.2, 100.0)], rel=1e-6)


def _step(net, b, hist):
    c, rot = fit_poses(b, hist)
    a, alpha = net(c, rot, b, hist[-1][b.index], hist[-1][b.index])
    return b, a.detach(), alpha.detach()


def test_ground_friction_never_drives_a_resting_box_nor_turns_it():
    """A box at rest, the decoder asking for a sideways push and a spin about the vertical: the ground
    neither moves nor turns it (only the decoded normal response acts). Without the option (B's cone,
    ``ground_friction``) the same decoder drives it."""
    box = _box()
    sc = _scene([box], [0.6])
    b = pack_objects([sc], DT, dtype=torch.float64)
    hist = _history(box, [[0.0, 0.0, 0.0]], sc.object_id)
    psi = (2.0, -1.0, 0.0, 0.3, -0.2, 0.5)
    _, a, alpha = _step(_net(psi), b, hist)
    assert float(a.abs().max()) < 1e-15
    assert abs(float(alpha[0, 2])) < 1e-15 and abs(float(alpha[0, 0])) > 0  # tipping stays decoded, spin does not
    _, a_cone, _ = _step(_net(psi, ground_coulomb=0.0, ground_friction=0.5), b, hist)
    assert float(a_cone[0, 0]) == pytest.approx(2.0 * S, rel=1e-6)


def test_a_spinning_box_is_slowed_but_never_reversed_by_the_ground():
    box = _box()
    sc = _scene([box], [0.6])
    b = pack_objects([sc], DT, dtype=torch.float64)
    x = torch.tensor(box, dtype=torch.float64)
    w = 2e-3  # rad/frame about +z
    rot = lambda ang: torch.tensor([[np.cos(ang), -np.sin(ang), 0], [np.sin(ang), np.cos(ang), 0], [0, 0, 1]],  # noqa: E731
                                   dtype=torch.float64)
    cen = x.mean(0)
    hist = torch.stack([(x - cen) @ rot(-k * w).T + cen for k in (2, 1, 0)])
    for yaw, expect in ((-0.5, -0.5 * 3e-3), (-5.0, -w), (0.5, 0.0)):
        _, _, alpha = _step(_net((0.0, 0.0, 0.0, 0.0, 0.0, yaw)), b, hist)
        assert float(alpha[0, 2]) == pytest.approx(expect, rel=1e-6, abs=1e-15), yaw


def test_a_sliding_box_carrying_another_brakes_under_both_weights():
    """Two equal boxes stacked, sliding together: the bottom one's friction load is both weights (the
    top rests on it through a support contact), so it brakes by 2 mu g; the top box, off the ground, keeps
    the decoded tangential response."""
    low, top = _box(), _box(z0=0.04)
    sc = _scene([low, top], [0.6, 0.6])
    b = pack_objects([sc], DT, dtype=torch.float64)
    hist = _history(np.concatenate([low, top]), [[3e-3, 0.0, 0.0], [3e-3, 0.0, 0.0]], sc.object_id)
    _, a, _ = _step(_net((-0.5, 0.0, 0.0, 0.0, 0.0, 0.0)), b, hist)
    mu = (0.6 + 0.5) / 2
    lam = 0.5 * S / (0.5 * G)  # the decoder's share of the cone
    assert float(a[0, 0]) == pytest.approx(-lam * mu * 2 * G, rel=1e-6)
    assert float(a[1, 0]) == pytest.approx(-0.5 * S, rel=1e-6)


def test_mirrored_and_turned_slides_are_mirrored_and_turned():
    box = _box()
    sc = _scene([box], [0.3])
    b = pack_objects([sc], DT, dtype=torch.float64)
    outs = []
    for vy in (1e-3, -1e-3):
        _, a, _ = _step(_net(BRAKE), b, _history(box, [[3e-3, vy, 0.0]], sc.object_id))
        outs.append(a[0].numpy())
    np.testing.assert_allclose(outs[1], outs[0] * np.array([1, -1, 1]), rtol=1e-9, atol=1e-15)
    u = np.array([3e-3, 1e-3, 0.0])
    np.testing.assert_allclose(outs[0], -u / np.linalg.norm(u) * (0.3 + 0.5) / 2 * G, rtol=1e-6)


def test_old_configs_load_without_it_and_it_refuses_the_cone_beside_it():
    d = ObjectConfig(dt=DT, radius=R).to_dict()
    d.pop("ground_coulomb")
    assert ObjectConfig.from_dict(d).ground_coulomb == 0.0
    with pytest.raises(ValidationError):
        ObjectConfig(dt=DT, radius=R, ground_coulomb=0.5, ground_friction=0.5)
    with pytest.raises(ValidationError):
        ObjectConfig(dt=DT, radius=R, ground_coulomb=-1.0)


def test_a_ball_rolling_without_slip_feels_no_friction_and_a_sliding_one_does():
    """The friction acts against the slip of the ground contact point (below the lowest particles), so a
    ball rolling at v = w h (h: centre to ground) is not braked, even with the decoder asking to brake
    fully; the same ball sliding unturned is braked by mu g."""
    from dynamics.sim.scenes import lattice_sphere

    ball = lattice_sphere(0.055, R, (0.0, 0.0, 0.055))
    ball[:, 2] += R - ball[:, 2].min()
    sc = _scene([ball], [0.3])
    b = pack_objects([sc], DT, dtype=torch.float64)
    x = torch.tensor(ball, dtype=torch.float64)
    cen = x.mean(0)
    h = float(cen[2])  # the ground is at 0
    v = 2e-3
    w = v / h  # rad/frame about +y: rolling along +x

    def roty(ang):
        return torch.tensor([[np.cos(ang), 0, np.sin(ang)], [0, 1, 0], [-np.sin(ang), 0, np.cos(ang)]], dtype=torch.float64)

    hist = torch.stack([(x - cen) @ roty(-k * w).T + cen + torch.tensor([-k * v, 0.0, 0.0], dtype=torch.float64)
                        for k in (2, 1, 0)])
    _, a, _ = _step(_net(BRAKE), b, hist)
    assert abs(float(a[0, 0])) < 1e-3 * 0.4 * G, a  # rolling: (nearly) no slip at the contact, no braking
    _, a, _ = _step(_net(BRAKE), b, _history(ball, [[v, 0.0, 0.0]], sc.object_id))
    assert float(a[0, 0]) == pytest.approx(-(0.3 + 0.5) / 2 * G, rel=1e-6)  # sliding: kinetic friction


def _net_turning(psi):
    net = _net(psi)
    import dataclasses

    cfg = dataclasses.replace(net.config, coulomb_torque=True)
    out = ObjectNet(cfg).double()
    out.load_state_dict(net.state_dict())
    return out.eval()


def test_with_coulomb_torque_a_sliding_ball_spins_up_to_rolling_and_coasts():
    """``coulomb_torque``: friction acting at the contact spins a ball thrown sliding (no spin) on slippery
    ground (0.05, never trained) until it rolls without slipping; from then on it coasts at the rolling
    speed v0 / (1 + I / (M h^2)) (h: centre to ground, I: its inertia about the rolling axis), as a rigid
    ball does. A box sliding flat brakes as without the option and is not tipped."""
    from dynamics.sim.scenes import lattice_sphere

    ball = lattice_sphere(0.055, R, (0.0, 0.0, 0.055))
    ball[:, 2] += R - ball[:, 2].min()
    sc = _scene([ball], [0.05])
    b = pack_objects([sc], DT, dtype=torch.float64)
    v0 = 3e-3
    hist = _history(ball, [[v0, 0.0, 0.0]], sc.object_id)
    _, pc, pr = object_rollout(_net_turning(BRAKE), b, hist, 60, poses=True)
    v = np.diff(pc[:, 0, 0].numpy())
    h = float(hist[-1, :, 2].mean())
    m, iyy = float(b.mass[0]), float(b.inertia[0, 1, 1])
    rolling = v0 / (1 + iyy / (m * h * h))  # angular momentum about the contact point is kept
    decel = (0.05 + 0.5) / 2 * G
    assert v[0] < v0 - 0.9 * decel  # sliding at first: braked by about mu g
    # then rolls at the rolling speed, (nearly) unbraked: the lattice's lowest particles shift as it turns
    np.testing.assert_allclose(v[-20:], rolling, rtol=1e-2)
    assert np.ptp(v[-20:]) < 1e-2 * rolling
    box = _box()
    sc = _scene([box], [0.05])
    b = pack_objects([sc], DT, dtype=torch.float64)
    _, a, alpha = _step(_net_turning(BRAKE), b, _history(box, [[v0, 0.0, 0.0]], sc.object_id))
    assert float(a[0, 0]) == pytest.approx(-decel, rel=1e-6) and float(alpha.abs().max()) < 1e-12
