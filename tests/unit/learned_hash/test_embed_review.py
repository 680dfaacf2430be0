"""Id embeddings, review findings."""

import numpy as np

from learned_hash import fit_hash
from learned_hash.embed import cooccurrence
from learned_hash.mining.stats import LogStats


def test_one_partner_name_as_a_string_is_that_feature():
    # partners="ctx" was split into characters: "must name features mined in a pair ... Got 'c'"
    rng = np.random.default_rng(0)
    n = 3000
    cols = {"a": rng.zipf(1.4, n) % 300, "ctx": rng.integers(0, 50, n), "y": rng.integers(0, 2, n)}
    stats = LogStats.from_rows(cols, features=["a", "ctx"], label="y", pairs=[("a", "ctx")])
    ids, _ = stats.frequencies("a")
    X, used = cooccurrence(stats, "a", ids, partners="ctx")
    Y, _ = cooccurrence(stats, "a", ids, partners=["ctx"])
    assert used == ["ctx"] and (X != Y).nnz == 0
    m = fit_hash(stats, "a", 40, partners="ctx", seed=0)
    assert m.config["embedding"]["partners"] == ["ctx"]
    assert np.array_equal(m.lookup(ids), fit_hash(stats, "a", 40, partners=["ctx"], seed=0).lookup(ids))
