"""The codecs against small scalar references written from the specs, and defects found that way.

The references below share no code with ``embcompress.formats``: exact rational arithmetic
(``fractions.Fraction``, whose ``round`` is half to even) on Python floats, one element at a time.

- OCP MX v1.0: ``X = floor(log2(amax)) - emax`` (``frexp``), clamped to [-127, 127], -127 for an
  all-zero block; ``x / 2^X`` to the nearest element value, ties to the even code, saturated at
  the largest normal; the sign kept (MXINT8: ``k / 64``, ``|k| <= 127``, two's complement).
- BDR MX9/MX6/MX4 (README's rule): ``e = floor(log2(amax))``; per pair ``s = 1`` when both
  ``|x| < 2^e``; ``code = round(|x| / 2^(e - s - (b - 2)))`` clamped to ``2^(b-1) - 1``.
- ``scale_mode="mse"``: of X and X + 1 (at most 127), the one with the smaller exact squared error
  of the float32 decoded values (ties keep X).
- Row-wise: torch's fbgemm prepack operators, where torch is installed.

Runs under both backends (``EMBCOMPRESS_KERNELS=numpy`` and the compiled default).
"""

import functools
import math
from fractions import Fraction as F

import numpy as np
import pytest

import embcompress as ec
from embcompress.formats import decode_records, get_format
from embcompress.formats.codec import encode_numpy
from embcompress.table import QuantizedTable
from tests.unit.embcompress.formats_inputs import adversarial_table, random_table

f32 = np.float32

# name: (exponent bits, mantissa bits, emax, largest normal) from the OCP MX v1.0 tables
FP = {
    "mxfp8_e4m3": (4, 3, 8, 448),
    "mxfp8_e5m2": (5, 2, 15, 57344),
    "mxfp6_e3m2": (3, 2, 4, 28),
    "mxfp6_e2m3": (2, 3, 2, 7.5),
    "mxfp4_e2m1": (2, 1, 2, 6),
}
MX = list(FP) + ["mxint8"]
BDR = {"mx9": 8, "mx6": 5, "mx4": 3}


@functools.lru_cache(maxsize=None)
def _grid(fmt):
    """(value, magnitude code) of every non-negative element value up to the largest normal."""
    eb, mb, _, top = FP[fmt]
    bias = (1 << (eb - 1)) - 1
    out = []
    for code in range(1 << (eb + mb)):
        ef, m = code >> mb, code & ((1 << mb) - 1)
        v = F(m, 1 << mb) * F(2) ** (1 - bias) if ef == 0 else (1 + F(m, 1 << mb)) * F(2) ** (ef - bias)
        if v <= top:
            out.append((v, code))
    return tuple(out)


def _to_grid(v, fmt):
    g = _grid(fmt)
    if v >= g[-1][0]:
        return g[-1][1]
    for (lo, clo), (hi, chi) in zip(g, g[1:]):
        if lo <= v < hi:
            if v - lo != hi - v:
                return clo if v - lo < hi - v else chi
            return clo if clo % 2 == 0 else chi
    raise AssertionError(v)


def _floor_log2(a):
    return math.frexp(a)[1] - 1  # exact for every positive float, subnormals included


def _neg(v):
    return math.copysign(1.0, v) < 0


def _mx_codes(vals, fmt, X):
    codes = []
    for v in vals:
        r = abs(F(v)) / F(2) ** X
        if fmt == "mxint8":
            k = min(round(r * 64), 127)
            codes.append((-k) & 0xFF if _neg(v) else k)
        else:
            codes.append(_to_grid(r, fmt) | (_neg(v) << (FP[fmt][0] + FP[fmt][1])))
    return codes


def _mx_value(fmt, X, code):
    if fmt == "mxint8":
        v = F(code - 256 if code >= 128 else code, 64) * F(2) ** X
        neg = v < 0
    else:
        sbit = 1 << (FP[fmt][0] + FP[fmt][1])
        v = dict((c, g) for g, c in _grid(fmt))[code & (sbit - 1)] * F(2) ** X
        neg = bool(code & sbit)
    mag = float(f32(float(abs(v)))) if abs(v) < 2**128 else math.inf
    return -mag if neg else mag


def _sse(vals, dec):
    return math.inf if any(math.isinf(d) for d in dec) else sum((F(v) - F(d)) ** 2 for v, d in zip(vals, dec))


def _mx_block(vals, fmt, mse):
    if not all(math.isfinite(v) for v in vals):
        return 0xFF, [0] * len(vals)
    amax = max(abs(v) for v in vals)
    emax = 0 if fmt == "mxint8" else FP[fmt][2]
    X = -127 if amax == 0 else min(max(_floor_log2(amax) - emax, -127), 127)
    codes = _mx_codes(vals, fmt, X)
    if mse and X < 127:
        c1 = _mx_codes(vals, fmt, X + 1)
        if _sse(vals, [_mx_value(fmt, X + 1, c) for c in c1]) < _sse(vals, [_mx_value(fmt, X, c) for c in codes]):
            X, codes = X + 1, c1
    return X + 127, codes


def _bdr_codes(vals, b, e):
    micro, codes = 0, []
    for p in range(len(vals) // 2):
        pair = vals[2 * p : 2 * p + 2]
        s = int(all(abs(v) < 2.0**e for v in pair))
        micro |= s << p
        for v in pair:
            codes.append(min(round(abs(F(v)) / F(2) ** (e - s - (b - 2))), (1 << (b - 1)) - 1) | (_neg(v) << (b - 1)))
    return micro, codes


def _bdr_values(b, e, micro, codes):
    out = []
    for j, c in enumerate(codes):
        v = float(F(c & ((1 << (b - 1)) - 1)) * F(2) ** (e - ((micro >> (j // 2)) & 1) - (b - 2)))
        out.append(-v if c >> (b - 1) else v)
    return out


def _bdr_block(vals, b, mse):
    if not all(math.isfinite(v) for v in vals):
        return 0xFF, 0, [0] * len(vals)
    amax = max(abs(v) for v in vals)
    e = -127 if amax == 0 else min(max(_floor_log2(amax), -127), 127)
    micro, codes = _bdr_codes(vals, b, e)
    if mse and e < 127:
        m1, c1 = _bdr_codes(vals, b, e + 1)
        if _sse(vals, _bdr_values(b, e + 1, m1, c1)) < _sse(vals, _bdr_values(b, e, micro, codes)):
            e, micro, codes = e + 1, m1, c1
    return e + 127, micro, codes


def _stream(codes, bits):
    word = sum(c << (bits * i) for i, c in enumerate(codes))
    return word.to_bytes(len(codes) * bits // 8, "little")


def reference_record(row, fmt, block, mse=False):
    """The row record of float32 ``row`` in our layout (spec.py), from the scalar rules above."""
    nb = -(-len(row) // block)
    vals = [float(v) for v in row] + [0.0] * (nb * block - len(row))
    blocks = [vals[i * block : (i + 1) * block] for i in range(nb)]
    if fmt in BDR:
        b = BDR[fmt]
        enc = [_bdr_block(v, b, mse) for v in blocks]
        return bytes(e for e, _, _ in enc) + bytes(m for _, m, _ in enc) + b"".join(_stream(c, b) for _, _, c in enc)
    bits = 8 if fmt == "mxint8" else FP[fmt][0] + FP[fmt][1] + 1
    enc = [_mx_block(v, fmt, mse) for v in blocks]
    return bytes(s for s, _ in enc) + _stream([c for _, cs in enc for c in cs], bits)


def reference_decode(record, fmt, dim, block):
    nb = -(-dim // block)
    rec = [int(v) for v in record]
    out = []
    for i in range(nb):
        if fmt in BDR:
            b = BDR[fmt]
            stream = bytes(rec[2 * nb + i * block * b // 8 : 2 * nb + (i + 1) * block * b // 8])
            word = int.from_bytes(stream, "little")
            codes = [(word >> (b * j)) & ((1 << b) - 1) for j in range(block)]
            vals = [math.nan] * block if rec[i] == 0xFF else _bdr_values(b, rec[i] - 127, rec[nb + i], codes)
        else:
            bits = 8 if fmt == "mxint8" else FP[fmt][0] + FP[fmt][1] + 1
            word = int.from_bytes(bytes(rec[nb:]), "little")
            codes = [(word >> (bits * (i * block + j))) & ((1 << bits) - 1) for j in range(block)]
            vals = [math.nan if rec[i] == 0xFF else _mx_value(fmt, rec[i] - 127, c) for c in codes]
        out += vals
    return np.array(out[:dim], f32)


def grid_table(fmt, seed, n=16, dim=40):
    """Rows on, between and at ties of the element grid under random block scales (fp32 subnormal
    to near float32's max), with saturating values, fp32 subnormals, -0 and inf/NaN mixed in."""
    rng = np.random.default_rng(seed)
    if fmt in FP:
        g = np.array([float(v) for v, _ in _grid(fmt)])
    elif fmt == "mxint8":
        g = np.arange(128) / 64
    else:
        g = np.arange(1 << (BDR[fmt] - 1)) / 2 ** (BDR[fmt] - 2)
    mids = (g[1:] + g[:-1]) / 2
    pool = np.concatenate([g, mids, mids * (1 + 2**-20), mids * (1 - 2**-20), [g[-1] * 1.01, g[-1] * 1.5]])
    x = np.empty((n, dim), f32)
    for i in range(n):
        X = int(rng.choice([rng.integers(-150, 120), -127, -126, -135, 0, 112, 119, 120]))
        with np.errstate(over="ignore"):
            x[i] = (rng.choice(pool, dim) * rng.choice([1.0, -1.0], dim) * 2.0**X).astype(f32)
        x[i, rng.integers(0, dim, 2)] = rng.integers(1, 1 << 23, 2).astype(np.uint32).view(f32)
        x[i, rng.integers(0, dim, 3)] = -0.0
    x[-1, 5] = np.nan
    x[-2, 20] = -np.inf
    return x


def _assert_records(q, x, fmt, block, mse):
    for i, row in enumerate(x):
        want = np.frombuffer(reference_record(row, fmt, block, mse), np.uint8)
        assert np.array_equal(q.data[i], want), (fmt, block, i, row.tolist())


@pytest.mark.parametrize("fmt", MX + list(BDR))
@pytest.mark.parametrize("mse", [False, True])
def test_quantize_equals_the_scalar_reference(fmt, mse):
    blocks = (8, 16) if fmt in BDR else (32, 8, 24)
    for seed, block in enumerate(blocks):
        for x in (grid_table(fmt, seed), adversarial_table(seed, n=8, dim=37)):
            q = ec.quantize(x, fmt, block_size=block, scale_mode="mse" if mse else "floor", nonfinite="nan_block")
            _assert_records(q, x, fmt, block, mse)


@pytest.mark.parametrize("fmt", MX + list(BDR))
def test_decode_equals_the_scalar_reference(fmt):
    block = get_format(fmt).block_size
    x = grid_table(fmt, 11, n=10, dim=45)
    q = ec.quantize(x, fmt, nonfinite="nan_block")
    got = decode_records(q.data, fmt, x.shape[1])
    for i in range(len(x)):
        want = reference_decode(q.data[i], fmt, x.shape[1], block)
        same = (got[i].view(np.uint32) == want.view(np.uint32)) | (np.isnan(got[i]) & np.isnan(want))
        assert same.all(), (fmt, i, np.flatnonzero(~same))


def test_rowwise_values_below_their_fp16_bias_get_code_0():
    # int4/int2 replace the row minimum by its fp16 value; when that rounds up, the minimum lies
    # below the bias and (x - bias) / scale is negative. fbgemm clamps it to code 0. The compiled
    # quantizer turned t in (-1, -0.5] into rint(t) = -1 -> byte 0xFF, which ORed over the
    # neighbouring codes: 1000.3 decoded to the row's maximum.
    x = np.array(
        [
            [1000.3, 1004.79, 1002.0, 1001.0, 1000.3, 1003.0, 1000.7, 1004.0],  # int4: t(1000.3) ~ -0.7
            [1152.7515, 1152.309, 1153.771, 1154.0176, 1151.6228, 1151.9727, 1153.5314, 1152.607],  # int2
        ],
        f32,
    )
    for fmt in ("int4_rowwise", "int2_rowwise"):
        spec = get_format(fmt)
        q = ec.quantize(x, fmt)
        assert np.array_equal(q.data, encode_numpy(x, spec, None)), fmt
        d = ec.dequantize(q)
        bias = np.ascontiguousarray(q.scales).view("<f2")[:, 1:].astype(f32)  # record: fp16 scale, bias
        below = x < bias  # these elements must decode to the bias (code 0)
        assert below.any()
        np.testing.assert_array_equal(d[below], np.broadcast_to(bias, x.shape)[below])
    # the same on rows wider than the compiled quantizer's stack buffer (4096 codes)
    wide = np.tile(x[:1], (1, 520))
    q = ec.quantize(wide, "int4_rowwise")
    assert np.array_equal(q.data, encode_numpy(wide, get_format("int4_rowwise"), None))


def test_rowwise_records_equal_torch_prepack_when_the_minimum_rounds_up():
    torch = pytest.importorskip("torch")
    from embcompress.formats import to_torch_packed

    rng = np.random.default_rng(0)
    base = rng.uniform(500, 2000, (500, 1))
    x = (base + rng.uniform(0, 1, (500, 8)) * rng.uniform(0.5, 8, (500, 1))).astype(f32)
    for fmt, op in (("int4_rowwise", "embedding_bag_4bit_prepack"), ("int2_rowwise", "embedding_bag_2bit_prepack")):
        theirs = getattr(torch.ops.quantized, op)(torch.from_numpy(x)).numpy()
        assert np.array_equal(to_torch_packed(ec.quantize(x, fmt)), theirs), fmt


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16", "mx6", "int8_rowwise"])
def test_table_data_is_read_only_for_every_format(fmt):
    # the float formats' records were a view of the encoded values, and only base-less arrays
    # were frozen: q.data of an fp16/bf16/fp32 table was writeable, so the table could be changed
    q = ec.quantize(random_table(1, n=4, dim=8), fmt)
    assert not q.data.flags.writeable
    with pytest.raises(ValueError):
        q.data[0, 0] = 1


def test_table_built_on_a_view_is_read_only():
    data = np.array(ec.quantize(random_table(2, n=4, dim=32), "mx4").data)
    t = QuantizedTable(data[1:3], "mx4", (2, 32))
    assert not t.data.flags.writeable


def test_take_of_no_rows():
    # np.asarray([]) is float64: an empty list of ids was refused as "not int row ids"
    q = ec.quantize(random_table(3, n=5, dim=16), "mxfp4_e2m1")
    t = q.take([])
    assert t.shape == (0, 16) and t.data.shape == (0, q.row_bytes)


def test_format_spec_doc_names_only_real_members():
    # its docstring described ``bits`` and ``bits_with_scales``, which FormatSpec does not have
    import re

    from embcompress.formats.spec import FormatSpec

    named = set(re.findall(r"``(\w+)``", FormatSpec.__doc__))
    assert named and all(hasattr(FormatSpec, n) or n in FormatSpec.__dataclass_fields__ for n in named), named
