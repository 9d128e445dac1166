"""The varied rigid scene kinds of dynamics.sim.scenes: ``shapes``, ``push_paths`` and the held-out
``heldout_shapes`` (issue 12). Building a scene costs milliseconds; two tiny scenes are simulated."""

from __future__ import annotations

import numpy as np
import pytest

from dynamics.sim.scenes import (HELDOUT_KINDS, PATH_SMOOTH, SCENE_KINDS, SHAPES_DENSITY, SHAPES_FRICTION,
                                 lattice_capsule, random_setup, varied_path)

R = 0.01
DT = 1.0 / 60.0
NEW_KINDS = ("shapes", "push_paths", "heldout_shapes")
TRAIN_KINDS = tuple(k for k in SCENE_KINDS if k not in HELDOUT_KINDS)


def _body_kind(shape) -> str:
    """box / sphere / cylinder / cylinder_lying / capsule / capsule_lying / mesh, from the shape's pose."""
    from scipy.spatial.transform import Rotation

    if shape.kind in ("cylinder", "capsule"):
        axis = Rotation.from_quat(shape.rotation).apply([0.0, 0.0, 1.0])
        return shape.kind if abs(axis[2]) > 0.9 else shape.kind + "_lying"
    return shape.kind


def _free(setup):
    """(shape, density, friction) of every free (non-tool) object."""
    sc = setup.scene
    return [(setup.shapes[k], float(sc.object_density[k]), float(sc.object_friction[k]))
            for k in range(sc.num_objects) if sc.object_name[k] != "tool"]


@pytest.mark.parametrize("kind", NEW_KINDS)
def test_kind_is_registered_small_and_deterministic(kind):
    """Same seed, same scene and tool motion; another seed, another scene; a few hundred particles at most."""
    fn = SCENE_KINDS[kind]
    a, b = fn(np.random.default_rng(3), 40, R, DT), fn(np.random.default_rng(3), 40, R, DT)
    assert np.array_equal(a.scene.positions, b.scene.positions)
    assert np.array_equal(a.action.positions, b.action.positions)
    assert a.action.positions.shape[0] == 40
    c = fn(np.random.default_rng(4), 40, R, DT)
    assert not (a.scene.positions.shape == c.scene.positions.shape and np.allclose(a.scene.positions, c.scene.positions))
    sizes = [SCENE_KINDS[kind](np.random.default_rng(s), 40, R, DT).scene.num_particles for s in range(30)]
    assert 20 <= min(sizes) and max(sizes) <= 450, sizes  # round bodies carry a conforming shell (r inside)


def test_shapes_scenes_hold_the_shapes_and_ranges_drawn():
    """``shapes`` draws boxes, spheres, upright and lying cylinders with training densities and frictions;
    every body rests on the ground or on another body (none starts in the air or below the ground)."""
    seen = set()
    for s in range(40):
        setup = SCENE_KINDS["shapes"](np.random.default_rng(s), 20, R, DT)
        for shape, dens, fric in _free(setup):
            seen.add(_body_kind(shape))
            assert SHAPES_DENSITY[0] <= dens <= SHAPES_DENSITY[1] and SHAPES_FRICTION[0] <= fric <= SHAPES_FRICTION[1]
        sc = setup.scene
        for k in range(sc.num_objects):
            z = sc.positions[sc.object_id == k, 2]
            assert z.min() >= R - 1e-5  # particle centres at least r above the ground
    assert seen == {"box", "sphere", "cylinder", "cylinder_lying"}, seen


def test_heldout_kind_never_appears_in_a_training_draw():
    """No training mix draws a capsule, a mesh or physics outside the training ranges; every held-out
    scene has at least one of them."""
    for s in range(60):
        setup = random_setup(np.random.default_rng(s), 10, kinds=TRAIN_KINDS)
        for shape, dens, fric in _free(setup):
            assert shape.kind not in ("capsule", "mesh")
            if setup.scene.object_material[0] == "rigid":
                assert 200.0 <= dens <= 2000.0 and 0.2 <= fric <= 0.9
    seen = set()
    for s in range(40):
        held = SCENE_KINDS["heldout_shapes"](np.random.default_rng(s), 10, R, DT)
        novel = False
        for shape, dens, fric in _free(held):
            seen.add(_body_kind(shape))
            outside = not (SHAPES_DENSITY[0] <= dens <= SHAPES_DENSITY[1]) and not (SHAPES_FRICTION[0] <= fric <= SHAPES_FRICTION[1])
            novel |= outside or shape.kind in ("capsule", "mesh")
        assert novel
    assert {"capsule", "capsule_lying", "mesh"} <= seen, seen


def test_capsule_lattice_keeps_particles_inside_the_caps():
    """Every particle centre lies at least r inside the capsule (a cylinder fill would put corner particles
    outside the rounded caps)."""
    radius, half = 0.05, 0.03
    pts = lattice_capsule(radius, half, R).astype(np.float64)
    axial = np.clip(pts[:, 2], -half, half)
    dist = np.linalg.norm(pts - np.stack([0 * axial, 0 * axial, axial], -1), axis=1)
    assert len(pts) > 30 and dist.max() <= radius - R + 1e-7
    assert pts[:, 2].max() > half + R  # the caps are filled too


def test_varied_paths_are_smooth_reaimed_and_sometimes_hold():
    """Tool paths: speed within bounds, acceleration under 4.5 m/s^2 (a smoothed reversal), the heading turns in some paths,
    some paths end holding still and some move backwards or sideways relative to the first push."""
    turned = held = reversed_ = 0
    for s in range(60):
        rng = np.random.default_rng(s)
        path, yaw = varied_path(rng, 100, DT, np.zeros(3), 0.3)
        v = np.diff(path, axis=0) / DT
        acc = np.diff(v, axis=0) / DT
        assert np.linalg.norm(v, axis=1).max() < 0.4 and np.linalg.norm(acc, axis=1).max() < 4.5
        assert np.allclose(path[:, 2], 0.0) and yaw[0] == pytest.approx(0.3)
        turned += np.abs(yaw - 0.3).max() > 0.04
        held += np.linalg.norm(v[-5:], axis=1).max() < 1e-9
        d0 = np.array([np.cos(0.3), np.sin(0.3), 0.0])
        reversed_ += (v @ d0).min() < -0.02 or np.abs(v @ [-d0[1], d0[0], 0.0]).max() > 0.02
    assert turned >= 10 and held >= 15 and reversed_ >= 15, (turned, held, reversed_)
    assert PATH_SMOOTH >= 5


@pytest.mark.parametrize("kind,seed", [("shapes", 2), ("heldout_shapes", 1)])
def test_new_kinds_simulate_cleanly(kind, seed):
    """A sphere scene and a ring-mesh scene run 12 frames on Newton: finite, and the critic passes them."""
    from critic import audit
    from dynamics.sim import SimConfig

    setup = SCENE_KINDS[kind](np.random.default_rng(seed), 12, R, DT)
    assert {"sphere", "mesh"} & {s.kind for s, _, _ in _free(setup)}
    ro = setup.simulator(SimConfig(dt=DT)).rollout(setup.action, 11)
    assert np.all(np.isfinite(ro.positions))
    report = audit(ro)
    assert report.clean, [e.category for e in report.events]


def test_round_bodies_rest_with_their_lowest_particles_r_above_the_ground():
    """A sphere, a lying cylinder and a lying capsule of the generators (sizes where a plain 2 r lattice left
    the lowest centres 1.5-1.7 r up) rest on Newton's ground for 30 frames: their lowest particle centres
    sit r above it (the particles touch the ground, as ``particles.lift`` fills bodies) at the start and
    at rest, they stay put, and the critic's floating check (support = particles touching) passes."""
    from critic import check_floating
    from dynamics.sim import SimConfig
    from dynamics.sim.scenes import PrimitiveSpec, build_setup
    from dynamics.sim.simulator import ObjectShape

    lie = (np.sin(np.pi / 4), 0.0, 0.0, np.cos(np.pi / 4))  # local z -> horizontal
    bodies = [ObjectShape("sphere", (0.055,), position=np.array([0.0, 0.0, 0.055])),
              ObjectShape("cylinder", (0.057, 0.04), position=np.array([0.2, 0.0, 0.057]), rotation=lie),
              ObjectShape("capsule", (0.05, 0.03), position=np.array([-0.2, 0.0, 0.05]), rotation=lie)]
    specs = [PrimitiveSpec(f"b{k}", "rigid", sh, density=800.0, friction=0.6) for k, sh in enumerate(bodies)]
    tool = ObjectShape("box", (R, 3 * R, 2 * R), position=np.array([0.0, 0.4, 0.021]))
    setup = build_setup(specs, R, tool=tool, tool_path=np.repeat([[0.0, 0.4, 0.021]], 31, 0))
    sc = setup.scene
    ro = setup.simulator(SimConfig(dt=DT)).rollout(setup.action, 30)
    for k in range(len(bodies)):
        sel = sc.object_id == k
        for frame in (0, -1):
            lowest = float(ro.positions[frame][sel, 2].min())
            assert R - 0.02 * R <= lowest <= 1.4 * R, (bodies[k].kind, frame, lowest / R)
        drift = np.abs(ro.positions[-1][sel].mean(0) - ro.positions[0][sel].mean(0)).max()
        assert drift < 0.1 * R, (bodies[k].kind, drift)
    assert check_floating(ro) == [], check_floating(ro)
