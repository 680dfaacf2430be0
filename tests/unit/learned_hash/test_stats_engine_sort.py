"""LogStats sorts large counts with DuckDB (``stats.ENGINE_SORT_MIN`` entries and more): the same
arrays, in the same order, as its NumPy sort of smaller ones."""

import numpy as np
import pytest

from embcompress.idhash import MISSING_ID
from learned_hash import LogStats
from learned_hash.mining import stats as stats_mod


def _arrays(seed=0, n=5000):
    rng = np.random.default_rng(seed)
    # ids over the whole int64 range (hashed string ids, MISSING_ID), so no packing into 64 bits fits
    ids = np.unique(np.concatenate([[MISSING_ID, -1, 0, 2**63 - 1], rng.integers(-2**63, 2**63 - 1, n, dtype=np.int64)]))
    rng.shuffle(ids)
    counts = rng.integers(1, 6, ids.size)  # many ties of count: ordered by id within them
    pos = rng.integers(0, 2, ids.size) * counts
    ia, ib = rng.choice(ids, 3 * n), rng.choice(ids, 3 * n)
    keep = np.unique(np.stack([ia, ib]), axis=1, return_index=True)[1]
    ia, ib = ia[keep], ib[keep]
    c = rng.integers(1, 9, ia.size)
    return dict(features=["a", "b"], frequencies={"a": (ids, counts, pos), "b": (ids[:10], counts[:10], pos[:10])},
                pairs={("a", "b"): (ia, ib, c, c // 2)}, sequences={"a": (ia, ib, c)}, label="y", n_rows=10**6)


@pytest.mark.parametrize("seed", [0, 1])
def test_engine_sort_gives_numpy_sorts_order(monkeypatch, seed):
    small = LogStats(**_arrays(seed))
    monkeypatch.setattr(stats_mod, "ENGINE_SORT_MIN", 2)
    big = LogStats(**_arrays(seed))
    assert big == small
    ids, counts = big.frequencies("a")
    assert counts[0] >= counts[-1] and MISSING_ID in ids
    for f in ("a", "b"):
        assert np.array_equal(big.positives(f)[1], small.positives(f)[1])
    assert all(np.array_equal(x, y) for x, y in zip(big.pair_counts("a", "b", label=1), small.pair_counts("a", "b", label=1)))
    assert all(np.array_equal(x, y) for x, y in zip(big.sequence_counts("a"), small.sequence_counts("a")))


def test_engine_sort_never_shares_the_callers_arrays(monkeypatch):
    monkeypatch.setattr(stats_mod, "ENGINE_SORT_MIN", 2)
    given = _arrays()
    ids = given["frequencies"]["a"][0]
    s = LogStats(**given)
    before = s.frequencies("a")[0].copy()
    ids[:] = 7
    assert np.array_equal(s.frequencies("a")[0], before)


@pytest.mark.parametrize("n_keys", [1, 2])
def test_sum_by_keys_alike_on_both_sorts(monkeypatch, n_keys):
    """Equal keys (64-bit hashes of distinct strings that collide) merged: the same sums either way."""
    rng = np.random.default_rng(3)
    keys = [rng.choice(np.array([MISSING_ID, -5, 0, 7, 2**62], np.int64), 400) for _ in range(n_keys)]
    values = [rng.integers(0, 9, 400), rng.integers(0, 2, 400)]
    small = stats_mod._sum_by_keys(keys, values)
    monkeypatch.setattr(stats_mod, "ENGINE_SORT_MIN", 2)
    big = stats_mod._sum_by_keys(keys, values)
    for x, y in zip(small[0] + small[1], big[0] + big[1]):
        assert np.array_equal(x, y) and x.flags.writeable
    assert sum(v.sum() for v in small[1][:1]) == values[0].sum()


def test_string_lists_mined_alike_on_both_sorts(monkeypatch, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from learned_hash import mine

    rng = np.random.default_rng(4)
    words = np.array([f"w{i}" for i in range(50)] + ["", "é"])
    items = [rng.choice(words, rng.integers(0, 5)).tolist() for _ in range(300)]
    pq.write_table(pa.table({"u": [f"u{i % 17}" for i in range(300)], "items": items}), tmp_path / "log.parquet")
    kw = dict(features=["u", "items"], pairs=[("items", "u"), ("items", "items")])
    small = mine(tmp_path / "log.parquet", **kw)
    monkeypatch.setattr(stats_mod, "ENGINE_SORT_MIN", 2)
    big = mine(tmp_path / "log.parquet", **kw)
    assert big == small and big.pairs == small.pairs
    assert all(np.array_equal(x, y) for x, y in zip(big.pair_counts("items", "items"), small.pair_counts("items", "items")))


def test_the_engine_sort_spills_into_mines_temp_directory(monkeypatch, tmp_path):
    """Not into DuckDB's default '.tmp' of the working folder: into mine's temp_directory (within
    its memory_limit and threads), or the system's temp folder outside mine; the setting never
    outlives a run, failed or not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from embcompress.errors import ConfigError
    from learned_hash import mine

    import duckdb

    made, configs = [], []
    real = stats_mod.tempfile.TemporaryDirectory
    real_connect = duckdb.connect

    def connect(*a, **k):  # (the engine's connections too: only the sort's are looked at)
        configs.append(dict(k.get("config") or {}))
        return real_connect(*a, **k)

    monkeypatch.setattr(duckdb, "connect", connect)

    def recording(*a, **k):
        made.append(k.get("dir"))
        return real(*a, **k)

    monkeypatch.setattr(stats_mod.tempfile, "TemporaryDirectory", recording)
    monkeypatch.setattr(stats_mod, "ENGINE_SORT_MIN", 2)
    monkeypatch.chdir(tmp_path)
    pq.write_table(pa.table({"u": [1, 2, 2, 3], "items": [[1, 2], [3], [2, 2], []]}), tmp_path / "log.parquet")
    mine(tmp_path / "log.parquet", features=["u", "items"], pairs=["items:u"], temp_directory=tmp_path / "spill",
         memory_limit="300MB", threads=1)
    assert made and all(str(d).startswith(str(tmp_path / "spill")) for d in made)
    sorts = [c for c in configs if str(c.get("temp_directory", "")).startswith(str(tmp_path / "spill" / "embc-mine-"))
             and "embc-sort-" in str(c["temp_directory"])]
    assert sorts and all(c["memory_limit"] == "300000000B" and c["threads"] == 1 for c in sorts)
    assert stats_mod.SORT_SETTINGS.get() is None and not (tmp_path / ".tmp").exists()
    made.clear()
    LogStats(**_arrays())
    assert made and set(made) == {None}
    pq.write_table(pa.table({"y": [1, None], "items": [[1], [2]]}), tmp_path / "bad.parquet")
    with pytest.raises(ConfigError, match="not a number"):  # (raised by the engine's run: a missing label)
        mine(tmp_path / "bad.parquet", features=["items"], label="y", temp_directory=tmp_path / "spill")
    assert stats_mod.SORT_SETTINGS.get() is None
