"""The co-access layout's capacity-bounded union-find: the compiled kernel (_groups.pyx) gives the
roots its Python twin gives, and coaccess_order the same order on both backends."""

import numpy as np
import pytest

from embcompress.kernels import compiled
from embcompress.store import coaccess_order, placement


def _compiled():
    mod = compiled("_groups")
    if mod is None:
        pytest.skip("compiled kernels not built")
    return mod


@pytest.mark.parametrize("seed, n, n_edges, cap", [(0, 50, 200, 2), (1, 500, 3000, 3), (2, 2000, 5000, 62),
                                                   (3, 10, 100, 1000), (4, 1, 0, 5)])
def test_the_kernel_gives_the_python_twins_roots(seed, n, n_edges, cap):
    mod = _compiled()
    rng = np.random.default_rng(seed)
    local = rng.integers(0, n, (2, n_edges)).astype(np.int64)
    local = np.concatenate([local, np.arange(n).repeat(2).reshape(n, 2).T], axis=1)  # (every node once)
    parent, size = np.arange(n, dtype=np.int64), np.ones(n, dtype=np.int64)
    mod.union_bounded(np.ascontiguousarray(local[0]), np.ascontiguousarray(local[1]), cap, parent, size)
    want = placement._union_groups_python(local, cap, n)
    assert np.array_equal(parent, want)
    assert np.bincount(parent, minlength=n).max() <= max(cap, 1)  # no group over the cap


def test_a_tie_keeps_the_first_ends_root_and_the_larger_side_wins():
    mod = _compiled()
    # 0-1 (tie: root 0), 2-3 (root 2), 3-1: sides of 2 and 2, root find(3) = 2; then 4-0: the larger side (2)
    a, b = np.array([0, 2, 3, 4], np.int64), np.array([1, 3, 1, 0], np.int64)
    parent, size = np.arange(5, dtype=np.int64), np.ones(5, dtype=np.int64)
    mod.union_bounded(a, b, 10, parent, size)
    assert parent.tolist() == [2, 2, 2, 2, 2]
    assert np.array_equal(parent, placement._union_groups_python(np.stack([a, b]), 10, 5))


def test_an_edge_outside_the_nodes_is_refused():
    mod = _compiled()
    parent, size = np.arange(3, dtype=np.int64), np.ones(3, dtype=np.int64)
    with pytest.raises(ValueError, match="outside"):
        mod.union_bounded(np.array([0, 3], np.int64), np.array([1, 0], np.int64), 4, parent, size)


def test_coaccess_order_is_the_same_on_both_backends(monkeypatch):
    import scipy.sparse as sp

    _compiled()
    rng = np.random.default_rng(5)
    n = 3000
    i, j = rng.integers(0, n, 8000), rng.integers(0, n, 8000)
    m = sp.coo_matrix((rng.integers(1, 9, 8000).astype(np.float64), (i, j)), shape=(n, n))
    freq = rng.integers(0, 50, n)
    got = coaccess_order(n, 100, cooccurrence=m, frequencies=freq)
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
    assert compiled("_groups") is None
    assert np.array_equal(coaccess_order(n, 100, cooccurrence=m, frequencies=freq), got)
