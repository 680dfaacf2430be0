"""Review tests for IdMap: differential against a dict and the documented fallback rule, on the
direct and hash layouts and the switch between them, ids at the ends of int64 (MISSING_ID =
-2**63), save/load round trips, threads; and maps onto very many rows."""

import threading

import numpy as np
import pytest

from embcompress.errors import ArtifactError
from embcompress.idmap import IdMap, mix64

MISSING_ID = -(2**63)
MAX_ID = 2**63 - 1


def _reference(ids, rows, n_rows, fallback_rows, seed):
    """What the map must answer, from a dict and the documented fallback rule."""
    table = dict(zip(np.asarray(ids).tolist(), np.asarray(rows).tolist()))
    if fallback_rows is None:  # every row not held by exactly one id; all rows if that is none
        counts = np.bincount(np.asarray(rows, dtype=np.int64), minlength=n_rows)
        fallback_rows = np.flatnonzero(counts != 1)
        if fallback_rows.size == 0:
            fallback_rows = np.arange(n_rows)
    fb = np.asarray(fallback_rows, dtype=np.int64)

    def look(x):
        if x in table:
            return table[x]
        return int(fb[int(mix64(np.array([x], dtype=np.int64), seed)[0] % np.uint64(fb.size))])

    return look, fb


def _ids(rng, kind, n):
    if kind == "dense":
        return rng.permutation(np.arange(-n // 2, n - n // 2, dtype=np.int64))
    if kind == "dense_at_min":
        return rng.permutation(MISSING_ID + np.arange(n, dtype=np.int64))
    if kind == "dense_at_max":
        return rng.permutation(MAX_ID - np.arange(n, dtype=np.int64))
    if kind == "sparse":
        return rng.permutation(np.unique(rng.integers(MISSING_ID, MAX_ID, size=n, dtype=np.int64, endpoint=True)))
    # "ends": both ends of int64 and a few small ids (the span overflows int64)
    return rng.permutation(np.array([MISSING_ID, MISSING_ID + 1, -1, 0, 1, MAX_ID - 1, MAX_ID][: max(n, 1)], dtype=np.int64))


@pytest.mark.parametrize("kind", ["dense", "dense_at_min", "dense_at_max", "sparse", "ends"])
@pytest.mark.parametrize("n_rows", [1, 7, 255, 256, 65_536, 70_000])
@pytest.mark.parametrize("given_fallback", [False, True])
def test_lookup_matches_a_dict_and_the_fallback_rule(tmp_path, kind, n_rows, given_fallback):
    rng = np.random.default_rng(hash((kind, n_rows, given_fallback)) % 2**32)
    ids = _ids(rng, kind, int(rng.integers(1, 300)))
    rows = rng.integers(0, n_rows, size=ids.size)
    fallback = rng.choice(n_rows, size=int(rng.integers(1, n_rows + 1)), replace=False) if given_fallback else None
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    m = IdMap.from_arrays(ids, rows, n_rows, fallback_rows=fallback, seed=seed)
    look, fb = _reference(ids, rows, n_rows, fallback, seed)
    queries = np.concatenate([
        ids, ids + 1, ids - 1,  # neighbours (wrapping at the ends of int64)
        rng.integers(MISSING_ID, MAX_ID, size=200, dtype=np.int64, endpoint=True),
        np.array([MISSING_ID, MISSING_ID + 1, -1, 0, 1, MAX_ID], dtype=np.int64),
    ])
    with np.errstate(over="ignore"):
        queries = queries.astype(np.int64)
    expected = np.array([look(x) for x in queries.tolist()], dtype=np.int64)
    assert np.array_equal(m.lookup(queries), expected)
    assert np.array_equal(m.lookup(queries, n_threads=3), expected)
    assert np.array_equal(m.lookup(queries.view(np.uint64)), expected)  # uint64 ids by bit pattern
    assert np.array_equal(m.ids, np.sort(ids)) and np.array_equal(m.fallback_rows, fb)
    assert ((expected >= 0) & (expected < n_rows)).all()
    for verify in ("header", "full"):
        back = IdMap.load(m.save(tmp_path / "m.idmap"), verify=verify)
        assert np.array_equal(back.lookup(queries), expected) and back.layout == m.layout


def test_the_layout_switches_at_the_documented_size_and_answers_alike():
    # direct while span * itemsize <= capacity * (8 + itemsize) (uint8 rows: 9 bytes a slot)
    n = 12  # capacity 16: direct up to a span of 144 ids
    for span, layout in ((144, "direct"), (145, "hash")):
        ids = np.concatenate([np.arange(n - 1), [span - 1]]) - 70
        rows = np.arange(n) % 5
        m = IdMap.from_arrays(ids, rows, 5, seed=3)
        assert m.layout == layout
        look, _ = _reference(ids, rows, 5, None, 3)
        q = np.arange(-80, span, dtype=np.int64)
        assert np.array_equal(m.lookup(q), [look(x) for x in q.tolist()])


def test_fallback_rows_are_never_hot_rows():
    rng = np.random.default_rng(0)
    ids = np.arange(1000)
    rows = np.concatenate([np.arange(100), 100 + rng.integers(0, 50, size=900)])  # 100 hot rows, buckets
    m = IdMap.from_arrays(ids, rows, 200, seed=1)
    counts = np.bincount(rows, minlength=200)
    hot = np.flatnonzero(counts == 1)
    unseen = m.lookup(rng.integers(10_000, 2**62, size=100_000))
    assert not np.isin(unseen, hot).any()
    assert m.hot_rows == hot.size


def test_lookups_from_many_threads_agree():
    rng = np.random.default_rng(2)
    ids = np.unique(rng.integers(MISSING_ID, MAX_ID, size=50_000, dtype=np.int64))
    m = IdMap.from_arrays(ids, rng.integers(0, 1000, size=ids.size), 1000, seed=9)
    q = np.concatenate([ids, rng.integers(MISSING_ID, MAX_ID, size=50_000, dtype=np.int64)])
    ref = m.lookup(q, n_threads=1)
    out = [None] * 6

    def work(i):
        out[i] = m.lookup(q, n_threads=2)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(o, ref) for o in out)


def test_n_rows_of_2_63_is_refused_not_served_with_an_overflow():
    # 2**63 rows were accepted, but the fallback range of all of them does not fit the kernel's
    # int64 count: every lookup raised OverflowError (and its file could not be loaded).
    from embcompress.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'n_rows' parameter of IdMap.from_arrays must be at most 2\*\*63 - 1"):
        IdMap.from_arrays([], [], 2**63)


@pytest.mark.parametrize("n_rows", [2**40, 2**63 - 1])
def test_a_map_onto_very_many_rows_needs_memory_for_its_ids_only(n_rows):
    # The default fallback rows were found by counting ids on every row (np.bincount with
    # minlength=n_rows): 8 bytes a row, a MemoryError for a hashing-trick map onto 2**40 rows.
    empty = IdMap.from_arrays([], [], n_rows, seed=4)
    q = np.array([MISSING_ID, -1, 0, 5, MAX_ID], dtype=np.int64)
    h = mix64(q, 4)
    assert np.array_equal(empty.lookup(q), (h % np.uint64(n_rows)).astype(np.int64))
    assert empty.nbytes == 0 and empty.hot_rows == 0
    # hot ids on the first and last rows, a bucket in the middle: the cold rows stay a range
    ids, rows = np.array([10, 11, 12, 13, 14]), np.array([0, 1, n_rows - 1, 7, 7])
    m = IdMap.from_arrays(ids, rows, n_rows, seed=4)
    assert m.nbytes < 1024 and m.hot_rows == 3
    got = m.lookup(np.concatenate([ids, q]))
    assert np.array_equal(got[:5], rows)
    assert np.array_equal(got[5:], 2 + (h % np.uint64(n_rows - 3)).astype(np.int64))


def test_a_file_whose_rows_leave_the_table_is_refused(tmp_path):
    import json
    import struct
    import zlib

    from embcompress.container import PREFIX, PREFIX_SIZE

    m = IdMap.from_arrays([1, 5, 9], [0, 1, 2], 3, fallback_rows=[0, 2], seed=0)
    path = m.save(tmp_path / "m.idmap")
    raw = bytearray(path.read_bytes())
    magic, major, minor, _, hl, _, _ = PREFIX.unpack(raw[:PREFIX_SIZE])
    h = json.loads(raw[PREFIX_SIZE : PREFIX_SIZE + hl])
    h["config"]["n_rows"] = 2  # rows 2 now lie outside the table
    text = json.dumps(h, separators=(",", ":")).encode()
    text += b" " * (hl - len(text))
    crc = zlib.crc32(text, zlib.crc32(struct.pack("<HHIQ", major, minor, 0, hl)))
    raw[:PREFIX_SIZE] = PREFIX.pack(magic, major, minor, 0, hl, crc, 0)
    raw[PREFIX_SIZE : PREFIX_SIZE + hl] = text
    path.write_bytes(bytes(raw))
    with pytest.raises(ArtifactError, match="outside"):
        IdMap.load(path)
