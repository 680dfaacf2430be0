"""Review tests: table files with a pending update journal, opened where it cannot be re-applied,
and the inspect / verify commands on such files."""

from pathlib import Path

import numpy as np
import pytest

import embcompress
from embcompress.errors import ArtifactError
from embcompress.store import journal
from tests.conftest import deny_journal_removal, deny_table_writes, fail_journal_pwrite


def _table(tmp_path, n=300):
    x = np.random.default_rng(0).standard_normal((n, 32)).astype(np.float32)
    q = embcompress.quantize(x, "mxint8")
    return embcompress.write_table(tmp_path / "t.embc", q), q


def _interrupted_update(path, q, monkeypatch, fail_at):
    """Start an update of rows 10, 20, 30 whose ``fail_at``-th write fails (1-3 rows, 4 header)."""
    real = fail_journal_pwrite(monkeypatch, fail_at, torn_header=True)  # a torn header write, too
    rows = np.array([10, 20, 30], dtype=np.int64)
    new = np.full((3, q.row_bytes), 0x11, np.uint8)
    with pytest.raises(OSError, match="Input/output error"):
        journal.apply_update(path, "rows", rows, new)
    monkeypatch.setattr(journal.os, "pwrite", real)
    assert journal.journal_path(path).exists()
    return rows


def test_open_table_finishes_an_interrupted_update(tmp_path, monkeypatch):
    # An update that died midway leaves some rows new and some old, and its journal. TieredStore
    # replays it on open; open_table served the mix (and verify="full" called the file corrupt).
    path, q = _table(tmp_path)
    rows = _interrupted_update(path, q, monkeypatch, fail_at=2)
    for verify in ("full", "header"):
        t = embcompress.open_table(path, verify=verify)
        assert (np.asarray(t.data)[rows] == 0x11).all()
        assert np.array_equal(np.delete(np.asarray(t.data), rows, axis=0), np.delete(q.data, rows, axis=0))
    assert not journal.journal_path(path).exists()


@pytest.mark.parametrize("verify", ["header", "full"])
def test_open_table_in_a_folder_that_is_not_writable_serves_the_finished_update(tmp_path, monkeypatch, verify):
    # Replay writes the rows and header and fsyncs them; only the journal's removal then fails.
    # The table is whole and new, yet open_table refused it ("could not be applied"), every time.
    path, q = _table(tmp_path)
    rows = _interrupted_update(path, q, monkeypatch, fail_at=2)
    deny_journal_removal(monkeypatch)
    for _ in range(2):
        t = embcompress.open_table(path, verify=verify)
        assert (np.asarray(t.data)[rows] == 0x11).all()
        assert np.array_equal(np.delete(np.asarray(t.data), rows, axis=0), np.delete(q.data, rows, axis=0))


def test_open_table_of_a_read_only_copy_whose_journal_is_already_applied(tmp_path, monkeypatch):
    # The table was updated and fsynced, the journal's removal was lost (a crash), and the pair
    # was then copied somewhere read-only: nothing is left to write, so the table opens.
    path, q = _table(tmp_path)
    rows = _interrupted_update(path, q, monkeypatch, fail_at=2)
    deny_journal_removal(monkeypatch)
    embcompress.open_table(path)  # applies the rows and header; the journal stays
    deny_table_writes(monkeypatch)
    t = embcompress.open_table(path, verify="full")
    assert (np.asarray(t.data)[rows] == 0x11).all()


def test_open_table_of_a_read_only_table_with_an_unapplied_journal_names_the_fix(tmp_path, monkeypatch):
    # The rows on disk are a mix of old and new: serving them would be wrong, so it is refused,
    # and the message says the table itself (not only its folder) must be writable.
    path, q = _table(tmp_path)
    _interrupted_update(path, q, monkeypatch, fail_at=2)
    deny_table_writes(monkeypatch)
    with pytest.raises(ArtifactError, match=r"interrupted update.*table and its folder are writable"):
        embcompress.open_table(path)


@pytest.mark.parametrize("fail_at", [2, 4])
def test_verify_command_finishes_an_interrupted_update_first(tmp_path, monkeypatch, fail_at):
    # verify read the container (full) before open_table replayed the journal, so a table whose
    # update died midway was reported corrupt (exit 3) though opening it finishes the update.
    pytest.importorskip("typer")
    from embcompress.cli.verify import verify_file

    path, q = _table(tmp_path)
    _interrupted_update(path, q, monkeypatch, fail_at=fail_at)
    assert verify_file(path).startswith("ok:")
    assert not journal.journal_path(path).exists()


def test_inspect_command_finishes_an_interrupted_update_first(tmp_path, monkeypatch):
    # A crash tore the header write: inspect read the header before open_table replayed the
    # journal and called the file corrupt.
    pytest.importorskip("typer")
    from embcompress.cli.inspect import describe

    path, q = _table(tmp_path)
    _interrupted_update(path, q, monkeypatch, fail_at=4)
    report = describe(path)
    assert "kind:      table" in report and "300 rows x 32" in report
    assert not journal.journal_path(path).exists()


@pytest.mark.parametrize("verb", ["inspect", "verify"])
def test_cli_on_a_damaged_table_exits_3_with_one_line(tmp_path, verb):
    pytest.importorskip("typer")
    import subprocess
    import sys

    path, q = _table(tmp_path)
    raw = bytearray(path.read_bytes())
    raw[8] ^= 0x02  # the container's major version: 1 -> 3 by a flipped bit
    path.write_bytes(bytes(raw))
    p = subprocess.run([sys.executable, "-m", "embcompress", verb, str(path)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 3, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    # a damaged file is not a newer one: its checksum (which covers the version) says so
    assert "corrupt" in lines[0] and "checksum" in lines[0], lines[0]


# --- the container under crafted headers (a valid header checksum, wrong contents) ------------

def _recrc(path, edit):
    """Rewrite ``path``'s JSON header through ``edit`` (on the text), keeping its length, with a valid checksum."""
    import struct
    import zlib

    from embcompress.container import PREFIX, PREFIX_SIZE

    raw = bytearray(Path(path).read_bytes())
    magic, major, minor, _, hl, _, _ = PREFIX.unpack(raw[:PREFIX_SIZE])
    text = edit(bytes(raw[PREFIX_SIZE : PREFIX_SIZE + hl]).rstrip(b" "))
    assert len(text) <= hl
    text += b" " * (hl - len(text))
    crc = zlib.crc32(text, zlib.crc32(struct.pack("<HHIQ", major, minor, 0, hl)))
    raw[:PREFIX_SIZE] = PREFIX.pack(magic, major, minor, 0, hl, crc, 0)
    raw[PREFIX_SIZE : PREFIX_SIZE + hl] = text
    Path(path).write_bytes(bytes(raw))


@pytest.mark.parametrize("field", ["shape", "offset", "crc32", "nbytes"])
@pytest.mark.parametrize("verify", ["header", "full"])
def test_a_header_declaring_an_infinite_size_is_an_artifact_error(tmp_path, field, verify):
    # JSON readers take 1e400 as infinity; int(inf) raised OverflowError out of read_artifact.
    import json

    from embcompress.container import read_artifact, write_artifact

    path = write_artifact(tmp_path / "a.art", "x", {"a": np.arange(10, dtype=np.int64)})

    def edit(text):
        h = json.loads(text)
        h["sections"][0][field] = [1e400] if field == "shape" else 1e400
        return json.dumps(h, separators=(",", ":")).encode()

    _recrc(path, edit)
    with pytest.raises(ArtifactError, match="malformed"):
        read_artifact(path, verify=verify)


def test_a_header_declaring_a_fractional_file_size_is_an_artifact_error(tmp_path):
    # A float file_size passed the size check and crashed verify() with a TypeError.
    import json
    import zlib

    from embcompress.container import read_artifact, write_artifact

    path = write_artifact(tmp_path / "a.art", "x", {"a": np.arange(10, dtype=np.int64)})
    size = path.stat().st_size

    def edit(text):
        h = json.loads(text)
        h["file_size"] = float(size)
        h["sections"][0]["shape"] = [9]  # the last section ends before the file does
        h["sections"][0]["nbytes"] = 72
        h["sections"][0]["crc32"] = zlib.crc32(np.arange(9, dtype=np.int64).tobytes())
        return json.dumps(h, separators=(",", ":")).encode()

    _recrc(path, edit)
    with pytest.raises(ArtifactError):
        read_artifact(path, verify="full")


def test_a_newer_major_version_with_a_valid_checksum_asks_for_an_upgrade(tmp_path):
    import struct
    import zlib

    from embcompress.container import PREFIX, PREFIX_SIZE, read_artifact, write_artifact
    from embcompress.errors import VersionError

    path = write_artifact(tmp_path / "a.art", "x", {"a": np.arange(10, dtype=np.int64)})
    raw = bytearray(path.read_bytes())
    magic, _, minor, _, hl, _, _ = PREFIX.unpack(raw[:PREFIX_SIZE])
    crc = zlib.crc32(bytes(raw[PREFIX_SIZE : PREFIX_SIZE + hl]), zlib.crc32(struct.pack("<HHIQ", 2, minor, 0, hl)))
    raw[:PREFIX_SIZE] = PREFIX.pack(magic, 2, minor, 0, hl, crc, 0)
    path.write_bytes(bytes(raw))
    with pytest.raises(VersionError, match=r"written in container format 2\.0, newer.*Upgrade embcompress") as e:
        read_artifact(path)
    assert "corrupt" not in str(e.value)
