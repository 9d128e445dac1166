"""viz: see worldline's scenes, rollouts, flows and critic events in Rerun (and as PNG stills).

The only package that imports ``rerun``. Code that shows things talks to a :class:`Viewer`
(:class:`RerunViewer` writes one ``.rrd``; :class:`NullViewer` is silent).

    from viz import record, render_png
    summary = record("run.rrd", rollout, report="report.json", truth=truth_rollout)
    render_png("run.png", rollout, report="report.json")
"""

from .quantities import frame_velocities, object_energy, subsample_indices
from .record import RecordSummary, ViewConfig, log_rollout, make_blueprint, record
from .render import render_png
from .report import CATEGORIES, ReportEvent, ViewReport, load_report
from .style import category_color, object_colors, tool_objects
from .viewer import NullViewer, RerunViewer, Viewer, check_rrd, has_display, open_in_viewer

__all__ = [
    "Viewer", "NullViewer", "RerunViewer", "record", "log_rollout", "make_blueprint", "ViewConfig", "RecordSummary",
    "render_png", "load_report", "ViewReport", "ReportEvent", "CATEGORIES",
    "object_energy", "frame_velocities", "subsample_indices", "object_colors", "category_color", "tool_objects",
    "check_rrd", "has_display", "open_in_viewer",
]
