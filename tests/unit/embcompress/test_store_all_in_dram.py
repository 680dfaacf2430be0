"""TieredStore batches whose rows are all in DRAM: served without the file lock and the reader,
recorded as any other batch (counters, LRU recency, refresh scores), never torn by updates."""

import numpy as np
import pytest

from embcompress.formats import quantize
from embcompress.kernels.lookup import pooled_lookup
from embcompress.store import TieredStore
from tests.conftest import torn_reads_during_updates

N, DIM = 500, 32


def _table(tmp_path, fmt="mxfp8_e4m3"):
    q = quantize(np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32), fmt)
    return q.save(tmp_path / "t.embc"), q


def _no_reads(store, monkeypatch):
    def refuse(rows):
        raise AssertionError(f"read {len(rows)} rows from the file for a batch wholly in DRAM")

    monkeypatch.setattr(store._reader, "read", refuse)


def test_a_batch_wholly_in_dram_reads_nothing_and_is_counted(tmp_path, backend, monkeypatch):
    path, q = _table(tmp_path)
    with TieredStore(path, dram_bytes=10 * q.row_bytes, frequencies=1.0 / np.arange(1, N + 1)) as store:
        store.warm_up()  # rows 0..9
        _no_reads(store, monkeypatch)
        idx = np.array([3, 3, 0, 9, 5, 3], dtype=np.int64)
        off = np.array([0, 2, 2], dtype=np.int64)  # an empty bag too
        for mode in ("sum", "mean", "max"):
            assert np.array_equal(store.pooled_lookup(idx, off, mode=mode), pooled_lookup(q, idx, off, mode=mode))
        assert np.array_equal(store.rows(idx), q.data[idx])
        empty = store.pooled_lookup(np.zeros(0, np.int64), np.zeros(2, np.int64))  # no ids at all
        assert empty.shape == (2, DIM) and not empty.any()
        s = store.stats()
        assert (s["batches"], s["lookups"], s["unique_rows"], s["dram_hits"], s["scm_rows"], s["blocks_read"]) == (
            5, 24, 16, 16, 0, 0)
        assert s["hit_rate"] == 1.0 and s["scm_seconds"] == 0.0


def test_lru_recency_is_recorded_for_batches_wholly_in_dram(tmp_path):
    # Rows used by a batch served wholly from DRAM are the most recent: the next misses evict
    # the rows that batch did not use.
    path, q = _table(tmp_path)
    with TieredStore(path, dram_bytes=4 * q.row_bytes, policy="lru") as store:
        store.rows(np.array([10, 11, 12, 13]))  # admitted
        store.rows(np.array([10, 12]))  # wholly in DRAM
        store.rows(np.array([20, 21]))  # two misses evict the least recent: 11 and 13
        assert sorted(store._dram.held_rows.tolist()) == [10, 12, 20, 21]


def test_refreshes_count_batches_wholly_in_dram(tmp_path):
    # refresh_every=1 ranks the hot set again after every batch, those served wholly from DRAM
    # included: their accesses enter the score.
    path, q = _table(tmp_path)
    freq = np.zeros(N)
    freq[:5] = 1.0
    with TieredStore(path, dram_bytes=5 * q.row_bytes, frequencies=freq, refresh_every=1) as store:
        store.warm_up()  # rows 0..4
        for _ in range(3):
            store.rows(np.array([0, 1, 2]))  # wholly in DRAM
        assert store.stats()["refreshes"] == 3
        # Rows 0..2 score 1 + 3; rows 100..109 get 3 each: they pass rows 3 and 4 (1 each) but
        # not rows 0..2, which they would (1 each) had the batches above not been counted.
        store.rows(np.arange(100, 110).repeat(3))
        assert sorted(store._dram.held_rows.tolist()) == [0, 1, 2, 100, 101]


def test_rows_updated_while_served_wholly_from_dram_are_never_torn(tmp_path):
    path, q = _table(tmp_path, "fp32")
    rows = np.arange(0, 40, dtype=np.int64)
    freq = np.zeros(N)
    freq[rows] = 1.0
    store = TieredStore(path, dram_bytes=40 * q.row_bytes, frequencies=freq)
    store.warm_up()  # every updated row is held
    store.update_rows(rows, np.zeros((len(rows), q.row_bytes), np.uint8))
    # the rows of a batch are copied in one step: all of one update, not only each row
    assert torn_reads_during_updates(store, rows, q.row_bytes, per_batch=True) == []
    assert (store.rows(rows) == 8).all()
    store.close()


@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_mixed_and_whole_dram_batches_equal_the_kernel(tmp_path, policy):
    path, q = _table(tmp_path, "mxfp4_e2m1")
    rng = np.random.default_rng(3)
    with TieredStore(path, dram_bytes=30 * q.row_bytes, policy=policy, frequencies=1.0 / np.arange(1, N + 1)) as store:
        for k in range(40):
            hi = 30 if k % 2 else N  # every other batch drawn from the rows most likely held
            idx = rng.integers(0, hi, 48).astype(np.int64)
            off = np.arange(0, 48, 6, dtype=np.int64)
            assert np.array_equal(store.pooled_lookup(idx, off), pooled_lookup(q, idx, off))
