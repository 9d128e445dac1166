"""The critic's output: glitch events and the report that holds them.

A report is JSON version 1 (docs/ARCHITECTURE.md)::

    {"version": 1, "frames": T, "particles": N,
     "events": [{"category", "frame", "end_frame", "object", "other", "location",
                 "severity", "particles", "message"}, ...],
     "skipped": ["<check>: <why>", ...]}

``skipped`` lists the checks (or parts of checks) that could not run on this input,
e.g. because the file has no ``object_id``. Reports are written atomically.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from particles.io import atomic_write

__all__ = ["CATEGORIES", "REPORT_VERSION", "Event", "Report"]

#: The closed list of glitch categories (docs/ARCHITECTURE.md), in the order the report lists them.
CATEGORIES: tuple[str, ...] = ("penetration", "teleport", "vanish", "rigidity", "floating", "energy", "jitter")

#: Version of the report's JSON format.
REPORT_VERSION = 1

_MAX_PARTICLES = 8


@dataclass(frozen=True)
class Event:
    """One glitch: what happened, when, where, to whom, and how badly."""

    category: str
    """One of :data:`CATEGORIES`."""
    frame: int
    """First frame index where the glitch is visible."""
    end_frame: int
    """Last frame index of the glitch (``>= frame``)."""
    object: Optional[int]
    """Object id (index into the scene's objects), or None when object ids are unknown."""
    other: Optional[int]
    """The second object of a pair (penetration), or None (also for the ground)."""
    location: tuple[float, float, float]
    """(3,) float, m. Where the glitch is (see each check for which point)."""
    severity: float
    """0..1, how far past the physical bound (0 at the bound, towards 1 far beyond it)."""
    particles: tuple[int, ...]
    """A few particle ids involved (at most 8)."""
    message: str
    """One sentence a physicist accepts."""

    def __post_init__(self):
        if self.category not in CATEGORIES:
            raise ValueError(f"category: unknown {self.category!r}; expected one of {', '.join(CATEGORIES)}")
        frame, end = int(self.frame), int(self.end_frame)
        if frame < 0 or end < frame:
            raise ValueError(f"frame/end_frame: need 0 <= frame <= end_frame, got {frame}, {end}")
        loc = tuple(float(v) for v in self.location)
        if len(loc) != 3:
            raise ValueError(f"location: expected [x, y, z], got {self.location!r}")
        sev = float(self.severity)
        if not (0.0 <= sev <= 1.0):
            raise ValueError(f"severity: must lie in [0, 1], got {sev}")
        object.__setattr__(self, "frame", frame)
        object.__setattr__(self, "end_frame", end)
        object.__setattr__(self, "object", None if self.object is None else int(self.object))
        object.__setattr__(self, "other", None if self.other is None else int(self.other))
        object.__setattr__(self, "location", loc)
        object.__setattr__(self, "severity", sev)
        object.__setattr__(self, "particles", tuple(int(p) for p in self.particles)[:_MAX_PARTICLES])
        object.__setattr__(self, "message", str(self.message))

    @property
    def objects(self) -> tuple[int, ...]:
        """The object ids this event names (one or two, none when unknown)."""
        return tuple(o for o in (self.object, self.other) if o is not None)

    def to_dict(self) -> dict:
        """The event as a JSON-ready dict (non-finite location entries become null)."""
        return {
            "category": self.category,
            "frame": self.frame,
            "end_frame": self.end_frame,
            "object": self.object,
            "other": self.other,
            "location": [v if math.isfinite(v) else None for v in self.location],
            "severity": round(self.severity, 4),
            "particles": list(self.particles),
            "message": self.message,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Event":
        """Inverse of :meth:`to_dict`."""
        try:
            return cls(
                category=d["category"], frame=d["frame"], end_frame=d["end_frame"], object=d.get("object"),
                other=d.get("other"), location=[math.nan if v is None else v for v in d["location"]],
                severity=d["severity"], particles=d.get("particles", ()), message=d.get("message", ""),
            )
        except KeyError as exc:
            raise ValueError(f"event: missing key {exc.args[0]!r}") from None


@dataclass(frozen=True)
class Report:
    """All events the critic found in one rollout."""

    frames: int
    """T, frames in the audited rollout."""
    particles: int
    """N, particles in the audited rollout."""
    events: tuple[Event, ...] = ()
    """Events sorted by first frame, then category."""
    skipped: tuple[str, ...] = ()
    """Notices for checks (or parts) that could not run, each ``"<check>: <why>"``."""
    version: int = REPORT_VERSION
    """Format version of the JSON."""
    source: Optional[str] = field(default=None, compare=False)
    """What was audited (a path, or ``path:split/traj_i``), or None."""
    info: Optional[dict] = field(default=None, compare=False)
    """JSON-ready facts about how the input was read, or None; point tracks (critic.tracks) give the frame,
    up direction, ground, radius, noise and each object's track indices. Written as ``"tracks"``."""

    def __post_init__(self):
        order = lambda e: (e.frame, CATEGORIES.index(e.category), -1 if e.object is None else e.object)  # noqa: E731
        object.__setattr__(self, "events", tuple(sorted(self.events, key=order)))
        object.__setattr__(self, "skipped", tuple(str(s) for s in self.skipped))
        if int(self.version) != REPORT_VERSION:
            raise ValueError(f"version: this worldline reads report version {REPORT_VERSION}, got {self.version}")

    @property
    def clean(self) -> bool:
        """True when no event was found."""
        return not self.events

    def count(self) -> dict[str, int]:
        """Events per category (every category present, zero when none)."""
        out = {c: 0 for c in CATEGORIES}
        for e in self.events:
            out[e.category] += 1
        return out

    def to_dict(self) -> dict:
        d = {"version": self.version, "frames": int(self.frames), "particles": int(self.particles),
             "events": [e.to_dict() for e in self.events], "skipped": list(self.skipped)}
        if self.source is not None:
            d["source"] = self.source
        if self.info is not None:
            d["tracks"] = self.info
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Report":
        if not isinstance(d, dict):
            raise ValueError("report: expected a JSON object")
        for key in ("version", "frames", "particles", "events"):
            if key not in d:
                raise ValueError(f"report: missing key {key!r}")
        return cls(frames=d["frames"], particles=d["particles"], events=tuple(Event.from_dict(e) for e in d["events"]),
                   skipped=tuple(d.get("skipped", ())), version=d["version"], source=d.get("source"),
                   info=d.get("tracks"))

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def write(self, path) -> Path:
        """Write the report as JSON, atomically. Returns the path."""
        text = self.to_json() + "\n"
        return atomic_write(path, lambda f: f.write(text), mode="w")

    @classmethod
    def read(cls, path) -> "Report":
        return cls.from_dict(json.loads(Path(path).read_text()))

    def table(self, max_message: int = 0) -> str:
        """A human table: category, frames, object, location, severity, message."""
        head = f"{len(self.events)} event(s) in {self.frames} frames x {self.particles} particles"
        if self.source:
            head = f"{self.source}: " + head
        lines = [head]
        if self.events:
            rows = [("category", "frames", "object", "location (m)", "sev", "message")]
            for e in self.events:
                frames = f"{e.frame}" if e.end_frame == e.frame else f"{e.frame}-{e.end_frame}"
                obj = "-" if e.object is None else str(e.object)
                if e.other is not None:
                    obj += f"/{e.other}"
                loc = "(" + ", ".join(f"{v:.3f}" if math.isfinite(v) else "nan" for v in e.location) + ")"
                msg = e.message if not max_message or len(e.message) <= max_message else e.message[: max_message - 1] + "…"
                rows.append((e.category, frames, obj, loc, f"{e.severity:.2f}", msg))
            widths = [max(len(r[i]) for r in rows) for i in range(5)]
            for r in rows:
                lines.append("  ".join(c.ljust(w) for c, w in zip(r[:5], widths)) + "  " + r[5])
        for s in self.skipped:
            lines.append(f"skipped: {s}")
        return "\n".join(lines)
