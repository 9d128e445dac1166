"""The pieces of ``bench/peer_gns.py`` the peer comparison stands on: the scipy cKDTree
``radius_graph`` swapped in for torch_cluster's must return exactly the pairs closer than r
(within each graph of a batch, in the source -> target layout the peer reads), and our
particle-type codes must map into the peer's 9 codes without merging two materials."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("scipy")

_spec = importlib.util.spec_from_file_location("peer_gns", Path(__file__).resolve().parents[1] / "bench" / "peer_gns.py")
peer_gns = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(peer_gns)


def _brute(x, r, batch, loop):
    d = np.linalg.norm(x[:, None] - x[None], axis=-1)
    ok = (d < r) & (batch[:, None] == batch[None])
    if not loop:
        np.fill_diagonal(ok, False)
    return {(int(j), int(i)) for i, j in zip(*np.nonzero(ok))}  # (source j, target i)


@pytest.mark.parametrize("loop", [False, True])
def test_radius_graph_matches_brute_force_within_each_graph(loop):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 0.2, (300, 3))
    batch = np.repeat([0, 1, 2], 100)  # three graphs on top of each other: no edge may cross them
    r = 0.04
    e = peer_gns.ckdtree_radius_graph(torch.as_tensor(x, dtype=torch.float32), r,
                                      torch.as_tensor(batch), loop=loop, max_num_neighbors=1000)
    got = {(int(a), int(b)) for a, b in e.T.tolist()}
    assert got == _brute(x.astype(np.float32).astype(np.float64), r, batch, loop)
    assert e.dtype == torch.int64 and e.shape[0] == 2


def test_radius_graph_strict_radius_and_flow():
    # two points exactly r apart are not neighbours (torch_cluster keeps d < r); a third at 0.5 r is
    x = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [0.5, 0, 0]])
    e = peer_gns.ckdtree_radius_graph(x, 1.0, None)
    assert {tuple(p) for p in e.T.tolist()} == {(0, 2), (2, 0), (1, 2), (2, 1)}
    # row 0 is the neighbour (source), row 1 the centre (target), as torch_cluster's default flow;
    # flow="target_to_source" trades the two rows
    x = torch.tensor([[0.0, 0, 0], [0.3, 0, 0]])
    a = peer_gns.ckdtree_radius_graph(x, 1.0, None, max_num_neighbors=1)
    b = peer_gns.ckdtree_radius_graph(x, 1.0, None, flow="target_to_source", max_num_neighbors=1)
    assert torch.equal(a, b.flip(0))


def test_radius_graph_cap_keeps_the_nearest():
    # a centre with 5 neighbours at growing distances; a cap of 2 keeps the 2 nearest
    x = torch.tensor([[0.0, 0, 0]] + [[0.1 * k, 0, 0] for k in range(1, 6)])
    e = peer_gns.ckdtree_radius_graph(x, 1.0, None, max_num_neighbors=2)
    into_0 = sorted(int(s) for s, t in e.T.tolist() if t == 0)
    assert into_0 == [1, 2]
    counts = np.bincount(e[1].numpy(), minlength=6)
    assert counts.max() <= 2


def test_peer_types_keep_kinematic_and_stay_distinct():
    from particles import KINEMATIC, MATERIAL_TYPE

    ours = np.array([KINEMATIC, MATERIAL_TYPE["rigid"], MATERIAL_TYPE["granular"], MATERIAL_TYPE["elastic"],
                     MATERIAL_TYPE["cloth"], MATERIAL_TYPE["rope"]])
    out = peer_gns.peer_types(ours)
    assert out[0] == peer_gns.PEER_KINEMATIC == 3  # the peer's kinematic code
    assert out.max() < peer_gns.PEER_NUM_TYPES
    assert len(set(out.tolist())) == len(set(ours.tolist()))  # no two materials merged
    assert out[1] == MATERIAL_TYPE["rigid"] and out[2] == MATERIAL_TYPE["granular"]  # codes below 9 unchanged
