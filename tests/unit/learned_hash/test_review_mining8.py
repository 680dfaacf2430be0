"""Review of mining (round 8): DuckDB, Spark (local mode) and the Python readers (``iter_batches``
counted by ``LogStats.from_rows``) on inputs where they disagreed or failed with raw errors; the
stats file and its constructors; the ``embcompress mine`` command line. Spark cases share one
session (a module fixture) and run in one test."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import MISSING_ID
from learned_hash import LogStats, mine
from learned_hash.logs import BadLineError
from tests.conftest import by_reader, write


def counts(stats, feature):
    ids, n = stats.frequencies(feature)
    assert len(np.unique(ids)) == len(ids), f"{feature}: an id appears twice in {ids.tolist()}"
    return dict(zip(ids.tolist(), n.tolist()))


def assert_unique(stats):
    """Every id (pair, sequence step) of ``stats`` appears once."""
    for f in stats.features:
        counts(stats, f)
    for a, b in stats.pairs:
        ia, ib, _ = stats.pair_counts(a, b)
        assert len(set(zip(ia.tolist(), ib.tolist()))) == len(ia), (a, b)
    for f in stats._seq:
        prev, nxt, _ = stats.sequence_counts(f)
        assert len(set(zip(prev.tolist(), nxt.tolist()))) == len(prev), f


# --------------------------------------------------------------------------- logs


def sentinel_parquet(tmp_path):
    """int64's smallest value is MISSING_ID: a log holding it (Long.MIN_VALUE as a 'no value'
    sentinel) beside real nulls, in an id, a pair and a session key; uint64 2**63 wraps to it."""
    p = tmp_path / "sentinel.parquet"
    pq.write_table(pa.table({
        "a": pa.array([MISSING_ID, None, 7, MISSING_ID, None, 7], pa.int64()),
        "b": pa.array([1, 1, 1, 2, 2, 2], pa.int64()),
        "u": pa.array([2**63, None, 3, 2**63, 3, 3], pa.uint64()),
        "s": pa.array([MISSING_ID, MISSING_ID, None, 5, 5, 5], pa.int64()),
        "t": pa.array([1, 2, 3, 4, 5, 6], pa.int64()),
    }), p)
    return p


SENTINEL_KW = dict(features=["a", "b", "u"], pairs=[("a", "b"), ("u", "a")], sequence_key="s", time_key="t")


def sentinel_csv(tmp_path):
    return write(tmp_path / "sentinel.csv",
                 f"a,b,s,t\n{MISSING_ID},1,{MISSING_ID},1\n,1,{MISSING_ID},2\n7,1,,3\n{MISSING_ID},2,5,4\n,2,5,5\n7,2,5,6\n")


def test_int64_min_is_the_missing_id_on_duckdb_as_in_the_readers(tmp_path):
    # the engines grouped a stored -2**63 apart from NULL, then both became MISSING_ID: the id
    # appeared twice in the frequencies (the log's 4 missing accesses as 2 + 2), pairs twice, and a
    # session of -2**63 was a session (the readers put such rows in no sequence)
    p = sentinel_parquet(tmp_path)
    expected = by_reader(p, **SENTINEL_KW)
    assert counts(expected, "a") == {MISSING_ID: 4, 7: 2}
    assert counts(expected, "u") == {MISSING_ID: 3, 3: 3}
    assert [x.tolist() for x in expected.sequence_counts("a")] == [[MISSING_ID, MISSING_ID], [MISSING_ID, 7], [1, 1]]
    s = mine(p, **SENTINEL_KW)
    assert_unique(s)
    assert s == expected
    # 2 + 2 missing accesses are 4: kept by min_count=3 (each half alone is pruned)
    s = mine(p, min_count=3, **SENTINEL_KW)
    assert counts(s, "a") == {MISSING_ID: 4} and counts(s, "u") == {MISSING_ID: 3, 3: 3}
    assert s == by_reader(p, min_count=3, **SENTINEL_KW)
    c = sentinel_csv(tmp_path)
    kw = dict(features=["a", "b"], pairs=[("a", "b")], sequence_key="s", time_key="t")
    expected = by_reader(c, **kw)
    assert counts(expected, "a") == {MISSING_ID: 4, 7: 2}
    s = mine(c, **kw)
    assert_unique(s)
    assert s == expected


def case_twins(tmp_path):
    """Logs with columns whose names differ only in case ('A' and 'a'), one of them read."""
    (tmp_path / "twins").mkdir(exist_ok=True)
    csv = write(tmp_path / "twins" / "t.csv", "A,a,X,x,b\n1,2,0,0,7\n3,4,0,0,7\n")
    pq.write_table(pa.table({"X": [1, 3], "x": [2, 4], "a": [5, 6]}), tmp_path / "twins" / "unread.parquet")
    return [(csv, dict(features=["a", "b"], pairs=[("a", "b")])), (csv, dict(features=["A"])),
            (tmp_path / "twins" / "unread.parquet", dict(features=["a"]))]


def test_columns_whose_names_differ_only_in_case(tmp_path):
    # DuckDB and Spark match names ignoring case: DuckDB failed on any such CSV header with a raw
    # BinderException and read Parquet's 'A' for 'a' (counting the wrong column); Spark failed
    # with a raw AnalysisException. The readers read each column by its exact name.
    for path, kw in case_twins(tmp_path):
        expected = by_reader(path, **kw)
        assert mine(path, **kw) == expected, (path, kw)
    assert counts(mine(case_twins(tmp_path)[0][0], features=["a"]), "a") == {2: 1, 4: 1}
    # both twins read, or a Parquet twin of a read column: refused, naming both and the fix
    p = tmp_path / "twins" / "t.csv"
    with pytest.raises(ConfigError, match="(?s)'A' and 'a'.*differ only in case.*Rename"):
        mine(p, features=["A", "a"])
    pq.write_table(pa.table({"A": [1, 3], "a": [2, 4]}), tmp_path / "read.parquet")
    with pytest.raises(ConfigError, match="(?s)read.parquet.*'A' and 'a'.*differ only in case.*Rename"):
        mine(tmp_path / "read.parquet", features=["a"])


def binary_parquet(tmp_path):
    """Text ids stored as Parquet BINARY without the UTF-8 annotation (as Impala and older Hive
    write strings) beside annotated strings."""
    p = tmp_path / "binary.parquet"
    pq.write_table(pa.table({"a": pa.array([b"x", b"\xff", b"x", None, b""], pa.binary()),
                             "b": pa.array(["p", "q", "p", "q", None], pa.large_string()),
                             "c": pa.array([1, 2, 1, 2, 1]), "t": pa.array([5, 4, 3, 2, 1])}), p)
    return p, dict(features=["a", "b", "c"], pairs=[("a", "b"), ("c", "a")], sequence_key="c", time_key="t")


def test_binary_and_string_parquet_ids_mine_together_on_duckdb(tmp_path):
    # DuckDB failed with a raw BinderException ('Cannot mix values of type BLOB and VARCHAR in
    # CASE expression'): both kinds 'string' shared the grouped result's text columns
    p, kw = binary_parquet(tmp_path)
    expected = by_reader(p, **kw)
    assert counts(expected, "a")[MISSING_ID] == 2
    assert mine(p, **kw) == expected


# --------------------------------------------------------------------------- Spark


def spark_cases(tmp_path):
    """(log, mine keywords) that Spark must count as the readers and DuckDB do (few: each costs
    Spark seconds)."""
    twins = case_twins(tmp_path)
    path, kw = binary_parquet(tmp_path)
    return [
        (sentinel_parquet(tmp_path), SENTINEL_KW),
        # a quoted value holding a line break is one value (RFC 4180; DuckDB and the readers):
        # Spark parsed each physical line alone, one good row and one bad line of 'line"'
        (write(tmp_path / "quoted_newline.csv", b'a,b,y\n1,"multi\nline",1\n2,x,0\n3,"a ""q""\r\nb",1\n\n4,\xff,1\n'),
         dict(features=["a", "b"], label="y", pairs=[("a", "b")], on_bad_line="skip")),
        twins[2],
        (path, dict(features=kw["features"], pairs=kw["pairs"])),
    ]


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_agrees_with_the_readers_and_duckdb(spark, tmp_path):
    # the session may be the caller's: the settings a run needs are its own (caseSensitive stayed
    # on, changing how the caller's later queries resolve names)
    keys = ("spark.sql.caseSensitive", "spark.sql.legacy.parquet.nanosAsLong", "spark.sql.csv.parser.columnPruning.enabled")
    before = {k: spark.conf.get(k, None) for k in keys}
    for path, kw in spark_cases(tmp_path):
        expected = by_reader(path, **kw)
        on_spark = mine(path, engine="spark", **kw)
        assert_unique(on_spark)
        assert on_spark == expected, (path, kw)
        assert on_spark.bad_lines == expected.bad_lines == mine(path, **kw).bad_lines, (path, kw)
        assert {k: spark.conf.get(k, None) for k in keys} == before
    # nanosecond times (Parquet TIMESTAMP(NANOS), as pyarrow writes timestamp[ns]): Spark refused
    # them with a raw AnalysisException; their order is the order of the integers
    pq.write_table(pa.table({"a": [1, 2, 3, 4], "s": [1, 1, 1, 1], "t": pa.array(
        [3_000_000_001, 3_000_000_000, 1_000_000_000, 2_000_000_000], pa.timestamp("ns", tz="UTC"))}), tmp_path / "ns.parquet")
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    on_spark = mine(tmp_path / "ns.parquet", engine="spark", **kw)
    assert [x.tolist() for x in on_spark.sequence_counts("a")] == [[2, 3, 4], [1, 4, 2], [1, 1, 1]]
    assert on_spark == mine(tmp_path / "ns.parquet", **kw)
    # a CSV is read line-spanning: a line of whitespace is still blank, a short line still stops it
    p = write(tmp_path / "ws.csv", 'a,b\n1,"x\ny"\n  \n \t\n3\n4,5\n')
    for engine in ("duckdb", "spark"):
        with pytest.raises(BadLineError, match="line 6"):
            mine(p, features=["a", "b"], engine=engine)
        s = mine(p, features=["a", "b"], engine=engine, on_bad_line="skip")
        assert (s.n_rows, s.bad_lines) == (2, 1)


# --------------------------------------------------------------------------- the command line


@pytest.mark.parametrize("args, flag", [
    (["--features", "a", "--min-count", "0"], "--min-count"),
    (["--features", "a", "--engine", "pandas"], "--engine"),
    (["--features", "a", "--on-bad-line", "warn"], "--on-bad-line"),
    (["--features", "a", "--memory-limit", "lots"], "--memory-limit"),
    (["--features", "a", "--threads", "0"], "--threads"),
    (["--features", "a", "--sequence-key", "s"], "--time-key"),
    (["--features", "a", "--time-key", "t"], "--sequence-key"),
    (["--features", "a", "--pair", "a:b"], "--pair"),
    (["--features", "a,b", "--pair", "a"], "--pair"),
    (["--features", ","], "--features"),
    (["--features", "a,a"], "--features"),
    (["--features", "a,nope"], "--features"),
    (["--features", "a", "--label", "a"], "--label"),
    (["--features", "a", "--label", "nope"], "--label"),
    (["--features", "a", "--sequence-key", "s", "--time-key", "a"], "--time-key"),
    (["--features", "a", "--sequence-key", "y", "--time-key", "t", "--label", "y"], "--sequence-key"),
    (["--features", "a", "--sequence-key", "nope", "--time-key", "t"], "--sequence-key"),
    (["--features", "a", "--sequence-key", "s", "--time-key", "nope"], "--time-key"),
    (["--features", "a", "--format", "tsv"], "--format"),
    (["--features", "a", "--delimiter", ";;"], "--delimiter"),
    (["--features", "a", "--fields", "x,y"], "--fields"),
    (["--features", "a", "--engine", "spark", "--spark-master", ""], "--spark-master"),
])
def test_cli_mine_errors_name_the_flag(tmp_path, capsys, args, flag):
    # the errors named mine()'s parameters ('min_count', 'session_key' of LogSchema, ...), which a
    # command-line user never typed; every other verb's errors also name the flag (FLAGS)
    from embcompress.cli.main import main

    log = write(tmp_path / "l.csv", "a,b,y,t,s\n1,2,1,2017-01-01,5\n3,4,0,2017-01-02,5\n")
    with pytest.raises(SystemExit) as exc:
        main(["mine", str(log), *args, "--out", str(tmp_path / "s.stats"), "--quiet"])
    assert exc.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.endswith(f"(on the command line: {flag})"), err
    assert "LogSchema" not in err and "session_key" not in err
    assert not (tmp_path / "s.stats").exists()


# --------------------------------------------------------------------------- the stats and their file


@pytest.mark.parametrize("build, match", [
    (lambda: LogStats.from_arrays({"a": ([1, 2, 3], [1, 2])}), r"feature 'a'.*3 ids.*2 counts"),
    (lambda: LogStats.from_arrays({"a": ([1, 2], [1, 2], [1])}), r"feature 'a'.*2 ids.*1 positive"),
    (lambda: LogStats.from_arrays({"a": ([1, 1], [1, 2])}), r"feature 'a'.*id 1 twice"),
    (lambda: LogStats.from_arrays({"a": ([1, 2], [-1, 2])}), r"feature 'a'.*negative"),
    (lambda: LogStats.from_arrays({"a": ([1, 2], [1, 2], [5, 0])}), r"positive counts of feature 'a'.*more than"),
    (lambda: LogStats.from_arrays({"a": ([1], [1]), "b": ([1], [1])}, pairs={("a", "b"): ([1, 2], [1], [1])}),
     r"pair \('a', 'b'\).*same length"),
    (lambda: LogStats.from_arrays({"a": ([1], [1]), "b": ([1], [1])}, pairs={("a", "b"): ([1, 1], [1, 1], [1, 1])}),
     r"pair \('a', 'b'\).*\(1, 1\) twice"),
    (lambda: LogStats.from_arrays({"a": ([1], [1])}, sequences={"a": ([1], [1, 2], [1])}), r"sequence counts of 'a'.*same length"),
    (lambda: LogStats.from_rows({"a": np.array([1, 2, 3]), "b": np.array([1, 2])}, features=["a", "b"]),
     r"columns.*same length.*'b' has 2"),
    (lambda: LogStats.from_rows({"a": np.array([1, 2, 3]), "y": np.array([1])}, features=["a"], label="y"),
     r"columns.*same length.*'y' has 1"),
    (lambda: LogStats.from_rows({"a": np.array([1])}, features=["a"], min_count=0), r"'min_count'.*>= 1"),
])
def test_stats_built_from_arrays_are_checked(build, match):
    # mismatched arrays failed with raw numpy errors (broadcast, IndexError) or, with repeated
    # ids or negative counts, built stats that counted nothing the log said
    with pytest.raises(ConfigError, match=match):
        build()


def test_a_stats_file_with_a_changed_byte_is_refused_by_default(tmp_path):
    # load reads every byte anyway; a flipped bit in a count section loaded as other counts (the
    # section checksums were checked only under verify='full'), which fit-hash then fitted on
    from embcompress.errors import ChecksumError

    s = LogStats.from_arrays({"a": (np.arange(1000), np.arange(1000) + 1)})
    path = s.save(tmp_path / "s.stats")
    assert LogStats.load(path) == s
    data = bytearray(path.read_bytes())
    data[-100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="freq/0/counts"):
        LogStats.load(path)
    assert LogStats.load(path, verify="header").n_rows == s.n_rows  # still readable on request


# --------------------------------------------------------------------------- parameters


def test_pairs_and_counts_are_taken_as_features_are(tmp_path):
    # features='a, b' was split and stripped, but pairs='a:b' was iterated character by character
    # ("Got ('a',)"), a pair 'a: b' named ' b', and a NumPy integer min_count or threads (as read
    # from a config array) was refused as 'not an int'
    p = write(tmp_path / "l.csv", "a,b\n1,2\n1,2\n3,4\n")
    want = mine(p, features=["a", "b"], pairs=[("a", "b")], min_count=2, threads=1)
    for kw in (dict(pairs="a:b"), dict(pairs="a : b"), dict(pairs=["a: b"]), dict(pairs="a:b,b:a")):
        s = mine(p, features="a, b", min_count=np.int64(2), threads=np.int32(1), **kw)
        assert s.pairs == [("a", "b")] and s.min_count == 2 and s == want, kw
    with pytest.raises(ConfigError, match="'min_count' parameter of mine"):
        mine(p, features="a", min_count=np.float64(2))


def test_duckdb_progress_never_goes_back():
    # DuckDB's query_progress() is -1 between a query's phases; the bar fell back to the job's start
    import threading

    from learned_hash.mining.duckdb_engine import _fetch

    class Con:
        def __init__(self):
            self.polls = iter([-1.0, 40.0, -1.0, 30.0, 80.0, -1.0])
            self.done = threading.Event()

        def query_progress(self):
            value = next(self.polls, None)
            if value is None:
                self.done.set()
                return -1.0
            return value

        def sql(self, sql):
            self.done.wait(10)
            return type("Rel", (), {"to_arrow_table": lambda self: "table"})()

    seen = []
    assert _fetch(Con(), "SELECT 1", lambda done, total: seen.append(done), 50.0, 50.0) == "table"
    assert seen and seen == sorted(seen) and max(seen) == 90.0, seen


def test_a_csv_header_that_does_not_parse_is_a_clear_error(tmp_path, capsys):
    # a quote left open in the header line: a raw ArrowInvalid ('Empty CSV file or block'), which
    # the CLI printed as an 'unexpected' error
    from embcompress.cli.main import main

    p = write(tmp_path / "h.csv", 'a,"b\nc"\n1,2\n')
    with pytest.raises(ConfigError, match="(?s)header.*h.csv.*quote"):
        mine(p, features=["a"])
    with pytest.raises(SystemExit) as exc:
        main(["mine", str(p), "--features", "a", "--out", str(tmp_path / "s.stats"), "--quiet"])
    assert exc.value.code == 1 and "unexpected" not in capsys.readouterr().err
    # a log saved as UTF-16 (Excel's 'Unicode text'): a raw UnicodeDecodeError
    (tmp_path / "logs").mkdir()
    write(tmp_path / "logs" / "a.csv", "a,b\n1,2\n")
    write(tmp_path / "logs" / "b.csv", "a,b\n1,2\n".encode("utf-16"))
    with pytest.raises(ConfigError, match="(?s)b.csv.*not UTF-8.*Re-encode"):
        mine(tmp_path / "logs", features=["a"], format="csv")


def test_long_csv_lines_on_duckdb(tmp_path):
    # DuckDB rejects a line over 2 MiB (its max_line_size) as if malformed: a 3 MB free-text value
    # was a bad line skipped on DuckDB only, and under on_bad_line='error' a failure naming no
    # line (the readers find none). Lines up to 32 MiB now read; a longer one is an error that
    # says so, in both modes (it is no malformed line to skip)
    p = write(tmp_path / "long.csv", "a,b,y\n1," + "x" * 3_000_000 + ",1\n2,z,0\n3," + "y" * 9_000_000 + ",1\n")
    kw = dict(features=["a", "b"], label="y", pairs=[("a", "b")])
    expected = by_reader(p, **kw)
    assert (expected.n_rows, expected.bad_lines) == (3, 0)
    assert mine(p, **kw) == expected
    assert mine(p, on_bad_line="skip", **kw).bad_lines == 0
    huge = write(tmp_path / "huge.csv", "a,b\n1,2\n2," + "x" * (33 << 20) + "\n")
    for on_bad_line in ("error", "skip"):
        with pytest.raises(ConfigError, match="(?s)huge.csv.*longer than.*line 3.*engine='spark'"):
            mine(huge, features=["a"], on_bad_line=on_bad_line)


def test_a_text_value_in_a_column_read_as_integers_names_the_kinds_fix(tmp_path, capsys):
    # a CSV column whose first lines are integers is read as integers; a later text value ('NA',
    # as R writes a missing value, or an alphanumeric id) was a bad line whose message named no
    # way to read the column as text, and the command line had none (kinds= had no flag)
    from embcompress.cli.main import main

    p = write(tmp_path / "l.csv", "a,b\n1,x\n2,y\nNA,z\n3,z\n")
    with pytest.raises(BadLineError, match=r"(?s)line 4.*kinds=\{'a': 'string'\}.*--kind a=string"):
        mine(p, features=["a", "b"])
    want = mine(p, features=["a", "b"], kinds={"a": "string"})
    assert want.n_rows == 4 and want.bad_lines == 0
    main(["mine", str(p), "--features", "a,b", "--kind", "a=string", "--out", str(tmp_path / "s.stats"), "--quiet"])
    assert LogStats.load(tmp_path / "s.stats") == want
    for bad in ("a", "a=text", "=string"):
        with pytest.raises(SystemExit) as exc:
            main(["mine", str(p), "--features", "a,b", "--kind", bad, "--out", str(tmp_path / "t.stats"), "--quiet"])
        err = capsys.readouterr().err
        assert exc.value.code == 1 and err.strip().endswith("(on the command line: --kind)"), err


def test_the_readers_order_sessions_by_nanosecond_parquet_times_as_duckdb_does(tmp_path):
    # the engines mine Parquet TIMESTAMP(NANOS); the readers cast to microseconds and failed with a
    # raw ArrowInvalid ("would lose data") on any time not a whole microsecond
    import pyarrow as pa
    import pyarrow.parquet as pq

    from learned_hash import LogStats
    from learned_hash.logs import read_log
    from learned_hash.mining import mine

    ns = np.array([5, 1, 3, 2, 4, 1_000], dtype="datetime64[ns]")  # the first five within one microsecond
    path = tmp_path / "ns.parquet"
    pq.write_table(pa.table({"a": pa.array([10, 11, 12, 13, 14, 15], pa.int64()), "ts": pa.array(ns),
                             "u": pa.array([1, 1, 1, 1, 1, 1], pa.int64())}), path)
    cols = read_log(path, features=["a"], session_key="u", time_key="ts")
    assert list(np.argsort(cols["ts"], kind="stable")) == [1, 3, 2, 4, 0, 5]
    ours = LogStats.from_rows(cols, features=["a"], sequence_key="u", time_key="ts")
    engine = mine(path, features=["a"], sequence_key="u", time_key="ts")
    for x, y in zip(ours.sequence_counts("a"), engine.sequence_counts("a")):
        np.testing.assert_array_equal(x, y)


def test_a_compressed_text_log_is_told_by_the_extension_under_its_compression(tmp_path):
    # 'day_0.csv.gz' needed format='csv' though the readers and the engines read it; and a glob
    # mixing extensions said the format was needed for the first file, "its extension does not say"
    import gzip

    from learned_hash.logs import read_log
    from learned_hash.mining import mine

    text = "a,b,y\n1,2,0\n1,3,1\n2,3,0\n"
    (tmp_path / "log.csv").write_text(text)
    with gzip.open(tmp_path / "log.csv.gz", "wt") as fh:
        fh.write(text)
    plain = mine(tmp_path / "log.csv", features=["a", "b"], label="y")
    packed = mine(tmp_path / "log.csv.gz", features=["a", "b"], label="y")
    for f in ("a", "b"):
        for x, y in zip(plain.frequencies(f), packed.frequencies(f)):
            np.testing.assert_array_equal(x, y)
    assert read_log(tmp_path / "log.csv.gz", features=["a", "b"], label="y")["a"].tolist() == [1, 1, 2]
    pq_path = tmp_path / "more.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1], "b": [2], "y": [0]}), pq_path)
    with pytest.raises(ConfigError, match=r"'format' parameter.*\.csv.*\.parquet|'format' parameter.*\.parquet.*\.csv"):
        read_log(str(tmp_path / "*"), features=["a", "b"], label="y")
