"""viz: Rerun recordings read back with Rerun's own reader, PNG stills, ``worldline view``.

The scene: box A (rigid, 27 particles) at rest is pushed by a 2-particle tool; box B (elastic,
27 particles) falls freely from 0.5 m; 20 frames at dt = 0.01 s. A hand-written critic report
holds three events (one with a location and particles, one without a location, one on the last frame).
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

from particles import KINEMATIC, FileFormatError, KeypointGraph, ParticleScene, Rollout, ValidationError, save_rollout

import viz
from viz.quantities import object_energy, subsample_indices

T, DT, R, G = 20, 0.01, 0.01, 9.81
Z0_B = 0.5  # m, initial height of box B's lowest layer
PUSH_SPEED = 0.5  # m/s, tool speed along x


def _grid(offset):
    g = np.stack(np.meshgrid(*[np.arange(3)] * 3, indexing="ij"), -1).reshape(-1, 3) * 2 * R
    return g + np.asarray(offset)


def make_rollout(perturb: float = 0.0) -> Rollout:
    """Box A pushed by the tool, box B in free fall. ``perturb`` (m) shifts box A at every frame
    after the first (a prediction that differs from the truth)."""
    a, b = _grid([0.0, 0.0, R]), _grid([0.2, 0.0, Z0_B])
    tool = np.array([[-0.05, 0.02, 0.02], [-0.05, 0.02, 0.04]])
    pos0 = np.concatenate([a, b, tool]).astype(np.float32)
    oid = np.array([0] * 27 + [1] * 27 + [2] * 2, np.int32)
    ptype = np.where(oid == 2, KINEMATIC, 8)
    scene = ParticleScene(pos0, oid, ("rigid", "elastic", "rigid"), R, particle_type=ptype,
                          object_name=("boxA", "boxB", "tool"))
    t = np.arange(T) * DT
    pos = np.repeat(pos0[None].astype(np.float64), T, 0)
    pos[:, 54:, 0] += PUSH_SPEED * t[:, None]
    pos[:, :27, 0] += np.clip(PUSH_SPEED * t - 0.03, 0, None)[:, None]
    pos[:, 27:54, 2] -= 0.5 * G * t[:, None] ** 2
    pos[1:, :27, 1] += perturb
    return Rollout(scene, pos.astype(np.float32), DT)


REPORT = {
    "version": 1, "frames": T, "particles": 56,
    "events": [
        {"category": "penetration", "frame": 5, "end_frame": 8, "object": 0, "other": 2,
         "location": [0.0, 0.02, 0.03], "severity": 0.7, "particles": [9, 55],
         "message": "The tool and box A overlap by 6 mm."},
        {"category": "teleport", "frame": 12, "end_frame": 12, "object": 1, "other": None, "location": None,
         "severity": 0.3, "particles": [], "message": "Box B jumps further than its velocity allows."},
        {"category": "jitter", "frame": 19, "end_frame": 19, "object": 0, "other": None,
         "location": [0.1, 0.02, 0.02], "severity": 0.2, "particles": [4], "message": "Box A shakes at rest."},
    ],
}


def read_rrd(path) -> dict:
    """entity path (no leading slash) -> list of (is_static, arrow RecordBatch), via Rerun's RrdReader."""
    from rerun.chunk import RrdReader

    out = defaultdict(list)
    for chunk in RrdReader(path).stream():
        out[chunk.entity_path.lstrip("/")].append((chunk.is_static, chunk.to_record_batch()))
    return out


def column(data, path, name, static=False):
    """[(frame or None, value)] of one component column of an entity, sorted by frame."""
    rows = []
    for is_static, rb in data.get(path, []):
        if is_static != static or name not in rb.schema.names:
            continue
        values = rb.column(name).to_pylist()
        frames = rb.column("frame").to_pylist() if "frame" in rb.schema.names else [None] * len(values)
        rows += list(zip(frames, values))
    return sorted(rows, key=lambda fv: -1 if fv[0] is None else fv[0])


@pytest.fixture(scope="module")
def rollout():
    return make_rollout()


@pytest.fixture(scope="module")
def truth():
    return make_rollout(perturb=0.0)


@pytest.fixture(scope="module")
def predicted():
    return make_rollout(perturb=0.004)


@pytest.fixture(scope="module")
def keypoints():
    return KeypointGraph(positions=make_rollout().scene.positions[[0, 26, 27]], object_id=[0, 0, 1],
                         particle_index=[0, 26, 27], skin_index=np.zeros((56, 1), np.int64),
                         skin_weight=np.ones((56, 1), np.float32), edges=[[0, 1], [1, 0]])


@pytest.fixture(scope="module")
def full(tmp_path_factory, predicted, truth, keypoints):
    """A recording with everything: report, truth, keypoints, graph."""
    path = tmp_path_factory.mktemp("rrd") / "full.rrd"
    edges = np.array([[0, 1], [1, 0], [1, 2], [2, 1], [27, 28], [28, 27], [5, 5]])  # directed, as radius_graph
    summary = viz.record(path, predicted, REPORT, truth=truth, keypoints=keypoints, edges=edges)
    return path, summary, read_rrd(path)


@pytest.fixture(scope="module")
def plain(tmp_path_factory, rollout):
    path = tmp_path_factory.mktemp("rrd") / "plain.rrd"
    summary = viz.record(path, rollout)
    return path, summary, read_rrd(path)


# --------------------------------------------------------------------------- recordings


def test_entity_paths_mirror_the_scene(full):
    _, summary, data = full
    for path in ("world", "world/ground", "world/objects/0/particles", "world/objects/1/particles", "world/tool",
                 "world/objects/0", "world/keypoints", "world/keypoints/edges", "world/graph",
                 "world/truth/particles", "world/flow/predicted", "world/flow/truth", "critic/events",
                 "world/critic/0", "world/critic/2", "plots/energy/0", "plots/energy/1",
                 "plots/severity/penetration", "plots/severity/teleport", "plots/severity/jitter",
                 "plots/error/mean", "plots/error/max"):
        assert path in data, f"{path} missing from the recording"
    # The tool is not an object entity; the event without a location has no marker.
    assert "world/objects/2/particles" not in data and "world/critic/1" not in data
    assert summary.frames == T and summary.particles == 56 and summary.events == 3 and not summary.notices
    info = dict(column(data, "world/objects/0", "name", static=True))
    assert info[None] == ["boxA"]


def test_rerun_verifies_the_recording(full):
    import subprocess
    import sys

    path, _, _ = full
    run = subprocess.run([sys.executable, "-m", "rerun", "rrd", "verify", str(path)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "verified without error" in run.stdout + run.stderr


def test_frame_timeline_covers_every_frame(full):
    _, _, data = full
    frames = [f for f, _ in column(data, "world/objects/1/particles", "Points3D:positions")]
    assert frames == list(range(T))
    times = []
    for is_static, rb in data["world/objects/1/particles"]:
        if not is_static:
            times += rb.column("time").to_pylist()
    # duration timeline: seconds, stored as a timedelta
    assert [round(t.total_seconds(), 9) for t in sorted(times)] == [round(i * DT, 9) for i in range(T)]


def test_positions_read_back_equal_the_rollout(full, predicted):
    _, _, data = full
    tool = dict(column(data, "world/tool", "Points3D:positions"))
    for f in (0, 7, T - 1):
        np.testing.assert_allclose(np.array(tool[f]), predicted.positions[f, 54:], atol=1e-7)
    box_b = dict(column(data, "world/objects/1/particles", "Points3D:positions"))
    np.testing.assert_allclose(np.array(box_b[T - 1]), predicted.positions[T - 1, 27:54], atol=1e-7)
    # keypoints follow the particle each was picked at
    # the neighbour graph: each undirected edge drawn once, between the particles' current positions
    strips = np.array(dict(column(data, "world/graph", "LineStrips3D:strips"))[T - 1])
    assert strips.shape == (3, 2, 3)
    np.testing.assert_allclose(strips[2], predicted.positions[T - 1, [27, 28]], atol=1e-7)
    kp = dict(column(data, "world/keypoints", "Points3D:positions"))
    np.testing.assert_allclose(np.array(kp[T - 1]), predicted.positions[T - 1, [0, 26, 27]], atol=1e-7)
    # colours and radii are static, logged once; radius is the particle radius
    radii = column(data, "world/objects/0/particles", "Points3D:radii", static=True)
    assert len(radii) == 1 and np.isclose(radii[0][1][0], R)
    # colour by material: box A (rigid) is blue-dominant, box B (elastic) green-dominant, tool red
    c_a = column(data, "world/objects/0/particles", "Points3D:colors", static=True)[0][1][0]
    c_b = column(data, "world/objects/1/particles", "Points3D:colors", static=True)[0][1][0]
    c_t = column(data, "world/tool", "Points3D:colors", static=True)[0][1][0]
    rgb = lambda c: [(c >> 24) & 255, (c >> 16) & 255, (c >> 8) & 255]  # noqa: E731  packed RGBA u32
    assert np.argmax(rgb(c_a)) == 2 and np.argmax(rgb(c_b)) == 1 and np.argmax(rgb(c_t)) == 0


def test_object_at_rest_is_logged_once_as_static(tmp_path, rollout):
    pos = rollout.positions.copy()
    pos[:, 27:54] = pos[0, 27:54]  # box B now never moves
    still = Rollout(rollout.scene, pos, DT)
    data = read_rrd(viz.record(tmp_path / "s.rrd", still).path)
    assert column(data, "world/objects/1/particles", "Points3D:positions") == []
    static = column(data, "world/objects/1/particles", "Points3D:positions", static=True)
    assert len(static) == 1
    np.testing.assert_allclose(np.array(static[0][1]), pos[0, 27:54])


def test_every_critic_event_appears_at_its_frame(full):
    _, _, data = full
    logs = [(f, text[0]) for f, text in column(data, "critic/events", "TextLog:text")]
    assert len(logs) == len(REPORT["events"])
    for ev in REPORT["events"]:
        at_frame = [text for f, text in logs if f == ev["frame"]]
        assert any(ev["category"] in text and ev["message"] in text for text in at_frame), ev["category"]
    levels = {f: v[0] for f, v in column(data, "critic/events", "TextLog:level")}
    assert levels[5] == "ERROR" and levels[19] == "WARN"  # severity 0.7 vs 0.2
    # marker and labelled box at the event's location, from its first frame, cleared after its last
    ev = REPORT["events"][0]
    boxes = column(data, "world/critic/0", "Boxes3D:centers")
    assert [f for f, _ in boxes] == [ev["frame"]]
    np.testing.assert_allclose(boxes[0][1][0], ev["location"], atol=1e-7)
    labels = column(data, "world/critic/0", "Boxes3D:labels")
    assert "penetration" in labels[0][1][0]
    half = np.array(column(data, "world/critic/0", "Boxes3D:half_sizes")[0][1][0])
    # the box holds the event's particles at its frame
    pts = make_rollout(0.004).positions[ev["frame"], ev["particles"]]
    assert np.all(np.abs(pts - ev["location"]) <= half + 1e-6)
    markers = column(data, "world/critic/0", "Points3D:positions")
    assert [f for f, _ in markers] == [ev["frame"]]
    clears = column(data, "world/critic/0", "Clear:is_recursive")
    assert [f for f, _ in clears] == [ev["end_frame"] + 1]
    # an event on the last frame is never cleared
    assert column(data, "world/critic/2", "Clear:is_recursive") == []


def test_truth_report_and_events_located_by_their_particles(tmp_path, predicted, truth):
    truth_report = {"version": 1, "frames": T, "particles": 56, "events": [
        {"category": "floating", "frame": 3, "end_frame": 6, "object": 1, "other": None, "location": None,
         "severity": 0.9, "particles": [27, 53], "message": "Box B hangs in the air."}]}
    data = read_rrd(viz.record(tmp_path / "t.rrd", predicted, REPORT, truth=truth, truth_report=truth_report).path)
    logs = column(data, "critic/truth/events", "TextLog:text")
    assert [f for f, _ in logs] == [3] and "floating" in logs[0][1][0] and "truth" in logs[0][1][0]
    # no location: drawn at the centroid of its particles at its first frame
    centre = dict(column(data, "world/truth/critic/0", "Boxes3D:centers"))[3][0]
    np.testing.assert_allclose(centre, truth.positions[3, [27, 53]].mean(0), atol=1e-6)
    assert [f for f, _ in column(data, "world/truth/critic/0", "Clear:is_recursive")] == [7]
    sev = dict((f, v[0]) for f, v in column(data, "plots/severity/truth/floating", "Scalars:scalars"))
    assert sev[3] == 0.9 and sev[7] == 0.0
    # the rollout's own events are still where they were
    assert [f for f, _ in column(data, "critic/events", "TextLog:text")] == [5, 12, 19]
    with pytest.raises(ValidationError, match="truth_report"):
        viz.record(tmp_path / "u.rrd", predicted, truth_report=truth_report)


def test_report_as_the_critic_writes_it(tmp_path, rollout):
    """Null location entries (non-finite) mean no location; ``skipped`` checks become notices."""
    rep = json.loads(json.dumps(REPORT))
    rep["events"][0]["location"] = [None, None, None]
    rep["skipped"] = ["rigidity: the file has no object_material"]
    summary = viz.record(tmp_path / "c.rrd", rollout, rep)
    data = read_rrd(tmp_path / "c.rrd")
    # event 0 lists particles 9 and 55: drawn at their centroid instead
    centre = dict(column(data, "world/critic/0", "Boxes3D:centers"))[5][0]
    np.testing.assert_allclose(centre, rollout.positions[5, [9, 55]].mean(0), atol=1e-6)
    assert any("rigidity" in n for n in summary.notices)
    assert "rigidity" in column(data, "log/notices", "TextLog:text")[0][1][0]


def test_series_energy_and_severity(full, predicted):
    _, _, data = full
    energy = object_energy(predicted)
    for k in (0, 1):
        series = column(data, f"plots/energy/{k}", "Scalars:scalars")
        assert [f for f, _ in series] == list(range(T))
        np.testing.assert_allclose([v[0] for _, v in series], energy[:, k], rtol=1e-9)
    # box B falls freely: its energy stays m g h (h = height of its particles above the ground)
    m_b = predicted.scene.mass[27:54].sum()
    e0 = float((predicted.scene.mass[27:54] * G * predicted.positions[0, 27:54, 2]).sum())
    e_b = np.array([v[0] for _, v in column(data, "plots/energy/1", "Scalars:scalars")])
    np.testing.assert_allclose(e_b, e0, atol=2e-6 * m_b * G)
    # severity: the event's severity over its frames, 0 elsewhere
    sev = dict((f, v[0]) for f, v in column(data, "plots/severity/penetration", "Scalars:scalars"))
    assert [sev[f] for f in range(T)] == [0.7 if 5 <= f <= 8 else 0.0 for f in range(T)]
    total = [v[0] for _, v in column(data, "plots/energy/total", "Scalars:scalars")]
    np.testing.assert_allclose(total, energy[:, 0] + energy[:, 1], rtol=1e-9)  # the tool is left out
    names = column(data, "plots/energy/1", "SeriesLines:names", static=True)
    assert "boxB" in names[0][1][0]
    # error against the truth: box A is 4 mm off from frame 1 on
    err = dict((f, v[0]) for f, v in column(data, "plots/error/max", "Scalars:scalars"))
    assert err[0] == 0.0 and np.isclose(err[10], 0.004, atol=1e-6)


def test_flow_only_with_truth(full, plain, predicted, truth):
    _, _, data = full
    _, _, bare = plain
    assert not any(p.startswith("world/flow") or p.startswith("world/truth") for p in bare)
    for path, src in (("world/flow/predicted", predicted), ("world/flow/truth", truth)):
        vec = dict(column(data, path, "Arrows3D:vectors"))
        org = dict(column(data, path, "Arrows3D:origins"))
        assert sorted(vec) == list(range(1, T))  # displacement x[t] - x[t-1] from frame 1 on
        np.testing.assert_allclose(np.array(vec[10]), src.positions[10] - src.positions[9], atol=1e-6)
        np.testing.assert_allclose(np.array(org[10]), src.positions[9], atol=1e-7)
    # the tool moves PUSH_SPEED * dt per frame along x in both
    np.testing.assert_allclose(np.array(dict(column(data, "world/flow/truth", "Arrows3D:vectors"))[3])[55],
                               [PUSH_SPEED * DT, 0, 0], atol=1e-6)


def test_blueprint_opens_on_3d_plots_and_log(full):
    from rerun.chunk import RrdReader

    path, _, _ = full
    reader = RrdReader(path)
    assert len(reader.blueprints()) == 1
    kinds, origins, timeline = [], [], None
    for chunk in reader.stream(store=reader.blueprints()[0]):
        rb = chunk.to_record_batch()
        if "ViewBlueprint:class_identifier" in rb.schema.names:
            kinds += rb.column("ViewBlueprint:class_identifier").to_pylist()
            origins += rb.column("ViewBlueprint:space_origin").to_pylist()
        if "TimePanelBlueprint:timeline" in rb.schema.names:
            timeline = rb.column("TimePanelBlueprint:timeline").to_pylist()
    kinds = [k[0] if isinstance(k, list) else k for k in kinds]
    origins = [(o[0] if isinstance(o, list) else o).strip("/") for o in origins]
    assert sorted(kinds) == sorted(["3D", "TimeSeries", "TimeSeries", "TimeSeries", "TextLog"])
    assert "world" in origins and "plots/energy" in origins and "plots/severity" in origins
    assert "frame" in str(timeline)


def test_large_rollouts_are_subsampled_with_a_notice(tmp_path, rollout):
    summary = viz.record(tmp_path / "sub.rrd", rollout, max_points=20)
    assert summary.points_per_frame < 56 and summary.notices and "subsample" in summary.notices[0]
    data = read_rrd(tmp_path / "sub.rrd")
    notes = column(data, "log/notices", "TextLog:text")
    assert notes and "56 particles" in notes[0][1][0]
    b = dict(column(data, "world/objects/1/particles", "Points3D:positions"))
    shown = np.array(b[T - 1])
    assert len(shown) == 27 * 20 // 56  # each object in proportion
    # every shown point is a real particle of box B at that frame
    d = np.linalg.norm(shown[:, None] - rollout.positions[T - 1, 27:54][None], axis=-1)
    assert np.all(d.min(1) < 1e-6)
    assert np.array_equal(subsample_indices(rollout.scene.object_id, 20, seed=3),
                          subsample_indices(rollout.scene.object_id, 20, seed=3))
    assert not np.array_equal(subsample_indices(rollout.scene.object_id, 20, seed=3),
                              subsample_indices(rollout.scene.object_id, 20, seed=4))


def test_non_finite_particles_are_left_out_of_their_frame(tmp_path, rollout):
    pos = rollout.positions.copy()
    pos[10:, 30] = np.nan  # one particle of box B vanishes
    data = read_rrd(viz.record(tmp_path / "nan.rrd", Rollout(rollout.scene, pos, DT)).path)
    b = dict(column(data, "world/objects/1/particles", "Points3D:positions"))
    assert len(b[9]) == 27 and len(b[10]) == 26
    energy = dict(column(data, "plots/energy/1", "Scalars:scalars"))
    assert 9 not in energy or np.isfinite(energy[9][0])
    assert 12 not in energy  # NaN energy frames are not plotted


def test_bad_report_is_named_and_leaves_no_file(tmp_path, rollout):
    bad = json.loads(json.dumps(REPORT))
    bad["events"][1]["frame"] = T
    with pytest.raises(FileFormatError, match=r"events\[1\]\.frame"):
        viz.load_report(bad)
    wrong = dict(REPORT, frames=T + 5)
    with pytest.raises(FileFormatError, match="frames"):
        viz.record(tmp_path / "x.rrd", rollout, wrong)
    assert list(tmp_path.iterdir()) == []  # no recording, no temporary file
    with pytest.raises(FileFormatError, match="version"):
        viz.load_report(dict(REPORT, version=2))
    path = tmp_path / "r.json"
    path.write_text(json.dumps(REPORT))
    assert [e.category for e in viz.load_report(path).events] == ["penetration", "teleport", "jitter"]

    class CriticReport:  # the critic's own report object: anything with to_dict()
        def to_dict(self):
            return REPORT

    assert len(viz.load_report(CriticReport()).events) == 3


def test_null_viewer_is_silent(tmp_path, rollout, truth, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    summary = viz.log_rollout(viz.NullViewer(), make_rollout(0.004), REPORT, truth=truth)
    assert summary.path is None and summary.events == 3
    assert list(tmp_path.iterdir()) == []
    assert capsys.readouterr() == ("", "")
    assert isinstance(viz.NullViewer(), viz.Viewer)


def test_truth_of_another_scene_is_refused(tmp_path, rollout):
    other = Rollout(ParticleScene(np.zeros((3, 3)), np.zeros(3, np.int32), ("rigid",), R), np.zeros((T, 3, 3)), DT)
    with pytest.raises(ValidationError, match="truth"):
        viz.record(tmp_path / "x.rrd", rollout, truth=other)


# --------------------------------------------------------------------------- physics of the plots


def test_energy_of_free_fall_is_conserved_and_rest_is_potential():
    ro = make_rollout()
    e = object_energy(ro)
    scene = ro.scene
    m_b = scene.mass[27:54]
    # free fall: kinetic + potential is constant (second-order differences are exact on a parabola)
    np.testing.assert_allclose(e[:, 1], e[0, 1], rtol=0, atol=2e-6 * m_b.sum() * G)
    # kinetic energy at the last frame is m (g t)^2 / 2: recover it by removing the potential part
    t_last = (T - 1) * DT
    pe_last = float((m_b * G * ro.positions[-1, 27:54, 2].astype(np.float64)).sum())
    np.testing.assert_allclose(e[-1, 1] - pe_last, 0.5 * m_b.sum() * (G * t_last) ** 2, rtol=1e-3)
    # box A at rest before the push: only potential energy above the ground
    m_a = scene.mass[:27].astype(np.float64)
    np.testing.assert_allclose(e[0, 0], (m_a * G * ro.positions[0, :27, 2]).sum(), rtol=1e-6)
    # the ground is the reference: raising the ground by 0.1 m lowers potential energy by m g 0.1
    lifted = Rollout(scene.replace(ground=0.1), ro.positions, DT)
    np.testing.assert_allclose(object_energy(lifted)[:, 1], e[:, 1] - m_b.sum() * G * 0.1, rtol=1e-6)


# --------------------------------------------------------------------------- PNG stills


def _png_pixels(path):
    import matplotlib.image as mpimg

    return mpimg.imread(path)[..., :3]


def test_png_is_a_non_blank_picture_with_glitches_marked(tmp_path, rollout):
    plain = viz.render_png(tmp_path / "plain.png", rollout, frames=[0, 5, 19])
    marked = viz.render_png(tmp_path / "marked.png", rollout, REPORT, frames=[0, 5, 19])
    img, img_marked = _png_pixels(plain), _png_pixels(marked)
    assert img.shape[0] > 200 and img.shape[1] > 600
    assert img.std() > 0.05  # not a blank canvas
    # the penetration marker's colour appears only where the report is drawn
    def has(image, rgb, tol=0.08):
        return bool(np.any(np.all(np.abs(image - np.asarray(rgb) / 255.0) < tol, axis=-1)))

    penetration = viz.category_color("penetration")
    assert not has(img, penetration) and has(img_marked, penetration)
    assert has(img, viz.object_colors(rollout.scene)[1])  # box B is drawn in its colour
    # a ground truth is drawn (black dots) where it differs from the rollout
    with_truth = _png_pixels(viz.render_png(tmp_path / "truth.png", make_rollout(0.02), frames=[0, 5, 19],
                                            truth=rollout))
    alone = _png_pixels(viz.render_png(tmp_path / "alone.png", make_rollout(0.02), frames=[0, 5, 19]))
    dark = lambda image: int(np.count_nonzero(image.max(axis=-1) < 0.25))  # noqa: E731
    assert dark(with_truth) > dark(alone) + 50
    # default panels: first, last, and the first frames of the most severe events
    assert viz.render.default_frames(T, viz.load_report(REPORT)) == [0, 5, 12, 19]
    assert viz.render.default_frames(T) == [0, 6, 13, 19] and viz.render.default_frames(2) == [0, 1]


# --------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def files(tmp_path_factory, rollout, truth):
    d = tmp_path_factory.mktemp("cli")
    save_rollout(d / "pred.npz", make_rollout(0.004))
    save_rollout(d / "truth.npz", truth)
    (d / "report.json").write_text(json.dumps(REPORT))
    return d


def test_cli_writes_recording_and_png(files, capsys):
    from worldline.cli import main

    rc = main(["view", str(files / "pred.npz"), "--report", str(files / "report.json"), "--truth",
               str(files / "truth.npz"), "--out", str(files / "out.rrd"), "--png", str(files / "out.png")])
    assert rc == 0
    data = read_rrd(files / "out.rrd")
    assert "world/flow/truth" in data and len(column(data, "critic/events", "TextLog:text")) == 3
    assert _png_pixels(files / "out.png").std() > 0.05
    assert "3 critic events" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["missing.npz"], "no such file"),
    (["pred.npz", "--report", "pred.npz"], "not valid JSON"),
    (["pred.npz", "--out", "out.txt"], ".rrd"),
    (["pred.npz", "--png", "x.jpg"], ".png"),
    (["pred.npz", "--out", "adir.rrd"], "is a folder"),
    (["pred.npz", "--png", "pred.npz/x.png"], "cannot write"),
    (["bad.rrd"], "not a readable Rerun recording"),
    (["truncated.rrd"], "not a readable Rerun recording"),
    (["ok.rrd", "--png", "x.png"], "already a recording"),
    (["ok.rrd"], "no display"),
    (["pred.npz", "--truth-report", "report.json"], "needs --truth"),
    (["pred.npz", "--out", "spawned.rrd", "--spawn"], "no display"),
])
def test_cli_bad_input_is_one_line_and_exit_2(files, capsys, monkeypatch, args, message):
    from worldline.cli import main

    monkeypatch.chdir(files)
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    (files / "bad.rrd").write_bytes(b"not a recording")
    (files / "adir.rrd").mkdir(exist_ok=True)
    if not (files / "ok.rrd").exists():
        viz.record(files / "ok.rrd", make_rollout(), REPORT)
        (files / "truncated.rrd").write_bytes((files / "ok.rrd").read_bytes()[:3000])
    assert main(["view", *args]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("worldline: error:") and message in err[0], err


def test_cli_opens_a_recording_when_a_display_is_present(files, monkeypatch, capsys):
    from worldline.cli import main
    import viz.viewer

    launched = []
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr(viz.viewer.subprocess, "Popen", lambda cmd, **kw: launched.append(cmd))
    viz.record(files / "open.rrd", make_rollout())
    assert main(["view", str(files / "open.rrd")]) == 0
    assert launched and launched[0][-1] == str(files / "open.rrd") and launched[0][1:3] == ["-m", "rerun"]
    # --spawn writes the recording, then opens that file
    assert main(["view", str(files / "pred.npz"), "--out", str(files / "sp.rrd"), "--spawn"]) == 0
    assert launched[-1][-1] == str(files / "sp.rrd") and (files / "sp.rrd").is_file()


def test_cli_shows_keypoints_and_graph_of_a_lifted_scene(tmp_path):
    """The shipped push_box scene, lifted, with its keypoints and radius graph (``--scene``)."""
    from pathlib import Path

    from particles import save_scene
    from particles.graph import radius_graph
    from particles.keypoints import build_keypoints
    from particles.lift import lift_scene, tool_action
    from particles.scene_file import load_scene_file
    from worldline.cli import main

    root = Path(__file__).resolve().parents[1]
    lifted = lift_scene(load_scene_file(root / "assets/scenes/push_box.toml"))
    scene, frames = lifted.scene, 6
    action = tool_action(lifted, 0.05, frames - 1)
    pos = np.repeat(scene.positions[None], frames, 0)
    pos[:, action.indices] = action.positions
    save_rollout(tmp_path / "push.npz", Rollout(scene, pos, 0.05))
    kp = build_keypoints(scene)
    edges = radius_graph(scene.positions, 2.5 * scene.radius)
    save_scene(tmp_path / "lifted.npz", scene, kp, edges)
    assert main(["view", str(tmp_path / "push.npz"), "--scene", str(tmp_path / "lifted.npz"),
                 "--out", str(tmp_path / "push.rrd")]) == 0
    data = read_rrd(tmp_path / "push.rrd")
    kps = dict(column(data, "world/keypoints", "Points3D:positions"))
    assert sorted(kps) == list(range(frames)) and len(kps[0]) == kp.num_keypoints
    segs = dict(column(data, "world/graph", "LineStrips3D:strips"))
    assert len(segs[0]) == len(edges) // 2  # radius_graph lists both directions
    # the tool is where the action puts it; the static table is logged once
    np.testing.assert_allclose(np.array(dict(column(data, "world/tool", "Points3D:positions"))[frames - 1]),
                               action.positions[-1][np.argsort(action.indices)], atol=1e-6)
    table = scene.object_name.index("table")
    assert len(column(data, f"world/objects/{table}/particles", "Points3D:positions", static=True)) == 1


def test_energy_frame_by_frame_matches_second_order_differences(rollout):
    """object_energy streams frames; it must equal the whole-array computation with np.gradient."""
    from viz.quantities import frame_velocities

    pos = rollout.positions.astype(np.float64)
    pos[:, :27] += np.random.default_rng(0).normal(0, 1e-3, pos[:, :27].shape)  # not a polynomial path
    ro = Rollout(rollout.scene, pos.astype(np.float32), DT)
    p = ro.positions.astype(np.float64)
    v = frame_velocities(p, DT)
    m = ro.scene.mass.astype(np.float64)
    per = m * (0.5 * (v * v).sum(-1) - p @ ro.scene.gravity.astype(np.float64))
    expect = np.stack([per[:, ro.scene.object_id == k].sum(1) for k in range(3)], 1)
    np.testing.assert_allclose(object_energy(ro), expect, rtol=1e-12, atol=1e-12)
