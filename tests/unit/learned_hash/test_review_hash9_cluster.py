"""Review of learned_hash.cluster (round 9): inputs FAISS cannot take are refused before it runs.

The crash cases run in a subprocess: before the fix FAISS aborted the whole process."""

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from learned_hash.cluster import FrequencyKMeans


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("scale", ["1e19", "1e30"])
def test_points_whose_squared_distances_overflow_float32_are_refused_not_aborting(scale):
    # FAISS computes squared distances in float32: at 1e19 they overflow to inf, the assignment
    # fails, and FAISS's C++ exception terminated the Python process ("invalid cluster assignment").
    res = _run(f"""
        import numpy as np
        from embcompress.errors import ConfigError
        from learned_hash.cluster import FrequencyKMeans
        X = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32) * {scale}
        try:
            FrequencyKMeans(20).fit(X)
        except ConfigError as exc:
            print("refused:", exc)
    """)
    assert res.returncode == 0, res.stderr[-500:]
    assert "refused: The 'X' parameter of FrequencyKMeans.fit" in res.stdout and "scale" in res.stdout


def test_a_given_embedding_too_large_for_float32_distances_is_refused_by_fit_hash():
    res = _run("""
        import numpy as np
        from embcompress.errors import ConfigError
        from learned_hash import LogStats, fit_hash
        rng = np.random.default_rng(0)
        stats = LogStats.from_rows({"a": rng.integers(0, 300, 3000)}, features=["a"])
        ids = stats.frequencies("a")[0]
        try:
            fit_hash(stats, "a", 40, embedding=(ids, rng.normal(size=(ids.size, 8)) * 1e20))
        except ConfigError as exc:
            print("refused:", exc)
    """)
    assert res.returncode == 0, res.stderr[-500:]
    assert "refused: The 'embedding' parameter of fit_hash" in res.stdout


def test_large_but_safe_points_still_cluster():
    X = np.random.default_rng(0).normal(size=(500, 16)).astype(np.float32)
    small = FrequencyKMeans(20, seed=0).fit(X).labels_
    assert np.array_equal(FrequencyKMeans(20, seed=0).fit(X * np.float32(2.0**50)).labels_, small)


def test_predict_refuses_what_fit_refuses():
    # predict gave the label -1 (no bucket) to a NaN point and numpy's raw ValueError for text;
    # fit's sample_weight of text gave the raw ValueError too
    from embcompress.errors import ConfigError

    X = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    km = FrequencyKMeans(5, seed=0).fit(X)
    for bad, got in ((np.array([[np.nan, 1, 1]]), "NaN or infinite"), (np.array([["a", "b", "c"]]), "dtype <U1"),
                     (np.full((1, 3), 1e30), "squared norm")):
        with pytest.raises(ConfigError, match=rf"'X' parameter of FrequencyKMeans.predict.*{got}"):
            km.predict(bad)
    with pytest.raises(ConfigError, match="'sample_weight' parameter of FrequencyKMeans.fit.*dtype <U1"):
        FrequencyKMeans(5).fit(X, np.array(["a"] * 100))
    assert np.array_equal(km.predict(X), km.predict(X.astype(np.float64)))


@pytest.mark.parametrize("name", ["n_iter", "max_points_per_centroid"])
def test_faiss_int_parameters_beyond_32_bits_are_refused_in_our_terms(name):
    # they passed validation and FAISS's SWIG layer raised "OverflowError in method
    # 'ClusteringParameters_niter_set', argument 2 of type 'int'"
    from embcompress.errors import ConfigError

    X = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32)
    with pytest.raises(ConfigError, match=rf"'{name}' parameter of FrequencyKMeans must be an int in \[1, 2147483647\]"):
        FrequencyKMeans(20, **{name: 2**31}).fit(X)
    assert FrequencyKMeans(20, **{name: 2**31 - 1}).get_params()[name] == 2**31 - 1
