"""Review of multi-hot mining (lists of ids): defects found, each test failing before its fix.

Counts are held against the plain Python count of test_mining_multihot (``expected``,
``expected_self_pair``), independent of the SQL."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import MISSING_ID
from learned_hash import LogStats, mine
from learned_hash.mining import stats as stats_mod
from tests.unit.learned_hash.test_mining_multihot import ENGINES, _mine, _rows, expected, expected_self_pair


def _write_parts(folder, parts):
    folder.mkdir()
    rows = []
    for k, t in enumerate(parts):
        pq.write_table(t, folder / f"part{k:02d}.parquet")
        rows += _rows(t)
    return rows


def _null_list_parts():
    """A part whose every list is empty or of missing ids only, which Arrow (pandas, a writer that
    infers types) types list<null>: an hour without clicks, say. Beside parts of int32, uint64 and
    string lists."""
    return [
        pa.table({"label": [1, 0], "u": [1, 2], "items": pa.array([[1, 2], [3]], pa.list_(pa.int32())),
                  "tags": pa.array([["a"], ["b", "a"]], pa.list_(pa.string())),
                  "bins": pa.array([[b"\xff"], [b"a", b""]], pa.list_(pa.binary()))}),
        pa.table({"label": [1, 1, 0], "u": [3, 4, 5], "items": pa.array([[], [None], None]),
                  "tags": pa.array([[None, None], [], None]), "bins": pa.array([[], [], [None]])}),
        pa.table({"label": [0, 1], "u": [6, 1], "items": pa.array([[1 << 63, 7], [(1 << 64) - 1, 1]], pa.list_(pa.uint64())),
                  "tags": pa.array([["a", ""], None], pa.list_(pa.string())),
                  "bins": pa.array([None, [b"\xff", b"b"]], pa.list_(pa.binary()))}),
    ]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_part_of_lists_of_missing_ids_only_is_mined(tmp_path, engine):
    """Arrow's list<null> part was refused ('whose values cannot be categorical ids'); its lists
    hold no ids, or only missing ones, each of which is one access of the missing id."""
    rows = _write_parts(tmp_path / "log", _null_list_parts())
    kw = dict(features=["u", "items", "tags", "bins"], label="label",
              pairs=[("items", "u"), ("tags", "items"), ("bins", "u"), ("bins", "tags")])
    got = _mine(tmp_path / "log", engine, **kw)
    assert got == expected(rows, **kw)
    ids, counts = got.frequencies("items")
    assert dict(zip(ids.tolist(), counts.tolist()))[MISSING_ID] == 2  # the [None] and the uint64 2**63
    both = _mine(tmp_path / "log", engine, features=["items", "tags"], label="label", pairs=[("items", "items")])
    a, b, n, _ = expected_self_pair(rows, "items", label="label")
    assert [x.tolist() for x in both.pair_counts("items", "items")] == [a, b, n]


def test_a_log_of_lists_of_missing_ids_only_and_first(tmp_path):
    """The list<null> part first, and a log of nothing else; and the other checks still hold."""
    parts = _null_list_parts()
    rows = _write_parts(tmp_path / "log", [parts[1], parts[0]])
    kw = dict(features=["u", "items", "tags"], pairs=[("u", "items"), ("tags", "tags")])
    got = mine(tmp_path / "log", **kw)
    want = expected(rows, features=kw["features"], pairs=[("u", "items")])
    for f in kw["features"]:
        assert all(np.array_equal(x, y) for x, y in zip(got.frequencies(f), want.frequencies(f))), f
    assert all(np.array_equal(x, y) for x, y in zip(got.pair_counts("u", "items"), want.pair_counts("u", "items")))
    a, b, n, _ = expected_self_pair(rows, "tags")
    assert [x.tolist() for x in got.pair_counts("tags", "tags")] == [a, b, n]
    only = tmp_path / "only.parquet"
    pq.write_table(parts[1], only)
    kw = dict(features=["u", "items", "tags"], pairs=[("items", "u")])
    assert mine(only, **kw) == expected(_rows(parts[1]), **kw)
    # a part of single ids beside one of list<null> is still refused, naming both files
    pq.write_table(pa.table({"c": pa.array([[], [None]])}), tmp_path / "a.parquet")
    pq.write_table(pa.table({"c": [1, 2]}), tmp_path / "b.parquet")
    with pytest.raises(ConfigError, match="'c' of .*b.parquet' holds one id a row but of .*a.parquet' lists of ids"):
        mine([tmp_path / "a.parquet", tmp_path / "b.parquet"], features=["c"])


@pytest.mark.parametrize("value_type", [pa.timestamp("us"), pa.date32(), pa.time64("us"), pa.duration("s")])
def test_lists_of_times_are_refused_naming_the_fix(tmp_path, value_type):
    """Lists of times were taken as ids silently (timestamps: their microseconds) or failed with
    a raw Arrow error (dates); the README takes lists of integers, booleans, strings or binary."""
    pq.write_table(pa.table({"u": [1, 2], "c": pa.array([[1, 2], []], pa.list_(value_type))}), tmp_path / "log.parquet")
    with pytest.raises(ConfigError, match="whose values cannot be categorical ids. Use lists of integers or strings"):
        mine(tmp_path / "log.parquet", features=["u", "c"], pairs=[("c", "u")])


def test_engine_sorted_counts_are_writable_as_numpys(monkeypatch):
    """LogStats' arrays sorted by DuckDB (ENGINE_SORT_MIN entries and more) came back read-only
    (Arrow's buffers), NumPy's writable: a caller's in-place edit failed on large logs only."""
    rng = np.random.default_rng(3)
    ids = np.unique(rng.integers(-2**63, 2**63 - 1, 500, dtype=np.int64))
    counts = rng.integers(1, 4, ids.size)
    kw = dict(features=["a"], frequencies={"a": (ids, counts, counts // 2)}, pairs={("a", "a"): (ids, ids[::-1], counts, counts)},
              sequences={"a": (ids, ids[::-1], counts)}, label="y", n_rows=10**4)
    small = LogStats(**kw)
    monkeypatch.setattr(stats_mod, "ENGINE_SORT_MIN", 2)
    big = LogStats(**kw)
    assert big == small
    for s in (small, big):
        arrays = [*s.frequencies("a"), s.positives("a")[1], *s.pair_counts("a", "a"), *s.sequence_counts("a")]
        assert all(x.flags.writeable for x in arrays)
        s.frequencies("a")[1][:] += 1  # e.g. smoothing the counts in place


def test_from_rows_refuses_a_column_paired_with_itself():
    """from_rows (one value a row) counted ('a', 'a') as every row's (id, id), which fit_hash now
    reads as a multi-hot column's lists (embed.own_lists): ids embedded by themselves alone. mine
    refuses such a pair of single ids, naming the fix; so does from_rows."""
    cols = {"a": np.arange(12) % 4, "b": np.arange(12) % 3}
    with pytest.raises(ConfigError, match="'pairs' parameter of LogStats.from_rows pairs 'a' with itself.*Pair it with another"):
        LogStats.from_rows(cols, features=["a", "b"], pairs=[("a", "a")])
    assert LogStats.from_rows(cols, features=["a", "b"], pairs=[("a", "b")]).pairs == [("a", "b")]
