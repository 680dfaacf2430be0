"""Review of mining (round 10), as a user with production logs on a data lake would run it:
Spark/Hive Parquet folders (partition folders, parts without an extension, _SUCCESS), compressed
text logs, sequence ties, and the engines' parameters. DuckDB, Spark (local mode) and the Python
readers (``iter_batches`` counted by ``LogStats.from_rows``) must agree or fail with an error
that names the fix. Spark cases share one session (a module fixture) and run in one test."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import string_ids
from learned_hash import mine
from tests.conftest import by_reader


def counts(stats, feature):
    ids, n = stats.frequencies(feature)
    return dict(zip(ids.tolist(), n.tolist()))


def lz4_frame_csv(tmp_path):
    """A CSV compressed by the lz4 tool (or Python's lz4.frame, or Arrow): the LZ4 frame format."""
    p = tmp_path / "day_0.csv.lz4"
    with pa.output_stream(str(p), compression="lz4") as f:
        f.write(b"a,b\n1,2\n3,4\n")
    return p


def test_an_lz4_frame_log_names_the_fix_on_both_engines(tmp_path):
    # Hadoop's Lz4Codec reads its own block format only: Spark read the frame header as a block
    # length, ran its JVM out of memory (java.lang.OutOfMemoryError) and lost the session, every
    # later call failing with 'Connection refused'; and DuckDB's error sent the user to Spark
    p = lz4_frame_csv(tmp_path)
    assert by_reader(p, features=["a", "b"]).n_rows == 2  # the readers take the frame format
    with pytest.raises(ConfigError, match=r"(?s)LZ4.*frame.*gzip or zstd") as duck:
        mine(p, features=["a", "b"])
    assert "engine='spark'" not in str(duck.value)
    with pytest.raises(ConfigError, match=r"(?s)Spark cannot read.*LZ4 frame.*gzip or zstd"):
        mine(p, features=["a", "b"], engine="spark")


def hive_table(tmp_path, *, extension=".snappy.parquet"):
    """A table as Spark or Hive writes it: partition folders, _SUCCESS, hidden .crc files, a
    _temporary/ copy of a part (a job still writing)."""
    log = tmp_path / "clicks"
    for day, ids in (("2026-11-01", [1, 2]), ("2026-11-02", [2, 3])):
        part = log / f"date={day}"
        part.mkdir(parents=True)
        pq.write_table(pa.table({"a": ids, "y": [1, 0]}), part / f"part-00000{extension}")
        (part / f".part-00000{extension}.crc").write_bytes(b"crc")
    (log / "_temporary" / "0").mkdir(parents=True)
    pq.write_table(pa.table({"a": [9], "y": [1]}), log / "_temporary" / "0" / f"part-00000{extension}")
    (log / "_SUCCESS").write_text("")
    return log


@pytest.mark.parametrize("pattern, n_rows", [
    ("date=2026-11-*", 4),   # a glob of partition folders: read as the folders they are
    ("date=2026-11-01", 2),  # one partition folder
    ("*", 4),                # folders and _SUCCESS: Spark skips _ and . names in a glob too
    ("**", 4),               # the table, its folders and their files: each part once
])
def test_a_glob_of_partition_folders_reads_their_parts(tmp_path, pattern, n_rows):
    # 'The glob ... matches no files. Check the pattern.' for a glob of folders, which Spark
    # reads; '*' read _SUCCESS as a Parquet file ('Parquet file size is 0 bytes')
    log = hive_table(tmp_path)
    kw = dict(features=["a"], label="y")
    s = mine(str(log / pattern), **kw)
    assert (s.n_rows, s.bad_lines) == (n_rows, 0)
    assert s == by_reader(str(log / pattern), **kw)
    if pattern == "*":
        assert counts(s, "a") == {1: 1, 2: 2, 3: 1} == counts(mine(log, **kw), "a")


def test_hive_parts_without_an_extension_are_read_with_format_parquet(tmp_path):
    # Hive names its Parquet parts 000000_0 (no extension); Spark reads every visible file of a
    # folder. 'holds no log files (*.parquet). Check the path.' named no fix
    log = hive_table(tmp_path, extension="")
    with pytest.raises(ConfigError, match=r"(?s)no \*\.parquet files.*format='parquet'.*without"):
        mine(log, features=["a"])
    s = mine(log, features=["a"], label="y", format="parquet")
    assert counts(s, "a") == {1: 1, 2: 2, 3: 1}
    assert s == by_reader(log, features=["a"], label="y", format="parquet")
    # a file in the folder that is no Parquet is named (Spark fails on it too)
    (log / "date=2026-11-01" / "notes.txt").write_text("written by hand")
    with pytest.raises(ConfigError, match=r"(?s)notes\.txt.*as Parquet"):
        mine(log, features=["a"], format="parquet")


def uint64_ties(tmp_path):
    """uint64 ids above 2**63 (they wrap to negative int64 ids) in rows of one time."""
    p = tmp_path / "u64_ties.parquet"
    pq.write_table(pa.table({"a": pa.array([2**63 + 5, 1, 2**64 - 1, 7, None], pa.uint64()),
                             "s": [1, 1, 1, 1, 1], "t": [5, 5, 5, 5, 5]}), p)
    return p, dict(features=["a"], sequence_key="s", time_key="t")


def test_sequence_ties_of_uint64_ids_follow_the_int64_ids(tmp_path):
    # ties of time are broken by the id; DuckDB ordered a uint64 column as unsigned (2**63 + 5
    # after 7), where the readers and Spark order the int64 ids they become (it is negative)
    p, kw = uint64_ties(tmp_path)
    s = mine(p, **kw)
    assert [x.tolist() for x in s.sequence_counts("a")] == [
        [-2**63, -2**63 + 5, -1, 1], [-2**63 + 5, -1, 1, 7], [1, 1, 1, 1]]
    assert s == by_reader(p, **kw)



def test_a_memory_limit_too_small_for_the_query_names_the_parameter(tmp_path):
    # DuckDB's raw OutOfMemoryException, whose advice is SQL (SET memory_limit='...GB', SET
    # threads=X); the command line printed 'unexpected OutOfMemoryException'
    p = tmp_path / "log.csv"
    p.write_text("a,b\n1,2\n3,4\n")
    with pytest.raises(ConfigError, match=r"(?s)memory_limit.*'1MiB'.*larger") as err:
        mine(p, features=["a", "b"], memory_limit="1MiB")
    assert err.value.param == "memory_limit"
    assert mine(p, features=["a", "b"], memory_limit="256MB").n_rows == 2


def test_duckdb_prints_no_progress_bar_without_a_progress_callback(tmp_path, monkeypatch, capfd):
    # library functions never print: DuckDB drew its own bar on the terminal for any query that
    # ran longer than two seconds (here at once: progress_bar_time 0) when progress was None
    import duckdb

    real = duckdb.connect

    class Connection:  # DuckDB's bar from the first query after mine's own settings
        def __init__(self, con):
            self.con = con

        def execute(self, sql, *args):
            out = self.con.execute(sql, *args)
            if sql.startswith("SET temp_directory"):
                self.con.execute("SET progress_bar_time = 0")
            return out

        def __getattr__(self, name):
            return getattr(self.con, name)

    def connect(*args, **kw):
        return Connection(real(*args, **kw))

    monkeypatch.setattr(duckdb, "connect", connect)
    p = tmp_path / "log.csv"
    p.write_text("a,s,t\n1,1,1\n2,1,2\n")
    capfd.readouterr()
    assert mine(p, features=["a"], sequence_key="s", time_key="t").n_rows == 2
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")



def test_threads_beyond_any_machine_are_refused(tmp_path):
    # --threads 100000 (a typo for 10): DuckDB started 20,000 threads and held 850 MB ten minutes
    # into a two-line log, with no word; threads above the machine's cores bring no speed
    from learned_hash.mining.api import max_threads

    p = tmp_path / "log.csv"
    p.write_text("a\n1\n")
    assert max_threads() >= 1024
    with pytest.raises(ConfigError, match=r"'threads' parameter of mine must be an int from 1 to \d+.*Got 100000") as err:
        mine(p, features=["a"], threads=100_000)
    assert err.value.param == "threads"
    assert mine(p, features=["a"], threads=np.int64(3)).n_rows == 1



def decimal_labels(tmp_path):
    """A label stored as DECIMAL (Hive's and Spark's type for exact numbers), -1/1 and 0.5 among them."""
    import decimal

    p = tmp_path / "decimal_label.parquet"
    vals = [decimal.Decimal(x) for x in ("1.0", "0.0", "0.5", "-1.0")] + [None]
    pq.write_table(pa.table({"a": [1, 1, 2, 2, 3], "y": pa.array(vals, pa.decimal128(5, 1))}), p)
    return p, dict(features=["a"], label="y", on_bad_line="skip")


def test_a_decimal_label_is_a_number(tmp_path):
    # 'has Parquet type decimal128(5, 1), which cannot be a label. Use integer or string columns.'
    p, kw = decimal_labels(tmp_path)
    s = mine(p, **kw)
    assert (s.n_rows, s.bad_lines) == (4, 1)  # a null label is a bad line, as in any column type
    assert dict(zip(*[x.tolist() for x in s.positives("a")])) == {1: 1, 2: 1}
    assert s == by_reader(p, **kw)



def test_a_csv_with_cr_line_ends_is_read_by_the_readers(tmp_path):
    # lines ended by \r alone (Excel's 'CSV (Macintosh)'): both engines read two rows, the readers
    # skipped the whole file as its header line and said it had no rows
    from learned_hash.logs import read_log

    p = tmp_path / "mac.csv"
    p.write_bytes(b"a,b,y\r1,x,1\r2,,0\r")
    kw = dict(features=["a", "b"], label="y")
    s = mine(p, **kw)
    assert (s.n_rows, s.bad_lines) == (2, 0)
    assert s == by_reader(p, **kw)
    assert read_log(p, **kw)["a"].tolist() == [1, 2]
    # a malformed line is counted, and named by its number (it was 'a line')
    p.write_bytes(b"a,b,y\r1,x,1\r2\r3,z,0\r")
    for engine in ("duckdb", None):
        with pytest.raises(ConfigError, match=r"\(line 3\): 1 fields where 3 are expected: '2'"):
            mine(p, **kw) if engine else read_log(p, **kw)
    assert (mine(p, on_bad_line="skip", **kw).bad_lines, by_reader(p, on_bad_line="skip", **kw).bad_lines) == (1, 1)


def test_an_empty_compressed_part_is_no_rows_on_duckdb(tmp_path):
    # a zero-byte part.csv.gz (a writer stopped before its first byte) beside real parts: the
    # readers and Spark read it as empty, DuckDB failed 'Input is not a GZIP stream'
    import gzip

    log = tmp_path / "log"
    log.mkdir()
    (log / "part-0.csv.gz").write_bytes(b"")
    with gzip.open(log / "part-1.csv.gz", "wb") as f:
        f.write(b"a,b\n1,2\n3,4\n")
    s = mine(log, features=["a"], format="csv")
    assert (s.n_rows, s.bad_lines) == (2, 0)
    assert s == by_reader(log, features=["a"], format="csv")



def test_a_compression_extension_in_capitals_names_the_fix(tmp_path):
    # DAY_0.CSV.GZ: Arrow (the readers, and the header mine reads first) and Hadoop tell a
    # compression by its lower-case extension only, so the gzip bytes were parsed as text:
    # 'Cannot parse the header line ... A quote left open in it is one cause'
    import gzip

    p = tmp_path / "DAY_0.CSV.GZ"
    with gzip.open(p, "wb") as f:
        f.write(b"a,b\n1,2\n")
    for run in (lambda: mine(p, features=["a"]), lambda: by_reader(p, features=["a"])):
        with pytest.raises(ConfigError, match=r"(?s)'\.GZ'.*lower-case.*DAY_0\.CSV\.gz"):
            run()



def test_a_partition_folder_name_asked_for_as_a_column_is_explained(tmp_path):
    # time_key='date' of a table partitioned by date: the value is in the folder names only (Spark's
    # partitionBy leaves it out of the files), and the error said only 'Pass names from that list'
    log = hive_table(tmp_path)
    with pytest.raises(ConfigError, match=r"(?s)no column 'date'.*partition folders \(date=2026-11-01\).*not read") as err:
        mine(log, features=["a"], sequence_key="a", time_key="date")
    assert err.value.param == "time_key"



def test_a_bad_time_is_named_as_the_time_not_as_an_id_holding_text(tmp_path):
    # a time the rules do not take (a zone needs the seconds); the error added 'If a column of ids
    # holds text ... pass kinds={'a': 'string'}', about an id column whose value was fine
    from learned_hash.logs import BadLineError

    p = tmp_path / "log.csv"
    p.write_text("a,s,t\n1,u,2026-11-01 10:00:00\n2,u,2026-11-01T10:00Z\n")
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    with pytest.raises(BadLineError, match=r"\(line 3\): a value does not parse as its column's kind: 't' "
                                           r"is not a timestamp") as err:
        mine(p, **kw)
    assert "kinds=" not in str(err.value)
    # a text value in a column of ids read as integers still names that fix
    p.write_text("a,s,t\n1,u,1\nNA,u,2\n")
    with pytest.raises(BadLineError, match=r"(?s)'a' is not an int.*kinds=\{'a': 'string'\}"):
        mine(p, **kw)



@pytest.mark.parametrize("table", ["delta", "iceberg"])
def test_a_delta_or_iceberg_table_folder_is_refused_not_read_as_its_files(tmp_path, table):
    # a Delta table's folder keeps the files an update or delete replaced until VACUUM, and an
    # Iceberg table's data/ those of older snapshots: read as plain Parquet files, their rows were
    # counted again, silently
    log = tmp_path / "clicks"
    log.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), log / "part-00000-old.snappy.parquet")  # replaced
    pq.write_table(pa.table({"a": [1, 3]}), log / "part-00001-new.snappy.parquet")
    if table == "delta":
        (log / "_delta_log").mkdir()
        (log / "_delta_log" / "00000000000000000001.json").write_text("{}")
        match = r"(?s)Delta table.*VACUUM.*format\('delta'\)"
    else:
        (log / "metadata").mkdir()
        (log / "metadata" / "v2.metadata.json").write_text("{}")
        (log / "data").mkdir()
        pq.write_table(pa.table({"a": [3]}), log / "data" / "00000-0-x.parquet")
        match = r"(?s)Iceberg table.*snapshot"
    for run in (lambda: mine(log, features=["a"]), lambda: mine(log, features=["a"], format="parquet"),
                lambda: by_reader(log, features=["a"]), lambda: mine(str(tmp_path / "*"), features=["a"]),
                lambda: mine(str(log / "*.parquet"), features=["a"])):
        with pytest.raises(ConfigError, match=match):
            run()
    if table == "iceberg":
        with pytest.raises(ConfigError, match=match):
            mine(log / "data", features=["a"])
    # its current files, named one by one, are read
    assert mine(log / "part-00001-new.snappy.parquet", features=["a"]).n_rows == 2



def test_a_folder_of_parquet_and_text_logs_without_a_format_is_not_half_read(tmp_path):
    # without a format a folder's *.parquet files were read and its CSV logs left out, silently
    log = tmp_path / "logs"
    log.mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), log / "day1.parquet")
    (log / "day2.csv").write_text("a\n3\n")
    (log / "notes.md").write_text("not a log")
    with pytest.raises(ConfigError, match=r"(?s)day2\.csv.*logs/\*\.parquet'"):
        mine(log, features=["a"])
    assert mine(str(log / "*.parquet"), features=["a"]).n_rows == 2
    (log / "day2.csv").unlink()
    assert mine(log, features=["a"]).n_rows == 2  # other files (notes.md) are no logs: left out as before



def zoned_times(tmp_path):
    """ISO times with a zone (Z, +01:00, +0100, -05), as Spark and most exporters write them to
    CSV, beside times without one (taken as UTC). In UTC the order is c, a, e, b, d."""
    p = tmp_path / "zoned.csv"
    p.write_text("a,s,t\n"
                 "a,u,2026-11-01T10:00:00.000Z\n"        # 10:00
                 "b,u,2026-11-01T12:30:00+01:00\n"       # 11:30
                 "c,u,2026-11-01 09:59:59\n"             # 09:59:59 (no zone: UTC)
                 "d,u,2026-11-01T07:00:00.5-05\n"        # 12:00:00.5
                 "e,u,2026-11-01T11:15:00+0100\n")       # 10:15
    return p, dict(features=["a"], sequence_key="s", time_key="t")


def test_iso_times_with_a_zone_are_read_and_ordered_as_instants(tmp_path):
    # every line with '...Z' or '+01:00' was malformed: a data-lake export's times were all bad lines
    p, kw = zoned_times(tmp_path)
    s = mine(p, **kw)
    assert (s.n_rows, s.bad_lines) == (5, 0)
    a, b, c, d, e = string_ids(np.array(list("abcde"))).tolist()
    assert sorted(zip(*[x.tolist() for x in s.sequence_counts("a")])) == sorted([(c, a, 1), (a, e, 1), (e, b, 1), (b, d, 1)])
    assert s == by_reader(p, **kw)
    # an offset no zone has, or a zone on a time without seconds, is still a bad line everywhere
    p.write_text("a,s,t\nx,u,2026-11-01T10:00:00+25:00\ny,u,2026-11-01T10:00Z\nz,u,2026-11-01T10:00:00Z\n")
    s = mine(p, on_bad_line="skip", **kw)
    assert (s.n_rows, s.bad_lines) == (1, 2)
    assert s == by_reader(p, on_bad_line="skip", **kw)



@pytest.mark.parametrize("size", ["1MiB", "256MB"])
def test_a_memory_limit_spark_cannot_start_with_names_the_parameter(tmp_path, size):
    # Spark's driver needs 450 MiB: '1MiB' stopped the JVM ('Too small maximum heap') and '256MB'
    # Spark itself, both reported as 'Cannot start Spark ... Install Java 17 and check the master URL'
    pytest.importorskip("pyspark")
    p = tmp_path / "log.csv"
    p.write_text("a\n1\n")
    with pytest.raises(ConfigError, match=r"memory_limit.*at least 480MiB for engine='spark'") as err:
        mine(p, features=["a"], engine="spark", memory_limit=size)
    assert err.value.param == "memory_limit"


# --------------------------------------------------------------------------- Spark


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_agrees_on_data_lake_layouts(spark, tmp_path):
    # a glob of partition folders, Hive parts without an extension, uint64 ties: Spark counts as
    # DuckDB and the readers do
    table = hive_table(tmp_path / "spark", extension="")
    for crc in table.rglob(".*.crc"):  # (Hadoop checks a part against its .crc: these are stand-ins)
        crc.unlink()
    cases = [(str(table / "date=2026-11-*"), dict(features=["a"], label="y", format="parquet")),
             (str(table / "*"), dict(features=["a"], label="y", format="parquet")),
             uint64_ties(tmp_path), decimal_labels(tmp_path), zoned_times(tmp_path)]
    # \r line ends with a malformed line; a zero-byte compressed part beside a real one
    import gzip

    mac = tmp_path / "mac.csv"
    mac.write_bytes(b"a,b,y\r1,x,1\r2\r3,z,0\r")
    cases.append((mac, dict(features=["a", "b"], label="y", on_bad_line="skip")))
    (tmp_path / "parts").mkdir()
    (tmp_path / "parts" / "part-0.csv.gz").write_bytes(b"")
    with gzip.open(tmp_path / "parts" / "part-1.csv.gz", "wb") as f:
        f.write(b"a,b\n1,2\n3,4\n")
    cases.append((tmp_path / "parts", dict(features=["a"], format="csv")))
    # min_count prunes frequencies and pairs by their total count, and sequences, alike
    rng = np.random.default_rng(0)
    pq.write_table(pa.table({"a": rng.integers(0, 6, 300), "b": rng.integers(0, 6, 300), "s": rng.integers(0, 4, 300),
                             "t": np.arange(300), "y": rng.choice([-1, 1], 300)}), tmp_path / "pruned.parquet")
    cases.append((tmp_path / "pruned.parquet", dict(features=["a", "b"], label="y", pairs=[("a", "b")],
                                                    sequence_key="s", time_key="t", min_count=9)))
    # string ids in rows of one time: both engines break the tie by the text
    p = tmp_path / "str_ties.csv"
    p.write_text("a,s,t\nzeta,1,5\nalpha,1,5\nmid,1,5\nbeta,1,5\n")
    cases.append((p, dict(features=["a"], sequence_key="s", time_key="t")))
    for path, kw in cases:
        on_spark, on_duckdb = mine(path, engine="spark", **kw), mine(path, **kw)
        assert on_spark == on_duckdb and on_spark.bad_lines == on_duckdb.bad_lines, (path, kw)
        if path == mac:
            assert (on_spark.n_rows, on_spark.bad_lines) == (2, 1)
        if path != p:
            assert on_spark == by_reader(path, **kw), (path, kw)
    on_spark = mine(p, engine="spark", **cases[-1][1])
    alpha, beta, mid, zeta = string_ids(np.array(["alpha", "beta", "mid", "zeta"])).tolist()
    assert sorted(zip(*[x.tolist() for x in on_spark.sequence_counts("a")])) == sorted(
        [(alpha, beta, 1), (beta, mid, 1), (mid, zeta, 1)])
    # an LZ4 frame log is refused before Spark reads it: the session lives on
    with pytest.raises(ConfigError, match="LZ4 frame"):
        mine(lz4_frame_csv(tmp_path), features=["a", "b"], engine="spark")
    assert mine(cases[0][0], engine="spark", **cases[0][1]).n_rows == 4
