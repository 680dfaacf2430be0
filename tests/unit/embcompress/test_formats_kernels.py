"""The compiled quantizers give the NumPy reference's bytes, bit for bit.

Runs under both backends: with the compiled kernels built, ``quantize`` uses them and is compared
with ``encode_numpy``; the kernel modules are also called directly (skipped when not built).
"""

import importlib

import numpy as np
import pytest

import embcompress as ec
from embcompress.formats import FORMATS, get_format
from embcompress.formats.codec import encode_numpy
from tests.unit.embcompress.formats_inputs import adversarial_table, random_table

BLOCKED = [f for f, s in FORMATS.items() if s.family in ("mx", "bdr")]
ROWWISE = [f for f, s in FORMATS.items() if s.family == "rowwise"]


def _kernel(spec):
    try:
        return importlib.import_module(f"embcompress.kernels._quantize_{spec.family}")
    except ImportError:
        pytest.skip("compiled quantizer not built")


def _compiled(x, spec, block, mse, nan_block, threads):
    out = np.empty((x.shape[0], spec.row_bytes(x.shape[1], block)), np.uint8)
    bad = _kernel(spec).quantize(np.ascontiguousarray(x), out, spec, block, mse, nan_block, threads)
    return out, bad


@pytest.mark.parametrize("fmt", BLOCKED)
@pytest.mark.parametrize("mode", ["floor", "mse"])
@pytest.mark.parametrize("make", [adversarial_table, random_table])
def test_compiled_equals_numpy(fmt, mode, make):
    spec = get_format(fmt)
    x = np.concatenate([make(seed) for seed in range(3)])
    ref = encode_numpy(x, spec, spec.block_size, mode)
    for threads in (1, 2):
        out, bad = _compiled(x, spec, spec.block_size, mode == "mse", False, threads)
        assert bad == 0
        np.testing.assert_array_equal(out, ref)
    np.testing.assert_array_equal(ec.quantize(x, fmt, scale_mode=mode).data, ref)


@pytest.mark.parametrize("fmt, block", [("mxfp4_e2m1", 8), ("mxfp6_e3m2", 16), ("mxint8", 64), ("mxfp8_e5m2", 256), ("mx4", 8), ("mx9", 8)])
def test_compiled_equals_numpy_other_blocks_and_padding(fmt, block):
    spec = get_format(fmt)
    for dim in (1, 7, block + 3, 3 * block):
        x = adversarial_table(dim, n=40, dim=dim)
        ref = encode_numpy(x, spec, block, "mse")
        out, _ = _compiled(x, spec, block, True, False, 2)
        np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("fmt", BLOCKED)
def test_compiled_nonfinite_blocks(fmt):
    spec = get_format(fmt)
    x = random_table(1, n=20, dim=70)
    x[3, 5] = np.nan
    x[7, 69] = np.inf
    x[7, 0] = -np.inf
    ref = encode_numpy(x, spec, spec.block_size, "floor", "nan_block")
    out, bad = _compiled(x, spec, spec.block_size, False, True, 2)
    assert bad == 3  # row 3 block 0, row 7 first and last block
    np.testing.assert_array_equal(out, ref)
    _, bad = _compiled(x, spec, spec.block_size, False, False, 1)
    assert bad == 3


@pytest.mark.parametrize("fmt", ROWWISE)
@pytest.mark.parametrize("make", [adversarial_table, random_table])
def test_compiled_rowwise_equals_numpy(fmt, make):
    spec = get_format(fmt)
    x = np.concatenate([make(seed) for seed in range(3)])
    x[7, ::3] = -0.0
    x[8] = 0.0
    x[8, 1::2] = -0.0  # the reduction order picks the sign of a zero min and max
    kernel = _kernel(spec)
    for dim in (x.shape[1], 37, 8, 1):
        xs = np.ascontiguousarray(x[:, :dim])
        ref = encode_numpy(xs, spec, None)
        for threads in (1, 2):
            out = np.empty_like(ref)
            assert kernel.quantize(xs, out, spec, False, threads) == 0
            np.testing.assert_array_equal(out, ref)
    wide = random_table(9, n=3, dim=4101)  # wider than the kernel's stack buffer
    ref = encode_numpy(wide, spec, None)
    out = np.empty_like(ref)
    kernel.quantize(wide, out, spec, False, 2)
    np.testing.assert_array_equal(out, ref)
    xs = x.copy()
    xs[3, 4] = np.nan
    xs[9, 0] = -np.inf
    ref = encode_numpy(xs, spec, None, "floor", "nan_block")
    out = np.empty_like(ref)
    assert kernel.quantize(xs, out, spec, True, 2) == 2
    np.testing.assert_array_equal(out, ref)


def test_compiled_fp16_conversion_equals_numpy():
    kernel = _kernel(get_format("int4_rowwise"))
    rng = np.random.default_rng(0)
    bits = np.concatenate([
        rng.integers(0, 1 << 32, 1 << 20, dtype=np.uint64).astype(np.uint32),
        np.arange(0x33000000 - 64, 0x33000000 + 64, dtype=np.uint32),  # around 2^-25
        np.arange(0x387FC000, 0x38802000, 7, dtype=np.uint32),  # half subnormal/normal edge
        np.arange(0x477FE000, 0x47800100, dtype=np.uint32),  # around 65504 / 65520
    ])
    bits = np.concatenate([bits, bits | 0x80000000])
    x = bits.view(np.float32)
    x = x[~np.isnan(x)]
    with np.errstate(over="ignore"):  # overflow to inf is part of what is compared
        want = x.astype(np.float16).view(np.uint16)
    np.testing.assert_array_equal(kernel.f32_to_f16_bits(x), want)
