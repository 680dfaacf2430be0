"""Review 18 of the tiered store: each test failed before its fix."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.formats import quantize
from embcompress.store import TieredStore, plan, reorder_rows

N, DIM = 50, 8


@pytest.fixture
def table(tmp_path):
    q = quantize(np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32), "fp32")
    return q.save(tmp_path / "t.embc"), q


@pytest.mark.parametrize("reordered", [False, True])
def test_lfu_on_a_reordered_file_keeps_the_warmed_hot_set(table, tmp_path, reordered):
    # LFU's counts were seeded by original row while its tier counts by file position: on a file
    # written by reorder_rows (here in reverse order) the warmed hot rows (original 0..9, at
    # positions 40..49) started from the counts of original rows 40..49 (0), and two one-off
    # misses evicted two of them (hit rate 0.8 on the hot set, 1.0 on the file in id order).
    path, q = table
    if reordered:
        path = reorder_rows(path, tmp_path / "r.embc", clusters=np.arange(N)[::-1].copy()).path
    freq = np.zeros(N)
    freq[:10] = 100
    with TieredStore(path, dram_bytes=10 * q.row_bytes, policy="lfu", frequencies=freq) as store:
        store.warm_up()
        store.rows([30])
        store.rows([31])
        store.reset_stats()
        assert np.array_equal(store.rows(np.arange(10)), q.data[:10])
        assert store.stats()["hit_rate"] == 1.0


def test_ragged_lists_are_refused_with_the_projects_error(table):
    # numpy's raw "setting an array element with a sequence ... inhomogeneous shape" ValueError
    # reached the caller of rows, update_rows (rows and values), and of every function taking
    # frequencies (TieredStore, warm_up), where pooled_lookup and QuantizedTable.take name it.
    path, q = table
    ragged = [[1], [1, 2]]
    with pytest.raises(ConfigError, match="'frequencies' parameter of TieredStore must"):
        TieredStore(path, dram_bytes=q.row_bytes, frequencies=ragged)
    with TieredStore(path, dram_bytes=4 * q.row_bytes, frequencies=np.ones(N)) as store:
        with pytest.raises(ConfigError, match="'rows' parameter of TieredStore.rows must"):
            store.rows(ragged)
        with pytest.raises(ConfigError, match="'rows' parameter of TieredStore.update_rows must"):
            store.update_rows(ragged, np.zeros((2, DIM), np.float32))
        with pytest.raises(ConfigError, match="'values' parameter of TieredStore.update_rows must"):
            store.update_rows([1, 2], [[1.0], [1.0, 2.0]])
        with pytest.raises(ConfigError, match="'frequencies' parameter of TieredStore.warm_up must"):
            store.warm_up(ragged)
        assert np.array_equal(store.rows([1, 2]), q.data[[1, 2]])  # nothing changed


def test_uint64_ids_beyond_int64_are_reported_as_given(table):
    # An id of 2**63 + 1 was cast to int64 before the range check and reported as
    # -9223372036854775807, an id the caller never passed.
    path, q = table
    big = np.array([2**63 + 1], np.uint64)
    with TieredStore(path, dram_bytes=4 * q.row_bytes, frequencies=np.ones(N)) as store:
        with pytest.raises(ConfigError, match=r"Got '9223372036854775809\.\."):
            store.rows(big)
        with pytest.raises(ConfigError, match=r"Got '9223372036854775809\.\."):
            store.update_rows(big, np.zeros((1, DIM), np.float32))


def test_plan_of_counts_whose_sum_overflows_float64():
    # Finite counts near float64's limit summed to inf: every hit rate was NaN (with numpy's
    # overflow warnings), and the plan chose a budget by NaN costs.
    with np.errstate(all="raise"):
        p = plan(64 * 4, 64, [1e308, 1e308, 0.0, 0.0], 1000.0, fractions=(0.5, 1.0))
    hits = [c["hit_rate"] for c in p.candidates]
    assert hits == [pytest.approx(1.0), 1.0]
    p = plan(64 * 4, 64, [1e308, 1e308, 1e308, 1e308], 1000.0, fractions=(0.25,))
    assert p.hit_rate == pytest.approx(0.25)


def test_plan_reports_the_fraction_of_whole_rows_it_holds():
    # Half of a 3-row table is one row: the plan said dram_fraction 0.5 beside dram_bytes of one
    # row and a hit rate of a third of the reads.
    p = plan(3 * 64, 64, [1, 1, 1], 1.0, fractions=(0.5,))
    assert p.dram_bytes == 64 and p.hit_rate == pytest.approx(1 / 3)
    assert p.dram_fraction == pytest.approx(1 / 3)
    assert p.candidates[0]["dram_fraction"] == pytest.approx(1 / 3)
    # A budget of whole rows keeps the fraction asked for (as review 17's test says).
    assert plan(6400, 64, np.ones(100), 1.0, fractions=(0.05,)).dram_fraction == 0.05


def test_direct_io_must_be_a_bool(table):
    # direct_io="no" (or "false") is truthy: the store opened the file with O_DIRECT silently.
    path, q = table
    with pytest.raises(ConfigError, match="'direct_io' parameter of TieredStore must be a bool. Got 'no' instead"):
        TieredStore(path, dram_bytes=q.row_bytes, frequencies=np.ones(N), direct_io="no")


def test_an_empty_log_is_mined_as_the_lookups_take_it():
    # [] arrives as float64: mine_coaccess refused an empty log given as lists ("must be a 1-D
    # array of int row ids. Got 'float64 of shape (0,)'"), which the store's lookups take.
    from embcompress.store import mine_coaccess

    m = mine_coaccess([], [], 10)
    assert m.shape == (10, 10) and m.nnz == 0


def test_placement_and_device_inputs_are_refused_with_the_projects_error(table, tmp_path):
    # Each raised a raw error (scipy's "Inexact indices", numpy's "inhomogeneous shape",
    # "'int' object is not iterable", os.fspath's TypeError, "only integer scalar arrays ...") or,
    # for max_bag 0 or 1 and a float n_rows, was taken silently (no pairs mined; a float table size).
    from embcompress.store import DeviceModel, blocks_per_batch, coaccess_order, mine_coaccess

    path, q = table
    cases = [
        ("'n_rows' parameter of mine_coaccess", lambda: mine_coaccess([1, 2], [0], 10.0)),
        ("'n_rows' parameter of mine_coaccess", lambda: mine_coaccess([1, 2], [0], "10")),
        ("'max_bag' parameter of mine_coaccess", lambda: mine_coaccess([1, 2], [0], 10, max_bag=1)),
        ("'max_bag' parameter of mine_coaccess", lambda: mine_coaccess([1, 2], [0], 10, max_bag=2.5)),
        ("'offsets' parameter of mine_coaccess", lambda: mine_coaccess([1, 2, 3], [[0], [1, 2]], 10)),
        ("'n_rows' parameter of coaccess_order", lambda: coaccess_order(10.0, 32, clusters=np.zeros(10, int))),
        ("'clusters' parameter of coaccess_order", lambda: coaccess_order(10, 32, clusters=[[1], [1, 2]])),
        ("'cooccurrence' parameter of coaccess_order", lambda: coaccess_order(10, 32, cooccurrence="pairs")),
        ("'frequencies' parameter of coaccess_order",
         lambda: coaccess_order(10, 32, clusters=np.zeros(10, int), frequencies=[[1], [1, 2]])),
        ("'replay' parameter of reorder_rows",
         lambda: reorder_rows(path, tmp_path / "r.embc", clusters=np.zeros(N, int), replay=[[[1], [1, 2]]])),
        ("'replay' parameter of reorder_rows",
         lambda: reorder_rows(path, tmp_path / "r.embc", clusters=np.zeros(N, int), replay=5)),
        ("'out_file' parameter of reorder_rows", lambda: reorder_rows(path, None, clusters=np.zeros(N, int))),
        ("'table_file' parameter of reorder_rows",
         lambda: reorder_rows(5, tmp_path / "r.embc", clusters=np.zeros(N, int))),
        ("'batches' parameter of blocks_per_batch", lambda: blocks_per_batch(5, 32)),
        ("'batches' parameter of blocks_per_batch", lambda: blocks_per_batch([[[1], [1, 2]]], 32)),
        ("'d' parameter of DeviceModel.from_dict", lambda: DeviceModel.from_dict(None)),
    ]
    for what, call in cases:
        with pytest.raises(ConfigError, match=what):
            call()
    assert not (tmp_path / "r.embc").exists()
    # a list for new_row is taken as an array (it raised numpy's "only integer scalar arrays ...")
    assert blocks_per_batch([[1, 2]], 32, new_row=list(range(10))).tolist() == [1]
