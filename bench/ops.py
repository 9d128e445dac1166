"""Benchmark of the learned dynamics' Warp graph ops on CPU, against torch, in one run.

For edge counts typical of a training batch (2k), a 1k-particle scene (20k) and a
10k-particle scene (200k), with 64-wide float32 rows (the GNN's latent), prints the time of
``dynamics.ops.gather`` and ``scatter_add`` (concrete vec16 overloads), of the same generic
per-float row kernels launched as the ops launched them before (type resolved per launch),
and of torch's ``index_select`` and ``index_add_``.

    PYTHONPATH=$PWD python3 bench/ops.py [--repeats 20]

Prints one table; never collected as a test.
"""

from __future__ import annotations

import argparse
import time

import torch
import warp as wp

from dynamics import _kernels
from dynamics.ops import _warp_ready, gather, scatter_add

SIZES = ((2_160, 150), (20_000, 1_000), (200_000, 10_000))
FEATURES = 64


def _timed(fn, repeats: int) -> float:
    fn()
    t = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t) / repeats


def _generic(kernel, src, index, out):
    wp.launch(kernel, dim=index.shape[0], inputs=[wp.from_torch(src), wp.from_torch(index)],
              outputs=[wp.from_torch(out)], device="cpu")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args(argv)
    wp.config.log_level = wp.LOG_WARNING
    torch.set_num_threads(1)
    _warp_ready()
    g = torch.Generator().manual_seed(0)
    print(f"CPU, 1 torch thread, rows of {FEATURES} float32; milliseconds per call")
    print(f"| {'edges':>8} | {'nodes':>6} | {'op':>7} | {'warp ops':>9} | {'generic kernel':>14} | {'torch':>8} | {'torch / warp':>12} |")
    print(f"|{'-' * 10}|{'-' * 8}|{'-' * 9}|{'-' * 11}|{'-' * 16}|{'-' * 10}|{'-' * 14}|")
    for e, n in SIZES:
        nodes = torch.randn(n, FEATURES, generator=g)
        msgs = torch.randn(e, FEATURES, generator=g)
        index = torch.randint(0, n, (e,), generator=g).sort().values
        rows_out, nodes_out = torch.empty(e, FEATURES), torch.zeros(n, FEATURES)
        assert torch.equal(gather(nodes, index), nodes.index_select(0, index))
        assert torch.allclose(scatter_add(msgs, index, n), torch.zeros(n, FEATURES).index_add_(0, index, msgs), atol=1e-4)
        cases = {
            "gather": (lambda: gather(nodes, index), lambda: _generic(_kernels.gather_rows, nodes, index, rows_out),
                       lambda: nodes.index_select(0, index)),
            "scatter": (lambda: scatter_add(msgs, index, n),
                        lambda: (nodes_out.zero_(), _generic(_kernels.scatter_add_rows, msgs, index, nodes_out)),
                        lambda: torch.zeros(n, FEATURES).index_add_(0, index, msgs)),
        }
        for op, (ours, generic, ref) in cases.items():
            a, b, c = (_timed(f, args.repeats) * 1e3 for f in (ours, generic, ref))
            print(f"| {e:>8} | {n:>6} | {op:>7} | {a:>9.3f} | {b:>14.3f} | {c:>8.3f} | {c / a:>12.2f} |")


if __name__ == "__main__":
    main()
