"""Raw id -> embedding row: mapped ids (hot ids, learned buckets) and a fallback hash for the rest.

An :class:`IdMap` sends every int64 id to a row in ``[0, n_rows)``:

- a *mapped* id (one the map holds, e.g. seen in the logs) goes to its stored row;
- any other id goes to a *fallback* (cold) row: ``fallback_rows[mix64(id, seed) % len(fallback_rows)]``.

``mix64`` is the hash that training-time mappers and serving share, so an id never seen offline
lands on the same row everywhere::

    z = (uint64(id) + (seed + 1) * 0x9E3779B97F4A7C15) mod 2**64
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 mod 2**64
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB mod 2**64
    mix64 = z ^ (z >> 31)

(the splitmix64 output function, Steele et al. 2014, keyed by the seed). The same value picks the
first probe slot of the hash table: ``((mix64(id, seed) >> 32) * capacity) >> 32`` (Lemire's
multiply-shift range reduction, so the capacity need not be a power of two).

Storage is kept compact because every compression figure counts it (``nbytes``): rows are held in
the narrowest unsigned dtype that has room for ``n_rows`` plus an "empty" marker (its maximum);
mapped ids are held either

- ``"direct"``: one row entry per id in ``[min_id, max_id]`` when the ids are dense enough that
  this is smaller than the hash table, or
- ``"hash"``: an open-addressing table with linear probing at load 0.75 (capacity
  ``ceil(n / 0.75)``), int64 keys beside the rows.

A contiguous range of fallback rows is stored as two numbers rather than an array. Lookups run in
the compiled kernel ``embcompress.kernels._idmap`` (OpenMP threads), or in its NumPy twin
:func:`_lookup_numpy` when the compiled kernels are not built or ``EMBCOMPRESS_KERNELS=numpy``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .container import read_artifact, write_artifact
from .errors import ArtifactError, ConfigError, param_error
from .kernels import compiled, team_size

KIND = "idmap"
# An id's lookup time on one thread here (a 1,000,000-id map: 17 us a 1,000): the work estimate
# by which a call gets its threads (embcompress.kernels.team_size).
ID_SECONDS = 16e-9
FORMAT_VERSION = 1
HASH_NAME = "splitmix64"
# Linear probing at load a takes (1 + 1/(1-a)) / 2 probes for a hit (2.5 at 0.75) and
# (1 + 1/(1-a)^2) / 2 for a miss (8.5); hits dominate (unseen ids are rare and cold).
MAX_LOAD = 0.75
_MIN_CAPACITY = 8
_MAX_CAPACITY = 2**32 - 1  # slots are picked from 32 bits of the hash
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_ROW_DTYPES = (np.uint8, np.uint16, np.uint32, np.uint64)


def mix64(ids: np.ndarray, seed: int = 0) -> np.ndarray:
    """The seeded 64-bit mixing hash of ``ids`` (uint64), as the module docstring defines it."""
    x = np.asarray(ids).astype(np.int64, copy=False).view(np.uint64)
    with np.errstate(over="ignore"):
        z = x + (np.uint64(seed) + np.uint64(1)) * _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


_ROW_DTYPE_MAX = tuple((np.dtype(dt), int(np.iinfo(dt).max)) for dt in _ROW_DTYPES)


def row_dtype(n_rows: int) -> np.dtype:
    """The narrowest unsigned dtype holding rows ``0 .. n_rows - 1`` and the empty marker (its max)."""
    for dt, top in _ROW_DTYPE_MAX:  # (np.iinfo per call cost a module's id-map lookup 2 us)
        if n_rows <= top:
            return dt
    raise param_error("n_rows", "IdMap", "be below 2**64 - 1", n_rows)


def _not_integers(name: str, owner: str, must: str, dtype: np.dtype) -> ConfigError:
    """The error for ids that are not integers, naming the conversion that fixes each kind."""
    if dtype.kind == "f":
        fix = ("Pass int64 ids: ids.astype(np.int64) where they are whole numbers (fill or drop NaN first). "
               "Ids above 2**63 - 1 given as Python ints read as float64 in NumPy; build them with "
               "np.array(ids, dtype=np.uint64).")
    elif dtype.kind in "USO":
        fix = ("Hash string ids with embcompress.string_ids(ids), as training and serving both must; "
               "Python ints in an object array convert with ids.astype(np.int64) (np.uint64 above 2**63 - 1).")
    else:
        fix = "Pass int64 ids, e.g. ids.astype(np.int64)."
    return ConfigError(f"The {name!r} parameter of {owner} must {must}. Got dtype {dtype} instead. {fix}")


def _check_int_array(x, name: str, owner: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise param_error(name, owner, "be a 1-D array of integers", f"an array of shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise _not_integers(name, owner, "be a 1-D array of integers", arr.dtype)
    return _as_int64(arr)


def _as_int64(arr: np.ndarray) -> np.ndarray:
    # uint64 ids (hashed strings) are taken by their bit pattern, as mix64 takes every id.
    if arr.dtype == np.uint64:
        return np.ascontiguousarray(arr).view(np.int64)
    return np.ascontiguousarray(arr, dtype=np.int64)


def _check_seed(seed, owner: str) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**64:
        raise param_error("seed", owner, "be an int in [0, 2**64)", seed)
    return int(seed)


def _capacity(n: int) -> int:
    return max(int(np.ceil(n / MAX_LOAD)), _MIN_CAPACITY)


def _home_slot(h: np.ndarray, cap: int) -> np.ndarray:
    return ((h >> np.uint64(32)) * np.uint64(cap)) >> np.uint64(32)


def _build_hash(ids: np.ndarray, rows: np.ndarray, seed: int, dtype: np.dtype):
    """Insert ``ids`` (sorted, unique) into a linear-probing table, in rounds, all in NumPy.

    Each round, every unplaced id looks at its current slot: where that slot is free, the
    smallest id claiming it takes it; everyone else moves one slot on. An id only ever moves past
    occupied slots, so every slot between an id's home and its place is occupied: the invariant a
    linear-probing lookup needs. The table depends on the ids and the seed only.
    """
    n = ids.size
    cap = _capacity(n)
    keys = np.zeros(cap, dtype=np.int64)
    vals = np.full(cap, np.iinfo(dtype).max, dtype=dtype)
    taken = np.zeros(cap, dtype=bool)
    slot = _home_slot(mix64(ids, seed), cap).astype(np.int64)
    todo = np.arange(n)
    while todo.size:
        s = slot[todo]
        free = ~taken[s]
        # first claimant of each free slot: todo is in id order, so np.unique's first index wins
        _, first = np.unique(s[free], return_index=True)
        win = todo[free][first]
        ws = slot[win]
        keys[ws] = ids[win]
        vals[ws] = rows[win]
        taken[ws] = True
        won = np.zeros(n, dtype=bool)
        won[win] = True
        todo = todo[~won[todo]]
        nxt = slot[todo] + 1
        slot[todo] = np.where(nxt == cap, 0, nxt)
    return keys, vals


def _lookup_numpy(ids, keys, vals, base, seed, fallback, fb_start, fb_count, out):
    """NumPy twin of ``embcompress.kernels._idmap.lookup`` (same arguments, same result)."""
    n = ids.size
    h = mix64(ids, seed)
    r = np.full(n, -1, dtype=np.int64)
    empty = np.iinfo(vals.dtype).max
    if keys.size:
        cap = np.uint64(keys.size)
        slot = _home_slot(h, keys.size)
        active = np.arange(n)
        while active.size:
            s = slot[active]
            v = vals[s]
            hit = (v != empty) & (keys[s] == ids[active])
            r[active[hit]] = v[hit]
            go = (v != empty) & ~hit
            active = active[go]
            nxt = s[go] + np.uint64(1)
            slot[active] = np.where(nxt == cap, np.uint64(0), nxt)
    elif vals.size:
        j = ids.view(np.uint64) - np.uint64(base & 0xFFFFFFFFFFFFFFFF)
        inside = j < np.uint64(vals.size)
        v = vals[j[inside]]
        idx = np.flatnonzero(inside)[v != empty]
        r[idx] = v[v != empty]
    miss = r < 0
    if miss.any():
        hm = h[miss] % np.uint64(fb_count)
        r[miss] = fallback[hm] if fallback.size else fb_start + hm.astype(np.int64)
    out[:] = r
    return out


def _lookup(ids, keys, vals, base, seed, fallback, fb_start, fb_count, out, n_threads: int):
    """The lookup on a map's arrays, by the compiled kernel or its twin; trusts its inputs."""
    kernel = compiled("_idmap")
    args = (ids, keys, vals, base, seed, fallback, fb_start, fb_count, out)
    if kernel is not None:
        kernel.lookup(*args, n_threads)
    else:
        _lookup_numpy(*args)
    return out


def _problems(n_rows: int, keys, vals, fallback, fb_start: int, fb_count: int) -> list[str]:
    """What is inconsistent in a map's arrays (empty when they make a map onto ``n_rows`` rows)."""
    dtype = row_dtype(n_rows)
    problems = []
    if n_rows > 2**63 - 1:  # lookup returns int64 rows; the kernel takes the fallback count as int64
        problems.append("n_rows exceeds 2**63 - 1")
    if vals.dtype != dtype or fallback.dtype != dtype:
        problems.append("row dtype does not fit n_rows")
    if keys.dtype != np.int64 or keys.ndim != 1 or vals.ndim != 1 or fallback.ndim != 1:
        problems.append("sections have the wrong dtype or shape")
        return problems
    # a hash table with no empty slot would make a miss probe forever
    if keys.size and (keys.size != vals.size or keys.size > _MAX_CAPACITY
                      or np.count_nonzero(vals != np.iinfo(dtype).max) > keys.size * MAX_LOAD):
        problems.append("the hash table's capacity is inconsistent")
    empty = np.iinfo(dtype).max
    if vals.size and np.any((vals >= n_rows) & (vals != empty)):
        problems.append("a row lies outside [0, n_rows)")
    if fb_count < 1 or (fallback.size and fallback.size != fb_count):
        problems.append("no fallback rows")
    elif fallback.size and fallback.max() >= n_rows:
        problems.append("a fallback row lies outside [0, n_rows)")
    elif not fallback.size and not (0 <= fb_start and fb_start + fb_count <= n_rows):
        problems.append("the fallback range lies outside [0, n_rows)")
    return problems


def _check_path(path, owner: str) -> None:
    if not isinstance(path, (str, os.PathLike)):  # (else Path() raised a raw TypeError)
        raise param_error("path", owner, "be a path (str or os.PathLike) to an id-map file", path)


def _header_int(cfg: dict, key: str, low: int, high: int) -> int:
    v = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int) or not low <= v <= high:
        raise ValueError(f"{key!r} must be an int in [{low}, {high}], got {v!r}")
    return v


class IdMap:
    """Raw int64 ids -> rows in ``[0, n_rows)``. Build with :meth:`from_arrays`, open with :meth:`load`.

    Attributes: ``n_rows``; ``seed`` (of the fallback hash); ``ids`` and ``rows`` (the mapped ids,
    ascending, and their rows); ``fallback_rows`` (the cold rows unmapped ids hash into);
    ``layout`` (``"direct"``, ``"hash"`` or ``"none"``); ``nbytes`` (memory of the map itself);
    ``config``, ``inputs``, ``meta`` (JSON dicts recorded in its file: what built it, from what,
    and facts such as ``meta["moved_ids"]`` after a refit).
    """

    def __init__(self, *, n_rows, seed, keys, vals, base, fallback, fb_start, fb_count,
                 config=None, inputs=None, meta=None):
        # Private: from_arrays and load validate, then call this.
        self.n_rows = int(n_rows)
        self.seed = int(seed)
        self._keys, self._vals, self._base = keys, vals, int(base)
        self._fallback, self._fb_start, self._fb_count = fallback, int(fb_start), int(fb_count)
        self.config = dict(config or {})
        self.inputs = dict(inputs or {})
        self.meta = dict(meta or {})
        self._pairs = None

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def from_arrays(cls, ids, rows, n_rows: int, *, fallback_rows=None, seed: int = 0,
                    config: Mapping[str, Any] | None = None, inputs: Mapping[str, Any] | None = None,
                    meta: Mapping[str, Any] | None = None) -> "IdMap":
        """A map sending ``ids[i]`` to ``rows[i]`` and every other id into ``fallback_rows``.

        ``fallback_rows`` defaults to every row not owned by a hot id, where a hot id is one that
        is alone on its row; when that leaves no row, to all rows. A ``range`` (step 1) is kept as
        its bounds, never built as an array. ``config``, ``inputs`` and
        ``meta`` are recorded in the file :meth:`save` writes.
        """
        owner = "IdMap.from_arrays"
        if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
            raise param_error("n_rows", owner, "be a positive int", n_rows)
        n_rows = int(n_rows)
        if n_rows > 2**63 - 1:  # lookup returns int64 rows; the kernel takes the fallback count as int64
            raise param_error("n_rows", owner, "be at most 2**63 - 1 (rows and the fallback count are int64)", n_rows)
        dtype = row_dtype(n_rows)
        seed = _check_seed(seed, owner)
        for name, record in (("config", config), ("inputs", inputs), ("meta", meta)):
            if record is not None and not isinstance(record, Mapping):  # (dict() of it raised a raw error)
                raise param_error(name, owner, "be a dict (JSON, recorded in the map's file) or None",
                                  type(record).__name__)
        ids = _check_int_array(ids, "ids", owner)
        rows = _check_int_array(rows, "rows", owner)
        if ids.size != rows.size:
            raise ConfigError(
                f"The 'ids' and 'rows' parameters of {owner} must have the same length. "
                f"Got {ids.size} ids and {rows.size} rows instead."
            )
        if rows.size and (rows.min() < 0 or rows.max() >= n_rows):
            bad = rows[(rows < 0) | (rows >= n_rows)][0]
            raise param_error("rows", owner, f"lie in [0, n_rows) = [0, {n_rows})", f"row {int(bad)}")
        order = np.argsort(ids, kind="stable")
        ids, rows = ids[order], rows[order]
        if ids.size > 1:
            dup = np.flatnonzero(ids[1:] == ids[:-1])
            if dup.size:
                raise param_error("ids", owner, "hold each id once", f"id {int(ids[dup[0]])} {int(np.sum(ids == ids[dup[0]]))} times")
        fb_range = None
        if fallback_rows is None:
            # From the ids' rows alone (not a count per table row: a hashing-trick map onto
            # 2**40 rows needed 8 TiB). Sorted hot rows h[i] satisfy i <= h[i] <= i + n_rows - n_hot,
            # so the prefix and suffix of hot rows are where those bounds hold.
            held, count = np.unique(rows, return_counts=True)
            hot = held[count == 1]
            gap = hot - np.arange(hot.size)
            prefix, suffix = int(np.count_nonzero(gap == 0)), int(np.count_nonzero(gap == n_rows - hot.size))
            if hot.size == n_rows:  # every row is hot: all rows
                fb_range = (0, n_rows)
            elif prefix + suffix == hot.size:  # the cold rows are one range
                fb_range = (prefix, n_rows - hot.size)
            else:
                cold = np.ones(n_rows, dtype=bool)
                cold[hot] = False
                fallback = np.flatnonzero(cold)
        elif isinstance(fallback_rows, range) and fallback_rows.step == 1:
            # a range is kept as (start, count), never built: a table's cold rows may outnumber memory
            if len(fallback_rows) == 0:
                raise param_error("fallback_rows", owner, "hold at least one row", "an empty range")
            if fallback_rows.start < 0 or fallback_rows.stop > n_rows:
                raise param_error("fallback_rows", owner, f"lie in [0, n_rows) = [0, {n_rows})", repr(fallback_rows))
            fb_range = (fallback_rows.start, len(fallback_rows))
        else:
            fallback = _check_int_array(fallback_rows, "fallback_rows", owner)
            if fallback.size == 0:
                raise param_error("fallback_rows", owner, "hold at least one row", "an empty array")
            if fallback.min() < 0 or fallback.max() >= n_rows:
                bad = fallback[(fallback < 0) | (fallback >= n_rows)][0]
                raise param_error("fallback_rows", owner, f"lie in [0, n_rows) = [0, {n_rows})", f"row {int(bad)}")
            if np.unique(fallback).size != fallback.size:
                raise param_error("fallback_rows", owner, "hold each row once", "repeated rows")
        # A contiguous ascending range is stored as (start, count), no array.
        if fb_range is not None:
            fb_arr, (fb_start, fb_count) = np.zeros(0, dtype=dtype), fb_range
        elif fallback.size == 1 or np.all(np.diff(fallback) == 1):
            fb_arr, fb_start, fb_count = np.zeros(0, dtype=dtype), int(fallback[0]), int(fallback.size)
        else:
            fb_arr, fb_start, fb_count = fallback.astype(dtype), 0, int(fallback.size)
        if ids.size and _capacity(ids.size) > _MAX_CAPACITY:
            raise param_error("ids", owner, f"hold at most {int(_MAX_CAPACITY * MAX_LOAD):,} ids", f"{ids.size:,} ids")
        keys, vals, base = cls._layout(ids, rows.astype(dtype), seed, dtype)
        return cls(n_rows=n_rows, seed=seed, keys=keys, vals=vals, base=base,
                   fallback=fb_arr, fb_start=fb_start, fb_count=fb_count,
                   config=config, inputs=inputs, meta=meta)

    @staticmethod
    def _layout(ids, rows, seed, dtype):
        """Direct array when it is no larger than the hash table, else the hash table."""
        empty_keys = np.zeros(0, dtype=np.int64)
        if ids.size == 0:
            return empty_keys, np.zeros(0, dtype=dtype), 0
        span = int(ids[-1]) - int(ids[0]) + 1
        if span * dtype.itemsize <= _capacity(ids.size) * (8 + dtype.itemsize):
            vals = np.full(span, np.iinfo(dtype).max, dtype=dtype)
            vals[ids - ids[0]] = rows
            return empty_keys, vals, int(ids[0])
        keys, vals = _build_hash(ids, rows, seed, dtype)
        return keys, vals, 0

    # -- serving ------------------------------------------------------------------------------

    def lookup(self, ids, *, out: np.ndarray | None = None, n_threads: int | None = None) -> np.ndarray:
        """Rows of ``ids`` (any shape of integers) as int64, each in ``[0, n_rows)``.

        ``out`` (optional): a C-contiguous int64 array of the same shape to write into.
        """
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
            raise _not_integers("ids", "IdMap.lookup", "hold integers (int64 ids)", arr.dtype)
        flat = _as_int64(arr.reshape(-1))
        if out is None:
            res = np.empty(arr.shape, dtype=np.int64)
        else:
            if not isinstance(out, np.ndarray) or out.dtype != np.int64 or out.shape != arr.shape or not out.flags.c_contiguous or not out.flags.writeable:
                raise param_error("out", "IdMap.lookup", f"be a writeable C-contiguous int64 array of shape {arr.shape}",
                                  f"{type(out).__name__} {getattr(out, 'dtype', '')} {getattr(out, 'shape', '')}")
            res = out
            if np.may_share_memory(out, flat):  # the kernel would overwrite ids it has not read yet
                flat = flat.copy()
        # No team for a small call: waking one costs more than the work, and waits a time slice
        # for a busy core (32 ids on two threads had a p99 of 12-16 ms under load).
        if isinstance(n_threads, np.integer):  # as the int it is (the resolver takes Python ints)
            n_threads = int(n_threads)
        threads = team_size(n_threads, flat.size, ID_SECONDS)
        _lookup(flat, self._keys, self._vals, self._base, self.seed, self._fallback,
                self._fb_start, self._fb_count, res.reshape(-1), threads)
        return res

    __call__ = lookup

    # -- as arrays (what MXEmbeddingBag keeps as buffers) ---------------------------------------

    def parts(self) -> dict[str, np.ndarray]:
        """The map as four arrays, without copying: ``keys`` (int64, the hash table's keys, empty
        in the other layouts), ``vals`` (row dtype: the hash table's rows or the direct array),
        ``fallback`` (row dtype; empty when the cold rows are a range) and ``params`` (int64
        ``[seed, base, fallback_start, fallback_count]``, the seed by its 64-bit pattern).
        With ``n_rows`` they are the whole map: :meth:`from_parts` rebuilds it."""
        seed = np.array([self.seed], dtype=np.uint64).view(np.int64)[0]
        params = np.array([seed, self._base, self._fb_start, self._fb_count], dtype=np.int64)
        return {"keys": self._keys, "vals": self._vals, "fallback": self._fallback, "params": params}

    @classmethod
    def from_parts(cls, n_rows: int, keys, vals, fallback, params, *, where: str = "from arrays") -> "IdMap":
        """The map :meth:`parts` describes, after the checks :meth:`load` makes on a file
        (``where`` names the arrays' origin in the error). ``config``, ``inputs`` and ``meta``
        are not part of it and come back empty."""
        if isinstance(n_rows, bool) or not isinstance(n_rows, (int, np.integer)) or n_rows < 1:
            raise param_error("n_rows", "IdMap.from_parts", "be a positive int", n_rows)
        n_rows = int(n_rows)
        keys, vals, fallback, params = (np.ascontiguousarray(a) for a in (keys, vals, fallback, params))
        if params.dtype != np.int64 or params.shape != (4,):
            problems = ["params must be int64 [seed, base, fallback_start, fallback_count]"]
        else:
            seed, base, fb_start, fb_count = (int(v) for v in params)
            problems = _problems(n_rows, keys, vals, fallback, fb_start, fb_count)
        if problems:
            raise ArtifactError(f"The id map {where} is inconsistent ({'; '.join(problems)}). Re-create it.")
        return cls(n_rows=n_rows, seed=seed & 0xFFFFFFFFFFFFFFFF, keys=keys, vals=vals, base=base,
                   fallback=fallback, fb_start=fb_start, fb_count=fb_count)

    # -- description --------------------------------------------------------------------------

    @property
    def layout(self) -> str:
        return "hash" if self._keys.size else ("direct" if self._vals.size else "none")

    @property
    def row_dtype(self) -> np.dtype:
        return self._vals.dtype

    def _mapped(self) -> tuple[np.ndarray, np.ndarray]:
        if self._pairs is None:
            empty = np.iinfo(self._vals.dtype).max
            held = np.flatnonzero(self._vals != empty)
            if self.layout == "hash":
                ids = self._keys[held]
            else:
                ids = (held.astype(np.uint64) + np.uint64(self._base & 0xFFFFFFFFFFFFFFFF)).view(np.int64)
            rows = self._vals[held].astype(np.int64)
            order = np.argsort(ids, kind="stable")
            self._pairs = (ids[order], rows[order])
        return self._pairs

    @property
    def ids(self) -> np.ndarray:
        """The mapped ids, ascending (int64)."""
        return self._mapped()[0]

    @property
    def rows(self) -> np.ndarray:
        """The rows of :attr:`ids`, aligned (int64)."""
        return self._mapped()[1]

    @property
    def n_mapped(self) -> int:
        return int(self.ids.size)

    @property
    def fallback_rows(self) -> np.ndarray:
        """The cold rows unmapped ids hash into (int64, in the order the hash indexes them)."""
        if self._fallback.size:
            return self._fallback.astype(np.int64)
        return np.arange(self._fb_start, self._fb_start + self._fb_count, dtype=np.int64)

    @property
    def n_fallback_rows(self) -> int:
        """How many cold rows unmapped ids hash into (the hash's modulus)."""
        return self._fb_count

    def in_fallback(self, rows) -> np.ndarray:
        """Whether each of ``rows`` is one of the cold rows (bool, without building their list)."""
        rows = np.asarray(rows, dtype=np.int64)
        if self._fallback.size:
            return np.isin(rows, self._fallback)
        return (rows >= self._fb_start) & (rows - self._fb_start < self._fb_count)

    @property
    def fallback_is_array(self) -> bool:
        """Whether the cold rows are held as an array (else as one ascending range)."""
        return bool(self._fallback.size)

    @property
    def hot_rows(self) -> int:
        """Rows owned by a single mapped id and outside the fallback rows."""
        held, count = np.unique(self.rows, return_counts=True)  # not a count per table row (see from_arrays)
        return int(np.count_nonzero(~self.in_fallback(held[count == 1])))

    @property
    def moved_ids(self) -> int | None:
        """After a refit against a previous map: how many of its ids changed rows (else None)."""
        return self.meta.get("moved_ids")

    @property
    def nbytes(self) -> int:
        """Bytes the map itself holds: keys, rows and fallback rows."""
        return int(self._keys.nbytes + self._vals.nbytes + self._fallback.nbytes)

    def __repr__(self) -> str:
        return (f"IdMap(n_rows={self.n_rows}, mapped_ids={self.n_mapped}, layout={self.layout!r}, "
                f"fallback_rows={self._fb_count}, nbytes={self.nbytes})")

    # -- files --------------------------------------------------------------------------------

    def _header_config(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "hash": HASH_NAME,
            "n_rows": self.n_rows,
            "seed": self.seed,
            "layout": self.layout,
            "row_dtype": self._vals.dtype.str,
            "base": self._base,
            "slots": "linear probing from ((mix64 >> 32) * capacity) >> 32",
            "fallback_start": self._fb_start,
            "fallback_count": self._fb_count,
            "build": self.config,
        }

    def save(self, path: str | os.PathLike, *, progress: Callable[[int, int], None] | None = None) -> Path:
        """Write the map to ``path`` (kind ``"idmap"``, atomically) and return the path."""
        _check_path(path, "IdMap.save")
        sections = {"keys": self._keys, "vals": self._vals, "fallback": self._fallback}
        return write_artifact(path, KIND, sections, config=self._header_config(),
                              inputs=self.inputs, meta=self.meta, progress=progress)

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: str = "header", mmap: bool = True) -> "IdMap":
        """Open an id-map file. ``verify="full"`` also checks every byte and that each mapped id
        is found on its row."""
        _check_path(path, "IdMap.load")
        if verify not in ("header", "full"):  # (read_artifact's error named read_artifact)
            raise param_error("verify", "IdMap.load", "be 'header' or 'full'", verify)
        art = read_artifact(path, kind=KIND, mmap=mmap, verify=verify)
        where = str(path)
        cfg = art.config
        try:
            if cfg["format_version"] > FORMAT_VERSION:
                raise ArtifactError(
                    f"{where!r} holds an id map of format {cfg['format_version']}, newer than this "
                    f"embcompress reads ({FORMAT_VERSION}). Upgrade embcompress to read it.")
            if cfg["hash"] != HASH_NAME:
                raise ArtifactError(f"{where!r} uses the fallback hash {cfg['hash']!r}, which this embcompress does not know.")
            # JSON ints in the ranges the kernel's arguments take (rows and counts are int64),
            # so a bad header fails here, not later as an OverflowError or a negative row in lookup
            n_rows, seed = _header_int(cfg, "n_rows", 1, 2**63 - 1), _header_int(cfg, "seed", 0, 2**64 - 1)
            base = _header_int(cfg, "base", -(2**63), 2**63 - 1)
            fb_start = _header_int(cfg, "fallback_start", -(2**63), 2**63 - 1)
            fb_count = _header_int(cfg, "fallback_count", -(2**63), 2**63 - 1)
            if not isinstance(cfg.get("build", {}), dict):
                raise ValueError("'build' is not a JSON object")
            dtype = row_dtype(n_rows)
            keys, vals, fallback = art.array("keys"), art.array("vals"), art.array("fallback")
            problems = _problems(n_rows, keys, vals, fallback, fb_start, fb_count)
            if np.dtype(cfg["row_dtype"]) != dtype and "row dtype does not fit n_rows" not in problems:
                problems.insert(0, "row dtype does not fit n_rows")
            if problems:
                raise ArtifactError(f"The id map {where!r} is inconsistent ({'; '.join(problems)}). Re-create it.")
        except (KeyError, TypeError, ValueError) as exc:
            raise ArtifactError(f"The id map header of {where!r} is malformed ({exc}). Re-create it.") from None
        build = cfg.get("build") or {}
        m = cls(n_rows=n_rows, seed=seed, keys=keys, vals=vals, base=base,
                fallback=fallback, fb_start=fb_start, fb_count=fb_count,
                config=build, inputs=art.inputs, meta=art.meta)
        if verify == "full" and m.n_mapped and not np.array_equal(m.lookup(m.ids), m.rows):
            raise ArtifactError(f"The id map {where!r} does not find every id it holds on its row. Re-create it.")
        return m
