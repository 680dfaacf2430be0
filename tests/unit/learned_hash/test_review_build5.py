"""Review of fit_hash (round 5): partners are checked whatever the size of the feature."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from learned_hash import LogStats, fit_hash


def small_stats():
    # two ids of 'a', both hot in 4 rows: nothing is left to embed
    cols = {"a": np.array([1, 3, 1]), "b": np.array([2, 4, 4]), "y": np.array([1, 0, 1])}
    return LogStats.from_rows(cols, features=["a", "b"], label="y", pairs=[("a", "b")])


@pytest.mark.parametrize("partners, match", [(["zzz"], "'partners' parameter"), (["a"], "session key")])
def test_a_partner_that_was_not_mined_is_refused_even_when_every_id_is_hot(partners, match):
    # a bigger feature refused these; a small one (every id hot) took them without a word
    stats = small_stats()
    assert fit_hash(stats, "a", 4).meta["hot_ids"] == 2
    with pytest.raises(ConfigError, match=match):
        fit_hash(stats, "a", 4, partners=partners)
    fit_hash(stats, "a", 4, partners=["b"])
