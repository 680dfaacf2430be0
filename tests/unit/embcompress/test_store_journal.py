import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from embcompress.container import read_artifact, write_artifact
from embcompress.errors import ArtifactError
from embcompress.store import journal
from embcompress.store.journal import apply_update, journal_path, replay, updated_crc


@settings(max_examples=60, deadline=None)
@given(
    n_rows=st.integers(1, 300),
    row_bytes=st.integers(1, 70),
    data=st.data(),
)
def test_updated_crc_equals_a_full_recompute(n_rows, row_bytes, data):
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sec = rng.integers(0, 256, (n_rows, row_bytes), dtype=np.uint8)
    rows = np.array(sorted(data.draw(st.sets(st.integers(0, n_rows - 1), max_size=min(n_rows, 20)))), dtype=np.int64)
    new = rng.integers(0, 256, (len(rows), row_bytes), dtype=np.uint8)
    after = sec.copy()
    after[rows] = new
    assert updated_crc(zlib.crc32(sec.tobytes()), sec[rows], new, rows, n_rows) == zlib.crc32(after.tobytes())


def _file(tmp_path, n=500, rb=24):
    data = np.random.default_rng(0).integers(0, 256, (n, rb), dtype=np.uint8)
    extra = np.arange(7, dtype=np.int64)
    return write_artifact(tmp_path / "t.embc", "table", {"rows": data, "extra": extra}, config={"k": 1}, align=4096), data


def test_update_in_place_keeps_every_checksum(tmp_path):
    path, data = _file(tmp_path)
    rows = np.array([0, 17, 499], dtype=np.int64)
    new = np.full((3, 24), 5, np.uint8)
    apply_update(path, "rows", rows, new)
    art = read_artifact(path, verify="full")
    data[rows] = new
    assert np.array_equal(art.array("rows"), data) and art.config == {"k": 1}
    assert not journal_path(path).exists() and not replay(path)


def test_header_too_short_for_the_new_checksum_rewrites_the_file(tmp_path, monkeypatch):
    path, data = _file(tmp_path)
    monkeypatch.setattr(journal, "_header_bytes", lambda *a: None)
    apply_update(path, "rows", np.array([3]), np.zeros((1, 24), np.uint8))
    data[3] = 0
    art = read_artifact(path, verify="full")
    assert np.array_equal(art.array("rows"), data) and np.array_equal(art.array("extra"), np.arange(7))


def test_replay_is_idempotent_and_refuses_a_foreign_journal(tmp_path):
    path, data = _file(tmp_path)
    j = journal_path(path)
    # A journal left by a crash before any row was written: replaying applies it, twice is harmless.
    real = journal._apply_journal
    journal._apply_journal = lambda *a: None
    try:
        apply_update(path, "rows", np.array([1, 2]), np.ones((2, 24), np.uint8))
    finally:
        journal._apply_journal = real
    assert j.exists()
    saved = j.read_bytes()
    assert replay(path)
    j.write_bytes(saved)
    assert replay(path)
    art = read_artifact(path, verify="full")
    assert (art.array("rows")[[1, 2]] == 1).all()
    # A journal whose rows lie outside this file is refused, not applied.
    small = write_artifact(tmp_path / "small.embc", "table", {"rows": data[:2]}, align=4096)
    journal_path(small).write_bytes(saved)
    with pytest.raises(ArtifactError, match="does not belong"):
        replay(small)


def _crash_after_journal(path, rows, records):
    """apply_update up to a durable journal, as a crash right after it leaves the file."""
    real = journal._apply_journal
    journal._apply_journal = lambda *a: None
    try:
        apply_update(path, "rows", rows, records)
    finally:
        journal._apply_journal = real


def test_a_journal_left_for_a_replaced_table_is_refused(tmp_path):
    path, data = _file(tmp_path)
    _crash_after_journal(path, np.array([1, 2]), np.ones((2, 24), np.uint8))
    # The table is then re-created under the same name (same shape, other values): the journal's
    # rows and header belong to the old table and must not be written into the new one.
    other = data ^ 0x5A
    write_artifact(path, "table", {"rows": other, "extra": np.arange(7, dtype=np.int64)}, config={"k": 2}, align=4096)
    with pytest.raises(ArtifactError, match="does not belong"):
        replay(path)
    art = read_artifact(path, verify="full")
    assert np.array_equal(art.array("rows"), other) and art.config == {"k": 2}


def test_replay_finishes_a_torn_header_write(tmp_path):
    path, data = _file(tmp_path)
    _crash_after_journal(path, np.array([5]), np.full((1, 24), 9, np.uint8))
    head = read_artifact(journal_path(path), mmap=False).array("header").tobytes()
    # Power lost while the header was written: its first bytes new, the rest old.
    with open(path, "r+b") as fh:
        fh.write(head[:30])
    assert replay(path)
    art = read_artifact(path, verify="full")
    assert (art.array("rows")[5] == 9).all()


def test_an_update_after_a_failed_one_finishes_it_first(tmp_path, monkeypatch):
    path, data = _file(tmp_path)
    real, count = journal.os.pwrite, [0]

    def failing(fd, b, off):  # an I/O error after two of the first update's row writes
        count[0] += 1
        if count[0] == 3:
            raise OSError(5, "Input/output error")
        return real(fd, b, off)

    monkeypatch.setattr(journal.os, "pwrite", failing)
    first = np.array([10, 20, 30, 40], dtype=np.int64)
    with pytest.raises(OSError, match="Input/output error"):
        apply_update(path, "rows", first, np.full((4, 24), 7, np.uint8))
    monkeypatch.setattr(journal.os, "pwrite", real)
    apply_update(path, "rows", np.array([100]), np.full((1, 24), 8, np.uint8))
    art = read_artifact(path, verify="full")  # the checksum covers both updates
    rows = art.array("rows")
    assert (rows[first] == 7).all() and (rows[100] == 8).all()
    assert not journal_path(path).exists()


def test_short_writes_are_completed(tmp_path, monkeypatch):
    # A write may store fewer bytes than asked (a full disk on a copy-on-write file system, a
    # quota): the rest must still be written before the journal goes, or the row stays torn.
    path, data = _file(tmp_path)
    real = journal.os.pwrite
    monkeypatch.setattr(journal.os, "pwrite", lambda fd, b, off: real(fd, bytes(b)[: max(1, len(b) // 2)], off))
    rows = np.array([3, 4], dtype=np.int64)
    apply_update(path, "rows", rows, np.full((2, 24), 6, np.uint8))
    monkeypatch.setattr(journal.os, "pwrite", real)
    art = read_artifact(path, verify="full")
    assert (art.array("rows")[rows] == 6).all()


def test_two_replays_of_one_journal_do_not_collide(tmp_path, monkeypatch):
    # Several serving processes restarting after a crash each open the store, which replays the
    # journal. The second must wait for the first, then find it done: not apply it again while the
    # first deletes it (FileNotFoundError), nor rewrite rows a later update has already replaced.
    import threading

    path, data = _file(tmp_path)
    _crash_after_journal(path, np.array([1, 2, 3]), np.full((3, 24), 4, np.uint8))
    real, go, errors, results = journal.os.pwrite, threading.Event(), [], {}

    def pwrite(fd, b, off):
        if threading.current_thread().name == "first":
            go.wait(10)  # the first replayer stalls after taking the journal
        return real(fd, b, off)

    monkeypatch.setattr(journal.os, "pwrite", pwrite)

    def run(name):
        try:
            results[name] = replay(path)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    first = threading.Thread(target=run, args=("first",), name="first")
    first.start()
    second = threading.Thread(target=run, args=("second",), name="second")
    second.start()
    second.join(0.5)  # with the lock it waits here for the first (or, started late, finds nothing)
    go.set()
    first.join()
    second.join()
    assert errors == []
    assert sorted(results.values()) == [False, True]
    art = read_artifact(path, verify="full")
    assert (art.array("rows")[[1, 2, 3]] == 4).all() and not journal_path(path).exists()


def test_concurrent_writers_lose_no_update(tmp_path):
    # Two writers of one table (threads here; processes take the same file lock): each update
    # starts from the header the other left, so every row ends new and the checksum matches.
    import threading

    path, data = _file(tmp_path, n=64)
    errors = []

    def writer(k):
        try:
            for i in range(12):
                row = np.array([2 * i + k], dtype=np.int64)
                apply_update(path, "rows", row, np.full((1, 24), 100 + k, np.uint8))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    data[:24:2], data[1:24:2] = 100, 101
    art = read_artifact(path, verify="full")
    assert np.array_equal(art.array("rows"), data)
    assert not journal_path(path).exists()
