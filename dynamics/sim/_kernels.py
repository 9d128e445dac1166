"""Warp kernels of the Newton wrapper: drive the tool bodies, read rigid particles, couple MPM to bodies.

Inputs first, then outputs; no I/O. Launchers live in :mod:`dynamics.sim.simulator`.
"""

from __future__ import annotations

import warp as wp
from newton._src.solvers.vbd.rigid_vbd_kernels import evaluate_body_particle_contact  # VBD's own contact law


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


@wp.kernel
def tool_drive(
    body_ids: wp.array(dtype=wp.int32),
    target_q: wp.array(dtype=wp.transform),
    target_next_q: wp.array(dtype=wp.transform),
    body_q: wp.array(dtype=wp.transform),
    body_qd: wp.array(dtype=wp.spatial_vector),
    body_com: wp.array(dtype=wp.vec3),
    body_mass: wp.array(dtype=float),
    body_inertia: wp.array(dtype=wp.mat33),
    gravity: wp.vec3,
    max_force: float,
    max_torque: float,
    catchup_speed: float,
    h: float,
    body_f: wp.array(dtype=wp.spatial_vector),
    drive_sum: wp.array(dtype=wp.spatial_vector),
    drive_peak: wp.array(dtype=wp.vec2),
):
    """Bounded deadbeat PD drive of the tool bodies ``body_ids`` for one substep of ``h`` s.

    The wrench a semi-implicit Euler step of ``h`` needs to carry body ``b`` from its pose to
    ``target_next_q`` (the prescribed pose at the end of the substep, ``target_q`` at its start),
    i.e. a PD drive with ``kp = m / h^2``, ``kd = m / h`` towards the prescribed pose moving at the
    prescribed velocity, is clamped to ``|F| <= max_force`` N and ``|tau| <= max_torque`` N m. The
    position term is capped at ``catchup_speed`` m/s: a tool that fell behind (blocked, then let
    go) returns to its path at most that much faster than the path moves. The body's weight is
    compensated on top. Written into ``body_f`` (world frame, force at the centre of mass),
    the clamped drive is added to ``drive_sum`` and its magnitudes' maximum kept in
    ``drive_peak`` (N, N m), per tool part ``i``.
    """
    i = wp.tid()
    b = body_ids[i]
    q = body_q[b]
    qd = body_qd[b]
    m = body_mass[b]
    com = body_com[b]
    r0 = wp.transform_get_rotation(q)
    x_com = wp.transform_point(q, com)
    v = wp.spatial_top(qd)
    w = wp.spatial_bottom(qd)
    x0 = wp.transform_point(target_q[i], com)
    x1 = wp.transform_point(target_next_q[i], com)
    # force: v' = v + (F/m + g) h and x' = x + v' h land on x1, i.e. v' = (x1 - x0)/h + (x0 - x)/h,
    # with the catch-up part (x0 - x)/h capped
    catchup = (x0 - x_com) / h
    cn = wp.length(catchup)
    if cn > catchup_speed:
        catchup = catchup * (catchup_speed / cn)
    f = m * (((x1 - x0) / h + catchup) - v) / h
    fn = wp.length(f)
    if fn > max_force:
        f = f * (max_force / fn)
        fn = max_force
    # torque: the angular velocity that rotates r0 onto the target in h, reached in one step
    r1 = wp.transform_get_rotation(target_next_q[i])
    dq = r1 * wp.quat_inverse(r0)
    if dq[3] < 0.0:
        dq = -dq
    vq = wp.vec3(dq[0], dq[1], dq[2])
    s = wp.length(vq)
    rotvec = vq * 2.0
    if s > 1.0e-9:
        rotvec = vq * (2.0 * wp.atan2(s, dq[3]) / s)
    w1 = rotvec / h
    inertia = body_inertia[b]
    wb = wp.quat_rotate_inv(r0, w)
    wb1 = wp.quat_rotate_inv(r0, w1)
    tb = inertia * ((wb1 - wb) / h) + wp.cross(wb, inertia * wb)
    tau = wp.quat_rotate(r0, tb)
    tn = wp.length(tau)
    if tn > max_torque:
        tau = tau * (max_torque / tn)
        tn = max_torque
    body_f[b] = body_f[b] + wp.spatial_vector(f - m * gravity, tau)
    drive_sum[i] = drive_sum[i] + wp.spatial_vector(f, tau)
    pk = drive_peak[i]
    drive_peak[i] = wp.vec2(wp.max(pk[0], fn), wp.max(pk[1], tn))


@wp.kernel
def mpm_body_wrench(
    collider_ids: wp.array(dtype=wp.int32),
    impulses: wp.array(dtype=wp.vec3),
    impulse_pos: wp.array(dtype=wp.vec3),
    collider_body: wp.array(dtype=wp.int32),
    body_q: wp.array(dtype=wp.transform),
    body_com: wp.array(dtype=wp.vec3),
    dt: float,
    body_f: wp.array(dtype=wp.spatial_vector),
):
    """Two-way MPM coupling: the force and torque the material puts on each rigid body.

    ``impulses`` (N s) are what the implicit-MPM step of ``dt`` s applied to the colliders at
    grid nodes ``impulse_pos`` (m), node ``i`` belonging to collider ``collider_ids[i]``
    (``SolverImplicitMPM.collect_collider_impulses``); ``collider_body`` maps a collider to its
    body (-1: ground or static shape, which take nothing). Adds ``impulse / dt`` (N) and its
    moment about the body's centre of mass (N m), world frame, to ``body_f``.
    """
    i = wp.tid()
    c = collider_ids[i]
    if c < 0 or c >= collider_body.shape[0]:
        return
    b = collider_body[c]
    if b < 0:
        return
    f = impulses[i] / dt
    com = wp.transform_point(body_q[b], body_com[b])
    wp.atomic_add(body_f, b, wp.spatial_vector(f, wp.cross(impulse_pos[i] - com, f)))


@wp.kernel
def remove_body_wrench(
    body_q: wp.array(dtype=wp.transform),
    body_qd: wp.array(dtype=wp.spatial_vector),
    body_f: wp.array(dtype=wp.spatial_vector),
    body_inv_mass: wp.array(dtype=float),
    body_inv_inertia: wp.array(dtype=wp.mat33),
    dt: float,
    body_qd_out: wp.array(dtype=wp.spatial_vector),
):
    """Body twists without what the wrench ``body_f`` (world frame, N and N m at the centre of mass)
    added over ``dt`` s: ``v - dt f / m`` and ``w - dt I^-1 tau`` (inertia in the body frame).

    The implicit-MPM step sees the colliders at these velocities, so that the impulse it returns
    is the material's whole contact impulse and not its increment over the last one.
    """
    b = wp.tid()
    f = body_f[b]
    r = wp.transform_get_rotation(body_q[b])
    dv = dt * body_inv_mass[b] * wp.spatial_top(f)
    dw = dt * wp.quat_rotate(r, body_inv_inertia[b] * wp.quat_rotate_inv(r, wp.spatial_bottom(f)))
    body_qd_out[b] = body_qd[b] - wp.spatial_vector(dv, dw)


@wp.kernel
def add_wrench(wrench: wp.array(dtype=wp.spatial_vector), body_f: wp.array(dtype=wp.spatial_vector)):
    """``body_f[b] += wrench[b]`` (N, N m, world frame at the centre of mass)."""
    b = wp.tid()
    body_f[b] = body_f[b] + wrench[b]


@wp.kernel
def soft_contact_reaction(
    contact_count: wp.array(dtype=wp.int32),
    contact_particle: wp.array(dtype=wp.int32),
    contact_shape: wp.array(dtype=wp.int32),
    contact_body_pos: wp.array(dtype=wp.vec3),
    contact_body_vel: wp.array(dtype=wp.vec3),
    contact_normal: wp.array(dtype=wp.vec3),
    particle_q: wp.array(dtype=wp.vec3),
    particle_q_prev: wp.array(dtype=wp.vec3),
    particle_radius: wp.array(dtype=float),
    shape_material_mu: wp.array(dtype=float),
    shape_body: wp.array(dtype=wp.int32),
    body_q: wp.array(dtype=wp.transform),
    body_q_prev: wp.array(dtype=wp.transform),
    body_qd: wp.array(dtype=wp.spatial_vector),
    body_com: wp.array(dtype=wp.vec3),
    shape_margin: wp.array(dtype=float),
    body_inv_mass: wp.array(dtype=float),
    ke: float,
    kd: float,
    mu: float,
    friction_epsilon: float,
    dt: float,
    body_f: wp.array(dtype=wp.spatial_vector),
):
    """The force VBD's particles put on the dynamic bodies they touch, from its own contact law.

    For each soft contact (particle against a body's shape, from the VBD model's collision
    pipeline) the penalty, damping and friction force that VBD's step of ``dt`` s applied to the
    particle (``evaluate_body_particle_contact``: stiffness ``ke`` N/m, at the particle's solved
    position ``particle_q`` from ``particle_q_prev``, the body at ``body_q`` from ``body_q_prev``)
    acts on the body in reverse at the shape-side contact point: its force (N) and moment about the
    body's centre of mass (N m) are added to ``body_f``. Ground, static shapes and bodies without
    mass take nothing.
    """
    i = wp.tid()
    if i >= contact_count[0]:
        return
    s = contact_shape[i]
    b = shape_body[s]
    if b < 0:
        return
    if body_inv_mass[b] <= 0.0:
        return
    p = contact_particle[i]
    f, _hess = evaluate_body_particle_contact(p, particle_q[p], particle_q_prev[p], i, ke, kd, mu, friction_epsilon,
                                              particle_radius, shape_material_mu, shape_body, body_q, body_q_prev,
                                              body_qd, body_com, contact_shape, contact_body_pos, contact_body_vel,
                                              contact_normal, shape_margin, dt)
    bx = wp.transform_point(body_q[b], contact_body_pos[i])
    com = wp.transform_point(body_q[b], body_com[b])
    wp.atomic_add(body_f, b, wp.spatial_vector(-f, wp.cross(bx - com, -f)))
