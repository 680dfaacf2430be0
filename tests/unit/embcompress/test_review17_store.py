"""Review 17 of the tiered store: each test failed before its fix."""

import threading

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.formats import quantize
from embcompress.kernels.lookup import pooled_lookup
from embcompress.store import TieredStore

N, DIM = 200, 16


@pytest.fixture
def table(tmp_path):
    q = quantize(np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32), "mxfp8_e4m3")
    return q.save(tmp_path / "t.embc"), q


def _freq():
    return 1.0 / np.arange(1, N + 1)  # row 0 hottest


def _held_ok(store):
    held = store._dram.held_rows
    assert store.stats()["dram_rows"] == store._dram.n_held == len(held) == len(np.unique(held))


@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_lists_of_ids_are_taken_as_the_kernel_takes_them(table, policy):
    # np.asarray([]) is float64: the store refused an empty list of ids ("must be a 1-D (or 2-D)
    # array of int row ids. Got 'float64 of shape (0,)'") that pooled_lookup on the table takes,
    # and a ragged list raised numpy's raw "inhomogeneous shape" ValueError.
    path, q = table
    with TieredStore(path, dram_bytes=10 * q.row_bytes, policy=policy, frequencies=_freq()) as store:
        assert np.array_equal(store.pooled_lookup([], [0]), pooled_lookup(q, [], [0]))
        assert np.array_equal(store.pooled_lookup([3, 150], [0, 1]), pooled_lookup(q, [3, 150], [0, 1]))
        assert store.rows([]).shape == (0, q.row_bytes)
        store.update_rows([], np.zeros((0, DIM), np.float32))  # (nothing changed: a no-op)
        with pytest.raises(ConfigError, match="'indices' parameter of TieredStore.pooled_lookup.*rectangular"):
            store.pooled_lookup([[1, 2], [3]])
        _held_ok(store)


def test_a_warm_up_between_a_refresh_ranking_and_its_swap_wins(table):
    # A lookup served from DRAM ranks a due refresh under the state lock, then reads the rows
    # entering with neither lock held until it takes the file's shared side: a warm_up (another
    # thread) landing there loaded a new hot set, and the stale swap then put rows in that the
    # tier no longer had room for (the lookup raised numpy's "shape mismatch") or held twice.
    path, q = table
    store = TieredStore(path, dram_bytes=10 * q.row_bytes, frequencies=_freq(), refresh_every=2)
    store.warm_up()  # rows 0..9
    store.pooled_lookup(np.full(50, 100), np.array([0]))  # a miss: row 100 ranks into the top
    real, fired = store._file.shared, []

    def shared():
        if store._refreshing and not fired:
            fired.append(1)
            t = threading.Thread(target=store.warm_up, args=(_freq()[::-1].copy(),))  # rows 190..199
            t.start()
            t.join()
        return real()

    store._file.shared = shared
    idx = np.array([0, 5, 9], dtype=np.int64)
    assert np.array_equal(store.pooled_lookup(idx, np.array([0])), pooled_lookup(q, idx, np.array([0])))
    assert fired
    _held_ok(store)
    assert sorted(store._dram.held_rows.tolist()) == list(range(190, 200))  # the warm-up's set
    assert np.array_equal(store.rows(np.arange(N)), q.data)


@pytest.mark.parametrize("policy", ["frequency", "lru", "lfu"])
def test_stats_after_close_keep_the_capacity(table, policy):
    # close() frees the tier; stats() then said dram_capacity_rows=0 (and repr dram_rows=0), read
    # from the freed tier, though the counters stay readable for a report after a `with` block.
    path, q = table
    with TieredStore(path, dram_bytes=10 * q.row_bytes, policy=policy, frequencies=_freq()) as store:
        store.pooled_lookup(np.arange(20), np.array([0]))
    s = store.stats()
    assert s["dram_capacity_rows"] == 10 and s["batches"] == 1 and s["unique_rows"] == 20
    assert "dram_rows=10" in repr(store)
