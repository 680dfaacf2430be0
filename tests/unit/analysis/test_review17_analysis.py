"""Review 17 of the analysis package: defects found, each with the test that failed first."""

import numpy as np
import pytest

from analysis.quant_error import frequency_bags
from embcompress.errors import ConfigError


def test_frequency_bags_draws_exactly_n_bags():
    counts = np.array([5, 3, 1])
    # n_bags=0 returned one empty bag (np.split of an empty array), not zero bags
    assert len(frequency_bags(counts, 0)) == 0
    assert [len(b) >= 1 for b in frequency_bags(counts, 7)] == [True] * 7


@pytest.mark.parametrize("kwargs", [{"n_bags": -1}, {"mean_size": 0.5}, {"mean_size": float("nan")}])
def test_frequency_bags_names_bad_sizes(kwargs):
    # mean_size < 1 raised numpy's raw "lam < 0 or lam is NaN"; a negative n_bags numpy's own error
    with pytest.raises(ConfigError, match="n_bags|mean_size"):
        frequency_bags(np.array([5, 3, 1]), **{"n_bags": 5, **kwargs})
