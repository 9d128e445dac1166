"""critic: name the time, place and kind of every physical glitch in a particle rollout.

``audit(rollout) -> Report`` runs seven small pure checks (penetration, teleport, vanish,
rigidity, floating, energy, jitter; :mod:`critic.checks`) whose thresholds come from the
rollout's own physics (dt, gravity, particle radius, materials, observed velocities).
``load_audit_input(path)`` reads a rollout ``.npz``, a GNS dataset folder or a bare
``positions (T, N, 3)`` array. :mod:`critic.tracks` audits 3D point tracks from video (TAP-Vid-3D files:
no object ids, occlusion, noise, camera frames). The critic imports only :mod:`particles`.
"""

from .audit import PRIORITY, audit, load_audit_input
from .checks import (
    CHECKS,
    check_energy,
    check_floating,
    check_jitter,
    check_penetration,
    check_rigidity,
    check_teleport,
    check_vanish,
)
from .context import AuditConfig, AuditContext
from .report import CATEGORIES, REPORT_VERSION, Event, Report

__all__ = [
    "audit", "load_audit_input", "AuditConfig", "AuditContext", "Event", "Report", "CATEGORIES", "REPORT_VERSION",
    "PRIORITY", "CHECKS", "check_penetration", "check_teleport", "check_vanish", "check_rigidity", "check_floating",
    "check_energy", "check_jitter",
]
