"""Baseline mappers, review findings."""

import pytest

from embcompress.errors import ConfigError
from learned_hash.baselines import frequency_map, hash_map


@pytest.mark.parametrize("n_rows", [0, -3, 4.0, True])
def test_a_bad_n_rows_is_named_as_such(n_rows):
    # frequency_map used to blame 'hot_rows' ("must be in [0, n_rows - 1] = [0, -1]. Got 0")
    with pytest.raises(ConfigError, match=r"The 'n_rows' parameter of frequency_map must be a positive int\. Got"):
        frequency_map([1, 2], n_rows, hot_rows=0)
    with pytest.raises(ConfigError, match=r"The 'n_rows' parameter of hash_map must be a positive int\. Got"):
        hash_map(n_rows)
