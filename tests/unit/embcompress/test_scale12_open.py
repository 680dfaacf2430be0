"""Opening a TieredStore and warming it up from the file's frequencies: memory beside the tier
and its slot index is one pass's worth, not copies of the counts.

On a 40M-row table (int64 frequencies, 320 MB) the open peaked at 800 MiB and the warm-up at 1.1
GiB for a 50 MiB budget: the file's counts were copied to be checked, copied again to rank them
(as float64, which also rounds counts past 2**53), and copied a third time by the partition.
"""

import tracemalloc

import numpy as np
import pytest

from embcompress import write_table
from embcompress.formats import quantize
from embcompress.store import TieredStore
from embcompress.store.placement import top_rows


@pytest.mark.parametrize("policy", ["frequency", "lfu"])
def test_scale12_open_and_warm_up_copy_the_counts_at_most_once(tmp_path, policy):
    n = 1_000_000
    q = quantize(np.zeros((n, 32), np.float32), "mxfp4_e2m1")
    freq = np.random.default_rng(0).zipf(1.2, n).astype(np.int64)
    path = write_table(tmp_path / "t.embc", q, frequencies=freq)
    del q
    tracemalloc.start()
    try:
        s = TieredStore(path, dram_bytes=n // 100 * 17, policy=policy)
        s.warm_up()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the tier's slot index (4 bytes a row; lfu's float64 counts 8 more) and one partition (8)
    assert peak < (22 if policy == "lfu" else 14) * n, f"{peak / n:.1f} bytes a table row"
    assert sorted(s._dram.held_rows.tolist()) == top_rows(freq, n // 100).tolist()
    s.close()


def test_scale12_top_rows_ranks_integer_counts_exactly():
    # counts past 2**53 are not all float64s: ranked as floats, 2**53 + 1 tied with 2**53 and
    # the lower row won
    f = np.array([2**53, 2**53 + 1, 5], dtype=np.int64)
    assert top_rows(f, 1).tolist() == [1]
    assert top_rows(f, 2, rows=np.array([2, 0, 1])).tolist() == [0, 1]


def test_scale12_a_reordered_file_opens_with_its_inverse_order_and_no_more(tmp_path, monkeypatch):
    # The row order was checked with a count of every row (8 bytes a row) and inverted with a
    # whole np.arange beside the inverse (8 more): 16 bytes a table row at open on top of the
    # inverse the store keeps. Now the inverse itself, filled a chunk at a time, shows a
    # repeated row as a hole.
    from embcompress.store import placement, reorder_rows

    monkeypatch.setattr(placement, "_INVERT_CHUNK", 1 << 16, raising=False)  # (1M at scale: 8 MB)
    n = 1_000_000
    q = quantize(np.zeros((n, 32), np.float32), "mxfp4_e2m1")
    path = write_table(tmp_path / "t.embc", q)
    del q
    re = reorder_rows(path, tmp_path / "r.embc", clusters=np.arange(n) % 977).path
    tracemalloc.start()
    try:
        s = TieredStore(re, dram_bytes=1000 * 17, policy="lru")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # the inverse order (8 bytes a row) and the slot index (4)
    assert peak < 14 * n, f"{peak / n:.1f} bytes a table row"
    order = np.arange(n) % 977
    assert np.array_equal(s._pos, np.argsort(np.argsort(order, kind="stable"), kind="stable"))
    s.close()


def test_scale12_a_row_order_that_is_no_permutation_is_refused(tmp_path):
    from embcompress.container import read_artifact, write_artifact
    from embcompress.errors import ArtifactError
    from embcompress.store import reorder_rows

    q = quantize(np.zeros((300, 32), np.float32), "mxint8")
    re = reorder_rows(write_table(tmp_path / "t.embc", q), tmp_path / "r.embc", clusters=np.arange(300) % 7).path
    art = read_artifact(re)
    for bad in (np.r_[np.arange(299), 5], np.r_[np.arange(299), 300], np.r_[-1, np.arange(1, 300)]):
        sections = {name: art.array(name) for name in art.section_names}
        sections["row_order"] = bad.astype(np.int64)
        write_artifact(tmp_path / "bad.embc", "table", sections, config=art.config, meta=art.meta, align=4096)
        with pytest.raises(ArtifactError, match="not a permutation"):
            TieredStore(tmp_path / "bad.embc", dram_bytes=10 * q.row_bytes, policy="lru")


def test_scale12_top_rows_a_chunk_at_a_time_is_top_rows(monkeypatch):
    from embcompress.store import placement

    rng = np.random.default_rng(0)
    for _ in range(200):
        n = int(rng.integers(1, 400))
        f = rng.integers(0, int(rng.integers(1, 6)), n)  # ties often
        if rng.random() < 0.3:
            f = f.astype(np.float64) / 3
        k = int(rng.integers(1, n + 1))
        want = top_rows(f, k)
        monkeypatch.setattr(placement, "_TOP_CHUNK", int(rng.integers(1, 20)))
        assert np.array_equal(top_rows(f, k), want), (n, k)
        monkeypatch.undo()
        assert np.array_equal(placement._top_rows_chunked(f, k), want)


def test_scale12_warm_up_memory_follows_the_hot_set_not_the_table(tmp_path, monkeypatch):
    # The hot set's ranking partitioned a copy of every row's count (8 bytes a table row beside the
    # 4 of the slot index); it now keeps the top so far and a chunk (here 65,536 rows: 4M at scale).
    from embcompress.store import placement

    monkeypatch.setattr(placement, "_TOP_CHUNK", 1 << 16, raising=False)
    n = 1_000_000
    q = quantize(np.zeros((n, 32), np.float32), "mxfp4_e2m1")
    freq = np.random.default_rng(0).zipf(1.2, n).astype(np.int64)
    path = write_table(tmp_path / "t.embc", q, frequencies=freq)
    del q
    s = TieredStore(path, dram_bytes=n // 100 * 17, policy="frequency")
    tracemalloc.start()
    try:
        s.warm_up()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * n, f"{peak / n:.1f} bytes a table row"
    assert sorted(s._dram.held_rows.tolist()) == top_rows(freq, n // 100).tolist()
    s.close()
