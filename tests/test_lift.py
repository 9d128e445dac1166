"""Lifting: particle counts follow the spacing, particles lie inside their shapes, ids and
materials survive, sensor data lands in world coordinates, and everything is deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from particles import FileFormatError, KINEMATIC
from particles.lift import lift_object, lift_point_cloud, lift_rgbd, lift_scene, load_point_cloud, object_mesh, tool_action
from particles.scene_file import ObjectSpec, load_scene_file, parse_scene

from conftest import ASSETS, SCENES


def box(size, **kw):
    return ObjectSpec(name="b", shape="box", material="rigid", size=tuple(size), **kw)


@pytest.mark.parametrize("spacing", [0.02, 0.01, 0.005])
def test_box_fill_count_is_exact(spacing):
    size = (0.1, 0.06, 0.04)
    pts = lift_object(box(size), spacing)
    per_axis = [int(np.floor((s - spacing) / spacing + 1e-9)) + 1 for s in size]
    assert len(pts) == np.prod(per_axis)
    # outermost centres are one radius inside the faces: touching boxes sit 2r apart
    np.testing.assert_allclose(pts.max(0), np.array(size) / 2 - spacing / 2, atol=1e-9)


def test_counts_scale_with_spacing_for_volumes_and_shells():
    sphere = ObjectSpec(name="s", shape="sphere", material="elastic", size=(0.1,))
    shell = ObjectSpec(name="s", shape="sphere", material="elastic", size=(0.1,), fill="surface")
    v1, v2 = len(lift_object(sphere, 0.01)), len(lift_object(sphere, 0.005))
    s1, s2 = len(lift_object(shell, 0.01)), len(lift_object(shell, 0.005))
    assert 6.0 < v2 / v1 < 10.0, "halving the spacing multiplies a volume's particles by ~8"
    assert 3.0 < s2 / s1 < 5.0, "and a shell's by ~4"
    # volume of the particle cubes approximates the sphere shrunk by nothing more than a spacing
    vol = 4 / 3 * np.pi * 0.1 ** 3
    assert abs(v2 * 0.005 ** 3 - vol) / vol < 0.2


@pytest.mark.parametrize("shape,size", [("sphere", (0.05,)), ("cylinder", (0.04, 0.1)), ("capsule", (0.03, 0.06)),
                                        ("box", (0.07, 0.05, 0.09))])
def test_particles_lie_inside_the_mesh_by_a_radius(shape, size):
    obj = ObjectSpec(name="o", shape=shape, material="rigid", size=size)
    spacing = 0.01
    pts = lift_object(obj, spacing)
    mesh = object_mesh(obj)
    from trimesh.proximity import ProximityQuery

    assert mesh.contains(pts).all()
    depth = ProximityQuery(mesh).signed_distance(pts)  # positive inside
    # tessellated curved surfaces sit slightly inside the true surface
    assert depth.min() >= spacing / 2 - 0.02 * max(size)


def test_mesh_object_from_file():
    spec = load_scene_file(ASSETS / "scenes" / "mesh_push.toml")
    lifted = lift_scene(spec)
    ring = lifted.scene.positions[lifted.scene.object_id == 0]
    assert len(ring) > 10
    # a torus has a hole: no particle near its axis
    assert np.min(np.linalg.norm(ring[:, :2], axis=1)) > 0.03 - 1e-6
    assert ring[:, 2].min() >= spec.ground + spec.radius - 1e-6


@pytest.mark.parametrize("path", SCENES, ids=[p.stem for p in SCENES])
def test_shipped_scenes_lift_with_ids_and_materials(path):
    spec = load_scene_file(path)
    lifted = lift_scene(spec)
    scene = lifted.scene
    expected = [o.material for o in spec.objects] + (["rigid"] if spec.tool else [])
    assert list(scene.object_material) == expected
    assert set(np.unique(scene.object_id)) == set(range(len(expected))), "every object has particles"
    for k, obj in enumerate(spec.objects):
        assert scene.object_name[k] == obj.name
        assert np.all(scene.particle_type[scene.object_id == k] == (KINEMATIC if obj.material == "static" else
                                                                     {"rigid": 8, "elastic": 9, "granular": 6,
                                                                      "cloth": 10}[obj.material]))
    if spec.tool:
        assert np.all(scene.particle_type[lifted.tool_indices] == KINEMATIC)
    # nothing starts below the ground by more than float rounding
    if spec.ground is not None:
        assert scene.positions[:, 2].min() >= spec.ground + spec.radius - 1e-6
    # determinism: lifting twice gives the same bytes
    again = lift_scene(load_scene_file(path)).scene
    assert again.positions.tobytes() == scene.positions.tobytes()


def test_pusher_action_follows_waypoints():
    spec = load_scene_file(ASSETS / "scenes" / "push_box.toml")
    lifted = lift_scene(spec)
    dt, steps = 0.01, 150
    action = tool_action(lifted, dt, steps)
    assert action.positions.shape == (steps + 1, len(lifted.tool_indices), 3)
    centre = action.positions.mean(1)
    for t in (0.0, 0.2, 0.4, 0.8, 1.2, 1.5):
        want, _ = spec.tool.pose(t)
        np.testing.assert_allclose(centre[int(round(t / dt))], want, atol=1e-5)
    # the tool is rigid: its particles keep their pairwise distances
    d0 = np.linalg.norm(action.positions[0][:, None] - action.positions[0][None], axis=-1)
    d1 = np.linalg.norm(action.positions[-1][:, None] - action.positions[-1][None], axis=-1)
    np.testing.assert_allclose(d0, d1, atol=1e-5)


def test_gripper_fingers_close_symmetrically():
    spec = load_scene_file(ASSETS / "scenes" / "elastic_squeeze.toml")
    lifted = lift_scene(spec)
    action = tool_action(lifted, 0.01, 100)
    left, right = lifted.tool_finger == -1, lifted.tool_finger == 1
    gap = lambda p: p[right, 1].min() - p[left, 1].max()  # noqa: E731 - centre-to-centre gap of inner faces
    r = spec.radius
    assert gap(action.positions[0]) == pytest.approx(0.18 + 2 * r, abs=1e-5)
    assert gap(action.positions[100]) == pytest.approx(0.07 + 2 * r, abs=1e-5)
    np.testing.assert_allclose(action.positions[-1].mean(0), action.positions[0].mean(0), atol=1e-6)


def test_point_cloud_lift_respects_voxels_and_labels():
    pts, ids = load_point_cloud(ASSETS / "clouds" / "tabletop.ply")
    coarse = lift_point_cloud(pts, 0.04)
    fine = lift_point_cloud(pts, 0.02)
    assert fine.num_particles > 2.5 * coarse.num_particles
    assert fine.radius == pytest.approx(0.01)
    lo, hi = pts.min(0), pts.max(0)
    assert np.all(fine.positions >= lo - 1e-6) and np.all(fine.positions <= hi + 1e-6)
    labels = (pts[:, 0] > 0).astype(np.int64)  # two instances, split at x = 0
    two = lift_point_cloud(pts, 0.02, labels, material=("rigid", "elastic"))
    assert two.object_material == ("rigid", "elastic")
    assert np.all(two.positions[two.object_id == 0, 0] <= 0 + 1e-6)
    assert np.all(two.positions[two.object_id == 1, 0] > 0)


def test_rgbd_frame_lands_on_the_true_surfaces():
    frame = np.load(ASSETS / "rgbd" / "tabletop.npz")
    scene = lift_rgbd(frame["depth"], frame["intrinsics"], 0.01, frame["camera_to_world"], frame["mask"])
    assert scene.num_objects == 2  # box and sphere; background dropped
    boxp = scene.positions[scene.object_id == 0]
    ball = scene.positions[scene.object_id == 1]
    # box of 10 cm centred at (-0.07, 0, 0.05): visible points lie on its faces
    q = np.abs(boxp - np.array([-0.07, 0.0, 0.05])) - 0.05
    assert np.all(np.abs(q.max(1)) < 0.01)
    # sphere of 5 cm at (0.08, 0.03, 0.05)
    d = np.linalg.norm(ball - np.array([0.08, 0.03, 0.05]), axis=1)
    assert np.all(np.abs(d - 0.05) < 0.01)


def test_scene_file_errors_name_file_and_field(tmp_path):
    base = {"world": {"spacing": 0.02}, "object": [{"shape": "box", "size": [0.1, 0.1, 0.1], "material": "rigid"}]}
    parse_scene(base, tmp_path / "ok.toml")
    bad = [
        ({"world": {}}, "world.spacing"),
        ({"object": [{"shape": "box", "size": [0.1, 0.1], "material": "rigid"}]}, "object[0].size"),
        ({"object": [{"shape": "blob", "size": [0.1], "material": "rigid"}]}, "object[0].shape"),
        ({"object": [{"shape": "box", "size": [0.1, 0.1, 0.1], "material": "jelly"}]}, "object[0].material"),
        ({"object": [{"shape": "box", "size": [0.1, 0.1, -1], "material": "rigid"}]}, "object[0].size"),
        ({"object": [{"shape": "box", "size": [0.1, 0.1, 0.1], "material": "rigid", "colour": 1}]}, "object[0].colour"),
        ({"tool": {"size": [0.1, 0.1, 0.1], "path": [{"t": 1.0, "position": [0, 0, 0]}, {"t": 0.5, "position": [0, 0, 0]}]}},
         "tool.path[1].t"),
        ({"tool": {"shape": "gripper", "size": [0.1, 0.1, 0.1], "path": [{"t": 0.0, "position": [0, 0, 0]}]}},
         "tool.path[0].width"),
    ]
    for change, field in bad:
        with pytest.raises(FileFormatError) as err:
            parse_scene({**base, **change}, tmp_path / "bad.toml")
        assert err.value.field == field, (change, str(err.value))
    broken = tmp_path / "broken.toml"
    broken.write_text("[world\nspacing = ")
    with pytest.raises(FileFormatError, match="not valid TOML"):
        load_scene_file(broken)


def test_fill_mesh_puts_every_boundary_centre_a_radius_inside_and_is_what_lift_object_uses():
    """``fill_mesh`` (the fill the Newton scene generators share with ``lift_object``): on a sphere with its
    exact depth the outermost centres lie r inside the surface (max |p| = R - r, to the tessellation) and none
    shallower;
    with the mesh's own closest-point depth (``depth=None``) a box's centres are r inside within 1e-6 m; the
    same call is what ``lift_object`` returns for the same seed."""
    import trimesh

    from particles.lift import fill_mesh, primitive_depth

    radius, spacing = 0.05, 0.01
    r = spacing / 2
    mesh = object_mesh(ObjectSpec(name="s", shape="sphere", material="rigid", size=(radius,)))
    pts = fill_mesh(mesh, spacing, seed=4, depth=lambda p: primitive_depth("sphere", (radius,), p))
    # the tessellated sphere lies 3e-5 m inside the true one at most
    assert radius - r - 1e-4 <= np.linalg.norm(pts, axis=1).max() <= radius - r + 1e-9
    assert primitive_depth("sphere", (radius,), pts).min() >= r - 1e-8
    lifted = lift_object(ObjectSpec(name="s", shape="sphere", material="rigid", size=(radius,)), spacing, seed=4)
    np.testing.assert_array_equal(pts, lifted)

    box_mesh = trimesh.creation.box(extents=(0.08, 0.06, 0.05))
    pts = fill_mesh(box_mesh, spacing, seed=1)
    depth = primitive_depth("box", (0.08, 0.06, 0.05), pts)
    assert depth.min() >= r - 1e-6
    assert depth.min() <= r + 1e-6  # the shell touches the faces: a resting box's lowest centres are r up
