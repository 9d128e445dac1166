"""Physical parameters of materials, SI units, with documented defaults.

A :class:`Material` is what the simulator needs beyond a particle's mass:
friction, restitution and stiffness. Defaults per material name
(:data:`DEFAULT_MATERIALS`) are textbook orders of magnitude, chosen so the
CPU solvers stay stable at the default frame step; each is noted below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from particles import MATERIALS, ValidationError

__all__ = ["Material", "DEFAULT_MATERIALS", "default_material"]


@dataclass(frozen=True)
class Material:
    """Parameters of one object's material.

    Which fields a solver reads depends on the material kind (see
    :mod:`dynamics.sim.simulator`): rigid and static shapes read density,
    friction and restitution; VBD elastic solids read ``young_modulus``, ``poisson``
    and ``damping`` (Pa s, the tetrahedra's viscous damping) and VBD cloth also
    ``bending_stiffness``; spring-network particles (rope, or ``soft_solver="springs"``)
    read ``young_modulus`` and ``damping`` (N s/m per spring); MPM granular/plastic/fluid particles read
    friction (internal, as the tangent of the friction angle), ``young_modulus``,
    ``poisson``, ``yield_stress`` and ``viscosity``.
    """

    density: float = 1000.0
    """kg/m^3 (> 0). Sets rigid-body mass from the collision shape's volume."""
    friction: float = 0.5
    """Coulomb friction coefficient (>= 0), dimensionless. For MPM granular matter, the internal friction coefficient."""
    restitution: float = 0.0
    """Coefficient of restitution in [0, 1]."""
    young_modulus: float = 1.0e6
    """Pa (> 0). Stiffness of elastic/cloth spring networks and MPM materials."""
    poisson: float = 0.3
    """Poisson ratio in [0, 0.5)."""
    damping: float = 0.0
    """(>= 0) Viscous damping: of VBD tetrahedra and cloth triangles (Newton's ``k_damp`` / ``tri_kd``), or
    of spring networks in N s/m per spring."""
    yield_stress: float = 0.0
    """Pa (>= 0). MPM deviatoric yield stress (plastic flow starts above it); 0 for cohesionless sand."""
    viscosity: float = 0.0
    """Pa s (>= 0). MPM viscosity (fluids)."""
    bending_stiffness: float = 0.0
    """N m (>= 0). Cloth bending stiffness D on VBD (a plate's ``E t^3 / (12 (1 - nu^2))``); 0 folds freely."""

    def __post_init__(self):
        checks = (
            ("density", self.density > 0, "must be positive (kg/m^3)"),
            ("friction", self.friction >= 0, "must be non-negative"),
            ("restitution", 0 <= self.restitution <= 1, "must lie in [0, 1]"),
            ("young_modulus", self.young_modulus > 0, "must be positive (Pa)"),
            ("poisson", 0 <= self.poisson < 0.5, "must lie in [0, 0.5)"),
            ("damping", self.damping >= 0, "must be non-negative (N s/m)"),
            ("yield_stress", self.yield_stress >= 0, "must be non-negative (Pa)"),
            ("viscosity", self.viscosity >= 0, "must be non-negative (Pa s)"),
            ("bending_stiffness", self.bending_stiffness >= 0, "must be non-negative (N m)"),
        )
        for name, ok, problem in checks:
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not ok:
                raise ValidationError(name, f"{problem}, got {value!r}")

    def with_(self, **changes) -> "Material":
        """A copy with some fields replaced (validated again)."""
        return replace(self, **changes)


#: Defaults per material name. Rigid: wood/plastic-like blocks (500-1000 kg/m^3, mu 0.5).
#: Elastic: soft rubber (E 1e5 Pa). Granular: dry sand (1600 kg/m^3, internal friction 0.68,
#: about 34 degrees, the angle of repose of dry sand). Plastic: clay-like (yield 2e3 Pa).
#: Fluid: water-like (1000 kg/m^3, no friction). Cloth: cotton-like sheet (E 1e5 Pa on the
#: particle lattice; bending stiffness 1e-3 N m: assets/scenes/cloth_drape.toml audits clean with it, while
#: from 3e-3 N m the flaps folding over the box's edge swing out faster than the critic allows).
#: Static: fixed furniture (friction 0.5).
DEFAULT_MATERIALS: dict[str, Material] = {
    "rigid": Material(density=800.0, friction=0.5, restitution=0.0, young_modulus=1.0e9),
    "static": Material(density=1000.0, friction=0.5, restitution=0.0, young_modulus=1.0e9),
    "elastic": Material(density=1000.0, friction=0.5, young_modulus=1.0e5, poisson=0.3, damping=0.0),
    "cloth": Material(density=300.0, friction=0.5, young_modulus=1.0e5, poisson=0.3, damping=0.0, bending_stiffness=1.0e-3),
    "rope": Material(density=500.0, friction=0.5, young_modulus=1.0e6, poisson=0.3, damping=0.0),
    "granular": Material(density=1600.0, friction=0.68, young_modulus=1.0e15, poisson=0.3),
    "plastic": Material(density=1200.0, friction=0.3, young_modulus=1.0e6, poisson=0.3, yield_stress=2.0e3),
    "fluid": Material(density=1000.0, friction=0.0, young_modulus=1.0e6, poisson=0.3, viscosity=1.0e-3),
}


def default_material(name: str) -> Material:
    """The default :class:`Material` of a material name (one of :data:`particles.MATERIALS`)."""
    if name not in MATERIALS:
        raise ValidationError("material", f"unknown material {name!r}; expected one of {', '.join(MATERIALS)}")
    return DEFAULT_MATERIALS[name]
