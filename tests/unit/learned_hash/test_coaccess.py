"""coaccess_matrix: a multi-hot column's lists, mined paired with themselves, as pairs of a table's
rows for its co-access layout."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import embcompress
from embcompress import IdMap
from embcompress.errors import ConfigError
from embcompress.store import mine_coaccess
from learned_hash import coaccess_matrix, mine


def _log(tmp_path, n=3000, n_groups=40, size=30, seed=0):
    """Lists of 2-6 items, each list from one group of ``size`` items."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, n_groups, n)
    lists = [(g * size + rng.choice(size, rng.integers(2, 7), replace=False)).tolist() for g in groups]
    pq.write_table(pa.table({"items": lists}), tmp_path / "log.parquet")
    return lists, n_groups * size


def test_the_matrix_counts_row_pairs_of_one_list_as_mine_coaccess_does(tmp_path):
    lists, n_items = _log(tmp_path)
    rng = np.random.default_rng(1)
    rows = rng.permutation(n_items)  # each item its own row, scattered over the table
    idmap = IdMap.from_arrays(np.arange(n_items), rows, n_items)
    stats = mine(tmp_path / "log.parquet", features=["items"], pairs=["items:items"])
    got = coaccess_matrix(stats, "items", idmap)
    # the same bags, mapped to rows, through the store's own miner (bags of distinct rows here)
    flat = rows[np.concatenate(lists)]
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])[:-1]])
    want = mine_coaccess(flat, offsets, n_items)
    assert got.shape == want.shape and (got != want).nnz == 0
    assert np.array_equal(np.triu(got.toarray(), 1), got.toarray())  # upper-triangular


def test_ids_on_one_row_add_nothing_and_rows_sum(tmp_path):
    pq.write_table(pa.table({"items": [[1, 2, 3], [1, 2], [3, 3]]}), tmp_path / "log.parquet")
    stats = mine(tmp_path / "log.parquet", features=["items"], pairs=["items:items"])
    idmap = IdMap.from_arrays(np.array([1, 2, 3]), np.array([0, 0, 1]), 2)  # ids 1 and 2 share row 0
    m = coaccess_matrix(stats, "items", idmap).toarray()
    # row 0 with row 1: (1,3) and (2,3) in the first list; (3,3) and (1,2) are one row each
    assert m.tolist() == [[0, 2], [0, 0]]


def test_the_layout_from_mined_lists_reads_fewer_blocks(tmp_path):
    lists, n_items = _log(tmp_path, n=4000)
    rng = np.random.default_rng(2)
    rows = rng.permutation(n_items)
    idmap = IdMap.from_arrays(np.arange(n_items), rows, n_items)
    train = tmp_path / "train"
    train.mkdir()
    pq.write_table(pa.table({"items": lists[:3000]}), train / "log.parquet")
    stats = mine(train / "log.parquet", features=["items"], pairs=["items:items"])
    table = embcompress.quantize(rng.standard_normal((n_items, 128)).astype(np.float32), "mxint8")
    embcompress.write_table(tmp_path / "t.embc", table)
    replay = [rows[np.asarray(x)] for x in lists[3000:]]  # held-out lists as batches of rows
    layout = embcompress.reorder_rows(tmp_path / "t.embc", tmp_path / "co.embc",
                                      cooccurrence=coaccess_matrix(stats, "items", idmap), replay=replay)
    # 30 rows of 136 bytes a group fit one 4 KiB block or two; scattered, a list of 2-6 reads 2-6
    assert layout.blocks_per_batch_after * 2 < layout.blocks_per_batch_before, layout


def test_refusals(tmp_path):
    pq.write_table(pa.table({"items": [[1, 2]], "u": [1]}), tmp_path / "log.parquet")
    stats = mine(tmp_path / "log.parquet", features=["items", "u"], pairs=["items:u"])
    idmap = IdMap.from_arrays(np.array([1, 2]), np.array([0, 1]), 2)
    with pytest.raises(ConfigError, match=r"paired with itself.*--pair items:items"):
        coaccess_matrix(stats, "items", idmap)
    with pytest.raises(ConfigError, match="'id_map' parameter of coaccess_matrix must be an embcompress.IdMap"):
        coaccess_matrix(stats, "items", {1: 0})
