import numpy as np

from embcompress.store.dram import DramTier
from embcompress.store.placement import top_rows


def _rec(rows, row_bytes=8):
    return (np.asarray(rows, dtype=np.int64)[:, None] % 251 + np.zeros((1, row_bytes), np.int64)).astype(np.uint8)


def _batch(t, rows):
    rows = np.asarray(rows, dtype=np.int64)
    slots = t.find(rows)
    t.note_access(rows, np.ones(len(rows), np.int64), slots)
    miss = rows[slots < 0]
    t.admit(miss, _rec(miss), np.ones(len(miss), np.int64))
    return slots >= 0


def _held(t):
    held = t.held_rows
    assert t.n_held == len(held)  # (the count stats() reads, kept as rows come and go)
    return set(held.tolist())


def test_top_rows_breaks_ties_to_the_lower_row():
    f = np.array([1, 5, 5, 0, 5, 2])
    assert top_rows(f, 2).tolist() == [1, 2]
    assert top_rows(f, 4).tolist() == [1, 2, 4, 5]
    assert top_rows(f, 0).tolist() == [] and top_rows(f, 9).tolist() == list(range(6))
    rng = np.random.default_rng(0)
    for _ in range(200):  # the linear-time selection against a full stable sort
        f = rng.integers(0, 4, rng.integers(1, 40)).astype(np.float64)
        k = int(rng.integers(1, len(f) + 1))
        assert top_rows(f, k).tolist() == sorted(np.argsort(-f, kind="stable")[:k].tolist())
        rows = rng.permutation(len(f))[: int(rng.integers(1, len(f) + 1))]  # a subset, in any order
        g = np.full(len(f), -1.0)
        g[rows] = f[rows]
        want = sorted(np.argsort(-g, kind="stable")[: min(k, len(rows))].tolist())
        assert top_rows(f, k, rows=rows).tolist() == want


def test_frequency_tier_is_static():
    t = DramTier(100, 8, 3, "frequency")
    t.set_hot(np.array([3, 7, 9]), _rec([3, 7, 9]))
    assert _batch(t, [3, 50, 51]).tolist() == [True, False, False]
    assert _held(t) == {3, 7, 9}  # misses are not admitted
    assert np.array_equal(t.data[t.find(np.array([7]))], _rec([7]))


def test_lru_evicts_the_least_recently_used():
    t = DramTier(100, 8, 3, "lru")
    _batch(t, [1, 2, 3])
    _batch(t, [1])  # 2 and 3 are now older than 1
    _batch(t, [4, 5])
    assert _held(t) == {1, 4, 5}
    assert _batch(t, [1, 4, 5]).all()
    # Records follow their rows through eviction.
    for r in (1, 4, 5):
        assert np.array_equal(t.data[t.find(np.array([r]))], _rec([r]))


def test_lfu_keeps_the_most_counted():
    t = DramTier(100, 8, 2, "lfu")
    for _ in range(3):
        _batch(t, [1, 2])
    _batch(t, [3])  # count 1 < 3: not admitted
    assert _held(t) == {1, 2}
    for _ in range(4):
        _batch(t, [3, 1])
    assert _held(t) == {1, 3}  # 3 (count 5) replaced 2 (count 3)
    assert np.array_equal(t.data[t.find(np.array([3]))], _rec([3]))


def test_write_through_replaces_held_copies_only():
    t = DramTier(10, 8, 2, "lru")
    _batch(t, [1, 2])
    new = np.full((2, 8), 7, np.uint8)
    t.write_through(np.array([2, 5]), new)
    assert (t.data[t.find(np.array([2]))] == 7).all()
    assert (t.data[t.find(np.array([1]))] == 1).all()


def test_lru_keeps_rows_hit_in_the_batch_and_admits_the_most_asked():
    t = DramTier(100, 8, 3, "lru")
    _batch(t, [1, 2, 3])
    rows = np.array([1, 10, 11, 12], dtype=np.int64)
    slots = t.find(rows)
    t.note_access(rows, np.array([1, 1, 5, 2]), slots)
    miss = rows[slots < 0]
    t.admit(miss, _rec(miss), np.array([1, 5, 2]))
    # Row 1 was hit this batch and stays; two slots are free to take: 11 (5 asks) and 12 (2 asks).
    assert _held(t) == {1, 11, 12}


def test_swap_hot_moves_only_what_changed_and_reuses_freed_slots():
    t = DramTier(100, 8, 4, "frequency")
    t.set_hot(np.array([1, 2, 3]), _rec([1, 2, 3]))
    slot2 = int(t.find(np.array([2]))[0])
    t.swap_hot(np.array([2, 3, 9, 10]), np.array([9, 10]), _rec([9, 10]))  # 1 leaves, 9 and 10 enter
    assert _held(t) == {2, 3, 9, 10} and t.find(np.array([1]))[0] == -1
    assert int(t.find(np.array([2]))[0]) == slot2  # kept rows keep their slot
    t.swap_hot(np.array([9]), np.array([], np.int64), _rec([]))  # shrink: three slots left empty
    assert _held(t) == {9}
    t.swap_hot(np.array([9, 20, 21, 22]), np.array([20, 21, 22]), _rec([20, 21, 22]))  # the holes are reused
    assert _held(t) == {9, 20, 21, 22} and t.n_used == 4
    for r in (9, 20, 21, 22):
        assert np.array_equal(t.data[t.find(np.array([r]))], _rec([r]))


def test_lru_and_lfu_match_a_reference_on_random_traces():
    # One row a batch: the tier must be exactly a textbook LRU, and an LFU that admits a missed row
    # when its count (kept for every row seen) beats the least counted held row's.
    from collections import OrderedDict

    for seed in range(60):
        rng = np.random.default_rng(seed)
        n, cap = 50, int(rng.integers(1, 12))
        lru, lfu = DramTier(n, 8, cap, "lru"), DramTier(n, 8, cap, "lfu")
        ref_lru, counts, ref_lfu = OrderedDict(), np.zeros(n, np.int64), set()
        for x in (rng.zipf(1.2, 300) % n).tolist():
            assert _batch(lru, [x])[0] == (x in ref_lru)
            ref_lru[x] = True
            ref_lru.move_to_end(x)
            if len(ref_lru) > cap:
                ref_lru.popitem(last=False)
            assert _held(lru) == set(ref_lru)
            assert _batch(lfu, [x])[0] == (x in ref_lfu)
            counts[x] += 1
            if x not in ref_lfu:
                low = min((counts[y] for y in ref_lfu), default=0)
                if len(ref_lfu) < cap:
                    ref_lfu.add(x)
                elif counts[x] > low:  # which of the tied least counted rows leaves is the tier's choice
                    gone = ref_lfu - _held(lfu)
                    assert len(gone) == 1 and counts[gone.pop()] == low
                    ref_lfu = _held(lfu)
            assert _held(lfu) == ref_lfu
        for t in (lru, lfu):  # records follow their rows; the capacity holds
            held = t.held_rows
            assert len(held) <= cap and np.array_equal(t.data[t.find(held)], _rec(held))


def test_the_held_count_follows_every_way_rows_come_and_go():
    for policy in ("frequency", "lru", "lfu"):
        t = DramTier(40, 8, 6, policy)
        t.set_hot(np.array([1, 2, 3]), _rec([1, 2, 3]))
        assert _held(t) == {1, 2, 3}
        t.swap_hot(np.array([2, 3, 9, 10]), np.array([9, 10]), _rec([9, 10]))
        assert _held(t) == {2, 3, 9, 10}
        t.replace(np.array([2, 30]), np.array([11, 12, 13]), _rec([11, 12, 13]))  # (30 was not held)
        assert _held(t) == {3, 9, 10, 11, 12, 13}
        t.fill(np.zeros(0, np.int64), _rec([]))
        for x in range(14, 30):  # admissions evict (lru, lfu) or are refused (frequency)
            _batch(t, [x, x])
            _held(t)
        t.clear()
        assert _held(t) == set()
