"""fit_hash on real logs end to end: the map's invariants, for every method, and its file."""

import numpy as np
import pytest

from embcompress.idmap import IdMap, mix64
from learned_hash import fit_hash, mine
from tests.conftest import data_path


def _check_invariants(m, stats, feature, n_rows):
    ids, counts = stats.frequencies(feature)
    rows = m.lookup(ids)
    hot = m.meta["hot_ids"]
    assert m.n_rows == n_rows and rows.min() >= 0 and rows.max() < n_rows
    # hot ids own rows 0 .. hot-1, one each
    assert np.array_equal(rows[:hot], np.arange(hot))
    assert (np.bincount(rows, minlength=n_rows)[:hot] == 1).all()
    # every seen id is covered: mapped, or sent by the fallback hash to a cold row
    fallback = np.asarray(m.fallback_rows)
    assert np.array_equal(np.sort(fallback), np.arange(hot, n_rows))
    unmapped = ~np.isin(ids, m.ids)
    want = fallback[(mix64(ids[unmapped], m.seed) % fallback.size).astype(np.int64)]
    assert np.array_equal(rows[unmapped], want)
    # unseen ids: the documented fallback, never a hot row
    unseen = np.arange(-(10**15), -(10**15) + 500, dtype=np.int64)
    assert np.array_equal(m.lookup(unseen), fallback[(mix64(unseen, m.seed) % fallback.size).astype(np.int64)])
    assert m.meta["collision_share"] == pytest.approx(
        counts[np.bincount(rows, minlength=n_rows)[rows] > 1].sum() / counts.sum())
    return ids, rows


@pytest.mark.data
def test_criteo_and_talkingdata_maps_keep_their_invariants_and_round_trip(tmp_path):
    criteo = data_path("criteo_sample", "lapis_train.txt")
    talking = data_path("talkingdata_sample", "train_sample.csv")
    cs = mine(criteo, format="criteo", features=["C3", "C4", "C12"], label="label",
              pairs=[("C3", "C4"), ("C3", "C12")], on_bad_line="skip")
    ts = mine(talking, features=["app", "channel"], label="is_attributed",
              pairs=[("app", "channel")])
    cases = [(cs, "C3", 500, {}), (cs, "C3", 64, {"method": "frequency"}), (cs, "C3", 64, {"method": "hash"}),
             (cs, "C3", 300, {"embedding": "cooccurrence", "max_mapped_ids": 400, "max_share": 0.05}),
             (ts, "app", 40, {}), (ts, "channel", 100, {"embedding": "label_aware"})]
    for stats, feature, n_rows, kw in cases:
        m = fit_hash(stats, feature, n_rows, seed=7, **kw)
        ids, rows = _check_invariants(m, stats, feature, n_rows)
        path = m.save(tmp_path / f"{feature}-{n_rows}.idmap")
        back = IdMap.load(path, verify="full")
        assert np.array_equal(back.lookup(ids), rows)
        assert (back.seed, back.meta, back.config) == (7, m.meta, m.config)
        if kw.get("embedding") == "label_aware":  # the same seed gives the same map
            assert np.array_equal(fit_hash(stats, feature, n_rows, seed=7, **kw).lookup(ids), rows)


@pytest.mark.parametrize("method", ["learned", "hash", "frequency"])
@pytest.mark.parametrize("kw,match", [({"n_threads": 0}, "n_threads"), ({"n_threads": -2}, "n_threads"),
                                      ({"max_share": 2.0}, "max_share"), ({"max_share": 0.0}, "max_share")])
def test_bad_threads_or_max_share_are_refused_whatever_runs(method, kw, match):
    # they were checked only where clustering ran, so a small feature (or the hash method)
    # accepted --threads 0 and --max-share 2 without a word
    from embcompress.errors import ConfigError
    from learned_hash.mining.stats import LogStats

    stats = LogStats.from_rows({"a": np.arange(20) % 5}, features=["a"])
    with pytest.raises(ConfigError, match=match):
        fit_hash(stats, "a", 4, method=method, **kw)
