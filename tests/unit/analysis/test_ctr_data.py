import numpy as np
import pytest

from analysis.ctr.data import CTRData, split_by_time, split_random
from analysis.ctr.synthetic import load_synthetic, synthetic_log
from embcompress.errors import ConfigError


def _data(n=100):
    rng = np.random.default_rng(0)
    return CTRData(("a", "b"), rng.integers(0, 10, (n, 2)), (rng.random(n) < 0.3).astype(np.float32))


def test_split_random_is_seeded_and_partitions():
    d = _data()
    s1, s2, s3 = (split_random(d, seed=k) for k in (3, 3, 4))
    assert (s1.test.cat == s2.test.cat).all()
    assert not np.array_equal(s1.test.cat, s3.test.cat)
    assert (s1.train.n_rows, s1.validation.n_rows, s1.test.n_rows) == (70, 10, 20)
    assert s1.info["split_seed"] == 3
    whole = np.concatenate([s1.train.cat, s1.validation.cat, s1.test.cat])
    assert sorted(map(tuple, whole)) == sorted(map(tuple, d.cat))


def test_split_by_time_orders_rows():
    d = _data(10)
    t = np.arange(10)[::-1]  # last row is the earliest
    s = split_by_time(d, t, (0.6, 0.2, 0.2))
    assert (s.train.cat[0] == d.cat[9]).all()
    assert (s.test.cat[-1] == d.cat[0]).all()
    with pytest.raises(ConfigError, match="fractions"):
        split_by_time(d, None, (0.5, 0.5))


def test_synthetic_log_is_seeded_zipf_and_grouped():
    a = synthetic_log(5000, seed=1)
    b = synthetic_log(5000, seed=1)
    assert (a.data.cat == b.data.cat).all() and (a.data.label == b.data.label).all()
    items = a.data.column("item")
    counts = np.sort(np.bincount(items))[::-1]
    assert counts[:10].sum() > 0.1 * items.size  # a heavy head: Zipf, not uniform
    # labels depend on groups: the click rate differs a lot between user groups
    g = a.groups["user"][a.data.column("user")]
    rates = [a.data.label[g == k].mean() for k in np.unique(g) if (g == k).sum() > 50]
    assert max(rates) - min(rates) > 0.2
    # co-occurrence follows groups: a user group's items concentrate in few item groups
    gi = a.groups["item"][items]
    top_share = np.mean([np.bincount(gi[g == k]).max() / (g == k).sum() for k in np.unique(g) if (g == k).sum() > 50])
    assert top_share > 0.3


def test_synthetic_dense_and_bad_params():
    s = load_synthetic(1000, seed=0, n_dense=3)
    assert s.train.dense.shape == (800, 3) and s.info["seed"] == 0
    with pytest.raises(ConfigError, match="n_groups"):
        synthetic_log(100, vocab=(10, 10), n_groups=(20, 2))
