"""Crashes during TieredStore.update_rows: every row ends either old or new, never torn or mixed.

A child process updates rows and dies (os._exit, as a SIGKILL would leave it: no cleanup, no
flush) at a chosen point of the protocol: while writing the journal, after k row writes, or
before the header write. The parent then opens the store, which replays any journal, and checks
the rows and the file's checksums.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from embcompress.container import read_artifact
from embcompress.formats import quantize
from embcompress.store import TieredStore
from embcompress.store.journal import journal_path
from tests.conftest import PAUSING_WRITER, fail_journal_pwrite

ROOT = Path(__file__).resolve().parents[2]
N, DIM = 2000, 32
ROWS = np.arange(0, N, 37, dtype=np.int64)  # 55 rows spread over the file

CHILD = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from embcompress.store import TieredStore
    import embcompress.store.journal as journal

    path, point, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = np.arange(0, {N}, 37, dtype=np.int64)
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    new = np.full((len(rows), store.row_bytes), 0xAB, dtype=np.uint8)
    if point == "journal":  # die before the journal's rename makes it visible
        real = os.replace
        journal.os.replace = lambda *a: os._exit(9) if str(a[1]).endswith(".journal") else real(*a)
        import embcompress.container as c
        c.os.replace = journal.os.replace
    elif point == "rows":  # die after k row writes (k = 0: before any)
        real_pwrite, count = os.pwrite, [0]
        def pwrite(fd, data, off):
            if count[0] == k:
                os._exit(9)
            count[0] += 1
            return real_pwrite(fd, data, off)
        journal.os.pwrite = pwrite
    elif point == "loop":  # update forever; the parent kills us
        i = 0
        while True:
            i += 1
            store.update_rows(rows, np.full((len(rows), store.row_bytes), i % 251, dtype=np.uint8))
            print(i, flush=True)
    store.update_rows(rows, new)
    os._exit(0)
    """
).replace("{N}", str(N))


def _make(tmp_path):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxfp8_e4m3")
    return q.save(tmp_path / "t.embc"), q


def _run(path, point, k=0):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", CHILD, str(path), point, str(k)], env=env, timeout=60)


def _check_consistent(path, q):
    store = TieredStore(path, dram_bytes=4096, policy="lru")  # replays the journal
    assert not journal_path(path).exists()
    art = read_artifact(path, kind="table", verify="full")  # checksums match the rows
    rows = art.array("rows")
    others = np.setdiff1d(np.arange(N), ROWS)
    assert np.array_equal(rows[others], q.data[others])
    changed = rows[ROWS]
    # All rows of one update are old together or new together, and each row is whole.
    return store, changed


@pytest.mark.parametrize("point, k, expect", [("journal", 0, "old"), ("rows", 0, "new"), ("rows", 20, "new"), ("rows", 55, "new")])
def test_crash_at_each_step_leaves_old_or_new_rows(tmp_path, point, k, expect):
    path, q = _make(tmp_path)
    assert _run(path, point, k).returncode == 9
    if point == "rows":
        assert journal_path(path).exists()  # the crash hit after the journal was durable
    store, changed = _check_consistent(path, q)
    if expect == "old":
        assert np.array_equal(changed, q.data[ROWS])
    else:
        assert (changed == 0xAB).all()
        assert (store.rows(ROWS) == 0xAB).all()


def test_killed_while_updating_in_a_loop(tmp_path):
    path, q = _make(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    for delay in (0.4, 0.7):
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), "loop", "0"], env=env, stdout=subprocess.PIPE)
        # Wait for the first update to finish, then kill at some later point.
        assert proc.stdout.readline()
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        _, changed = _check_consistent(path, q)
        # Every updated row holds the same whole value: one iteration, all of its rows.
        assert len(np.unique(changed)) == 1
        assert zlib.crc32(read_artifact(path).array("rows").tobytes()) == read_artifact(path).section("rows").crc32


def test_update_after_a_failed_update_serves_its_rows_new(tmp_path, monkeypatch):
    # An I/O error midway through an update's row writes: the journal holds it, and the next update
    # finishes it first. The DRAM copies of its rows must then be the new records too.
    import embcompress.store.journal as journal

    path, q = _make(tmp_path)
    first = np.array([10, 20, 30, 40], dtype=np.int64)
    freq = np.zeros(N)
    freq[first] = 100  # the hot set: held in DRAM
    store = TieredStore(path, dram_bytes=8 * q.row_bytes, policy="frequency", frequencies=freq)
    assert np.array_equal(store.rows(first), q.data[first])
    real = fail_journal_pwrite(monkeypatch, 3)
    new = np.full((4, q.row_bytes), 0xAB, dtype=np.uint8)
    with pytest.raises(OSError, match="Input/output error"):
        store.update_rows(first, new)
    monkeypatch.setattr(journal.os, "pwrite", real)
    store.update_rows(np.array([100]), np.full((1, q.row_bytes), 0xCD, dtype=np.uint8))
    assert (store.rows(first) == 0xAB).all() and (store.rows([100]) == 0xCD).all()
    assert (read_artifact(path, kind="table", verify="full").array("rows")[first] == 0xAB).all()


WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from embcompress.store import TieredStore

    path, k = sys.argv[1], int(sys.argv[2])
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    for i in range(15):
        rows = np.arange(k, {N}, 2, dtype=np.int64)[i::15][:20]  # this writer's rows only
        store.update_rows(rows, np.full((len(rows), store.row_bytes), 16 * k + i, dtype=np.uint8))
    """
).replace("{N}", str(N))


def test_two_processes_updating_one_table_lose_no_rows(tmp_path):
    # Two stores in two processes update disjoint rows of one file at the same time: the file lock
    # makes each update start from the other's header, so every row and the checksum end new.
    path, q = _make(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(k)], env=env) for k in (0, 1)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    want = q.data.copy()
    for k in (0, 1):
        for i in range(15):
            want[np.arange(k, N, 2)[i::15][:20]] = 16 * k + i
    art = read_artifact(path, kind="table", verify="full")
    assert np.array_equal(art.array("rows"), want)
    assert not journal_path(path).exists()


def test_a_read_from_another_process_sees_an_update_whole_or_not_at_all(tmp_path):
    # Another process updates rows 5 and 1500 and pauses after writing the first: a batch read
    # from the file meanwhile must not hold one new and one old (nor a row torn mid-write).
    path, q = _make(tmp_path)
    freq = np.zeros(N)
    freq[7] = 1  # the one row in DRAM; rows 5 and 1500 come from the file
    store = TieredStore(path, dram_bytes=q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    mark = tmp_path / "mid"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-c", PAUSING_WRITER, str(path), str(mark)], env=env)
    try:
        deadline = time.time() + 60
        while not mark.exists():
            assert proc.poll() is None and time.time() < deadline, "the writer did not reach its pause"
            time.sleep(0.01)
        got = store.rows(np.array([5, 1500]))
    finally:
        assert proc.wait(timeout=60) == 0
    old = np.array_equal(got, q.data[[5, 1500]])
    assert old or (got == 0xEE).all(), "a read saw half an update"
    store.close()


def test_an_update_in_another_process_reaches_this_stores_dram(tmp_path):
    path, q = _make(tmp_path)
    freq = np.zeros(N)
    freq[ROWS] = 1  # the rows the child updates are all held in DRAM here
    store = TieredStore(path, dram_bytes=len(ROWS) * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    assert np.array_equal(store.rows(ROWS), q.data[ROWS])
    assert _run(path, "none").returncode == 0  # the child's store writes 0xAB into ROWS
    assert (store.rows(ROWS) == 0xAB).all()
    assert store.stats()["rows_reloaded"] == len(ROWS)
    store.close()


@pytest.mark.parametrize("k", [40, 55])
def test_a_writer_killed_midway_leaves_a_running_store_serving_what_the_file_opens_as(tmp_path, k):
    # A store in this process holds some of the rows another process is updating; that process
    # dies after k row writes (55: all rows, before the header). Whoever opens the file now gets
    # every row new (the journal is replayed). The running store must not serve its old DRAM
    # copies beside the new rows it reads from the file: it served a mix of old and new, for as
    # long as nobody reopened the file (the log was appended only after the rows were written).
    path, q = _make(tmp_path)
    freq = np.zeros(N)
    freq[ROWS[:30]] = 1  # 30 of the 55 rows held in DRAM here, the others read from the file
    store = TieredStore(path, dram_bytes=30 * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    assert np.array_equal(store.rows(ROWS), q.data[ROWS])
    assert _run(path, "rows", k).returncode == 9  # dies after k of its row writes
    got = store.rows(ROWS)
    assert (got == 0xAB).all(), f"{int((got != 0xAB).any(axis=1).sum())} of {len(ROWS)} rows old"
    with TieredStore(path, dram_bytes=4096, policy="lru") as fresh:  # what opening the file gives
        assert (fresh.rows(ROWS) == 0xAB).all()
    store.close()


# A writer process whose update rewrites the file whole (the header's padding cannot hold the new
# checksum) and that dies right after the new file is in place.
DYING_REWRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from embcompress.store import TieredStore
    import embcompress.store.journal as journal

    path = sys.argv[1]
    rows = np.arange(0, {N}, 37, dtype=np.int64)
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    journal._header_bytes = lambda *a: None
    real = journal.write_artifact
    def write_then_die(*a, **k):
        real(*a, **k)
        os._exit(9)
    journal.write_artifact = write_then_die
    store.update_rows(rows, np.full((len(rows), store.row_bytes), 0xAB, dtype=np.uint8))
    os._exit(0)
    """
).replace("{N}", str(N))


def test_a_writer_killed_after_rewriting_the_file_whole_still_reaches_running_stores(tmp_path):
    # The rewritten file is in place (whoever opens it gets every row new), but the writer died
    # before logging its rows: running stores kept their old DRAM copies and their reader on the
    # replaced file, and so served every row old until some later update was logged.
    path, q = _make(tmp_path)
    freq = np.zeros(N)
    freq[ROWS[:30]] = 1
    store = TieredStore(path, dram_bytes=30 * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    assert np.array_equal(store.rows(ROWS), q.data[ROWS])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", DYING_REWRITER, str(path)], env=env, timeout=120)
    assert proc.returncode == 9
    with TieredStore(path, dram_bytes=4096, policy="lru") as fresh:
        assert (fresh.rows(ROWS) == 0xAB).all()
    got = store.rows(ROWS)
    assert (got == 0xAB).all(), f"{int((got != 0xAB).any(axis=1).sum())} of {len(ROWS)} rows old"
    store.close()


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="Linux /proc/locks")
def test_an_update_waiting_for_a_store_busy_on_several_threads_goes_before_its_new_batches(tmp_path):
    # A store's batches share one shared flock, taken by the first batch in and released by the
    # last out. With several threads serving, some batch was always reading: another process's
    # update waited for as long as the lookups went on (20 updates of 2 rows did not end in 60 s
    # beside 4 threads serving misses). A batch arriving while an update waits now lets it go first.
    import threading

    path, q = _make(tmp_path)
    store = TieredStore(path, dram_bytes=q.row_bytes, policy="lru")
    store.rows(np.array([0]))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    writer = textwrap.dedent(
        """
        import sys, numpy as np
        from embcompress.store import TieredStore
        s = TieredStore(sys.argv[1], dram_bytes=4096, policy="lru")
        s.update_rows(np.array([5, 1500]), np.full((2, s.row_bytes), 0xCD, np.uint8))
        """
    )
    got = []
    with store._reader.locked():  # a batch is reading (it stands for the busy serving threads)
        proc = subprocess.Popen([sys.executable, "-c", writer, str(path)], env=env)
        # Wait until the writer waits for the file's exclusive flock (a blocked waiter in /proc/locks).
        ino = os.stat(path).st_ino
        while proc.poll() is None and not any(
                "-> FLOCK" in line and line.split()[6].endswith(f":{ino}")
                for line in Path("/proc/locks").read_text().splitlines()):
            time.sleep(0.01)
        assert proc.poll() is None, "the writer ended while a batch held the shared lock"
        late = threading.Thread(target=lambda: got.append(store.rows(np.array([5, 1500]))))
        late.start()  # a batch arriving now
        late.join(timeout=2.0)  # (one that waits for the update is still waiting: either is fine)
    late.join()
    assert proc.wait(timeout=120) == 0
    assert (got[0] == 0xCD).all(), "a batch arriving while an update waited went first"
    store.close()


def test_a_writer_killed_midway_through_a_symlink_is_finished_through_the_real_path(tmp_path):
    # One table, two names: a process updating through a symlink dies after 40 of its 55 row
    # writes. Its journal and log were named after the symlink, so a store running on the real
    # path never saw the update (it served its old DRAM copies beside the new rows in the file),
    # and opening the real path did not replay the journal: 15 rows stayed old, the checksum wrong.
    path, q = _make(tmp_path)
    link = tmp_path / "served.embc"
    link.symlink_to(path.name)
    freq = np.zeros(N)
    freq[ROWS[:30]] = 1
    store = TieredStore(path, dram_bytes=30 * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    assert np.array_equal(store.rows(ROWS), q.data[ROWS])
    assert _run(link, "rows", 40).returncode == 9
    got = store.rows(ROWS)
    assert (got == 0xAB).all(), f"{int((got != 0xAB).any(axis=1).sum())} of {len(ROWS)} rows old"
    store.close()
    _, changed = _check_consistent(path, q)  # opened through the real path: the journal replayed
    assert (changed == 0xAB).all()
    assert not (tmp_path / "served.embc.journal").exists()
