"""Review of the learned-hash estimators (round 9): what fit_hash accepts, the stages it hands it
to accept too, and what they refuse is said in their terms."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from learned_hash import LogStats, fit_hash
from learned_hash.cluster import FrequencyKMeans
from learned_hash.embed import SpectralEmbedding


@pytest.fixture(scope="module")
def stats():
    rng = np.random.default_rng(1)
    n = 3000
    return LogStats.from_rows({"a": rng.zipf(1.3, n) % 300, "b": rng.integers(0, 30, n)},
                              features=["a", "b"], pairs=[("a", "b")])


@pytest.mark.parametrize("share", [np.float32(0.5), np.float16(0.5), np.int64(1)])
def test_a_numpy_max_share_fit_hash_accepts_is_accepted_where_it_clusters(stats, share):
    # fit_hash let np.float32(0.5) through, then FrequencyKMeans refused it ("must be None or a
    # float in (0, 1]. Got np.float32(0.5)"), naming a class the caller never called
    m = fit_hash(stats, "a", 40, max_share=share)
    assert m.config["cluster"]["max_share"] == float(share)
    assert np.array_equal(m.lookup(m.ids), fit_hash(stats, "a", 40, max_share=float(share)).lookup(m.ids))


def test_numpy_numbers_are_parameters_of_the_estimators_too():
    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    km = FrequencyKMeans(5, max_share=np.float32(0.5), seed=0).fit(X)
    assert km.settings_["max_share"] == 0.5
    counts = np.array([[5, 0, 1], [0, 5, 1], [1, 1, 5]])
    a = SpectralEmbedding(2, alpha=np.float32(0.75)).fit(counts).embedding_
    assert np.array_equal(a, SpectralEmbedding(2, alpha=0.75).fit(counts).embedding_)
    for bad in (np.float32(0.0), np.float64(1.5), np.bool_(True)):
        with pytest.raises(ConfigError, match="max_share"):
            FrequencyKMeans(5, max_share=bad).fit(X)
        with pytest.raises(ConfigError, match="alpha"):
            SpectralEmbedding(2, alpha=bad).fit(counts)
