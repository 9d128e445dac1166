"""The learned dynamics: an encode-process-decode graph network over particles.

In the spirit of GNS (Sanchez-Gonzalez et al. 2020, "Learning to Simulate Complex
Physics with Graph Networks"): every particle is a node, particles closer than the
connectivity radius ``R`` are joined by directed edges (rebuilt every step with
``particles.graph.radius_graph``), and ``message_steps`` rounds of message passing
with residual MLPs turn the encoded graph into a per-particle acceleration.

Units follow GNS: velocities are m per frame (``x_t - x_{t-1}``), accelerations m
per frame^2 (``x_{t+1} - 2 x_t + x_{t-1}``), normalised by the dataset's statistics.
The next position comes from semi-implicit Euler in those units:
``v_{t+1} = v_t + a_t``, ``x_{t+1} = x_t + v_{t+1}``.

Inputs (all translation invariant, so the model is too):

* node: the last ``history`` normalised velocities, a learned embedding of the GNS
  particle type, a one-hot of the object's material, the prescribed next velocity of
  kinematic particles (the action, as point flow; zero for others) and a kinematic
  flag, the distance to the ground over ``R`` clipped to [-1, 1], optionally the
  clipped distances to the dataset's bounds (``use_bounds``) and the object's density,
  friction, restitution and stiffness (``physical_features``, normalised by
  :func:`physical_features`).
* edge (receiver ``i``, sender ``j``): ``(x_j - x_i) / R`` and its norm, whether both
  particles belong to one object, and their rest distance over ``R`` when they do.

Kinematic particles (``particle_type == particles.KINEMATIC``) are never predicted:
they move to their prescribed positions. Objects of material ``rigid`` can be
projected onto the best-fitting rigid motion of their rest shape
(:func:`rigid_projection`, a differentiable Kabsch step) so they stay rigid, and
free particles that end up inside kinematic ones (the tool, static objects), inside
other objects, or below the ground plane can be pushed back out by contact impulses
weighted by inverse mass that also turn rigid bodies, iterated to convergence
(:func:`contact_projection`, then :func:`ground_projection` as a guarantee). These
are hard constraints from known geometry, applied after the network's prediction
(:func:`constrain`); rollouts apply them by default, and training applies them inside
the loss when asked (``TrainConfig.constrained``), so the network learns only what they
leave to it.

Scenes batch by packing (concatenate particles, a ``batch (N,)`` vector of scene
indices keeps edges within scenes): see :class:`GraphBatch` and :func:`pack_scenes`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from particles import KINEMATIC, MATERIALS, Action, ParticleScene, ParticleState, Rollout, ValidationError

from .base import Dynamics
from .ops import _warp_ready, gather, scatter_add

__all__ = [
    "ModelConfig",
    "GraphBatch",
    "GNS",
    "LearnedSimulator",
    "pack_scenes",
    "physical_features",
    "rigid_projection",
    "ground_projection",
    "contact_projection",
    "constrain",
    "rollout_packed",
    "batched_rollout",
]

#: Particle-type codes the embedding table holds (GNS codes 0..7, ours up to 11; room to spare).
NUM_PARTICLE_TYPES = 16

#: Number of fixed per-edge input features: displacement (3), its norm, same-object flag, rest distance.
EDGE_FEATURES = 6


def _triple(name: str, value) -> tuple[float, float, float]:
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        raise ValidationError(name, f"expected 3 numbers, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) for v in out):
        raise ValidationError(name, f"expected 3 finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and data normalisation of a :class:`GNS` model (plain values only,
    so it goes into checkpoints as a dict).

    The statistics are GNS's: per-axis mean and std of velocities (m/frame) and
    accelerations (m/frame^2) over the training split, as ``metadata.json`` holds them.
    """

    connectivity_radius: float
    """R, m (> 0). Particles closer than this exchange messages; also the length scale of features."""
    dt: float
    """Frame time step of the training data, s (> 0). The model only steps by this dt."""
    vel_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """m/frame."""
    vel_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """m/frame (> 0)."""
    acc_mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """m/frame^2."""
    acc_std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """m/frame^2 (> 0)."""
    history: int = 5
    """C >= 1: number of past velocities per node (the model reads C + 1 positions)."""
    latent: int = 64
    """Width of node and edge latents and MLP hidden layers."""
    hidden_layers: int = 2
    """Hidden layers per MLP (>= 1)."""
    message_steps: int = 5
    """M >= 1: message-passing rounds, each with its own weights."""
    type_embedding: int = 8
    """Size of the learned particle-type embedding."""
    use_bounds: bool = False
    """Add clipped distances to ``bounds`` as node features. Off by default: the bounds of
    our datasets are the extent of the data, not walls, and would not transfer to new scenes."""
    bounds: tuple[tuple[float, float], ...] = ((-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0))
    """((xmin, xmax), (ymin, ymax), (zmin, zmax)), m: walls of the domain, used when ``use_bounds``."""
    max_neighbors: int = 0
    """Cap on edges per receiver (nearest first); 0 means no cap."""
    physical_features: bool = False
    """Add each particle's object parameters as node features (:func:`physical_features`):
    log density, friction, restitution, log stiffness. Off for checkpoints from before it existed."""

    def __post_init__(self):
        for name in ("connectivity_radius", "dt"):
            v = float(getattr(self, name))
            if not math.isfinite(v) or v <= 0:
                raise ValidationError(name, f"must be positive and finite, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        for name in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
            object.__setattr__(self, name, _triple(name, getattr(self, name)))
        for name in ("vel_std", "acc_std"):
            if min(getattr(self, name)) <= 0:
                raise ValidationError(name, "every std must be positive")
        for name, lo in (("history", 1), ("latent", 1), ("hidden_layers", 1), ("message_steps", 1),
                         ("type_embedding", 1), ("max_neighbors", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValidationError(name, f"must be an integer >= {lo}, got {v!r}")
            object.__setattr__(self, name, int(v))
        try:
            b = tuple((float(lo), float(hi)) for lo, hi in self.bounds)
        except (TypeError, ValueError):
            raise ValidationError("bounds", f"expected 3 (min, max) pairs in m, got {self.bounds!r}") from None
        if len(b) != 3 or any(not lo < hi for lo, hi in b):
            raise ValidationError("bounds", f"expected 3 (min, max) pairs with min < max, got {self.bounds!r}")
        object.__setattr__(self, "bounds", b)
        object.__setattr__(self, "use_bounds", bool(self.use_bounds))
        object.__setattr__(self, "physical_features", bool(self.physical_features))

    def to_dict(self) -> dict:
        """Plain dict (lists, floats, ints, bools) for checkpoints."""
        d = dataclasses.asdict(self)
        d["bounds"] = [list(p) for p in self.bounds]
        for k in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValidationError("config", f"unknown model config keys {sorted(unknown)}")
        return cls(**d)


# --------------------------------------------------------------------------- packed batches


def batch_to(batch, device=None, dtype=None):
    """A copy of a dataclass of tensors (:class:`GraphBatch`, ``dynamics.objects.ObjectBatch``)
    with its float tensors cast to ``dtype`` and every tensor moved to ``device``; other fields
    are shared."""
    out = {}
    for f in dataclasses.fields(batch):
        v = getattr(batch, f.name)
        if isinstance(v, torch.Tensor):
            v = v.to(device=device, dtype=dtype if (dtype is not None and v.is_floating_point()) else None)
        out[f.name] = v
    return type(batch)(**out)


@dataclass
class GraphBatch:
    """What never changes in a rollout, for a packed batch of B scenes (N particles in all).

    Build one with :func:`pack_scenes`. All tensors live on one device.
    """

    particle_type: torch.Tensor
    """(N,) int64. GNS particle-type codes."""
    material: torch.Tensor
    """(N,) int64. Index into :data:`particles.MATERIALS` of the particle's object."""
    object_id: torch.Tensor
    """(N,) int64. Object index, unique across the batch (scene-local ids offset)."""
    num_objects: int
    """Number of objects in the whole batch."""
    rest: torch.Tensor
    """(N, 3) float, m. Rest positions (the scene's), for rest distances and rigid projection."""
    ground: torch.Tensor
    """(N,) float, m. z of the particle's scene ground plane; -inf where there is none."""
    radius: torch.Tensor
    """(N,) float, m. Particle radius of the particle's scene."""
    batch: torch.Tensor
    """(N,) int64. Scene index of each particle, in [0, B)."""
    num_scenes: int
    """B."""
    mass: Optional[torch.Tensor] = None
    """(N,) float, kg. Particle masses (the scene's); None: ``1000 kg/m^3 * (2 r)^3``."""
    physics: Optional[torch.Tensor] = None
    """(N, 4) float: the particle's object density (kg/m^3), friction, restitution and Young's
    modulus (Pa), from the scene; None: the scene-file defaults (1000, 0.5, 0, 1e5)."""

    def particle_mass(self) -> torch.Tensor:
        """(N,) float, kg: :attr:`mass`, or water-density particles when it is not set."""
        if self.mass is not None:
            return self.mass
        return 1000.0 * (2.0 * self.radius) ** 3

    @property
    def kinematic(self) -> torch.Tensor:
        """(N,) bool. Particles whose positions are prescribed."""
        return self.particle_type == KINEMATIC

    @property
    def num_particles(self) -> int:
        return int(self.particle_type.shape[0])

    def to(self, device=None, dtype=None) -> "GraphBatch":
        """A copy with float tensors cast to ``dtype`` and everything moved to ``device``."""
        return batch_to(self, device, dtype)


def pack_scenes(scenes: Sequence[ParticleScene], device="cpu", dtype=torch.float32) -> GraphBatch:
    """Concatenate scenes into one :class:`GraphBatch` (scene b's particles follow scene b-1's)."""
    if not scenes:
        raise ValueError("pack_scenes needs at least one scene")
    mat_index = {m: i for i, m in enumerate(MATERIALS)}
    ptype, mat, oid, rest, ground, radius, batch, mass, phys = [], [], [], [], [], [], [], [], []
    offset = 0
    for b, s in enumerate(scenes):
        n = s.num_particles
        ptype.append(s.particle_type.astype(np.int64))
        mat.append(np.array([mat_index[m] for m in s.object_material], np.int64)[s.object_id] if n else np.zeros(0, np.int64))
        oid.append(s.object_id.astype(np.int64) + offset)
        offset += s.num_objects
        rest.append(s.positions)
        ground.append(np.full(n, -np.inf if s.ground is None else s.ground, np.float64))
        radius.append(np.full(n, s.radius, np.float64))
        batch.append(np.full(n, b, np.int64))
        mass.append(s.mass.astype(np.float64))
        per_object = np.stack([s.object_density, s.object_friction, s.object_restitution, s.object_stiffness], 1)
        phys.append(per_object.astype(np.float64)[s.object_id] if n else np.zeros((0, 4)))
    t = lambda parts, dt: torch.as_tensor(np.concatenate(parts), device=device).to(dt)  # noqa: E731
    return GraphBatch(
        particle_type=t(ptype, torch.int64), material=t(mat, torch.int64), object_id=t(oid, torch.int64),
        num_objects=offset, rest=t(rest, dtype), ground=t(ground, dtype), radius=t(radius, dtype),
        batch=t(batch, torch.int64),
        num_scenes=len(scenes), mass=t(mass, dtype), physics=t(phys, dtype),
    )


#: Number of node features :func:`physical_features` adds.
PHYSICAL_FEATURES = 4


def physical_features(physics: torch.Tensor) -> torch.Tensor:
    """(N, 4) normalised node features from raw object parameters ``physics`` (N, 4): density
    (kg/m^3), friction, restitution, Young's modulus (Pa).

    ``ln(density / 1000 kg/m^3)``, friction and restitution as they are (both O(1), clipped to
    [0, 2]) and ``log10(E / 1e5 Pa) / 5`` clipped to [-1, 2] (soft rubber 0, wood-like rigid 0.8;
    MPM sand's nominal 1e15 Pa clips at 2)."""
    dens, fric, rest, stiff = physics.unbind(1)
    return torch.stack([torch.log(dens.clamp_min(1e-3) / 1000.0), fric.clamp(0.0, 2.0), rest.clamp(0.0, 2.0),
                        (torch.log10(stiff.clamp_min(1e-3) / 1e5) / 5.0).clamp(-1.0, 2.0)], 1)


# --------------------------------------------------------------------------- rigid projection


def rigid_projection(pred: torch.Tensor, rest: torch.Tensor, group: torch.Tensor, num_groups: int,
                     mask: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Replace each group's predicted positions by the best-fitting rigid motion of its rest shape.

    Kabsch per group: with centroids ``c_p``, ``c_r`` and ``H = sum (r - c_r)(p - c_p)^T``,
    ``R = V diag(1, 1, det(V U^T)) U^T`` from ``H = U S V^T``; the result is
    ``R (r - c_r) + c_p``, the proper rotation and translation minimising the squared
    distance to ``pred``. Differentiable (through ``torch.linalg.svd``; gradients are
    undefined for groups whose rest shape is degenerate, e.g. collinear).

    Args:
        pred: (N, 3) float, m. Predicted positions.
        rest: (N, 3) float, m. Rest positions (the shape to keep).
        group: (N,) int64 in [0, num_groups). Rigid body of each particle.
        num_groups: G.
        mask: (N,) bool or None. Only these particles take part and are replaced (others pass through).

    Returns:
        (N, 3) float, m.
    """
    if mask is None:
        mask = torch.ones_like(group, dtype=torch.bool)
    idx = torch.nonzero(mask).squeeze(1)
    if idx.numel() == 0:
        return pred
    p, r, g = pred[idx], rest[idx].to(pred.dtype), group[idx]
    ones = torch.ones((idx.numel(), 1), dtype=pred.dtype, device=pred.device)
    count = scatter_add(ones, g, num_groups).clamp_min(1.0)
    cp = scatter_add(p, g, num_groups) / count
    cr = scatter_add(r, g, num_groups) / count
    pc, rc = p - gather(cp, g), r - gather(cr, g)
    h = scatter_add((rc.unsqueeze(2) * pc.unsqueeze(1)).reshape(-1, 9), g, num_groups).reshape(-1, 3, 3)
    u, _, vt = torch.linalg.svd(h)
    v = vt.transpose(1, 2)
    d = torch.sign(torch.linalg.det(v @ u.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.ones((num_groups, 3), dtype=pred.dtype, device=pred.device)
    diag = torch.cat([diag[:, :2], d.unsqueeze(1)], 1)
    rot = v @ torch.diag_embed(diag) @ u.transpose(1, 2)  # (G, 3, 3)
    proj = torch.einsum("nij,nj->ni", rot[g], rc) + gather(cp, g)
    return pred.index_put((idx,), proj)


def ground_projection(pred: torch.Tensor, floor: torch.Tensor, group: torch.Tensor, num_groups: int,
                      rigid: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
    """Push particles that sank below the floor back onto it; rigid bodies move up as one.

    Args:
        pred: (N, 3) float, m. Predicted positions.
        floor: (N,) float, m. Lowest allowed centre height: ground z + particle radius (-inf: no ground).
        group: (N,) int64 in [0, num_groups). Object of each particle.
        rigid: (N,) bool. Particles of rigid objects: their object is lifted by its deepest penetration.
        free: (N,) bool. Particles that may be moved (not kinematic).

    Returns:
        (N, 3) float, m, with every free particle's z >= floor (rigid objects rigidly translated).
    """
    depth = (floor - pred[:, 2]).clamp_min(0.0)
    depth = torch.where(free, depth, torch.zeros_like(depth))
    rigid = rigid & free
    lift = torch.zeros(num_groups, dtype=pred.dtype, device=pred.device)
    lift = lift.scatter_reduce(0, group, torch.where(rigid, depth, torch.zeros_like(depth)), reduce="amax")
    dz = torch.where(rigid, lift[group], depth)
    return pred + torch.stack([torch.zeros_like(dz), torch.zeros_like(dz), dz], 1)


#: Contact projection convergence: iterate until no overlap (and no particle below its floor) is
#: deeper than this fraction of the particle radius r ...
CONTACT_TOLERANCE = 1e-3
#: ... or this many Jacobi iterations have run (a cap for pathological piles; the ground
#: projection after it still guarantees that nothing ends below the floor).
CONTACT_MAX_ITERATIONS = 64
#: Kept for callers of the old fixed-iteration API: the old default iteration count.
CONTACT_ITERATIONS = 3
#: Verlet skin of the contact candidate list, in particle radii: candidates are found once within
#: ``2 r + skin`` and searched again only after some particle moved more than ``skin / 2``.
CONTACT_SKIN = 1.0


def _cross(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.linalg.cross(a, b, dim=1)


def _rotation_from_vector(theta: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) rotation matrices ``exp([theta]_x)`` of rotation vectors ``theta`` (B, 3), rad.

    Rodrigues' formula with series expansions below 1e-2 rad, so values and gradients are finite
    at zero rotation."""
    t2 = (theta * theta).sum(1)
    small = t2 < 1e-4
    t2s = torch.where(small, 1.0, t2)
    t = t2s.sqrt()
    a = torch.where(small, 1.0 - t2 / 6.0 + t2 * t2 / 120.0, torch.sin(t) / t)
    b = torch.where(small, 0.5 - t2 / 24.0 + t2 * t2 / 720.0, (1.0 - torch.cos(t)) / t2s)
    # [theta]_x by one gather from (0, theta, -theta): the same entries as stacking them one by one, in
    # a few torch operations (a step of the object model is bound by their number, not by arithmetic)
    padded = torch.cat([theta.new_zeros(len(theta), 1), theta, -theta], 1)  # 0, t0, t1, t2, -t0, -t1, -t2
    k = padded.index_select(1, _SKEW_INDEX.to(theta.device)).reshape(-1, 3, 3)
    eye = torch.eye(3, dtype=theta.dtype, device=theta.device)
    return eye + a[:, None, None] * k + b[:, None, None] * (k @ k)


#: Columns of ``(0, theta, -theta)`` that make the skew matrix ``[theta]_x`` row by row (:func:`_rotation_from_vector`).
_SKEW_INDEX = torch.tensor([0, 6, 2, 3, 0, 4, 5, 1, 0])


class _Bodies:
    """Rigid objects as rigid bodies and every other free particle as a point mass.

    ``body (N,)``: body index of each particle (rigid objects first, by object id; then one
    body per other free particle); kinematic particles get -1 (infinite mass).
    """

    def __init__(self, batch: "GraphBatch", dtype, device):
        n, k = batch.num_particles, batch.num_objects
        kin = batch.kinematic
        rigid = (batch.material == MATERIALS.index("rigid")) & ~kin
        self.rigid = rigid
        self.free = ~kin
        self.num = k + n
        self.num_objects = k
        body = torch.where(rigid, batch.object_id, k + torch.arange(n, device=device))
        self.body = torch.where(kin, torch.full_like(body, -1), body)
        self.mass = batch.particle_mass().to(dtype)
        idx = self.body.clamp_min(0)
        m = torch.where(self.free, self.mass, torch.zeros_like(self.mass))
        self.body_mass = torch.zeros(self.num, dtype=dtype, device=device).index_add_(0, idx, m)
        self.is_rigid_body = torch.zeros(self.num, dtype=torch.bool, device=device)
        self.is_rigid_body[:k] = torch.zeros(k, dtype=dtype, device=device).index_add_(
            0, batch.object_id[rigid], torch.ones_like(m[rigid])) > 0
        self.radius = batch.radius.to(dtype)

    def frames(self, x: torch.Tensor):
        """Centre of mass (B, 3), m, and (pseudo-)inverse inertia (B, 3, 3), 1/(kg m^2), at positions
        ``x``; point masses get a zero inverse inertia (they do not turn)."""
        idx = self.body.clamp_min(0)
        m = torch.where(self.free, self.mass, torch.zeros_like(self.mass))
        msafe = self.body_mass.clamp_min(torch.finfo(x.dtype).tiny)
        com = torch.zeros((self.num, 3), dtype=x.dtype, device=x.device).index_add_(0, idx, m[:, None] * x)
        com = com / msafe[:, None]
        r = x - com[idx]
        eye = torch.eye(3, dtype=x.dtype, device=x.device)
        # inertia of the particles as point masses (the momentum a rollout carries is sum m v over
        # particles); a body on one line, or of one particle, cannot turn about that line
        inertia_p = m[:, None, None] * ((r * r).sum(1)[:, None, None] * eye - r[:, :, None] * r[:, None, :])
        inertia = torch.zeros((self.num, 3, 3), dtype=x.dtype, device=x.device).index_add_(0, idx, inertia_p)
        k = self.num_objects
        rb = self.is_rigid_body[:k, None, None]
        # pseudo-inverse: no turn about an axis the body has no inertia about (a single particle, a line)
        inv_k = torch.linalg.pinv(torch.where(rb, inertia[:k], eye.expand(k, 3, 3)), hermitian=True, rtol=1e-6)
        inv = torch.cat([torch.where(rb, inv_k, torch.zeros_like(inv_k)),
                         inertia.new_zeros((self.num - k, 3, 3))], 0)
        return com, inv

    def inverse_mass(self, p: torch.Tensor, n: torch.Tensor, x: torch.Tensor, com, inv_inertia) -> torch.Tensor:
        """(C,) generalised inverse mass, 1/kg, of particles ``p`` for a push along unit normals ``n``
        (C, 3): ``1/M + (r x n) . I^-1 (r x n)`` for a rigid body (r from its centre of mass), ``1/m``
        for a point mass, 0 for kinematic particles."""
        b = self.body[p].clamp_min(0)
        rn = _cross(x[p] - com[b], n)
        w = 1.0 / self.body_mass[b].clamp_min(torch.finfo(x.dtype).tiny) + \
            torch.einsum("ci,cij,cj->c", rn, inv_inertia[b], rn)
        return torch.where(self.body[p] >= 0, w, torch.zeros_like(w))


def _contact_candidates(x: torch.Tensor, batch: "GraphBatch", reach: float, between_objects: bool):
    """(a, b): undirected candidate pairs within ``reach`` with ``a`` free and ``b`` kinematic or
    (with ``between_objects``) a particle of another object; each free-free pair once."""
    edges = _radius_graph(x, reach, batch.batch, 0)
    a, b = edges[:, 0], edges[:, 1]
    kin = batch.kinematic
    other = batch.object_id[a] != batch.object_id[b]
    keep = ~kin[a] & (kin[b] | (other & between_objects & (a < b)))
    return a[keep], b[keep]


def contact_projection(pred: torch.Tensor, batch: GraphBatch, iterations: Optional[int] = None,
                       between_objects: bool = True, ground: bool = False,
                       tolerance: float = CONTACT_TOLERANCE, return_iterations: bool = False):
    """Push free particles out of kinematic particles (the tool, static objects), out of the
    particles of other objects (with ``between_objects``) and, with ``ground``, above the
    ground plane, by position-level contact impulses between bodies of known mass.

    Bodies: a rigid object is one rigid body (mass ``M`` = sum of its particle masses, inertia
    ``I`` from its particles about its centre of mass), every other free particle a point mass
    ``m``; kinematic particles and the ground have infinite mass. A contact between particle
    ``a`` and particle ``b`` of another object (or the ground) that overlap by ``d = r_a + r_b -
    |x_a - x_b|`` > 0 along ``n = (x_a - x_b) / |x_a - x_b|`` gets the impulse (kg m)
    ``lambda = s d / (w_a + w_b)`` (``s``: see below), with ``w = 1/M + (r x n) . I^-1 (r x n)`` the generalised
    inverse mass of the particle's body for a push along ``n`` at lever ``r`` (``1/m`` for a point
    mass, 0 for infinite mass). ``a``'s body moves by ``lambda n / M`` and turns by ``I^-1 (r_a x
    lambda n)``, ``b``'s by the opposite: so the split follows the inverse masses, an off-centre
    push turns a body (rigid bodies move by exact rigid motions, keeping their shape), and
    linear momentum ``sum m x`` is conserved exactly (angular momentum to first order) when no
    infinite mass takes part. Jacobi iterations with a line search: the contacts' impulses
    together would overshoot where several push one body, so each body takes the step ``s_b``
    in [0, 1] along their sum that best closes its own contacts (least squares on the
    linearised motion), every contact is scaled by the smaller step of its two bodies (the
    same on both sides, keeping momentum), and iterations repeat, re-measuring overlaps,
    until no overlap is deeper than ``tolerance * r`` or ``iterations`` (default
    :data:`CONTACT_MAX_ITERATIONS`) have run. Contacts within the tolerance take no impulse and
    bodies without an active contact are left exactly as they are, so the scenes of a packed
    batch come out as they would alone.
    Particles of one object never push each other: their spacing is the network's business
    (and the rigid projection's). Frictionless: impulses act along contact normals only.

    Args:
        pred: (N, 3) float, m. Predicted positions (kinematic rows already where they must be).
        batch: the packed scenes (radius, kinematic flags, objects, materials, masses).
        iterations: cap on iterations (>= 1); None for :data:`CONTACT_MAX_ITERATIONS`.
        between_objects: also separate free objects from each other.
        ground: also keep particle centres at least ``r`` above their scene's ground.
        tolerance: convergence threshold, in particle radii.
        return_iterations: also return the number of iterations that applied impulses.

    Returns:
        (N, 3) float, m (differentiable in ``pred`` for a fixed set of active contacts), and the
        iteration count when ``return_iterations``.
    """
    cap = CONTACT_MAX_ITERATIONS if iterations is None else int(iterations)
    kin = batch.kinematic
    free = ~kin
    done = (pred, 0) if return_iterations else pred
    if cap < 1 or not bool(free.any()):
        return done
    has_ground = ground and bool(torch.isfinite(batch.ground[free]).any())
    pairs = bool(kin.any()) or (between_objects and batch.num_objects > 1)
    if not (pairs or has_ground):
        return done
    dtype, device = pred.dtype, pred.device
    bodies = _Bodies(batch, dtype, device)
    r_max = float(batch.radius.max())
    tol = tolerance * float(batch.radius[free].min())
    skin = CONTACT_SKIN * r_max
    floor = (batch.ground + batch.radius).to(dtype)
    gmask = free & torch.isfinite(floor) if has_ground else torch.zeros_like(free)
    up = torch.tensor([0.0, 0.0, 1.0], dtype=dtype, device=device)
    x = pred
    anchor, ca, cb = None, None, None
    used = 0
    for _ in range(cap):
        if pairs and (anchor is None or float((x.detach() - anchor).norm(dim=1).max()) > 0.5 * skin):
            anchor = x.detach()
            ca, cb = _contact_candidates(anchor, batch, 2.0 * r_max + skin, between_objects)
        a_list, b_list, n_list, d_list = [], [], [], []
        if pairs and ca.numel():
            d = x[ca] - x[cb]
            dist = d.norm(dim=1)
            depth = batch.radius[ca].to(dtype) + batch.radius[cb].to(dtype) - dist
            on = depth > tol  # contacts within the tolerance are done: left alone, so packed scenes stay independent
            if bool(on.any()):
                a_list.append(ca[on])
                b_list.append(cb[on])
                n_list.append(d[on] / dist[on].clamp_min(1e-12).unsqueeze(1))
                d_list.append(depth[on])
        if has_ground:
            gdepth = floor - x[:, 2]
            on = gmask & (gdepth > tol)
            if bool(on.any()):
                ga = torch.nonzero(on).squeeze(1)
                a_list.append(ga)
                b_list.append(torch.full_like(ga, -1))
                n_list.append(up.expand(ga.numel(), 3))
                d_list.append(gdepth[ga])
        if not a_list:
            break
        a, b, n, depth = (torch.cat(v) for v in (a_list, b_list, n_list, d_list))
        used += 1
        com, inv_i = bodies.frames(x)
        w_a = bodies.inverse_mass(a, n, x, com, inv_i)
        has_b = b >= 0
        bb = b.clamp_min(0)
        w_b = torch.where(has_b, bodies.inverse_mass(bb, n, x, com, inv_i), torch.zeros_like(w_a))
        body_a = bodies.body[a]
        body_b = torch.where(has_b, bodies.body[bb], torch.full_like(body_a, -1))  # -1: infinite mass
        onb = body_b >= 0
        bi = body_b[onb]
        ra, rb = x[a] - com[body_a], x[b[onb]] - com[bi]

        def totals(lam):
            """Per-body impulse (B, 3) and angular impulse about the centre of mass (B, 3) of contact impulses ``lam``."""
            imp = torch.zeros((bodies.num, 3), dtype=dtype, device=device).index_add(0, body_a, lam)
            tor = torch.zeros((bodies.num, 3), dtype=dtype, device=device).index_add(0, body_a, _cross(ra, lam))
            if bi.numel():
                imp = imp.index_add(0, bi, -lam[onb])
                tor = tor.index_add(0, bi, _cross(rb, -lam[onb]))
            return imp, tor

        # each contact's own impulse would close it alone; together they overshoot where several
        # push one body. Scale them per body by the step along this direction that best closes
        # the body's contacts (least squares, linearised motion, in [0, 1]), each contact by the
        # smaller of its two bodies' steps: equal on both sides, so momentum is kept
        lam0 = (depth / (w_a + w_b)).unsqueeze(1) * n  # impulse on a's body; -lam on b's
        imp0, tor0 = totals(lam0)
        lin = imp0 / bodies.body_mass.clamp_min(torch.finfo(dtype).tiny).unsqueeze(1)
        ang = torch.einsum("bij,bj->bi", inv_i, tor0)
        close = ((lin[body_a] + _cross(ang[body_a], ra)) * n).sum(1)
        if bi.numel():
            close = close.index_add(0, torch.nonzero(onb).squeeze(1), -((lin[bi] + _cross(ang[bi], rb)) * n[onb]).sum(1))
        num = torch.zeros(bodies.num, dtype=dtype, device=device).index_add(0, body_a, depth * close)
        den = torch.zeros(bodies.num, dtype=dtype, device=device).index_add(0, body_a, close * close)
        if bi.numel():
            num = num.index_add(0, bi, (depth * close)[onb])
            den = den.index_add(0, bi, (close * close)[onb])
        step = torch.where(den > 0, num / den.clamp_min(torch.finfo(dtype).tiny), torch.ones_like(num)).clamp(0.0, 1.0)
        scale = torch.minimum(step[body_a], torch.where(onb, step[body_b.clamp_min(0)], torch.ones_like(depth)))
        imp, tor = totals(scale.unsqueeze(1) * lam0)
        shift = imp / bodies.body_mass.clamp_min(torch.finfo(dtype).tiny).unsqueeze(1)
        turn = _rotation_from_vector(torch.einsum("bij,bj->bi", inv_i, tor))
        pb = bodies.body.clamp_min(0)
        rel = x - com[pb]
        moved = com[pb] + shift[pb] + torch.einsum("nij,nj->ni", turn[pb], rel)
        touched = torch.zeros(bodies.num, dtype=torch.bool, device=device)
        touched[body_a] = True
        touched[bi] = True
        x = torch.where((free & touched[pb]).unsqueeze(1), moved, x)  # bodies without a contact: exactly as they were
    return (x, used) if return_iterations else x


# --------------------------------------------------------------------------- network


def _mlp(n_in: int, width: int, n_out: int, layers: int, layer_norm: bool) -> nn.Sequential:
    mods: list[nn.Module] = []
    d = n_in
    for _ in range(layers):
        mods += [nn.Linear(d, width), nn.ReLU()]
        d = width
    mods.append(nn.Linear(d, n_out))
    if layer_norm:
        mods.append(nn.LayerNorm(n_out))
    return nn.Sequential(*mods)


def _run(seq: nn.Sequential, x: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``seq(x)`` for an :func:`_mlp` (Linear/ReLU/LayerNorm); with ``inplace`` (only without
    autograd) the ReLUs overwrite their input, which saves one (rows, width) buffer per layer on
    these memory-bound edge MLPs. The same operations in the same order: identical results."""
    if not inplace or torch.is_grad_enabled():
        return seq(x)
    for mod in seq:
        x = mod(x) if not isinstance(mod, nn.ReLU) else x.relu_()
    return x


class _Interaction(nn.Module):
    """One message-passing round with residuals: edges read both ends, nodes sum incoming edges."""

    def __init__(self, latent: int, layers: int):
        super().__init__()
        self.edge = _mlp(3 * latent, latent, latent, layers, True)
        self.node = _mlp(2 * latent, latent, latent, layers, True)

    def forward(self, v: torch.Tensor, e: torch.Tensor, receivers: torch.Tensor, senders: torch.Tensor):
        # edge MLP on [e, v_recv, v_send]: its first linear layer is split as
        # W_e e + (W_r v)[recv] + (W_s v)[send] + b, so the node terms cost N rows, not E
        first = self.edge[0]
        w_e, w_r, w_s = first.weight.split(v.shape[1], dim=1)
        if torch.is_grad_enabled():
            h = torch.addmm(first.bias, e, w_e.t()) + gather(v @ w_r.t(), receivers) + gather(v @ w_s.t(), senders)
            e_new = self.edge[1:](h)
            agg = scatter_add(e_new, receivers, v.shape[0])
            v_new = self.node(torch.cat([v, agg], 1))
            return v + v_new, e + e_new
        # without autograd: the same sums, accumulated in place (no (E, latent) temporaries)
        h = torch.addmm(first.bias, e, w_e.t())
        h += gather(v @ w_r.t(), receivers)
        h += gather(v @ w_s.t(), senders)
        e_new = _run(self.edge[1:], h, inplace=True)
        agg = scatter_add(e_new, receivers, v.shape[0])
        v_new = _run(self.node, torch.cat([v, agg], 1), inplace=True)
        return v + v_new, e_new.add_(e)


#: glibc malloc settings the model applies once per process (see :func:`_keep_heap`), bytes.
HEAP_MMAP_THRESHOLD = 1 << 30
HEAP_TRIM_THRESHOLD = 1 << 31
_heap_kept = False


def _keep_heap(force: bool = False) -> None:
    """Serve large tensors from the heap instead of fresh ``mmap`` pages (Linux glibc only).

    By default glibc maps every allocation above a few hundred KB freshly and unmaps it on
    free, so each (edges, latent) buffer of a forward pass is page-faulted in again: on the
    planning batch (150k edges) that first-touch cost was two thirds of the network's time.
    Raising the mmap and trim thresholds (``mallopt``) keeps freed memory for reuse, at the price
    of the process holding on to its peak heap. Called once when a :class:`GNS` is built (unless
    the environment sets ``WORLDLINE_KEEP_HEAP=0``; ``force`` ignores that); a no-op elsewhere."""
    import os

    global _heap_kept
    if _heap_kept or (not force and os.environ.get("WORLDLINE_KEEP_HEAP", "1") == "0"):
        return
    _heap_kept = True
    try:
        import ctypes
        import sys

        if not sys.platform.startswith("linux"):
            return
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, HEAP_MMAP_THRESHOLD)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, HEAP_TRIM_THRESHOLD)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


def _radius_graph(points: torch.Tensor, radius: float, batch: torch.Tensor, max_neighbors: int) -> torch.Tensor:
    from particles.graph import radius_graph  # Warp HashGrid

    _warp_ready()  # particles.graph reads Warp's devices without initialising Warp
    kw = {"max_neighbors": max_neighbors} if max_neighbors else {}
    return radius_graph(points.detach(), radius, batch=batch, loop=False, **kw)


class GNS(nn.Module):
    """Encode-process-decode graph network predicting normalised particle accelerations."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        _keep_heap()
        self.config = c = config
        self.type_embedding = nn.Embedding(NUM_PARTICLE_TYPES, c.type_embedding)
        node_in = 3 * c.history + 3 + 1 + c.type_embedding + len(MATERIALS) + 1 + (6 if c.use_bounds else 0) + \
            (PHYSICAL_FEATURES if c.physical_features else 0)
        self.node_encoder = _mlp(node_in, c.latent, c.latent, c.hidden_layers, True)
        self.edge_encoder = _mlp(EDGE_FEATURES, c.latent, c.latent, c.hidden_layers, True)
        self.processor = nn.ModuleList(_Interaction(c.latent, c.hidden_layers) for _ in range(c.message_steps))
        self.decoder = _mlp(c.latent, c.latent, 3, c.hidden_layers, False)
        for name in ("vel_mean", "vel_std", "acc_mean", "acc_std"):
            self.register_buffer(name, torch.tensor(getattr(c, name), dtype=torch.float32))
        self.register_buffer("bounds", torch.tensor(c.bounds, dtype=torch.float32))

    # ----------------------------------------------------------------- features

    def graph(self, positions: torch.Tensor, batch: GraphBatch) -> torch.Tensor:
        """(E, 2) int64 edges (receiver, sender) of particles closer than R in the same scene.

        Edges into kinematic particles are dropped: their motion is given, so nothing needs to
        reach them, and a static table's edges among its own particles would dominate the cost.
        Kinematic particles still send messages.
        """
        edges = _radius_graph(positions, self.config.connectivity_radius, batch.batch, self.config.max_neighbors)
        return edges[~batch.kinematic[edges[:, 0]]]

    def features(self, history: torch.Tensor, batch: GraphBatch, next_kinematic: torch.Tensor,
                 edges: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Node (N, Fn) and edge (E, Fe) input features (see module docstring)."""
        c = self.config
        R = c.connectivity_radius
        x = history[-1]
        n = x.shape[0]
        vel = (history[1:] - history[:-1] - self.vel_mean) / self.vel_std  # (C, N, 3)
        vel = vel.permute(1, 0, 2).reshape(n, -1)
        kin = batch.kinematic
        kin_f = kin.to(x.dtype).unsqueeze(1)
        next_vel = torch.where(kin.unsqueeze(1), (next_kinematic - x - self.vel_mean) / self.vel_std,
                               torch.zeros_like(x))
        mat = torch.nn.functional.one_hot(batch.material, len(MATERIALS)).to(x.dtype)
        ptype = self.type_embedding(batch.particle_type.clamp(0, NUM_PARTICLE_TYPES - 1)).to(x.dtype)
        ground = ((x[:, 2] - batch.ground) / R).clamp(-1.0, 1.0).unsqueeze(1)
        parts = [vel, next_vel, kin_f, ptype, mat, ground]
        if c.use_bounds:
            lo, hi = self.bounds[:, 0].to(x.dtype), self.bounds[:, 1].to(x.dtype)
            parts += [((x - lo) / R).clamp(-1.0, 1.0), ((hi - x) / R).clamp(-1.0, 1.0)]
        if c.physical_features:
            phys = batch.physics if batch.physics is not None else \
                x.new_tensor([1000.0, 0.5, 0.0, 1.0e5]).expand(n, PHYSICAL_FEATURES)
            parts.append(physical_features(phys.to(x.dtype)))
        nodes = torch.cat(parts, 1)
        recv, send = edges[:, 0], edges[:, 1]
        disp = (gather(x, send) - gather(x, recv)) / R
        dist = disp.norm(dim=1, keepdim=True)
        same = (batch.object_id[recv] == batch.object_id[send]).to(x.dtype).unsqueeze(1)
        rest_dist = (batch.rest[send] - batch.rest[recv]).norm(dim=1, keepdim=True).to(x.dtype) / R * same
        return nodes, torch.cat([disp, dist, same, rest_dist], 1)

    # ----------------------------------------------------------------- forward

    def forward(self, history: torch.Tensor, batch: GraphBatch, next_kinematic: Optional[torch.Tensor] = None,
                edges: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Normalised acceleration of every particle.

        Args:
            history: (C + 1, N, 3) float, m. Positions of the last C + 1 frames, oldest first.
            batch: the packed scenes.
            next_kinematic: (N, 3) float, m. Positions at the next frame; only the rows of
                kinematic particles are read (the action). None: kinematic particles hold still.
            edges: (E, 2) int64 (receiver, sender), or None to build the radius graph of ``history[-1]``.

        Returns:
            (N, 3) float: ``(a - acc_mean) / acc_std`` with ``a`` in m/frame^2.
        """
        c = self.config
        if history.shape[0] != c.history + 1:
            raise ValueError(f"history: expected {c.history + 1} frames (C + 1), got {history.shape[0]}")
        if next_kinematic is None:
            next_kinematic = history[-1]
        if edges is None:
            edges = self.graph(history[-1], batch)
        nodes, efeat = self.features(history, batch, next_kinematic, edges)
        v, e = _run(self.node_encoder, nodes, inplace=True), _run(self.edge_encoder, efeat, inplace=True)
        recv, send = edges[:, 0], edges[:, 1]
        for block in self.processor:
            v, e = block(v, e, recv, send)
        return self.decoder(v)

    def integrate(self, history: torch.Tensor, acc_norm: torch.Tensor) -> torch.Tensor:
        """(N, 3) next positions, m, by semi-implicit Euler from a normalised acceleration."""
        acc = acc_norm * self.acc_std + self.acc_mean
        return history[-1] + (history[-1] - history[-2]) + acc

    def next_positions(self, history: torch.Tensor, batch: GraphBatch, next_kinematic: Optional[torch.Tensor] = None,
                       rigid: bool = False, collide: bool = False) -> torch.Tensor:
        """(N, 3) float, m: every particle's position at the next frame.

        Kinematic particles go exactly to ``next_kinematic`` (or stay put when it is None);
        with ``rigid``, objects of material ``rigid`` move as rigid bodies (:func:`rigid_projection`);
        with ``collide``, free particles are pushed out of kinematic ones and objects out of each
        other (:func:`contact_projection`), and no particle centre ends below ground + radius
        (:func:`ground_projection`).
        """
        nk = history[-1] if next_kinematic is None else next_kinematic
        pred = self.integrate(history, self.forward(history, batch, nk))
        return constrain(pred, batch, nk, rigid, collide)


def constrain(pred: torch.Tensor, batch: GraphBatch, next_kinematic: torch.Tensor, rigid: bool = True,
              collide: bool = True, contact_iterations: Optional[int] = None) -> torch.Tensor:
    """The rollout-time hard constraints on predicted next positions.

    Args:
        pred: (N, 3) float, m. Predicted next positions.
        next_kinematic: (N, 3) float, m. Kinematic rows are where kinematic particles go.
        rigid: project objects of material ``rigid`` onto rigid motions (:func:`rigid_projection`).
        collide: resolve contacts with the tool, static objects, other objects and the ground by
            inverse-mass-weighted impulses iterated to convergence (:func:`contact_projection`),
            then guarantee no centre below ground + r (:func:`ground_projection`).
        contact_iterations: cap on contact iterations (None: :data:`CONTACT_MAX_ITERATIONS`).

    Returns:
        (N, 3) float, m. Differentiable in ``pred`` (training can apply it too).
    """
    kin = batch.kinematic
    pred = torch.where(kin.unsqueeze(1), next_kinematic, pred)
    is_rigid = batch.material == MATERIALS.index("rigid")
    if rigid:
        pred = rigid_projection(pred, batch.rest, batch.object_id, batch.num_objects, is_rigid & ~kin)
    if collide:
        pred = contact_projection(pred, batch, iterations=contact_iterations, ground=True)
        # a guarantee when the contact iterations hit their cap: lift what is still below the floor
        pred = ground_projection(pred, batch.ground + batch.radius, batch.object_id, batch.num_objects,
                                 is_rigid, ~kin)
    return torch.where(kin.unsqueeze(1), next_kinematic, pred)


# --------------------------------------------------------------------------- rollouts


def rollout_packed(model: GNS, batch: GraphBatch, history: torch.Tensor, steps: int,
                   kinematic_future: Optional[torch.Tensor] = None, rigid: bool = True, collide: bool = True,
                   progress: bool = False, grad: bool = False) -> torch.Tensor:
    """Roll a packed batch forward ``steps`` frames.

    Args:
        history: (C + 1, N, 3) float, m. The last C + 1 frames, oldest first; the last is frame 0.
        kinematic_future: (steps, N, 3) float, m. Positions at frames 1..steps; only kinematic
            rows are read. None: kinematic particles hold still.
        rigid: project rigid objects onto rigid motions each step.
        collide: keep free particles out of kinematic ones and other objects, and above the ground, each step.
        grad: record the autograd graph, so gradients flow from the result to ``history``,
            ``kinematic_future`` (the action) and the model's parameters (for gradient-based
            planning). The neighbour graphs and the set of active contacts are not differentiated
            (they are piecewise constant). False (default): no graph is recorded.

    Returns:
        (steps, N, 3) float, m. Predicted positions of frames 1..steps.
    """
    with torch.set_grad_enabled(grad):
        out = []
        hist = history
        frames = range(steps)
        if progress:
            from tqdm import tqdm

            frames = tqdm(frames, desc="rollout", unit="frame")
        for t in frames:
            nk = None if kinematic_future is None else kinematic_future[t]
            nxt = model.next_positions(hist, batch, nk, rigid=rigid, collide=collide)
            out.append(nxt)
            hist = torch.cat([hist[1:], nxt.unsqueeze(0)], 0)
        return torch.stack(out) if out else history.new_zeros((0,) + history.shape[1:])


def _initial_history(state: ParticleState, frames: int, dt: float) -> np.ndarray:
    """(frames, N, 3) float32 m: the state's history, padded at the old end by constant-velocity extrapolation."""
    have = [] if state.history is None else list(state.history[-(frames - 1):]) if frames > 1 else []
    have = have + [state.positions]
    missing = frames - len(have)
    if missing > 0:
        step = state.velocities.astype(np.float32) * np.float32(dt)
        first = have[0]
        pad = [first - step * k for k in range(missing, 0, -1)]
        have = pad + have
    return np.stack(have).astype(np.float32)


def batched_rollout(model: GNS, scenes: Sequence[ParticleScene], actions: Sequence[Optional[Action]], steps: int,
                    states: Optional[Sequence[Optional[ParticleState]]] = None, rigid: bool = True,
                    collide: bool = True, device="cpu", progress: bool = False) -> list[Rollout]:
    """Roll out many scenes at once as one packed batch (for the planner).

    Args:
        scenes: B scenes.
        actions: B actions (or None for a scene without a tool); each covers ``steps + 1`` frames.
        steps: frames to predict.
        states: B initial states (default: each scene at rest); their ``history`` is used when present.

    Returns:
        B rollouts of ``steps + 1`` frames each (frame 0 is the initial state), dt = ``model.config.dt``.
    """
    dt = model.config.dt
    if len(actions) != len(scenes):
        raise ValueError(f"got {len(scenes)} scenes but {len(actions)} actions")
    states = list(states) if states is not None else [None] * len(scenes)
    dtype = next(model.parameters()).dtype
    batch = pack_scenes(scenes, device=device, dtype=dtype)
    hists, futures = [], []
    for s, a, st in zip(scenes, actions, states):
        st = st or ParticleState.at_rest(s)
        h = _initial_history(st, model.config.history + 1, dt)
        fut = np.repeat(h[-1:], steps, 0)
        if a is not None:
            if a.num_frames < steps + 1:
                raise ValueError(f"action covers {a.num_frames} frames, need steps + 1 = {steps + 1}")
            if a.indices.size and a.indices.max() >= s.num_particles:
                raise ValueError("action indices exceed the scene's particles")
            fut[:, a.indices] = a.positions[1:steps + 1]
            h[-1, a.indices] = a.positions[0]
        hists.append(h)
        futures.append(fut)
    hist = torch.as_tensor(np.concatenate(hists, 1), device=device, dtype=dtype)
    fut = torch.as_tensor(np.concatenate(futures, 1), device=device, dtype=dtype)
    pred = rollout_packed(model, batch, hist, steps, fut, rigid=rigid, collide=collide, progress=progress)
    pos = torch.cat([hist[-1:], pred], 0).float().cpu().numpy()
    out, o = [], 0
    for s in scenes:
        n = s.num_particles
        out.append(Rollout(s, pos[:, o:o + n], dt))
        o += n
    return out


class LearnedSimulator(Dynamics):
    """The GNN behind the shared :class:`~dynamics.base.Dynamics` interface.

    ``step`` reads the velocity history from ``state_in.history`` (padded by constant-velocity
    extrapolation when shorter than the model needs) and writes ``state_out.positions``,
    ``state_out.velocities`` (m/s, finite difference over dt) and ``state_out.history``.

    Args:
        model: a trained :class:`GNS` (put in eval mode here).
        scene: the scene to simulate.
        action_indices: (M,) scene indices of the particles ``control`` rows move, in order;
            default: every kinematic particle of the scene, ascending. Kinematic particles not
            listed hold still.
        rigid: project rigid objects onto rigid motions.
        collide: keep free particles out of kinematic ones (tool, static objects) and other objects,
            and above the ground.
    """

    def __init__(self, model: GNS, scene: ParticleScene, action_indices: Optional[np.ndarray] = None,
                 rigid: bool = True, collide: bool = True, device="cpu"):
        self.model = model.eval()
        self.scene = scene
        self.dt = model.config.dt
        self.rigid = rigid
        self.collide = collide
        self.device = torch.device(device)
        self.dtype = next(model.parameters()).dtype
        self.batch = pack_scenes([scene], device=self.device, dtype=self.dtype)
        self.action_indices = (np.flatnonzero(scene.kinematic) if action_indices is None
                               else np.asarray(action_indices, np.int64))

    def step(self, state_in: ParticleState, state_out: ParticleState, control: Optional[np.ndarray], dt: float) -> None:
        if abs(dt - self.dt) > 1e-9 * max(1.0, self.dt):
            raise ValueError(f"the model was trained at dt = {self.dt} s and cannot step by {dt} s")
        frames = self.model.config.history + 1
        hist = _initial_history(state_in, frames, self.dt)
        nk = hist[-1].copy()
        if control is not None:
            control = np.asarray(control, np.float32)
            if control.shape != (len(self.action_indices), 3):
                raise ValueError(f"control: expected shape ({len(self.action_indices)}, 3), got {control.shape}")
            nk[self.action_indices] = control
        with torch.no_grad():
            h = torch.as_tensor(hist, device=self.device, dtype=self.dtype)
            nxt = self.model.next_positions(h, self.batch, torch.as_tensor(nk, device=self.device, dtype=self.dtype),
                                            rigid=self.rigid, collide=self.collide).float().cpu().numpy()
        new_hist = np.ascontiguousarray(hist[1:])  # the C frames before the new one, oldest first
        state_out.positions[...] = nxt
        state_out.velocities[...] = (nxt - hist[-1]) / np.float32(self.dt)
        if state_out.history is not None and state_out.history.shape == new_hist.shape:
            state_out.history[...] = new_hist
        else:
            object.__setattr__(state_out, "history", new_hist)  # ParticleState is frozen; history is ours to fill

    def rollout(self, action: Optional[Action], steps: int, state0: Optional[ParticleState] = None,
                progress: bool = False) -> Rollout:
        """Roll out ``steps`` frames (same contract as :meth:`Dynamics.rollout`), keeping the
        history on the model's device between steps instead of going through ``step``."""
        if action is not None and not np.array_equal(action.indices, self.action_indices):
            if not np.all(self.scene.kinematic[action.indices]):
                raise ValueError("action moves particles that are not kinematic in the scene")
        return batched_rollout(self.model, [self.scene], [action], steps, [state0], rigid=self.rigid,
                               collide=self.collide, device=self.device, progress=progress)[0]
