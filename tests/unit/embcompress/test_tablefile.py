"""Table files: round trips, layout, id map and frequencies, faults, and files from earlier versions."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import embcompress
from embcompress import ArtifactError, ChecksumError, ConfigError, open_table, write_table
from embcompress.container import write_artifact
from embcompress.formats import FORMATS
from embcompress.idmap import IdMap

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "tables"
ROOT = Path(__file__).resolve().parents[3]


def table(fmt="mxfp8_e4m3", n=50, dim=40, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return embcompress.quantize(x, fmt)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
@pytest.mark.parametrize("mmap", [True, False])
def test_round_trip_every_format(tmp_path, fmt, mmap):
    q = table(fmt)
    path = write_table(tmp_path / "t.embc", q)
    t = open_table(path, mmap=mmap, verify="full")
    assert t.fmt == fmt and t.shape == q.shape and t.block_size == q.block_size
    assert np.array_equal(t.data, q.data)
    assert t.id_map is None and t.frequencies is None
    # the row records start on a 4096-byte boundary and are contiguous: row i is one read
    assert t.rows_offset % 4096 == 0
    with open(path, "rb") as fh:
        fh.seek(t.rows_offset + 7 * q.row_bytes)
        assert fh.read(q.row_bytes) == q.data[7].tobytes()
    idx, offs = np.array([3, 9, 9, 0]), np.array([0, 1, 4])
    assert np.array_equal(t.pooled_lookup(idx, offs), embcompress.pooled_lookup(q, idx, offs))


def test_id_map_and_frequencies_round_trip(tmp_path):
    q = table("mx6", n=20)
    m = IdMap.from_arrays([100, 7, 55, 9], [3, 3, 0, 19], 20, seed=11, config={"method": "test"})
    freq = np.arange(20) * 3
    t = open_table(write_table(tmp_path / "t.embc", q, id_map=m, frequencies=freq), verify="full")
    assert np.array_equal(t.frequencies, freq) and t.frequencies.dtype == np.int64
    ids = np.array([100, 7, 55, 9, 12345, -4, 2**40])
    assert np.array_equal(t.id_map.lookup(ids), m.lookup(ids))
    assert t.id_map.seed == 11 and t.id_map.config == {"method": "test"}
    assert np.array_equal(t.id_map.fallback_rows, m.fallback_rows)
    f2 = open_table(write_table(tmp_path / "f.embc", q, frequencies=np.linspace(0, 1, 20))).frequencies
    assert f2.dtype == np.float64 and f2[-1] == 1.0
    assert "id_map" in repr(t) and "frequencies" in repr(t)


@pytest.mark.parametrize(
    "kw,match",
    [
        ({"frequencies": np.ones(3)}, "'frequencies' parameter .* one entry per row"),
        ({"frequencies": -np.ones(20)}, "non-negative"),
        ({"frequencies": np.full(20, np.nan)}, "finite"),
        ({"frequencies": np.array(["a"] * 20)}, "numeric"),
        ({"id_map": IdMap.from_arrays([1], [0], 5)}, "map ids to the table's 20 rows"),
        ({"id_map": {1: 0}}, "embcompress.IdMap"),
    ],
)
def test_write_refuses_bad_input(tmp_path, kw, match):
    with pytest.raises(ConfigError, match=match):
        write_table(tmp_path / "t.embc", table("fp16", n=20), **kw)
    assert not list(tmp_path.iterdir())


def test_write_refuses_non_table(tmp_path):
    with pytest.raises(ConfigError, match="'q' parameter of write_table"):
        write_table(tmp_path / "t.embc", np.zeros((3, 4), np.float32))


def test_open_refuses_foreign_truncated_corrupted_and_other_kinds(tmp_path):
    path = write_table(tmp_path / "t.embc", table("mxint8"))
    with pytest.raises(ConfigError, match="'verify' parameter"):
        open_table(path, verify="some")
    foreign = tmp_path / "foreign.bin"
    foreign.write_bytes(b"PK\x03\x04 not a table" * 100)
    with pytest.raises(ArtifactError, match="not an embcompress artifact"):
        open_table(foreign)
    with pytest.raises(ArtifactError, match="does not exist"):
        open_table(tmp_path / "missing.embc")
    data = path.read_bytes()
    cut = tmp_path / "cut.embc"
    cut.write_bytes(data[: len(data) - 10])
    with pytest.raises(ArtifactError, match="truncated"):
        open_table(cut)
    bad = tmp_path / "bad.embc"
    t = open_table(path)
    flipped = bytearray(data)
    flipped[t.rows_offset + 5] ^= 0x10
    bad.write_bytes(bytes(flipped))
    open_table(bad)  # the header is intact: a header check alone cannot see it
    with pytest.raises(ChecksumError, match="'rows' .* does not match its checksum"):
        open_table(bad, verify="full")
    other = write_artifact(tmp_path / "o.embc", "logstats", {"x": np.zeros(3)})
    with pytest.raises(ArtifactError, match=r"holds mined log statistics \(kind 'logstats'\), not a compressed table \(kind 'table'\)\. .*written by `embcompress export`"):
        open_table(other)


def test_newer_layout_and_inconsistent_sections_refused(tmp_path):
    q = table("fp32", n=4)
    sections, config = q.to_sections()
    newer = write_artifact(
        tmp_path / "n.embc", "table", sections, config=config, meta={"table_file": {"version": 99}}, align=4096
    )
    with pytest.raises(ArtifactError, match="layout 99, newer"):
        open_table(newer)
    wrong = write_artifact(
        tmp_path / "w.embc", "table", {**sections, "frequencies": np.ones(3)}, config=config,
        meta={"table_file": {"version": 1, "frequencies": True, "id_map": None}}, align=4096,
    )
    with pytest.raises(ArtifactError, match="frequencies section must hold 4"):
        open_table(wrong)
    unannounced = write_artifact(tmp_path / "u.embc", "table", {**sections, "idmap.ids": np.ones(3, np.int64)}, config=config, align=4096)
    with pytest.raises(ArtifactError, match="id-map sections the header does not announce"):
        open_table(unannounced)
    bad_cfg = write_artifact(tmp_path / "c.embc", "table", sections, config={**config, "format": "mxfp3"}, align=4096)
    with pytest.raises(ArtifactError, match="format 'mxfp3' is unknown"):
        open_table(bad_cfg)
    # a format that is not a string at all (a crafted header) is refused the same way, not a TypeError
    odd_cfg = write_artifact(tmp_path / "d.embc", "table", sections, config={**config, "format": ["fp32"]}, align=4096)
    with pytest.raises(ArtifactError, match=r"format \['fp32'\] is unknown"):
        open_table(odd_cfg)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import numpy as np
    import embcompress
    q = embcompress.quantize(np.full((3000, 64), 2.0, np.float32), "mxint8")
    def die(done, total):  # the data is written, the rename has not happened: die now
        os.kill(os.getpid(), signal.SIGKILL)
    embcompress.write_table(sys.argv[1], q, progress=die)
    """
)


def test_process_killed_while_writing_leaves_the_old_file(tmp_path):
    path = tmp_path / "t.embc"
    old = table("mxint8", n=10)
    write_table(path, old)
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-c", KILLER, str(path)], cwd=ROOT, capture_output=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    assert path.read_bytes() == before
    t = open_table(path, verify="full")
    assert np.array_equal(t.data, old.data)
    # what the killed writer left is only its temporary file, never the target name
    assert {p.name for p in tmp_path.iterdir()} - {"t.embc"} <= {p.name for p in tmp_path.glob(".t.embc.tmp-*")}


# -- files written by an earlier version stay readable -------------------------------------------
# The fixtures in tests/fixtures/tables were written by embcompress 0.1.0 (container 1.0, table
# version 1, table-file layout 1) and are never regenerated. The literal values follow from the
# rules in each comment.


def test_fixture_fp32_with_frequencies():
    t = open_table(FIXTURES / "fp32_3x4_freq.embc", verify="full")
    assert (t.fmt, t.shape, t.version) == ("fp32", (3, 4), (1, 0))
    # x[i, j] = 4 i + j - 5.5
    assert t.dequantize().tolist() == [[-5.5, -4.5, -3.5, -2.5], [-1.5, -0.5, 0.5, 1.5], [2.5, 3.5, 4.5, 5.5]]
    assert t.frequencies.tolist() == [3, 1, 2]
    # bag {0, 2}: x[0] + x[2] = (4 * 2 + 2 j - 11) = [-3, -1, 1, 3]; max over {0, 1} is x[1]
    assert t.pooled_lookup(np.array([0, 2]), np.array([0])).tolist() == [[-3.0, -1.0, 1.0, 3.0]]
    assert t.pooled_lookup(np.array([0, 1]), np.array([0]), mode="max").tolist() == [[-1.5, -0.5, 0.5, 1.5]]


def test_fixture_mxint8_with_id_map():
    t = open_table(FIXTURES / "mxint8_2x40_idmap.embc", verify="full")
    assert (t.fmt, t.shape, t.block_size, t.row_bytes) == ("mxint8", (2, 40), 32, 66)
    # row 0 = 1.0: amax 1 -> scale 2^0 (E8M0 byte 127) and codes 64 (1.0 = 64 / 64)
    assert t.data[0, :3].tolist() == [127, 127, 64]
    # row 1 = j / 8: block 0 amax 31/8 -> 2^1 (byte 128), code 4 j; block 1 amax 39/8 -> 2^2 (129), code 2 j
    assert t.data[1, :4].tolist() == [128, 129, 0, 4] and t.data[1, 2 + 33] == 66
    assert np.array_equal(t.dequantize(), np.vstack([np.ones(40), np.arange(40) / 8]).astype(np.float32))
    assert t.frequencies.tolist() == [0.25, 0.75]
    # ids 7 -> 0 (alone: hot), 11 and 13 -> 1; unseen ids fall back into the one cold row, 1
    assert t.id_map.lookup(np.array([7, 11, 13, 99, -5])).tolist() == [0, 1, 1, 1, 1]
    assert t.id_map.seed == 3


def test_fixture_plain_quantized_table_file():
    # written by QuantizedTable.save: no table-file record, which opens as "no id map, no frequencies"
    t = open_table(FIXTURES / "int8_rowwise_2x4_plain.embc", verify="full")
    assert t.id_map is None and t.frequencies is None
    # scale (3 - 0) / 255 as float32 (bytes c1 c0 40 3c), bias 0, codes 85 j; row 1 constant -1
    assert t.data[0].tolist() == [193, 192, 64, 60, 0, 0, 0, 0, 0, 85, 170, 255]
    assert t.dequantize().tolist() == [[0.0, 1.0, 2.0, 3.0], [-1.0, -1.0, -1.0, -1.0]]


def test_fixture_header_is_what_the_layout_says():
    raw = (FIXTURES / "mxint8_2x40_idmap.embc").read_bytes()
    header = json.loads(raw[32 : 32 + int.from_bytes(raw[16:24], "little")])
    assert [s["name"] for s in header["sections"]] == ["rows", "frequencies", "idmap.ids", "idmap.rows", "idmap.fallback_rows"]
    assert header["align"] == 4096 and header["meta"]["table_file"]["version"] == 1
    assert os.path.getsize(FIXTURES / "mxint8_2x40_idmap.embc") == header["file_size"]


def test_a_journal_that_cannot_be_applied_is_named_with_the_fix(tmp_path, monkeypatch):
    # e.g. a read-only copy of a table whose update died (not reproducible as root: raised directly)
    from embcompress.errors import ArtifactError
    from embcompress.store import journal

    q = embcompress.quantize(np.ones((10, 32), np.float32), "mxint8")
    path = embcompress.write_table(tmp_path / "t.embc", q)
    journal.journal_path(path).write_bytes(b"pending")

    def denied(p):
        raise PermissionError(13, "Permission denied", str(journal.journal_path(p)))

    monkeypatch.setattr(journal, "replay", denied)
    with pytest.raises(ArtifactError, match=r"interrupted update.*journal.*writable"):
        embcompress.open_table(path)
