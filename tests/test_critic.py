"""The physics critic on hand-built rollouts of about a dozen particles.

Each category has a rollout that must fire (right frame, object, place) and near-misses that
must not: a box resting on the ground or on another box, an elastic object deforming, a tool
pushing a box, a fast ballistic throw, a bounce. Then the report's JSON round trip and the
``worldline audit`` exit codes (0 clean, 1 glitches, 2 bad input).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from critic import AuditConfig, AuditContext, Event, Report, audit, check_energy, check_floating, check_jitter
from critic import check_rigidity, check_teleport, check_vanish, load_audit_input
from particles import KINEMATIC, MATERIAL_TYPE, ParticleScene, Rollout, save_rollout, write_dataset
from worldline.cli import main

R = 0.01
DT = 1.0 / 60.0
G = np.array([0.0, 0.0, -9.81])


def block(n=(2, 2, 3)) -> np.ndarray:
    """(n, 3) local particle centres of a box, spacing 2r, centred on the origin."""
    ax = [(np.arange(k) - (k - 1) / 2.0) * 2 * R for k in n]
    return np.stack(np.meshgrid(*ax, indexing="ij"), -1).reshape(-1, 3)


def rest_z(nz=3, below=0.0):
    """Centre height of a box of nz layers whose bottom particles sit r above ``below``."""
    return below + R + (nz - 1) * R


def make(objects, T=None, ground=0.0, noise=0.0, seed=0) -> Rollout:
    """objects: list of (trajectory (T, n, 3), material, kinematic)."""
    pos = np.concatenate([o[0] for o in objects], axis=1)
    oid = np.concatenate([np.full(o[0].shape[1], k, np.int32) for k, o in enumerate(objects)])
    ptype = np.concatenate([np.full(o[0].shape[1], KINEMATIC if o[2] else MATERIAL_TYPE[o[1]], np.int32) for o in objects])
    if noise:
        free = ptype != KINEMATIC
        pos[:, free] += np.random.default_rng(seed).normal(0, noise, size=(pos.shape[0], int(free.sum()), 3))
    scene = ParticleScene(pos[0].astype(np.float32), oid, tuple(o[1] for o in objects), R, particle_type=ptype,
                          ground=ground)
    return Rollout(scene, pos.astype(np.float32), DT)


def still(local, centre, T=40):
    return np.broadcast_to(local + np.asarray(centre), (T, len(local), 3)).copy()


def moving(local, centre_fn, T=40):
    t = np.arange(T) * DT
    return local[None] + centre_fn(t)[:, None, :]


def cats(report_or_events):
    events = report_or_events.events if isinstance(report_or_events, Report) else report_or_events
    return [e.category for e in events]


# ------------------------------------------------------------------------------------------ near misses


def test_box_resting_on_ground_is_clean():
    ro = make([(still(block(), [0, 0, rest_z()]), "rigid", False)], noise=0.02 * R)
    rep = audit(ro)
    assert rep.clean, rep.table()
    assert AuditContext(ro).supported.all()


def test_box_resting_on_box_and_on_static_table_is_supported():
    table = still(block((4, 4, 1)), [0, 0, 0.5])
    low = still(block(), [0, 0, rest_z(3, 0.5 + R)])
    top = still(block(), [0.005, 0, rest_z(3, 0.5 + R + 6 * R)])
    ro = make([(table, "static", True), (low, "rigid", False), (top, "rigid", False)], noise=0.02 * R)
    rep = audit(ro)
    assert rep.clean, rep.table()
    ctx = AuditContext(ro)
    assert ctx.contact[:, 1, 2].all() and ctx.contact[:, 0, 1].all() and not ctx.contact[:, 0, 2].any()
    # the same top box 5 radii higher hovers: nothing under it (up to one spacing, 2 r, plus the contact
    # margin would still be a lattice whose lowest layer sits higher inside its box)
    top_hover = still(block(), [0.005, 0, rest_z(3, 0.5 + R + 6 * R) + 5 * R])
    rep = audit(make([(table, "static", True), (low, "rigid", False), (top_hover, "rigid", False)]))
    assert cats(rep) == ["floating"] and rep.events[0].object == 2 and rep.events[0].frame <= 2


def test_fast_ballistic_throw_is_not_a_teleport_and_free_fall_is_not_floating():
    v0 = np.array([20.0, 0.0, 6.0])  # steps of 35 particle radii per frame
    traj = moving(block(), lambda t: np.array([0, 0, 2.0]) + v0 * t[:, None] + 0.5 * G * t[:, None] ** 2, T=30)
    rep = audit(make([(traj, "rigid", False)]))
    assert rep.clean, rep.table()


def test_bounce_on_the_ground_is_clean():
    t = np.arange(36) * DT  # one bounce, up and nearly down again
    z = np.empty_like(t)
    t_hit = np.sqrt(2 * 0.3 / 9.81)
    v_out = 0.8 * 9.81 * t_hit
    up = t > t_hit
    z[~up] = 0.3 - 0.5 * 9.81 * t[~up] ** 2
    z[up] = v_out * (t[up] - t_hit) - 0.5 * 9.81 * (t[up] - t_hit) ** 2
    assert z.min() > -1e-9
    traj = block()[None] + np.stack([0 * t, 0 * t, z + rest_z()], 1)[:, None]
    rep = audit(make([(traj, "rigid", False)]))
    assert rep.clean, rep.table()


def _squash(T=40):
    """An object squashing and stretching on the ground (volume kept)."""
    loc = block((2, 2, 3))
    t = np.arange(T) * DT
    s = 1 + 0.3 * np.sin(2 * np.pi * 2 * t)
    traj = np.empty((T, len(loc), 3))
    traj[..., :2] = loc[None, :, :2] / np.sqrt(s)[:, None, None]
    traj[..., 2] = R + (loc[None, :, 2] + 2 * R) * s[:, None]
    return traj


def test_elastic_object_deforming_is_not_a_rigidity_glitch_but_a_rigid_one_is():
    assert audit(make([(_squash(), "elastic", False)])).clean
    ro = make([(_squash(), "rigid", False)])
    ev = check_rigidity(ro, AuditContext(ro))
    assert len(ev) >= 1 and ev[0].category == "rigidity" and ev[0].object == 0
    assert ev[0].frame <= 3  # the stretch passes r/4 within the first frames


def _push(with_tool=True, T=50, u=0.6):
    t = np.arange(T) * DT
    tool_front = -0.05 + u * t
    box_back = -0.01  # box centred at x=0 with two columns: back particles at -r
    shift = np.maximum(tool_front - (box_back - 2 * R), 0)
    box = block()[None] + np.stack([shift, 0 * t, 0 * t + rest_z()], 1)[:, None]
    objs = [(box, "rigid", False)]
    if with_tool:
        tool = block((1, 2, 3))[None] + np.stack([tool_front, 0 * t, 0 * t + rest_z()], 1)[:, None]
        objs.append((tool, "rigid", True))
    return make(objs)


def test_tool_pushing_a_box_is_clean_but_the_same_motion_without_the_tool_gains_energy():
    ro = _push(True)
    ctx = AuditContext(ro)
    assert ctx.obj_tool.tolist() == [False, True] and ctx.contact[-1, 0, 1]
    assert audit(ro).clean, audit(ro).table()
    rep = audit(_push(False))
    assert "energy" in cats(rep), rep.table()
    e = [e for e in rep.events if e.category == "energy"][0]
    assert e.object == 0


# ------------------------------------------------------------------------------------------ each category


def test_penetration_ground_and_pair_with_depth_and_place():
    T = 30
    sink = lambda t: np.array([0, 0, rest_z()]) - np.where(t >= 10 * DT - 1e-9, 0.8 * R, 0)[:, None] * [0, 0, 1]  # noqa: E731
    rep = audit(make([(moving(block(), sink, T), "rigid", False)]))
    assert cats(rep) == ["penetration"]
    e = rep.events[0]
    assert (e.frame, e.end_frame, e.object, e.other) == (10, T - 1, 0, None)  # one event, merged over 20 frames
    assert abs(e.location[2] - (R - 0.8 * R)) < 1e-3 and "ground" in e.message
    # two boxes side by side, the right one slides into the left by 0.9 r (slowly, not a jump)
    left = still(block(), [0, 0, rest_z()], T)
    right = moving(block(), lambda t: np.stack([0.04 - np.clip((t - 10 * DT) * 0.3, 0, 0.9 * R), 0 * t, 0 * t + rest_z()], 1), T)
    rep = audit(make([(left, "rigid", False), (right, "rigid", False)]))
    pen = [e for e in rep.events if e.category == "penetration"]
    assert len(pen) == 1 and {pen[0].object, pen[0].other} == {0, 1}
    assert 10 < pen[0].frame < 14 and pen[0].end_frame == T - 1
    assert abs(pen[0].location[0] - (0.01 + 0.03 - 0.9 * R) / 2) < 1e-3  # midway between the facing columns
    assert len(pen[0].particles) == 2


def test_teleport_whole_object_and_single_particle():
    T = 30
    drift = lambda t: np.array([0, 0, 1.0]) + np.array([1.0, 0, 2.0]) * t[:, None] + 0.5 * G * t[:, None] ** 2  # noqa: E731
    traj = moving(block(), drift, T)
    traj[12:] += [0, 0.05, 0]  # 5 r sideways, speed unchanged
    rep = audit(make([(traj, "rigid", False)]))
    assert cats(rep) == ["teleport"]
    e = rep.events[0]
    assert e.frame == 12 and e.end_frame == 12 and e.object == 0
    assert np.allclose(e.location, traj[12].mean(0), atol=1e-4)
    one = moving(block(), drift, T)
    one[20:, 5] += [0.03, 0, 0]
    # a deformable object is judged particle by particle: the one that jumps is the teleport
    ro = make([(one, "elastic", False)])
    ev = check_teleport(ro, AuditContext(ro))
    assert len(ev) == 1 and ev[0].frame == 20 and ev[0].particles == (5,)
    # a rigid object is judged on its pose: one particle leaving it is a change of shape
    rep = audit(make([(one, "rigid", False)]))
    assert cats(rep) == ["rigidity"] and rep.events[0].frame == 20 and rep.events[0].particles[0] == 5


def test_teleport_without_object_ids_is_judged_against_the_other_particles():
    from particles import rollout_from_arrays

    pos = np.broadcast_to(block((3, 3, 2)) + [0, 0, 0.5], (20, 18, 3)).copy()
    pos[10:, 4] += [0.05, 0, 0]  # one particle of a still cloud jumps 5 r
    rep = audit(rollout_from_arrays(pos, dt=DT))
    assert cats(rep) == ["teleport"] and rep.events[0].frame == 10 and rep.events[0].object is None
    assert rep.events[0].particles == (4,)
    assert any("no object_id" in s for s in rep.skipped)


def test_vanish_nan_out_of_world_and_collapse():
    T = 30
    base = still(block(), [0, 0, rest_z()], T)
    nan = base.copy()
    nan[15:, 3] = np.nan
    rep = audit(make([(nan, "rigid", False)]))
    assert cats(rep) == ["vanish"] and rep.events[0].frame == 15 and rep.events[0].particles == (3,)
    assert np.allclose(rep.events[0].location, base[14, 3], atol=1e-6)  # last place it was seen
    away = base.copy()
    away[20:] += [1e4, 0, 0]
    rep = audit(make([(away, "rigid", False)]))
    assert cats(rep) == ["vanish"] and rep.events[0].frame == 20  # the jump itself is explained by vanish
    col = base.copy()
    c = col[18:].mean(1, keepdims=True)
    col[18:] = c + (col[18:] - c) * 0.1
    ro = make([(col, "rigid", False)])
    ev = check_vanish(ro, AuditContext(ro))
    assert len(ev) == 1 and ev[0].frame == 18 and "collapses" in ev[0].message


def test_rigidity_bulge():
    T = 30
    traj = still(block((3, 2, 2)), [0, 0, rest_z(2)], T)
    middle = np.abs(traj[0, :, 0]) < 1e-6  # the middle column of three bulges up
    traj[10:, middle] += [0, 0, 0.6 * R]
    rep = audit(make([(traj, "rigid", False)]))
    assert cats(rep) == ["rigidity"]
    e = rep.events[0]
    assert (e.frame, e.end_frame, e.object) == (10, T - 1, 0) and e.severity > 0.3
    assert abs(e.location[0]) < 1e-3 and set(e.particles) <= set(np.flatnonzero(middle).tolist())  # at the bulge


def test_floating_hover_and_slow_fall():
    T = 40
    fall = lambda t: np.array([0, 0, 1.0]) + 0.5 * G * t[:, None] ** 2  # noqa: E731
    traj = moving(block(), fall, T)
    traj[20:] = traj[19]  # stops in mid-air
    rep = audit(make([(traj, "rigid", False)]))
    assert cats(rep) == ["floating"] and abs(rep.events[0].frame - 20) <= 1 and rep.events[0].end_frame >= T - 3
    slow = moving(block(), lambda t: np.array([0, 0, 1.0]) + 0.25 * G * t[:, None] ** 2, T)
    ro = make([(slow, "rigid", False)])
    assert cats(check_floating(ro, AuditContext(ro))) == ["floating"]


def test_energy_box_speeds_up_on_the_ground():
    T = 40
    v = lambda t: 1.0 - 2.0 * t + np.where(t < 15 * DT, 0.0, 0.5)  # noqa: E731  a 0.5 m/s push from nowhere
    x = np.concatenate([[0.0], np.cumsum(v(np.arange(T - 1) * DT) * DT)])
    traj = block()[None] + np.stack([x, 0 * x, 0 * x + rest_z()], 1)[:, None]
    rep = audit(make([(traj, "rigid", False)]))
    assert cats(rep) == ["energy"] and abs(rep.events[0].frame - 16) <= 2, rep.table()
    ro = make([(traj, "elastic", False)])
    assert check_energy(ro, AuditContext(ro)) == []  # hidden elastic energy


def test_jitter_shaking_box_but_not_noise_floor():
    T = 40
    traj = still(block(), [0, 0, rest_z()], T)
    dirs = np.random.default_rng(3).normal(size=(12, 3))
    shake = 0.4 * R * dirs / np.linalg.norm(dirs, axis=1, keepdims=True)
    traj[10:30] += ((-1.0) ** np.arange(20))[:, None, None] * shake[None]
    rep = audit(make([(traj, "rigid", False)]))
    assert cats(rep) == ["jitter"], rep.table()
    e = rep.events[0]
    assert abs(e.frame - 10) <= 1 and abs(e.end_frame - 29) <= 1
    # next to a tool: shaking is a glitch when the tool is still, not when the tool vibrates it
    tool_x = np.full(T, -0.034)  # 2.4 r from the box: touching
    tool = block((1, 2, 3))[None] + np.stack([tool_x, 0 * tool_x, 0 * tool_x + rest_z()], 1)[:, None]
    assert cats(audit(make([(traj, "rigid", False), (tool, "rigid", True)]))) == ["jitter"]
    buzz, held = tool.copy(), still(block(), [0, 0, rest_z()], T)
    wave = ((-1.0) ** np.arange(20))[:, None, None] * np.array([0.3 * R, 0, 0])
    buzz[10:30] += wave
    held[10:30] += wave  # the whole box follows the vibrating tool
    assert audit(make([(held, "rigid", False), (buzz, "rigid", True)])).clean
    quiet = still(block(), [0, 0, rest_z()], T)
    ro = make([(quiet, "rigid", False)], noise=0.03 * R)
    assert check_jitter(ro, AuditContext(ro)) == []


def test_pair_search_with_verlet_lists_matches_all_pairs():
    """Contacts and overlapping pairs from the hash-grid search with reused neighbour lists equal
    an all-pairs reference on three objects that wander, collide and rest."""
    rng = np.random.default_rng(7)
    T = 25
    objs = [
        (still(block((3, 3, 2)), [0, 0, rest_z(2)], T) + rng.normal(0, 0.05 * R, (T, 18, 3)), "rigid", False),
        (moving(block(), lambda t: np.stack([0.06 - 0.8 * t, 0.01 * np.sin(9 * t), 0 * t + rest_z()], 1), T), "rigid", False),
        (moving(block((1, 2, 2)), lambda t: np.stack([-0.06 + 0.3 * t, 0 * t, 0 * t + rest_z(2)], 1), T), "rigid", True),
    ]
    ro = make(objs)
    ctx = AuditContext(ro)
    pos, oid = ro.positions.astype(np.float64), ro.scene.object_id
    ref_contact = np.zeros((T, 3, 3), bool)
    ref_pairs = set()
    for f in range(T):
        d = np.linalg.norm(pos[f][:, None] - pos[f][None], axis=2)
        cross = oid[:, None] != oid[None, :]
        both_kin = ro.scene.kinematic[:, None] & ro.scene.kinematic[None, :]
        ok = cross & ~both_kin
        for a in range(3):
            for b in range(3):
                ref_contact[f, a, b] = (ok & (d <= ctx.pair_query_dist[a, b] + 1e-7))[oid == a][:, oid == b].any()
        ii, jj = np.nonzero(ok & (d < 2 * R - 1e-6) & (np.arange(len(oid))[:, None] < np.arange(len(oid))[None]))
        ref_pairs |= {(f, int(i), int(j)) for i, j in zip(ii, jj)}
    assert ref_contact.any() and not ref_contact.all()
    assert np.array_equal(ctx.contact, ref_contact)
    p = ctx.pairs
    got = {(int(f), int(min(i, j)), int(max(i, j))) for f, i, j, dd in zip(p["frame"], p["i"], p["j"], p["dist"])
           if dd < 2 * R - 1e-6}
    assert got == ref_pairs and len(got) > 0
    assert 1 <= ctx.pairs["builds"] <= 2 * T  # neighbour lists were reused across frames (3 pairs x T frames otherwise)


def test_numpy_grid_pair_search_and_spacing_equal_brute_force():
    """The CPU pair search (a NumPy cell grid, no Warp) and the nearest-neighbour search behind each
    object's spacing return exactly what all pairs give, batches kept apart, sorted like radius_search."""
    from critic.context import _nearest_other, grid_pairs

    rng = np.random.default_rng(3)
    q = rng.uniform(0, 0.2, (400, 3)).astype(np.float32)
    p = rng.uniform(0, 0.2, (500, 3)).astype(np.float32)
    qb, pb = rng.integers(0, 3, 400), rng.integers(0, 3, 500)
    d = np.linalg.norm(q[:, None].astype(np.float64) - p[None].astype(np.float64), axis=2)
    for rad in (0.01, 0.03):
        ref = np.argwhere((d <= rad) & (qb[:, None] == pb[None]))
        got = grid_pairs(q, p, rad, qb, pb)
        assert len(ref) > 10 and np.array_equal(got, ref)
    pts = p.astype(np.float64)
    dd = np.linalg.norm(pts[:, None] - pts[None], axis=2)
    np.fill_diagonal(dd, np.inf)
    qi = np.arange(0, 500, 7)
    for cell in (0.004, 0.05):  # cells smaller than some nearest distances (the all-points fallback), and larger
        np.testing.assert_allclose(_nearest_other(pts, qi, cell), dd[qi].min(1), rtol=1e-12)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="contact_tolerance"):
        AuditConfig(contact_tolerance=-1)
    with pytest.raises(ValueError, match="checks"):
        AuditConfig(checks=("gravity",))


# ------------------------------------------------------------------------------------------ report + CLI


def test_report_json_round_trip(tmp_path):
    ev = Event("penetration", 3, 9, 1, 2, (0.1, 0.2, 0.3), 0.5, (4, 5), "Objects overlap.")
    rep = Report(frames=10, particles=24, events=(ev,), skipped=("rigidity: skipped",))
    path = rep.write(tmp_path / "r.json")
    back = Report.read(path)
    assert back == rep and back.events[0] == ev
    d = json.loads(path.read_text())
    assert d["version"] == 1 and set(d["events"][0]) == {
        "category", "frame", "end_frame", "object", "other", "location", "severity", "particles", "message"}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("audit")
    clean = make([(still(block(), [0, 0, rest_z()], 20), "rigid", False)])
    bad = clean.positions.copy()
    bad[12:, 0] = np.nan
    glitch = Rollout(clean.scene, bad, DT)
    out = {"clean": save_rollout(d / "clean.npz", clean), "glitch": save_rollout(d / "glitch.npz", glitch)}
    raw = (d / "glitch.npz").read_bytes()
    (d / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (d / "empty.npz").write_bytes(b"")
    np.savez(d / "shape.npz", positions=np.zeros((5, 4), np.float32), dt=np.float64(DT))
    np.savez(d / "nokey.npz", dt=np.float64(DT), radius=np.float64(R))
    np.savez(d / "pickled.npz", positions=np.array([None, 1], dtype=object), dt=np.float64(DT))
    np.save(d / "bare.npy", bad)
    np.savez(d / "bare.npz", positions=clean.positions)
    write_dataset(d / "ds", {"train": [clean, glitch], "valid": [clean]})
    out.update({k: d / f"{k}.npz" for k in ("trunc", "empty", "shape", "nokey", "pickled", "bare")})
    out["npy"] = d / "bare.npy"
    out["ds"] = d / "ds"
    out["dir"] = d
    return out


def test_cli_exit_codes_and_json(files, capsys):
    assert main(["audit", str(files["clean"])]) == 0
    assert "0 event(s)" in capsys.readouterr().out
    report = files["dir"] / "rep.json"
    assert main(["audit", str(files["glitch"]), "--json", str(report), "--format", "json"]) == 1
    out = json.loads(capsys.readouterr().out)
    rep = Report.read(report)
    assert Report.from_dict(out) == rep and cats(rep) == ["vanish"] and rep.events[0].frame == 12
    assert main(["audit", str(files["glitch"]), "--format", "table"]) == 1
    assert "vanish" in capsys.readouterr().out
    assert main(["audit", str(files["glitch"]), "--checks", "penetration,jitter"]) == 0  # vanish not asked for
    capsys.readouterr()
    assert main(["audit", str(files["clean"]), "--contact-tolerance", "-1"]) == 2
    assert "--contact-tolerance" in capsys.readouterr().err


@pytest.mark.parametrize("name, words", [
    ("trunc", ["trunc"]), ("empty", ["empty"]), ("shape", ["positions", "shape"]), ("nokey", ["positions", "missing"]),
    ("pickled", ["positions", "pickle"]),
])
def test_cli_bad_input_exits_2_with_one_line(files, capsys, name, words):
    assert main(["audit", str(files[name])]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(files[name]) in err and "Traceback" not in err
    for w in words:
        assert w in err.lower()


def test_cli_bare_arrays_and_dataset_folder(files, capsys):
    assert main(["audit", str(files["npy"]), "--format", "json", "--dt", str(DT)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [e["category"] for e in doc["events"]] == ["vanish"] and doc["events"][0]["object"] is None
    assert any("rigidity: skipped" in s for s in doc["skipped"])
    assert main(["audit", str(files["bare"]), "--dt", str(DT)]) == 0
    assert "0 event(s)" in capsys.readouterr().out
    items = load_audit_input(files["ds"])
    assert [s.split(":")[-1] for s, _ in items] == ["train/traj_0", "train/traj_1", "valid/traj_0"]
    assert main(["audit", str(files["ds"]), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [len(r["events"]) for r in doc["reports"]] == [0, 1, 0]
    assert main(["audit", str(files["clean"]), "--format", "yaml"]) == 2


def test_cli_file_without_dt_exits_2_naming_the_field_unless_dt_is_given(files, capsys, tmp_path):
    # a full rollout that lacks only dt: refused, then audited with its object ids when --dt is given
    ro = make([(still(block(), [0, 0, rest_z()], 20), "rigid", False)])
    pos = ro.positions.copy()
    pos[12:, 0] = np.nan
    path = save_rollout(tmp_path / "nodt.npz", Rollout(ro.scene, pos, DT))
    with np.load(path) as z:
        fields = {k: z[k] for k in z.files if k != "dt"}
    np.savez(path, **fields)
    for f in (path, files["npy"], files["bare"]):
        assert main(["audit", str(f)]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(f) in err and "dt" in err and "--dt" in err and "Traceback" not in err
    assert main(["audit", str(path), "--dt", str(DT), "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert [e["category"] for e in doc["events"]] == ["vanish"] and doc["events"][0]["object"] == 0
    assert main(["audit", str(path), "--dt", "-1"]) == 2
    assert "dt" in capsys.readouterr().err


@pytest.mark.parametrize("T", [1, 2])
def test_vanish_on_one_and_two_frame_rollouts(tmp_path, capsys, T):
    # an exploded rollout is lost at any length: 1e30 m is beyond what float32 can place to within r
    ro = make([(still(block(), [0, 0, rest_z()], T), "rigid", False)])
    far = Rollout(ro.scene, np.full_like(ro.positions, 1e30), DT)
    rep = audit(far)
    assert cats(rep) == ["vanish"] and rep.events[0].frame == 0
    assert any("need at least 3 frames" in s for s in rep.skipped)
    nan = ro.positions.copy()
    nan[T - 1, 3] = np.nan
    rep = audit(Rollout(ro.scene, nan, DT))
    assert cats(rep) == ["vanish"] and rep.events[0].frame == T - 1 and rep.events[0].particles == (3,)
    assert audit(ro).clean
    path = save_rollout(tmp_path / "far.npz", far)
    assert main(["audit", str(path)]) == 1
    assert "vanish" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------ near misses (issue 11)


def _fibonacci_shell(radius: float, spacing: float) -> np.ndarray:
    """(n, 3) points spread evenly on a sphere of ``radius``, about ``spacing`` apart."""
    n = max(8, int(round(4 * np.pi * radius ** 2 / (0.866 * spacing ** 2))))
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    th = np.pi * (1 + 5 ** 0.5) * i
    return radius * np.stack([np.cos(th) * np.sin(phi), np.sin(th) * np.sin(phi), np.cos(phi)], 1)


def _rot(axis, angle):
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.outer(np.atleast_1d(angle), np.asarray(axis, float))).as_matrix()


def test_rolling_ball_with_a_sparse_shell_is_supported_and_clean():
    rs = 5 * R  # ball radius; the shell's centres sit r inside its surface, 3.5 r apart
    shell = _fibonacci_shell(rs - R, 3.5 * R)
    T, v = 60, 1.5  # rolls without slipping: w = v / rs, the top particles step 2 v dt = 5 r per frame
    t = np.arange(T) * DT
    rot = _rot([0, 1, 0], v / rs * t)
    traj = np.einsum("tij,nj->tni", rot, shell) + np.stack([v * t, 0 * t, 0 * t + rs], 1)[:, None]
    ro = make([(traj, "rigid", False)])
    ctx = AuditContext(ro)
    assert ctx.spacing[0] > 3 * R and ctx.gap[0] > 0.4 * R
    # the shell's lowest particle rises up to ~0.6 r above its resting height between samples, yet it rolls on
    assert (ctx.bbox[0][:, 0, 2] - R).max() > 0.5 * R
    assert ctx.supported[:, 0].all()
    rep = audit(ro)
    assert rep.clean, rep.table()
    # the same roll 4 r above the ground hovers with nothing under it
    rep = audit(make([(traj + [0, 0, 4 * R], "rigid", False)]))
    assert "floating" in cats(rep), rep.table()


def _torque_free(local: np.ndarray, w0: np.ndarray, T: int) -> np.ndarray:
    """(T, 3, 3) rotations of a free rigid body of point masses ``local (n, 3)`` (centred, equal masses)
    spinning from body angular velocity ``w0`` (Euler's equations, integrated to 1e-12)."""
    from scipy.integrate import solve_ivp
    from scipy.spatial.transform import Rotation

    inertia = np.eye(3) * (local ** 2).sum() - local.T @ local
    inv = np.linalg.inv(inertia)

    def f(_, y):
        rm, w = y[:9].reshape(3, 3), y[9:]
        skew = np.array([[0, -w[2], w[1]], [w[2], 0, -w[0]], [-w[1], w[0], 0]])
        return np.concatenate([(rm @ skew).ravel(), inv @ np.cross(inertia @ w, w)])

    sol = solve_ivp(f, (0, (T - 1) * DT), np.concatenate([np.eye(3).ravel(), w0]), t_eval=np.arange(T) * DT,
                    rtol=1e-12, atol=1e-12, method="DOP853")
    rot = sol.y[:9].T.reshape(T, 3, 3)
    return Rotation.from_matrix(rot).as_matrix()  # re-orthonormalised


def test_spinning_thrown_box_is_clean_and_a_sideways_jump_in_flight_is_a_teleport():
    local = block((5, 3, 2))
    local -= local.mean(0)
    T = 40
    rot = _torque_free(local, np.array([8.0, 3.0, 14.0]), T)  # not about a principal axis: it tumbles
    t = np.arange(T) * DT
    c = np.array([0, 0, 1.5]) + np.array([2.0, 0.5, 3.0]) * t[:, None] + 0.5 * G * t[:, None] ** 2
    traj = np.einsum("tij,nj->tni", rot, local) + c[:, None]
    ro = make([(traj, "rigid", False)])
    rep = audit(ro)
    assert rep.clean, rep.table()
    ctx = AuditContext(ro)
    e = ctx.rigid["ke"][:, 0] - ctx.obj_mass[0] * (0.5 * (ctx.com[1:, 0] + ctx.com[:-1, 0]) @ ctx.g)
    assert np.ptp(e) < 1e-3 * np.abs(e).max()  # translation + rotation + potential: conserved
    # particles of the tumbling box turn by ~14 r per frame at its corners: a per-particle bound would cry
    assert ctx.obj_step_max[:, 0].max() > 5 * R
    jump = traj.copy()
    jump[20:] += [0, 2.5 * R, 0]
    rep = audit(make([(jump, "rigid", False)]))
    assert cats(rep) == ["teleport"] and rep.events[0].frame == 20, rep.table()
    assert np.allclose(rep.events[0].location, jump[20].mean(0), atol=1e-4)


def _stack(T=90, shake=None, seed=3):
    """Three boxes resting on each other on the ground with solver noise: every particle jitters by
    0.02 r and every body's pose by 0.02 r and 1e-3 rad per frame (Gaussian, per axis)."""
    rng = np.random.default_rng(seed)
    objs, below = [], 0.0
    for k, n in enumerate(((4, 4, 2), (3, 3, 2), (2, 2, 2))):
        loc = block(n)
        z = rest_z(n[2], below)
        th = rng.normal(0, 1e-3, size=(T, 3))
        traj = np.einsum("tij,nj->tni", np.stack([_rot(a / max(np.linalg.norm(a), 1e-12), np.linalg.norm(a))[0]
                                                  for a in th]), loc)
        traj += np.array([0.003 * k, 0, z]) + rng.normal(0, 0.02 * R, size=(T, 1, 3))
        if shake is not None and k == 2:
            f, n_f, amp = shake
            d = rng.normal(size=(n_f, 3)) * [1, 1, 0]
            traj[f:f + n_f] += amp * R * d[:, None] / np.linalg.norm(d, axis=1)[:, None, None]
        objs.append((traj, "rigid", False))
        below = z + (n[2] - 1) * R + R
    return make(objs, noise=0.02 * R, seed=seed)


def test_resting_stack_with_solver_noise_is_clean_but_a_shaken_box_jitters():
    rep = audit(_stack())
    assert rep.clean, rep.table()
    rep = audit(_stack(shake=(30, 15, 1.0)))  # the top box shaken sideways by 1 r, random each frame
    assert cats(rep) == ["jitter"] and rep.events[0].object == 2, rep.table()
    assert abs(rep.events[0].frame - 30) <= 1


def _push_stop(T=70, u=0.5, f_stop=30, kick_at=None):
    """A tool pushes a box at ``u`` and stops at frame ``f_stop``; the box stops with it (it sticks,
    decelerating within a frame), still touching it. ``kick_at``: the box then slides off by itself."""
    t = np.arange(T) * DT
    tool_front = -0.05 + u * np.minimum(t, f_stop * DT)
    shift = np.maximum(tool_front - (-R - 2 * R), 0)
    if kick_at is not None:
        shift = shift + np.maximum(t - (kick_at - 1) * DT, 0) * 0.4
    box = block()[None] + np.stack([shift, 0 * t, 0 * t + rest_z()], 1)[:, None]
    tool = block((1, 2, 3))[None] + np.stack([tool_front, 0 * t, 0 * t + rest_z()], 1)[:, None]
    return make([(box, "rigid", False), (tool, "rigid", True)])


def test_tool_that_pushes_and_stops_is_clean_and_does_no_work_once_stopped():
    ro = _push_stop()
    ctx = AuditContext(ro)
    assert ctx.contact[10:, 0, 1].all()  # the box rests against the stopped tool to the end
    rep = audit(ro)
    assert rep.clean, rep.table()
    rep = audit(_push_stop(kick_at=50))  # sliding off at 0.4 m/s from a tool that stands still: no source
    assert cats(rep) == ["energy"] and rep.events[0].frame == 50 and rep.events[0].object == 0, rep.table()


def test_rigid_kinematics_recover_velocity_spin_and_energy():
    # a box spinning at w about a fixed axis while its centre moves at v: the pose fit gives both exactly
    local = block((4, 3, 2))
    local -= local.mean(0)
    T, v, w = 20, np.array([0.3, -0.2, 0.0]), 6.0
    axis = np.array([1.0, 2.0, 2.0]) / 3.0
    t = np.arange(T) * DT
    traj = np.einsum("tij,nj->tni", _rot(axis, w * t), local) + (np.array([0, 0, 0.5]) + v * t[:, None])[:, None]
    ctx = AuditContext(make([(traj, "rigid", False)], ground=None))
    kin = ctx.rigid
    np.testing.assert_allclose(kin["dc"][:, 0] / DT, np.tile(v, (T - 1, 1)), atol=1e-4)
    np.testing.assert_allclose(kin["dth"][:, 0] / DT, np.tile(w * axis, (T - 1, 1)), atol=1e-3)
    m = ctx.mass[ctx.ids(0)]
    inertia = np.eye(3) * (m * (local ** 2).sum(1)).sum() - (local * m[:, None]).T @ local
    ke = 0.5 * m.sum() * v @ v + 0.5 * (w * axis) @ inertia @ (w * axis)
    np.testing.assert_allclose(kin["ke"][:, 0], ke, rtol=1e-3)
    assert np.nanmax(ctx.rigid_residual[:, 0]) < 1e-5  # a rigid motion leaves no residual
