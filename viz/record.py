"""Show a rollout (and its critic report, ground truth, keypoints, graph) through a :class:`Viewer`.

Entity paths mirror the scene::

    world                          z-up world; world/ground: the ground plane (static)
    world/objects/<k>/particles    particles of object k, coloured by material and object, radius r
    world/objects/<k>              static facts: name, material, particle count, mass
    world/tool                     the tool's (kinematic, moving) particles
    world/truth/particles          ground-truth positions (with a truth rollout)
    world/keypoints                keypoints, following the particle each was picked at
    world/keypoints/edges          keypoint graph edges
    world/graph                    particle neighbour graph edges (line segments)
    world/flow/predicted           per-frame displacement x[t] - x[t-1] of the rollout (arrows)
    world/flow/truth               the same for the ground truth
    world/critic/<i>               event i of the report: labelled box + marker, for its frames
    critic/events                  the events as a text log at their first frame
    world/truth/critic/<i>, critic/truth/events, plots/severity/truth/<category>
                                   the same for the truth's own report (``truth_report``)
    log/notices                    what was left out (subsampling, trimmed frames, checks the critic skipped)
    plots/energy/<k>               kinetic + potential energy of object k, J (and plots/energy/total)
    plots/severity/<category>      largest severity of the active events of a category, 0..1
    plots/error/mean, plots/error/max   distance to the ground truth, m

Timelines: ``frame`` (sequence) and ``time`` (duration, s). What never changes is logged once as static.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from particles import KeypointGraph, Rollout, ValidationError, FileFormatError

from .quantities import object_energy, subsample_indices
from .report import ViewReport, load_report
from .style import TRUTH_RGB, category_color, object_colors, tool_objects
from .viewer import RerunViewer, Viewer

__all__ = ["ViewConfig", "RecordSummary", "log_rollout", "record", "make_blueprint", "event_location"]

ReportLike = Union[Mapping, str, Path, ViewReport, None]


@dataclass(frozen=True)
class ViewConfig:
    """How much a recording shows. Defaults keep a viewer responsive on a laptop."""

    max_points: int = 1_000_000
    """Most particles shown per frame; larger rollouts are subsampled per object (seeded), with a notice."""
    max_arrows: int = 10_000
    """Most flow arrows per frame and per flow entity (seeded subset of the shown particles)."""
    max_edges: int = 20_000
    """Most graph edges drawn per frame (seeded subset)."""
    flow_scale: float = 1.0
    """Arrow length per metre of displacement (1: true per-frame displacement)."""
    seed: int = 0
    """Seed of every subsample."""

    def __post_init__(self):
        for name in ("max_points", "max_arrows", "max_edges"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValidationError(name, f"must be a positive integer, got {v!r}")
        if not np.isfinite(self.flow_scale) or self.flow_scale <= 0:
            raise ValidationError("flow_scale", f"must be positive, got {self.flow_scale!r}")


@dataclass
class RecordSummary:
    """What :func:`log_rollout` / :func:`record` showed."""

    path: Optional[Path]
    """The ``.rrd`` written (None for other viewers)."""
    frames: int
    """Frames on the ``frame`` timeline."""
    particles: int
    """Particles in the rollout."""
    points_per_frame: int
    """Particles shown per frame (< particles when subsampled)."""
    events: int
    """Critic events of the rollout shown."""
    truth_events: int = 0
    """Critic events of the truth shown."""
    notices: list[str] = field(default_factory=list)
    """What was left out and why (also logged to ``log/notices``)."""


def make_blueprint(fps: Optional[float] = None, with_error: bool = False):
    """The layout a recording opens on: the 3D world left; energy, severity (and error) plots and
    the critic's event log right; the time panel on the ``frame`` timeline at ``fps`` frames/s."""
    import rerun.blueprint as rrb

    right = [
        rrb.TimeSeriesView(origin="plots/energy", name="Energy per object (J)"),
        rrb.TimeSeriesView(origin="plots/severity", name="Critic severity (0..1)"),
    ]
    if with_error:
        right.append(rrb.TimeSeriesView(origin="plots/error", name="Distance to ground truth (m)"))
    right.append(rrb.TextLogView(origin="/", contents=["/critic/**", "/log/**"], name="Critic events"))
    return rrb.Blueprint(
        rrb.Horizontal(
            rrb.Spatial3DView(origin="world", name="World"),
            rrb.Vertical(*right),
            column_shares=[3, 2],
        ),
        rrb.BlueprintPanel(state="collapsed"),
        rrb.SelectionPanel(state="collapsed"),
        rrb.TimePanel(timeline="frame", fps=fps, state="expanded"),
    )


# --------------------------------------------------------------------------- input checks


def _check_truth(rollout: Rollout, truth: Rollout, notices: list[str]) -> int:
    if truth.scene.num_particles != rollout.scene.num_particles:
        raise ValidationError("truth", f"has {truth.scene.num_particles} particles, the rollout "
                                       f"{rollout.scene.num_particles}; they must be the same scene")
    t = min(truth.num_frames, rollout.num_frames)
    if truth.num_frames != rollout.num_frames:
        notices.append(f"truth has {truth.num_frames} frames and the rollout {rollout.num_frames}: "
                       f"flow and error compare the first {t}")
    if not np.isclose(truth.dt, rollout.dt, rtol=1e-6):
        notices.append(f"truth dt {truth.dt:g} s differs from the rollout's {rollout.dt:g} s; frames are compared by index")
    return t


def _check_report(rep: ViewReport, rollout: Rollout) -> None:
    if rep.frames != rollout.num_frames:
        raise FileFormatError(rep.source, "frames", f"the report audited {rep.frames} frames but the rollout has "
                                                    f"{rollout.num_frames}; is it the report of this rollout?")
    if rep.particles != rollout.scene.num_particles:
        raise FileFormatError(rep.source, "particles", f"the report audited {rep.particles} particles but the rollout "
                                                       f"has {rollout.scene.num_particles}; is it the report of this rollout?")


def _keypoint_track(keypoints, rollout: Rollout):
    """(T, P, 3) keypoint positions and (E, 2) keypoint edges (or None)."""
    t, n = rollout.num_frames, rollout.scene.num_particles
    if isinstance(keypoints, KeypointGraph):
        if keypoints.num_keypoints and keypoints.particle_index.max() >= n:
            raise ValidationError("keypoints.particle_index", f"particle ids must lie in [0, {n})")
        return rollout.positions[:, keypoints.particle_index], _undirected(keypoints.edges)
    kp = np.asarray(keypoints, np.float32)
    if kp.ndim == 2 and kp.shape[1] == 3:
        return np.broadcast_to(kp, (t,) + kp.shape), None
    if kp.ndim == 3 and kp.shape[0] == t and kp.shape[2] == 3:
        return kp, None
    raise ValidationError("keypoints", f"expected a KeypointGraph, (P, 3) or (T={t}, P, 3) positions, got {kp.shape}")


def _undirected(e: np.ndarray) -> np.ndarray:
    """(E', 2) int64: each undirected pair once (i < j), self-loops dropped: a directed graph
    lists i->j and j->i, which would draw every segment twice."""
    e = np.sort(np.asarray(e, np.int64).reshape(-1, 2), axis=1)
    e = e[e[:, 0] != e[:, 1]]
    return np.unique(e, axis=0) if len(e) else e


def _check_edges(edges, n: int) -> np.ndarray:
    e = np.asarray(edges)
    if e.ndim != 2 or e.shape[1] != 2 or (e.size and not np.issubdtype(e.dtype, np.integer)):
        raise ValidationError("edges", f"expected (E, 2) integer particle ids, got {e.shape} {e.dtype}")
    if e.size and (e.min() < 0 or e.max() >= n):
        raise ValidationError("edges", f"particle ids must lie in [0, {n})")
    return _undirected(e)


def _seeded_subset(count: int, limit: int, seed: int, salt: int) -> np.ndarray:
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng([seed, salt]).choice(count, size=limit, replace=False))


def _never_moves(pos: np.ndarray, ids: np.ndarray) -> bool:
    """Whether particles ``ids`` keep their (finite) frame-0 positions in every frame; stops at the first change."""
    first = pos[0, ids]
    if not np.all(np.isfinite(first)):
        return False
    return all(np.array_equal(pos[t, ids], first) for t in range(1, pos.shape[0]))


def _finite_rows(x: np.ndarray) -> np.ndarray:
    return np.all(np.isfinite(x), axis=-1)


# --------------------------------------------------------------------------- the recording


def _event_text(ev, names) -> str:
    def obj(k):
        return f"{k} ({names[k]})" if k is not None and 0 <= k < len(names) else str(k)

    who = "" if ev.object is None else f" object {obj(ev.object)}"
    if ev.other is not None:
        who += f" vs {obj(ev.other)}"
    span = f"frame {ev.frame}" if ev.end_frame == ev.frame else f"frames {ev.frame}-{ev.end_frame}"
    return f"{ev.category} at {span}{who}, severity {ev.severity:.2f}: {ev.message}"


def event_location(ev, rollout: Rollout) -> Optional[np.ndarray]:
    """(3,) float64 m where an event is drawn: its reported location, else the centroid of its
    finite particles at its first frame, else None (the event is then only in the text log)."""
    if ev.location is not None:
        return ev.location
    if ev.particles:
        p = rollout.positions[ev.frame, list(ev.particles)].astype(np.float64)
        p = p[_finite_rows(p)]
        if len(p):
            return p.mean(0)
    return None


def _event_box(ev, centre: np.ndarray, rollout: Rollout) -> np.ndarray:
    """Half size (m) of the box marking an event around ``centre``: big enough to hold its particles
    at its first frame (padded by a particle radius), at least 2 radii."""
    r = rollout.scene.radius
    half = np.full(3, 2.0 * r)
    if ev.particles:
        p = rollout.positions[ev.frame, list(ev.particles)].astype(np.float64)
        p = p[_finite_rows(p)]
        if len(p):
            half = np.maximum(half, np.max(np.abs(p - centre), axis=0) + r)
    return half


class _EventTrack:
    """The events of one report: text at their first frame, a box + marker for their frames, severity series."""

    def __init__(self, rep: ViewReport, rollout: Rollout, text_path: str, marker_prefix: str, series_prefix: str,
                 label: str = ""):
        self.rep, self.rollout, self.label = rep, rollout, label
        self.text_path, self.marker_prefix, self.series_prefix = text_path, marker_prefix, series_prefix
        t_all = rollout.num_frames
        self.starts: dict[int, list] = {}
        self.ends: dict[int, list] = {}
        self.where = {}
        for ev in rep.events:
            self.starts.setdefault(ev.frame, []).append(ev)
            loc = event_location(ev, rollout)
            if loc is not None:
                self.where[ev.index] = loc
                if ev.end_frame + 1 < t_all:
                    self.ends.setdefault(ev.end_frame + 1, []).append(ev)

    def log_frame(self, viewer: Viewer, t: int) -> None:
        for ev in self.ends.get(t, ()):
            viewer.clear(f"{self.marker_prefix}/{ev.index}")
        for ev in self.starts.get(t, ()):
            viewer.log_text(self.text_path, self.label + _event_text(ev, self.rollout.scene.object_name),
                            level="ERROR" if ev.severity >= 0.5 else "WARN")
            centre = self.where.get(ev.index)
            if centre is not None:
                c = category_color(ev.category)
                path = f"{self.marker_prefix}/{ev.index}"
                viewer.log_boxes(path, [centre], [_event_box(ev, centre, self.rollout)], colors=[c],
                                 labels=[f"{self.label}{ev.category} {ev.severity:.2f}"])
                viewer.log_points(path, [centre], radii=1.5 * self.rollout.scene.radius, colors=[c])

    def log_series(self, viewer: Viewer, frames: np.ndarray, times: np.ndarray) -> None:
        n = len(frames)
        for cat, series in self.rep.severity_series(n).items():
            viewer.log_series(f"{self.series_prefix}/{cat}", frames, times, series, name=self.label + cat,
                              color=category_color(cat))


def log_rollout(viewer: Viewer, rollout: Rollout, report: ReportLike = None, truth: Optional[Rollout] = None,
                keypoints=None, edges=None, config: ViewConfig = ViewConfig(), progress: bool = False,
                truth_report: ReportLike = None) -> RecordSummary:
    """Send a rollout and what goes with it to ``viewer`` (see the module docstring for entity paths).

    ``rollout``: positions (T, N, 3) m. ``report``: a critic report (dict, JSON path or
    :class:`~viz.report.ViewReport`) of this rollout. ``truth``: the ground-truth rollout of the
    same scene (adds truth particles, predicted and true flow, and the error plot).
    ``keypoints``: a :class:`particles.KeypointGraph` (keypoints follow their particle) or keypoint
    positions (P, 3) / (T, P, 3) m. ``edges``: (E, 2) int particle neighbour graph.
    ``truth_report``: the critic report of ``truth`` (its events go to ``critic/truth/events``,
    ``world/truth/critic/<i>`` and ``plots/severity/truth/<category>``).
    An event without a location is drawn at the centroid of its particles (if it lists any).
    Non-finite positions are left out of the frame they occur in. ``progress`` shows a tqdm bar over frames.
    """
    scene = rollout.scene
    t_all, n = rollout.num_frames, scene.num_particles
    notices: list[str] = []
    rep = load_report(report) if report is not None else None
    if rep is not None:
        _check_report(rep, rollout)
    truth_rep = load_report(truth_report) if truth_report is not None else None
    if truth_rep is not None:
        if truth is None:
            raise ValidationError("truth_report", "given without the truth rollout it audits")
        _check_report(truth_rep, truth)
    t_truth = _check_truth(rollout, truth, notices) if truth is not None else 0
    kp_track, kp_edges = _keypoint_track(keypoints, rollout) if keypoints is not None else (None, None)
    graph = _check_edges(edges, n) if edges is not None else None

    shown = subsample_indices(scene.object_id, config.max_points, config.seed)
    if shown.size < n:
        notices.append(f"{n} particles per frame is more than the viewer's {config.max_points}: showing "
                       f"{shown.size} (seeded subsample, each object in proportion, seed {config.seed})")
    if graph is not None and len(graph) > config.max_edges:
        notices.append(f"drawing {config.max_edges} of the graph's {len(graph)} undirected edges (seeded subsample)")
        graph = graph[_seeded_subset(len(graph), config.max_edges, config.seed, 1)]
    arrows = shown[_seeded_subset(shown.size, config.max_arrows, config.seed, 2)] if truth is not None else None
    if arrows is not None and arrows.size < shown.size:
        notices.append(f"drawing flow arrows for {arrows.size} of {shown.size} particles (seeded subsample)")

    pos = rollout.positions
    times = rollout.times
    r = scene.radius
    colors = object_colors(scene)
    is_tool = tool_objects(scene)
    shown_mask = np.zeros(n, bool)
    shown_mask[shown] = True

    # ---- static: what never changes
    if scene.ground is not None:
        finite = pos[0][_finite_rows(pos[0])]
        lo, hi = (finite.min(0), finite.max(0)) if len(finite) else (np.full(3, -1.0), np.full(3, 1.0))
        centre, half = (lo + hi) / 2, np.maximum((hi - lo) / 2 * 1.5, 10 * r)
        viewer.log_boxes("world/ground", [[centre[0], centre[1], scene.ground]], [[half[0], half[1], 0.0]],
                         colors=[(120, 120, 120)], static=True)
    moving: list[tuple[str, np.ndarray]] = []  # (entity path, particle ids) logged per frame
    tool_ids = np.flatnonzero(shown_mask & is_tool[scene.object_id])
    for k in range(scene.num_objects):
        if is_tool[k]:
            continue
        ids = np.flatnonzero(shown_mask & (scene.object_id == k))
        path = f"world/objects/{k}/particles"
        viewer.log_info(f"world/objects/{k}", name=scene.object_name[k], material=scene.object_material[k],
                        particles=int(np.count_nonzero(scene.object_id == k)),
                        mass_kg=float(scene.mass[scene.object_id == k].sum()))
        viewer.log_points(path, None, radii=r, colors=colors[k], static=True)
        if _never_moves(pos, ids):
            viewer.log_points(path, pos[0, ids], static=True)  # logged once
        else:
            moving.append((path, ids))
    if tool_ids.size:
        viewer.log_points("world/tool", None, radii=r, colors=colors[scene.object_id[tool_ids[0]]], static=True)
        moving.append(("world/tool", tool_ids))
    if truth is not None:
        viewer.log_points("world/truth/particles", None, radii=0.5 * r, colors=TRUTH_RGB, static=True)
    if kp_track is not None:
        viewer.log_points("world/keypoints", None, radii=1.5 * r, colors=(255, 255, 0), static=True)
    for label, rp in (("", rep), ("truth ", truth_rep)):
        if rp is not None:
            notices += [f"{label}critic skipped {s}" for s in rp.skipped]
    for text in notices:
        viewer.begin_frame(0, float(times[0]))
        viewer.log_text("log/notices", text, level="WARN")

    tracks = []
    if rep is not None:
        tracks.append(_EventTrack(rep, rollout, "critic/events", "world/critic", "plots/severity"))
    if truth_rep is not None:
        tracks.append(_EventTrack(truth_rep, truth, "critic/truth/events", "world/truth/critic",
                                  "plots/severity/truth", label="truth: "))

    # ---- per frame
    from tqdm import tqdm

    for t in tqdm(range(t_all), desc="recording", unit="frame", disable=None if progress else True, leave=False):
        viewer.begin_frame(t, float(times[t]))
        for path, ids in moving:
            p = pos[t, ids]
            viewer.log_points(path, p[_finite_rows(p)])
        if truth is not None and t < t_truth:
            p = truth.positions[t, shown]
            viewer.log_points("world/truth/particles", p[_finite_rows(p)])
            if t >= 1:
                for path, src in (("world/flow/predicted", pos), ("world/flow/truth", truth.positions)):
                    o, d = src[t - 1, arrows], src[t, arrows] - src[t - 1, arrows]
                    ok = _finite_rows(o) & _finite_rows(d)
                    viewer.log_arrows(path, o[ok], d[ok] * config.flow_scale, radius=0.25 * r,
                                      colors=(255, 140, 0) if path.endswith("predicted") else (0, 200, 255))
        if kp_track is not None:
            k = kp_track[t]
            viewer.log_points("world/keypoints", k[_finite_rows(k)])
            if kp_edges is not None and len(kp_edges):
                a, b = k[kp_edges[:, 0]], k[kp_edges[:, 1]]
                ok = _finite_rows(a) & _finite_rows(b)
                viewer.log_segments("world/keypoints/edges", a[ok], b[ok], radius=0.4 * r, colors=(255, 255, 0))
        if graph is not None and len(graph):
            a, b = pos[t, graph[:, 0]], pos[t, graph[:, 1]]
            ok = _finite_rows(a) & _finite_rows(b)
            viewer.log_segments("world/graph", a[ok], b[ok], radius=0.15 * r, colors=(200, 200, 200))
        for track in tracks:
            if t < track.rollout.num_frames:
                track.log_frame(viewer, t)

    # ---- long series, one call each
    frames = np.arange(t_all)
    energy = object_energy(rollout)
    free = [k for k in range(scene.num_objects) if not is_tool[k] and scene.object_material[k] != "static"]
    for k in free:  # the tool and static objects move as prescribed: their energy says nothing of the physics
        viewer.log_series(f"plots/energy/{k}", frames, times, energy[:, k],
                          name=f"{k} {scene.object_name[k]} ({scene.object_material[k]})", color=colors[k])
    if len(free) > 1:
        viewer.log_series("plots/energy/total", frames, times, energy[:, free].sum(axis=1), name="total",
                          color=(255, 255, 255))
    for track in tracks:
        tt = track.rollout.num_frames
        track.log_series(viewer, frames[:tt], track.rollout.times[:tt])
    if truth is not None and t_truth:
        dist = np.linalg.norm(pos[:t_truth].astype(np.float64) - truth.positions[:t_truth], axis=-1)
        dist = np.where(np.isfinite(dist), dist, np.nan)
        with np.errstate(all="ignore"):
            has = np.any(np.isfinite(dist), axis=1)
            mean = np.where(has, np.nanmean(np.where(has[:, None], dist, 0.0), axis=1), np.nan)
            mx = np.where(has, np.nanmax(np.where(has[:, None], dist, 0.0), axis=1), np.nan)
        viewer.log_series("plots/error/mean", frames[:t_truth], times[:t_truth], mean, name="mean", color=(255, 140, 0))
        viewer.log_series("plots/error/max", frames[:t_truth], times[:t_truth], mx, name="max", color=(255, 40, 40))

    return RecordSummary(path=getattr(viewer, "path", None), frames=t_all, particles=n, points_per_frame=int(shown.size),
                         events=len(rep.events) if rep is not None else 0,
                         truth_events=len(truth_rep.events) if truth_rep is not None else 0, notices=notices)


def record(out_rrd, rollout: Rollout, report: ReportLike = None, truth: Optional[Rollout] = None, keypoints=None,
           edges=None, *, max_points: Optional[int] = None, config: ViewConfig = ViewConfig(),
           name: Optional[str] = None, progress: bool = False, truth_report: ReportLike = None) -> RecordSummary:
    """Write one Rerun recording ``out_rrd`` (``.rrd``) of a rollout; see :func:`log_rollout` for the
    arguments. ``max_points`` overrides ``config.max_points``. The file opens on :func:`make_blueprint`'s
    layout. Written atomically (nothing is left at ``out_rrd`` on error). Returns what was shown."""
    if max_points is not None:
        config = ViewConfig(max_points=max_points, max_arrows=config.max_arrows, max_edges=config.max_edges,
                            flow_scale=config.flow_scale, seed=config.seed)
    bp = make_blueprint(fps=1.0 / rollout.dt, with_error=truth is not None)
    with RerunViewer(out_rrd, blueprint=bp, recording_name=name or Path(out_rrd).stem) as viewer:
        summary = log_rollout(viewer, rollout, report, truth, keypoints, edges, config, progress, truth_report)
    summary.path = Path(out_rrd)
    return summary

