"""Plain float rows (fp32, fp16, bf16): the values themselves, little endian.

fp16 is numpy's IEEE cast (round to nearest even; beyond 65504 becomes inf, as ``tensor.half()``);
bf16 rounds the float32 bits to nearest even and maps NaN to 0x7FC0, as torch does.
"""

from __future__ import annotations

import numpy as np

from .spec import FormatSpec


def encode(x: np.ndarray, spec: FormatSpec) -> np.ndarray:
    if spec.name == "fp32":
        return x.astype("<f4")
    if spec.name == "fp16":
        with np.errstate(over="ignore"):
            return x.astype("<f2")
    bits = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    with np.errstate(over="ignore"):  # only NaN bit patterns can wrap, and they are replaced
        rounded = (bits + np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
    return np.where(np.isnan(x), 0x7FC0, rounded).astype("<u2")  # torch's canonical NaN


def decode(raw: np.ndarray, spec: FormatSpec, dim: int) -> np.ndarray:
    """``raw`` (n, dim * bytes) uint8 -> float32 values."""
    raw = np.ascontiguousarray(raw)
    if spec.name == "fp32":
        return raw.view("<f4").astype(np.float32)
    if spec.name == "fp16":
        return raw.view("<f2").astype(np.float32)
    return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)


def codes_view(raw: np.ndarray, spec: FormatSpec) -> np.ndarray:
    """The element bit patterns (uint16 for fp16/bf16, uint32 for fp32)."""
    return np.ascontiguousarray(raw).view("<u4" if spec.elem_bits == 32 else "<u2")
