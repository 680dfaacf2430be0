"""The public codec: ``quantize``, ``dequantize`` and the reference decode of row records.

``quantize`` validates once, then runs the compiled quantizer when it is built (MX, BDR and
row-wise families; ``EMBCOMPRESS_KERNELS=numpy`` forces the NumPy reference) or the NumPy reference of
``mx.py`` / ``bdr.py`` / ``rowwise.py`` / ``floats.py``. Both give the same bytes.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError, param_error
from ..kernels import compiled, team_size
from . import bdr, floats, mx, rowwise
from .packing import pack, unpack
from .spec import FORMATS, FormatSpec, get_format

SCALE_MODES = ("floor", "mse")
NONFINITE = ("error", "nan_block")


def resolve_block(spec: FormatSpec, block_size, owner: str = "quantize") -> int | None:
    """The block size a table of ``spec`` uses: the format default for None, else validated."""
    if block_size is None:
        return spec.block_size
    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)):
        raise param_error("block_size", owner, "be an int or None", block_size)
    block_size = int(block_size)
    if spec.family == "mx":
        if block_size < 8 or block_size % 8 or block_size > 4096:
            raise param_error(
                "block_size", owner, f"be a multiple of 8 between 8 and 4096 for {spec.name} (the default is 32)", block_size
            )
    elif spec.family == "bdr":
        if block_size not in (8, 16):
            raise param_error(
                "block_size", owner, f"be 8 or 16 for {spec.name} (one microexponent byte per block; the default is 16)", block_size
            )
    else:
        raise param_error("block_size", owner, f"be None for {spec.name}, which scales whole rows", block_size)
    return block_size


def _spec_of(fmt, owner: str) -> FormatSpec:
    if isinstance(fmt, FormatSpec):
        return fmt
    if not isinstance(fmt, str):
        raise param_error("fmt", owner, f"be a format name, one of {list(FORMATS)}", fmt)
    return get_format(fmt)


def _as_table(x, owner: str) -> np.ndarray:
    is_torch = type(x).__module__.startswith("torch")
    if is_torch:
        import torch  # (already imported: x comes from it)

        if not isinstance(x, torch.Tensor):
            weight = isinstance(getattr(x, "weight", None), torch.Tensor)
            must = "be a float32 array or tensor (n_rows, dim)" + ("; pass the module's table, x.weight" if weight else "")
            raise param_error("x", owner, must, f"an object of type {type(x).__name__}")
        # (a lazily negated or conjugated view has no .numpy() until it is resolved)
        x = x.detach().cpu().resolve_conj().resolve_neg()
        if x.is_floating_point() and x.element_size() < 4 and str(x.dtype) != "torch.float16":
            x = x.float()  # bfloat16, float8: NumPy has no such dtype; float32 holds every value
        x = x.numpy()
    if callable(getattr(x, "dequantize", None)) and hasattr(x, "fmt"):  # a QuantizedTable, a TableFile
        raise param_error(
            "x", owner, "be a float table (n_rows, dim); to requantize a table, pass its values: x.dequantize()",
            f"an object of type {type(x).__name__}, of format {x.fmt!r}",
        )
    try:
        arr = np.asarray(x)
    except ValueError:  # (numpy's "inhomogeneous shape")
        raise param_error("x", owner, "be a 2-D float32 table (n_rows, dim), rows of equal length",
                          "lists of different lengths") from None
    # the conversion a user can apply to what was passed: a tensor or a list has no .astype
    to_f32 = "x.float()" if is_torch else "x.astype(np.float32)" if isinstance(x, np.ndarray) else "np.asarray(x, dtype=np.float32)"
    if arr.dtype.kind != "f":
        raise param_error("x", owner, f"be a float32 array (n_rows, dim); convert with {to_f32}", f"an array of dtype {arr.dtype}")
    if arr.dtype.itemsize > 4:
        raise param_error(
            "x", owner, f"be float32 (or float16); convert with {to_f32}, which rounds", f"dtype {arr.dtype}"
        )
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise param_error("x", owner, "be a 2-D table (n_rows, dim) with dim >= 1", f"shape {arr.shape}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _nonfinite_rows_error(x: np.ndarray) -> ConfigError:
    rows = np.flatnonzero(~np.isfinite(x).all(axis=1))
    shown = ", ".join(map(str, rows[:10])) + (f", ... ({rows.size} rows)" if rows.size > 10 else "")
    return ConfigError(
        f"The table passed to quantize has non-finite values (NaN or inf) in rows [{shown}]. "
        f"Clean them, or pass nonfinite='nan_block' to store those blocks as NaN."
    )


def quantize(x, fmt, *, block_size=None, scale_mode="floor", nonfinite="error", n_threads=None):
    """Quantize a float32 table ``(n_rows, dim)`` to format ``fmt``; returns a ``QuantizedTable``.

    ``block_size``: None for the format's default (MX: 32, BDR: 16; row-wise and plain floats take
    none). ``scale_mode``: ``"floor"`` (the OCP rule) or ``"mse"`` (per block, the scale in
    {floor, floor + 1} with the lower squared error; MX and BDR only). ``nonfinite``: ``"error"``
    raises naming the rows with NaN/inf; ``"nan_block"`` stores those blocks (rows, for row-wise
    and float formats) as NaN. ``n_threads``: compiled quantizer threads (None: all; fewer for
    small tables, see ``embcompress.kernels.team_size``).
    """
    from ..table import QuantizedTable

    spec = _spec_of(fmt, "quantize")
    x = _as_table(x, "quantize")
    block = resolve_block(spec, block_size)
    if not isinstance(scale_mode, str) or scale_mode not in SCALE_MODES:
        raise param_error("scale_mode", "quantize", f"be one of {SCALE_MODES}", scale_mode)
    if scale_mode == "mse" and spec.family not in ("mx", "bdr"):
        raise param_error("scale_mode", "quantize", f"be 'floor' for {spec.name} (only MX and BDR formats choose a block scale)", scale_mode)
    if not isinstance(nonfinite, str) or nonfinite not in NONFINITE:
        raise param_error("nonfinite", "quantize", f"be one of {NONFINITE}", nonfinite)
    threads = team_size(n_threads, x.size, 1.5e-9)  # (an element's time here); an update's few rows need no team
    n, dim = x.shape
    row_bytes = spec.row_bytes(dim, block)
    data = None
    if spec.family in ("mx", "bdr"):
        kernel = compiled(f"_quantize_{spec.family}")
        if kernel is not None:
            data = np.empty((n, row_bytes), dtype=np.uint8)
            bad = kernel.quantize(x, data, spec, block, scale_mode == "mse", nonfinite == "nan_block", threads)
            if bad and nonfinite == "error":
                raise _nonfinite_rows_error(x)
    elif spec.family == "rowwise":
        kernel = compiled("_quantize_rowwise")
        if kernel is not None:
            data = np.empty((n, row_bytes), dtype=np.uint8)
            bad = kernel.quantize(x, data, spec, nonfinite == "nan_block", threads)
            if bad and nonfinite == "error":
                raise _nonfinite_rows_error(x)
    if data is None:
        data = encode_numpy(x, spec, block, scale_mode, nonfinite)
    if spec.family == "rowwise" and nonfinite == "error":
        _check_row_meta(x, data, spec)
    if spec.family == "float" and spec.elem_bits == 16 and nonfinite == "error":
        _check_float_range(x, data, spec)
    return QuantizedTable(data, spec.name, (n, dim), block_size=block, scale_mode=scale_mode)


def _check_row_meta(x: np.ndarray, data: np.ndarray, spec: FormatSpec) -> None:
    """Refuse finite rows whose row-wise scale or bias overflowed (float16 for int4/int2: |min| or
    range / (2^b - 1) above 65504; float32 for int8: max - min above float32's max). Both backends
    store inf there, as fbgemm does, and such rows would decode to inf/NaN without a word; under
    nonfinite="nan_block" they are kept as stored, non-finite on decode like a NaN row."""
    scale, bias = rowwise.scale_bias(data[:, : spec.row_meta_bytes], spec)
    rows = np.flatnonzero(np.isfinite(x).all(axis=1) & ~(np.isfinite(scale) & np.isfinite(bias)))
    if rows.size:
        shown = ", ".join(map(str, rows[:10])) + (f", ... ({rows.size} rows)" if rows.size > 10 else "")
        kind = "float32" if spec.elem_bits == 8 else "float16"
        raise ConfigError(
            f"The table passed to quantize has rows [{shown}] whose {spec.name} {kind} scale or bias "
            f"overflows (values too large for the format). Scale the table down, or use an MX, BDR or fp32 format."
        )


def _check_float_range(x: np.ndarray, data: np.ndarray, spec: FormatSpec) -> None:
    """Refuse finite values that round to inf in fp16 (beyond 65504) or bf16 (near float32's max):
    IEEE rounding makes them inf, and such rows would decode to inf without a word; under
    nonfinite="nan_block" they are kept as IEEE rounds them."""
    exp = 0x7C00 if spec.name == "fp16" else 0x7F80  # an all-ones exponent: inf or NaN
    inf = (data.view("<u2") & exp) == exp
    rows = np.flatnonzero(inf.any(axis=1) & np.isfinite(x).all(axis=1))
    if rows.size:
        shown = ", ".join(map(str, rows[:10])) + (f", ... ({rows.size} rows)" if rows.size > 10 else "")
        top = "65504" if spec.name == "fp16" else "about 3.39e38"
        raise ConfigError(
            f"The table passed to quantize has rows [{shown}] with values beyond {spec.name}'s largest "
            f"finite value ({top}), which would be stored as inf. Scale the table down, use bf16 or fp32, "
            f"or pass nonfinite='nan_block' to keep them as inf."
        )


# The reference works on int64 copies (about 125 bytes an element at the peak, either scale_mode):
# it encodes chunks of at most this many elements (whole rows; a wider row is one chunk), so its
# memory stays near 130 MB whatever the table's width. decode_records chunks the same way.
_CHUNK_ELEMENTS = 1 << 20


def encode_numpy(x: np.ndarray, spec: FormatSpec, block: int | None, scale_mode: str = "floor", nonfinite: str = "error") -> np.ndarray:
    """The NumPy reference quantizer: float32 ``(n, dim)`` -> row records ``(n, row_bytes)`` uint8."""
    if not np.isfinite(x).all() and nonfinite == "error":
        raise _nonfinite_rows_error(x)
    rows = max(1, _CHUNK_ELEMENTS // spec.padded_dim(x.shape[1], block))
    if x.shape[0] <= rows:
        return _encode_chunk(x, spec, block, scale_mode)
    out = np.empty((x.shape[0], spec.row_bytes(x.shape[1], block)), dtype=np.uint8)
    for start in range(0, x.shape[0], rows):
        out[start : start + rows] = _encode_chunk(x[start : start + rows], spec, block, scale_mode)
    return out


def _encode_chunk(x: np.ndarray, spec: FormatSpec, block: int | None, scale_mode: str) -> np.ndarray:
    n, dim = x.shape
    finite_rows = np.isfinite(x).all(axis=1)
    any_bad = not finite_rows.all()
    if spec.family == "float":
        vals = floats.encode(np.where(finite_rows[:, None], x, np.float32(np.nan)) if any_bad else x, spec)
        return np.ascontiguousarray(vals).view(np.uint8).reshape(n, spec.row_bytes(dim))
    if spec.family == "rowwise":
        meta, codes = rowwise.encode(x, spec, ~finite_rows if any_bad else None)
    else:
        padded = spec.padded_dim(dim, block)
        xp = np.zeros((n, padded), dtype=np.float32)
        xp[:, :dim] = x
        nb = padded // block
        nan_blocks = ~np.isfinite(xp).reshape(n, nb, block).all(axis=2) if any_bad else None
        codec = mx if spec.family == "mx" else bdr
        meta, codes = codec.encode(xp, spec, block, scale_mode, nan_blocks)
    return np.ascontiguousarray(np.concatenate([meta, pack(codes, spec.elem_bits)], axis=1))


def unpack_records(records: np.ndarray, spec: FormatSpec, dim: int, block: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Split row records into (metadata bytes, unpacked codes ``(k, padded_dim)``)."""
    sb = spec.scale_bytes(dim, block)
    return records[:, :sb], unpack(records[:, sb:], spec.elem_bits, spec.padded_dim(dim, block))


def decode_records(records, fmt, dim, block_size=None) -> np.ndarray:
    """NumPy reference decode of ``k`` row records (uint8 ``(k, row_bytes)``) -> float32 ``(k, dim)``.

    The lookup kernel's reference: every compiled decoder must match it bit for bit.
    """
    spec = _spec_of(fmt, "decode_records")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise param_error("dim", "decode_records", "be a positive int", dim)
    dim = int(dim)
    block = resolve_block(spec, block_size, "decode_records")
    row_bytes = spec.row_bytes(dim, block)
    try:
        records = np.asarray(records)
    except ValueError:  # (numpy's "inhomogeneous shape")
        raise param_error("records", "decode_records", f"be a uint8 array (k, {row_bytes}) of {spec.name} rows of dim {dim}",
                          "lists of different lengths") from None
    if records.dtype != np.uint8 or records.ndim != 2 or records.shape[1] != row_bytes:
        raise param_error(
            "records", "decode_records", f"be a uint8 array (k, {row_bytes}) of {spec.name} rows of dim {dim}",
            f"{records.dtype} array of shape {records.shape}",
        )
    k = records.shape[0]
    if spec.family == "float":
        return floats.decode(records, spec, dim)
    # Whole rows, at most _CHUNK_ELEMENTS values at a time: the decoders' int64 and float32
    # temporaries (up to 7 times the output for BDR) then stay bounded beside the output.
    rows = max(1, _CHUNK_ELEMENTS // spec.padded_dim(dim, block))
    if k <= rows:
        return _decode_chunk(records, spec, dim, block)
    out = np.empty((k, dim), dtype=np.float32)
    for start in range(0, k, rows):
        out[start : start + rows] = _decode_chunk(records[start : start + rows], spec, dim, block)
    return out


def _decode_chunk(records: np.ndarray, spec: FormatSpec, dim: int, block: int | None) -> np.ndarray:
    meta, codes = unpack_records(records, spec, dim, block)
    if spec.family == "rowwise":
        out = rowwise.decode(meta, codes, spec)
    elif spec.family == "mx":
        out = mx.decode(meta, codes, spec, block)
    else:
        out = bdr.decode(meta, codes, spec, block)
    return np.ascontiguousarray(out[:, :dim], dtype=np.float32).reshape(records.shape[0], dim)


def dequantize(q) -> np.ndarray:
    """Decode a ``QuantizedTable`` to float32 of its shape: ``decode_records(q.data, ...)``."""
    from ..table import QuantizedTable

    if isinstance(getattr(q, "table", None), QuantizedTable):  # a TableFile (open_table)
        q = q.table
    if not isinstance(q, QuantizedTable):
        raise param_error(
            "q", "dequantize", "be a QuantizedTable (from embcompress.quantize, QuantizedTable.load or open_table); "
            "decode raw row records with decode_records(records, fmt, dim, block_size)", type(q).__name__,
        )
    return decode_records(q.data, q.fmt, q.shape[1], q.block_size)
