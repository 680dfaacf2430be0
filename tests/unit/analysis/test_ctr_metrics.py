import itertools

import numpy as np
import pytest

from analysis.ctr.metrics import auc, logloss, mean_spread, paired_bootstrap
from embcompress.errors import ConfigError


def _auc_pairs(y, s):
    """AUC by its definition: over all (positive, negative) pairs, 1 if the positive scores
    higher, 1/2 on a tie."""
    pos = [a for a, t in zip(s, y) if t == 1]
    neg = [b for b, t in zip(s, y) if t == 0]
    wins = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


def test_auc_matches_pair_definition_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 2, 40)
        y[:2] = [0, 1]
        s = rng.integers(0, 6, 40) / 5.0  # many ties
        assert auc(y, s) == pytest.approx(_auc_pairs(y, s), abs=1e-12)


def test_auc_literal_values():
    # 2 positives x 2 negatives: pairs (0.8>0.1) (0.8>0.4) (0.35<0.4) (0.35>0.1): 3 of 4
    assert auc([1, 0, 1, 0], [0.8, 0.1, 0.35, 0.4]) == 0.75
    assert auc([0, 1], [0.5, 0.5]) == 0.5
    assert auc([0, 0, 1], [0.1, 0.2, 0.3]) == 1.0


def test_logloss_literal_and_clipping():
    # -(ln 0.8 + ln(1 - 0.4)) / 2
    assert logloss([1, 0], [0.8, 0.4]) == pytest.approx(-(np.log(0.8) + np.log(0.6)) / 2, abs=1e-15)
    # a certain wrong prediction is clipped to 1e-7, not infinite
    assert logloss([1], [0.0]) == pytest.approx(-np.log(1e-7))


def test_metrics_refuse_bad_input():
    with pytest.raises(ConfigError, match="hold both classes"):
        auc([1, 1], [0.1, 0.2])
    with pytest.raises(ConfigError, match="only 0 and 1"):
        auc([1, 2], [0.1, 0.2])
    with pytest.raises(ConfigError, match="'scores' parameter"):
        auc([1, 0], [0.1])
    with pytest.raises(ConfigError, match="finite"):
        logloss([1, 0], [np.nan, 0.2])


def test_paired_bootstrap_interval_covers_difference_and_is_paired():
    rng = np.random.default_rng(1)
    n = 3000
    y = rng.integers(0, 2, n)
    base = rng.random(n) * 0.5 + y * 0.3
    better = np.clip(base + y * 0.05, 0, 1)
    ci = paired_bootstrap(y, [better], [base], n_boot=200, seed=0)
    d_auc = auc(y, better) - auc(y, base)
    assert ci["auc"].mean == pytest.approx(d_auc)
    assert ci["auc"].low <= d_auc <= ci["auc"].high
    assert ci["auc"].low > 0  # raising every positive's score can only help, in every resample
    assert ci["logloss"].mean == pytest.approx(logloss(y, better) - logloss(y, base))
    # a model against itself: zero difference in every resample
    same = paired_bootstrap(y, [base, better], [base, better], n_boot=50)
    assert same["auc"].low == same["auc"].high == 0.0


def test_weighted_bootstrap_auc_equals_auc_of_resampled_rows():
    from analysis.ctr.metrics import _tie_groups, _weighted_auc

    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 200).astype(float)
    s = rng.integers(0, 20, 200).astype(float)
    draw = rng.integers(0, 200, 200)
    w = np.bincount(draw, minlength=200).astype(float)
    order, starts = _tie_groups(s)
    assert _weighted_auc(y[order], w[order], starts) == pytest.approx(auc(y[draw], s[draw]), abs=1e-12)


def test_mean_spread():
    r = mean_spread([1.0, 2.0, 3.0])
    assert r["mean"] == 2.0 and r["std"] == 1.0 and r["n"] == 3
    assert mean_spread([5.0])["std"] == 0.0
