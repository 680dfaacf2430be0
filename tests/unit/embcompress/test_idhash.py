"""The one string-id hash and the Criteo hex rule: pinned values, edge cases, input kinds."""

import numpy as np
import pyarrow as pa
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import MISSING_ID, MISSING_U64, hash_strings, parse_hex32, string_ids

M64 = 2**64 - 1


def reference(value: bytes) -> int:
    """The documented rule, byte by byte: FNV-1a 64, then MurmurHash3 fmix64."""
    h = 0xCBF29CE484222325
    for b in value:
        h = ((h ^ b) * 0x100000001B3) & M64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    h ^= h >> 33
    return h


def test_golden_values():
    # Literal outputs of `reference` above; they must never change (serving depends on them).
    got = hash_strings(["a", "hello", "68fd1e64"])
    assert got.dtype == np.uint64
    assert got[0] == 9413272369427828315
    assert got[1] == 16844978562278765124
    assert int(got[2]) == reference(b"68fd1e64")


def test_matches_reference_on_varied_strings():
    rng = np.random.default_rng(0)
    values = ["", "x", "é", "日本語", "a" * 300] + ["".join(map(chr, rng.integers(32, 0x2FF, size=n))) for n in rng.integers(1, 40, 200)]
    got = hash_strings(values)
    want = [MISSING_U64 if v == "" else reference(v.encode()) for v in values]
    assert [int(x) for x in got] == [int(x) for x in want]


def test_missing_and_input_kinds_agree():
    values = ["a", None, "", "bc"]
    base = hash_strings(values)
    assert base[1] == MISSING_U64 and base[2] == MISSING_U64
    assert np.array_equal(hash_strings(np.array(values, dtype=object)), base)
    assert np.array_equal(hash_strings(pa.array(values)), base)
    assert np.array_equal(hash_strings(pa.array(values, type=pa.large_string())), base)
    assert np.array_equal(hash_strings(pa.array(values).dictionary_encode()), base)
    assert np.array_equal(hash_strings(pa.chunked_array([values[:2], values[2:]])), base)
    assert np.array_equal(hash_strings(np.array([b"a", b"", b"", b"bc"])), np.where(np.arange(4) == 1, MISSING_U64, base))
    # a sliced Arrow array reads its own window of the shared buffers
    assert np.array_equal(hash_strings(pa.array(["zz", *values]).slice(1)), base)
    ids = string_ids(values)
    assert ids.dtype == np.int64 and ids[1] == MISSING_ID and np.array_equal(ids.view(np.uint64), base)


def test_refuses_non_strings():
    with pytest.raises(ConfigError, match="Integer ids need no hashing"):
        hash_strings(np.arange(3))


def test_parse_hex32():
    got = parse_hex32(["68fd1e64", "FFFFFFFF", "0", "", None, "aBc"])
    assert got.tolist() == [0x68FD1E64, 0xFFFFFFFF, 0, MISSING_ID, MISSING_ID, 0xABC]
    for bad in ["123456789", "zz", "0x12", "-1"]:
        with pytest.raises(ConfigError, match=repr(bad)):
            parse_hex32(["1", bad])


def test_empty_input():
    assert hash_strings([]).shape == (0,)
    assert parse_hex32([]).shape == (0,)


def test_compiled_kernel_matches_numpy_twin_bit_for_bit():
    from embcompress.idhash import _buffers, _as_arrow, fnv1a_fmix_numpy
    from embcompress.kernels import compiled

    mod = compiled("_idhash")
    if mod is None:
        pytest.skip("compiled kernels not built or EMBCOMPRESS_KERNELS=numpy")
    rng = np.random.default_rng(1)
    values = ["", "a", "é" * 70] + ["".join(map(chr, rng.integers(32, 0x3FF, size=n))) for n in rng.integers(0, 60, 3000)]
    offsets, data, _ = _buffers(_as_arrow(values, "test"))
    for threads in (1, 2):
        out = np.empty(len(values), dtype=np.uint64)
        mod.fnv1a_fmix(offsets, data, out, threads)
        assert np.array_equal(out, fnv1a_fmix_numpy(offsets, data))
    empty = np.empty(0, dtype=np.uint64)
    mod.fnv1a_fmix(np.zeros(1, np.int64), np.zeros(0, np.uint8), empty, 1)


def test_without_pyarrow_the_same_ids(monkeypatch):
    values = ["a", None, "", "日本", b"bc", "68fd1e64"]
    with_arrow = hash_strings(values)
    hexes = parse_hex32(["68fd1e64", "", None, "FF"])
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # import pyarrow -> ImportError
    assert np.array_equal(hash_strings(values), with_arrow)
    assert np.array_equal(hash_strings(np.array(values, dtype=object)), with_arrow)
    assert np.array_equal(parse_hex32(["68fd1e64", "", None, "FF"]), hexes)
    with pytest.raises(ConfigError, match="'zz'"):
        parse_hex32(["zz"])
    with pytest.raises(ConfigError, match="Integer ids need no hashing"):
        hash_strings(np.arange(3))


@pytest.mark.parametrize("values", [[1, "a"], ["a", float("nan")], np.array(["a", 2.5], dtype=object)])
def test_without_pyarrow_non_strings_are_refused_as_with_it(monkeypatch, values):
    # Without pyarrow, a non-string element was hashed as its str() (1 as "1", a pandas-style NaN
    # as "nan"), where pyarrow refuses it: the same input gave ids or an error by installation.
    with pytest.raises(ConfigError, match="must hold strings, bytes or None"):
        hash_strings(values)
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # import pyarrow -> ImportError
    with pytest.raises(ConfigError, match="must hold strings, bytes or None"):
        hash_strings(values)
    with pytest.raises(ConfigError, match="must hold strings, bytes or None"):
        parse_hex32(values)


@pytest.mark.parametrize("fn,name", [(parse_hex32, "parse_hex32"), (string_ids, "string_ids"),
                                     (hash_strings, "hash_strings")])
@pytest.mark.parametrize("value", ["68fd1e64", b"68fd1e64", np.array("68fd1e64")])
def test_a_single_value_is_refused_naming_the_function_and_the_fix(fn, name, value):
    # a str was called "an array of <U8", bytes gave pyarrow's raw ArrowInvalid, and string_ids
    # named hash_strings
    with pytest.raises(ConfigError, match=rf"'values' parameter of {name} must be a list or array.*\[b?.68fd1e64.\]"):
        fn(value)
    assert fn(["68fd1e64"]).shape == (1,)
