"""Shared-microexponent formats of the Block Data Representations paper (MX9, MX6, MX4).

Per block of 16 elements along ``dim``:

- shared exponent ``e = floor(log2(amax))`` from the float's bits, clamped to ``[-127, 127]``
  (stored biased by 127, as E8M0); an all-zero block stores ``e = -127``;
- per pair of elements ``(2j, 2j + 1)``, microexponent ``s = 1`` when both have a binary exponent
  below ``e`` (a zero counts as below), else ``0``;
- element ``code = round_half_even(x / 2^(e - s - (b - 2)))`` clamped to ``±(2^(b-1) - 1)``,
  stored sign-magnitude in ``b`` bits (b = 8, 5, 3: MX9, MX6, MX4); ``-0`` keeps its sign bit;
- ``scale_mode="mse"``: per block, ``e`` or ``e + 1`` (microexponents recomputed), whichever has
  the smaller squared error (ties keep ``e``).

Integer arithmetic on the float32 bits throughout, as in ``mx.py``.
"""

from __future__ import annotations

import numpy as np

from .mx import _block_sse
from .scale import E8M0_BIAS, E8M0_NAN, SCALE_MAX, SCALE_MIN, ZERO_EXP, floor_log2_bits, pow2_f32, rne_shift, split_f32
from .spec import FormatSpec


def _micro(fl2: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Microexponent (0/1) per pair: both elements' exponents below ``e``; shape ``(..., block/2)``."""
    below = fl2 < e
    return (below[..., 0::2] & below[..., 1::2]).astype(np.int64)


def _encode_with(sign, M, E, fl2, e, spec: FormatSpec):
    b = spec.elem_bits
    s = _micro(fl2, e)
    q = e - np.repeat(s, 2, axis=-1) - (b - 2)  # value of the code's last bit
    n = np.minimum(rne_shift(M, q - E), (1 << (b - 1)) - 1)
    return s, (n | (sign << (b - 1))).astype(np.uint8)


def _values(e: np.ndarray, s: np.ndarray, codes: np.ndarray, spec: FormatSpec) -> np.ndarray:
    b = spec.elem_bits
    q = e - np.repeat(s, 2, axis=-1) - (b - 2)
    mag = (codes & ((1 << (b - 1)) - 1)).astype(np.float32) * pow2_f32(q)
    return np.where(codes >> (b - 1) == 1, -mag, mag).astype(np.float32)


def encode(xp: np.ndarray, spec: FormatSpec, block: int, scale_mode: str, nan_blocks: np.ndarray | None):
    """Padded ``xp`` ``(n, nb * block)`` -> ``(meta (n, 2 nb), codes (n, nb * block))`` uint8.

    ``meta`` is the ``nb`` shared-exponent bytes then the ``nb`` microexponent bytes.
    """
    n, width = xp.shape
    nb = width // block
    xb = xp.reshape(n, nb, block)
    if nan_blocks is not None:
        xb = np.where(nan_blocks[:, :, None], np.float32(0), xb)
    sign, M, E, fl2 = split_f32(xb)
    amax_exp = floor_log2_bits((xb.view(np.uint32) & np.uint32(0x7FFFFFFF)).max(axis=-1))
    e = np.where(amax_exp == ZERO_EXP, SCALE_MIN, np.clip(amax_exp, SCALE_MIN, SCALE_MAX))
    s, codes = _encode_with(sign, M, E, fl2, e[:, :, None], spec)
    if scale_mode == "mse":
        e1 = np.minimum(e + 1, SCALE_MAX)
        s1, codes1 = _encode_with(sign, M, E, fl2, e1[:, :, None], spec)
        sse0 = _block_sse(xb, _values(e[:, :, None], s, codes, spec))
        sse1 = _block_sse(xb, _values(e1[:, :, None], s1, codes1, spec))
        better = sse1 < sse0
        e = np.where(better, e1, e)
        s = np.where(better[:, :, None], s1, s)
        codes = np.where(better[:, :, None], codes1, codes)
    micro = (s << np.arange(block // 2, dtype=np.int64)).sum(axis=-1).astype(np.uint8)
    exps = (e + E8M0_BIAS).astype(np.uint8)
    if nan_blocks is not None:
        exps[nan_blocks] = E8M0_NAN
        micro[nan_blocks] = 0
        codes[nan_blocks] = 0
    return np.concatenate([exps, micro], axis=1), codes.reshape(n, width)


def decode(meta: np.ndarray, codes: np.ndarray, spec: FormatSpec, block: int) -> np.ndarray:
    """``(n, 2 nb)`` metadata and ``(n, nb * block)`` codes -> float32 values (exact)."""
    n, width = codes.shape
    nb = width // block
    exps = meta[:, :nb].astype(np.int64)
    e = (exps - E8M0_BIAS)[:, :, None]
    s = ((meta[:, nb:, None].astype(np.int64) >> np.arange(block // 2)) & 1)
    vals = _values(np.where(exps == E8M0_NAN, 0, e[:, :, 0])[:, :, None], s, codes.reshape(n, nb, block), spec)
    vals = np.where((exps == E8M0_NAN)[:, :, None], np.float32(np.nan), vals)
    return vals.reshape(n, width).astype(np.float32)
