"""Hypothesis properties of the pooled lookup, on random record bytes of every format:

- the compiled kernel and the NumPy reference give the same bits (NaN where NaN);
- reordering bags reorders the output rows exactly (bags are independent);
- a bag is the same whether pooled alone or among others, and whatever the thread count;
- sum pooling of one-row bags is the decoded row (decode_records) exactly.
"""


import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embcompress.formats import FORMATS, decode_records
from embcompress.kernels import compiled
from embcompress.table import QuantizedTable
from tests.conftest import pooled_lookup_on as run

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same(a, b):
    nan = np.isnan(a)
    return np.array_equal(nan, np.isnan(b)) and np.array_equal(a.view(np.uint32)[~nan], b.view(np.uint32)[~nan])


@st.composite
def cases(draw):
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    spec = FORMATS[fmt]
    dim = draw(st.sampled_from([1, 7, 16, 33, 64, 96, 128]))
    n_rows = draw(st.integers(1, 12))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, (n_rows, spec.row_bytes(dim)), dtype=np.uint8)
    if spec.family == "rowwise":  # finite scale and bias: keeps sums comparable
        meta = rng.standard_normal((n_rows, 2)).astype(np.float32 if spec.elem_bits == 8 else np.float16)
        data[:, : spec.row_meta_bytes] = meta.view(np.uint8)
    q = QuantizedTable(data, fmt, (n_rows, dim), block_size=spec.block_size)
    lens = draw(st.lists(st.integers(0, 6), min_size=1, max_size=12))
    indices = rng.integers(0, n_rows, sum(lens)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    mode = draw(st.sampled_from(["sum", "mean", "max"]))
    weights = rng.standard_normal(len(indices)).astype(np.float32) if mode == "sum" and draw(st.booleans()) else None
    return q, indices, offsets, mode, weights, rng


@SETTINGS
@given(case=cases())
def test_compiled_equals_reference(case):
    if compiled("_lookup") is None:
        pytest.skip("compiled kernel not built")
    q, indices, offsets, mode, weights, _ = case
    a = run("numpy", q, indices, offsets, mode=mode, per_sample_weights=weights)
    b = run("cython", q, indices, offsets, mode=mode, per_sample_weights=weights, n_threads=2)
    assert same(a, b)


@SETTINGS
@given(case=cases(), backend=st.sampled_from(["numpy", "auto"]))
def test_bags_are_independent(case, backend):
    q, indices, offsets, mode, weights, rng = case
    full = run(backend, q, indices, offsets, mode=mode, per_sample_weights=weights)
    ends = np.append(offsets[1:], len(indices))
    perm = rng.permutation(len(offsets))
    # the same bags in another order, laid out afresh
    idx2 = np.concatenate([indices[offsets[b] : ends[b]] for b in perm]).astype(np.int64)
    w2 = None if weights is None else np.concatenate([weights[offsets[b] : ends[b]] for b in perm]).astype(np.float32)
    lens = (ends - offsets)[perm]
    off2 = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    assert same(run(backend, q, idx2, off2, mode=mode, per_sample_weights=w2, n_threads=1), full[perm])
    b = int(perm[0])
    alone = run(backend, q, indices[offsets[b] : ends[b]], np.array([0]), mode=mode,
                per_sample_weights=None if weights is None else weights[offsets[b] : ends[b]])
    assert same(alone[0], full[b])


@SETTINGS
@given(case=cases())
def test_single_row_bags_are_decoded_rows(case):
    q, indices, _, _, _, _ = case
    rows = run("auto", q, indices, np.arange(len(indices)), mode="sum")
    with np.errstate(invalid="ignore"):  # NaN rows stay NaN
        expect = decode_records(q.data[indices], q.fmt, q.shape[1], q.block_size) + np.float32(0.0)  # -0 sums to +0
    assert same(rows, expect)
