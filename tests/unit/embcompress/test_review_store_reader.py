"""Review tests of RowReader's reused per-thread read buffer (commit d0f9b0d)."""

import os
import threading
import time

import numpy as np
import pytest

from embcompress.store.scm import BLOCK, RowReader


@pytest.mark.parametrize("direct", [True, False])
@pytest.mark.parametrize("how", ["error", "interrupt"])
def test_a_failed_pooled_batch_leaves_no_read_running_into_the_next_batch(rows_file, monkeypatch, direct, how):
    # A pooled batch whose read fails raised as soon as the first share failed, while the other
    # shares' reads went on into the thread's read buffer; the thread's next batch reuses that
    # buffer, so a late read landed in it and the batch returned another block's bytes as rows.
    # Ctrl-C while the caller waits for the shares cannot wait for them: the buffer is dropped.
    import embcompress.store.scm as scm
    path, data, base = rows_file
    r = RowReader(path, base, 100, len(data), direct=direct, max_in_flight=2, max_read_bytes=BLOCK)
    per_block = BLOCK // 100
    first = np.arange(1500, 1500 + 8 * per_block, per_block)  # 8 rows in 8 blocks far into the file
    second = np.arange(0, 8 * per_block, per_block)  # 8 rows in the first 8 blocks
    real = os.preadv
    first_block = int(r.blocks_of(first)[0])
    n_late = len(r.blocks_of(first)[1::2])  # the second share's reads (one block a read)
    n_second = len(r.blocks_of(second))
    go, started, cond, count = threading.Event(), threading.Event(), threading.Condition(), {"late": 0, "second": 0}
    deadline = []

    def patched(fd, bufs, off):
        if threading.current_thread().name.startswith("embc-scm"):  # the first batch's pool
            if (off // BLOCK - first_block) % 2 == 0:  # the first share's reads
                if how == "error":  # once the other share runs (a share not started is cancelled)
                    started.wait(timeout=5)
                    raise OSError(5, "Input/output error")
                return real(fd, bufs, off)
            started.set()
            # Held until the next batch has read its blocks; a reader that waits for these reads
            # before raising lets them go after 1 s (a wait, not an assertion).
            if not deadline:
                deadline.append(time.monotonic() + 1)
            go.wait(timeout=max(0.0, deadline[0] - time.monotonic()))
            try:
                return real(fd, bufs, off)
            finally:
                with cond:
                    count["late"] += 1
                    cond.notify_all()
        n = real(fd, bufs, off)
        count["second"] += 1
        if count["second"] == n_second:  # the caller's last read of the second batch
            go.set()
            with cond:
                cond.wait_for(lambda: count["late"] == n_late, timeout=5)
        return n

    def interrupted(futures):
        started.wait(timeout=5)
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "preadv", patched)
    if how == "interrupt":
        monkeypatch.setattr(scm, "wait", interrupted)
    r.read_seconds = 1.0  # a slow device: the first batch goes to the pool
    with pytest.raises(OSError if how == "error" else KeyboardInterrupt):
        r.read(first)
    r.read_seconds = 1e-7  # memory speed: the second batch is read in this thread
    got, _ = r.read(second)
    monkeypatch.undo()
    assert np.array_equal(got, data[second])
    r.close()


def test_an_update_keeps_what_the_store_measured_of_its_reads(tmp_path, monkeypatch):
    # update_rows reopens the file with a new reader, which started again from the 100 us a read
    # a device takes: after every update of a page-cached table, the next batch of a few misses
    # went through the read pool's hand-offs that d0f9b0d took out of such batches.
    import embcompress.store.scm as scm
    from embcompress.formats import quantize
    from embcompress.store import TieredStore

    class Clock:  # every read measures 1 us: memory speed
        t = 0.0

        def perf_counter(self):
            self.t += 1e-6
            return self.t

    x = np.random.default_rng(0).standard_normal((20000, 40)).astype(np.float32)  # 34-byte rows
    q = quantize(x, "mxfp4_e2m1")
    path = q.save(tmp_path / "t.embc")
    with TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lru", max_in_flight=4) as store:
        monkeypatch.setattr(scm, "time", Clock())
        store._reader.read_seconds = 1e-6  # as the reads it served would have measured it
        store.update_rows(np.array([1]), x[[1]])
        readers = set()
        real = os.preadv

        def recording(fd, bufs, off):
            readers.add(threading.get_ident())
            return real(fd, bufs, off)

        monkeypatch.setattr(os, "preadv", recording)
        rows = np.arange(200, 20000, 400)  # 50 misses, 50 reads
        assert np.array_equal(store.rows(rows), q.data[rows])
        assert readers == {threading.get_ident()}
