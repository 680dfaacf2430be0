import numpy as np
import pytest

from embcompress.errors import ConfigError, NotFittedError
from learned_hash.cluster import FrequencyKMeans


def _blobs(n_blobs=5, per=200, d=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n_blobs, d)) * 10
    X = np.repeat(centers, per, axis=0) + rng.standard_normal((n_blobs * per, d)) * 0.1
    return X.astype(np.float32), np.repeat(np.arange(n_blobs), per)


def test_recovers_separated_blobs_deterministically():
    X, truth = _blobs()
    km = FrequencyKMeans(5, seed=1, n_threads=1).fit(X)
    # each blob in exactly one bucket and each bucket one blob
    assert len({(t, l) for t, l in zip(truth, km.labels_)}) == 5
    again = FrequencyKMeans(5, seed=1, n_threads=1).fit(X)
    np.testing.assert_array_equal(again.labels_, km.labels_)
    np.testing.assert_array_equal(km.predict(X), km.labels_)
    s = km.settings_
    assert s["max_points_per_centroid"] == 256 and s["seed"] == 1 and s["n_threads"] == 1 and s["coarse_clusters"] is None


def test_zero_traffic_clusters_as_unweighted():
    # With every weight 0, FAISS's weighted means are 0/0 and every point fell into bucket 0; the
    # seeding and the one-bucket case already took zero total traffic as "no weights".
    X, truth = _blobs()
    km = FrequencyKMeans(5, seed=1, n_threads=1).fit(X, np.zeros(len(X)))
    assert len({(t, l) for t, l in zip(truth, km.labels_)}) == 5 and np.unique(km.labels_).size == 5
    np.testing.assert_array_equal(km.bucket_weight_, np.zeros(5))


def test_numpy_integer_parameters_run_and_record_as_json():
    # Validation accepts NumPy integers; n_iter and max_points_per_centroid went to FAISS as such
    # (a TypeError from its SWIG layer) and settings_ (written into id-map files) held np.int64.
    import json

    X, _ = _blobs()
    want = FrequencyKMeans(5, n_iter=7, max_points_per_centroid=100, seed=1, n_threads=1).fit(X)
    km = FrequencyKMeans(np.int64(5), n_iter=np.int64(7), max_points_per_centroid=np.int64(100), seed=np.int64(1),
                         n_threads=1).fit(X)
    np.testing.assert_array_equal(km.labels_, want.labels_)
    assert json.loads(json.dumps(km.settings_)) == want.settings_


def test_weights_pull_buckets_towards_traffic():
    # points spread evenly on a line; those left of 0.2 carry 100x the traffic, so far more than
    # the unweighted fifth of the buckets should land there
    x = np.linspace(0, 1, 2000, dtype=np.float32)[:, None]
    w = np.where(x[:, 0] < 0.2, 100.0, 1.0)
    plain = FrequencyKMeans(20, seed=0).fit(x)
    km = FrequencyKMeans(20, seed=0).fit(x, w)
    left = lambda m: int((m.cluster_centers_[:, 0] < 0.2).sum())
    assert left(plain) <= 5 and left(km) >= 10
    np.testing.assert_allclose(km.bucket_weight_.sum(), w.sum())
    assert km.settings_["weighted"] and not plain.settings_["weighted"]


def test_fewer_points_than_clusters_gives_each_point_its_own_bucket():
    X, _ = _blobs(n_blobs=1, per=7)
    km = FrequencyKMeans(20).fit(X)
    assert km.n_clusters_ == 7
    np.testing.assert_array_equal(np.sort(km.labels_), np.arange(7))


def test_two_level_uses_every_bucket_and_follows_traffic():
    X, truth = _blobs(n_blobs=6, per=300)
    w = np.random.default_rng(0).zipf(2.0, X.shape[0]).astype(float)
    km = FrequencyKMeans(300, two_level_above=50, seed=0).fit(X, w)
    assert km.settings_["coarse_clusters"] == 18 and km.settings_["algorithm"].endswith("two-level")
    assert km.labels_.min() == 0 and km.labels_.max() == 299
    assert np.unique(km.labels_).size == 300
    # buckets never mix two far-apart blobs
    for b in range(300):
        assert np.unique(truth[km.labels_ == b]).size == 1


def test_allocate_is_proportional_capped_and_exact():
    alloc = FrequencyKMeans._allocate(np.array([90.0, 9.0, 1.0]), np.array([1000, 1000, 1000]), 100)
    np.testing.assert_array_equal(alloc, [90, 9, 1])
    alloc = FrequencyKMeans._allocate(np.array([90.0, 9.0, 1.0]), np.array([10, 1000, 1000]), 100)
    assert alloc.sum() == 100 and alloc[0] == 10 and alloc.min() >= 1
    alloc = FrequencyKMeans._allocate(np.array([1000.0, 0.0, 0.0, 0.0]), np.array([5, 5, 5, 5]), 4)
    np.testing.assert_array_equal(alloc, [1, 1, 1, 1])


def test_capacity_balancing_caps_bucket_traffic():
    X, truth = _blobs(n_blobs=2, per=400)
    w = np.where(truth == 0, 10.0, 1.0)
    plain = FrequencyKMeans(4, seed=0).fit(X, w)
    share = plain.bucket_weight_.max() / w.sum()
    km = FrequencyKMeans(4, seed=0, max_share=0.3).fit(X, w)
    assert km.bucket_weight_.max() / w.sum() <= 0.3 + 1e-9 < share
    assert km.moved_by_balance_ > 0 and km.settings_["max_share"] == 0.3


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n_clusters=0), "'n_clusters' parameter of FrequencyKMeans must be an int >= 1"),
        (dict(n_clusters=4, max_share=0.1), "at least 1 / n_clusters"),
        (dict(n_clusters=4, max_share=1.5), "'max_share'"),
        (dict(n_clusters=4, seed=2**40), "32-bit"),
        (dict(n_clusters=4, n_threads=0), "n_threads"),
    ],
)
def test_parameter_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FrequencyKMeans(**kwargs).fit(np.ones((10, 2)))


def test_input_validation_and_not_fitted():
    with pytest.raises(ConfigError, match="'X' parameter"):
        FrequencyKMeans(2).fit(np.ones(10))
    with pytest.raises(ConfigError, match="'sample_weight'"):
        FrequencyKMeans(2).fit(np.ones((10, 2)), -np.ones(10))
    with pytest.raises(NotFittedError):
        FrequencyKMeans(2).predict(np.ones((1, 2)))


def test_a_huge_thread_count_neither_crashes_nor_overflows():
    # n_threads went to faiss.omp_set_num_threads unclamped: 200,000 killed the process
    # (segfault) and 2**31 raised OverflowError. The labels do not depend on the thread count.
    # In a subprocess, so that a crash fails this test instead of the run.
    import os
    import subprocess
    import sys
    import textwrap

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    code = textwrap.dedent(
        """
        import numpy as np
        from learned_hash.cluster import FrequencyKMeans
        X = np.random.default_rng(0).standard_normal((20000, 8)).astype(np.float32)
        want = FrequencyKMeans(300, n_iter=3, seed=0, n_threads=1).fit(X).labels_
        for t in (200_000, 2**31):
            assert np.array_equal(FrequencyKMeans(300, n_iter=3, seed=0, n_threads=t).fit(X).labels_, want), t
        print("ok")
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "ok", res.stderr[-2000:]
