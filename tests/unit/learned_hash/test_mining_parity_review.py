"""Review of mining parity: DuckDB, Spark (local mode) and the Python readers (read through
``iter_batches`` and counted by ``LogStats.from_rows``) give the same counts on crafted logs
that hit the corners where they used to disagree; option validation; the CLI's output."""

import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from learned_hash import LogStats, mine
from tests.conftest import by_reader, write


def times_log(tmp_path):
    """ISO times written in several valid spellings: the order is by time, not by the text."""
    return write(tmp_path / "times.csv",
                 "a,s,t\n"
                 "1,1,2017-01-01 10:00:00\n"
                 "2,1,2017-01-01T09:00:00\n"   # 'T' sorts after ' ' as text, but 09:00 is earlier
                 "3,1,2017-01-01 09:30\n"
                 "4,1,2017-01-01\n"            # midnight: the same time as the next line (tie by id)
                 "5,1,2017-01-01 00:00:00\n"
                 "6,2,2017-01-01 10:00:00.50\n"  # the same time as the next line (tie by id)
                 "7,2,2017-01-01 10:00:00.5\n")


def test_string_times_are_ordered_by_time_not_text(tmp_path):
    p = times_log(tmp_path)
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    expected = by_reader(p, **kw)
    prev, nxt, _ = expected.sequence_counts("a")
    assert sorted(zip(prev.tolist(), nxt.tolist())) == [(2, 3), (3, 1), (4, 5), (5, 2), (6, 7)]
    assert mine(p, **kw) == expected


def test_string_times_in_parquet_are_ordered_by_time(tmp_path):
    pq.write_table(pa.table({"a": [1, 2, 3], "s": [1, 1, 1],
                             "t": ["2017-01-01 10:00:00", "2017-01-01T09:00:00", "2017-01-01 09:30"]}),
                   tmp_path / "t.parquet")
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    expected = by_reader(tmp_path / "t.parquet", **kw)
    assert sorted(zip(*[x.tolist() for x in expected.sequence_counts("a")[:2]])) == [(2, 3), (3, 1)]
    assert mine(tmp_path / "t.parquet", **kw) == expected


@pytest.mark.parametrize("bad", ["abc", "", "2 GB!", "-1GB", "1.5XB", "100B", 2])
def test_memory_limit_is_validated_for_every_engine(tmp_path, bad):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "a.parquet")
    for engine in ("duckdb", "spark"):
        # refused before an engine starts (Spark would fail to start its JVM, or ignore it)
        with pytest.raises(ConfigError, match="memory_limit.*such as '2GB'"):
            mine(tmp_path / "a.parquet", features=["a"], engine=engine, memory_limit=bad)


@pytest.mark.parametrize("size, mb", [("2GB", "1907m"), ("2gb", "1907m"), ("1.5GiB", "1536m"),
                                      ("512 MB", "488m"), ("2048MiB", "2048m"), ("3g", "2861m")])
def test_memory_limit_in_spark_units(size, mb):
    from learned_hash.mining.api import memory_bytes

    assert f"{memory_bytes(size) >> 20}m" == mb


def test_cli_out_with_a_tilde_is_written_where_checked(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from embcompress.cli.main import app

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "out").mkdir()
    log = write(tmp_path / "log.csv", "a,b\nx,1\ny,1\nx,2\n")
    res = CliRunner().invoke(app, ["mine", str(log), "--features", "a,b", "--out", "~/out/s.stats", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "s.stats").is_file()
    lines = res.output.strip().splitlines()
    assert lines[0] == "a: 2 ids seen, 3 accesses, 50.0% of ids seen once"
    assert lines[1] == "b: 2 ids seen, 3 accesses, 50.0% of ids seen once"
    assert lines[2].startswith("3 rows mined on duckdb -> ") and lines[2].endswith(os.path.join("out", "s.stats"))
    assert LogStats.load(tmp_path / "out" / "s.stats", verify="full") == mine(log, features=["a", "b"])


# --------------------------------------------------------------------------- Spark

spark_needed = [
    pytest.mark.spark,
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_text_logs_agree_with_duckdb_and_readers(spark, tmp_path):
    # RFC 4180 quotes ("" inside a quoted value is one "), and a value that is not UTF-8 (a bad line)
    quoted = write(tmp_path / "q.csv", b'y,a,b\n1,"x""y",1\n0,"p,q",2\n1,"",3\n0,\xff\xfe,4\n1,\xef\xbf\xbd,5\n')
    kw = dict(features=["a", "b"], label="y", pairs=[("a", "b")], on_bad_line="skip")
    expected = by_reader(quoted, **kw)
    assert (expected.n_rows, expected.bad_lines) == (4, 1)
    assert mine(quoted, **kw) == expected
    on_spark = mine(quoted, engine="spark", **kw)
    assert (on_spark.n_rows, on_spark.bad_lines) == (4, 1)
    assert on_spark == expected
    # ISO times ordered by time
    times = times_log(tmp_path)
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    assert mine(times, engine="spark", **kw) == by_reader(times, **kw)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_parquet_bool_and_uint64_columns(spark, tmp_path):
    pq.write_table(pa.table({
        "a": pa.array([True, False, None, True]),
        "u": pa.array([1, 2**63 + 5, None, 2**64 - 1], pa.uint64()),
        "y": pa.array([True, False, True, None]),
    }), tmp_path / "b.parquet")
    kw = dict(features=["a", "u"], label="y", pairs=[("a", "u")], on_bad_line="skip")
    expected = by_reader(tmp_path / "b.parquet", **kw)
    assert (expected.n_rows, expected.bad_lines) == (3, 1)
    assert mine(tmp_path / "b.parquet", **kw) == expected
    assert mine(tmp_path / "b.parquet", engine="spark", **kw) == expected


def test_a_time_that_is_no_date_is_a_bad_line(tmp_path):
    # it matches the time pattern but does not parse (month 13): README's "a time that does not parse"
    p = write(tmp_path / "t.csv", "a,s,t\n1,1,2017-01-01 10:00\n2,1,2017-13-01 09:00\n3,1,2017-01-01 09:00\n")
    s = mine(p, features=["a"], sequence_key="s", time_key="t", on_bad_line="skip")
    assert (s.n_rows, s.bad_lines) == (2, 1)
    assert [x.tolist() for x in s.sequence_counts("a")] == [[3], [1], [1]]


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_says_when_the_running_session_ignores_threads_or_memory(spark, tmp_path):
    # a local session is reused (a JVM costs seconds): asking for other threads or memory is
    # not silently ignored
    pq.write_table(pa.table({"a": [1, 2, 2]}), tmp_path / "a.parquet")
    with pytest.warns(UserWarning, match=r"local\[1\].*running.*local\[2\]"):
        s = mine(tmp_path / "a.parquet", features=["a"], engine="spark", threads=1)
    assert s.n_rows == 3
    with pytest.warns(UserWarning, match=r"spark.driver.memory"):
        mine(tmp_path / "a.parquet", features=["a"], engine="spark", memory_limit="3GiB")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert mine(tmp_path / "a.parquet", features=["a"], engine="spark").n_rows == 3
