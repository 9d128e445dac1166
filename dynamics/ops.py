"""Differentiable graph operations on Warp kernels, for PyTorch tensors.

``scatter_add(src, index, n)`` sums edge rows into node rows (the message
aggregation of a graph network); ``gather(src, index)`` reads node rows per edge.
Each is the other's adjoint, so each one's backward pass is the other op, and
both support double backward. Tensors are shared with Warp without copies
(``wp.from_torch`` / ``wp.to_torch``) on CPU and CUDA, in float32 or float64;
on CUDA the kernels run on PyTorch's current stream.
"""

from __future__ import annotations

import torch
import warp as wp

from . import _kernels

__all__ = ["scatter_add", "gather"]

_FLOATS = (torch.float32, torch.float64)
_initialised = False


def _warp_ready() -> None:
    global _initialised
    if not _initialised:
        wp.init()
        _initialised = True


def _check(src: torch.Tensor, index: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    if src.dim() != 2:
        raise ValueError(f"{name}: src must be 2-D (rows, features), got shape {tuple(src.shape)}")
    if src.dtype not in _FLOATS:
        raise TypeError(f"{name}: src must be float32 or float64, got {src.dtype}")
    if index.dim() != 1:
        raise ValueError(f"{name}: index must be 1-D, got shape {tuple(index.shape)}")
    if index.device != src.device:
        raise ValueError(f"{name}: index is on {index.device}, src on {src.device}")
    return src.detach().contiguous(), index.detach().to(torch.int64).contiguous()


#: Row chunk widths of the CPU kernels: rows of F features run as F / w vectors of w floats,
#: with w the first of these dividing F (a 64-wide latent row is 4 vec16 copies or adds,
#: which the compiler vectorises; a per-float loop is 4-6x slower on CPU).
_CPU_WIDTHS = (16, 4, 1)
_cpu_kernels: dict = {}


def _cpu_kernel(kind: str, scalar, width: int):
    """``(kernel, element type)``: the concrete overload of a row kernel for ``width``-float chunks
    of ``scalar``, made once (resolving a generic ``Any`` kernel at every launch costs more than
    the launch itself on CPU)."""
    key = (kind, scalar, width)
    if key not in _cpu_kernels:
        generic = _kernels.scatter_add_rows if kind == "scatter" else _kernels.gather_rows
        item = scalar if width == 1 else wp.types.vector(length=width, dtype=scalar)
        kernel = wp.overload(generic, {"src": wp.array2d(dtype=item), "out": wp.array2d(dtype=item)})
        _cpu_kernels[key] = (kernel, item)
    return _cpu_kernels[key]


def _launch(kind: str, src: torch.Tensor, index: torch.Tensor, out: torch.Tensor, rows: int) -> None:
    """Launch ``kind`` ('scatter' or 'gather') over ``rows`` index entries (tensors contiguous)."""
    if rows == 0 or src.shape[1] == 0:
        return
    _warp_ready()
    device = wp.device_from_torch(src.device)
    if device.is_cuda:
        kernel = _kernels.scatter_add_elements if kind == "scatter" else _kernels.gather_elements
        wp.launch(kernel, dim=(rows, src.shape[1]), inputs=[wp.from_torch(src), wp.from_torch(index)],
                  outputs=[wp.from_torch(out)], device=device, stream=wp.stream_from_torch(src.device))
        return
    features = src.shape[1]
    width = next(w for w in _CPU_WIDTHS if features % w == 0)
    kernel, item = _cpu_kernel(kind, wp.float32 if src.dtype == torch.float32 else wp.float64, width)

    def view(t: torch.Tensor):
        t = t.view(t.shape[0], features // width, width) if width > 1 else t
        return wp.from_torch(t, dtype=item, return_ctype=True)

    wp.launch(kernel, dim=rows, inputs=[view(src), wp.from_torch(index, return_ctype=True)], outputs=[view(out)],
              device=device)


class _ScatterAdd(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, index, num_rows):
        src, index = _check(src, index, "scatter_add")
        if index.shape[0] != src.shape[0]:
            raise ValueError(f"scatter_add: index has {index.shape[0]} entries, src {src.shape[0]} rows")
        out = torch.zeros((num_rows, src.shape[1]), dtype=src.dtype, device=src.device)
        _launch("scatter", src, index, out, index.shape[0])
        ctx.save_for_backward(index)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (index,) = ctx.saved_tensors
        grad_src = gather(grad_out, index) if ctx.needs_input_grad[0] else None
        return grad_src, None, None


class _Gather(torch.autograd.Function):
    @staticmethod
    def forward(ctx, src, index):
        src, index = _check(src, index, "gather")
        out = torch.empty((index.shape[0], src.shape[1]), dtype=src.dtype, device=src.device)
        _launch("gather", src, index, out, index.shape[0])
        ctx.save_for_backward(index)
        ctx.num_rows = src.shape[0]
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (index,) = ctx.saved_tensors
        grad_src = scatter_add(grad_out, index, ctx.num_rows) if ctx.needs_input_grad[0] else None
        return grad_src, None


def scatter_add(src: torch.Tensor, index: torch.Tensor, num_rows: int) -> torch.Tensor:
    """Sum rows of ``src`` into ``num_rows`` output rows: ``out[index[e]] += src[e]``.

    Args:
        src: (E, F) float32 or float64, e.g. edge messages.
        index: (E,) integer, row of the output each source row adds into (e.g. the edge's
            receiver), in ``[0, num_rows)`` (not checked on the hot path).
        num_rows: N, rows of the output; rows no index names stay zero.

    Returns:
        (N, F) same dtype and device as ``src``. Equal to
        ``src.new_zeros(N, F).index_add_(0, index, src)``; differentiable in ``src``.
    """
    return _ScatterAdd.apply(src, index, int(num_rows))


def gather(src: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of ``src`` picked by ``index``: ``out[e] = src[index[e]]``.

    Args:
        src: (N, F) float32 or float64, e.g. node latents.
        index: (E,) integer in ``[0, N)``, e.g. the edges' senders.

    Returns:
        (E, F) same dtype and device as ``src``; equal to ``src[index]``; differentiable in ``src``.
    """
    return _Gather.apply(src, index)
