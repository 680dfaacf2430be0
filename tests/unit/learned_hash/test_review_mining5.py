"""Review of mining inputs (round 5): values and file sets where the Python readers, DuckDB and
Spark gave wrong or differing counts. Each test mines on DuckDB and reads through the Python
readers (``iter_batches`` counted by ``LogStats.from_rows``); Spark tests are marked ``spark``."""


import numpy as np
import pytest

from embcompress.errors import ConfigError
from learned_hash import mine
from learned_hash.logs import iter_batches
from tests.conftest import by_reader, need_spark, write


def counts(stats, feature):
    ids, n = stats.frequencies(feature)
    return dict(zip(ids.tolist(), n.tolist()))


# 19-digit values that fit int64: hashed 64-bit ids written as signed decimals look like these
BIG = [2**63 - 1, -(2**63 - 1), 1234567890123456789, -1000000000000000000, 999999999999999999]


def big_ids_log(tmp_path, extra=""):
    rows = "".join(f"{v},{i % 2}\n" for i, v in enumerate(BIG)) + "12,0\n" + extra
    return write(tmp_path / "big.csv", "a,y\n" + rows)


def test_nineteen_digit_int64_ids_are_ids_not_bad_lines(tmp_path):
    p = big_ids_log(tmp_path)
    expected = {v: 1 for v in BIG} | {12: 1}
    r = by_reader(p, features=["a"], label="y")
    assert (counts(r, "a"), r.bad_lines) == (expected, 0)
    s = mine(p, features=["a"], label="y")
    assert (counts(s, "a"), s.bad_lines, s.n_rows) == (expected, 0, len(BIG) + 1)
    assert s == r


def test_an_id_beyond_int64_is_still_a_bad_line(tmp_path):
    p = big_ids_log(tmp_path, "9223372036854775808,1\n-9223372036854775809,1\n")
    kw = dict(features=["a"], label="y", kinds={"a": "int"}, on_bad_line="skip")
    expected = {v: 1 for v in BIG} | {12: 1}
    r = by_reader(p, **kw)
    assert (counts(r, "a"), r.bad_lines) == (expected, 2)
    s = mine(p, **kw)
    assert (counts(s, "a"), s.bad_lines) == (expected, 2)
    with pytest.raises(ConfigError, match="line 8"):
        mine(p, features=["a"], label="y", kinds={"a": "int"})


def test_kinds_come_from_a_file_with_rows_not_an_empty_first_part(tmp_path):
    # a folder of CSV parts whose first part has its header only: its integer ids stay integers
    (tmp_path / "log").mkdir()
    write(tmp_path / "log" / "part-0.csv", "a,b\n")
    write(tmp_path / "log" / "part-1.csv", "a,b\n1,x\n2,y\n2,y\n")
    alone = mine(tmp_path / "log" / "part-1.csv", features=["a", "b"], format="csv")
    assert counts(alone, "a") == {1: 1, 2: 2}
    s = mine(tmp_path / "log", features=["a", "b"], format="csv")
    assert counts(s, "a") == {1: 1, 2: 2}
    assert s == alone
    assert by_reader(tmp_path / "log", features=["a", "b"], format="csv") == alone


def test_csv_files_with_another_header_are_read_by_name_not_by_position(tmp_path):
    # read by position, b's values would be counted as a's (then refused; now each file is read
    # by its own header: test_mining_lake13)
    (tmp_path / "log").mkdir()
    write(tmp_path / "log" / "day1.csv", "a,b\n1,10\n2,20\n")
    write(tmp_path / "log" / "day2.csv", "b,a\n30,3\n")
    for read in (mine, by_reader):
        assert counts(read(tmp_path / "log", features=["a"], format="csv"), "a") == {1: 1, 2: 1, 3: 1}
    # the same header (TalkingData's leading dots aside) reads on
    write(tmp_path / "log" / "day2.csv", "..a,b\n3,30\n")
    assert counts(mine(tmp_path / "log", features=["a"], format="csv"), "a") == {1: 1, 2: 1, 3: 1}


def test_an_empty_csv_part_is_no_rows_wherever_it_sorts(tmp_path):
    # a 0-byte part after the first was read as no rows; sorted first, it failed the whole log
    (tmp_path / "log").mkdir()
    write(tmp_path / "log" / "part-0.csv", "")
    write(tmp_path / "log" / "part-1.csv", "a,b\n1,x\n2,y\n2,y\n")
    write(tmp_path / "log" / "part-2.csv", "")
    alone = mine(tmp_path / "log" / "part-1.csv", features=["a"], format="csv")
    assert mine(tmp_path / "log", features=["a"], format="csv") == alone
    assert by_reader(tmp_path / "log", features=["a"], format="csv") == alone
    # no file with a header: still an error
    with pytest.raises(ConfigError, match="part-0.csv.*is empty"):
        mine([tmp_path / "log" / "part-0.csv", tmp_path / "log" / "part-2.csv"], features=["a"], format="csv")


def test_an_empty_line_then_a_line_of_spaces_is_blank_on_duckdb(tmp_path):
    # DuckDB reports the two as one rejected line '\n  ', which was judged not blank: one bad
    # line skipped, and under on_bad_line='error' a failure naming no line
    p = write(tmp_path / "blank.csv", "a,b\n1,2\n\n  \n3,4\n\n\n \t\n5,6\n")
    expected = by_reader(p, features=["a"])
    assert (counts(expected, "a"), expected.bad_lines) == ({1: 1, 3: 1, 5: 1}, 0)
    assert mine(p, features=["a"]) == expected
    assert mine(p, features=["a"], on_bad_line="skip").bad_lines == 0


@pytest.mark.parametrize("fmt", ["csv", "criteo"])
def test_a_line_with_extra_empty_fields_is_bad_on_duckdb_too(tmp_path, fmt):
    # '1,x,' has 3 fields where 2 are expected: the readers and Spark count it bad; DuckDB let
    # extra empty fields pass as a good row
    if fmt == "csv":
        p = write(tmp_path / "t.csv", 'a,b\n1,x,\n2,y\n4,w,,\n"5","",\n6,\n')
        kw = dict(features=["a"])
    else:
        good = "\t".join(["1", *["7"] * 13, *["68fd1e64"] * 26])
        p = write(tmp_path / "t.txt", good + "\n" + good + "\t\n" + good + "\t\t\n")
        kw = dict(features=["C1"], label="label", format="criteo")
    expected = by_reader(p, on_bad_line="skip", **kw)
    assert (expected.n_rows, expected.bad_lines) == ((2, 3) if fmt == "csv" else (1, 2))
    assert mine(p, on_bad_line="skip", **kw) == expected
    assert mine(p, on_bad_line="skip", **kw).bad_lines == expected.bad_lines
    with pytest.raises(ConfigError, match="line 2"):
        mine(p, **kw)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_agrees_on_these_logs(tmp_path):
    need_spark()
    (tmp_path / "parts").mkdir()
    write(tmp_path / "parts" / "part-0.csv", "")
    write(tmp_path / "parts" / "part-1.csv", "a,b\n")
    write(tmp_path / "parts" / "part-2.csv", "a,b\n1,x,\n2,y\n\n  \n2,y\n4,w,,\n")
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": [1, 2, 3, 4], "y": [1.0, 0.0, 1.0, float("nan")]}), tmp_path / "nan.parquet")
    logs = [(big_ids_log(tmp_path), dict(features=["a"], label="y")),
            (tmp_path / "nan.parquet", dict(features=["a"], label="y", on_bad_line="skip")),
            (write(tmp_path / "pandas.csv", ",a,a,b\n0,1,5,2\n1,1,6,3\n"), dict(features=["a", "b"])),
            (hex_parquet(tmp_path), dict(features=["C1", "I1"], kinds={"C1": "hex32", "I1": "int"}, on_bad_line="skip")),
            (tmp_path / "parts", dict(features=["a", "b"], format="csv", on_bad_line="skip"))]
    for day, (a, d) in {1: ([1, 2], [5, 6]), 2: ([3], [7])}.items():
        (tmp_path / "hive" / f"day={day}").mkdir(parents=True)
        pq.write_table(pa.table({"a": a, "day": d}), tmp_path / "hive" / f"day={day}" / "p.parquet")
        write(tmp_path / "hive" / f"day={day}" / "p.csv", "a,day\n" + "".join(f"{x},{y}\n" for x, y in zip(a, d)))
    logs += [(str(tmp_path / "hive" / "*" / f"p.{fmt}"), dict(features=["a", "day"], format=fmt)) for fmt in ("parquet", "csv")]
    for p, kw in logs:
        expected = by_reader(p, **kw)
        on_spark = mine(p, engine="spark", **kw)
        assert on_spark == expected
        assert on_spark.bad_lines == expected.bad_lines == mine(p, **kw).bad_lines
        if p == tmp_path / "parts":
            assert counts(on_spark, "a") == {2: 2}
        if "hive" in str(p):
            assert counts(on_spark, "day") == {5: 1, 6: 1, 7: 1}


def test_dictionary_encoded_parquet_columns_are_read_by_the_readers(tmp_path):
    # pandas 'category' columns are stored dictionary-encoded: iter_batches failed with
    # AttributeError (ChunkedArray.dictionary_decode), and so did mine's search for a bad line
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"a": pa.array(["x", "", None, "x"]).dictionary_encode(),
                             "b": pa.array([1, None, 3, 1]).dictionary_encode(),
                             "y": [1.0, 0.0, 1.0, None]}), p)
    expected = by_reader(p, features=["a", "b"], label="y", on_bad_line="skip")
    assert (expected.n_rows, expected.bad_lines) == (3, 1)
    assert counts(expected, "b") == {1: 1, 3: 1, -(2**63): 1}
    assert mine(p, features=["a", "b"], label="y", on_bad_line="skip") == expected
    with pytest.raises(ConfigError, match="Malformed line.*record 4"):
        mine(p, features=["a", "b"], label="y")


@pytest.mark.parametrize("labels", [[1.0, 0.0, 1.0, float("nan")], [1.0, float("nan"), 0.0, 2.0]])
def test_a_nan_label_after_the_first_row_is_a_bad_line_on_duckdb(tmp_path, labels):
    # Parquet's min/max leave NaN out; DuckDB took them to mean 'no NaN' and folded isnan(label)
    # to false, so the NaN row was counted, as a positive (NaN > 0 in SQL)
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3, 4], "y": labels}), p)
    expected = by_reader(p, features=["a"], label="y", on_bad_line="skip")
    assert (expected.n_rows, expected.bad_lines) == (3, 1)
    s = mine(p, features=["a"], label="y", on_bad_line="skip")
    assert (s.n_rows, s.bad_lines) == (3, 1)
    assert s == expected
    with pytest.raises(ConfigError, match="Malformed line"):
        mine(p, features=["a"], label="y")


def test_a_folder_of_parts_skips_hidden_and_underscore_folders(tmp_path):
    # Spark's _temporary/ (a job still writing, or one that failed) and Hive's .hive-staging/
    # hold copies of parts: their rows were counted again
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = tmp_path / "log"
    for sub in ("", "_temporary/0/", ".hive-staging/", "day=2/"):
        (log / sub).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"a": [1, 2]}), log / sub / "part-0.parquet")
    (log / "_SUCCESS").write_text("")
    s = mine(log, features=["a"])
    assert counts(s, "a") == {1: 2, 2: 2}
    assert by_reader(log, features=["a"]) == s


@pytest.mark.parametrize("header", [",a,b", "a,a,b", "a,,b", "a,b,"])
def test_a_header_with_an_empty_or_repeated_name_mines(tmp_path, header):
    # pandas' to_csv writes the index under an empty name (',a,b'); DuckDB failed with a raw
    # BinderException on any empty or repeated name, even one the job does not read
    p = write(tmp_path / "h.csv", header + "\n0,1,2\n1,1,3\n")
    feature = "b" if header != "a,b," else "a"
    expected = by_reader(p, features=[feature])
    assert expected.n_rows == 2
    assert mine(p, features=[feature]) == expected


def hex_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    # Criteo kept as Parquet text: hex ids to be parsed (kind 'hex32'), ints written as text
    p = tmp_path / "criteo.parquet"
    pq.write_table(pa.table({"C1": ["68fd1e64", "zz", "ff", "", None, "68fd1e64"],
                             "I1": ["1", "2", "x", "", "5", "-3"]}), p)
    return p


@pytest.mark.parametrize("feature, kind, ids, bad", [
    ("C1", "hex32", {0x68FD1E64: 2, 0xFF: 1, -(2**63): 2}, 1),
    ("I1", "int", {1: 1, 2: 1, -(2**63): 1, 5: 1, -3: 1}, 1),
])
def test_parquet_text_ids_take_a_given_int_or_hex32_kind(tmp_path, feature, kind, ids, bad):
    # the readers parsed them; DuckDB crashed with a raw ArrowInvalid (the text grouped as ids)
    p = hex_parquet(tmp_path)
    kw = dict(features=[feature], kinds={feature: kind}, on_bad_line="skip")
    expected = by_reader(p, **kw)
    assert (counts(expected, feature), expected.bad_lines) == (ids, bad)
    s = mine(p, **kw)
    assert (counts(s, feature), s.bad_lines) == (ids, bad)
    with pytest.raises(ConfigError, match="Malformed line.*record [23]"):
        mine(p, features=[feature], kinds={feature: kind})


@pytest.mark.parametrize("kind", ["string", "hex32"])
def test_a_text_kind_for_a_parquet_integer_column_is_refused_up_front(tmp_path, kind):
    # the readers refused it; DuckDB blamed differing file types ('string') or kept the
    # integers as if no kind were given ('hex32')
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "n.parquet"
    pq.write_table(pa.table({"n": [1, 2, 3]}), p)
    for read in (mine, by_reader):
        with pytest.raises(ConfigError, match=f"(?s)'n' of .*n.parquet.*integers.*kind '{kind}'.*'int'"):
            read(p, features=["n"], kinds={"n": kind})


def test_a_parquet_integer_time_given_kind_timestamp_is_read_as_the_engines_read_it(tmp_path):
    # the engines order by the integers; the readers failed with a raw ArrowNotImplementedError
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3], "s": [1, 1, 1], "t": [3, 1, 2]}), p)
    kw = dict(features=["a"], sequence_key="s", time_key="t", kinds={"t": "timestamp"})
    r = iter_batches(p, features=["a"], session_key="s", time_key="t", kinds={"t": "timestamp"})
    cols = np.concatenate([b["t"] for b in r])
    assert cols.tolist() == [3, 1, 2]
    prev, nxt, _ = mine(p, **kw).sequence_counts("a")
    assert list(zip(prev.tolist(), nxt.tolist())) == [(2, 3), (3, 1)]


@pytest.mark.parametrize("on_bad_line", ["error", "skip"])
def test_mixed_line_ends_on_duckdb_name_the_cause_and_the_fix(tmp_path, on_bad_line):
    # the readers and Spark read a file mixing \r\n and \n; DuckDB's parser stops. It said the
    # log 'has malformed lines' (none are) or advised strict_mode=false, which mine does not take
    p = write(tmp_path / "mixed.csv", "a,b\r\n1,2\n3,4\r\n")
    assert by_reader(p, features=["a", "b"]).n_rows == 2
    with pytest.raises(ConfigError) as exc:
        mine(p, features=["a", "b"], on_bad_line=on_bad_line)
    msg = str(exc.value)
    assert "mixed.csv" in msg and "line ends" in msg and "engine='spark'" in msg
    assert "has malformed lines" not in msg and "strict_mode" not in msg


def test_a_corrupt_parquet_part_is_named(tmp_path):
    # a truncated part among many: a raw ArrowInvalid that named no file (the CLI called it an
    # unexpected error)
    import pyarrow as pa
    import pyarrow.parquet as pq

    (tmp_path / "log").mkdir()
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "log" / "p0.parquet")
    pq.write_table(pa.table({"a": [3, 4]}), tmp_path / "log" / "p1.parquet")
    data = (tmp_path / "log" / "p1.parquet").read_bytes()
    (tmp_path / "log" / "p1.parquet").write_bytes(data[: len(data) // 2])
    for read in (mine, by_reader):
        with pytest.raises(ConfigError, match="(?s)p1.parquet.*Parquet"):
            read(tmp_path / "log", features=["a"])
    (tmp_path / "log" / "p0.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="(?s)p0.parquet.*Parquet"):
        mine(tmp_path / "log" / "p0.parquet", features=["a"])


@pytest.mark.parametrize("rows", [10, 300_000])
def test_a_truncated_compressed_csv_is_named(tmp_path, rows):
    # a raw OSError 'Truncated compressed stream' that named no file
    import gzip

    data = gzip.compress(b"a,b\n" + b"".join(b"%d,%d\n" % (i, i % 7) for i in range(rows)))
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / "day0.csv.gz").write_bytes(gzip.compress(b"a,b\n1,2\n"))
    (tmp_path / "log" / "day1.csv.gz").write_bytes(data[: len(data) * 3 // 4])
    for read in (mine, by_reader):
        with pytest.raises(ConfigError, match="(?s)day1.csv.gz.*(runcated|end of GZIP)|(runcated|end of GZIP).*day1.csv.gz"):
            read(tmp_path / "log", features=["a"], format="csv")


def test_a_truncated_compressed_libfm_log_is_named(tmp_path):
    import gzip

    data = gzip.compress(b"".join(b"1 %d:1 %d:1\n" % (i % 5, 10 + i % 7) for i in range(200_000)))
    p = tmp_path / "t.libfm.gz"
    p.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConfigError, match="(?s)t.libfm.gz.*runcated"):
        mine(p, format="libfm", fields=["u", "i"], features=["u"])


def test_a_quoted_value_across_lines_at_a_block_boundary_is_read(tmp_path):
    # Arrow's chunker split blocks at any newline: a quoted value spanning lines across a block's
    # end failed the readers ('CSV parser got out of sync with chunker'), while DuckDB mined it
    failed = []
    for k in range(180, 196):  # the quoted value crosses the 1 KiB block's end at k = 187, 188
        lines = ["a,b", *(f"{i},x" for i in range(k)), '99,"multi\nline"', *(f"{i},y" for i in range(300))]
        p = write(tmp_path / f"q{k}.csv", "\n".join(lines) + "\n")
        r = iter_batches(p, features=["a", "b"], kinds={"b": "string"}, block_bytes=1024)
        try:
            n = sum(len(b["a"]) for b in r)
        except ConfigError:
            n = -1
        if (n, r.bad_lines) != (k + 301, 0):
            failed.append(k)
    assert failed == []


def test_a_folder_of_csv_files_without_a_format_names_the_fix(tmp_path):
    # 'holds no log files (*.parquet). Check the path.' for a folder full of CSV logs
    (tmp_path / "logs").mkdir()
    write(tmp_path / "logs" / "day0.csv", "a,b\n1,2\n")
    with pytest.raises(ConfigError, match="(?s)no \\*.parquet files.*format='csv'"):
        mine(tmp_path / "logs", features=["a"])
    assert mine(tmp_path / "logs", features=["a"], format="csv").n_rows == 1


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_column_named_like_a_hive_folder_is_read_from_the_files(tmp_path, fmt):
    # DuckDB took 'day=1/' as a Hive partition and put 1 in place of the files' own 'day' values
    import pyarrow as pa
    import pyarrow.parquet as pq

    for day, (a, d) in {1: ([1, 2], [5, 6]), 2: ([3], [7])}.items():
        (tmp_path / "log" / f"day={day}").mkdir(parents=True)
        if fmt == "parquet":
            pq.write_table(pa.table({"a": a, "day": d}), tmp_path / "log" / f"day={day}" / "p.parquet")
        else:
            write(tmp_path / "log" / f"day={day}" / "p.csv", "a,day\n" + "".join(f"{x},{y}\n" for x, y in zip(a, d)))
    expected = by_reader(tmp_path / "log", features=["a", "day"], format=fmt)
    assert counts(expected, "day") == {5: 1, 6: 1, 7: 1}
    assert mine(tmp_path / "log", features=["a", "day"], format=fmt) == expected


def test_a_bzip2_log_on_duckdb_names_the_fix(tmp_path):
    # the readers (and Spark) read .bz2; DuckDB raised a raw NotImplementedException advising
    # compression='none', which mine does not take
    import bz2

    (tmp_path / "log.csv.bz2").write_bytes(bz2.compress(b"a,b\n1,2\n3,4\n"))
    assert by_reader(tmp_path / "log.csv.bz2", features=["a"], format="csv").n_rows == 2
    with pytest.raises(ConfigError, match="(?s)log.csv.bz2.*gzip or zstd.*engine='spark'"):
        mine(tmp_path / "log.csv.bz2", features=["a"], format="csv")


def _corrupt_parquet(p):
    """A Parquet file whose footer reads and whose data pages do not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": np.arange(100_000) % 977}), p, compression="snappy")
    data = bytearray(p.read_bytes())
    data[1000:1400] = bytes(b ^ 0x5A for b in data[1000:1400])
    p.write_bytes(bytes(data))
    return p


@pytest.mark.parametrize("on_bad_line", ["error", "skip"])
def test_a_parquet_part_with_corrupt_data_is_named(tmp_path, on_bad_line):
    # its footer reads, its data does not: the readers raised a raw OSError naming no file
    p = _corrupt_parquet(tmp_path / "cp.parquet")
    with pytest.raises(ConfigError) as exc:
        mine(p, features=["a"], on_bad_line=on_bad_line)
    assert "cp.parquet" in str(exc.value) and "corrupt" in str(exc.value) and "line ends" not in str(exc.value)
    with pytest.raises(ConfigError, match="(?s)cp.parquet.*corrupt"):
        by_reader(p, features=["a"], on_bad_line=on_bad_line)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_names_a_corrupt_parquet_part_in_one_line(tmp_path):
    # a 145-line Py4JJavaError, which the CLI printed whole as an 'unexpected' error
    need_spark()
    p = _corrupt_parquet(tmp_path / "cp.parquet")
    with pytest.raises(ConfigError) as exc:
        mine(p, features=["a"], engine="spark", on_bad_line="skip")
    msg = str(exc.value)
    assert "cp.parquet" in msg and "corrupt" in msg and len(msg.splitlines()) == 1


def test_more_features_than_one_grouping_takes_is_a_clear_error(tmp_path):
    # GROUPING_ID is 64-bit: 64 features failed with a raw BinderException from DuckDB
    n = 64
    p = write(tmp_path / "wide.csv", ",".join(f"f{i}" for i in range(n)) + "\n"
              + "".join(",".join(str((r * 7 + i) % 5) for i in range(n)) + "\n" for r in range(5)))
    assert mine(p, features=[f"f{i}" for i in range(63)]).n_rows == 5
    with pytest.raises(ConfigError, match="(?s)at most 63.*Got 64.*several"):
        mine(p, features=[f"f{i}" for i in range(n)])
