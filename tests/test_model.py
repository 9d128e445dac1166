"""The learned dynamics: Warp graph ops, the GNN's symmetries, the action, training, checkpoints, DDP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dynamics.evaluate import constant_velocity, one_step_mse, position_mse
from dynamics.model import GNS, LearnedSimulator, batched_rollout, contact_projection, ground_projection, pack_scenes, rigid_projection
from dynamics.ops import gather, scatter_add
from dynamics.toy import toy_dataset, toy_rollout
from dynamics.train import TrainConfig, load_checkpoint, load_model, model_config_for_dataset, train
from particles import KINEMATIC, Action, FileFormatError, ParticleState, load_dataset

ROOT = Path(__file__).resolve().parents[1]

TINY = dict(latent=16, message_steps=2, history=2, hidden_layers=1)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Two shared cores: one intra-op thread is several times faster than two here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("toy")
    toy_dataset(folder, seed=0, train=4, valid=1, test=1, frames=24)
    return folder


@pytest.fixture(scope="module")
def model64(dataset):
    """A randomly initialised model in float64 (exact symmetry checks)."""
    cfg = model_config_for_dataset(dataset, **TINY)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        m = GNS(cfg).double().eval()
        # untrained LayerNorm/decoder outputs are tiny; scale the decoder so errors would show
        with torch.no_grad():
            m.decoder[-1].weight.mul_(50.0)
    return m


# --------------------------------------------------------------------------- Warp ops


def test_scatter_add_and_gather_match_torch():
    g = torch.Generator().manual_seed(0)
    src = torch.randn(57, 7, generator=g)
    idx = torch.randint(0, 9, (57,), generator=g)
    idx[idx == 4] = 5  # row 4 receives nothing and must stay zero
    out = scatter_add(src, idx, 11)
    ref = torch.zeros(11, 7).index_add_(0, idx, src)
    assert torch.allclose(out, ref, atol=1e-5)
    assert torch.all(out[4] == 0) and torch.all(out[9:] == 0)
    nodes = torch.randn(11, 7, generator=g)
    assert torch.equal(gather(nodes, idx), nodes[idx])
    # empty graph
    assert torch.equal(scatter_add(torch.zeros(0, 3), torch.zeros(0, dtype=torch.int64), 4), torch.zeros(4, 3))


@pytest.mark.parametrize("features", [1, 3, 12, 64, 80])  # every CPU chunk width: scalar, vec4, vec16
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ops_match_torch_for_every_row_width_and_dtype(features, dtype):
    g = torch.Generator().manual_seed(features)
    src = torch.randn(301, features, generator=g, dtype=dtype)
    idx = torch.randint(0, 40, (301,), generator=g)
    ref = torch.zeros(40, features, dtype=dtype).index_add_(0, idx, src)
    assert torch.allclose(scatter_add(src, idx, 40), ref, atol=1e-5)
    nodes = torch.randn(40, features, generator=g, dtype=dtype)
    assert torch.equal(gather(nodes, idx), nodes[idx])
    # a non-contiguous view goes through the same kernels
    wide = torch.randn(301, 2 * features, generator=g, dtype=dtype)[:, ::2]
    assert torch.allclose(scatter_add(wide, idx, 40), torch.zeros(40, features, dtype=dtype).index_add_(0, idx, wide), atol=1e-5)


def test_ops_gradients_match_finite_differences():
    g = torch.Generator().manual_seed(1)
    idx = torch.randint(0, 5, (13,), generator=g)
    src = torch.randn(13, 3, dtype=torch.float64, generator=g, requires_grad=True)
    nodes = torch.randn(5, 3, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: scatter_add(s, idx, 5), (src,))
    assert torch.autograd.gradcheck(lambda s: gather(s, idx), (nodes,))
    assert torch.autograd.gradgradcheck(lambda s: scatter_add(s, idx, 5) ** 2, (src,))
    assert torch.autograd.gradgradcheck(lambda s: gather(s, idx) ** 2, (nodes,))
    # and the backward equals torch's own index_add_ / indexing backward
    w = torch.randn(5, 3, dtype=torch.float64, generator=g)
    (gs,) = torch.autograd.grad((scatter_add(src, idx, 5) * w).sum(), src)
    (gr,) = torch.autograd.grad((torch.zeros(5, 3, dtype=torch.float64).index_add(0, idx, src) * w).sum(), src)
    assert torch.allclose(gs, gr)


# --------------------------------------------------------------------------- model symmetries


def _inputs(dataset, dtype=torch.float64):
    ro = next(r for r in load_dataset(dataset, "train") if "tool" in r.scene.object_name)  # a push
    assert np.any(ro.scene.particle_type == KINEMATIC)
    rng = np.random.default_rng(5)
    hist = ro.positions[4:7].astype(np.float64) + rng.normal(0, 2e-3, (3,) + ro.positions.shape[1:])
    nxt = ro.positions[7].astype(np.float64)
    return ro, hist, nxt


def test_model_is_translation_invariant(dataset, model64):
    ro, hist, nxt = _inputs(dataset)
    shift = np.array([0.37, -1.25, 0.5])
    out = []
    for s in (np.zeros(3), shift):
        scene = ro.scene.replace(positions=ro.scene.positions + s.astype(np.float32), ground=ro.scene.ground + s[2])
        batch = pack_scenes([scene], dtype=torch.float64)
        h = torch.as_tensor(hist + s)
        # the float32 rest positions of the scene round differently after the shift: use exact float64 ones
        batch.rest = torch.as_tensor(ro.scene.positions.astype(np.float64) + s)
        acc = model64(h, batch, torch.as_tensor(nxt + s))
        pos = model64.next_positions(h, batch, torch.as_tensor(nxt + s), rigid=True)
        full = model64.next_positions(h, batch, torch.as_tensor(nxt + s), rigid=True, collide=True)
        out.append((acc, pos - torch.as_tensor(s), full - torch.as_tensor(s)))
    assert out[0][0].abs().max() > 1e-2  # the model does predict something
    assert torch.allclose(out[0][0], out[1][0], atol=1e-8)
    assert torch.allclose(out[0][1], out[1][1], atol=1e-10)
    assert not torch.allclose(out[0][1], out[0][2], atol=1e-6)  # the contacts did act
    assert torch.allclose(out[0][2], out[1][2], atol=1e-9)  # and they are translation invariant too


def test_model_is_permutation_equivariant(dataset, model64):
    ro, hist, nxt = _inputs(dataset)
    perm = np.random.default_rng(0).permutation(ro.scene.num_particles)
    sc = ro.scene
    scene_p = sc.replace(positions=sc.positions[perm], object_id=sc.object_id[perm], particle_type=sc.particle_type[perm],
                         mass=sc.mass[perm])
    a = model64(torch.as_tensor(hist), pack_scenes([sc], dtype=torch.float64), torch.as_tensor(nxt))
    b = model64(torch.as_tensor(hist[:, perm]), pack_scenes([scene_p], dtype=torch.float64), torch.as_tensor(nxt[perm]))
    assert torch.allclose(a[torch.as_tensor(perm)], b, atol=1e-10)
    # and so are the constraints (rigid, contact, ground)
    pa = model64.next_positions(torch.as_tensor(hist), pack_scenes([sc], dtype=torch.float64), torch.as_tensor(nxt),
                                rigid=True, collide=True)
    pb = model64.next_positions(torch.as_tensor(hist[:, perm]), pack_scenes([scene_p], dtype=torch.float64),
                                torch.as_tensor(nxt[perm]), rigid=True, collide=True)
    assert torch.allclose(pa[torch.as_tensor(perm)], pb, atol=1e-10)


def test_inference_path_equals_the_autograd_path(dataset, model64):
    """Without autograd the network accumulates in place; it must give the very same numbers."""
    ro, hist, nxt = _inputs(dataset)
    batch = pack_scenes([ro.scene], dtype=torch.float64)
    with torch.no_grad():
        fast = model64(torch.as_tensor(hist), batch, torch.as_tensor(nxt))
    with torch.enable_grad():
        slow = model64(torch.as_tensor(hist), batch, torch.as_tensor(nxt))
    assert slow.requires_grad and torch.equal(fast, slow.detach())


def test_packed_batch_equals_scenes_one_by_one(dataset, model64):
    trajs = load_dataset(dataset, "train")[:3]
    acts = [None if not np.any(t.scene.kinematic) else
            Action(np.flatnonzero(t.scene.kinematic), t.positions[:6, t.scene.kinematic]) for t in trajs]
    states = [ParticleState(t.positions[2], (t.positions[2] - t.positions[1]) / t.dt, history=t.positions[:2]) for t in trajs]
    together = batched_rollout(model64, [t.scene for t in trajs], acts, 5, states)
    for t, a, s, r in zip(trajs, acts, states, together):
        alone = batched_rollout(model64, [t.scene], [a], 5, [s])[0]
        assert np.allclose(alone.positions, r.positions, atol=1e-6)


# --------------------------------------------------------------------------- action and rigidity


def test_kinematic_particles_follow_the_action_and_rigid_bodies_stay_rigid(dataset):
    cfg = model_config_for_dataset(dataset, **TINY)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = GNS(cfg)
    with torch.no_grad():
        model.decoder[-1].weight.mul_(50.0)  # large, wrong accelerations: projection must still hold shape
    ro = toy_rollout(np.random.default_rng(7), "push", 30, table=True)
    sc = ro.scene
    tool = np.flatnonzero(sc.object_id == sc.object_name.index("tool"))
    table = np.flatnonzero(sc.object_id == sc.object_name.index("table"))
    box = np.flatnonzero(~sc.kinematic)
    assert np.all(sc.kinematic[tool]) and np.all(sc.kinematic[table])
    action = Action(tool, ro.positions[:, tool])
    sim = LearnedSimulator(model, ro.scene, action_indices=tool, rigid=True)
    out = sim.rollout(action, 20)
    assert np.array_equal(out.positions[:, tool], ro.positions[:21, tool])
    assert np.all(out.positions[:, table] == sc.positions[table])  # kinematic, not driven: holds still
    d = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)  # noqa: E731
    rest = d(ro.scene.positions[box])
    for t in (1, 10, 20):
        assert np.abs(d(out.positions[t, box]) - rest).max() < 1e-4
    assert np.abs(out.positions[20, box] - out.positions[0, box]).max() > 1e-3  # it did move
    assert out.positions[:, box, 2].min() >= sc.ground + sc.radius - 1e-6  # never through the ground
    # step() moves the tool to the control too, and writes the history it needs next
    s0 = ParticleState(ro.positions[0], np.zeros_like(ro.positions[0]))
    s1 = ParticleState(np.zeros_like(ro.positions[0]), np.zeros_like(ro.positions[0]))
    sim.step(s0, s1, ro.positions[1, tool], ro.dt)
    assert np.array_equal(s1.positions[tool], ro.positions[1, tool])
    assert s1.history.shape == (cfg.history, ro.scene.num_particles, 3)
    assert np.allclose(s1.velocities[tool], (ro.positions[1, tool] - ro.positions[0, tool]) / ro.dt, atol=1e-4)


def test_rigid_projection_recovers_a_rigid_motion():
    g = torch.Generator().manual_seed(2)
    rest = torch.randn(20, 3, dtype=torch.float64, generator=g)
    q = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=g))[0]
    q = q * torch.sign(torch.linalg.det(q))  # a proper rotation
    t = torch.tensor([0.3, -2.0, 1.0], dtype=torch.float64)
    group = torch.tensor([0] * 12 + [1] * 8)
    moved = rest.clone()
    moved[:12] = rest[:12] @ q.T + t
    noisy = moved + 1e-3 * torch.randn(20, 3, dtype=torch.float64, generator=g)
    out = rigid_projection(noisy, rest, group, 2, mask=group == 0)
    assert torch.allclose(out[:12], moved[:12], atol=3e-3)
    assert torch.equal(out[12:], noisy[12:])  # outside the mask: untouched
    exact = rigid_projection(moved, rest, group, 2, mask=group == 0)
    assert torch.allclose(exact[:12], moved[:12], atol=1e-10)
    pred = noisy.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p: rigid_projection(p, rest, group, 2, mask=group == 0), (pred,))


def test_ground_projection_lifts_rigid_bodies_whole_and_other_particles_alone():
    pred = torch.tensor([[0.0, 0.0, 0.05], [0.02, 0.0, -0.01], [0.5, 0.0, -0.03], [0.6, 0.0, 0.2], [0.7, 0.0, -0.5]],
                        dtype=torch.float64)
    floor = torch.full((5,), 0.01, dtype=torch.float64)
    group = torch.tensor([0, 0, 1, 1, 2])
    rigid = torch.tensor([True, True, False, False, True])
    free = torch.tensor([True, True, True, True, False])
    out = ground_projection(pred, floor, group, 3, rigid, free)
    assert torch.allclose(out[:2, 2], torch.tensor([0.07, 0.01], dtype=torch.float64))  # object 0 lifted by 2 cm
    assert torch.allclose(out[2:4, 2], torch.tensor([0.01, 0.2], dtype=torch.float64))  # particle by particle
    assert out[4, 2] == -0.5  # kinematic: untouched
    assert torch.equal(out[:, :2], pred[:, :2])


def test_contact_projection_pushes_free_particles_out_of_the_tool():
    from particles import ParticleScene

    r = 0.01
    box = np.array([[0.0, 0.0, 0.1], [0.02, 0.0, 0.1], [0.0, 0.02, 0.1], [0.02, 0.02, 0.1]])
    tool = np.array([[-0.012, 0.0, 0.1], [-0.012, 0.02, 0.1]])  # 8 mm into the box's back face
    loose = np.array([[0.3, 0.0, 0.1]])
    far_tool = np.array([[0.3, 0.0, 0.085]])  # 15 mm below the loose particle: inside
    pos = np.concatenate([box, tool, loose, far_tool]).astype(np.float32)
    scene = ParticleScene(pos, np.array([0, 0, 0, 0, 1, 1, 2, 3], np.int32), ("rigid", "rigid", "elastic", "static"), r,
                          particle_type=np.array([8, 8, 8, 8, KINEMATIC, KINEMATIC, 9, KINEMATIC], np.int32))
    batch = pack_scenes([scene], dtype=torch.float64)
    out = contact_projection(torch.tensor(pos, dtype=torch.float64), batch).numpy()
    moved = out[:4] - pos[:4]
    assert np.allclose(moved, moved[0], atol=1e-12)  # the rigid box moved as one
    assert np.allclose(moved[0], [0.008, 0.0, 0.0], atol=1e-6)  # by exactly the overlap, away from the tool
    assert np.allclose(out[4:6], tool) and np.allclose(out[7], far_tool[0])  # kinematic particles stay
    assert np.isclose(out[6, 2], 0.105, atol=1e-6) and np.allclose(out[6, :2], loose[0, :2])


def test_contact_projection_separates_objects_symmetrically():
    from particles import ParticleScene

    r = 0.01
    a = np.array([[0.0, 0.0, 0.1], [0.02, 0.0, 0.1], [0.0, 0.02, 0.1], [0.02, 0.02, 0.1]])
    b = a + np.array([0.034, 0.0, 0.0])  # 6 mm into a's front face
    sand = np.array([[0.5, 0.0, 0.1], [0.5, 0.0, 0.115]])  # two granular objects, 5 mm overlap
    pos = np.concatenate([a, b, sand]).astype(np.float64)
    scene = ParticleScene(pos.astype(np.float32), np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 3], np.int32),
                          ("rigid", "rigid", "granular", "granular"), r)
    batch = pack_scenes([scene], dtype=torch.float64)
    out = contact_projection(torch.tensor(pos), batch).numpy()
    da, db = out[:4] - pos[:4], out[4:8] - pos[4:8]
    assert np.allclose(da, da[0], atol=1e-12) and np.allclose(db, db[0], atol=1e-12)  # rigid, as wholes
    assert np.allclose(da[0], [-0.003, 0, 0], atol=1e-6) and np.allclose(db[0], [0.003, 0, 0], atol=1e-6)
    assert np.allclose(out[8], [0.5, 0, 0.0975], atol=1e-6) and np.allclose(out[9], [0.5, 0, 0.1175], atol=1e-6)
    # particles of one object are never pushed apart, and the option turns the pairs off
    same = ParticleScene(pos.astype(np.float32), np.zeros(10, np.int32), ("granular",), r)
    assert np.allclose(contact_projection(torch.tensor(pos), pack_scenes([same], dtype=torch.float64)).numpy(), pos)
    off = contact_projection(torch.tensor(pos), batch, between_objects=False).numpy()
    assert np.allclose(off, pos)


def _box(n, r, centre):
    """(n^3, 3) float64 lattice of pitch 2r centred on ``centre``."""
    g = (np.arange(n) - (n - 1) / 2) * 2 * r
    return np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3) + np.asarray(centre, np.float64)


def _yaw(before, after):
    """Rotation angle about z, rad, of the best rigid fit from ``before`` to ``after`` (N, 3)."""
    from particles.keypoints import kabsch

    rot = kabsch(before, after)[0]
    return float(np.arctan2(rot[1, 0], rot[0, 0]))


def test_contact_projection_splits_by_inverse_mass_and_conserves_momentum():
    """An isolated overlapping pair of point masses, 1 : 3: the light one moves 3x as far, the
    pair ends exactly touching, and sum m dx = 0."""
    from particles import ParticleScene

    r = 0.01
    pos = np.array([[0.0, 0.0, 0.3], [0.015, 0.004, 0.3]])
    mass = np.array([1e-3, 3e-3], np.float32)
    scene = ParticleScene(pos.astype(np.float32), np.array([0, 1], np.int32), ("granular", "granular"), r, mass=mass)
    batch = pack_scenes([scene], dtype=torch.float64)
    out = contact_projection(torch.tensor(pos), batch).numpy()
    dx = out - pos
    assert np.isclose(np.linalg.norm(out[1] - out[0]), 2 * r, atol=1e-9)
    assert np.allclose(mass[0] * dx[0] + mass[1] * dx[1], 0.0, atol=1e-15)
    assert np.isclose(np.linalg.norm(dx[0]) / np.linalg.norm(dx[1]), 3.0, rtol=1e-6)


def test_contact_projection_turns_rigid_bodies_and_conserves_momentum():
    """Two rigid boxes of different density overlap at one corner: both stay rigid, the overlap
    is resolved, sum m dx = 0 exactly, angular momentum to first order, the off-centre impulse
    turns both boxes and the heavy box moves and turns less."""
    from particles import ParticleScene

    r = 0.01
    a = _box(3, r, (0.0, 0.0, 0.2))
    b = _box(3, r, (0.054, 0.04, 0.2))  # its corner column sits 6 mm into a's corner column
    pos = np.concatenate([a, b])
    scene = ParticleScene(pos.astype(np.float32), np.repeat(np.array([0, 1], np.int32), 27), ("rigid", "rigid"), r,
                          object_density=np.array([500.0, 2000.0], np.float32), ground=None)
    batch = pack_scenes([scene], dtype=torch.float64)
    batch.rest = torch.tensor(pos)
    out, used = contact_projection(torch.tensor(pos), batch, return_iterations=True)
    out = out.numpy()
    m = scene.mass.astype(np.float64)
    dx = out - pos
    assert np.allclose((m[:, None] * dx).sum(0), 0.0, atol=1e-15)
    ang = (m[:, None] * np.cross(pos, dx)).sum(0)
    assert np.abs(ang).max() < 1e-3 * (m[:, None] * np.abs(np.cross(pos, dx))).sum(0).max()
    d = lambda x: np.linalg.norm(x[:, None] - x[None], axis=-1)  # noqa: E731
    for sl in (slice(0, 27), slice(27, 54)):
        assert np.abs(d(out[sl]) - d(pos[sl])).max() < 1e-12  # rigid
    gap = d(np.concatenate([out[:27], out[27:]]))[:27, 27:].min()
    assert gap > 2 * r - 2e-6 and 1 <= used < 64  # converged, within tolerance
    ya, yb = _yaw(pos[:27], out[:27]), _yaw(pos[27:], out[27:])
    # a is pushed -x at its (+x, +y) corner, b +x at its (-x, -y) corner: both turn counter-clockwise,
    # the 4x lighter box (4x smaller inertia) 4x as far, to first order
    assert ya > 1e-3 and yb > 0 and np.isclose(ya / yb, 4.0, rtol=0.05)
    shift_a, shift_b = dx[:27].mean(0), dx[27:].mean(0)
    assert np.isclose(np.linalg.norm(shift_a) / np.linalg.norm(shift_b), 4.0, rtol=1e-9)


def test_contact_projection_off_centre_push_turns_the_box_toward_the_push():
    """A tool pressing into one end of a long box's back face turns it (yaw) and pushes it on;
    the box stays rigid; pressing at the centre does not turn it."""
    from particles import ParticleScene

    r = 0.01
    g = np.arange(6) * 2 * r
    box = np.stack(np.meshgrid([0.0, 0.02], g, [0.1], indexing="ij"), -1).reshape(-1, 3)
    out = {}
    for where, y in (("end", 0.0), ("centre", 0.05)):
        tool = np.array([[-0.014, y, 0.1]])  # 6 mm into the box's back face at y
        pos = np.concatenate([box, tool])
        scene = ParticleScene(pos.astype(np.float32), np.array([0] * len(box) + [1], np.int32), ("rigid", "rigid"), r,
                              particle_type=np.array([8] * len(box) + [KINEMATIC], np.int32), ground=None)
        res = contact_projection(torch.tensor(pos), pack_scenes([scene], dtype=torch.float64)).numpy()
        out[where] = res[:len(box)]
        assert np.allclose(res[-1], tool[0])  # kinematic: stays
        assert np.linalg.norm(res[:len(box)] - tool[0], axis=1).min() > 2 * r - 2e-6
    yaw_end = _yaw(box, out["end"])
    assert yaw_end > 0.02  # pushed +x at its -y end: turns counter-clockwise
    assert abs(_yaw(box, out["centre"])) < 1e-9
    assert out["end"][:, 0].mean() > box[:, 0].mean() + 1e-3  # and moves on


def test_contact_projection_gradients_match_finite_differences():
    """With a fixed number of iterations the contact projection (impulses, turns, ground) is smooth
    in the predicted positions: autograd equals central differences (float64)."""
    from particles import ParticleScene

    r = 0.01
    a = _box(2, r, (0.0, 0.0, 0.0095))  # 0.5 mm into the ground
    b = _box(2, r, (0.036, 0.012, 0.0105))  # 4 mm into a, off centre
    tool = np.array([[-0.027, -0.01, 0.01]])  # 3 mm into a's back face
    pos = np.concatenate([a, b, tool])
    scene = ParticleScene(pos.astype(np.float32), np.array([0] * 8 + [1] * 8 + [2], np.int32), ("rigid", "granular", "rigid"),
                          r, particle_type=np.array([8] * 8 + [9] * 8 + [KINEMATIC], np.int32),
                          object_density=np.array([700.0, 1600.0, 1000.0], np.float32))
    batch = pack_scenes([scene], dtype=torch.float64)
    x = torch.tensor(pos, requires_grad=True)
    f = lambda p: contact_projection(p, batch, iterations=4, ground=True, tolerance=0.0)  # noqa: E731
    moved = f(x).detach().numpy()
    assert np.abs(moved - pos).max() > 1e-3  # contacts act
    assert torch.autograd.gradcheck(f, (x,), eps=1e-7, atol=1e-6)


@pytest.mark.parametrize("collide", [False, True])
def test_rollout_gradients_match_finite_differences(model64, collide):
    """rollout_packed(grad=True): the gradient of a 3-step rollout of a tiny scene (a box, a tool
    moving towards it) with respect to the tool's action and the initial history equals central
    differences along random directions (float64), with and without the contact constraints."""
    from particles import ParticleScene

    from dynamics.model import rollout_packed

    r = 0.01
    box = _box(2, r, (0.0, 0.0, 0.02))
    tool = _box(2, r, (-0.05, 0.004, 0.025))[:4]
    pos = np.concatenate([box, tool])
    scene = ParticleScene(pos.astype(np.float32), np.array([0] * 8 + [1] * 4, np.int32), ("rigid", "rigid"), r,
                          particle_type=np.array([8] * 8 + [KINEMATIC] * 4, np.int32))
    batch = pack_scenes([scene], dtype=torch.float64)
    kin = torch.as_tensor(scene.kinematic)
    vel = np.zeros_like(pos)
    vel[8:, 0] = 0.003  # the tool approaches at 3 mm per frame
    c = TINY["history"]
    h0 = torch.as_tensor(np.stack([pos + (k - c) * vel for k in range(c + 1)]))
    future = torch.as_tensor(np.stack([pos + (k + 1) * vel for k in range(3)]))
    rng = np.random.default_rng(1)
    weight = torch.as_tensor(rng.normal(size=(3, len(pos), 3)))

    def loss(h, fut):
        return (rollout_packed(model64, batch, h, 3, fut, rigid=True, collide=collide, grad=True) * weight).sum()

    fut = future.clone().requires_grad_(True)
    h = h0.clone().requires_grad_(True)
    g_fut, g_h = torch.autograd.grad(loss(h, fut), (fut, h))
    assert g_fut[:, kin].abs().max() > 1e-3  # the action matters ...
    assert g_fut[:, ~kin].abs().max() == 0  # ... and only its kinematic rows are read
    eps = 1e-7
    with torch.no_grad():
        for _ in range(2):
            v = torch.as_tensor(rng.normal(size=future.shape)) * kin[None, :, None]
            fd = (loss(h0, future + eps * v) - loss(h0, future - eps * v)) / (2 * eps)
            assert torch.isclose((g_fut * v).sum(), fd, rtol=1e-5), (float((g_fut * v).sum()), float(fd))
            u = torch.as_tensor(rng.normal(size=h0.shape))
            fd = (loss(h0 + eps * u, future) - loss(h0 - eps * u, future)) / (2 * eps)
            assert torch.isclose((g_h * u).sum(), fd, rtol=1e-5), (float((g_h * u).sum()), float(fd))
    # the default records nothing
    assert not rollout_packed(model64, batch, h, 2, fut).requires_grad


def test_physical_features_reach_the_network_and_old_configs_load_without_them(dataset):
    from dynamics.model import ModelConfig

    cfg = model_config_for_dataset(dataset, **TINY)
    assert cfg.physical_features and np.isclose(cfg.connectivity_radius, 3.7 * 0.01)
    old = {k: v for k, v in cfg.to_dict().items() if k != "physical_features"}
    assert not ModelConfig.from_dict(old).physical_features  # a checkpoint from before the flag
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        m = GNS(cfg).double().eval()
        plain = GNS(ModelConfig.from_dict(old)).double().eval()
    assert m.node_encoder[0].in_features == plain.node_encoder[0].in_features + 4
    ro, hist, nxt = _inputs(dataset)
    box = ro.scene.object_name.index("box")
    outs = []
    for changes in ({}, {"object_friction": np.where(np.arange(ro.scene.num_objects) == box, 0.9, 0.5)},
                    {"object_density": np.where(np.arange(ro.scene.num_objects) == box, 300.0, 1000.0)}):
        sc = ro.scene.replace(mass=None, **changes)
        outs.append(m(torch.as_tensor(hist), pack_scenes([sc], dtype=torch.float64), torch.as_tensor(nxt)))
        # the plain model cannot see them
        if changes:
            p0 = plain(torch.as_tensor(hist), pack_scenes([ro.scene.replace(mass=None)], dtype=torch.float64), torch.as_tensor(nxt))
            p1 = plain(torch.as_tensor(hist), pack_scenes([sc], dtype=torch.float64), torch.as_tensor(nxt))
            assert torch.equal(p0, p1)
    assert not torch.allclose(outs[0], outs[1], atol=1e-9) and not torch.allclose(outs[0], outs[2], atol=1e-9)


def test_datasets_carry_the_object_parameters(tmp_path):
    """random_setup records each object's drawn friction and density (and the tool's), and a
    dataset round trip keeps friction, restitution and stiffness per object."""
    from dynamics.sim.scenes import random_setup
    from particles import Rollout, write_dataset

    rng = np.random.default_rng(3)
    setups = [random_setup(rng, 20, granular_fraction=0.0) for _ in range(4)]
    fr = np.concatenate([s.scene.object_friction[:-1] for s in setups])  # boxes; the tool last
    assert np.all((fr >= 0.3) & (fr <= 0.7)) and np.ptp(fr) > 0.05
    for s in setups:
        for k, mat in enumerate(s.materials):
            if mat is not None:
                assert np.isclose(s.scene.object_friction[k], mat.friction)
                assert np.isclose(s.scene.object_stiffness[k], mat.young_modulus, rtol=1e-6)
    scene = setups[0].scene.replace(object_restitution=np.linspace(0, 0.5, setups[0].scene.num_objects))
    ro = Rollout(scene, np.repeat(scene.positions[None], 3, 0), 1 / 60)
    write_dataset(tmp_path / "d", {"train": [ro], "valid": [ro], "test": [ro]})
    back = load_dataset(tmp_path / "d", "train")[0].scene
    for f in ("object_friction", "object_restitution", "object_stiffness", "object_density"):
        assert np.allclose(getattr(back, f), getattr(scene, f)), f


def test_rollout_warns_when_the_scene_lies_outside_the_training_distribution(dataset, tmp_path, capsys):
    """The checkpoint records what it was trained on (toy: rigid boxes, a pusher); a gripper
    squeezing an elastic sphere is flagged (material, tool, parameters), a training trajectory is not,
    and a checkpoint without the record says so once."""
    from worldline.cli import main

    train(dataset, tmp_path / "r", _cfg(steps=1, validate_every=0), model_overrides=TINY, progress=False)
    ckpt = tmp_path / "r" / "model.pt"
    dist = load_checkpoint(ckpt)["info"]["training_distribution"]
    assert dist["materials"] == ["rigid"] and dist["tools"] == ["pusher"]
    assert load_checkpoint(tmp_path / "r" / "checkpoint.pt")["training_distribution"] == dist
    capsys.readouterr()
    assert main(["rollout", str(dataset), "--checkpoint", str(ckpt), "--split", "train", "--steps", "2",
                 "--out", str(tmp_path / "in.npz")]) == 0
    assert "warning" not in capsys.readouterr().err
    scene = ROOT / "assets" / "scenes" / "elastic_squeeze.toml"
    assert main(["rollout", str(scene), "--checkpoint", str(ckpt), "--steps", "2", "--out", str(tmp_path / "o.npz")]) == 0
    err = capsys.readouterr().err
    assert "is elastic; trained on rigid only" in err and "the tool is a gripper; trained with pusher" in err
    shipped = ROOT / "assets" / "weights" / "gns_push.pt"
    assert main(["rollout", str(ROOT / "assets" / "scenes" / "push_blocks.toml"), "--checkpoint", str(shipped),
                 "--steps", "1", "--out", str(tmp_path / "s.npz")]) == 0
    err = capsys.readouterr().err
    assert err.count("unknown training distribution") == 1 and (tmp_path / "s.npz").is_file()


# --------------------------------------------------------------------------- training, checkpoints, resume


def _cfg(**kw):
    base = dict(steps=40, batch_size=2, lr=3e-3, lr_decay_steps=200, validate_every=40, checkpoint_every=20,
                valid_windows=8, valid_rollouts=1, valid_rollout_steps=5, seed=1)
    base.update(kw)
    return TrainConfig(**base)


def test_constrained_loss_leaves_the_tool_push_to_the_constraints():
    """The tool reaches a box at rest and moves it 8 mm: the truth the contact projection gives.
    A network predicting no acceleration is badly wrong on its own, and exact once constrained."""
    from particles import ParticleScene

    from dynamics.model import ModelConfig
    from dynamics.train import _loss

    r = 0.01
    box = np.array([[0.0, 0.0, 0.1], [0.02, 0.0, 0.1], [0.0, 0.02, 0.1], [0.02, 0.02, 0.1]])
    tool = np.array([[-0.02, 0.0, 0.1], [-0.02, 0.02, 0.1]])  # touching the box's back face
    pos = np.concatenate([box, tool])
    scene = ParticleScene(pos.astype(np.float32), np.array([0, 0, 0, 0, 1, 1], np.int32), ("rigid", "rigid"), r,
                          particle_type=np.array([8, 8, 8, 8, KINEMATIC, KINEMATIC], np.int32))
    batch = pack_scenes([scene], dtype=torch.float64)
    model = GNS(ModelConfig(connectivity_radius=0.04, dt=1 / 60, acc_std=(1e-3,) * 3, **TINY)).double()
    with torch.no_grad():
        model.decoder[-1].weight.zero_()
        model.decoder[-1].bias.zero_()  # predicts a = acc_mean = 0: everything keeps its (zero) velocity
    hist = torch.tensor(pos).expand(TINY["history"] + 1, -1, -1).clone()
    target = torch.tensor(pos + np.array([0.008, 0.0, 0.0]))  # box and tool both 8 mm on
    free_loss = float(_loss(model, model, batch, hist, target, constrained=False).detach())
    constrained_loss = float(_loss(model, model, batch, hist, target, constrained=True).detach())
    assert np.isclose(free_loss, 64.0)  # (8 mm / 1 mm)^2 per free particle
    from dynamics.model import CONTACT_TOLERANCE

    # exact up to the contact iterations' convergence tolerance (CONTACT_TOLERANCE r, in units of acc_std)
    assert constrained_loss < (CONTACT_TOLERANCE * r / 1e-3) ** 2


@pytest.mark.parametrize("constrained", [False, True])
def test_training_reduces_the_error_below_constant_velocity(tmp_path, constrained):
    """Boxes sliding to rest under friction: a few dozen steps teach the model the deceleration,
    with the loss on the network's acceleration or on the constrained (projected) positions."""
    folder = tmp_path / "slide"
    toy_dataset(folder, seed=0, train=3, valid=1, test=1, frames=24, kinds=("slide",))
    init = train(folder, tmp_path / "init", _cfg(steps=0, seed=2), model_overrides=TINY, progress=False)
    res = train(folder, tmp_path / "run", _cfg(steps=60, seed=2, validate_every=30, constrained=constrained),
                model_overrides=TINY, progress=False)
    assert init["step"] == 0 and res["step"] == 60 and len(res["losses"]) == 60
    assert [v["step"] for v in res["validations"]] == [0, 30, 60]
    trajs = load_dataset(folder, "train")
    windows = [(i, t) for i, r in enumerate(trajs) for t in range(TINY["history"], r.num_frames - 1)]
    before = one_step_mse(load_model(tmp_path / "init" / "model.pt"), trajs, windows)
    after = one_step_mse(load_model(tmp_path / "run" / "model.pt"), trajs, windows)
    cv = np.mean([position_mse(constant_velocity(trajs[i], t, 1), trajs[i].positions[t + 1:t + 2],
                               ~trajs[i].scene.kinematic) for i, t in windows])
    assert after < 0.5 * before
    assert after < cv
    assert (tmp_path / "run" / "log.jsonl").read_text().count('"loss"') == 60


def test_warm_start_adds_physical_features_without_changing_predictions(dataset, tmp_path):
    """--init from a checkpoint without physical features: the new columns start at zero, the
    statistics come from the checkpoint, so the warm-started model predicts what the old one did."""
    old_over = {**TINY, "physical_features": False, "connectivity_radius": 0.04}
    train(dataset, tmp_path / "a", _cfg(steps=2, validate_every=0), model_overrides=old_over, progress=False)
    train(dataset, tmp_path / "b", _cfg(steps=0, validate_every=0), model_overrides={**TINY, "connectivity_radius": 0.04},
          progress=False, init=str(tmp_path / "a" / "model.pt"))
    a, b = load_model(tmp_path / "a" / "model.pt"), load_model(tmp_path / "b" / "model.pt")
    assert not a.config.physical_features and b.config.physical_features
    assert b.config.acc_std == a.config.acc_std
    ro = load_dataset(dataset, "test")[0]
    h = torch.as_tensor(ro.positions[:3])
    with torch.no_grad():
        assert torch.allclose(a(h, pack_scenes([ro.scene])), b(h, pack_scenes([ro.scene])), atol=1e-5)


def test_resume_reproduces_an_uninterrupted_run(dataset, tmp_path):
    full = train(dataset, tmp_path / "a", _cfg(steps=8, checkpoint_every=4, validate_every=0), model_overrides=TINY,
                 progress=False)
    part1 = train(dataset, tmp_path / "b", _cfg(steps=4, checkpoint_every=4, validate_every=0), model_overrides=TINY,
                  progress=False)
    part2 = train(dataset, tmp_path / "b", _cfg(steps=8), resume=True, progress=False)
    assert part1["losses"] + part2["losses"] == full["losses"]  # bit for bit
    a, b = load_checkpoint(tmp_path / "a" / "checkpoint.pt"), load_checkpoint(tmp_path / "b" / "checkpoint.pt")
    assert a["step"] == b["step"] == 8
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k


def test_checkpoint_round_trip_with_weights_only(dataset, tmp_path):
    train(dataset, tmp_path / "r", _cfg(steps=2, validate_every=0), model_overrides=TINY, progress=False)
    raw = torch.load(tmp_path / "r" / "checkpoint.pt", weights_only=True)  # tensors and plain values only
    assert raw["format"] == "worldline.gns_checkpoint" and raw["format_version"] == 1 and raw["step"] == 2
    m1, m2 = load_model(tmp_path / "r" / "checkpoint.pt"), load_model(tmp_path / "r" / "model.pt")
    assert m1.config == m2.config
    ro = load_dataset(dataset, "test")[0]
    batch = pack_scenes([ro.scene])
    h = torch.as_tensor(ro.positions[:3])
    assert torch.equal(m1(h, batch), m2(h, batch))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(FileFormatError):
        load_model(bad)
    torch.save({"format": "worldline.gns_checkpoint", "format_version": 99, "model": {}, "model_config": {}}, bad)
    with pytest.raises(FileFormatError, match="format_version"):
        load_model(bad)


# --------------------------------------------------------------------------- two processes


def test_two_process_torchrun_matches_one_process(dataset, tmp_path):
    args = ["train", str(dataset), "--steps", "2", "--batch-size", "4", "--latent", "16", "--message-steps", "2",
            "--history", "2", "--hidden-layers", "1", "--validate-every", "0", "--checkpoint-every", "0",
            "--seed", "4", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    # each rank runs the CLI, then says whether training closed the process group it opened (a group left
    # to interpreter shutdown can abort a rank at exit: gloo's threads outlive Python)
    script = tmp_path / "rank.py"
    script.write_text("import sys\nimport torch.distributed as dist\nfrom worldline.cli import main\n"
                      "rc = main(sys.argv[1:])\nprint('group open' if dist.is_initialized() else 'group closed', flush=True)\n"
                      "sys.exit(rc)\n")
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
                          *args, "--out", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=170)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("group closed") == 2 and "group open" not in two.stdout, two.stdout[-2000:]
    one = train(dataset, tmp_path / "one", TrainConfig(steps=2, batch_size=4, validate_every=0, checkpoint_every=0, seed=4),
                model_overrides=TINY, progress=False)
    a, b = load_checkpoint(tmp_path / "one" / "checkpoint.pt"), load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert b["world_size"] == 2 and a["world_size"] == 1
    # Adam's first moment after two steps is 0.1 * (0.9 g1 + g2): the gradients of both steps must agree
    worst = 0.0
    for k, sa in a["optimizer"]["state"].items():
        ma, mb = sa["exp_avg"], b["optimizer"]["state"][k]["exp_avg"]
        err = float((ma - mb).abs().max() / ma.abs().max())
        worst = max(worst, err)
        assert err < 1e-4, (k, err)
    for k in a["model"]:
        assert torch.allclose(a["model"][k], b["model"][k], rtol=1e-5, atol=1e-7), k
    assert np.isfinite(one["losses"]).all()
    print(f"largest relative difference of gradient moments, 2 vs 1 process: {worst:.2e}")


def test_rollout_command_writes_a_rollout_the_critic_can_read(dataset, tmp_path):
    from particles import load_rollout
    from worldline.cli import main

    train(dataset, tmp_path / "r", _cfg(steps=1, validate_every=0), model_overrides=TINY, progress=False)
    out = tmp_path / "roll.npz"
    assert main(["rollout", str(dataset), "--checkpoint", str(tmp_path / "r" / "model.pt"), "--split", "train",
                 "--index", "0", "--steps", "6", "--out", str(out)]) == 0
    ro = load_rollout(out, strict=True)
    truth = load_dataset(dataset, "train")[0]
    assert "tool" in truth.scene.object_name
    c = TINY["history"]
    assert ro.positions.shape == (c + 1 + 6, truth.scene.num_particles, 3) and ro.dt == truth.dt
    assert np.array_equal(ro.positions[:c + 1], truth.positions[:c + 1])
    kin = truth.scene.kinematic
    assert np.array_equal(ro.positions[:, kin], truth.positions[:c + 7, kin])
    assert not np.array_equal(ro.positions[c + 1:, ~kin], truth.positions[c + 1:c + 7, ~kin])  # predicted, not copied
    assert main(["rollout", str(dataset), "--checkpoint", str(tmp_path / "r" / "model.pt"), "--index", "9",
                 "--out", str(out)]) == 2
    assert main(["rollout", str(dataset), "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(out)]) == 2


def test_statistics_computed_when_metadata_lacks_them(tmp_path):
    """A GNS dataset whose metadata has no vel/acc statistics still trains: they come from the data."""
    import json

    from dynamics.toy import toy_dataset
    from dynamics.train import _dataset_statistics
    from particles import load_dataset, read_metadata
    from particles.io import gns_statistics

    folder = tmp_path / "ds"
    toy_dataset(folder, seed=1, train=2, valid=1, test=1, frames=12)
    meta = json.loads((folder / "metadata.json").read_text())
    for k in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
        meta.pop(k)
    (folder / "metadata.json").write_text(json.dumps(meta))
    train = load_dataset(folder, "train")
    stats = _dataset_statistics(folder, read_metadata(folder), train)
    want = gns_statistics(r.positions for r in train)
    for k in ("vel_mean", "acc_mean"):
        np.testing.assert_allclose(stats[k], want[k])
