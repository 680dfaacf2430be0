import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.idmap import IdMap, mix64
from learned_hash import fit_hash
from learned_hash.build import collision_share
from learned_hash.embed import TableEmbedding
from learned_hash.mining.stats import LogStats
from tests.conftest import hide_modules

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def planted_log(n_rows=60_000, n_groups=12, ids_per_group=40, partners_per_group=25, noise=0.1, seed=0):
    """A log whose feature "item" ids fall in known groups: ids of group g co-occur with the
    "context" ids of group g (and, with probability ``noise``, with any context id). Item ids are
    scattered int64 values; their popularity within a group follows a Zipf law. The label is
    positive more often in some groups. Returns (stats, group of each item id as a dict)."""
    rng = np.random.default_rng(seed)
    item_ids = rng.choice(2**40, n_groups * ids_per_group, replace=False).astype(np.int64)
    g = rng.integers(0, n_groups, n_rows)
    rank = np.minimum(rng.zipf(1.3, n_rows), ids_per_group) - 1
    item = item_ids[g * ids_per_group + rank]
    ctx = g * partners_per_group + rng.integers(0, partners_per_group, n_rows)
    flip = rng.random(n_rows) < noise
    ctx[flip] = rng.integers(0, n_groups * partners_per_group, flip.sum())
    y = (rng.random(n_rows) < 0.05 + 0.4 * (g % 2)).astype(np.int64)
    stats = LogStats.from_rows({"item": item, "ctx": ctx, "y": y}, features=["item", "ctx"], label="y",
                               pairs=[("item", "ctx")], source="planted")
    group = dict(zip(item_ids.tolist(), np.repeat(np.arange(n_groups), ids_per_group).tolist()))
    return stats, group


@pytest.fixture(scope="module")
def planted():
    return planted_log()


def _together(idmap, stats, group):
    """Of all pairs of seen ids in one group, the share that share a row; and the share of
    same-row pairs that are of one group (purity)."""
    ids, _ = stats.frequencies("item")
    rows = idmap.lookup(ids)
    grp = np.array([group[int(i)] for i in ids])
    same_row = rows[:, None] == rows[None, :]
    same_grp = grp[:, None] == grp[None, :]
    off = ~np.eye(ids.size, dtype=bool)
    return (same_row & same_grp & off).sum() / (same_grp & off).sum(), (same_row & same_grp & off).sum() / max((same_row & off).sum(), 1)


@pytest.mark.parametrize("embedding", ["cooccurrence", "label_aware"])
def test_planted_groups_share_rows_far_more_than_with_the_hashing_trick(planted, embedding):
    stats, group = planted
    n_rows = 24  # 12 groups, so each group has about 2 rows to itself
    learned = fit_hash(stats, "item", n_rows, hot_rows=0, embedding=embedding, seed=0)
    hashed = fit_hash(stats, "item", n_rows, method="hash", seed=0)
    together_l, purity_l = _together(learned, stats, group)
    together_h, purity_h = _together(hashed, stats, group)
    # hashing puts two ids of a group on one row with chance ~1/24, and a row's ids are ~1/12 one group
    assert together_h < 0.1 and purity_h < 0.15
    assert together_l > 0.5 and purity_l > 0.95
    assert together_l > 8 * together_h


def test_hot_ids_own_rows_and_unseen_ids_hash_into_cold_rows(planted):
    stats, group = planted
    ids, counts = stats.frequencies("item")
    m = fit_hash(stats, "item", 64, seed=1)
    k = m.meta["hot_ids"]
    # the default rule: ids whose count alone reaches an average row's traffic, at most half the rows
    assert k == min(int(np.sum(counts * 64 >= counts.sum())), 32) and k > 0
    hot = m.lookup(ids[:k])
    np.testing.assert_array_equal(hot, np.arange(k))
    others = m.lookup(ids[k:])
    assert not np.isin(others, hot).any()
    np.testing.assert_array_equal(m.fallback_rows, np.arange(k, 64))
    unseen = np.arange(-5000, 5000)
    rows = m.lookup(unseen)
    assert rows.min() >= k and np.unique(rows).size == 64 - k  # spread over every cold row
    assert m.hot_rows == k and m.meta["ids_seen"] == ids.size and m.meta["mapped_ids"] == ids.size
    assert 0 < m.meta["collision_share"] < 1
    assert m.config["cluster"]["max_points_per_centroid"] == 256 and m.config["embedding"]["kind"] == "label_aware"
    fixed = fit_hash(stats, "item", 64, hot_rows=3)
    assert fixed.meta["hot_ids"] == 3 and fixed.config["hot_rows_rule"] == "given"


def test_max_mapped_ids_bounds_the_map(planted):
    stats, _ = planted
    ids, _ = stats.frequencies("item")
    full = fit_hash(stats, "item", 40, seed=0)
    small = fit_hash(stats, "item", 40, max_mapped_ids=100, seed=0)
    assert small.n_mapped == 100 and full.n_mapped == ids.size
    assert small.nbytes < full.nbytes
    np.testing.assert_array_equal(np.sort(small.ids), np.sort(ids[:100]))
    # the ids beyond the budget hash into the cold rows exactly as unseen ids do
    beyond = ids[100:]
    cold = small.fallback_rows
    np.testing.assert_array_equal(small.lookup(beyond), cold[mix64(beyond, 0) % np.uint64(cold.size)])


def test_refit_keeps_unchanged_buckets_on_their_rows(planted):
    stats, _ = planted
    ids, _ = stats.frequencies("item")
    first = fit_hash(stats, "item", 30, seed=0)
    same = fit_hash(stats, "item", 30, seed=0, previous=first)
    assert same.meta["moved_ids"] == 0 == same.moved_ids
    np.testing.assert_array_equal(same.lookup(ids), first.lookup(ids))
    # another seed clusters differently: rows are relabelled so that each bucket whose ids are
    # unchanged sits on its old row, and the ids that moved are counted
    other = fit_hash(stats, "item", 30, seed=7)
    refit = fit_hash(stats, "item", 30, seed=7, previous=first)
    old_rows, new_rows = first.lookup(ids), refit.lookup(ids)
    for r in np.unique(other.lookup(ids)):
        members = other.lookup(ids) == r
        if np.unique(old_rows[members]).size == 1 and (old_rows == old_rows[members][0]).sum() == members.sum():
            np.testing.assert_array_equal(new_rows[members], old_rows[members])  # bucket unchanged
    assert refit.moved_ids == int(np.sum(refit.lookup(first.ids) != first.rows))
    assert refit.moved_ids < np.sum(other.lookup(first.ids) != first.rows)
    with pytest.raises(ConfigError, match="same n_rows"):
        fit_hash(stats, "item", 31, previous=first)


def test_baseline_methods_behind_the_same_call(planted):
    stats, _ = planted
    ids, counts = stats.frequencies("item")
    h = fit_hash(stats, "item", 50, method="hash", seed=3)
    assert h.n_mapped == 0 and h.nbytes == 0
    np.testing.assert_array_equal(h.lookup(ids), (mix64(ids, 3) % np.uint64(50)).astype(np.int64))
    f = fit_hash(stats, "item", 50, method="frequency", hot_rows=10, seed=3)
    np.testing.assert_array_equal(f.lookup(ids[:10]), np.arange(10))
    assert f.lookup(ids[10:]).min() >= 10
    assert f.config["method"] == "frequency" and f.meta["collision_share"] == pytest.approx(collision_share(f, ids, counts))


def test_embedding_from_a_trained_table(planted):
    stats, group = planted
    ids, _ = stats.frequencies("item")
    # a "trained table" whose rows are group centres plus noise
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((12, 16))
    table = np.stack([centres[group[int(i)]] for i in ids]) + 0.05 * rng.standard_normal((ids.size, 16))
    vectors = TableEmbedding(8, seed=0).fit_transform(table)
    m = fit_hash(stats, "item", 24, hot_rows=0, embedding=(ids, vectors), seed=0)
    assert m.config["embedding"] == {"kind": "given", "dim": 8}
    together, purity = _together(m, stats, group)
    assert purity > 0.9
    # ids without a vector are not mapped: they hash like unseen ids
    part = fit_hash(stats, "item", 24, hot_rows=0, embedding=(ids[:50], vectors[:50]), seed=0)
    assert part.n_mapped == 50 and part.meta["unembedded_ids"] == ids.size - 50


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="qr"), "'method' parameter of fit_hash"),
        (dict(hot_rows=40), "'hot_rows' parameter of fit_hash must be an int in \\[0, 39\\]"),
        (dict(method="hash", hot_rows=3), "hashing trick has no hot rows"),
        (dict(max_mapped_ids=-1), "'max_mapped_ids'"),
        (dict(embedding="word2vec"), "'embedding'"),
        (dict(embedding=(np.arange(3), np.ones((2, 4)))), "'embedding'"),
        # an id given two vectors is ambiguous (it used to take the first silently)
        (dict(embedding=(np.array([1, 2, 1]), np.eye(3))), "'embedding' parameter of fit_hash must .*each id once"),
        # ids must be a 1-D integer array: 2-D ids crashed with a TypeError, float ids were truncated
        # (and above 2**53 lose their low bits, so they silently name other ids)
        (dict(embedding=(np.arange(3)[:, None], np.eye(3))), "'embedding' parameter of fit_hash must .*1-D integer"),
        (dict(embedding=(np.arange(3) + 0.5, np.eye(3))), "'embedding' parameter of fit_hash must .*1-D integer"),
        (dict(previous="x"), "'previous'"),
        (dict(seed=-1), "'seed'"),
    ],
)
def test_validation(planted, kwargs, match):
    stats, _ = planted
    with pytest.raises(ConfigError, match=match):
        fit_hash(stats, "item", 40, **kwargs)


def test_numpy_integer_settings_are_recorded_as_json(planted, tmp_path):
    # n_components and n_iter were recorded (or passed to FAISS) as NumPy integers: the map's save
    # failed ("int64 is not JSON serializable") or the fit raised a TypeError inside FAISS.
    stats, _ = planted
    want = fit_hash(stats, "item", 24, n_components=8, n_iter=5, seed=2)
    m = fit_hash(stats, "item", 24, n_components=np.int64(8), n_iter=np.int64(5), seed=2)
    back = IdMap.load(m.save(tmp_path / "m.idmap"))
    assert back.config == want.config
    ids, _ = stats.frequencies("item")
    np.testing.assert_array_equal(back.lookup(ids), want.lookup(ids))


def test_learned_needs_cooccurrence():
    stats = LogStats.from_rows({"a": np.arange(100) % 7}, features=["a"])
    with pytest.raises(ConfigError, match="no mined co-occurrence pairs"):
        fit_hash(stats, "a", 4)
    with pytest.raises(ConfigError, match="needs stats mined with a label"):
        fit_hash(LogStats.from_rows({"a": np.arange(9) % 3, "b": np.arange(9) % 2}, features=["a"], pairs=[("a", "b")]),
                 "a", 4, embedding="label_aware")


def test_fit_hash_file_opens_with_only_embcompress(planted, tmp_path):
    stats, _ = planted
    ids, _ = stats.frequencies("item")
    m = fit_hash(stats, "item", 24, seed=2)
    path = m.save(tmp_path / "item.idmap")
    back = IdMap.load(path, verify="full")
    assert back.config["method"] == "learned" and back.inputs["stats"] == "planted" and back.meta == m.meta
    code = hide_modules("learned_hash", "analysis", "faiss", "scipy", "torch") + textwrap.dedent(
        f"""
        import numpy as np
        from embcompress import IdMap
        m = IdMap.load({str(path)!r}, verify='full')
        print(','.join(map(str, m.lookup(np.array({ids[:20].tolist()!r})))))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ",".join(map(str, m.lookup(ids[:20])))


@pytest.mark.data
def test_on_frappe_items_sharing_a_row_have_similar_users():
    """Real data: on Frappe, items the learned map puts on one row are used by similar users
    (cosine of their user co-occurrence vectors) about twice as much as under the hashing trick."""
    from tests.conftest import data_path
    from learned_hash import mine
    from learned_hash.embed import cooccurrence
    from learned_hash.logs import FRAPPE_FIELDS

    paths = [data_path("frappe", f) for f in ("frappe.test.libfm", "frappe.validation.libfm")]
    stats = mine(paths, features=["user", "item"], label="label", pairs=[("item", "user")], fields=FRAPPE_FIELDS)
    ids, _ = stats.frequencies("item")
    X, _ = cooccurrence(stats, "item", ids)
    X = X.toarray().astype(np.float64)
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    sim = X @ X.T

    def same_row_similarity(m):
        rows = m.lookup(ids)
        same = rows[:, None] == rows[None, :]
        np.fill_diagonal(same, False)
        return sim[same].mean()

    hashed = same_row_similarity(fit_hash(stats, "item", 256, method="hash", seed=0))
    for embedding in ("cooccurrence", "label_aware"):
        learned = same_row_similarity(fit_hash(stats, "item", 256, embedding=embedding, seed=0))
        assert learned > 1.6 * hashed, (embedding, learned, hashed)


def test_session_sequences_embed_ids_for_fit_hash():
    rng = np.random.default_rng(1)
    n_sessions, per = 600, 8
    sess = np.repeat(np.arange(n_sessions), per)
    grp = sess % 6
    item = grp * 1000 + rng.integers(0, 15, sess.size)
    cols = {"s": sess, "item": item, "t": np.tile(np.arange(per), n_sessions), "y": rng.integers(0, 2, sess.size)}
    stats = LogStats.from_rows(cols, features=["item"], label="y", sequence_key="s", time_key="t")
    m = fit_hash(stats, "item", 12, hot_rows=0, partners=["item"], seed=0)
    assert m.config["embedding"]["kind"] == "cooccurrence" and m.config["embedding"]["partners"] == ["item"]
    ids = stats.frequencies("item")[0]
    rows = m.lookup(ids)
    # every row holds ids of one session group only
    for r in np.unique(rows):
        assert np.unique(ids[rows == r] // 1000).size == 1


def test_ids_without_informative_cooccurrence_are_hashed_not_clustered():
    # id 7 co-occurs with nothing; 5 and 6 only with one partner each, at chance level (PPMI 0)
    stats = LogStats.from_arrays({"a": (np.array([5, 6, 7]), np.array([100, 50, 1]))},
                                 pairs={("a", "b"): (np.array([5, 6]), np.array([1, 1]), np.array([100, 50]))}, n_rows=151)
    m = fit_hash(stats, "a", 4, hot_rows=0, embedding="cooccurrence")
    assert m.n_mapped == 0 and m.meta["unembedded_ids"] == 3
    hot = fit_hash(stats, "a", 4, embedding="cooccurrence")  # 5 and 6 carry an average row's traffic
    assert hot.meta["hot_ids"] == 2 and hot.n_mapped == 2 and hot.meta["unembedded_ids"] == 1
    empty = LogStats.from_arrays({"a": (np.zeros(0, np.int64), np.zeros(0, np.int64))}, n_rows=0)
    for method in ("hash", "frequency"):
        assert fit_hash(empty, "a", 4, method=method).meta["ids_seen"] == 0
