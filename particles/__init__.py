"""particles: scenes lifted into particles, keypoints and neighbour graphs.

The types every worldline package shares (:class:`ParticleScene`, :class:`ParticleState`,
:class:`Action`, :class:`Rollout`, :class:`KeypointGraph`), the file formats, and the
Warp kernels for neighbour search.
"""

from .types import (
    GRAVITY,
    KINEMATIC,
    MATERIAL_TYPE,
    MATERIALS,
    Action,
    KeypointGraph,
    ParticleScene,
    ParticleState,
    Rollout,
    ValidationError,
    material_particle_type,
)
from .io import (
    FileFormatError,
    load_dataset,
    load_rollout,
    load_scene,
    read_metadata,
    rollout_from_arrays,
    save_rollout,
    save_scene,
    write_dataset,
)

__all__ = [
    "GRAVITY", "KINEMATIC", "MATERIAL_TYPE", "MATERIALS",
    "Action", "KeypointGraph", "ParticleScene", "ParticleState", "Rollout", "ValidationError", "material_particle_type",
    "FileFormatError", "load_dataset", "load_rollout", "load_scene", "read_metadata", "rollout_from_arrays",
    "save_rollout", "save_scene", "write_dataset",
]
