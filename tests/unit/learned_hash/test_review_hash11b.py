"""Review of the learned-hash side (round 11, second pass): fit_hash's embedding checked up front,
Spark start-up errors in one line with advice by cause, libFM logs given as a folder, mine's
temp_directory."""

import numpy as np
import pytest

from embcompress.errors import ConfigError
from learned_hash import LogStats, fit_hash

pytest.importorskip("faiss")  # (fit_hash's k-means)


# --------------------------------------------------------------------------- 1. fit_hash's embedding


def _stats(*, label):
    rng = np.random.default_rng(0)
    a = rng.zipf(1.3, 2000) % 300
    cols = {"a": a, "b": (a * 7 + rng.integers(0, 3, 2000)) % 200, "d": rng.integers(0, 50, 2000),
            "y": (a % 2).astype(np.int64)}
    return LogStats.from_rows(cols, features=["a", "b", "d"], label="y" if label else None, pairs=[("a", "b")])


@pytest.mark.parametrize("label, feature, embedding, says", [
    (True, "a", "spectral", r"'embedding' parameter of fit_hash must be one of \('auto', 'cooccurrence', 'label_aware'\)"),
    # a feature mined without pairs was told to mine pairs, for a typo in the embedding's name
    (True, "d", "spectral", r"'embedding' parameter of fit_hash must be one of"),
    (False, "a", "label_aware", r"needs stats mined with a label.*Mine with label=.*embedding='cooccurrence'"),
])
def test_fit_hash_refuses_the_embedding_before_the_fit_starts(label, feature, embedding, says):
    # both were refused only once the fit had started (progress(0, 1) was called: fit-hash's bar
    # drawn, its --out-dir made), the label one without naming the parameter
    stats, calls = _stats(label=label), []
    with pytest.raises(ConfigError, match=says) as err:
        fit_hash(stats, feature, 20, embedding=embedding, progress=lambda d, t: calls.append((d, t)))
    assert err.value.param == "embedding"
    assert calls == []
    # also when every id owns a row (nothing is embedded): the name is still wrong
    with pytest.raises(ConfigError, match=says):
        fit_hash(stats, feature, 1000, hot_rows=999, embedding=embedding)
    # the fix it names works
    fix = "auto" if label else "cooccurrence"
    assert fit_hash(stats, "a", 20, embedding=fix).n_rows == 20


def test_check_embedding_is_the_one_rule_and_other_methods_ignore_the_name():
    from learned_hash.build import check_embedding

    with_label, without = _stats(label=True), _stats(label=False)
    with pytest.raises(ConfigError, match="must be one of"):
        check_embedding(with_label, "spectral")
    with pytest.raises(ConfigError, match="needs stats mined with a label"):
        check_embedding(without, "label_aware")
    for emb in ("auto", "cooccurrence", "label_aware"):
        check_embedding(with_label, emb)
    check_embedding(without, (np.arange(3), np.ones((3, 2), np.float32)))  # a pair: checked where it is used
    check_embedding(without, "spectral", method="hash")  # embeds nothing
    assert fit_hash(without, "a", 20, method="frequency", embedding="label_aware").n_rows == 20
