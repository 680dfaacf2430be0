"""Exact binary exponents from float32 bits, and the E8M0 shared-scale byte.

``floor(log2(|x|))`` is read from the exponent field (and, for fp32 subnormals, from the position
of the leading mantissa bit) rather than computed with a floating-point ``log2``, which rounds up
to the next integer for values one ulp below a power of two.
"""

from __future__ import annotations

import numpy as np

E8M0_BIAS = 127
E8M0_NAN = 0xFF
SCALE_MIN = -127  # 2^-127 (byte 0): the scale of an all-zero block, as the OCP spec allows
SCALE_MAX = 127  # byte 254; 255 is NaN
# floor(log2(0)) stands in as a very small exponent so that "below e" tests hold for zeros.
ZERO_EXP = -1 << 20


def split_f32(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(sign, M, E, floor_log2)`` of float32 ``x`` with ``|x| = M * 2^E`` exactly (int64).

    ``M`` carries the implicit leading bit for normals; subnormals have ``E = -149``.
    ``floor_log2`` is ``ZERO_EXP`` for zeros. Non-finite inputs give meaningless values.
    """
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.int64)
    sign = bits >> 31
    mag = bits & 0x7FFFFFFF
    expf = mag >> 23
    mant = mag & 0x7FFFFF
    normal = expf > 0
    M = np.where(normal, mant | (1 << 23), mant)
    E = np.maximum(expf, 1) - 150
    return sign, M, E, floor_log2_bits(mag)


def bit_length(v: np.ndarray) -> np.ndarray:
    """Bit length of non-negative int64 ``v < 2^53`` (0 for 0), exact through frexp."""
    return np.frexp(v.astype(np.float64))[1].astype(np.int64)


def floor_log2_bits(mag: np.ndarray) -> np.ndarray:
    """floor(log2) of the float32 whose magnitude bits (sign cleared) are ``mag``; ZERO_EXP for 0."""
    mag = mag.astype(np.int64)
    expf = mag >> 23
    mant = mag & 0x7FFFFF
    sub = bit_length(mant) - 150  # value = mant * 2^-149
    out = np.where(expf > 0, expf - 127, sub)
    return np.where(mag == 0, ZERO_EXP, out)


def rne_shift(M: np.ndarray, s: np.ndarray) -> np.ndarray:
    """``round_half_even(M / 2^s)`` for int64 ``0 <= M < 2^24``, any int ``s`` (``s < 0`` shifts left)."""
    s = np.asarray(s, dtype=np.int64)
    left = np.clip(-s, 0, 40)
    right = np.clip(s, 0, 40)
    n = M >> right
    rem = M - (n << right)
    half = np.where(right > 0, np.int64(1) << np.maximum(right - 1, 0), 0)
    up = (right > 0) & ((rem > half) | ((rem == half) & ((n & 1) == 1)))
    return np.where(s < 0, M << left, n + up)


def e8m0_to_f32(scale_bytes: np.ndarray) -> np.ndarray:
    """The float32 value of E8M0 bytes: 2^(v - 127), byte 0 is the subnormal 2^-127, 0xFF NaN."""
    v = scale_bytes.astype(np.uint32)
    bits = np.where(v == 0, np.uint32(0x00400000), v << 23)
    out = bits.astype(np.uint32).view(np.float32)
    return np.where(v == E8M0_NAN, np.float32(np.nan), out).astype(np.float32)


def pow2_f32(e: np.ndarray) -> np.ndarray:
    """2^e as float32 for integer ``-149 <= e <= 127`` (exact, subnormals included)."""
    return np.ldexp(np.float32(1.0), np.asarray(e, dtype=np.int32)).astype(np.float32)
