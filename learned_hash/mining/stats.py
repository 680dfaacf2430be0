"""LogStats: what mining learned from a log, and its file (container kind ``"logstats"``).

Held per feature: every id's access count (and positive count when a label was mined); per
requested pair of features: how often two ids share a row (split by label when mined); per
feature with a session key: how often id ``b`` directly follows id ``a`` within one session.

Every array is stored in one canonical order, so two mines of the same log give identical
arrays whatever the engine: frequencies by count descending then id ascending; pairs and
sequences by (first id, second id) ascending.
"""

from __future__ import annotations

import contextvars
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embcompress.container import read_artifact, write_artifact
from embcompress.errors import ArtifactError, ConfigError
from embcompress.idhash import MISSING_ID

KIND = "logstats"
FORMAT_VERSION = 1

_I64 = np.int64


def _i64(x, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ConfigError(f"{what} must be a 1-D array. Got shape {arr.shape} instead.")
    if arr.dtype.kind == "u" and arr.dtype.itemsize == 8:
        return arr.view(_I64)  # hashed string ids: the uint64 reinterpreted, as everywhere
    if arr.dtype.kind not in "iub" and not (arr.dtype.kind == "f" and len(arr) == 0):
        raise ConfigError(f"{what} must hold integers. Got dtype {arr.dtype} instead.")
    return np.ascontiguousarray(arr, dtype=_I64)


def _column(x, what: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(ids, text_rank)`` of a column given to :meth:`LogStats.from_rows`: integers as
    :func:`_i64` takes them (rank None), or strings (``str``/``bytes``/None, a NumPy, Arrow or
    list column) hashed by :func:`embcompress.idhash.string_ids`, with each value's rank in the
    order of its UTF-8 bytes (a missing value, ``""`` or None, first), which the engines' SQL
    orders text by and breaks ties of time with."""
    if isinstance(x, (list, tuple)) and any(isinstance(v, (str, bytes)) for v in x):
        x = np.asarray(x, dtype=object)  # (bytes as a NumPy 'S' array would lose trailing NULs)
    x = np.asarray(x)  # an Arrow string column becomes an object array of str
    if x.dtype.kind not in "USO":
        return _i64(x, what), None
    if x.ndim != 1:
        raise ConfigError(f"{what} must be a 1-D array. Got shape {x.shape} instead.")
    from embcompress.idhash import string_ids

    try:
        ids = string_ids(x)
    except ConfigError:
        raise ConfigError(f"{what} must hold integer ids, or strings (str, bytes or None) to hash as "
                          f"embcompress.idhash.string_ids does; it holds other values. Pass one kind.") from None
    missing = ids == MISSING_ID
    if x.dtype.kind == "U":
        text = x  # code point order is UTF-8 byte order
    else:
        text = np.array([b"" if v is None else v.encode("utf-8", "surrogatepass") if isinstance(v, str) else bytes(v)
                         for v in x.tolist()], dtype=object)
    rank = np.full(len(x), -1, dtype=_I64)
    if (~missing).any():
        rank[~missing] = np.unique(text[~missing], return_inverse=True)[1].ravel()
    return ids, rank


def _same_length(what: str, **arrays) -> None:
    """ConfigError unless the named arrays have one length."""
    lengths = {k: len(v) for k, v in arrays.items() if v is not None}
    if len(set(lengths.values())) > 1:
        got = ", ".join(f"{n} {k}" for k, n in lengths.items())
        raise ConfigError(f"The arrays of {what} must have the same length. Got {got} instead.")


def _check_values(what: str, keys: Sequence[np.ndarray], counts: np.ndarray, pos: np.ndarray | None) -> None:
    """ConfigError when a key (tuple) repeats, a count is negative, or positives exceed counts."""
    if len(counts) and counts.min() < 0:
        raise ConfigError(f"The counts of {what} must not be negative. Got {int(counts.min())} instead.")
    if pos is not None and len(pos) and (pos.min() < 0 or (pos > counts).any()):
        i = int(np.flatnonzero((pos < 0) | (pos > counts))[0])
        raise ConfigError(f"The positive counts of {what} must lie in 0..count, never more than the count. "
                          f"Got {int(pos[i])} positives of {int(counts[i])} instead.")
    if len(counts) > 1:
        order = np.lexsort(tuple(reversed(keys)))
        ks = [k[order] for k in keys]
        same = np.ones(len(counts) - 1, dtype=bool)
        for k in ks:
            same &= k[1:] == k[:-1]
        if same.any():
            i = int(np.flatnonzero(same)[0])
            key = tuple(int(k[i]) for k in ks)
            name = f"id {key[0]}" if len(key) == 1 else f"{key}"
            raise ConfigError(f"The counts of {what} must name each id once. Got {name} twice instead: "
                              f"sum its counts into one entry.")


def _sum_by_keys(keys: Sequence[np.ndarray], values: Sequence[np.ndarray]) -> tuple[list, list]:
    """Group equal key tuples (one or two keys) and sum the values; keys come back sorted ascending."""
    n = len(keys[0])
    if n == 0:
        return [k.astype(_I64) for k in keys], [v.astype(_I64) for v in values]
    minor = keys[1] if len(keys) == 2 else np.zeros(n, _I64)
    ordered = _sorted_by(keys[0], minor, *keys, *(v.astype(_I64, copy=False) for v in values))
    ks, vs = ordered[: len(keys)], ordered[len(keys):]
    start = np.ones(n, dtype=bool)
    start[1:] = np.zeros(n - 1, dtype=bool)
    for k in ks:
        start[1:] |= k[1:] != k[:-1]
    idx = np.flatnonzero(start)
    return [k[idx] for k in ks], [np.add.reduceat(v, idx) for v in vs]


def _order(major: np.ndarray, minor: np.ndarray) -> np.ndarray:
    """Order by (major, minor) ascending (equal pairs in any order).

    Packs (major - min, minor - min) into one uint64 when both fit: one argsort of unique keys is
    several times faster than a two-key lexsort on the millions of ids of a big log.
    """
    if len(major) > 1:
        mlo, nlo = int(major.min()), int(minor.min())
        m_bits = (int(major.max()) - mlo).bit_length()
        n_bits = (int(minor.max()) - nlo).bit_length()
        if m_bits + n_bits <= 64:
            # differences wrap in int64 but are exact modulo 2**64, which is all uint64 keeps
            key = (major - mlo).astype(np.uint64) << np.uint64(n_bits) if m_bits else np.zeros(len(major), np.uint64)
            key |= (minor - nlo).astype(np.uint64)
            return np.argsort(key)
    return np.lexsort((minor, major))


# From this many entries on, counts are sorted by DuckDB (a parallel sort that moves the arrays
# along): NumPy's lexsort and gather took 8 s for the 13 million pairs of a multi-hot column
# (benchmarks/bench_mining_multihot.py) where DuckDB takes 3 s on two cores.
ENGINE_SORT_MIN = 1 << 20
# How that sort runs: mine sets its run's settings, ``{"temp_directory": its temporary folder,
# "memory_limit": bytes or None, "threads": n or None}`` (the sort spills into a folder it makes
# there; DuckDB's own default is '.tmp' in the working folder); outside mine, the system's temp
# folder and DuckDB's defaults.
SORT_SETTINGS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("SORT_SETTINGS", default=None)


def _ascending(major: np.ndarray, minor: np.ndarray) -> bool:
    """Whether (major, minor) pairs are in ascending order (a few vectorized passes)."""
    same = major[1:] == major[:-1]
    return bool(np.all((major[1:] > major[:-1]) | (same & (minor[1:] >= minor[:-1]))))


def _sorted_by(major: np.ndarray, minor: np.ndarray, *arrays):
    """``arrays`` (None stays None) ordered by (major, minor) ascending (equal pairs in any order),
    as new arrays. Already so ordered (counts _sum_by_keys merged), they are copied as they are."""
    if _ascending(major, minor):
        return tuple(None if a is None else np.array(a) for a in arrays)
    if len(major) < ENGINE_SORT_MIN:
        order = _order(major, minor)
        return tuple(None if a is None else a[order] for a in arrays)
    import duckdb
    import pyarrow as pa

    given = {f"c{i}": a for i, a in enumerate(arrays) if a is not None}
    settings = SORT_SETTINGS.get() or {}
    with tempfile.TemporaryDirectory(prefix="embc-sort-", dir=settings.get("temp_directory")) as spill:
        config = {"temp_directory": spill}
        if settings.get("memory_limit") is not None:
            config["memory_limit"] = f"{int(settings['memory_limit'])}B"
        if settings.get("threads") is not None:
            config["threads"] = int(settings["threads"])
        con = duckdb.connect(config=config)
        try:
            con.execute("SET enable_progress_bar = false")
            counts = con.from_arrow(pa.table({"__major": major, "__minor": minor, **given}))
            out = counts.order("__major, __minor").select(*given).to_arrow_table()
        finally:
            con.close()
    # (writable, as NumPy's sort gives them: Arrow's buffers come out read-only)
    return tuple(None if a is None else np.require(out.column(f"c{i}").to_numpy(), requirements="W")
                 for i, a in enumerate(arrays))


def _freq_sorted(ids: np.ndarray, counts: np.ndarray, *arrays):
    """``arrays`` by count descending, then id ascending."""
    return _sorted_by(-counts, ids, *arrays)


def _as_json_paths(source):
    """``source`` with every path (``os.PathLike``) in it as its string, lists and dicts walked."""
    if isinstance(source, os.PathLike):
        return os.fspath(source)
    if isinstance(source, (list, tuple)):
        return [_as_json_paths(s) for s in source]
    if isinstance(source, dict):
        return {k: _as_json_paths(v) for k, v in source.items()}
    return source


class LogStats:
    """Counts mined from a log. Build with :func:`learned_hash.mine`, :meth:`from_rows`,
    :meth:`from_arrays`, or :meth:`load`.

    Attributes: ``features`` (list of str), ``label`` (str or None), ``n_rows`` (log rows
    counted), ``pairs`` (list of (a, b)), ``sequence_key``, ``time_key``, ``min_count``,
    ``engine``, ``source`` (what was mined, as recorded in the file), ``bad_lines`` (malformed
    lines skipped).

    A row is *positive* when its label is greater than 0 (so 0/1 and -1/1 labels both work).
    """

    def __init__(
        self,
        *,
        features: Sequence[str],
        frequencies: Mapping[str, tuple],
        pairs: Mapping[tuple[str, str], tuple] | None = None,
        sequences: Mapping[str, tuple] | None = None,
        label: str | None = None,
        n_rows: int,
        sequence_key: str | None = None,
        time_key: str | None = None,
        min_count: int = 1,
        engine: str = "numpy",
        source: Any = None,
        bad_lines: int = 0,
        _canonical: bool = False,
    ):
        self.features = list(features)
        self.label = label
        self.n_rows = int(n_rows)
        self.sequence_key = sequence_key
        self.time_key = time_key
        self.min_count = int(min_count)
        self.engine = engine
        self.source = _as_json_paths(source)  # (recorded in the file: a Path is written as its text)
        self.bad_lines = int(bad_lines)
        pairs = dict(pairs or {})
        sequences = dict(sequences or {})
        self.pairs = [tuple(p) for p in pairs]
        missing = [f for f in self.features if f not in frequencies]
        if missing:
            raise ConfigError(f"LogStats needs the frequencies of every feature; none given for {missing}.")
        self._freq: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray | None]] = {}
        for f in self.features:
            ids, counts, *pos = frequencies[f]
            pos = pos[0] if pos else None
            ids, counts = _i64(ids, f"The ids of feature {f!r}"), _i64(counts, f"The counts of feature {f!r}")
            pos = None if pos is None else _i64(pos, f"The positive counts of feature {f!r}")
            _same_length(f"feature {f!r}", ids=ids, counts=counts, positives=pos)
            if not _canonical:
                ids, counts, pos = _freq_sorted(ids, counts, ids, counts, pos)
            self._freq[f] = (ids, counts, pos)
        self._pairs: dict[tuple[str, str], tuple] = {}
        for (a, b), arrays in pairs.items():
            ia, ib, c, *pos = arrays
            pos = pos[0] if pos else None
            ia, ib, c = (_i64(x, f"The pair counts of ({a!r}, {b!r})") for x in (ia, ib, c))
            pos = None if pos is None else _i64(pos, f"The pair positives of ({a!r}, {b!r})")
            _same_length(f"pair ({a!r}, {b!r})", ids_a=ia, ids_b=ib, counts=c, positives=pos)
            if not _canonical:
                ia, ib, c, pos = _sorted_by(ia, ib, ia, ib, c, pos)
            self._pairs[(a, b)] = (ia, ib, c, pos)
        self._seq: dict[str, tuple] = {}
        for f, (prev, nxt, c) in sequences.items():
            prev, nxt, c = (_i64(x, f"The sequence counts of {f!r}") for x in (prev, nxt, c))
            _same_length(f"the sequence counts of {f!r}", prev=prev, next=nxt, counts=c)
            if not _canonical:
                prev, nxt, c = _sorted_by(prev, nxt, prev, nxt, c)
            self._seq[f] = (prev, nxt, c)

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_arrays(
        cls,
        frequencies: Mapping[str, tuple],
        *,
        pairs: Mapping[tuple[str, str], tuple] | None = None,
        sequences: Mapping[str, tuple] | None = None,
        label: str | None = None,
        n_rows: int | None = None,
        **attrs,
    ) -> "LogStats":
        """Stats from count arrays: ``frequencies[f] = (ids, counts)`` or ``(ids, counts, positives)``,
        ``pairs[(a, b)] = (ids_a, ids_b, counts[, positives])``, ``sequences[f] = (prev, next, counts)``.

        ``n_rows`` defaults to the largest total count of a feature. Other attributes
        (``sequence_key``, ``min_count``, ``source``, ...) pass through.
        """
        if not isinstance(frequencies, Mapping) or not frequencies:
            raise ConfigError(
                f"The 'frequencies' parameter of LogStats.from_arrays must be a non-empty mapping "
                f"feature -> (ids, counts[, positives]). Got {type(frequencies).__name__} instead."
            )
        stats = cls(features=list(frequencies), frequencies=frequencies, pairs=pairs, sequences=sequences,
                    label=label, n_rows=0 if n_rows is None else n_rows, **attrs)
        for f, (ids, counts, pos) in stats._freq.items():
            _check_values(f"feature {f!r}", [ids], counts, pos)
        for (a, b), (ia, ib, c, pos) in stats._pairs.items():
            _check_values(f"the pair ({a!r}, {b!r})", [ia, ib], c, pos)
        for f, (prev, nxt, c) in stats._seq.items():
            _check_values(f"the sequences of {f!r}", [prev, nxt], c, None)
        if n_rows is None:
            stats.n_rows = max(int(counts.sum()) for _, counts, _ in stats._freq.values())
        return stats

    @classmethod
    def from_rows(
        cls,
        columns: Mapping[str, np.ndarray],
        *,
        features: Sequence[str],
        label: str | None = None,
        pairs: Iterable[tuple[str, str]] = (),
        sequence_key: str | None = None,
        time_key: str | None = None,
        min_count: int = 1,
        source: Any = None,
    ) -> "LogStats":
        """Count a log held in memory as arrays (``columns[name]``: one value a row), in NumPy.

        Feature and session columns hold integer ids (uint64 taken as the int64 it wraps to), or
        strings (``str``/``bytes``/None in a NumPy, Arrow or list column), which are hashed by
        :func:`embcompress.idhash.string_ids`; the label is numeric (positive when > 0). Sequences
        order a session's rows by time, ties by the id: an integer id's int64 value, a string id's
        text (its UTF-8 bytes, a missing value first), as the engines do; pass the strings
        themselves for that, since their hashes (``string_ids``) are ordered as the integers they
        are. The same counts :func:`learned_hash.mine` gives, for logs small enough to hold in
        memory (tests, examples).
        """
        if not isinstance(min_count, int) or isinstance(min_count, bool) or min_count < 1:
            raise ConfigError(f"The 'min_count' parameter of LogStats.from_rows must be an int >= 1. Got {min_count!r} instead.")
        features = list(features)
        pairs = [tuple(p) for p in pairs]
        same = next((p[0] for p in pairs if len(p) == 2 and p[0] == p[1]), None)
        if same is not None:  # (fit_hash reads such a pair as a multi-hot column's lists: embed.own_lists)
            raise ConfigError(
                f"The 'pairs' parameter of LogStats.from_rows pairs {same!r} with itself, which counts the ids of "
                f"one list together (a multi-hot column, mined by learned_hash.mine), but from_rows takes one value "
                f"a row. Pair it with another feature, e.g. [({same!r}, <another feature>)]."
            )
        for name in [*features, *(x for p in pairs for x in p), *(k for k in (label, sequence_key, time_key) if k)]:
            if name not in columns:
                raise ConfigError(
                    f"The 'columns' parameter of LogStats.from_rows has no column {name!r}; "
                    f"it has {sorted(columns)}. Pass every feature, pair member, label and key."
                )
        cols, text_rank = {}, {}
        for f in dict.fromkeys([*features, *(x for p in pairs for x in p)]):
            cols[f], text_rank[f] = _column(columns[f], f"Column {f!r}")
        used = dict.fromkeys([*features, *(x for p in pairs for x in p), *(k for k in (label, sequence_key, time_key) if k)])
        lengths = {name: len(np.asarray(columns[name])) for name in used}
        n = lengths[features[0]]
        odd = next((name for name, m in lengths.items() if m != n), None)
        if odd is not None:
            raise ConfigError(
                f"The columns passed to LogStats.from_rows must have the same length (one value a row). "
                f"Got {n} values in {features[0]!r} but {odd!r} has {lengths[odd]}."
            )
        pos = None
        if label is not None:
            pos = (np.asarray(columns[label]) > 0).astype(_I64)
        ones = np.ones(n, dtype=_I64)

        def count(keys):
            vals = [ones] if pos is None else [ones, pos]
            ks, vs = _sum_by_keys(keys, vals)
            keep = vs[0] >= min_count
            return [k[keep] for k in ks], [v[keep] for v in vs]

        freqs = {}
        for f in features:
            (ids,), vs = count([cols[f]])
            freqs[f] = (ids, *vs)
        prs = {}
        for a, b in pairs:
            (ia, ib), vs = count([cols[a], cols[b]])
            prs[(a, b)] = (ia, ib, *vs)
        seqs = {}
        if sequence_key is not None:
            sess = cols[sequence_key] if sequence_key in cols else _column(columns[sequence_key], f"Column {sequence_key!r}")[0]
            t = np.asarray(columns[time_key]) if time_key is not None else np.zeros(n, dtype=_I64)
            if t.dtype.kind == "M":
                t = t.view(_I64)  # NaT is the smallest int64: missing times sort first, as in SQL
            in_session = sess != MISSING_ID  # rows without a session are in no sequence
            for f in features:
                ids = cols[f]
                # the engines' rule: within a session, order by (time, id); ties are broken by the
                # id (the int64 id; a string id's text, not its hash)
                tie = ids if text_rank[f] is None else text_rank[f]
                order = np.lexsort((tie, t, sess))
                order = order[in_session[order]]
                s, i = sess[order], ids[order]
                same = s[1:] == s[:-1]
                (prev, nxt), (c,) = _sum_by_keys([i[:-1][same], i[1:][same]], [np.ones(int(same.sum()), _I64)])
                keep = c >= min_count
                seqs[f] = (prev[keep], nxt[keep], c[keep])
        return cls(features=features, frequencies=freqs, pairs=prs, sequences=seqs, label=label, n_rows=n,
                   sequence_key=sequence_key, time_key=time_key, min_count=min_count, engine="numpy",
                   source=source)

    # ------------------------------------------------------------------ queries

    def _feature(self, feature: str, owner: str) -> tuple:
        try:
            return self._freq[feature]
        except KeyError:
            raise ConfigError(
                f"The 'feature' parameter of LogStats.{owner} must be one of the mined features "
                f"{self.features}. Got {feature!r} instead.", param="feature"
            ) from None

    def frequencies(self, feature: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, counts)`` int64, by count descending, ties by id ascending."""
        ids, counts, _ = self._feature(feature, "frequencies")
        return ids, counts

    def positives(self, feature: str) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, positive_counts)`` int64 in the order of :meth:`frequencies`."""
        ids, _, pos = self._feature(feature, "positives")
        if pos is None:
            raise ConfigError(
                "LogStats.positives needs a label, but these stats were mined without one. "
                "Mine again with label=<the label column>."
            )
        return ids, pos

    def _pair(self, a: str, b: str, owner: str):
        if (a, b) in self._pairs:
            return self._pairs[(a, b)], False
        if (b, a) in self._pairs:
            return self._pairs[(b, a)], True
        raise ConfigError(
            f"The pair ({a!r}, {b!r}) passed to LogStats.{owner} was not mined; the mined pairs are "
            f"{self.pairs}. Mine again with pairs=[({a!r}, {b!r})]."
        )

    def pair_counts(self, a: str, b: str, *, label: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids_a, ids_b, counts)``: how many rows hold id ``ids_a[i]`` in ``a`` and ``ids_b[i]`` in ``b``.

        With ``label=1`` (or ``0``) only rows whose label is positive (or not) are counted, and
        pairs with no such row are left out. Sorted by (ids_a, ids_b). Pruning by ``min_count``
        applies to the total count.
        """
        (ia, ib, c, pos), swapped = self._pair(a, b, "pair_counts")
        if label is not None:
            if label not in (0, 1) or isinstance(label, bool):
                raise ConfigError(f"The 'label' parameter of LogStats.pair_counts must be None, 0 or 1. Got {label!r} instead.")
            if pos is None:
                raise ConfigError(
                    "LogStats.pair_counts(label=...) needs a label, but these stats were mined without "
                    "one. Mine again with label=<the label column>."
                )
            c = pos if label == 1 else c - pos
            keep = c > 0
            ia, ib, c = ia[keep], ib[keep], c[keep]
        if swapped:
            order = np.lexsort((ia, ib))
            return ib[order], ia[order], c[order]
        return ia, ib, c

    def pair_matrix(self, a: str, b: str, *, label: int | None = None):
        """``(matrix, ids_a, ids_b)``: the pair counts as a ``scipy.sparse.csr_matrix`` (int64),
        row ``i`` for id ``ids_a[i]``, column ``j`` for id ``ids_b[j]`` (both sorted ascending,
        only ids that occur in some counted pair)."""
        import scipy.sparse as sp

        ia, ib, c = self.pair_counts(a, b, label=label)
        ua, ra = np.unique(ia, return_inverse=True)
        ub, rb = np.unique(ib, return_inverse=True)
        m = sp.csr_matrix((c, (ra, rb)), shape=(len(ua), len(ub)), dtype=_I64)
        return m, ua.astype(_I64), ub.astype(_I64)

    def sequence_counts(self, feature: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(prev_ids, next_ids, counts)``: id ``next`` directly followed id ``prev`` within a
        session (``sequence_key``), ordered by ``time_key`` then id (a string id's text). Sorted by
        (prev, next)."""
        if feature not in self._seq:
            if self.sequence_key is None:
                raise ConfigError(
                    "LogStats.sequence_counts needs a session key, but these stats were mined "
                    "without one. Mine again with sequence_key=<the session/user column>."
                )
            self._feature(feature, "sequence_counts")
        return self._seq[feature]

    def summary(self, feature: str) -> dict:
        """``ids`` seen, ``accesses`` (rows counted; a multi-hot column's: the ids of its lists),
        ``once_share`` (share of ids seen once), ``missing`` (accesses of the missing-value id)."""
        ids, counts, _ = self._feature(feature, "summary")
        n = len(ids)
        return {
            "ids": n,
            "accesses": int(counts.sum()),
            "once_share": float((counts == 1).sum() / n) if n else 0.0,
            "missing": int(counts[ids == MISSING_ID].sum()),
        }

    def __repr__(self) -> str:
        return (
            f"LogStats(features={self.features}, label={self.label!r}, n_rows={self.n_rows}, "
            f"pairs={self.pairs}, engine={self.engine!r}, bad_lines={self.bad_lines})"
        )

    # ------------------------------------------------------------------ file

    def save(self, path: str | os.PathLike) -> Path:
        """Write the stats to ``path`` (atomic; container kind ``"logstats"``)."""
        sections: dict[str, np.ndarray] = {}
        for i, f in enumerate(self.features):
            ids, counts, pos = self._freq[f]
            sections[f"freq/{i}/ids"] = ids
            sections[f"freq/{i}/counts"] = counts
            if pos is not None:
                sections[f"freq/{i}/positives"] = pos
        for k, p in enumerate(self.pairs):
            ia, ib, c, pos = self._pairs[p]
            sections[f"pair/{k}/ids_a"] = ia
            sections[f"pair/{k}/ids_b"] = ib
            sections[f"pair/{k}/counts"] = c
            if pos is not None:
                sections[f"pair/{k}/positives"] = pos
        seq_features = list(self._seq)
        for i, f in enumerate(seq_features):
            prev, nxt, c = self._seq[f]
            sections[f"seq/{i}/prev"] = prev
            sections[f"seq/{i}/next"] = nxt
            sections[f"seq/{i}/counts"] = c
        config = {
            "format_version": FORMAT_VERSION,
            "features": self.features,
            "label": self.label,
            "pairs": [list(p) for p in self.pairs],
            "sequence_features": seq_features,
            "sequence_key": self.sequence_key,
            "time_key": self.time_key,
            "min_count": self.min_count,
            "engine": self.engine,
        }
        return write_artifact(
            path, KIND, sections, config=config,
            inputs={"source": self.source},
            meta={"n_rows": self.n_rows, "bad_lines": self.bad_lines},
        )

    @classmethod
    def load(cls, path: str | os.PathLike, *, verify: str = "full") -> "LogStats":
        """Open stats written by :meth:`save`, checking every byte against its checksum (every byte
        is read into memory anyway); ``verify="header"`` checks the header and bounds only."""
        with read_artifact(path, kind=KIND, verify=verify) as art:
            cfg = art.config
            if cfg.get("format_version", 0) > FORMAT_VERSION:
                raise ArtifactError(
                    f"{str(path)!r} holds log stats of format {cfg.get('format_version')}, newer than "
                    f"this version reads ({FORMAT_VERSION}). Upgrade embcompress."
                )
            names = set(art.section_names)

            def get(name):
                return np.array(art.array(name)) if name in names else None

            freqs = {
                f: (get(f"freq/{i}/ids"), get(f"freq/{i}/counts"), get(f"freq/{i}/positives"))
                for i, f in enumerate(cfg["features"])
            }
            pairs = {
                tuple(p): (get(f"pair/{k}/ids_a"), get(f"pair/{k}/ids_b"), get(f"pair/{k}/counts"), get(f"pair/{k}/positives"))
                for k, p in enumerate(cfg["pairs"])
            }
            seqs = {
                f: (get(f"seq/{i}/prev"), get(f"seq/{i}/next"), get(f"seq/{i}/counts"))
                for i, f in enumerate(cfg["sequence_features"])
            }
            return cls(
                features=cfg["features"], frequencies=freqs, pairs=pairs, sequences=seqs,
                label=cfg["label"], n_rows=art.meta["n_rows"], sequence_key=cfg["sequence_key"],
                time_key=cfg["time_key"], min_count=cfg["min_count"], engine=cfg["engine"],
                source=art.inputs.get("source"), bad_lines=art.meta["bad_lines"], _canonical=True,
            )

    def __eq__(self, other) -> bool:
        if not isinstance(other, LogStats):
            return NotImplemented
        same = lambda x, y: (x is None and y is None) or (x is not None and y is not None and np.array_equal(x, y))
        return (
            self.features == other.features and self.label == other.label and self.n_rows == other.n_rows
            and set(self.pairs) == set(other.pairs) and set(self._seq) == set(other._seq)
            and all(all(same(x, y) for x, y in zip(self._freq[f], other._freq[f])) for f in self.features)
            and all(all(same(x, y) for x, y in zip(self._pairs[p], other._pairs[p])) for p in self.pairs)
            and all(all(same(x, y) for x, y in zip(self._seq[f], other._seq[f])) for f in self._seq)
        )

    __hash__ = None
