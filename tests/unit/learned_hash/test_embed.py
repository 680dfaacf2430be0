import numpy as np
import pytest
import scipy.sparse as sp

from embcompress.errors import ConfigError, NotFittedError
from learned_hash.embed import LabelAwareEmbedding, _orthonormalize, SpectralEmbedding, TableEmbedding, cooccurrence, randomized_svd
from learned_hash.mining.stats import LogStats


def _blocks(n_groups=4, ids_per=30, partners_per=20, seed=0):
    """Ids of group g co-occur only with partners of group g."""
    rng = np.random.default_rng(seed)
    n_ids, n_part = n_groups * ids_per, n_groups * partners_per
    X = np.zeros((n_ids, n_part))
    for i in range(n_ids):
        g = i // ids_per
        cols = g * partners_per + rng.choice(partners_per, 8, replace=False)
        X[i, cols] = rng.integers(1, 20, 8)
    return sp.csr_matrix(X), np.arange(n_ids) // ids_per


def test_randomized_svd_matches_exact_svd_on_low_rank():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((200, 5)) @ rng.standard_normal((5, 80))
    u, s, vt = randomized_svd(sp.csr_matrix(A), 5, seed=1)
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False)[:5], rtol=1e-8)
    np.testing.assert_allclose(u @ np.diag(s) @ vt, A, atol=1e-8)
    u2, _, _ = randomized_svd(A, 5, seed=1)
    np.testing.assert_allclose(u, u2, atol=1e-10)  # dense or sparse, same signs


def test_spectral_embedding_separates_planted_groups_and_is_seeded():
    X, groups = _blocks()
    est = SpectralEmbedding(8, seed=3).fit(X)
    E = est.embedding_
    assert E.shape == (X.shape[0], 8) and E.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(E, axis=1), 1, atol=1e-5)
    sim = E @ E.T
    same = groups[:, None] == groups[None, :]
    assert sim[same].mean() > 0.5 > 0.1 > sim[~same].mean()
    np.testing.assert_array_equal(SpectralEmbedding(8, seed=3).fit_transform(X), E)
    np.testing.assert_allclose(est.transform(X), E, atol=1e-6)
    assert est.n_components_ == 8 and est.n_features_in_ == X.shape[1]


def test_ids_without_cooccurrence_get_zero_rows_and_small_matrices_fewer_components():
    X = sp.csr_matrix(np.array([[3, 0, 1], [0, 0, 0], [1, 2, 0]]))
    est = SpectralEmbedding(16).fit(X)
    assert est.n_components_ <= 3
    assert not est.embedding_[1].any()


def test_label_aware_tells_clicking_partners_apart():
    # ids 0..19 share the same partner distribution, but ids 0..9 appear in clicked rows and
    # 10..19 in unclicked ones: plain co-occurrence cannot separate them, label-aware can.
    rng = np.random.default_rng(0)
    base = rng.integers(1, 10, size=(20, 12)).astype(float)
    pos = base * (np.arange(20)[:, None] < 10)
    neg = base - pos
    plain = SpectralEmbedding(4, seed=0).fit_transform(pos + neg)
    aware = LabelAwareEmbedding(4, seed=0).fit_transform(pos, neg)
    cross = lambda E: float((E[:10] @ E[10:].T).mean())
    within = lambda E: float((E[:10] @ E[:10].T).mean())
    assert cross(aware) < 0.1 < 0.5 < within(aware)
    # without the label the two halves look alike: no more similar within than across
    assert abs(within(plain) - cross(plain)) < 0.1
    est = LabelAwareEmbedding(4, seed=0).fit(pos, neg)
    np.testing.assert_allclose(est.transform(pos, neg), est.embedding_, atol=1e-6)


def test_table_embedding_reduces_and_normalizes():
    rng = np.random.default_rng(0)
    W = rng.standard_normal((100, 3)) @ rng.standard_normal((3, 16)) + 5
    est = TableEmbedding(3, seed=0).fit(W)
    assert est.embedding_.shape == (100, 3) and est.components_.shape == (3, 16)
    np.testing.assert_allclose(np.linalg.norm(est.embedding_, axis=1), 1, atol=1e-5)
    full = TableEmbedding(normalize=False).fit_transform(W.astype(np.float32))
    np.testing.assert_allclose(full, W.astype(np.float32))


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: SpectralEmbedding(0).fit(np.ones((3, 3))), "'n_components' parameter of SpectralEmbedding"),
        (lambda: SpectralEmbedding(alpha=2).fit(np.ones((3, 3))), "'alpha'"),
        (lambda: SpectralEmbedding().fit(-np.ones((3, 3))), "non-negative"),
        (lambda: SpectralEmbedding().fit([[1, 2]]), "'X' parameter"),
        (lambda: SpectralEmbedding().fit(np.ones((3, 3))), "no positive co-occurrence"),
        (lambda: LabelAwareEmbedding().fit(np.ones((3, 3)), np.ones((3, 2))), "same shape"),
        (lambda: TableEmbedding(5).fit(np.ones((4, 3))), "'n_components' parameter of TableEmbedding"),
        (lambda: TableEmbedding().fit(np.full((2, 2), np.nan)), "finite"),
    ],
)
def test_validation(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_not_fitted():
    with pytest.raises(NotFittedError, match="not fitted"):
        SpectralEmbedding().transform(np.ones((2, 2)))


def test_cooccurrence_from_stats_matches_pair_counts_and_label_split():
    rng = np.random.default_rng(0)
    n = 3000
    cols = {"a": rng.integers(0, 40, n), "b": rng.integers(100, 130, n), "c": rng.integers(0, 5, n),
            "y": rng.integers(0, 2, n)}
    stats = LogStats.from_rows(cols, features=["a", "b", "c"], label="y", pairs=[("a", "b"), ("c", "a")])
    ids = stats.frequencies("a")[0][::-1]  # any order of rows
    X, partners = cooccurrence(stats, "a", ids)
    assert partners == ["b", "c"] and X.shape == (ids.size, 30 + 5)
    assert X.sum() == 2 * n
    ia, ib, c = stats.pair_counts("a", "b")
    where = {int(x): k for k, x in enumerate(ids)}
    i, j = np.array([where[int(x)] for x in ia]), np.searchsorted(np.unique(ib), ib)
    np.testing.assert_array_equal(np.asarray(X[i, j]).ravel(), c)
    Xp, _ = cooccurrence(stats, "a", ids, label=1)
    Xn, _ = cooccurrence(stats, "a", ids, label=0)
    assert (Xp + Xn - X).nnz == 0
    assert Xp.sum() == 2 * cols["y"].sum()
    only_b, _ = cooccurrence(stats, "a", ids[:5], partners=["b"])
    assert only_b.shape == (5, 30)
    with pytest.raises(ConfigError, match="partners"):
        cooccurrence(stats, "a", ids, partners=["zzz"])
    with pytest.raises(ConfigError, match="no mined co-occurrence"):
        cooccurrence(LogStats.from_rows(cols, features=["a"]), "a", ids)


def test_transform_ignores_partners_unseen_in_fit():
    X, _ = _blocks()
    X = X.tolil()
    X[:, 0] = 0  # partner 0 never seen in fit
    est = SpectralEmbedding(4, seed=0).fit(X.tocsr())
    new = X.tocsr().copy().tolil()
    new[0, 0] = 5
    out = est.transform(new.tocsr())
    assert np.isfinite(out).all()
    assert out[0] @ est.embedding_[0] > 0.99  # the unknown partner does not move the id


def test_orthonormalize_spans_the_columns_even_when_rank_deficient():
    rng = np.random.default_rng(0)
    for Y in (rng.standard_normal((500, 12)), np.repeat(rng.standard_normal((500, 3)), 4, axis=1)):
        Q = _orthonormalize(Y)
        np.testing.assert_allclose(Q.T @ Q, np.eye(12), atol=1e-8)
        np.testing.assert_allclose(Q @ (Q.T @ Y), Y, atol=1e-8)  # Y lies in span(Q)


def test_session_sequences_as_partners():
    # sessions walk within one of two id groups: 0..9 or 100..109
    rng = np.random.default_rng(0)
    sess, item, t = [], [], []
    for s in range(400):
        base = 0 if s % 2 else 100
        for k in range(6):
            sess.append(s)
            item.append(base + int(rng.integers(0, 10)))
            t.append(k)
    cols = {"s": np.array(sess), "item": np.array(item), "t": np.array(t), "y": rng.integers(0, 2, len(sess))}
    stats = LogStats.from_rows(cols, features=["item"], label="y", sequence_key="s", time_key="t")
    ids = stats.frequencies("item")[0]
    X, partners = cooccurrence(stats, "item", ids, partners=["item"])
    prev, nxt, c = stats.sequence_counts("item")
    assert partners == ["item"] and X.sum() == 2 * c.sum()
    E = SpectralEmbedding(2, seed=0).fit_transform(X)
    group = ids >= 100
    sim = E @ E.T
    assert sim[group[:, None] == group[None, :]].mean() > 0.9 > 0.1 > sim[group[:, None] != group[None, :]].mean()
    with pytest.raises(ConfigError, match="not split by label"):
        cooccurrence(stats, "item", ids, partners=["item"], label=1)
    with pytest.raises(ConfigError, match="session key"):
        cooccurrence(LogStats.from_rows(cols, features=["item"]), "item", ids, partners=["item"])
