"""Review 17 of mining on DuckDB: counts against a hand count on small hand-made logs."""

from __future__ import annotations

import pytest

from learned_hash import mine


def write(path, text):
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("given", [
    dict(features=["user", "item"], label="y", pairs=["user:item"]),  # as typed: 'user, item' is split and stripped
    dict(features=["user ", " item"], label="y ", pairs=[("user ", " item")]),  # the header's own names
    dict(features="user, item", label="y", pairs="user:item"),
])
def test_a_header_with_spaces_around_its_names_mines(tmp_path, given):
    # 'user , item,y ' (spaces around the names, as hand-written CSVs have them): mine stripped
    # every feature name it was given, so no spelling reached the column ' item' ("has no column
    # 'item' ... Its columns are ['user ', ' item', 'y ']. Pass names from that list", and passing
    # ' item' from that list failed the same way)
    p = write(tmp_path / "l.csv", "user , item,y \n1,2,1\n1,3,0\n4,2,1\n")
    s = mine(p, **given)
    ids, counts = s.frequencies(s.features[0])
    assert dict(zip(ids.tolist(), counts.tolist())) == {1: 2, 4: 1}
    ids, pos = s.positives(s.features[1])
    assert dict(zip(ids.tolist(), pos.tolist())) == {2: 2, 3: 0}
    a, b, c = s.pair_counts(*s.pairs[0])
    assert list(zip(a.tolist(), b.tolist(), c.tolist())) == [(1, 2, 1), (1, 3, 1), (4, 2, 1)]


def test_a_kind_given_for_a_name_with_spaces_around_it(tmp_path):
    p = write(tmp_path / "l.csv", "user, item\n1,007\n1,7\n")
    s = mine(p, features="user, item", kinds={"item": "string"})  # as --kind item=string gives it
    assert s.summary(" item")["ids"] == 2  # read as text: '007' and '7' are two ids


@pytest.mark.parametrize("fmt, name, on_bad_line", [
    ("csv", "day_0.csv", "error"), ("criteo", "day_0", "skip"), ("criteo", "day_0.txt", "error")])
@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_compressed_data_under_a_plain_name_is_named_so(tmp_path, fmt, name, on_bad_line, codec):
    # a gzip file saved without '.gz' was 'not UTF-8 text ... saved as UTF-16 is one cause' (csv),
    # or 'a file that mixes \r\n and \n line ends is one cause' (criteo, skip)
    import gzip

    import zstandard

    from embcompress.errors import ConfigError

    text = b"u,i\n1,2\n" if fmt == "csv" else b"\t".join([b"1"] * 14 + [b"68fd1e64"] * 26) + b"\n"
    data = gzip.compress(text) if codec == "gzip" else zstandard.ZstdCompressor().compress(text)
    p = tmp_path / name
    p.write_bytes(data)
    ext = ".gz" if codec == "gzip" else ".zst"
    with pytest.raises(ConfigError, match=f"holds {codec}-compressed data.*{ext}"):
        mine(str(p), format=fmt, features=["u" if fmt == "csv" else "C1"], on_bad_line=on_bad_line)


def test_cli_refuses_an_out_file_inside_the_log_directory_it_would_read(tmp_path, capsys):
    # a second run of `mine DIR --format csv --out DIR/day.stats` read the first run's stats file
    # as a CSV log: 'not UTF-8 text ... a log saved as UTF-16 is one cause'
    from embcompress.cli.main import main

    logs = tmp_path / "logs"
    logs.mkdir()
    write(logs / "a.csv", "u,i\n1,2\n1,3\n")
    args = ["mine", str(logs), "--format", "csv", "--features", "u", "--out", str(logs / "day.stats"), "--quiet"]
    main(args)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(args)
    err = capsys.readouterr().err
    assert exc.value.code == 1 and "day.stats" in err and "--out" in err and "UTF" not in err, err
    # without --format a folder's *.parquet files alone are read: the stats file beside them is no log
    import pyarrow as pa
    import pyarrow.parquet as pq

    lake = tmp_path / "lake"
    lake.mkdir()
    pq.write_table(pa.table({"u": [1, 1, 2]}), lake / "p.parquet")
    for _ in range(2):
        main(["mine", str(lake), "--features", "u", "--out", str(lake / "p.stats"), "--quiet"])
