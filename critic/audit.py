"""Audit a rollout: run the checks, merge what they found, and say what could not be checked.

Inputs :func:`load_audit_input` accepts:

* a rollout ``.npz`` (docs/ARCHITECTURE.md), read with ``particles.load_rollout(strict=False)``:
  fields it lacks get defaults and are named in ``rollout.missing``; checks that need them
  are skipped with a notice in the report;
* a GNS-layout dataset folder: every trajectory of every split present;
* a bare array, ``.npy`` or ``.npz`` with only ``positions (T, N, 3)``: read with
  ``particles.rollout_from_arrays`` and its documented defaults (one object of material
  elastic, radius half the median nearest-neighbour spacing of frame 0, no ground, gravity
  (0, 0, -9.81) m/s^2).

A rollout ``.npz`` may carry ``visibility (T, N)`` bool (which particles were observed): hidden
positions are missing data, filled by :func:`critic.tracks.fill_rollout`, and the checks judge an
object only in frames where at least 4 of its particles were seen. TAP-Vid-3D point-track files are
read by :mod:`critic.tracks` (``worldline audit FILE --fps F``).

The frame time is never guessed: a file without ``dt`` (a bare array, or a rollout that lacks
the field) is refused with a :class:`particles.FileFormatError` naming ``dt``, unless the caller
passes ``dt`` (``worldline audit --dt SECONDS``); a file's own ``dt`` is always used.

Files are never unpickled; every read problem raises :class:`particles.FileFormatError`
naming the file and the field.
"""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from particles import FileFormatError, Rollout, ValidationError, load_dataset, load_rollout, read_metadata, rollout_from_arrays
from particles.io import dataset_splits

from .checks import CHECKS, REQUIRES
from .context import AuditConfig, AuditContext
from .report import CATEGORIES, Event, Report

__all__ = ["audit", "load_audit_input", "PRIORITY"]

#: Which category explains an overlapping glitch best, first wins (see :func:`dedupe`):
#: lost particles explain everything else; shaking explains jumps, overlaps and distortion;
#: a change of shape explains the jump of a rigid pose fit to it (a rigid jump leaves no shape
#: change behind); a jump explains the overlap it lands in; an overlap or a distortion explains
#: an odd acceleration; an odd acceleration explains an energy change.
PRIORITY: tuple[str, ...] = ("vanish", "jitter", "rigidity", "teleport", "penetration", "floating", "energy")

_SLACK = 2  # frames: events this close in time on the same object describe the same glitch


def dedupe(events: list[Event], slack: int = _SLACK) -> list[Event]:
    """Drop each event that begins while a higher-priority event on a shared object is under way
    (within ``slack`` frames): a consequence of the same glitch seen by another check, e.g. the
    overlap a teleport lands in. An event of the same category that overlaps a kept one in time
    is merged into it (its end extended)."""
    kept: list[Event] = []
    for e in sorted(events, key=lambda e: (PRIORITY.index(e.category), e.frame)):
        hit = None
        for n, k in enumerate(kept):
            if set(e.objects) & set(k.objects) or (not e.objects and not k.objects):
                starts_within = k.frame - slack <= e.frame <= k.end_frame + slack
                overlaps = e.frame <= k.end_frame + slack and k.frame <= e.end_frame + slack
                if starts_within or (e.category == k.category and overlaps):
                    hit = n
                    break
        if hit is None:
            kept.append(e)
        elif kept[hit].category == e.category and e.end_frame > kept[hit].end_frame:
            kept[hit] = replace(kept[hit], end_frame=e.end_frame)
    return kept


def _notices(ctx: AuditContext, checks) -> list[str]:
    out = []
    missing = ctx.missing
    if "particle_type" in missing:
        out.append("all: the input has no particle_type, so tool and static particles cannot be told from free "
                   "ones; every particle is judged as free")
    if "radius" in missing:
        out.append(f"all: the input has no radius; using {ctx.r:.4g} m (half the median nearest-neighbour "
                   "spacing of frame 0)")
    for name in checks:
        need = [f for f in REQUIRES[name] if f in missing]
        if need:
            out.append(f"{name}: skipped, the input has no {' or '.join(need)}")
    if "penetration" in checks and "object_id" in missing:
        out.append("penetration: object-object overlaps not checked (no object_id); "
                   + ("ground overlaps checked" if ctx.ground is not None else "no ground plane either"))
    if "floating" in checks and ctx.has_objects and ctx.g_mag == 0:
        out.append("floating: skipped, gravity is zero")
    if "energy" in checks and ctx.has_materials:
        soft = sorted({ctx.materials[k] for k in range(ctx.K) if ctx.obj_dynamic[k]
                       and ctx.materials[k] in ("elastic", "cloth", "rope")})
        if soft:
            out.append(f"energy: {', '.join(soft)} objects not judged (their elastic energy is not visible in positions)")
    if ctx.T < 3:
        out.append("teleport, floating, energy: need at least 3 frames (vanish, penetration and rigidity "
                   "judged every frame)")
    if ctx.T < 4 and "jitter" in checks:
        out.append("jitter: needs at least 4 frames")
    return out


def audit(rollout: Rollout, config: Optional[AuditConfig] = None, source: Optional[str] = None,
          progress: Optional[Callable[[str], None]] = None) -> Report:
    """Run the configured checks on ``rollout`` and return their events as a :class:`Report`.

    Args:
        rollout: positions ``(T, N, 3)`` float32 (m) with their scene; ``rollout.missing`` names
            scene fields the source lacked (checks needing them are skipped, with a notice).
        config: tolerances and which checks to run (default :class:`AuditConfig`).
        source: what was audited, recorded in the report.
        progress: called with each check's name before it runs (for progress bars).
    """
    config = config or AuditConfig()
    ctx = AuditContext(rollout, config)
    checks = [c for c in CATEGORIES if c in config.checks]
    events: list[Event] = []
    for name in checks:
        if progress is not None:
            progress(name)
        if any(f in ctx.missing for f in REQUIRES[name]):
            continue
        events += CHECKS[name](rollout, ctx)
    if config.dedupe:
        events = dedupe(events)
    return Report(frames=ctx.T, particles=ctx.N, events=tuple(events), skipped=tuple(_notices(ctx, checks)), source=source)


# ---------------------------------------------------------------------------------------- loading


def _estimate_radius(positions: np.ndarray) -> Optional[float]:
    """Half the median nearest-neighbour distance of the finite points ``(N, 3)``, m, or None."""
    p = positions[np.isfinite(positions).all(1)]
    if len(p) < 2:
        return None
    from scipy.spatial import cKDTree

    d, _ = cKDTree(p).query(p, k=2)
    med = float(np.median(d[:, 1]))
    return 0.5 * med if med > 0 else None


def _fill_radius(ro: Rollout) -> Rollout:
    if "radius" not in ro.missing or ro.num_frames == 0:
        return ro
    r = _estimate_radius(ro.positions[0])
    if r is None:
        return ro
    return Rollout(ro.scene.replace(radius=r), ro.positions, ro.dt, missing=ro.missing)


def _no_dt(path: Path) -> FileFormatError:
    return FileFormatError(path, "dt", "missing: the frame time in s is needed to judge motion; "
                                       "pass --dt SECONDS to audit a file without one")


def _bare_positions(path: Path, arr, dt: Optional[float]) -> Rollout:
    if arr.dtype == object:
        raise FileFormatError(path, "positions", "is a pickled object array; worldline never loads pickles")
    if arr.ndim != 3 or arr.shape[-1] != 3:
        raise FileFormatError(path, "positions", f"expected shape (T, N, 3), got {tuple(arr.shape)}")
    if not np.issubdtype(arr.dtype, np.floating) and not np.issubdtype(arr.dtype, np.integer):
        raise FileFormatError(path, "positions", f"expected numbers, got dtype {arr.dtype}")
    if arr.shape[0] == 0:
        raise FileFormatError(path, "positions", "has no frames")
    if arr.shape[1] == 0:
        raise FileFormatError(path, "positions", "has no particles")
    if not np.isfinite(arr).any():
        raise FileFormatError(path, "positions", "has no finite value: nothing to audit")
    if dt is None:
        raise _no_dt(path)
    try:
        return rollout_from_arrays(arr.astype(np.float32), dt=dt)
    except ValidationError as exc:
        raise FileFormatError(path, exc.field, exc.problem) from None


def _load_npy(path: Path, dt: Optional[float]) -> Rollout:
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise FileFormatError(path, "positions", "is a pickled object array; worldline never loads pickles") from None
        raise FileFormatError(path, "positions", f"is truncated or corrupt ({exc})") from None
    except (OSError, EOFError) as exc:
        raise FileFormatError(path, "positions", f"is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    if not isinstance(arr, np.ndarray):
        raise FileFormatError(path, None, "is not a .npy array")
    return _bare_positions(path, arr, dt)


def _load_without_dt(path: Path, dt: Optional[float]) -> Rollout:
    """A rollout ``.npz`` lacking ``dt``: refused without ``dt``; with it, read like any rollout
    (a bare ``positions`` array, or every scene field the file has)."""
    with np.load(path, allow_pickle=False) as z:
        names = set(z.files)
    if dt is None:
        if "positions" not in names:
            raise FileFormatError(path, "positions", "missing")
        raise _no_dt(path)
    if names <= {"positions"}:
        return _load_bare_npz(path, dt)
    return load_rollout(path, strict=False, dt=dt)


def _load_bare_npz(path: Path, dt: Optional[float]) -> Rollout:
    try:
        with np.load(path, allow_pickle=False) as z:
            if "positions" not in z.files:
                raise FileFormatError(path, "positions", "missing")
            arr = z["positions"]
    except FileFormatError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc).lower() or "object" in str(exc).lower():
            raise FileFormatError(path, "positions", "is a pickled object array; worldline never loads pickles") from None
        raise FileFormatError(path, "positions", f"cannot be read ({exc})") from None
    except Exception as exc:  # zipfile.BadZipFile, zlib.error, EOFError, OSError
        raise FileFormatError(path, "positions", f"is truncated or corrupt ({type(exc).__name__}: {exc})") from None
    return _bare_positions(path, arr, dt)


def load_audit_input(path, dt: Optional[float] = None) -> list[tuple[str, Rollout]]:
    """Read what ``worldline audit`` accepts (see module docstring).

    ``dt`` (s) is the frame time of inputs that carry none; without it they are refused.

    Returns ``[(source, rollout), ...]``: one entry for a file, one per trajectory for a dataset
    folder (source ``<folder>:<split>/traj_<i>``). Raises :class:`particles.FileFormatError`
    naming the file and field when the input cannot be read.
    """
    path = Path(path)
    if not path.exists():
        raise FileFormatError(path, None, "no such file or folder")
    if path.is_dir():
        read_metadata(path)
        splits = dataset_splits(path)
        if not splits:
            raise FileFormatError(path, None, "dataset folder has no train.npz, valid.npz or test.npz")
        out = []
        for split in splits:
            for i, ro in enumerate(load_dataset(path, split, strict=False)):
                out.append((f"{path}:{split}/traj_{i}", _fill_radius(ro)))
        return out
    if path.stat().st_size == 0:
        raise FileFormatError(path, None, "is empty")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise FileFormatError(path, "dt", f"must be a positive number of seconds, got {dt!r}")
    if path.suffix == ".npy":
        return [(str(path), _load_npy(path, dt))]
    if not zipfile.is_zipfile(path):
        if path.suffix == ".npz":
            raise FileFormatError(path, None, "is truncated or not a .npz archive")
        raise FileFormatError(path, None, "expected a rollout .npz, a positions .npy or a dataset folder")
    try:
        ro = load_rollout(path, strict=False)
    except FileFormatError as exc:
        if exc.field == "dt" and exc.problem == "missing":
            ro = _load_without_dt(path, dt)
        else:
            raise
    if ro.visibility is not None:  # hidden particles are missing data: filled, and their frames not judged
        from .tracks import fill_rollout

        ro = fill_rollout(ro)
    return [(str(path), _fill_radius(_some_finite(path, ro)))]


def _some_finite(path: Path, ro: Rollout) -> Rollout:
    """``ro``, or a :class:`FileFormatError` when not one coordinate is finite: nothing to audit (a
    rollout that has some finite values and loses the rest is a vanish, judged by the critic)."""
    if not np.isfinite(ro.positions[0]).any() and not np.isfinite(ro.positions).any():
        raise FileFormatError(path, "positions", "has no finite value: nothing to audit")
    return ro
