"""Review of the tiered store (7): one table under several names, pending journals where the table
cannot be written, and the read counters of rows reloaded after another store's update."""

import os

import numpy as np
import pytest

import embcompress
from embcompress.errors import ArtifactError
from embcompress.store import TieredStore, journal, updlog
from embcompress.store.scm import BLOCK
from tests.conftest import deny_journal_removal, deny_table_writes, fail_journal_pwrite

N, DIM = 500, 32


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = embcompress.quantize(x, "mxint8")
    return embcompress.write_table(tmp_path / "t.embc", q), q


def _holding(path, q, rows, **kw):
    freq = np.zeros(N)
    freq[rows] = 1
    store = TieredStore(path, dram_bytes=len(rows) * q.row_bytes, policy="frequency", frequencies=freq, **kw)
    store.warm_up()
    return store


def _names(tmp_path, path, how):
    """Two names of the one table file ``path``: (name a store reads through, name a writer uses)."""
    if how == "symlink and real path":
        link = tmp_path / "link.embc"
        link.symlink_to(path)
        return path, link
    if how == "two symlinks":
        a, b = tmp_path / "a.embc", tmp_path / "sub" / "b.embc"
        b.parent.mkdir()
        a.symlink_to(path.name)  # relative link
        b.symlink_to(path)
        return a, b
    if how == "relative and absolute":
        os.chdir(tmp_path)
        return path.name, path
    raise AssertionError(how)


HOW = ["symlink and real path", "two symlinks", "relative and absolute"]


# --- 1. one table, several names -----------------------------------------------------------------

@pytest.mark.parametrize("how", HOW)
def test_the_companion_files_are_those_of_the_real_path(table, tmp_path, monkeypatch, how):
    path, _ = table
    monkeypatch.chdir(tmp_path)
    a, b = _names(tmp_path, path, how)
    real = os.path.realpath(path)
    for name in (a, b, path):
        assert str(journal.journal_path(name)) == real + ".journal"
        assert str(updlog.log_path(name)) == real + ".updates"


@pytest.mark.parametrize("how", HOW)
@pytest.mark.parametrize("writer_first", [True, False])
def test_an_update_through_one_name_reaches_a_store_opened_through_another(table, tmp_path, monkeypatch, how,
                                                                            writer_first):
    path, q = table
    monkeypatch.chdir(tmp_path)
    reader_name, writer_name = _names(tmp_path, path, how)
    if not writer_first:
        reader_name, writer_name = writer_name, reader_name
    a = _holding(reader_name, q, np.array([5, 6]))
    assert np.array_equal(a.rows(np.array([5, 6])), q.data[[5, 6]])
    with TieredStore(writer_name, dram_bytes=q.row_bytes, policy="lru") as b:
        b.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x11, np.uint8))
    got = a.rows(np.array([5, 6]))
    assert (got[0] == 0x11).all(), "the store served its old DRAM copy of an updated row"
    assert np.array_equal(got[1], q.data[6])
    assert a.stats()["rows_reloaded"] == 1
    a.close()


def test_a_store_opened_by_a_relative_path_follows_updates_after_the_process_changes_folder(table, tmp_path,
                                                                                           monkeypatch):
    # Its log and file were named relative to the folder it was opened in: after a chdir the
    # store looked for the log (and the file) elsewhere and missed every update.
    path, q = table
    monkeypatch.chdir(tmp_path)
    a = _holding("t.embc", q, np.array([5, 6]))
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as b:
        b.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x11, np.uint8))
    assert (a.rows(np.array([5])) == 0x11).all()
    a.update_rows(np.array([6]), np.full((1, q.row_bytes), 0x12, np.uint8))
    assert (np.asarray(embcompress.open_table(path).data)[6] == 0x12).all()
    assert not (other / "t.embc.journal").exists() and not (other / "t.embc.updates").exists()
    a.close()


def test_a_store_opened_through_a_symlink_passes_over_its_own_updates(table, tmp_path):
    path, q = table
    link = tmp_path / "link.embc"
    link.symlink_to(path)
    a = _holding(link, q, np.array([5, 6]))
    a.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x11, np.uint8))
    assert (a.rows(np.array([5])) == 0x11).all()
    assert a.stats()["rows_reloaded"] == 0
    a.close()


@pytest.mark.parametrize("opener", ["TieredStore", "open_table"])
def test_a_journal_left_through_a_symlink_is_replayed_when_opening_the_real_path(table, tmp_path, monkeypatch, opener):
    path, q = table
    link = tmp_path / "link.embc"
    link.symlink_to(path)
    rows = np.array([10, 20, 30])
    w = TieredStore(link, dram_bytes=q.row_bytes, policy="lru")
    real = fail_journal_pwrite(monkeypatch, 2)  # one row written, then the update dies
    with pytest.raises(OSError, match="Input/output error"):
        w.update_rows(rows, np.full((3, q.row_bytes), 0x22, np.uint8))
    monkeypatch.setattr(journal.os, "pwrite", real)
    w.close()
    if opener == "TieredStore":
        with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as s:
            got = s.rows(rows)
    else:
        got = np.asarray(embcompress.open_table(path, verify="full").data)[rows]
    assert (got == 0x22).all(), f"{int((got != 0x22).any(axis=1).sum())} of 3 rows old: the update stayed torn"
    assert not journal.journal_path(path).exists()
    assert not (tmp_path / "link.embc.journal").exists()


def test_a_running_store_finishes_a_journal_left_through_another_name(table, tmp_path, monkeypatch):
    # A store on the real path holds rows 10 and 20; an update through a symlink dies after one
    # row write. The store must see the log and finish the update, not serve old beside new.
    path, q = table
    link = tmp_path / "link.embc"
    link.symlink_to(path)
    rows = np.array([10, 20, 30])
    a = _holding(path, q, np.array([10, 20]))
    real = fail_journal_pwrite(monkeypatch, 2)
    with pytest.raises(OSError, match="Input/output error"):
        journal.apply_update(link, "rows", rows, np.full((3, q.row_bytes), 0x22, np.uint8))
    monkeypatch.setattr(journal.os, "pwrite", real)
    got = a.rows(rows)
    assert (got == 0x22).all(), f"{int((got != 0x22).any(axis=1).sum())} of 3 rows old"
    a.close()


def test_a_whole_file_rewrite_through_a_symlink_rewrites_the_file_it_names(table, tmp_path, monkeypatch):
    # The rewrite (the header's padding cannot hold the new checksum) renamed a new file over the
    # symlink itself: the table stayed old, and the name became a copy of its own.
    path, q = table
    link = tmp_path / "link.embc"
    link.symlink_to(path)
    a = _holding(path, q, np.array([5]))
    monkeypatch.setattr(journal, "_header_bytes", lambda *args: None)
    with TieredStore(link, dram_bytes=q.row_bytes, policy="lru") as b:
        b.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x33, np.uint8))
    monkeypatch.undo()
    assert link.is_symlink()
    assert (np.asarray(embcompress.open_table(path, verify="full").data)[5] == 0x33).all()
    assert (a.rows(np.array([5])) == 0x33).all()
    a.close()


# --- 2. a pending journal where the table cannot be written ---------------------------------------

def _interrupted(path, q, monkeypatch):
    rows = np.array([10, 20, 30])
    real = fail_journal_pwrite(monkeypatch, 2)
    with pytest.raises(OSError, match="Input/output error"):
        journal.apply_update(path, "rows", rows, np.full((3, q.row_bytes), 0x22, np.uint8))
    monkeypatch.setattr(journal.os, "pwrite", real)
    assert journal.journal_path(path).exists()
    return rows


def _open(opener, path, q):
    if opener == "TieredStore":
        return TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    if opener == "reorder_rows":  # reads the table too, so it finishes (or refuses) the update first
        from embcompress.store import reorder_rows
        return reorder_rows(path, path.with_name("reordered.table"), clusters=np.arange(q.shape[0]) % 4)
    return embcompress.open_table(path)


@pytest.mark.parametrize("opener", ["TieredStore", "open_table", "reorder_rows"])
def test_opening_a_read_only_table_with_an_unfinished_update_names_the_fix(table, monkeypatch, opener):
    path, q = table
    _interrupted(path, q, monkeypatch)
    deny_table_writes(monkeypatch)
    with pytest.raises(ArtifactError) as err:
        _open(opener, path, q)
    msg = str(err.value)
    assert "unfinished update" in msg and str(journal.journal_path(path)) in msg
    assert "write permission" in msg and "owner" in msg and "Permission denied" in msg
    monkeypatch.undo()
    s = _open(opener, path, q)  # opened once where it can be written: replayed
    assert not journal.journal_path(path).exists()
    if opener == "TieredStore":
        s.close()


@pytest.mark.parametrize("opener", ["TieredStore", "open_table"])
def test_opening_a_table_whose_folder_cannot_be_written_serves_the_finished_update(table, monkeypatch, opener):
    # The replay writes the rows and the header; only the journal's removal fails: the table is
    # whole and new, and both openers serve it (open_table did, TieredStore raised PermissionError).
    path, q = table
    rows = _interrupted(path, q, monkeypatch)
    deny_journal_removal(monkeypatch)
    for _ in range(2):
        s = _open(opener, path, q)
        got = s.rows(rows) if opener == "TieredStore" else np.asarray(s.data)[rows]
        assert (got == 0x22).all()
        if opener == "TieredStore":
            s.close()


@pytest.mark.parametrize("opener", ["TieredStore", "open_table"])
def test_opening_where_the_update_log_cannot_be_created_names_the_fix(table, monkeypatch, opener):
    # A folder that is not writable and holds no update log yet: the replay fails before writing
    # a row (it logs the rows first).
    path, q = table
    _interrupted(path, q, monkeypatch)
    os.unlink(updlog.log_path(path))
    real_open = os.open

    def no_create(p, flags, *a):
        if flags & os.O_CREAT:
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *a)

    monkeypatch.setattr(journal.os, "open", no_create)
    with pytest.raises(ArtifactError, match="unfinished update"):
        _open(opener, path, q)


# --- 3. reloaded rows are device reads ------------------------------------------------------------

def test_rows_reloaded_after_another_stores_update_count_as_reads(table):
    path, q = table
    held = np.array([5, 6, 200, 400])
    a = _holding(path, q, held, device="nand")
    assert np.array_equal(a.rows(held), q.data[held])
    a.reset_stats()
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as b:
        b.update_rows(np.array([5, 400]), np.full((2, q.row_bytes), 0x44, np.uint8))
    got = a.rows(held[:2])
    assert (got[0] == 0x44).all() and np.array_equal(got[1], q.data[6])
    s = a.stats()
    reloaded = np.array([5, 400])
    blocks = len(a._reader.blocks_of(reloaded))
    assert s["rows_reloaded"] == 2
    assert s["blocks_read"] == blocks and s["bytes_read"] == blocks * BLOCK
    assert s["read_amplification"] == blocks * BLOCK / (2 * q.row_bytes)
    units = a.device.units_read(a._reader.base + reloaded * q.row_bytes, q.row_bytes)
    assert s["device_reads"] == units
    assert s["device_seconds"] == pytest.approx(a.device.read_seconds(units))
    assert s["scm_seconds"] > 0
    # hit rates stay on the batch's unique ids: both rows were DRAM hits (after the reload)
    assert s["unique_rows"] == 2 and s["dram_hits"] == 2 and s["hit_rate"] == 1.0 and s["scm_rows"] == 0
    # a lookup's own misses add to the same counters
    a.rows(np.array([300]))
    s2 = a.stats()
    miss_blocks = len(a._reader.blocks_of(np.array([300])))
    assert s2["blocks_read"] == blocks + miss_blocks
    assert s2["read_amplification"] == (blocks + miss_blocks) * BLOCK / (3 * q.row_bytes)
    assert s2["hit_rate"] == 2 / 3
    a.close()


def test_a_reload_of_every_held_row_counts_its_reads(table):
    # A log that cannot be parsed (or a new one) makes the store read every held row again.
    path, q = table
    held = np.array([1, 2, 3])
    a = _holding(path, q, held, device="nand")
    a.reset_stats()
    with open(updlog.log_path(path), "wb") as f:  # someone else's log: not parseable
        f.write(b"garbage that is not a log")
    a.rows(np.array([1]))
    s = a.stats()
    assert s["rows_reloaded"] == 3
    assert s["blocks_read"] == len(a._reader.blocks_of(held)) and s["device_seconds"] > 0
    a.close()
