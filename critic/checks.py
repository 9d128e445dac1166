"""The seven checks of the critic, one small pure function per category.

Each ``check_<category>(rollout, ctx=None) -> list[Event]`` reads the rollout through an
:class:`~critic.context.AuditContext` (built on the spot when ``ctx`` is None or an
:class:`~critic.context.AuditConfig`) and returns its events, consecutive frames merged
into one event. Every threshold is derived from the rollout's own physics: the particle
radius ``r`` (m), the frame time ``dt`` (s), gravity ``g`` (m/s^2), the materials and the
velocities seen; the formula is in each docstring. ``eps`` is the float32 resolution of
positions (``4 * eps32 * max|x|``, m), added so that no check fires on round-off.
"""

from __future__ import annotations

import warnings
from typing import Callable, Union

import numpy as np

from particles import Rollout
from particles.keypoints import kabsch

from .context import KEPLER_DENSITY, AuditConfig, AuditContext, _ENERGY_MATERIALS, _rotvec
from .report import Event

__all__ = [
    "check_penetration", "check_teleport", "check_vanish", "check_rigidity", "check_floating", "check_energy",
    "check_jitter", "CHECKS", "REQUIRES", "energy_rise",
]

_N_IDS = 4  # particle ids quoted per event


def _ctx(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None]) -> AuditContext:
    if isinstance(ctx, AuditContext):
        if ctx.rollout is not rollout:
            raise ValueError("ctx: built for another rollout")
        return ctx
    return AuditContext(rollout, ctx)


def _runs(frames: np.ndarray, gap: int) -> list[tuple[int, int]]:
    """Sorted unique frame indices -> list of (first, last) runs; runs closer than ``gap + 1`` frames join."""
    if len(frames) == 0:
        return []
    frames = np.asarray(frames)
    cut = np.flatnonzero(np.diff(frames) > gap + 1)
    starts = np.concatenate([[0], cut + 1])
    ends = np.concatenate([cut, [len(frames) - 1]])
    return [(int(frames[s]), int(frames[e])) for s, e in zip(starts, ends)]


def _sev(bound: float, value: float) -> float:
    """Severity of ``value`` past ``bound``: ``1 - bound / value`` in [0, 1]."""
    if not np.isfinite(value) or value <= 0:
        return 1.0 if not np.isfinite(value) else 0.0
    return float(np.clip(1.0 - bound / value, 0.0, 1.0))


def _mm(x: float) -> str:
    """A length for a message: mm below 1 m (two decimals below 10 mm), m above."""
    if abs(x) >= 1.0:
        return f"{x:.2f} m"
    return f"{x * 1000:.2f} mm" if abs(x) < 0.01 else f"{x * 1000:.1f} mm"


def _mean_pos(ctx: AuditContext, t: int, ids: np.ndarray) -> tuple[float, float, float]:
    p = ctx.pos[t, ids].astype(np.float64)
    p = p[np.isfinite(p).all(1)]
    return tuple(p.mean(0)) if len(p) else (np.nan, np.nan, np.nan)


def _particle_events(ctx: AuditContext, category: str, t: np.ndarray, p: np.ndarray, value: np.ndarray,
                     bound: np.ndarray, message: Callable[[int, int, int, int, float, float, np.ndarray], str],
                     loc_frame: Callable[[int], int] = lambda f: f) -> list[Event]:
    """Events from flagged (frame ``t``, particle ``p``) entries with an observed ``value`` above ``bound``.

    Flags are grouped per object and merged over consecutive frames. The event's peak is the
    flag with the highest severity; its location is the mean position (at ``loc_frame(peak
    frame)``) of the particles flagged at the peak frame; ``particles`` are the worst of them.
    ``message(obj, first, last, peak_frame, value, bound, ids)`` writes the sentence.
    """
    events = []
    if len(t) == 0:
        return events
    sev = 1.0 - bound / np.maximum(value, 1e-30)
    obj = ctx.obj[p]
    for k in np.unique(obj):
        mk = obj == k
        tk, pk, vk, bk, sk = t[mk], p[mk], value[mk], bound[mk], sev[mk]
        for first, last in _runs(np.unique(tk), ctx.config.merge_gap):
            m = (tk >= first) & (tk <= last)
            i = np.flatnonzero(m)[np.argmax(sk[m])]
            tp = int(tk[i])
            at = m & (tk == tp)
            ids = pk[at][np.argsort(-sk[at])]
            events.append(Event(
                category=category, frame=first, end_frame=last, object=int(k) if ctx.has_objects else None,
                other=None, location=_mean_pos(ctx, loc_frame(tp), pk[at]), severity=float(np.clip(sk[i], 0, 1)),
                particles=tuple(ids[:_N_IDS]),
                message=message(int(k), first, last, tp, float(vk[i]), float(bk[i]), pk[at]),
            ))
    return events


def _frame_events(ctx: AuditContext, category: str, k: int, flags: np.ndarray, frames: np.ndarray,
                  severity: np.ndarray, make: Callable[[int, int, int], tuple[tuple, tuple, str]]) -> list[Event]:
    """Events of object ``k`` from per-frame ``flags`` (bool, aligned with ``frames``) and ``severity``.

    ``make(first, last, peak)`` returns ``(location, particle_ids, message)``.
    """
    out = []
    hit = frames[flags]
    for first, last in _runs(hit, ctx.config.merge_gap):
        m = flags & (frames >= first) & (frames <= last)
        i = np.flatnonzero(m)[np.argmax(severity[m])]
        loc, ids, msg = make(first, last, int(frames[i]))
        out.append(Event(category, first, last, k if ctx.has_objects else None, None, loc,
                         float(np.clip(severity[i], 0, 1)), ids, msg))
    return out


# ====================================================================== penetration


def check_penetration(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None] = None) -> list[Event]:
    """Two objects, or an object and the ground, overlap.

    Particles are spheres of radius ``r`` inside their objects, so touching objects have
    particle centres ``2 r`` apart and a particle resting on the ground has its centre ``r``
    above it. With ``tol = contact_tolerance * r + eps`` a pair of particles of different
    objects (not both kinematic, at least one object free) penetrates when its depth
    ``2 r - |x_i - x_j| > tol``; a free object penetrates the ground when
    ``(ground + r) - min z > tol``. The pair search is the Warp hash grid of
    :func:`particles.graph.radius_search` with neighbour lists reused while particles move less
    than ``r / 2`` (:attr:`AuditContext._pair_search`), run only on particles inside another
    object's box.
    ``location``: mean midpoint of the penetrating pairs (ground: mean of the penetrating
    particles) at the deepest frame. ``severity = 1 - tol / depth``.
    """
    ctx = _ctx(rollout, ctx)
    tol = ctx.config.contact_tolerance * ctx.r + ctx.eps_pos
    events: list[Event] = []
    # ---- object-object
    pr = ctx.pairs
    if len(pr["frame"]):
        depth = ctx.contact_dist - pr["dist"].astype(np.float64)
        oa, ob = ctx.obj[pr["i"]], ctx.obj[pr["j"]]
        free = ctx.obj_dynamic[oa] | ctx.obj_dynamic[ob]
        seen = ctx.obj_observed[pr["frame"], oa] & ctx.obj_observed[pr["frame"], ob]  # hidden = missing data
        hit = (depth > tol) & free & seen
        if hit.any():
            f, i, j, d = pr["frame"][hit], pr["i"][hit], pr["j"][hit], depth[hit]
            a, b = np.minimum(ctx.obj[i], ctx.obj[j]), np.maximum(ctx.obj[i], ctx.obj[j])
            for pa, pb in sorted(set(zip(a.tolist(), b.tolist()))):
                m = (a == pa) & (b == pb)
                fm, im, jm, dm = f[m], i[m], j[m], d[m]
                frames = np.unique(fm)
                peak_depth = np.array([dm[fm == x].max() for x in frames])
                for first, last in _runs(frames, ctx.config.merge_gap):
                    w = (frames >= first) & (frames <= last)
                    tp = int(frames[w][np.argmax(peak_depth[w])])
                    at = fm == tp
                    dmax = float(dm[at].max())
                    mid = 0.5 * (ctx.pos[tp, im[at]].astype(np.float64) + ctx.pos[tp, jm[at]])
                    worst = np.argmax(dm[at])
                    ids = (int(im[at][worst]), int(jm[at][worst]))
                    span = f"at frame {first}" if first == last else f"from frame {first} to {last}"
                    msg = (f"Objects {ctx.name(pa)} and {ctx.name(pb)} interpenetrate {span}: particle centres come "
                           f"{_mm(ctx.contact_dist - dmax)} apart where touching spheres of radius {_mm(ctx.r)} "
                           f"sit {_mm(ctx.contact_dist)} apart (overlap {_mm(dmax)}, tolerance {_mm(tol)}).")
                    events.append(Event("penetration", first, last, pa, pb, tuple(mid.mean(0)), _sev(tol, dmax), ids, msg))
    # ---- ground
    if ctx.ground is not None:
        lo, _ = ctx.bbox
        rest = ctx.ground + ctx.r
        with np.errstate(invalid="ignore"):
            depth_g = rest - lo[:, :, 2].astype(np.float64)  # (T, K)
        frames = np.arange(ctx.T)
        for k in np.flatnonzero(ctx.obj_dynamic):
            d = np.nan_to_num(depth_g[:, k], nan=-np.inf)
            flags = (d > tol) & ctx.obj_observed[:, k]

            def make(first, last, peak, k=k, d=d):
                ids = ctx.ids(k)
                z = ctx.pos[peak, ids, 2].astype(np.float64)
                deep = ids[np.nan_to_num(rest - z, nan=-np.inf) > tol]
                order = deep[np.argsort(ctx.pos[peak, deep, 2])]
                span = f"at frame {first}" if first == last else f"from frame {first} to {last}"
                h = rest - d[peak] - ctx.ground
                where = f"{_mm(h)} above" if h >= 0 else f"{_mm(-h)} below"
                msg = (f"{ctx.subject(k)} sinks into the ground {span}: its lowest particle centre is "
                       f"{where} the ground where a resting sphere's centre sits r = {_mm(ctx.r)} above it "
                       f"(overlap {_mm(d[peak])}, tolerance {_mm(tol)}).")
                return _mean_pos(ctx, peak, deep), tuple(order[:_N_IDS]), msg

            sev = 1.0 - tol / np.maximum(d, 1e-30)
            events += _frame_events(ctx, "penetration", int(k), flags, frames, sev, make)
    return events


# ====================================================================== teleport


def check_teleport(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None] = None) -> list[Event]:
    """An object (rigid: its pose; deformable: a particle) jumps further in one frame than its
    velocity, spin, gravity and contacts explain.

    **Rigid objects** (:attr:`AuditContext.obj_rigid`) are judged on their pose from
    :attr:`AuditContext.rigid`, never on single particles, so a rolling wheel's fast rim and a
    change of shape (check_rigidity's) are not jumps. A jump of the pose at frame ``t`` makes the
    step ``s = t-1 -> t`` stick out from both its neighbours the same way, while a change of velocity
    (a kick: check_energy's; a stop: check_floating's) leaves it agreeing with the step after, and
    a bounce leaves it between the two. With ``F = dc_s - (dc_{s-1} + g dt^2)`` and
    ``B = dc_s - (dc_{s+1} - g dt^2)`` (the centre's step against the steps before and after it,
    under gravity), ``J = min(|F|, |B|) max(cos(F, B), 0) - |dc_{s+1} - dc_{s-1} - 2 g dt^2|`` (the
    change of velocity left behind is subtracted: a kick that friction slows at once sticks out
    too, a jump leaves the motion as it was), taken under gravity and, where the body is supported at every
    frame ``t-2 .. t+1`` of the three steps, again with ``g = 0`` (a body held by a support feels no net
    gravity, a body in flight or leaving its support all of it; the larger counts), and the same for the step rotations
    (``turn``, rad), frame ``t`` is a teleport when ``J + 2 rho sin(turn / 2) > tol + 2 u dt`` (``rho``
    the body's radius, ``u`` the speed of a striker touching it at ``t-1 .. t+1``; ``+ contact_tolerance
    * r`` while it touches anything then: a solver may move a body within its allowed overlap). Torque-free
    precession, rolling and resting contact change the steps smoothly and share nothing. The first
    and last frames (no neighbour step) are not judged.

    **Deformable objects**, particle by particle: for a free particle with steps ``d_t = x_t - x_{t-1}`` and lengths ``s_t = |d_t|`` (m), frame
    ``t >= 2`` is a teleport when either bound fails:

    * speed: ``s_t > max(s_{t-1}, s_{t-2}) + |g| dt^2 + 2 u dt + tol``: its recent steps
      (momentum; two of them, because the step that spans a bounce is a short chord), what
      gravity adds in one frame, and twice the speed ``u`` (m/s) of any tool or moving object
      it touches at frame ``t-1`` or ``t`` (an elastic collision hands on at most twice the
      striker's speed; without object ids, ``u`` is the speed of the fastest *other* particle);
    * direction: with ``p = d_{t-1} + g dt^2`` the predicted step and ``delta = d_t - p`` minus any
      braking along ``p`` (slowing down, even to a stop, is not a jump: floating and energy judge
      it), ``e_t = |delta| > 2 max(e_{t-1}, e_{t-2}) + tol + 2 u dt (+ 2 max(s_{t-1},
      s_{t-2}) if the object touches anything at ``t-1`` or ``t``, since a contact may reverse it)``
      (bound A also grows by ``contact_tolerance * r`` while it touches anything: a solver may project
      a particle out of the overlap it is allowed):
      a free body keeps its velocity up to gravity and the steady turning of its spin, so a
      sideways jump that keeps the speed is caught too;

    with ``tol = teleport_tolerance * r + eps``. A fast ballistic throw
    passes (its step grows by ``|g| dt^2`` per frame); frame 1 has no previous step and is
    not judged. Kinematic (prescribed) particles are not judged. ``location``: rigid, the centre
    of mass after the jump; deformable, mean position of the flagged particles after the jump at
    the worst frame. ``severity = 1 - bound / value``.
    """
    ctx = _ctx(rollout, ctx)
    if ctx.T < 3:
        return []
    tol = ctx.config.teleport_tolerance * ctx.r + ctx.eps_pos
    gdt2 = (ctx.g * ctx.dt * ctx.dt).astype(np.float32)[:, None, None]
    base = ctx.g_mag * ctx.dt * ctx.dt + tol
    src = ctx.source_speed  # (T-1, K) m per step
    push_all = 2.0 * np.maximum(src[1:], src[:-1])  # (T-2, K): 2 u dt at frame t = i + 2
    touching = ctx.supported if ctx.has_objects else np.ones((ctx.T, ctx.K), bool)
    touch_all = touching[1:-1] | touching[2:]  # (T-2, K): touching at frame t-1 or t
    smax = ctx.obj_step_max
    # no particle of an object can break either bound at frame t when its longest steps are short:
    # s_t <= base (bound A) and s_t + s_{t-1} + |g| dt^2 <= tol (bound B)
    quiet = (smax[1:] <= base) & (smax[1:] + smax[:-1] + ctx.g_mag * ctx.dt * ctx.dt <= tol)
    def one(k: int):
        ids = ctx.ids(k)
        freek = ~ctx.kin[ids]
        res = []
        for a, x in ctx.blocks(k, halo=4):
            if x.shape[1] < 3:
                continue
            d = x[:, 1:] - x[:, :-1]  # (3, F-1, n): step j goes from frame a+j to a+j+1
            s = d[0] * d[0]
            s += d[1] * d[1]
            s += d[2] * d[2]
            np.sqrt(s, out=s)  # (F-1, n)
            # frame t = a + j + 2 for j in 0..F-3 compares step j+1 with steps j (and j-1)
            prev = s[:-1].copy()
            np.fmax(prev[1:], s[:-2], out=prev[1:])
            rows = np.arange(a, a + prev.shape[0])  # index into (T-2,) arrays: frame - 2
            if ctx.has_objects:
                push = push_all[rows, k][:, None].astype(np.float32)
            else:  # no objects known: any *other* particle may have struck this one
                sf = np.nan_to_num(s)
                if sf.shape[1] > 1:
                    top = np.partition(sf, sf.shape[1] - 2, axis=1)[:, -2:]
                else:
                    top = np.concatenate([sf, np.zeros_like(sf)], 1)
                first, second = top.max(1), top.min(1)
                other = np.where(sf >= first[:, None], second[:, None], first[:, None])  # (F-1, n)
                push = 2.0 * np.maximum(other[1:], other[:-1]).astype(np.float32)
            allow = prev + np.float32(base)
            allow += push
            # in contact a solver may also project a particle out of its allowed overlap
            allow += np.where(touch_all[rows, k], np.float32(ctx.config.contact_tolerance * ctx.r),
                              np.float32(0.0))[:, None]
            with np.errstate(invalid="ignore"):
                hit_a = s[1:] > allow
            hit_b = np.zeros_like(hit_a)
            allow_v = np.full(hit_a.shape, np.inf, np.float32)
            e = np.zeros(hit_a.shape, np.float32)
            # bound B only where the object touches nothing: there a contact may reverse the
            # velocity, and B's allowance (2 max(s_{t-1}, s_{t-2})) then adds nothing to bound A
            free_rows = ~touch_all[rows, k]
            if free_rows.any():
                pred = d[:, :-1] + gdt2
                dev = d[:, 1:] - pred
                pn = np.sqrt(pred[0] * pred[0] + pred[1] * pred[1] + pred[2] * pred[2])
                pn_safe = np.maximum(pn, 1e-30)
                along = (dev[0] * pred[0] + dev[1] * pred[1] + dev[2] * pred[2]) / pn_safe
                brake = np.clip(along, -pn, 0.0) / pn_safe  # slowing down along the path is not a jump
                dev -= brake[None] * pred
                e = np.sqrt(dev[0] * dev[0] + dev[1] * dev[1] + dev[2] * dev[2])  # (F-2, n)
                eprev = np.full_like(e, np.inf)
                eprev[1:] = e[:-1]
                np.fmax(eprev[2:], e[:-2], out=eprev[2:])
                if a == 0:
                    eprev[0] = np.inf  # frame 2: no earlier change to compare with
                allow_v = 2.0 * eprev + np.float32(tol) + push
                with np.errstate(invalid="ignore"):
                    hit_b = (e > allow_v) & free_rows[:, None]
            hit = (hit_a | hit_b) & freek[None]
            start = 0 if a == 0 else 2  # the first two rows lack history here; the previous block judged them
            hit[:start] = False
            hit &= ~quiet[rows, k][:, None]
            jj, pp = np.nonzero(hit)
            if not len(jj):
                continue
            ha = hit_a[jj, pp]
            res.append((a + jj + 2, ids[pp], np.where(ha, s[1:][jj, pp], e[jj, pp]).astype(np.float64),
                        np.where(ha, allow[jj, pp], allow_v[jj, pp]).astype(np.float64)))
        return res

    todo = [k for k in range(ctx.K) if ctx.counts[k] and not ctx.obj_kinematic[k] and not ctx.obj_rigid[k]
            and not quiet[:, k].all()]
    found = [r for rs in ctx.map_objects(one, todo) for r in rs]
    out_t, out_p, out_v, out_b = ([r[i] for r in found] for i in range(4))
    pose_events = _pose_teleport(ctx, tol, push_all)
    if not out_t:
        return pose_events
    frames, pi = np.concatenate(out_t), np.concatenate(out_p)
    value, bound = np.concatenate(out_v), np.concatenate(out_b)
    lost_t, lost_p = ctx.lost
    if len(lost_t):  # lost particles are vanish's
        lk = set(zip(lost_t.tolist(), lost_p.tolist()))
        keep = np.array([(int(f), int(p)) not in lk and (int(f) - 1, int(p)) not in lk for f, p in zip(frames, pi)])
        frames, pi, value, bound = frames[keep], pi[keep], value[keep], bound[keep]

    def message(k, first, last, peak, v, b, ids):
        span = f"at frame {first}" if first == last else f"between frames {first} and {last}"
        who = f"{len(ids)} of {ctx.counts[k]} particles{ctx.of_object(k)}"
        prev = float(np.nanmax(np.linalg.norm(ctx.pos[peak - 1, ids] - ctx.pos[peak - 2, ids], axis=1))) if len(ids) else 0.0
        verb, their = ("jumps", "its") if len(ids) == 1 else ("jump", "their")
        return (f"{who} {verb} {_mm(v)} in one frame {span} (dt = {ctx.dt:.4g} s), but {their} previous step "
                f"({_mm(prev)}), gravity and the contacts {'it has' if len(ids) == 1 else 'they have'} allow at most "
                f"{_mm(b)}.")

    return _particle_events(ctx, "teleport", frames, pi, value, bound, message) + pose_events


def _pose_teleport(ctx: AuditContext, tol: float, push_all: np.ndarray, turns: bool = True) -> list[Event]:
    """Teleports of rigid objects, judged on their pose (:attr:`AuditContext.rigid`); see check_teleport. With
    ``turns`` False the centre's jump alone is judged (the step rotations' term left out)."""
    events: list[Event] = []
    if ctx.T < 4:
        return events
    kin = ctx.rigid
    g_dt2 = ctx.g * ctx.dt * ctx.dt
    rot = ctx._summary["rot"]
    frames = np.arange(2, ctx.T - 1)  # frame t = s + 1 for the steps s = 1 .. T-3 that have both neighbours
    for k in np.flatnonzero(ctx.obj_rigid):
        dc = kin["dc"][:, k]  # (T-1, 3)
        rho = kin["rho"][k]
        # step s against the one before it and the one after it, under gravity or held by a support
        # (both hypotheses: a resting body feels no net gravity; a jump stands out under either)
        sup = ctx.supported[:, k]
        touch = sup[1:-2] | sup[2:-1] | sup[3:]  # in contact at t-1 .. t+1
        held = sup[:-3] & sup[1:-2] & sup[2:-1] & sup[3:]  # in contact all along the steps t-2 .. t+1
        jump = np.zeros(len(dc) - 2)
        for gg in (g_dt2, 0.0 * g_dt2):
            j = np.maximum(step_jump(dc, gg), 0.0)
            if gg is not g_dt2:  # no net gravity only where a support holds the body all along
                j = np.where(held, j, 0.0)
            jump = np.fmax(jump, j)
        w = rot[1:, k] @ np.swapaxes(rot[:-1, k], -1, -2)  # (T-1, 3, 3) world step rotations
        rf = _rotvec(w[1:-1] @ np.swapaxes(w[:-2], -1, -2))
        rb = _rotvec(w[1:-1] @ np.swapaxes(w[2:], -1, -2))
        last_r = np.linalg.norm(_rotvec(w[2:] @ np.swapaxes(w[:-2], -1, -2)), axis=1)
        turn = np.maximum(_common(rf, rb) - last_r, 0.0) if turns else np.zeros(len(jump))
        value = jump + 2.0 * rho * np.sin(0.5 * np.minimum(turn, np.pi))
        push = np.maximum(push_all[:-1, k], push_all[1:, k])  # strikers at t-1 .. t+1
        # a contact solver may move a body within the overlap it is allowed from frame to frame
        bound = tol + push + np.where(touch, ctx.config.contact_tolerance * ctx.r, 0.0)
        with np.errstate(invalid="ignore"):
            flags = value > bound
        if not flags.any():
            continue
        sev = 1.0 - bound / np.maximum(value, 1e-30)

        def make(first, last, peak, k=k, value=value, bound=bound):
            i = peak - 2
            span = f"at frame {first}" if first == last else f"between frames {first} and {last}"
            msg = (f"Rigid object {ctx.name(k)} jumps {span} (dt = {ctx.dt:.4g} s): its pose steps "
                   f"{_mm(value[i])} off the motion of both the frame before and the frame after, where "
                   f"gravity and the contacts it has allow {_mm(bound[i])}.")
            return tuple(ctx.com[peak, k]), tuple(ctx.ids(k)[:_N_IDS]), msg

        events += _frame_events(ctx, "teleport", int(k), flags, frames, sev, make)
    return events


def step_jump(dc: np.ndarray, gg) -> np.ndarray:
    """(S-2,) m: how far each inner step of the centre steps ``dc (S, 3)`` m sticks out from both its neighbours the
    same way (:func:`_common` of its departures from the step before and the step after, each less the gravity step
    ``gg (3,)`` m, ``g dt^2`` or zero), minus the change of velocity it leaves behind (``|dc_{s+1} - dc_{s-1} - 2 gg|``:
    a kick that friction then slows also sticks out from both sides, but a jump leaves the motion as it was). May be
    negative. The pose teleport test (check_teleport) and the tracks' test of the tracks still seen
    (``critic.tracks._survivors_jump``) judge a jump with it."""
    fwd = dc[1:-1] - (dc[:-2] + gg)
    bwd = dc[1:-1] - (dc[2:] - gg)
    last = np.linalg.norm(dc[2:] - dc[:-2] - 2 * gg, axis=1)
    return _common(fwd, bwd) - last


def _common(f: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(S,) float: the part two deviation vectors ``f, b (S, 3)`` share, ``min(|f|, |b|) max(cos(f, b), 0)``:
    a step that sticks out from both neighbours the same way (a jump) has it, a change of velocity
    (one neighbour agrees) or a bounce (the step lies between its neighbours) has none."""
    nf, nb = np.linalg.norm(f, axis=1), np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = (f * b).sum(1) / np.maximum(nf * nb, 1e-300)
    return np.minimum(nf, nb) * np.maximum(cos, 0.0)


# ====================================================================== vanish


def check_vanish(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None] = None) -> list[Event]:
    """Particles become non-finite or leave the world, or an object collapses.

    * Lost particles: a non-finite coordinate, or a position outside the world box
      (:attr:`AuditContext.world`: the scene's frame-0 box grown by its diagonal plus the
      farthest any particle can travel in the rollout, ``(v0 + 2 u) tau + |g| tau^2 / 2``).
      ``location``: the lost particles' mean last in-world position; severity 1 for
      non-finite, ``1 - bound / distance`` outside the box.
    * Collapse: ``n >= 2`` particles of radius ``r`` cannot fill less than
      ``V_min = n (4/3) pi r^3 / 0.7405`` (densest sphere packing); an object whose padded box
      volume ``prod(extent + 2 r)`` falls below ``collapse_fraction * V_min`` has collapsed
      (kinematic objects are not judged). ``severity = 1 - V / (collapse_fraction * V_min)``;
      ``location``: the object's centre.
    """
    ctx = _ctx(rollout, ctx)
    events = []
    ti, pi = ctx.lost
    if len(ti):
        lostset = set(zip(ti.tolist(), pi.tolist()))
        lo, hi = ctx.world
        p = ctx.pos[ti, pi].astype(np.float64)
        with np.errstate(invalid="ignore"):
            out = np.maximum(lo - p, p - hi).max(1)
        finite = np.isfinite(out)
        half = 0.5 * float(np.linalg.norm(hi - lo))
        value = np.where(finite, half + np.maximum(out, 0), np.inf)
        bound = np.full(len(ti), half)

        def message(k, first, last, peak, v, b, ids):
            n_nan = int((~np.isfinite(ctx.pos[first, ids]).all(1)).sum()) if len(ids) else 0
            span = f"from frame {first}" + (f" to {last}" if last < ctx.T - 1 else " on")
            what = []
            n_out = len(ids) - n_nan
            if n_nan:
                what.append(f"{n_nan} {'gets' if n_nan == 1 else 'get'} non-finite positions")
            if n_out:
                what.append(f"{n_out} {'leaves' if n_out == 1 else 'leave'} the world box (it extends {_mm(b)} "
                            "from the scene's centre)")
            return f"Of the {ctx.counts[k]} particles{ctx.of_object(k)}, " + " and ".join(what) + f" {span}."

        ev = _particle_events(ctx, "vanish", ti, pi, value, bound, message)
        # locate at the last frame where the lost particles were still in the world
        for e in ev:
            first = e.frame
            lost_ids = pi[ti == first]
            if ctx.has_objects:
                lost_ids = lost_ids[ctx.obj[lost_ids] == e.object]
            loc = e.location
            for f in range(first, -1, -1):
                ok = np.array([q for q in lost_ids.tolist() if (f, q) not in lostset], np.int64)
                if len(ok):
                    loc = _mean_pos(ctx, f, ok)
                    break
            events.append(Event(e.category, e.frame, e.end_frame, e.object, e.other, loc, e.severity, e.particles, e.message))
    # ---- collapse
    if ctx.has_objects:
        lo, hi = ctx.bbox
        frames = np.arange(ctx.T)
        for k in range(ctx.K):
            n = int(ctx.counts[k])
            if n < 2 or ctx.obj_kinematic[k]:
                continue
            v_min = n * (4.0 / 3.0) * np.pi * ctx.r ** 3 / KEPLER_DENSITY
            bound = ctx.config.collapse_fraction * v_min
            vol = np.prod((hi[:, k] - lo[:, k]).astype(np.float64) + 2 * ctx.r, axis=1)
            with np.errstate(invalid="ignore"):
                flags = (vol < bound) & ctx.obj_valid[:, k]
            if not flags.any():
                continue
            ratio = bound / np.maximum(vol, 1e-300)
            sev = 1.0 - 1.0 / np.maximum(ratio, 1.0)

            def make(first, last, peak, k=k, vol=vol, v_min=v_min):
                span = f"from frame {first}" + (f" to {last}" if last < ctx.T - 1 else " on")
                msg = (f"Object {ctx.name(k)} collapses {span}: its {ctx.counts[k]} particles of radius {_mm(ctx.r)} "
                       f"occupy a box of {vol[peak] * 1e6:.3g} cm^3, less than {ctx.config.collapse_fraction:g} x the "
                       f"{v_min * 1e6:.3g} cm^3 they fill at the densest packing.")
                return tuple(ctx.com[peak, k]), tuple(ctx.ids(k)[:_N_IDS]), msg

            events += _frame_events(ctx, "vanish", k, flags, frames, sev, make)
    return events


# ====================================================================== rigidity


def _robust_residual(ctx: AuditContext, k: int, frames: np.ndarray, tol: float) -> np.ndarray:
    """(F, n_k) float64, m: residuals of object ``k`` at ``frames`` after the best rigid fit, refit on
    the particles that fit (residual <= ``tol``) when that lowers the worst residual: one stray
    particle cannot bend the fit and make its neighbours look deformed."""
    ref, x0c = ctx._summary["shapes"][k]
    ids = ctx.ids(k)
    xt = ctx.pos[frames][:, ids].astype(np.float64)  # (F, n, 3)
    res = np.linalg.norm(xt - ctx.rigid_fit(k, frames), axis=2)
    w = (res <= tol).astype(np.float64) * ctx.mass[ids][None]
    few = (res <= tol).sum(1) < 3
    w[few] = ctx.mass[ids][None]
    rot, t = kabsch(x0c.T, xt, w)
    res2 = np.linalg.norm(xt - (np.einsum("fij,nj->fni", rot, x0c.T) + t[:, None]), axis=2)
    better = res2.max(1) < res.max(1)
    res[better] = res2[better]
    return res


_SETTLED = 0.9  # share of its worst residual at which a change of shape counts as settled (for its location)


def check_rigidity(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None] = None) -> list[Event]:
    """A ``rigid`` object changes shape: what is left after its best rigid motion.

    Per frame, the best rigid motion (Kabsch, mass weights: rotation ``R_t``, centre ``c_t``) of the
    object's reference shape (its first valid frame) is fit to its particles
    (:attr:`AuditContext.rigid_residual`, one batched fit over all frames); the residual of
    particle ``i`` is ``|x_i(t) - (R_t (x_i(ref) - c_ref) + c_t)|``. The object fails at frame ``t``
    when its largest residual exceeds ``tol = rigidity_tolerance * r + eps`` after a refit on the
    particles that fit (so one stray particle cannot bend the fit). A stretch, shear or bend stays
    in the residual however the object moves, while a rigid jump leaves none (that is a teleport).
    Only free objects of material ``rigid`` are judged: elastic, plastic, cloth, ... may deform.
    ``location``: mean position, at the first frame of the event where the residual reaches 90 % of its
    worst, of the particles that deviate more than half of that frame's largest residual (the most
    deformed part, where the change appears); ``severity = 1 - tol / residual``.
    """
    ctx = _ctx(rollout, ctx)
    events = []
    if not ctx.has_materials:
        return events
    tol = ctx.config.rigidity_tolerance * ctx.r + ctx.eps_pos
    res_all = ctx.rigid_residual
    for k in np.flatnonzero(ctx.obj_rigid):
        with np.errstate(invalid="ignore"):
            cand = np.flatnonzero(res_all[:, k] > tol)
        if not len(cand):
            continue
        res = _robust_residual(ctx, int(k), cand, tol)
        worst = res.max(1)
        flags = worst > tol
        if not flags.any():
            continue
        sev = 1.0 - tol / np.maximum(worst, 1e-30)
        ids = ctx.ids(int(k))
        ref = ctx._summary["shapes"][int(k)][0]

        def make(first, last, peak, k=int(k), cand=cand, res=res, ids=ids, ref=ref, worst=worst):
            # where the change appears: the first frame of the run at 90 % of its worst residual (the body
            # may travel far while it stays deformed); the particles displaced more than half of that
            run = (cand >= first) & (cand <= last)
            at = np.flatnonzero(run & (worst >= _SETTLED * worst[run].max()))[0]
            row = res[at]
            dev = ids[row > max(tol, 0.5 * row.max())]
            peak = int(cand[at])
            order = ids[np.argsort(-row)]
            span = f"at frame {first}" if first == last else f"from frame {first} to {last}"
            msg = (f"Rigid object {ctx.name(k)} changes shape {span}: {len(dev)} of its {len(ids)} particles deviate "
                   f"up to {_mm(float(row.max()))} from the best rigid motion of its frame-{ref} shape "
                   f"(tolerance {_mm(tol)}).")
            return _mean_pos(ctx, peak, dev), tuple(order[:_N_IDS]), msg

        events += _frame_events(ctx, "rigidity", int(k), flags, cand, sev, make)
    return events


# ====================================================================== floating


def check_floating(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None] = None) -> list[Event]:
    """An object with nothing to support it does not fall freely.

    Support is geometry: an object touching the ground or any other object (particle centres
    within ``2 r + contact_margin * r``, found by the Warp pair search) is supported. For a
    free object unsupported at frame ``t`` (:attr:`AuditContext.supported` allows for the motion into and
    out of each frame, so nothing touches it from ``t-1`` to ``t+1``), the centre-of-mass acceleration
    ``a_t = (c_{t+1} - 2 c_t + c_{t-1}) / dt^2`` must equal ``g``. Frame ``t`` fails when
    ``|a_t - g| > tol`` and so does the (lower) median of ``|a - g|`` over the unsupported frames in the
    window of ``W = max(3, round(floating_window / dt))`` frames from ``t`` on (a median: one kick is
    a spike, not a lasting departure from free fall, and of two frames the smaller counts; at least two
    unsupported frames must be in the window; from ``t`` on: a hover is caught at its start), with
    ``tol = floating_tolerance * |g| + 8 eps / dt^2``. An object hovering with nothing under it
    has ``|a - g| = |g|``; a ballistic throw has ``a = g``. Skipped when ``|g| = 0``.
    Failing frames with only unjudged (supported) frames between them, at most ``W`` apart, are one event.
    ``location``: centre of mass at the first failing frame; ``severity = 1 - tol / median deviation``.
    """
    ctx = _ctx(rollout, ctx)
    events = []
    if not ctx.has_objects or ctx.T < 3 or ctx.g_mag == 0:
        return events
    tol = ctx.config.floating_tolerance * ctx.g_mag + 8 * ctx.eps_pos / ctx.dt ** 2
    w = max(3, int(round(ctx.config.floating_window / ctx.dt)))
    frames = np.arange(1, ctx.T - 1)
    for k in np.flatnonzero(ctx.obj_dynamic):
        c = ctx.com[:, k]
        # unsupported at t: nothing touches it during the steps into and out of t (AuditContext.supported
        # allows for the motion between frames), so nothing but gravity acts on the three frames the
        # acceleration at t is measured from
        alone = ~ctx.supported[:, k]
        acc = (c[2:] - 2 * c[1:-1] + c[:-2]) / ctx.dt ** 2  # (T-2, 3) at frames 1..T-2
        dev = np.linalg.norm(acc - ctx.g, axis=1)
        ok = alone[1:-1] & np.isfinite(dev)
        if not ok.any():
            continue
        # the median over the unsupported frames of the window from t on: one kick (a spike) is not a
        # lasting departure from free fall, a hover or a glide is, from its first frame
        devn = np.where(ok, dev, np.nan)
        padded = np.concatenate([devn, np.full(w - 1, np.nan)])
        win = np.lib.stride_tricks.sliding_window_view(padded, w)  # (T-2, w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            mean = np.nanquantile(win, 0.5, axis=1, method="lower")  # of two frames, the smaller
        mean = np.nan_to_num(mean, nan=0.0)
        # lasting: at least two judged frames of the window witness it (one frame just clear of the ground
        # between sampled contacts says little: a sharp corner may reach further than its particles show)
        mean[(~np.isnan(win)).sum(axis=1) < 2] = 0.0
        flags = ok & (dev > tol) & (mean > tol)
        if not flags.any():
            continue
        # one spell is one event: two flagged frames with only unjudged (supported) frames between them,
        # at most W apart, join
        judged = np.flatnonzero(ok)
        both = flags[judged[1:]] & flags[judged[:-1]] & (np.diff(judged) <= w)
        for a_, b_ in zip(judged[:-1][both], judged[1:][both]):
            flags[a_:b_ + 1] = True
        sev = 1.0 - tol / np.maximum(mean, 1e-30)

        def make(first, last, peak, k=k, acc=acc, mean=mean):
            a = acc[peak - 1]
            span = f"from frame {first} to {last}"
            msg = (f"Object {ctx.name(k)} touches nothing {span} yet its centre of mass accelerates at "
                   f"({a[0]:.2f}, {a[1]:.2f}, {a[2]:.2f}) m/s^2 instead of falling with g = "
                   f"({ctx.g[0]:.2f}, {ctx.g[1]:.2f}, {ctx.g[2]:.2f}) m/s^2 (median deviation "
                   f"{mean[peak - 1]:.2f} m/s^2, tolerance {tol:.2f}).")
            return tuple(ctx.com[first, k]), tuple(ctx.ids(k)[:_N_IDS]), msg

        events += _frame_events(ctx, "floating", int(k), flags, frames, sev, make)
    return events


# ====================================================================== energy


def energy_rise(ctx: AuditContext, k: int, e: np.ndarray, ke: np.ndarray) -> tuple[np.ndarray, ...]:
    """:func:`check_energy`'s judgement of object ``k``'s energy over the steps: ``(flags, rise, budget, tol)``,
    each shaped as ``e``; ``tol`` also holds ``ctx.energy_slack (T-1, K)`` (J) where a caller set it (critic.tracks:
    the turn's own noise in the rotational energy). ``e`` (T-1,) or (T-1, C) float64, J: the object's mechanical energy per step (C candidate
    series, e.g. the energy of other plausible centres of mass of the same motion, judged at once); ``ke`` the
    kinetic part (J, same shape), which sets the velocity term of the tolerance. ``flags`` (bool): the rise above
    the budget exceeds ``tol``. Contact, sources and impacts are the context's, shared by all columns; a step is
    judged where every column is finite."""
    one = e.ndim == 1
    e2 = e.reshape(len(e), -1)
    ke2 = ke.reshape(len(ke), -1)
    h = ctx.config.energy_tolerance * ctx.r + ctx.eps_pos
    contact = ctx.contact[:-1] | ctx.contact[1:]
    giver = (ctx.obj_tool[None, :] | ctx.obj_dynamic[None, :]) & ctx.moving  # (T-1, K): works during step s
    sourced = (contact[:, k] & giver).any(axis=1)
    chord = ctx.g_mag ** 2 * ctx.dt ** 2 / 8.0  # J/kg
    look = max(2, int(np.ceil(ctx.config.energy_window / ctx.dt)))  # steps the energy must stay down
    m = ctx.obj_mass[k]
    if ctx.obj_rigid[k]:
        dv = 2.0 * np.sqrt(3.0) * ctx.pose_noise[k] / ctx.dt
    else:
        dv = 2.0 * (ctx.config.jitter_amplitude * ctx.r + ctx.eps_pos) / ctx.dt  # m/s
    ok = np.isfinite(e2).all(axis=1)
    v = np.sqrt(2 * np.maximum(np.nan_to_num(ke2), 0.0) / m)
    unreliable = ctx.impact[:-1, k] | ctx.impact[1:, k]
    tol = m * (ctx.g_mag * h + v * dv + 0.5 * dv * dv + np.where(unreliable, chord, 0.0)[:, None])
    if ctx.energy_slack is not None:  # (T-1, K) J a caller knows more of (the tracks' turn noise)
        tol = tol + ctx.energy_slack[:, k][:, None]
    # the budget follows the energy down only to the highest energy of the next L steps
    fwd = e2.copy()
    for j in range(1, look + 1):
        fwd[:-j] = np.fmax(fwd[:-j], e2[j:])
    budget = np.full(e2.shape, np.nan)
    b = np.full(e2.shape[1], np.nan)
    for s in range(len(e2)):
        if not ok[s] or sourced[s]:
            b[:] = np.nan
            continue
        if np.isnan(b[0]):
            b = e2[s].copy() if s == 0 or not ok[s - 1] else np.maximum(e2[s], e2[s - 1])
        budget[s] = b
        if not unreliable[s]:
            b = np.where(e2[s] <= b + tol[s], np.minimum(b, fwd[s]), b)
    rise = e2 - budget
    with np.errstate(invalid="ignore"):
        flags = np.nan_to_num(rise, nan=-np.inf) > tol
    if one:
        return flags[:, 0], rise[:, 0], budget[:, 0], tol[:, 0]
    return flags, rise, budget, tol


def check_energy(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None] = None) -> list[Event]:
    """An object gains energy that no working contact explains.

    Over each step ``s`` (frame ``s`` to ``s+1``) an object's mechanical energy is
    ``E_s = KE_s - M g . (c_s + c_{s+1}) / 2`` (J). For rigid objects ``KE_s`` is translational plus
    rotational, ``M |dc|^2 / (2 dt^2) + dthb^T I0 dthb / (2 dt^2)`` from the pose kinematics
    (:attr:`AuditContext.rigid`: exact for free flight, spin about a principal axis and rolling); for
    the other judged materials (plastic, granular, fluid: no hidden elastic energy) it is
    ``sum_i m_i |dx_i|^2 / (2 dt^2)``.

    Only a *working* contact adds energy: step ``s`` is sourced when the object touches, at frame
    ``s`` or ``s+1``, a tool or a free object that moves during the step (some particle steps more than
    ``2 * jitter_amplitude * r``). The ground, static objects, resting objects and a stopped tool are
    passive: they only take energy away. Within a run of unsourced steps the energy may not exceed a
    budget ``B`` by more than ``tol_s``; ``B`` starts at ``max(E_{s0-1}, E_{s0})`` and follows the energy
    down (friction and impacts only dissipate), but only to ``max(E_s .. E_{s+L})`` with
    ``L = max(2, ceil(energy_window / dt))`` steps: a dip that comes back within ``energy_window``
    (energy stored in a compliant contact, the chord of a step spanning an impact) is not a loss. Steps within 2 frames of a contact starting or ending
    (:attr:`AuditContext.impact`) are judged too, against ``B`` plus ``M g^2 dt^2 / 8`` (the most the
    chord of a step spanning a bounce can overstate: ``max_v M (g v dt / 2 - v^2 / 2)``), but do not
    lower ``B``: a compliant contact stores energy for a moment and gives it back, never more. So a hop
    from the ground, a slide or spin-up from rest and a kick in flight are all gains.

    ``tol_s = M (|g| h + v_s dv + dv^2 / 2)`` with ``h = energy_tolerance * r`` (a lift of the object
    by ``h``) and a velocity resolution ``dv`` (m/s): rigid, ``2 sqrt(3) pose_noise / dt``
    (:attr:`AuditContext.pose_noise`, the precision of the fitted centre; ``sqrt(3)`` for three
    axes); others, ``2 A / dt`` with ``A = jitter_amplitude * r`` the noise floor of single
    particles (see check_jitter); ``v_s = sqrt(2 KE_s / M)``. ``location``: centre of mass at the
    frame the gain starts; ``severity = 1 - tol / rise``.
    """
    ctx = _ctx(rollout, ctx)
    events = []
    if not ctx.has_objects or ctx.T < 3:
        return events
    c = ctx.com
    mid = 0.5 * (c[1:] + c[:-1])  # (T-1, K, 3)
    pe = -ctx.obj_mass[None, :] * (mid @ ctx.g)
    steps = np.arange(ctx.T - 1)
    for k in np.flatnonzero(ctx.obj_dynamic):
        if ctx.materials[k] not in _ENERGY_MATERIALS:
            continue
        ke = ctx.rigid["ke"][:, k] if ctx.obj_rigid[k] else ctx.kinetic[:, k]
        e = ke + pe[:, k]
        flags, rise, budget, tol = energy_rise(ctx, int(k), e, ke)
        if not flags.any():
            continue
        sev = 1.0 - tol / np.maximum(rise, 1e-30)

        def make(first, last, peak, k=k, e=e, budget=budget, tol=tol):
            frame = min(first + 1, ctx.T - 1)
            msg = (f"Object {ctx.name(k)} gains energy between frames {first} and {last + 1} while touching nothing "
                   f"that moves: kinetic + potential rises from {budget[peak]:.4g} J to {e[peak]:.4g} J "
                   f"(+{e[peak] - budget[peak]:.3g} J, tolerance {tol[peak]:.3g} J).")
            return tuple(ctx.com[frame, k]), tuple(ctx.ids(k)[:_N_IDS]), msg

        for ev in _frame_events(ctx, "energy", int(k), flags, steps, sev, make):
            # a step s is visible at frame s + 1
            events.append(Event(ev.category, min(ev.frame + 1, ctx.T - 1), min(ev.end_frame + 1, ctx.T - 1), ev.object,
                                ev.other, ev.location, ev.severity, ev.particles, ev.message))
    return events


# ====================================================================== jitter


def _reversal_windows(rev: np.ndarray, w: int) -> np.ndarray:
    """``rev (R, ...)`` bool reversals per frame row -> bool, the rows that reverse and around which at
    least half of a window of ``w`` rows reverse."""
    half = w // 2
    n = rev.shape[0]
    cnt = np.cumsum(np.concatenate([np.zeros((1,) + rev.shape[1:], np.int32), rev.astype(np.int32)]), axis=0)
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) - half + w, 0, n)
    return rev & (2 * (cnt[hi] - cnt[lo]) >= w)


def _step_reversals(x: np.ndarray, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """``x (3, T, n)`` trajectories -> ``(rev (T-2, n), s (T-1, n))``: frame ``row + 1`` reverses when the
    steps before and after both exceed ``2 amp`` and point against each other; ``s`` the step lengths."""
    return _reversals_of_steps(x[:, 1:] - x[:, :-1], amp)


def _reversals_of_steps(d: np.ndarray, amp: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_step_reversals` from the steps ``d (3, T-1, n)`` themselves."""
    s = np.sqrt(d[0] * d[0] + d[1] * d[1] + d[2] * d[2])  # (T-1, n)
    big = s > 2 * amp  # NaN -> False
    rev = big[1:] & big[:-1]
    rev &= (d[0, 1:] * d[0, :-1] + d[1, 1:] * d[1, :-1] + d[2, 1:] * d[2, :-1]) < 0
    return rev, s


#: Share of a window's frames a shaken body has off its path. Random offsets flip the departure between
#: consecutive frames with probability ~2/3 and a flip marks both frames, so ~(1 - (1/3)^2) ~ 0.9 of a
#: shaken body's frames are off the path; a contact solver's chatter at coarse frame times, a fraction.
_SHAKEN = 2.0 / 3.0


def _support_pushes_removed(ctx: AuditContext, u: np.ndarray, sup: np.ndarray) -> np.ndarray:
    """``u (n, 3)`` m, a centre's departures from the midpoint of its neighbours (``u_t = -a_t dt^2 / 2``),
    with what a support can explain taken out: at frames where the body is supported (``sup (n,)``), the
    part of its acceleration beyond gravity that points up (against ``g``) is a push of the support (a
    bounce, or the normal force that holds a resting body) and is replaced by free fall along ``g``.
    A support pushes, never pulls: a downward pull and every sideways departure stay."""
    if ctx.g_mag == 0:
        return u
    up = -ctx.g / ctx.g_mag
    free = -0.5 * ctx.g * ctx.dt * ctx.dt  # u of free fall
    e = u - free
    en = e @ up  # < 0: accelerated up beyond gravity
    push = sup & (en < 0)
    out = u.copy()
    out[push] -= en[push, None] * up
    return out


def _pose_jitter(ctx: AuditContext, k: int, amp: float, w: int, touched: np.ndarray) -> list[Event]:
    """Jitter of rigid object ``k``'s pose about its own smooth motion (see check_jitter)."""
    kin = ctx.rigid
    dc = kin["dc"][:, k]  # (T-1, 3)
    rot = ctx._summary["rot"][:, k]
    u = 0.5 * (dc[:-1] - dc[1:])  # (T-2, 3): c_t - (c_{t-1} + c_{t+1}) / 2 at frames 1 .. T-2
    step = rot[1:] @ np.swapaxes(rot[:-1], -1, -2)
    ur = 0.5 * kin["rho"][k] * _rotvec(step[1:] @ np.swapaxes(step[:-1], -1, -2))  # the same for the turn, m
    n = len(u)
    half = w // 2
    # off the path: the departure from the smooth motion exceeds 2A and flips direction against the
    # frame before or after (shaking alternates; an impact bends the path once, the same way twice)
    off = np.zeros(n, bool)
    away = np.zeros(n, bool)  # departure above the floor, flipping or not
    dev = np.zeros(n)
    # in contact a solver may also move the body within the overlap it is allowed (contact_tolerance r),
    # but such chatter does not feed the body: where its energy rises above what it had in the window
    # before (by more than check_energy's lift h) no such allowance is made
    sup = ctx.supported[1:-1, k]
    u = _support_pushes_removed(ctx, u, sup)
    m = ctx.obj_mass[k]
    e = kin["ke"][:, k] - m * (0.5 * (ctx.com[1:, k] + ctx.com[:-1, k]) @ ctx.g)  # (T-1,) J per step
    padded = np.concatenate([np.full(w, np.nan), e])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        before = np.nanmin(np.lib.stride_tricks.sliding_window_view(padded, w + 1), axis=1)  # (T-1,)
    rise = np.nan_to_num(e - before, nan=0.0) > m * ctx.g_mag * (ctx.config.energy_tolerance * ctx.r + ctx.eps_pos)
    fed = rise[1:] | rise[:-1]  # (T-2,): the steps into and out of frame t
    floor = 2 * amp + np.where(sup & ~fed, ctx.config.contact_tolerance * ctx.r, 0.0)
    for x in (u, ur):
        padded = np.concatenate([np.full((half, 3), np.nan), x, np.full((w - half - 1, 3), np.nan)])
        win = np.lib.stride_tricks.sliding_window_view(padded, w, axis=0)  # (n, 3, w)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            smooth = np.nanmedian(win, axis=2)  # the motion's own slow part: gravity, support, spin-up
        y = np.nan_to_num(x - smooth, nan=0.0)
        d = np.linalg.norm(y, axis=1)
        dev = np.fmax(dev, d)
        big = d > floor
        away |= big
        flip = np.zeros(n, bool)
        both = big[1:] & big[:-1] & ((y[1:] * y[:-1]).sum(1) < 0)
        flip[1:] |= both
        flip[:-1] |= both
        off |= flip
    off &= ~touched[1:-1]
    if not off.any():
        return []
    cnt = np.concatenate([[0], np.cumsum(off)])
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) - half + w, 0, n)
    hit = off & (cnt[hi] - cnt[lo] >= _SHAKEN * w)
    if not hit.any():
        return []
    # one shaking spell is one event, from its first frame away from the path: grow each run over the
    # frames next to it that depart by more than the floor, across quiet gaps shorter than half a window
    gap = max(1, half)
    rows = np.flatnonzero(away)
    grown = hit.copy()
    pairs = [(a_, b_) for a_, b_ in zip(rows[:-1], rows[1:]) if b_ - a_ <= gap + 1]
    for a_, b_ in pairs:  # forward: a spell runs on
        if grown[a_]:
            grown[a_:b_ + 1] = True
    for a_, b_ in reversed(pairs):  # backward: ... and began earlier
        if grown[b_]:
            grown[a_:b_ + 1] = True
    hit = grown
    sev = 1.0 - 2 * amp / np.maximum(dev, 1e-30)
    ids = ctx.ids(k)

    def make(first, last, peak, dev=dev):
        msg = (f"Rigid object {ctx.name(k)} shakes from frame {first} to {last}: its pose leaves its own smooth "
               f"motion by up to {_mm(float(np.nanmax(dev[first - 1:last])))} frame after frame, above the "
               f"{_mm(2 * amp)} a noise floor of amplitude {_mm(amp)} explains.")
        return tuple(ctx.com[first, k]), tuple(ids[:_N_IDS]), msg

    return _frame_events(ctx, "jitter", k, hit, np.arange(1, ctx.T - 1), sev, make)


def check_jitter(rollout: Rollout, ctx: Union[AuditContext, AuditConfig, None] = None) -> list[Event]:
    """Objects or particles shake: they reverse direction frame after frame above the noise floor.

    With ``A = jitter_amplitude * r + eps`` the amplitude a solver's noise floor explains, a motion
    *reverses* at frame ``t`` when its steps before and after both exceed ``2 A`` (an oscillation of
    amplitude ``A`` at the frame rate steps ``2 A``) and point against each other
    (``d_{t-1} . d_t < 0``). It *jitters* when at least half of the frames in a window of
    ``W = max(4, round(jitter_window / dt))`` frames centred on ``t`` are reversals: a bounce or a turn
    reverses once, a shaking object every frame.

    * Rigid objects (:attr:`AuditContext.obj_rigid`) are judged against their own smooth motion: the
      pose's departure from the midpoint of its neighbours, ``u_t = c_t - (c_{t-1} + c_{t+1}) / 2``
      (and the same for the rotation, as the displacement of a point ``rho`` from the centre), minus
      its median over the window (gravity, support and spin change it slowly). A frame is off the
      path when that departure exceeds ``2 A`` (an oscillation of amplitude ``A`` at the frame rate
      has ``|u| = 2 A``; in contact ``2 A + contact_tolerance * r``, as a solver may move a body within
      the overlap it is allowed from frame to frame, unless the body's energy then rises above its
      minimum over the window before by more than ``M |g| energy_tolerance r``: chatter does not feed
      the body, shaking does) and points against the departure of the frame before or after, also above
      ``2 A``: shaking alternates (random offsets give consecutive departures a correlation of -2/3),
      an impact bends the path once, the same way over the two frames it spans. The object jitters
      when at least 2/3 of the frames of the window are off the path (:data:`_SHAKEN`), and the spell
      runs over the off-path frames next to it. Solver noise averaged over the body,
      rolling, spinning and tumbling pass; a body shaken as a whole is caught while it moves. Then
      the residual of each particle about the fitted pose (particles shaking inside a body that
      keeps its pose) by reversals, where that residual exceeds ``2 A`` at all.
    * Other objects: each free particle's own steps (in contact, both steps must also exceed
      ``2 A + contact_tolerance * r``: a solver may move a particle within its allowed overlap).

    An object is not judged while it touches a tool that itself reverses direction (a vibrating tool
    shakes what it holds). ``location``: mean position of the shaking particles (rigid pose: the
    centre of mass) at the worst frame; ``severity = 1 - 2 A / step``.
    """
    ctx = _ctx(rollout, ctx)
    if ctx.T < 4:
        return []
    amp = ctx.config.jitter_amplitude * ctx.r + ctx.eps_pos
    w = max(4, int(round(ctx.config.jitter_window / ctx.dt)))
    touched = np.zeros((ctx.T, ctx.K), bool)
    if ctx.has_objects and ctx.obj_tool.any():
        for k in np.flatnonzero(ctx.obj_tool):
            rev, _ = _step_reversals(ctx.soa(k), amp)
            tool_rev = np.zeros(ctx.T, bool)
            tool_rev[1:-1] = rev.any(axis=1)
            tool_rev[1:] |= tool_rev[:-1].copy()
            tool_rev[:-1] |= tool_rev[1:].copy()
            touched |= ctx.contact[:, :, k] & tool_rev[:, None]  # (T, K)
    big_obj = ctx.obj_step_max > 2 * amp  # (T-1, K): a reversal needs two steps longer than 2A
    out_t, out_p, out_v = [], [], []
    events: list[Event] = []
    for k in range(ctx.K):
        if not ctx.counts[k] or ctx.obj_kinematic[k] or not (big_obj[1:, k] & big_obj[:-1, k]).any():
            continue
        ids = ctx.ids(k)
        if ctx.obj_rigid[k]:
            events += _pose_jitter(ctx, int(k), amp, w, touched[:, k])
            if not np.nanmax(np.nan_to_num(ctx.rigid_residual[:, k], nan=0.0)) > 2 * amp:
                continue
            fr = np.arange(ctx.T)
            x = (ctx.pos[:, ids].astype(np.float64) - ctx.rigid_fit(k, fr)).astype(np.float32)  # residuals (T, n, 3)
            x = np.ascontiguousarray(x.transpose(2, 0, 1))
        else:
            x = ctx.soa(k)  # (3, T, n)
        rev, s = _step_reversals(x, amp)
        if not ctx.obj_rigid[k] and ctx.has_objects:  # in contact: steps above the allowed overlap too
            sup = ctx.supported[1:-1, k] | ctx.supported[:-2, k] | ctx.supported[2:, k]
            floor_c = 2 * amp + ctx.config.contact_tolerance * ctx.r
            bigc = s > floor_c
            rev &= ~sup[:, None] | (bigc[1:] & bigc[:-1])
        rev[:, ctx.kin[ids]] = False
        rev &= ~touched[1:-1, k][:, None]
        if not rev.any():
            continue
        hit = _reversal_windows(rev, w)
        tt, pp = np.nonzero(hit)
        if not len(tt):
            continue
        out_t.append(tt + 1)
        out_p.append(ids[pp])
        out_v.append(np.minimum(s[tt, pp], s[tt + 1, pp]).astype(np.float64))
    if not out_t:
        return events
    ti, pi, value = np.concatenate(out_t), np.concatenate(out_p), np.concatenate(out_v)
    bound = np.full(len(ti), 2 * amp)

    def message(k, first, last, peak, v, b, ids):
        return (f"{len(ids)} of {ctx.counts[k]} particles{ctx.of_object(k)} shake from frame {first} to {last}, "
                f"reversing direction every frame with steps of {_mm(v)}, above the {_mm(b)} a noise floor of "
                f"amplitude {_mm(amp)} explains.")

    return events + _particle_events(ctx, "jitter", ti, pi, value, bound, message)


#: Check functions by category.
CHECKS: dict[str, Callable[..., list[Event]]] = {
    "penetration": check_penetration, "teleport": check_teleport, "vanish": check_vanish,
    "rigidity": check_rigidity, "floating": check_floating, "energy": check_energy, "jitter": check_jitter,
}

#: Scene fields each check needs; a check whose field the file lacked is skipped with a notice.
REQUIRES: dict[str, tuple[str, ...]] = {
    "penetration": (), "teleport": (), "vanish": (), "rigidity": ("object_id", "object_material"),
    "floating": ("object_id",), "energy": ("object_id", "object_material"), "jitter": (),
}
