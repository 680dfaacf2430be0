"""Review of the learned-hash side (round 11): sequence ties in memory as on the engines, '~' in
log paths, refits, one-cold-row maps, zero vectors, options that only bind at a smaller budget,
and a fit on real data at a realistic budget."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from embcompress.errors import ConfigError
from embcompress.idhash import string_ids
from learned_hash import LogStats, fit_hash, mine


# --------------------------------------------------------------------------- 1. sequence ties


def _tied_strings():
    # two sessions; every row of a session at one time, so the order is the ties' order. The text
    # order (alpha < beta < mid < zeta) is not the hashes' order; a missing value sorts first
    a = ["zeta", "alpha", "mid", "beta", "", "alpha", "mid", "zeta", "beta", "zeta", "é", "Z"]
    s = [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
    t = [5, 5, 5, 5, 5, 3, 3, 7, 7, 7, 3, 3]
    return a, s, t


def test_from_rows_breaks_ties_of_string_ids_by_the_text_as_the_engines_do(tmp_path):
    a, s, t = _tied_strings()
    h = string_ids(np.array(a, dtype=object))
    assert not np.array_equal(np.argsort(h[:4]), np.argsort(np.array(a[:4])))  # the hash's order differs
    p = tmp_path / "ties.csv"
    p.write_text("a,s,t\n" + "".join(f"{x},{y},{z}\n" for x, y, z in zip(a, s, t)), encoding="utf-8")
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    on_duckdb = mine(p, kinds={"a": "string"}, **kw)
    for col in (np.array(a), np.array(a, dtype=object), [x.encode() for x in a], pa.array(a)):
        in_memory = LogStats.from_rows({"a": col, "s": np.array(s), "t": np.array(t)}, **kw)
        assert in_memory == on_duckdb
    miss, alpha, beta, mid, zeta = string_ids(np.array(["", "alpha", "beta", "mid", "zeta"], dtype=object)).tolist()
    prev, nxt, _ = in_memory.sequence_counts("a")
    pairs = set(zip(prev.tolist(), nxt.tolist()))
    assert {(miss, alpha), (alpha, beta), (beta, mid), (mid, zeta)} <= pairs
    # frequencies and pairs of string columns are those of their hashed ids
    hashed = LogStats.from_rows({"a": h, "s": np.array(s), "t": np.array(t)}, features=["a"])
    assert LogStats.from_rows({"a": np.array(a), "s": np.array(s)}, features=["a"]) == hashed


def test_the_readers_give_the_text_for_from_rows_to_order_ties_as_the_engines(tmp_path):
    # the in-memory path through the readers: read_log hashes string ids, so from_rows of its
    # columns ordered ties by the hash; with hash_strings=False they come as text
    from learned_hash import read_log

    a, s, t = _tied_strings()
    csv = tmp_path / "ties.csv"
    csv.write_text("a,s,t\n" + "".join(f"{x},{y},{z}\n" for x, y, z in zip(a, s, t)), encoding="utf-8")
    pqt = tmp_path / "ties.parquet"
    pq.write_table(pa.table({"a": pa.array([x or None for x in a]), "b": pa.array([x.encode() for x in a], pa.binary()),
                             "s": s, "t": t}), pqt)
    kw = dict(sequence_key="s", time_key="t")
    for path, features in ((csv, ["a"]), (pqt, ["a", "b"])):
        kinds = {"a": "string"}
        cols = read_log(path, features=features, session_key="s", time_key="t", kinds=kinds, hash_strings=False)
        assert cols["a"].dtype == object
        assert LogStats.from_rows(cols, features=features, **kw) == mine(path, features=features, kinds=kinds, **kw)
        hashed = read_log(path, features=features, session_key="s", time_key="t", kinds=kinds)
        assert hashed["a"].dtype == np.int64
        np.testing.assert_array_equal(hashed["a"], string_ids(cols["a"]))
    with pytest.raises(ConfigError, match="hash_strings"):
        read_log(csv, features=["a"], hash_strings="no")


@pytest.mark.parametrize("dtype", ["uint64", "int64"])
def test_from_rows_and_duckdb_agree_on_ties_of_integer_ids(tmp_path, dtype):
    big = [2**63 + 5, 1, 2**64 - 1, 7, 3, 2**63] if dtype == "uint64" else [2**62, 1, -5, 7, 3, -2**63 + 1]
    col = np.array(big, dtype=np.uint64).view(np.int64) if dtype == "uint64" else np.array(big, dtype=np.int64)
    s, t = np.array([1, 1, 1, 1, 2, 2]), np.array([5, 5, 5, 5, 1, 1])
    p = tmp_path / "ties.parquet"
    pq.write_table(pa.table({"a": pa.array(big, getattr(pa, dtype)()), "s": s, "t": t}), p)
    kw = dict(features=["a"], sequence_key="s", time_key="t")
    on_duckdb = mine(p, **kw)
    raw = np.array(big, dtype=np.uint64) if dtype == "uint64" else col
    assert LogStats.from_rows({"a": raw, "s": s, "t": t}, **kw) == on_duckdb
    assert LogStats.from_rows({"a": col, "s": s, "t": t}, **kw) == on_duckdb


def test_from_rows_names_the_fix_for_a_column_of_neither_ints_nor_strings():
    with pytest.raises(ConfigError, match="'a'"):
        LogStats.from_rows({"a": np.array([1.5, 2.5])}, features=["a"])
    with pytest.raises(ConfigError, match="'a'"):
        LogStats.from_rows({"a": np.array([1, "x"], dtype=object)}, features=["a"])


# --------------------------------------------------------------------------- 2. '~' in log paths


def test_a_log_path_or_glob_starting_with_a_tilde_is_read_from_the_home_folder(tmp_path, monkeypatch):
    # a shell expands '~' on the command line, Python does not: mine("~/logs/*.csv") said the glob
    # matched no files, and mine("~/logs/a.csv") that there was no such file
    from pathlib import Path

    from learned_hash import read_log

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "a.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "logs" / "b.csv").write_text("x,y\n5,6\n")
    for source, n in (("~/logs/*.csv", 3), ("~/logs/a.csv", 2), (Path("~/logs"), 3), (["~/logs/b.csv"], 1)):
        stats = mine(source, features=["x"], format="csv" if isinstance(source, Path) else None)
        assert stats.n_rows == n, source
        assert all(p.startswith(str(tmp_path)) for p in stats.source["paths"])
    assert read_log("~/logs/a.csv", features=["x"])["x"].tolist() == [1, 3]
    with pytest.raises(ConfigError, match=r"~/logs/\*\.parquet.*matches no files"):
        mine("~/logs/*.parquet", features=["x"])


# --------------------------------------------------------------------------- 3. refits


def _window(seed, ids, n=20_000):
    # a Zipf log over the given ids, with a context feature that groups them (id % 40)
    rng = np.random.default_rng(seed)
    rank = np.minimum(rng.zipf(1.3, n), ids.size) - 1
    item = ids[rank]
    ctx = (item % 40) * 10 + rng.integers(0, 2, n)
    return LogStats.from_rows({"item": item, "ctx": ctx}, features=["item", "ctx"], pairs=[("item", "ctx")])


@pytest.mark.parametrize("method", ["learned", "frequency"])
def test_a_refit_keeps_stored_ids_absent_from_the_new_log_on_their_rows(method):
    # README: a refit "keeps what it can on its old row"; an id the old map stored but the new log
    # does not hold was hashed again (on the Criteo sample 97 % of a learned map's stored ids moved,
    # nearly all for being absent from the dev file), though its row was still a bucket row
    ids = np.arange(1_000, 4_000, dtype=np.int64)
    old_stats = _window(0, ids)
    new_stats = _window(1, ids[np.arange(ids.size) % 3 != 0])  # a third of the ids are gone
    kw = dict(method=method, embedding="cooccurrence")
    first = fit_hash(old_stats, "item", 300, hot_rows=30, **kw)
    # (a frequency map stores hot ids only: with fewer hot rows, some of its rows turn cold)
    refit = fit_hash(new_stats, "item", 300, previous=first, hot_rows=None if method == "learned" else 20, **kw)
    seen = new_stats.frequencies("item")[0]
    dropped = ~np.isin(first.ids, seen) if method == "learned" else np.ones(first.n_mapped, bool)
    gone, old_rows = first.ids[dropped], first.rows[dropped]
    still_cold = refit.in_fallback(old_rows)
    assert np.count_nonzero(still_cold) > (500 if method == "learned" else 5)
    np.testing.assert_array_equal(refit.lookup(gone[still_cold]), old_rows[still_cold])
    carried = np.isin(refit.ids, first.ids) & ~np.isin(refit.ids, seen[:refit.meta["hot_ids"]])
    if method == "learned":
        assert refit.meta["carried_ids"] == int(np.count_nonzero(still_cold))
    # an id that was hot and whose row another id owns now is not kept there
    hot_taken = gone[~still_cold]
    assert np.all(refit.lookup(hot_taken[~np.isin(hot_taken, seen[:refit.meta["hot_ids"]])]) != old_rows[~still_cold][
        ~np.isin(hot_taken, seen[:refit.meta["hot_ids"]])])
    assert carried.sum() >= refit.meta["carried_ids"] > 0
    assert refit.moved_ids == int(np.count_nonzero(refit.lookup(first.ids) != first.rows))
    # the other ids map as they do in a refit with no room for carried ids
    plain = fit_hash(new_stats, "item", 300, previous=first, hot_rows=None if method == "learned" else 20,
                     max_mapped_ids=refit.n_mapped - refit.meta["carried_ids"], **kw)
    assert plain.meta["carried_ids"] == 0
    kept = refit.ids[~np.isin(refit.ids, plain.ids)]
    assert kept.size == refit.meta["carried_ids"]
    np.testing.assert_array_equal(refit.lookup(kept), first.lookup(kept))
    probe = np.concatenate([seen, np.arange(-3_000, 3_000)])
    probe = probe[~np.isin(probe, kept)]
    np.testing.assert_array_equal(refit.lookup(probe), plain.lookup(probe))
    assert refit.meta["moved_ids"] < plain.meta["moved_ids"]


def test_carried_ids_stay_within_max_mapped_ids():
    ids = np.arange(1_000, 4_000, dtype=np.int64)
    old_stats, new_stats = _window(0, ids), _window(1, ids[np.arange(ids.size) % 3 != 0])
    first = fit_hash(old_stats, "item", 300, embedding="cooccurrence", hot_rows=30)
    full = fit_hash(new_stats, "item", 300, embedding="cooccurrence", previous=first)
    own = full.n_mapped - full.meta["carried_ids"]  # the ids the new log makes the map store
    for cap, carried in ((100, 0), (own, 0), (own + 50, 50), (None, full.meta["carried_ids"])):
        refit = fit_hash(new_stats, "item", 300, embedding="cooccurrence", previous=first, max_mapped_ids=cap)
        assert refit.meta["carried_ids"] == carried
        assert cap is None or refit.n_mapped <= cap


# --------------------------------------------------------------------------- 4. corners of a fit


def _stats():
    rng = np.random.default_rng(0)
    item = np.minimum(rng.zipf(1.2, 20_000), 3_000) + 100
    ctx = (item % 30) * 3 + rng.integers(0, 3, item.size)
    return LogStats.from_rows({"item": item, "ctx": ctx}, features=["item", "ctx"], pairs=[("item", "ctx")])


@pytest.mark.parametrize("n_rows, hot_rows", [(1, None), (100, 99)])
def test_a_learned_map_with_one_cold_row_stores_no_clustered_id(n_rows, hot_rows):
    # every id the map does not store hashes to the one cold row anyway: the map stored every
    # clustered id (1,443 here) on that row, bytes for nothing
    stats = _stats()
    ids = stats.frequencies("item")[0]
    m = fit_hash(stats, "item", n_rows, hot_rows=hot_rows, embedding="cooccurrence")
    n_hot = m.meta["hot_ids"]
    assert m.n_fallback_rows == 1 and m.n_mapped == n_hot
    np.testing.assert_array_equal(m.lookup(ids[n_hot:]), np.full(ids.size - n_hot, n_rows - 1))
    np.testing.assert_array_equal(m.lookup(ids[:n_hot]), np.arange(n_hot))


def test_given_zero_vectors_are_hashed_as_ids_with_nothing_to_embed():
    # a zero vector has no direction: the k-means put every zero-vector id (a trained table's rows
    # left at zero, TableEmbedding keeps them zero) on one row, 12 % of the traffic here; the
    # co-occurrence embeddings hash such ids like unseen ones, and so do given vectors now
    stats = _stats()
    ids, counts = stats.frequencies("item")
    g = ids % 30
    vec = np.zeros((ids.size, 8), np.float32)
    vec[np.arange(ids.size), g % 8] = 1
    vec[:, 0] += (g // 8) * 0.5
    vec /= np.linalg.norm(vec, axis=1, keepdims=True)
    zero = (np.arange(ids.size) >= 40) & (np.arange(ids.size) % 2 == 0)
    vec[zero] = 0
    m = fit_hash(stats, "item", 200, embedding=(ids, vec), hot_rows=20)
    assert not np.isin(ids[zero], m.ids).any()
    assert m.meta["unembedded_ids"] == int(zero.sum())
    assert np.unique(m.lookup(ids[zero])).size > 100  # spread over the cold rows by the hash


# --------------------------------------------------------------------------- 5. a fit on real data


def test_randomized_svd_works_in_the_columns_that_hold_entries():
    # TalkingData x30 (1M ips): fit_hash of 'app' (161 ids, 104 clustered) took 185 s, in the SVD
    # of a 104 x 2M matrix (the ips of both label blocks) whose columns were nearly all empty (the
    # ips of clicked rows, and partners at or below chance, which PPMI zeroes): it drew, multiplied
    # and orthonormalized n x (k + 10) blocks over every column. Its memory shows it (no timing):
    # the blocks of the empty columns are no longer built, and the result is the same
    import tracemalloc

    import scipy.sparse as sp

    from learned_hash.embed import randomized_svd

    rng = np.random.default_rng(0)
    m, n, used = 60, 3_000_000, rng.choice(3_000_000, 400, replace=False)
    dense = rng.random((m, 5)) @ rng.random((5, used.size))  # rank 5: the range finder is exact
    A = sp.csr_matrix(dense)
    A = sp.csr_matrix((A.data, used[A.indices], A.indptr), shape=(m, n))
    tracemalloc.start()
    try:
        u, s, vt = randomized_svd(A, 5, seed=3)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert vt.shape == (5, n) and not vt[:, np.setdiff1d(np.arange(n), used)].any()
    assert peak < vt.nbytes + (64 << 20)  # was 1.5 GiB: blocks of 3M x 15 float64
    exact = np.linalg.svd(dense, full_matrices=False)
    np.testing.assert_allclose(s, exact[1][:5], rtol=1e-8)
    np.testing.assert_allclose((u * s) @ vt[:, used], dense, atol=1e-8)  # vt's columns line up with A's


@pytest.mark.parametrize("method", ["frequency", "learned"])
@pytest.mark.parametrize("cap", [None, 25])
def test_a_refit_keeps_the_hot_count_when_the_new_log_has_fewer_ids(method, cap):
    # README: a refit keeps the previous hot count, "so the cold rows stay the same" and hashed ids
    # keep their rows. It was cut to the new log's ids (or max_mapped_ids): a feature whose ids were
    # all hot (C4 into 4,096 rows in the README's command) refitted on a day without some of them
    # got a longer cold list, another hash modulus, and 86 % of its unseen ids moved
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 40, 4_000), rng.integers(0, 5, 4_000)
    old = LogStats.from_rows({"a": a, "b": b}, features=["a", "b"], pairs=[("a", "b")])
    keep = a < 30
    new = LogStats.from_rows({"a": a[keep], "b": b[keep]}, features=["a", "b"], pairs=[("a", "b")])
    kw = dict(method=method, embedding="cooccurrence")
    first = fit_hash(old, "a", 100, **kw)
    assert first.meta["hot_ids"] == 40
    refit = fit_hash(new, "a", 100, previous=first, max_mapped_ids=cap, **kw)
    assert refit.meta["hot_ids"] == 40 and refit.n_fallback_rows == first.n_fallback_rows
    np.testing.assert_array_equal(refit.fallback_rows, first.fallback_rows)
    probe = np.arange(1_000, 3_000)
    np.testing.assert_array_equal(refit.lookup(probe), first.lookup(probe))  # unseen ids keep their rows
    seen = new.frequencies("a")[0]
    n_seen = seen.size if cap is None else cap
    assert np.isin(seen[:n_seen], refit.ids).all()  # the new log's ids own hot rows
    if cap is None:  # the ids gone from the log keep their hot rows, which no other id took
        gone = np.arange(30, 40)
        np.testing.assert_array_equal(refit.lookup(gone), first.lookup(gone))
        assert refit.meta["carried_ids"] == 10
    else:
        assert refit.n_mapped == cap


@pytest.mark.parametrize("method", ["learned", "frequency", "hash"])
def test_fit_hash_reports_progress_from_its_start_to_its_end(method, monkeypatch):
    # fit-hash's bar is drawn at the first progress call: a learned fit called it only once the
    # ids were embedded and, below 4,096 buckets, once the k-means was done (1M ips into 4,096 rows:
    # 97 s of a blank terminal, then 100 %); a fit that clustered nothing never called it
    import learned_hash.embed as embed

    calls = []
    fit = embed.SpectralEmbedding._fit_matrix
    monkeypatch.setattr(embed.SpectralEmbedding, "_fit_matrix", lambda self, X: (calls.append("embed"), fit(self, X))[1])
    stats = _stats()
    fit_hash(stats, "item", 200, method=method, embedding="cooccurrence",
             progress=lambda done, total: calls.append((done, total)))
    assert calls[0] == (0, 1)
    assert calls[-1][0] == calls[-1][1] > 0
    assert all(0 <= c[0] <= c[1] for c in calls if c != "embed")
    if method == "learned":
        assert "embed" in calls
