"""What every check needs, computed once per rollout: :class:`AuditConfig` and :class:`AuditContext`.

The context is built from a :class:`particles.Rollout` and a config. Its quantities
are computed lazily (``functools.cached_property``) and then shared, so a check
that needs per-object centres of mass or the contact graph pays for them once
however many checks read them. Nothing in the context is mutated after it is
computed; checks are pure functions of it.

Conventions: ``T`` frames, ``N`` particles, ``K`` objects. A *step* ``s`` goes from
frame ``s`` to frame ``s + 1`` (``T - 1`` steps). Positions are m, times s.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cached_property
from typing import Optional

import numpy as np

from particles import Rollout

from particles.keypoints import rotation_from_covariance
from .report import CATEGORIES

__all__ = ["AuditConfig", "AuditContext", "EPS32", "KEPLER_DENSITY", "grid_pairs"]

#: float32 machine epsilon: relative resolution of stored positions.
EPS32 = float(np.finfo(np.float32).eps)

#: Densest packing fraction of equal spheres (Kepler): no body of particles packs tighter.
KEPLER_DENSITY = np.pi / (3.0 * np.sqrt(2.0))

#: Particles per object whose nearest-neighbour distance sets its spacing (evenly picked): the median
#: of 512 is within a few percent of the median of all.
_SPACING_SAMPLE = 512

#: Materials whose objects store no internal (elastic) energy we could not see in positions.
_ENERGY_MATERIALS = ("rigid", "plastic", "granular", "fluid")


@dataclass(frozen=True)
class AuditConfig:
    """Tolerances of the critic, each a dimensionless multiple of the rollout's own scales.

    Every bound a check uses is ``(physics of the rollout) + (tolerance below) x (its scale)``;
    the scales are the particle radius ``r`` (m), gravity ``|g|`` (m/s^2) and the frame time
    ``dt`` (s). The docstring of each check gives its formula. No value here was fit to a file.
    """

    contact_tolerance: float = 0.5
    """Penetration allowed before it is a glitch, in particle radii (solvers resolve contact
    to a fraction of ``r``). Penetration fires when depth > ``contact_tolerance * r``."""
    contact_margin: float = 0.5
    """Gap still counted as touching, in particle radii: objects whose particle centres are
    within ``2 r + contact_margin * r`` (ground: ``r + contact_margin * r``) are in contact."""
    teleport_tolerance: float = 1.0
    """Extra one-frame displacement allowed beyond momentum, gravity and contacts, in particle
    radii (a contact solver may project a particle out of an overlap of up to ``r``)."""
    rigidity_tolerance: float = 0.25
    """Deviation of a rigid object's particle from its best rigid motion, in particle radii."""
    floating_tolerance: float = 0.25
    """Deviation of an unsupported object's centre-of-mass acceleration from gravity, in ``|g|``."""
    floating_window: float = 0.1
    """Time window (s) over which that deviation must persist on average."""
    energy_tolerance: float = 0.5
    """Energy gain allowed without a source, as the height (in particle radii) the object
    could be lifted with it (plus the matching kinetic-energy resolution, see check_energy)."""
    energy_window: float = 0.05
    """Time (s) an object's energy must stay down before its energy budget follows it: a compliant
    contact (a bounce resolved over several solver steps, a chord step spanning an impact) dips
    the measured energy and gives it back within this; 0.05 s is 2.5 times MuJoCo's default contact
    time constant (0.02 s). At least 2 steps."""
    jitter_amplitude: float = 0.1
    """Frame-to-frame oscillation amplitude a solver's noise floor explains, in particle radii."""
    jitter_window: float = 0.1
    """Time window (s) in which at least half the frames must reverse direction to be jitter."""
    collapse_fraction: float = 0.5
    """An object has collapsed when its padded bounding-box volume falls below this fraction
    of the smallest volume its particles can fill (``n * (4/3) pi r^3 / Kepler density``)."""
    merge_gap: int = 1
    """Frames without the glitch that still join two runs into one event."""
    pose_noise: float = 0.0
    """A floor (m) under each rigid object's :attr:`AuditContext.pose_noise`: how precisely poses are known
    beyond what the particles' scatter shows (point tracks whose tracker noise was removed about the
    fitted poses: the tracker's noise averaged over the visible tracks, critic.tracks). 0 for rollouts."""
    checks: tuple[str, ...] = CATEGORIES
    """Which checks to run (names from :data:`critic.report.CATEGORIES`)."""
    dedupe: bool = True
    """Drop an event covered by a higher-priority event on the same object and frames
    (vanish > jitter > rigidity > teleport > penetration > floating > energy)."""
    device: str = "cpu"
    """Warp device of the pair search."""
    workers: int = 1
    """Threads for per-object array work (NumPy releases the GIL). 1 runs everything inline: on
    the shared 2-core machine a second thread measured slower (6.5 vs 6.1 s on 100k x 300)."""

    def __post_init__(self):
        for f in fields(self):
            if f.name in ("checks", "dedupe", "device", "merge_gap", "workers"):
                continue
            v = getattr(self, f.name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v) or v < 0:
                raise ValueError(f"{f.name}: must be a finite non-negative number, got {v!r}")
        for name in ("floating_window", "jitter_window", "energy_window"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name}: must be a positive time in s, got {getattr(self, name)!r}")
        if not isinstance(self.merge_gap, int) or isinstance(self.merge_gap, bool) or self.merge_gap < 0:
            raise ValueError(f"merge_gap: must be a non-negative integer number of frames, got {self.merge_gap!r}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 1:
            raise ValueError(f"workers: must be a positive integer, got {self.workers!r}")
        checks = tuple(self.checks)
        for c in checks:
            if c not in CATEGORIES:
                raise ValueError(f"checks: unknown check {c!r}; expected some of {', '.join(CATEGORIES)}")
        object.__setattr__(self, "checks", checks)


def _rotvec(m: np.ndarray) -> np.ndarray:
    """Rotation vectors ``(..., 3)`` rad of rotation matrices ``m (..., 3, 3)`` (NaN stays NaN).

    ``angle = atan2(|v| / 2, (tr m - 1) / 2)`` with ``v`` the skew part, accurate at small angles;
    within 1e-3 rad of a half turn, where the skew part vanishes, SciPy's conversion is used."""
    v = np.stack([m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1)
    sn = 0.5 * np.linalg.norm(v, axis=-1)
    cs = 0.5 * (np.trace(m, axis1=-2, axis2=-1) - 1.0)
    ang = np.arctan2(sn, cs)
    with np.errstate(invalid="ignore", divide="ignore"):
        fac = np.where(sn > 1e-12, ang / np.maximum(2.0 * sn, 1e-300), 0.5)
    out = v * fac[..., None]
    near = np.isfinite(ang) & (ang > np.pi - 1e-3)
    if near.any():
        from scipy.spatial.transform import Rotation

        out[near] = Rotation.from_matrix(m[near]).as_rotvec()
    return out


def _nearest_other(p: np.ndarray, qi: np.ndarray, cell: float) -> np.ndarray:
    """(Q,) float64, m: distance from each point ``p[qi]`` to its nearest other point of ``p (n, 3)``
    (by index: a duplicate position counts, at distance 0). Exact: the candidates of a query are the
    points in the 27 grid cells of size ``cell`` (m, > 0) around it, which hold every point within
    ``cell``; a query whose nearest candidate is further (or has none) is compared with all points.
    (No tree: SciPy's spatial module costs more to import than this takes for the few hundred queries
    of :attr:`AuditContext.spacing`.)"""
    n, nq = len(p), len(qi)
    lo = p.min(0)
    ijk = np.floor((p - lo) / cell).astype(np.int64)  # (n, 3)
    dims = ijk.max(0) + 3
    key = ((ijk[:, 0] + 1) * dims[1] + ijk[:, 1] + 1) * dims[2] + ijk[:, 2] + 1  # padded: neighbours stay >= 0
    order = np.argsort(key, kind="stable")
    sk = key[order]
    off = np.array([(a * dims[1] + b) * dims[2] + c for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
    nk = (key[qi][:, None] + off[None, :]).ravel()  # (Q * 27,)
    first, last = np.searchsorted(sk, nk, "left"), np.searchsorted(sk, nk, "right")
    lens = last - first
    owner = np.repeat(np.arange(nq), lens.reshape(nq, 27).sum(1))  # sorted by query
    starts = np.repeat(first - (np.cumsum(lens) - lens), lens)
    cand = order[np.arange(int(lens.sum())) + starts]
    diff = p[cand] - p[qi][owner]
    d2 = (diff * diff).sum(1)
    d2[cand == qi[owner]] = np.inf  # itself
    seg = np.concatenate([[0], np.cumsum(np.bincount(owner, minlength=nq))[:-1]])  # each holds its query
    out = np.sqrt(np.minimum.reduceat(d2, seg))
    far = np.flatnonzero(~(out <= cell))
    for i in far:  # nothing within one cell: compare with every point
        d2 = ((p - p[qi[i]]) ** 2).sum(1)
        d2[qi[i]] = np.inf
        out[i] = np.sqrt(d2.min()) if n > 1 else np.inf
    return out


def grid_pairs(queries: np.ndarray, points: np.ndarray, radius: float, query_batch: np.ndarray,
               point_batch: np.ndarray, budget: int = 1 << 22) -> np.ndarray:
    """(E, 2) int64 pairs ``[q, j]`` with ``|points[j] - queries[q]| <= radius`` (m, > 0) and
    ``query_batch[q] == point_batch[j]``, sorted by ``q`` then ``j``: what
    :func:`particles.graph.radius_search` returns, found with a cell grid in NumPy. ``queries (Q, 3)``,
    ``points (P, 3)`` float32, m; batches ``(Q,)``, ``(P,)`` non-negative ints. The candidates of a
    query are the points of its batch in the 27 cells of size ``radius`` around it, taken in blocks of
    queries of about ``budget`` candidates; every pair is confirmed by its distance (float64)."""
    nq, n = len(queries), len(points)
    if nq == 0 or n == 0:
        return np.zeros((0, 2), np.int64)
    q64, p64 = queries.astype(np.float64), points.astype(np.float64)
    lo = np.minimum(q64.min(0), p64.min(0))
    cq = np.floor((q64 - lo) / radius).astype(np.int64)
    cp = np.floor((p64 - lo) / radius).astype(np.int64)
    dims = np.maximum(cq.max(0), cp.max(0)) + 3
    def key(c, b):  # padded by one cell on each side: neighbour keys of a batch stay inside it
        return ((np.asarray(b, np.int64) * dims[0] + c[:, 0] + 1) * dims[1] + c[:, 1] + 1) * dims[2] + c[:, 2] + 1
    kp = key(cp, point_batch)
    order = np.argsort(kp, kind="stable")
    sk = kp[order]
    off = np.array([(a * dims[1] + b) * dims[2] + c for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)])
    kq = key(cq, query_batch)
    first = np.searchsorted(sk, (kq[:, None] + off[None, :]).ravel(), "left")
    last = np.searchsorted(sk, (kq[:, None] + off[None, :]).ravel(), "right")
    lens = last - first
    per_q = lens.reshape(nq, 27).sum(1)
    r2 = radius * radius
    out = []
    a = 0
    while a < nq:
        cum = np.cumsum(per_q[a:])
        b = a + max(1, int(np.searchsorted(cum, budget, "right")))
        ln = lens[27 * a:27 * b]
        owner = np.repeat(np.arange(a, b), per_q[a:b])
        starts = np.repeat(first[27 * a:27 * b] - (np.cumsum(ln) - ln), ln)
        cand = order[np.arange(int(ln.sum())) + starts]
        diff = p64[cand] - q64[owner]
        near = (diff * diff).sum(1) <= r2
        out.append(np.stack([owner[near], cand[near]], 1))
        a = b
    rows = np.concatenate(out)
    return rows[np.lexsort((rows[:, 1], rows[:, 0]))]


class AuditContext:
    """Shared, lazily computed quantities of one rollout (see module docstring).

    Build with ``AuditContext(rollout, config)``; read attributes. Arrays are NumPy,
    never written after they are computed.
    """

    def __init__(self, rollout: Rollout, config: Optional[AuditConfig] = None):
        self.rollout = rollout
        self.config = config or AuditConfig()
        scene = rollout.scene
        self.scene = scene
        self.pos: np.ndarray = rollout.positions
        """(T, N, 3) float32, m."""
        self.T, self.N = int(self.pos.shape[0]), int(self.pos.shape[1])
        self.K = scene.num_objects
        self.dt = float(rollout.dt)
        self.r = float(scene.radius)
        self.g = np.asarray(scene.gravity, np.float64)
        """(3,) float64, m/s^2."""
        self.g_mag = float(np.linalg.norm(self.g))
        self.ground: Optional[float] = scene.ground
        self.missing = set(rollout.missing)
        self.has_objects = "object_id" not in self.missing
        self.has_materials = self.has_objects and "object_material" not in self.missing
        self.has_types = "particle_type" not in self.missing
        self.vis: Optional[np.ndarray] = rollout.visibility
        """(T, N) bool or None: which particles were observed (see :attr:`obj_observed`)."""
        self.energy_slack: Optional[np.ndarray] = None
        """(T-1, K) float64 J or None: what a caller knows the energy check's tolerance must add per step and object
        (critic.tracks: the noise of a tracked body's turn in its rotational energy); None for a rollout."""
        self.obj = scene.object_id.astype(np.int64)
        self.mass = scene.mass.astype(np.float64)
        self.kin = scene.kinematic.copy() if self.has_types else np.zeros(self.N, bool)
        self.names = scene.object_name
        self.materials = scene.object_material
        order = np.argsort(self.obj, kind="stable")
        counts = np.bincount(self.obj, minlength=self.K)
        self.counts = counts
        """(K,) int64. Particles per object."""
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        if np.array_equal(order, np.arange(self.N)):
            self._sel = [slice(int(s), int(s + c)) for s, c in zip(starts, counts)]
        else:
            self._sel = [order[s:s + c] for s, c in zip(starts, counts)]

    # ------------------------------------------------------------------ helpers

    def sel(self, k: int):
        """Index of object ``k``'s particles along the particle axis (a slice when contiguous)."""
        return self._sel[k]

    def ids(self, k: int) -> np.ndarray:
        """(n_k,) int64. Particle ids of object ``k``."""
        s = self._sel[k]
        return np.arange(s.start, s.stop) if isinstance(s, slice) else s

    def of_object(self, k: int) -> str:
        """`` of object 'name'`` for messages, or nothing when object ids are unknown."""
        return f" of object {self.name(k)}" if self.has_objects else ""

    def subject(self, k: int) -> str:
        """``Object 'name'`` for messages, or ``The particle set`` when object ids are unknown."""
        return f"Object {self.name(k)}" if self.has_objects else "The particle set"

    def name(self, k: Optional[int]) -> str:
        if k is None:
            return "the scene"
        return f"'{self.names[k]}'" if self.has_objects else "the particles"

    # ------------------------------------------------------------------ scales

    @cached_property
    def resolvable(self) -> float:
        """Largest |coordinate| at which float32 positions still resolve the particle radius, m:
        ``r / (4 eps32)`` (there :attr:`eps_pos` reaches ``r``; 84 km for r = 1 cm). A particle beyond
        it has left any world the rollout can describe (:attr:`world`)."""
        return self.r / (4.0 * EPS32)

    @cached_property
    def scale(self) -> float:
        """Largest finite, resolvable |coordinate| of frame 0, m (sets the float32 resolution)."""
        p = np.abs(self.pos[0])
        f = np.isfinite(p) & (p <= self.resolvable)
        return float(np.max(p[f])) if f.any() else 1.0

    @cached_property
    def eps_pos(self) -> float:
        """Float32 resolution of positions, m: ``4 * eps32 * scale``."""
        return 4.0 * EPS32 * max(self.scale, self.r)

    # ------------------------------------------------------------------ object roles

    @cached_property
    def obj_kinematic(self) -> np.ndarray:
        """(K,) bool. Every particle of the object is kinematic (tool or static scenery)."""
        nk = np.bincount(self.obj, weights=self.kin.astype(np.float64), minlength=self.K)
        return (nk == self.counts) & (self.counts > 0)

    @cached_property
    def obj_tool(self) -> np.ndarray:
        """(K,) bool. Kinematic objects that move (the tool): some particle leaves its frame-0
        position by more than the float32 resolution."""
        out = np.zeros(self.K, bool)
        for k in np.flatnonzero(self.obj_kinematic):
            p = self.pos[:, self.sel(k)]
            d = np.abs(p - p[:1])
            out[k] = bool(np.nanmax(d) > self.eps_pos) if np.isfinite(d).any() else False
        return out

    @cached_property
    def obj_static(self) -> np.ndarray:
        """(K,) bool. Material ``static``, or kinematic and never moving: supports, does no work."""
        mat = np.array([m == "static" for m in self.materials], bool) if self.has_materials else np.zeros(self.K, bool)
        return mat | (self.obj_kinematic & ~self.obj_tool)

    @cached_property
    def obj_dynamic(self) -> np.ndarray:
        """(K,) bool. Free objects whose motion the physics decides (not kinematic, not static)."""
        return ~self.obj_kinematic & ~self.obj_static & (self.counts > 0)

    @cached_property
    def obj_mass(self) -> np.ndarray:
        """(K,) float64, kg."""
        return np.bincount(self.obj, weights=self.mass, minlength=self.K)

    # ------------------------------------------------------------------ streaming access

    def soa(self, k: int, a: int = 0, b: Optional[int] = None) -> np.ndarray:
        """(3, b - a, n_k) float32, m: object ``k``'s positions of frames ``[a, b)``, one contiguous
        plane per coordinate (fast reductions over particles)."""
        b = self.T if b is None else b
        x = self.pos[a:b, self.sel(k)]
        return np.ascontiguousarray(x.transpose(2, 0, 1))

    def blocks(self, k: int, halo: int = 0, budget: int = 1 << 21):
        """Yield ``(a, planes)`` covering all frames of object ``k`` in blocks of about ``budget``
        values: ``planes = soa(k, a, b)``; consecutive blocks overlap by ``halo`` frames, so a
        quantity needing ``halo`` earlier frames is complete for frames ``a + halo .. b - 1``."""
        n = max(int(self.counts[k]), 1)
        f = max(halo + 2, budget // (3 * n))
        a = 0
        while True:
            b = min(self.T, a + f)
            yield a, self.soa(k, a, b)
            if b >= self.T:
                return
            a = b - halo

    # ------------------------------------------------------------------ validity

    @cached_property
    def world(self) -> tuple[np.ndarray, np.ndarray]:
        """World bounds ``(lo (3,), hi (3,))``, m: the box of frame 0's free particles and of every
        kinematic position, grown by ``L + (v0 + 2 u) tau + |g| tau^2 / 2 + 2 r`` where ``L`` is the box
        diagonal, ``tau = (T - 1) dt`` the duration, ``v0`` the fastest free particle's initial speed
        and ``u`` the tool's top speed (a tool can launch an object at up to twice its speed), and
        never beyond :attr:`resolvable` (positions there are lost whatever frame-0 says)."""
        lim = self.resolvable
        with np.errstate(invalid="ignore"):
            fin0 = (np.abs(self.pos[0]) <= lim).all(1)  # finite and resolvable
        p0 = self.pos[0][fin0 & ~self.kin]
        parts = [p0] if len(p0) else []
        if self.kin.any():
            pk = self.pos[:, self.kin].reshape(-1, 3)
            with np.errstate(invalid="ignore"):
                parts.append(pk[(np.abs(pk) <= lim).all(1)])
        allp = np.concatenate(parts) if parts else np.zeros((1, 3))
        if not len(allp):
            allp = np.zeros((1, 3))
        lo, hi = allp.min(0).astype(np.float64), allp.max(0).astype(np.float64)
        diag = float(np.linalg.norm(hi - lo))
        tau = (self.T - 1) * self.dt
        v0 = 0.0
        if self.T > 1:
            with np.errstate(invalid="ignore", over="ignore"):
                s0 = np.linalg.norm(self.pos[1][~self.kin].astype(np.float64) - self.pos[0][~self.kin], axis=1)
            s0 = s0[np.isfinite(s0) & fin0[~self.kin]]
            s0 = s0[s0 <= lim]
            v0 = float(s0.max()) / self.dt if len(s0) else 0.0
        u = 0.0
        if self.kin.any() and self.T > 1:
            with np.errstate(invalid="ignore", over="ignore"):
                sk = np.linalg.norm(np.diff(self.pos[:, self.kin].astype(np.float64), axis=0), axis=-1)
            sk = sk[np.isfinite(sk) & (sk <= lim)]
            u = float(sk.max()) / self.dt if len(sk) else 0.0
        margin = diag + (v0 + 2 * u) * tau + 0.5 * self.g_mag * tau * tau + 2 * self.r
        return np.maximum(lo - margin, -lim), np.minimum(hi + margin, lim)

    def map_objects(self, fn, objects) -> list:
        """``[fn(k) for k in objects]``, on ``config.workers`` threads (NumPy releases the GIL)."""
        objects = list(objects)
        if self.config.workers > 1 and len(objects) > 1:
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(self.config.workers) as pool:
                return list(pool.map(fn, objects))
        return [fn(k) for k in objects]

    def _summarise(self, k: int) -> dict:
        """Streaming summary of object ``k`` (see :attr:`_summary`)."""
        T = self.T
        ids = self.ids(k)
        m32 = self.mass[ids].astype(np.float32)
        mtot = float(self.mass[ids].sum())
        wlo, whi = (w.astype(np.float32) for w in self.world)
        out = {"lo": np.full((T, 3), np.nan, np.float32), "hi": np.full((T, 3), np.nan, np.float32),
               "com": np.full((T, 3), np.nan), "smax": np.zeros(max(T - 1, 0)), "kin": np.zeros(max(T - 1, 0)),
               "valid": np.zeros(T, bool), "lost_t": [], "lost_p": []}
        posed = bool(self.obj_rigid[k])
        if posed:
            out["rot"] = np.full((T, 3, 3), np.nan)
            out["res"] = np.full(T, np.nan)
            out["res_ms"] = np.full(T, np.nan)
            out["ref"] = None
        x0c32 = wx = None
        inv_dt2 = 0.5 / (self.dt * self.dt)
        for a, x in self.blocks(k, halo=1):
            b = a + x.shape[1]
            n0 = 0 if a == 0 else 1  # first frame of this block not done before
            with np.errstate(invalid="ignore"):
                blo, bhi = x.min(axis=2), x.max(axis=2)  # (3, F); NaN and inf show up here
                fin = np.isfinite(blo).all(0) & np.isfinite(bhi).all(0)
                if not fin.all():
                    blo, bhi = np.fmin.reduce(x, axis=2), np.fmax.reduce(x, axis=2)
                inside = ((blo.T >= wlo) & (bhi.T <= whi)).all(1) & fin  # (F,)
            out["lo"][a + n0:b] = blo.T[n0:]
            out["hi"][a + n0:b] = bhi.T[n0:]
            out["valid"][a + n0:b] = inside[n0:]
            for f in np.flatnonzero(~inside[n0:]) + n0:
                p = x[:, f, :].T
                with np.errstate(invalid="ignore"):
                    bad = ~(np.isfinite(p).all(1) & (p >= wlo).all(1) & (p <= whi).all(1))
                out["lost_p"].append(ids[bad])
                out["lost_t"].append(np.full(int(bad.sum()), a + f))
            # einsum, not matmul: OpenBLAS threads contend on this shared machine (10x slower here)
            c = np.einsum("cfn,n->cf", x, m32, dtype=np.float64) / mtot  # (3, F)
            out["com"][a + n0:b] = c.T[n0:]
            if posed:
                js = np.flatnonzero(inside[n0:]) + n0  # valid frames of this block not done before
                if x0c32 is None and len(js):  # the reference shape: the first valid frame
                    j0 = int(js[0])
                    x0c = x[:, j0, :].astype(np.float64) - c[:, j0, None]  # (3, n)
                    out["ref"] = a + j0
                    out["x0c"] = x0c
                    x0c32 = x0c.astype(np.float32)
                    wx = (x0c * m32).astype(np.float32)
                if len(js):
                    if len(js) == x.shape[1] - n0:  # all valid: slices, no gather copy
                        js = slice(n0, x.shape[1])
                    xc = x[:, js, :] - c[:, js, None].astype(np.float32)  # (3, F', n) about the centre
                    # sum_i m_i (x0_i - c0) (x_i - c)^T: the cross-covariance of the Kabsch fit (float32
                    # einsum: centred, so sums of n terms lose ~sqrt(n) eps32 relative, far below r)
                    h = np.einsum("in,jfn->fij", wx, xc)
                    rot = rotation_from_covariance(h)  # (F', 3, 3)
                    fr = np.arange(a, b)[js]
                    out["rot"][fr] = rot
                    pred = np.einsum("fij,jn->ifn", rot.astype(np.float32), x0c32)
                    pred -= xc
                    pred *= pred
                    r2 = pred.sum(axis=0)
                    out["res"][fr] = np.sqrt(r2.max(axis=1))
                    out["res_ms"][fr] = r2.mean(axis=1)
            if x.shape[1] > 1 and not posed:
                d = x[:, 1:] - x[:, :-1]  # (3, F-1, n)
                d *= d
                s2 = d.sum(axis=0)  # (F-1, n) squared step lengths
                with np.errstate(invalid="ignore"):
                    out["smax"][a:b - 1] = np.nan_to_num(np.sqrt(s2.max(axis=1)))
                    out["kin"][a:b - 1] = np.nan_to_num(np.einsum("fn,n->f", s2, m32).astype(np.float64) * inv_dt2)
        if posed and T > 1 and out["ref"] is not None:
            # a rigid object's longest particle step from its pose, without another pass over its particles:
            # |dc| + 2 rho sin(turn / 2) + the residuals at both ends bounds every particle's step
            rot, c, res = out["rot"], out["com"], out["res"]
            rho = float(np.sqrt((out["x0c"] ** 2).sum(0).max()))
            step = rot[1:] @ np.swapaxes(rot[:-1], -1, -2)
            turn = np.linalg.norm(_rotvec(step), axis=-1)
            bound = (np.linalg.norm(c[1:] - c[:-1], axis=1) + 2 * rho * np.sin(0.5 * np.minimum(turn, np.pi))
                     + res[1:] + res[:-1])
            out["smax"] = np.nan_to_num(bound)
            out["kin"] = np.full(T - 1, np.nan)  # rigid: kinetic energy comes from the pose (AuditContext.rigid)
        return out

    @cached_property
    def _summary(self) -> dict:
        """One streaming pass over every object's particles: per-object boxes, centres of mass,
        longest steps, kinetic energies, validity and the lost particles (see the properties)."""
        T, K = self.T, self.K
        lo = np.full((T, K, 3), np.nan, np.float32)
        hi = np.full((T, K, 3), np.nan, np.float32)
        com = np.full((T, K, 3), np.nan)
        smax = np.zeros((max(T - 1, 0), K))
        kin = np.zeros((max(T - 1, 0), K))
        valid = np.zeros((T, K), bool)
        lost_t, lost_p = [], []
        rot = np.full((T, K, 3, 3), np.nan)
        res = np.full((T, K), np.nan)
        res_ms = np.full((T, K), np.nan)
        shapes: dict[int, tuple[int, np.ndarray]] = {}
        objs = [k for k in range(K) if self.counts[k]]
        for k, o in zip(objs, self.map_objects(self._summarise, objs)):
            lo[:, k], hi[:, k], com[:, k], smax[:, k], kin[:, k], valid[:, k] = (
                o["lo"], o["hi"], o["com"], o["smax"], o["kin"], o["valid"])
            if "rot" in o and o["ref"] is not None:
                rot[:, k], res[:, k], res_ms[:, k] = o["rot"], o["res"], o["res_ms"]
                shapes[k] = (o["ref"], o["x0c"])
            lost_t += o["lost_t"]
            lost_p += o["lost_p"]
        valid &= self.obj_observed
        com[~valid] = np.nan
        both = valid[1:] & valid[:-1] if T > 1 else np.zeros((0, K), bool)
        smax[~both] = 0.0
        kin[~both] = np.nan
        lost = (np.concatenate(lost_t).astype(np.int64) if lost_t else np.zeros(0, np.int64),
                np.concatenate(lost_p).astype(np.int64) if lost_p else np.zeros(0, np.int64))
        rot[~valid] = np.nan
        res[~valid] = np.nan
        return {"lo": lo, "hi": hi, "com": com, "smax": smax, "kinetic": kin, "valid": valid, "lost": lost,
                "rot": rot, "res": res, "res_ms": res_ms, "shapes": shapes}

    @cached_property
    def obj_observed(self) -> np.ndarray:
        """(T, K) bool. The object was observed at frame ``t``: always without a visibility mask; with one,
        at least ``min(4, n_k)`` of its particles were visible (a pose needs 3 points and one to spare).
        Frames where it was not are missing data: the object is not :attr:`obj_valid` there, so no check
        judges its motion from the filled positions."""
        if self.vis is None:
            return np.ones((self.T, self.K), bool)
        seen = np.zeros((self.T, self.K), np.int64)
        for k in range(self.K):
            if self.counts[k]:
                seen[:, k] = self.vis[:, self.sel(k)].sum(axis=1)
        return seen >= np.minimum(4, self.counts)[None, :]

    @property
    def lost(self) -> tuple[np.ndarray, np.ndarray]:
        """``(frame (L,), particle (L,))`` int64: particle positions that are non-finite or outside
        :attr:`world`, sorted by frame within each object."""
        return self._summary["lost"]

    @property
    def obj_valid(self) -> np.ndarray:
        """(T, K) bool. Every particle of the object is finite and in the world at that frame."""
        return self._summary["valid"]

    # ------------------------------------------------------------------ motion

    @property
    def obj_step_max(self) -> np.ndarray:
        """(T-1, K) float64, m. Longest particle step ``|x[s+1] - x[s]|`` of each object over step
        ``s`` (0 where the object is not valid at both ends). For :attr:`obj_rigid` objects the bound
        ``|dc| + 2 rho sin(turn / 2) + res_s + res_{s+1}`` from the pose (no less than the true one)."""
        return self._summary["smax"]

    @property
    def com(self) -> np.ndarray:
        """(T, K, 3) float64, m. Mass-weighted centre of each object; NaN where not valid."""
        return self._summary["com"]

    @property
    def bbox(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo (T, K, 3), hi (T, K, 3))`` float32, m: each object's box of finite particles (NaN when none)."""
        return self._summary["lo"], self._summary["hi"]

    @property
    def kinetic(self) -> np.ndarray:
        """(T-1, K) float64, J. Kinetic energy of each object over each step, ``sum m |dx|^2 / (2 dt^2)``
        (NaN where the object is not valid at both ends, and for :attr:`obj_rigid` objects, whose
        kinetic energy is :attr:`rigid`'s ``ke``)."""
        return self._summary["kinetic"]

    # ------------------------------------------------------------------ rigid-body kinematics

    @cached_property
    def obj_rigid(self) -> np.ndarray:
        """(K,) bool. Free objects of material ``rigid`` with at least 3 particles: the ones whose
        motion :attr:`rigid` describes as a pose (rotation and centre) per frame."""
        if not self.has_materials:
            return np.zeros(self.K, bool)
        mat = np.array([m == "rigid" for m in self.materials], bool)
        return mat & ~self.obj_kinematic & ~self.obj_static & (self.counts >= 3)

    @property
    def rigid_residual(self) -> np.ndarray:
        """(T, K) float64, m. Largest distance of a particle from the best rigid fit of the object's
        reference shape (its first valid frame), ``max_i |x_i - (R_t (x_i(ref) - c_ref) + c_t)|``;
        NaN for objects that are not :attr:`obj_rigid` or frames where the object is not valid."""
        return self._summary["res"]

    @cached_property
    def pose_noise(self) -> np.ndarray:
        """(K,) float64, m. How precisely the pose of each :attr:`obj_rigid` object is known:
        ``sqrt(median_t(mean_i res_i(t)^2) / n) + eps``, the particles' scatter about the best rigid
        fit averaged over the ``n`` particles the fit uses, plus the float32 resolution (NaN for
        other objects). Exact rigid motion (a rigid-body engine) leaves only ``eps``."""
        ms = self._summary["res_ms"]
        out = np.full(self.K, np.nan)
        for k in np.flatnonzero(self.obj_rigid):
            v = ms[:, k][np.isfinite(ms[:, k])]
            if len(v):
                out[k] = max(float(np.sqrt(np.median(v) / self.counts[k])), self.config.pose_noise) + self.eps_pos
        return out

    def rigid_fit(self, k: int, frames: np.ndarray) -> np.ndarray:
        """(F, n_k, 3) float64, m: the best rigid fit of object ``k``'s reference shape at ``frames``
        (``R_t (x(ref) - c_ref) + c_t``; NaN where not valid). ``k`` must be :attr:`obj_rigid`."""
        frames = np.asarray(frames, np.int64)
        _, x0c = self._summary["shapes"][k]
        rot = self._summary["rot"][frames, k]
        return np.einsum("fij,jn->fni", rot, x0c) + self.com[frames, k][:, None, :]

    @cached_property
    def rigid(self) -> dict:
        """Pose kinematics of every :attr:`obj_rigid` object (others NaN), from one batched Kabsch fit
        per object and frame (the covariance is accumulated in the streaming pass of :attr:`_summary`,
        then one ``np.linalg.svd`` over all frames: ``particles.keypoints.rotation_from_covariance``).

        With ``R_t`` the rotation taking the reference shape (centred, mass weights) to frame ``t`` and
        ``c_t`` the centre of mass, step ``s`` (frame ``s`` to ``s+1``) has

        * ``dc (T-1, K, 3)`` m: ``c_{s+1} - c_s`` (velocity ``dc / dt``);
        * ``dth (T-1, K, 3)`` rad: world rotation vector of ``R_{s+1} R_s^T`` (angular velocity ``dth / dt``);
        * ``dthb (T-1, K, 3)`` rad: body rotation vector of ``R_s^T R_{s+1}`` (in the reference shape's axes);
        * ``ke (T-1, K)`` J: ``M |dc|^2 / (2 dt^2) + dthb^T I0 dthb / (2 dt^2)``, translational plus
          rotational kinetic energy, ``I0`` the inertia of the reference shape from the particle
          masses (point masses: positions show nothing of a particle's own spin);
        * ``sigma (T-1, K)`` m: ``sqrt(|dc|^2 + dthb^T I0 dthb / M)``, the step of the object's
          energy-weighted speed (``sigma / dt = sqrt(2 KE / M)``);

        per object ``rho (K,)`` m (largest distance of a particle from the centre), ``inertia (K, 3, 3)``
        kg m^2 and ``kappa (K,)`` (largest over smallest principal moment: torque-free spin changes
        its world angular velocity by at most ``kappa |w|^2`` per second, Euler's equations).
        Finite differences of consecutive poses are exact for motion at constant velocity and spin.
        """
        T, K = self.T, self.K
        n = max(T - 1, 0)
        out = {"dc": np.full((n, K, 3), np.nan), "dth": np.full((n, K, 3), np.nan),
               "dthb": np.full((n, K, 3), np.nan), "ke": np.full((n, K), np.nan), "sigma": np.full((n, K), np.nan),
               "rho": np.zeros(K), "inertia": np.zeros((K, 3, 3)), "kappa": np.ones(K)}
        rot = self._summary["rot"]
        for k, (_, x0c) in self._summary["shapes"].items():
            m = self.mass[self.ids(k)]
            mtot = float(m.sum())
            r2 = (x0c * x0c).sum(0)
            inertia = np.eye(3) * float((m * r2).sum()) - (x0c * m) @ x0c.T
            ev = np.linalg.eigvalsh(inertia)
            out["rho"][k] = float(np.sqrt(r2.max())) if len(r2) else 0.0
            out["inertia"][k] = inertia
            out["kappa"][k] = float(ev[-1] / max(ev[0], 1e-300))
            if n == 0:
                continue
            rk = rot[:, k]
            c = self.com[:, k]
            dc = c[1:] - c[:-1]
            dth = _rotvec(rk[1:] @ np.swapaxes(rk[:-1], -1, -2))
            dthb = _rotvec(np.swapaxes(rk[:-1], -1, -2) @ rk[1:])
            rot_e = np.einsum("si,ij,sj->s", dthb, inertia, dthb)
            out["dc"][:, k], out["dth"][:, k], out["dthb"][:, k] = dc, dth, dthb
            out["ke"][:, k] = 0.5 * (mtot * (dc * dc).sum(1) + rot_e) / self.dt ** 2
            out["sigma"][:, k] = np.sqrt((dc * dc).sum(1) + rot_e / mtot)
        return out

    # ------------------------------------------------------------------ sampling density

    @cached_property
    def spacing(self) -> np.ndarray:
        """(K,) float64, m. How densely each object is sampled: the median distance from a particle to
        its nearest neighbour of the same object at the object's first valid frame (``2 r`` for
        objects of fewer than 2 particles, and never below ``2 r``: particles of radius r cannot sit
        closer without overlapping)."""
        out = np.full(self.K, 2.0 * self.r)
        valid = self.obj_valid
        for k in range(self.K):
            if self.counts[k] < 2 or not valid[:, k].any():
                continue
            f = int(np.argmax(valid[:, k]))
            p = self.pos[f, self.sel(k)].astype(np.float64)
            qi = np.unique(np.linspace(0, len(p) - 1, min(len(p), _SPACING_SAMPLE)).astype(np.int64))
            # cells of twice the mean spacing the object's box allows (and no finer than 4 r)
            vol = float(np.prod(np.maximum(np.ptp(p, axis=0), 2.0 * self.r)))
            cell = max(4.0 * self.r, 2.0 * (vol / len(p)) ** (1.0 / 3.0))
            out[k] = max(float(np.median(_nearest_other(p, qi, cell))), 2.0 * self.r)
        return out

    @cached_property
    def gap(self) -> np.ndarray:
        """(K,) float64, m: :attr:`spacing`. How far the object's surface may lie beyond the spheres of
        radius r around its outermost particles. Particles sit at least r inside the surface, and an
        object sampled at pitch ``h`` whose outermost layer were more than ``r + h`` inside would have
        room for one more layer; where the lattice starts is not known (a lattice of random offset has
        its lowest layer between r and r + h above the ground it rests on), so up to ``h``. For a sparse
        shell this also covers the contact point falling between its particles."""
        return self.spacing.copy()

    # ------------------------------------------------------------------ contacts

    @property
    def contact_dist(self) -> float:
        """Particle centre distance of two touching objects, m: ``2 r``."""
        return 2.0 * self.r

    @property
    def query_dist(self) -> float:
        """Search radius of the pair search, m: ``2 r + contact_margin * r``."""
        return (2.0 + self.config.contact_margin) * self.r

    @cached_property
    def pair_query_dist(self) -> np.ndarray:
        """(K, K) float64, m. Centre distance within which particles of objects ``a`` and ``b`` touch:
        :attr:`query_dist` ``+ gap_a + gap_b`` (each object's surface may lie :attr:`gap` beyond its
        particles' spheres, so two sparse shells touch while their particles are further apart)."""
        return self.query_dist + self.gap[:, None] + self.gap[None, :]

    @property
    def skin(self) -> float:
        """Verlet skin of the pair search, m: ``r / 4``. A neighbour list built with radius
        ``query_dist + 2 skin`` stays complete while no particle moved more than ``skin``."""
        return 0.25 * self.r

    def _frames_sel(self, frames: np.ndarray, k: int) -> np.ndarray:
        sk = self.sel(k)
        return self.pos[frames, sk] if isinstance(sk, slice) else self.pos[frames[:, None], sk[None, :]]

    @cached_property
    def _pair_search(self) -> dict:
        """Particle pairs of different objects, found with a Verlet neighbour list per object pair.

        For two objects whose boxes come within :attr:`query_dist`, the Warp hash-grid search of
        :func:`particles.graph.radius_search` lists every cross pair within ``query_dist + 2 skin``
        at a *build* frame (queries: object ``a``'s particles inside ``b``'s grown box; points:
        ``b``'s inside ``a``'s); the list serves the following frames while no
        particle of either object has moved more than :attr:`skin` since the build (then no pair
        outside the list can be within ``query_dist``), and exact distances of the listed pairs are
        computed every frame. All builds of the rollout go to one search (one packed-batch element
        per build). Pairs of two kinematic objects are not searched.
        """
        T, K = self.T, self.K
        contact = np.zeros((T, K, K), bool)
        empty = {"frame": np.zeros(0, np.int64), "i": np.zeros(0, np.int64), "j": np.zeros(0, np.int64),
                 "dist": np.zeros(0, np.float32), "contact": contact, "builds": 0}
        if not self.has_objects or K < 2:
            return empty
        lo, hi = self.bbox
        qab = self.pair_query_dist  # (K, K)
        q = qab[:, :, None]
        skin = self.skin
        grow_ab = (qab + 2 * skin).astype(np.float32)
        valid = np.isfinite(lo).all(2)
        smax = self.obj_step_max
        windows = []  # (a, b, build frame, window frames)
        sides = (([], [], []), ([], [], []))  # per side of each pair: points, particle ids, build id
        with np.errstate(invalid="ignore"):  # (T, K, K): boxes within q of each other
            near = ((lo[:, :, None] - q <= hi[:, None, :]) & (lo[:, None, :] - q <= hi[:, :, None])).all(3)
        near &= valid[:, :, None] & valid[:, None, :]
        cand = near.any(0)
        cand &= ~(self.obj_kinematic[:, None] & self.obj_kinematic[None, :])
        cand &= (self.counts[:, None] > 0) & (self.counts[None, :] > 0)
        for a, b in zip(*np.nonzero(np.triu(cand, 1))):
            a, b = int(a), int(b)
            frames = np.flatnonzero(near[:, a, b])
            i = 0
            while i < len(frames):
                f0 = int(frames[i])
                ref_a, ref_b = self._frames_sel(np.array([f0]), a)[0], self._frames_sel(np.array([f0]), b)[0]
                j = i + 1
                while j < len(frames) and frames[j] == frames[j - 1] + 1:
                    stop = min(len(frames), j + 32)
                    gaps = np.diff(frames[j - 1:stop]) != 1
                    if gaps.any():  # the window ends where the boxes part
                        stop = j + int(np.argmax(gaps))
                    fr = frames[j:stop]
                    # cheap bound first: no particle moved further than the sum of its object's longest steps
                    walk = np.cumsum(smax[f0:fr[-1], a] + smax[f0:fr[-1], b])[fr - f0 - 1]
                    if walk[-1] <= skin:
                        j = stop
                        continue
                    with np.errstate(invalid="ignore"):
                        da = np.abs(self._frames_sel(fr, a) - ref_a).reshape(len(fr), -1).max(axis=1)
                        db = np.abs(self._frames_sel(fr, b) - ref_b).reshape(len(fr), -1).max(axis=1)
                    moved = ~(np.maximum(da, db) <= skin / np.sqrt(3))  # per-axis bound: |dx| <= skin
                    if moved.any():
                        j += int(np.argmax(moved))
                        break
                    j = stop
                gid = len(windows)
                windows.append((a, b, f0, frames[i:j]))
                grow = grow_ab[a, b]
                for side, (x, y, ref) in enumerate(((a, b, ref_a), (b, a, ref_b))):
                    with np.errstate(invalid="ignore"):
                        inside = ((ref >= lo[f0, y] - grow) & (ref <= hi[f0, y] + grow)).all(1)
                    sides[side][0].append(ref[inside])
                    sides[side][1].append(self.ids(x)[inside])
                    sides[side][2].append(np.full(int(inside.sum()), gid, np.int64))
                i = j
        if not windows:
            return empty
        (qp, qi, qg), (pp_, pi_, pg) = ([np.concatenate(v) for v in side] for side in sides)
        if self.config.device == "cpu":  # a numpy cell grid: importing Warp alone takes longer than this search
            rows = grid_pairs(qp, pp_, float(grow_ab.max()), qg, pg)
        else:
            from particles.graph import radius_search  # Warp's hash grid on the configured device

            rows = radius_search(qp, pp_, float(grow_ab.max()), qg, pg, device=self.config.device)  # cross pairs a-b per build
        pid_a, pid_b = qi[rows[:, 0]], pi_[rows[:, 1]]
        gid_rows = qg[rows[:, 0]]
        order = np.argsort(gid_rows, kind="stable")
        pid_a, pid_b, gid_rows = pid_a[order], pid_b[order], gid_rows[order]
        bounds = np.searchsorted(gid_rows, np.arange(len(windows) + 1))
        out_f, out_i, out_j, out_d = [], [], [], []
        deep = np.float32(self.contact_dist)
        for gid, (a, b, f0, fr) in enumerate(windows):
            touch_d = np.float32(qab[a, b])
            pi, pj = pid_a[bounds[gid]:bounds[gid + 1]], pid_b[bounds[gid]:bounds[gid + 1]]  # pi in a, pj in b
            if not len(pi):
                continue
            ida, idb = self.ids(a), self.ids(b)
            li, lj = np.searchsorted(ida, pi), np.searchsorted(idb, pj)
            # distances at the build frame: within the window every pair stays within 2 skin of them
            d0 = np.linalg.norm(self.pos[f0, ida[li]] - self.pos[f0, idb[lj]], axis=1)
            keep = d0 <= qab[a, b] + 2 * skin
            li, lj, pi, pj, d0 = li[keep], lj[keep], pi[keep], pj[keep], d0[keep]
            if not len(li):
                continue
            sure = bool((d0 <= qab[a, b] - 2 * skin).any())  # touching in every frame of the window
            close = d0 < self.contact_dist + 2 * skin  # may overlap (closer than 2 r) in some frame
            sub = slice(None) if not sure else close
            if sure and not close.any():
                contact[fr, a, b] = contact[fr, b, a] = True
                continue
            diff = self._frames_sel(fr, a)[:, li[sub]]
            diff -= self._frames_sel(fr, b)[:, lj[sub]]
            diff *= diff
            d = np.sqrt(diff.sum(axis=2))  # (W, L) exact pair distances, m
            with np.errstate(invalid="ignore"):
                contact[fr, a, b] = contact[fr, b, a] = True if sure else (d <= touch_d).any(axis=1)
                ff, pp = np.nonzero(d < deep)
            if len(ff):
                out_f.append(fr[ff])
                out_i.append(pi[sub][pp])
                out_j.append(pj[sub][pp])
                out_d.append(d[ff, pp].astype(np.float32))
        cat = lambda xs, dt: np.concatenate(xs).astype(dt) if xs else np.zeros(0, dt)  # noqa: E731
        return {"frame": cat(out_f, np.int64), "i": cat(out_i, np.int64), "j": cat(out_j, np.int64),
                "dist": cat(out_d, np.float32), "contact": contact, "builds": len(windows)}

    @property
    def pairs(self) -> dict:
        """Overlapping particle pairs: dict of equal-length arrays ``frame``, ``i``, ``j`` (particle
        ids of different objects) and ``dist`` (m) for every pair closer than ``2 r`` (touching
        spheres); see :attr:`_pair_search`."""
        return self._pair_search

    @property
    def contact(self) -> np.ndarray:
        """(T, K, K) bool, symmetric. Objects ``a`` and ``b`` touch at frame ``t``: some particle of
        one has a particle of the other within :attr:`pair_query_dist` (``2 r + contact_margin * r +
        gap_a + gap_b``)."""
        return self._pair_search["contact"]

    @cached_property
    def ground_contact(self) -> np.ndarray:
        """(T, K) bool. The object's lowest particle is within ``r + contact_margin * r + gap`` of the
        ground (:attr:`gap`: its surface may lie up to one spacing beyond its particles' spheres)."""
        if self.ground is None:
            return np.zeros((self.T, self.K), bool)
        lo, _ = self.bbox
        with np.errstate(invalid="ignore"):
            return lo[:, :, 2] <= self.ground + (1.0 + self.config.contact_margin) * self.r + self.gap[None, :]

    @cached_property
    def reach(self) -> np.ndarray:
        """(T, K) float64, m. How far the object's particles travel in the steps into and out of
        frame ``t`` (the longer of the two): a contact can happen between frames within this."""
        out = np.zeros((self.T, self.K))
        if self.T > 1:
            sm = self.obj_step_max
            out[1:] = sm
            out[:-1] = np.maximum(out[:-1], sm)
        return out

    @cached_property
    def ground_reach(self) -> np.ndarray:
        """(T, K) float64, m. How far below its sampled height the object's lowest point can pass between
        frame ``t`` and its neighbours. Rigid objects (:attr:`rigid`): ``|dc_z| + rho (1 - cos(|dth| / 2))``
        over the steps into and out of frame ``t``, the centre's vertical travel plus the sagitta of the
        turn (each particle's height between two frames lies at most that far below the chord), so a
        rolling or spinning body does not reach the ground through its rim speed. Others: :attr:`reach`."""
        out = self.reach.copy()
        rig = np.flatnonzero(self.obj_rigid)
        if self.T > 1 and len(rig):
            kin = self.rigid
            dz = np.abs(kin["dc"][:, rig, 2])
            turn = np.linalg.norm(kin["dth"][:, rig], axis=2)
            step = np.nan_to_num(dz + kin["rho"][rig] * (1.0 - np.cos(0.5 * np.minimum(turn, np.pi))), nan=0.0)
            r = np.zeros((self.T, len(rig)))
            r[1:] = step
            r[:-1] = np.maximum(r[:-1], step)
            out[:, rig] = r
        return out

    @cached_property
    def sweep_bend(self) -> np.ndarray:
        """(T, K) float64, m. How far a particle's path between frame ``t`` and its neighbours can bow out
        of the straight chord between its samples: ``|g| dt^2 / 8`` (a parabola's sagitta) plus, for rigid
        objects (:attr:`rigid`), ``rho (1 - cos(|dth| / 2))`` (the sagitta of the turn), the larger over the
        steps into and out of frame ``t``."""
        out = np.full((self.T, self.K), self.g_mag * self.dt * self.dt / 8.0)
        rig = np.flatnonzero(self.obj_rigid)
        if self.T > 1 and len(rig):
            turn = np.linalg.norm(self.rigid["dth"][:, rig], axis=2)
            sag = np.nan_to_num(self.rigid["rho"][rig] * (1.0 - np.cos(0.5 * np.minimum(turn, np.pi))), nan=0.0)
            b = np.zeros((self.T, len(rig)))
            b[1:] = sag
            b[:-1] = np.maximum(b[:-1], sag)
            out[:, rig] += b
        return out

    @cached_property
    def sweep_box(self) -> tuple[np.ndarray, np.ndarray]:
        """``(lo (T, K, 3), hi (T, K, 3))`` float64, m: the box every particle of the object stays in between
        frames ``t - 1`` and ``t + 1``, the union of its boxes (:attr:`bbox`) at those frames grown by
        :attr:`sweep_bend` (NaN where the object is not valid at ``t``)."""
        lo, hi = (b.astype(np.float64) for b in self.bbox)
        slo, shi = lo.copy(), hi.copy()
        if self.T > 1:
            for a, b in ((slice(1, None), slice(None, -1)), (slice(None, -1), slice(1, None))):
                slo[a] = np.fmin(slo[a], lo[b])
                shi[a] = np.fmax(shi[a], hi[b])
        bend = self.sweep_bend[..., None]
        valid = np.isfinite(lo).all(2, keepdims=True)
        return np.where(valid, slo - bend, np.nan), np.where(valid, shi + bend, np.nan)

    @cached_property
    def supported(self) -> np.ndarray:
        """(T, K) bool. The object touches the ground or another object (static, tool or free) at
        frame ``t``, or could have touched it between frames: its lowest particle is within
        ``r + contact_margin * r + gap + ground_reach`` of the ground (:attr:`gap`: the surface of a
        sparsely sampled object lies up to that much beyond its particles' spheres), or, when the two move
        more than ``contact_margin * r`` in the steps into or out of frame ``t``, its :attr:`sweep_box`
        comes within ``2 r + contact_margin * r + gap_a + gap_b`` of the other object's (a fast object
        bounces between two frames without ever being sampled in contact; one that passes by at a
        distance cannot have touched)."""
        sup = self.contact.any(axis=2)
        reach = self.reach
        lo, hi = self.bbox
        if self.ground is not None:
            with np.errstate(invalid="ignore"):
                sup |= lo[:, :, 2] <= (self.ground + (1.0 + self.config.contact_margin) * self.r + self.gap[None, :]
                                       + self.ground_reach)
        if self.has_objects and self.K > 1:
            q = self.pair_query_dist[None, :, :, None]  # (1, K, K, 1)
            slo, shi = self.sweep_box
            valid = np.isfinite(slo).all(2)
            fast = reach[:, :, None] + reach[:, None, :] > self.config.contact_margin * self.r
            with np.errstate(invalid="ignore"):
                ov = ((slo[:, :, None] - q <= shi[:, None, :]) & (slo[:, None, :] - q <= shi[:, :, None])).all(3)
            ov &= fast & valid[:, :, None] & valid[:, None, :] & (self.counts[None, None, :] > 0)
            ov[:, np.arange(self.K), np.arange(self.K)] = False
            sup |= ov.any(axis=2)
        return sup

    @cached_property
    def touching(self) -> np.ndarray:
        """(T, K) bool. In contact at frame ``t`` as sampled (no allowance for motion between frames)."""
        return self.contact.any(axis=2) | self.ground_contact

    @cached_property
    def impact(self) -> np.ndarray:
        """(T, K) bool. Frames near a change of contact: supported only through motion between frames,
        or the sampled contact starts or ends within 2 frames. Energy measured there is unreliable
        (the step spanning a bounce is a short chord; a compliant contact stores energy briefly)."""
        tch = self.touching
        out = self.supported & ~tch
        change = np.zeros_like(tch)
        for i in np.flatnonzero((tch[1:] != tch[:-1]).any(axis=1)) if self.T > 1 else ():
            flip = tch[i + 1] != tch[i]
            change[max(0, i - 2):i + 4] |= flip[None, :]
        return out | change

    @cached_property
    def moving(self) -> np.ndarray:
        """(T-1, K) bool. Some particle of the object steps more than twice the jitter amplitude
        (``2 * jitter_amplitude * r``), i.e. more than a solver's noise floor."""
        return self.obj_step_max > 2.0 * self.config.jitter_amplitude * self.r + self.eps_pos

    @cached_property
    def source_speed(self) -> np.ndarray:
        """(T-1, K) float64, m per step. For each object and step, the longest particle step of any
        tool or moving free object it touches at either end of the step (0 when none): the speed
        a contact can hand on. Without object ids, the longest step of any particle (check_teleport
        then uses the fastest *other* particle, per particle)."""
        n = max(self.T - 1, 0)
        if not self.has_objects:
            allmax = self.obj_step_max.max(axis=1) if n else np.zeros(0)
            return np.repeat(allmax[:, None], self.K, axis=1)
        if n == 0:
            return np.zeros((0, self.K))
        c = self.contact[:-1] | self.contact[1:]  # (T-1, K, K): touching at frame s or s+1
        giver = (self.obj_tool[None, :] | (self.obj_dynamic[None, :] & self.moving))  # (T-1, K)
        speed = np.where(giver, self.obj_step_max, 0.0)  # (T-1, K)
        return np.max(np.where(c, speed[:, None, :], 0.0), axis=2)
