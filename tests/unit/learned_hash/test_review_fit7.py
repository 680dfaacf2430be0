"""Review of the fitting path (round 7): learned_hash.build / embed / cluster, embcompress.idmap,
the fit-hash command."""

import numpy as np
import pytest

from learned_hash import LogStats, fit_hash
from learned_hash.embed import NoPositiveCooccurrence, SpectralEmbedding, cooccurrence


def chance_stats(n_ids=10, n_partners=10):
    # every id of 'a' co-occurs with every id of 'b' equally often: no id is told apart by its
    # partners (PMI exactly 0 in exact arithmetic; about 4e-16 after rounding)
    a = np.repeat(np.arange(n_ids), n_partners)
    b = np.tile(np.arange(n_partners), n_ids)
    return LogStats.from_rows({"a": a, "b": b}, features=["a", "b"], pairs=[("a", "b")])


def test_co_occurrence_at_chance_is_no_co_occurrence_whatever_the_rounding():
    # PMI of 4.4e-16 (log(0.1) - log(0.1) computed two ways) was kept as a positive entry, and
    # normalizing the rows blew the rounding noise up to unit vectors; about one uniform
    # cross-product in twelve of these sizes did so (10 x 10 ones among them)
    stats = chance_stats()
    X, _ = cooccurrence(stats, "a", stats.frequencies("a")[0])
    with pytest.raises(NoPositiveCooccurrence):
        SpectralEmbedding(4).fit(X)
    kept = []
    for n_ids in range(2, 24):
        for n_partners in range(2, 24):
            for count in (1, 2, 5):
                try:
                    SpectralEmbedding(1).fit(np.full((n_ids, n_partners), count))
                    kept.append((n_ids, n_partners, count))
                except NoPositiveCooccurrence:
                    pass
    assert kept == []


def test_ppmi_keeps_small_real_associations():
    # the tolerance is on rounding only: an id twice as likely as chance with one partner among
    # many keeps its (small, positive) PMI
    X = np.ones((4, 400))
    X[0, 0] = 1.001  # PMI about 1e-3
    e = SpectralEmbedding(1, alpha=1).fit(X)
    assert e.n_components_ == 1 and np.linalg.norm(e.embedding_[0]) > 0


def test_ids_at_chance_are_hashed_as_documented_not_piled_on_one_row():
    # the module doc: ids "without co-occurrence above chance to embed ... hash into those cold
    # rows". They were clustered on rounding noise instead: identical noise vectors, so all 12 ids
    # on one row and the other 3 rows unused, every access colliding
    stats = chance_stats()
    ids = stats.frequencies("a")[0]
    m = fit_hash(stats, "a", 4)
    assert m.meta["hot_ids"] == 0
    assert m.meta["unembedded_ids"] == ids.size and m.n_mapped == 0
    hashed = fit_hash(stats, "a", 4, method="hash")
    assert np.array_equal(m.lookup(ids), hashed.lookup(ids))
    assert np.unique(m.lookup(ids)).size > 1
