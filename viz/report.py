"""Critic reports as the viewer reads them (JSON v1 of docs/ARCHITECTURE.md), without importing ``critic``.

A report is ``{"version": 1, "frames": T, "particles": N, "events": [...]}``; each event has
``category``, ``frame``, ``end_frame``, ``object``, ``other``, ``location`` ([x, y, z] m or null),
``severity`` (0..1), ``particles`` (a few particle ids) and ``message``; an optional ``skipped``
lists checks the critic could not run. A location with null (non-finite) entries counts as none. :func:`load_report`
accepts the parsed dict or a path to the JSON file and checks every field, naming it when wrong.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Optional, Union

import numpy as np

from particles import FileFormatError

__all__ = ["CATEGORIES", "REPORT_VERSION", "ReportEvent", "ViewReport", "load_report"]

#: The critic's closed list of categories (docs/ARCHITECTURE.md), in display order.
CATEGORIES: tuple[str, ...] = ("penetration", "teleport", "vanish", "rigidity", "floating", "energy", "jitter")

#: The report format version this viewer reads.
REPORT_VERSION = 1


@dataclass(frozen=True)
class ReportEvent:
    """One critic event, as read from a report."""

    category: str
    """One of :data:`CATEGORIES` (other names are shown as they are)."""
    frame: int
    """First frame index where the glitch is visible."""
    end_frame: int
    """Last frame index of the glitch (>= ``frame``)."""
    object: Optional[int]
    """Object id, or None."""
    other: Optional[int]
    """Second object id for a pair (or None)."""
    location: Optional[np.ndarray]
    """(3,) float64, m, or None when the report gives no finite location."""
    severity: float
    """0..1, how far past the physical bound."""
    particles: tuple[int, ...]
    """A few particle ids involved."""
    message: str
    """One sentence."""
    index: int = 0
    """Position of the event in the report's ``events`` list (names its marker ``world/critic/<index>``)."""

    def active(self, frame: int) -> bool:
        """Whether the event is visible at ``frame``."""
        return self.frame <= frame <= self.end_frame


@dataclass(frozen=True)
class ViewReport:
    """A validated critic report: the header and its events sorted by frame."""

    frames: int
    """T the critic audited."""
    particles: int
    """N the critic audited."""
    events: tuple[ReportEvent, ...]
    """Events sorted by (frame, index in the report)."""
    source: str = "report"
    """Where the report came from (a path or ``"report"``), for messages."""
    skipped: tuple[str, ...] = ()
    """Checks the critic could not run on this rollout (``"<check>: <why>"``), if the report says."""

    def severity_series(self, num_frames: int) -> dict[str, np.ndarray]:
        """Per category with events: (T,) float64, the largest severity of the events active at each frame (0 if none)."""
        out: dict[str, np.ndarray] = {}
        for ev in self.events:
            s = out.setdefault(ev.category, np.zeros(num_frames, np.float64))
            lo, hi = max(ev.frame, 0), min(ev.end_frame, num_frames - 1)
            if lo <= hi:
                s[lo:hi + 1] = np.maximum(s[lo:hi + 1], ev.severity)
        return out


def _int_or_none(value, field: str, source: str) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        raise FileFormatError(source, field, f"expected an integer or null, got {value!r}")
    return int(value)


def _event(raw, i: int, source: str, frames: int, particles: int) -> ReportEvent:
    f = f"events[{i}]"
    if not isinstance(raw, Mapping):
        raise FileFormatError(source, f, f"expected an object, got {type(raw).__name__}")
    for key in ("category", "frame", "severity", "message"):
        if key not in raw:
            raise FileFormatError(source, f"{f}.{key}", "missing")
    category = raw["category"]
    if not isinstance(category, str) or not category:
        raise FileFormatError(source, f"{f}.category", f"expected a category name, got {category!r}")
    frame = _int_or_none(raw["frame"], f"{f}.frame", source)
    if frame is None or not 0 <= frame < frames:
        raise FileFormatError(source, f"{f}.frame", f"expected a frame index in [0, {frames}), got {raw['frame']!r}")
    end = _int_or_none(raw.get("end_frame", frame), f"{f}.end_frame", source)
    end = frame if end is None else end
    if not frame <= end < frames:
        raise FileFormatError(source, f"{f}.end_frame", f"expected a frame index in [{frame}, {frames}), got {end}")
    sev = raw["severity"]
    if isinstance(sev, bool) or not isinstance(sev, (int, float)) or not math.isfinite(sev):
        raise FileFormatError(source, f"{f}.severity", f"expected a number in [0, 1], got {sev!r}")
    loc = raw.get("location")
    location = None
    if loc is not None:
        try:
            arr = np.asarray(loc, np.float64)
        except (TypeError, ValueError):
            raise FileFormatError(source, f"{f}.location", f"expected [x, y, z] in m or null, got {loc!r}") from None
        if arr.shape != (3,):
            raise FileFormatError(source, f"{f}.location", f"expected [x, y, z] in m or null, got {loc!r}")
        location = arr if np.all(np.isfinite(arr)) else None
    ids = raw.get("particles") or []
    if not isinstance(ids, (list, tuple)):
        raise FileFormatError(source, f"{f}.particles", f"expected a list of particle ids, got {ids!r}")
    pids = []
    for j, p in enumerate(ids):
        pid = _int_or_none(p, f"{f}.particles[{j}]", source)
        if pid is None or not 0 <= pid < particles:
            raise FileFormatError(source, f"{f}.particles[{j}]", f"expected a particle id in [0, {particles}), got {p!r}")
        pids.append(pid)
    message = raw["message"]
    if not isinstance(message, str):
        raise FileFormatError(source, f"{f}.message", "expected a string")
    return ReportEvent(
        category=category, frame=frame, end_frame=end,
        object=_int_or_none(raw.get("object"), f"{f}.object", source),
        other=_int_or_none(raw.get("other"), f"{f}.other", source),
        location=location, severity=float(min(max(sev, 0.0), 1.0)), particles=tuple(pids), message=message, index=i,
    )


def load_report(report: Union[Mapping, str, Path, "ViewReport"]) -> ViewReport:
    """Read and check a critic report (JSON v1).

    ``report`` is the parsed dict, a path to the JSON file, an already loaded :class:`ViewReport`,
    or any object with a ``to_dict()`` (or ``to_json()`` returning the JSON text) giving that dict.
    Raises :class:`particles.FileFormatError` naming the file (or ``"report"``) and the field.
    """
    if isinstance(report, ViewReport):
        return report
    source = "report"
    if not isinstance(report, (Mapping, str, Path)):
        if callable(getattr(report, "to_dict", None)):
            report = report.to_dict()
        elif callable(getattr(report, "to_json", None)):
            try:
                report = json.loads(report.to_json())
            except (TypeError, json.JSONDecodeError) as exc:
                raise FileFormatError(source, None, f"to_json() did not give JSON ({exc})") from None
    if isinstance(report, (str, Path)):
        source = str(report)
        path = Path(report)
        if not path.is_file():
            raise FileFormatError(source, None, "no such report file")
        try:
            report = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise FileFormatError(source, None, f"is not valid JSON ({exc})") from None
    if not isinstance(report, Mapping):
        raise FileFormatError(source, None, f"expected a JSON object, got {type(report).__name__}")
    version = report.get("version")
    if version != REPORT_VERSION:
        raise FileFormatError(source, "version", f"expected {REPORT_VERSION}, got {version!r}")
    header = {}
    for key in ("frames", "particles"):
        v = report.get(key)
        if isinstance(v, bool) or not isinstance(v, int) or v < (1 if key == "frames" else 0):
            raise FileFormatError(source, key, f"expected a non-negative integer, got {v!r}")
        header[key] = v
    events = report.get("events")
    if not isinstance(events, list):
        raise FileFormatError(source, "events", "expected a list")
    evs = [_event(e, i, source, header["frames"], header["particles"]) for i, e in enumerate(events)]
    evs.sort(key=lambda e: (e.frame, e.index))
    skipped = report.get("skipped") or []
    if not isinstance(skipped, list):
        raise FileFormatError(source, "skipped", "expected a list of strings")
    return ViewReport(frames=header["frames"], particles=header["particles"], events=tuple(evs), source=source,
                      skipped=tuple(str(x) for x in skipped))
