"""Review 10: processes killed with SIGKILL at random points while they write, update, reorder or
serve a table file; disk full (RLIMIT_FSIZE) during writes and updates; readers in other processes
while a writer updates in a loop.

After every kill the table must open and pass a full verify, hold every row of each update old or
new (all the rows of one update together), and a store that was running in this process must
serve exactly what a fresh open of the file gives.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import embcompress
from embcompress.container import read_artifact
from embcompress.store import TieredStore
from embcompress.store.journal import journal_path

ROOT = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(ROOT))
N, DIM = 4000, 64
U = np.arange(3, N, 41, dtype=np.int64)  # the rows every update of the loops below writes


def _table(tmp_path, seed=0, name="t.embc"):
    x = np.random.default_rng(seed).standard_normal((N, DIM)).astype(np.float32)
    q = embcompress.quantize(x, "mxfp8_e4m3")
    return embcompress.write_table(tmp_path / name, q, frequencies=np.arange(N)[::-1].copy()), q


def _spawn(script, *args, stdout=subprocess.PIPE):
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)], env=ENV,
                            stdout=stdout)


def _kill_after_start(proc, delay):
    """SIGKILL ``proc`` ``delay`` seconds after it printed its first line (it is then under way)."""
    line = proc.stdout.readline()
    assert line, "the child ended before it started its work"
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    return proc.returncode


def _delays(n, top, seed):
    return np.random.default_rng(seed).uniform(0.0, top, n)


# --- write_table killed at random points -----------------------------------------------------------

WRITER = """
    import sys, numpy as np, embcompress
    path = sys.argv[1]
    x = [np.random.default_rng(s).standard_normal((60000, 64)).astype(np.float32) for s in (1, 2)]
    qs = [embcompress.quantize(v, "mxint8") for v in x]
    i = 0
    while True:
        embcompress.write_table(path, qs[i % 2], frequencies=np.full(60000, i % 2))
        if i == 0:
            print("written", flush=True)
        i += 1
"""


def test_write_table_killed_at_random_points_leaves_the_old_or_the_new_file(tmp_path):
    path = tmp_path / "w.embc"
    wants = [embcompress.quantize(np.random.default_rng(s).standard_normal((60000, 64)).astype(np.float32),
                                  "mxint8").data for s in (1, 2)]
    for delay in _delays(6, 0.25, seed=3):
        assert _kill_after_start(_spawn(WRITER, path), delay) == -signal.SIGKILL
        t = embcompress.open_table(path, verify="full")
        k = int(t.frequencies[0])
        assert np.array_equal(t.data, wants[k]) and (t.frequencies == k).all()
    # (each kill may leave its hidden temporary file: the old file is never touched)
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith(".")} == {"w.embc"}


KILLED_IN_RENAME = """
    import os, signal, sys, numpy as np, embcompress
    import embcompress.container as c
    path, when = sys.argv[1], sys.argv[2]
    real_replace, real_fsync = os.replace, os.fsync
    def replace(a, b):
        if when == "before rename":
            os.kill(os.getpid(), signal.SIGKILL)
        real_replace(a, b)
        if when == "after rename":  # before the folder's fsync
            os.kill(os.getpid(), signal.SIGKILL)
    c.os.replace = replace
    q = embcompress.quantize(np.ones((100, 32), np.float32), "mxint8")
    print("go", flush=True)
    embcompress.write_table(path, q)
"""


@pytest.mark.parametrize("when, new", [("before rename", False), ("after rename", True)])
def test_write_table_killed_in_the_fsync_and_rename_window(tmp_path, when, new):
    path, q = _table(tmp_path)
    proc = _spawn(KILLED_IN_RENAME, path, when)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    proc.stdout.close()
    t = embcompress.open_table(path, verify="full")
    if new:
        assert t.shape == (100, 32) and np.array_equal(t.dequantize(), np.ones((100, 32), np.float32))
    else:
        assert np.array_equal(t.data, q.data)


# --- update_rows killed at random points, a store serving in this process ----------------------------

UPDATER = """
    import sys, numpy as np
    from embcompress.store import TieredStore
    import embcompress.store.journal as journal
    path, whole = sys.argv[1], sys.argv[2] == "1"
    rows = np.arange(3, {N}, 41, dtype=np.int64)
    if whole:  # every update rewrites the file whole (the header's padding cannot hold the checksum)
        journal._header_bytes = lambda *a: None
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    i = 0
    while True:
        i += 1
        store.update_rows(rows, np.full((len(rows), store.row_bytes), i % 251, dtype=np.uint8))
        if i == 1:
            print("updated", flush=True)
""".replace("{N}", str(N))


def _check_after_kill(path, q, running):
    """The file verifies, holds the rows of U all of one update (or all old) and the others old, and
    each running store serves what a fresh store gives."""
    fresh = TieredStore(path, dram_bytes=4096, policy="lru")  # replays a journal left behind
    assert not journal_path(path).exists()
    rows = read_artifact(path, kind="table", verify="full").array("rows")
    others = np.setdiff1d(np.arange(N), U)
    assert np.array_equal(rows[others], q.data[others])
    assert len({bytes(r) for r in rows[U]}) == 1, "an update was left half applied"
    for store in running:
        got = store.rows(np.arange(N))
        assert np.array_equal(got, rows), f"a running {store.policy} store serves rows the file does not hold"
    fresh.close()


@pytest.mark.parametrize("whole", [False, True])
def test_update_rows_killed_at_random_points_leaves_every_row_old_or_new(tmp_path, whole):
    path, q = _table(tmp_path)
    running = [TieredStore(path, dram_bytes=len(U) // 2 * q.row_bytes, policy="frequency"),
               TieredStore(path, dram_bytes=len(U) // 2 * q.row_bytes, policy="lru"),
               TieredStore(path, dram_bytes=len(U) // 2 * q.row_bytes, policy="lfu")]
    for s in running:
        s.rows(U)  # held rows among the updated ones (lru, lfu admit; frequency: its hot set)
    for delay in _delays(4, 0.3, seed=5 + whole):
        assert _kill_after_start(_spawn(UPDATER, path, int(whole)), delay) == -signal.SIGKILL
        _check_after_kill(path, q, running)
    for s in running:
        s.close()


# --- reorder_rows and a refreshing store killed ------------------------------------------------------

REORDERER = """
    import sys, numpy as np
    from embcompress.store import reorder_rows
    path, out = sys.argv[1], sys.argv[2]
    labels = np.random.default_rng(0).integers(0, 200, {N})
    i = 0
    while True:
        reorder_rows(path, out, clusters=(labels + i) % 200)
        if i == 0:
            print("reordered", flush=True)
        i += 1
""".replace("{N}", str(N))


def test_reorder_rows_killed_at_random_points_leaves_a_whole_table_or_the_old_one(tmp_path):
    path, q = _table(tmp_path)
    out = tmp_path / "r.embc"
    for delay in _delays(4, 0.3, seed=11):
        assert _kill_after_start(_spawn(REORDERER, path, out), delay) == -signal.SIGKILL
        r = embcompress.open_table(out, verify="full")
        order = read_artifact(out).array("row_order")
        assert np.array_equal(r.data, q.data[order])
        with TieredStore(out, dram_bytes=10 * q.row_bytes, policy="lru") as s:
            assert np.array_equal(s.rows(np.arange(N)), q.data)  # served by original row ids
    assert np.array_equal(embcompress.open_table(path, verify="full").data, q.data)


SERVER = """
    import sys, numpy as np
    from embcompress.store import TieredStore
    path = sys.argv[1]
    s = TieredStore(path, dram_bytes=200 * 68, policy="frequency", refresh_every=1)
    rng = np.random.default_rng(0)
    i = 0
    while True:
        idx = rng.zipf(1.3, 4096) % {N}
        s.pooled_lookup(idx, np.arange(0, 4096, 32), n_threads=1)
        if i == 0:
            print("serving", flush=True)
        i += 1
""".replace("{N}", str(N))


def test_a_store_killed_mid_batch_or_refresh_leaves_no_lock_behind(tmp_path):
    # A reader killed while it holds the table's shared flock (a batch's read, a refresh) or the
    # turnstile: the next update must go through, not wait for a dead process.
    path, q = _table(tmp_path)
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    for k, delay in enumerate(_delays(3, 0.3, seed=13)):
        assert _kill_after_start(_spawn(SERVER, path), delay) == -signal.SIGKILL
        done = []
        import threading

        t = threading.Thread(target=lambda: done.append(store.update_rows(U[:3], np.full((3, q.row_bytes), k, np.uint8))))
        t.start()
        t.join(timeout=30)
        assert done, "an update waited for a lock a killed process held"
        assert (embcompress.open_table(path, verify="full").data[U[:3]] == k).all()
    store.close()


# --- other processes opening the table while one updates it in a loop --------------------------------

def test_opening_the_table_while_another_process_updates_it_in_a_loop(tmp_path):
    # Every open succeeds (a full verify never calls the table corrupted) and every copy or store
    # holds the rows of U from one update.
    path, q = _table(tmp_path)
    proc = _spawn(UPDATER, path, 0)
    try:
        assert proc.stdout.readline()
        end = time.time() + 3.0
        n = 0
        while time.time() < end:
            embcompress.open_table(path, verify="full")  # (a mapping: its rows follow the file as it changes)
            copy = embcompress.open_table(path, mmap=False)
            assert len({bytes(r) for r in copy.data[U]}) == 1, "a copy holds half an update"
            with TieredStore(path, dram_bytes=len(U) * q.row_bytes, policy="lfu") as s:
                assert len({bytes(r) for r in s.rows(U)}) == 1, "a store served half an update"
            n += 1
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
    assert n > 3
    _check_after_kill(path, q, [])


# --- a full disk: RLIMIT_FSIZE in a child ------------------------------------------------------------

FULL_DISK = """
    import errno, os, resource, sys, numpy as np, embcompress
    from embcompress.store import TieredStore, updlog
    path, case = sys.argv[1], sys.argv[2]
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    def limit(n):
        resource.setrlimit(resource.RLIMIT_FSIZE, (n, hard))
    rows = np.arange(3, {N}, 41, dtype=np.int64)
    if case == "write_table":
        q = embcompress.quantize(np.ones((50000, 64), np.float32), "mxint8")
        limit(1 << 20)
        try:
            embcompress.write_table(path, q)
        except OSError as e:
            print("refused", e.errno == errno.EFBIG, e.filename == path, "unchanged" in str(e))
    elif case == "journal":  # the journal does not fit: nothing changes
        s = TieredStore(path, dram_bytes=4096, policy="lru")
        limit(4096)
        try:
            s.update_rows(rows, np.full((len(rows), s.row_bytes), 7, np.uint8))
        except OSError as e:
            print("refused", e.errno == errno.EFBIG)
        limit(hard)
        print("old", bool((s.rows(rows) != 7).any(axis=1).all()))
        s.update_rows(rows, np.full((len(rows), s.row_bytes), 9, np.uint8))
        print("new", bool((s.rows(rows) == 9).all()))
    elif case == "log":  # the journal fits, the update log's append does not: finished on open
        s = TieredStore(path, dram_bytes=4096, policy="lru")
        for k in range(40):  # the log grows past the size of the journal
            s.update_rows(rows, np.full((len(rows), s.row_bytes), 1, np.uint8))
        s.update_rows(rows[:1], np.zeros((1, s.row_bytes), np.uint8))
        size = os.stat(updlog.log_path(path)).st_size
        assert size > 3 * os.stat(path).st_size // 4 or size > 30000, size
        limit(size + 16)
        try:
            s.update_rows(rows, np.full((len(rows), s.row_bytes), 5, np.uint8))
        except OSError as e:
            print("refused", e.errno == errno.EFBIG)
        print("log intact", os.stat(updlog.log_path(path)).st_size)
""".replace("{N}", str(N))


def test_a_full_disk_while_writing_a_table_leaves_the_old_one(tmp_path):
    path, q = _table(tmp_path)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL_DISK), str(path), "write_table"], env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["refused", "True", "True", "True"], out.stderr
    assert np.array_equal(embcompress.open_table(path, verify="full").data, q.data)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.embc"]  # no temporary left


def test_a_full_disk_refusing_an_updates_journal_changes_nothing(tmp_path):
    path, q = _table(tmp_path)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL_DISK), str(path), "journal"], env=ENV,
                         capture_output=True, text=True, timeout=60)
    assert out.stdout.split() == ["refused", "True", "old", "True", "new", "True"], out.stderr
    t = embcompress.open_table(path, verify="full")
    assert (t.data[U] == 9).all()


def test_a_full_disk_refusing_the_update_log_leaves_an_update_the_next_open_finishes(tmp_path):
    path, q = _table(tmp_path)
    running = TieredStore(path, dram_bytes=len(U) * q.row_bytes, policy="lfu")
    running.rows(U)
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(FULL_DISK), str(path), "log"], env=ENV,
                         capture_output=True, text=True, timeout=60)
    lines = out.stdout.splitlines()
    assert lines[0] == "refused True", out.stderr
    assert journal_path(path).exists()  # durable before the log: finished by the next open
    got = running.rows(U)  # (the store in this process sees the log changed and finishes it first)
    fresh = embcompress.open_table(path, verify="full")
    assert (fresh.data[U] == 5).all() and (got == 5).all()
    assert not journal_path(path).exists()
    running.close()



TWO_WRITERS = """
    import sys, numpy as np
    import embcompress.store.journal as journal
    from embcompress.store import TieredStore
    path, k = sys.argv[1], int(sys.argv[2])
    journal._header_bytes = lambda *a: None  # every update rewrites the file whole
    store = TieredStore(path, dram_bytes=40 * 68, policy="lru")
    for i in range(12):
        rows = np.arange(k, {N}, 2, dtype=np.int64)[i::12][:20]  # this writer's rows only
        store.rows(rows)  # (some held in DRAM)
        # refused ("replaced by another table") if the other writer's new file were not taken for this table
        store.update_rows(rows, np.full((len(rows), store.row_bytes), 16 * k + i, dtype=np.uint8))
    for i in range(12):
        rows = np.arange(k, {N}, 2, dtype=np.int64)[i::12][:20]
        assert (store.rows(rows) == 16 * k + i).all()
""".replace("{N}", str(N))


def test_two_processes_rewriting_one_table_whole_follow_each_others_files(tmp_path):
    # Each update renames a new file over the path; each store must take the other's new file for
    # its own table (it records the file it replaced), never refuse it as another table.
    path, q = _table(tmp_path)
    procs = [_spawn(TWO_WRITERS, path, k) for k in (0, 1)]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    want = q.data.copy()
    for k in (0, 1):
        for i in range(12):
            want[np.arange(k, N, 2)[i::12][:20]] = 16 * k + i
    t = embcompress.open_table(path, verify="full")
    assert np.array_equal(t.data, want)
    with TieredStore(path, dram_bytes=4096, policy="lru") as s:
        assert np.array_equal(s.rows(np.arange(N)), want)
