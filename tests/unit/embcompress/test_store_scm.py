import numpy as np
import pytest

from embcompress.errors import ArtifactError
from embcompress.store.scm import BLOCK, RowReader


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("in_flight", [1, 4])
def test_reads_match_the_records(rows_file, direct, in_flight):
    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=direct, max_in_flight=in_flight, max_read_bytes=2 * BLOCK)
    rows = np.array([2999, 0, 40, 41, 1234, 2000, 81], dtype=np.int64)
    got, n_blocks = r.read(rows)
    assert np.array_equal(got, data[rows])
    assert n_blocks == len(r.blocks_of(rows))
    # Row 40 spans bytes 4000..4100 of the section: two blocks; 40 and 41 share the second.
    assert len(r.blocks_of(np.array([40, 41]))) == 2
    empty, nb = r.read(np.zeros(0, np.int64))
    assert empty.shape == (0, 100) and nb == 0
    all_rows, _ = r.read(np.arange(len(data)))
    assert np.array_equal(all_rows, data)
    r.close()


def test_truncated_file_is_a_clear_error(rows_file, tmp_path):
    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=False)
    with open(path, "r+b") as fh:
        fh.truncate(base + 100 * 1000)
    with pytest.raises(ArtifactError, match="truncated"):
        r.read(np.array([2999]))
    r.close()
    with pytest.raises(ArtifactError, match="does not exist"):
        RowReader(tmp_path / "nope", 0, 100, 1)


@pytest.mark.parametrize("direct", [True, False])
def test_short_reads_are_resumed(rows_file, monkeypatch, direct):
    # POSIX lets a read return fewer bytes than asked (network and FUSE file systems do, mid-file):
    # the reader must go on from where it stopped, not call the file truncated.
    import os

    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=direct, max_in_flight=1, max_read_bytes=8 * BLOCK)
    real = os.preadv
    step = BLOCK if r.direct else 1000  # O_DIRECT reads stay block aligned

    def short(fd, bufs, off):
        return real(fd, [memoryview(bufs[0])[:step]], off)

    monkeypatch.setattr(os, "preadv", short)
    got, _ = r.read(np.arange(len(data)))
    assert np.array_equal(got, data)
    r.close()


def _recording_preadv(monkeypatch, delay):
    """Patch os.preadv to take ``delay`` seconds more; returns (threads that read, peak in flight)."""
    import os
    import threading
    import time

    real, lock = os.preadv, threading.Lock()
    readers, cur, peak = set(), [0], [0]

    def slow(fd, bufs, off):
        with lock:
            readers.add(threading.get_ident())
            cur[0] += 1
            peak[0] = max(peak[0], cur[0])
        try:
            if delay:
                time.sleep(delay)
            return real(fd, bufs, off)
        finally:
            with lock:
                cur[0] -= 1

    monkeypatch.setattr(os, "preadv", slow)
    return readers, peak


@pytest.mark.parametrize("direct", [True, False])
def test_reads_that_wait_on_a_device_overlap_in_the_pool(rows_file, monkeypatch, direct):
    import threading

    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=direct, max_in_flight=4, max_read_bytes=BLOCK)
    readers, peak = _recording_preadv(monkeypatch, 0.002)  # a slow device: 2 ms a read
    rows = np.arange(0, len(data), 50)  # 60 rows in 60 separate blocks
    got, _ = r.read(rows)
    assert np.array_equal(got, data[rows])
    assert 1 < peak[0] <= 4
    assert threading.get_ident() not in readers
    r.close()


def test_reads_served_at_memory_speed_stay_in_the_callers_thread(rows_file, monkeypatch):
    # Once the reader has measured reads taking microseconds (the page cache holds the file just
    # written; O_DIRECT reads would go to the disk), a batch of many reads runs in the caller's
    # thread: a pool would only add its hand-offs.
    import threading

    import embcompress.store.scm as scm

    class Clock:  # every read measures 1 us: a page-cache read, whatever the machine's load
        t = 0.0

        def perf_counter(self):
            self.t += 1e-6
            return self.t

    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=False, max_in_flight=4, max_read_bytes=BLOCK)
    r.read_seconds = 1e-6
    monkeypatch.setattr(scm, "time", Clock())
    readers, peak = _recording_preadv(monkeypatch, 0.0)
    rows = np.arange(0, len(data), 50)
    for _ in range(3):  # the running mean stays low: every read is fast
        got, _ = r.read(rows)
        assert np.array_equal(got, data[rows])
    assert readers == {threading.get_ident()} and peak[0] == 1
    assert r.read_seconds == pytest.approx(1e-6)
    r.close()


def test_the_read_buffer_is_reused_and_never_leaks_an_earlier_batch(rows_file):
    # Each thread keeps its read buffer between batches; a smaller batch after a larger one must
    # get its own rows, not leftovers of the earlier batch in the reused buffer.
    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=False, max_in_flight=1)
    big = np.arange(0, len(data), 3)
    assert np.array_equal(r.read(big)[0], data[big])
    buf = r._local.buf
    for rows in (np.array([5]), np.array([2999, 7, 40]), np.array([41])):
        assert np.array_equal(r.read(rows)[0], data[rows])
    assert r._local.buf is buf
    r.close()


def test_a_file_system_without_flock_is_read_unlocked(tmp_path, monkeypatch):
    # (it takes no update either: apply_update needs the lock) - reads go on without it
    import errno

    from embcompress.store import scm

    data = np.random.default_rng(0).integers(0, 256, (300, 24), dtype=np.uint8)
    path = tmp_path / "rows.bin"
    path.write_bytes(data.tobytes())
    reader = scm.RowReader(path, 0, 24, 300, direct=False)

    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(scm.fcntl, "flock", no_flock)
    rows = np.array([3, 100, 299])
    assert np.array_equal(reader.read(rows)[0], data[rows])
    assert np.array_equal(reader.read(rows)[0], data[rows])
    reader.close()
