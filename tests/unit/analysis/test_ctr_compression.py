import numpy as np
import pytest

from analysis.ctr.compression import (
    compressed_map,
    full_map,
    full_rows,
    plan_budget,
    shared_row_init,
    _mapped_ids_cap,
)
from analysis.ctr.synthetic import synthetic_log
from analysis.ctr.sweep import train_stats
from analysis.ctr.data import split_by_time
from embcompress.errors import ConfigError
from embcompress.formats.spec import FORMATS


@pytest.fixture(scope="module")
def stats():
    log = synthetic_log(4000, vocab=(300, 600, 20), n_groups=(10, 12, 4), seed=0)
    return train_stats(split_by_time(log.data, None), ["user", "item"])


def test_full_map_gives_every_seen_id_a_row_and_unseen_one_more(stats):
    m = full_map("item", stats)
    ids, _ = stats.frequencies("item")
    rows = m.index(ids)[:, 0]
    assert np.array_equal(np.sort(rows), np.arange(ids.size))
    assert m.shape.rows == (ids.size + 1,) == (full_rows(stats, "item"),)
    assert m.index(np.array([10**12, -5]))[:, 0].tolist() == [ids.size, ids.size]


@pytest.mark.parametrize("method", ["hash", "frequency", "qr", "learned"])
@pytest.mark.parametrize("fmt", ["fp32", "mxfp4_e2m1"])
def test_every_method_fits_its_byte_budget(stats, method, fmt):
    dim = 16
    budget = 40 * FORMATS["fp32"].row_bytes(dim)
    m = compressed_map(method, "item", stats, budget, dim=dim, fmt=fmt, seed=0)
    total = m.total_bytes(fmt, dim)
    assert total <= budget
    # as many rows as fit: one more row would not fit with this map
    assert total + FORMATS[fmt].row_bytes(dim) * (2 if method == "qr" else 1) > budget or method == "learned"
    idx = m.index(stats.frequencies("item")[0])
    assert idx.shape[1] == m.shape.n_columns
    for c, r in enumerate(m.shape.rows):
        assert 0 <= idx[:, c].min() and idx[:, c].max() < r
    if fmt == "mxfp4_e2m1":  # narrower rows: many more of them in the same bytes
        assert sum(m.shape.rows) > 40


def test_learned_map_caps_its_own_bytes(stats):
    dim, budget = 8, 600
    m = compressed_map("learned", "item", stats, budget, dim=dim, fmt="fp32", seed=0)
    ids = stats.frequencies("item")[0]
    assert m.map_bytes <= 0.5 * budget and m.info["mapped_ids_cap"] < ids.size
    roomy = compressed_map("learned", "item", stats, 100 * 32, dim=dim, fmt="fp32", seed=0)
    assert roomy.info["mapped_ids_cap"] == roomy.info["mapped_ids"] == ids.size
    assert _mapped_ids_cap(ids, 10**9, 4) == ids.size
    assert 0 < _mapped_ids_cap(ids, 100, 4) < ids.size


def test_learned_trained_needs_rows_and_budget_errors(stats):
    with pytest.raises(ConfigError, match="trained_rows"):
        compressed_map("learned_trained", "item", stats, 10_000, dim=8, fmt="fp32", seed=0)
    with pytest.raises(ConfigError, match="cannot hold even one row"):
        compressed_map("hash", "item", stats, 10, dim=8, fmt="fp32", seed=0)
    with pytest.raises(ConfigError, match="'method' parameter"):
        compressed_map("full", "item", stats, 10_000, dim=8, fmt="fp32", seed=0)


def test_plan_budget_splits_by_full_size(stats):
    plan = plan_budget(stats, ["user", "item"], 0.1, dim=8)
    assert plan.reference_bytes == (full_rows(stats, "user") + full_rows(stats, "item")) * 32
    assert sum(plan.shares.values()) <= plan.budget_bytes == int(0.1 * plan.reference_bytes)
    ratio = plan.shares["item"] / plan.shares["user"]
    assert ratio == pytest.approx(full_rows(stats, "item") / full_rows(stats, "user"), rel=0.01)


def test_shared_row_init_is_traffic_weighted_mean():
    from embcompress.idmap import IdMap

    m = IdMap.from_arrays([1, 2, 3], [0, 0, 1], 3)
    rows = np.array([[1.0, 0.0], [4.0, 2.0], [5.0, 5.0]])
    out = shared_row_init(m, np.array([1, 2, 3]), np.array([3, 1, 7]), rows, 3)
    # row 0: (3 * [1, 0] + 1 * [4, 2]) / 4; row 1: id 3's row; row 2: nobody, zero
    assert np.allclose(out, [[7 / 4, 2 / 4], [5, 5], [0, 0]])
