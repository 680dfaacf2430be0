"""Review 18: id maps, string ids, embeddings, clustering and the baselines."""

import numpy as np
import pytest

from learned_hash.cluster import FrequencyKMeans


def test_a_second_id_above_the_cap_is_alone_on_its_bucket_too():
    # Two ids above the cap on one point share its bucket; the second was evicted to the least
    # loaded bucket and put beside its three light ids (bucket traffic 103, cap 70) while another
    # bucket carried 3: the light ids now move on, and each heavy id is alone.
    X = np.array([[0.0], [0.0], [10], [11], [12], [20], [21], [22]], dtype=np.float32)
    w = np.array([100, 100, 1, 1, 1, 1, 1, 1], dtype=np.float64)
    km = FrequencyKMeans(3, max_share=0.34, seed=0).fit(X, w)
    cap = 0.34 * w.sum()
    counts = np.bincount(km.labels_, minlength=3)
    for i in (0, 1):
        assert counts[km.labels_[i]] == 1
    assert km.labels_[0] != km.labels_[1]
    assert km.bucket_weight_.max() <= 100 and np.sort(km.bucket_weight_)[0] <= cap
    # moved_by_balance_ counts ids whose bucket changed
    plain = FrequencyKMeans(3, seed=0).fit(X, w)
    assert km.moved_by_balance_ == np.count_nonzero(km.labels_ != plain.labels_)


def _pair_stats():
    from learned_hash.mining.stats import LogStats

    rng = np.random.default_rng(0)
    n = 2000
    cols = {"a": rng.integers(0, 20, n), "b": rng.integers(100, 110, n)}
    return LogStats.from_rows(cols, features=["a", "b"], pairs=[("a", "b")])


def test_cooccurrence_refuses_a_repeated_id():
    # the first copy got the id's counts and the second an empty row: one id, two embeddings
    from embcompress.errors import ConfigError
    from learned_hash.embed import cooccurrence

    stats = _pair_stats()
    ids = stats.frequencies("a")[0]
    with pytest.raises(ConfigError, match=r"The 'ids' parameter of cooccurrence must hold each id once\. "
                                          rf"Got 'id {ids[0]} repeated' instead\."):
        cooccurrence(stats, "a", np.array([ids[0], ids[1], ids[0]]))


def test_cooccurrence_refuses_a_partner_named_twice():
    # its block of columns was stacked twice (the fit's config recorded ['b', 'b'])
    from embcompress.errors import ConfigError
    from learned_hash import fit_hash
    from learned_hash.embed import cooccurrence

    stats = _pair_stats()
    ids = stats.frequencies("a")[0]
    with pytest.raises(ConfigError, match=r"The 'partners' parameter of cooccurrence must name each feature once\. "
                                          r"Got \"'b' twice\" instead\."):
        cooccurrence(stats, "a", ids, partners=["b", "b"])
    with pytest.raises(ConfigError, match="name each feature once"):
        fit_hash(stats, "a", 8, partners=["b", "b"], seed=0)


@pytest.mark.parametrize("values, fix", [
    ((v for v in ["a", "b"]), r"list\(values\)"),
    (iter(["a"]), r"list\(values\)"),
    (None, r"\[None\]"),
    ({"a", "b"}, "no order"),
])
@pytest.mark.parametrize("name", ["string_ids", "hash_strings", "parse_hex32"])
def test_string_hashes_refuse_what_is_not_a_sequence_in_our_terms(name, values, fix):
    # a generator, an iterator, None or a set failed with numpy's raw "iteration over a 0-d array"
    import embcompress.idhash as idhash
    from embcompress.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"The 'values' parameter of {name} must be a list or array of ids "
                                          rf"\(one per element\)\. Got a .* instead.*{fix}"):
        getattr(idhash, name)(values)


def test_idmap_load_names_itself_for_a_bad_verify(tmp_path):
    # the error named read_artifact, which the caller never called
    from embcompress.errors import ConfigError
    from embcompress.idmap import IdMap

    path = IdMap.from_arrays([1, 2], [0, 1], 4).save(tmp_path / "m.idmap")
    with pytest.raises(ConfigError, match=r"The 'verify' parameter of IdMap.load must be 'header' or 'full'\. "
                                          r"Got 'fast' instead\."):
        IdMap.load(path, verify="fast")


@pytest.mark.parametrize("call, owner", [
    (lambda seed: __import__("learned_hash.baselines").baselines.hash_map(10, seed=seed), "hash_map"),
    (lambda seed: __import__("learned_hash.baselines").baselines.frequency_map([1, 2], 10, hot_rows=1, seed=seed),
     "frequency_map"),
])
@pytest.mark.parametrize("seed", [-1, 1.5, 2**64])
def test_baseline_mappers_name_themselves_for_a_bad_seed(call, owner, seed):
    # the error named IdMap.from_arrays
    from embcompress.errors import ConfigError

    with pytest.raises(ConfigError, match=rf"The 'seed' parameter of {owner} must be an int in \[0, 2\*\*64\)\. "
                                          rf"Got {seed} instead\."):
        call(seed)


@pytest.mark.parametrize("big", [[1e39], [2e38, 2e38]])
def test_weights_beyond_float32_are_refused_in_our_terms(big):
    # they became inf in float32: numpy's raw "ValueError: Probabilities contain NaN" from the seeding
    from embcompress.errors import ConfigError

    X = np.random.default_rng(0).standard_normal((50, 3)).astype(np.float32)
    w = np.ones(50)
    w[: len(big)] = big
    with pytest.raises(ConfigError, match=r"The 'sample_weight' parameter of FrequencyKMeans.fit must be 50 finite "
                                          r"non-negative weights with a total below 3.4e\+38 .*Got 'a total of"):
        FrequencyKMeans(5, seed=0).fit(X, w)
