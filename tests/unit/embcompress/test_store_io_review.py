"""Review tests of the store's I/O paths and of TieredStore under threads."""

import os
import threading

import numpy as np
import pytest

from embcompress.container import read_artifact, write_artifact
from embcompress.store.scm import RowReader


@pytest.mark.parametrize("direct", [True, False])
def test_max_in_flight_bounds_the_reads_of_all_threads_together(rows_file, monkeypatch, direct):
    # Threads sharing a store share its reader: max_in_flight bounds their reads together (the
    # device's queue depth), not each thread's. Each thread's batch is small enough to be read
    # without the pool, which is where the bound was lost.
    path, data, base = rows_file
    k = 2
    r = RowReader(path, base, 100, len(data), direct=direct, max_in_flight=k)
    real = os.preadv
    lock, cur, peak = threading.Lock(), [0], [0]
    # k + 1 threads meet here inside a read if the reader lets them; it must not, and then the
    # barrier breaks (after its timeout, a wait, not an assertion) and the reads go on.
    meet, met = threading.Barrier(k + 1, timeout=2), threading.Event()

    def counting(fd, bufs, off):
        with lock:
            cur[0] += 1
            peak[0] = max(peak[0], cur[0])
        try:
            if not met.is_set():
                try:
                    meet.wait()
                except threading.BrokenBarrierError:
                    pass
                met.set()
            return real(fd, bufs, off)
        finally:
            with lock:
                cur[0] -= 1

    monkeypatch.setattr(os, "preadv", counting)
    errors = []

    def work(seed):
        rng = np.random.default_rng(seed)
        try:
            for _ in range(5):
                rows = rng.choice(len(data), 3, replace=False)
                got, _ = r.read(rows)
                assert np.array_equal(got, data[rows])
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(k + 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    r.close()
    assert not errors
    assert peak[0] <= k


class _InterruptedOnce(threading.Condition):
    """A condition whose first wait is interrupted (Ctrl-C while close() waits for lookups)."""

    def __init__(self):
        super().__init__()
        self.interrupt = True

    def wait(self, timeout=None):
        if self.interrupt:
            self.interrupt = False
            raise KeyboardInterrupt
        return super().wait(timeout)


def test_an_interrupted_close_or_update_does_not_block_later_lookups(tmp_path):
    # A writer waiting for the lookups in flight (close, update_rows, warm_up) that is interrupted
    # stayed counted as waiting, and readers, who let waiting writers go first, blocked for ever.
    from embcompress.formats import quantize
    from embcompress.store import TieredStore

    x = np.random.default_rng(0).standard_normal((500, 16)).astype(np.float32)
    q = quantize(x, "mxfp8_e4m3")
    store = TieredStore(q.save(tmp_path / "t.embc"), dram_bytes=10 * q.row_bytes, policy="lru")
    lock = store._file
    lock._cond = _InterruptedOnce()
    entered, leave = threading.Event(), threading.Event()

    def hold_shared():
        with lock.shared():
            entered.set()
            leave.wait()

    holder = threading.Thread(target=hold_shared)
    holder.start()
    entered.wait()
    with pytest.raises(KeyboardInterrupt):
        store.close()  # waits for the holder; interrupted
    leave.set()
    holder.join()
    got = []
    reader = threading.Thread(target=lambda: got.append(store.rows([1, 2, 499])))
    reader.start()
    reader.join(30)  # a hang, not a speed, is what is tested
    hung = reader.is_alive()
    leave.set()
    if hung:  # let the blocked reader finish so the test process can exit
        with lock._cond:
            lock._waiting = 0
            lock._cond.notify_all()
        reader.join()
    assert not hung
    assert np.array_equal(got[0], q.data[[1, 2, 499]])
    store.close()
    assert store._closed


def test_the_whole_file_rewrite_of_an_update_does_not_load_the_table_into_memory(tmp_path, monkeypatch):
    # When the header has no room for the new checksum's digits, an update rewrites the file. The
    # tiered store exists for tables larger than memory: that rewrite copied every section into
    # memory first (a 32 MiB table took 32 MiB), which for such a table fails or is OOM-killed.
    import tracemalloc

    from embcompress.store import journal

    n, row_bytes = 1 << 18, 128  # 32 MiB of rows
    data = np.zeros((n, row_bytes), np.uint8)
    data[::1000] = 7
    path = write_artifact(tmp_path / "big.embc", "table", {"rows": data, "extra": np.arange(9)}, align=4096)
    del data
    monkeypatch.setattr(journal, "_header_bytes", lambda *a: None)  # force the rewrite
    rows = np.array([0, 5, n - 1], dtype=np.int64)
    tracemalloc.start()
    try:
        journal.apply_update(path, "rows", rows, np.full((3, row_bytes), 0xCD, np.uint8))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < (4 << 20), f"the rewrite allocated {peak} bytes for a {n * row_bytes}-byte table"
    art = read_artifact(path, verify="full")
    got = art.array("rows")
    assert np.all(got[rows] == 0xCD) and np.all(got[1000] == 7) and np.all(got[1] == 0)
    assert np.array_equal(art.array("extra"), np.arange(9))
