"""Row-wise integer baselines (int8 / int4 / int2 with a per-row scale and bias), fbgemm's way.

The arithmetic replicates fbgemm's quantizers exactly, so that :func:`to_torch_packed` gives the
bytes of ``torch.ops.quantized.embedding_bag_byte_prepack`` / ``embedding_bag_4bit_prepack``
(``FloatOrHalfToFused8BitRowwiseQuantizedSBFloat`` and ``...NBitRowwiseQuantizedSBHalf``):

- int8: ``range = max - min``; ``scale = range / 255``, ``bias = min`` (float32);
  ``code = rint((x - min) * (255 / (range + 1e-8)))``, all in float32.
- int4, int2 (``b`` bits): ``bias = fp16(min)`` and ``min`` is replaced by its fp16 value;
  ``range = max - min``; ``scale = fp16(range / (2^b - 1))`` (1 when the range or the fp16 scale
  is 0, or when ``1 / scale`` overflows); ``code = clamp(rint((x - min) / scale), 0, 2^b - 1)``
  with ``1 / scale`` precomputed in float32. int2 is fbgemm's 2-bit rule unchanged. Values whose
  fp16 bias overflows (``|min| > 65504``) follow fbgemm's vector path (codes 0).
- min and max follow fbgemm's AVX2 reduction order (8 lanes, then the tail), which matters only
  for the sign of a zero extreme, and that sign reaches the stored bias and scale bytes.

Our row record keeps the scale and bias first (``spec.py``); torch's keeps them last.
Decoding is ``code * scale + bias`` in float32 (two roundings).
"""

from __future__ import annotations

import numpy as np

from ..errors import param_error
from .spec import FormatSpec

_EPS = np.float32(1e-8)
_VLEN = 8


def _zero_sign(row: np.ndarray, extreme: str) -> bool:
    """True when fbgemm's reduction of ``row`` ends on ``-0`` for a zero min (or max)."""
    vec = row.shape[0] // _VLEN * _VLEN
    m = np.float32(0)
    # Each lane keeps its last element equal to the extreme (vminps/vmaxps return the second
    # operand on ties); the lane reduction and the tail keep the first (std::min / std::max).
    for lane in range(_VLEN):
        hits = np.flatnonzero(row[lane:vec:_VLEN] == m)
        if hits.size:
            return bool(np.signbit(row[lane:vec:_VLEN][hits[-1]]))
    tail = row[vec:]
    return bool(np.signbit(tail[np.flatnonzero(tail == m)[0]]))


def fbgemm_min_max(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row min and max of finite float32 ``x`` with fbgemm's choice of signed zero."""
    mn = x.min(axis=1)
    mx = x.max(axis=1)
    has_neg0 = (np.signbit(x) & (x == 0)).any(axis=1)
    has_pos0 = (~np.signbit(x) & (x == 0)).any(axis=1)
    mixed = has_neg0 & has_pos0
    for arr, name in ((mn, "min"), (mx, "max")):
        for r in np.flatnonzero(mixed & (arr == 0)):
            arr[r] = np.float32(-0.0) if _zero_sign(x[r], name) else np.float32(0.0)
    return mn, mx


def _codes_from(t: np.ndarray, top: int) -> np.ndarray:
    # cvtps_epi32 gives INT_MIN (then 0 after the saturating packs) for NaN, inf and >= 2^31.
    ok = np.isfinite(t) & (t < 2.0**31)
    return np.where(ok, np.clip(np.rint(np.where(ok, t, 0)), 0, top), 0).astype(np.uint8)


def encode(x: np.ndarray, spec: FormatSpec, nan_rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` float32 -> ``(meta (n, 8 or 4) uint8, codes (n, padded_dim) uint8)``."""
    n, dim = x.shape
    if nan_rows is not None:
        x = np.where(nan_rows[:, None], np.float32(0), x)
    mn, mx = fbgemm_min_max(x)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        if spec.elem_bits == 8:
            rng = (mx - mn).astype(np.float32)
            scale = (rng / np.float32(255)).astype(np.float32)
            inv = (np.float32(255) / (rng + _EPS)).astype(np.float32)
            t = ((x - mn[:, None]).astype(np.float32) * inv[:, None]).astype(np.float32)
            codes = _codes_from(t, 255)
            if nan_rows is not None:
                scale = np.where(nan_rows, np.float32(np.nan), scale)
                mn = np.where(nan_rows, np.float32(np.nan), mn)
            meta = np.stack([scale, mn], axis=1).astype("<f4").view(np.uint8)
        else:
            top = (1 << spec.elem_bits) - 1
            bias16 = mn.astype(np.float16)
            mn = bias16.astype(np.float32)
            rng = (mx - mn).astype(np.float32)
            scale = np.where(rng == 0, np.float32(1), rng / np.float32(top)).astype(np.float32)
            scale = scale.astype(np.float16).astype(np.float32)
            scale = np.where(scale == 0, np.float32(1), scale)
            inv = (np.float32(1) / scale).astype(np.float32)
            bad = np.isinf(inv)
            scale = np.where(bad, np.float32(1), scale)
            inv = np.where(bad, np.float32(1), inv)
            t = ((x - mn[:, None]).astype(np.float32) * inv[:, None]).astype(np.float32)
            codes = _codes_from(t, top)
            scale16 = scale.astype(np.float16)
            if nan_rows is not None:
                scale16 = np.where(nan_rows, np.float16(np.nan), scale16)
                bias16 = np.where(nan_rows, np.float16(np.nan), bias16)
            meta = np.stack([scale16, bias16], axis=1).astype("<f2").view(np.uint8)
    if nan_rows is not None:
        codes[nan_rows] = 0
    padded = spec.padded_dim(dim)
    if padded != dim:
        codes = np.concatenate([codes, np.zeros((n, padded - dim), np.uint8)], axis=1)
    return np.ascontiguousarray(meta), codes


def scale_bias(meta: np.ndarray, spec: FormatSpec) -> tuple[np.ndarray, np.ndarray]:
    """float32 per-row scale and bias from the record's metadata bytes."""
    dt = "<f4" if spec.elem_bits == 8 else "<f2"
    sb = np.ascontiguousarray(meta).view(dt).astype(np.float32)
    return sb[:, 0], sb[:, 1]


def decode(meta: np.ndarray, codes: np.ndarray, spec: FormatSpec) -> np.ndarray:
    scale, bias = scale_bias(meta, spec)
    return (codes.astype(np.float32) * scale[:, None] + bias[:, None]).astype(np.float32)


def to_torch_packed(q) -> np.ndarray:
    """The table in torch's fused row-wise layout: ``codes | scale | bias`` per row (uint8).

    For ``int8_rowwise`` the bytes equal ``torch.ops.quantized.embedding_bag_byte_prepack`` of the
    same float table; for ``int4_rowwise`` (even ``dim``) those of ``embedding_bag_4bit_prepack``;
    for ``int2_rowwise`` (``dim`` a multiple of 4) those of ``embedding_bag_2bit_prepack``. Torch's
    ``embedding_bag_{byte,4bit,2bit}_rowwise_offsets`` operators then pool our tables.
    """
    spec = getattr(q, "spec", None)
    if not isinstance(spec, FormatSpec):
        raise param_error(
            "q", "to_torch_packed", "be a row-wise QuantizedTable; quantize a float table first: "
            "to_torch_packed(embcompress.quantize(x, 'int8_rowwise'))", type(q).__name__,
        )
    if spec.family != "rowwise":
        raise param_error("q", "to_torch_packed", "be an int8_rowwise, int4_rowwise or int2_rowwise table", q.fmt)
    dim = q.shape[1]
    per_byte = 8 // spec.elem_bits
    if dim % per_byte:
        raise param_error(
            "q", "to_torch_packed", f"have a dim that is a multiple of {per_byte} for {q.fmt} (torch packs no partial bytes)", dim
        )
    meta = spec.row_meta_bytes
    data = q.data
    return np.ascontiguousarray(np.concatenate([data[:, meta:], data[:, :meta]], axis=1))
