import os
import subprocess
import sys

import pytest

from embcompress.errors import ConfigError
from embcompress.kernels import backend, compiled, resolve_threads


def test_backend_env_override(monkeypatch):
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
    assert backend() == "numpy"
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "fortran")
    with pytest.raises(ConfigError, match="EMBCOMPRESS_KERNELS"):
        backend()


def test_threads_validate():
    assert resolve_threads(3) == 3
    assert resolve_threads(None) >= 1
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError, match="n_threads"):
            resolve_threads(bad)


def test_threads_honour_omp_num_threads():
    # OpenMP reads OMP_NUM_THREADS when its runtime starts, so this needs a fresh process; the
    # value differs from the core count, so the machine default cannot pass by accident
    if compiled("_threads") is None:
        pytest.skip("compiled kernels not built or EMBCOMPRESS_KERNELS=numpy")
    want = 5 if (os.cpu_count() or 1) != 5 else 3
    env = {**os.environ, "OMP_NUM_THREADS": str(want), "EMBCOMPRESS_KERNELS": "cython"}
    out = subprocess.run([sys.executable, "-c", "from embcompress.kernels import resolve_threads; print(resolve_threads(None))"],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert int(out) == want


def test_compiled_follows_the_environment_as_it_changes(monkeypatch):
    """compiled() reads os.environ's raw mapping (a microsecond less a lookup): a change made in
    the process, set or removed, still switches the backend on the next call."""
    if compiled("_lookup") is None:
        pytest.skip("compiled kernels not built")
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "numpy")
    assert compiled("_lookup") is None
    monkeypatch.setenv("EMBCOMPRESS_KERNELS", "cython")
    assert compiled("_lookup") is not None
    os.environ["EMBCOMPRESS_KERNELS"] = "numpy"
    assert compiled("_lookup") is None
    del os.environ["EMBCOMPRESS_KERNELS"]
    assert compiled("_lookup") is not None


def test_small_calls_still_check_n_threads():
    """team_size answers 1 for a small call without asking OpenMP, but a bad n_threads is still
    refused, whatever the work."""
    from embcompress.kernels import team_size

    assert team_size(None, 1, 1e-9) == 1 and team_size(3, 1, 1e-9) == 1
    for bad in (0, -1, 1.5, True, "2"):
        with pytest.raises(ConfigError, match="n_threads"):
            team_size(bad, 1, 1e-9)


def test_threads_take_numpy_integers():
    """A thread count computed with numpy is a count (it was refused as 'not a positive int')."""
    import numpy as np

    assert resolve_threads(np.int64(2)) == 2 and type(resolve_threads(np.int32(3))) is int
    with pytest.raises(ConfigError, match="n_threads"):
        resolve_threads(np.int64(0))
