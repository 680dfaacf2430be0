"""The pooled embedding lookup: ``torch.nn.functional.embedding_bag`` over compressed tables.

``pooled_lookup`` checks its inputs once, then runs the compiled kernel (``_lookup.pyx``: OpenMP
over bags, rows decoded on the fly) or, with ``EMBCOMPRESS_KERNELS=numpy`` or no build, its
NumPy twin (``reference.py``). Both return the same bits.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np

from ..errors import ConfigError, param_error
from ..formats.codec import resolve_block
from ..formats.spec import FORMATS
from . import compiled, team_size

MODES = {"sum": 0, "mean": 1, "max": 2}
# A lookup's time on one thread here, rows from a table beyond the caches (55 us for 4,096): the
# work estimate by which a call gets its threads (embcompress.kernels.team_size).
LOOKUP_SECONDS = 13e-9

# format family -> the kernel's family code (the enum at the top of _lookup.pyx)
_FP32, _FP16, _BF16, _INT8_ROW, _INT4_ROW, _INT2_ROW, _MX_LUT8, _MXINT8, _MX_LUT_BITS, _BDR = range(10)
_KIND = {
    "fp32": _FP32,
    "fp16": _FP16,
    "bf16": _BF16,
    "int8_rowwise": _INT8_ROW,
    "int4_rowwise": _INT4_ROW,
    "int2_rowwise": _INT2_ROW,
    "mxfp8_e4m3": _MX_LUT8,
    "mxfp8_e5m2": _MX_LUT8,
    "mxint8": _MXINT8,
    "mxfp6_e3m2": _MX_LUT_BITS,
    "mxfp6_e2m3": _MX_LUT_BITS,
    "mxfp4_e2m1": _MX_LUT_BITS,
    "mx9": _BDR,
    "mx6": _BDR,
    "mx4": _BDR,
}
KERNEL_FORMATS = tuple(_KIND)


@lru_cache(maxsize=None)
def _lut(fmt: str) -> np.ndarray:
    if _KIND[fmt] in (_MX_LUT8, _MX_LUT_BITS):
        from ..formats.mx import element_lut

        return np.ascontiguousarray(element_lut(FORMATS[fmt]), dtype=np.float32)
    return np.zeros(1, dtype=np.float32)  # the kernel takes a pointer; unused by other families


@lru_cache(maxsize=None)
def _e8m0_tables() -> tuple[np.ndarray, np.ndarray]:
    """E8M0 byte -> 2^(v - 127) and -> 2^(v - 133) (mxint8's k / 64 folded in), float32, exact
    (2^-133 is a float32 subnormal), NaN for 0xFF: the kernel's block scales."""
    v = np.arange(256)
    tables = []
    for shift in (0, 6):
        with np.errstate(over="ignore"):  # byte 255 overflows here; it is NaN below
            t = np.ldexp(1.0, v - 127 - shift).astype(np.float32)
        t[255] = np.nan
        tables.append(t)
    return tables[0], tables[1]


@lru_cache(maxsize=None)
def _fp8_params(fmt: str):
    """``((shift, first Inf/NaN magnitude code, scale adjust), scale table)`` for decoding FP8
    elements by shifts in the compiled kernel, or None.

    The kernel reads the sign-extended code shifted left by ``23 - mbits`` (masked) as a float,
    which is the element value times ``2^(bias - 127)``, and multiplies it by the table entry
    ``2^(v - bias)`` of its block's scale byte ``v``: the element value times ``2^(v - 127)`` in
    one correctly rounded product, as the reference computes. The rule is checked here against
    the element table on every finite code. Rows holding Inf/NaN codes, or a scale byte above
    ``127 + bias`` (whose entry would overflow; NaN scales included), take the element table in
    the kernel: it flags scale bytes ``v`` with ``v - adjust >= first`` (saturating).
    """
    if _KIND[fmt] != _MX_LUT8:
        return None
    spec = FORMATS[fmt]
    shift = 23 - spec.mbits
    lut = _lut(fmt)
    special = np.flatnonzero(~np.isfinite(lut[:128]))
    first = int(special[0]) if len(special) else 128
    if np.any(np.diff(special) != 1) or (len(special) and special[-1] != 127) or first > 127:
        return None
    codes = np.arange(256, dtype=np.int64)
    sx = np.where(codes >= 128, codes - 256, codes).astype(np.int32)
    bits = ((sx.view(np.uint32) << np.uint32(shift)) & np.uint32(0x80000000 | (0x7F << shift))).astype(np.uint32)
    vals = bits.view(np.float32) * np.float32(2.0 ** (127 - spec.bias))
    finite = (codes & 0x7F) < first
    if not np.array_equal(vals.view(np.uint32)[finite], lut.view(np.uint32)[finite]):
        return None
    max_byte = 127 + spec.bias  # largest v with 2^(v - bias) finite
    adjust = max_byte + 1 - first
    if not 0 < adjust < 256:
        return None
    table = np.full(256, np.nan, dtype=np.float32)  # never read above max_byte: those rows take the table
    table[: max_byte + 1] = np.ldexp(1.0, np.arange(max_byte + 1) - spec.bias)
    return (shift, first, adjust), table


def _table_parts(table) -> tuple[np.ndarray, str, int, int | None]:
    """Records, format, dim and block size of ``table``, checked against each other."""
    where = "pooled_lookup"
    try:
        fmt, shape, data = table.fmt, tuple(table.shape), table.data
    except AttributeError:
        raise param_error(
            "table", where, "be a compressed table (a QuantizedTable or an opened table file, "
            "with .fmt, .shape, .block_size and .data)", type(table).__name__
        ) from None
    if fmt not in _KIND:
        raise ConfigError(
            f"The lookup kernel does not know the format {fmt!r} of this table. "
            f"It reads: {', '.join(KERNEL_FORMATS)}. Re-create the table in one of them."
        )
    spec = FORMATS[fmt]
    block = getattr(table, "block_size", None)
    if spec.block_size is None:
        block = None
    elif block is None:
        block = spec.block_size
    elif type(block) is not int or block != spec.block_size:
        # (0 or False would pass the record size check as the default and reach the kernel as 0)
        try:
            block = resolve_block(spec, block, where)
        except ConfigError as exc:
            raise ConfigError(f"The 'table' parameter of {where} has block_size={block!r}, which a {fmt} table "
                              f"cannot have: {exc} Re-create the table with embcompress.quantize.", param="table") from None
    if len(shape) != 2:
        raise param_error("table", where, "have a 2-D shape (n_rows, dim)", shape)
    n_rows, dim = shape
    if not (type(n_rows) is int and type(dim) is int) and not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in shape):
        raise param_error("table", where, "have a shape (n_rows, dim) of two ints", shape)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise param_error("table", where, "hold its row records as a 2-D uint8 array", getattr(data, "dtype", type(data)))
    row_bytes = spec.row_bytes(dim, block)
    if data.shape != (n_rows, row_bytes):
        raise param_error(
            "table", where, f"hold records of shape {(n_rows, row_bytes)} for a {fmt} table of shape {shape}",
            data.shape,
        )
    if not data.flags.c_contiguous:
        data = np.ascontiguousarray(data)
    return data, fmt, dim, block


# (native byte order: a '>i8' array is not equal to it; and np.longlong, though equal to it on
# Linux, is NumPy's other type number, which the compiled entry points refuse)
_INT64 = np.dtype(np.int64)


def _as_int64(x, name: str, where: str) -> np.ndarray:
    if type(x) is np.ndarray and x.dtype == _INT64 and x.dtype.num == _INT64.num:
        flags = x.flags
        if flags.c_contiguous and flags.aligned:
            return x  # (the common case, without the conversions' microsecond)
    try:
        arr = np.asarray(x)
    except ValueError:  # (numpy's "inhomogeneous shape": lists of different lengths)
        raise param_error(name, where, "be a rectangular array of integers (for bags of different lengths, "
                          "1-D indices with offsets)", "lists of different lengths") from None
    if arr.size == 0 and arr.dtype == np.float64 and not isinstance(x, np.ndarray):
        arr = arr.astype(np.int64)  # ([] arrives as float64; QuantizedTable.take takes it too)
    if arr.dtype.kind not in "iu":
        raise param_error(name, where, "hold integers (int64 preferred)", f"dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise param_error(name, where, "hold values below 2**63", int(arr.max()))
    # (reshaped: ascontiguousarray makes a 0-d array 1-D, which would pass a scalar as a bag)
    return _aligned(np.ascontiguousarray(arr, dtype=np.int64).reshape(arr.shape))


def _aligned(arr: np.ndarray) -> np.ndarray:
    """``arr`` (C-contiguous), copied when it is not aligned: the compiled kernel reads aligned
    arrays only, and one read from a buffer at an odd offset (np.frombuffer) is C-contiguous yet
    unaligned (ascontiguousarray keeps it as it is)."""
    return arr if arr.flags.aligned else arr.copy()


class Bags(NamedTuple):
    """Checked bags, as the kernel takes them."""

    indices: np.ndarray  # flat int64 row numbers
    offsets: np.ndarray  # int64, n_bags + 1 entries (the last is len(indices))
    weights: np.ndarray | None  # flat float32, or None
    n_bags: int
    threads: int
    kernel: object  # the compiled _lookup module, or None for the NumPy backend




def _checked_offsets(mod, idx, offs, include_last: bool, n_rows: int, threads: int, where: str) -> np.ndarray:
    """The offsets the kernel takes (``n_bags + 1`` entries, the last ``len(idx)``), once the
    bags and the indices are checked; a ConfigError naming the first problem otherwise. ``mod``:
    the compiled _lookup module, or None."""
    if mod is not None:  # every check in one call; on a problem, the checks below name it
        ext = np.empty(len(offs) + (0 if include_last else 1), dtype=np.int64)
        if mod.checked_offsets(idx, offs, include_last, n_rows, threads, ext):
            return ext
    if include_last:
        if len(offs) == 0:
            raise param_error("offsets", where, "hold at least one entry with include_last_offset=True", "[]")
        if offs[-1] != len(idx):
            raise param_error(
                "offsets", where, f"end with len(indices) = {len(idx)} when include_last_offset=True", int(offs[-1])
            )
        ext = offs
    else:
        ext = np.append(offs, np.int64(len(idx)))
    if len(ext) > 1 or include_last:  # (offsets [len(indices)]: no bags, yet indices)
        if ext[0] != 0:
            raise param_error("offsets", where, "start at 0", int(ext[0]))
        if np.any(np.diff(ext) < 0):
            raise param_error("offsets", where, "be non-decreasing and at most len(indices)", offs)
    if idx.size:
        lo, hi = mod.index_bounds(idx, threads) if mod is not None else (int(idx.min()), int(idx.max()))
        if lo < 0 or hi >= n_rows:
            bad = lo if lo < 0 else hi
            raise ConfigError(
                f"The 'indices' parameter of {where} must hold row numbers in [0, {n_rows}) "
                f"for a table of {n_rows} rows. Got {bad} instead. Map raw ids to rows with the "
                f"table's id map first."
            )
    return ext


def check_bags(indices, offsets, *, mode: str, per_sample_weights, include_last_offset: bool, n_threads, out,
               dim: int, n_rows: int, where: str = "pooled_lookup", table_data: np.ndarray | None = None) -> Bags:
    """Check everything ``pooled_lookup`` takes besides the table (its docstring says what is
    allowed) against a table of ``n_rows`` x ``dim``; raise a ConfigError naming ``where``.
    ``TieredStore.pooled_lookup`` calls it before staging a batch, so that a refused batch leaves
    the store as it was."""
    if not isinstance(mode, str) or mode not in MODES:  # (a list is unhashable: a raw TypeError)
        raise param_error("mode", where, "be 'sum', 'mean' or 'max'", mode)
    if not isinstance(include_last_offset, (bool, np.bool_)):  # ("false" is truthy; torch refuses it too)
        raise param_error("include_last_offset", where, "be a bool", include_last_offset)

    idx = _as_int64(indices, "indices", where)
    idx_shape = idx.shape  # per_sample_weights must have it, as in torch (idx is flattened below)
    if offsets is None:
        if idx.ndim == 1:
            raise param_error("offsets", where, "be given when 'indices' is 1-D", None)
        if idx.ndim != 2:
            raise param_error("indices", where, "be 1-D (with offsets) or 2-D (n_bags, bag_len)", f"shape {idx.shape}")
        if include_last_offset:
            raise param_error("include_last_offset", where, "be False when 'indices' is 2-D", True)
        n_bags, bag_len = idx.shape
        offs_given = np.arange(n_bags + 1, dtype=np.int64) * bag_len  # (with its last entry)
        idx = idx.reshape(-1)
        include_last = True
    else:
        if idx.ndim != 1:
            raise param_error("indices", where, "be 1-D when 'offsets' is given", f"shape {idx.shape}")
        offs_given = _as_int64(offsets, "offsets", where)
        if offs_given.ndim != 1:
            raise param_error("offsets", where, "be 1-D", f"shape {offs_given.shape}")
        include_last = include_last_offset
    n_bags = len(offs_given) - 1 if include_last else len(offs_given)
    # More threads than bags would idle (team_size has the other limits)
    threads = min(team_size(n_threads, idx.size, LOOKUP_SECONDS), max(n_bags, 1))
    mod = compiled("_lookup")  # (asked once a call: it reads the environment, about 1 us)
    offs = _checked_offsets(mod, idx, offs_given, include_last, n_rows, threads, where)

    weights = None
    if per_sample_weights is not None:
        if mode != "sum":
            raise param_error(
                "per_sample_weights", where, "be None unless mode='sum' (as in torch)", f"weights with mode={mode!r}"
            )
        try:
            w = np.asarray(per_sample_weights)
        except ValueError:  # (numpy's "inhomogeneous shape", as _as_int64 names it for the indices)
            raise param_error("per_sample_weights", where, "be a rectangular float array, one weight per index",
                              "lists of different lengths") from None
        if w.dtype.kind != "f":
            raise param_error("per_sample_weights", where, "be a float array", f"dtype {w.dtype}")
        if w.shape != idx_shape:
            raise param_error(
                "per_sample_weights", where, f"have one weight per index, in the shape of 'indices' {idx_shape}",
                f"shape {w.shape}",
            )
        weights = _aligned(np.ascontiguousarray(w, dtype=np.float32).reshape(-1))

    if out is not None:
        if (
            not isinstance(out, np.ndarray)
            or out.dtype != np.float32
            or out.shape != (n_bags, dim)
            or not out.flags.c_contiguous
            or not out.flags.writeable
            or not out.flags.aligned
        ):
            got = f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}".strip()
            if isinstance(out, np.ndarray) and not out.flags.aligned:
                got += " (not aligned: pass np.empty((n_bags, dim), np.float32), or none)"
            raise param_error("out", where, f"be a writable, aligned C-contiguous float32 array of shape "
                              f"{(n_bags, dim)}", got)
        # The kernel writes out while it reads these: an overlap would read what it wrote (all are
        # C-contiguous here, so sharing bounds is sharing bytes). The offsets as given too, as torch
        # refuses any aliasing, though the kernel may read an extended copy.
        for name, arr in (("'indices'", idx), ("'offsets'", offs), ("'offsets'", offs_given),
                          ("'per_sample_weights'", weights),
                          ("the table's rows", table_data)):
            if arr is not None and np.may_share_memory(out, arr):
                raise ConfigError(
                    f"The 'out' parameter of {where} must not share memory with {name}. "
                    f"Got an array that overlaps it instead. Pass a separate buffer (or none)."
                )
    return Bags(idx, offs, weights, n_bags, threads, mod)


def pooled_lookup(
    table,
    indices,
    offsets=None,
    *,
    mode: str = "sum",
    per_sample_weights=None,
    include_last_offset: bool = False,
    n_threads: int | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Pooled lookup of bags of rows, as ``torch.nn.functional.embedding_bag``; float32 ``(n_bags, dim)``.

    ``indices`` are row numbers (int64; other integer dtypes are converted). Bags are given as
    torch takes them: 1-D ``indices`` with ``offsets`` (the start of each bag, ``offsets[0] == 0``,
    non-decreasing; with ``include_last_offset=True`` one more entry, equal to ``len(indices)``),
    or 2-D ``indices`` of shape ``(n_bags, bag_len)`` with ``offsets=None``. ``mode`` is "sum",
    "mean" or "max"; an empty bag gives zeros. ``per_sample_weights`` (float, one per index)
    scales each row before a sum, and is allowed with "sum" only, as in torch. ``out``, if
    given, is a writable, aligned C-contiguous float32 array of the result's shape and is returned.
    ``n_threads=None`` uses OpenMP's default (``OMP_NUM_THREADS`` or all cores); a
    forked child process uses one thread (OpenMP teams hang after a fork). Either way a thread
    takes at least about 2,000 lookups (``embcompress.kernels.team_size``): smaller calls use
    fewer threads.

    Rows are decoded from the table's format on the fly. Out-of-range or negative indices raise
    a ConfigError.
    """
    data, fmt, dim, block = _table_parts(table)
    bags = check_bags(indices, offsets, mode=mode, per_sample_weights=per_sample_weights,
                      include_last_offset=include_last_offset, n_threads=n_threads, out=out, dim=dim,
                      n_rows=data.shape[0], table_data=data)
    return pool_bags(data, fmt, dim, block, bags, mode, out)


@lru_cache(maxsize=256)
def _plan(mod, fmt: str, dim: int, block: int | None, row_bytes: int, simd: int = 2):
    """The compiled kernel's decoding plan for one table layout (built once: a one-bag lookup
    is a few microseconds, and passing the tables each call cost as much as the lookup)."""
    spec = FORMATS[fmt]
    fp8 = _fp8_params(fmt)
    scales, scales6 = _e8m0_tables()
    return mod.Plan(_KIND[fmt], dim, block or 0, spec.n_blocks(dim, block), spec.elem_bits, row_bytes, _lut(fmt),
                    scales, scales6, fp8=fp8[0] if fp8 else None, scales8=fp8[1] if fp8 else None, simd=simd)


def pool_bags(data: np.ndarray, fmt: str, dim: int, block: int | None, bags: Bags, mode: str,
              out: np.ndarray | None) -> np.ndarray:
    """The lookup itself, on ``bags`` that ``check_bags`` passed over the row records ``data``
    (``(n_rows, row_bytes)`` uint8, C-contiguous) of a ``fmt`` table: the compiled kernel, or its
    NumPy twin. ``TieredStore`` calls it on the rows it staged, with the bags it checked."""
    if out is None:
        out = np.empty((bags.n_bags, dim), dtype=np.float32)
    mod = bags.kernel
    if mod is None:
        from .reference import pool

        pool(data, fmt, dim, block, bags.indices, bags.offsets, bags.weights, mode, out)
        return out
    mod.pool(_plan(mod, fmt, dim, block, data.shape[1]), data, bags.indices, bags.offsets, bags.weights,
             MODES[mode], out, bags.threads)
    return out


class Job(NamedTuple):
    """One table's lookup in :func:`pooled_lookup_many`: its row records and bags, as
    ``pooled_lookup`` takes them (``block`` None for the format's default)."""

    data: np.ndarray  # (n_rows, row_bytes) uint8 row records
    fmt: str
    dim: int
    block: int | None
    indices: np.ndarray  # 1-D row numbers
    offsets: np.ndarray  # 1-D bag starts
    weights: np.ndarray | None  # 1-D, one per index, or None
    mode: str = "sum"
    include_last_offset: bool = False
    keep: np.ndarray | None = None  # bool, one per index: False leaves the entry out (a padding id)


class _Table(NamedTuple):  # (what pooled_lookup reads of a table)
    fmt: str
    shape: tuple
    block_size: int | None
    data: np.ndarray


@lru_cache(maxsize=256)
def _job_plan(mod, fmt: str, dim: int, block: int | None, row_bytes: int):
    """The plan of a job's layout, or None when the records do not fit it (then the job takes
    ``pooled_lookup``, whose checks name the problem)."""
    spec = FORMATS.get(fmt)
    if spec is None or fmt not in _KIND or dim < 0:
        return None
    if spec.block_size is None:
        block = None
    elif block is None:
        block = spec.block_size
    try:
        if spec.row_bytes(dim, block) != row_bytes:
            return None
    except Exception:  # (a block size the format refuses)
        return None
    return _plan(mod, fmt, dim, block, row_bytes)


def pooled_lookup_many(jobs: list, n_threads: int | None = None) -> list[np.ndarray]:
    """``pooled_lookup`` of each :class:`Job` (a table and its bags), in one compiled call: the
    lookups of a model's many small tables cost one Python call instead of one each, and their
    bags share the call's threads. Same checks, errors and bits as ``pooled_lookup`` on each
    (on the entries ``keep`` keeps); float32 ``(n_bags, dim)`` a job."""
    mod = compiled("_lookup")
    if mod is not None:
        try:
            plans = [_job_plan(mod, j[1], j[2], j[3], j[0].shape[-1]) for j in jobs]
            if None not in plans:
                threads = team_size(n_threads, sum(j[4].size for j in jobs), LOOKUP_SECONDS)
                got = mod.pool_many(jobs, plans, threads)
                if type(got) is list:
                    return got
        except (ValueError, AttributeError, TypeError, IndexError):
            pass  # (arrays of another kind, or not arrays: each job goes the long way, which names it)
    # The NumPy backend, or a job whose inputs the checks of pooled_lookup refuse (they raise)
    return [_job_lookup(Job(*j), n_threads) for j in jobs]


def _job_lookup(j: Job, n_threads: int | None) -> np.ndarray:
    """One job the long way: ``pooled_lookup``'s checks, then the kernel or its NumPy twin."""
    table = _Table(j.fmt, (j.data.shape[0], j.dim), j.block, j.data)
    if j.keep is None:
        return pooled_lookup(table, j.indices, j.offsets, mode=j.mode, per_sample_weights=j.weights,
                             include_last_offset=j.include_last_offset, n_threads=n_threads)
    data, fmt, dim, block = _table_parts(table)
    bags = check_bags(j.indices, j.offsets, mode=j.mode, per_sample_weights=j.weights,
                      include_last_offset=j.include_last_offset, n_threads=n_threads, out=None, dim=dim,
                      n_rows=data.shape[0])
    return pool_bags(data, fmt, dim, block, kept(bags, j.keep), j.mode, None)


def kept(bags: Bags, keep) -> Bags:
    """``bags`` without the entries ``keep`` (bool, one per index) leaves out: a padding id, left
    out of its bag as ``nn.EmbeddingBag`` leaves it out (a bag of it alone is empty)."""
    k = np.asarray(keep).reshape(-1)
    if k.dtype != np.bool_ or k.shape != bags.indices.shape:  # (the module makes it so; an op call may not)
        raise param_error("keep", "embcompress::pooled_lookup", f"be a bool tensor of one entry per index "
                          f"({bags.indices.size})", f"{k.dtype} of {k.size}")
    before = np.concatenate([np.zeros(1, np.int64), np.cumsum(k, dtype=np.int64)])  # kept entries before each
    w = None if bags.weights is None else bags.weights[k]
    return bags._replace(indices=bags.indices[k], offsets=before[bags.offsets], weights=w)
