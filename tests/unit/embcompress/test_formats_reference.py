"""The codec against implementations we did not write: ml_dtypes, torch (fbgemm), torchao.

- every code of the 4/6/8-bit element formats decodes to ml_dtypes' value (scaled exactly);
- MX quantization equals ml_dtypes' round-to-nearest-even cast of x / 2^X, saturated;
- int8/int4/int2 row-wise records equal torch.ops.quantized's prepack bytes, and torch's own
  embedding_bag_*_rowwise_offsets operators pool our tables to our decoded sums;
- MXFP8/6/4 equal torchao.prototype.mx_formats' to_mx (floor scale, RNE) where its rules agree.
"""

import warnings

import numpy as np
import pytest

import embcompress as ec
from embcompress.formats import decode_records, get_format, to_torch_packed
from embcompress.formats.packing import pack
from tests.conftest import data_path
from tests.unit.embcompress.formats_inputs import adversarial_table, random_table

ml_dtypes = pytest.importorskip("ml_dtypes")

ML = {
    "mxfp8_e4m3": ml_dtypes.float8_e4m3fn,
    "mxfp8_e5m2": ml_dtypes.float8_e5m2,
    "mxfp6_e3m2": ml_dtypes.float6_e3m2fn,
    "mxfp6_e2m3": ml_dtypes.float6_e2m3fn,
    "mxfp4_e2m1": ml_dtypes.float4_e2m1fn,
}


def _same(a, b):
    """Bitwise-equal float arrays, any NaN equal to any NaN."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    nan = np.isnan(a) & np.isnan(b)
    return bool(np.all(nan | (a.view(np.uint32) == b.view(np.uint32))))


@pytest.mark.parametrize("fmt", list(ML))
@pytest.mark.parametrize("scale_byte", [127, 0, 1, 100, 140, 254, 255])
def test_every_code_decodes_like_ml_dtypes(fmt, scale_byte):
    spec = get_format(fmt)
    n_codes = 1 << spec.elem_bits
    dim = max(n_codes, 32)
    codes = np.arange(dim, dtype=np.int64) % n_codes
    rec = np.concatenate(
        [np.full((1, dim // 32), scale_byte, np.uint8), pack(codes.astype(np.uint8)[None], spec.elem_bits)], axis=1
    )
    got = decode_records(rec, fmt, dim)[0]
    elems = codes.astype(np.uint8).view(ML[fmt]).astype(np.float64)
    scale = np.nan if scale_byte == 255 else 2.0 ** (scale_byte - 127)
    with np.errstate(over="ignore"):  # exact (few significant bits); beyond fp32's range -> inf
        want = (elems * scale).astype(np.float32)
    assert _same(got, want)


def test_every_mxint8_code_decodes_to_k_over_64():
    rec = np.concatenate([np.full((1, 8), 127, np.uint8), np.arange(256, dtype=np.uint8)[None]], axis=1)
    got = decode_records(rec, "mxint8", 256)[0]
    assert _same(got, np.arange(256, dtype=np.uint8).view(np.int8) / np.float32(64))


@pytest.mark.parametrize("fmt", list(ML))
@pytest.mark.parametrize("make", [adversarial_table, random_table])
def test_quantize_equals_ml_dtypes_cast(fmt, make):
    spec = get_format(fmt)
    x = make(11)
    q = ec.quantize(x, fmt)
    X = np.repeat(q.scales.astype(np.int64) - 127, 32, axis=1)[:, : x.shape[1]]
    # shared exponent: floor(log2(amax)) in float64 (exact enough for float32 inputs), clamped
    pad = -x.shape[1] % 32
    amax = np.abs(np.pad(x, ((0, 0), (0, pad))).astype(np.float64)).reshape(len(x), -1, 32).max(-1)
    with np.errstate(divide="ignore"):
        want_X = np.where(amax > 0, np.clip(np.floor(np.log2(amax)) - spec.emax, -127, 127), -127)
    np.testing.assert_array_equal(q.scales.astype(np.int64) - 127, want_X)
    v = np.clip(x.astype(np.float64) / 2.0**X, -spec.max_normal, spec.max_normal)
    want = (v.astype(ML[fmt]).astype(np.float64) * 2.0**X).astype(np.float32)
    assert _same(ec.dequantize(q), want)


def test_mxint8_quantize_equals_rounded_fixed_point():
    x = random_table(2)
    q = ec.quantize(x, "mxint8")
    X = np.repeat(q.scales.astype(np.int64) - 127, 32, axis=1)[:, : x.shape[1]]
    k = np.clip(np.rint(x.astype(np.float64) / 2.0**X * 64), -127, 127)  # rint: ties to even
    np.testing.assert_array_equal(q.codes[:, : x.shape[1]].view(np.int8), k.astype(np.int8))


# --- torch / fbgemm row-wise ---------------------------------------------------------------------

def _torch():
    torch = pytest.importorskip("torch")
    return torch


ROWWISE = [
    ("int8_rowwise", "embedding_bag_byte_prepack", "embedding_bag_byte_rowwise_offsets"),
    ("int4_rowwise", "embedding_bag_4bit_prepack", "embedding_bag_4bit_rowwise_offsets"),
    ("int2_rowwise", "embedding_bag_2bit_prepack", "embedding_bag_2bit_rowwise_offsets"),
]


def _rowwise_tables():
    rng = np.random.default_rng(3)
    yield random_table(4, n=300, dim=64)
    yield random_table(5, n=100, dim=36)  # a vector tail of 4 after 32 columns
    x = adversarial_table(6, n=64, dim=40)
    x = np.where(np.abs(x) > 6e4, np.float32(1.0), x)  # int4/int2 keep |min| within fp16 range
    x[10] = 0.0
    x[11, ::2] = -0.0  # signed zeros as min and max: the reduction order decides the sign
    x[12] = -0.0
    x[13] = np.float32(7.25)  # constant rows
    yield x
    yield (rng.standard_normal((50, 128)) * 1e-6).astype(np.float32)  # fp16-subnormal scales


@pytest.mark.parametrize("fmt, prepack, _", ROWWISE)
def test_to_torch_packed_equals_torch_prepack(fmt, prepack, _):
    torch = _torch()
    op = getattr(torch.ops.quantized, prepack)
    for x in _rowwise_tables():
        ours = to_torch_packed(ec.quantize(x, fmt))
        theirs = op(torch.from_numpy(x)).numpy()
        assert ours.shape == theirs.shape
        np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("fmt, _, pool", ROWWISE)
def test_torch_operators_pool_our_tables(fmt, _, pool):
    torch = _torch()
    x = random_table(8, n=50, dim=32)
    q = ec.quantize(x, fmt)
    packed = torch.from_numpy(to_torch_packed(q))
    idx = torch.tensor([0, 3, 7, 7, 49, 12], dtype=torch.int64)
    offsets = torch.tensor([0, 2, 5], dtype=torch.int64)
    got = getattr(torch.ops.quantized, pool)(packed, idx, offsets, mode=0, pruned_weights=False).numpy()
    d = ec.dequantize(q).astype(np.float64)
    want = np.stack([d[[0, 3]].sum(0), d[[7, 7, 49]].sum(0), d[[12]].sum(0)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(d).max())


def test_to_torch_packed_refuses_other_formats_and_odd_dims():
    from embcompress.errors import ConfigError

    with pytest.raises(ConfigError, match="int8_rowwise, int4_rowwise or int2_rowwise"):
        to_torch_packed(ec.quantize(np.ones((2, 32), np.float32), "mxint8"))
    with pytest.raises(ConfigError, match="multiple of 2"):
        to_torch_packed(ec.quantize(np.ones((2, 33), np.float32), "int4_rowwise"))


# --- torchao MX cast ------------------------------------------------------------------------------

def _to_mx():
    pytest.importorskip("torch")
    pytest.importorskip("torchao")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from torchao.prototype.mx_formats.constants import DTYPE_FP6_E2M3, DTYPE_FP6_E3M2
        from torchao.prototype.mx_formats.mx_tensor import to_mx
    import torch

    return to_mx, {
        "mxfp8_e4m3": torch.float8_e4m3fn,
        "mxfp8_e5m2": torch.float8_e5m2,
        "mxfp6_e3m2": DTYPE_FP6_E3M2,
        "mxfp6_e2m3": DTYPE_FP6_E2M3,
        "mxfp4_e2m1": torch.float4_e2m1fn_x2,
    }


def _torchao_codes(to_mx, dtype, x):
    import torch

    scale, data = to_mx(torch.from_numpy(x), dtype, 32)
    scale = scale.view(torch.uint8).numpy()
    data = data.view(torch.uint8).numpy().reshape(len(x), -1) if data.dtype != torch.uint8 else data.numpy()
    return scale, data


def _compare_torchao(x, fmts=None):
    to_mx, dtypes = _to_mx()
    for fmt, dtype in dtypes.items():
        if fmts and fmt not in fmts:
            continue
        q = ec.quantize(x, fmt)
        scale, data = _torchao_codes(to_mx, dtype, x)
        np.testing.assert_array_equal(q.scales, scale.reshape(q.scales.shape), err_msg=fmt)
        # torchao divides by max(scale, 2^-126): compare blocks whose scale is not 2^-127
        keep = np.repeat(q.scales != 0, 32, axis=1)
        ours = q.data[:, q.scales.shape[1]:] if fmt == "mxfp4_e2m1" else q.codes
        if fmt == "mxfp4_e2m1":
            keep = keep[:, ::2]  # two codes a byte; both share the block's scale
        np.testing.assert_array_equal(np.where(keep, ours, 0), np.where(keep, data, 0), err_msg=fmt)


def test_mx_equals_torchao_on_random_tables():
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((512, 128)) * np.exp(rng.normal(0, 4, (512, 1)))).astype(np.float32)
    x[0, :32] = 0.0  # an all-zero block
    x[1, 5] = -0.0
    _compare_torchao(x)


def test_mx_equals_torchao_on_adversarial_tables():
    x = adversarial_table(13, n=64, dim=128)
    x = np.where(np.abs(x) < 2.0**-100, np.float32(0), x)  # keep scales clear of torchao's 2^-126 floor
    _compare_torchao(x)


@pytest.mark.data
def test_mx_equals_torchao_on_real_criteo_values():
    # Real values we did not write: the 13 integer features of real Criteo rows (heavy-tailed
    # counts; missing -> 0), square-rooted so mantissas are full, signed by the row's real click
    # label, laid out as rows of 128.
    path = data_path("criteo_sample", "pytorchfm_head999.txt")
    vals = []
    for line in path.read_text(encoding="latin-1").splitlines():
        cols = line.split("\t")
        if len(cols) < 14:
            continue
        sign = 1.0 if cols[0] == "1" else -1.0
        vals += [sign * float(c) if c.lstrip("-").isdigit() else 0.0 for c in cols[1:14]]
    v = np.array(vals, np.float32)
    if v.size < 128 * 32:
        pytest.skip("too few rows in the Criteo sample")
    x = (np.sign(v) * np.sqrt(np.abs(v))).astype(np.float32)[: v.size // 128 * 128].reshape(-1, 128)
    _compare_torchao(x)
