"""Updates through one store reach the DRAM copies of others (the update log, store/updlog.py).

Two store objects on one file stand for two processes: each has its own DRAM tier and reader, and
the only thing they share is the file (and its log). A process test is in e2e/test_store_faults.py.
"""

import numpy as np
import pytest

from embcompress import open_table, pooled_lookup
from embcompress.formats import quantize
from embcompress.store import TieredStore, journal, updlog

N, DIM = 500, 32
HOT = np.arange(0, N, 5)  # the rows a frequency store holds


@pytest.fixture
def table(tmp_path):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, "mxint8")
    return q.save(tmp_path / "t.embc"), q


def _reader(path, q, policy="frequency"):
    freq = np.zeros(N)
    freq[HOT] = 1 + np.arange(len(HOT))
    store = TieredStore(path, dram_bytes=len(HOT) * q.row_bytes, policy=policy, frequencies=freq)
    store.warm_up()
    return store


def _new(q, k, value):
    return np.full((k, q.row_bytes), value, np.uint8)


def test_another_stores_update_replaces_the_held_copies(table):
    path, q = table
    reader = _reader(path, q)
    rows = np.array([0, 5, 7, 495])  # 0, 5 and 495 held in DRAM, 7 read from the file
    assert np.array_equal(reader.rows(rows), q.data[rows])
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as writer:
        writer.update_rows(rows, _new(q, 4, 0xA1))
    assert (reader.rows(rows) == 0xA1).all()
    assert reader.stats()["rows_reloaded"] == 3  # the held ones, read once
    idx, offs = np.array([0, 5, 7, 495, 10]), np.array([0, 2])
    assert np.array_equal(reader.pooled_lookup(idx, offs), pooled_lookup(open_table(path), idx, offs))
    reader.close()


def test_nothing_logged_costs_no_read(table, monkeypatch):
    path, q = table
    reader = _reader(path, q)
    calls = []
    real = reader._reader.read
    monkeypatch.setattr(reader._reader, "read", lambda rows: calls.append(len(rows)) or real(rows))
    reader.rows(HOT[:4])
    assert calls == []  # all held, nothing logged: no file read
    reader.close()


def test_a_new_log_epoch_reloads_every_held_row(table, monkeypatch):
    path, q = table
    reader = _reader(path, q)
    monkeypatch.setattr(updlog, "LOG_LIMIT", 0)  # every update past the first starts a new log
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as writer:
        writer.update_rows(np.array([5]), _new(q, 1, 0xB2))
        writer.update_rows(np.array([10]), _new(q, 1, 0xB3))
    assert updlog._epoch(updlog.log_path(path)) >= 1
    got = reader.rows(np.array([5, 10, 15]))
    assert (got[0] == 0xB2).all() and (got[1] == 0xB3).all() and np.array_equal(got[2], q.data[15])
    assert reader.stats()["rows_reloaded"] == len(HOT)  # all of them: the log no longer says which
    reader.close()


def test_a_log_that_cannot_be_parsed_reloads_every_held_row(table):
    path, q = table
    reader = _reader(path, q)
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as writer:
        writer.update_rows(np.array([5]), _new(q, 1, 0xC4))
    with open(updlog.log_path(path), "ab") as f:
        f.write(b"\x07\x00\x00")  # a torn record
    got = reader.rows(np.array([5, 10]))
    assert (got[0] == 0xC4).all() and np.array_equal(got[1], q.data[10])
    assert reader.stats()["rows_reloaded"] == len(HOT)
    reader.close()


def test_a_file_rewritten_whole_is_reopened(table, monkeypatch):
    # (an update whose checksum does not fit the header's padding renames a new file over the path)
    path, q = table
    reader = _reader(path, q, policy="lru")
    reader.rows(np.array([1, 2]))  # held now (lru admits)
    monkeypatch.setattr(journal, "_header_bytes", lambda *a: None)
    with TieredStore(path, dram_bytes=q.row_bytes, policy="lru") as writer:
        writer.update_rows(np.array([2, 3]), _new(q, 2, 0xD5))
    got = reader.rows(np.array([1, 2, 3]))  # 2 from DRAM (reloaded), 3 from the new file
    assert np.array_equal(got[0], q.data[1]) and (got[1:] == 0xD5).all()
    reader.close()
