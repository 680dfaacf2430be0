"""Review of fit_hash (round 5): partners are checked whatever the size of the feature."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from learned_hash import LogStats, fit_hash


def small_stats():
    # two ids of 'a', both hot in 4 rows: nothing is left to embed
    cols = {"a": np.array([1, 3, 1]), "b": np.array([2, 4, 4]), "y": np.array([1, 0, 1])}
    return LogStats.from_rows(cols, features=["a", "b"], label="y", pairs=[("a", "b")])


@pytest.mark.parametrize("partners, match", [(["zzz"], "'partners' parameter"), (["a"], "session key")])
def test_a_partner_that_was_not_mined_is_refused_even_when_every_id_is_hot(partners, match):
    # a bigger feature refused these; a small one (every id hot) took them without a word
    stats = small_stats()
    assert fit_hash(stats, "a", 4).meta["hot_ids"] == 2
    with pytest.raises(ConfigError, match=match):
        fit_hash(stats, "a", 4, partners=partners)
    fit_hash(stats, "a", 4, partners=["b"])


@pytest.mark.parametrize("method", ["hash", "frequency", "learned"])
def test_a_table_larger_than_memory_gets_a_map(method):
    # the map keeps its cold rows as a range; fit_hash built them as np.arange(n_rows) first (and
    # counted rows with a bincount over n_rows): MemoryError for any table beyond memory, even
    # for the hashing trick, which stores no id
    rng = np.random.default_rng(0)
    cols = {"a": rng.integers(0, 300, 3000), "b": rng.integers(0, 40, 3000), "y": rng.integers(0, 2, 3000)}
    stats = LogStats.from_rows(cols, features=["a", "b"], label="y", pairs=[("a", "b")])
    n_rows = 2**60
    m = fit_hash(stats, "a", n_rows, method=method)
    small = fit_hash(stats, "a", 2**20, method=method)
    assert m.n_rows == n_rows and m.nbytes <= 8 * small.nbytes + 64
    ids = np.arange(-50, 400)
    rows = m.lookup(ids)
    assert rows.min() >= 0 and rows.max() < n_rows
    seen = stats.frequencies("a")[0]
    assert (np.isin(ids, seen) | (rows >= m.meta["hot_ids"])).all()  # unseen ids: cold rows only
    assert 0.0 <= m.meta["collision_share"] <= 1.0
