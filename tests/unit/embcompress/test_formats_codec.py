"""quantize / dequantize / decode_records across every format: shapes, layouts, validation."""

import numpy as np
import pytest

import embcompress as ec
from embcompress.errors import ConfigError
from embcompress.formats import FORMATS, decode_records, get_format

RNG = np.random.default_rng(7)


def _table(n=37, dim=70, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)) * np.exp(rng.standard_normal((n, 1)))).astype(np.float32)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_roundtrip_shape_and_record_size(fmt):
    x = _table()
    q = ec.quantize(x, fmt)
    spec = get_format(fmt)
    assert q.data.dtype == np.uint8 and q.data.flags.c_contiguous
    assert q.data.shape == (37, spec.row_bytes(70))
    assert q.shape == (37, 70) and q.fmt == fmt and q.row_bytes == spec.row_bytes(70)
    assert q.nbytes == 37 * q.row_bytes
    d = ec.dequantize(q)
    assert d.dtype == np.float32 and d.shape == x.shape
    np.testing.assert_array_equal(d, decode_records(q.data, fmt, 70))
    # decode is per row: any subset of records decodes to the same rows
    rows = np.array([5, 0, 36, 5])
    np.testing.assert_array_equal(decode_records(q.data[rows], fmt, 70), d[rows])
    np.testing.assert_array_equal(ec.dequantize(q.take(rows)), d[rows])


@pytest.mark.parametrize("fmt", [f for f in FORMATS if not f.startswith("int")])
def test_requantizing_decoded_table_is_identity(fmt):
    # Decoded values lie on the grid of their block's scale, so they quantize to the same bytes.
    # (Row-wise formats re-derive scale and bias from the decoded min/max, so they may move.)
    q = ec.quantize(_table(), fmt)
    np.testing.assert_array_equal(ec.quantize(ec.dequantize(q), fmt).data, q.data)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_scales_and_codes_views(fmt):
    q = ec.quantize(_table(5, 64), fmt)
    spec = q.spec
    assert q.scales.shape == (5, spec.scale_bytes(64))
    assert q.codes.shape[0] == 5 and q.codes.shape[1] == spec.padded_dim(64)


def test_block_size_options():
    x = _table(4, 100)
    for fmt, block in [("mxfp4_e2m1", 16), ("mxfp6_e2m3", 8), ("mxint8", 64), ("mx6", 8)]:
        q = ec.quantize(x, fmt, block_size=block)
        assert q.block_size == block
        np.testing.assert_array_equal(ec.dequantize(q), decode_records(q.data, fmt, 100, block))
    assert ec.quantize(x, "mxfp8_e4m3").block_size == 32
    assert ec.quantize(x, "mx9").block_size == 16
    assert ec.quantize(x, "int8_rowwise").block_size is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fmt="mxfp4_e2m1", block_size=12), "'block_size' parameter of quantize must be a multiple of 8"),
        (dict(fmt="mx4", block_size=32), "'block_size' parameter of quantize must be 8 or 16"),
        (dict(fmt="int8_rowwise", block_size=32), "must be None for int8_rowwise"),
        (dict(fmt="mxfp8_e4m3", scale_mode="max"), "'scale_mode' parameter"),
        (dict(fmt="int4_rowwise", scale_mode="mse"), "must be 'floor' for int4_rowwise"),
        (dict(fmt="mxfp8_e4m3", nonfinite="ignore"), "'nonfinite' parameter"),
        (dict(fmt="mxfp9"), "Unknown format 'mxfp9'"),
        (dict(fmt="mxint8", n_threads=0), "'n_threads' parameter"),
    ],
)
def test_parameter_errors(kwargs, match):
    fmt = kwargs.pop("fmt")
    with pytest.raises(ConfigError, match=match):
        ec.quantize(_table(2, 32), fmt, **kwargs)


def test_input_errors():
    with pytest.raises(ConfigError, match="float32"):
        ec.quantize(np.ones((2, 4)), "fp16")  # float64 is refused, not silently rounded
    with pytest.raises(ConfigError, match="2-D"):
        ec.quantize(np.ones(4, np.float32), "fp16")
    with pytest.raises(ConfigError, match="dtype int64"):
        ec.quantize(np.ones((2, 4), np.int64), "fp16")
    with pytest.raises(ConfigError, match="QuantizedTable"):
        ec.dequantize(np.ones((2, 4), np.uint8))
    with pytest.raises(ConfigError, match=r"uint8 array \(k, 33\)"):
        decode_records(np.zeros((2, 32), np.uint8), "mxfp8_e4m3", 32)


def test_float16_input_is_accepted_exactly():
    x = _table(3, 32).astype(np.float16)
    np.testing.assert_array_equal(ec.dequantize(ec.quantize(x, "fp16")), x.astype(np.float32))


def test_empty_table():
    q = ec.quantize(np.zeros((0, 40), np.float32), "mxfp6_e3m2")
    assert q.data.shape == (0, get_format("mxfp6_e3m2").row_bytes(40))
    assert ec.dequantize(q).shape == (0, 40)


@pytest.mark.parametrize("fmt", ["fp32", "fp16", "bf16"])
def test_empty_table_plain_floats(fmt):
    # reshape(0, -1) cannot infer the row width, so the record width must be given explicitly
    q = ec.quantize(np.zeros((0, 40), np.float32), fmt)
    assert q.data.shape == (0, get_format(fmt).row_bytes(40))
    assert ec.dequantize(q).shape == (0, 40)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(scale_mode=np.array(["mse"])),  # was accepted and stored as an array (not JSON)
        dict(scale_mode=np.array(["floor", "mse"])),  # was NumPy's "truth value is ambiguous"
        dict(nonfinite=np.array(["nan_block"])),
        dict(nonfinite=np.array(["error", "nan_block"])),
    ],
)
def test_option_values_must_be_strings(kwargs):
    with pytest.raises(ConfigError, match=f"'{next(iter(kwargs))}' parameter of quantize"):
        ec.quantize(_table(2, 32), "mxfp4_e2m1", **kwargs)


@pytest.mark.parametrize(
    "fmt, row",
    [
        ("int4_rowwise", [1e6, -1.0, 0.5, 2.0]),  # range / 15 overflows the float16 scale
        ("int2_rowwise", [-7e4, 0.0, 1.0, 2.0]),  # the minimum overflows the float16 bias
        ("int8_rowwise", [3e38, -3e38, 0.0, 1.0]),  # max - min overflows float32
    ],
)
def test_rowwise_refuses_rows_its_scale_cannot_hold(fmt, row):
    # Such rows used to be stored with an inf scale or bias and decode to inf/NaN silently.
    x = np.array([[1.0, 2.0, 3.0, 4.0], row], np.float32)
    with pytest.raises(ConfigError, match=r"rows \[1\]"):
        ec.quantize(x, fmt)
    # nan_block keeps them as stored: non-finite on decode, like the NaN rows it is asked for
    with np.errstate(over="ignore", invalid="ignore"):
        assert not np.isfinite(ec.dequantize(ec.quantize(x, fmt, nonfinite="nan_block"))[1]).all()
    ok = np.array([[1.0, 2.0, 3.0, 4.0], [6e4, -6e4, 0.0, 1.0]], np.float32) / (1e4 if fmt != "int8_rowwise" else 1)
    assert np.isfinite(ec.dequantize(ec.quantize(ok, fmt))).all()


def test_torch_bfloat16_input_is_accepted_exactly():
    # torch's .numpy() has no bfloat16 (TypeError); every bf16 value is a float32, like float16
    torch = pytest.importorskip("torch")
    t = torch.tensor(_table(3, 32)).to(torch.bfloat16)
    np.testing.assert_array_equal(ec.dequantize(ec.quantize(t, "bf16")), t.float().numpy())


@pytest.mark.parametrize("fmt,big", [("fp16", 65520.0), ("fp16", -1e6), ("bf16", 3.4e38)])
def test_finite_values_beyond_a_float_format_are_refused_unless_asked(fmt, big, monkeypatch):
    # fp16's largest finite value is 65504; 65520 and beyond round to inf. Under the default
    # nonfinite="error" that was silent: the row decoded to inf (row-wise formats refuse the same).
    x = np.ones((5, 8), np.float32)
    x[3, 2] = big
    for backend in ("numpy", "auto"):
        monkeypatch.setenv("EMBCOMPRESS_KERNELS", backend)
        with pytest.raises(ConfigError, match=r"rows \[3\].*" + fmt):
            ec.quantize(x, fmt)
        q = ec.quantize(x, fmt, nonfinite="nan_block")  # kept as IEEE rounds it, when asked
        assert np.isinf(ec.dequantize(q)[3, 2]) and np.isfinite(np.delete(ec.dequantize(q), 3, axis=0)).all()
