"""Refits keep hashed ids on their rows: ids the map does not store hash over the list of cold
rows, and a refit keeps that list position by position (only the positions of rows that became hot
change), with the previous map's hot count and fallback seed unless told otherwise."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from embcompress.idmap import IdMap
from learned_hash import LogStats, fit_hash


def zipf_stats(seed, n_clicks=40_000, n_ids=5_000, shift=0):
    # a Zipf log over scattered int64 ids; `shift` rotates popularity so a refit sees drift
    rng = np.random.default_rng(seed)
    ids = np.random.default_rng(99).choice(2**40, n_ids, replace=False).astype(np.int64)
    rank = (np.minimum(rng.zipf(1.2, n_clicks), n_ids) - 1 + shift) % n_ids
    ctx = rng.integers(0, 50, n_clicks)
    return LogStats.from_rows({"item": ids[rank], "ctx": ctx}, features=["item", "ctx"], pairs=[("item", "ctx")])


@pytest.fixture(scope="module")
def two_logs():
    return zipf_stats(0), zipf_stats(1, shift=3)


def _hashed(m: IdMap, ids):
    return ~np.isin(ids, m.ids)


@pytest.mark.parametrize("method", ["frequency", "learned"])
def test_a_refit_moves_a_hashed_id_only_when_its_row_became_hot(two_logs, method):
    old_stats, new_stats = two_logs
    first = fit_hash(old_stats, "item", 400, method=method, max_mapped_ids=1_000, seed=0)
    refit = fit_hash(new_stats, "item", 400, method=method, max_mapped_ids=1_000, seed=5, previous=first)
    assert refit.meta["hot_ids"] == first.meta["hot_ids"]  # the previous map's hot count by default
    assert refit.seed == first.seed  # the fallback hash keeps the previous map's seed
    probe = np.concatenate([new_stats.frequencies("item")[0], np.arange(-5_000, 5_000, dtype=np.int64)])
    both = probe[_hashed(first, probe) & _hashed(refit, probe)]
    assert both.size > 5_000
    old_rows, new_rows = first.lookup(both), refit.lookup(both)
    became_hot = ~np.isin(old_rows, refit.fallback_rows)
    np.testing.assert_array_equal(new_rows[~became_hot], old_rows[~became_hot])
    assert became_hot.mean() < 0.05  # a few rows changed hands, not the whole list
    seen = new_stats.frequencies("item")[0]
    assert refit.meta["moved_seen_ids"] == int(np.count_nonzero(refit.lookup(seen) != first.lookup(seen)))
    if method == "frequency":  # hot ids keep their rows too; clustered ids follow their new buckets
        assert refit.meta["moved_seen_ids"] < 0.05 * seen.size


def test_a_refit_with_the_same_counts_moves_nothing(two_logs):
    stats = two_logs[0]
    first = fit_hash(stats, "item", 400, method="frequency", seed=0)
    same = fit_hash(stats, "item", 400, method="frequency", seed=0, previous=first)
    probe = np.arange(-20_000, 20_000, dtype=np.int64)
    np.testing.assert_array_equal(same.lookup(probe), first.lookup(probe))
    assert same.meta["moved_seen_ids"] == 0


def test_another_hot_count_is_allowed_and_says_hashed_ids_move(two_logs):
    old_stats, new_stats = two_logs
    first = fit_hash(old_stats, "item", 400, method="frequency", seed=0)
    more = fit_hash(new_stats, "item", 400, method="frequency", hot_rows=first.meta["hot_ids"] + 10, previous=first)
    assert more.meta["hot_ids"] == first.meta["hot_ids"] + 10
    seen = new_stats.frequencies("item")[0]
    # the cold list got shorter, so the hash's modulus changed: most hashed ids move, and are counted
    assert more.meta["moved_seen_ids"] == int(np.count_nonzero(more.lookup(seen) != first.lookup(seen)))
    assert more.meta["moved_seen_ids"] > 0.5 * np.count_nonzero(_hashed(more, seen))


@pytest.mark.data
def test_on_the_criteo_sample_a_refit_moves_no_hashed_id():
    # the README's figure: every feature fitted on the train file, refitted on the dev file
    from learned_hash.mining import mine
    from tests.conftest import data_path

    folder = data_path("criteo_sample")
    features = [f"C{i}" for i in range(1, 27)]
    train = mine(folder / "lapis_train.txt", format="criteo", features=features, label="label")
    dev = mine(folder / "lapis_dev.txt", format="criteo", features=features, label="label")
    hashed = moved_hashed = seen = moved = 0
    for f in features:
        n_rows = max(16, train.frequencies(f)[0].size // 4)
        first = fit_hash(train, f, n_rows, method="frequency")
        refit = fit_hash(dev, f, n_rows, method="frequency", previous=first)
        ids = dev.frequencies(f)[0]
        both = _hashed(first, ids) & _hashed(refit, ids)
        changed = first.lookup(ids) != refit.lookup(ids)
        hashed += both.sum()
        moved_hashed += (changed & both).sum()
        seen += ids.size
        moved += refit.meta["moved_seen_ids"]
    assert (moved_hashed, hashed, moved, seen) == (0, 2824, 667, 3875)


def test_a_previous_map_of_another_feature_is_refused(two_logs):
    stats = two_logs[0]
    ctx_map = fit_hash(stats, "ctx", 400, method="frequency")
    with pytest.raises(ConfigError, match="feature 'ctx'.*'item'"):
        fit_hash(stats, "item", 400, method="frequency", previous=ctx_map)


def test_fit_hash_command_refuses_a_renamed_earlier_map_before_writing(tmp_path, capsys):
    from embcompress.cli.main import main

    stats = zipf_stats(0)
    path = stats.save(tmp_path / "log.stats")
    main(["fit-hash", str(path), "-f", "ctx", "--rows", "40", "--method", "frequency", "--out-dir", str(tmp_path / "old"), "--quiet"])
    (tmp_path / "old" / "ctx.idmap").rename(tmp_path / "old" / "item.idmap")
    with pytest.raises(SystemExit) as exit_:
        main(["fit-hash", str(path), "-f", "item", "--rows", "40", "--method", "frequency",
              "--previous-dir", str(tmp_path / "old"), "--out-dir", str(tmp_path / "new"), "--quiet"])
    assert exit_.value.code == 1
    assert "fitted for feature 'ctx', not 'item'" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_the_hot_row_rule_is_exact_for_counts_beyond_float64():
    # count * n_rows >= total in float64 rounded 2**53 + 1 down, and an exact tie came out short
    from learned_hash.baselines import choose_hot_rows

    c = 2**53 + 1
    assert choose_hot_rows(np.array([c, c, c]), 3) == 1  # all three tie at the average; half the rows cap it
    assert choose_hot_rows(np.array([c, c, c - 3]), 3) == 1
    assert choose_hot_rows(np.array([c, c - 1, c - 2]), 3) == 1  # c * 3 >= total only for the first


def test_a_hashing_trick_refit_keeps_the_previous_seed(two_logs):
    old_stats, new_stats = two_logs
    first = fit_hash(old_stats, "item", 400, method="hash", seed=3)
    refit = fit_hash(new_stats, "item", 400, method="hash", seed=9, previous=first)
    probe = np.arange(-1000, 1000, dtype=np.int64)
    assert refit.seed == 3 and refit.meta["moved_seen_ids"] == 0
    np.testing.assert_array_equal(refit.lookup(probe), first.lookup(probe))
