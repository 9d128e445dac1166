"""PNG stills of a rollout for people without the viewer: headless matplotlib (Agg), works on CI."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from particles import Rollout
from particles.io import atomic_write

from .record import event_location
from .report import ViewReport, load_report
from .style import category_color, object_colors, tool_objects

__all__ = ["render_png", "default_frames"]

#: Panels drawn when no frames are given.
DEFAULT_PANELS = 4
#: Most particles drawn per panel (seeded subsample per object beyond that): keeps CI fast.
MAX_PNG_POINTS = 20_000
#: Each axis shows at least this share of the longest one (equal aspect kept by widening limits).
MIN_AXIS_SHARE = 0.4


def default_frames(num_frames: int, report: Optional[ViewReport] = None, panels: int = DEFAULT_PANELS) -> list[int]:
    """Frames to draw: the first and the last, the first frames of the most severe critic events
    (most severe first), then evenly spaced frames to fill ``panels``. Sorted, unique."""
    chosen = {0, num_frames - 1}
    if report is not None:
        for ev in sorted(report.events, key=lambda e: (-e.severity, e.frame)):
            if len(chosen) >= panels:
                break
            chosen.add(ev.frame)
    for x in np.linspace(0, num_frames - 1, panels):
        if len(chosen) >= min(panels, num_frames):
            break
        f = int(round(x))
        if f not in chosen and all(abs(f - c) > (num_frames - 1) / (2 * panels) for c in chosen):
            chosen.add(f)
    for f in range(num_frames):  # short rollouts: fill with what is left
        if len(chosen) >= min(panels, num_frames):
            break
        chosen.add(f)
    return sorted(chosen)


def render_png(path, rollout: Rollout, report=None, frames: Optional[Sequence[int]] = None, *,
               truth: Optional[Rollout] = None, dpi: int = 100, max_points: int = MAX_PNG_POINTS,
               seed: int = 0) -> Path:
    """Draw a few frames of ``rollout`` side by side as a PNG at ``path`` (written atomically).

    Each panel is a 3D scatter of the particles (coloured by material and object, as in Rerun;
    the tool in red) at one frame; critic events active at that frame are marked at their
    location (or their particles' centroid) with a large cross in their category's colour, labelled
    with the category; events with neither are named after the panel title.
    ``report``: critic report (dict, JSON path or ViewReport). ``frames``: frame indices
    (default :func:`default_frames`). ``truth``: ground-truth rollout of the same scene, drawn as
    small black dots under the particles so a prediction's drift shows. Returns the path.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from .quantities import subsample_indices

    scene = rollout.scene
    rep = load_report(report) if report is not None else None
    if truth is not None and truth.scene.num_particles != scene.num_particles:
        raise ValueError(f"truth: has {truth.scene.num_particles} particles, the rollout {scene.num_particles}")
    t_all = rollout.num_frames
    frames = default_frames(t_all, rep) if frames is None else [int(f) for f in frames]
    if not frames:
        raise ValueError("frames: need at least one frame to draw")
    for f in frames:
        if not 0 <= f < t_all:
            raise ValueError(f"frames: frame {f} is outside [0, {t_all})")
    shown = subsample_indices(scene.object_id, max_points, seed)
    colors = object_colors(scene).astype(np.float64) / 255.0
    tools = tool_objects(scene)
    static_object = np.array([m == "static" for m in scene.object_material], bool)

    sel = rollout.positions[frames][:, shown].reshape(-1, 3)
    sel = sel[np.all(np.isfinite(sel), axis=1)]
    if rep is not None:
        locs = [event_location(e, rollout) for e in rep.events if any(e.active(f) for f in frames)]
        locs = [loc for loc in locs if loc is not None]
        if locs:
            sel = np.concatenate([sel, np.asarray(locs, np.float32)])
    lo, hi = (sel.min(0), sel.max(0)) if len(sel) else (np.full(3, -1.0), np.full(3, 1.0))
    centre, span = (lo + hi) / 2, np.maximum(hi - lo, 4 * scene.radius) / 2 * 1.05
    span = np.maximum(span, MIN_AXIS_SHARE * span.max())  # equal aspect, but no axis squashed flat

    fig = Figure(figsize=(4.2 * len(frames), 5.0), dpi=dpi)
    FigureCanvasAgg(fig)
    title = f"{scene.num_particles} particles, {scene.num_objects} objects, {t_all} frames at dt={rollout.dt:.4g} s"
    if rep is not None:
        title += f", {len(rep.events)} critic event{'s' if len(rep.events) != 1 else ''}"
    fig.suptitle(title, fontsize=10)
    size = 4.0 if shown.size > 2000 else 12.0
    for j, f in enumerate(frames):
        ax = fig.add_subplot(1, len(frames), j + 1, projection="3d")
        for k in range(scene.num_objects):
            ids = shown[scene.object_id[shown] == k]
            p = rollout.positions[f, ids]
            p = p[np.all(np.isfinite(p), axis=1)]
            if len(p):
                kind = "tool" if tools[k] else scene.object_material[k]
                label = scene.object_name[k] if scene.object_name[k] == kind else f"{scene.object_name[k]} ({kind})"
                static = scene.object_material[k] == "static"  # context (tables, walls): drawn faint
                ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=size * (0.4 if static else 1.0), color=colors[k],
                           alpha=0.25 if static else 1.0, depthshade=False, label=label if j == 0 else None)
        if truth is not None and f < truth.num_frames:
            moving = shown[~static_object[scene.object_id[shown]]]  # static context does not drift
            p = truth.positions[f, moving]
            p = p[np.all(np.isfinite(p), axis=1)]
            ax.scatter(p[:, 0], p[:, 1], p[:, 2], s=max(1.0, size / 4), color="black", alpha=0.6,
                       depthshade=False, label="ground truth" if j == 0 else None)
        missing = []
        if rep is not None:
            for ev in rep.events:
                if not ev.active(f):
                    continue
                c = np.asarray(category_color(ev.category), np.float64) / 255.0
                loc = event_location(ev, rollout)
                if loc is None:
                    missing.append(ev.category)
                    continue
                x, y, z = loc
                ax.scatter([x], [y], [z], s=260, marker="X", color=c, edgecolors="black", linewidths=1.2,
                           depthshade=False, zorder=10)
                dark = 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] < 0.5
                ax.text(x, y, z + 0.15 * span[2], ev.category, color="white" if dark else "black", fontsize=8,
                        fontweight="bold",
                        bbox=dict(facecolor=c, alpha=0.8, edgecolor="none", pad=1.5))
        ax.set_title(f"frame {f}  (t = {f * rollout.dt:.3f} s)" + (f" - {', '.join(missing)}" if missing else ""),
                     fontsize=9)
        ax.set_xlim(centre[0] - span[0], centre[0] + span[0])
        ax.set_ylim(centre[1] - span[1], centre[1] + span[1])
        ax.set_zlim(centre[2] - span[2], centre[2] + span[2])
        ax.set_box_aspect(tuple(span / span.max()))
        ax.set_xlabel("x (m)", fontsize=7)
        ax.set_ylabel("y (m)", fontsize=7)
        ax.set_zlabel("z (m)", fontsize=7)
        ax.tick_params(labelsize=6)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.set_major_locator(MaxNLocator(4))
        ax.view_init(elev=22, azim=-60)
    if scene.num_objects <= 12:
        fig.legend(loc="upper center", ncol=min(scene.num_objects + (truth is not None), 7), fontsize=8,
                   frameon=False, markerscale=2, bbox_to_anchor=(0.5, 0.945))
    fig.subplots_adjust(left=0.0, right=1.0, bottom=0.08, top=0.85, wspace=0.05)
    return atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=dpi))
