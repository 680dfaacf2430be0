"""Log readers, review findings: bad bytes are bad lines, gzip libFM, bad lines located exactly."""

import gzip

import numpy as np
import pytest

from embcompress.idhash import string_ids
from learned_hash.logs import BadLineError, iter_batches, read_log


def _read_skip(path, **kw):
    reader = iter_batches(path, on_bad_line="skip", **kw)
    parts = list(reader)
    cols = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]} if parts else {}
    return cols, reader.bad_lines


def test_invalid_utf8_in_a_read_column_is_one_counted_bad_line(tmp_path):
    # DuckDB's mining rejects such a line as malformed; the reader must too (it used to fail the
    # whole file with "Cannot parse the log", even under on_bad_line='skip')
    p = tmp_path / "log.csv"
    p.write_bytes(b"u,i,y\n1,a,1\n2,caf\xe9,0\n3,c,1\n")
    cols, bad = _read_skip(p, features=["u", "i"], label="y")
    assert bad == 1
    assert cols["u"].tolist() == [1, 3]
    assert cols["i"].tolist() == string_ids(["a", "c"]).tolist()
    with pytest.raises(BadLineError, match=r"\(line 3\): .*UTF-8"):
        read_log(p, features=["u", "i"], label="y")
    # a column not read is not checked (as DuckDB does not)
    cols, bad = _read_skip(p, features=["u"], label="y")
    assert bad == 0 and cols["u"].tolist() == [1, 2, 3]


def test_invalid_utf8_in_criteo(tmp_path):
    good = "\t".join(["1", *["1"] * 13, "0a", "beef", *[""] * 24])
    broken = "\t".join(["0", *["1"] * 13, "0b", "X", *[""] * 24]).encode().replace(b"X", b"\xff\xfe")
    p = tmp_path / "day.txt"
    p.write_bytes(good.encode() + b"\n" + broken + b"\n" + good.encode() + b"\n")
    cols, bad = _read_skip(p, features=["C1"], format="criteo")
    assert (cols["C1"].tolist(), bad) == ([0x0A, 0x0B, 0x0A], 0)
    cols, bad = _read_skip(p, features=["C1", "C2"], format="criteo")
    assert (cols["C2"].tolist(), bad) == ([0xBEEF, 0xBEEF], 1)


def test_gzip_libfm_is_decompressed(tmp_path):
    text = "1 0:1 5:1\n0 1:1 6:1\n1 0:1 6:1\n"
    plain = tmp_path / "log.libfm"
    plain.write_text(text)
    gz = tmp_path / "log.libfm.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write("\ufeff" + text)  # with a byte-order mark, as some exports write
    kw = dict(features=["user", "item"], label="label", fields=["user", "item"], format="libfm")
    want = read_log(plain, **kw)
    got = read_log(gz, **kw)  # used to read the compressed bytes as text: every line malformed
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in want.items()}


@pytest.mark.parametrize("filler", [b"   \n", b"\t\n", b'9,"two\nlines",1\n'])
def test_a_bad_value_is_located_on_its_own_line(tmp_path, filler):
    # whitespace-only lines are blank (not rows) and a quoted field may span lines: the line
    # number of the bad value must still be its own
    p = tmp_path / "log.csv"
    p.write_bytes(b"u,i,y\n1,a,1\n" + filler + b"2,b,oops\n")
    lineno = 3 + filler.count(b"\n")
    with pytest.raises(BadLineError, match=rf"\(line {lineno}\): .*'2,b,oops'"):
        read_log(p, features=["u", "i"], label="y")


@pytest.mark.parametrize("block_bytes", [1024, 8 << 20])
def test_error_names_the_first_bad_line_when_a_wrong_field_count_follows_a_bad_value(tmp_path, block_bytes):
    # the bad value on line 3 comes first; the line with too few fields (further on) used to be named
    p = tmp_path / "log.csv"
    rows = [f"{k},x{k},{k % 2}" for k in range(200)]
    rows[1] = "1,x1,oops"
    rows[150] = "150,x150"
    p.write_text("u,i,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(BadLineError, match=r"\(line 3\): a value does not parse.*'1,x1,oops'"):
        read_log(p, features=["u", "i"], label="y", block_bytes=block_bytes)
    # with the value fixed, the wrong field count is the first
    rows[1] = "1,x1,1"
    p.write_text("u,i,y\n" + "\n".join(rows) + "\n")
    with pytest.raises(BadLineError, match=r"\(line 152\): 2 fields where 3 are expected"):
        read_log(p, features=["u", "i"], label="y", block_bytes=block_bytes)


def test_a_bad_line_after_a_very_long_field_is_still_located(tmp_path):
    # locating the line must not fail on a field longer than Python's csv default limit (128 KiB)
    p = tmp_path / "log.csv"
    p.write_text("u,i,y\n1," + "a" * 200_000 + ",1\n2,b,oops\n")
    with pytest.raises(BadLineError, match=r"\(line 3\): a value does not parse.*'2,b,oops'"):
        read_log(p, features=["u", "i"], label="y")


def test_a_time_that_is_no_date_is_a_counted_bad_line(tmp_path):
    # "2017-13-01" fits the time pattern; pyarrow's cast raised ArrowInvalid out of read_log, while
    # both mining engines count it as a bad line
    from learned_hash.logs import read_log

    p = tmp_path / "l.csv"
    p.write_text("u,t,y\n1,2017-01-01 10:00:00,1\n2,2017-13-01 10:00:00,0\n3,2017-01-02 10:00:00,1\n")
    with pytest.warns(UserWarning, match="skipped 1 malformed line"):
        out = read_log(p, format="csv", features=["u"], label="y", time_key="t", on_bad_line="skip")
    assert list(out["u"]) == [1, 3]
    with pytest.raises(BadLineError, match="2017-13-01"):
        read_log(p, format="csv", features=["u"], label="y", time_key="t", on_bad_line="error")
