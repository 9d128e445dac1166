"""Warp kernels of the learned dynamics: scatter-add and gather of feature rows.

No I/O, no configuration: each kernel does one thing, inputs first, outputs last.
The kernels are generic over the element type. Each comes in two launch shapes
with the same result: one thread per row (``*_rows``, for the CPU, where Warp
runs threads serially; :mod:`dynamics.ops` launches concrete overloads whose
elements are vectors of 16 or 4 floats, so a row is a few vector copies or adds)
and one thread per element (``*_elements``, coalesced on CUDA). Launchers that wrap them as autograd
functions live in :mod:`dynamics.ops`.
"""

from __future__ import annotations

from typing import Any

import warp as wp

__all__ = ["scatter_add_rows", "scatter_add_elements", "gather_rows", "gather_elements"]


@wp.kernel
def scatter_add_rows(src: wp.array2d(dtype=Any), index: wp.array(dtype=wp.int64), out: wp.array2d(dtype=Any)):
    """``out[index[e], :] += src[e, :]``, one thread per row ``e``.

    src: (E, F) float. index: (E,) int64 in [0, N). out: (N, F) float, accumulated into (zero it first).
    """
    e = wp.tid()
    r = int(index[e])
    for f in range(src.shape[1]):
        wp.atomic_add(out, r, f, src[e, f])


@wp.kernel
def scatter_add_elements(src: wp.array2d(dtype=Any), index: wp.array(dtype=wp.int64), out: wp.array2d(dtype=Any)):
    """``out[index[e], f] += src[e, f]``, one thread per element ``(e, f)``. Shapes as :func:`scatter_add_rows`."""
    e, f = wp.tid()
    wp.atomic_add(out, int(index[e]), f, src[e, f])


@wp.kernel
def gather_rows(src: wp.array2d(dtype=Any), index: wp.array(dtype=wp.int64), out: wp.array2d(dtype=Any)):
    """``out[e, :] = src[index[e], :]``, one thread per row ``e``.

    src: (N, F) float. index: (E,) int64 in [0, N). out: (E, F) float.
    """
    e = wp.tid()
    r = int(index[e])
    for f in range(src.shape[1]):
        out[e, f] = src[r, f]


@wp.kernel
def gather_elements(src: wp.array2d(dtype=Any), index: wp.array(dtype=wp.int64), out: wp.array2d(dtype=Any)):
    """``out[e, f] = src[index[e], f]``, one thread per element. Shapes as :func:`gather_rows`."""
    e, f = wp.tid()
    out[e, f] = src[int(index[e]), f]
