"""Deformable scene kinds of the dataset generator (issue 12): elastic, plastic, cloth and rope scenes on
Newton's own solvers, and the held-out material mixes."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.sim import SimConfig
from dynamics.sim.scenes import (ELASTIC_E_RANGE, HELDOUT_ELASTIC_E, random_setup)
from particles import KINEMATIC

#: kind -> the materials its free objects must include (besides optional rigid/static ones)
PROMISED = {"elastic": {"elastic"}, "plastic": {"plastic"}, "cloth": {"cloth"}, "rope": {"rope"},
            "rope_box": {"rope", "rigid"}}
CONFIG = SimConfig(dt=1.0 / 60.0, substeps=6, mpm_substeps=1)  # as worldline dataset simulates


def _setup(kind: str, i: int, frames: int = 80):
    return random_setup(np.random.default_rng([7, i, 0]), frames, kinds=[kind])


def _free_materials(setup) -> set:
    sc = setup.scene
    return {sc.object_material[k] for k in np.unique(sc.object_id[sc.particle_type != KINEMATIC])}


@pytest.mark.parametrize("kind", sorted(PROMISED))
def test_deformable_kind_builds_its_material_deterministically(kind):
    """Each kind has its promised material, a few hundred particles at r = 1 cm, a pusher, is fixed by its
    seed, and varies its draws (sizes, parameters) between seeds."""
    draws = [_setup(kind, i) for i in range(6)]
    again = _setup(kind, 0)
    assert np.array_equal(again.scene.positions, draws[0].scene.positions)
    assert np.array_equal(again.action.positions, draws[0].action.positions)
    assert [m.young_modulus for m in again.materials if m] == [m.young_modulus for m in draws[0].materials if m]
    for s in draws:
        assert PROMISED[kind] <= _free_materials(s) <= PROMISED[kind] | {"rigid", "static"}
        assert 20 <= s.scene.num_particles <= 400 and s.action is not None
        tool = s.scene.object_id[s.action.indices]
        assert np.all(s.scene.particle_type[s.action.indices] == KINEMATIC) and len(np.unique(tool)) == 1
        free = s.scene.particle_type != KINEMATIC
        assert s.scene.positions[free, 2].min() >= s.scene.radius - 1e-6  # nothing starts inside the ground
    sizes = {d.scene.num_particles for d in draws}
    stiff = {round(m.young_modulus) for d in draws for m, name in zip(d.materials, d.scene.object_material)
             if m is not None and name in PROMISED[kind] - {"rigid"}}
    assert len(sizes) > 1 and len(stiff) > 1


def test_heldout_materials_lie_outside_the_training_kinds():
    """heldout_materials draws material mixes the training kinds never show (elastic or plastic with a rigid
    box) or elastic stiffnesses outside the training range, never a training-kind scene as it is."""
    lo, hi = ELASTIC_E_RANGE
    seen = set()
    for i in range(24):
        s = _setup("heldout_materials", i)
        mats = _free_materials(s)
        e = [m.young_modulus for m, name in zip(s.materials, s.scene.object_material) if name == "elastic"]
        if mats == {"elastic"}:
            assert all(not (lo <= x <= hi) for x in e)
            assert all(any(a <= x <= b for a, b in HELDOUT_ELASTIC_E) for x in e)
            seen.add("soft" if e[0] < lo else "stiff")
        else:
            assert mats in ({"elastic", "rigid"}, {"plastic", "rigid"}), mats
            seen.add("+".join(sorted(mats)))
    assert seen == {"soft", "stiff", "elastic+rigid", "plastic+rigid"}


def _gap(setup) -> float:
    """m: the tool's particles' nearest distance to a free particle of another object at frame 0."""
    from scipy.spatial import cKDTree

    sc = setup.scene
    free = np.flatnonzero((sc.particle_type != KINEMATIC))
    d, _ = cKDTree(sc.positions[free]).query(sc.positions[setup.action.indices])
    return float(d.min() - 2 * sc.radius)


@pytest.mark.parametrize("kind", ["elastic", "plastic", "cloth", "rope", "heldout_materials"])
def test_deformable_kind_simulates_finite_and_clean(kind):
    """A short rollout of each kind is finite, audits clean, and the pusher moves the material (held out:
    the elastic-into-rigid mix; cloth: the sheet on the ground)."""
    from critic import audit

    frames = 30
    wanted = {"heldout_materials": {"elastic", "rigid"}, "cloth": {"cloth"}}.get(kind, PROMISED.get(kind))
    for i in range(16):
        s = _setup(kind, i, frames)
        if _free_materials(s) == wanted and _gap(s) < 0.03:  # the pusher reaches the object within the frames
            break
    ro = s.simulator(CONFIG).rollout(s.action, frames - 1)
    assert np.all(np.isfinite(ro.positions))
    report = audit(ro)
    assert report.clean, [e.message for e in report.events]
    free = ro.scene.particle_type != KINEMATIC
    moved = np.linalg.norm(ro.positions[-1, free] - ro.positions[0, free], axis=-1)
    assert moved.max() > ro.scene.radius


def test_pushed_rope_follows_the_pusher_instead_of_being_flung():
    """A rope on the ground pushed at 0.1-0.3 m/s moves no faster than the pusher plus a little: XPBD's
    particle-particle contact between the rope's touching chain neighbours used to fling it at over 4 m/s
    (SimConfig.spring_self_contact)."""
    s = _setup("rope", 1, 40)
    ro = s.simulator(CONFIG).rollout(s.action, 39)
    rope = np.flatnonzero(np.asarray(s.scene.object_material)[s.scene.object_id] == "rope")
    v_rope = np.linalg.norm(np.diff(ro.positions[:, rope], axis=0), axis=-1).max() * 60.0
    v_tool = np.linalg.norm(np.diff(ro.positions[:, s.action.indices], axis=0), axis=-1).max() * 60.0
    moved = np.linalg.norm(ro.positions[-1, rope] - ro.positions[0, rope], axis=-1).max()
    assert moved > 2 * s.scene.radius  # the pusher did reach it
    assert v_rope < 2.0 * v_tool, (v_rope, v_tool)


def test_soft_blocks_and_balls_start_resting_on_the_ground():
    """The elastic solids of ``elastic`` and ``heldout_materials`` (boxes, and balls of radius 7 r and 8 r, whose
    lattices leave 1 r and 3 r below their lowest layer) start with their lowest particles r above the ground:
    resting, not dropped from 2 r up as the 8 r ball was."""
    from dynamics.sim.scenes import elastic_scene, heldout_materials_scene

    seen = set()
    for make in (elastic_scene, heldout_materials_scene):
        for seed in range(16):
            sc = make(np.random.default_rng([11, seed]), 4).scene
            r = sc.radius
            for k in np.unique(sc.object_id[sc.particle_type != KINEMATIC]):
                if sc.object_material[k] != "elastic":
                    continue
                sel = sc.object_id == k
                pts = sc.positions[sel]
                width = float(np.ptp(pts[:, 0]))
                seen.add(round(width / r))
                assert float(pts[:, 2].min()) == pytest.approx(r, abs=1e-6), (make.__name__, seed)
    assert len(seen) >= 3  # several sizes of boxes and balls were drawn
