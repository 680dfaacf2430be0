"""LogStats: canonical order, label splits, sparse matrices, sequences, and its file."""

from collections import Counter

import numpy as np
import pytest

from embcompress.container import read_artifact
from embcompress.errors import ArtifactError, ChecksumError, ConfigError
from embcompress.idhash import MISSING_ID
from learned_hash.mining.stats import LogStats


@pytest.fixture
def rows():
    rng = np.random.default_rng(1)
    n = 2000
    return {
        "a": rng.zipf(1.5, n) % 50,
        "b": np.where(rng.random(n) < 0.1, MISSING_ID, rng.integers(0, 20, n)),
        "y": rng.integers(0, 2, n),
        "user": rng.integers(0, 30, n),
        "t": rng.integers(0, 100, n),
    }


def stats_of(rows, **kw):
    return LogStats.from_rows(rows, features=["a", "b"], label="y", pairs=[("a", "b")],
                              sequence_key="user", time_key="t", **kw)


def test_from_rows_counts_and_order(rows):
    s = stats_of(rows)
    ids, counts = s.frequencies("a")
    assert dict(zip(ids.tolist(), counts.tolist())) == Counter(rows["a"].tolist())
    assert ids.dtype == np.int64 and counts.dtype == np.int64
    # count descending, ties by id ascending
    assert np.all(np.lexsort((ids, -counts)) == np.arange(len(ids)))
    pids, pos = s.positives("a")
    assert np.array_equal(pids, ids)
    want = Counter(rows["a"][rows["y"] > 0].tolist())
    assert pos.tolist() == [want.get(i, 0) for i in ids.tolist()]
    assert s.n_rows == 2000 and s.summary("b")["missing"] == int((rows["b"] == MISSING_ID).sum())


def test_pairs_split_by_label_and_matrix(rows):
    s = stats_of(rows)
    ia, ib, c = s.pair_counts("a", "b")
    assert dict(zip(zip(ia.tolist(), ib.tolist()), c.tolist())) == Counter(zip(rows["a"].tolist(), rows["b"].tolist()))
    for lab in (0, 1):
        sel = (rows["y"] > 0) == bool(lab)
        la, lb, lc = s.pair_counts("a", "b", label=lab)
        assert dict(zip(zip(la.tolist(), lb.tolist()), lc.tolist())) == Counter(zip(rows["a"][sel].tolist(), rows["b"][sel].tolist()))
    # asking for (b, a) gives the transpose
    ba, bb, bc = s.pair_counts("b", "a")
    assert Counter(dict(zip(zip(bb.tolist(), ba.tolist()), bc.tolist()))) == Counter(dict(zip(zip(ia.tolist(), ib.tolist()), c.tolist())))
    m, ra, rb = s.pair_matrix("a", "b", label=1)
    la, lb, lc = s.pair_counts("a", "b", label=1)
    assert m.shape == (len(ra), len(rb)) and m.sum() == lc.sum()
    i, j = np.searchsorted(ra, la[0]), np.searchsorted(rb, lb[0])
    assert m[i, j] == lc[0]


def test_sequences_follow_time_then_id(rows):
    s = stats_of(rows)
    prev, nxt, c = s.sequence_counts("a")
    want = Counter()
    for u in np.unique(rows["user"]):
        sel = rows["user"] == u
        seq = [a for _, a in sorted(zip(rows["t"][sel].tolist(), rows["a"][sel].tolist()))]
        want.update(zip(seq[:-1], seq[1:]))
    assert dict(zip(zip(prev.tolist(), nxt.tolist()), c.tolist())) == want


def test_min_count_prunes(rows):
    s = stats_of(rows, min_count=5)
    assert s.frequencies("a")[1].min() >= 5
    assert s.pair_counts("a", "b")[2].min() >= 5


def test_save_load_roundtrip(rows, tmp_path):
    s = stats_of(rows, source={"paths": ["x.parquet"]})
    path = s.save(tmp_path / "s.embc")
    t = LogStats.load(path, verify="full")
    assert t == s
    assert (t.label, t.pairs, t.sequence_key, t.time_key, t.source) == ("y", [("a", "b")], "user", "t", {"paths": ["x.parquet"]})
    assert read_artifact(path).kind == "logstats"
    # corruption is caught by a full verify
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 1
    path.write_bytes(bytes(raw))
    with pytest.raises(ChecksumError):
        LogStats.load(path, verify="full")


def test_from_arrays_and_clear_errors(tmp_path):
    s = LogStats.from_arrays({"f": (np.array([3, 1, 2]), np.array([1, 5, 5]))})
    assert s.frequencies("f")[0].tolist() == [1, 2, 3] and s.n_rows == 11
    with pytest.raises(ConfigError, match="mined without one"):
        s.positives("f")
    with pytest.raises(ConfigError, match="must be one of the mined features"):
        s.frequencies("g")
    with pytest.raises(ConfigError, match="was not mined"):
        s.pair_counts("f", "g")
    with pytest.raises(ConfigError, match="without one"):
        s.sequence_counts("f")
    with pytest.raises(ArtifactError, match="does not exist"):
        LogStats.load(tmp_path / "nope.embc")
    hashed = LogStats.from_arrays({"s": (np.array([2**63 + 5], dtype=np.uint64), np.array([2]))})
    assert hashed.frequencies("s")[0].dtype == np.int64


@pytest.mark.parametrize("span", [10, 2**40, 2**64 - 1])
def test_frequency_order_fast_path_equals_lexsort(span):
    from learned_hash.mining.stats import _order  # (NumPy's sort, below ENGINE_SORT_MIN entries)

    rng = np.random.default_rng(5)
    ids = np.unique(rng.integers(0, span, 5000, dtype=np.uint64, endpoint=True)).view(np.int64)
    for counts in (rng.integers(1, 50, len(ids)), np.full(len(ids), 3)):
        assert np.array_equal(_order(-counts, ids), np.lexsort((ids, -counts)))


def test_fixture_written_by_0_1_0_still_reads():
    # tests/fixtures/logstats/small_v1.logstats was written by embcompress 0.1.0 (container 1.0,
    # log-stats format 1) from the literal arrays below and is never regenerated.
    from tests.conftest import ROOT

    s = LogStats.load(ROOT / "tests" / "fixtures" / "logstats" / "small_v1.logstats", verify="full")
    assert (s.features, s.label, s.n_rows, s.bad_lines, s.engine) == (["user", "item"], "y", 8, 2, "duckdb")
    assert (s.sequence_key, s.time_key, s.min_count, s.source) == ("user", "t", 1, {"paths": ["/data/log.csv"], "format": "csv"})
    assert [x.tolist() for x in s.frequencies("user")] == [[7, 3, MISSING_ID], [5, 2, 1]]
    assert s.positives("user")[1].tolist() == [2, 0, 1]
    assert [x.tolist() for x in s.pair_counts("user", "item")] == [[MISSING_ID, 3, 7, 7], [100, 200, 100, 200], [1, 2, 4, 1]]
    assert [x.tolist() for x in s.pair_counts("user", "item", label=0)] == [[3, 7, 7], [200, 100, 200], [2, 2, 1]]
    assert [x.tolist() for x in s.sequence_counts("item")] == [[100, 200], [200, 100], [1, 1]]
