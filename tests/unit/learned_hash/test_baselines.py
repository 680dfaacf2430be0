import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.idmap import mix64
from learned_hash.baselines import choose_hot_rows, frequency_map, hash_map


def test_hash_map_is_the_seeded_hashing_trick():
    ids = np.arange(-1000, 1000) * 7919
    m = hash_map(97, seed=5)
    np.testing.assert_array_equal(m.lookup(ids), (mix64(ids, 5) % np.uint64(97)).astype(np.int64))
    assert m.nbytes == 0 and m.n_mapped == 0 and m.config["method"] == "hash"
    other = hash_map(97, seed=6).lookup(ids)
    assert np.mean(other == m.lookup(ids)) < 0.05  # a new seed is a new hash function
    # rows are used about evenly: 2000 ids in 97 rows, about 20.6 each
    occ = np.bincount(m.lookup(ids), minlength=97)
    assert occ.min() >= 6 and occ.max() <= 40


def test_frequency_map_hot_rows_then_hashing():
    ids = np.array([50, 40, 30, 20, 10])  # most accessed first
    m = frequency_map(ids, 10, hot_rows=2, seed=0)
    np.testing.assert_array_equal(m.lookup(ids[:2]), [0, 1])
    assert m.lookup(np.arange(100, 1000)).min() >= 2
    np.testing.assert_array_equal(m.fallback_rows, np.arange(2, 10))
    assert m.hot_rows == 2
    with pytest.raises(ConfigError, match="'hot_rows' parameter of frequency_map"):
        frequency_map(ids, 10, hot_rows=10)


@pytest.mark.parametrize(
    "counts, n_rows, expected",
    [
        # total 100 over 10 rows: an average row carries 10; ids with count >= 10 qualify
        ([40, 20, 10, 9, 9, 9, 3], 10, 3),
        # more qualifying ids than half the rows: capped at n_rows // 2
        ([10] * 10, 10, 5),
        # one row: no hot ids, the single row stays cold
        ([5, 1], 1, 0),
        ([], 8, 0),
    ],
)
def test_choose_hot_rows_rule(counts, n_rows, expected):
    assert choose_hot_rows(np.array(counts, dtype=np.int64), n_rows) == expected


def test_numpy_integer_arguments_give_a_map_that_saves(tmp_path):
    # n_rows, hot_rows and seed as NumPy integers went into the recorded config as such, and
    # save failed ("int64 is not JSON serializable").
    from embcompress.idmap import IdMap

    for m, want in ((hash_map(np.int64(10), seed=np.int64(3)), hash_map(10, seed=3)),
                    (frequency_map(np.arange(5), np.int64(10), hot_rows=np.int64(3), seed=np.uint64(2)),
                     frequency_map(np.arange(5), 10, hot_rows=3, seed=2))):
        back = IdMap.load(m.save(tmp_path / "m.idmap"))
        assert back.config == want.config
        np.testing.assert_array_equal(back.lookup(np.arange(-50, 50)), want.lookup(np.arange(-50, 50)))
