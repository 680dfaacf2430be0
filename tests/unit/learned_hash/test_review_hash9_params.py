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


def test_a_trained_tables_weight_is_an_embedding_as_it_is(stats):
    # README: embedding=(ids, vectors), e.g. the rows of a trained model's table. The table's
    # weight (an nn.Parameter) raised torch's raw "Can't call numpy() on Tensor that requires grad",
    # and a bfloat16 table "Got unsupported ScalarType BFloat16", in fit_hash and TableEmbedding.
    torch = pytest.importorskip("torch")
    from learned_hash.embed import TableEmbedding

    ids = stats.frequencies("a")[0]
    table = torch.nn.Embedding(ids.size, 4)
    want = fit_hash(stats, "a", 30, embedding=(ids, table.weight.detach().numpy()))
    got = fit_hash(stats, "a", 30, embedding=(torch.from_numpy(ids), table.weight))
    assert np.array_equal(got.lookup(ids), want.lookup(ids))
    half = table.weight.detach().to(torch.bfloat16)
    m = fit_hash(stats, "a", 30, embedding=(ids, half))
    assert np.array_equal(m.lookup(ids), fit_hash(stats, "a", 30, embedding=(ids, half.float().numpy())).lookup(ids))
    assert np.array_equal(TableEmbedding(2).fit(table.weight).embedding_,
                          TableEmbedding(2).fit(table.weight.detach().numpy()).embedding_)
    assert TableEmbedding().fit(half).embedding_.shape == (ids.size, 4)


def test_vectors_without_a_column_are_refused_as_fit_hashs_embedding(stats):
    ids = stats.frequencies("a")[0]
    with pytest.raises(ConfigError, match="'embedding' parameter of fit_hash"):
        fit_hash(stats, "a", 30, embedding=(ids, np.zeros((ids.size, 0))))


@pytest.mark.parametrize("X,got", [(np.array([["a", "b"]]), "dtype <U1"), (np.zeros((2, 2, 2)), "shape (2, 2, 2)"),
                                   (np.array([[1 + 1j]]), "dtype complex128")])
def test_counts_that_are_no_count_matrix_are_refused_naming_the_parameter(X, got):
    # a text or 3-D array reached scipy and failed with its raw ValueError
    # ("could not convert string to float", "CSR arrays don't yet support 3D")
    from learned_hash.embed import LabelAwareEmbedding

    with pytest.raises(ConfigError, match=r"'X' parameter of SpectralEmbedding.fit.*" + __import__("re").escape(got)):
        SpectralEmbedding(2).fit(X)
    with pytest.raises(ConfigError, match="'X_pos' parameter of LabelAwareEmbedding.fit"):
        LabelAwareEmbedding(2).fit(X, X)


def test_frequency_map_takes_ids_as_fit_hash_and_IdMap_do():
    # frequency_map cast ids with np.asarray(ids, dtype=np.int64): id 1.5 became id 1 without a word,
    # a Python int above 2**63 - 1 raised a raw OverflowError and a string id a raw ValueError
    from learned_hash.baselines import frequency_map

    for bad, match in (([1.5, 2.0], "dtype float64"), (["a", "b"], "string_ids"), ([2**64 - 1, 3], "np.uint64")):
        with pytest.raises(ConfigError, match=rf"'ids' parameter of frequency_map.*{match}"):
            frequency_map(bad, 8, hot_rows=2)
    big = np.array([2**64 - 1, 3], dtype=np.uint64)  # hashed string ids, by their bit pattern
    m = frequency_map(big, 8, hot_rows=2)
    assert np.array_equal(m.lookup(big), [0, 1])


def test_collision_share_refuses_ids_it_cannot_look_up_as_given():
    # ids were cast to int64 first, so 1.7 and 2.2 were measured as ids 1 and 2; counts of another
    # length gave numpy's raw IndexError
    from embcompress.idmap import IdMap
    from learned_hash.build import collision_share

    m = IdMap.from_arrays([1, 2], [0, 1], 4)
    with pytest.raises(ConfigError, match="dtype float64"):
        collision_share(m, [1.7, 2.2], [1, 1])
    with pytest.raises(ConfigError, match="'counts' parameter of collision_share"):
        collision_share(m, [1, 2, 3], [1, 1])
    assert collision_share(m, np.array([1, 2, 5], dtype=np.uint64), [1, 1, 2]) == 0.0


@pytest.mark.parametrize("partners", [[], ()])
def test_an_empty_partner_list_is_refused_naming_the_default(stats, partners):
    # partners=[] reached the matrix code and failed with numpy's raw
    # "IndexError: index 0 is out of bounds for axis 1 with size 0"
    from learned_hash.embed import cooccurrence

    with pytest.raises(ConfigError, match=r"'partners' parameter.*at least one.*None"):
        fit_hash(stats, "a", 40, partners=partners)
    with pytest.raises(ConfigError, match=r"'partners' parameter.*at least one.*None"):
        cooccurrence(stats, "a", stats.frequencies("a")[0], partners=partners)


def test_a_stats_path_or_a_map_path_is_refused_naming_the_loader(stats, tmp_path):
    # fit_hash("out/log.stats", ...) failed with "AttributeError: 'str' object has no attribute
    # 'frequencies'"; a path as previous= named no way to open it
    path = stats.save(tmp_path / "log.stats")
    with pytest.raises(ConfigError, match=r"'stats' parameter of fit_hash.*LogStats.load"):
        fit_hash(str(path), "a", 40)
    with pytest.raises(ConfigError, match=r"'stats' parameter of fit_hash.*LogStats.load"):
        fit_hash(path, "a", 40)
    m = fit_hash(stats, "a", 40).save(tmp_path / "a.idmap")
    with pytest.raises(ConfigError, match=r"'previous' parameter of fit_hash.*IdMap.load"):
        fit_hash(stats, "a", 40, previous=str(m))


def test_cooccurrence_takes_ids_as_IdMap_does(stats):
    # np.asarray(ids, dtype=np.int64) counted id 1.5's row as id 1's
    from learned_hash.embed import cooccurrence

    ids = stats.frequencies("a")[0][:5]
    with pytest.raises(ConfigError, match=r"'ids' parameter of cooccurrence.*dtype float64"):
        cooccurrence(stats, "a", ids + 0.5)
    X, _ = cooccurrence(stats, "a", ids.astype(np.uint64))
    assert (X != cooccurrence(stats, "a", ids)[0]).nnz == 0


def test_a_numpy_thread_count_is_a_thread_count(stats):
    # fit_hash(n_threads=np.int64(2)) passed fit_hash's check and was refused by the thread
    # resolver as "must be a positive int or None. Got np.int64(2)"; so was IdMap.lookup's
    m = fit_hash(stats, "a", 40, n_threads=np.int64(2))
    assert m.config["cluster"]["n_threads"] in (1, 2)
    assert FrequencyKMeans(3, n_threads=np.int32(1)).fit(np.eye(5, dtype=np.float32)).settings_["n_threads"] == 1
    ids = stats.frequencies("a")[0]
    assert np.array_equal(m.lookup(ids, n_threads=np.int64(2)), m.lookup(ids, n_threads=2))
    with pytest.raises(ConfigError, match="n_threads"):
        m.lookup(ids, n_threads=np.int64(0))
