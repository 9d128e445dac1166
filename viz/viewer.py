"""Viewers behind one small interface (as Newton's ``ViewerRerun`` / null viewer).

Code that shows things hands arrays to a :class:`Viewer`; only :class:`RerunViewer` touches
``rerun``. :class:`NullViewer` accepts every call and does nothing (tests, headless runs).

Call order: :meth:`Viewer.begin_frame` sets the current frame (and time); ``log_*`` calls with
``static=False`` are stamped with it, ``static=True`` ones hold for the whole recording. Long
scalar series go in one call with :meth:`Viewer.log_series`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import warnings
from pathlib import Path
from typing import Optional, Protocol, Sequence, runtime_checkable

import numpy as np

__all__ = ["Viewer", "NullViewer", "RerunViewer", "has_display", "open_in_viewer", "check_rrd"]

#: Colours: (3,) or (n, 3) uint8 RGB, or None to keep what was logged before.
Colors = Optional[np.ndarray]


@runtime_checkable
class Viewer(Protocol):
    """What worldline shows things with. Paths are entity paths like ``world/objects/3/particles``."""

    def begin_frame(self, frame: int, time_s: float) -> None:
        """Make ``frame`` (index) at ``time_s`` (s) the current time for the next temporal ``log_*`` calls."""

    def log_points(self, path: str, positions: Optional[np.ndarray], *, radii=None, colors: Colors = None,
                   labels: Optional[Sequence[str]] = None, static: bool = False) -> None:
        """Points ``(n, 3)`` m (None: style only), radii m (scalar or (n,)), colours, labels."""

    def log_segments(self, path: str, starts: np.ndarray, ends: np.ndarray, *, radius: Optional[float] = None,
                     colors: Colors = None, static: bool = False) -> None:
        """Line segments from ``starts (E, 3)`` to ``ends (E, 3)`` m, drawn ``radius`` m thick."""

    def log_arrows(self, path: str, origins: np.ndarray, vectors: np.ndarray, *, radius: Optional[float] = None,
                   colors: Colors = None, static: bool = False) -> None:
        """Arrows from ``origins (n, 3)`` m along ``vectors (n, 3)`` m."""

    def log_boxes(self, path: str, centers: np.ndarray, half_sizes: np.ndarray, *, colors: Colors = None,
                  labels: Optional[Sequence[str]] = None, static: bool = False) -> None:
        """Axis-aligned boxes ``centers (n, 3)``, ``half_sizes (n, 3)`` m, with labels."""

    def log_text(self, path: str, text: str, *, level: str = "INFO") -> None:
        """A text log entry at the current frame (level: TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL)."""

    def log_info(self, path: str, **values) -> None:
        """Static key/value facts about an entity (names, materials, counts)."""

    def clear(self, path: str) -> None:
        """Remove ``path`` and its children from the current frame on."""

    def log_series(self, path: str, frames: np.ndarray, times_s: np.ndarray, values: np.ndarray, *,
                   name: Optional[str] = None, color=None) -> None:
        """A scalar time series: ``values (T,)`` at ``frames (T,)`` int / ``times_s (T,)`` s, in one call."""

    def close(self) -> None:
        """Finish: flush and release files."""


class NullViewer:
    """A :class:`Viewer` that accepts everything and shows nothing (tests, headless runs)."""

    def begin_frame(self, frame, time_s):
        pass

    def log_points(self, path, positions, **kwargs):
        pass

    def log_segments(self, path, starts, ends, **kwargs):
        pass

    def log_arrows(self, path, origins, vectors, **kwargs):
        pass

    def log_boxes(self, path, centers, half_sizes, **kwargs):
        pass

    def log_text(self, path, text, **kwargs):
        pass

    def log_info(self, path, **values):
        pass

    def clear(self, path):
        pass

    def log_series(self, path, frames, times_s, values, **kwargs):
        pass

    def close(self):
        pass


#: Timeline names every recording uses.
FRAME_TIMELINE = "frame"
TIME_TIMELINE = "time"


class RerunViewer:
    """A :class:`Viewer` writing one Rerun ``.rrd`` file.

    Uses its own ``rr.RecordingStream`` (no global recording state) saved to a temporary file
    beside ``path``; :meth:`close` renames it onto ``path``, so a half-written recording never
    carries the final name. ``blueprint`` (a ``rerun.blueprint.Blueprint``) is stored as the
    recording's default layout. Usable as a context manager.
    """

    def __init__(self, path, *, application_id: str = "worldline", blueprint=None,
                 recording_name: Optional[str] = None):
        import rerun as rr

        self._rr = rr
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f".{self.path.name}.{uuid.uuid4().hex[:8]}.tmp")
        self.rec = rr.RecordingStream(application_id, recording_id=uuid.uuid4())
        self.rec.save(self._tmp, default_blueprint=blueprint)
        self.rec.set_log_time_enabled(False)  # frame and time are the only timelines
        self.rec.set_log_tick_enabled(False)
        self.rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)  # SI, z up
        if recording_name:
            self.rec.send_recording_name(recording_name)
        self.paths: set[str] = set()
        """Entity paths logged so far."""
        self._closed = False

    # -- helpers
    def _log(self, path: str, archetype, static: bool) -> None:
        self.paths.add(path)
        self.rec.log(path, archetype, static=static)

    # -- Viewer interface
    def begin_frame(self, frame: int, time_s: float) -> None:
        self.rec.set_time(FRAME_TIMELINE, sequence=int(frame))
        self.rec.set_time(TIME_TIMELINE, duration=float(time_s))

    def log_points(self, path, positions, *, radii=None, colors=None, labels=None, static=False):
        rr = self._rr
        if positions is None:
            self._log(path, rr.Points3D.from_fields(radii=radii, colors=colors, labels=labels), static)
        else:
            self._log(path, rr.Points3D(np.asarray(positions, np.float32), radii=radii, colors=colors,
                                        labels=labels), static)

    def log_segments(self, path, starts, ends, *, radius=None, colors=None, static=False):
        strips = np.stack([np.asarray(starts, np.float32), np.asarray(ends, np.float32)], axis=1)  # (E, 2, 3)
        self._log(path, self._rr.LineStrips3D(strips, radii=radius, colors=colors), static)

    def log_arrows(self, path, origins, vectors, *, radius=None, colors=None, static=False):
        self._log(path, self._rr.Arrows3D(origins=np.asarray(origins, np.float32),
                                          vectors=np.asarray(vectors, np.float32), radii=radius, colors=colors), static)

    def log_boxes(self, path, centers, half_sizes, *, colors=None, labels=None, static=False):
        self._log(path, self._rr.Boxes3D(centers=np.asarray(centers, np.float32),
                                         half_sizes=np.asarray(half_sizes, np.float32),
                                         colors=colors, labels=labels, show_labels=labels is not None), static)

    def log_text(self, path, text, *, level="INFO"):
        self._log(path, self._rr.TextLog(text, level=level), False)

    def log_info(self, path, **values):
        self._log(path, self._rr.AnyValues(**values), True)

    def clear(self, path):
        self._log(path, self._rr.Clear(recursive=True), False)

    def log_series(self, path, frames, times_s, values, *, name=None, color=None):
        rr = self._rr
        values = np.asarray(values, np.float64)
        keep = np.isfinite(values)
        if name is not None or color is not None:
            self._log(path, rr.SeriesLines(names=name, colors=color), True)
        self.paths.add(path)
        self.rec.send_columns(
            path,
            indexes=[rr.TimeColumn(FRAME_TIMELINE, sequence=np.asarray(frames, np.int64)[keep]),
                     rr.TimeColumn(TIME_TIMELINE, duration=np.asarray(times_s, np.float64)[keep])],
            columns=rr.Scalars.columns(scalars=values[keep]),
        )

    def close(self) -> None:
        """Flush the stream, finish the file and move it onto :attr:`path`."""
        if self._closed:
            return
        self._closed = True
        self.rec.flush()
        self.rec.disconnect()
        if not self._tmp.exists():
            raise RuntimeError("Rerun wrote no recording: is logging disabled (environment variable RERUN=off)?")
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Stop without leaving a file (after an error)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.rec.disconnect()
        finally:
            self._tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def has_display() -> bool:
    """Whether a native viewer window can open here (a display on Linux; always on macOS/Windows)."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def check_rrd(path) -> int:
    """Check that ``path`` is a readable Rerun recording; returns its number of chunks.

    Raises ``ValueError`` (with the reason) when it is not.
    """
    from rerun.chunk import RrdReader

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "no footer" warnings: a broken file is reported below
            reader = RrdReader(path)
            if not reader.recordings():
                raise ValueError(f"{path}: holds no recording")
            return sum(1 for _ in reader.stream())
    except ValueError:
        raise
    except Exception as exc:  # the bindings raise their own error types
        raise ValueError(f"{path}: not a readable Rerun recording ({type(exc).__name__}: {exc})") from None


def open_in_viewer(path) -> subprocess.Popen:
    """Open a ``.rrd`` in the native Rerun viewer, detached. Raises ``RuntimeError`` without a display."""
    if not has_display():
        raise RuntimeError("no display here (DISPLAY/WAYLAND_DISPLAY unset): copy the file to a machine "
                           f"with a display and run `rerun {path}`")
    return subprocess.Popen([sys.executable, "-m", "rerun", str(path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
