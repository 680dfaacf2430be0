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
