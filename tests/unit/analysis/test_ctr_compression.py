import numpy as np
import pytest

from analysis.ctr.compression import (
    MAX_MAP_SHARE,
    compressed_map,
    full_map,
    full_rows,
    plan_budget,
    shared_row_init,
    _map_share_plan,
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


@pytest.mark.parametrize("share", [0.05, 0.1, 0.15])
def test_map_share_rule_hottest_ids_within_the_share_rows_take_the_rest(stats, share):
    from embcompress.idmap import IdMap

    dim, budget = 8, 3000
    rb = FORMATS["fp32"].row_bytes(dim)
    ids = stats.frequencies("item")[0]
    m = compressed_map("learned", "item", stats, budget, dim=dim, fmt="fp32", seed=0, params={"max_map_share": share})
    k = m.info["mapped_ids_cap"]
    # the map stays within its share of the feature's bytes ...
    assert m.map_bytes <= share * budget
    # ... holding as many of the hottest ids as fit there (one more would not, at the widest row dtype)
    assert k < ids.size
    one_more = IdMap.from_arrays(ids[:k + 1], np.zeros(k + 1, dtype=np.int64), budget // rb,
                                 fallback_rows=np.arange(budget // rb))
    assert one_more.nbytes > share * budget
    # only the hottest ids are mapped, the hottest first (rarer ids are hashed into cold rows)
    assert set(m.id_map.ids.tolist()) <= set(ids[:k].tolist())
    assert set(ids[:m.info["hot_rows"]].tolist()) <= set(m.id_map.ids.tolist())
    # the rows take the rest of the bytes
    r = m.shape.rows[0]
    assert r * rb + m.map_bytes <= budget < (r + 1) * rb + m.map_bytes


def test_map_share_rule_trades_ids_for_rows_and_defaults(stats):
    dim, budget = 8, 3000
    runs = [compressed_map("learned", "item", stats, budget, dim=dim, fmt="fp32", seed=0, params={"max_map_share": s})
            for s in (0.05, 0.1, 0.25)]
    caps = [m.info["mapped_ids_cap"] for m in runs]
    rows = [m.shape.rows[0] for m in runs]
    assert caps[0] < caps[1] < caps[2] == stats.frequencies("item")[0].size  # every id fits in 0.25
    assert rows[0] > rows[1] > rows[2]
    # a share near 1 at a tight budget still leaves a row
    tight = compressed_map("learned", "item", stats, 400, dim=dim, fmt="fp32", seed=0, params={"max_map_share": 0.99})
    assert tight.shape.rows[0] >= 1 and tight.total_bytes("fp32", dim) <= 400
    default = compressed_map("learned", "item", stats, budget, dim=dim, fmt="fp32", seed=0)
    assert default.info["max_map_share"] == MAX_MAP_SHARE
    for bad in (0, 1.0, -0.2, True, "0.25"):
        with pytest.raises(ConfigError, match="max_map_share"):
            compressed_map("learned", "item", stats, budget, dim=dim, fmt="fp32", seed=0, params={"max_map_share": bad})


def test_map_share_rule_picks_the_row_entry_width(stats):
    # near the uint8 edge (255 rows): every id on one-byte entries beats a few more rows with two-byte
    # entries, which would leave room in the share for few ids (444 ids on 255 rows here)
    ids = stats.frequencies("item")[0]
    m = compressed_map("learned", "item", stats, 5000, dim=32, fmt="mxfp4_e2m1", seed=0, params={"max_map_share": 0.2})
    assert (m.info["mapped_ids_cap"], m.shape.rows[0]) == (ids.size, 255)
    assert m.map_bytes <= 0.2 * 5000
    # far from it: two-byte entries buy many more rows (sparse ids: open-addressing map)
    sparse = np.arange(5000, dtype=np.int64) * 1000
    k, r = _map_share_plan(sparse, 100_000, 17, 5001, 0.5)
    assert r > 1000 and 0 < k < sparse.size
    assert r * 17 + _map_price_bytes(sparse[:k], r) <= 100_000 and _map_price_bytes(sparse[:k], r) <= 50_000
    k8, r8 = _map_share_plan(sparse, 100_000, 17, 255, 0.5)  # rows capped at 255: one-byte entries, more ids
    assert r8 == 255 and k8 > k


def _map_price_bytes(ids, n_rows):
    from embcompress.idmap import IdMap

    return IdMap.from_arrays(ids, np.zeros(ids.size, dtype=np.int64), n_rows, fallback_rows=np.arange(n_rows)).nbytes


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
