"""Core types validate their fields; files round-trip exactly; bad files give one clear error."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from particles import (
    KINEMATIC, Action, FileFormatError, ParticleScene, Rollout, ValidationError, load_dataset, load_rollout,
    load_scene, read_metadata, rollout_from_arrays, save_rollout, save_scene, write_dataset,
)
from particles.io import gns_statistics
from particles.keypoints import build_keypoints


def make_scene(rng, n=12):
    oid = np.repeat([0, 1, 2], n // 3).astype(np.int32)
    ptype = np.where(oid == 2, KINEMATIC, 8).astype(np.int32)
    return ParticleScene(rng.random((n, 3)), oid, ("rigid", "granular", "rigid"), 0.01, particle_type=ptype,
                         object_density=[500.0, 1600.0, 1000.0], object_name=("a", "b", "tool"), ground=-0.5)


def make_rollout(rng, t=6, n=12):
    scene = make_scene(rng, n)
    return Rollout(scene, scene.positions[None] + 0.01 * np.cumsum(rng.normal(size=(t, n, 3)), 0), 0.02)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("change,field", [
    (dict(positions=np.zeros((5, 2))), "positions"),
    (dict(positions=np.full((12, 3), np.nan)), "positions"),
    (dict(radius=-0.01), "radius"),
    (dict(radius=float("nan")), "radius"),
    (dict(object_id=np.full(12, 7)), "object_id"),
    (dict(object_id=np.zeros(11)), "object_id"),
    (dict(object_material=("rigid", "jelly", "rigid")), "object_material[1]"),
    (dict(mass=-np.ones(12)), "mass"),
    (dict(gravity=[0, -9.81]), "gravity"),
    (dict(object_name=("a",)), "object_name"),
    (dict(positions=np.array([["a", "b", "c"]] * 12)), "positions"),
])
def test_scene_validation_names_the_field(rng, change, field):
    scene = make_scene(rng)
    with pytest.raises(ValidationError) as err:
        scene.replace(**change)
    assert err.value.field == field
    assert str(err.value).startswith(field)


def test_scene_defaults_follow_physics(rng):
    scene = ParticleScene(rng.random((4, 3)), np.zeros(4), ("granular",), 0.005, object_density=[1600.0])
    # a particle owns a cube of side 2r of its object's material
    np.testing.assert_allclose(scene.mass, 1600.0 * 0.01 ** 3, rtol=1e-6)
    assert np.all(scene.particle_type == 6) and scene.ground == 0.0
    np.testing.assert_allclose(scene.gravity, [0, 0, -9.81])
    assert not scene.positions.flags.writeable


def test_action_and_rollout_validation(rng):
    with pytest.raises(ValidationError, match="indices"):
        Action([1, 1], np.zeros((3, 2, 3)))
    with pytest.raises(ValidationError, match="positions"):
        Action([1, 2], np.zeros((3, 3, 3)))
    a = Action([0, 1], np.arange(18, dtype=np.float32).reshape(3, 2, 3))
    np.testing.assert_allclose(a.velocities(0.5), np.full((2, 2, 3), 12.0))
    scene = make_scene(rng)
    with pytest.raises(ValidationError, match="dt"):
        Rollout(scene, np.zeros((3, 12, 3)), 0.0)
    with pytest.raises(ValidationError, match="positions"):
        Rollout(scene, np.zeros((3, 11, 3)), 0.1)
    # rollouts may hold NaN: that is a glitch for the critic to report, not a type error
    Rollout(scene, np.full((2, 12, 3), np.nan), 0.1)


# --------------------------------------------------------------------------- round trips


def test_rollout_round_trip_is_exact(rng, tmp_path):
    ro = make_rollout(rng)
    path = save_rollout(tmp_path / "r.npz", ro, extra={"tool_indices": np.arange(8, 12)})
    back = load_rollout(path)
    np.testing.assert_array_equal(back.positions, ro.positions)
    assert back.dt == ro.dt and back.missing == ()
    for f in ("object_id", "particle_type", "mass", "object_density", "gravity"):
        np.testing.assert_array_equal(getattr(back.scene, f), getattr(ro.scene, f))
    assert back.scene.object_material == ro.scene.object_material
    assert back.scene.object_name == ro.scene.object_name
    assert back.scene.radius == ro.scene.radius and back.scene.ground == ro.scene.ground
    with np.load(path, allow_pickle=False) as z:  # readable by plain numpy, no pickles
        assert z["positions"].dtype == np.float32 and z["object_material"].dtype.kind == "U"
        assert str(z["format"]) == "worldline.rollout" and int(z["format_version"]) == 1
        np.testing.assert_array_equal(z["tool_indices"], np.arange(8, 12))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.npz"], "no temporary files left behind"


def test_scene_round_trip_with_keypoints_and_edges(rng, tmp_path):
    scene = make_scene(rng, 30)
    kp = build_keypoints(scene, per_object=3)
    edges = np.array([[0, 1], [1, 0]])
    s2, kp2, e2 = load_scene(save_scene(tmp_path / "s.npz", scene, kp, edges))
    np.testing.assert_array_equal(s2.positions, scene.positions)
    np.testing.assert_array_equal(kp2.skin_weight, kp.skin_weight)
    np.testing.assert_array_equal(kp2.edges, kp.edges)
    np.testing.assert_array_equal(e2, edges)


def test_dataset_round_trip_and_statistics(rng, tmp_path):
    splits = {"train": [make_rollout(rng) for _ in range(3)], "valid": [make_rollout(rng)], "test": [make_rollout(rng)]}
    write_dataset(tmp_path / "ds", splits)
    meta = read_metadata(tmp_path / "ds")
    for key in ("bounds", "sequence_length", "default_connectivity_radius", "dim", "dt",
                "vel_mean", "vel_std", "acc_mean", "acc_std"):
        assert key in meta
    # statistics as GNS defines them, pooled over the training trajectories
    v = np.concatenate([np.diff(r.positions.astype(np.float64), axis=0).reshape(-1, 3) for r in splits["train"]])
    a = np.concatenate([(r.positions[2:] - 2.0 * r.positions[1:-1] + r.positions[:-2]).astype(np.float64).reshape(-1, 3)
                        for r in splits["train"]])
    np.testing.assert_allclose(meta["vel_mean"], v.mean(0), rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(meta["vel_std"], v.std(0), rtol=1e-4)
    np.testing.assert_allclose(meta["acc_std"], a.std(0), rtol=1e-4)
    assert meta["sequence_length"] == 6 and meta["dt"] == pytest.approx(0.02)
    lo = np.min([r.positions.min((0, 1)) for r in splits["train"] + splits["valid"] + splits["test"]], 0)
    np.testing.assert_allclose(np.array(meta["bounds"])[:, 0], lo, rtol=1e-6)
    back = load_dataset(tmp_path / "ds", "train")
    assert len(back) == 3
    for got, want in zip(back, splits["train"]):
        np.testing.assert_array_equal(got.positions, want.positions)
        np.testing.assert_array_equal(got.scene.object_id, want.scene.object_id)
        assert got.missing == ()


def test_plain_gns_trajectory_loads_with_defaults(rng, tmp_path):
    """A dataset holding only GNS's own fields (positions, particle_type) still loads."""
    ro = make_rollout(rng)
    write_dataset(tmp_path / "ds", {"train": [ro]})
    arrays = {"traj_0/positions": ro.positions, "traj_0/particle_type": ro.scene.particle_type}
    np.savez(tmp_path / "ds" / "train.npz", **arrays)
    (back,) = load_dataset(tmp_path / "ds", "train")
    assert set(back.missing) == {"object_id", "object_material"}
    assert back.scene.radius == pytest.approx(read_metadata(tmp_path / "ds")["radius"])


def test_gns_statistics_need_three_frames():
    with pytest.raises(ValueError, match="3 or more frames"):
        gns_statistics([np.zeros((2, 4, 3))])


def test_bare_positions_get_documented_defaults(rng):
    pos = rng.random((5, 20, 3)).astype(np.float32)
    ro = rollout_from_arrays(pos)
    assert ro.dt == pytest.approx(1 / 60) and ro.scene.ground is None
    assert "object_id" in ro.missing and ro.scene.object_material == ("elastic",)
    assert 0 < ro.scene.radius < 0.5


# --------------------------------------------------------------------------- bad files


def _good(tmp_path, rng):
    return save_rollout(tmp_path / "good.npz", make_rollout(rng))


def _rewrite(tmp_path, src, name, drop=(), **replace):
    with np.load(src, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files if k not in drop}
    arrays.update(replace)
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_bad_rollout_files_name_file_and_field(rng, tmp_path):
    good = _good(tmp_path, rng)
    cases = {
        "missing": (_rewrite(tmp_path, good, "missing.npz", drop=("dt",)), "dt", "missing"),
        "shape": (_rewrite(tmp_path, good, "shape.npz", positions=np.zeros((6, 12, 2), np.float32)), "positions", "shape"),
        "dtype": (_rewrite(tmp_path, good, "dtype.npz", positions=np.array([[["a"] * 3] * 12] * 6)), "positions", "floats"),
        "ids": (_rewrite(tmp_path, good, "ids.npz", object_id=np.full(12, 9, np.int32)), "object_id", "[0, 3)"),
        "count": (_rewrite(tmp_path, good, "count.npz", object_id=np.zeros(5, np.int32)), "object_id", "shape"),
        "version": (_rewrite(tmp_path, good, "version.npz", format_version=np.int32(99)), "format_version", "99"),
        "format": (_rewrite(tmp_path, good, "format.npz", format=np.array("something.else")), "format", "expected"),
    }
    for name, (path, field, words) in cases.items():
        with pytest.raises(FileFormatError) as err:
            load_rollout(path)
        assert err.value.field == field, name
        assert str(path) in str(err.value) and words in str(err.value), (name, str(err.value))
        assert "\n" not in str(err.value)


def test_pickled_truncated_and_empty_files(rng, tmp_path):
    good = _good(tmp_path, rng)
    pickled = tmp_path / "pickled.npz"
    with np.load(good, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["object_material"] = np.array(["rigid", "granular", "rigid"], dtype=object)
    np.savez(pickled, **arrays)
    with pytest.raises(FileFormatError, match="object_material.*pickle"):
        load_rollout(pickled)
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(FileFormatError, match="truncated.npz"):
        load_rollout(truncated)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(FileFormatError, match="empty"):
        load_rollout(empty)
    with pytest.raises(FileFormatError, match="no such file"):
        load_rollout(tmp_path / "absent.npz")
    single = tmp_path / "single.npy"
    np.save(single, np.zeros((2, 3, 3)))
    with pytest.raises(FileFormatError, match="single array"):
        load_rollout(single)


def test_bad_metadata(tmp_path, rng):
    write_dataset(tmp_path / "ds", {"train": [make_rollout(rng)]})
    meta_path = tmp_path / "ds" / "metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["vel_std"]  # statistics are optional (trainers compute them) ...
    meta_path.write_text(json.dumps(meta))
    assert "vel_std" not in read_metadata(tmp_path / "ds")
    meta["acc_std"] = [1.0, 2.0]  # ... but checked when present
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(FileFormatError, match="acc_std.*3 values"):
        read_metadata(tmp_path / "ds")
    del meta["dt"]
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(FileFormatError, match="dt.*missing"):
        read_metadata(tmp_path / "ds")
    meta_path.write_text("{not json")
    with pytest.raises(FileFormatError, match="not valid JSON"):
        read_metadata(tmp_path / "ds")


def test_failed_write_keeps_the_old_file(rng, tmp_path):
    good = _good(tmp_path, rng)
    before = good.read_bytes()
    from particles.io import _savez, atomic_write

    with pytest.raises(TypeError):
        _savez(good, {"x": np.array([object()], dtype=object)})

    def crash_midway(f):
        f.write(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(good, crash_midway)
    assert good.read_bytes() == before
    assert zipfile.is_zipfile(good)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.npz"]


def test_action_file_round_trip_and_checks(tmp_path):
    """An action .npz written by save_action reads back bit for bit, with its format; a file of
    another format, or one that moves other particles than the scene's tool, is refused by name."""
    from particles import Action, FileFormatError
    from particles.io import ACTION_FORMAT, load_action, save_action

    rng = np.random.default_rng(3)
    act = Action(np.array([7, 8, 9]), rng.normal(size=(5, 3, 3)).astype(np.float32))
    path = save_action(tmp_path / "action.npz", act, dt=1 / 60)
    back = load_action(path, np.array([9, 8, 7]))
    assert np.array_equal(back.indices, act.indices) and np.array_equal(back.positions, act.positions)
    with np.load(path, allow_pickle=False) as z:
        assert str(z["format"]) == ACTION_FORMAT and float(z["dt"]) == 1 / 60
    with pytest.raises(FileFormatError, match="indices"):
        load_action(path, np.array([1, 2, 3]))
    np.savez(tmp_path / "other.npz", positions=act.positions, indices=act.indices, format=np.array("worldline.rollout"))
    with pytest.raises(FileFormatError, match="format"):
        load_action(tmp_path / "other.npz")
    np.savez(tmp_path / "bare.npz", positions=act.positions)  # bare arrays: the scene's tool particles
    assert np.array_equal(load_action(tmp_path / "bare.npz", act.indices).indices, act.indices)


def test_load_rollout_takes_a_frame_time_only_for_files_without_one(tmp_path):
    """``load_rollout(dt=...)`` fills in a missing ``dt``; a file's own ``dt`` always wins."""
    from particles import FileFormatError, load_rollout, rollout_from_arrays, save_rollout

    ro = rollout_from_arrays(np.zeros((3, 4, 3), np.float32), dt=0.01, radius=0.005)
    path = save_rollout(tmp_path / "r.npz", ro)
    assert load_rollout(path, dt=0.5).dt == pytest.approx(0.01)
    with np.load(path, allow_pickle=False) as z:
        np.savez(tmp_path / "nodt.npz", **{k: z[k] for k in z.files if k != "dt"})
    with pytest.raises(FileFormatError, match="dt"):
        load_rollout(tmp_path / "nodt.npz")
    assert load_rollout(tmp_path / "nodt.npz", dt=0.5).dt == pytest.approx(0.5)
