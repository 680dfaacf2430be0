"""Bit packing of element codes into row records: one little-endian bit stream per row.

Code ``i`` of a row occupies bits ``[b*i, b*i + b)`` of the stream, so 4-bit codes put element
``2i`` in the low nibble, 2-bit codes put element ``4i`` in the lowest two bits, and 6-bit codes
fill three bytes with ``v0 | v1 << 6 | v2 << 12 | v3 << 18`` -- the layouts ``spec.py`` documents.
Because every block holds a whole number of bytes, the row stream is also the concatenation of
the block streams (the BDR layout).
"""

from __future__ import annotations

import numpy as np


def packed_bytes(n_codes: int, bits: int) -> int:
    return n_codes * bits // 8


def pack(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack ``codes`` (uint8, ``(n, m)``, each ``< 2^bits``) into ``(n, m * bits / 8)`` uint8."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    n, m = codes.shape
    if bits == 8:
        return codes.copy()
    if 8 % bits == 0:
        k = 8 // bits
        grouped = codes.reshape(n, m // k, k).astype(np.uint8)
        out = np.zeros((n, m // k), dtype=np.uint8)
        for j in range(k):
            out |= grouped[:, :, j] << np.uint8(bits * j)
        return out
    # 3, 5, 6 bits: 8 codes make exactly `bits` bytes.
    grouped = codes.reshape(n, m // 8, 8).astype(np.uint64)
    word = np.zeros((n, m // 8), dtype=np.uint64)
    for j in range(8):
        word |= grouped[:, :, j] << np.uint64(bits * j)
    out = np.empty((n, m // 8, bits), dtype=np.uint8)
    for i in range(bits):
        out[:, :, i] = (word >> np.uint64(8 * i)) & np.uint64(0xFF)
    return out.reshape(n, m * bits // 8)


def unpack(packed: np.ndarray, bits: int, m: int) -> np.ndarray:
    """Inverse of :func:`pack`: ``(n, m * bits / 8)`` uint8 -> ``(n, m)`` uint8 codes."""
    packed = np.ascontiguousarray(packed, dtype=np.uint8)
    n = packed.shape[0]
    if bits == 8:
        return packed[:, :m].copy()
    mask = (1 << bits) - 1
    if 8 % bits == 0:
        k = 8 // bits
        out = np.empty((n, m // k, k), dtype=np.uint8)
        for j in range(k):
            out[:, :, j] = (packed[:, : m // k] >> np.uint8(bits * j)) & np.uint8(mask)
        return out.reshape(n, m)
    grouped = packed[:, : m * bits // 8].reshape(n, m // 8, bits).astype(np.uint64)
    word = np.zeros((n, m // 8), dtype=np.uint64)
    for i in range(bits):
        word |= grouped[:, :, i] << np.uint64(8 * i)
    out = np.empty((n, m // 8, 8), dtype=np.uint8)
    for j in range(8):
        out[:, :, j] = (word >> np.uint64(bits * j)) & np.uint64(mask)
    return out.reshape(n, m)
