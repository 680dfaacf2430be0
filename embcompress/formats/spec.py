"""The format table: every storage format's name, element type, block and row-record layout.

This is the one registry of format names. The codecs (``mx.py``, ``bdr.py``, ``rowwise.py``), the
table file and the lookup kernel all read the layout from here.

Row records
-----------
A table of shape ``(n_rows, dim)`` is stored as ``n_rows`` contiguous records of ``row_bytes``
bytes each (no padding between rows), so one read serves one row. Blocks run along ``dim``; a
``dim`` that is not a multiple of the block is padded with zeros inside the last block and cut
off on decode. With ``nb = ceil(dim / block)`` blocks a row record is:

- MX (OCP Microscaling v1.0): ``nb`` E8M0 scale bytes, then the element codes of all blocks.
  8-bit codes one per byte; 6-bit codes four per three bytes (``v0 | v1 << 6 | v2 << 12 |
  v3 << 18``, little endian); 4-bit codes two per byte, element ``2i`` in the low nibble.
  FP element codes use the bit layout of ``ml_dtypes`` (sign, exponent, mantissa); MXINT8 codes
  are two's complement with an implicit scale of 2^-6.
  E8M0: byte ``v`` means 2^(v - 127); 0xFF is NaN (a block with non-finite input, when asked for).
- BDR shared microexponents (MX9, MX6, MX4): ``nb`` shared-exponent bytes (biased by 127, as
  E8M0), then ``nb`` microexponent bytes (bit ``j`` is the microexponent of elements ``2j`` and
  ``2j + 1`` of that block), then the element codes of all blocks as one little-endian bit stream
  per block (element ``i`` at bits ``[b*i, b*i + b)``; ``b * block / 8`` bytes a block).
  Element codes are sign-magnitude: bit ``b - 1`` is the sign, the low ``b - 1`` bits the
  magnitude.
- Row-wise integer (``int8_rowwise``, ``int4_rowwise``, ``int2_rowwise``): the row's scale and
  bias (float32 for int8, float16 for int4 and int2, as fbgemm stores them), then unsigned codes
  (``x ~ code * scale + bias``), packed low bits first (4-bit: element ``2i`` in the low nibble;
  2-bit: element ``4i`` in the lowest two bits).
- Plain floats (``fp32``, ``fp16``, ``bf16``): the row's values, little endian.
"""

from __future__ import annotations

import difflib

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class FormatSpec:
    """One storage format.

    ``elem_bits`` is the width of one element code; ``bits_per_element`` is the average stored
    width of a row's values, its metadata (scales, microexponents, row scale and bias) included.
    """

    name: str
    family: str  # "mx" | "bdr" | "rowwise" | "float"
    elem_bits: int  # bits of one element code (BDR: including the sign)
    block_size: int | None  # default block along dim; None: the whole row (row-wise, floats)
    # MX floating-point elements: exponent bits, mantissa bits, exponent bias, largest exponent of
    # a normal (emax), largest normal value. For mxint8 emax = 0 (codes k / 64, |k| <= 127).
    ebits: int = 0
    mbits: int = 0
    bias: int = 0
    emax: int = 0
    max_normal: float = 0.0
    # Row-wise: bytes of the per-row scale and of the bias (float32 = 4, float16 = 2).
    row_meta_bytes: int = 0

    def n_blocks(self, dim: int, block_size: int | None = None) -> int:
        block = block_size or self.block_size
        return 1 if block is None else -(-dim // block)

    def padded_dim(self, dim: int, block_size: int | None = None) -> int:
        block = block_size or self.block_size
        if block is None:
            per_byte = 8 // self.elem_bits if self.elem_bits < 8 else 1
            return -(-dim // per_byte) * per_byte
        return self.n_blocks(dim, block) * block

    def scale_bytes(self, dim: int, block_size: int | None = None) -> int:
        """Bytes of per-row metadata: block scales (and microexponents), or row scale + bias."""
        nb = self.n_blocks(dim, block_size)
        if self.family == "mx":
            return nb
        if self.family == "bdr":
            return 2 * nb
        if self.family == "rowwise":
            return self.row_meta_bytes
        return 0

    def code_bytes(self, dim: int, block_size: int | None = None) -> int:
        return self.padded_dim(dim, block_size) * self.elem_bits // 8

    def row_bytes(self, dim: int, block_size: int | None = None) -> int:
        """Bytes of one row record of a ``dim``-wide row."""
        return self.scale_bytes(dim, block_size) + self.code_bytes(dim, block_size)

    def bits_per_element(self, dim: int, block_size: int | None = None) -> float:
        """Average stored bits per value of a ``dim``-wide row, metadata and padding included."""
        return 8.0 * self.row_bytes(dim, block_size) / dim


_FP = dict(family="mx", block_size=32)
FORMATS: dict[str, FormatSpec] = {
    s.name: s
    for s in [
        # OCP MX v1.0 element formats; max_normal = 2^emax * (2 - 2^-mbits) except where the
        # format gives up its top mantissa code for NaN (E4M3: 2^8 * 1.75 = 448).
        FormatSpec("mxfp8_e4m3", elem_bits=8, ebits=4, mbits=3, bias=7, emax=8, max_normal=448.0, **_FP),
        FormatSpec("mxfp8_e5m2", elem_bits=8, ebits=5, mbits=2, bias=15, emax=15, max_normal=57344.0, **_FP),
        FormatSpec("mxfp6_e3m2", elem_bits=6, ebits=3, mbits=2, bias=3, emax=4, max_normal=28.0, **_FP),
        FormatSpec("mxfp6_e2m3", elem_bits=6, ebits=2, mbits=3, bias=1, emax=2, max_normal=7.5, **_FP),
        FormatSpec("mxfp4_e2m1", elem_bits=4, ebits=2, mbits=1, bias=1, emax=2, max_normal=6.0, **_FP),
        FormatSpec("mxint8", elem_bits=8, emax=0, max_normal=127 / 64, **_FP),
        # Block Data Representations: b-bit sign-magnitude elements (b = 8, 5, 3), a shared 8-bit
        # exponent per 16 and a 1-bit microexponent per pair: 8/16 + 1/2 + b = b + 1 bits.
        FormatSpec("mx9", family="bdr", elem_bits=8, block_size=16),
        FormatSpec("mx6", family="bdr", elem_bits=5, block_size=16),
        FormatSpec("mx4", family="bdr", elem_bits=3, block_size=16),
        # Row-wise integer baselines with fbgemm's per-row scale and bias.
        FormatSpec("int8_rowwise", family="rowwise", elem_bits=8, block_size=None, row_meta_bytes=8),
        FormatSpec("int4_rowwise", family="rowwise", elem_bits=4, block_size=None, row_meta_bytes=4),
        FormatSpec("int2_rowwise", family="rowwise", elem_bits=2, block_size=None, row_meta_bytes=4),
        FormatSpec("fp32", family="float", elem_bits=32, block_size=None),
        FormatSpec("fp16", family="float", elem_bits=16, block_size=None),
        FormatSpec("bf16", family="float", elem_bits=16, block_size=None),
    ]
}


def get_format(name: str) -> FormatSpec:
    """The spec of format ``name``, or a ConfigError that lists the known names."""
    try:
        return FORMATS[name]
    except (KeyError, TypeError):
        near = _near_formats(name) if isinstance(name, str) else []
        hint = f" Did you mean {' or '.join(map(repr, near))}?" if near else ""
        raise ConfigError(
            f"Unknown format {name!r}.{hint} Use one of: {', '.join(FORMATS)}."
        ) from None


def _near_formats(name: str) -> list[str]:
    """Names a user may have meant: the name in lower case, a family's short name as papers and
    our reports print it ('MXFP4', 'mxfp8', 'int8'), or a typo of one letter or two."""
    low = name.strip().lower().replace("-", "_")
    near = [f for f in FORMATS if f == low or f.startswith(low + "_")]
    return near or difflib.get_close_matches(low, list(FORMATS), n=2, cutoff=0.85)
