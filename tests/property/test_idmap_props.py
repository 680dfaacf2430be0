import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embcompress.idmap import IdMap
from embcompress.kernels import compiled

int64s = st.integers(-(2**63), 2**63 - 1)


@st.composite
def maps(draw):
    n_rows = draw(st.integers(1, 600))
    # dense (direct layout) or scattered (hash layout) ids
    if draw(st.booleans()):
        start = draw(st.integers(-(2**40), 2**40))
        ids = np.array(sorted(draw(st.sets(st.integers(start, start + 300), max_size=200))), dtype=np.int64)
    else:
        ids = np.array(sorted(draw(st.sets(int64s, max_size=200))), dtype=np.int64)
    rows = np.array(draw(st.lists(st.integers(0, n_rows - 1), min_size=ids.size, max_size=ids.size)), dtype=np.int64)
    fallback = None
    if draw(st.booleans()):
        fallback = np.array(draw(st.permutations(range(n_rows)))[: draw(st.integers(1, n_rows))])
    seed = draw(st.integers(0, 2**64 - 1))
    return IdMap.from_arrays(ids, rows, n_rows, fallback_rows=fallback, seed=seed), ids, rows, fallback


@settings(max_examples=60, deadline=None)
@given(maps(), st.lists(int64s, max_size=100))
def test_lookup_in_range_deterministic_and_round_trips(m_ids, queries):
    m, ids, rows, fallback = m_ids
    q = np.concatenate([ids, np.array(queries, dtype=np.int64)])
    got = m.lookup(q)
    assert got.dtype == np.int64
    assert ((got >= 0) & (got < m.n_rows)).all()
    np.testing.assert_array_equal(got, m.lookup(q))
    np.testing.assert_array_equal(got[: ids.size], rows)
    # unmapped queries only ever land in the fallback rows
    unmapped = ~np.isin(q, ids)
    assert np.isin(got[unmapped], m.fallback_rows).all()
    if fallback is not None:
        np.testing.assert_array_equal(np.sort(m.fallback_rows), np.sort(fallback))
    # from_arrays round trip through the attributes
    again = IdMap.from_arrays(m.ids, m.rows, m.n_rows, fallback_rows=m.fallback_rows, seed=m.seed)
    np.testing.assert_array_equal(again.lookup(q), got)
    np.testing.assert_array_equal(m.ids, ids)


@settings(max_examples=25, deadline=None)
@given(maps(), st.lists(int64s, max_size=50))
def test_save_load_identity(tmp_path_factory, m_ids, queries):
    m, ids, rows, _ = m_ids
    path = m.save(tmp_path_factory.mktemp("idmap") / "m.idmap")
    back = IdMap.load(path, verify="full")
    q = np.concatenate([ids, np.array(queries, dtype=np.int64)])
    np.testing.assert_array_equal(back.lookup(q), m.lookup(q))
    assert (back.n_rows, back.seed, back.layout, back.nbytes) == (m.n_rows, m.seed, m.layout, m.nbytes)
    np.testing.assert_array_equal(back.ids, m.ids)
    np.testing.assert_array_equal(back.rows, m.rows)
    np.testing.assert_array_equal(back.fallback_rows, m.fallback_rows)


@pytest.mark.skipif(compiled("_idmap") is None, reason="compiled kernels not built (or EMBCOMPRESS_KERNELS=numpy)")
@settings(max_examples=40, deadline=None)
@given(maps(), st.lists(int64s, max_size=100))
def test_compiled_kernel_matches_numpy_twin(m_ids, queries):
    m, ids, _, _ = m_ids
    q = np.concatenate([ids, np.array(queries, dtype=np.int64)])
    got_c = m.lookup(q, n_threads=2)
    before = os.environ.get("EMBCOMPRESS_KERNELS")
    os.environ["EMBCOMPRESS_KERNELS"] = "numpy"
    try:
        got_n = m.lookup(q)
    finally:
        if before is None:
            del os.environ["EMBCOMPRESS_KERNELS"]
        else:
            os.environ["EMBCOMPRESS_KERNELS"] = before
    np.testing.assert_array_equal(got_c, got_n)
