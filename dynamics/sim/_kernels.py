"""Warp kernels of the Newton wrapper: prescribe kinematic bodies, read rigid particles.

Inputs first, then outputs; no I/O. Launchers live in :mod:`dynamics.sim.simulator`.
"""

from __future__ import annotations

import warp as wp


@wp.kernel
def set_body_states(
    body_ids: wp.array(dtype=wp.int32),
    poses: wp.array(dtype=wp.transform),
    twists: wp.array(dtype=wp.spatial_vector),
    body_q: wp.array(dtype=wp.transform),
    body_qd: wp.array(dtype=wp.spatial_vector),
):
    """Write prescribed poses (p, q xyzw) and twists (v_com_world, omega_world) into bodies ``body_ids``."""
    i = wp.tid()
    b = body_ids[i]
    body_q[b] = poses[i]
    body_qd[b] = twists[i]


@wp.kernel
def rigid_particle_states(
    body_q: wp.array(dtype=wp.transform),
    body_qd: wp.array(dtype=wp.spatial_vector),
    body_com: wp.array(dtype=wp.vec3),
    particle_body: wp.array(dtype=wp.int32),
    particle_offset: wp.array(dtype=wp.vec3),
    x_out: wp.array(dtype=wp.vec3),
    v_out: wp.array(dtype=wp.vec3),
):
    """World position and velocity of particles riding rigidly on bodies.

    ``particle_offset`` is each particle's position in its body's frame (m);
    velocity is ``v_com + omega x (x - com_world)`` (m/s).
    """
    i = wp.tid()
    b = particle_body[i]
    X = body_q[b]
    x = wp.transform_point(X, particle_offset[i])
    com = wp.transform_point(X, body_com[b])
    tw = body_qd[b]
    v = wp.spatial_top(tw)
    w = wp.spatial_bottom(tw)
    x_out[i] = x
    v_out[i] = v + wp.cross(w, x - com)
