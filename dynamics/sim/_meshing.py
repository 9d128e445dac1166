"""Meshes for Newton's VBD solver from an object's particle lattice: tetrahedra for elastic solids,
triangles and bending hinges for cloth.

Lifted and generated objects are lattices of spacing ``2 r`` (docs/ARCHITECTURE.md), possibly
jittered; their particles become the mesh vertices as they are, so the rollout still has one
position per particle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["lattice_tets", "sheet_triangles", "bending_hinges"]


def lattice_tets(points: np.ndarray, spacing: float) -> np.ndarray:
    """Tetrahedra over a solid's particles.

    Args:
        points: (n, 3) float, m, the particles of one object (n >= 4, not all coplanar).
        spacing: m, the lattice spacing (2 r).

    Returns:
        (T, 4) int64 vertex indices into ``points``, each tetrahedron positively oriented. A Delaunay
        tetrahedralisation (jittered so a cubic lattice's cospherical points do not stall it) keeps
        the tetrahedra whose edges are at most a cube diagonal (sqrt(3) spacings, with 5 % slack)
        and whose volume is at least 1 % of a cube cell's (a regular cube splits into tetrahedra
        of 1/6 of it); what it drops are the hull's long thin slivers across concave edges.
    """
    from scipy.spatial import Delaunay

    p = np.asarray(points, np.float64)
    if len(p) < 4:
        return np.zeros((0, 4), np.int64)
    tets = Delaunay(p, qhull_options="QJ Qbb").simplices.astype(np.int64)
    corners = p[tets]  # (T, 4, 3)
    edges = corners[:, [0, 0, 0, 1, 1, 2]] - corners[:, [1, 2, 3, 2, 3, 3]]
    longest = np.linalg.norm(edges, axis=-1).max(1)
    d = corners[:, 1:] - corners[:, :1]
    vol = np.einsum("ti,ti->t", d[:, 0], np.cross(d[:, 1], d[:, 2])) / 6.0
    keep = (longest <= np.sqrt(3.0) * spacing * 1.05) & (np.abs(vol) >= 0.01 * spacing ** 3)
    tets, vol = tets[keep], vol[keep]
    flip = vol < 0
    tets[flip] = tets[flip][:, [0, 2, 1, 3]]
    return tets


def sheet_triangles(points: np.ndarray, spacing: float) -> np.ndarray:
    """Triangles over a sheet's particles (one layer, any orientation).

    Args:
        points: (n, 3) float, m, the particles of one sheet (n >= 3).
        spacing: m, the lattice spacing (2 r).

    Returns:
        (F, 3) int64 vertex indices, triangulated in the sheet's best-fit plane (Delaunay, jittered)
        and kept where every edge is at most a square's diagonal (sqrt(2) spacings, 5 % slack).
        Orientation follows the plane's normal.
    """
    from scipy.spatial import Delaunay

    p = np.asarray(points, np.float64)
    if len(p) < 3:
        return np.zeros((0, 3), np.int64)
    c = p - p.mean(0)
    _, _, vt = np.linalg.svd(c, full_matrices=False)
    uv = c @ vt[:2].T
    tris = Delaunay(uv, qhull_options="QJ Qbb").simplices.astype(np.int64)
    corners = p[tris]
    edges = corners[:, [0, 1, 2]] - corners[:, [1, 2, 0]]
    keep = np.linalg.norm(edges, axis=-1).max(1) <= np.sqrt(2.0) * spacing * 1.05
    tris = tris[keep]
    a, b = uv[tris[:, 1]] - uv[tris[:, 0]], uv[tris[:, 2]] - uv[tris[:, 0]]
    flip = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0] < 0
    tris[flip] = tris[flip][:, [0, 2, 1]]
    return tris


def bending_hinges(triangles: np.ndarray) -> np.ndarray:
    """Bending hinges of a triangle mesh: per interior edge shared by two triangles,
    ``(o0, o1, e0, e1)`` (the two opposite vertices, then the edge), as Newton's ``add_edge`` takes them.

    Args:
        triangles: (F, 3) int vertex indices.

    Returns:
        (E, 4) int64.
    """
    tris = np.asarray(triangles, np.int64)
    seen: dict[tuple[int, int], tuple[int, int, int]] = {}
    hinges = []
    for t in tris:
        for k in range(3):
            a, b, o = int(t[k]), int(t[(k + 1) % 3]), int(t[(k + 2) % 3])
            key = (min(a, b), max(a, b))
            if key in seen:
                o0, a0, b0 = seen.pop(key)
                hinges.append((o0, o, a0, b0))
            else:
                seen[key] = (o, a, b)
    return np.asarray(hinges, np.int64).reshape(-1, 4)
