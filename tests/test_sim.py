"""Physics tests of the Newton ground truth (dynamics.sim).

Tiny scenes (tens to a couple of hundred particles of radius 1 cm), each simulated
once per module. Tolerances come from the time step and the particle radius.
"""

from __future__ import annotations

import numpy as np
import pytest

from particles import KINEMATIC, ParticleState
from dynamics.sim import ObjectShape, SimConfig
from dynamics.sim.scenes import PrimitiveSpec, build_setup, push_action, random_setup

R = 0.01  # particle radius, m
G = 9.81
CFG = SimConfig()


def _centre(rollout, obj):
    return rollout.positions[:, rollout.scene.object_indices(obj)].astype(np.float64).mean(1)


def _pairwise_drift(rollout, obj):
    p = rollout.positions[:, rollout.scene.object_indices(obj)].astype(np.float64)
    d = np.linalg.norm(p[:, :, None] - p[:, None, :], axis=-1)
    return float(np.abs(d - d[0]).max())


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def free_fall():
    setup = build_setup([PrimitiveSpec("box", "rigid", ObjectShape("box", (0.02, 0.02, 0.02), position=(0, 0, 1.0)))],
                        R, ground=None)
    return setup.simulator(CFG).rollout(None, 30)


@pytest.fixture(scope="module")
def resting():
    setup = build_setup([PrimitiveSpec("box", "rigid", ObjectShape("box", (0.03, 0.03, 0.02), position=(0, 0, 0.02)))], R)
    return setup.simulator(CFG).rollout(None, 120)  # 2 s


@pytest.fixture(scope="module")
def pushed():
    """A 6 cm box pushed 6 cm along +x by a pusher plate, then left alone for half a second."""
    start = np.array([-0.08, 0.0, 0.022])
    setup = build_setup([PrimitiveSpec("box", "rigid", ObjectShape("box", (0.03, 0.03, 0.03), position=(0, 0, 0.03)))], R,
                        tool=ObjectShape("box", (0.01, 0.04, 0.02), position=start),
                        tool_path=push_action(start, start + [0.12, 0, 0], 90, hold=30))
    return setup, setup.simulator(CFG).rollout(setup.action, 89)


@pytest.fixture(scope="module")
def stack():
    """Two stacked boxes knocked over by a pusher hitting the top one."""
    start = np.array([-0.07, 0.0, 0.07])
    setup = build_setup([
        PrimitiveSpec("bottom", "rigid", ObjectShape("box", (0.03, 0.03, 0.03), position=(0, 0, 0.03))),
        PrimitiveSpec("top", "rigid", ObjectShape("box", (0.02, 0.02, 0.02), position=(0, 0, 0.0805))),
    ], R, tool=ObjectShape("box", (0.01, 0.03, 0.01), position=start),
        tool_path=push_action(start, start + [0.12, 0, 0], 60, hold=10))
    return setup, setup.simulator(CFG).rollout(setup.action, 59)


@pytest.fixture(scope="module")
def collision():
    """Two equal boxes, no gravity and no ground, the left one moving at 0.5 m/s into the right one."""
    setup = build_setup([
        PrimitiveSpec("left", "rigid", ObjectShape("box", (0.02, 0.02, 0.02), position=(-0.05, 0, 0))),
        PrimitiveSpec("right", "rigid", ObjectShape("box", (0.02, 0.02, 0.02), position=(0.05, 0, 0))),
    ], R, ground=None, gravity=(0, 0, 0))
    sim = setup.simulator(SimConfig(rigid_contact_weighting=False))
    v = np.zeros_like(setup.scene.positions)
    v[setup.scene.object_indices(0), 0] = 0.5
    return setup, sim.rollout(None, 30, ParticleState(setup.scene.positions.copy(), v))


@pytest.fixture(scope="module")
def sand():
    """A 12 x 12 x 8 cm block of dry sand released on the ground and pushed."""
    start = np.array([-0.1, 0.0, 0.052])
    setup = build_setup([PrimitiveSpec("sand", "granular", ObjectShape("box", (0.06, 0.06, 0.04), position=(0, 0, 0.04)))],
                        R, tool=ObjectShape("box", (0.01, 0.03, 0.05), position=start),
                        tool_path=push_action(start, start + [0.08, 0, 0], 45, hold=10))
    return setup, setup.simulator(CFG).rollout(setup.action, 44)


# --------------------------------------------------------------------------- rigid bodies


def test_free_fall_matches_analytic(free_fall):
    t = free_fall.times
    z = _centre(free_fall, 0)[:, 2]
    expected = 1.0 - 0.5 * G * t ** 2
    # semi-implicit Euler with substep h lags the exact parabola by g t h / 2; allow twice that
    h = CFG.dt / CFG.substeps
    tol = G * t * h + 1e-5
    assert np.all(np.abs(z - expected) <= tol), np.abs(z - expected) - tol
    assert z[-1] < 1.0 - 0.4 * G * t[-1] ** 2  # it really fell
    assert np.abs(_centre(free_fall, 0)[:, :2]).max() < 1e-6  # straight down


def test_resting_box_stays_at_rest(resting):
    drift = np.linalg.norm(resting.positions - resting.positions[0], axis=-1).max()
    assert drift < 0.1 * R, f"box drifted {drift:.2e} m in 2 s"


def test_rigid_bodies_keep_their_shape(pushed, stack, free_fall):
    for rollout, objs in ((pushed[1], [0]), (stack[1], [0, 1]), (free_fall, [0])):
        for obj in objs:
            assert _pairwise_drift(rollout, obj) < 1e-4 * 1.0 + 1e-5  # float32 rounding only


def test_nothing_sinks_into_the_ground(pushed, stack, resting, sand):
    for rollout in (pushed[1], stack[1], resting, sand[1]):
        lowest = float(rollout.positions[..., 2].min())
        assert lowest >= rollout.scene.ground + 0.75 * R, f"a particle centre went to z={lowest:.4f}"


def test_pushed_box_moves_forward_and_stops_by_friction(pushed):
    setup, rollout = pushed
    c = _centre(rollout, 0)
    tool = rollout.positions[:, setup.action.indices].mean(1)
    assert c[-1, 0] - c[0, 0] > 0.03  # moved forward along the push
    assert abs(c[-1, 1] - c[0, 1]) < 0.005 and abs(c[-1, 2] - c[0, 2]) < 0.002  # no drift sideways, stays on the ground
    # the box is never inside the pusher: front face of the tool behind the box's back face (less a tolerance)
    back = rollout.positions[:, setup.scene.object_indices(0), 0].min(1) - R
    front = tool[:, 0] + 0.01
    assert np.all(back >= front - 0.25 * R)
    # after the tool stops (last 30 frames), friction stops the box within a few frames
    stop = rollout.num_frames - 30
    v = np.diff(c[:, 0]) / rollout.dt
    assert abs(v[stop + 10:]).max() < 1e-3
    assert c[-1, 0] - c[stop, 0] < 0.01


def test_stack_is_knocked_over(stack):
    setup, rollout = stack
    top, bottom = _centre(rollout, 1), _centre(rollout, 0)
    assert top[-1, 2] < top[0, 2] - 0.02  # the top box fell off the bottom one
    assert top[-1, 0] > bottom[-1, 0] + 0.02  # pushed forward, beyond the bottom box
    assert np.all(np.isfinite(rollout.positions))


def test_momentum_conserved_in_collision_without_ground(collision):
    setup, rollout = collision
    # equal masses: total momentum is proportional to the sum of centre velocities
    v = np.diff(_centre(rollout, 0), axis=0) / rollout.dt + np.diff(_centre(rollout, 1), axis=0) / rollout.dt
    assert np.abs(v - np.array([0.5, 0, 0])).max() < 0.05 * 0.5, v
    right = np.diff(_centre(rollout, 1), axis=0) / rollout.dt
    assert right[-1, 0] > 0.2  # the collision happened and transferred momentum


# --------------------------------------------------------------------------- granular matter


def test_sand_forms_a_pile_not_a_film(sand):
    setup, rollout = sand
    p = rollout.positions[:, setup.scene.object_indices(0)]
    h0 = p[0, :, 2].max() - setup.scene.ground
    h = p[-1, :, 2].max() - setup.scene.ground
    assert h > 0.5 * h0, f"pile height {h:.3f} m from {h0:.3f} m: it flowed like a fluid"
    assert h < h0 + R  # and it did not jump
    spread = np.abs(p[-1, :, :2]).max()
    assert spread < 2.5 * np.abs(p[0, :, :2]).max()
    # the pusher moved the sand in front of it: nothing remains inside the pusher's swept path
    tool_front = rollout.positions[-1, setup.action.indices, 0].max() + R
    in_lane = np.abs(p[-1, :, 1]) < 0.02
    assert p[-1, in_lane, 0].min() >= tool_front + 0.5 * R


# --------------------------------------------------------------------------- spring networks


@pytest.fixture(scope="module")
def soft_ball():
    """A soft rubber ball (XPBD spring network, E = 2e4 Pa) dropped 1 cm onto the ground."""
    import dataclasses

    from dynamics.sim import default_material

    setup = build_setup([PrimitiveSpec("ball", "elastic", ObjectShape("sphere", (0.05,), position=(0, 0, 0.06)))], R)
    setup = dataclasses.replace(setup, materials=(default_material("elastic").with_(young_modulus=2e4),))
    sim = setup.simulator(SimConfig(soft_solver="springs"))  # the spring-network path (rope, and the former elastic)
    assert sim.substeps > CFG.substeps  # raised so the springs stay stable at their full stiffness
    assert sim.spring_stiffness[0][0] == sim.spring_stiffness[0][1]
    return sim.rollout(None, 60)


@pytest.fixture(scope="module")
def cloth():
    """A 20 x 20 cm cloth square falling onto a 8 x 8 x 8 cm static box."""
    from particles import ParticleScene
    from dynamics.sim.scenes import SimSetup, lattice_box

    ped = lattice_box((0.04, 0.04, 0.04), R, (0, 0, 0.04))
    sheet = lattice_box((0.1, 0.1, R), R, (0, 0, 0.12))
    scene = ParticleScene(np.concatenate([ped, sheet]), np.r_[np.zeros(len(ped)), np.ones(len(sheet))],
                          ("static", "cloth"), R, particle_type=np.r_[np.full(len(ped), KINEMATIC), np.full(len(sheet), 10)])
    setup = SimSetup(scene, (ObjectShape("box", (0.04, 0.04, 0.04), position=(0, 0, 0.04)), None), (None, None), None)
    return setup.simulator(CFG).rollout(None, 60)


def test_soft_ball_lands_and_keeps_its_shape(soft_ball):
    p = soft_ball.positions.astype(np.float64)
    assert np.all(np.isfinite(p))
    assert p[-1, :, 2].min() >= soft_ball.scene.ground + 0.75 * R  # on the ground, not through it
    assert p[-1, :, 2].min() < soft_ball.scene.ground + 1.5 * R  # and it did land
    # elastic, not fluid: it sags under its weight (the spring network is soft at this substep,
    # see NewtonSimulator.spring_stiffness) but keeps most of its height and its width
    h0, h1 = np.ptp(p[0, :, 2]), np.ptp(p[-1, :, 2])
    w0, w1 = np.ptp(p[0, :, 0]), np.ptp(p[-1, :, 0])
    assert 0.7 * h0 < h1 <= h0 + 1e-3 and 0.9 * w0 < w1 < 1.3 * w0
    # nearly at rest at the end (the lattice ball creeps by about a millimetre on the ground)
    assert np.abs(p[-1] - p[-5]).max() < 0.25 * R


def test_cloth_drapes_over_the_box(cloth):
    s = cloth.scene
    p = cloth.positions[:, s.object_indices(1)].astype(np.float64)
    top = 0.08  # box top, m
    centre = np.linalg.norm(p[0, :, :2], axis=1) < 0.03
    corner = np.linalg.norm(p[0, :, :2], axis=1) > 0.12
    assert np.all(np.isfinite(p))
    # the middle rests on the box top, the corners hang below it
    assert np.abs(p[-1, centre, 2] - (top + R)).max() < 0.5 * R
    assert p[-1, corner, 2].max() < top - 0.02
    # the cloth never passes through the box: no particle centre inside the box grown by 0.5 r
    inside = (np.abs(p[..., 0]) < 0.04 + 0.5 * R) & (np.abs(p[..., 1]) < 0.04 + 0.5 * R) & (p[..., 2] < top + 0.5 * R)
    assert not inside.any()


# --------------------------------------------------------------------------- determinism and tool


def test_same_inputs_give_identical_rollouts():
    setup = random_setup(np.random.default_rng(3), frames=12)
    a = setup.simulator(CFG).rollout(setup.action, 11)
    b = random_setup(np.random.default_rng(3), frames=12).simulator(CFG).rollout(setup.action, 11)
    assert np.array_equal(a.positions, b.positions)


def test_tool_follows_action_below_its_force_limit(pushed):
    """Pushing a 65 g box needs far less than the drive's force limit, so the driven tool lands on
    its prescribed path (to float rounding in free space; measured 0.13 mm of give at the impact,
    tens of micrometres while pushing)."""
    setup, rollout = pushed
    err = np.linalg.norm(rollout.positions[:, setup.action.indices] - setup.action.positions[: rollout.num_frames], axis=-1)
    assert err.max() < 0.03 * R, err.max()
    assert np.median(err.max(1)) < 0.01 * R
    assert err[:5].max() < 1e-6  # before it touches the box
    assert np.all(setup.scene.particle_type[setup.action.indices] == KINEMATIC)


# --------------------------------------------------------------------------- command line


SCENE_TOML = """
[world]
spacing = 0.02
ground = 0.0

[[object]]
name = "box"
shape = "box"
size = [0.06, 0.06, 0.06]
position = [0.0, 0.0, 0.03]
material = "rigid"
density = 600.0

[tool]
shape = "pusher"
size = [0.02, 0.08, 0.04]
path = [{ t = 0.0, position = [-0.06, 0.0, 0.022] }, { t = 0.2, position = [0.0, 0.0, 0.022] }]
"""


def test_cli_simulate_round_trip(tmp_path):
    from particles import load_rollout
    from worldline.cli import main

    scene = tmp_path / "scene.toml"
    scene.write_text(SCENE_TOML)
    out = tmp_path / "rollout.npz"
    assert main(["simulate", str(scene), "--steps", "12", "--out", str(out)]) == 0
    ro = load_rollout(out)
    assert ro.positions.shape == (13, ro.scene.num_particles, 3)
    assert ro.scene.object_material == ("rigid", "rigid") and ro.scene.object_name[-1] == "tool"
    tool = ro.scene.object_indices(1)
    assert np.all(ro.scene.particle_type[tool] == KINEMATIC)
    # the tool followed its path (6 cm in 0.2 s; while pushing it gives way by the contact's tens of
    # micrometres, far below its force limit) and pushed the box forward
    np.testing.assert_allclose(ro.positions[12, tool].mean(0) - ro.positions[0, tool].mean(0), [0.06, 0, 0], atol=0.01 * R)
    box = ro.scene.object_indices(0)
    assert ro.positions[-1, box, 0].mean() > ro.positions[0, box, 0].mean() + 0.005
    # an explicit action file drives the tool instead: hold it still, the box stays
    act = tmp_path / "hold.npz"
    np.savez(act, indices=tool, positions=np.repeat(ro.positions[:1, tool], 13, axis=0))
    out2 = tmp_path / "held.npz"
    assert main(["simulate", str(scene), "--steps", "12", "--action", str(act), "--out", str(out2)]) == 0
    held = load_rollout(out2)
    assert np.abs(held.positions[:, box] - held.positions[0, box]).max() < 0.1 * R
    # bad input: one line, exit code 2
    assert main(["simulate", str(tmp_path / "missing.toml"), "--out", str(out2)]) == 2
    assert main(["simulate", str(scene), "--steps", "12", "--action", str(scene), "--out", str(out2)]) == 2


def test_cli_dataset_is_gns_layout_and_resumable(tmp_path):
    from particles import load_dataset, read_metadata
    from particles.io import gns_statistics
    from worldline.cli import main

    out = tmp_path / "ds"
    args = ["dataset", "--scenes", "3", "--frames", "6", "--workers", "1", "--seed", "5", "--out", str(out)]
    assert main(args) == 0
    meta = read_metadata(out)
    assert meta["sequence_length"] == 6 and meta["dim"] == 3 and abs(meta["dt"] - 1 / 60) < 1e-12
    splits = {s: load_dataset(out, s) for s in ("train", "valid", "test")}
    assert sum(len(v) for v in splits.values()) == 3 and all(len(v) == 1 for v in splits.values())
    stats = gns_statistics(ro.positions for ro in splits["train"])
    np.testing.assert_allclose(meta["vel_std"], stats["vel_std"], rtol=1e-6)
    lo = np.array(meta["bounds"])[:, 0]
    assert np.all(np.concatenate([ro.positions.reshape(-1, 3) for v in splits.values() for ro in v]).min(0) >= lo - 1e-6)
    for ro in (r for v in splits.values() for r in v):
        assert np.all(np.isfinite(ro.positions)) and (ro.scene.particle_type == KINEMATIC).any()
    # resumable: a lost scene is simulated again, the others are reused as they are
    work = sorted((out / ".work").glob("scene_*.npz"))
    assert len(work) == 3
    kept = work[0].stat().st_mtime_ns
    lost = work[1].read_bytes()
    work[1].unlink()
    assert main(args) == 0
    assert work[0].stat().st_mtime_ns == kept
    from particles import load_rollout

    import io as _io
    again = load_rollout(work[1])
    before = np.load(_io.BytesIO(lost))["positions"]
    assert np.array_equal(again.positions, before)


def test_cli_dataset_kinds_and_heldout_split(tmp_path):
    """--kinds draws every scene from the named kinds; --heldout N adds N scenes of --heldout-kinds as the
    'heldout' split, drawn exactly as random_setup draws them; a resume with other settings is refused."""
    from dynamics.sim.scenes import SCENE_KINDS
    from particles import load_dataset, read_metadata
    from worldline.cli import main

    from dynamics.sim.scenes import HELDOUT_KINDS
    from worldline.cmd_dataset import HELDOUT_KINDS_HELP, TRAINING_KINDS_HELP

    # --help names every kind, split as the registry splits them
    assert set(TRAINING_KINDS_HELP) | set(HELDOUT_KINDS_HELP) == set(SCENE_KINDS)
    assert set(HELDOUT_KINDS_HELP) == set(HELDOUT_KINDS)
    out = tmp_path / "ds"
    args = ["dataset", "--scenes", "2", "--frames", "5", "--workers", "1", "--seed", "2", "--valid", "0", "--test", "0",
            "--kinds", "boxes", "--heldout", "1", "--heldout-kinds", "sand", "--out", str(out)]
    assert main(args) == 0
    meta = read_metadata(out)
    assert meta["splits"] == {"train": 2, "heldout": 1} and meta["kinds"] == ["boxes"] and meta["heldout_kinds"] == ["sand"]
    train, held = load_dataset(out, "train"), load_dataset(out, "heldout")
    assert all("granular" not in ro.scene.object_material for ro in train)
    assert len(held) == 1 and "granular" in held[0].scene.object_material
    setup = random_setup(np.random.default_rng([2, 2, 0]), 5, kinds=["sand"])  # scene index 2 = the first held-out one
    assert np.array_equal(held[0].positions[0], setup.scene.positions.astype(np.float32))
    assert main(args[:-2] + ["--kinds", "sand", "--out", str(out)]) == 2  # other settings on the same work folder
    assert main(["dataset", "--scenes", "2", "--kinds", "boxes,jelly", "--out", str(tmp_path / "b")]) == 2
    assert main(["dataset", "--scenes", "2", "--heldout", "1", "--out", str(tmp_path / "c")]) == 2
    assert not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_cli_dataset_drops_glitched_draws_and_counts_them(tmp_path, monkeypatch):
    """A draw the critic flags is dropped and redrawn from the next attempt's generator, and counted."""
    import json

    import critic
    from critic.report import Event, Report
    from particles import load_rollout
    from worldline.cli import main

    calls = []

    def first_draw_glitched(rollout, *args, **kwargs):  # the critic flags every scene's first draw
        calls.append(1)
        events = ()
        if len(calls) % 2 == 1:
            events = (Event("teleport", 2, 2, 0, None, (0, 0, 0), 0.5, (0,), "injected"),)
        return Report(frames=rollout.num_frames, particles=rollout.scene.num_particles, events=events)

    monkeypatch.setattr(critic, "audit", first_draw_glitched)
    out = tmp_path / "ds"
    assert main(["dataset", "--scenes", "2", "--frames", "6", "--workers", "1", "--seed", "5", "--valid", "0",
                 "--test", "0", "--out", str(out)]) == 0
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["dropped_glitched"] == 2 and meta["dropped_by_category"] == {"teleport": 2} and meta["audited"]
    for i in range(2):
        ro = np.load(out / ".work" / f"scene_{i:05d}.npz", allow_pickle=False)
        assert int(ro["attempt"]) == 1 and list(ro["dropped"]) == ["teleport"]
    # the kept draw is attempt 1's scene, exactly as a direct simulation of that generator gives
    kept = load_rollout(out / ".work" / "scene_00001.npz")
    setup = random_setup(np.random.default_rng([5, 1, 1]), 6)
    assert np.array_equal(kept.positions, setup.simulator(CFG).rollout(setup.action, 5).positions)


def test_cli_simulate_prints_the_audit_and_records_the_prescribed_path(tmp_path, capsys):
    from worldline.cli import main

    scene = tmp_path / "scene.toml"
    scene.write_text(SCENE_TOML.replace('shape = "pusher"', 'shape = "pusher"\nmax_force = 0.2'))
    out = tmp_path / "rollout.npz"
    assert main(["simulate", str(scene), "--steps", "12", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "0 event(s) in 13 frames" in text and "limit 0.2 N" in text
    z = np.load(out, allow_pickle=False)
    tool = z["tool_indices"]
    # 0.2 N cannot shove a 130 g box against friction (0.64 N): the tool stops on it, short of its path
    assert z["tool_target"].shape == (13, len(tool), 3)
    lag = z["tool_target"][-1, :, 0].mean() - z["positions"][-1, tool, 0].mean()
    assert lag > 0.01
    assert np.linalg.norm(z["tool_force"], axis=-1).max() <= 0.2 * (1 + 1e-5)
    assert main(["simulate", str(scene), "--steps", "3", "--no-audit", "--out", str(out)]) == 0
    assert "event(s)" not in capsys.readouterr().out


# --------------------------------------------------------------------------- two-way MPM coupling


def _box_on_sand(two_way: bool):
    """A 6 cm box of 173 g released 1 cm above a 16 x 16 x 6 cm bed of sand, for 2/3 s."""
    setup = build_setup([PrimitiveSpec("sand", "granular", ObjectShape("box", (0.08, 0.08, 0.03), position=(0, 0, 0.03))),
                         PrimitiveSpec("box", "rigid", ObjectShape("box", (0.03, 0.03, 0.03), position=(0, 0, 0.10)))], R)
    return setup.simulator(SimConfig(mpm_two_way=two_way)).rollout(None, 40)


def test_sand_bed_carries_a_dropped_box():
    """Two-way coupling: the sand pushes the box back, so it comes to rest on the bed (measured: its bottom
    0.3 cm above the bed's top, within the MPM grid's 4 cm cells) instead of sinking to the ground as with
    the one-way coupling (bottom on the ground, the sand squeezed out from under it)."""
    top = 0.06  # m, the bed's top face
    for two_way in (True, False):
        ro = _box_on_sand(two_way)
        assert np.all(np.isfinite(ro.positions))
        box = ro.positions[:, ro.scene.object_indices(1)].astype(np.float64)
        bottom = box[..., 2].min(1) - R
        if two_way:
            assert np.all(bottom[-20:] > top - 1.0 * R), bottom[-20:]  # carried at the bed's top
            assert np.abs(np.diff(box.mean(1)[-10:, 2])).max() / ro.dt < 0.05  # and at rest on it
            assert np.abs(box.mean(1)[-1, :2]).max() < 0.1 * R  # not pushed sideways
        else:
            assert bottom[-1] < 0.5 * R  # the one-way box falls through the bed onto the ground


# --------------------------------------------------------------------------- VBD elastic solids and cloth


def test_elastic_block_squeezed_and_released_recovers_without_gaining_energy():
    """An 8 cm rubber block (VBD tetrahedra, E = 1e5 Pa) released from 20 % vertical compression springs
    back to its rest height (measured: 5.94 of 6 cm between the outer particle centres, 1 % sag under its
    weight) and keeps its width, while its kinetic plus gravitational energy never rises above the start's."""
    setup = build_setup([PrimitiveSpec("block", "elastic", ObjectShape("box", (0.04, 0.04, 0.04), position=(0, 0, 0.04)))], R)
    sim = setup.simulator(CFG)
    assert sim.substeps == CFG.substeps and sim.vbd_elements[0] > 100  # no substeps raised; tetrahedra over the lattice
    x = setup.scene.positions.copy()
    x[:, 2] = R + (x[:, 2] - R) * 0.8
    ro = sim.rollout(None, 60, ParticleState(x.copy(), np.zeros_like(x)))
    p = ro.positions.astype(np.float64)
    assert np.all(np.isfinite(p))
    h0 = np.ptp(setup.scene.positions[:, 2])
    assert np.ptp(p[0, :, 2]) < 0.85 * h0  # it did start squeezed
    assert np.all(np.abs(np.ptp(p[-20:, :, 2], axis=1) - h0) < 0.05 * h0)  # recovered, and stays there
    assert abs(np.ptp(p[-1, :, 0]) - np.ptp(setup.scene.positions[:, 0])) < 0.05 * h0
    m = ro.scene.mass.astype(np.float64)
    v = np.diff(p, axis=0) / ro.dt
    energy = 0.5 * (m[None, :, None] * v ** 2).sum((1, 2)) + G * (m[None] * p[1:, :, 2]).sum(1)
    assert energy.max() <= energy[0] * (1 + 1e-3), energy.max() / energy[0]
    assert p[:, :, 2].min() >= ro.scene.ground + 0.75 * R


def _strip_over_a_post(bending: float):
    """A 20 x 4 cm cloth strip laid on an 8 x 8 x 16 cm static post, 6 cm hanging over each side, for 1 s."""
    from particles import ParticleScene
    from dynamics.sim import default_material
    from dynamics.sim.scenes import SimSetup, lattice_box

    ped = lattice_box((0.04, 0.04, 0.08), R, (0, 0, 0.08))
    strip = lattice_box((0.10, 0.02, R), R, (0, 0, 0.171))
    scene = ParticleScene(np.concatenate([ped, strip]), np.r_[np.zeros(len(ped)), np.ones(len(strip))], ("static", "cloth"), R,
                          particle_type=np.r_[np.full(len(ped), KINEMATIC), np.full(len(strip), 10)])
    setup = SimSetup(scene, (ObjectShape("box", (0.04, 0.04, 0.08), position=(0, 0, 0.08)), None),
                     (None, default_material("cloth").with_(bending_stiffness=bending)), None)
    return setup.simulator(CFG).rollout(None, 60)


def test_cloth_with_bending_stiffness_droops_less():
    """Without bending stiffness the overhangs hang straight down (measured: tips 5 cm below the post's
    top); with D = 0.05 N m they curve (2.2 cm below)."""
    tips = {}
    for d in (0.0, 0.05):
        ro = _strip_over_a_post(d)
        p = ro.positions[:, ro.scene.object_indices(1)].astype(np.float64)
        assert np.all(np.isfinite(p))
        end = np.abs(p[0, :, 0]) > 0.08
        tips[d] = p[-10:, end, 2].mean()
        assert np.abs(p[-1, np.abs(p[0, :, 0]) < 0.03, 2] - 0.17).max() < 0.5 * R  # the middle stays on the post
    assert tips[0.0] < 0.17 - 0.04
    assert tips[0.05] > tips[0.0] + 0.015


def test_gripper_stops_on_an_elastic_ball_with_its_force_limit():
    """The VBD ball's contacts push the fingers back: assets/scenes/elastic_squeeze.toml's gripper
    (20 N a finger) closes on the 14 cm rubber ball (E = 5e4 Pa) and stops with the ball squeezed
    by about a centimetre (measured: fingers 12.6 cm apart while their path asks for 7 cm), pushing
    with its limit; without the reaction the fingers would close to their path through the ball."""
    from pathlib import Path

    from critic import audit
    from dynamics.sim.scenes import setup_from_scene_file

    steps = 50
    setup = setup_from_scene_file(Path(__file__).resolve().parents[1] / "assets" / "scenes" / "elastic_squeeze.toml",
                                  1 / 60, steps)
    sim = setup.simulator(CFG)
    ro = sim.rollout(setup.action, steps)
    r = ro.scene.radius

    def gap(tool):  # between the fingers' inner faces, m
        left = tool[:, 1] < 0
        return tool[~left, 1].min() - tool[left, 1].max() - 2 * r

    got = gap(ro.positions[-1, setup.action.indices].astype(np.float64))
    asked = gap(setup.action.positions[steps].astype(np.float64))
    ball = ro.positions[:, ro.scene.object_indices(0), 1].astype(np.float64)
    assert got > asked + 0.03, (got, asked)
    assert np.ptp(ball[-1]) < np.ptp(ball[0]) - 0.5 * r  # squeezed
    assert np.ptp(ball[-1]) > 0.8 * np.ptp(ball[0])  # not crushed
    contact = np.linalg.norm(np.array(sim.tool_log["contact"])[-10:], axis=-1)
    assert np.all(contact > 0.8 * sim.tool_max_force) and np.all(contact < 1.2 * sim.tool_max_force)
    assert audit(ro).clean


def test_shipped_cloth_drape_audits_clean():
    """assets/scenes/cloth_drape.toml on VBD with the default bending stiffness: the critic finds nothing
    (measured: from 3e-3 N m the flaps folding over the box's edge swing out faster than it allows)."""
    from pathlib import Path

    from critic import audit
    from dynamics.sim.scenes import setup_from_scene_file

    setup = setup_from_scene_file(Path(__file__).resolve().parents[1] / "assets" / "scenes" / "cloth_drape.toml", 1 / 60, 90)
    ro = setup.simulator(CFG).rollout(setup.action, 90)
    report = audit(ro)
    assert report.clean, "; ".join(e.message for e in report.events)
    cloth = ro.positions[-1, ro.scene.object_indices(1), 2]
    assert cloth.max() < 0.16 + 2 * ro.scene.radius and cloth.min() < 0.1  # lies on the box, flaps hanging


def test_elastic_shell_falls_back_to_springs():
    """A one-particle shell (``fill = "surface"``) has no interior for tetrahedra: it is simulated as a
    spring network, with a warning, while a solid block beside it goes on VBD."""
    from particles import ParticleScene
    from dynamics.sim.scenes import SimSetup, lattice_box

    solid = lattice_box((0.03, 0.03, 0.03), R, (0, 0, 0.03))
    cube = lattice_box((0.06, 0.06, 0.06), R, (0.3, 0, 0.06))  # 6 x 6 x 6 particles, the inner 4 x 4 x 4 removed
    inner = np.all(np.abs(cube - [0.3, 0, 0.06]) < 0.05 - 1e-6, axis=1)
    shell = cube[~inner]
    scene = ParticleScene(np.concatenate([solid, shell]), np.r_[np.zeros(len(solid)), np.ones(len(shell))].astype(np.int32),
                          ("elastic", "elastic"), R)
    with pytest.warns(UserWarning, match="'object1'.*spring network"):
        sim = SimSetup(scene, (None, None), (None, None), None).simulator(CFG)
    assert set(sim.vbd_elements) == {0} and set(sim.spring_stiffness) == {1}
    ro = sim.rollout(None, 10)
    assert np.all(np.isfinite(ro.positions))
    assert ro.positions[-1, :, 2].min() >= ro.scene.ground + 0.75 * R


@pytest.mark.parametrize("field", ["dt", "substeps", "vbd_iterations", "soft_contact_ke", "tool_max_force",
                                   "mpm_coupled_substeps"])
def test_sim_config_refuses_a_bool_for_a_number(field):
    """``True`` is an ``int`` to Python: a flag passed where a stiffness, a time or a count belongs must be refused
    by name, not read as 1 (1 N/m of contact stiffness, a 1 s frame)."""
    from particles import ValidationError

    with pytest.raises(ValidationError, match=field):
        SimConfig(**{field: True})
    SimConfig(**{field: {"dt": 1 / 60, "soft_contact_ke": 2.0e4, "tool_max_force": 10.0}.get(field, 2)})
