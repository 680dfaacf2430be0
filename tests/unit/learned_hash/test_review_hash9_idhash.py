"""Review of embcompress.idhash (round 9): string ids in a batch's shape, the same with and
without pyarrow."""

import sys

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import hash_strings, parse_hex32, string_ids
from embcompress.idmap import IdMap


@pytest.fixture(params=["pyarrow", "numpy only"])
def arrow(request, monkeypatch):
    if request.param == "numpy only":
        monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow -> ImportError
    return request.param


@pytest.mark.parametrize("fn", [string_ids, hash_strings, parse_hex32])
@pytest.mark.parametrize("dtype", ["U", "S", object])
def test_a_2d_batch_of_string_ids_keeps_its_shape(arrow, fn, dtype):
    # With pyarrow a (bags x ids) array was refused as if it held no strings ("must hold strings,
    # bytes or None. Got an array of <U2"); without it, it was hashed flat and lost its shape.
    flat = ["10", "ab", "", "ff", "0", "7e"]
    batch = np.array(flat, dtype=dtype).reshape(2, 3)
    out = fn(batch)
    assert out.shape == (2, 3)
    assert np.array_equal(out.reshape(-1), fn(np.array(flat, dtype=dtype)))
    assert np.array_equal(fn(batch.T), out.T)  # a transposed (non-contiguous) view too


def test_a_batch_of_string_ids_serves_through_a_map_in_its_shape(arrow):
    batch = np.array([["u1", "u2"], ["u3", "u1"]], dtype=object)
    ids = string_ids(batch)
    m = IdMap.from_arrays(string_ids(["u1", "u3"]), [0, 1], 8)
    rows = m.lookup(ids)
    assert rows.shape == (2, 2) and rows[0, 0] == rows[1, 1] == 0 and rows[1, 0] == 1


def test_a_bad_value_in_a_2d_batch_is_named_by_its_place(arrow):
    with pytest.raises(ConfigError, match=r"'zz' at position \(1, 0\)"):
        parse_hex32(np.array([["10", "20"], ["zz", "30"]]))


@pytest.mark.parametrize("fn", [string_ids, parse_hex32])
def test_nested_lists_are_refused_alike_with_and_without_pyarrow(arrow, fn):
    # without pyarrow a list of lists was hashed flat; with it, refused as "an array of list"
    with pytest.raises(ConfigError, match="element of type list.*np.array"):
        fn([["a", "b"], ["c", "d"]])
