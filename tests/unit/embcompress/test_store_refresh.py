"""The frequency policy's own refresh: hot set re-ranked from mined plus served accesses."""

import threading

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.formats import quantize
from embcompress.kernels.lookup import pooled_lookup
from embcompress.store import TieredStore
from embcompress.store.placement import top_rows

N, DIM = 2000, 32


def _table(tmp_path, fmt="mxfp8_e4m3"):
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    q = quantize(x, fmt)
    return q.save(tmp_path / f"{fmt}.embc"), q


def _drifting_batches(n_batches, size=256, seed=3):
    # Zipf ranks over a popularity order that moves 300 rows on every 5 batches: old hot rows cool.
    rng = np.random.default_rng(seed)
    return [((rng.zipf(1.2, size) - 1 + 300 * (k // 5)) % N).astype(np.int64) for k in range(n_batches)]


def _prior():
    return np.bincount(np.concatenate(_drifting_batches(5, seed=9)), minlength=N).astype(np.float64)


@pytest.fixture(params=["numpy", "auto"])
def backend(request, monkeypatch):
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", request.param)
    return request.param


@pytest.mark.parametrize("every", [1, 3])
def test_refresh_equals_reloading_the_hot_set_by_hand(tmp_path, every):
    path, q = _table(tmp_path)
    prior = _prior()
    auto = TieredStore(path, dram_bytes=60 * q.row_bytes, frequencies=prior, refresh_every=every)
    by_hand = TieredStore(path, dram_bytes=60 * q.row_bytes, frequencies=prior)
    seen = prior.copy()
    for k, b in enumerate(_drifting_batches(12)):
        before = (auto.stats()["dram_hits"], by_hand.stats()["dram_hits"])
        assert np.array_equal(auto.rows(b), q.data[b]) and np.array_equal(by_hand.rows(b), q.data[b])
        assert auto.stats()["dram_hits"] - before[0] == by_hand.stats()["dram_hits"] - before[1]
        seen += np.bincount(b, minlength=N)  # occurrences, the unit of mined counts
        if (k + 1) % every == 0:
            by_hand.warm_up(seen)
    s = auto.stats()
    assert s["refreshes"] == 12 // every and s["dram_rows"] == 60
    # Only the rows that entered were read: fewer than reloading 60 rows at each refresh.
    assert 0 < s["refresh_rows"] < 60 * s["refreshes"] and s["refresh_blocks"] >= 1
    assert set(auto._dram.held_rows.tolist()) == set(top_rows(seen, 60).tolist())
    assert auto.refresh_every == every and "refresh_every=" in repr(auto)


def test_refresh_beats_the_static_set_on_a_drifting_log(tmp_path):
    path, q = _table(tmp_path)
    rates = {}
    for every, half_life in ((None, None), (1, None), (1, 1.0)):
        with TieredStore(path, dram_bytes=60 * q.row_bytes, frequencies=_prior(), refresh_every=every,
                         half_life=half_life) as s:
            for b in _drifting_batches(30):
                s.rows(b)
            rates[every, half_life] = s.stats()["hit_rate"]
    # The static set from the first batches goes stale; counts that forget follow the drift best.
    assert rates[None, None] + 0.02 < rates[1, None] < rates[1, 1.0] - 0.05


def test_half_life_forgets_old_accesses(tmp_path):
    path, q = _table(tmp_path)
    prior = np.zeros(N)
    prior[:10] = 1e6  # rows 0..9 dominate forever without decay
    new = np.arange(100, 110, dtype=np.int64)
    for half_life, expect_new in ((None, False), (0.05, True)):
        s = TieredStore(path, dram_bytes=10 * q.row_bytes, frequencies=prior, refresh_every=1, half_life=half_life)
        for _ in range(40):  # gain grows 2**20 a batch: rescaled several times on the way
            s.rows(new)
        assert np.isfinite(s._score).all()
        held = set(s._dram.held_rows.tolist())
        assert held == (set(new.tolist()) if expect_new else set(range(10)))
        s.reset_stats()
        s.rows(new)
        assert s.stats()["hit_rate"] == (1.0 if expect_new else 0.0)


@pytest.mark.parametrize("half_life", [None, 0.7, 4.0])
def test_ranking_the_hot_set_and_the_touched_rows_equals_ranking_every_row(tmp_path, half_life):
    path, q = _table(tmp_path)
    prior = np.round(_prior() / 3)  # many ties, broken toward the lower row
    s = TieredStore(path, dram_bytes=40 * q.row_bytes, frequencies=prior, refresh_every=2, half_life=half_life)
    for k, b in enumerate(_drifting_batches(24, size=64, seed=5)):
        s.rows(b)
        if k % 2:
            assert np.array_equal(np.sort(s._dram.held_rows), top_rows(s._score, 40))


def test_warm_up_with_new_frequencies_replaces_the_prior(tmp_path):
    path, q = _table(tmp_path)
    s = TieredStore(path, dram_bytes=5 * q.row_bytes, frequencies=np.arange(N, dtype=np.float64), refresh_every=2)
    s.rows(np.arange(5))
    f = np.zeros(N)
    f[[7, 8, 9, 10, 11]] = 100.0
    assert s.warm_up(f) == 5
    s.rows(np.arange(5))  # 1 access each: not enough to beat 100 at the next refresh
    s.rows(np.arange(5))
    assert s.stats()["refreshes"] == 1 and set(s._dram.held_rows.tolist()) == {7, 8, 9, 10, 11}


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4_e2m1", "int4_rowwise"])
def test_lookups_stay_exact_through_refreshes(tmp_path, backend, fmt):
    path, q = _table(tmp_path, fmt)
    with TieredStore(path, dram_bytes=50 * q.row_bytes, frequencies=_prior(), refresh_every=1, half_life=3.0) as s:
        for k, b in enumerate(_drifting_batches(10)):
            off = np.arange(0, len(b), 8, dtype=np.int64)
            mode = ("sum", "mean", "max")[k % 3]
            assert np.array_equal(s.pooled_lookup(b, off, mode=mode), pooled_lookup(q, b, off, mode=mode))
        assert s.stats()["refreshes"] == 10


def test_threads_while_refreshes_swap_the_hot_set(tmp_path):
    path, q = _table(tmp_path, "mxfp6_e3m2")
    batches = _drifting_batches(40, seed=7)
    offs = [np.arange(0, len(b), 8, dtype=np.int64) for b in batches]
    want = [pooled_lookup(q, b, o) for b, o in zip(batches, offs)]
    store = TieredStore(path, dram_bytes=50 * q.row_bytes, frequencies=_prior(), refresh_every=1, half_life=2.0)
    errors = []

    def work(t):
        for k in range(t, len(batches) * 3, 4):
            i = k % len(batches)
            if not np.array_equal(store.pooled_lookup(batches[i], offs[i], n_threads=1), want[i]):
                errors.append(k)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    s = store.stats()
    assert errors == []
    assert s["batches"] == 120 and 0 < s["refreshes"] <= 120 and s["dram_rows"] <= 50


def test_a_refresh_reads_updated_rows(tmp_path):
    path, q = _table(tmp_path)
    s = TieredStore(path, dram_bytes=4 * q.row_bytes, frequencies=np.arange(N, dtype=np.float64)[::-1].copy(),
                    refresh_every=1, device="nand")
    new = np.full((1, q.row_bytes), 9, np.uint8)
    s.update_rows(np.array([1500]), new)  # on file only
    for _ in range(3):
        s.rows(np.full(5000, 1500))  # hot enough to enter at the next refresh
    assert 1500 in s._dram.held_rows.tolist()
    before = s.stats()["dram_hits"]
    assert np.array_equal(s.rows([1500]), new) and s.stats()["dram_hits"] == before + 1
    st = s.stats()
    assert st["refresh_rows"] >= 1 and st["device_reads"] >= st["scm_rows"] + 1  # refresh reads are device reads too


def test_bad_refresh_parameters(tmp_path):
    path, q = _table(tmp_path)
    f = np.ones(N)
    for bad in (0, -1, 1.5, True, "1"):
        with pytest.raises(ConfigError, match="'refresh_every' parameter of TieredStore must be a positive int"):
            TieredStore(path, dram_bytes=q.row_bytes, frequencies=f, refresh_every=bad)
    with pytest.raises(ConfigError, match="'refresh_every'.*policy='lru'"):
        TieredStore(path, dram_bytes=q.row_bytes, policy="lru", refresh_every=1)
    for bad in (0, -2.0, float("nan"), float("inf"), True, "3"):
        with pytest.raises(ConfigError, match="'half_life' parameter of TieredStore must be a positive finite"):
            TieredStore(path, dram_bytes=q.row_bytes, frequencies=f, refresh_every=1, half_life=bad)
    with pytest.raises(ConfigError, match="'half_life'.*unless refresh_every"):
        TieredStore(path, dram_bytes=q.row_bytes, frequencies=f, half_life=10)


@pytest.mark.parametrize("half_life", [1e-5, 1 / 1050, 9.8e-4])
def test_a_half_life_of_a_small_fraction_of_a_batch_keeps_the_last_batch(tmp_path, half_life):
    # Decay 0.5 ** (1 / half_life) is 0.0 (1e-5), subnormal (1/1050) or just above the smallest
    # normal float (9.8e-4): a gain of 1 / decay is then a division by zero, inf, or overflows
    # once multiplied by a count. Every earlier access weighs (next to) nothing: the last batch wins.
    path, q = _table(tmp_path)
    s = TieredStore(path, dram_bytes=10 * q.row_bytes, frequencies=np.ones(N), refresh_every=1, half_life=half_life)
    for k in range(5):
        s.rows(np.repeat(np.arange(100, 110) + k, 100))
    assert np.isfinite(s._score).all()
    assert set(s._dram.held_rows.tolist()) == set(range(104, 114))



def test_stats_while_a_refresh_swaps_see_the_tier_whole(tmp_path, monkeypatch):
    # stats() must read the tier under the state lock: mid-swap the leaving rows are out and the
    # entering ones not yet in, the count of held rows between its two steps.
    # The interleaving is forced: stats() pauses where it reads the tier until the swap is half
    # done (or, when it holds the lock, gives up waiting, since the swap cannot start).
    from embcompress.store.dram import DramTier

    path, q = _table(tmp_path)
    s = TieredStore(path, dram_bytes=10 * q.row_bytes, frequencies=np.arange(N, dtype=np.float64)[::-1].copy(),
                    refresh_every=1)
    s.warm_up()  # rows 0..9
    at_read, mid, go = threading.Event(), threading.Event(), threading.Event()
    n_held = DramTier.n_held.fget

    def paused_n_held(tier):
        if threading.current_thread().name == "stats":
            at_read.set()
            mid.wait(2.0)
        return n_held(tier)

    monkeypatch.setattr(DramTier, "n_held", property(paused_n_held))
    place = s._dram._place

    def paused_place(*args):  # swap_hot calls it after taking the leaving rows out
        mid.set()
        go.wait()
        place(*args)

    s._dram._place = paused_place
    seen = []
    reader = threading.Thread(target=lambda: seen.append(s.stats()["dram_rows"]), name="stats")
    reader.start()
    at_read.wait()
    lookup = threading.Thread(target=s.rows, args=(np.full(5000, 1500),))  # 1500 enters, 9 leaves
    lookup.start()
    reader.join()
    go.set()
    lookup.join()
    assert seen == [10] and 1500 in s._dram.held_rows.tolist()


def test_a_refresh_whose_read_fails_leaves_later_refreshes_right(tmp_path):
    # The failed refresh has ranked (its top is the new last top) but not swapped: the tier still
    # holds the old set. Later refreshes must still rank each row once and reach the right set.
    path, q = _table(tmp_path)
    s = TieredStore(path, dram_bytes=4 * q.row_bytes, frequencies=np.arange(N, dtype=np.float64)[::-1].copy(),
                    refresh_every=1)
    s.warm_up()  # rows 0..3
    read, calls = s._reader.read, []

    def read_failing_on_the_second_call(rows):
        calls.append(len(rows))
        if len(calls) == 2:
            raise OSError(5, "Input/output error")
        return read(rows)

    s._reader.read = read_failing_on_the_second_call
    with pytest.raises(OSError, match="Input/output error"):
        s.rows(np.repeat([1600, 1601], 5000))  # the lookup's own read, then the refresh's, which fails
    assert sorted(s._dram.held_rows.tolist()) == [0, 1, 2, 3]
    for _ in range(2):
        assert np.array_equal(s.rows(np.repeat([1600, 1601, 3], 5000)), q.data[np.repeat([1600, 1601, 3], 5000)])
    assert sorted(s._dram.held_rows.tolist()) == top_rows(s._score, 4).tolist() == [0, 3, 1600, 1601]
    assert s.stats()["dram_rows"] == 4
