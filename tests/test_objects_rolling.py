"""The object model's ground contact turns bodies (``ObjectConfig.ground_torque``): friction on a
sliding ball spins it toward rolling, a box resting flat is not turned."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from particles import ParticleScene
from dynamics.objects import (ObjectConfig, ObjectNet, angular_velocity, fit_poses, object_rollout, pack_objects,
                              surface_points)
from dynamics.sim.scenes import lattice_box, lattice_sphere
from test_objects_coulomb import _net as _decoded_net

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


# --------------------------------------------------------------------------- the ground contact's kind
# (dynamics.objects.ground_contact): lying capsules and cylinders touch along a line and roll about it;
# before it they passed the flat-base test (3+ level particles spread over 2 r) and only slid.

LIE = (np.sin(np.pi / 4), 0.0, 0.0, np.cos(np.pi / 4))  # local z -> world -y: the body lies with its axis along y
G = 9.81 * DT * DT  # m/frame^2
BRAKE = (-50.0, 0.0, 0.0, 0.0, 0.0, 0.0)  # asks for far more braking (along -x) than any friction allows


def _resting(pts):
    pts = np.asarray(pts, np.float32).copy()
    pts[:, 2] += R - pts[:, 2].min()  # lowest centres r above the ground: touching it
    return pts


def _bodies():
    from dynamics.sim.scenes import lattice_capsule, lattice_cylinder

    return {
        "box": lattice_box((0.04, 0.03, 0.03), R, (0.0, 0.0, 0.0), rotation=(0.0, 0.0, np.sin(0.2), np.cos(0.2))),
        "narrow_box": lattice_box((0.03, 0.02, 0.02), R, (0.0, 0.0, 0.0)),
        "ball": lattice_sphere(0.055, R, (0.0, 0.0, 0.0)),
        "lying_capsule": lattice_capsule(0.05, 0.03, R, rotation=LIE),
        "lying_cylinder": lattice_cylinder(0.05, 0.06, R, rotation=LIE),
        "stubby_lying_cylinder": lattice_cylinder(0.055, 0.05, R, rotation=LIE),
        "short_lying_cylinder": lattice_cylinder(0.055, 0.03, R, rotation=LIE),
        "upright_capsule": lattice_capsule(0.05, 0.02, R),
        "upright_cylinder": lattice_cylinder(0.05, 0.03, R),
    }


def _coulomb_net(psi, torque=True, stick=False) -> ObjectNet:
    """``coulomb_torque`` (or, ``stick``, the solved ``ground_stick`` friction) with a ground decoder that
    always answers ``psi`` (6 values, units of the scales) and a silent contact decoder."""
    if stick:
        return _decoded_net(psi, ground_coulomb=0.0, ground_friction=0.5, ground_stick=True)
    return _decoded_net(psi, coulomb_torque=torque)


def _one(pts, friction):
    sc = ParticleScene(pts, np.zeros(len(pts), np.int32), ("rigid",), R, ground=0.0,
                       object_friction=np.array([friction], np.float32))
    return pack_objects([sc], DT, dtype=torch.float64)


def _sliding(name, friction, vx):
    """One of :func:`_bodies` resting on the ground and sliding along +x at ``vx`` (m/frame) for two frames:
    its points (P, 3) float32 m, packed batch, history (3, P, 3) float64 m and fitted poses."""
    pts = _resting(_bodies()[name])
    b = _one(pts, friction)
    x = torch.tensor(pts, dtype=torch.float64)
    v = torch.tensor([vx, 0.0, 0.0], dtype=torch.float64)
    hist = torch.stack([x - 2 * v, x - v, x])
    c, rot = fit_poses(b, hist)
    return pts, b, hist, c, rot


def test_ground_contact_tells_areas_lines_and_points():
    """Boxes (also a 2-row, 4 cm wide base, and one turned about the vertical) and an upright cylinder
    rest on an area; lying capsules and cylinders (also a short one, whose sparse surface samples do not
    show its axis) touch along a line along their axis (world y; one about as long as wide may count as a
    point: it keeps its rolling torque either way); a ball and an upright capsule on its cap
    touch at a point. The projector keeps the torque about the vertical for an area, about the axis and
    the vertical for a line, everything for a point."""
    from dynamics.objects import AREA_CONTACT, LINE_CONTACT, POINT_CONTACT, _apply, _constants, ground_contact

    expect = {"box": AREA_CONTACT, "narrow_box": AREA_CONTACT, "upright_cylinder": AREA_CONTACT,
              "lying_capsule": LINE_CONTACT, "lying_cylinder": LINE_CONTACT, "short_lying_cylinder": LINE_CONTACT,
              "ball": POINT_CONTACT, "upright_capsule": POINT_CONTACT}
    keep = {AREA_CONTACT: np.diag([0.0, 0.0, 1.0]), LINE_CONTACT: np.diag([0.0, 1.0, 1.0]), POINT_CONTACT: np.eye(3)}
    for name, pts in _bodies().items():
        pts = _resting(pts)
        b = _one(pts, 0.5)
        x = torch.tensor(pts, dtype=torch.float64)
        c, rot = fit_poses(b, x[None])
        k_ = _constants(b, torch.float64)
        surf = _apply(rot[0], k_.body_s) + c[0][:, None]
        z = torch.where(k_.smask, surf[..., 2], k_.big)
        kind, proj = ground_contact(surf, z, z.amin(1), k_.smask, k_.r, k_.gdir, rot[0], b.inertia)
        if name == "stubby_lying_cylinder":  # about as long as wide: a line or a point, never a flat base
            assert int(kind[0]) != AREA_CONTACT and float(proj[0, 1, 1]) > 0.9  # it keeps its rolling torque
            continue
        assert int(kind[0]) == expect[name], name
        np.testing.assert_allclose(proj[0].numpy(), keep[expect[name]], atol=0.1, err_msg=name)


def _rolling(name, v0=3e-3, mu_body=0.05, steps=60):
    """A body thrown sliding along +x (no spin) on slippery ground, the decoder asking to brake fully:
    its centre's speed (steps - 1,) m/frame, spin about y (steps - 1,) rad/frame, centre height m, mass kg,
    inertia about y kg m^2."""
    pts = _resting(_bodies()[name])
    b = _one(pts, mu_body)
    x = torch.tensor(pts, dtype=torch.float64)
    v = torch.tensor([v0, 0.0, 0.0], dtype=torch.float64)
    hist = torch.stack([x - 2 * v, x - v, x])
    _, pc, pr = object_rollout(_coulomb_net(BRAKE), b, hist, steps, poses=True)
    vx = np.diff(pc[:, 0, 0].numpy())
    wy = angular_velocity(pr[1:, 0], pr[:-1, 0])[:, 1].numpy()
    return vx, wy, float(x[:, 2].mean()), float(b.mass[0]), float(b.inertia[0, 1, 1])


def test_a_lying_capsule_and_cylinder_spin_up_to_rolling_and_coast():
    """``coulomb_torque``: friction at the line contact of a lying capsule or cylinder thrown sliding across
    its axis spins it up about the axis until it rolls without slip (v = w h, h the centre's height) and
    then coasts at v0 / (1 + I / (M h^2)) (angular momentum about the contact line is kept), as a rigid
    cylinder does (Newton's roll). Before, they passed the flat-base test: no rolling torque, they slid and
    stopped within a few frames."""
    for name in ("lying_capsule", "lying_cylinder"):
        vx, wy, h, m, iyy = _rolling(name)
        rolling = 3e-3 / (1 + iyy / (m * h * h))
        assert wy[-1] > 0, name  # spun about +y: rolling along +x
        np.testing.assert_allclose(vx[-15:], rolling, rtol=3e-2, err_msg=name)
        # no slip: v = w h, within 5%: the sampled fill's centre of mass sits off its axis (3.6% measured on
        # the cylinder), so the lowest particles, and the model's contact below them, move as it turns
        np.testing.assert_allclose(wy[-15:] * h, vx[-15:], rtol=5e-2, err_msg=name)
        assert np.ptp(vx[-15:]) < 1e-2 * rolling, name  # coasting, not braked


def test_a_box_beside_them_is_not_tipped_and_a_ball_still_rolls():
    """On the same ground and decoder, a sliding box (turned 11 deg about the vertical) brakes by mu g
    without any turn about a horizontal axis (its base balances the tipping), and a ball spins up to
    rolling as before."""
    vx, wy, h, m, iyy = _rolling("ball")
    np.testing.assert_allclose(vx[-15:], 3e-3 / (1 + iyy / (m * h * h)), rtol=2e-2)
    np.testing.assert_allclose(wy[-15:] * h, vx[-15:], rtol=5e-2)  # as for the capsule: the contact moves as it turns
    pts = _resting(_bodies()["box"])
    b = _one(pts, 0.05)
    x = torch.tensor(pts, dtype=torch.float64)
    v = torch.tensor([3e-3, 1e-3, 0.0], dtype=torch.float64)
    hist = torch.stack([x - 2 * v, x - v, x])
    _, pc, pr = object_rollout(_coulomb_net(BRAKE), b, hist, 20, poses=True)
    w = angular_velocity(pr[1:, 0], pr[:-1, 0]).numpy()
    assert np.abs(w[:, :2]).max() < 1e-12 and float((pc[:, 0, 2] - pc[0, 0, 2]).abs().max()) < 1e-12
    speed = np.linalg.norm(np.diff(pc[:, 0, :2].numpy(), axis=0), axis=1)
    # pc[0] is the first predicted frame, so speed[0] is the second frame's: braked twice by mu g
    assert speed[0] == pytest.approx(np.hypot(3e-3, 1e-3) - 2 * (0.05 + 0.5) / 2 * G, rel=1e-5)
    assert speed[-1] < 1e-12  # and stops


def test_an_upright_capsule_on_its_cap_keeps_the_full_friction_torque():
    """Near miss: a capsule standing on its cap touches at a point, as before: the friction's torque
    ``I^-1 (lever x M a_f)`` is applied whole (lever: centre to the ground contact), tipping part included."""
    pts, b, hist, c, rot = _sliding("upright_capsule", 0.05, 3e-3)
    a, alpha = _coulomb_net(BRAKE)(c, rot, b, hist[-1][b.index], hist[-1][b.index])
    a, alpha = a[0].detach().numpy(), alpha[0].detach().numpy()
    assert a[0] < 0  # braked
    surf = pts[surface_points(pts, R)].astype(np.float64)
    low = surf[surf[:, 2] < surf[:, 2].min() + R]
    cen = pts.astype(np.float64).mean(0)
    lever = np.array([*(low[:, :2].mean(0) - cen[:2]), surf[:, 2].min() - R - cen[2]])
    expect = np.linalg.solve(b.inertia[0].numpy(), np.cross(lever, float(b.mass[0]) * a))
    np.testing.assert_allclose(alpha, expect, rtol=1e-6, atol=1e-12)
    assert alpha[1] > 0  # tipped forward about +y by the friction at its cap


def test_solved_ground_friction_rolls_a_lying_capsule():
    """``ground_stick``: a lying capsule sliding across its axis ends the frame rolling without slip at its
    ground contact (as the ball does), with a spin about +y; before, its
    line contact was taken for a flat base and it was only braked, unturned."""
    pts, b, hist, c, rot = _sliding("lying_capsule", 0.6, 2e-3)
    a, alpha = _coulomb_net((5.0, -3.0, 0.0, 0.0, 0.0, 0.0), stick=True)(c, rot, b, hist[-1][b.index], hist[-1][b.index])
    a, alpha = a[0].detach().numpy(), alpha[0].detach().numpy()
    surf = pts[surface_points(pts, R)].astype(np.float64)
    low = surf[surf[:, 2] < surf[:, 2].min() + R]
    cen = pts.astype(np.float64).mean(0)
    contact = np.array([*(low[:, :2].mean(0) - cen[:2]), -cen[2]])
    v1 = np.array([2e-3, 0.0, 0.0]) + a
    slip = v1 + np.cross(alpha, contact)
    assert np.abs(slip[:2]).max() < 1e-9 and alpha[1] > 0 and 0 < v1[0] < 2e-3
