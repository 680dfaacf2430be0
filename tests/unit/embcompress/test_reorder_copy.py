"""reorder_rows copies the rows by reading the table file in order, a window of memory_bytes at a
time, never row by row at random (one random read a row once the table is larger than memory)."""

import os

import numpy as np
import pytest

import embcompress
from embcompress.errors import ConfigError
from embcompress.store import placement, reorder_rows
from embcompress.tablefile import open_table


class _Recording:
    """A (n, row_bytes) array that records the slices it is read by, and refuses anything else."""

    def __init__(self, arr):
        self.arr, self.shape, self.dtype, self.reads = arr, arr.shape, arr.dtype, []

    def __getitem__(self, key):
        assert isinstance(key, slice) and key.step is None, f"read by {key!r}, not a range of rows"
        self.reads.append((key.start, key.stop))
        return self.arr[key]


@pytest.mark.parametrize("window_rows", [1, 7, 64, 1000])
def test_rows_come_in_the_new_order_from_reads_in_file_order(monkeypatch, window_rows):
    rng = np.random.default_rng(0)
    n, rb = 1000, 5
    rows = rng.integers(0, 256, (n, rb), dtype=np.uint8)
    src = rng.permutation(n)  # the new position k holds old row src[k]
    new_of_old = np.argsort(src)
    monkeypatch.setattr(placement, "_COPY_BYTES", 13 * rb)  # reads of 13 rows
    rec = _Recording(rows)
    # (each window is valid until the next is asked for: the windows share one buffer)
    out = np.concatenate([w.copy() for w in placement._rows_in_order(rec, lambda a, b: new_of_old[a:b], window_rows * rb)])
    assert np.array_equal(out, rows[src])
    # blocks of 13 rows, read in file order: the read position goes back only where a window
    # starts (a block with none of a window's rows is not read for it)
    windows = -(-n // window_rows)
    assert all(a % 13 == 0 and b == min(n, a + 13) for a, b in rec.reads)
    backs = sum(b[0] <= a[0] for a, b in zip(rec.reads, rec.reads[1:]))
    assert backs <= windows - 1
    assert len(rec.reads) <= windows * -(-n // 13)


def _table(tmp_path, n=3000, dim=16):
    x = np.random.default_rng(1).standard_normal((n, dim)).astype(np.float32)
    q = embcompress.quantize(x, "mxint8", block_size=16)
    freq = np.random.default_rng(2).integers(0, 100, n)
    return q, freq, embcompress.write_table(tmp_path / "t.embc", q, frequencies=freq)


def test_a_small_window_writes_the_same_table_as_one_window(tmp_path):
    q, freq, path = _table(tmp_path)
    labels = np.random.default_rng(3).integers(0, 40, len(q))
    one = reorder_rows(path, tmp_path / "one.embc", clusters=labels)
    few = reorder_rows(path, tmp_path / "few.embc", clusters=labels, memory_bytes=7 * q.row_bytes + 3)
    a, b = open_table(one.path, verify="full"), open_table(few.path, verify="full")
    assert np.array_equal(a.data, q.data[one.order]) and np.array_equal(b.data, a.data)
    assert np.array_equal(b.frequencies, freq[few.order])
    # a table reordered before is reordered from its original rows, windowed as well
    labels2 = np.random.default_rng(4).integers(0, 9, len(q))
    again = reorder_rows(few.path, tmp_path / "again.embc", clusters=labels2, memory_bytes=q.row_bytes * 100)
    c = open_table(again.path, verify="full")
    assert np.array_equal(c.data, q.data[again.order]) and np.array_equal(c.frequencies, freq[again.order])


@pytest.mark.parametrize("bad", [0, -1, True, 2.5, "1GB"])
def test_memory_bytes_is_checked_before_anything_is_written(tmp_path, bad):
    q, _, path = _table(tmp_path, n=100)
    with pytest.raises(ConfigError, match="memory_bytes"):
        reorder_rows(path, tmp_path / "r.embc", clusters=np.zeros(len(q), dtype=np.int64), memory_bytes=bad)
    assert not (tmp_path / "r.embc").exists()


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="reads Linux's /proc/meminfo")
def test_the_default_window_is_a_quarter_of_the_available_memory():
    got = placement._default_copy_bytes()
    with open("/proc/meminfo") as fh:
        avail = next(int(line.split()[1]) * 1024 for line in fh if line.startswith("MemAvailable:"))
    assert got >= 64 << 20
    assert abs(got - max(64 << 20, avail // 4)) <= max(avail // 20, 64 << 20)  # (memory moves meanwhile)
