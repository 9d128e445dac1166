"""Ground truth on NVIDIA Newton: rigid bodies (XPBD), elastic solids and cloth (VBD), rope (springs) and MPM under a tool.

Public API: :class:`NewtonSimulator` (a :class:`dynamics.base.Dynamics`), its
:class:`SimConfig`, per-object :class:`ObjectShape` and :class:`Material`
(with :data:`DEFAULT_MATERIALS`).
"""

from .materials import DEFAULT_MATERIALS, Material, default_material
from .simulator import (MPM_MATERIALS, RIGID_MATERIALS, SHAPE_KINDS, SPRING_MATERIALS, VBD_MATERIALS, NewtonSimulator,
                        ObjectShape, SimConfig)

__all__ = ["NewtonSimulator", "SimConfig", "ObjectShape", "Material", "DEFAULT_MATERIALS", "default_material",
           "SHAPE_KINDS", "RIGID_MATERIALS", "SPRING_MATERIALS", "MPM_MATERIALS", "VBD_MATERIALS"]
