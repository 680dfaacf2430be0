"""Review tests of analysis.ctr.metrics: inputs that gave wrong numbers without a word."""

import json

import numpy as np
import pytest

from analysis.ctr.metrics import logloss, paired_bootstrap
from embcompress.errors import ConfigError


@pytest.mark.parametrize("probs", [[3.0, -2.0], [1.5, 0.2], [0.9, -0.1]])
def test_logloss_refuses_values_outside_0_1(probs):
    # logits passed by mistake were clipped to [1e-7, 1 - 1e-7]: [3, -2] scored a perfect 1e-7
    with pytest.raises(ConfigError, match=r"'probs'.*\[0, 1\]"):
        logloss([1, 0], probs)


def test_logloss_still_clips_exact_0_and_1():
    # 0 and 1 are probabilities; they are clipped so a confident miss costs -log(1e-7), not inf
    assert logloss([1, 0], [0.0, 1.0]) == pytest.approx(-np.log(1e-7), rel=1e-6)


def test_bootstrap_interval_is_finite_with_a_single_positive():
    # one positive in 30 rows: about a third of the resamples draw no positive, and their AUC is
    # 0/0; the interval came out NaN (and results.json then held NaN, which is not JSON)
    rng = np.random.default_rng(0)
    y = np.zeros(30, int)
    y[0] = 1
    ci = paired_bootstrap(y, [rng.random(30)], [rng.random(30)], n_boot=200, seed=0)
    for k in ("auc", "logloss"):
        d = ci[k].to_dict()
        assert np.isfinite([d["low"], d["high"], d["mean"]]).all(), (k, d)
        assert d["low"] <= d["high"]
        json.dumps(d, allow_nan=False)


def test_bootstrap_auc_interval_over_resamples_with_both_classes():
    # the interval must be the percentiles over the resamples that have an AUC: recompute them
    # from the same draws, independently (the resample's row multiplicities as weights of pairs)
    rng = np.random.default_rng(1)
    n = 12
    y = np.zeros(n, int)
    y[:2] = 1
    pa, pb = rng.random(n), rng.random(n)
    ci = paired_bootstrap(y, [pa], [pb], n_boot=50, seed=7)
    draws = np.random.default_rng(7).integers(0, n, size=(50, n))

    def pair_auc(yy, s):
        pos, neg = s[yy == 1], s[yy == 0]
        d = pos[:, None] - neg[None, :]
        return ((d > 0).sum() + 0.5 * (d == 0).sum()) / (pos.size * neg.size)

    diffs = [pair_auc(y[d], pa[d]) - pair_auc(y[d], pb[d]) for d in draws if 0 < y[d].sum() < n]
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    assert ci["auc"].low == pytest.approx(lo, abs=1e-12)
    assert ci["auc"].high == pytest.approx(hi, abs=1e-12)


def test_bootstrap_without_any_two_class_resample_says_what_to_do():
    # two rows, one positive: a resample holds both classes half the time; seed 1256 draws ten
    # resamples that all repeat one row. An error naming the fix beats a NaN interval.
    y = np.array([1, 0])
    with pytest.raises(ConfigError, match="positives and negatives"):
        paired_bootstrap(y, [np.array([0.9, 0.1])], [np.array([0.2, 0.8])], n_boot=10, seed=1256)


def test_non_finite_values_are_named_with_the_parameter_and_rows():
    # the message said "The 'scores' parameter of logloss must be finite. Got 'non-finite
    # values' instead.": a parameter logloss does not have, and no row
    with pytest.raises(ConfigError, match=r"'probs' parameter of logloss must be finite.*rows \[1, 3\]"):
        logloss([1, 0, 1, 0], [0.5, np.nan, 0.2, np.inf])
    from analysis.ctr.metrics import auc

    with pytest.raises(ConfigError, match=r"'scores' parameter of auc must be finite.*rows \[0\]"):
        auc([1, 0], [np.nan, 0.1])
    with pytest.raises(ConfigError, match=r"'probs_b' parameter of paired_bootstrap must be finite"):
        paired_bootstrap([1, 0], [np.array([0.5, 0.2])], [np.array([0.5, np.nan])], n_boot=10)


def test_scores_of_the_wrong_length_name_the_parameter():
    with pytest.raises(ConfigError, match=r"'probs' parameter of logloss must be a 1-d array"):
        logloss([1, 0, 1], [0.5, 0.2])
