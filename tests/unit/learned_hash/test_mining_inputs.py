"""mine() on DuckDB with awkward inputs: file names that look like globs or hold quotes, NaN and
text labels in Parquet, a temp directory with a quote. Each agrees with the Python reader."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from learned_hash import mine
from learned_hash.logs import iter_batches, read_log
from tests.conftest import need_spark


def reader_counts(path, **kw):
    """(good rows, bad lines, positives per id) as the Python reader sees them."""
    r = iter_batches(path, on_bad_line="skip", **kw)
    parts = list(r)
    a = np.concatenate([p[kw["features"][0]] for p in parts])
    y = np.concatenate([p[kw["label"]] for p in parts]) if kw.get("label") else None
    pos = {} if y is None else {int(i): int(((a == i) & (y > 0)).sum()) for i in np.unique(a)}
    return len(a), r.bad_lines, pos


def test_file_name_with_glob_characters_is_read_as_itself(tmp_path):
    # DuckDB expands '[1]' as a glob; the file must be read as named, not its look-alike 'log1.csv'
    (tmp_path / "log1.csv").write_text("a,b\n9,9\n")
    p = tmp_path / "log[1].csv"
    p.write_text("a,b\n1,2\n3,4\n3,5\n")
    ids, counts = mine(str(p), features=["a"]).frequencies("a")
    assert dict(zip(ids.tolist(), counts.tolist())) == {3: 2, 1: 1}
    q = tmp_path / "it's a *.csv"
    q.write_text("a,b\n7,1\n")
    ids, counts = mine(str(q), features=["a"]).frequencies("a")
    assert ids.tolist() == [7] and counts.tolist() == [1]


def _parquet_labels_agree(p, labels, rows, bad, pos, first_bad):
    """The reader and mining count a Parquet label column alike, skipping or stopping at ``first_bad``."""
    pq.write_table(pa.table({"a": [1, 2, 3, 4], "y": labels}), p)
    assert reader_counts(str(p), features=["a"], label="y") == (rows, bad, pos)
    s = mine(str(p), features=["a"], label="y", on_bad_line="skip")
    assert (s.n_rows, s.bad_lines) == (rows, bad)
    ids, p_counts = s.positives("a")
    assert dict(zip(ids.tolist(), p_counts.tolist())) == pos
    with pytest.raises(ConfigError, match=first_bad):
        mine(str(p), features=["a"], label="y")


def test_parquet_nan_label_is_a_bad_line_as_in_text(tmp_path):
    # a text label 'nan' is malformed; a NaN in a float Parquet label must be too, on every path
    _parquet_labels_agree(tmp_path / "nan.parquet", [float("nan"), 1.0, 0.0, None], 2, 2, {2: 1, 3: 0}, "nan")


def test_parquet_text_label_parses_like_a_text_log(tmp_path):
    _parquet_labels_agree(tmp_path / "slab.parquet", ["1", "abc", "0", " 2.5 "], 3, 1, {1: 1, 3: 0, 4: 1}, "abc")


def test_temp_directory_with_a_quote(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("a,b\n1,2\n")
    tmp = tmp_path / "it's tmp"
    tmp.mkdir()
    assert mine(str(p), features=["a"], temp_directory=tmp).n_rows == 1


def test_parquet_files_with_different_column_types_is_a_clear_error(tmp_path):
    pq.write_table(pa.table({"a": [1, 2]}), tmp_path / "p1.parquet")
    pq.write_table(pa.table({"a": ["x", "y"]}), tmp_path / "p2.parquet")
    with pytest.raises(ConfigError, match="(?s)p2.parquet.*same column types"):
        mine(str(tmp_path), features=["a"], on_bad_line="skip")


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_spark_reads_glob_like_names_as_themselves_and_flags_nan_labels(tmp_path):
    need_spark()
    (tmp_path / "log1.csv").write_text("a,b\n9,9\n")
    p = tmp_path / "log[1].csv"
    p.write_text("a,b\n1,2\n3,4\n3,5\n")
    ids, counts = mine(str(p), features=["a"], engine="spark").frequencies("a")
    assert dict(zip(ids.tolist(), counts.tolist())) == {3: 2, 1: 1}
    q = tmp_path / "it's {a,b}.csv"
    q.write_text("a,b\n7,1\n")
    assert mine(str(q), features=["a"], engine="spark").frequencies("a")[0].tolist() == [7]
    n = tmp_path / "nan.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3, 4], "y": [float("nan"), 1.0, 0.0, None]}), n)
    kw = dict(features=["a"], label="y", on_bad_line="skip")
    assert mine(str(n), engine="spark", **kw) == mine(str(n), **kw)


def test_gzipped_csv_reads_its_header(tmp_path):
    # Arrow and DuckDB decompress a .gz log; the header must be read through the decompression too
    import gzip

    p = tmp_path / "log.csv.gz"
    with gzip.open(p, "wt") as fh:
        fh.write("a,b\n1,2\n3,4\n1,x\n")
    assert read_log(str(p), format="csv", features=["a"])["a"].tolist() == [1, 3, 1]
    ids, counts = mine(str(p), format="csv", features=["a"]).frequencies("a")
    assert dict(zip(ids.tolist(), counts.tolist())) == {1: 2, 3: 1}
    with pytest.raises(ConfigError, match="line 4"):
        mine(str(p), format="csv", features=["a", "b"], kinds={"b": "int"})


def test_whitespace_only_lines_are_blank_on_every_path(tmp_path):
    # Spark drops a line that trims to nothing before parsing it; the reader and DuckDB must agree
    # (as the libfm reader already does): such a line is blank, not a row and not a bad line
    line = "1\t" + "\t".join(["5"] * 13) + "\t" + "\t".join(["68fd1e64"] * 26)
    p = tmp_path / "ws.txt"
    p.write_text(line + "\n   \n" + line + "\n\t\n" + line + "\n" + "\t".join(["1"] * 15 + ["0a"] * 26) + "\n")
    kw = dict(format="criteo", features=["C1"], label="label")
    assert reader_counts(str(p), **kw)[:2] == (3, 1)
    s = mine(str(p), on_bad_line="skip", **kw)
    assert (s.n_rows, s.bad_lines) == (3, 1)
    with pytest.raises(ConfigError, match="line 6"):
        mine(str(p), **kw)
    c = tmp_path / "ws.csv"
    c.write_text("a,b\n1,2\n  \n3,4\n \t\n")
    for on_bad_line in ("error", "skip"):
        s = mine(str(c), features=["a"], on_bad_line=on_bad_line)
        assert (s.n_rows, s.bad_lines) == (2, 0)
    assert read_log(str(c), features=["a"])["a"].tolist() == [1, 3]


def test_cli_mine_checks_the_out_directory_before_mining(tmp_path, capsys):
    # mining a large log takes long: a typo in --out must fail first, naming the fix
    from embcompress.cli.main import main

    log = tmp_path / "log.csv"
    log.write_text("a,b\n1,2\nbad\n")  # mining it would fail on the bad line
    with pytest.raises(SystemExit) as exc:
        main(["mine", str(log), "--features", "a", "--out", str(tmp_path / "no" / "s.embc"), "--quiet"])
    assert exc.value.code == 1
    err = capsys.readouterr().err
    assert "--out" in err and "Create" in err and "Malformed" not in err


def test_libfm_with_a_byte_order_mark_and_crlf(tmp_path):
    # Arrow's CSV reader drops a UTF-8 BOM; the libfm reader must too, or line 1 is 'bad'
    p = tmp_path / "log.libfm"
    p.write_bytes(b"\xef\xbb\xbf1 0:1 5:1\r\n0 1:1 6:1\r\n")
    kw = dict(features=["u", "i"], fields=["u", "i"], label="label")
    d = read_log(str(p), **kw)
    assert d["u"].tolist() == [0, 1] and d["label"].tolist() == [1.0, 0.0]
    s = mine(str(p), **kw)
    assert (s.n_rows, s.bad_lines) == (2, 0)


@pytest.mark.spark
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_parquet_file_missing_a_column_is_an_error_on_spark_too(tmp_path):
    # Spark reads a column that a later file lacks as NULL: its ids would all count as missing
    need_spark()
    pq.write_table(pa.table({"a": [1, 2], "b": [1, 1]}), tmp_path / "p1.parquet")
    pq.write_table(pa.table({"b": [5, 6]}), tmp_path / "p2.parquet")
    for engine in ("duckdb", "spark"):
        with pytest.raises(ConfigError, match="(?s)p2.parquet.*no column 'a'"):
            mine(str(tmp_path), features=["a"], engine=engine, on_bad_line="skip")


@pytest.mark.parametrize("engine", ["duckdb", pytest.param("spark", marks=pytest.mark.spark)])
@pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning")
def test_parquet_text_time_is_checked_like_a_text_log(tmp_path, engine):
    # the reader drops a row whose text time does not parse; the engines took it as good
    if engine == "spark":
        need_spark()
    p = tmp_path / "t.parquet"
    pq.write_table(pa.table({"a": [1, 2, 3, 4], "s": [7, 7, 7, 7],
                             "t": ["2024-01-01", "garbage", "2024-01-03 10:00", "2024-01-02"]}), p)
    r = iter_batches(str(p), features=["a"], session_key="s", time_key="t", on_bad_line="skip")
    assert sum(len(b["a"]) for b in r) == 3 and r.bad_lines == 1
    s = mine(str(p), features=["a"], sequence_key="s", time_key="t", on_bad_line="skip", engine=engine)
    assert (s.n_rows, s.bad_lines) == (3, 1)
    prev, nxt, counts = s.sequence_counts("a")
    assert sorted(zip(prev.tolist(), nxt.tolist(), counts.tolist())) == [(1, 4, 1), (4, 3, 1)]
    with pytest.raises(ConfigError, match="garbage"):
        mine(str(p), features=["a"], sequence_key="s", time_key="t", engine=engine)
