"""pooled_lookup: embedding_bag semantics over every format, compiled == NumPy bit for bit."""

import threading

import numpy as np
import pytest

import embcompress
from embcompress import ConfigError
from embcompress.formats import FORMATS, decode_records
from embcompress.kernels import compiled
from embcompress.kernels.lookup import KERNEL_FORMATS, pooled_lookup
from tests.conftest import quantize_default as quantize

torch = pytest.importorskip("torch")
F = torch.nn.functional

ALL_FORMATS = sorted(FORMATS)
BACKENDS = ["numpy", "cython"]


def both(fn, monkeypatch):
    """Run fn under the NumPy and the compiled backend; return both results."""
    out = []
    for name in BACKENDS:
        monkeypatch.setenv("EMBCOMPRESS_KERNELS", name)
        out.append(fn())
    monkeypatch.delenv("EMBCOMPRESS_KERNELS")
    return out


def same_bits(a, b):
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))


def make_table(fmt, n=300, dim=45, seed=0, block_size=None):
    rng = np.random.default_rng(seed)
    # Rows of very different magnitudes so block scales span a wide range.
    x = rng.standard_normal((n, dim)).astype(np.float32) * np.exp2(rng.integers(-8, 8, (n, 1))).astype(np.float32)
    x[0] = 0.0
    x[1, :7] = -0.0
    return quantize(x, fmt, block_size=block_size)


def bags(rng, n_rows, n_bags=70, max_len=9):
    lens = rng.integers(0, max_len, n_bags)
    lens[3] = 0  # an empty bag somewhere in the middle
    offsets = np.concatenate([[0], np.cumsum(lens)[:-1]]).astype(np.int64)
    indices = rng.integers(0, n_rows, int(lens.sum())).astype(np.int64)
    return indices, offsets


def torch_ref(q, indices, offsets, mode, weights=None):
    w = torch.from_numpy(decode_records(q.data, q.fmt, q.shape[1], q.block_size))
    psw = None if weights is None else torch.from_numpy(weights)
    return F.embedding_bag(
        torch.from_numpy(indices), w, torch.from_numpy(offsets), mode=mode, per_sample_weights=psw
    ).numpy()


@pytest.mark.parametrize("fmt", ALL_FORMATS)
def test_every_format_bit_exact_and_matches_torch(fmt, monkeypatch):
    assert fmt in KERNEL_FORMATS
    q = make_table(fmt)
    rng = np.random.default_rng(1)
    indices, offsets = bags(rng, q.shape[0])
    weights = rng.standard_normal(len(indices)).astype(np.float32)
    for mode, w in [("sum", None), ("sum", weights), ("mean", None), ("max", None)]:
        a, b = both(lambda: pooled_lookup(q, indices, offsets, mode=mode, per_sample_weights=w, n_threads=2), monkeypatch)
        assert same_bits(a, b), (fmt, mode)
        ref = torch_ref(q, indices, offsets, mode, w)
        np.testing.assert_allclose(a, ref, rtol=1e-5, atol=1e-5 * float(np.abs(ref).max() + 1e-30))
        assert not a[3].any()  # empty bag


@pytest.mark.parametrize("fmt,block", [("mxfp8_e4m3", 8), ("mxfp6_e3m2", 8), ("mxfp6_e2m3", 16), ("mxfp4_e2m1", 64), ("mxint8", 24), ("mx6", 8), ("mx4", 8), ("mx9", 8)])
def test_block_sizes_and_padding(fmt, block, monkeypatch):
    q = make_table(fmt, dim=37, block_size=block)
    indices, offsets = bags(np.random.default_rng(2), q.shape[0])
    a, b = both(lambda: pooled_lookup(q, indices, offsets), monkeypatch)
    assert same_bits(a, b)
    np.testing.assert_allclose(a, torch_ref(q, indices, offsets, "sum"), rtol=1e-5, atol=1e-30)


def test_nan_blocks_and_special_values(monkeypatch):
    x = np.ones((4, 64), dtype=np.float32)
    x[1, 3] = np.nan
    x[2] = 1e-38  # scales near the bottom of E8M0
    x[3] = 3e38
    for fmt in ("mxfp8_e4m3", "mxint8", "mx6", "mxfp4_e2m1"):
        q = quantize(x, fmt, nonfinite="nan_block")
        idx = np.array([0, 1, 2, 3, 3, 2, 1, 0], dtype=np.int64)
        offsets = np.array([0, 2, 4, 6])
        blk = q.block_size  # the NaN stays in the block that held it
        for mode in ("sum", "max"):
            a, b = both(lambda: pooled_lookup(q, idx, offsets, mode=mode), monkeypatch)
            assert np.array_equal(a, b, equal_nan=True)
            if mode == "max":  # torch's own rule for NaN, bit for bit
                assert np.array_equal(a, torch_ref(q, idx, offsets, mode), equal_nan=True), fmt
            # bag 3 is rows 1, 0: its first row holds the NaN block, which sum and max both keep
            assert np.isnan(a[3, :blk]).all() and not np.isnan(a[3, blk:]).any()
            # bag 0 is rows 0, 1: sum takes the NaN; max, as torch's, keeps the first row there
            assert np.isnan(a[0, :blk]).all() == (mode == "sum") and not np.isnan(a[0, blk:]).any()


def test_two_d_indices_and_include_last_offset(backend):
    q = make_table("int8_rowwise")
    idx2 = np.arange(12).reshape(4, 3)
    a = pooled_lookup(q, idx2, None, mode="mean")
    b = pooled_lookup(q, idx2.reshape(-1), np.array([0, 3, 6, 9]), mode="mean")
    c = pooled_lookup(q, idx2.reshape(-1), np.array([0, 3, 6, 9, 12]), mode="mean", include_last_offset=True)
    assert same_bits(a, b) and same_bits(a, c)
    # int32 indices and offsets (what torch models often hold) are converted
    d = pooled_lookup(q, idx2.reshape(-1).astype(np.int32), np.array([0, 3, 6, 9], dtype=np.int32), mode="mean")
    assert same_bits(a, d)


def test_no_bags_and_out_buffer(backend):
    q = make_table("fp16")
    out = pooled_lookup(q, np.zeros(0, np.int64), np.zeros(0, np.int64))
    assert out.shape == (0, 45)
    buf = np.full((2, 45), 7.0, dtype=np.float32)
    res = pooled_lookup(q, np.array([1, 2, 3]), np.array([0, 3]), out=buf)
    assert res is buf and not buf[1].any()
    for bad in (np.zeros((2, 44), np.float32), np.zeros((2, 45), np.float64), np.zeros((45, 2), np.float32).T):
        with pytest.raises(ConfigError, match="'out' parameter"):
            pooled_lookup(q, np.array([1, 2, 3]), np.array([0, 3]), out=bad)
    ro = np.zeros((2, 45), np.float32)
    ro.flags.writeable = False
    with pytest.raises(ConfigError, match="'out' parameter"):
        pooled_lookup(q, np.array([1, 2, 3]), np.array([0, 3]), out=ro)


@pytest.mark.parametrize(
    "indices,offsets,kw,match",
    [
        ([0, 300], [0], {}, "in \\[0, 300\\).*Got 300"),
        ([0, -1], [0], {}, "Got -1"),
        ([0.0, 1.0], [0], {}, "'indices' parameter"),
        ([0, 1], [1], {}, "'offsets' parameter .* start at 0"),
        ([0, 1, 2], [0, 2, 1], {}, "non-decreasing"),
        ([0, 1, 2], [0, 4], {}, "non-decreasing"),
        ([0, 1, 2], [0, 2], {"include_last_offset": True}, "end with len\\(indices\\)"),
        ([0, 1], [0], {"mode": "avg"}, "'mode' parameter"),
        ([0, 1], [0], {"mode": "mean", "per_sample_weights": [1.0, 1.0]}, "'per_sample_weights'"),
        ([0, 1], [0], {"per_sample_weights": [1.0]}, "one weight per index"),
        ([0, 1], [0], {"per_sample_weights": [1, 1]}, "float array"),
        ([0, 1], [0], {"n_threads": 0}, "n_threads"),
        ([[0, 1]], [0], {}, "1-D when 'offsets'"),
        ([0, 1], None, {}, "'offsets' parameter"),
    ],
)
def test_bad_input_is_refused_clearly(backend, indices, offsets, kw, match):
    q = make_table("mxint8")
    with pytest.raises(ConfigError, match=match):
        pooled_lookup(q, np.asarray(indices), None if offsets is None else np.asarray(offsets), **kw)


def test_unknown_format_and_bad_table_refused(backend):
    q = make_table("mxint8")

    class Foreign:
        fmt, shape, block_size, data = "mxfp3_weird", q.shape, 32, q.data

    with pytest.raises(ConfigError, match="does not know the format 'mxfp3_weird'"):
        pooled_lookup(Foreign(), [0], [0])

    class Mismatched:
        fmt, shape, block_size, data = "mxint8", (q.shape[0], q.shape[1] + 40), 32, q.data

    with pytest.raises(ConfigError, match="hold records of shape"):
        pooled_lookup(Mismatched(), [0], [0])
    with pytest.raises(ConfigError, match="compressed table"):
        pooled_lookup(np.zeros((3, 3), np.float32), [0], [0])


def test_threads_from_many_python_threads_equal_single_threaded(backend):
    q = make_table("mxfp8_e4m3", n=2000, dim=64)
    rng = np.random.default_rng(5)
    jobs = [bags(rng, q.shape[0], n_bags=400, max_len=30) for _ in range(6)]
    expected = [pooled_lookup(q, i, o, n_threads=1) for i, o in jobs]
    results = [None] * len(jobs)

    def run(k):
        for _ in range(3):
            results[k] = pooled_lookup(q, *jobs[k], n_threads=2)

    threads = [threading.Thread(target=run, args=(k,)) for k in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(results, expected):
        assert same_bits(got, want)


def test_thread_count_does_not_change_bits(monkeypatch):
    q = make_table("mx9", n=500)
    i, o = bags(np.random.default_rng(9), q.shape[0], n_bags=300)
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "auto")
    outs = [pooled_lookup(q, i, o, n_threads=t) for t in (1, 2, 3)]
    assert same_bits(outs[0], outs[1]) and same_bits(outs[0], outs[2])


def test_public_name():
    assert embcompress.pooled_lookup is pooled_lookup


@pytest.mark.parametrize("fmt", ALL_FORMATS)
@pytest.mark.parametrize("dim", [128, 256, 48, 45])
def test_arbitrary_record_bytes_every_decoder_path(fmt, dim, monkeypatch):
    """Any bytes are a record: random ones reach every code (Inf, NaN, subnormals, NaN scales).
    The compiled kernel's scalar, AVX-512 and fast-path decoders all give the reference's bits."""
    from embcompress.kernels import lookup as L
    from embcompress.table import QuantizedTable

    mod = compiled("_lookup")
    if mod is None:
        pytest.skip("compiled kernel not built")
    spec = FORMATS[fmt]
    rng = np.random.default_rng(dim)
    data = rng.integers(0, 256, (64, spec.row_bytes(dim)), dtype=np.uint8)
    if spec.family == "rowwise":  # keep the row scale and bias finite so sums stay comparable
        meta = rng.standard_normal((64, 2)).astype(np.float32 if spec.elem_bits == 8 else np.float16)
        data[:, : spec.row_meta_bytes] = meta.view(np.uint8)
    q = QuantizedTable(data, fmt, (64, dim), block_size=spec.block_size)
    indices, offsets = bags(rng, 64, n_bags=40)
    weights = rng.standard_normal(len(indices)).astype(np.float32)
    full = np.append(offsets, len(indices)).astype(np.int64)
    for mode, w in [("sum", None), ("sum", weights), ("mean", None), ("max", None)]:
        monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
        ref = pooled_lookup(q, indices, offsets, mode=mode, per_sample_weights=w)
        for simd in (0, 1, 2):
            out = np.empty_like(ref)
            plan = L._plan(mod, fmt, dim, q.block_size, q.data.shape[1], simd=simd)
            mod.pool(plan, q.data, indices, full, w, L.MODES[mode], out, 2)
            nan = np.isnan(ref)
            assert np.array_equal(nan, np.isnan(out)), (fmt, mode, simd)
            assert np.array_equal(ref.view(np.uint32)[~nan], out.view(np.uint32)[~nan]), (fmt, mode, simd)


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp8_e5m2"])
@pytest.mark.parametrize("dim, block", [(16, 16), (48, 16), (80, 16), (32, 32), (48, 32), (128, 32), (256, 32)])
def test_fp8_finite_codes_every_chunk_count(fmt, dim, block, monkeypatch):
    """Every finite FP8 code under scale bytes the fast path folds, at chunk counts one to
    sixteen (odd ones too): the compiled decoder (by shifts, or by a GF(2) affine map and a byte
    permute where the CPU has GFNI) gives the reference's bits in every lane."""
    from embcompress.table import QuantizedTable

    spec = FORMATS[fmt]
    special = 0x7F if fmt == "mxfp8_e4m3" else 0x7C  # first Inf/NaN magnitude code
    finite = np.array([c for c in range(256) if c & 0x7F < special], dtype=np.uint8)
    rng = np.random.default_rng(dim)
    nb = spec.n_blocks(dim, block)
    data = np.empty((96, spec.row_bytes(dim, block)), dtype=np.uint8)
    codes = data.shape[1] - nb  # dim, padded to whole blocks
    data[:, :nb] = rng.integers(100, 134, (96, nb))
    data[:, nb:] = rng.choice(finite, (96, codes))
    data[np.arange(96) % 32 == 0, nb:] = np.resize(np.roll(finite, dim), codes)  # each code in some lane
    q = QuantizedTable(data, fmt, (96, dim), block_size=block)
    indices, offsets = bags(rng, 96, n_bags=60)
    for mode in ("sum", "mean", "max"):
        ref, out = both(lambda: pooled_lookup(q, indices, offsets, mode=mode), monkeypatch)
        assert same_bits(ref, out), (fmt, dim, mode)


def _records(fmt, dim, rows):
    """A table whose every row holds one code repeated, under one scale byte: rows = [(scale byte, code)]."""
    from embcompress.table import QuantizedTable

    spec = FORMATS[fmt]
    data = np.zeros((len(rows), spec.row_bytes(dim)), dtype=np.uint8)
    nb = spec.n_blocks(dim, spec.block_size)
    for r, (scale, code) in enumerate(rows):
        data[r, :nb] = scale
        data[r, nb:] = code if spec.elem_bits == 8 else code | code << 4  # two FP4 codes a byte
    return QuantizedTable(data, fmt, (len(rows), dim), block_size=spec.block_size)


@pytest.mark.parametrize("fmt, rows", [
    # FP4: -6 * 2^125 = -1.5 * 2^127 (finite), then +4 * 2^126 = 2^128, which rounds to Inf: a fused
    # multiply-add would give 2^126 instead; scale bytes above 252 must not be fused
    ("mxfp4_e2m1", [(252, 0xF), (253, 0x6), (254, 0x7), (255, 0x1), (1, 0x1), (0, 0x9)]),
    # mxint8: the largest and smallest products (127 * 2^121, 2^-133) and a NaN scale
    ("mxint8", [(254, 0x7F), (254, 0x80), (0, 0x01), (0, 0xFF), (255, 0x01), (127, 0x40)]),
    # FP8: scale bytes at and above 127 + bias take the element table; subnormal codes; Inf / NaN codes
    ("mxfp8_e4m3", [(134, 0x7E), (135, 0x7E), (254, 0xFE), (0, 0x01), (127, 0x7F), (120, 0x81)]),
    ("mxfp8_e5m2", [(142, 0x7B), (143, 0x7B), (254, 0xFB), (0, 0x01), (127, 0x7C), (127, 0x7D)]),
])
@pytest.mark.parametrize("dim", [64, 256])  # 256: FP4 by whole code lines, two of them a row
def test_extreme_scales_and_codes_match_the_reference(fmt, rows, dim, monkeypatch):
    """The fast path fuses a block scale into the accumulation only where the product is exact;
    every pair and triple of these rows, in either order, gives the reference's bits."""
    q = _records(fmt, dim, rows)
    n = len(rows)
    bags_ = [[a, b] for a in range(n) for b in range(n)] + [[a, b, c] for a in range(n) for b in range(n) for c in (0, n - 1)]
    indices = np.array([i for bag in bags_ for i in bag], dtype=np.int64)
    offsets = np.cumsum([0] + [len(b) for b in bags_[:-1]]).astype(np.int64)
    for mode in ("sum", "mean", "max"):
        monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
        ref = pooled_lookup(q, indices, offsets, mode=mode)
        monkeypatch.setenv("EMBCOMPRESS_KERNELS", "auto")
        out = pooled_lookup(q, indices, offsets, mode=mode)
        nan = np.isnan(ref)
        assert np.array_equal(nan, np.isnan(out)), (fmt, mode)
        assert np.array_equal(ref.view(np.uint32)[~nan], out.view(np.uint32)[~nan]), (fmt, mode)
    # the FP4 case above really does overflow in the reference and cancel under fusion
    if fmt == "mxfp4_e2m1":
        monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
        assert np.isposinf(pooled_lookup(q, np.array([0, 1]), np.array([0]))).all()


def test_out_sharing_memory_with_an_input_is_refused(backend):
    # The kernel writes out while it reads the indices, offsets, weights and rows: an out that
    # overlaps one of them read indices it had overwritten (a segfault in the compiled kernel,
    # wrong sums in the NumPy one). Refused, as torch refuses an out= that overlaps an input.
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    q = quantize(x, "fp32")
    idx, off = np.array([1, 2, 3, 4]), np.array([0, 2])
    mem = np.zeros(8, np.float32)  # out (2, 4) and the four int64 indices in the same 32 bytes
    mem.view(np.int64)[:] = idx
    with pytest.raises(ConfigError, match="'out' parameter.*share memory with 'indices'"):
        pooled_lookup(q, mem.view(np.int64), off, out=mem.reshape(2, 4))
    w = np.ones(8, np.float32)
    with pytest.raises(ConfigError, match="share memory with 'per_sample_weights'"):
        pooled_lookup(q, idx, off, per_sample_weights=w[:4], out=w.reshape(2, 4))
    rows = x.copy()

    class Writable:  # a table over memory the caller can still write
        fmt, shape, block_size, data = "fp32", x.shape, None, rows.view(np.uint8)

    with pytest.raises(ConfigError, match="share memory with the table's rows"):
        pooled_lookup(Writable(), idx, off, out=rows[:2])
    # next to an input but not over it is fine
    mem = np.zeros(16, np.float32)
    mem[8:].view(np.int64)[:] = idx
    got = pooled_lookup(q, mem[8:].view(np.int64), off, out=mem[:8].reshape(2, 4))
    assert same_bits(got, pooled_lookup(q, idx, off))


@pytest.mark.parametrize("n_threads", [200_000, 2**31, 2**40])
def test_more_threads_than_work_gives_the_same_bits(backend, n_threads):
    # OpenMP was asked for every thread requested: 200,000 crashed the process (segfault) and
    # 2**31 or more raised an OverflowError from inside the kernel's call.
    q = make_table("mxint8")
    i, o = bags(np.random.default_rng(3), q.shape[0], n_bags=40)
    assert same_bits(pooled_lookup(q, i, o, n_threads=n_threads), pooled_lookup(q, i, o, n_threads=1))


def test_include_last_offset_offsets_must_start_at_zero_even_with_no_bags(backend):
    # offsets=[len(indices)] with include_last_offset=True is zero bags that silently dropped
    # every index; torch refuses it (offsets[0] has to be 0), and so do we.
    q = make_table("fp16")
    with pytest.raises(ConfigError, match="'offsets' parameter .* start at 0. Got 3"):
        pooled_lookup(q, np.array([1, 2, 3]), np.array([3]), include_last_offset=True)
    # no indices and offsets [0] is zero bags, as in torch
    assert pooled_lookup(q, np.zeros(0, np.int64), np.array([0]), include_last_offset=True).shape == (0, 45)


def test_zero_dimensional_indices_or_offsets_are_refused(backend):
    # np.ascontiguousarray made a 0-d array 1-D, so a scalar id or offset passed as a bag; torch
    # refuses both (input has to be 1D or 2D, offsets has to be a 1D Tensor).
    q = make_table("fp16")
    with pytest.raises(ConfigError, match="'indices' parameter .* 1-D"):
        pooled_lookup(q, np.int64(3), np.array([0]))
    with pytest.raises(ConfigError, match="'offsets' parameter .* 1-D"):
        pooled_lookup(q, np.array([1, 2]), np.int64(0))


def test_per_sample_weights_must_have_the_shape_of_indices(backend):
    # Both were flattened before comparing sizes, so weights of shape (4, 3) for 2-D indices
    # (3, 4) (a transposed array) were paired with the wrong ids; torch refuses any other shape.
    q = make_table("fp16")
    idx2 = np.arange(12).reshape(3, 4)
    w = np.arange(12, dtype=np.float32).reshape(3, 4)
    good = pooled_lookup(q, idx2, None, per_sample_weights=w)
    assert same_bits(good, pooled_lookup(q, idx2.reshape(-1), np.array([0, 4, 8]), per_sample_weights=w.reshape(-1)))
    for bad in (w.reshape(4, 3), w.reshape(-1)):
        with pytest.raises(ConfigError, match="one weight per index"):
            pooled_lookup(q, idx2, None, per_sample_weights=bad)
    with pytest.raises(ConfigError, match="one weight per index"):
        pooled_lookup(q, np.arange(5), np.array([0, 2]), per_sample_weights=np.ones((5, 1), np.float32))


@pytest.mark.parametrize("n", [1, 2, 32767, 32768, 100_003, 262_144])
@pytest.mark.parametrize("threads", [1, 2, 16, 64])
def test_index_bounds_finds_the_extremes_anywhere(n, threads):
    mod = compiled("_lookup")
    if mod is None:
        pytest.skip("compiled kernel not built")
    rng = np.random.default_rng(n)
    idx = rng.integers(-(2**62), 2**62, n)
    assert mod.index_bounds(idx, threads) == (idx.min(), idx.max())
    # the extremes at each end, and at the parts' seams (n * k // parts), where a slip would miss them
    for pos in {0, n - 1, n // 2, n // 2 - 1, n // 4, (3 * n) // 4}:
        probe = idx.copy()
        probe[pos] = -(2**63)
        assert mod.index_bounds(probe, threads)[0] == -(2**63)
        probe[pos] = 2**63 - 1
        assert mod.index_bounds(probe, threads)[1] == 2**63 - 1


def test_compiled_bag_checks_accept_exactly_what_the_numpy_checks_accept():
    # The compiled check decides alone when bags are good (the NumPy checks run only to name a
    # problem), so it must never accept what they refuse, nor refuse good bags (slow, not wrong).
    from embcompress.kernels.lookup import _checked_offsets

    mod = compiled("_lookup")
    if mod is None:
        pytest.skip("compiled kernel not built")
    rng = np.random.default_rng(11)
    n_rows = 50
    cases = 0
    for _ in range(3000):
        n_idx = int(rng.integers(0, 12))
        idx = rng.integers(-2 if rng.random() < 0.1 else 0, n_rows + (2 if rng.random() < 0.1 else 0), n_idx)
        offs = np.sort(rng.integers(0, n_idx + 1, int(rng.integers(0, 6))))
        if len(offs) and rng.random() < 0.7:
            offs[0] = 0
        if len(offs) > 1 and rng.random() < 0.15:
            offs = offs[::-1].copy()
        if len(offs) and rng.random() < 0.1:
            offs[-1] = n_idx + int(rng.integers(1, 3))
        last = bool(rng.random() < 0.5)
        if last and len(offs) and rng.random() < 0.5:
            offs[-1] = n_idx
        try:
            want = _checked_offsets(None, idx, offs, last, n_rows, 1, "test")
        except ConfigError:
            want = None
        ext = np.empty(len(offs) + (0 if last else 1), dtype=np.int64)
        got = mod.checked_offsets(idx, offs, last, n_rows, 1, ext)
        assert got == (want is not None), (idx, offs, last)
        if got:
            assert np.array_equal(ext, want)
        cases += got
    assert 500 < cases < 2500  # both answers were exercised


def test_one_bad_index_among_many_is_named(backend):
    q = make_table("mxint8")
    idx = np.random.default_rng(5).integers(0, 300, 200_000)
    offs = np.arange(0, 200_000, 40, dtype=np.int64)
    for pos, bad in ((199_999, 300), (100_000, -7), (0, 10**12)):
        probe = idx.copy()
        probe[pos] = bad
        with pytest.raises(ConfigError, match=f"Got {bad} instead"):
            pooled_lookup(q, probe, offs, n_threads=2)


def test_small_calls_run_on_fewer_threads(monkeypatch):
    # A thread takes at least MIN_THREAD_SECONDS (25 us) of lookups, about 1,923 at 13 ns each:
    # waking a team for less costs more than the work (4,096 lookups: 55 us on one thread, 38 on two).
    import embcompress.kernels
    from embcompress.kernels import lookup as L

    monkeypatch.setattr(embcompress.kernels, "MIN_THREAD_SECONDS", 25e-6)
    rows = np.zeros(10, np.int64)

    def threads(n, n_threads):
        idx = np.resize(rows, n)
        return L.check_bags(idx, np.arange(0, n, 4), mode="sum", per_sample_weights=None, include_last_offset=False,
                            n_threads=n_threads, out=None, dim=4, n_rows=10).threads

    assert threads(32, 2) == 1 and threads(1024, 2) == 1 and threads(3800, 2) == 1
    assert threads(4096, 2) == 2 and threads(262144, 2) == 2 and threads(262144, None) >= 1
    assert threads(1924 * 4, 4) == 4 and threads(262144, 1) == 1



def test_inputs_of_any_integer_layout_give_the_same_bags():
    """Indices and offsets in another byte order, width or stride are converted, not read raw
    (the kernel takes ndarrays and checks their layout itself)."""
    rng = np.random.default_rng(5)
    q = quantize(rng.standard_normal((50, 32)).astype(np.float32), "mxint8")
    idx = rng.integers(0, 50, 40)
    offs = np.array([0, 7, 7, 30])
    want = pooled_lookup(q, idx, offs)
    for i, o in [(idx.astype(">i8"), offs.astype(">i8")), (idx.astype(np.int32), offs.astype(np.uint16)),
                 (np.repeat(idx, 2)[::2], np.repeat(offs, 3)[::3])]:
        assert np.array_equal(pooled_lookup(q, i, o), want)


def test_the_compiled_entry_points_refuse_arrays_they_cannot_read():
    """mod.pool and mod.checked_offsets check each array's type, byte order, dimensions,
    contiguity, alignment and (for outputs) writability: a wrong one is a ValueError, never
    memory read as something else."""
    from embcompress.kernels import lookup as L

    mod = compiled("_lookup")
    if mod is None:
        pytest.skip("compiled kernel not built")
    q = quantize(np.ones((8, 32), np.float32), "mxint8")
    plan = L._plan(mod, "mxint8", 32, q.block_size, q.data.shape[1])
    idx, offs = np.arange(4, dtype=np.int64), np.array([0, 2, 4], dtype=np.int64)
    out = np.zeros((2, 32), np.float32)
    mod.pool(plan, q.data, idx, offs, None, 0, out, 1)
    assert np.array_equal(out, pooled_lookup(q, idx, offs[:-1]))
    unaligned = np.zeros(33, np.uint8)[1:].view(np.int64)
    assert not unaligned.flags.aligned
    read_only = np.zeros((2, 32), np.float32)
    read_only.flags.writeable = False
    for args in [
        (plan, q.data, idx.astype(np.int32), offs, None, 0, out, 1),
        (plan, q.data, idx.astype(">i8"), offs, None, 0, out, 1),
        (plan, q.data, unaligned, offs, None, 0, out, 1),
        (plan, q.data, np.repeat(idx, 2)[::2], offs, None, 0, out, 1),
        (plan, q.data, idx, offs, None, 0, read_only, 1),
        (plan, q.data, idx, offs, np.ones(3, np.float32), 0, out, 1),
        (plan, q.data, idx, offs, None, 0, np.zeros((3, 32), np.float32), 1),
        (plan, q.data[:, :-1], idx, offs, None, 0, out, 1),
    ]:
        with pytest.raises(ValueError):
            mod.pool(*args)
    with pytest.raises(ValueError):
        mod.checked_offsets(idx, offs.astype(np.int32), True, 8, 1, np.empty(3, np.int64))
    with pytest.raises(ValueError):
        mod.index_bounds(idx.astype(np.uint64), 1)
