"""Log readers: each format's values, missing values, bad lines, streaming, clear errors."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import MISSING_ID, string_ids
from learned_hash.logs import (
    CRITEO_COLUMNS,
    FRAPPE_FIELDS,
    BadLineError,
    LogSchema,
    LogSource,
    infer_kinds,
    iter_batches,
    read_log,
)


def criteo_line(label, ints, cats):
    return "\t".join([str(label), *ints, *cats])


@pytest.fixture
def criteo(tmp_path):
    lines = [
        criteo_line(1, ["5"] + [""] * 12, ["68fd1e64", ""] + ["0a"] * 24),
        criteo_line(0, ["-3"] + ["1"] * 12, ["FFFFFFFF", "1"] + ["0b"] * 24),
        "",  # blank lines are not rows
        criteo_line(0, ["7"] + ["1"] * 12, ["00000001", "2"] + ["0c"] * 24),
    ]
    p = tmp_path / "day0.txt"
    p.write_text("\n".join(lines) + "\n")
    return p


def test_criteo_values_and_missing(criteo):
    d = read_log(criteo, features=["C1", "C2", "I1", "I2"], label="label", format="criteo")
    assert d["C1"].tolist() == [0x68FD1E64, 0xFFFFFFFF, 1]
    assert d["C2"].tolist() == [MISSING_ID, 1, 2]
    assert d["I1"].tolist() == [5, -3, 7]
    assert d["I2"].tolist() == [MISSING_ID, 1, 1]
    assert d["label"].tolist() == [1.0, 0.0, 0.0]
    assert all(v.dtype == np.int64 for k, v in d.items() if k != "label")


def test_criteo_bad_lines_error_names_the_line_and_skip_counts(criteo):
    good = criteo.read_text()
    criteo.write_text(
        good
        + "1\t2\n"  # too few fields
        + criteo_line(1, ["1"] * 13, ["zz"] + ["0a"] * 25) + "\n"  # not hex
        + criteo_line("x", ["1"] * 13, ["0a"] * 26) + "\n"  # label not a number
        + criteo_line(1, ["1.5"] + ["1"] * 12, ["0a"] * 26) + "\n"  # integer field not an integer
    )
    with pytest.raises(BadLineError, match=r"line 5.*on_bad_line='skip'"):
        read_log(criteo, features=["C1"], label="label", format="criteo")
    reader = iter_batches(criteo, features=["C1", "I1"], label="label", format="criteo", on_bad_line="skip")
    rows = sum(len(b["C1"]) for b in reader)
    assert (rows, reader.bad_lines) == (3, 4)
    with pytest.warns(UserWarning, match="skipped 4 malformed lines"):
        read_log(criteo, features=["C1", "I1"], label="label", format="criteo", on_bad_line="skip")
    # a value error is located too (the blank line 3 counts as a line, not a row)
    lines = criteo.read_text().split("\n")
    criteo.write_text("\n".join(lines[:4] + lines[5:]))
    with pytest.raises(BadLineError, match=r"\(line 5\): a value does not parse.*'zz'"):
        read_log(criteo, features=["C1"], label="label", format="criteo")
    criteo.write_text("\n".join(lines))
    # the value checks apply only to the columns read: a bad C1 does not matter when reading C2
    reader = iter_batches(criteo, features=["C2"], format="criteo", on_bad_line="skip")
    assert sum(len(b["C2"]) for b in reader) == 6 and reader.bad_lines == 1


def test_csv_kinds_strings_and_header_dots(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("..user,item,t,y\n7,apple,2017-11-07 09:30:38,1\n8,,2017-11-07 09:30:39,0\n7,pear,,1\n")
    src = LogSource.resolve(p)
    schema = LogSchema(("user", "item"), label="y", time_key="t", session_key="user")
    assert infer_kinds(src, schema) == {"user": "int", "item": "string", "t": "timestamp", "y": "number"}
    d = read_log(p, schema)
    assert d["user"].tolist() == [7, 8, 7]
    assert np.array_equal(d["item"], string_ids(["apple", None, "pear"]))
    assert d["item"][1] == MISSING_ID
    assert d["t"][0] == np.datetime64("2017-11-07T09:30:38") and np.isnat(d["t"][2])
    # a kind can be forced: ids hashed as text
    d2 = read_log(p, features=["user"], kinds={"user": "string"})
    assert np.array_equal(d2["user"], string_ids(["7", "8", "7"]))


def test_parquet_file_glob_directory(tmp_path):
    rng = np.random.default_rng(0)
    parts = []
    (tmp_path / "d").mkdir()
    for k in range(3):
        t = pa.table({"a": rng.integers(0, 100, 50), "s": pa.array(["x", None, "y", "", "z"] * 10), "y": rng.random(50)})
        pq.write_table(t, tmp_path / "d" / f"part-{k}.parquet")
        parts.append(t)
    whole = pa.concat_tables(parts)
    for src in [tmp_path / "d", str(tmp_path / "d" / "*.parquet"), [tmp_path / "d" / f"part-{k}.parquet" for k in range(3)]]:
        d = read_log(src, features=["a", "s"], label="y")
        assert d["a"].tolist() == whole["a"].to_pylist()
        assert np.array_equal(d["s"], string_ids(whole["s"]))
    d = read_log(tmp_path / "d" / "part-0.parquet", features=["a"])
    assert len(d["a"]) == 50


def test_libfm_positional_and_field_map(tmp_path):
    p = tmp_path / "x.libfm"
    p.write_text("1 3:1 10:1 20:1\r\n-1 4:1 11:1 21:1\n\n1 3:1 12:1 22:1\n")
    d = read_log(p, features=["u", "i", "c"], label="label", fields=["u", "i", "c"])
    assert d["u"].tolist() == [3, 4, 3] and d["c"].tolist() == [20, 21, 22]
    assert d["label"].tolist() == [1.0, -1.0, 1.0]
    # the same log by index ranges; a field absent from a line is missing
    p.write_text("1 3:1 10:1 20:1\n-1 11:1 4:1\n")
    d = read_log(p, features=["u", "i", "c"], label="label", field_map={"u": (0, 10), "i": (10, 20), "c": (20, 30)})
    assert d["u"].tolist() == [3, 4] and d["c"].tolist() == [20, MISSING_ID]


def test_libfm_bad_lines(tmp_path):
    p = tmp_path / "x.libfm"
    p.write_text("1 3:1 10:1\n1 3:1\n1 3 10:1\nx 3:1 10:1\n1 5:1 99:1\n1 4:1 11:1\n")
    with pytest.raises(BadLineError, match="line 2.*not exactly 2 features"):
        read_log(p, features=["u", "i"], fields=["u", "i"])
    reader = iter_batches(p, features=["u", "i"], label="label", fields=["u", "i"], on_bad_line="skip")
    assert sum(len(b["u"]) for b in reader) == 3 and reader.bad_lines == 3
    reader = iter_batches(p, features=["u", "i"], label="label", field_map={"u": (0, 10), "i": (10, 20)}, on_bad_line="skip")
    assert sum(len(b["u"]) for b in reader) == 3 and reader.bad_lines == 3  # 99 is in no field
    p.write_text("1 3:1 4:1\n")
    with pytest.raises(BadLineError, match="appears twice"):
        read_log(p, features=["u"], field_map={"u": (0, 10)})


def test_streaming_in_small_blocks_gives_the_same_rows(tmp_path):
    rng = np.random.default_rng(3)
    n = 20000
    labels, a, b = rng.integers(0, 2, n), rng.integers(0, 9, n), rng.integers(0, 2**32, n)
    (tmp_path / "big.txt").write_text("".join(
        f"{labels[i]}\t{a[i]}" + "\t1" * 12 + f"\t{b[i]:08x}" + "\t0a" * 25 + "\n" for i in range(n)))
    reader = iter_batches(tmp_path / "big.txt", features=["I1", "C1"], label="label", format="criteo", block_bytes=64 << 10)
    batches = list(reader)
    assert len(batches) > 10
    assert np.array_equal(np.concatenate([x["C1"] for x in batches]), b)
    assert np.array_equal(np.concatenate([x["I1"] for x in batches]), a)
    (tmp_path / "big.libfm").write_text("".join(f"{labels[i]} {a[i]}:1 {b[i] + 10}:1\n" for i in range(n)))
    reader = iter_batches(tmp_path / "big.libfm", features=["u", "i"], fields=["u", "i"], block_bytes=4096)
    batches = list(reader)
    assert len(batches) > 10 and np.array_equal(np.concatenate([x["i"] for x in batches]), b + 10)


def test_clear_errors(tmp_path, criteo):
    with pytest.raises(ConfigError, match="no such file"):
        read_log(tmp_path / "nope.csv", features=["a"])
    with pytest.raises(ConfigError, match="'format' parameter is needed"):
        read_log(criteo, features=["C1"])
    with pytest.raises(ConfigError, match=r"no column 'C99'.*C26"):
        read_log(criteo, features=["C99"], format="criteo")
    with pytest.raises(ConfigError, match="needs its fields"):
        read_log(criteo, features=["u"], format="libfm")
    (tmp_path / "e.txt").write_text("")
    with pytest.raises(ConfigError, match="has no rows"):
        read_log(tmp_path / "e.txt", features=["C1"], format="criteo")
    (tmp_path / "e.csv").write_text("")
    with pytest.raises(ConfigError, match="no header"):
        read_log(tmp_path / "e.csv", features=["a"])
    with pytest.raises(ConfigError, match="'on_bad_line' parameter"):
        iter_batches(criteo, features=["C1"], format="criteo", on_bad_line="ignore")
    with pytest.raises(ConfigError, match="column of its own"):
        LogSchema(("a",), label="a")
    assert len(CRITEO_COLUMNS) == 40 and len(FRAPPE_FIELDS) == 10
