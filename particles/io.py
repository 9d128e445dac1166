"""Files: rollouts, lifted scenes and GNS-layout datasets.

Every file carries a ``format`` and a ``format_version``; readers check both and
name the file and the field when something is wrong (:class:`FileFormatError`).
NumPy archives are always read with ``allow_pickle=False`` and written
atomically: to a temporary file in the same folder, then renamed. A rollout's
``positions`` are stored uncompressed (the rest deflated) and read straight from the file.

Rollout ``.npz`` (docs/ARCHITECTURE.md)::

    positions (T,N,3) float32, particle_type (N,) int32, object_id (N,) int32,
    object_material (K,) str, dt () float, radius () float, gravity (3,) float32,
    ground () float (optional), mass (N,) float32 (optional),
    object_name (K,) str (optional), object_density (K,) float32 (optional),
    object_friction, object_restitution, object_stiffness (K,) float32 (optional; Pa for stiffness),
    format () str = "worldline.rollout", format_version () int,
    visibility (T,N) bool (optional: which particles were observed; point tracks from video)

Action ``.npz`` (the tool's motion, replayable by ``worldline simulate --action``)::

    indices (M,) int64 (the tool's particles in the scene), positions (T,M,3) float32 m,
    dt () float s (optional), format () str = "worldline.action", format_version () int

Dataset folder (GNS "Learning to Simulate" layout, extended)::

    metadata.json   bounds, sequence_length, default_connectivity_radius, dim, dt,
                    vel_mean, vel_std, acc_mean, acc_std (per dimension, in m per
                    frame and m per frame^2 as GNS defines them), plus ours:
                    format, format_version, radius, gravity, ground, splits
    train.npz / valid.npz / test.npz
                    for trajectory i: ``traj_<i>/positions`` (T,N,3) float32,
                    ``traj_<i>/particle_type`` (N,) int32, and ours beside them:
                    ``traj_<i>/object_id``, ``traj_<i>/object_material``, ...
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from .types import GRAVITY, MATERIALS, KINEMATIC, Action, ParticleScene, Rollout, ValidationError, KeypointGraph

__all__ = [
    "FileFormatError",
    "ROLLOUT_FORMAT",
    "SCENE_FORMAT",
    "DATASET_FORMAT",
    "FORMAT_VERSION",
    "atomic_write",
    "save_rollout",
    "load_rollout",
    "rollout_from_arrays",
    "save_scene",
    "load_scene",
    "save_action",
    "load_action",
    "ACTION_FORMAT",
    "gns_statistics",
    "write_dataset",
    "read_metadata",
    "load_dataset",
    "dataset_splits",
]

#: Largest length (m) a file may give for a radius or the ground height, largest frame time (s) and
#: largest gravity (m/s^2): values past them are corrupt or mistyped. Positions are not bounded (a
#: rollout that exploded is the critic's to report).
MAX_LENGTH = 1.0e6
MAX_DT = 1.0e4
MAX_ACCELERATION = 1.0e6

ROLLOUT_FORMAT = "worldline.rollout"
SCENE_FORMAT = "worldline.scene"
ACTION_FORMAT = "worldline.action"
DATASET_FORMAT = "worldline.dataset"
FORMAT_VERSION = 1
SPLITS = ("train", "valid", "test", "heldout")


class FileFormatError(ValueError):
    """A file cannot be read: the message names the file and, where known, the field."""

    def __init__(self, path, field: Optional[str], problem: str):
        self.path = str(path)
        self.field = field
        self.problem = problem
        where = f"{self.path}: field '{field}'" if field else self.path
        super().__init__(f"{where}: {problem}")


# --------------------------------------------------------------------------- atomic writes


def current_umask() -> int:
    """The process's file-mode creation mask (e.g. ``0o022``), read without changing it where
    the OS allows (Linux ``/proc/self/status``), else by setting and restoring it."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, write: Callable[[object], None], mode: str = "wb") -> Path:
    """Write a file atomically: ``write(fileobj)`` fills a temporary file in the same
    folder, which is then renamed onto ``path``. Nothing half-written is ever left.

    The file gets the permissions a plain ``open(path, "w")`` would give it,
    ``0o666 & ~umask`` (``tempfile.mkstemp`` alone makes it ``0o600``)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a folder, expected a file", str(path))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:  # name the file the user asked for, not the temporary one
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.chmod(tmp, 0o666 & ~current_umask())
            os.fsync(f.fileno())
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def _savez(path, arrays: Mapping[str, np.ndarray], compress: bool = True, stored: Sequence[str] = ()) -> Path:
    """Write ``arrays`` as a ``.npz`` atomically, deflated when ``compress``, except the members named in
    ``stored``, which are stored as they are (a reader can then take them straight from the file)."""
    for key, value in arrays.items():
        if np.asarray(value).dtype == object:  # never write pickles
            raise TypeError(f"refusing to write object array for key {key!r}")
    if not stored:
        saver = np.savez_compressed if compress else np.savez
        return atomic_write(path, lambda f: saver(f, **arrays))

    def write(f):
        from numpy.lib import format as npformat

        with zipfile.ZipFile(f, "w", allowZip64=True) as zf:
            for key, value in arrays.items():
                info = zipfile.ZipInfo(key + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED if (key in stored or not compress) else zipfile.ZIP_DEFLATED
                with zf.open(info, "w", force_zip64=True) as out:
                    npformat.write_array(out, np.asanyarray(value), allow_pickle=False)

    return atomic_write(path, write)


class _NpzReader:
    """Reads fields from a .npz with pickles disabled and turns every failure into
    a :class:`FileFormatError` naming the file and field."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise FileFormatError(self.path, None, "no such file")
        if self.path.is_dir():
            raise FileFormatError(self.path, None, "is a folder, expected a .npz file")
        if self.path.stat().st_size == 0:
            raise FileFormatError(self.path, None, "is empty")
        try:
            self.npz = np.load(self.path, allow_pickle=False)
        except Exception as exc:
            raise FileFormatError(self.path, None, f"is truncated or not a .npz archive ({type(exc).__name__}: {exc})") from None
        if not isinstance(self.npz, np.lib.npyio.NpzFile):
            raise FileFormatError(self.path, None, "holds a single array, expected a .npz archive of named arrays")
        self.keys = set(self.npz.files)

    def has(self, key: str) -> bool:
        return key in self.keys

    def get(self, key: str, required: bool = True, field: Optional[str] = None):
        field = field or key
        if key not in self.keys:
            if required:
                raise FileFormatError(self.path, field, "missing")
            return None
        self._check_header(key, field)
        try:
            arr = self._stored(key)
            if arr is None:
                arr = self.npz[key]
        except ValueError as exc:
            if "pickle" in str(exc).lower() or "object" in str(exc).lower():
                raise FileFormatError(self.path, field, "is a pickled object array; worldline never loads pickles") from None
            raise FileFormatError(self.path, field, f"cannot be read ({exc})") from None
        except (zipfile.BadZipFile, EOFError, OSError, KeyError) as exc:
            raise FileFormatError(self.path, field, f"is truncated or corrupt ({type(exc).__name__}: {exc})") from None
        except Exception as exc:  # zlib.error and friends
            raise FileFormatError(self.path, field, f"is truncated or corrupt ({type(exc).__name__}: {exc})") from None
        if arr.dtype == object:
            raise FileFormatError(self.path, field, "is an object array; worldline never loads pickles")
        return arr

    def _stored(self, key: str) -> Optional[np.ndarray]:
        """A member stored uncompressed, mapped straight from the file (copy-on-write: no copy through the
        zip reader; :func:`save_rollout` stores positions so); None for any other member."""
        from numpy.lib import format as npformat

        try:
            info = self.npz.zip.getinfo(key + ".npy")
        except KeyError:  # not a plain .npy member: NumPy reports it
            return None
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 0x1:  # deflated, or encrypted
            return None
        with open(self.path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)
            if len(local) < 30 or local[:4] != b"PK\x03\x04":
                return None
            name_len, extra_len = int.from_bytes(local[26:28], "little"), int.from_bytes(local[28:30], "little")
            start = info.header_offset + 30 + name_len + extra_len
            f.seek(start)
            version = npformat.read_magic(f)
            header = npformat.read_array_header_1_0 if version == (1, 0) else npformat.read_array_header_2_0
            shape, fortran, dtype = header(f)
            if fortran or dtype.hasobject:
                return None
            count = int(np.prod(shape, dtype=np.int64))
            if f.tell() - start + count * dtype.itemsize > info.file_size:
                raise EOFError(f"member {key}.npy holds {info.file_size} bytes, its header claims more")
            data = f.tell()
            if data + count * dtype.itemsize > self.path.stat().st_size:
                raise EOFError(f"member {key}.npy ends before its {count} values")
        if count == 0:
            return np.zeros(shape, dtype)
        # mapped copy-on-write: the pages come from the file as they are read (no allocation of the whole
        # array up front), and writing to the array changes only this process's copy, never the file
        return np.memmap(self.path, dtype=dtype, mode="c", offset=data, shape=tuple(shape)).view(np.ndarray)

    def _check_header(self, key: str, field: str) -> None:
        """Read the array's ``.npy`` header (not its data) and refuse, before NumPy allocates it, an
        object array or one whose header claims more bytes than the archive member holds."""
        from numpy.lib import format as npformat

        try:
            info = self.npz.zip.getinfo(key + ".npy")
            with self.npz.zip.open(info) as f:
                version = npformat.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = npformat.read_array_header_1_0(f)
                else:
                    shape, _, dtype = npformat.read_array_header_2_0(f)
        except (KeyError, AttributeError):
            return  # not a plain .npy member: let NumPy report it
        except Exception as exc:
            raise FileFormatError(self.path, field, f"is truncated or corrupt ({type(exc).__name__}: "
                                                    f"{' '.join(str(exc).split())[:120]})") from None
        if dtype.hasobject:
            raise FileFormatError(self.path, field, "is a pickled object array; worldline never loads pickles")
        claimed = int(np.prod(shape, dtype=object)) * dtype.itemsize
        if claimed > info.file_size:
            raise FileFormatError(self.path, field, f"is truncated or corrupt (its header says shape {shape} "
                                                    f"{dtype}, {claimed} bytes, but it holds {info.file_size})")

    def numbers(self, key: str, required: bool = True, field: Optional[str] = None, integer: bool = False):
        """An array of real numbers (no strings, booleans or complex numbers; integers when ``integer``)."""
        field = field or key
        arr = self.get(key, required, field=field)
        if arr is None:
            return None
        kinds = "iu" if integer else "fiu"
        if arr.dtype.kind not in kinds:
            want = "integers" if integer else "real numbers"
            raise FileFormatError(self.path, field, f"expected {want}, got dtype {arr.dtype}")
        return arr

    def scalar(self, key: str, kind=float, required: bool = True, limit: Optional[float] = None,
               field: Optional[str] = None):
        """One real number (``kind`` float or int). ``limit``: refuse non-finite values and ``|x| > limit``."""
        field = field or key
        arr = self.get(key, required, field=field)
        if arr is None:
            return None
        if arr.size != 1:
            raise FileFormatError(self.path, field, f"expected a scalar, got shape {arr.shape}")
        if arr.dtype.kind not in ("iu" if kind is int else "fiu"):
            raise FileFormatError(self.path, field, f"expected a {kind.__name__}, got dtype {arr.dtype}")
        value = kind(arr.reshape(()).item())
        if limit is not None and not (math.isfinite(value) and abs(value) <= limit):
            raise FileFormatError(self.path, field, f"{value!r} is not a finite value of at most {limit:g} in size")
        return value

    def strings(self, key: str, required: bool = True) -> Optional[tuple[str, ...]]:
        arr = self.get(key, required)
        if arr is None:
            return None
        if arr.dtype.kind not in "US":
            raise FileFormatError(self.path, key, f"expected strings, got dtype {arr.dtype}")
        return tuple(str(s) for s in np.atleast_1d(arr).tolist())

    def check_format(self, expected: str) -> int:
        fmt = self.get("format", required=False)
        if fmt is not None:
            fmt = str(fmt.reshape(()).item()) if fmt.size == 1 else None
            if fmt != expected:
                raise FileFormatError(self.path, "format", f"expected {expected!r}, got {fmt!r}")
        version = self.scalar("format_version", int, required=False)
        if version is not None and version > FORMAT_VERSION:
            raise FileFormatError(self.path, "format_version",
                                  f"file is version {version}; this worldline reads up to version {FORMAT_VERSION}")
        return version or FORMAT_VERSION

    def close(self):
        self.npz.close()


def _scene_arrays(scene: ParticleScene, prefix: str = "") -> dict[str, np.ndarray]:
    arrays = {
        "particle_type": scene.particle_type.astype(np.int32),
        "object_id": scene.object_id.astype(np.int32),
        "object_material": np.array(scene.object_material, dtype=np.str_),
        "object_name": np.array(scene.object_name, dtype=np.str_),
        "object_density": scene.object_density.astype(np.float32),
        "object_friction": scene.object_friction.astype(np.float32),
        "object_restitution": scene.object_restitution.astype(np.float32),
        "object_stiffness": scene.object_stiffness.astype(np.float32),
        "mass": scene.mass.astype(np.float32),
        "radius": np.float64(scene.radius),
        "gravity": scene.gravity.astype(np.float32),
    }
    if scene.ground is not None:
        arrays["ground"] = np.float64(scene.ground)
    return {prefix + k: v for k, v in arrays.items()}


def _gravity(r: "_NpzReader", prefix: str) -> np.ndarray:
    if not r.has(prefix + "gravity"):
        return np.asarray(GRAVITY, np.float32)
    g = r.numbers(prefix + "gravity", field="gravity")
    if g.shape != (3,) or not np.all(np.isfinite(g)) or np.abs(g).max() > MAX_ACCELERATION:
        raise FileFormatError(r.path, "gravity", f"expected 3 finite accelerations of at most {MAX_ACCELERATION:g} "
                                                 f"m/s^2, got shape {g.shape}")
    return g.astype(np.float32)


def _scene_from_reader(r: _NpzReader, positions: np.ndarray, prefix: str = "", strict: bool = True):
    """Build a ParticleScene from the fields in ``r``. With ``strict=False``, absent
    object ids and materials default to one object and their names are returned in
    ``missing`` so callers can skip checks that need them."""
    n = positions.shape[0] if positions.ndim >= 2 else 0
    missing: list[str] = []
    oid = r.numbers(prefix + "object_id", required=strict, field="object_id")
    mats = r.strings(prefix + "object_material", required=strict) if strict or r.has(prefix + "object_material") else None
    if oid is None:
        missing.append("object_id")
        oid = np.zeros(n, np.int32)
    if mats is None:
        missing.append("object_material")
        k = int(oid.max()) + 1 if oid.size else 1
        mats = ("elastic",) * k  # deformable: no rigidity assumed when the file does not say
    radius = r.scalar(prefix + "radius", float, required=strict, limit=MAX_LENGTH, field="radius")
    if radius is None:
        missing.append("radius")
    ptype = r.numbers(prefix + "particle_type", required=False, field="particle_type", integer=True)
    if ptype is None:
        missing.append("particle_type")
    try:
        scene = ParticleScene(
            positions=positions if positions.ndim == 2 else np.zeros((n, 3), np.float32),
            object_id=oid,
            object_material=mats,
            radius=radius if radius is not None else 0.01,
            particle_type=ptype,
            mass=r.numbers(prefix + "mass", required=False, field="mass"),
            object_density=r.numbers(prefix + "object_density", required=False, field="object_density"),
            object_name=r.strings(prefix + "object_name", required=False),
            gravity=_gravity(r, prefix),
            ground=r.scalar(prefix + "ground", float, required=False, limit=MAX_LENGTH, field="ground"),
            object_friction=r.numbers(prefix + "object_friction", required=False, field="object_friction"),
            object_restitution=r.numbers(prefix + "object_restitution", required=False, field="object_restitution"),
            object_stiffness=r.numbers(prefix + "object_stiffness", required=False, field="object_stiffness"),
        )
    except ValidationError as exc:
        raise FileFormatError(r.path, exc.field, exc.problem) from None
    return scene, missing


# --------------------------------------------------------------------------- rollouts


def save_rollout(path, rollout: Rollout, extra: Optional[Mapping[str, np.ndarray]] = None) -> Path:
    """Write ``rollout`` as a rollout ``.npz`` (see module docstring), atomically.

    ``extra`` adds our own fields under their own keys (e.g. ``tool_indices``).
    Returns the path written.
    """
    arrays = {
        "format": np.array(ROLLOUT_FORMAT),
        "format_version": np.int32(FORMAT_VERSION),
        "positions": rollout.positions.astype(np.float32),
        "dt": np.float64(rollout.dt),
        **_scene_arrays(rollout.scene),
    }
    if rollout.visibility is not None:
        arrays["visibility"] = rollout.visibility.astype(np.bool_)
    if extra:
        for k, v in extra.items():
            if k in arrays:
                raise ValueError(f"extra field {k!r} would overwrite a standard rollout field")
            arrays[k] = np.asarray(v)
    # positions stored uncompressed: reading them is then one read of the file, where inflating a 90k x 300
    # rollout took longer than auditing it (the other fields stay deflated)
    return _savez(path, arrays, stored=("positions",))


def load_rollout(path, strict: bool = True, dt: Optional[float] = None) -> Rollout:
    """Read a rollout ``.npz``.

    With ``strict=True`` every field of docs/ARCHITECTURE.md is required. With
    ``strict=False`` (the critic's mode) only ``positions`` and ``dt`` are: absent
    object ids, materials, particle types and radius get defaults, and their names
    are listed in ``rollout.missing`` so callers skip the checks that need them.
    ``dt`` (s) is the frame time of a file that has no ``dt`` field (the file's own always
    wins); without it such a file is refused. Raises :class:`FileFormatError` naming the
    file and field on any problem.
    """
    r = _NpzReader(path)
    try:
        r.check_format(ROLLOUT_FORMAT)
        pos = r.get("positions")
        if pos.ndim != 3 or pos.shape[-1] != 3:
            raise FileFormatError(r.path, "positions", f"expected shape (T, N, 3), got {pos.shape}")
        if pos.shape[0] == 0:
            raise FileFormatError(r.path, "positions", "has no frames")
        if not np.issubdtype(pos.dtype, np.floating):
            raise FileFormatError(r.path, "positions", f"expected floats, got dtype {pos.dtype}")
        own_dt = r.scalar("dt", float, limit=MAX_DT, required=dt is None)
        scene, missing = _scene_from_reader(r, np.nan_to_num(pos[0]).astype(np.float32), strict=strict)
        vis = r.get("visibility") if r.has("visibility") else None
        try:
            return Rollout(scene, pos.astype(np.float32, copy=False), own_dt if own_dt is not None else float(dt),
                           missing=tuple(missing), visibility=vis)
        except ValidationError as exc:
            raise FileFormatError(r.path, exc.field, exc.problem) from None
    finally:
        r.close()


def rollout_from_arrays(positions: np.ndarray, dt: float = 1.0 / 60.0, radius: Optional[float] = None,
                        gravity=GRAVITY, ground: Optional[float] = None) -> Rollout:
    """A rollout from a bare ``positions (T, N, 3)`` array, m.

    Defaults (documented for the critic): ``dt`` 1/60 s; one object of material
    ``elastic`` (so no rigidity is assumed); ``radius`` half the median
    nearest-neighbour distance of frame 0 when not given; no ground. The returned
    rollout's ``missing`` names the defaulted fields.
    """
    pos = np.asarray(positions, np.float32)
    if pos.ndim != 3 or pos.shape[-1] != 3:
        raise ValidationError("positions", f"expected shape (T, N, 3), got {pos.shape}")
    n = pos.shape[1]
    missing = ["object_id", "object_material", "particle_type"]
    if radius is None:
        missing.append("radius")
        radius = 0.01
        first = np.nan_to_num(pos[0])
        if n > 1:
            from scipy.spatial import cKDTree

            d, _ = cKDTree(first).query(first, k=2)
            med = float(np.median(d[:, 1]))
            if med > 0:
                radius = 0.5 * med
    scene = ParticleScene(np.nan_to_num(pos[0]), np.zeros(n, np.int32), ("elastic",), radius,
                          gravity=np.asarray(gravity, np.float32), ground=ground)
    return Rollout(scene, pos, dt, missing=tuple(missing))


# --------------------------------------------------------------------------- lifted scenes


def save_scene(path, scene: ParticleScene, keypoints: Optional[KeypointGraph] = None,
               edges: Optional[np.ndarray] = None, extra: Optional[Mapping[str, np.ndarray]] = None) -> Path:
    """Write a lifted scene ``.npz``: the scene's fields, optionally its keypoint graph
    (``keypoints/*``) and its particle neighbour graph ``edges (E, 2) int64``."""
    arrays = {
        "format": np.array(SCENE_FORMAT),
        "format_version": np.int32(FORMAT_VERSION),
        "positions": scene.positions,
        **_scene_arrays(scene),
    }
    if keypoints is not None:
        for name in ("positions", "object_id", "particle_index", "skin_index", "skin_weight", "edges"):
            arrays[f"keypoints/{name}"] = getattr(keypoints, name)
    if edges is not None:
        arrays["edges"] = np.asarray(edges, np.int64).reshape(-1, 2)
    if extra:
        arrays.update({k: np.asarray(v) for k, v in extra.items()})
    return _savez(path, arrays)


def save_action(path, action: Action, dt: Optional[float] = None) -> Path:
    """Write ``action`` (``indices (M,)``, ``positions (T, M, 3)`` m) as an action ``.npz``
    (see module docstring), atomically; ``dt`` (s) is recorded when given."""
    arrays = {"indices": np.asarray(action.indices, np.int64), "positions": np.asarray(action.positions, np.float32),
              "format": np.array(ACTION_FORMAT), "format_version": np.int32(FORMAT_VERSION)}
    if dt is not None:
        arrays["dt"] = np.float64(dt)
    return _savez(path, arrays)


def load_action(path, tool_indices: Optional[np.ndarray] = None) -> Action:
    """Read an action ``.npz``: ``positions (T, M, 3)`` m and optional ``indices (M,)``
    (default ``tool_indices``). Files without ``format`` (bare arrays) are accepted.

    With ``tool_indices (M,)``, the file must move exactly those particles. Raises
    :class:`FileFormatError` naming the file and the field.
    """
    r = _NpzReader(path)  # names the file and field on a missing, empty, truncated or pickled file
    try:
        r.check_format(ACTION_FORMAT)
        pos = r.numbers("positions")
        idx = r.numbers("indices", required=tool_indices is None, integer=True)
        if not np.issubdtype(pos.dtype, np.floating):
            raise FileFormatError(r.path, "positions", f"expected floats (T, M, 3) m, got dtype {pos.dtype}")
        if pos.size and np.nanmax(np.abs(pos)) > MAX_LENGTH:
            raise FileFormatError(r.path, "positions", f"tool positions past {MAX_LENGTH:g} m are outside the world")
        action = Action(tool_indices if idx is None else idx, pos)
    except ValidationError as exc:
        raise FileFormatError(r.path, exc.field, exc.problem) from None
    finally:
        r.close()
    if tool_indices is not None and not np.array_equal(np.sort(action.indices), np.sort(tool_indices)):
        raise FileFormatError(r.path, "indices", f"must be the scene's {len(tool_indices)} tool particles")
    return action


def load_scene(path):
    """Read a lifted scene ``.npz``. Returns ``(scene, keypoints or None, edges or None)``."""
    r = _NpzReader(path)
    try:
        r.check_format(SCENE_FORMAT)
        pos = r.get("positions")
        if pos.ndim != 2 or pos.shape[-1] != 3:
            raise FileFormatError(r.path, "positions", f"expected shape (N, 3), got {pos.shape}")
        scene, _ = _scene_from_reader(r, pos.astype(np.float32), strict=True)
        kp = None
        if r.has("keypoints/positions"):
            try:
                kp = KeypointGraph(**{n: r.get(f"keypoints/{n}") for n in (
                    "positions", "object_id", "particle_index", "skin_index", "skin_weight", "edges")})
            except ValidationError as exc:
                raise FileFormatError(r.path, f"keypoints/{exc.field}", exc.problem) from None
        edges = r.get("edges", required=False)
        if edges is not None:
            if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
                raise FileFormatError(r.path, "edges", f"expected (E, 2) integers, got {edges.shape} {edges.dtype}")
            if edges.size and (edges.min() < 0 or edges.max() >= scene.num_particles):
                raise FileFormatError(r.path, "edges", "particle index out of range")
        return scene, kp, edges
    finally:
        r.close()


# --------------------------------------------------------------------------- GNS datasets


def gns_statistics(trajectories: Iterable[np.ndarray]) -> dict[str, list[float]]:
    """Per-dimension mean and std of GNS velocities and accelerations.

    As GNS defines them: velocity ``v_t = x_t - x_{t-1}`` (m per frame) and
    acceleration ``a_t = x_{t+1} - 2 x_t + x_{t-1}`` (m per frame^2), pooled over
    every particle and frame of every trajectory ``(T, N, D)``. Computed in float64
    with running sums, so any number of trajectories fits in memory.
    """
    sums = {k: None for k in ("v", "v2", "a", "a2")}
    counts = {"v": 0, "a": 0}
    for pos in trajectories:
        pos = np.asarray(pos, np.float64)
        if pos.shape[0] < 3:
            continue
        v = np.diff(pos, axis=0).reshape(-1, pos.shape[-1])
        a = (pos[2:] - 2 * pos[1:-1] + pos[:-2]).reshape(-1, pos.shape[-1])
        for key, arr in (("v", v), ("a", a)):
            s, s2 = arr.sum(0), (arr * arr).sum(0)
            sums[key] = s if sums[key] is None else sums[key] + s
            sums[key + "2"] = s2 if sums[key + "2"] is None else sums[key + "2"] + s2
            counts[key] += arr.shape[0]
    if not counts["v"]:
        raise ValueError("need at least one trajectory of 3 or more frames to compute statistics")
    out = {}
    for key, name in (("v", "vel"), ("a", "acc")):
        mean = sums[key] / counts[key]
        var = np.maximum(sums[key + "2"] / counts[key] - mean * mean, 0.0)
        out[f"{name}_mean"] = mean.tolist()
        out[f"{name}_std"] = np.sqrt(var).tolist()
    return out


def _traj_arrays(i: int, rollout: Rollout) -> dict[str, np.ndarray]:
    prefix = f"traj_{i}/"
    return {prefix + "positions": rollout.positions.astype(np.float32), prefix + "dt": np.float64(rollout.dt),
            **_scene_arrays(rollout.scene, prefix)}


def write_split(folder, split: str, rollouts: Sequence[Rollout]) -> Path:
    """Write one split file ``<folder>/<split>.npz`` atomically."""
    arrays: dict[str, np.ndarray] = {}
    for i, ro in enumerate(rollouts):
        arrays.update(_traj_arrays(i, ro))
    arrays["format"] = np.array(DATASET_FORMAT)
    arrays["format_version"] = np.int32(FORMAT_VERSION)
    arrays["num_trajectories"] = np.int64(len(rollouts))
    return _savez(Path(folder) / f"{split}.npz", arrays)


def write_dataset(folder, splits: Mapping[str, Sequence[Rollout]],
                  connectivity_radius: Optional[float] = None, extra_metadata: Optional[dict] = None) -> Path:
    """Write a GNS-layout dataset folder: one ``<split>.npz`` per split and
    ``metadata.json`` with bounds, statistics (from the train split, or all splits if it
    is empty) and our fields. ``connectivity_radius`` (m) defaults to 4 particle radii.
    Returns the path of ``metadata.json``, written last so a folder with metadata is complete."""
    folder = Path(folder)
    all_ro = [ro for s in splits.values() for ro in s]
    if not all_ro:
        raise ValueError("a dataset needs at least one rollout")
    dts = {round(ro.dt, 12) for ro in all_ro}
    if len(dts) != 1:
        raise ValueError(f"all trajectories of a dataset share one dt; got {sorted(dts)}")
    for split, rollouts in splits.items():
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        write_split(folder, split, rollouts)
    stat_src = splits.get("train") or all_ro
    stats = gns_statistics(ro.positions for ro in stat_src)
    lo = np.min([np.nanmin(ro.positions.reshape(-1, 3), 0) for ro in all_ro], 0)
    hi = np.max([np.nanmax(ro.positions.reshape(-1, 3), 0) for ro in all_ro], 0)
    radius = float(np.median([ro.scene.radius for ro in all_ro]))
    first = all_ro[0].scene
    meta = {
        "format": DATASET_FORMAT,
        "format_version": FORMAT_VERSION,
        "bounds": [[float(a), float(b)] for a, b in zip(lo, hi)],
        "sequence_length": int(max(ro.num_frames for ro in all_ro)),
        "default_connectivity_radius": float(connectivity_radius if connectivity_radius else 4.0 * radius),
        "dim": 3,
        "dt": float(all_ro[0].dt),
        **stats,
        "radius": radius,
        "gravity": first.gravity.tolist(),
        "ground": first.ground,
        "materials": list(MATERIALS),
        "kinematic_particle_type": KINEMATIC,
        "splits": {s: len(v) for s, v in splits.items()},
    }
    if extra_metadata:
        meta.update(extra_metadata)
    text = json.dumps(meta, indent=2)
    return atomic_write(folder / "metadata.json", lambda f: f.write(text), mode="w")


_META_REQUIRED = {
    "bounds": list, "sequence_length": int, "default_connectivity_radius": (int, float), "dim": int, "dt": (int, float),
}
#: GNS statistics: checked when present; a dataset without them still loads (trainers compute them).
_META_STATS = ("vel_mean", "vel_std", "acc_mean", "acc_std")


def read_metadata(folder) -> dict:
    """Read and check ``metadata.json`` of a GNS-layout dataset folder."""
    path = Path(folder) / "metadata.json"
    if not Path(folder).is_dir():
        raise FileFormatError(folder, None, "no such dataset folder")
    if not path.exists():
        raise FileFormatError(path, None, "missing (a dataset folder holds metadata.json and <split>.npz files)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FileFormatError(path, None, f"is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise FileFormatError(path, None, "expected a JSON object")
    for key, kind in _META_REQUIRED.items():
        if key not in meta:
            raise FileFormatError(path, key, "missing")
        if not isinstance(meta[key], kind) or isinstance(meta[key], bool):
            raise FileFormatError(path, key, f"has the wrong type ({type(meta[key]).__name__})")
    dim = meta["dim"]
    if dim != 3:
        raise FileFormatError(path, "dim", f"worldline datasets are 3-D, got {dim}")
    for key, limit in (("dt", MAX_DT), ("default_connectivity_radius", MAX_LENGTH)):
        if not (math.isfinite(meta[key]) and 0 < meta[key] <= limit):
            raise FileFormatError(path, key, f"must be positive, finite and at most {limit:g}, got {meta[key]!r}")
    if "radius" in meta and not (isinstance(meta["radius"], (int, float)) and not isinstance(meta["radius"], bool)
                                 and math.isfinite(meta["radius"]) and 0 < meta["radius"] <= MAX_LENGTH):
        raise FileFormatError(path, "radius", f"must be a positive finite length in m, got {meta['radius']!r}")
    if meta["sequence_length"] < 1:
        raise FileFormatError(path, "sequence_length", f"must be at least 1, got {meta['sequence_length']}")
    for key in _META_STATS:
        if key not in meta:
            continue
        # NaN is allowed here: a dataset holding an exploded trajectory still loads for the critic
        if not isinstance(meta[key], list) or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                      for v in meta[key]):
            raise FileFormatError(path, key, "expected a list of numbers")
        if len(meta[key]) != dim:
            raise FileFormatError(path, key, f"expected {dim} values (dim), got {len(meta[key])}")
    version = meta.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise FileFormatError(path, "format_version", f"expected an integer, got {version!r}")
    if version > FORMAT_VERSION:
        raise FileFormatError(path, "format_version", f"is {meta['format_version']}; this worldline reads up to {FORMAT_VERSION}")
    return meta


def dataset_splits(folder) -> list[str]:
    """The split names present in a dataset folder, in train/valid/test order."""
    return [s for s in SPLITS if (Path(folder) / f"{s}.npz").exists()]


def load_dataset(folder, split: str = "train", strict: bool = False) -> list[Rollout]:
    """Read every trajectory of one split of a GNS-layout dataset as rollouts.

    Trajectory keys are ``traj_<i>/<field>``. Fields our datasets add (object ids,
    materials, radius, gravity, ground) are used when present; a plain GNS
    trajectory gets the defaults of :func:`load_rollout` with ``strict=False``
    and ``dt``, radius and gravity from ``metadata.json``.
    """
    meta = read_metadata(folder)
    path = Path(folder) / f"{split}.npz"
    r = _NpzReader(path)
    try:
        r.check_format(DATASET_FORMAT)
        ids = sorted({int(k.split("/")[0][5:]) for k in r.keys if k.startswith("traj_") and k.endswith("/positions")})
        if not ids:
            raise FileFormatError(path, "traj_<i>/positions", "no trajectories found")
        out = []
        for i in ids:
            prefix = f"traj_{i}/"
            pos = r.get(prefix + "positions")
            if pos.ndim != 3 or pos.shape[-1] != 3:
                raise FileFormatError(path, prefix + "positions", f"expected shape (T, N, 3), got {pos.shape}")
            if not np.issubdtype(pos.dtype, np.floating):
                raise FileFormatError(path, prefix + "positions", f"expected floats, got dtype {pos.dtype}")
            if pos.shape[0] == 0 or pos.shape[1] == 0:
                raise FileFormatError(path, prefix + "positions", f"has no frames or no particles (shape {pos.shape})")
            scene, missing = _scene_from_reader(r, np.nan_to_num(pos[0]).astype(np.float32), prefix, strict=strict)
            if "radius" in missing and "radius" in meta:
                scene = scene.replace(radius=meta["radius"])
                missing.remove("radius")
            dt = r.scalar(prefix + "dt", float, required=False, limit=MAX_DT, field=prefix + "dt") or float(meta["dt"])
            try:
                out.append(Rollout(scene, pos.astype(np.float32, copy=False), dt, missing=tuple(missing)))
            except ValidationError as exc:
                raise FileFormatError(path, prefix + exc.field, exc.problem) from None
        return out
    finally:
        r.close()
