"""OCP Microscaling v1.0 (MXFP8/6/4, MXINT8): NumPy reference encoder and decoder.

Per block of ``k`` elements along ``dim`` (k = 32 by default):

- shared exponent ``X = floor(log2(amax)) - emax`` from the float's bits, clamped to
  ``[-127, 127]``; an all-zero block gets ``X = -127`` (byte 0);
- ``scale_mode="mse"`` instead keeps, per block, whichever of ``X`` and ``X + 1`` (at most 127)
  gives the smaller squared error (ties keep ``X``); any OCP decoder reads the result unchanged;
- each element ``x / 2^X`` rounds to nearest, ties to even, onto the element grid (subnormals
  kept) and saturates at the largest normal; the sign is kept, so ``-0`` stays ``-0``;
- MXINT8 elements are two's complement ``k`` with value ``k / 64``, ``|k| <= 127`` (odd
  symmetry); two's complement has no ``-0``, so ``-0`` encodes as ``0``.

Every step is integer arithmetic on the float32 bits (``|x| = M * 2^E``), so the result is exact
for every input, fp32 subnormals included. The compiled quantizer (``kernels/_quantize_mx.pyx``)
implements the same steps and is tested against this module bit for bit.
"""

from __future__ import annotations

import functools

import numpy as np

from .scale import E8M0_BIAS, E8M0_NAN, SCALE_MAX, SCALE_MIN, ZERO_EXP, e8m0_to_f32, floor_log2_bits, rne_shift, split_f32
from .spec import FormatSpec


def is_int(spec: FormatSpec) -> bool:
    return spec.ebits == 0


def emin(spec: FormatSpec) -> int:
    """Exponent of the smallest normal of the element format."""
    return 1 - spec.bias


def element_value(spec: FormatSpec, code: int) -> float:
    """The value of one element code (sign included), NaN/inf where the format reserves them."""
    bits = spec.elem_bits
    if is_int(spec):
        k = code - 256 if code >= 128 else code
        return k / 64.0
    sign = -1.0 if code >> (bits - 1) else 1.0
    mag = code & ((1 << (bits - 1)) - 1)
    e_field, m = mag >> spec.mbits, mag & ((1 << spec.mbits) - 1)
    if spec.name == "mxfp8_e4m3" and mag == 0x7F:  # S.1111.111 is NaN
        return float("nan")
    if spec.name == "mxfp8_e5m2" and e_field == 31:  # IEEE-like: inf and NaN
        return sign * float("inf") if m == 0 else float("nan")
    if e_field == 0:
        return sign * m * 2.0 ** (emin(spec) - spec.mbits)
    return sign * (1 + m / 2**spec.mbits) * 2.0 ** (e_field - spec.bias)


@functools.lru_cache(maxsize=None)
def element_lut(spec: FormatSpec) -> np.ndarray:
    """float32 value of every code ``0 .. 2^bits - 1`` (read-only)."""
    lut = np.array([element_value(spec, c) for c in range(1 << spec.elem_bits)], dtype=np.float32)
    lut.flags.writeable = False
    return lut


@functools.lru_cache(maxsize=None)
def max_code(spec: FormatSpec) -> int:
    """Magnitude code of the largest normal (saturation bound); 127 for MXINT8."""
    if is_int(spec):
        return 127
    lut = element_lut(spec)
    return int(np.flatnonzero(lut == np.float32(spec.max_normal))[0])


def _encode_elements(sign, M, E, fl2, X, spec: FormatSpec) -> np.ndarray:
    """Element codes of ``(sign, M, E, fl2)`` under shared exponents ``X`` (broadcast), uint8."""
    if is_int(spec):
        n = np.minimum(rne_shift(M, X - 6 - E), 127)
        return np.where(sign == 1, (-n) & 0xFF, n).astype(np.uint8)
    lo = emin(spec)
    e = np.maximum(fl2 - X, lo)  # element exponent, subnormal range at `lo`
    q = e - spec.mbits  # value of the last mantissa bit, relative to the scale
    n = rne_shift(M, q + X - E)
    mag = np.minimum(((e - lo) << spec.mbits) + n, max_code(spec))
    return (mag | (sign << (spec.elem_bits - 1))).astype(np.uint8)


def _block_sse(xb: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """Squared error per block, summed in element order in float64 (the compiled kernel's order).

    Each difference of two float32 values within a block is exact in float64 and so is its
    square, so only the running sum rounds, identically in both backends.
    """
    d = xb.astype(np.float64) - dec.astype(np.float64)
    acc = np.zeros(xb.shape[:-1], dtype=np.float64)
    for j in range(xb.shape[-1]):
        acc += d[..., j] * d[..., j]
    return acc


def encode(xp: np.ndarray, spec: FormatSpec, block: int, scale_mode: str, nan_blocks: np.ndarray | None):
    """Encode padded ``xp`` ``(n, nb * block)`` float32 -> ``(scales (n, nb), codes (n, nb * block))`` uint8.

    ``nan_blocks`` (bool ``(n, nb)``) marks blocks with non-finite input: they store the E8M0 NaN
    scale and zero codes.
    """
    n, width = xp.shape
    nb = width // block
    xb = xp.reshape(n, nb, block)
    if nan_blocks is not None:
        xb = np.where(nan_blocks[:, :, None], np.float32(0), xb)
    sign, M, E, fl2 = split_f32(xb)
    amax_bits = (xb.view(np.uint32) & np.uint32(0x7FFFFFFF)).max(axis=-1)
    amax_exp = floor_log2_bits(amax_bits)
    X = np.where(amax_exp == ZERO_EXP, SCALE_MIN, np.clip(amax_exp - spec.emax, SCALE_MIN, SCALE_MAX))
    codes = _encode_elements(sign, M, E, fl2, X[:, :, None], spec)
    if scale_mode == "mse":
        X1 = np.minimum(X + 1, SCALE_MAX)
        codes1 = _encode_elements(sign, M, E, fl2, X1[:, :, None], spec)
        lut = element_lut(spec)
        # floor + 1 can round a block's top element past float32's range (inf): it then loses.
        with np.errstate(over="ignore", invalid="ignore"):
            sse0 = _block_sse(xb, lut[codes] * e8m0_to_f32(X + E8M0_BIAS)[:, :, None])
            sse1 = _block_sse(xb, lut[codes1] * e8m0_to_f32(X1 + E8M0_BIAS)[:, :, None])
        better = sse1 < sse0
        X = np.where(better, X1, X)
        codes = np.where(better[:, :, None], codes1, codes)
    scales = (X + E8M0_BIAS).astype(np.uint8)
    if nan_blocks is not None:
        scales[nan_blocks] = E8M0_NAN
        codes[nan_blocks] = 0
    return scales, codes.reshape(n, width)


def decode(scales: np.ndarray, codes: np.ndarray, spec: FormatSpec, block: int) -> np.ndarray:
    """``(n, nb)`` scale bytes and ``(n, nb * block)`` codes -> float32 values (exact products)."""
    n, width = codes.shape
    vals = element_lut(spec)[codes].reshape(n, width // block, block)
    with np.errstate(over="ignore"):  # large codes under scale 2^127 overflow to inf, as they should
        return (vals * e8m0_to_f32(scales)[:, :, None]).reshape(n, width)
