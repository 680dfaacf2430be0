"""FrequencyKMeans, review findings."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from learned_hash.cluster import FrequencyKMeans


@pytest.mark.parametrize("weights, got", [
    ([1, 2, -1, 1, 1], r"a negative weight \(-1"),
    ([1, 2, np.nan, 1, 1], "a non-finite weight"),
    ([1, 2, 3], r"shape \(3,\)"),
])
def test_bad_sample_weight_error_says_what_is_wrong(weights, got):
    # a negative or NaN weight used to be reported as "Got 'shape (5,)'", the right shape
    X = np.random.default_rng(0).standard_normal((5, 2))
    with pytest.raises(ConfigError, match=rf"'sample_weight' parameter of FrequencyKMeans.fit must be 5 finite non-negative weights\. Got .*{got}"):
        FrequencyKMeans(2).fit(X, weights)
