"""The batch dedup of the tiered store: unique ids in first-seen order, inverse and counts."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embcompress.kernels.unique import unique_ids


def _expected(ids):
    u, first, inv, cnt = np.unique(ids, return_index=True, return_inverse=True, return_counts=True)
    order = np.argsort(first)
    rank = np.empty(len(u), np.int64)
    rank[order] = np.arange(len(u))
    return u[order], rank[inv.reshape(-1)], cnt[order]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])  # the env var holds
@given(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(0, 40), max_size=300))
def test_first_seen_order_inverse_and_counts(backend, values):
    ids = np.array(values, dtype=np.int64)
    uniq, inverse, counts = unique_ids(ids)
    want = _expected(ids) if len(ids) else (ids, ids, ids)
    for got, exp in zip((uniq, inverse, counts), want):
        assert got.dtype == np.int64 and np.array_equal(got, exp)
    assert np.array_equal(uniq[inverse], ids)


@pytest.mark.parametrize("n, high", [(1, 1), (4096, 50), (4096, 2**40), (200_000, 2_000_000)])
def test_large_batches(backend, n, high):
    ids = np.random.default_rng(n).integers(0, high, n)
    uniq, inverse, counts = unique_ids(ids)
    want = _expected(ids)
    assert all(np.array_equal(a, b) for a, b in zip((uniq, inverse, counts), want))
