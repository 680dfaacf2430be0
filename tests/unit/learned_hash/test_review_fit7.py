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


# -- IdMap: ids of the wrong kind get an error naming the fix --------------------------------------

def _small_map():
    from embcompress import IdMap

    return IdMap.from_arrays(np.array([5, -3, 2**62]), np.array([0, 1, 2]), 10, seed=1)


@pytest.mark.parametrize("ids, fix", [
    (np.array([5.0, -3.0]), "astype(np.int64)"),                       # a pandas column with NaN is float
    ([2**64 - 3, 5], "dtype=np.uint64"),                               # hashed string ids as Python ints: NumPy makes them float64
    (np.array(["5", "abc"]), "string_ids"),                            # raw string ids
    (np.array([5, -3], dtype=object), "astype(np.int64)"),
])
def test_lookup_of_ids_that_are_not_integers_names_the_fix(ids, fix):
    from embcompress.errors import ConfigError

    m = _small_map()
    with pytest.raises(ConfigError, match="IdMap.lookup") as err:
        m.lookup(ids)
    assert fix in str(err.value)
    with pytest.raises(ConfigError, match="IdMap.from_arrays") as err:
        type(m).from_arrays(ids, np.zeros(len(ids), np.int64), 10)
    assert fix in str(err.value)


def test_lookup_takes_ids_of_every_integer_dtype_and_layout():
    m = _small_map()
    want = m.lookup(np.array([5, -3, 2**62, 7], np.int64))
    assert np.array_equal(m.lookup(np.array([5, -3, 2**62, 7], dtype=">i8")), want)
    assert np.array_equal(m.lookup(np.array([5, 2**64 - 3, 2**62, 7], np.uint64)), want)
    assert np.array_equal(m.lookup(np.array([5, -3, 0, 7], np.int32))[[0, 1, 3]], want[[0, 1, 3]])
    strided = np.array([5, 0, -3, 0, 2**62, 0, 7, 0])[::2]
    assert np.array_equal(m.lookup(strided), want)
    assert np.array_equal(m.lookup(np.asfortranarray(np.array([[5, 2**62], [-3, 7]]))), [[want[0], want[2]], [want[1], want[3]]])
    assert m.lookup(np.zeros((0, 3), np.int32)).shape == (0, 3)


# -- fit-hash: every feature is checked before the first one is fitted and written -----------------

def _cli_stats(tmp_path):
    rng = np.random.default_rng(0)
    cols = {"a": rng.integers(0, 60, 800), "b": rng.integers(0, 12, 800), "c": rng.integers(0, 9, 800)}
    path = tmp_path / "log.stats"
    LogStats.from_rows(cols, features=["a", "b", "c"], pairs=[("a", "b")]).save(path)
    return path


@pytest.mark.parametrize("features, extra, match", [
    (["a", "zz"], [], "zz"),                              # a feature that was not mined
    (["a", "c"], ["--partner", "b"], "partners"),         # a partner not mined with a later feature
])
def test_fit_hash_refuses_a_bad_feature_before_writing_any_map(tmp_path, capsys, features, extra, match):
    # 'a' was fitted and written (minutes on a big log), then the command stopped on the next
    # feature: --out-dir held part of a run and the user learned of the typo only at the end
    from embcompress.cli.main import main

    stats = _cli_stats(tmp_path)
    out = tmp_path / "maps"
    args = ["fit-hash", str(stats), "--rows", "16", "--out-dir", str(out), "--quiet", *extra]
    for f in features:
        args += ["--feature", f]
    with pytest.raises(SystemExit) as exit_:
        main(args)
    assert exit_.value.code == 1 and match in capsys.readouterr().err
    assert not out.exists() or not any(out.iterdir())


def test_fit_hash_refusal_names_the_mined_features(tmp_path, capsys):
    from embcompress.cli.main import main

    stats = _cli_stats(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit-hash", str(stats), "-f", "a", "-f", "zz", "--rows", "16", "--out-dir", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert "'zz'" in err and "['a', 'b', 'c']" in err


# -- refits cost memory in the ids, not in the table's rows ------------------------------------------

@pytest.mark.parametrize("method", ["frequency", "learned"])
def test_a_refit_of_a_table_larger_than_memory(method):
    # a first fit keeps the cold rows as a range (round 5); a refit built a permutation of every
    # row (np.full(n_rows) and np.setdiff1d(np.arange(n_rows), ...)): MemoryError for a table
    # beyond memory, and 16 bytes a row of any table (16 GB for a billion rows) for a few ids
    rng = np.random.default_rng(0)
    cols = {"a": rng.zipf(1.5, 3000) % 400, "b": rng.integers(0, 40, 3000)}
    stats = LogStats.from_rows(cols, features=["a", "b"], pairs=[("a", "b")])
    more = {k: np.concatenate([v, v[:500] + 7]) for k, v in cols.items()}
    later = LogStats.from_rows(more, features=["a", "b"], pairs=[("a", "b")])
    n_rows = 2**60
    old = fit_hash(stats, "a", n_rows, method=method)
    new = fit_hash(later, "a", n_rows, method=method, previous=old)
    assert new.n_rows == n_rows and new.nbytes <= 4 * old.nbytes + 4096
    ids = np.arange(-50, 500)
    rows = new.lookup(ids)
    assert rows.min() >= 0 and rows.max() < n_rows
    kept = np.isin(old.ids, new.ids)
    assert new.moved_ids == np.count_nonzero(new.lookup(old.ids) != old.rows)
    if method == "frequency":  # hot ids still hot keep their rows
        assert np.array_equal(new.lookup(old.ids[kept]), old.rows[kept])


# -- duplicate points: no bucket stays empty while another holds two ids ------------------------------

@pytest.mark.parametrize("k", [3, 5, 8, 20, 49, 50, 60])
def test_kmeans_of_duplicate_points_uses_every_bucket_it_can(k):
    # 5 distinct points, 10 copies each: with 8 to 49 buckets only 5 were used (every id sharing
    # its bucket with 9 others, the rest of the buckets empty), with 50 all 50 were
    from learned_hash.cluster import FrequencyKMeans

    rng = np.random.default_rng(0)
    X = np.repeat(rng.standard_normal((5, 4)).astype(np.float32), 10, axis=0)
    w = rng.integers(1, 9, 50)
    km = FrequencyKMeans(k, seed=0).fit(X, w)
    assert np.unique(km.labels_).size == min(k, 50) == km.n_clusters_
    assert np.isclose(km.bucket_weight_.sum(), w.sum())
    again = FrequencyKMeans(k, seed=0).fit(X, w)
    assert np.array_equal(km.labels_, again.labels_)


def test_two_level_kmeans_of_duplicate_points_uses_every_bucket():
    from learned_hash.cluster import FrequencyKMeans

    rng = np.random.default_rng(1)
    X = np.repeat(rng.standard_normal((30, 3)).astype(np.float32), 20, axis=0)
    km = FrequencyKMeans(100, two_level_above=16, seed=0).fit(X, rng.integers(1, 5, X.shape[0]))
    assert km.settings_["coarse_clusters"] and np.unique(km.labels_).size == 100


def test_fit_hash_uses_every_row_when_ids_share_their_only_partner():
    # ids seen with a partner of two values (Frappe's item with isweekend) have one of a few
    # embeddings: 348 of 1,000 rows were left without a seen id while thousands of ids collided
    rng = np.random.default_rng(0)
    a = rng.zipf(1.3, 20000) % 3000
    b = rng.integers(0, 2, a.size)
    stats = LogStats.from_rows({"a": a, "b": b}, features=["a", "b"], pairs=[("a", "b")])
    ids, counts = stats.frequencies("a")
    n_rows = 400
    m = fit_hash(stats, "a", n_rows)
    assert np.unique(m.lookup(ids)).size == n_rows
    assert m.meta["collision_share"] <= fit_hash(stats, "a", n_rows, method="hash").meta["collision_share"]


def test_fit_hash_on_frappe_items_by_weekend_uses_every_row():
    from tests.conftest import data_path
    from learned_hash import mine
    from learned_hash.logs import FRAPPE_FIELDS

    path = data_path("frappe", "frappe.validation.libfm")
    stats = mine(str(path), format="libfm", fields=FRAPPE_FIELDS, features=["item", "isweekend"],
                 pairs=[("item", "isweekend")])
    ids = stats.frequencies("item")[0]
    m = fit_hash(stats, "item", 1000)
    assert np.unique(m.lookup(ids)).size == 1000


# -- determinism and odd ids (checks that hold; kept so they stay so) ----------------------------------

def test_same_inputs_same_map_whatever_the_thread_count():
    # 9,000 ids into 6,000 rows: the two-level k-means (above 4,096 buckets), copies, empty buckets
    rng = np.random.default_rng(3)
    a = rng.zipf(1.2, 60000) % 9000 - 4500
    stats = LogStats.from_rows({"a": a, "b": rng.integers(0, 2, a.size), "c": a % 97},
                               features=["a", "b", "c"], pairs=[("a", "b"), ("a", "c")])
    maps = [fit_hash(stats, "a", 6000, seed=5, n_threads=t) for t in (1, 2, 3)]
    assert maps[0].config["cluster"]["coarse_clusters"]
    for m in maps[1:]:
        assert np.array_equal(m.ids, maps[0].ids) and np.array_equal(m.rows, maps[0].rows)
        assert np.array_equal(m.fallback_rows, maps[0].fallback_rows)


def test_extreme_and_unseen_ids_through_a_fit_and_a_refit():
    lo, hi = -(2**63), 2**63 - 1  # lo is MISSING_ID
    rng = np.random.default_rng(0)
    pool = np.array([lo, lo + 1, -1, 0, 1, hi - 1, hi, 10**18, -(10**18)], dtype=np.int64)
    a = np.concatenate([pool, rng.choice(pool, 300), rng.integers(-(10**18), 10**18, 300)])
    b = rng.integers(0, 7, a.size)
    stats = LogStats.from_rows({"a": a, "b": b}, features=["a", "b"], pairs=[("a", "b")])
    for n_rows in (1, 2, 7, 64, 5000):
        m = fit_hash(stats, "a", n_rows)
        again = fit_hash(stats, "a", n_rows, previous=m)
        assert again.moved_ids == 0
        unseen = np.array([lo + 2, hi - 2, 12345, -12345], dtype=np.int64)
        for probe in (pool, unseen):
            r = m.lookup(probe)
            assert r.min() >= 0 and r.max() < n_rows
            assert np.array_equal(again.lookup(probe), r)
            assert np.array_equal(m.lookup(probe.view(np.uint64)), r)


def test_a_feature_without_pairs_names_a_fix_the_command_line_has(tmp_path, capsys):
    # "or pass an embedding": fit-hash has no way to pass one; the frequency map needs no pairs
    from embcompress.cli.main import main

    stats = _cli_stats(tmp_path)
    with pytest.raises(SystemExit):
        main(["fit-hash", str(stats), "-f", "c", "--rows", "4", "--out-dir", str(tmp_path / "m"), "--quiet"])
    err = capsys.readouterr().err
    assert "no mined co-occurrence pairs" in err and "--method frequency" in err
    main(["fit-hash", str(stats), "-f", "c", "--rows", "4", "--method", "frequency", "--out-dir", str(tmp_path / "m"), "--quiet"])
