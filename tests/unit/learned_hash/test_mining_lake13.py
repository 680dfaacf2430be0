"""Data-lake logs as they age (round 13).

Parquet logs whose integer columns changed width or sign between parts (schema drift: a data
lake's older parts wrote an id as int32, newer ones as int64). Mining refused such a log and asked
for every file to be rewritten; DuckDB and Spark now read each part as what it holds, every id an
int64 (uint64 wrapping, as hashed ids do), and count what the Python readers and a rewritten log
count. And a part rewritten by another tool beside Hadoop's stale checksum file."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from learned_hash import mine
from tests.conftest import by_reader

def counts(stats, feature):
    ids, n = stats.frequencies(feature)
    return dict(zip(ids.tolist(), n.tolist()))


KW = dict(features=["a", "b"], label="y", pairs=[("a", "b")], sequence_key="s", time_key="t")

# (type of the older part, of the newer part, ids of the newer part the older type cannot hold)
DRIFTS = [
    ("int32", "int64", [2**40, -(2**35)]),
    ("int64", "int32", [7, -7]),
    ("uint64", "int64", [-(2**62), -1]),
    ("int16", "uint32", [2**32 - 1, 2**31]),
    ("uint32", "int32", [-3, -(2**31)]),
]


def drifted_log(tmp_path, first, second, wide_ids):
    """Two parts of one log: ids 'a' and the session key 's' in the first part's type, then in the
    second's; 'b' stays int64. The first part of a uint64 drift holds ids above 2**63 (negative
    ids once wrapped) and 2**63 itself (which wraps to the missing id)."""
    log = tmp_path / f"{first}_{second}"
    log.mkdir()
    a0 = [1, 2, 3, 1] if first != "uint64" else [1, 2**63 + 5, 2**63, 1]
    parts = [(first, a0, [5, 5, 6, 6], [0, 1, 2, 3], [1, 0, 0, 1]),
             (second, [1, *wide_ids, 3], [5, 6, 6, 5], [4, 5, 6, 7], [0, 1, 1, 0])]
    for i, (t, a, s, time, y) in enumerate(parts):
        typ = getattr(pa, t)()
        pq.write_table(pa.table({"a": pa.array(a, typ), "b": pa.array([4, 4, 5, 5], pa.int64()),
                                 "s": pa.array(s, typ), "t": pa.array(time, pa.int64()),
                                 "y": pa.array(y, pa.int8() if i == 0 else pa.int64())}),
                       log / f"part-{i}.parquet")
    return log


def as_int64(log, tmp_path):
    """The same log with every integer column rewritten as int64 (uint64 wrapping)."""
    out = tmp_path / f"{log.name}_int64"
    out.mkdir()
    for part in sorted(log.iterdir()):
        t = pq.read_table(part)
        pq.write_table(pa.table({n: t[n].cast(pa.int64(), safe=False) for n in t.column_names}), out / part.name)
    return out


@pytest.mark.parametrize("first, second, wide_ids", DRIFTS)
def test_integer_drift_between_parts_is_read_as_int64_ids(tmp_path, first, second, wide_ids):
    log = drifted_log(tmp_path, first, second, wide_ids)
    s = mine(log, **KW)
    assert (s.n_rows, s.bad_lines) == (8, 0)
    assert s == mine(as_int64(log, tmp_path), **KW) == by_reader(log, **KW)
    got = counts(s, "a")
    for x in wide_ids:
        assert got[int(np.int64(np.uint64(x % 2**64)))] >= 1  # every id the wider part holds, as it is


def test_a_drifted_log_keeps_other_columns_checked(tmp_path):
    # the drift is only of integer width and sign: an id stored as text in one part is still refused
    log = drifted_log(tmp_path, "int32", "int64", [2**40, 9])
    pq.write_table(pa.table({"a": ["x"], "b": pa.array([4], pa.int64()), "s": pa.array([1], pa.int32()),
                             "t": pa.array([9], pa.int64()), "y": pa.array([1], pa.int64())}), log / "part-2.parquet")
    with pytest.raises(ConfigError, match=r"Column 'a' of .*part-2.parquet' holds string values"):
        mine(log, **KW)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_reads_integer_drift_as_duckdb_does(spark, tmp_path):
    # Spark took one file's type for every file ('Data type mismatches when reading Parquet column')
    for first, second, wide_ids in DRIFTS[::2]:
        log = drifted_log(tmp_path, first, second, wide_ids)
        on_spark = mine(log, engine="spark", **KW)
        assert on_spark == mine(log, **KW) and on_spark.n_rows == 8, (first, second)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_a_part_rewritten_beside_a_stale_crc_names_the_crc_on_spark(spark, tmp_path):
    # Spark writes .<part>.crc beside each part; a part rewritten by another tool (pyarrow,
    # DuckDB's COPY) then failed Hadoop's check with 'A file may be truncated or corrupt:
    # re-create it', though the file was whole and DuckDB read it
    table = tmp_path / "day 1" / "t"  # (a space in the path, as Hadoop prints it)
    spark.createDataFrame([(1, 1), (2, 0)], "a long, y long").coalesce(1).write.parquet(str(table))
    part = next(table.glob("part-*"))
    crc = part.with_name(f".{part.name}.crc")
    assert crc.exists()
    kw = dict(features=["a"], label="y", format="parquet")
    assert mine(table, engine="spark", **kw).n_rows == 2
    pq.write_table(pa.table({"a": [1, 2, 3], "y": [1, 0, 1]}), part)
    with pytest.raises(ConfigError, match=rf"(?s){re.escape(crc.name)}.*does not match.*delete .*{re.escape(crc.name)}"):
        mine(table, engine="spark", **kw)
    assert mine(table, **kw).n_rows == 3
    crc.unlink()
    assert mine(table, engine="spark", **kw) == mine(table, **kw)


def parts_with_null_columns(tmp_path, typed=False):
    """Daily parts as pandas writes them: a column of None that day is Arrow's null type (the
    first part's 'a' and 'y', the last part's 'b' and 's'); 'c' is missing on every day.
    ``typed``: the same log with those columns written typed (all null values), as Spark writes them."""
    log = tmp_path / ("typed" if typed else "pandas")
    log.mkdir()
    days = [dict(a=[None, None], b=[4, 5], s=[1, 2], t=[0, 1], y=[None, None]),
            dict(a=["x", "y", "x"], b=[1, 2, 3], s=[1, 1, 2], t=[2, 3, 4], y=[1, 0, 1]),
            dict(a=["y", "z"], b=[None, None], s=[None, None], t=[5, 6], y=[1, 1])]
    types = dict(a=pa.string(), b=pa.int64(), s=pa.int64(), t=pa.int64(), y=pa.int64())
    for i, day in enumerate(days):
        cols = {k: pa.array(v, types[k] if typed else None) for k, v in day.items()}
        cols["c"] = pa.array([None] * len(day["t"]), pa.int32() if typed else pa.null())
        pq.write_table(pa.table(cols), log / f"day-{i}.parquet")
    return log


NULL_KW = dict(features=["a", "b", "c"], label="y", pairs=[("a", "b")], sequence_key="s", time_key="t",
               on_bad_line="skip")


def test_parts_with_columns_of_none_are_missing_ids(tmp_path):
    # 'Column 'a' of day-0.parquet has Parquet type null, which cannot be a categorical id': a
    # day on which a feature was never set stopped the whole log from being mined, on every engine
    log = parts_with_null_columns(tmp_path)
    assert pa.types.is_null(pq.read_schema(log / "day-0.parquet").field("a").type)
    s = mine(log, **NULL_KW)
    assert (s.n_rows, s.bad_lines) == (5, 2)  # day 0's rows have no label
    assert s == mine(parts_with_null_columns(tmp_path, typed=True), **NULL_KW) == by_reader(log, **NULL_KW)
    from embcompress.idhash import MISSING_ID

    assert counts(s, "c") == {MISSING_ID: 5}
    assert counts(s, "b") == {1: 1, 2: 1, 3: 1, MISSING_ID: 2}
    # times: a day without any (ISO text in the other parts, or Parquet timestamps)
    for t in (["2026-11-01 10:00", "2026-11-01 09:00"], pa.array([1, 2], pa.timestamp("ms"))):
        pq.write_table(pa.table({"a": [1, 2], "s": [1, 1], "t": t}), tmp_path / "times-0.parquet")
        pq.write_table(pa.table({"a": [3, 4], "s": [1, 1], "t": [None, None]}), tmp_path / "times-1.parquet")
        kw = dict(features=["a"], sequence_key="s", time_key="t")
        paths = sorted(str(p) for p in tmp_path.glob("times-*.parquet"))
        assert mine(paths, **kw) == by_reader(paths, **kw)
    # a kind given for a column that is all missing everywhere is taken as given
    assert mine(log, features=["c"], kinds={"c": "string"}).n_rows == 7


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_reads_columns_of_none_as_duckdb_does(spark, tmp_path):
    # Spark reads Arrow's null type as int32, and a union with the text of other days failed
    log = parts_with_null_columns(tmp_path)
    assert mine(log, engine="spark", **NULL_KW) == mine(log, **NULL_KW)


US = 1_700_000_000_000_000  # a time in microseconds since the epoch


def time_drift(tmp_path, first, second, labels=(pa.int64(), pa.int64())):
    """Two parts of one session whose times interleave within a microsecond: the first part's
    times and labels of type ``first`` and ``labels[0]``, the second's of ``second`` and ``labels[1]``."""
    log = tmp_path / f"{first}_{second}_{labels[0]}_{labels[1]}".replace(" ", "").replace(",", "_")
    log.mkdir()
    ns = [(US + 2) * 1000 + 3, (US + 2) * 1000 + 1, (US + 2) * 1000 + 2]
    day = US // 86_400_000_000
    values = {"ns": ns, "us": [US + 5, US + 1, US + 2], "ms": [US // 1000, US // 1000 + 1, US // 1000 - 1],
              "date": [day + 1, day, day - 1]}
    for i, (t, y, a) in enumerate([(first, labels[0], [1, 2, 3]), (second, labels[1], [4, 5, 6])]):
        unit, _, zone = t.partition("+")
        typ = pa.date32() if unit == "date" else pa.timestamp(unit, tz=zone or None)
        pq.write_table(pa.table({"a": a, "s": [1, 1, 1], "t": pa.array(values[unit], typ),
                                 "y": pa.array([1, 0, 1], pa.int8()).cast(y)}), log / f"part-{i}.parquet")
    return log


TIME_KW = dict(features=["a"], label="y", sequence_key="s", time_key="t")
TIME_DRIFTS = [("us", "ns"), ("ns", "us"), ("ms", "ns"), ("ns", "us+UTC"), ("date", "us"), ("us+UTC", "date"),
               ("date", "ns"), ("ms", "us")]
LABEL_DRIFTS = [(pa.float32(), pa.float64()), (pa.int64(), pa.float64()), (pa.bool_(), pa.int8()),
                (pa.decimal128(10, 2), pa.float64())]


@pytest.mark.parametrize("first, second", TIME_DRIFTS)
def test_time_units_that_differ_between_parts_keep_the_order_of_every_time(tmp_path, first, second):
    # DuckDB cast nanosecond times to the first part's microseconds (and times to a first
    # part's dates), so times within a microsecond (a day) became ties and sequences came out in
    # id order: silently other pairs
    log = time_drift(tmp_path, first, second)
    s = mine(log, **TIME_KW)
    assert s == by_reader(log, **TIME_KW)
    assert s.n_rows == 6 and sum(s.sequence_counts("a")[2].tolist()) == 5


@pytest.mark.parametrize("labels", LABEL_DRIFTS, ids=str)
def test_number_labels_of_other_types_between_parts_are_numbers(tmp_path, labels):
    # 0/1 integers in older parts, doubles in newer ones: 'holds number values but ... int values'
    log = time_drift(tmp_path, "us", "us", labels)
    s = mine(log, **TIME_KW)
    assert (s.n_rows, s.bad_lines) == (6, 0)
    assert s == by_reader(log, **TIME_KW)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_reads_time_and_label_drift_as_duckdb_does(spark, tmp_path):
    # Spark read microseconds as nanoseconds after a nanosecond part (silently other pairs), and
    # refused a float32 part beside a float64 one, times beside dates
    logs = [time_drift(tmp_path, *d) for d in TIME_DRIFTS[:7]]
    logs += [time_drift(tmp_path, "us", "us", labels) for labels in LABEL_DRIFTS]
    for log in logs:
        assert mine(log, engine="spark", **TIME_KW) == mine(log, **TIME_KW), log.name


def test_each_parts_schema_is_read_once_per_mining_run(tmp_path, monkeypatch):
    # kinds, name case and types each read every part's footer: three round trips a part on a
    # network file system, before any engine started; a part rewritten between runs is read again
    log = drifted_log(tmp_path, "int32", "int64", [2**40, 9])
    reads = []
    real = pq.read_schema
    monkeypatch.setattr(pq, "read_schema", lambda path, *a, **k: reads.append(str(path)) or real(path, *a, **k))
    first = mine(log, **KW)
    assert sorted(reads) == sorted(str(p) for p in log.iterdir())
    part = pq.read_table(log / "part-1.parquet")
    pq.write_table(part.set_column(0, "a", pa.array([77] * part.num_rows, pa.int16())), log / "part-1.parquet")
    reads.clear()
    again = mine(log, **KW)
    assert sorted(reads) == sorted(str(p) for p in log.iterdir())
    assert 77 in counts(again, "a") and 77 not in counts(first, "a")


def csv_headers_log(tmp_path):
    """A CSV log whose exports gained a column and changed their column order over time, with a
    malformed line and a part with its header alone."""
    log = tmp_path / "csv"
    log.mkdir()
    (log / "day-0.csv").write_text("a,b,y\n1,10,1\n2,20,0\n")
    (log / "day-1.csv").write_text("a,b,y,device\n3,30,1,ios\n1,10,0,web\n")
    (log / "day-2.csv").write_text("device,y,b,a\nios,1,40,4\nweb,0,10\nweb,1,50,1\n")  # one line a field short
    (log / "day-3.csv").write_text("b,a,y\n")
    return log


def test_csv_parts_whose_header_gained_or_reordered_columns_are_read_by_name(tmp_path):
    # 'Every file of a log must have the same header (columns are read by position)': a log whose
    # later exports appended a column could not be mined at all, nor its parts be mined apart and
    # joined (LogStats do not add up)
    log = csv_headers_log(tmp_path)
    kw = dict(features=["a", "b"], label="y", pairs=[("a", "b")], format="csv", on_bad_line="skip")
    s = mine(log, **kw)
    assert (s.n_rows, s.bad_lines) == (6, 1)
    assert counts(s, "a") == {1: 3, 2: 1, 3: 1, 4: 1} and counts(s, "b") == {10: 2, 20: 1, 30: 1, 40: 1, 50: 1}
    assert s == by_reader(log, **kw)
    with pytest.raises(ConfigError, match=r"day-2.csv.*line 3"):
        mine(log, **{**kw, "on_bad_line": "error"})
    # a part without a column the schema reads names it
    (log / "day-4.csv").write_text("a,y\n5,1\n")
    with pytest.raises(ConfigError, match=r"(?s)day-4.csv' has no column 'b'.*\['a', 'y'\]"):
        mine(log, **kw)
    with pytest.raises(ConfigError, match=r"(?s)day-4.csv' has no column 'b'"):
        by_reader(log, **kw)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_reads_csv_parts_by_name_as_duckdb_does(spark, tmp_path):
    log = csv_headers_log(tmp_path)
    for bad in ("skip", "error"):
        kw = dict(features=["a", "b"], label="y", pairs=[("a", "b")], format="csv", on_bad_line=bad)
        if bad == "error":
            with pytest.raises(ConfigError, match=r"day-2.csv.*line 3"):
                mine(log, engine="spark", **kw)
            continue
        assert mine(log, engine="spark", **kw) == mine(log, **kw)
