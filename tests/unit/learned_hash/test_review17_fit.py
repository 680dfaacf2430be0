"""Review 17 of fitting id maps: each test failed before its fix."""

import numpy as np
import pytest

from embcompress.cli.fit_hash import _parse_rows
from embcompress.errors import ConfigError
from learned_hash import fit_hash
from learned_hash.cluster import FrequencyKMeans
from learned_hash.mining.stats import LogStats


def _heavy_id_with_a_nearer_light_one():
    # three far groups; in the first, a light id (index 1) sits nearer the weighted centroid
    # (x = 0.495) than the heavy id (index 0), whose 20 accesses exceed the cap of 28 / 3
    X = np.array([[1, 0], [0.9, 0], [-10, 0], [100, 0], [100, 1], [100, 2], [200, 0], [200, 1], [200, 2]],
                 np.float32)
    w = np.array([20, 1, 1, 1, 1, 1, 1, 1, 1], float)
    return X, w


def test_an_id_heavier_than_the_cap_stays_alone_on_its_bucket():
    # The module promises that an id above max_share x total stays alone on its bucket. The
    # balancing kept the ids nearest the centroid up to the cap (the light id), evicted the heavy
    # one, and sent it to the least loaded bucket: back beside the light id.
    X, w = _heavy_id_with_a_nearer_light_one()
    km = FrequencyKMeans(3, max_share=1 / 3, n_threads=1, seed=0).fit(X, w)
    assert np.count_nonzero(km.labels_ == km.labels_[0]) == 1, km.labels_
    cap = w.sum() / 3
    others = np.delete(np.arange(w.size), np.flatnonzero(km.labels_ == km.labels_[0]))
    assert np.bincount(km.labels_[others], weights=w[others]).max() <= cap


def _zipf_log(seed, bump=None, n=6000):
    rng = np.random.default_rng(seed)
    item = rng.zipf(1.3, n) % 300
    if bump is not None:  # one id made hot
        item = np.concatenate([item, np.full(n // 10, bump)])
    ctx = (item % 9) * 4 + rng.integers(0, 4, item.size)
    return LogStats.from_rows({"item": item, "ctx": ctx}, features=["item", "ctx"], pairs=[("item", "ctx")],
                              source="zipf")


def test_a_refit_keeping_the_hot_count_keeps_scattered_hot_rows_hot():
    # A refit that raises the hot count puts the new hot rows where rows were free (scattered,
    # not at the head). The next refit keeps the hot count, so the cold rows should stay the same
    # set and every unstored id its row. An unmatched hot id was given the lowest free row, a
    # bucket's (row 9), while the hot row left free (21) went to a bucket: the cold list changed
    # and about 1 in 52 unseen ids moved.
    first = fit_hash(_zipf_log(0), "item", 60, hot_rows=5, seed=1)
    raised = fit_hash(_zipf_log(0), "item", 60, hot_rows=8, seed=1, previous=first)
    all_rows = np.arange(60)
    assert raised.fallback_is_array  # the hot rows are scattered (else this shows nothing)
    refit = fit_hash(_zipf_log(3, bump=100), "item", 60, seed=1, previous=raised)
    assert refit.n_fallback_rows == raised.n_fallback_rows
    np.testing.assert_array_equal(np.flatnonzero(~refit.in_fallback(all_rows)),
                                  np.flatnonzero(~raised.in_fallback(all_rows)))
    unseen = np.arange(10**9, 10**9 + 20_000)
    assert np.count_nonzero(refit.lookup(unseen) != raised.lookup(unseen)) == 0


def test_rows_per_feature_with_a_digit_int_cannot_read_is_refused_by_its_rule():
    # str.isdigit() holds for '²', which int() refuses: the command printed "invalid literal for
    # int() with base 10" instead of the option's rule
    with pytest.raises(ConfigError, match="FEATURE=N"):
        _parse_rows(["a"], None, ["a=²"])
    assert _parse_rows(["a"], None, ["a= 12 "]) == {"a": 12}
