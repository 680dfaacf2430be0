"""Raw categorical values -> int64 ids: the one rule that mining and serving both apply.

Ids are int64 at every API. A raw value becomes an id by its kind:

``int``
    An integer-valued column keeps its value (``12`` is id ``12``).
``string``
    A string is hashed to 64 bits with :func:`hash_strings` and the uint64 is reinterpreted as
    int64 (``.view(np.int64)``): FNV-1a 64 over the value's UTF-8 bytes, then the MurmurHash3
    ``fmix64`` finalizer so every output bit depends on every input byte (FNV-1a alone leaves the
    low bits weak for short keys, and maps are indexed by low bits). No seed: the hash is stable
    across processes, machines and versions, and is pinned by golden tests.
``hex32``
    Criteo's categorical values are already 32-bit hashes written as 8 hex digits; they are
    parsed (:func:`parse_hex32`), not hashed again: ``"68fd1e64"`` is id ``0x68fd1e64``. Parsing
    cannot collide, costs less, and both mining engines do it natively in SQL.

A missing value (null, or an empty string) is its own id, :data:`MISSING_ID` (``-2**63``, the
int64 view of ``0x8000_0000_0000_0000``), in every feature. 32-bit hex never produces it, an
integer column holding ``-2**63`` itself reads as missing, and :func:`hash_strings` never returns
it: the one hash value equal to it is moved to the next value, ``0x8000_0000_0000_0001``.
"""

from __future__ import annotations

import numpy as np

from .errors import ConfigError

MISSING_ID: int = -(2**63)
"""The reserved id of a missing value (null or empty), the same in every feature."""
MISSING_U64 = np.uint64(2**63)

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_FMIX_C1 = np.uint64(0xFF51AFD7ED558CCD)
_FMIX_C2 = np.uint64(0xC4CEB9FE1A85EC53)
_S33 = np.uint64(33)

# hex digit value of each byte, -1 for a byte that is not a hex digit
_HEX = np.full(256, -1, dtype=np.int64)
for _i, _c in enumerate(b"0123456789abcdef"):
    _HEX[_c] = _i
for _i, _c in enumerate(b"ABCDEF"):
    _HEX[_c] = 10 + _i


def _fmix64(h: np.ndarray) -> np.ndarray:
    h ^= h >> _S33
    h *= _FMIX_C1
    h ^= h >> _S33
    h *= _FMIX_C2
    h ^= h >> _S33
    return h


def _flat(values):
    """``values`` in one dimension, and the shape to give the ids back in (None: as they come).
    An array of any shape (a batch of bags) gets its ids in its own shape, as IdMap.lookup takes them."""
    if isinstance(values, np.ndarray) and values.ndim > 1:
        return values.reshape(-1), values.shape
    return values, None


def _bad_element(owner: str, bad) -> ConfigError:
    """The error for an element that is no string, bytes or None, naming the fix for its kind."""
    if isinstance(bad, (list, tuple, np.ndarray)):
        fix = "Nested lists are not taken: pass np.array(values) to get the ids in its shape."
    elif isinstance(bad, float) and bad != bad:
        fix = "A missing value is None or '' (NaN is not a string)."
    else:
        fix = "Integer ids need no hashing: pass them as int64."
    return ConfigError(
        f"The 'values' parameter of {owner} must hold strings, bytes or None. "
        f"Got an element of type {type(bad).__name__} instead. {fix}"
    )


def _as_arrow(values, owner: str):
    """``values`` as one Arrow string/binary array (the boundary conversion, once)."""
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks != 1 else values.chunk(0)
    if not isinstance(values, pa.Array):
        arr = np.asarray(values) if not isinstance(values, (list, tuple)) else values
        if isinstance(arr, np.ndarray) and arr.dtype.kind in "biufcmM":
            raise ConfigError(
                f"The 'values' parameter of {owner} must hold strings, bytes or None. "
                f"Got an array of {arr.dtype} instead. Integer ids need no hashing: pass them as int64."
            )
        if isinstance(arr, np.ndarray) and arr.dtype.kind == "S":
            values = pa.array(arr, type=pa.binary())
        else:
            try:
                values = pa.array(arr, type=pa.string())
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                try:
                    values = pa.array(arr, type=pa.binary())
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    bad = next((v for v in arr if v is not None and not isinstance(v, (str, bytes))), None)
                    if bad is not None:  # the element, as the NumPy-only path names it
                        raise _bad_element(owner, bad) from None
                    raise ConfigError(
                        f"The 'values' parameter of {owner} must hold strings, bytes or None. "
                        f"Got an array of {getattr(arr, 'dtype', type(arr).__name__)} instead. "
                        f"Integer ids need no hashing: pass them as int64."
                    ) from None
    t = values.type
    if pa.types.is_dictionary(t):
        values = values.dictionary_decode()
        t = values.type
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        values = values.cast(pa.large_string() if pa.types.is_string_view(t) else pa.large_binary())
        t = values.type
    if not (pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
        raise ConfigError(
            f"The 'values' parameter of {owner} must hold strings or bytes. Got Arrow type {t} instead. "
            f"Integer ids need no hashing: pass them as int64."
        )
    return values


def _buffers(arr):
    """(offsets int64 of len n+1, data uint8, null mask or None) of an Arrow string array."""
    import pyarrow as pa

    n = len(arr)
    large = pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type)
    bufs = arr.buffers()
    off_dtype = np.int64 if large else np.int32
    offsets = np.frombuffer(bufs[1], dtype=off_dtype)[arr.offset : arr.offset + n + 1].astype(np.int64) if n else np.zeros(1, np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    nulls = None
    if arr.null_count:
        nulls = arr.is_null().to_numpy(zero_copy_only=False)
    return offsets, data, nulls


def _numpy_buffers(values, owner: str):
    """The same buffers without pyarrow (the serving core needs numpy only): one UTF-8 encode
    per value, then a single join."""
    # a list's elements as they are: np.asarray made a list of lists one 2-D array, hashed flat
    arr = (np.fromiter(values, dtype=object, count=len(values)) if isinstance(values, (list, tuple))
           else np.asarray(values).ravel())
    if arr.dtype.kind in "biufcmM":
        raise ConfigError(
            f"The 'values' parameter of {owner} must hold strings, bytes or None. "
            f"Got an array of {arr.dtype} instead. Integer ids need no hashing: pass them as int64."
        )
    # as pyarrow refuses them: str() would hash 1 as "1" and a NaN as "nan"
    bad = next((v for v in arr if v is not None and not isinstance(v, (str, bytes))), None)
    if bad is not None:
        raise _bad_element(owner, bad)
    nulls = np.fromiter((v is None for v in arr), dtype=bool, count=len(arr))
    enc = [b"" if v is None else v if isinstance(v, bytes) else v.encode("utf-8") for v in arr]
    offsets = np.zeros(len(enc) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, enc), dtype=np.int64, count=len(enc)), out=offsets[1:])
    data = np.frombuffer(b"".join(enc), dtype=np.uint8)
    return offsets, data, (nulls if nulls.any() else None)


def _string_buffers(values, owner: str):
    """(offsets int64 of len n+1, data uint8, null mask or None) of string/bytes values."""
    if isinstance(values, (str, bytes)) or (isinstance(values, np.ndarray) and values.ndim == 0):
        one = values.item() if isinstance(values, np.ndarray) else values
        raise ConfigError(
            f"The 'values' parameter of {owner} must be a list or array of ids (one per element). "
            f"Got a single {type(one).__name__} instead: pass [{one!r}]."
        )
    # (these reached NumPy as one 0-d object array: a raw "iteration over a 0-d array")
    if values is None or isinstance(values, (set, frozenset, dict)) or (
            hasattr(values, "__iter__") and not hasattr(values, "__len__")):
        fix = ("pass [None] for one missing value" if values is None
               else "a set has no order: pass a list, in the order the ids come" if isinstance(values, (set, frozenset))
               else "pass list(values)")
        raise ConfigError(
            f"The 'values' parameter of {owner} must be a list or array of ids (one per element). "
            f"Got a {type(values).__name__} instead: {fix}."
        )
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return _numpy_buffers(values, owner)
    return _buffers(_as_arrow(values, owner))


def fnv1a_fmix_numpy(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """FNV-1a 64 + fmix64 of the byte strings ``data[offsets[i]:offsets[i+1]]``, vectorized.

    One NumPy pass per byte position over the strings still that long (sorted by length, so the
    live strings are a prefix): no per-string Python work.
    """
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    order = np.argsort(-lengths, kind="stable")
    ls = lengths[order]
    starts = offsets[:-1][order]
    h = np.full(n, _FNV_OFFSET, dtype=np.uint64)
    maxlen = int(ls[0]) if n else 0
    # live[j] = how many strings are longer than j (ls is descending)
    live = np.searchsorted(-ls, -np.arange(maxlen), side="left")
    for j in range(maxlen):
        k = int(live[j])
        h[:k] ^= data[starts[:k] + j]
        h[:k] *= _FNV_PRIME
    h = _fmix64(h)
    out = np.empty(n, dtype=np.uint64)
    out[order] = h
    return out


def _fnv1a_fmix(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """The compiled kernel when built (``EMBCOMPRESS_KERNELS``), else the NumPy twin."""
    from .kernels import compiled, team_size

    mod = compiled("_idhash")
    if mod is None:
        return fnv1a_fmix_numpy(offsets, data)
    out = np.empty(len(offsets) - 1, dtype=np.uint64)
    mod.fnv1a_fmix(np.ascontiguousarray(offsets, dtype=np.int64), np.ascontiguousarray(data, dtype=np.uint8),
                   out, team_size(None, len(out), 20e-9))  # (a short string's time here)
    return out


def hash_strings(values) -> np.ndarray:
    """The stable 64-bit hash (uint64) of each string id; null and ``""`` give ``MISSING_U64``.

    ``values``: a sequence or NumPy array of ``str``/``bytes``/``None``, or an Arrow string or
    binary array. A ``str`` is hashed as its UTF-8 bytes, so ``"a"`` and ``b"a"`` agree. A NumPy
    array of any shape (a batch of bags) gives its hashes in that shape. Use :func:`string_ids` for
    int64 ids.
    """
    return _hash(values, "hash_strings")


def _hash(values, owner: str) -> np.ndarray:
    values, shape = _flat(values)
    offsets, data, nulls = _string_buffers(values, owner)
    h = _fnv1a_fmix(offsets, data)
    h[h == MISSING_U64] = MISSING_U64 + np.uint64(1)
    missing = np.diff(offsets) == 0
    if nulls is not None:
        missing |= nulls
    h[missing] = MISSING_U64
    return h if shape is None else h.reshape(shape)


def string_ids(values) -> np.ndarray:
    """int64 ids of string values: :func:`hash_strings` reinterpreted (``.view(np.int64)``)."""
    return _hash(values, "string_ids").view(np.int64)


def _hex32(values):
    """(ids int64, valid bool): 1 to 8 hex digits parsed; null/``""`` -> MISSING_ID, valid."""
    values, shape = _flat(values)
    offsets, data, nulls = _string_buffers(values, "parse_hex32")
    n = len(offsets) - 1
    lengths = np.diff(offsets)
    ids = np.zeros(n, dtype=np.int64)
    valid = lengths <= 8
    for j in range(8):
        live = lengths > j
        digit = np.full(n, 0, dtype=np.int64)
        pos = np.minimum(offsets[:-1] + j, max(len(data) - 1, 0))
        if len(data):
            digit[live] = _HEX[data[pos[live]]]
        valid &= ~live | (digit >= 0)
        ids = np.where(live, (ids << 4) | np.maximum(digit, 0), ids)
    missing = lengths == 0
    if nulls is not None:
        missing |= nulls
    ids[missing] = MISSING_ID
    valid |= missing
    ids[~valid] = MISSING_ID
    return (ids, valid) if shape is None else (ids.reshape(shape), valid.reshape(shape))


def parse_hex32(values) -> np.ndarray:
    """int64 ids of 32-bit hex values (Criteo's categorical fields): ``"68fd1e64"`` -> ``0x68fd1e64``.

    1 to 8 hex digits, either case; null and ``""`` give :data:`MISSING_ID`. Anything else is
    refused, naming the first bad value.
    """
    ids, valid = _hex32(values)
    if not valid.all():
        flat, shape = _flat(values)
        bad = int(np.flatnonzero(~valid.reshape(-1))[0])
        offsets, data, _ = _string_buffers(flat, "parse_hex32")
        text = data[offsets[bad] : offsets[bad + 1]].tobytes().decode("utf-8", "replace")
        where = bad if shape is None else tuple(int(i) for i in np.unravel_index(bad, shape))
        raise ConfigError(
            f"The 'values' parameter of parse_hex32 must hold 1 to 8 hex digits per value. "
            f"Got {text!r} at position {where} instead. Hash such ids with string_ids."
        )
    return ids
