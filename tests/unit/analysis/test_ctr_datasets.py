"""The real-data loaders (skip when ../shared/data is absent)."""

import numpy as np
import pytest

from analysis.ctr.datasets import load_criteo, load_dataset, load_frappe, load_talkingdata
from analysis.ctr.sweep import DatasetConfig
from embcompress.errors import ConfigError
from tests.conftest import data_path


def test_frappe_pooled_and_split_at_random():
    s = load_frappe(data_path("frappe"), split_seed=0)
    n = s.train.n_rows + s.validation.n_rows + s.test.n_rows
    assert n == 28860 + 57722  # both libFM files, every row
    assert s.features[:2] == ("user", "item") and s.info["split"] == "random"
    assert abs(s.test.n_rows - 0.2 * n) <= 1  # train and validation are rounded, test takes the rest
    assert set(np.unique(s.train.label)) == {0.0, 1.0}
    # the README's field sizes are 957 users and 4082 items over all three original files; these
    # two hold every item and 913 of the users
    users = np.unique(np.concatenate([p.column("user") for p in (s.train, s.validation, s.test)]))
    items = np.unique(np.concatenate([p.column("item") for p in (s.train, s.validation, s.test)]))
    assert (users.size, items.size) == (913, 4082)
    again = load_frappe(data_path("frappe"), split_seed=0)
    assert np.array_equal(again.test.cat, s.test.cat)


def test_criteo_keeps_the_time_cut_files_and_dense_features():
    s = load_criteo(data_path("criteo_sample"))
    assert s.info["files"] == ["lapis_train.txt", "lapis_dev.txt", "lapis_test.txt"]
    assert s.train.n_dense == 13 and len(s.features) == 26
    assert (s.train.dense >= 0).all() and np.isfinite(s.train.dense).all()


def test_talkingdata_sorted_by_click_time():
    s = load_talkingdata(data_path("talkingdata_sample"), n_rows=20000)
    assert s.info["split"] == "time" and s.features == ("ip", "app", "device", "os", "channel")
    assert s.train.n_rows + s.validation.n_rows + s.test.n_rows == 20000


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_dataset(DatasetConfig(name="frappe", path=str(tmp_path / "nope")))


def test_compressible_features_and_the_error_when_none_is():
    from analysis.ctr.synthetic import load_synthetic

    splits = load_synthetic(2000, seed=0, vocab=(300, 600, 20, 5), n_groups=(10, 12, 4, 2))
    vocab = splits.vocab_sizes()
    assert set(vocab) == set(splits.features)
    big = splits.compressible(100)
    assert big and all(vocab[f] >= 100 for f in big)
    assert all(vocab[f] < 100 for f in splits.features if f not in big)
    with pytest.raises(ConfigError, match="min_vocab=100000"):
        splits.compressible(100_000)
