"""Review of the kernel's ndarray entry points (46a6657), the cached plans, and the formats and
container edge cases around them. Lookups run on both backends and must agree bit for bit."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.kernels import compiled
from tests.conftest import pooled_lookup_on as run
from tests.conftest import quantize_default as quantize


def backends():
    return ["numpy"] + (["cython"] if compiled("_lookup") is not None else [])


def unaligned(a):
    """A copy of ``a`` at an odd address: C-contiguous, native, writable, not aligned."""
    buf = np.zeros(a.nbytes + 1, dtype=np.uint8)
    v = buf[1:].view(a.dtype).reshape(a.shape)
    v[...] = a
    assert not v.flags.aligned and v.flags.c_contiguous
    return v


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("which", ["indices", "offsets", "weights", "indices_2d"])
def test_unaligned_inputs_give_the_aligned_result(backend, which):
    # Arrays read from a buffer at an odd offset (np.frombuffer of a log record, a packed struct)
    # are C-contiguous and native but not aligned. The NumPy backend took them; the compiled
    # kernel's entry points raised "_lookup: idx must be a C-contiguous native int64 array".
    rng = np.random.default_rng(1)
    t = quantize(rng.standard_normal((20, 16)).astype(np.float32), "mxfp8_e4m3")
    idx = np.array([1, 5, 7, 19, 0, 3], dtype=np.int64)
    off = np.array([0, 2, 2, 5], dtype=np.int64)
    w = rng.standard_normal(6).astype(np.float32)
    want = run("numpy", t, idx, off, per_sample_weights=w)
    if which == "indices":
        got = run(backend, t, unaligned(idx), off, per_sample_weights=w)
    elif which == "offsets":
        got = run(backend, t, idx, unaligned(off), per_sample_weights=w)
    elif which == "weights":
        got = run(backend, t, idx, off, per_sample_weights=unaligned(w))
    else:
        idx2 = idx.reshape(3, 2)
        want = run("numpy", t, idx2)
        got = run(backend, t, unaligned(idx2))
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))


@pytest.mark.parametrize("backend", backends())
def test_unaligned_out_is_refused_with_the_fix(backend):
    t = quantize(np.ones((4, 8), dtype=np.float32), "fp32")
    out = unaligned(np.zeros((1, 8), dtype=np.float32))
    with pytest.raises(ConfigError, match="'out'.*aligned"):
        run(backend, t, np.array([1, 2]), np.array([0]), out=out)


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("mode", [["sum"], {"sum": 1}])
def test_an_unhashable_mode_is_named(backend, mode):
    # was the raw "TypeError: unhashable type: 'list'" of the lookup in MODES
    t = quantize(np.ones((4, 8), dtype=np.float32), "fp32")
    with pytest.raises(ConfigError, match="'mode'.*'sum', 'mean' or 'max'"):
        run(backend, t, np.array([1, 2]), np.array([0]), mode=mode)


@pytest.mark.parametrize("backend", backends())
def test_an_empty_list_of_indices_is_no_index(backend):
    # np.asarray([]) is float64: indices=[] (one empty bag, or none) was refused as "must hold
    # integers ... Got 'dtype float64'"; QuantizedTable.take takes an empty list the same way
    t = quantize(np.ones((4, 8), dtype=np.float32), "fp32")
    assert np.array_equal(run(backend, t, [], [0]), np.zeros((1, 8), np.float32))
    assert np.array_equal(run(backend, t, [], [0, 0], include_last_offset=True), np.zeros((1, 8), np.float32))
    with pytest.raises(ConfigError, match="integers"):  # an empty float array is still refused
        run(backend, t, np.array([], np.float32), [0])


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("what", ["indices", "offsets"])
def test_ragged_lists_are_named(backend, what):
    # was numpy's raw "ValueError: setting an array element with a sequence. The requested array
    # has an inhomogeneous shape ..."
    t = quantize(np.ones((4, 8), dtype=np.float32), "fp32")
    ragged = [[0, 1], [2]]
    with pytest.raises(ConfigError, match=f"'{what}'.*rectangular"):
        if what == "indices":
            run(backend, t, ragged)
        else:
            run(backend, t, [0, 1, 2], ragged)


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("shape", [(), (1, 1, 1)])
def test_indices_neither_1d_nor_2d_are_named_as_such(backend, shape):
    # with offsets=None a 3-D (or 0-d) indices array was told "'offsets' must be given when
    # 'indices' is 1-D", which it is not
    t = quantize(np.ones((4, 8), dtype=np.float32), "fp32")
    with pytest.raises(ConfigError, match="'indices'.*1-D.*or 2-D.*shape"):
        run(backend, t, np.zeros(shape, np.int64))


@pytest.mark.parametrize("backend", ["numpy", "cython"])
def test_quantize_names_a_ragged_table(backend, monkeypatch):
    # was numpy's raw "ValueError: setting an array element with a sequence ... inhomogeneous shape"
    import embcompress

    monkeypatch.setenv("EMBCOMPRESS_KERNELS", backend)
    if backend == "cython" and compiled("_lookup") is None:
        pytest.skip("compiled kernels not built")
    with pytest.raises(ConfigError, match="'x'.*rows of equal length"):
        embcompress.quantize([[1.0, 2.0], [3.0]], "mx6")


def test_take_names_ragged_rows():
    # was numpy's raw "ValueError: setting an array element with a sequence ..."
    t = quantize(np.ones((4, 8), dtype=np.float32), "mx6")
    with pytest.raises(ConfigError, match="'rows'.*1-D"):
        t.take([[0], [1, 2]])


@pytest.mark.parametrize("where", ["config", "inputs", "meta"])
def test_artifact_metadata_that_is_not_a_mapping_is_named(tmp_path, where):
    # QuantizedTable.save(path, inputs=["a.npy"]) raised the raw "TypeError: cannot convert
    # dictionary update sequence element #0 to a sequence" of dict(inputs), or with pairs made a
    # dict of them without a word
    from embcompress.container import write_artifact

    for bad in (["a.npy"], [("a", "b")], "a.npy"):
        with pytest.raises(ConfigError, match=f"'{where}'.*mapping"):
            write_artifact(tmp_path / "a", "x", {"s": np.zeros(3)}, **{where: bad})
    assert not (tmp_path / "a").exists()
    t = quantize(np.ones((4, 8), dtype=np.float32), "fp32")
    if where == "inputs":
        with pytest.raises(ConfigError, match="'inputs'.*mapping"):
            t.save(tmp_path / "t", inputs=["a.npy"])


def test_decode_records_names_ragged_records():
    # was numpy's raw "ValueError: setting an array element with a sequence ..."
    from embcompress.formats import decode_records

    with pytest.raises(ConfigError, match="'records'.*uint8 array"):
        decode_records([[0, 0, 0, 0], [0]], "fp32", 1)


@pytest.mark.parametrize("backend", backends())
def test_longlong_indices_and_offsets(backend):
    # np.longlong is 8 bytes and compares equal to np.int64 on Linux, but it is NumPy's other type
    # number (NPY_LONGLONG, not NPY_LONG): _as_int64's fast path passed such arrays (from
    # np.frombuffer(..., dtype="q"), or dtype=np.longlong) as they were, and the compiled entry
    # points refused them with "_lookup: idx must be a C-contiguous native int64 array"
    t = quantize(np.arange(80, dtype=np.float32).reshape(10, 8), "mx6")
    idx = np.array([1, 2, 3, 9], dtype=np.int64)
    off = np.array([0, 1, 1], dtype=np.int64)
    want = run("numpy", t, idx, off)
    for kw in ({"indices": idx.astype(np.longlong), "offsets": off},
               {"indices": idx, "offsets": off.astype(np.longlong)},
               {"indices": np.frombuffer(idx.tobytes(), dtype="q"), "offsets": np.frombuffer(off.tobytes(), dtype="q")}):
        assert np.array_equal(run(backend, t, **kw).view(np.uint32), want.view(np.uint32))
    want2 = run("numpy", t, idx.reshape(2, 2))
    assert np.array_equal(run(backend, t, idx.reshape(2, 2).astype(np.longlong)).view(np.uint32), want2.view(np.uint32))


def _fail_open_tmp(monkeypatch, err):
    import builtins

    from embcompress import container

    def fake_open(path, *a, **k):
        if ".tmp-" in str(path):
            raise err(13, "Permission denied", str(path))
        return builtins.open(path, *a, **k)

    monkeypatch.setattr(container, "open", fake_open, raising=False)


def test_a_write_refused_by_the_folder_names_the_users_path(tmp_path, monkeypatch):
    # A folder the user cannot write (or a read-only file system) gave PermissionError naming the
    # hidden temporary file ('/data/.t.embc.tmp-27089-041e5b79'), which the user never asked for
    # and the CLI printed as the path at fault
    t = quantize(np.ones((2, 8), dtype=np.float32), "fp32")
    _fail_open_tmp(monkeypatch, PermissionError)
    with pytest.raises(PermissionError) as info:
        t.save(tmp_path / "t.embc")
    assert info.value.filename == str(tmp_path / "t.embc")
    assert ".tmp-" not in str(info.value) and "temporary file" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_path_and_leaves_the_old_file(tmp_path, monkeypatch):
    # ENOSPC from the write or fsync carried no file name at all ("[Errno 28] No space left on device")
    import errno

    from embcompress import container

    t = quantize(np.ones((2, 8), dtype=np.float32), "fp32")
    path = tmp_path / "t.embc"
    t.save(path)
    before = path.read_bytes()

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(container.os, "fsync", full)
    with pytest.raises(OSError) as info:
        quantize(np.zeros((2, 8), dtype=np.float32), "fp32").save(path)
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(path)
    assert str(path) in str(info.value)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["t.embc"]


@pytest.mark.parametrize("backend", backends())
@pytest.mark.parametrize("fmt,block", [("mx6", 0), ("mxfp8_e4m3", 0), ("mxint8", 32.0), ("mx9", "16"), ("mxfp4_e2m1", False)])
def test_a_table_object_with_an_invalid_block_size_is_refused_on_both_backends(backend, fmt, block):
    # pooled_lookup takes any object with .fmt, .shape, .block_size and .data. A block_size of 0
    # (or False) fell back to the format's default for the record size, so the records matched,
    # and then the compiled kernel decoded with blocks of 0 (mx6: every value 0.0, silently),
    # where the NumPy backend refused it naming decode_records; 32.0 ran on one backend only, and
    # "16" raised the raw "unsupported operand type(s) for //: 'int' and 'str'"
    import types

    q = quantize(np.random.default_rng(0).standard_normal((10, 64)).astype(np.float32), fmt)
    table = types.SimpleNamespace(fmt=q.fmt, shape=q.shape, data=q.data, block_size=block)
    with pytest.raises(ConfigError, match="'table'.*block_size"):
        run(backend, table, np.arange(10), np.array([0, 3]))
    ok = types.SimpleNamespace(fmt=q.fmt, shape=q.shape, data=q.data, block_size=np.int64(q.block_size))
    assert np.array_equal(run(backend, ok, np.arange(10), np.array([0, 3])), run("numpy", q, np.arange(10), np.array([0, 3])))


@pytest.mark.parametrize("backend", backends())
def test_a_table_object_with_a_float_shape_is_named(backend):
    # shape (10.0, 64.0) matched the records (10.0 == 10) and then raised the raw
    # "TypeError: 'float' object cannot be interpreted as an integer" of np.empty
    import types

    q = quantize(np.ones((10, 64), dtype=np.float32), "mx6")
    table = types.SimpleNamespace(fmt=q.fmt, shape=(10.0, 64.0), data=q.data, block_size=q.block_size)
    with pytest.raises(ConfigError, match="'table'.*two ints"):
        run(backend, table, np.arange(10), np.array([0, 3]))
