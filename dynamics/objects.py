"""Object-level learned dynamics for rigid bodies: one graph node per object, not per particle.

In the spirit of FIGNet (Allen et al. 2022, object nodes for rigid bodies) and DPI-Net's
hierarchy (Li et al. 2019): a rigid object's particles move as one rigid body, so the
network reasons about its pose and twist only and the particles follow by skinning (the
rigid transform of each object's body-frame points, :func:`skin`). See
``docs/ARCHITECTURE.md`` for where this sits beside the particle GNN (:mod:`dynamics.model`).

**State.** Per object and frame: the pose ``(c, R)`` (centre of mass, m; rotation from the
rest pose) fit to its particles by Kabsch (:func:`fit_poses`), and from two poses its
linear velocity ``v = c_t - c_{t-1}`` (m/frame) and angular velocity ``w = log(R_t R_{t-1}^T)``
(rad/frame, world frame).

**Nodes.** Every object of the scene: free rigid objects (predicted) and kinematic ones (the
tool, static objects: their particles follow the given motion; they only send messages).
Node features: the last ``history`` linear and angular velocities (normalised; a kinematic
node reads its prescribed next velocity instead), ln of the mass, friction, restitution, the
sorted half extents of the body over ``r``, the gravity direction in the body frame, a
kinematic flag and the ground as a boundary feature (lowest particle's clearance over ``r``,
the share of its surface particles within ``r`` of that level and their centroid relative to the centre).

**Edges** join object ``i`` (a free receiver) and any other object ``j`` of its scene whose
*surface particles* (:func:`surface_points`) come within ``contact_radius`` (default 3.1 r:
between the lattice's second and third neighbour distances, 2.83 r and 3.46 r, so resting
contacts across a lattice do not flicker at the radius). Particle pairs ``(a in i, b in j)``
are weighted by ``w = 1 - |x_a - x_b| / R_c`` (> 0 within the radius) and summarised as a
contact patch: total weight, weighted mean normal (from ``j`` to ``i``), mean gap over ``r``,
the patch centre relative to both centres over the object size, and the relative velocity of
``j`` at the patch seen from ``i``. Objects are first paired by their bounding boxes, so only
nearby pairs compute particle distances.

**Output, with the physics built in.** After ``message_steps`` rounds of message passing
(residual MLPs, sum aggregation: permutation equivariant) an edge decoder gives each contact
an impulse ``F_ij`` (kg m/frame^2) and a node decoder gives each free object a ground
response. For a pair of free objects the impulse is antisymmetrised, ``F_ij = mu_ij S
(phi_ij - phi_ji) / 2`` with the reduced mass ``mu_ij = M_i M_j / (M_i + M_j)``, so
``F_ji = -F_ij`` (Newton's third law: an isolated pair conserves linear momentum exactly,
and angular momentum too, each impulse acting at the shared patch centre ``p_ij``); a
kinematic sender (infinite mass) pushes with ``M_i S phi_ij``. The ground and gravity act
through ``a_ext = g + gate_i (-g + S psi_i)``: ``gate`` is 1 when the lowest particle touches
the ground and 0 once it is ``r`` above it, and a body resting on a supported body (a contact
patch from below, normal within ~60 degrees of up, mean gap under 2.5 r) or on a kinematic one
takes its supporter's gate (up to :data:`SUPPORT_DEPTH` bodies high): so free flight falls exactly
under ``g``, and a stacked box does not have to learn an exact upward impulse to stay put. Then
``a_i = a_ext + sum_j F_ij / M_i`` and ``alpha_i = gate_i S_w psi'_i + I_i^-1 sum_j (p_ij - c_i) x F_ij``
(world inertia ``I_i = R I_body R^T``); with ``ground_torque`` the ground's push ``M_i (a_ext - g)`` also
acts at the centroid ``p_g`` of the body's lowest surface particles, adding ``I_i^-1 (p_g - c_i) x M_i
(a_ext - g)`` to ``alpha_i`` (friction turns a sliding sphere toward rolling, as a contact does); with ``ground_friction`` the push's
tangential part is kept inside Coulomb's cone, ``|push_t| <= mu push_n`` with ``mu`` the average of the body's
and the ground's friction (XPBD's contact rule), so a slippery or rough body's sliding follows its friction
also outside the trained range; with ``ground_coulomb`` the tangential part of the ground's response on a
body touching it is not decoded at all but Coulomb friction, against the body's slip and never more than
stops it, ``mu`` times the normal load (its own and what rests on it) times a decoded share of the cone in
[0, 1], and friction reaches the node features only as a dimensionless slip number
(:attr:`ObjectConfig.ground_coulomb`). ``S``, ``S_w``: the data's acceleration scales.

Integration (semi-implicit Euler, per frame): ``v' = v + a``, ``c' = c + v'``, ``w' = w + alpha``,
``R' = exp(w') R``. Features are translation invariant (all relative, heights relative to the
ground), so the model is; yaw equivariance is learned (training turns every window by a
random yaw about z) rather than built in.

**Materials.** Only ``rigid`` objects move on this path; a scene with any other free
material (sand, cloth, elastic) is refused with :class:`particles.ValidationError` and keeps
the particle GNN (:class:`dynamics.tasks.LearnedBackend`).

**Batches.** Scenes pack like :func:`dynamics.model.pack_scenes`: K candidate tool motions
of one scene are K copies, so a planning step costs K x objects nodes plus the contact
patches, not K x N particles (:class:`ObjectBackend`). Rollouts can record gradients
(``grad=True``): to the tool's motion, the initial state and the weights; contact sets are
piecewise constant and not differentiated.

Checkpoints: :func:`save_object_model` / :func:`load_object_model`, plain tensors and values
under ``format = "worldline.object_checkpoint"`` and ``kind = "objects"`` (the GNN's are
``worldline.gns_checkpoint``), loaded with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from particles import FileFormatError, KINEMATIC, ParticleScene, Rollout, ValidationError

from .model import _mlp, _rotation_from_vector, batch_to

__all__ = [
    "ObjectConfig", "ObjectBatch", "ObjectNet", "pack_objects", "surface_points", "fit_poses", "skin",
    "angular_velocity", "object_rollout", "ObjectBackend", "PackedObjects", "ObjectTrainConfig", "train_objects",
    "save_object_model", "load_object_model", "object_model_from_checkpoint", "is_object_checkpoint", "supports", "OBJECT_FORMAT",
    "object_statistics", "predict_trajectory_objects", "lattice_box", "box_separation", "RULES", "object_backend",
    "zero_acceleration_model", "ground_contact", "POINT_CONTACT", "LINE_CONTACT", "AREA_CONTACT",
]

OBJECT_FORMAT = "worldline.object_checkpoint"
OBJECT_VERSION = 1
OBJECT_KIND = "objects"
#: Rounds of support propagation: a stack this many bodies high above the ground counts as resting.
SUPPORT_DEPTH = 3
#: Contact radius of new configs, in particle radii (see the module docstring).
CONTACT_RADII = 3.1
#: ``ground_coulomb``: the share of the gradient that reaches the decoder where its share of the friction
#: cone lies outside [0, 1] (the clamp's own is 0 there: a warm start decoding a forward push would never learn
#: to brake). Forward values are the clamp's.
COULOMB_LEAK = 0.1


#: :func:`ground_contact`'s kinds: a point (a ball; the full friction torque), a line (a lying cylinder or
#: capsule; rolling about the line and turning about the vertical, no tipping), an area (a flat base; turning
#: about the vertical only).
POINT_CONTACT, LINE_CONTACT, AREA_CONTACT = 0, 1, 2
#: :func:`ground_contact`: the in-plane extent (in particle radii ``r``) beyond which a flat band of lowest
#: particles counts as spread along a direction. The lattice spacing is ``2 r``: a face's single row of
#: particles spans 0 across, two adjacent rows exactly ``2 r`` (the 4 cm wide boxes of the tests, flat in
#: Newton), three ``4 r`` (the narrowest box base generated). The faceted meshes the round bodies are filled
#: from leave level strips of surface samples up to 1.53 r wide (lying capsules and cylinders of radius
#: 4.6-6.5 r, 4 fill seeds, within ``CONTACT_LEVEL``); 1.75 r lies between them and two rows.
CONTACT_SPREAD = 1.75
#: :func:`ground_contact`: how much longer than wide (in ``r``) the lowest particles (within ``r`` of the
#: lowest one) of a round body must be to make a line. Measured on the generators' fills (sparse shell
#: samples): balls of radius 4.6-6.5 r 0.6-1.8 r, lying cylinders and capsules 3.1-8.2 r (one lattice spacing,
#: 2 r, of sampling noise above the balls' and more than that below the shortest lying bodies').
CONTACT_LINE = 2.5
#: :func:`ground_contact`: the RMS distance (in ``r``) of the lowest particles (within ``r`` of the lowest
#: one) from their best-fit plane below which they are one flat face (a lattice face: 0; the strip of a lying
#: cylinder or a ball of radius 4.6-6.5 r: 0.16-0.35 r).
CONTACT_FLAT = 0.1
#: :func:`ground_contact`: two principal moments of inertia within this share of the largest are equal (a
#: body of revolution). The generators' shell-filled capsules and long cylinders measure within 0.5-3%,
#: their distinct moment 10-65% away; short cylinders 2-9% (those above 5% are left to the band test).
CONTACT_ROUND = 0.05
#: :func:`ground_contact`: the third moment must differ from the pair by this share of the largest for its
#: axis to be the symmetry axis: a nearly isotropic fill's (a cylinder about as long as wide, 2-9% apart)
#: distinct axis is set by the sampling, not the shape (one measured 50 deg off the cylinder's axis).
CONTACT_DISTINCT = 0.15
#: :func:`ground_contact`: the height (in ``r``) above the lowest particle within which particles are level.
#: A lattice face is level to float round-off; the surface samples of a round body within 0.02 r of its
#: lowest span at most 1.53 r across (2.1 r within 0.05 r, and up to 3.4 r within 0.2 r, the old flat test's
#: band: as wide as a box base). A tilted face is left to the plane test (``CONTACT_FLAT``).
CONTACT_LEVEL = 0.02


def ground_contact(pts: torch.Tensor, z: torch.Tensor, zmin: torch.Tensor, smask: torch.Tensor, r: torch.Tensor,
                   up: torch.Tensor, rot: torch.Tensor, inertia: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """How each body touches the ground, from its lowest surface particles, and the projector that keeps the
    part of a ground friction torque its contact can take (the rest its contact's pressure balances).

    Two bands of each body's surface particles: the level band (within ``CONTACT_LEVEL r`` of the lowest
    one) and the low band (within ``r``, the ground gate's). Extents are max minus min of the particles'
    offsets (m) along in-plane directions (normal to ``up``). A body is

    - an AREA contact (a box, an upright cylinder on its base) if its level band spreads more than
      ``CONTACT_SPREAD r`` along both its in-plane principal directions, or if its low band lies on one plane
      (4 or more particles, RMS off it below ``CONTACT_FLAT r``, normal within 30 deg of ``up``) spread more than
      ``CONTACT_SPREAD r`` along both of that plane's directions (a flat base tilted by up to about 10 deg):
      its friction torque keeps only its part about ``up`` (the turn about the vertical);
    - else a LINE contact along its symmetry axis if it is a body of revolution (two principal moments of
      inertia within ``CONTACT_ROUND`` of the largest, the third ``CONTACT_DISTINCT`` away from them: a
      capsule, a long or a short cylinder) whose axis lies
      within 30 deg of the ground plane (the sparse surface samples of a short lying cylinder do not show
      its axis; its inertia does);
    - else a LINE contact if its low band is more than ``CONTACT_LINE r`` longer (along its main in-plane
      direction, each particle weighted by how level it is with the lowest: the line's axis) than wide (a
      box on an edge, a long body the inertia test misses);
    - else a POINT contact (a ball, a capsule on its cap).

    A LINE contact's friction torque keeps its parts about the axis (rolling) and about ``up`` and loses
    the part about the in-plane direction normal to the line (tipping); a POINT contact's is kept whole.

    No gradient flows through the classification or the line's axis (both read from the detached pose).

    Args:
        pts: (O, P, 3) world surface points of each body, m (padded slots anywhere).
        z: (O, P) their height along z, m (padded or non-surface slots large). zmin: (O,) the lowest, m.
        smask: (O, P) bool, real surface slots. r: (O,) particle radius, m. up: (O, 3) unit, against gravity.
        rot: (O, 3, 3) each body's rotation from its body frame. inertia: (O, 3, 3) kg m^2, body-frame inertia.

    Returns:
        ``kind`` (O,) int64 (:data:`POINT_CONTACT`, :data:`LINE_CONTACT`, :data:`AREA_CONTACT`) and ``proj``
        (O, 3, 3) in ``pts``' dtype: the projector applied to a torque (``proj @ t``).
    """
    with torch.no_grad():
        d, upd, rd = pts.detach().double(), up.detach().double(), r.detach().double()
        zd, zmd = z.detach().double(), zmin.detach().double()
        eye = torch.eye(3, dtype=d.dtype, device=d.device).expand(len(d), 3, 3)
        big = torch.finfo(d.dtype).max

        def offsets(band, flat, weight=None):
            # offsets (O, P, 3) m from the band's centroid (0 outside; flat: in-plane), count, (weighted) covariance's eigh
            bf = band.to(d.dtype)[..., None]
            nb = bf.sum(1)
            dp = (d - ((d * bf).sum(1) / nb.clamp_min(1.0))[:, None]) * bf
            if flat:
                dp = dp - (dp * upd[:, None]).sum(-1, keepdim=True) * upd[:, None]
            wp = dp if weight is None else dp * weight[..., None]
            return dp, nb[:, 0], torch.linalg.eigh(wp.transpose(1, 2) @ dp / nb.clamp_min(1.0)[:, :, None])

        def extent(dp, band, direction):  # (O,) m: max minus min of the band's offsets along direction (O, 3)
            x = (dp * direction[:, None]).sum(-1)
            return (torch.where(band, x, -big).amax(1) - torch.where(band, x, big).amin(1)).clamp_min(0.0)

        def in_plane(vec):  # (O, 3) unit, the in-plane part of vec (x where that vanishes)
            vec = vec - (vec * upd).sum(1, keepdim=True) * upd
            seed = torch.zeros_like(vec)
            seed[:, 0] = 1.0
            vec = torch.where(vec.norm(dim=1, keepdim=True) > 1e-6, vec, seed - (seed * upd).sum(1, keepdim=True) * upd)
            return vec / vec.norm(dim=1, keepdim=True).clamp_min(1e-12)

        spread = CONTACT_SPREAD * rd
        level = (zd < (zmd + CONTACT_LEVEL * rd)[:, None]) & smask
        dp, nb, (_, vec) = offsets(level, True)
        axis = in_plane(vec[..., 2])
        across = torch.linalg.cross(upd, axis, dim=1)
        area = (nb >= 3) & (extent(dp, level, axis) > spread) & (extent(dp, level, across) > spread)
        low = (zd < (zmd + rd)[:, None]) & smask
        dw, nw, (ev, vec) = offsets(low, False)
        area = area | ((nw >= 4) & (ev[:, 0].clamp_min(0.0).sqrt() < CONTACT_FLAT * rd)
                       & ((vec[..., 0] * upd).sum(1).abs() > math.cos(math.radians(30.0)))
                       & (extent(dw, low, vec[..., 1]) > spread) & (extent(dw, low, vec[..., 2]) > spread))
        # the line's axis: the main in-plane direction of the low band, each particle weighted by how level it is
        # with the lowest (1 there, 0 at r above it), so a short lying cylinder's axis is its level row, not
        # the wider curve across it
        dw, _, (_, vec) = offsets(low, True, (1.0 - (zd - zmd[:, None]) / rd[:, None]).clamp(0.0, 1.0))
        axis = in_plane(vec[..., 2])
        across = torch.linalg.cross(upd, axis, dim=1)
        line = ~area & (extent(dw, low, axis) - extent(dw, low, across) > CONTACT_LINE * rd)
        # bodies of revolution: the line is the symmetry axis, if it lies (ObjectBatch.inertia about the centre)
        rd3 = rot.detach().double()
        lam, vec = torch.linalg.eigh(rd3 @ inertia.detach().double() @ rd3.transpose(1, 2))  # ascending
        tol = CONTACT_ROUND * lam[:, 2].clamp_min(1e-30)
        low_pair, high_pair = (lam[:, 1] - lam[:, 0]) < tol, (lam[:, 2] - lam[:, 1]) < tol
        distinct = CONTACT_DISTINCT * lam[:, 2].clamp_min(1e-30)
        prolate = high_pair & ((lam[:, 1] - lam[:, 0]) > distinct)  # symmetry axis: the smallest moment's
        oblate = low_pair & ((lam[:, 2] - lam[:, 1]) > distinct)  # the largest moment's
        sym = torch.where(prolate[:, None], vec[..., 0], vec[..., 2])
        lying = (prolate | oblate) & ((sym * upd).sum(1).abs() < math.sin(math.radians(30.0)))
        line = (line | lying) & ~area
        axis = torch.where(lying[:, None], in_plane(sym), axis)
        across = torch.linalg.cross(upd, axis, dim=1)
        kind = torch.where(area, AREA_CONTACT, torch.where(line, LINE_CONTACT, POINT_CONTACT))
        proj = torch.where(area[:, None, None], upd[:, :, None] * upd[:, None, :],
                           torch.where(line[:, None, None], eye - across[:, :, None] * across[:, None, :], eye))
    return kind, proj.to(pts.dtype)

def _vec3(name, value):
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        raise ValidationError(name, f"expected 3 numbers, got {value!r}") from None
    if len(out) != 3 or not all(math.isfinite(v) and v > 0 for v in out):
        raise ValidationError(name, f"expected 3 positive finite numbers, got {value!r}")
    return out


@dataclass(frozen=True)
class ObjectConfig:
    """Architecture and scales of an :class:`ObjectNet` (plain values: goes into checkpoints)."""

    dt: float
    """s (> 0): the frame step of the training data; the model only steps by it."""
    radius: float
    """r, m (> 0): particle radius of the training data (length unit of the features)."""
    contact_radius: float = 0.0
    """R_c, m: surface particles of two objects closer than this make a contact; 0: 3.1 r."""
    history: int = 3
    """C >= 1: past velocities per node (the model reads C + 1 poses)."""
    latent: int = 64
    hidden_layers: int = 2
    message_steps: int = 2
    vel_scale: tuple = (1.0, 1.0, 1.0)
    """m/frame, per axis: scale of object linear velocities."""
    ang_scale: tuple = (1.0, 1.0, 1.0)
    """rad/frame, per axis: scale of object angular velocities."""
    acc_scale: tuple = (1.0, 1.0, 1.0)
    """m/frame^2, per axis: ``S``, scale of linear accelerations (and impulses per unit mass)."""
    ang_acc_scale: tuple = (1.0, 1.0, 1.0)
    """rad/frame^2, per axis: ``S_w``."""
    ground_torque: bool = False
    """The ground's push (its decoded linear response) acts at the body's ground contact (the centroid of
    its lowest surface particles) and so also turns the body: friction on a sliding sphere or lying
    cylinder spins it up toward rolling, as a contact does. False (checkpoints before it): the ground's
    turning comes from the decoded angular response alone."""
    ground_friction: float = 0.0
    """Coulomb cone on the ground's push (0: off, checkpoints before it): the friction coefficient of the
    ground the data was simulated on (Newton's ``SimConfig.ground_friction``, 0.5). The push's tangential
    part is limited to ``mu (a_ext - g) . up`` with ``mu = (mu_body + ground_friction) / 2`` (XPBD's
    averaged contact friction), so how far a slippery or a rough body slides follows from its friction
    by Coulomb's law, also outside the frictions trained on, rather than from an MLP's extrapolation."""
    ground_stick: bool = False
    """With ``ground_friction``: the ground's friction on a body touching it is not decoded but solved, as
    one Coulomb contact at the ground below its lowest particles: the impulse that stops that point's
    tangential motion over the frame (through the body's mass and inertia: a ball rolls, a resting body
    stays put: static friction), limited to the cone ``mu x`` its normal load (then it slides). The friction
    torque is cut to what the body's ground contact takes (:func:`ground_contact`): a flat base is only
    turned about the vertical (its base's pressure balances the tipping), a lying cylinder or capsule rolls
    about its axis and turns about the vertical, a ball takes all of it. False: checkpoints before it."""
    ground_coulomb: float = 0.0
    """Coulomb-structured ground response (0: off, checkpoints before it; else the friction coefficient of
    the ground the data was simulated on, Newton's ``SimConfig.ground_friction``, 0.5). For a body touching
    the ground the tangential part of the ground's response is not a decoded acceleration but Coulomb
    friction, ``a_f = -u_hat min(lambda mu L, |u|)``: against the tangential slip ``u`` (m/frame) of the body's
    ground contact, never more than stops it within the frame
    (friction never drives a body nor reverses its slip: a body at rest stays at rest unless a contact
    moves it), with ``mu = (mu_body + ground_coulomb) / 2`` (XPBD's averaged friction) a multiplier and
    ``L`` (m/frame^2) the normal load per unit of the body's mass: its own decoded normal push plus the
    loads of the bodies resting on it (through the same support contacts as the ground gate). The network
    decodes only ``lambda`` in [0, 1], the share of the cone in use (1: sliding; below 1: rolling, a
    body partly lifted), as ``-(S psi_t) . u_hat / (ground_coulomb |g|)``; so how far a slippery or rough
    body slides scales with its friction by Coulomb's law, also outside the trained range, and the ground
    decelerates bodies of any density alike. ``u`` is the slip of the body's ground contact point (below its
    lowest surface particles, as for ``ground_stick``): a body rolling without slipping feels no friction. The ground's turning about the vertical is held to the same
    rule (it only slows the spin, never reverses it). The friction input of the node features is replaced
    by the dimensionless slip number ``ln(1 + |v_t| / (mu |g|))`` (``v_t`` the contact point's last tangential
    velocity: frames of Coulomb braking it takes to stop the slip), so no raw friction outside the trained range reaches the
    network. Bodies carried only by other bodies keep the decoded tangential response."""
    coulomb_torque: bool = False
    """With ``ground_coulomb``: the friction acts at the ground contact point, so it also turns the body
    (``I^-1 (lever x M a_f)``), less what the body's ground contact balances (:func:`ground_contact`, as
    ``ground_stick``): a flat base (an area contact) keeps only the turn about the vertical, a lying
    cylinder or capsule (a line contact) the roll about its axis and the turn about the vertical, a ball
    (a point contact) all of it. So a sliding ball or lying capsule is spun up until it rolls without
    slipping and then coasts, as Newton's do.
    The cap that keeps the friction from reversing the slip counts the turning (the contact's effective
    mass along the slip). False: friction moves the body's centre only."""

    def __post_init__(self):
        for name in ("dt", "radius"):
            v = float(getattr(self, name))
            if not (math.isfinite(v) and v > 0):
                raise ValidationError(name, f"must be positive and finite, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        rc = float(self.contact_radius) or CONTACT_RADII * self.radius
        if not (math.isfinite(rc) and rc > 2 * self.radius):
            raise ValidationError("contact_radius", f"must exceed 2 r = {2 * self.radius} m, got {rc}")
        object.__setattr__(self, "contact_radius", rc)
        for name, lo in (("history", 1), ("latent", 1), ("hidden_layers", 1), ("message_steps", 1)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValidationError(name, f"must be an integer >= {lo}, got {v!r}")
            object.__setattr__(self, name, int(v))
        for name in ("vel_scale", "ang_scale", "acc_scale", "ang_acc_scale"):
            object.__setattr__(self, name, _vec3(name, getattr(self, name)))
        if not isinstance(self.ground_torque, (bool, np.bool_)):
            raise ValidationError("ground_torque", f"must be true or false, got {self.ground_torque!r}")
        object.__setattr__(self, "ground_torque", bool(self.ground_torque))
        mu = float(self.ground_friction)
        if not (math.isfinite(mu) and mu >= 0):
            raise ValidationError("ground_friction", f"must be a friction coefficient >= 0 (0: off), got {self.ground_friction!r}")
        object.__setattr__(self, "ground_friction", mu)
        if not isinstance(self.ground_stick, (bool, np.bool_)):
            raise ValidationError("ground_stick", f"must be true or false, got {self.ground_stick!r}")
        object.__setattr__(self, "ground_stick", bool(self.ground_stick))
        if self.ground_stick and mu == 0:
            raise ValidationError("ground_stick", "needs ground_friction > 0 (the cone's friction)")
        mc = float(self.ground_coulomb)
        if not (math.isfinite(mc) and mc >= 0):
            raise ValidationError("ground_coulomb", f"must be a friction coefficient >= 0 (0: off), got {self.ground_coulomb!r}")
        if mc > 0 and mu > 0:
            raise ValidationError("ground_coulomb", "replaces ground_friction's cone: set one of them")
        object.__setattr__(self, "ground_coulomb", mc)
        if not isinstance(self.coulomb_torque, (bool, np.bool_)):
            raise ValidationError("coulomb_torque", f"must be true or false, got {self.coulomb_torque!r}")
        object.__setattr__(self, "coulomb_torque", bool(self.coulomb_torque))
        if self.coulomb_torque and mc == 0:
            raise ValidationError("coulomb_torque", "needs ground_coulomb > 0")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        for k in ("vel_scale", "ang_scale", "acc_scale", "ang_acc_scale"):
            d[k] = list(d[k])
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ObjectConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        if set(d) - known:
            raise ValidationError("config", f"unknown object-model config keys {sorted(set(d) - known)}")
        return cls(**d)


# --------------------------------------------------------------------------- packing


def supports(scene: ParticleScene) -> list[str]:
    """Reasons, one line each, why the object model cannot roll ``scene`` out (empty: it can):
    every object with free particles must be ``rigid`` and have at least 3 particles."""
    out = []
    for k in np.unique(scene.object_id[~scene.kinematic]):
        mat = scene.object_material[k]
        name = scene.object_name[k] if scene.object_name is not None else str(k)
        if mat != "rigid":
            out.append(f"object {name!r} is {mat}; the object model moves rigid bodies only (use the particle GNN)")
        elif int(np.sum(scene.object_id == k)) < 3:
            out.append(f"object {name!r} has fewer than 3 particles; its rotation is undetermined")
        elif np.any(scene.kinematic[scene.object_id == k]):
            out.append(f"object {name!r} mixes kinematic and free particles")
    return out


def surface_points(body: np.ndarray, radius: float) -> np.ndarray:
    """(P,) bool: the points of one object that can touch another object.

    A point is interior (False) when other points of its object lie on both sides of it along
    each body axis within 2.5 r (``|d| <= 2.5 r`` with ``d . e >= r`` for each of ``+-x, +-y,
    +-z``), as in a filled lattice; anything else (faces, edges, rotated or irregular samplings)
    is surface. Conservative: a wrong "surface" only costs time.

    Args:
        body: (P, 3) float, m. The object's points.
        radius: r, m.
    """
    p = np.asarray(body, np.float64)
    if len(p) < 27:
        return np.ones(len(p), bool)
    from scipy.spatial import cKDTree

    tree = cKDTree(p)
    pairs = tree.query_pairs(2.5 * radius, output_type="ndarray")
    covered = np.zeros((len(p), 6), bool)
    for a, b in ((pairs[:, 0], pairs[:, 1]), (pairs[:, 1], pairs[:, 0])):
        d = p[b] - p[a]
        for k in range(3):
            np.logical_or.at(covered[:, 2 * k], a, d[:, k] >= radius)
            np.logical_or.at(covered[:, 2 * k + 1], a, d[:, k] <= -radius)
    return ~covered.all(1)


def lattice_box(body: np.ndarray, radius: float):
    """The box shape of an object whose particles fill a cubic lattice of pitch 2 r, or None.

    Scenes are lifted that way (README, *Scene files*: the outermost centres lie r inside the
    surface), and Newton collides a rigid box object with exactly that box (the scene's box shape,
    or ``dynamics.sim.simulator``'s box around the particles grown by r), as it does the tool's
    pusher. So a body's shape is the lattice's bounding box grown by r, along the lattice's axes,
    when every lattice site inside the bounds holds a particle (anything else: spheres, meshes,
    a gripper's two fingers, a sheet, ... gives None).

    Args:
        body: (P, 3) float, m. The object's points (any frame).
        radius: r, m.

    Returns:
        None, or ``(axes (3, 3), centre (3,), half (3,))`` float64: unit axes as columns, the box's
        centre (m, in the points' frame) and its half extents (m).
    """
    p = np.asarray(body, np.float64)
    r = float(radius)
    if len(p) < 1:
        return None
    if len(p) == 1:
        return np.eye(3), p[0].copy(), np.full(3, r)
    from scipy.spatial import cKDTree

    pairs = cKDTree(p).query_pairs(2.1 * r, output_type="ndarray")
    d = p[pairs[:, 1]] - p[pairs[:, 0]]
    n = np.linalg.norm(d, axis=1)
    d = d[np.abs(n - 2 * r) < 0.05 * r] / (2 * r)
    if not len(d):
        return None
    a0 = d[0]
    ortho = d[np.abs(d @ a0) < 0.05]
    if len(ortho):
        a1 = ortho[0]
    else:  # a row of particles: any axis across it
        a1 = np.cross(a0, [1.0, 0.0, 0.0] if abs(a0[0]) < 0.9 else [0.0, 1.0, 0.0])
        a1 /= np.linalg.norm(a1)
    a0 = a0 / np.linalg.norm(a0)  # orthonormal (the points are float32)
    a1 = a1 - (a1 @ a0) * a0
    a1 = a1 / np.linalg.norm(a1)
    axes = np.stack([a0, a1, np.cross(a0, a1)], 1)
    q = p @ axes  # (P, 3) lattice coordinates, m
    lo, hi = q.min(0), q.max(0)
    steps = (q - lo) / (2 * r)
    k = np.rint(steps)
    if np.abs(steps - k).max() > 0.05:
        return None
    counts = np.rint((hi - lo) / (2 * r)).astype(np.int64) + 1
    if int(np.prod(counts)) != len(p) or len(np.unique(k.astype(np.int64), axis=0)) != len(p):
        return None
    return axes, axes @ ((lo + hi) / 2), (hi - lo) / 2 + r


@dataclass
class ObjectBatch:
    """What never changes in a rollout of B packed scenes with O objects in all (:func:`pack_objects`).

    Per object ``o``: up to P particles in padded slots (``index``, ``mask``), of which up to S
    surface particles (``surf_index``, ``surf_mask``) take part in contacts.
    """

    num_particles: int
    """N, particles of all packed scenes."""
    num_scenes: int
    scene: torch.Tensor
    """(O,) int64: scene of each object."""
    kinematic: torch.Tensor
    """(O,) bool: objects whose particles are all prescribed (tool, static)."""
    index: torch.Tensor
    """(O, P) int64: packed particle index of each slot (0 in padding)."""
    mask: torch.Tensor
    """(O, P) bool: real slots."""
    body: torch.Tensor
    """(O, P, 3) float, m: rest positions relative to the rest centre of mass (body frame = rest axes)."""
    surf: torch.Tensor
    """(O, S) int64: slot (into P) of each surface point."""
    surf_mask: torch.Tensor
    """(O, S) bool."""
    mass: torch.Tensor
    """(O,) float, kg: object mass (sum of its particle masses)."""
    inertia: torch.Tensor
    """(O, 3, 3) float, kg m^2: body-frame inertia of the particles as point masses about the centre."""
    size: torch.Tensor
    """(O,) float, m: radius of gyration (>= r), the length unit of levers."""
    extent: torch.Tensor
    """(O, 3) float: sorted (descending) half extents of the rest body along its axes, over r."""
    physics: torch.Tensor
    """(O, 3) float: friction, restitution, ln(density / 1000 kg/m^3)."""
    ground: torch.Tensor
    """(O,) float, m: ground height of the object's scene (-inf: none)."""
    radius: torch.Tensor
    """(O,) float, m: particle radius of the object's scene."""
    gravity: torch.Tensor
    """(O, 3) float, m/frame^2 at the config's dt: gravity times dt^2."""
    pairs: torch.Tensor
    """(Q, 2) int64 (receiver, sender): all candidate pairs of one scene with a free receiver; each
    pair of two free objects once (i < j, the top ``num_mutual`` rows), then (free, kinematic) pairs."""
    num_mutual: int
    """Rows of ``pairs`` (from the top) that join two free objects."""
    particle_kinematic: torch.Tensor
    """(N,) bool: kinematic particles."""
    free_particles: torch.Tensor
    """(N,) bool: particles that belong to a free object (everything else is prescribed)."""
    is_box: Optional[torch.Tensor] = None
    """(O,) bool: objects whose particles fill a box lattice (:func:`lattice_box`): their shape is that box."""
    box_axes: Optional[torch.Tensor] = None
    """(O, 3, 3) float: body-frame unit axes of each box (columns); identity where not a box."""
    box_centre: Optional[torch.Tensor] = None
    """(O, 3) float, m: body-frame centre of each box (relative to the centre of mass)."""
    box_half: Optional[torch.Tensor] = None
    """(O, 3) float, m: half extents of each box's shape, the lattice's bounds plus r (0 where not a box)."""

    @property
    def num_objects(self) -> int:
        return int(self.scene.shape[0])

    def to(self, device=None, dtype=None) -> "ObjectBatch":
        """A copy with float tensors cast to ``dtype`` and everything moved to ``device``."""
        return batch_to(self, device, dtype)


_SCENE_CACHE: dict = {}


def _scene_pieces(scene: ParticleScene, dt: float) -> dict:
    """Per-scene numpy pieces of :func:`pack_objects` (cached by identity: training packs the same scenes often)."""
    key = id(scene)
    hit = _SCENE_CACHE.get(key)
    if hit is not None and hit[0] is scene and hit[1] == dt:
        return hit[2]
    bad = supports(scene)
    if bad:
        raise ValidationError("scene", bad[0])
    objs = []
    r = float(scene.radius)
    for k in range(scene.num_objects):
        idx = np.flatnonzero(scene.object_id == k)
        if idx.size == 0:
            continue
        kin = bool(np.all(scene.kinematic[idx]))
        m = scene.mass[idx].astype(np.float64)
        x = scene.positions[idx].astype(np.float64)
        com = (m[:, None] * x).sum(0) / m.sum()
        body = x - com
        inertia = np.einsum("p,pij->ij", m, (body * body).sum(1)[:, None, None] * np.eye(3) - body[:, :, None] * body[:, None, :])
        size = max(math.sqrt(float(np.trace(inertia)) / (2.0 * m.sum())), r)
        ext = np.sort((body.max(0) - body.min(0)) / 2.0 / r + 1.0)[::-1]
        surf = np.flatnonzero(surface_points(body, r))
        box = lattice_box(body, r)
        objs.append(dict(idx=idx, kin=kin, mass=float(m.sum()), body=body, inertia=inertia, size=size, ext=ext,
                         surf=surf, box=box, phys=[float(scene.object_friction[k]), float(scene.object_restitution[k]),
                                          math.log(max(float(scene.object_density[k]), 1e-3) / 1000.0)]))
    g = np.asarray(scene.gravity, np.float64) * dt * dt
    out = dict(objs=objs, n=scene.num_particles, ground=-np.inf if scene.ground is None else float(scene.ground),
               r=r, g=g, kin_p=scene.kinematic.copy())
    if len(_SCENE_CACHE) > 4096:
        _SCENE_CACHE.clear()
    _SCENE_CACHE[key] = (scene, dt, out)
    return out


def pack_objects(scenes: Sequence[ParticleScene], dt: float, device="cpu", dtype=torch.float32) -> ObjectBatch:
    """Concatenate scenes into one :class:`ObjectBatch` (scene b's particles follow scene b-1's, as
    :func:`dynamics.model.pack_scenes`). ``dt`` (s) scales gravity to m/frame^2.

    Raises :class:`particles.ValidationError` (field ``scene``) for a scene :func:`supports` refuses."""
    if not scenes:
        raise ValueError("pack_objects needs at least one scene")
    pieces = [_scene_pieces(s, dt) for s in scenes]
    objs, scene_of, offs = [], [], []
    off = 0
    for b, pc in enumerate(pieces):
        for o in pc["objs"]:
            objs.append(o)
            scene_of.append(b)
            offs.append(off)
        off += pc["n"]
    O = len(objs)
    P = max(len(o["idx"]) for o in objs)
    S = max(max(len(o["surf"]) for o in objs), 1)
    index = np.zeros((O, P), np.int64)
    mask = np.zeros((O, P), bool)
    body = np.zeros((O, P, 3))
    surf = np.zeros((O, S), np.int64)
    surf_mask = np.zeros((O, S), bool)
    for i, (o, base) in enumerate(zip(objs, offs)):
        n = len(o["idx"])
        index[i, :n] = o["idx"] + base
        mask[i, :n] = True
        body[i, :n] = o["body"]
        surf[i, :len(o["surf"])] = o["surf"]
        surf_mask[i, :len(o["surf"])] = True
    scene_of = np.array(scene_of, np.int64)
    kin = np.array([o["kin"] for o in objs], bool)
    # candidate pairs: free-free once (i < j); then (free, kinematic)
    mutual, onto = [], []
    start = 0
    for b, pc in enumerate(pieces):
        ids = np.arange(start, start + len(pc["objs"]))
        start += len(pc["objs"])
        fr, kn = ids[~kin[ids]], ids[kin[ids]]
        for a in range(len(fr)):
            for c in range(a + 1, len(fr)):
                mutual.append((fr[a], fr[c]))
        onto += [(i, j) for i in fr for j in kn]
    pairs = np.array(mutual + onto, np.int64).reshape(-1, 2)
    ground = np.array([pieces[b]["ground"] for b in scene_of])
    radius = np.array([pieces[b]["r"] for b in scene_of])
    grav = np.stack([pieces[b]["g"] for b in scene_of])
    kin_p = np.concatenate([pc["kin_p"] for pc in pieces])
    free_p = np.zeros(off, bool)
    free_p[index[~kin][mask[~kin]]] = True
    boxes = [o["box"] for o in objs]
    box_axes = np.stack([b[0] if b is not None else np.eye(3) for b in boxes])
    box_centre = np.stack([b[1] if b is not None else np.zeros(3) for b in boxes])
    box_half = np.stack([b[2] if b is not None else np.zeros(3) for b in boxes])
    f = lambda a: torch.as_tensor(np.asarray(a), device=device).to(dtype)  # noqa: E731
    i64 = lambda a: torch.as_tensor(np.asarray(a), device=device).to(torch.int64)  # noqa: E731
    bt = lambda a: torch.as_tensor(np.asarray(a), device=device).to(torch.bool)  # noqa: E731
    return ObjectBatch(
        num_particles=off, num_scenes=len(scenes), scene=i64(scene_of), kinematic=bt(kin), index=i64(index),
        mask=bt(mask), body=f(body), surf=i64(surf), surf_mask=bt(surf_mask),
        mass=f([o["mass"] for o in objs]), inertia=f(np.stack([o["inertia"] for o in objs])),
        size=f([o["size"] for o in objs]), extent=f(np.stack([o["ext"] for o in objs])),
        physics=f([o["phys"] for o in objs]), ground=f(ground), radius=f(radius), gravity=f(grav),
        pairs=i64(pairs), num_mutual=len(mutual), particle_kinematic=bt(kin_p), free_particles=bt(free_p),
        is_box=bt([b is not None for b in boxes]), box_axes=f(box_axes), box_centre=f(box_centre), box_half=f(box_half))


# --------------------------------------------------------------------------- poses


def _rotation_from_covariance(h: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) proper rotations R maximising tr(R^T H^T)... i.e. the Kabsch step for
    ``H = sum src dst^T`` (torch, differentiable away from degenerate H)."""
    u, _, vt = torch.linalg.svd(h)
    v = vt.transpose(-1, -2)
    d = torch.sign(torch.linalg.det(v @ u.transpose(-1, -2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    diag = torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1)
    return v @ torch.diag_embed(diag) @ u.transpose(-1, -2)


def fit_poses(batch: ObjectBatch, positions: torch.Tensor):
    """Rigid pose of every object in every frame, fit by Kabsch to its particles (mass-weighted,
    the torch twin of :func:`particles.keypoints.kabsch` on padded objects).

    Args:
        positions: (T, N, 3) float, m. Particle frames of the packed scenes.

    Returns:
        ``c (T, O, 3)`` m, centres of mass, and ``R (T, O, 3, 3)``, rotations from the rest pose,
        so that particle ``p`` of object ``o`` sits at ``R[o] @ body[o, p] + c[o]``.
    """
    x = positions[:, batch.index]  # (T, O, P, 3)
    w = (batch.mask.to(x.dtype))[None, :, :, None]
    c = (x * w).sum(2) / w.sum(2).clamp_min(1.0)
    h = torch.einsum("op i,top j->toij".replace(" ", ""), batch.body.to(x.dtype) * w[0], x - c[:, :, None])
    return c, _rotation_from_covariance(h)


def _apply(rot: torch.Tensor, pts: torch.Tensor, plus: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``rot (..., O, 3, 3)`` applied to ``pts (O, P, 3)``: (..., O, P, 3), then ``+ plus`` (broadcast) when
    given. Three broadcast multiply-adds: on CPU several times faster than the batched 3x3 matrix
    products of an einsum. Without gradients the sums are taken in place (the same operations in the
    same order, two buffers instead of six: a whole rollout's skinning is tens of MB)."""
    r = rot.unsqueeze(-3)  # (..., O, 1, 3, 3)
    if torch.is_grad_enabled():
        x = r[..., 0] * pts[..., 0:1] + r[..., 1] * pts[..., 1:2] + r[..., 2] * pts[..., 2:3]
        return x if plus is None else x + plus
    x = r[..., 0] * pts[..., 0:1]
    tmp = torch.mul(r[..., 1], pts[..., 1:2])
    x.add_(tmp).add_(torch.mul(r[..., 2], pts[..., 2:3], out=tmp))
    return x if plus is None else x.add_(plus)


def skin(batch: ObjectBatch, c: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
    """(..., O, P, 3) float, m: every object's body points moved by its pose ``c (..., O, 3)``,
    ``rot (..., O, 3, 3)`` (padding slots included; mask with ``batch.mask``)."""
    return _apply(rot, batch.body.to(c.dtype)) + c[..., None, :]


def _to_particles(batch: ObjectBatch, pts: torch.Tensor, prescribed: torch.Tensor) -> torch.Tensor:
    """(N, 3): ``prescribed (N, 3)`` with the free objects' particles replaced by ``pts (O, P, 3)``."""
    free = (~batch.kinematic)[:, None] & batch.mask
    return prescribed.index_put((batch.index[free],), pts[free])


#: Row-major entries of q that give the axial vector of q - q^T (:func:`angular_velocity`): q21 - q12, q02 - q20, q10 - q01.
_AXIAL_PLUS, _AXIAL_MINUS = torch.tensor([7, 2, 3]), torch.tensor([5, 6, 1])
_DIAGONAL = torch.tensor([0, 4, 8])


def angular_velocity(r_new: torch.Tensor, r_old: torch.Tensor) -> torch.Tensor:
    """(..., 3) rad/frame: the rotation vector of ``r_new r_old^T`` (world frame), for rotations
    ``(..., 3, 3)`` less than pi apart; finite gradients at zero rotation."""
    q = (r_new @ r_old.transpose(-1, -2)).flatten(-2)  # (..., 9), row by row
    # entries by index_select rather than one by one (the same values in fewer torch operations)
    s = (q.index_select(-1, _AXIAL_PLUS.to(q.device)) - q.index_select(-1, _AXIAL_MINUS.to(q.device))) / 2
    d = q.index_select(-1, _DIAGONAL.to(q.device))
    sin = s.norm(dim=-1, keepdim=True)
    cos = ((d[..., 0:1] + d[..., 1:2] + d[..., 2:3] - 1) / 2)
    small = sin < 1e-4
    angle = torch.atan2(sin, cos)
    factor = torch.where(small, 1.0 + sin * sin / 6.0, angle / torch.where(small, torch.ones_like(sin), sin))
    return s * factor


# --------------------------------------------------------------------------- network


class _Constants:
    """What :meth:`ObjectNet.forward` reads from an :class:`ObjectBatch` that never changes over a
    rollout, cast to one dtype once (:func:`_constants`): precomputed rather than re-derived each step,
    since a step on a few objects is bound by the number of torch operations, not by arithmetic."""

    def __init__(self, batch: ObjectBatch, dtype):
        # never inference tensors (a cache built inside a no-grad rollout also serves later gradient rollouts)
        with torch.inference_mode(False), torch.no_grad():
            self.kin = kin = batch.kinematic
            self.free = free = ~kin
            self.kin2, self.kin3, self.kin_pts = kin[:, None], kin[None, :, None], kin[:, None, None]
            self.kinf = kin.to(dtype)[:, None]
            self.r = batch.radius.to(dtype)
            self.ko = ko = torch.nonzero(kin).squeeze(1)
            self.mk = batch.mask[ko].to(dtype)[..., None]
            self.cnt = self.mk.sum(1).clamp_min(1.0)
            self.sidx = batch.surf[..., None].expand(-1, -1, 3)
            self.sidx_k = self.sidx.index_select(0, ko)
            # row of each object in the kinematic objects' tables (``_kinematic_inputs``); free objects: the last
            self.kin_row = torch.full_like(batch.scene, len(ko)).index_copy(0, ko, torch.arange(len(ko), device=ko.device))
            # the free objects, their body points and their real slots (flat over (free object, slot), in the
            # order of ``batch.index[free]``) for skinning a whole rollout at once
            self.free_obj = torch.nonzero(free).squeeze(1)
            self.body_free = batch.body.to(dtype).index_select(0, self.free_obj)
            self.free_slots = torch.nonzero(batch.mask.index_select(0, self.free_obj).flatten()).squeeze(1)
            self.body_s = torch.gather(batch.body.to(dtype), 1, self.sidx)
            self.smask = batch.surf_mask
            self.smask3 = batch.surf_mask[..., None]
            self.pair_i, self.pair_j = batch.pairs[:, 0].contiguous(), batch.pairs[:, 1].contiguous()
            self.scount = batch.surf_mask.sum(1).clamp_min(1).to(dtype)
            self.big = torch.finfo(dtype).max / 4
            self.ground = batch.ground.to(dtype)
            self.has_ground = torch.isfinite(batch.ground)
            self.ground_free = self.has_ground & free
            self.size = batch.size.to(dtype)
            self.mass = batch.mass.to(dtype)
            self.g = batch.gravity.to(dtype)
            self.gdir = -self.g / self.g.norm(dim=1, keepdim=True).clamp_min(1e-30)
            self.node_a = torch.cat([batch.physics.to(dtype), batch.extent.to(dtype).log()], 1)
            self.node_b = torch.cat([torch.log(self.mass / 1.0)[:, None] / 5.0, (self.size / self.r)[:, None] / 5.0], 1)
            eye = torch.eye(3, dtype=torch.float64, device=kin.device)
            inertia = batch.inertia.double() + eye * (1e-9 * batch.mass.double() * batch.size.double() ** 2)[:, None, None]
            self.inv_inertia = torch.linalg.inv(inertia).to(dtype)  # body frame, with the regulariser


def _mlp_plan(seq: nn.Sequential) -> list:
    """``seq``'s layers as ``(kind, module, parameters...)`` tuples, built once per Sequential (its
    Parameter objects are kept, so in-place updates and ``.to()`` casts, which swap a Parameter's data,
    are seen); rebuilt if a layer of ``seq`` is replaced."""
    mods = tuple(seq)
    hit = seq.__dict__.get("_worldline_plan")
    if hit is not None and len(hit[0]) == len(mods) and all(m is n for m, n in zip(hit[0], mods)):
        return hit[1]
    plan = []
    for mod in mods:
        if isinstance(mod, nn.Linear):
            plan.append(("linear", mod.weight, mod.bias))
        elif isinstance(mod, nn.ReLU):
            plan.append(("relu",))
        elif isinstance(mod, nn.LayerNorm):
            plan.append(("layer_norm", mod.normalized_shape, mod.weight, mod.bias, mod.eps))
        else:
            plan.append(("module", mod))
    seq.__dict__["_worldline_plan"] = (mods, plan)
    return plan


def _mlp_call(seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
    """``seq(x)`` for an :func:`dynamics.model._mlp` (Linear / ReLU / LayerNorm) by the functional
    ops, without ``nn.Module`` call and attribute overhead (8 MLPs a step, :func:`_mlp_plan`); the
    ReLUs work in place when no gradient is recorded. The same operations in the same order:
    identical results."""
    inplace = not torch.is_grad_enabled()
    linear, layer_norm = torch.nn.functional.linear, torch.nn.functional.layer_norm
    for op in _mlp_plan(seq):
        kind = op[0]
        if kind == "linear":
            x = linear(x, op[1], op[2])
        elif kind == "relu":
            x = x.relu_() if inplace else x.relu()
        elif kind == "layer_norm":
            x = layer_norm(x, op[1], op[2], op[3], op[4])
        else:
            x = op[1](x)
    return x


def _kinematic_inputs(k_: _Constants, now_k: torch.Tensor, next_k: torch.Tensor):
    """What :meth:`ObjectNet.forward` reads of the kinematic objects' motion, for one frame or for many.

    Args:
        k_: the batch's :class:`_Constants`.
        now_k, next_k: (..., K, P, 3) float, m: this and the next frame's particle slots of the K
            kinematic objects (``k_.ko``, in that order; a planning batch has 1 in 17 objects).

    Returns:
        ``kin_v (..., O, 3)`` m/frame, the mean step of each kinematic object's particles, ``kin_c (..., O, 3)`` m,
        their mean (both zero in free rows), ``kin_surf (..., K, S, 3)`` m, the surface slots of ``now_k``, and
        ``kin_step (..., K + 1, S, 3)`` m/frame, their step to ``next_k`` (and a last row of zeros: the row
        ``k_.kin_row`` gives free objects). The same operations for any number of leading frame dimensions.
    """
    ko, mk, cnt = k_.ko, k_.mk, k_.cnt
    lead = now_k.shape[:-3]
    out_shape = lead + (len(k_.kin), 3)
    kin_v = now_k.new_zeros(out_shape).index_copy(-2, ko, ((next_k - now_k) * mk).sum(-2) / cnt)
    kin_c = now_k.new_zeros(out_shape).index_copy(-2, ko, (now_k * mk).sum(-2) / cnt)
    sidx = k_.sidx_k.expand(lead + tuple(k_.sidx_k.shape))
    kin_surf = torch.gather(now_k, -2, sidx)
    step = torch.gather(next_k, -2, sidx) - kin_surf
    kin_step = torch.cat([step, step.new_zeros(lead + (1,) + tuple(step.shape[-2:]))], -3)
    return kin_v, kin_c, kin_surf, kin_step


def _constants(batch: ObjectBatch, dtype) -> _Constants:
    """:class:`_Constants` of ``batch`` in ``dtype``, cached on the batch."""
    cache = batch.__dict__.setdefault("_constants", {})
    hit = cache.get(dtype)
    if hit is None:
        hit = cache[dtype] = _Constants(batch, dtype)
    return hit



class ObjectNet(nn.Module):
    """The object-level graph network (see the module docstring for features and outputs)."""

    NODE_FEATURES_PER_FRAME = 6
    STATIC_NODE = 3 + 3 + 3 + 1 + 3 + 3  # physics, extent, gravity dir, kinematic, ground (clear, share, -) + centroid
    EDGE_FEATURES = 2 + 3 + 1 + 3 + 3 + 3 + 3 + 1

    def __init__(self, config: ObjectConfig):
        super().__init__()
        self.config = c = config
        node_in = self.NODE_FEATURES_PER_FRAME * c.history + self.STATIC_NODE + 2
        self.node_encoder = _mlp(node_in, c.latent, c.latent, c.hidden_layers, True)
        self.edge_encoder = _mlp(self.EDGE_FEATURES, c.latent, c.latent, c.hidden_layers, True)
        self.edge_mlps = nn.ModuleList(_mlp(3 * c.latent, c.latent, c.latent, c.hidden_layers, True)
                                       for _ in range(c.message_steps))
        self.node_mlps = nn.ModuleList(_mlp(2 * c.latent, c.latent, c.latent, c.hidden_layers, True)
                                       for _ in range(c.message_steps))
        self.force_decoder = _mlp(c.latent, c.latent, 3, c.hidden_layers, False)
        self.ground_decoder = _mlp(c.latent, c.latent, 6, c.hidden_layers, False)
        for name in ("vel_scale", "ang_scale", "acc_scale", "ang_acc_scale"):
            self.register_buffer(name, torch.tensor(getattr(c, name), dtype=torch.float32))

    # ----------------------------------------------------------------- contacts

    def contacts(self, batch: ObjectBatch, pts: torch.Tensor, gate=None):
        """Contact patches between objects at surface points ``pts (O, S, 3)`` (m).

        Broad phase: bounding boxes of the candidate pairs, grown by ``R_c`` (and ``gate(receiver,
        sender) -> bool`` of the candidate pairs, when given: pairs it refuses make no contact). Narrow phase (no
        gradient, it only selects): squared distances of the surface points of the remaining pairs
        by one batched matrix product; the point pairs within ``R_c`` are then measured again with
        gradients and summed per object pair (sparse: only points in contact cost anything).

        Returns ``(edges (E, 2), rev (E,), weight (E,), normal (E, 3), gap (E,), centre (E, 3),
        (pair (Np,), b (Np,), wn (Np,)))``: directed edges (receiver, sender): each contact between
        two free objects in both directions (``rev``: index of the reversed edge; ``-1`` for a
        kinematic sender), the patch's total weight, weighted mean unit normal (sender to receiver),
        mean distance (m), centre (m), and the point pairs (edge, sender slot, normalised weight)."""
        rc = self.config.contact_radius
        k_ = _constants(batch, pts.dtype)
        m = k_.smask
        dev = pts.device
        # (index_select rather than advanced indexing, and views of prefixes: the same values for fewer
        # and cheaper torch operations)
        with torch.no_grad():
            p0 = pts.detach()
            lo = torch.where(k_.smask3, p0, k_.big).amin(1)
            hi = torch.where(k_.smask3, p0, -k_.big).amax(1)
            lo_g, hi_g = lo - rc, hi + rc  # the bounding boxes grown by R_c
            pi, pj = k_.pair_i, k_.pair_j
            near = ((lo.index_select(0, pi) <= hi_g.index_select(0, pj))
                    & (lo.index_select(0, pj) <= hi_g.index_select(0, pi))).all(1)
            idx = torch.nonzero(near).squeeze(1)
            i, j = pi.index_select(0, idx), pj.index_select(0, idx)
            a, b = p0.index_select(0, i), p0.index_select(0, j)
            # only points inside the other object's grown bounding box can be within R_c of it:
            # compact them to the front of each row (stable sort on the mask) and keep that many
            ma = m.index_select(0, i) & ((a >= lo_g.index_select(0, j)[:, None])
                                         & (a <= hi_g.index_select(0, j)[:, None])).all(-1)
            mb = m.index_select(0, j) & ((b >= lo_g.index_select(0, i)[:, None])
                                         & (b <= hi_g.index_select(0, i)[:, None])).all(-1)
            ka = int(ma.sum(1).max()) if len(idx) else 0
            kb = int(mb.sum(1).max()) if len(idx) else 0
            oa = torch.argsort((~ma).to(torch.int8), dim=1, stable=True)[:, :ka]
            ob = torch.argsort((~mb).to(torch.int8), dim=1, stable=True)[:, :kb]
            a = torch.gather(a, 1, oa[..., None].expand(-1, -1, 3))
            b = torch.gather(b, 1, ob[..., None].expand(-1, -1, 3))
            d2 = (a * a).sum(-1)[:, :, None] + (b * b).sum(-1)[:, None] - 2.0 * a @ b.transpose(1, 2)
            on = (d2 < rc * rc) & torch.gather(ma, 1, oa)[:, :, None] & torch.gather(mb, 1, ob)[:, None]
            e, ia, ib = torch.nonzero(on, as_tuple=True)
            sa, sb = oa[e, ia], ob[e, ib]
            keep = torch.zeros(len(idx), dtype=torch.bool, device=dev)
            keep[e] = True
            if gate is not None:
                keep &= gate(i, j)
                on_kept = keep.index_select(0, e)
                e, sa, sb = e[on_kept], sa[on_kept], sb[on_kept]
            new_id = torch.cumsum(keep.to(torch.int64), 0) - 1
            kept = torch.nonzero(keep).squeeze(1)
            idx, i, j, e = idx.index_select(0, kept), i.index_select(0, kept), j.index_select(0, kept), new_id.index_select(0, e)
            # free-free pairs are the top rows of batch.pairs and idx ascends: they are its first n_m entries
            n_m = int((idx < batch.num_mutual).sum())
        n_pairs = len(idx)
        xa, xb = pts[i.index_select(0, e), sa], pts[j.index_select(0, e), sb]  # receiver's and sender's point of each point pair
        d = xa - xb
        dist = (d * d).sum(-1).clamp_min(1e-18).sqrt()
        w = (1.0 - dist / rc).clamp_min(0.0)
        z = lambda k: torch.zeros((n_pairs,) + k, dtype=pts.dtype, device=dev)  # noqa: E731
        wsum = z(()).index_add(0, e, w)
        wn = w / wsum.index_select(0, e).clamp_min(1e-12)
        normal = z((3,)).index_add(0, e, wn[:, None] * d / dist[:, None])
        gap = z(()).index_add(0, e, wn * dist)
        centre = z((3,)).index_add(0, e, wn[:, None] * (xa + xb) / 2)
        # the reversed edges of free-free contacts (the first n_m): same patch, normal flipped
        mi = torch.arange(n_m, device=dev)
        edges = torch.cat([torch.stack([i, j], 1), torch.stack([j[:n_m], i[:n_m]], 1)], 0)
        rev = torch.cat([mi + n_pairs, torch.full((n_pairs - n_m,), -1, dtype=torch.int64, device=dev), mi])
        # the sender's points of each point pair, for the tool's velocity at the patch; reversed
        # edges' senders are free objects (their rigid velocity field is used), so no pairs for them
        #: the last call's edges (E, 2), point pairs' edge (Np,) and distance (Np,) m and mutual edges (reversed at
        #: E - len(mi) ..), for :func:`object_rollout`'s ``passive_energy`` rule (references only: nothing is
        #: computed here for it)
        self.last_contacts = (edges.detach(), e, dist.detach(), mi)
        return (edges, rev, torch.cat([wsum, wsum[:n_m]]), torch.cat([normal, -normal[:n_m]]),
                torch.cat([gap, gap[:n_m]]), torch.cat([centre, centre[:n_m]]), (e, sb, wn))

    # ----------------------------------------------------------------- step

    def forward(self, c_hist: torch.Tensor, r_hist: torch.Tensor, batch: ObjectBatch,
                kin_now: torch.Tensor, kin_next: torch.Tensor, w_hist: Optional[torch.Tensor] = None,
                contact_gate=None, kin_inputs=None):
        """Linear and angular acceleration of every object.

        Args:
            c_hist: (C + 1, O, 3) float, m. Centres of the last C + 1 frames, oldest first.
            r_hist: (C + 1, O, 3, 3) float. Rotations from the rest pose.
            kin_now, kin_next: (O, P, 3) float, m. This and the next frame's particle positions of
                kinematic objects (the tool's motion); rows of free objects are not read. Not read
                either (may be None) when ``kin_inputs`` is given.
            w_hist: (C, O, 3) float, rad/frame: ``angular_velocity(r_hist[1:], r_hist[:-1])`` when the
                caller carries it from step to step (:func:`object_rollout`); None: computed here.
            contact_gate: None, or ``gate(receiver (Q,), sender (Q,)) -> (Q,) bool`` over candidate object
                pairs: pairs where it is False make no contact edge (:meth:`contacts`; :func:`object_rollout`'s
                ``shape_contact`` rule).
            kin_inputs: None, or :func:`_kinematic_inputs` of the kinematic rows of ``kin_now, kin_next`` when
                the caller has them (:func:`object_rollout` derives them for every frame of the rollout at once).

        Returns:
            ``a (O, 3)`` m/frame^2 and ``alpha (O, 3)`` rad/frame^2, world frame (zero for kinematic objects).
        """
        dtype = c_hist.dtype
        k_ = _constants(batch, dtype)
        kin, r = k_.kin, k_.r
        c, rot = c_hist[-1], r_hist[-1]
        v = c_hist[1:] - c_hist[:-1]  # (C, O, 3)
        w = angular_velocity(r_hist[1:], r_hist[:-1]) if w_hist is None else w_hist  # (C, O, 3)
        if kin_inputs is None:
            kin_inputs = _kinematic_inputs(k_, kin_now.index_select(0, k_.ko), kin_next.index_select(0, k_.ko))
        kin_v, kin_c, kin_surf, kin_step = kin_inputs
        v = torch.where(k_.kin3, kin_v, v)
        w = torch.where(k_.kin3, 0.0, w)
        c = torch.where(k_.kin2, kin_c, c)
        # world surface points (for contacts and the ground; the lowest point of a body is on its surface)
        surf = (_apply(rot, k_.body_s) + c[:, None]).index_copy(0, k_.ko, kin_surf)
        pts = surf
        # ground as a boundary feature
        smask = k_.smask
        z = torch.where(smask, pts[..., 2], k_.big)
        zmin = z.amin(1)
        clear = (zmin - k_.ground - r) / r  # 0: touching; -inf ground -> +inf
        has_ground = k_.has_ground
        clear = torch.where(has_ground, clear, 10.0)
        low = (z < (zmin + r)[:, None]) & smask
        lowf = low.to(dtype)
        nlow = lowf.sum(1)
        share = nlow / k_.scount
        low_c = ((pts - c[:, None]) * lowf[..., None]).sum(1) / nlow.clamp_min(1.0)[:, None] / k_.size[:, None]
        gate = torch.where(k_.ground_free, (1.0 - clear).clamp(0.0, 1.0), 0.0)
        gdir_body = torch.where(k_.kin2, 0.0, (rot * k_.gdir[:, :, None]).sum(1))  # R^T (up)
        edges, rev, wsum, normal, gap, centre, (pe, psb, pwn) = self.contacts(batch, surf, contact_gate)
        i, j = edges[:, 0].contiguous(), edges[:, 1].contiguous()
        take_i = lambda x: x.index_select(0, i)  # noqa: E731  (the same values as x[i], fewer operations)
        take_j = lambda x: x.index_select(0, j)  # noqa: E731
        mutual = rev >= 0
        c_i, c_j = take_i(c), take_j(c)
        lever_i = centre - c_i
        lever_j = centre - c_j
        v_last, w_last = v[-1], w[-1]
        vi = take_i(v_last) + torch.linalg.cross(take_i(w_last), lever_i, dim=1)
        # the sender's velocity at the patch: rigid velocity field, or the tool's prescribed point motion
        vj_kin = torch.zeros_like(centre).index_add(0, pe, pwn[:, None] * kin_step[k_.kin_row.index_select(0, j.index_select(0, pe)), psb])
        kin_j = take_j(kin)
        vj = torch.where(kin_j[:, None], vj_kin, take_j(v_last) + torch.linalg.cross(take_j(w_last), lever_j, dim=1))
        rv = (vj - vi) / self.vel_scale.to(dtype)
        size_i, size_j = take_i(k_.size), take_j(k_.size)
        ri = take_i(r)
        gap_r = (gap - 2 * ri) / ri
        efeat = torch.cat([
            wsum[:, None] / 10.0, (wsum[:, None] > 0).to(dtype), normal, gap_r[:, None],
            lever_i / size_i[:, None], lever_j / size_j[:, None], rv, (c_j - c_i) / (size_i + size_j)[:, None],
            kin_j.to(dtype)[:, None]], 1)
        # a body resting on a supported body (or on a kinematic one: a table) is supported too:
        # its gravity is carried down the stack to the ground, like the ground's own gate
        nzu = normal[:, 2] / normal.norm(dim=1).clamp_min(1e-12)
        support = (1.5 - gap_r).clamp(0.0, 1.0) * ((nzu - 0.5) / 0.3).clamp(0.0, 1.0)
        support = torch.where(take_i(k_.ground_free), support, 0.0)
        ground_gate = gate
        for _ in range(SUPPORT_DEPTH):
            held = torch.where(kin, 1.0, gate)
            prev, gate = gate, torch.maximum(ground_gate, torch.zeros_like(gate).scatter_reduce(0, i, support * take_j(held), "amax"))
            if not torch.is_grad_enabled() and torch.equal(gate, prev):  # settled: further rounds change nothing
                break
        node_a = k_.node_a
        coulomb = self.config.ground_coulomb > 0
        if coulomb:  # friction reaches the network only as the dimensionless slip number (ObjectConfig.ground_coulomb)
            up = k_.gdir
            mu_g = (batch.physics[:, 0:1].to(dtype) + self.config.ground_coulomb) / 2
            g_norm = k_.g.norm(dim=1, keepdim=True)
            # the ground contact: below the lowest surface particles' centroid, r under the lowest one
            lever_g = torch.cat([low_c[:, :2] * k_.size[:, None], (zmin - r - c[:, 2])[:, None]], 1)
            slip_last = v_last + torch.linalg.cross(w_last, lever_g, dim=1)  # m/frame: how the contact point moved
            vt_last = slip_last - (slip_last * up).sum(1, keepdim=True) * up
            slip = torch.log1p(vt_last.norm(dim=1, keepdim=True) / (mu_g * g_norm).clamp_min(1e-30))
            node_a = torch.cat([slip, node_a[:, 1:]], 1)
        node = torch.cat([
            (v / self.vel_scale.to(dtype)).permute(1, 0, 2).reshape(len(c), -1),
            (w / self.ang_scale.to(dtype)).permute(1, 0, 2).reshape(len(c), -1),
            node_a, gdir_body, k_.kinf, clear.clamp(-1.0, 3.0)[:, None], share[:, None], gate[:, None], low_c,
            k_.node_b], 1)
        h = _mlp_call(self.node_encoder, node)
        e = _mlp_call(self.edge_encoder, efeat)
        for em, nm in zip(self.edge_mlps, self.node_mlps):
            e = e + _mlp_call(em, torch.cat([e, take_i(h), take_j(h)], 1))
            agg = torch.zeros_like(h).index_add(0, i, e)
            h = h + _mlp_call(nm, torch.cat([h, agg], 1))
        phi = _mlp_call(self.force_decoder, e)  # (E, 3)
        s = self.acc_scale.to(dtype)
        mass = k_.mass
        # a contact between free objects is one patch seen from both sides: antisymmetrise (Newton's third law)
        mass_i = take_i(mass)
        mu = torch.where(kin_j, mass_i, mass_i * take_j(mass) / (mass_i + take_j(mass)))
        force = torch.where(mutual[:, None], (phi - phi.index_select(0, rev.clamp_min(0))) / 2, phi) * s * mu[:, None]
        psi = _mlp_call(self.ground_decoder, h)
        g = k_.g
        push = gate[:, None] * (s * psi[:, :3] - g)  # the ground's push, m/frame^2
        stick = None
        if self.config.ground_friction > 0:  # Coulomb: the tangential push stays inside mu x the normal push
            up = k_.gdir
            normal_push = (push * up).sum(1, keepdim=True)
            tangential = push - normal_push * up
            mu_g = (batch.physics[:, 0:1].to(dtype) + self.config.ground_friction) / 2
            cap = mu_g * normal_push.clamp_min(0.0)
            if self.config.ground_stick:  # bodies on the ground: their friction is solved below, not decoded
                stick = ground_gate > 0
                tangential = torch.where(stick[:, None], 0.0, tangential)
            norm = tangential.norm(dim=1, keepdim=True)
            push = normal_push * up + tangential * (cap / torch.maximum(norm, cap).clamp_min(1e-30))
        a_contact = torch.zeros_like(push).index_add(0, i, force) / mass[:, None]
        torque = torch.zeros_like(push).index_add(0, i, torch.linalg.cross(lever_i, force, dim=1))

        def inv_inertia(t):  # world inverse inertia R (I + eps)^-1 R^T (== inv(R I R^T + eps)), as R (J (R^T t))
            return (rot * (k_.inv_inertia * (rot * t[:, :, None]).sum(1)[:, None, :]).sum(2)[:, None, :]).sum(2)

        on_ground = alpha_f = None
        if coulomb:  # the contact point's slip before the ground acts: last motion plus what the contacts add
            on_ground = ground_gate > 0
            slip = v_last + a_contact + torch.linalg.cross(w_last + inv_inertia(torque), lever_g, dim=1)
            turn = None
            if self.config.coulomb_torque:
                turn = (lever_g, inv_inertia, ground_contact(pts, z, zmin, smask, r, up, rot, batch.inertia)[1])
            push, alpha_f = self._coulomb_push(push, s * psi[:, :3], up, mu_g, g_norm, mass, support, i, j, on_ground,
                                               slip, turn)
        a = g + push + a_contact
        if self.config.ground_torque:  # the push acts at the ground contact (low_c: its centroid over the body size)
            lever_t = low_c * k_.size[:, None]
            torque = torque + torch.linalg.cross(lever_t, push * mass[:, None], dim=1)

        ground_alpha = gate[:, None] * self.ang_acc_scale.to(dtype) * psi[:, 3:]
        alpha_contact = inv_inertia(torque)
        if on_ground is not None:  # the ground only slows a spin about its normal (ObjectConfig.ground_coulomb)
            spin = ((w_last + alpha_contact) * up).sum(1)
            turn = (ground_alpha * up).sum(1)
            sign = torch.sign(spin)
            held = -sign * torch.minimum((-sign * turn).clamp_min(0.0), spin.abs())
            ground_alpha = ground_alpha + torch.where(on_ground, held - turn, 0.0)[:, None] * up
        alpha = ground_alpha + alpha_contact
        if alpha_f is not None:  # the friction turns the body at its ground contact (ObjectConfig.coulomb_torque)
            alpha = alpha + alpha_f
        if stick is not None:
            a, alpha = self._ground_friction(a, alpha, stick, up, mu_g, normal_push, force, i, mass, v_last, w_last,
                                             torch.cat([low_c[:, :2] * k_.size[:, None], (zmin - r - c[:, 2])[:, None]], 1),
                                             ground_contact(pts, z, zmin, smask, r, up, rot, batch.inertia)[1], inv_inertia)
        return torch.where(k_.kin2, 0.0, a), torch.where(k_.kin2, 0.0, alpha)

    def _coulomb_push(self, push, decoded, up, mu_g, g_norm, mass, support, i, j, on_ground, u, turn=None):
        """The ground's push ``(O, 3)`` m/frame^2 with its tangential part Coulomb friction (ObjectConfig.ground_coulomb).

        Args:
            push: (O, 3) the decoded push ``gate (S psi - g)``; its normal part is kept.
            decoded: (O, 3) ``S psi`` (the decoded response before the gate), m/frame^2.
            up: (O, 3) unit, against gravity. mu_g: (O, 1) the contact's friction. g_norm: (O, 1) |g| m/frame^2.
            mass: (O,) kg. support: (E,) how much edge ``(i[e], j[e])``'s receiver rests on its sender (0-1).
            on_ground: (O,) bool, bodies touching the ground (their own gate > 0).
            u: (O, 3) m/frame, the velocity of each body's ground contact point before the ground acts (its last
                motion plus what its contacts add): its slip, zero for a body rolling without slipping.
            turn: None (friction moves the centre only), or ``(lever (O, 3) m, inv_inertia, proj (O, 3, 3))``
                (ObjectConfig.coulomb_torque): the contact point from the centre, the world inverse inertia
                (torque -> rad/frame^2) and :func:`ground_contact`'s projector of the friction torque (a flat
                base keeps its part about ``up``, a line contact loses its tipping part, a point keeps all).

        Returns:
            the push (O, 3) m/frame^2 and, with ``turn``, the friction's angular acceleration (O, 3) rad/frame^2 (else None).
        """
        normal = (push * up).sum(1, keepdim=True)
        tangential = push - normal * up
        own = mass * normal[:, 0].clamp_min(0.0)  # kg m/frame^2
        load = own
        for _ in range(SUPPORT_DEPTH):  # what rests on a body presses it on the ground
            load = own.index_add(0, j, support * load.index_select(0, i))
        per_mass = (load / mass.clamp_min(1e-30))[:, None]
        ut = u - (u * up).sum(1, keepdim=True) * up
        speed = ut.norm(dim=1, keepdim=True)
        u_hat = ut / speed.clamp_min(1e-30)
        share = -(decoded * u_hat).sum(1, keepdim=True) / (self.config.ground_coulomb * g_norm)
        lam = share.clamp(0.0, 1.0)
        if share.requires_grad:  # the same values; outside [0, 1] a tenth of the gradient still reaches the decoder
            lam = lam + COULOMB_LEAK * (share - share.detach()) * ((share < 0) | (share > 1)).to(share.dtype)
        if turn is None:
            friction = -u_hat * torch.minimum(lam * mu_g * per_mass, speed)
            return normal * up + torch.where(on_ground[:, None], friction, tangential), None
        lever, inv_inertia, proj = turn

        def spin(f):  # rad/frame^2: the turning of friction f (m/frame^2 per unit mass) acting at the contact
            t = torch.linalg.cross(lever, f * mass[:, None], dim=1)
            return inv_inertia((proj @ t[:, :, None])[:, :, 0])

        # the slip's change per unit of friction against it: 1 from the centre's motion plus the turning's
        k = (1.0 - (torch.linalg.cross(spin(-u_hat), lever, dim=1) * u_hat).sum(1, keepdim=True)).clamp_min(1.0)
        friction = -u_hat * torch.minimum(lam * mu_g * per_mass, speed / k)
        friction = torch.where(on_ground[:, None], friction, 0.0)
        return normal * up + torch.where(on_ground[:, None], friction, tangential), spin(friction)

    @staticmethod
    def _ground_friction(a, alpha, stick, up, mu_g, normal_push, force, i, mass, v, w, lever, proj, inv_inertia):
        """``(a, alpha)`` with the ground's Coulomb friction on the ``stick`` bodies (ObjectConfig.ground_stick).

        At the contact point ``c + lever`` (m: below the lowest surface particles' centroid, r under the lowest
        one, where the body touches the ground; z up as everywhere),
        the tangential impulse ``J`` (kg m/frame^2 over one frame) that brings the point's velocity after the
        frame, ``u = (v + a) + (w + alpha) x lever`` (m/frame), to zero through the contact's effective mass,
        ``K J = J / M + (I^-1 P (lever x J)) x lever``, limited to ``mu_g`` times the normal load (the
        ground's normal push times the mass, plus what contacts press down). ``P`` is ``proj`` (O, 3, 3),
        :func:`ground_contact`'s projector of the friction torque: a flat base keeps only its vertical part
        (its base's pressure balances the tipping), a lying cylinder or capsule (a line contact) its parts
        about its axis and the vertical, a ball all of it."""
        def project(t):  # the part (O, 3) of a torque t the ground contact takes
            return (proj @ t[:, :, None])[:, :, 0]

        def eff(j):  # velocity change of the contact point per unit impulse j (O, 3)
            return j / mass[:, None] + torch.linalg.cross(inv_inertia(project(torch.linalg.cross(lever, j, dim=1))), lever, dim=1)

        # tangent basis of the ground plane
        ex = torch.zeros_like(up)
        ex[:, 0] = 1.0
        ey = torch.zeros_like(up)
        ey[:, 1] = 1.0
        seed = torch.where((up[:, 0:1].abs() > 0.9), ey, ex)
        t1 = seed - (seed * up).sum(1, keepdim=True) * up
        t1 = t1 / t1.norm(dim=1, keepdim=True).clamp_min(1e-12)
        t2 = torch.linalg.cross(up, t1, dim=1)
        u = (v + a) + torch.linalg.cross(w + alpha, lever, dim=1)
        k1, k2 = eff(t1), eff(t2)
        k11, k12 = (t1 * k1).sum(1), (t1 * k2).sum(1)
        k21, k22 = (t2 * k1).sum(1), (t2 * k2).sum(1)
        u1, u2 = (t1 * u).sum(1), (t2 * u).sum(1)
        det = (k11 * k22 - k12 * k21).clamp_min(1e-30)
        j1 = -(k22 * u1 - k12 * u2) / det
        j2 = -(-k21 * u1 + k11 * u2) / det
        jt = j1[:, None] * t1 + j2[:, None] * t2
        press = torch.zeros_like(mass).index_add(0, i, (-(force * up[i]).sum(1)).clamp_min(0.0))
        load = (mass * normal_push[:, 0].clamp_min(0.0) + press)[:, None]
        cap = mu_g * load
        norm = jt.norm(dim=1, keepdim=True)
        jt = jt * (cap / torch.maximum(norm, cap).clamp_min(1e-30))
        jt = torch.where(stick[:, None], jt, 0.0)
        return a + jt / mass[:, None], alpha + inv_inertia(project(torch.linalg.cross(lever, jt, dim=1)))

    def step(self, c_hist, r_hist, batch, kin_now, kin_next, w_hist=None, contact_gate=None, kin_inputs=None):
        """Next pose ``(c (O, 3), R (O, 3, 3))`` by semi-implicit Euler from :meth:`forward`'s accelerations
        (kinematic objects: their fitted pose is not needed and is carried unchanged). ``w_hist``,
        ``contact_gate``, ``kin_inputs``: as :meth:`forward`."""
        if w_hist is None:
            w_hist = angular_velocity(r_hist[1:], r_hist[:-1])
        a, alpha = self.forward(c_hist, r_hist, batch, kin_now, kin_next, w_hist, contact_gate, kin_inputs)
        v = c_hist[-1] - c_hist[-2] + a
        w = w_hist[-1] + alpha
        return c_hist[-1] + v, _rotation_from_vector(w) @ r_hist[-1]


# --------------------------------------------------------------------------- rollouts


def object_rollout(model: ObjectNet, batch: ObjectBatch, history: torch.Tensor, steps: int,
                   kinematic_future: Optional[torch.Tensor] = None, collide: bool = False, grad: bool = False,
                   poses: bool = False, graph_batch=None, passive_energy: bool = False, shape_contact: bool = False,
                   sliding_friction: bool = False):
    """Roll a packed batch forward ``steps`` frames on the object model.

    Args:
        history: (C + 1, N, 3) float, m. The last C + 1 particle frames, oldest first (poses are
            fit to them once, :func:`fit_poses`).
        kinematic_future: (steps, N, 3) float, m. Frames 1..steps; only kinematic rows are read.
            None: kinematic particles hold still.
        collide: after each step, apply the exact constraints of :func:`dynamics.model.constrain`
            (inverse-mass contact impulses with the tool, other objects and the ground, then the
            ground guarantee) to the skinned particles and refit the poses.
        grad: record the autograd graph (gradients reach ``history``, ``kinematic_future`` and the weights).
        poses: also return the centres (steps, O, 3) and rotations (steps, O, 3, 3).
        graph_batch: with ``collide``, the particle batch the constraints read (``_graph_batch(batch,
            dtype)``), when the caller keeps one for many calls on the same ``batch``; None: built here.
        passive_energy: a free body that touches nothing that works on it (no moving tool part and no
            moving free body within :data:`TOUCH` r of its surface points; the ground, static objects, a
            still tool and resting bodies only take energy away) may not gain kinetic + potential energy in
            a step: where the network's step would raise it, the body keeps its last pose (the critic's
            energy law, :func:`critic.checks.check_energy`, applied as a constraint).
        shape_contact: contact between a free body and a tool part (a kinematic object) as Newton has it,
            between their shapes, for the bodies whose particles fill a box lattice (:func:`lattice_box`:
            Newton collides exactly that box): (1) the network sees a contact with a tool part (an edge,
            its impulse and its messages) only while the two boxes touch in the frame (:data:`SHAPE_TOUCH`:
            at the start, at the end of the tool's step, or with the body carried on at its last velocity),
            not wherever surface particles come within the contact radius (3.1 r: a tool swept past a box
            at a 3-10 mm gap between the shapes dragged it; such a tool is then no working contact for
            ``passive_energy`` either); (2) a touching tool cannot throw the box ahead of itself (the box's
            normal velocity is capped at the tool's, :meth:`_ToolShapes.inelastic`); (3) a box that the
            tool's box still overlaps after the step is moved out by the least translation
            (:func:`box_separation`): the tool rests against the box's face, not 2-5 mm inside its shape
            where the particles' 2 r allows. The tool's poses in these rules carry no gradient.
        sliding_friction: a free body resting on the ground that nothing working touches (as for
            ``passive_energy``) slows down by at least Coulomb friction, ``mu g`` (:func:`_coulomb_slide`):
            the network let pushed boxes coast on after the tool stopped. With ``shape_contact`` also: a box
            moving away from a touching tool faster than it follows loses a frame of that friction
            (:meth:`_ToolShapes.inelastic`), and a box the tool pushes face to face, the faces aligned and the
            centre of pressure that carrying it needs inside the contact, goes with the tool
            (:meth:`_ToolShapes.stable_push`: friction on the tool's face). Every body on the ground: its spin
            about the vertical slowed by at least torsional friction (:func:`_torsional_friction`); a box one
            tool box pushes at a point, or flush but turned from the tool's face or not carried, and that
            touches no other box, moves in the plane as quasi-static pushing moves it
            (:meth:`_ToolShapes.quasi_static_push`: the ground's limit surface, Coulomb and torsional friction).

    Returns:
        (steps, N, 3) float, m: predicted particle positions of frames 1..steps (and the poses).
    """
    c_need = model.config.history + 1
    if history.shape[0] < 2:
        raise ValueError("history: need at least 2 frames")
    if history.shape[0] < c_need:  # pad the old end by constant velocity
        step = history[1] - history[0]
        pad = [history[0] - step * k for k in range(c_need - history.shape[0], 0, -1)]
        history = torch.cat([torch.stack(pad), history], 0)
    history = history[-c_need:]
    if kinematic_future is None:
        kinematic_future = history[-1:].expand(steps, -1, -1)
    if collide and graph_batch is None:
        graph_batch = _graph_batch(batch, history.dtype)
    k_ = _constants(batch, history.dtype)  # built here, outside the inference mode below
    free = (~batch.kinematic)[:, None] & batch.mask
    free_idx = batch.index[free]
    # without gradients the steps run in inference mode (less bookkeeping per torch operation: a step is
    # some 300 small ones); what leaves this function is made outside it, as ordinary tensors
    mode = torch.enable_grad() if grad else torch.inference_mode() if not torch.is_inference_mode_enabled() \
        else torch.no_grad()
    with mode:
        cs, rs = fit_poses(batch, history)
        # the kinematic objects' slots of every frame at once (free objects' rows stay zero)
        kin_obj = torch.nonzero(batch.kinematic).squeeze(1)
        kin_idx = batch.index[kin_obj]
        kin_k = torch.cat([history[-1:, kin_idx], kinematic_future[:steps, kin_idx]], 0)  # (steps + 1, K, P, 3)
        kin_in = _kinematic_inputs(k_, kin_k[:-1], kin_k[1:])  # every frame's at once
        if passive_energy or sliding_friction:  # (steps, O) bool: the kinematic objects that move in each frame
            moves = (kin_k[1:] - kin_k[:-1]).abs().amax(-1).amax(-1) > 1e-7
            kin_moves = torch.zeros((steps, batch.num_objects), dtype=torch.bool, device=moves.device).index_copy(1, kin_obj, moves)
        gb = graph_batch if collide else None
        oc, orr, out = [], [], []
        ws = angular_velocity(rs[1:], rs[:-1])  # carried: each step adds the newest frame's only
        shapes = _ToolShapes(batch, torch.cat([history[-1:], kinematic_future[:steps]], 0)) if shape_contact else None
        slid = torch.zeros_like(batch.kinematic)  # bodies that slid freely in the last step (sliding_friction)
        for t in range(steps):
            gate = shapes.gate(t, cs, rs) if shapes is not None else None
            c1, r1 = model.step(cs, rs, batch, None, None, ws, gate, tuple(x[t] for x in kin_in))
            slow = None
            if sliding_friction:  # (O,) m/frame^2: Coulomb's deceleration of the bodies on the ground, else 0
                on_ground, friction = _ground_friction(batch, cs, rs)
                slow = torch.where(on_ground, friction, torch.zeros_like(friction))
            if passive_energy or sliding_friction:
                worked = _worked(model, batch, cs, ws, kin_moves[t])
                if passive_energy:
                    c1, r1 = _no_energy_from_nowhere(batch, cs, rs, ws, c1, r1, worked)
                if sliding_friction:
                    c1, slid = _coulomb_slide(batch, cs, c1, worked, slid, on_ground, friction)
                    r1 = _torsional_friction(batch, rs, r1, on_ground)
            if shapes is not None:
                c1 = shapes.inelastic(t, cs, rs, c1, slow)
                if sliding_friction:
                    c1, r1 = shapes.stable_push(t, cs, rs, c1, r1, slow)
                    c1, r1 = shapes.quasi_static_push(t, cs, rs, c1, r1, slow)
                c1 = shapes.push_out(t, c1, r1)
            if collide:
                from .model import constrain

                x = kinematic_future[t].index_put((free_idx,), skin(batch, c1, r1)[free])
                x = constrain(x, gb, kinematic_future[t], rigid=False, collide=True)
                out.append(x)
                c1n, r1n = fit_poses(batch, x[None])
                c1 = torch.where(batch.kinematic[:, None], c1, c1n[0])
                r1 = torch.where(batch.kinematic[:, None, None], r1, r1n[0])
            oc.append(c1)
            orr.append(r1)
            ws = torch.cat([ws[1:], angular_velocity(r1, rs[-1])[None]], 0)
            cs = torch.cat([cs[1:], c1[None]], 0)
            rs = torch.cat([rs[1:], r1[None]], 0)
    with torch.set_grad_enabled(grad):
        if not steps:
            pos = history.new_zeros((0,) + history.shape[1:])
        elif collide:
            pos = torch.stack(out)
        else:  # skin every frame at once: free particles from the poses, the rest as prescribed
            pc, pr = torch.stack(oc), torch.stack(orr)
            fo = k_.free_obj  # only the free objects' rows: skin's operations on them, the same values
            pts = _apply(pr.index_select(1, fo), k_.body_free, pc.index_select(1, fo)[..., None, :])
            pts = pts.flatten(1, 2).index_select(1, k_.free_slots)  # = skin(batch, pc, pr)[:, free]
            pos = kinematic_future[:steps].clone().index_copy_(1, free_idx, pts)
        if poses:
            return pos, torch.stack(oc), torch.stack(orr)
        return pos


#: Touching tolerance of the ``shape_contact`` rule, in particle radii of shape separation: Newton's
#: shapes have no contact margin (``ShapeConfig.margin = 0``), so boxes touch at separation 0; this
#: only absorbs float32 round-off of the fitted poses.
SHAPE_TOUCH = 1e-3


def box_separation(ca: torch.Tensor, ra: torch.Tensor, ha: torch.Tensor, cb: torch.Tensor, rb: torch.Tensor,
                   hb: torch.Tensor):
    """Separation of oriented boxes A and B by the separating-axis test (the 15 axes of two boxes).

    Args:
        ca, cb: (E, 3) float, m. Box centres.
        ra, rb: (E, 3, 3) float. Unit box axes as columns (world frame).
        ha, hb: (E, 3) float, m. Half extents.

    Returns:
        ``sep (E,)`` m and ``axis (E, 3)`` unit, pointing from A to B: the largest separation of the
        boxes' projections over the axes. ``sep > 0``: apart, by at least ``sep`` (exactly when the
        nearest features are a face and a corner, or two edges); ``sep <= 0``: they overlap, and moving B
        by ``-sep`` along ``axis`` is the least translation that separates them.
    """
    cross = torch.linalg.cross(ra[:, :, :, None].expand(-1, -1, -1, 3), rb[:, :, None, :].expand(-1, -1, 3, -1),
                               dim=1).reshape(len(ca), 3, 9)
    axes = torch.cat([ra, rb, cross], 2).transpose(1, 2)  # (E, 15, 3)
    norm = axes.norm(dim=2)
    axes = axes / norm.clamp_min(1e-12)[..., None]
    d = ((cb - ca)[:, None] * axes).sum(2)  # (E, 15)
    reach = (ha[:, None] * (axes @ ra).abs()).sum(2) + (hb[:, None] * (axes @ rb).abs()).sum(2)
    sep = torch.where(norm > 1e-4, d.abs() - reach, -torch.inf)
    best, k = sep.max(1)
    pick = torch.arange(len(ca), device=ca.device)
    sign = torch.where(d[pick, k] < 0, -1.0, 1.0).to(ca.dtype)
    return best, axes[pick, k] * sign[:, None]


class _ToolShapes:
    """``object_rollout(shape_contact=True)``: the tool parts' boxes over the rollout and the rule's parts
    (:meth:`gate`, :meth:`inelastic`, :meth:`push_out`)."""

    def __init__(self, batch: ObjectBatch, frames: torch.Tensor):
        with torch.no_grad():
            dtype = frames.dtype
            self.batch = batch
            kin = batch.kinematic
            box = batch.is_box if batch.is_box is not None else torch.zeros_like(kin)
            p = batch.pairs[batch.num_mutual:]  # (free, kinematic) pairs
            p = p[box[p[:, 0]] & box[p[:, 1]]]
            self.i, self.j = p[:, 0], p[:, 1]
            self.any = len(p) > 0
            self.axes = batch.box_axes.to(dtype) if self.any else None
            self.centre = batch.box_centre.to(dtype) if self.any else None
            self.half = batch.box_half.to(dtype) if self.any else None
            self.tol = SHAPE_TOUCH * batch.radius.to(dtype)
            if self.any:
                c, rot = fit_poses(batch, frames)  # (T + 1, O, ...): the kinematic rows are the tool's poses
                self.tc = c[:, self.j] + (rot[:, self.j] @ self.centre[self.j][:, :, None])[..., 0]
                self.tr = rot[:, self.j] @ self.axes[self.j]
                self.trot = rot[:, self.j]
            self.touching = None
            self.held = None
            self.o = batch.num_objects
            m = batch.pairs[:batch.num_mutual]  # (free, free) pairs of boxes (quasi_static_push leaves those alone)
            m = m[box[m[:, 0]] & box[m[:, 1]]] if self.any else m[:0]
            self.mi, self.mj = (m[:, 0], m[:, 1]) if len(m) else (None, None)  # a (receiver, sender) pair's code: receiver * O + sender

    def _sep(self, t: int, c: torch.Tensor, rot: torch.Tensor):
        i = self.i
        bc = c[i] + (rot[i] @ self.centre[i][:, :, None])[..., 0]
        return box_separation(self.tc[t], self.tr[t], self.half[self.j], bc, rot[i] @ self.axes[i], self.half[i])

    def gate(self, t: int, cs: torch.Tensor, rs: torch.Tensor):
        """``contact_gate`` for frame ``t`` -> ``t + 1`` from the free poses' history ``cs, rs``."""
        if not self.any:
            return None
        with torch.no_grad():
            c, rot = cs[-1], rs[-1]
            carried = c + (c - cs[-2])
            sep = torch.minimum(torch.minimum(self._sep(t, c, rot)[0], self._sep(t + 1, c, rot)[0]),
                                self._sep(t + 1, carried, rot)[0])
            apart = sep > self.tol[self.i]
            self.touching = ~apart
            code_apart = (self.i * self.o + self.j)[apart]

        def gate(i, j):
            return ~torch.isin(i * self.o + j, code_apart)
        return gate

    def inelastic(self, t: int, cs: torch.Tensor, rs: torch.Tensor, c1: torch.Tensor,
                  slow: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``c1 (O, 3)`` with the normal velocity (m/frame, along the boxes' separating axis) of every free box
        that touches a tool box in this frame (:meth:`gate`) capped at what the contact can give it: the
        tool's normal velocity at the contact, ``(1 + e) v_tool - e v_body`` for restitution ``e``, or
        the body's own normal velocity if that is more. A contact only pushes as far as needed to end
        the overlap (restitution 0 in the suite): it cannot throw the box ahead of the tool.

        ``slow (O,)`` m/frame^2 (``object_rollout(sliding_friction=True)``: Coulomb's ``mu g`` for a box on
        the ground, else 0): a box already moving away from the tool faster than the tool follows keeps
        not its own normal velocity but that less one frame of friction (never reversed), since a contact
        can push and not pull: a box the tool merely follows slides on the ground, as Newton's does, down
        to the tool's speed, instead of coasting on ahead of it."""
        if not self.any or self.touching is None:
            return c1
        with torch.no_grad():
            i = self.i
            c, rot = cs[-1], rs[-1]
            _, n = self._sep(t, c, rot)
            bc = c[i] + (rot[i] @ self.centre[i][:, :, None])[..., 0]
            axes_b = rot[i] @ self.axes[i]
            reach = (self.half[i] * (n[:, None, :] @ axes_b)[:, 0].abs()).sum(1)
            p = bc - n * reach[:, None]  # the box's point nearest the tool along the axis
            turn = self.trot[t + 1] @ self.trot[t].transpose(1, 2)
            v_tool = ((turn @ (p - self.tc[t])[..., None])[..., 0] + self.tc[t + 1] - p).mul(n).sum(1)
            v_body = ((c - cs[-2])[i] * n).sum(1)
            e = self.batch.physics[i, 1].to(c1.dtype)
            v_own = v_body if slow is None else torch.where(v_body > 0, (v_body - slow[i]).clamp_min(0.0), v_body)
            v_max = torch.maximum(v_own, (1.0 + e) * v_tool - e * v_body)
            excess = (((c1 - c)[i] * n).sum(1) - v_max).clamp_min(0.0) * self.touching.to(c1.dtype)
        return c1.index_add(0, i, -excess[:, None] * n)

    def _face_line(self, t: int, c: torch.Tensor, n: torch.Tensor, bc: torch.Tensor, axes_b: torch.Tensor):
        """The line contact of a box's face and a tool box's face that lie flush (:data:`FLUSH_COS`), for every
        (box, tool) pair: the contact normal ``n (Q, 3)`` (tool to box), the box's centre of mass ``c`` (its rows
        ``i``), shape centre ``bc (Q, 3)`` and world axes ``axes_b (Q, 3, 3)``.

        Returns ``u (Q, 3)`` (the face line's direction, ``z x n``); ``lo, hi (Q,)`` m along ``u`` (the contact
        segment: where the two faces overlap across the push); ``delta (Q,)`` rad, the box's face turned from the
        tool's about the vertical (> 0: counter-clockwise, so the box face's ``hi`` end leads into the tool and
        carries the contact); ``omega (Q,)`` rad/frame, the tool's turn about the vertical in this frame; and
        ``s (Q,)`` m along ``u``, the centre of pressure the contact needs to carry the box with the tool's rigid
        motion (sticking): the push ``F`` along the box's velocity ``v`` at its centre and the moment ``c^2 omega``
        on the ground's limit surface (:meth:`quasi_static_push`'s ``c``), ``F`` as ``v`` scaled; NaN where that
        force would pull (``v . n <= 0``)."""
        i, j = self.i, self.j
        dtype = n.dtype
        axes_t = self.tr[t]
        u = torch.stack([-n[:, 1], n[:, 0], torch.zeros_like(n[:, 0])], 1)
        u = u / u.norm(dim=1, keepdim=True).clamp_min(1e-30)
        half_b = (self.half[i] * (u[:, None, :] @ axes_b)[:, 0].abs()).sum(1)
        half_t = (self.half[j] * (u[:, None, :] @ axes_t)[:, 0].abs()).sum(1)
        bu, tu = (bc * u).sum(1), (self.tc[t] * u).sum(1)
        lo = torch.maximum(bu - half_b, tu - half_t)
        hi = torch.minimum(bu + half_b, tu + half_t)

        def facing(axes):  # (Q, 3): the axis nearest n, turned along n
            d = (n[:, None, :] @ axes)[:, 0]
            k = d.abs().argmax(1)
            pick = torch.arange(len(n), device=n.device)
            return axes[pick, :, k] * torch.sign(d[pick, k])[:, None]

        fb, ft = facing(axes_b), facing(axes_t)
        delta = torch.atan2(ft[:, 0] * fb[:, 1] - ft[:, 1] * fb[:, 0], ft[:, 0] * fb[:, 0] + ft[:, 1] * fb[:, 1])
        turn = self.trot[t + 1] @ self.trot[t].transpose(1, 2)
        omega = torch.atan2(turn[:, 1, 0], turn[:, 0, 0])
        ci = c[i]
        v = (turn @ (ci - self.tc[t])[..., None])[..., 0] + self.tc[t + 1] - ci
        up = torch.zeros_like(n)
        up[:, 2] = 1.0
        mu_g = 0.5 * (self.batch.physics[i, 0].to(dtype) + GROUND_FRICTION)
        hz = (self.half[i] * (1.0 - (up[:, None, :] @ axes_b)[:, 0] ** 2)).pow(2).sum(1).sqrt()
        lever = hz + TORSIONAL_FRICTION / mu_g
        reach = (self.half[i] * (n[:, None, :] @ axes_b)[:, 0].abs()).sum(1)
        p = bc - n * reach[:, None]  # on the box's face, at its shape centre's place along u
        r = p - ci
        vn = (v * n).sum(1)
        # the moment of F at p + sigma u about the centre, r x F - sigma (n . F), equals c^2 omega
        sigma = ((r[:, 0] * v[:, 1] - r[:, 1] * v[:, 0]) - lever ** 2 * omega) / vn.clamp_min(1e-30)
        s = torch.where(vn > 0, (p * u).sum(1) + sigma, torch.full_like(vn, float("nan")))
        return u, lo, hi, delta, omega, s

    def stable_push(self, t: int, cs: torch.Tensor, rs: torch.Tensor, c1: torch.Tensor, r1: torch.Tensor,
                    slow: torch.Tensor):
        """``(c1 (O, 3), r1 (O, 3, 3))`` with every free box that a tool box pushes face to face, stably, carried
        along by the tool's face (``object_rollout(sliding_friction=True)``): its step along the face and its turn
        are the tool's rigid motion at the box's centre (the face carries the box as one body with the tool: a
        turning tool swings it round the tool's centre, 25 mm sideways in a 12 cm push turning 30 degrees, as
        Newton's; the tool's motion at the contact point left it behind), the step along the contact normal stays
        as :meth:`inelastic` capped it.

        Face to face: the tool's face and the box's lie flush (their normals within 2 degrees of the separating
        axis, :data:`FLUSH_COS`) and aligned (within :data:`ALIGNED` of each other: turned further, only the
        face's leading end touches, a point contact); pushing: the tool's normal velocity at the contact exceeds
        what the box keeps of its own after a frame of ground friction (``slow (O,)`` m/frame^2,
        :func:`_ground_friction`), so the contact carries a normal load; stably: the centre of pressure that
        carrying the box with the tool needs (:meth:`_face_line`: for a tool going straight, where the line of
        the box's motion through its centre meets the face; a turning tool needs a moment too) lies inside the
        contact segment (where the two faces overlap across the push). Then the contact's Coulomb friction (its
        load times the faces' mean friction, against a tangential slip of a fraction of a millimetre a frame)
        holds the box on the face, and the flush face cannot let it turn (a turn would drive one end into the
        tool): a pushed box keeps straight and goes with the tool, as Newton's does, where the network turned it
        by up to 30 degrees in a 17 cm push. Outside the segment the box turns on the tool's face: a tool turning
        0.5 degrees a frame 0.7 half-widths off the box's centre line, its face turning away from the centre, turns
        Newton's box 6.7 degrees in 60 frames, not the tool's 30 (on the other side it carries it the 30). Those
        contacts, and those at a corner or an edge, go to :meth:`quasi_static_push` or the network."""
        self.held = None
        if not self.any or self.touching is None:
            return c1, r1
        with torch.no_grad():
            i = self.i
            c, rot = cs[-1], rs[-1]
            _, n = self._sep(t, c, rot)
            bc = c[i] + (rot[i] @ self.centre[i][:, :, None])[..., 0]
            axes_b = rot[i] @ self.axes[i]
            axes_t = self.tr[t]
            flush = ((n[:, None, :] @ axes_b)[:, 0].abs().amax(1) > FLUSH_COS) & \
                ((n[:, None, :] @ axes_t)[:, 0].abs().amax(1) > FLUSH_COS) & (n[:, 2].abs() < 0.1)
            reach = (self.half[i] * (n[:, None, :] @ axes_b)[:, 0].abs()).sum(1)
            p = bc - n * reach[:, None]
            turn = self.trot[t + 1] @ self.trot[t].transpose(1, 2)
            tool_v = (turn @ (p - self.tc[t])[..., None])[..., 0] + self.tc[t + 1] - p  # (Q, 3) m/frame at p
            v_tool = (tool_v * n).sum(1)
            v_body = ((c - cs[-2])[i] * n).sum(1)
            v_own = torch.where(v_body > 0, (v_body - slow[i]).clamp_min(0.0), v_body)
            pushing = self.touching & (v_tool > v_own) & (slow[i] > 0)
            u, lo, hi, delta, _, s = self._face_line(t, c, n, bc, axes_b)
            stable = (s > lo) & (s < hi)  # False where s is NaN
            held = flush & (delta.abs() < ALIGNED) & pushing & stable
            self.held = held
            if not bool(held.any()):
                return c1, r1
            k = i[held]
            step = c1[k] - c[k]
            # the tool's rigid motion at the box's centre (the face carries the box with its turn)
            carry = (turn[held] @ (c[k] - self.tc[t][held])[..., None])[..., 0] + self.tc[t + 1][held] - c[k]
            step = step + ((carry - step) * u[held]).sum(1, keepdim=True) * u[held]
            c1 = c1.index_put((k,), c[k] + step)
            # turned with the tool, and by the residual misalignment (under ALIGNED) onto its face
            r1 = r1.index_put((k,), _rot_z(-delta[held]) @ turn[held] @ rot[k])
        return c1, r1

    def quasi_static_push(self, t: int, cs: torch.Tensor, rs: torch.Tensor, c1: torch.Tensor, r1: torch.Tensor,
                          slow: torch.Tensor):
        """``(c1 (O, 3), r1 (O, 3, 3))`` with every free box on the ground that one tool box pushes at a point
        (the tool's corner on the box's face, the box's corner on the tool's face, or flush faces that
        :meth:`stable_push` does not carry: aligned, at the contact segment's end nearest the centre of pressure
        carrying would need; turned from each other, at the segment's leading end; a push that would turn such a
        face back past the tool's stops on it, aligned) moved as quasi-static
        pushing moves it (``object_rollout(sliding_friction=True)``), in the plane: its horizontal step and its
        turn about the vertical replace the network's.

        Quasi-static: the ground's friction, not inertia, balances the push (the suite's pushes stop within a
        frame or two of the tool stopping). The ground resists a box's planar motion as an ellipsoidal limit
        surface (force up to ``F = mu_g m |g|``, moment up to ``F c``; ``c``: Coulomb friction at the four
        corners Newton's box rests on, ``sqrt(hx^2 + hy^2)``, plus torsional friction,
        ``mu_t / mu_g``, :data:`TORSIONAL_FRICTION`), and the torsional friction at the ground's contacts holds
        a translating box against a moment up to ``mu_t m |g|``. At the contact point ``r`` (from the box's
        centre) the tool moves at ``v_p``. (1) If pushing the box along ``v_p`` without turning needs a moment
        ``|r x F v_p / |v_p||`` within torsional friction's and the force lies within the contact's friction cone
        (``mu_c``: the mean of the box's and the tool's friction), the box goes with the contact point, unturned.
        (2) Else the contact sticks if the limit surface's force for ``v = (c^2 v_p + r (r . v_p)) / (c^2 + r^2)``,
        ``omega = (r x v) / c^2`` (Lynch and Mason's sticking solution) lies in the cone, (3) else it slides on
        the cone's edge nearer that force, scaled so the contact point's normal velocity is the tool's.
        A box that also touches another free box (:meth:`gate`'s shapes) is left to the network."""
        if not self.any or self.touching is None:
            return c1, r1
        with torch.no_grad():
            dtype = c1.dtype
            i, j = self.i, self.j
            c, rot = cs[-1], rs[-1]
            _, n = self._sep(t, c, rot)
            bc = c[i] + (rot[i] @ self.centre[i][:, :, None])[..., 0]
            axes_b = rot[i] @ self.axes[i]
            axes_t = self.tr[t]
            up = torch.zeros_like(n)
            up[:, 2] = 1.0
            nb = (n[:, None, :] @ axes_b)[:, 0]  # (Q, 3): n . box axes
            nt = (n[:, None, :] @ axes_t)[:, 0]
            box_flush = nb.abs().amax(1) > FLUSH_COS
            tool_flush = nt.abs().amax(1) > FLUSH_COS
            side = math.sin(math.radians(2.0))
            # support points: the box's toward the tool (-n), the tool's toward the box (+n), mid-feature
            sb = torch.where(nb.abs() > side, -torch.sign(nb), torch.zeros_like(nb))
            st = torch.where(nt.abs() > side, torch.sign(nt), torch.zeros_like(nt))
            p_box = bc + (axes_b * (self.half[i] * sb)[:, None, :]).sum(2)
            p_tool = self.tc[t] + (axes_t * (self.half[j] * st)[:, None, :]).sum(2)
            # flush faces: aligned, the end of the contact segment nearest the centre of pressure that carrying the
            # box would need (outside the segment, or stable_push had carried it); turned from the tool's face, the
            # segment's leading end (the box face's hi end where it turned counter-clockwise from the tool's)
            u, lo, hi, delta, omega, s = self._face_line(t, c, n, bc, axes_b)
            aligned = delta.abs() < ALIGNED
            s = torch.where(torch.isnan(s), (c[i] * u).sum(1), s)
            at = torch.where(aligned, torch.minimum(torch.maximum(s, lo), hi), torch.where(delta > 0, hi, lo))
            p_face = p_box + (at - (p_box * u).sum(1))[:, None] * u
            both_flush = box_flush & tool_flush
            p = torch.where(both_flush[:, None], p_face,
                            torch.where(box_flush[:, None], p_tool, p_box))
            turn = self.trot[t + 1] @ self.trot[t].transpose(1, 2)
            v_p = (turn @ (p - self.tc[t])[..., None])[..., 0] + self.tc[t + 1] - p  # (Q, 3) m/frame
            v_p = v_p - v_p[:, 2:3] * up
            vn = (v_p * n).sum(1)
            held = self.held if self.held is not None else torch.zeros_like(self.touching)
            # boxes that one tool box pushes, on the ground, touching no other free box
            pushed = self.touching & ~held & (vn > 0) & (slow[i] > 0) & (n[:, 2].abs() < 0.1)
            count = torch.zeros(self.o, dtype=dtype, device=c.device).index_add(0, i, self.touching.to(dtype))
            pushed = pushed & (count[i] == 1) & ~self._touches_free_box(c, rot)[i]
            if not bool(pushed.any()):
                return c1, r1
            r = p - c[i]
            r = r - r[:, 2:3] * up
            mu_g = 0.5 * (self.batch.physics[i, 0].to(dtype) + GROUND_FRICTION)
            mu_c = 0.5 * (self.batch.physics[i, 0].to(dtype) + self.batch.physics[j, 0].to(dtype))
            hz = (self.half[i] * (1.0 - (up[:, None, :] @ axes_b)[:, 0] ** 2)).pow(2).sum(1).sqrt()  # corner distance
            lever = hz + TORSIONAL_FRICTION / mu_g  # c, m
            c2 = lever ** 2

            def cross_z(a, b):
                return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]

            def in_cone(f):
                fn = (f * n).sum(1)
                ft = (f - fn[:, None] * n).norm(dim=1)
                return (fn > 0) & (ft <= mu_c * fn + 1e-12)

            speed = v_p.norm(dim=1).clamp_min(1e-30)
            # (1) translation with the contact point: the moment it needs against the ground's force, held by torsion
            moment = cross_z(r, v_p / speed[:, None]).abs()
            translate = (moment <= TORSIONAL_FRICTION / mu_g) & in_cone(v_p)
            # (2) sticking (Lynch & Mason): v = (c^2 v_p + r (r . v_p)) / (c^2 + r^2), omega = (r x v) / c^2
            rr = (r * r).sum(1)
            v_st = (c2[:, None] * v_p + r * (r * v_p).sum(1, keepdim=True)) / (c2 + rr)[:, None]
            w_st = cross_z(r, v_st) / c2
            stick = in_cone(v_st)
            # (3) sliding on the cone's edge nearer the sticking force
            ft = v_st - (v_st * n).sum(1, keepdim=True) * n
            tdir = ft / ft.norm(dim=1, keepdim=True).clamp_min(1e-30)
            f = n + mu_c[:, None] * tdir
            w_f = cross_z(r, f) / c2
            # contact point velocity along n of the twist (f, w_f): f . n + w_f (z x r) . n
            zr = torch.stack([-r[:, 1], r[:, 0], torch.zeros_like(r[:, 0])], 1)
            k = vn / ((f * n).sum(1) + w_f * (zr * n).sum(1)).clamp_min(1e-12)
            v_sl, w_sl = k[:, None] * f, k * w_f
            v = torch.where(translate[:, None], v_p, torch.where(stick[:, None], v_st, v_sl))
            w = torch.where(translate, torch.zeros_like(w_st), torch.where(stick, w_st, w_sl))
            # a face turned from the tool's that this push turns back past the tool's stops on it (aligned: the
            # line contact then holds it, stable_push's next frame)
            closes = both_flush & ~aligned & (torch.sign(delta + w - omega) != torch.sign(delta))
            w = torch.where(closes, omega - delta, w)
            q = torch.nonzero(pushed).squeeze(1)
            b = i[q]
            step = c1[b] - c[b]
            step = torch.cat([v[q, :2], step[:, 2:3]], 1)
            c1 = c1.index_put((b,), c[b] + step)
            ang = w[q]
            kx = torch.zeros(len(q), 3, 3, dtype=dtype, device=c.device)
            kx[:, 0, 1], kx[:, 1, 0] = -1.0, 1.0
            spin = angular_velocity(r1[b], rot[b])[:, 2]  # the network's turn about the vertical, replaced
            d = (ang - spin)[:, None, None]
            corr = torch.eye(3, dtype=dtype, device=c.device) + torch.sin(d) * kx + (1.0 - torch.cos(d)) * (kx @ kx)
            r1 = r1.index_put((b,), corr @ r1[b])
        return c1, r1

    def _touches_free_box(self, c: torch.Tensor, rot: torch.Tensor) -> torch.Tensor:
        """(O,) bool: free boxes whose shape touches another free box's (within one particle radius)."""
        out = torch.zeros(self.o, dtype=torch.bool, device=c.device)
        if self.mi is None or not len(self.mi):
            return out
        a, b = self.mi, self.mj
        ca = c[a] + (rot[a] @ self.centre[a][:, :, None])[..., 0]
        cb = c[b] + (rot[b] @ self.centre[b][:, :, None])[..., 0]
        sep, _ = box_separation(ca, rot[a] @ self.axes[a], self.half[a], cb, rot[b] @ self.axes[b], self.half[b])
        near = sep < self.batch.radius[a].to(c.dtype)
        out[a[near]] = True
        out[b[near]] = True
        return out

    def push_out(self, t: int, c1: torch.Tensor, r1: torch.Tensor) -> torch.Tensor:
        """``c1 (O, 3)`` with every free box the tool's box overlaps at frame ``t + 1`` moved out of it."""
        if not self.any:
            return c1
        sep, axis = self._sep(t + 1, c1, r1)
        depth = (-sep).clamp_min(0.0)
        return c1.index_add(0, self.i, depth[:, None] * axis)


#: Cosine of the largest angle between a tool box's face and a free box's face that counts as flush.
FLUSH_COS = math.cos(math.radians(2.0))
#: Largest turn, rad, between flush faces that counts as aligned: a line contact that can carry the box
#: (:meth:`_ToolShapes.stable_push`); turned further, only the face's leading end touches (a point contact,
#: :meth:`_ToolShapes.quasi_static_push`). Float32 poses and the constraints' refits keep aligned faces well inside it.
ALIGNED = math.radians(0.1)


#: Touching distance of the ``passive_energy`` rule, in particle radii between particle centres: two
#: lattice surfaces touch at 2 r; 2.5 r allows for the patch's sampling.
TOUCH = 2.5


def _worked(model, batch, cs, ws, kin_moves) -> torch.Tensor:
    """(O,) bool: the free bodies that something working touches in this step (the last network
    contacts, :attr:`ObjectNet.last_contacts`, closer than :data:`TOUCH` r to a tool part that moves this
    frame or to a free body that moved last frame); the ``passive_energy`` and ``sliding_friction`` rules
    leave those alone. ``kin_moves`` (O,) bool: the kinematic objects with a particle slot that moves by more
    than 1e-7 m in this frame (:func:`object_rollout` finds them for every frame at once)."""
    with torch.no_grad():
        dtype = cs.dtype
        free = ~batch.kinematic
        edges, pair_edge, pair_dist, mi = model.last_contacts
        closest = pair_dist.new_full((len(edges) - len(mi),), float("inf")).scatter_reduce(0, pair_edge, pair_dist, "amin")
        closest = torch.cat([closest, closest[mi]])  # reversed edges: the same patch
        i, j = edges[:, 0], edges[:, 1]
        touch = closest < TOUCH * batch.radius.to(dtype)[i]
        # what can work on a body: a tool part that moves this frame, a free body that moved last frame
        kin_moves = kin_moves & batch.kinematic  # (O,) bool: kinematic objects any particle slot of which moves
        v_prev = cs[-1] - cs[-2]
        speed = v_prev.norm(dim=1) + ws[-1].norm(dim=1) * batch.size.to(dtype)
        free_moves = free & (speed > 1e-3 * batch.radius.to(dtype))
        working = touch & (kin_moves[j] | free_moves[j])
        return torch.zeros_like(free).index_put((i[working],), torch.ones_like(i[working], dtype=torch.bool))


def _no_energy_from_nowhere(batch, cs, rs, ws, c1, r1, worked):
    """``object_rollout(passive_energy=True)``: the next poses ``(c1, r1)`` with every free body that
    nothing working touches (``worked``, :func:`_worked`) held at its last pose wherever the step would raise
    its kinetic + potential energy (per frame units: m/frame, rad/frame, gravity ``batch.gravity`` m/frame^2)."""
    with torch.no_grad():
        dtype = c1.dtype
        mass = batch.mass.to(dtype)
        free = ~batch.kinematic
        v_prev = cs[-1] - cs[-2]

        def energy(v, w, rot, c):
            inertia = rot @ batch.inertia.to(dtype) @ rot.transpose(1, 2)
            rotational = 0.5 * torch.einsum("oi,oij,oj->o", w, inertia, w)
            return 0.5 * mass * (v * v).sum(1) + rotational - mass * (batch.gravity.to(dtype) * c).sum(1)

        e_prev = energy(v_prev, ws[-1], rs[-1], cs[-1])
        e_next = energy(c1 - cs[-1], angular_velocity(r1, rs[-1]), r1, c1)
        # tolerance: float32 round-off of the energies (positions resolve ~1e-7 of their magnitude)
        tol = 1e-6 * mass * batch.gravity.to(dtype).norm(dim=1) * (cs[-1].norm(dim=1) + batch.size.to(dtype))
        hold = free & ~worked & (e_next > e_prev + tol)
        return torch.where(hold[:, None], cs[-1], c1), torch.where(hold[:, None, None], rs[-1], r1)


#: Friction coefficient of the ground in Newton (``dynamics.sim.SimConfig.ground_friction``, the default
#: every scene of the project's data and tasks is simulated with; ``tests/test_objects.py`` keeps them equal).
GROUND_FRICTION = 0.5
#: A body's lowest surface particle within this many r of ``r`` above the ground rests on it (the ground
#: constraint puts it at exactly r).
ON_GROUND = 0.1


def _ground_friction(batch, cs, rs) -> tuple[torch.Tensor, torch.Tensor]:
    """Which free bodies rest on the ground in the last pose of ``cs, rs`` ((O,) bool: their lowest surface
    particle within :data:`ON_GROUND` r of r above it), and every body's Coulomb deceleration on it,
    ``mu |g|`` ((O,) m/frame^2; ``mu``: the mean of the body's and the ground's coefficients, as Newton's
    XPBD combines two shapes')."""
    with torch.no_grad():
        dtype = cs.dtype
        k_ = _constants(batch, dtype)
        r = k_.r
        low = torch.where(k_.smask, (_apply(rs[-1], k_.body_s) + cs[-1][:, None])[..., 2], k_.big).amin(1)
        on_ground = k_.ground_free & ((low - k_.ground - r) < ON_GROUND * r)
        a = 0.5 * (batch.physics[:, 0].to(dtype) + GROUND_FRICTION) * k_.g.norm(dim=1)
        return on_ground, a


def _coulomb_slide(batch, cs, c1, worked, slid, on_ground, a):
    """``object_rollout(sliding_friction=True)``: the next centres ``c1 (O, 3)`` with every free body that
    rests on the ground (``on_ground``, with its deceleration ``a``: :func:`_ground_friction`) and that
    nothing working touches (``worked``, :func:`_worked`) slowed by at least Coulomb friction, and the
    (O,) bool mask of those bodies (``slid`` of the next step).

    Friction decelerates a body sliding on flat ground by ``a = mu |g|`` (``mu``: the mean of the body's
    and the ground's coefficients, as Newton's XPBD combines two shapes'), so its horizontal speed at the
    frame's start is ``u = v - a / 2`` when it also slid freely in the last frame (``slid``; ``v`` m/frame,
    the last frame's mean velocity), else ``u = v`` (it may have been pushed up to the frame's end), and
    its mean speed over this frame is at most ``u - a / 2``, or ``u^2 / (2 a)`` when it comes to rest
    within the frame. Only the speed is capped; the direction of the network's step is kept."""
    with torch.no_grad():
        up = _constants(batch, c1.dtype).gdir  # (O, 3) unit, against gravity

        def horizontal(v):
            return v - (v * up).sum(1, keepdim=True) * up

        v_prev = horizontal(cs[-1] - cs[-2]).norm(dim=1)
        v_new = horizontal(c1 - cs[-1])
        u = torch.where(slid, (v_prev - a / 2).clamp_min(0.0), v_prev)
        cap = torch.where(u >= a, u - a / 2, u * u / (2 * a).clamp_min(1e-30))
        speed = v_new.norm(dim=1)
        free_slide = on_ground & ~worked
        scale = torch.where(free_slide & (speed > cap), cap / speed.clamp_min(1e-30), torch.ones_like(speed))
        return c1 - (1.0 - scale)[:, None] * v_new, free_slide


#: Torsional friction coefficient, m: the moment that resists a body's spin about a contact's normal is up to
#: this times the contact's normal force. Newton's ``ModelBuilder.ShapeConfig.mu_torsional`` default, which
#: ``dynamics/sim`` leaves as it is for the ground and every body (XPBD takes the mean of two shapes').
TORSIONAL_FRICTION = 0.005


def _torsional_friction(batch, rs, r1, on_ground):
    """``object_rollout(sliding_friction=True)``: the next rotations ``r1 (O, 3, 3)`` with the spin about the
    vertical of every free body resting on the ground (``on_ground``, :func:`_ground_friction`) slowed by
    at least torsional friction.

    The ground's contacts resist a spin with a moment of up to ``mu_t m |g|`` (``mu_t``:
    :data:`TORSIONAL_FRICTION`), which takes up to ``mu_t |g| dt^2 / k^2`` rad/frame off the body's spin in
    a frame (``k^2 = I / m`` about the vertical: a box's solid shape, ``sum_j h_j^2 (1 - (a_j . up)^2) / 3``
    over its half extents ``h_j`` and world axes ``a_j``, as Newton has it; else the particles' point
    masses). Pushed at a contact off its centre line, Newton's box goes nearly straight
    (``bench/oblique_push.py``: ``push_10``'s box pushed flush by a tool 1.2 half-widths off its centre line
    turns by 1.4 degrees in 12 cm, by 28 with ``mu_torsional = 0``), where the network turned such boxes by
    0.05-0.3 degrees a frame (``bench/oblique_trace.py``). The network's spin is taken toward zero by that
    much (never reversed); its axis and the rest of the step are kept."""
    with torch.no_grad():
        dtype = r1.dtype
        k_ = _constants(batch, dtype)
        up = k_.gdir
        w = angular_velocity(r1, rs[-1])  # (O, 3) rad/frame
        spin = (w * up).sum(1)
        inertia = rs[-1] @ batch.inertia.to(dtype) @ rs[-1].transpose(1, 2)
        k2 = ((inertia @ up[:, :, None])[:, :, 0] * up).sum(1) / k_.mass.clamp_min(1e-30)
        if batch.is_box is not None:
            axes = rs[-1] @ batch.box_axes.to(dtype)  # (O, 3, 3) world axes as columns
            along = (up[:, :, None] * axes).sum(1)  # (O, 3): up . a_j
            k2_box = (batch.box_half.to(dtype) ** 2 * (1.0 - along ** 2)).sum(1) / 3.0
            k2 = torch.where(batch.is_box, k2_box, k2)
        cap = TORSIONAL_FRICTION * k_.g.norm(dim=1) / k2.clamp_min(1e-12)  # rad/frame taken off in a frame
        slowed = torch.sign(spin) * (spin.abs() - cap).clamp_min(0.0)
        turn = torch.where(on_ground & k_.free, slowed - spin, torch.zeros_like(spin))  # (O,) rad about up
        # Rodrigues: rotation by ``turn`` about ``up``
        kx = torch.zeros(len(up), 3, 3, dtype=dtype, device=up.device)
        kx[:, 0, 1], kx[:, 0, 2], kx[:, 1, 2] = -up[:, 2], up[:, 1], -up[:, 0]
        kx = kx - kx.transpose(1, 2)
        eye = torch.eye(3, dtype=dtype, device=up.device)
        sin, cos = torch.sin(turn)[:, None, None], torch.cos(turn)[:, None, None]
        corr = eye + sin * kx + (1.0 - cos) * (kx @ kx)
        return corr @ r1


def _graph_batch(batch: ObjectBatch, dtype):
    """The particle :class:`dynamics.model.GraphBatch` the exact constraints read, rebuilt from the object batch."""
    from particles import MATERIALS

    from .model import GraphBatch

    n = batch.num_particles
    dev = batch.scene.device
    oid = torch.zeros(n, dtype=torch.int64, device=dev)
    objs = torch.arange(batch.num_objects, device=dev)[:, None].expand_as(batch.index)
    oid[batch.index[batch.mask]] = objs[batch.mask]
    scene = batch.scene[oid]
    mass = torch.zeros(n, dtype=dtype, device=dev)
    # particle masses are equal within an object in our scenes' lifting; spread the object mass evenly
    per = (batch.mass.to(dtype) / batch.mask.sum(1).clamp_min(1).to(dtype))
    mass[batch.index[batch.mask]] = per[:, None].expand_as(batch.index)[batch.mask]
    rest = torch.zeros(n, 3, dtype=dtype, device=dev)
    rest[batch.index[batch.mask]] = batch.body.to(dtype)[batch.mask]
    ptype = torch.where(batch.particle_kinematic, torch.full_like(oid, KINEMATIC), torch.zeros_like(oid))
    return GraphBatch(particle_type=ptype, material=torch.full_like(oid, MATERIALS.index("rigid")), object_id=oid,
                      num_objects=batch.num_objects, rest=rest, ground=batch.ground.to(dtype)[oid],
                      radius=batch.radius.to(dtype)[oid], batch=scene, num_scenes=batch.num_scenes, mass=mass)


@dataclass
class PackedObjects:
    """Scenes packed for :meth:`ObjectBackend.step_fn`: the object batch and, when the backend
    applies the exact constraints, the particle batch they read."""

    objects: ObjectBatch
    particles: Optional[object] = None
    """:class:`dynamics.model.GraphBatch` or None."""


class ObjectBackend:
    """K candidate tool motions on the object model, as K copies of the scene in one object batch;
    the planner's backend contract (:meth:`predict`, as :class:`dynamics.tasks.LearnedBackend`).

    Args:
        model: an :class:`ObjectNet`.
        scene: the task's scene (every free object rigid: :func:`supports`).
        collide: apply the exact contact / ground constraints after each step (see :func:`object_rollout`).
        passive_energy: hold a body that nothing working touches wherever a step would raise its energy
            (see :func:`object_rollout`).
        shape_contact: tool contacts between the boxes' shapes, as Newton has them (see :func:`object_rollout`).
        sliding_friction: a sliding body nothing working touches slows by at least Coulomb friction, and the
            ground's torsional friction and quasi-static pushing by the tool (see :func:`object_rollout`).
        grad: record gradients in :meth:`rollout_torch` (``predict`` never does).
    """

    name = "objects"

    def __init__(self, model: ObjectNet, scene: ParticleScene, collide: bool = False, device="cpu",
                 passive_energy: bool = False, shape_contact: bool = False, sliding_friction: bool = False):
        bad = supports(scene)
        if bad:
            raise ValidationError("scene", bad[0])
        self.model = model.eval()
        self.scene = scene
        self.collide = collide
        self.passive_energy = passive_energy
        self.shape_contact = shape_contact
        self.sliding_friction = sliding_friction
        self.device = device
        self.history = model.config.history
        self._batches: dict[int, ObjectBatch] = {}

    def _batch(self, k: int) -> ObjectBatch:
        if k not in self._batches:
            dtype = next(self.model.parameters()).dtype
            with torch.inference_mode(False):  # ordinary tensors even if the caller is in inference mode: the
                # batch is kept, and a later gradient rollout could not save inference tensors for backward
                self._batches = {k: pack_objects([self.scene] * k, self.model.config.dt, self.device, dtype)}
        return self._batches[k]

    @property
    def pack_key(self):
        """Backends with equal keys step together in one packed batch (:class:`dynamics.policy.PackedStepper`):
        the same model object and constraints."""
        return (id(self.model), bool(self.collide), bool(self.passive_energy), bool(self.shape_contact),
                bool(self.sliding_friction))

    def pack(self, scenes: Sequence[ParticleScene]) -> "PackedObjects":
        """Different scenes (e.g. every live episode of an evaluation) packed for :meth:`step_fn`.

        Raises :class:`particles.ValidationError` for a scene :func:`supports` refuses."""
        dtype = next(self.model.parameters()).dtype
        ob = pack_objects(scenes, self.model.config.dt, self.device, dtype)
        return PackedObjects(ob, _graph_batch(ob, dtype) if self.collide else None)

    def step_fn(self, packed: "PackedObjects", hist: torch.Tensor, nk: torch.Tensor) -> torch.Tensor:
        """One frame of every packed scene at once: (N, 3) float, m, the next positions.

        The same as each scene stepped on its own (``predict`` with K = H = 1): poses are fit per
        object, the network's contacts never join objects of different scenes, and the exact
        constraints (with ``collide``) are applied once to the packed particles, where contacts
        within the tolerance take no impulse and untouched bodies stay exactly as they are, so
        scenes do not interact (``tests/test_evaluate.py`` checks packed against one by one).

        Args:
            packed: :meth:`pack` of the scenes.
            hist: (C' , N, 3) float, m, C' >= 2 frames oldest first (padded by constant velocity to C + 1).
            nk: (N, 3) float, m: the next frame's kinematic particles (tool, static); other rows unread.
        """
        with torch.no_grad():
            return object_rollout(self.model, packed.objects, hist, 1, nk[None], collide=self.collide,
                                  passive_energy=self.passive_energy, shape_contact=self.shape_contact,
                                  sliding_friction=self.sliding_friction, graph_batch=packed.particles)[0]

    def rollout_torch(self, history: torch.Tensor, tool_indices, tool_future: torch.Tensor, grad: bool = False):
        """(K, H + 1, N, 3) torch positions for ``tool_future (K, H, M, 3)`` (torch; gradients flow to it with ``grad``)."""
        k, h = tool_future.shape[:2]
        n = self.scene.num_particles
        batch = self._batch(k)
        hist = history[-(self.history + 1):].repeat(1, k, 1)
        base = history[-1].repeat(h, k, 1).reshape(h, k, n, 3)
        ti = torch.as_tensor(np.asarray(tool_indices), device=base.device)
        fut = base  # a fresh copy (repeat): written in place, gradients still reach tool_future
        fut[:, :, ti] = tool_future.permute(1, 0, 2, 3).to(base.dtype)
        pred = object_rollout(self.model, batch, hist, h, fut.reshape(h, k * n, 3), collide=self.collide, grad=grad,
                              passive_energy=self.passive_energy, shape_contact=self.shape_contact,
                              sliding_friction=self.sliding_friction)
        pos = torch.cat([hist[-1:], pred], 0).reshape(h + 1, k, n, 3)
        return pos.permute(1, 0, 2, 3)

    def predict(self, history: np.ndarray, tool_indices: np.ndarray, tool_future: np.ndarray) -> np.ndarray:
        """Predicted positions of K candidates (same contract as :meth:`dynamics.tasks.LearnedBackend.predict`).

        Args:
            history: (C + 1, N, 3) float32, m. Observed frames, oldest first (the last is now).
            tool_indices: (M,) int64. Scene indices of the tool particles.
            tool_future: (K, H, M, 3) float32, m. Tool particles at the next H frames per candidate.

        Returns:
            (K, H + 1, N, 3) float32, m: frame 0 is now, then the H predicted frames.
        """
        dtype = next(self.model.parameters()).dtype
        with torch.no_grad():
            hist = torch.as_tensor(np.asarray(history), dtype=dtype, device=self.device)
            fut = torch.as_tensor(np.asarray(tool_future), dtype=dtype, device=self.device)
            return self.rollout_torch(hist, tool_indices, fut).float().cpu().numpy()


#: The object model's exact rules (keyword arguments of :class:`ObjectBackend`), as
#: ``worldline evaluate --backend objects`` judges in and ``worldline plan --backend objects`` plans in:
#: the contact / ground constraints after each step, the critic's energy law, the tool's contacts
#: between box shapes as Newton has them and Coulomb sliding friction (:func:`object_rollout`).
#: The one definition both use: planning and evaluation step the same world model.
RULES: dict[str, bool] = {"collide": True, "passive_energy": True, "shape_contact": True, "sliding_friction": True}


def object_backend(model: ObjectNet, scene: ParticleScene, rules: bool = True, device="cpu",
                   **drop: bool) -> ObjectBackend:
    """An :class:`ObjectBackend` of ``scene`` stepping ``model`` with the exact :data:`RULES`.

    Args:
        model: an :class:`ObjectNet`.
        scene: the task's scene (every free object rigid: :func:`supports`).
        rules: False: none of the rules (the network's steps alone, :class:`ObjectBackend`'s defaults;
            ``objects-plain`` in ``bench/plan.py``).
        drop: rules to set otherwise (e.g. ``sliding_friction=False``), names of :data:`RULES` only.

    Raises :class:`particles.ValidationError` for a scene :func:`supports` refuses, ValueError
    for a name in ``drop`` that is no rule."""
    bad = sorted(set(drop) - set(RULES))
    if bad:
        raise ValueError(f"object_backend: {bad[0]!r} is no rule; expected one of {', '.join(RULES)}")
    flags = {**(RULES if rules else {k: False for k in RULES}), **drop}
    return ObjectBackend(model, scene, device=device, **flags)


# --------------------------------------------------------------------------- training


def object_statistics(trajectories: Sequence[tuple]) -> dict:
    """Per-axis RMS scales of free objects' linear/angular velocities and accelerations from fitted
    poses ``[(c (T, O, 3), R (T, O, 3, 3), free (O,) bool), ...]``.

    One value for all three axes (RMS over the components): z moves little in push data, and a
    per-axis scale would blow its noise up in the features and the loss. Floors keep a still
    dataset finite."""
    vs, ws, as_, als = [], [], [], []
    for c, rot, free in trajectories:
        c, rot = c[:, free], rot[:, free]
        v = c[1:] - c[:-1]
        w = angular_velocity(rot[1:], rot[:-1])
        vs.append(v.reshape(-1, 3))
        ws.append(w.reshape(-1, 3))
        as_.append((v[1:] - v[:-1]).reshape(-1, 3))
        als.append((w[1:] - w[:-1]).reshape(-1, 3))

    def rms(parts, floor):
        x = torch.cat(parts).double()
        m = max(float((x * x).mean().sqrt()), floor)
        return [m, m, m]

    return {"vel_scale": rms(vs, 1e-6), "ang_scale": rms(ws, 1e-6), "acc_scale": rms(as_, 1e-7),
            "ang_acc_scale": rms(als, 1e-7)}


@dataclass(frozen=True)
class ObjectTrainConfig:
    """How :func:`train_objects` trains (plain values; stored in checkpoints)."""

    steps: int = 2000
    batch_size: int = 8
    """Windows per step."""
    unroll: int = 8
    """Frames each window is rolled out (the loss is on all of them, so rollouts stay stable)."""
    lr: float = 1e-3
    lr_final: float = 1e-5
    lr_decay_steps: int = 2000
    noise: float = 0.3
    """Std of random-walk noise on the input centres, in units of the velocity scale."""
    seed: int = 0
    yaw_augment: bool = True
    """Turn every window by a random yaw about z."""

    def __post_init__(self):
        for name, lo in (("steps", 0), ("batch_size", 1), ("unroll", 1), ("lr_decay_steps", 1), ("seed", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValidationError(name, f"must be an integer >= {lo}, got {v!r}")
        for name in ("lr", "lr_final"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValidationError(name, f"must be a positive learning rate, got {v!r}")
        if not (math.isfinite(self.noise) and self.noise >= 0):
            raise ValidationError("noise", f"must be >= 0, got {self.noise!r}")

    def lr_at(self, step: int) -> float:
        """Learning rate of optimiser step ``step`` (0-based): the GNN's schedule (:func:`dynamics.train.decayed_lr`)."""
        from .train import decayed_lr

        return decayed_lr(self.lr, self.lr_final, self.lr_decay_steps, step)


def _rot_z(yaw: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(yaw), torch.sin(yaw)
    z, o = torch.zeros_like(c), torch.ones_like(c)
    return torch.stack([torch.stack([c, -s, z], -1), torch.stack([s, c, z], -1), torch.stack([z, z, o], -1)], -2)


class _Prepared:
    """A training trajectory with its fitted poses (float64 fits, stored float32)."""

    def __init__(self, ro: Rollout, dt: float):
        self.rollout = ro
        self.batch = pack_objects([ro.scene], dt, dtype=torch.float64)
        pos = torch.as_tensor(ro.positions, dtype=torch.float64)
        c, rot = fit_poses(self.batch, pos)
        self.c, self.rot = c.float(), rot.float()
        self.pos = torch.as_tensor(ro.positions, dtype=torch.float32)
        self.free = ~self.batch.kinematic


def _window(prep: Sequence[_Prepared], picks, c_len: int, unroll: int, gen: torch.Generator, cfg: ObjectTrainConfig,
            vel_scale: torch.Tensor):
    """Pack windows ``[(trajectory, t)]``: history frames t-C..t, targets t+1..t+U, yaw-turned."""
    scenes = [prep[i].rollout.scene for i, _ in picks]
    hists, futs, tc, tr = [], [], [], []
    for i, t in picks:
        p = prep[i]
        yaw = torch.rand((), generator=gen) * 2 * math.pi if cfg.yaw_augment else torch.zeros(())
        rz = _rot_z(yaw)
        pos = p.pos[t - c_len:t + unroll + 1] @ rz.T
        hists.append(pos[:c_len + 1])
        futs.append(pos[c_len + 1:])
        tc.append(p.c[t + 1:t + unroll + 1] @ rz.T)
        tr.append(rz @ p.rot[t + 1:t + unroll + 1])
    return scenes, torch.cat(hists, 1), torch.cat(futs, 1), torch.cat(tc, 1), torch.cat(tr, 1)


def train_objects(train: Sequence[Rollout], cfg: ObjectTrainConfig, model_config: Optional[dict] = None,
                  valid: Sequence[Rollout] = (), progress: bool = False, log=None, max_seconds: Optional[float] = None,
                  init: Optional[ObjectNet] = None):
    """Train an :class:`ObjectNet` on rigid-only trajectories (others are skipped).

    Each step packs ``batch_size`` windows (trajectory, frame t) drawn uniformly, adds random-walk
    noise to the input history (``noise`` x the velocity scale), rolls ``unroll`` frames out from
    the fitted poses (tool on its recorded path) and minimises the mean over the unrolled frames
    ``u`` of the squared error of the skinned body points, divided by ``(u S)^2`` (``S`` the
    acceleration scale, so frame 1 is the one-step acceleration error). Adam with exponential decay.

    Args:
        train: trajectories (``particles.Rollout``), all at one dt and particle radius.
        model_config: overrides of :class:`ObjectConfig` fields (scales come from the data).
        valid: trajectories for a final rollout MSE (m^2) per 20 frames.
        max_seconds: stop early after this wall time (the step count reached is recorded).
        init: warm-start from this model's weights (same architecture; the scales come from ``train``).

    Returns:
        ``(model, info)`` with ``info`` plain values: steps, seconds, final loss, valid MSE.
    """
    rigid = [ro for ro in train if not supports(ro.scene)]
    if not rigid:
        raise ValidationError("train", "no trajectory whose free objects are all rigid")
    dt, r = float(rigid[0].dt), float(rigid[0].scene.radius)
    overrides = dict(model_config or {})
    hist_len = int(overrides.get("history", ObjectConfig.history))
    base = ObjectConfig(dt=dt, radius=r, **{k: v for k, v in overrides.items() if k not in ("dt", "radius")})
    prep = [_Prepared(ro, dt) for ro in rigid]
    stats = object_statistics([(p.c, p.rot, p.free) for p in prep])
    config = ObjectConfig.from_dict({**base.to_dict(), **stats})
    torch.manual_seed(cfg.seed)
    model = ObjectNet(config)
    if init is not None:
        weights = {k: v for k, v in init.state_dict().items() if not k.endswith("_scale")}
        model.load_state_dict(weights, strict=False)
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    u = cfg.unroll
    windows = [(i, t) for i, p in enumerate(prep) for t in range(hist_len, p.pos.shape[0] - u)]
    if not windows:
        raise ValidationError("train", f"trajectories are shorter than history + unroll + 1 = {hist_len + u + 1} frames")
    s = model.acc_scale
    scale_u = (torch.arange(1, u + 1, dtype=torch.float32) ** 2)[:, None, None]
    it = range(cfg.steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="train objects", unit="step")
    t0 = time.perf_counter()
    loss_v = float("nan")
    done = 0
    model.train()
    for step in it:
        for grp in opt.param_groups:
            grp["lr"] = cfg.lr_at(step)
        picks = [windows[int(k)] for k in torch.randint(len(windows), (cfg.batch_size,), generator=gen)]
        scenes, hist, fut, tc, tr = _window(prep, picks, hist_len, u, gen, cfg, model.vel_scale)
        batch = pack_objects(scenes, dt)
        if cfg.noise > 0:
            walk = torch.randn(hist.shape, generator=gen).cumsum(0) * (cfg.noise * float(model.vel_scale.mean()) /
                                                                        math.sqrt(hist.shape[0]))
            walk = walk - walk[-1:]  # the present frame stays where it was seen
            hist = torch.where(batch.free_particles[None, :, None], hist + walk, hist)
        pos, pc, pr = object_rollout(model, batch, hist, u, fut, grad=True, poses=True)
        free = (~batch.kinematic)[:, None] & batch.mask
        err = (skin(batch, pc, pr) - skin(batch, tc, tr)) / s  # (U, O, P, 3)
        err = (err * err / scale_u[..., None]).sum(-1)
        loss = err[:, free].mean()
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        opt.step()
        loss_v = float(loss.detach())
        done = step + 1
        if progress:
            it.set_postfix(loss=f"{loss_v:.3g}")
        if log is not None and (step % 100 == 0 or step == cfg.steps - 1):
            log({"step": step, "loss": loss_v, "lr": cfg.lr_at(step), "seconds": time.perf_counter() - t0})
        if max_seconds is not None and time.perf_counter() - t0 > max_seconds:
            break
    model.eval()
    info = {"steps": done, "seconds": time.perf_counter() - t0, "final_loss": loss_v,
            "train_trajectories": len(prep), "train_config": dataclasses.asdict(cfg)}
    vrig = [ro for ro in valid if not supports(ro.scene)]
    if vrig:
        info["valid_rollout_mse_20"] = float(np.mean([_valid_mse(model, ro, 20) for ro in vrig]))
    return model, info


def _valid_mse(model: ObjectNet, ro: Rollout, steps: int) -> float:
    c = model.config.history
    steps = min(steps, ro.num_frames - 1 - c)
    batch = pack_objects([ro.scene], model.config.dt)
    pos = torch.as_tensor(ro.positions)
    with torch.no_grad():
        pred = object_rollout(model, batch, pos[:c + 1], steps, pos[c + 1:c + 1 + steps])
    free = ~ro.scene.kinematic
    return float(((pred[:, free] - pos[c + 1:c + 1 + steps, free]) ** 2).mean())


def predict_trajectory_objects(model: ObjectNet, rollout: Rollout, start: int, steps: int, collide: bool = False,
                               device="cpu", rules: Optional[dict] = None) -> np.ndarray:
    """(steps, N, 3) float32, m: the object model's rollout of frames ``start + 1 .. start + steps``
    from the true frames ``start - C .. start``, the tool on its true path (the object-model twin of
    :func:`dynamics.evaluate.predict_trajectory`). ``rules``: None, or keyword settings of
    :func:`object_rollout` (e.g. :data:`RULES`) that replace ``collide``. Raises ValidationError for a
    scene :func:`supports` refuses."""
    c = model.config.history
    if start < c or start + steps >= rollout.num_frames:
        raise ValueError(f"need {c} <= start and start + steps < {rollout.num_frames}; got start={start}, steps={steps}")
    dtype = next(model.parameters()).dtype
    batch = pack_objects([rollout.scene], model.config.dt, device, dtype)
    pos = torch.as_tensor(rollout.positions, device=device, dtype=dtype)
    with torch.no_grad():
        pred = object_rollout(model, batch, pos[start - c:start + 1], steps, pos[start + 1:start + 1 + steps],
                              **(dict(rules) if rules is not None else {"collide": collide}))
    return pred.float().cpu().numpy()


def zero_acceleration_model(model: ObjectNet) -> ObjectNet:
    """A copy of ``model`` whose decoders' last layers are zeroed: it predicts no acceleration of its own
    (free flight under gravity, ground contact cancelling it, no contact forces), so a rollout of it
    through the constraints and rules is constant velocity with those constraints and rules, the
    baseline that removes the learning (issue 12's "decoder's last layer zeroed")."""
    import copy

    zero = copy.deepcopy(model)
    with torch.no_grad():
        for dec in (zero.force_decoder, zero.ground_decoder):
            last = [m for m in dec.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.zero_()
            if last.bias is not None:
                last.bias.zero_()
    return zero


# --------------------------------------------------------------------------- checkpoints


def save_object_model(path, model: ObjectNet, info: Optional[dict] = None) -> Path:
    """Write ``model`` (config, weights, ``info``) atomically, loadable with ``weights_only=True``."""
    from particles.io import atomic_write

    ckpt = {"format": OBJECT_FORMAT, "format_version": OBJECT_VERSION, "kind": OBJECT_KIND,
            "config": model.config.to_dict(), "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "info": json.loads(json.dumps(info or {}))}
    return atomic_write(path, lambda f: torch.save(ckpt, f))


def is_object_checkpoint(ckpt: dict) -> bool:
    """Whether a loaded checkpoint dict holds an object model (its ``kind``)."""
    return isinstance(ckpt, dict) and ckpt.get("kind") == OBJECT_KIND


def load_object_model(path, device="cpu") -> ObjectNet:
    """The :class:`ObjectNet` of a checkpoint written by :func:`save_object_model`; a clear
    :class:`particles.FileFormatError` (file and field) for anything else, e.g. a GNN checkpoint."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001  (unpickling refused or a corrupt file)
        raise FileFormatError(path, "file", f"is not a readable checkpoint ({type(exc).__name__})") from None
    return object_model_from_checkpoint(ckpt, path, device)


def object_model_from_checkpoint(ckpt, path, device="cpu") -> ObjectNet:
    """The :class:`ObjectNet` of a checkpoint dict already read from ``path`` (named in errors), as
    :func:`load_object_model` checks and builds it."""
    path = Path(path)
    if not isinstance(ckpt, dict) or ckpt.get("format") != OBJECT_FORMAT:
        got = ckpt.get("format") if isinstance(ckpt, dict) else type(ckpt).__name__
        raise FileFormatError(path, "format", f"expected {OBJECT_FORMAT!r} (an object model), got {got!r}")
    if ckpt.get("kind") != OBJECT_KIND:
        raise FileFormatError(path, "kind", f"expected {OBJECT_KIND!r}, got {ckpt.get('kind')!r}")
    if ckpt.get("format_version") != OBJECT_VERSION:
        raise FileFormatError(path, "format_version", f"expected {OBJECT_VERSION}, got {ckpt.get('format_version')!r}")
    try:
        config = ObjectConfig.from_dict(ckpt["config"])
    except (KeyError, TypeError) as exc:
        raise FileFormatError(path, "config", f"missing or malformed ({exc})") from None
    except ValidationError as exc:
        raise FileFormatError(path, f"config.{exc.field}", exc.problem) from None
    model = ObjectNet(config).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except (KeyError, RuntimeError) as exc:
        raise FileFormatError(path, "model", f"weights do not fit the config ({str(exc).splitlines()[0]})") from None
    model.info = ckpt.get("info", {})
    return model.eval()
