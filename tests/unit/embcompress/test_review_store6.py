"""Review of the store's update log, shared flock and reader (this session's changes)."""

import fcntl
import os
import time


import numpy as np
import pytest

from embcompress.formats import quantize
from embcompress.store import TieredStore, journal

N, DIM = 500, 32


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxint8")
    return q.save(tmp_path / "t.embc"), q


def _holding(path, q, rows):
    freq = np.zeros(N)
    freq[rows] = 1
    store = TieredStore(path, dram_bytes=len(rows) * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    return store


def test_a_whole_file_rewrite_between_the_log_check_and_the_reload_is_not_missed(table, monkeypatch):
    # Store A holds row 5. Another store's update rewrites the file whole (the path now names a
    # new file) after A saw the file unchanged but before A locked it to read the log and reload:
    # A read the log (row 5 included) but reloaded row 5 from the replaced file, and served the
    # old row from then on (its log cursor had moved past the update).
    path, q = table
    a = _holding(path, q, np.array([5]))
    b = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    b.update_rows(np.array([7]), np.full((1, q.row_bytes), 0x11, np.uint8))  # A's log check will fire
    real_locked, fired = a._reader.locked, []

    def locked():
        if not fired:
            fired.append(1)
            monkeypatch.setattr(journal, "_header_bytes", lambda *args: None)  # forces the rewrite
            b.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x22, np.uint8))
            monkeypatch.undo()
        return real_locked()

    a._reader.locked = locked
    a.rows(np.array([5]))
    assert fired
    assert (a.rows(np.array([5])) == 0x22).all()
    assert (a.rows(np.array([5, 7])) == np.array([[0x22], [0x11]], np.uint8)).all()
    a.close()
    b.close()


def _wait_child(pid, limit=60.0):
    """The child's exit status; a child still running after ``limit`` seconds is hung: killed, -1.
    (A hang detector, not a timing assert: the child's work takes milliseconds.)"""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    return -1


def _child(fn):
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fn()
            code = 0
        finally:
            os._exit(code)
    return pid


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_childs_lookups_leave_the_parents_shared_lock_held(table):
    # A store opened before a fork (a preforking server, a fork DataLoader worker) is used in both
    # processes. The child's batch read unlocked the open file it shares with the parent, whose
    # batch was still reading: an update in a third process could write rows under that batch.
    path, q = table
    store = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    store.rows(np.array([0]))
    go_r, go_w = os.pipe()
    pid = _child(lambda: (os.read(go_r, 1), store.rows(np.arange(0, N, 7))))
    with store._reader.locked():  # the parent's batch is reading the file
        os.write(go_w, b"x")
        assert _wait_child(pid) == 0
        fd = os.open(path, os.O_RDWR)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # an update must wait for the batch
        finally:
            os.close(fd)
    store.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork")
def test_a_forked_child_reading_through_the_pool_does_not_hang(table):
    # Reads that wait on a device go through the reader's thread pool. A child forked after the
    # parent used it inherits a pool whose threads it does not have (and whose idle count says 8
    # are waiting): its first pooled batch waited forever.
    path, q = table
    store = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    store.rows(np.array([0]))
    for _ in range(10):  # (the pool grows a thread a batch up to its 8)
        store._reader.read_seconds = 1.0  # as measured on a slow device: the pool reads
        store.rows(np.arange(1, N, 9))
    assert store._reader._pool is not None

    def child():
        store._reader.read_seconds = 1.0
        got = store.rows(np.arange(2, N, 9))
        assert np.array_equal(got, q.data[2::9])

    assert _wait_child(_child(child)) == 0
    store.close()


def test_a_stores_own_update_is_neither_read_again_nor_counted_as_reloaded(table):
    # A store serves its own updates at once (written through to its DRAM copies); the update log
    # is for other stores' updates. Its next batch read its own updated rows again from the file,
    # under the exclusive side of its file lock, and counted them in rows_reloaded.
    path, q = table
    a = _holding(path, q, np.arange(50))
    a.update_rows(np.arange(10), np.full((10, q.row_bytes), 7, np.uint8))
    reads, real = [], a._reader.read
    a._reader.read = lambda rows: reads.append(len(rows)) or real(rows)
    assert (a.rows(np.arange(5)) == 7).all()
    assert a.stats()["rows_reloaded"] == 0 and a.stats()["rows_updated"] == 10
    assert reads == []
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as b:  # another store's still count
        b.update_rows(np.array([3, 20, 60]), np.full((3, q.row_bytes), 9, np.uint8))
    assert (a.rows(np.array([3, 20, 60])) == 9).all()
    assert a.stats()["rows_reloaded"] == 2  # the two updated, not all five held
    a.close()


@pytest.mark.parametrize("err", [PermissionError(13, "Permission denied"), OSError(28, "No space left on device")])
def test_a_store_serves_on_when_it_cannot_finish_a_journal(table, monkeypatch, err):
    # A store finishes a dead writer's journal when the log changes (as opening the file does);
    # a serving process that may only read the table cannot, and must then serve the file as it
    # is rather than fail every batch; so must one on a full disk (the replay logs its rows).
    path, q = table
    a = _holding(path, q, np.array([5]))
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as b:
        b.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x33, np.uint8))

    def cannot(p):
        raise err

    monkeypatch.setattr(journal, "replay", cannot)
    got = a.rows(np.array([5, 6]))
    assert (got[0] == 0x33).all() and np.array_equal(got[1], q.data[6])
    a.close()


@pytest.mark.parametrize("through", ["another store", "this store"])
def test_a_batch_sees_an_update_whole_or_not_at_all_across_its_dram_and_file_rows(table, through):
    # Row 5 is held in DRAM, row 300 is read from the file. An update of both (through another
    # store or process, or through this store from another thread) that lands after the batch
    # copied its DRAM rows but before it read the file gave the batch row 5 old and row 300 new.
    path, q = table
    a = _holding(path, q, np.array([5]))
    a.rows(np.array([5]))
    b = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    writer = b if through == "another store" else a
    real_shared, fired = a._file.shared, []

    def shared():
        if not fired:  # the update lands now, between the batch's DRAM copy and its file read
            fired.append(1)
            writer.update_rows(np.array([5, 300]), np.full((2, q.row_bytes), 0x44, np.uint8))
        return real_shared()

    a._file.shared = shared
    got = a.rows(np.array([5, 300]))
    assert fired
    old = np.array_equal(got, q.data[[5, 300]])
    assert old or (got == 0x44).all(), "the batch saw half an update"
    assert (a.rows(np.array([5, 300])) == 0x44).all()
    a.close()
    b.close()


def test_a_store_opened_while_another_process_appends_to_the_log_reads_it_from_a_record_start(table):
    # A writer appends an update's positions to <table>.updates under the table's exclusive lock;
    # a big record can be seen half written. A store opened meanwhile took the log's size as its
    # place: later it parsed from the middle of that record, found it unparseable and read its
    # whole DRAM tier again (or, for some bytes, took garbage for positions and missed the rows
    # of the next update). It must wait for the writer's lock.
    import struct
    import threading

    from embcompress.store import updlog

    path, q = table
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as w:
        w.update_rows(np.array([1]), np.full((1, q.row_bytes), 1, np.uint8))  # the log exists
    rec = struct.pack("<Q", 3) + np.array([400, 401, 402], "<i8").tobytes()
    opened = []
    with journal._locked(path):  # a writer's exclusive lock, its record half appended
        with open(updlog.log_path(path), "ab") as f:
            f.write(rec[:12])
        t = threading.Thread(target=lambda: opened.append(_holding(path, q, np.array([5, 9, 20, 30, 40]))))
        t.start()
        t.join(timeout=1.0)  # (a store that waits for the lock is still waiting: either is fine)
        with open(updlog.log_path(path), "ab") as f:
            f.write(rec[12:])
    t.join()
    a = opened[0]
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as b:
        b.update_rows(np.array([5, 9]), np.full((2, q.row_bytes), 0x55, np.uint8))
    assert (a.rows(np.array([5, 9])) == 0x55).all()
    assert a.stats()["rows_reloaded"] == 2  # the two updated, not all five held
    a.close()


def test_a_log_append_that_fails_midway_leaves_no_torn_record(table, monkeypatch):
    # The disk fills while an update appends its positions: part of the record was written, and
    # every later record followed it, so a store parsing from before it took the next record's
    # bytes for positions and, at best, read its whole DRAM tier again.
    import errno

    from embcompress.store import updlog

    path, q = table
    a = _holding(path, q, np.array([5, 9, 20, 30, 40]))
    b = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    b.update_rows(np.array([5]), np.full((1, q.row_bytes), 0x61, np.uint8))
    assert (a.rows(np.array([5])) == 0x61).all()
    real = os.write

    def disk_full(fd, data):
        monkeypatch.setattr(updlog.os, "write", real)
        real(fd, bytes(data)[:12])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(updlog.os, "write", disk_full)
    with pytest.raises(OSError):
        b.update_rows(np.array([9]), np.full((1, q.row_bytes), 0x62, np.uint8))
    b.update_rows(np.array([9]), np.full((1, q.row_bytes), 0x63, np.uint8))
    assert (a.rows(np.array([5, 9])) == np.array([[0x61], [0x63]], np.uint8)).all()
    assert a.stats()["rows_reloaded"] == 2  # row 5, then row 9: not all five held
    a.close()
    b.close()


def test_this_stores_own_update_in_a_batchs_window_does_not_make_it_start_over(table):
    # An update through this store that lands between a batch's DRAM copy and its file read is
    # taken by copying the DRAM rows again under the file lock, not by staging the batch again:
    # with a writer thread updating back to back (its next update always waiting, and served
    # before new batches), a batch that started over each time never ended.
    path, q = table
    a = _holding(path, q, np.array([5]))
    a.rows(np.array([5]))
    real_shared, attempts = a._file.shared, []
    real_once = a._stage_once

    def shared():
        if len(attempts) < 3:  # an update lands in the window of each of the first attempts
            a.update_rows(np.array([5, 300]), np.full((2, q.row_bytes), 0x70 + len(attempts), np.uint8))
        return real_shared()

    def once(*args):
        attempts.append(1)
        return real_once(*args)

    a._file.shared, a._stage_once = shared, once
    got = a.rows(np.array([5, 300]))
    assert len(attempts) == 1
    assert (got == 0x71).all()
    a.close()
