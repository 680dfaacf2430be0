"""Review of the store's cross-process changes (update log, shared flock) with real processes."""

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from embcompress.formats import quantize
from embcompress.store import TieredStore

ROOT = Path(__file__).resolve().parents[2]
N, DIM = 2000, 32
ROWS = np.arange(0, N, 37, dtype=np.int64)  # 55 rows spread over the file

# A writer process that dies (as a SIGKILL would leave it) after k of its row writes.
DYING_WRITER = textwrap.dedent(
    """
    import os, sys
    import numpy as np
    from embcompress.store import TieredStore
    import embcompress.store.journal as journal

    path, k = sys.argv[1], int(sys.argv[2])
    rows = np.arange(0, {N}, 37, dtype=np.int64)
    store = TieredStore(path, dram_bytes=4096, policy="lru")
    real_pwrite, count = os.pwrite, [0]
    def pwrite(fd, data, off):
        if count[0] == k:
            os._exit(9)
        count[0] += 1
        return real_pwrite(fd, data, off)
    journal.os.pwrite = pwrite
    store.update_rows(rows, np.full((len(rows), store.row_bytes), 0xAB, dtype=np.uint8))
    os._exit(0)
    """
).replace("{N}", str(N))


@pytest.mark.parametrize("k", [40, 55])
def test_a_writer_killed_midway_leaves_a_running_store_serving_what_the_file_opens_as(tmp_path, k):
    # A store in this process holds some of the rows another process is updating; that process
    # dies after k row writes (55: all rows, before the header). Whoever opens the file now gets
    # every row new (the journal is replayed). The running store must not serve its old DRAM
    # copies beside the new rows it reads from the file: it served a mix of old and new, for as
    # long as nobody reopened the file (the log was appended only after the rows were written).
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxfp8_e4m3")
    path = q.save(tmp_path / "t.embc")
    freq = np.zeros(N)
    freq[ROWS[:30]] = 1  # 30 of the 55 rows held in DRAM here, the others read from the file
    store = TieredStore(path, dram_bytes=30 * q.row_bytes, policy="frequency", frequencies=freq)
    store.warm_up()
    assert np.array_equal(store.rows(ROWS), q.data[ROWS])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", DYING_WRITER, str(path), str(k)], env=env, timeout=120)
    assert proc.returncode == 9
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
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxfp8_e4m3")
    path = q.save(tmp_path / "t.embc")
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

    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxfp8_e4m3")
    path = q.save(tmp_path / "t.embc")
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
